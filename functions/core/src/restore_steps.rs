//! The restore steps (reference §4.4), one function per Lambda, generic over the ports, each
//! idempotent like the backup steps.

use crate::backup::{Failure, Verdict};
use crate::catalog::{Catalog, DocMeta, VolumeBackupDoc};
use crate::error::StepError;
use crate::member::MemberRef;
use crate::names;
use crate::ports::{Created, DataPlanes, MemberKind, ObjectStore, Observation, Volumes};
use crate::restore::{
    Leftover, RestoreAwait, RestoreOptions, RestoreRecord, RestoreRequest, RestoreView,
    VolumeRestoreDoc, VolumeRestoreStatus, build_member_restore, judge_restore, pick_data_member,
    rcond, rphase, volumes_settled,
};
use crate::restore_volumes::{self, Judged, Scope, VolumeClaim, member_metas, restoremeta_volumes};
use crate::spec::{FEDERATION_API_VERSION, ObserveMode};
use crate::status::rfc3339;
use crate::steps::{Env, ObserveOutput, Phase, StartInput, now_ms, wait_window};
use chrono::Utc;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// The restore steps' environment: the backup one plus EBS.
pub struct RestoreEnv<'a, D, S, V> {
    /// Data planes, store, catalog bucket, observe budget.
    pub base: Env<'a, D, S>,
    /// EBS.
    pub volumes: &'a V,
}

impl<D: DataPlanes, S: ObjectStore, V: Volumes> RestoreEnv<'_, D, S, V> {
    fn catalog(&self) -> Catalog<'_, S, VolumeRestoreDoc> {
        Catalog::new(self.base.store, self.base.catalog_bucket)
    }
}

/// The small state a restore execution carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreContext {
    /// Name (= execution name).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Execution ARN.
    pub execution: String,
    /// Members in spec order (`backupName` holds the member `Restore`'s name).
    pub members: Vec<MemberRef>,
    /// Options.
    pub options: RestoreOptions,
    /// Overall deadline.
    pub deadline: String,
    /// `template.warmup`.
    pub warmup: String,
    /// `template.warmupStrategy`.
    pub warmup_strategy: String,
}

/// Output of the restore start step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStartOutput {
    /// Context.
    pub restore: RestoreContext,
    /// Phase.
    pub phase: Phase,
    /// null.
    pub failure: Option<Failure>,
    /// null.
    pub observed: Option<ObserveOutput>,
    /// null until restore-data is started.
    pub data_member: Option<usize>,
}

/// Input of the restore mutating steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStepInput {
    /// Context.
    pub restore: RestoreContext,
    /// Failure, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The restore-data member.
    #[serde(default)]
    pub data_member: Option<usize>,
    /// The last observation.
    #[serde(default)]
    pub observed: Option<ObserveOutput>,
}

/// Input of the restore observe step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObserveInput {
    /// Context.
    pub restore: RestoreContext,
    /// What to wait for.
    #[serde(rename = "await")]
    pub awaited: RestoreAwait,
    /// Current phase.
    pub phase: Phase,
    /// The restore-data member, once chosen.
    #[serde(default)]
    pub data_member: Option<usize>,
}

/// Output of the restore finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFinalizeOutput {
    /// The final catalog document, without `brfed.leftovers` (read those from the catalog).
    pub document: VolumeRestoreDoc,
    /// Failure name.
    pub error: Option<String>,
    /// Cause.
    pub cause: Option<String>,
}

/// Fills each cluster's `backup.s3` from the backup `fromBackup` names, read from the catalog:
/// it must be `Complete` and have exactly the restore's clusters as members.
pub async fn resolve_from_backup<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    req: &mut RestoreRequest,
) -> Result<(), StepError> {
    let Some(from) = req.from_backup.clone() else {
        return Ok(());
    };
    let (doc, _) = Catalog::<S, VolumeBackupDoc>::new(env.store, env.catalog_bucket)
        .get(&from.namespace, &from.name)
        .await?
        .ok_or_else(|| {
            StepError::BackupNotRestorable(format!(
                "VolumeBackup {}/{} is not in the catalog",
                from.namespace, from.name
            ))
        })?;
    if doc.status.phase.as_deref() != Some("Complete") {
        return Err(StepError::BackupNotRestorable(format!(
            "VolumeBackup {}/{} is {}, only a Complete backup can be restored",
            from.namespace,
            from.name,
            doc.status.phase.as_deref().unwrap_or("unknown")
        )));
    }
    let backup_clusters: Vec<&str> = doc
        .status
        .backups
        .iter()
        .map(|b| b.k8s_cluster_name.as_str())
        .collect();
    let mut restore_clusters: Vec<&str> = req
        .spec
        .clusters
        .iter()
        .map(|c| c.k8s_cluster_name.as_str())
        .collect();
    let mut sorted = backup_clusters.clone();
    sorted.sort();
    restore_clusters.sort();
    if sorted != restore_clusters {
        return Err(StepError::TopologyMismatch(format!(
            "the restore's clusters ({}) must be the backup's members ({})",
            restore_clusters.join(", "),
            backup_clusters.join(", ")
        )));
    }
    for c in &mut req.spec.clusters {
        let b = doc
            .status
            .backups
            .iter()
            .find(|b| b.k8s_cluster_name == c.k8s_cluster_name)
            .expect("checked above");
        let path = b.backup_path.as_deref().unwrap_or_default();
        let (bucket, prefix) = path
            .strip_prefix("s3://")
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| {
                StepError::BackupNotRestorable(format!(
                    "member {} has no backupPath",
                    b.backup_name
                ))
            })?;
        let mut s3 = doc
            .spec
            .template
            .get("s3")
            .cloned()
            .unwrap_or_else(|| json!({}));
        s3["bucket"] = json!(bucket);
        s3["prefix"] = json!(prefix);
        c.backup.insert("s3".into(), s3);
    }
    Ok(())
}

