//! One backup cell: a fresh TiDB cluster in its own namespace, one `volume-backup` execution with
//! the fault, then the checks.

use super::checks::{backup_leftovers, gc_check, short, tally, task_errors};
use super::drive::{Ctx, fault_planes, inject_and_wait};
use super::probe::{Probe, has_condition};
use super::{Cell, CellResult, Check, phase_timeout};
use crate::dataplane::unique;
use crate::workflow::catalog_doc;
use brfed_sim_operator::faults::FAULT_ANNOTATION;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_tidb_cluster};
use kube::api::DynamicObject;
use serde_json::{Value, json};
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
    let ns = unique("flt");
    let key = format!("{ns}-tidb");
    let planes = world.plane_names(3);
    if let Err(e) = seed_tidb_cluster(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&ns, "basic", &key).stores_per_plane(1),
    )
    .await
    {
        r.notes.push(format!("seeding: {e}"));
        return r;
    }
    let name = format!("fb-{}", &ns[ns.len() - 8..]);
    r.execution = name.clone();
    let clusters: Vec<Value> = planes
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": ns}))
        .collect();
    let options = phase_timeout(cell.fault);
    let input = json!({
        "apiVersion": "federation.pingcap.com/v1alpha1",
        "kind": "VolumeBackup",
        "metadata": {"name": name, "namespace": "br", "annotations": {FAULT_ANNOTATION: cell.rule()}},
        "spec": {"clusters": clusters, "template": {
            "br": {"sendCredToTikv": false},
            "s3": {"provider": "aws", "region": "us-west-2", "bucket": world.bucket, "prefix": format!("{ns}/backup")},
            "toolImage": "pingcap/br:v7.5.1",
            "cleanPolicy": "Delete"}},
        "options": options,
    });
    let member = format!("fed-{name}");
    let apis = fault_planes(world, &cell)
        .iter()
        .map(|p| world.backups(p, &ns))
        .collect();
    let probe = Probe::start(apis, member.clone(), at_phase(cell.phase));
    let arn = ctx.flows.start(&ctx.flows.backup_arn, &name, &input).await;
    let inj = inject_and_wait(ctx, &cell, &probe, &arn).await;
    drop(probe);
    r.notes.extend(inj.notes);
    let Some(done) = inj.finished else {
        r.status = "RUNNING".into();
        r.notes.push(format!(
            "execution still RUNNING after {:?}",
            super::drive::RUN
        ));
        r.seconds = started.elapsed().as_secs_f64();
        return r;
    };
    r.status = done.status.clone();
    r.error = done.error.clone();
    r.cause = done.cause.as_deref().map(|c| short(c, 300));
    let errors = task_errors(&ctx.flows, &arn).await;
    if !errors.is_empty() {
        r.notes.push(format!(
            "task errors (retried or caught): {}",
            tally(&errors)
        ));
    }

    let doc =
        super::checks::doc_after_abort(&done.status, || catalog_doc(world, "br", &name)).await;
    let phase = doc
        .as_ref()
        .and_then(|d| d["status"]["phase"].as_str())
        .unwrap_or("(none)")
        .to_string();
    let consistent = match done.status.as_str() {
        "SUCCEEDED" => phase == "Complete",
        _ => phase == "Failed",
    };
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
    for p in &planes {
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
