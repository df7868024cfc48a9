//! One backup cell: a fresh TiDB cluster in its own namespace, one `volume-backup` execution with
//! the fault, then the checks.

use super::checks::{backup_leftovers, catalog_phase, gc_check, members_check};
use super::drive::{Ctx, execute};
use super::probe::has_condition;
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
    let member_api = |p: &str| world.backups(p, ns);
    let run = (ctx.flows.backup_arn.as_str(), name.as_str(), &input);
    let at = at_phase(cell.phase);
    let Some((inj, done)) = execute(ctx, &cell, run, member_api, at, &mut r, started).await else {
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

    let (gc, after) = gc_check(world, key, inj.fault_at, Duration::from_secs(60)).await;
    r.gc = gc;
    r.gc_after_fault_ms = after;

    r.members = members_check(planes, member_api, &format!("fed-{name}"), |p, m| {
        let st = m.data["status"]["phase"].as_str().unwrap_or("-");
        let st = st.strip_prefix("VolumeBackup").unwrap_or(st).to_string();
        let td = spec_str(m, "federalVolumeBackupPhase") == "teardown";
        let terminal = matches!(st.as_str(), "Complete" | "Failed" | "Invalid");
        (
            terminal || td,
            format!("{p} {st}{}", if td { "·td" } else { "" }),
        )
    })
    .await;
    r.leftovers = backup_leftovers(world, key, ns, doc.as_ref()).await;
    r.finish(inj.produced, started)
}