/// The checks of every restore target [`restore_start`] runs before its first side effect, each
/// problem with its error name: the data plane answers, the TidbCluster exists with `acrossK8s`
/// and `recoveryMode`, the member's `backupmeta` is readable and its TiKV topology matches, no
/// `Restore` of that name belongs to another execution (`execution` `""` for a dry run: any
/// existing one). Reads only; `req` must have every backup location (see
/// [`resolve_from_backup`]).
pub async fn restore_problems<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    req: &RestoreRequest,
    members: &[MemberRef],
    execution: &str,
) -> Vec<(&'static str, String)> {
    let checks = members.iter().enumerate().map(|(i, m)| async move {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if let Err(e) = env.planes.probe(&m.k8s_cluster_name).await {
            out.push((e.name(), e.to_string()));
            return out;
        }
        let at = format!("TidbCluster {}/{} in {}", m.tc_namespace, m.tc_name, m.k8s_cluster_name);
        let tc = match env.planes.get_tidb_cluster(&m.k8s_cluster_name, &m.tc_namespace, &m.tc_name).await {
            Ok(Some(tc)) => tc,
            Ok(None) => {
                out.push(("TidbClusterInvalid", format!("{at} does not exist: create it with spec.recoveryMode: true first")));
                return out;
            }
            Err(e) => {
                out.push((e.name(), e.to_string()));
                return out;
            }
        };
        if tc["spec"]["acrossK8s"].as_bool() != Some(true) {
            out.push(("TidbClusterInvalid", format!("{at}: set spec.acrossK8s: true")));
        }
        if tc["spec"]["recoveryMode"].as_bool() != Some(true) {
            out.push(("TidbClusterInvalid", format!("{at}: set spec.recoveryMode: true (TiKV must start in recovery mode)")));
        }
        let Some((bucket, prefix)) = req.backup_location(i) else {
            out.push(("InvalidSpec", format!("spec.clusters[{i}].backup.s3 is incomplete")));
            return out;
        };
        match env.store.get_json(&bucket, &format!("{prefix}/backupmeta")).await {
            Ok(Some(meta)) => {
                let backup_tc = &meta.value["kubernetes"]["crd_tidb_cluster"]["spec"]["tikv"];
                let (want, have) = (backup_tc["replicas"].as_i64(), tc["spec"]["tikv"]["replicas"].as_i64());
                if want != have {
                    out.push(("TopologyMismatch", format!(
                        "{at} has {} TiKV replicas, the backup of {} has {}: they must be equal",
                        have.unwrap_or(0), m.k8s_cluster_name, want.unwrap_or(0)
                    )));
                }
                let count = |v: &Value| v["storageVolumes"].as_array().map_or(0, Vec::len);
                if count(backup_tc) != count(&tc["spec"]["tikv"]) {
                    out.push(("TopologyMismatch", format!(
                        "{at} has {} TiKV storageVolumes, the backup has {}",
                        count(&tc["spec"]["tikv"]), count(backup_tc)
                    )));
                }
            }
            Ok(None) => out.push(("BackupMetaUnreadable", format!(
                "s3://{bucket}/{prefix}/backupmeta does not exist: spec.clusters[{i}].backup.s3.prefix must point at {}'s backup",
                m.k8s_cluster_name
            ))),
            Err(e) => out.push(("BackupMetaUnreadable", format!("s3://{bucket}/{prefix}/backupmeta: {e}"))),
        }
        match env.planes.get_member(MemberKind::Restore, m).await {
            Ok(Some(obj)) if RestoreView::from_object(&obj).execution.as_deref() != Some(execution) => {
                out.push(("MemberNameConflict", format!("Restore {}/{} already exists in {}", m.tc_namespace, m.backup_name, m.k8s_cluster_name)));
            }
            Ok(_) => {}
            Err(e) => out.push((e.name(), e.to_string())),
        }
        out
    });
    join_all(checks).await.into_iter().flatten().collect()
}

