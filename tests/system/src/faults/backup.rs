//! One backup cell: a fresh TiDB cluster in its own namespace, one `volume-backup` execution with
//! the fault, then the checks.

use super::checks::{backup_leftovers, catalog_phase, gc_check};
use super::drive::{Ctx, execute, fault_planes};
use super::probe::{Probe, has_condition};
use super::{Cell, CellResult, Check, phase_timeout};
use crate::fixtures::{SeededCluster, VolumeBackup};
use crate::workflow::catalog_doc;
use brfed_sim_operator::faults::FAULT_ANNOTATION;
use kube::api::DynamicObject;
use serde_json::json;
use std::time::{Duration, Instant};

fn spec_str<'a>(o: &'a DynamicObject, field: &str) -> &'a str {
    o.data["spec"][field].as_str().unwrap_or_default()
}

fn at_phase(phase: &str) -> fn(&DynamicObject) -> bool {
    match phase {
        "initialize" | "execute" => |_| true,
        "snapshots-created" => |o| has_condition(o, "VolumeBackupSnapshotsCreated"),
        "resume" => |o| o.data["spec"]["resumeGcSchedule"] == true,
        _ => |o| spec_str(o, "federalVolumeBackupPhase") == "teardown",
    }
}

/// Runs one backup cell.
pub async fn run(ctx: &Ctx, cell: Cell) -> CellResult {
    let started = Instant::now();
    let mut r = CellResult::of(&cell);
    let world = &ctx.world;
    let tc = match SeededCluster::seed(world, "flt", "tidb", 1).await {
        Ok(tc) => tc,
        Err(e) => {
            r.notes.push(format!("seeding: {e}"));
            return r;
        }
    };
    let (ns, key, planes) = (&tc.ns, &tc.key, &tc.planes);
    let name = format!("fb-{}", tc.id());
    r.execution = name.clone();
    let input = VolumeBackup::written(
        &name,
        tc.clusters(),
        &world.bucket,
        &format!("{ns}/backup"),
        "Delete",
    )
    .annotations(json!({FAULT_ANNOTATION: cell.rule()}))
    .options(phase_timeout(cell.fault))
    .build();
    let member = format!("fed-{name}");
    let apis = fault_planes(world, &cell)
        .iter()
        .map(|p| world.backups(p, &ns))
        .collect();
    let probe = Probe::start(apis, member.clone(), at_phase(cell.phase));
    let Some((inj, done)) = execute(
        ctx,
        &cell,
        probe,
        &ctx.flows.backup_arn,
        &name,
        &input,
        &mut r,
    )
    .await
    else {
        r.seconds = started.elapsed().as_secs_f64();
        return r;
    };
    let doc =
        super::checks::doc_after_abort(&done.status, || catalog_doc(world, "br", &name)).await;
    let (phase, consistent) = catalog_phase(&done.status, doc.as_ref());
    let reason = doc
        .as_ref()
        .and_then(|d| d["status"]["conditions"].as_array())
        .and_then(|c| c.last())
        .and_then(|c| c["reason"].as_str())
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    r.catalog = Check::new(consistent, format!("{phase}{reason}"));

    let (gc, after) = gc_check(world, &key, inj.fault_at, Duration::from_secs(60)).await;
    r.gc = gc;
    r.gc_after_fault_ms = after;

    let mut parts = Vec::new();
    let mut ok = true;
    for p in planes {
        match world.backups(p, &ns).get_opt(&member).await {
            Ok(None) => parts.push(format!("{p} gone")),
            Ok(Some(m)) => {
                let st = m.data["status"]["phase"].as_str().unwrap_or("-");
                let st = st.strip_prefix("VolumeBackup").unwrap_or(st).to_string();
                let td = spec_str(&m, "federalVolumeBackupPhase") == "teardown";
                let terminal = matches!(st.as_str(), "Complete" | "Failed" | "Invalid");
                ok &= terminal || td;
                parts.push(format!("{p} {st}{}", if td { "·td" } else { "" }));
            }
            Err(e) => {
                ok = false;
                parts.push(format!("{p}:? ({e})"));
            }
        }
    }
    r.members = Check::new(ok, parts.join(" "));
    r.leftovers = backup_leftovers(world, &key, &ns, doc.as_ref()).await;
    if !inj.produced {
        r.notes
            .push("the fault was not produced: the cell does not count as clean".into());
        r.catalog.ok = false;
    }
    r.judge();
    r.seconds = started.elapsed().as_secs_f64();
    r
}
