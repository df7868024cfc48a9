//! One restore cell: its own source cluster and backup (restores of one backup share its
//! `restoremeta`, so cells never share a backup), a fresh recovery-mode target in its own
//! namespace, one `volume-restore` execution with the fault, then the checks.

use super::checks::{catalog_phase, gc_check, members_check, restore_volumes, wait_execution};
use super::drive::{Ctx, RUN, execute};
use super::probe::has_condition;
use super::{Cell, CellResult, Check, Fault, phase_timeout};
use crate::dataplane::unique;
use crate::fixtures::{SeededCluster, VolumeRestore, restore_clusters};
use crate::workflow::catalog_restore_doc;
use brfed_sim_operator::faults::FAULT_ANNOTATION;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
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
    let tc = SeededCluster::seed(world, "flt-src", "src", 1)
        .await
        .map_err(|e| format!("seeding the source: {e}"))?;
    let backup = format!("src-{}", tc.id());
    let input = tc.backup(&backup, &world.bucket).build();
    let arn = ctx
        .flows
        .start(&ctx.flows.backup_arn, &backup, &input)
        .await;
    match wait_execution(&ctx.flows, &arn, RUN).await {
        Some(d) if d.status == "SUCCEEDED" => Ok(Source { backup }),
        other => Err(format!("the source backup did not succeed: {other:?}")),
    }
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
    // A failed warmup job fails a member only under check-wal-only, as in the real operator
    // (tests/sim-operator/CONFORMANCE.md); any other strategy carries on to TiKV.
    let template = match (cell.phase, cell.fault) {
        ("warmup", Fault::Failed) => json!({"warmup": "sync", "warmupStrategy": "check-wal-only"}),
        ("warmup", _) => json!({"warmup": "sync", "warmupStrategy": "hybrid"}),
        _ => json!({}),
    };
    let input = VolumeRestore::from_backup(
        &name,
        "br",
        restore_clusters(&planes, "restored", &ns, "us-west-2"),
        &src.backup,
    )
    .annotations(json!({FAULT_ANNOTATION: cell.rule()}))
    .template(template)
    .options(phase_timeout(cell.fault))
    .build();
    let member_api = |p: &str| world.restores(p, &ns);
    let run = (ctx.flows.restore_arn.as_str(), name.as_str(), &input);
    let at = at_phase(cell.phase);
    let Some((inj, done)) = execute(ctx, &cell, run, member_api, at, &mut r, started).await else {
        return r;
    };
    let doc =
        super::checks::doc_after_abort(&done.status, || catalog_restore_doc(world, "br", &name))
            .await;
    let (phase, consistent) = catalog_phase(&done.status, doc.as_ref());
    let complete = done.status == "SUCCEEDED" && phase == "Complete";
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
    r.members = members_check(&planes, member_api, &format!("fed-{name}"), |p, m| {
        let st = m.data["status"]["phase"]
            .as_str()
            .unwrap_or("-")
            .to_string();
        let terminal = matches!(st.as_str(), "Complete" | "Failed" | "Invalid");
        let listed = reported(p).is_some_and(|l| l["member"].is_string());
        (
            terminal || listed,
            format!("{p} {st}{}", if listed { "·L" } else { "" }),
        )
    })
    .await;
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
    r.finish(inj.produced, started)
}