async fn restore_preflight<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    req: &RestoreRequest,
    members: &[MemberRef],
    execution: &str,
) -> Result<(), StepError> {
    let all = restore_problems(&env.base, req, members, execution).await;
    if all.is_empty() {
        return Ok(());
    }
    // the most actionable name first: unreachable (retryable), then by kind
    let message = all
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let first = [
        "DataPlaneUnreachable",
        "MemberNameConflict",
        "TidbClusterInvalid",
        "BackupMetaUnreadable",
        "TopologyMismatch",
    ]
    .into_iter()
    .find(|n| all.iter().any(|(k, _)| k == n))
    .unwrap_or(all[0].0);
    Err(match first {
        "DataPlaneUnreachable" => StepError::DataPlaneUnreachable(message),
        "MemberNameConflict" => StepError::MemberNameConflict(message),
        "TidbClusterInvalid" => StepError::TidbClusterInvalid(message),
        "BackupMetaUnreadable" => StepError::BackupMetaUnreadable(message),
        "TopologyMismatch" => StepError::TopologyMismatch(message),
        "InvalidSpec" => StepError::InvalidSpec(message),
        _ => StepError::DataPlaneRejected(message),
    })
}

/// The member `Restore`s of `req`, in `spec.clusters` order (`backupName` holds each one's name).
pub fn restore_members(req: &RestoreRequest) -> Vec<MemberRef> {
    req.spec
        .clusters
        .iter()
        .map(|c| MemberRef {
            k8s_cluster_name: c.k8s_cluster_name.clone(),
            tc_name: c.tc_name.clone(),
            tc_namespace: c.tc_namespace.clone(),
            backup_name: names::member_backup_name(req.name()),
        })
        .collect()
}

/// Start: validate, resolve the backup, check every target, record the restore, create every
/// member `Restore` in `restore-volume` at once.
pub async fn restore_start<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: StartInput,
) -> Result<RestoreStartOutput, StepError> {
    let mut req = RestoreRequest::from_value(input.input)?;
    req.validate()?;
    let known = env.base.planes.cluster_names();
    let unknown: Vec<&str> = req
        .spec
        .clusters
        .iter()
        .map(|c| c.k8s_cluster_name.as_str())
        .filter(|c| !known.contains(*c))
        .collect();
    if !unknown.is_empty() {
        return Err(StepError::UnknownCluster(format!(
            "not known data planes: {}",
            unknown.join(", ")
        )));
    }
    let execution = input.execution;
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let members = restore_members(&req);
    let resumed = match env.catalog().get(&ns, &name).await? {
        Some((doc, _)) if doc.brfed.execution == execution => {
            req.spec = doc.spec.clone();
            true
        }
        Some((doc, _)) => {
            return Err(StepError::RestoreExists(format!(
                "VolumeRestore {ns}/{name} already exists (execution {})",
                doc.brfed.execution
            )));
        }
        None => false,
    };
    if !resumed {
        resolve_from_backup(&env.base, &mut req).await?;
        if let Err(e) = restore_preflight(env, &req, &members, &execution).await {
            // Another start of this restore won meanwhile (its document, then its members, were
            // created after the read above): name that, not the members it made.
            if matches!(e, StepError::MemberNameConflict(_))
                && let Some((doc, _)) = env.catalog().get(&ns, &name).await?
                && doc.brfed.execution != execution
            {
                return Err(StepError::RestoreExists(format!(
                    "VolumeRestore {ns}/{name} already exists (execution {})",
                    doc.brfed.execution
                )));
            }
            return Err(e);
        }
    }
    let now = Utc::now();
    let mut status = VolumeRestoreStatus::default();
    status.set_condition("Running", None, None, now);
    status.start_step("RestoreVolume", now);
    let doc = VolumeRestoreDoc {
        api_version: FEDERATION_API_VERSION.into(),
        kind: "VolumeRestore".into(),
        metadata: DocMeta {
            meta: req.metadata.clone(),
            creation_timestamp: Some(rfc3339(now)),
        },
        spec: req.spec.clone(),
        status,
        brfed: RestoreRecord {
            execution: execution.clone(),
            options: req.options.clone(),
            members: members.clone(),
            from_backup: req.from_backup.clone(),
            ..Default::default()
        },
    };
    // Two starts of one name can both pass the read above: the conditional create lets one
    // win, and returns the stored document to the other, which must stop here, before any
    // member exists.
    let stored = env.catalog().create(&doc).await?;
    if stored.brfed.execution != execution {
        return Err(StepError::RestoreExists(format!(
            "VolumeRestore {ns}/{name} already exists (execution {})",
            stored.brfed.execution
        )));
    }
    let creations = members.iter().enumerate().map(|(i, m)| {
        let object = build_member_restore(&req, i, m, &execution);
        let execution = &execution;
        async move {
            match env
                .base
                .planes
                .create_member(MemberKind::Restore, &m.k8s_cluster_name, &object)
                .await?
            {
                Created::Created => Ok(()),
                Created::AlreadyExists(o)
                    if RestoreView::from_object(&o).execution.as_deref() == Some(execution) =>
                {
                    Ok(())
                }
                Created::AlreadyExists(_) => Err(StepError::MemberNameConflict(format!(
                    "Restore {} belongs to something else",
                    m.display()
                ))),
            }
        }
    });
    for r in join_all(creations).await {
        r?;
    }
    Ok(RestoreStartOutput {
        restore: RestoreContext {
            name,
            namespace: ns,
            execution,
            members,
            options: req.options.clone(),
            deadline: rfc3339(now + chrono::Duration::seconds(req.options.deadline_seconds as i64)),
            warmup: req.warmup().into(),
            warmup_strategy: req.warmup_strategy().into(),
        },
        phase: Phase {
            name: "RestoreVolume".into(),
            started_at: now_ms(),
        },
        failure: None,
        observed: None,
        data_member: None,
    })
}

