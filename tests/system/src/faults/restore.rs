//! One restore cell: its own source cluster and backup (restores of one backup share its
//! `restoremeta`, so cells never share a backup), a fresh recovery-mode target in its own
//! namespace, one `volume-restore` execution with the fault, then the checks.

use super::checks::{gc_check, restore_volumes, short, tally, task_errors, wait_execution};
use super::drive::{Ctx, RUN, fault_planes, inject_and_wait};
use super::probe::{Probe, has_condition};
use super::{Cell, CellResult, Check, phase_timeout};
use crate::dataplane::unique;
use crate::workflow::catalog_restore_doc;
use brfed_sim_operator::faults::FAULT_ANNOTATION;
use brfed_sim_operator::seed::{
    TidbClusterSeed, default_az, seed_restore_target, seed_tidb_cluster,
};
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The backup a restore cell restores (taken without faults).
#[derive(Debug, Clone)]
pub struct Source {
    /// Catalog name of the backup (namespace `br`).
    pub backup: String,
}

/// Seeds a source cluster and backs it up.
pub async fn source(ctx: &Ctx) -> Result<Source, String> {
    let world = &ctx.world;
    let ns = unique("flt-src");
    let planes = world.plane_names(3);
    seed_tidb_cluster(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&ns, "basic", format!("{ns}-src")).stores_per_plane(1),
    )
    .await
    .map_err(|e| format!("seeding the source: {e}"))?;
    let backup = format!("src-{}", &ns[ns.len() - 8..]);
    let clusters: Vec<Value> = planes
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": ns}))
        .collect();
    let input = json!({"metadata": {"name": backup, "namespace": "br"},
        "spec": {"clusters": clusters, "template": {"s3": {"provider": "aws", "bucket": world.bucket, "prefix": format!("{ns}/b")}}}});
    let arn = ctx
        .flows
        .start(&ctx.flows.backup_arn, &backup, &input)
        .await;
    match wait_execution(&ctx.flows, &arn, RUN).await {
        Some(d) if d.status == "SUCCEEDED" => Ok(Source { backup }),
        other => Err(format!("the source backup did not succeed: {other:?}")),
    }
}

fn restore_arn() -> String {
    std::env::var("BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN")
        .unwrap_or_else(|_| crate::workflow::state_machine("volume-restore"))
}

fn at_phase(phase: &str) -> fn(&DynamicObject) -> bool {
    fn spec_phase(o: &DynamicObject) -> &str {
        o.data["spec"]["federalVolumeRestorePhase"]
            .as_str()
            .unwrap_or_default()
    }
    match phase {
        "restore-volume" => |_| true,
        "warmup" => |o| has_condition(o, "WarmUpStarted"),
        "restore-data" => |o| spec_phase(o) == "restore-data",
        _ => |o| spec_phase(o) == "restore-finish",
    }
}