/// The longest the failure path waits for the members to settle before the leftovers report
/// (less when `phaseTimeoutSeconds` is less): a member that never settles (a hung job) must not
/// hold the report back for the whole phase timeout. The report notes members still running.
pub const SETTLE_LIMIT_SECONDS: u64 = 900;

/// Observe: watch the member `Restore`s for `await`, recording conditions and step timings.
pub async fn restore_observe<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreObserveInput,
) -> Result<ObserveOutput, StepError> {
    let ctx = &input.restore;
    let phase_timeout = match input.awaited {
        RestoreAwait::Settled => ctx.options.phase_timeout_seconds.min(SETTLE_LIMIT_SECONDS),
        _ => ctx.options.phase_timeout_seconds,
    };
    let (deadline, deadline_name, budget) = wait_window(
        &input.phase,
        phase_timeout,
        &ctx.deadline,
        ctx.options.observe_mode,
        env.base.observe_budget,
    )?;
    let (awaited, dm, async_warmup) = (input.awaited, input.data_member, ctx.warmup == "async");
    let members = &ctx.members;
    let done = move |obs: &[Observation]| {
        judge_restore(awaited, members, obs, dm, async_warmup) != Verdict::Pending
    };
    let obs = env
        .base
        .planes
        .observe_members(MemberKind::Restore, members, budget, &done)
        .await;
    let mut verdict = judge_restore(awaited, members, &obs, dm, async_warmup);
    if verdict == Verdict::Pending && Utc::now() >= deadline {
        verdict = Verdict::Failed(Failure::new(
            deadline_name,
            format!(
                "phase {} waited past its deadline for {awaited:?}",
                input.phase.name
            ),
        ));
    }
    // Members that reached VolumeComplete: prove their volumes this restore's and tag them now,
    // before another restore of the same backup can rewrite its restoremeta.
    let volumes_made = obs.iter().any(|o| match o {
        Observation::Present(v) => RestoreView::from_object(v).has(rcond::VOLUME_COMPLETE),
        _ => false,
    });
    let claims = match volumes_made {
        true => match env.catalog().get(&ctx.namespace, &ctx.name).await? {
            Some((doc, _)) if doc.brfed.execution == ctx.execution => {
                new_claims(env, &doc, &obs).await
            }
            _ => Vec::new(),
        },
        false => Vec::new(),
    };
    let warmup = ctx.warmup.clone();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.status.clone();
            d.status.refresh(members, &obs, &warmup, dm, Utc::now());
            let claimed = record_claims(d, &claims);
            d.status != before || claimed
        })
        .await?;
    let (name, failure) = match verdict {
        Verdict::Met => ("met", None),
        Verdict::Pending => ("pending", None),
        Verdict::Failed(f) => ("failed", Some(f)),
    };
    let wait_seconds = if ctx.options.observe_mode == ObserveMode::Poll && name == "pending" {
        ctx.options.poll_seconds
    } else {
        0
    };
    Ok(ObserveOutput {
        verdict: name.into(),
        failure,
        wait_seconds,
    })
}

/// Restore data: pick the member with the minimum commitTs and move only it to `restore-data`;
/// returns its index (the state machine keeps it as `dataMember`).
pub async fn restore_data<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<usize, StepError> {
    let ctx = &input.restore;
    let obs = env
        .base
        .planes
        .observe_members(
            MemberKind::Restore,
            &ctx.members,
            Duration::ZERO,
            &|_: &[Observation]| true,
        )
        .await;
    let views: Vec<Option<RestoreView>> = obs
        .iter()
        .map(|o| {
            if let Observation::Present(v) = o {
                Some(RestoreView::from_object(v))
            } else {
                None
            }
        })
        .collect();
    // already chosen (a re-run): the member already past restore-volume
    let chosen = views.iter().position(|v| {
        v.as_ref().is_some_and(|v| {
            matches!(
                v.federal_phase.as_deref(),
                Some(rphase::RESTORE_DATA) | Some(rphase::RESTORE_FINISH)
            )
        })
    });
    let index = match chosen {
        Some(i) => i,
        None => {
            let i = pick_data_member(&ctx.members, &obs)
                .map_err(|f| StepError::ResolvedTsInvalid(f.cause))?;
            match &obs[i] {
                Observation::Present(v) if carries(v, &ctx.execution, &ctx.namespace) => {}
                _ => return Err(foreign(&ctx.members[i])),
            }
            env.base
                .planes
                .patch_member_spec(
                    MemberKind::Restore,
                    &ctx.members[i],
                    &json!({"federalVolumeRestorePhase": rphase::RESTORE_DATA}),
                )
                .await?;
            i
        }
    };
    let commit_ts = views[index]
        .as_ref()
        .and_then(|v| v.commit_ts.clone())
        .unwrap_or_default();
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.brfed.data_member == Some(index) {
                return false;
            }
            d.brfed.data_member = Some(index);
            d.status.start_step("RestoreData", now);
            true
        })
        .await?;
    tracing::info!(member = %ctx.members[index].display(), commit_ts, "restore-data");
    Ok(index)
}

/// Restore finish: every member to `restore-finish` (TiKV restarts out of recovery mode).
pub async fn restore_finish<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.restore;
    let work = ctx.members.iter().map(|m| async move {
        let obj = env
            .base
            .planes
            .get_member(MemberKind::Restore, m)
            .await?
            .ok_or_else(|| StepError::MemberMissing(m.display()))?;
        if !carries(&obj, &ctx.execution, &ctx.namespace) {
            return Err(foreign(m));
        }
        if RestoreView::from_object(&obj).federal_phase.as_deref() != Some(rphase::RESTORE_FINISH) {
            env.base
                .planes
                .patch_member_spec(
                    MemberKind::Restore,
                    m,
                    &json!({"federalVolumeRestorePhase": rphase::RESTORE_FINISH}),
                )
                .await?;
        }
        Ok::<_, StepError>(())
    });
    for r in join_all(work).await {
        r?;
    }
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.status.steps.len();
            d.status.start_step("RestartTiKV", now);
            d.status.steps.len() != before
        })
        .await?;
    Ok(Phase {
        name: "RestoreFinish".into(),
        started_at: now_ms(),
    })
}

/// Finalize: `Complete`, or `Failed` with, per data plane, what was left and how to clean it up;
/// with `cleanupOnFailure`, deletes the member `Restore`s and the volumes they created.
pub async fn restore_finalize<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<RestoreFinalizeOutput, StepError> {
    let ctx = &input.restore;
    let obs = env
        .base
        .planes
        .observe_members(
            MemberKind::Restore,
            &ctx.members,
            Duration::ZERO,
            &|_: &[Observation]| true,
        )
        .await;
    let failure = input.failure.clone().or_else(|| {
        match judge_restore(
            RestoreAwait::Complete,
            &ctx.members,
            &obs,
            input.data_member,
            ctx.warmup == "async",
        ) {
            Verdict::Met => None,
            Verdict::Failed(f) => Some(f),
            Verdict::Pending if ctx.warmup_strategy == "check-wal-only" => None,
            Verdict::Pending => Some(Failure::new(
                "TeardownIncomplete",
                "members did not all reach Complete",
            )),
        }
    });
    conclude(env, ctx, &obs, failure, input.data_member).await
}

/// Writes the end of a restore: `Complete`, or `Failed` with the leftovers report (and the
/// opt-in cleanup). Shared by finalize and the abort of a stopped execution.
async fn conclude<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    ctx: &RestoreContext,
    obs: &[Observation],
    failure: Option<Failure>,
    data_member: Option<usize>,
) -> Result<RestoreFinalizeOutput, StepError> {
    let (doc, _) = env
        .catalog()
        .get(&ctx.namespace, &ctx.name)
        .await?
        .ok_or_else(|| StepError::CatalogUnavailable("restore document missing".into()))?;
    let (leftovers, claims) = match &failure {
        Some(_) => leftovers(env, &doc, obs, ctx.options.cleanup_on_failure).await,
        None => (Vec::new(), Vec::new()),
    };
    let now = Utc::now();
    let warmup = ctx.warmup.clone();
    let document = env
        .catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.status.is_terminal() {
                return false;
            }
            d.status
                .refresh(&ctx.members, obs, &warmup, data_member, now);
            d.brfed.leftovers = leftovers.clone();
            record_claims(d, &claims);
            let f = failure.as_ref().map(|f| (f.error.clone(), f.message()));
            d.status
                .finish(f.as_ref().map(|(e, m)| (e.as_str(), m.as_str())), now);
            true
        })
        .await?;
    let (error, cause) = match &failure {
        Some(f) => (
            Some(f.error.clone()),
            Some(format!(
                "VolumeRestore {}/{} failed: {}; what was left and how to clean it up: the catalog document's brfed.leftovers",
                ctx.namespace,
                ctx.name,
                f.message()
            )),
        ),
        None => (None, None),
    };
    // The state carries the document without its leftovers: they list every volume and a command
    // per volume (over Step Functions' 256 KiB at a few thousand volumes); the catalog keeps them
    // and the cause says where.
    let mut document = document;
    document.brfed.leftovers.clear();
    Ok(RestoreFinalizeOutput {
        document,
        error,
        cause,
    })
}

/// What the abort of a restore execution did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreAbortReport {
    /// `failed` (the restore was marked `Failed` with its leftovers) or `nothing-to-do`.
    pub action: String,
    /// Why.
    pub detail: String,
    /// The end written, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<RestoreFinalizeOutput>,
}