/// Runs one restore cell, on `src` when given (a source prepared beforehand), else on a new one.
pub async fn run(ctx: &Ctx, cell: Cell, src: Option<Result<Source, String>>) -> CellResult {
    let started = Instant::now();
    let mut r = CellResult::of(&cell);
    let world = &ctx.world;
    let src = match src {
        Some(s) => s,
        None => source(ctx).await,
    };
    let src = match src {
        Ok(s) => s,
        Err(e) => {
            r.notes.push(e);
            return r;
        }
    };
    let ns = unique("flr");
    let key = format!("{ns}-dst");
    let planes = world.plane_names(3);
    if let Err(e) = seed_restore_target(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&ns, "restored", &key).stores_per_plane(1),
    )
    .await
    {
        r.notes.push(format!("seeding the target: {e}"));
        return r;
    }
    let name = format!("fr-{}", &ns[ns.len() - 8..]);
    r.execution = name.clone();
    let clusters: Vec<Value> = planes
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "restored", "tcNamespace": ns, "azName": default_az("us-west-2", p, 0)}))
        .collect();
    let template = if cell.phase == "warmup" {
        json!({"warmup": "sync", "warmupStrategy": "hybrid"})
    } else {
        json!({})
    };
    let options = phase_timeout(cell.fault);
    let input = json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
        "metadata": {"name": name, "namespace": "br", "annotations": {FAULT_ANNOTATION: cell.rule()}},
        "spec": {"clusters": clusters, "template": template},
        "fromBackup": {"namespace": "br", "name": src.backup},
        "options": options});
    let member = format!("fed-{name}");
    let apis = fault_planes(world, &cell)
        .iter()
        .map(|p| world.restores(p, &ns))
        .collect();
    let probe = Probe::start(apis, member.clone(), at_phase(cell.phase));
    let arn = ctx.flows.start(&restore_arn(), &name, &input).await;
    let inj = inject_and_wait(ctx, &cell, &probe, &arn).await;
    drop(probe);
    r.notes.extend(inj.notes);
    let Some(done) = inj.finished else {
        r.status = "RUNNING".into();
        r.notes
            .push(format!("execution still RUNNING after {RUN:?}"));
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
        super::checks::doc_after_abort(&done.status, || catalog_restore_doc(world, "br", &name))
            .await;
    let phase = doc
        .as_ref()
        .and_then(|d| d["status"]["phase"].as_str())
        .unwrap_or("(none)")
        .to_string();
    let complete = done.status == "SUCCEEDED" && phase == "Complete";
    let consistent = match done.status.as_str() {
        "SUCCEEDED" => phase == "Complete",
        _ => phase == "Failed",
    };
    r.catalog = Check::new(consistent, phase.clone());
    if !consistent && done.status == "ABORTED" {
        r.notes.push(format!(
            "90 s after StopExecution the catalog document is still {phase}: restore-abort did not finish it"
        ));
    }

    // a restore never pauses GC: the target's PD must never have been paused
    let (gc, after) = gc_check(world, &key, inj.fault_at, Duration::ZERO).await;
    r.gc = gc;
    r.gc_after_fault_ms = after;

    let leftovers: Vec<Value> = doc
        .as_ref()
        .and_then(|d| d["brfed"]["leftovers"].as_array().cloned())
        .unwrap_or_default();
    let reported = |plane: &str| {
        leftovers
            .iter()
            .find(|l| l["k8sClusterName"] == plane)
            .cloned()
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for p in &planes {
        match world.restores(p, &ns).get_opt(&member).await {
            Ok(None) => parts.push(format!("{p} gone")),
            Ok(Some(m)) => {
                let st = m.data["status"]["phase"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string();
                let terminal = matches!(st.as_str(), "Complete" | "Failed" | "Invalid");
                let listed = reported(p).is_some_and(|l| l["member"].is_string());
                ok &= terminal || listed;
                parts.push(format!("{p} {st}{}", if listed { "·L" } else { "" }));
            }
            Err(e) => {
                ok = false;
                parts.push(format!("{p}:? ({e})"));
            }
        }
    }
    r.members = Check::new(ok, parts.join(" "));
    r.leftovers = restore_volumes(world, &key, complete, doc.as_ref()).await;

    let mut rec = Vec::new();
    let mut rec_ok = true;
    for p in &planes {
        if let Ok(tc) = world.tidbclusters(p, &ns).get("restored").await
            && tc.data["spec"]["recoveryMode"] == true
        {
            let listed = reported(p).is_some_and(|l| l["tidbClusterInRecoveryMode"] == true);
            rec_ok &= !complete && listed;
            rec.push(format!("{p}{}", if listed { "" } else { "(NOT reported)" }));
        }
    }
    r.recovery = Some(Check::new(
        rec_ok,
        if rec.is_empty() {
            "no TC in recovery".to_string()
        } else {
            format!("TC recovery {}", rec.join(" "))
        },
    ));
    if !inj.produced {
        r.notes
            .push("the fault was not produced: the cell does not count as clean".into());
        r.catalog.ok = false;
    }
    r.judge();
    r.seconds = started.elapsed().as_secs_f64();
    r
}