/// On a `volume-restore` execution that ended ABORTED, TIMED_OUT or FAILED outside its own
/// failure path (a stop, the state machine's timeout, a step out of retries): waits up to the
/// observe budget for the members to settle ([`volumes_settled`]), then marks the restore
/// `Failed` (`ExecutionAborted`, `ExecutionTimedOut`, `ExecutionFailed`) with the same
/// leftovers report (and opt-in cleanup) as finalize. Nothing to do for a restore that already
/// ended or belongs to another execution. Members are not stopped: the data-plane operator has
/// no way to cancel a running `Restore`; the report says which ones were still running.
pub async fn restore_aborted<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    event: &crate::steps::ExecutionStatusChange,
) -> Result<RestoreAbortReport, StepError> {
    let d = &event.detail;
    let nothing = |detail: String| RestoreAbortReport {
        action: "nothing-to-do".into(),
        detail,
        ended: None,
    };
    let Some(failure_name) = d.failure_name() else {
        return Ok(nothing(format!("status {}", d.status)));
    };
    let Some(req) = d
        .input_value()
        .and_then(|v| RestoreRequest::from_value(v).ok())
    else {
        return Ok(nothing("input is not a restore request".into()));
    };
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let Some((doc, _)) = env.catalog().get(&ns, &name).await? else {
        return Ok(nothing(format!("no catalog document for {ns}/{name}")));
    };
    if doc.brfed.execution != d.execution_arn {
        return Ok(nothing(format!(
            "{ns}/{name} belongs to {}",
            doc.brfed.execution
        )));
    }
    if doc.status.is_terminal() {
        return Ok(nothing(format!("{ns}/{name} already ended")));
    }
    let stored = doc.request();
    let ctx = RestoreContext {
        name: name.clone(),
        namespace: ns.clone(),
        execution: doc.brfed.execution.clone(),
        members: doc.brfed.members.clone(),
        options: doc.brfed.options.clone(),
        deadline: String::new(),
        warmup: stored.warmup().into(),
        warmup_strategy: stored.warmup_strategy().into(),
    };
    let obs = env
        .base
        .planes
        .observe_members(
            MemberKind::Restore,
            &ctx.members,
            env.base.observe_budget,
            &|obs: &[Observation]| obs.iter().all(volumes_settled),
        )
        .await;
    let cause = d.ended();
    let failure = Failure::new(failure_name, cause);
    let ended = conclude(env, &ctx, &obs, Some(failure), doc.brfed.data_member).await?;
    Ok(RestoreAbortReport {
        action: "failed".into(),
        detail: format!("{ns}/{name} marked Failed ({failure_name})"),
        ended: Some(ended),
    })
}

/// Whether a member `Restore` is `doc`'s: it carries the restore's execution and namespace.
fn is_ours(obj: &Value, doc: &VolumeRestoreDoc) -> bool {
    carries(obj, &doc.brfed.execution, &doc.metadata.meta.namespace)
}

/// Whether a member `Restore` carries `execution` and federation namespace `namespace`.
fn carries(obj: &Value, execution: &str, namespace: &str) -> bool {
    let annotations = &obj["metadata"]["annotations"];
    annotations[names::ANNOTATION_EXECUTION].as_str() == Some(execution)
        && annotations[names::ANNOTATION_FEDERATION_NAMESPACE].as_str() == Some(namespace)
}

/// A member `Restore` that is not this restore's: refused by name, never patched.
fn foreign(m: &MemberRef) -> StepError {
    StepError::MemberNameConflict(format!(
        "Restore {} no longer carries this restore's execution: left as it is",
        m.display()
    ))
}

/// Claims the volumes of every member that reached `VolumeComplete` under `doc`'s execution and
/// has no claim yet (`restore_volumes::claim`); an error leaves that member for a later try.
async fn new_claims<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    obs: &[Observation],
) -> Vec<VolumeClaim> {
    let mut out = Vec::new();
    for (i, (m, o)) in doc.brfed.members.iter().zip(obs).enumerate() {
        let Observation::Present(obj) = o else {
            continue;
        };
        let done = RestoreView::from_object(obj).has(rcond::VOLUME_COMPLETE);
        let claimed = doc
            .brfed
            .volume_claims
            .iter()
            .any(|c| c.k8s_cluster_name == m.k8s_cluster_name);
        if !done || claimed || !is_ours(obj, doc) {
            continue;
        }
        match restore_volumes::claim(env.base.store, env.volumes, env.base.catalog_bucket, doc, i)
            .await
        {
            Ok(c) => {
                tracing::info!(member = %m.display(), claimed = c.claimed, refused = ?c.refused, "restored volumes claimed");
                out.push(c);
            }
            // EC2 or S3 busy: a later observation, or the report, tries again.
            Err(e) if e.is_retryable() => {
                tracing::warn!(member = %m.display(), error = %e, "restored volumes not claimed yet");
            }
            // Refused (IAM, a volume gone meanwhile): recorded, not tried again.
            Err(e) => {
                tracing::warn!(member = %m.display(), error = %e, "restored volumes not claimed");
                out.push(VolumeClaim {
                    k8s_cluster_name: m.k8s_cluster_name.clone(),
                    claimed: 0,
                    refused: Some(format!("{}: {e}", e.name())),
                });
            }
        }
    }
    out
}

/// Adds `claims` to `d` (one per data plane); whether anything changed.
fn record_claims(d: &mut VolumeRestoreDoc, claims: &[VolumeClaim]) -> bool {
    let mut changed = false;
    for c in claims {
        if !d
            .brfed
            .volume_claims
            .iter()
            .any(|x| x.k8s_cluster_name == c.k8s_cluster_name)
        {
            d.brfed.volume_claims.push(c.clone());
            changed = true;
        }
    }
    changed
}

/// Sorts member `i`'s volumes into its report: the ones proved its own (`volumes`), the ones
/// that may be (`unconfirmed_volumes`); the scope to judge them again by, when there is one.
async fn member_volumes<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    i: usize,
    l: &mut Leftover,
) -> Option<Scope> {
    let (backupmeta, restoremeta) = member_metas(env.base.store, doc, i).await;
    let listed = restoremeta
        .as_ref()
        .map(restoremeta_volumes)
        .unwrap_or_default();
    let (Some(cluster), Some(backupmeta)) = (doc.spec.clusters.get(i), backupmeta) else {
        l.notes.push(
            "the backup's backupmeta is unreadable, so no volume can be proved this restore's: the volumes of restoremeta are listed unconfirmed".into(),
        );
        l.unconfirmed_volumes = listed;
        return None;
    };
    let scope = Scope::new(
        env.base.catalog_bucket,
        doc,
        cluster,
        crate::delete::snapshot_ids(&backupmeta),
    );
    match env.volumes.volumes_from_snapshots(&scope.snapshots).await {
        Ok(mut found) => {
            found.sort_by(|a, b| a.id.cmp(&b.id));
            let mut why: BTreeMap<String, usize> = BTreeMap::new();
            for v in found {
                match scope.judge(&v) {
                    Judged::Ours => l.volumes.push(v.id),
                    Judged::Unconfirmed(reason) => {
                        *why.entry(reason).or_default() += 1;
                        l.unconfirmed_volumes.push(v.id);
                    }
                    Judged::NotOurs(_) => {}
                }
            }
            for (reason, n) in why {
                l.notes.push(format!("{n} volume(s) unconfirmed: {reason}"));
            }
        }
        Err(e) => {
            l.notes.push(format!(
                "could not ask EC2 which volumes are this restore's ({e}): the volumes of restoremeta are listed unconfirmed"
            ));
            l.unconfirmed_volumes = listed;
        }
    }
    Some(scope)
}

/// The leftovers report (and, when asked, the cleanup) of a failed restore, and the volume
/// claims made on the way (members that reached `VolumeComplete` since the last observation).
async fn leftovers<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    obs: &[Observation],
    cleanup: bool,
) -> (Vec<Leftover>, Vec<VolumeClaim>) {
    let claims = new_claims(env, doc, obs).await;
    let mut all_claims = doc.brfed.volume_claims.clone();
    all_claims.extend(claims.iter().cloned());
    let mut out = Vec::new();
    for (i, (m, o)) in doc.brfed.members.iter().zip(obs).enumerate() {
        let mut l = Leftover {
            k8s_cluster_name: m.k8s_cluster_name.clone(),
            ..Default::default()
        };
        let ctx = format!("--context {} -n {}", m.k8s_cluster_name, m.tc_namespace);
        let name = format!("{}/{}", m.tc_namespace, m.backup_name);
        match o {
            Observation::Present(v) if is_ours(v, doc) => {
                l.member = Some(name);
                l.phase = RestoreView::from_object(v).phase;
            }
            Observation::Present(v) => {
                let execution = RestoreView::from_object(v).execution;
                l.notes.push(format!(
                    "Restore {name} in {} is not this restore's (execution {}): left as it is",
                    m.k8s_cluster_name,
                    execution.as_deref().unwrap_or("none")
                ));
                l.foreign_member = Some(name);
            }
            Observation::Unreachable(e) => {
                l.member = Some(name);
                l.notes
                    .push(format!("data plane unreachable, member state unknown: {e}"));
            }
            Observation::Absent => {}
        }
        if !volumes_settled(o) {
            l.notes.push(format!(
                "the member was still creating volumes when this was written: volumes it made later are not listed (made from {}'s backup snapshots, in {})",
                m.k8s_cluster_name,
                doc.spec.clusters.get(i).map_or("", |c| c.az_name.as_str())
            ));
        }
        if let Some(why) = all_claims
            .iter()
            .find(|c| c.k8s_cluster_name == m.k8s_cluster_name)
            .and_then(|c| c.refused.as_ref())
        {
            l.notes.push(format!(
                "the member's volumes could not be proved this restore's at VolumeComplete: {why}"
            ));
        }
        let scope = member_volumes(env, doc, i, &mut l).await;
        if let Ok(Some(tc)) = env
            .base
            .planes
            .get_tidb_cluster(&m.k8s_cluster_name, &m.tc_namespace, &m.tc_name)
            .await
        {
            l.tidb_cluster_in_recovery_mode = tc["spec"]["recoveryMode"].as_bool() == Some(true);
        }
        if cleanup {
            clean_up(env, doc, m, scope.as_ref(), &mut l).await;
        }
        if l.member.is_some() {
            l.cleanup_commands
                .push(format!("kubectl {ctx} delete restore {}", m.backup_name));
        }
        for v in &l.volumes {
            l.cleanup_commands
                .push(format!("aws ec2 delete-volume --volume-id {v}"));
        }
        if !l.unconfirmed_volumes.is_empty() {
            l.cleanup_commands.push(format!(
                "aws ec2 describe-volumes --volume-ids {}  # check whose they are before deleting them",
                l.unconfirmed_volumes.join(" ")
            ));
        }
        if l.tidb_cluster_in_recovery_mode {
            l.cleanup_commands.push(format!(
                "kubectl {ctx} delete tidbcluster {}  # and its TiKV PVCs; re-create it with spec.recoveryMode: true before retrying",
                m.tc_name
            ));
        }
        out.push(l);
    }
    (out, claims)
}

/// The opt-in cleanup of one member: its `Restore` and its volumes, each read again right
/// before it is deleted and deleted only when it is still this restore's. A volume that no
/// longer passes is moved to `unconfirmed_volumes`.
async fn clean_up<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    m: &MemberRef,
    scope: Option<&Scope>,
    l: &mut Leftover,
) {
    if l.member.is_some() {
        let planes = &env.base.planes;
        let did = match planes.get_member(MemberKind::Restore, m).await {
            Ok(Some(obj)) if is_ours(&obj, doc) => {
                match planes.delete_member(MemberKind::Restore, m).await {
                    Ok(_) => format!("deleted Restore {}", m.display()),
                    Err(e) => format!("could not delete Restore {}: {e}", m.display()),
                }
            }
            Ok(Some(_)) => {
                l.foreign_member = l.member.take();
                format!(
                    "left Restore {}: it is no longer this restore's",
                    m.display()
                )
            }
            Ok(None) => format!("Restore {} was already gone", m.display()),
            Err(e) => format!(
                "could not read Restore {} before deleting it: {e}",
                m.display()
            ),
        };
        l.cleaned.push(did);
    }
    let Some(scope) = scope else {
        return;
    };
    let mut kept = Vec::new();
    for v in std::mem::take(&mut l.volumes) {
        let did = match env.volumes.describe_volume(&v).await {
            Ok(None) => format!("volume {v} was already gone"),
            Ok(Some(facts)) => match scope.judge(&facts) {
                Judged::Ours => match env.volumes.delete_volume(&v).await {
                    Ok(true) => format!("deleted volume {v}"),
                    Ok(false) => format!("volume {v} was already gone"),
                    Err(e) => format!("could not delete volume {v}: {e}"),
                },
                Judged::Unconfirmed(why) | Judged::NotOurs(why) => {
                    l.unconfirmed_volumes.push(v.clone());
                    l.cleaned.push(format!("left volume {v}: {why}"));
                    continue;
                }
            },
            Err(e) => format!("could not read volume {v} before deleting it: {e}"),
        };
        l.cleaned.push(did);
        kept.push(v);
    }
    l.volumes = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> MemberRef {
        MemberRef {
            k8s_cluster_name: "dp1".into(),
            tc_name: "basic".into(),
            tc_namespace: "tidb".into(),
            backup_name: "fed-r1".into(),
        }
    }

    fn restore_obj(phase: &str, conditions: &[&str]) -> Observation {
        let conds: Vec<Value> = conditions
            .iter()
            .map(|t| json!({"type": t, "status": "True"}))
            .collect();
        Observation::Present(json!({
            "metadata": {"name": "fed-r1"},
            "status": {"phase": phase, "conditions": conds}
        }))
    }

    #[test]
    fn a_member_settles_once_its_volumes_are_known_or_it_has_ended() {
        assert!(!volumes_settled(&restore_obj("Running", &[])));
        assert!(!volumes_settled(&Observation::Unreachable("down".into())));
        assert!(volumes_settled(&Observation::Absent));
        assert!(volumes_settled(&restore_obj(
            "TikvComplete",
            &[rcond::VOLUME_COMPLETE, rcond::TIKV_COMPLETE]
        )));
        assert!(volumes_settled(&restore_obj("Failed", &[rcond::FAILED])));
        assert!(volumes_settled(&restore_obj("Invalid", &[rcond::INVALID])));
        assert!(volumes_settled(&restore_obj("CleanVolumeComplete", &[])));
    }

    #[test]
    fn settling_waits_for_a_running_member_and_ignores_failed_ones() {
        let members = vec![member(), member(), member()];
        let failed = restore_obj("Failed", &[rcond::FAILED]);
        let running = restore_obj("Running", &[]);
        let done = restore_obj("VolumeComplete", &[rcond::VOLUME_COMPLETE]);
        let judge =
            |obs: &[Observation]| judge_restore(RestoreAwait::Settled, &members, obs, None, false);
        assert_eq!(
            judge(&[failed.clone(), running, done.clone()]),
            Verdict::Pending
        );
        assert_eq!(
            judge(&[failed.clone(), done.clone(), Observation::Absent]),
            Verdict::Met
        );
        // Any other wait ends at the failure.
        assert!(matches!(
            judge_restore(
                RestoreAwait::VolumesRestored,
                &members,
                &[failed, done.clone(), done],
                None,
                false
            ),
            Verdict::Failed(_)
        ));
    }
}
