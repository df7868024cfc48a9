//! The data-plane `Backup` contract for `backupMode: volume-snapshot` (reference §3.1, §4.2 step 5).
//!
//! One pass = at most one status write. Order of a pass: deletion, finalizer, terminal states,
//! validation, then by `federalVolumeBackupPhase`: queued job reports, resume request, init-job
//! health, start of the phase's job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::DynamicObject;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::faults::{FaultOutcome, FaultPhase, FaultPlan};
use crate::jobs::{CondReport, Job, JobEnd, ObjKey, Report, Stop, sleep_or_stop, wait_stop};
use crate::kubeobj::{backup_resource, str_at};
use crate::member::{
    Drained, Member, SIMULATED_FAULT, Storage, pd_key, readable_size, scheduled, tc_bool, tc_json,
    tc_store_count, tc_tikv_replicas,
};
use crate::meta::{
    self, BACKUPMETA, CLUSTERMETA, CloudSnapBackup, SnapshotsTaken, TAG_CLUSTER, TAG_PLANE,
};
use crate::sim::{Next, Sim, SimError};

/// Finalizer guarding the data of `Delete`/`OnFailure` backups.
pub const BACKUP_FINALIZER: &str = "tidb.pingcap.com/backup-protection";
/// Tag added to every snapshot, naming the member that took it.
pub const TAG_BACKUP: &str = "sim.brfed.dev/backup";
/// Prefix of the simulator's own bookkeeping tags.
pub const SIM_TAG_PREFIX: &str = "sim.brfed.dev/";
/// The one tag BR puts on a snapshot it takes.
pub const BR_SNAPSHOT_TAG: (&str, &str) = ("TiDBCluster-BR", "old");

/// Backup condition types (with the ones a Restore writes).
pub use crate::member::cond;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CleanPolicy {
    Retain,
    OnFailure,
    Delete,
}

fn clean_policy(obj: &DynamicObject) -> CleanPolicy {
    match str_at(obj, "/spec/cleanPolicy") {
        Some("Delete") => CleanPolicy::Delete,
        Some("OnFailure") => CleanPolicy::OnFailure,
        _ => CleanPolicy::Retain,
    }
}

fn has_finalizer(obj: &DynamicObject) -> bool {
    obj.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == BACKUP_FINALIZER))
}

/// One reconcile pass of a `Backup`.
pub async fn reconcile(sim: &Arc<Sim>, key: &ObjKey) -> Result<Next, SimError> {
    let Some(m) = Member::load(sim, key, &backup_resource(), "backupMode").await? else {
        return Ok(Next::Done);
    };

    if m.obj.metadata.deletion_timestamp.is_some() {
        return deletion(&m).await;
    }
    if clean_policy(&m.obj) != CleanPolicy::Retain && !has_finalizer(&m.obj) {
        m.write(|o| {
            let f = o.metadata.finalizers.get_or_insert_with(Vec::new);
            if f.iter().any(|x| x == BACKUP_FINALIZER) {
                return false;
            }
            f.push(BACKUP_FINALIZER.to_string());
            true
        })
        .await?;
        return Ok(Next::Soon);
    }

    let failed = m.has(cond::FAILED) || m.has(cond::VOLUME_FAILED);
    if failed {
        // a failed member must not keep GC and schedulers paused
        stop_init_job(&m, Stop::Graceful);
    }
    if m.has(cond::COMPLETE) || m.has(cond::FAILED) || m.has(cond::INVALID) {
        return Ok(Next::Done);
    }

    let tc = m.tidb_cluster().await?;
    if let Err(why) = validate(&m, tc.as_ref()) {
        return m.invalid_spec(why).await;
    }
    let tc = tc.expect("validated");
    let faults = m.faults(Some(&tc));

    // reports queued by the jobs come first, in order
    let (init, exec) = m.state(|s| (s.init.clone(), s.exec.clone()));
    for job in [&init, &exec].into_iter().flatten() {
        match m.drain_conditions(job).await? {
            Drained::Empty => {}
            Drained::Wrote => return Ok(Next::Soon),
            Drained::Special(Report::CheckBackupMeta { bucket, key }) => {
                if m.sim.cloud.exists(&bucket, &key).await? {
                    m.condition(
                        cond::SNAPSHOTS_CREATED,
                        "",
                        format!("s3://{bucket}/{key} exists"),
                    )
                    .await?;
                    job.pop_report();
                    return Ok(Next::Soon);
                }
                return Ok(Next::After(Duration::from_millis(200)));
            }
            Drained::Special(other) => {
                tracing::warn!(?other, "unexpected report from a backup job");
                job.pop_report();
                return Ok(Next::Soon);
            }
        }
    }

    match str_at(&m.obj, "/spec/federalVolumeBackupPhase") {
        Some("initialize") | Some("execute") => {
            if let Some(next) = resume(&m, &faults).await? {
                return Ok(next);
            }
            if let Some(next) = watch_init_job(&m).await? {
                return Ok(next);
            }
            if str_at(&m.obj, "/spec/federalVolumeBackupPhase") == Some("initialize") {
                initialize(&m, &tc, m.plan(&faults, FaultPhase::Initialize)).await
            } else {
                execute(&m, &tc, &faults).await
            }
        }
        Some("teardown") => teardown(&m, m.plan(&faults, FaultPhase::Teardown)).await,
        _ => Ok(Next::Done),
    }
}

fn validate(m: &Member<'_>, tc: Option<&DynamicObject>) -> Result<(), String> {
    let Some((tc_ns, tc_name)) = m.tc_ref() else {
        return Err("spec.br.cluster is not set".into());
    };
    if m.storage().is_none() {
        return Err("spec.s3.bucket is not set".into());
    }
    let Some(tc) = tc else {
        return Err(format!("TidbCluster {tc_ns}/{tc_name} not found"));
    };
    if !tc_bool(tc, "/spec/acrossK8s") {
        return Err(format!(
            "TidbCluster {tc_ns}/{tc_name} is not acrossK8s: volume-snapshot backup needs spec.acrossK8s: true"
        ));
    }
    if tc_store_count(tc) == 0 {
        return Err(format!(
            "TidbCluster {tc_ns}/{tc_name} has no TiKV stores in status.tikv.stores"
        ));
    }
    if tc_tikv_replicas(tc) <= 0 {
        return Err(format!(
            "TidbCluster {tc_ns}/{tc_name} has spec.tikv.replicas <= 0"
        ));
    }
    Ok(())
}

fn stop_init_job(m: &Member<'_>, how: Stop) {
    m.state(|s| {
        if let Some(init) = s.init.as_ref().filter(|j| j.ended().is_none()) {
            init.request_stop(how);
            s.init_stopped_by_operator = true;
        }
    });
}

/// `resumeGcSchedule: true` on the init member whose snapshots exist: delete the init job.
async fn resume(m: &Member<'_>, faults: &crate::faults::Faults) -> Result<Option<Next>, SimError> {
    let requested = m
        .obj
        .data
        .pointer("/spec/resumeGcSchedule")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    let init = m.state(|s| s.init.clone());
    let is_init_member = init.is_some() || m.has(cond::INITIALIZED);
    if !requested
        || !is_init_member
        || !m.has(cond::SNAPSHOTS_CREATED)
        || m.has(cond::INITIALIZE_COMPLETE)
        || m.has(cond::INITIALIZE_FAILED)
    {
        return Ok(None);
    }
    let plan = m.plan(faults, FaultPhase::Resume);
    match plan.outcome {
        Some(FaultOutcome::Invalid) => {
            return m.invalid_by_fault("resume").await.map(Some);
        }
        Some(FaultOutcome::Hang) => return Ok(Some(Next::Poll)),
        Some(FaultOutcome::Fail) => {
            stop_init_job(m, Stop::Graceful);
            return m
                .faulted(
                    cond::INITIALIZE_FAILED,
                    "simulated: resuming GC and schedulers failed",
                )
                .await
                .map(Some);
        }
        None => {}
    }
    if let Some(left) = m.delay_left("resume", plan.delay) {
        return Ok(Some(Next::After(left)));
    }
    let how = if plan.crash_init_job.is_some() {
        Stop::Crash
    } else {
        Stop::Graceful
    };
    stop_init_job(m, how);
    if let Some(init) = &init {
        init.wait_ended(Duration::from_secs(10)).await;
    }
    m.condition(
        cond::INITIALIZE_COMPLETE,
        "",
        "init job deleted: GC and schedulers resumed",
    )
    .await
    .map(Some)
}

/// While initializing or initialized (and not yet resumed), the init job must stay alive.
async fn watch_init_job(m: &Member<'_>) -> Result<Option<Next>, SimError> {
    if m.has(cond::INITIALIZE_COMPLETE) || m.has(cond::INITIALIZE_FAILED) {
        return Ok(None);
    }
    let (init, by_operator) = m.state(|s| (s.init.clone(), s.init_stopped_by_operator));
    let reason = match &init {
        Some(job) => match job.ended() {
            None | Some(JobEnd::Failed) => return Ok(None),
            Some(_) if by_operator => return Ok(None),
            Some(JobEnd::Deleted | JobEnd::Aborted) => "InitializeJobDeleted",
            Some(_) => "InitializeJobCompletedOrFailed",
        },
        None => {
            let started = m.has(cond::INITIALIZED)
                || (str_at(&m.obj, "/spec/federalVolumeBackupPhase") == Some("initialize")
                    && m.has(cond::SCHEDULED));
            if !started {
                return Ok(None);
            }
            "InitializeJobDeleted"
        }
    };
    let end = init.as_ref().and_then(|j| j.ended());
    let message = match end {
        Some(JobEnd::DeadlineExceeded) => "init job exceeded volumeBackupInitJobMaxActiveSeconds before all snapshots were created and resume was requested".to_string(),
        Some(JobEnd::Crashed) => "init job failed before all snapshots were created and resume was requested".to_string(),
        Some(other) => format!("init job ended ({other:?}) before all snapshots were created and resume was requested"),
        None => "init job not found before all snapshots were created and resume was requested".to_string(),
    };
    m.condition(cond::INITIALIZE_FAILED, reason, message)
        .await
        .map(Some)
}

/// Phase `initialize`: start the init job.
async fn initialize(m: &Member<'_>, tc: &DynamicObject, plan: FaultPlan) -> Result<Next, SimError> {
    if m.state(|s| s.init.is_some()) || m.has(cond::INITIALIZED) || m.has(cond::INITIALIZE_FAILED) {
        return Ok(Next::Poll);
    }
    if plan.outcome == Some(FaultOutcome::Invalid) {
        return m.invalid_by_fault("initialize").await.map(|_| Next::Done);
    }
    let max_active = m
        .obj
        .data
        .pointer("/spec/volumeBackupInitJobMaxActiveSeconds")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(600);
    let args = InitArgs {
        pd_key: pd_key(tc),
        holder: m.key.holder(),
        deadline: Instant::now() + Duration::from_secs(max_active),
        ttl: m.sim.cfg.pd_lease_ttl,
        step: m.sim.cfg.step_delay,
        plan,
    };
    let sim = m.sim.clone();
    m.start_job(
        "init",
        format!("backup-{}-init", m.key.name),
        vec![scheduled("init").into()],
        move |job, stop| run_init_job(sim, job, stop, args),
        |s| &mut s.init,
    );
    Ok(Next::Soon)
}

struct InitArgs {
    pd_key: String,
    holder: String,
    deadline: Instant,
    ttl: Duration,
    step: Duration,
    plan: FaultPlan,
}

/// The init job: `br operator pause-gc-and-schedulers`, alive until deleted, renewing its lease.
async fn run_init_job(
    sim: Arc<Sim>,
    job: Arc<Job>,
    mut stop: watch::Receiver<Option<Stop>>,
    a: InitArgs,
) -> JobEnd {
    // until the pause is taken, a stop or the deadline simply ends the job
    let before_pause = async {
        if let Some(s) = sleep_or_stop(&mut stop, a.step).await {
            return Err(s);
        }
        job.report(CondReport::new(cond::RUNNING).message("pausing GC and schedulers"));
        if let Some(s) = sleep_or_stop(&mut stop, a.plan.delay).await {
            return Err(s);
        }
        match a.plan.outcome {
            Some(FaultOutcome::Fail) => Ok(false),
            Some(FaultOutcome::Hang) => Err(wait_stop(&mut stop).await),
            _ => Ok(true),
        }
    };
    let proceed = tokio::select! {
        r = before_pause => r,
        () = tokio::time::sleep_until(a.deadline) => return JobEnd::DeadlineExceeded,
    };
    match proceed {
        Err(Stop::Graceful) => return JobEnd::Deleted,
        Err(Stop::Crash) => return JobEnd::Crashed,
        Ok(false) => {
            job.report(
                CondReport::new(cond::INITIALIZE_FAILED)
                    .reason(SIMULATED_FAULT)
                    .message("simulated: pausing GC and schedulers failed"),
            );
            return JobEnd::Failed;
        }
        Ok(true) => {}
    }

    sim.pd.pause(&a.pd_key, &a.holder, a.ttl);
    job.report(CondReport::new(cond::INITIALIZED).message("GC is paused; Schedulers are paused"));
    let crash_at = a.plan.crash_init_job.map(|d| Instant::now() + d);
    let renew_every = (a.ttl / 3).max(Duration::from_millis(10));
    let mut next_renew = Instant::now() + renew_every;
    loop {
        tokio::select! {
            s = wait_stop(&mut stop) => match s {
                Stop::Graceful => {
                    sim.pd.resume(&a.pd_key, &a.holder, "init job deleted: graceful stop");
                    return JobEnd::Deleted;
                }
                Stop::Crash => return JobEnd::Crashed,
            },
            () = tokio::time::sleep_until(next_renew) => {
                sim.pd.renew(&a.pd_key, &a.holder, a.ttl);
                next_renew = Instant::now() + renew_every;
            }
            () = tokio::time::sleep_until(a.deadline) => {
                sim.pd.resume(&a.pd_key, &a.holder, "init job killed at activeDeadlineSeconds");
                return JobEnd::DeadlineExceeded;
            }
            () = async { tokio::time::sleep_until(crash_at.unwrap_or(a.deadline)).await }, if crash_at.is_some() => {
                tracing::info!(holder = %a.holder, "simulated: init job crashed without resuming");
                return JobEnd::Crashed;
            }
        }
    }
}

/// Phase `execute`: write the manifests and `clustermeta`, then start the execute job.
async fn execute(
    m: &Member<'_>,
    tc: &DynamicObject,
    faults: &crate::faults::Faults,
) -> Result<Next, SimError> {
    if m.state(|s| s.exec.is_some()) {
        return Ok(Next::Poll);
    }
    if m.has(cond::PREPARE) || m.has(cond::SNAPSHOTS_CREATED) {
        // the execute job was started by an earlier run of the simulator and is gone
        return m
            .condition(
                cond::VOLUME_FAILED,
                "AlreadyFailed",
                "execute job not found (simulator restarted)",
            )
            .await;
    }
    let plan = m.plan(faults, FaultPhase::Execute);
    if plan.outcome == Some(FaultOutcome::Invalid) {
        return m.invalid_by_fault("execute").await.map(|_| Next::Done);
    }
    let storage = m.storage().expect("validated");
    let cloud = &m.sim.cloud;
    let clustermeta_key = storage.key(CLUSTERMETA);
    if cloud.exists(&storage.bucket, &clustermeta_key).await? {
        return m
            .condition(
                cond::FAILED,
                "FileExistedInExternalStorage",
                format!("s3://{}/{clustermeta_key} already exists: the backup storage is already in use", storage.bucket),
            )
            .await
            .map(|_| Next::Done);
    }
    let cluster_key = pd_key(tc);
    let listed = match meta::tikv_volume_ids(tc.metadata.annotations.as_ref()) {
        Some(ids) => cloud.volumes_by_id(&ids).await,
        None => {
            cloud
                .volumes_tagged(&[(TAG_CLUSTER, &cluster_key), (TAG_PLANE, &m.key.plane)])
                .await
        }
    };
    let volumes = match listed {
        Ok(v) => v,
        Err(e) => return m.retry_failed("GetVolumesFailed", e.to_string()).await,
    };
    let tc_value = tc_json(tc);
    let cluster = match meta::cluster_meta(&tc_value, &volumes) {
        Ok(c) => c,
        Err(why) => return m.retry_failed("PrepareClusterMetaFailed", why).await,
    };
    let tc_ns = tc.metadata.namespace.clone().unwrap_or_default();
    let tc_name = tc.metadata.name.clone().unwrap_or_default();
    let manifest_key = storage.key(&format!("manifests/{tc_ns}/TidbCluster/{tc_name}.yaml"));
    if !cloud.exists(&storage.bucket, &manifest_key).await? {
        let yaml = serde_saphyr::to_string(&meta::strip_object(&tc_value)).unwrap_or_default();
        cloud
            .put(&storage.bucket, &manifest_key, yaml.into_bytes())
            .await?;
    }
    let body = serde_json::to_vec(&cluster).expect("clustermeta serializes");
    cloud.put(&storage.bucket, &clustermeta_key, body).await?;

    if let Some(after) = plan.crash_init_job {
        crash_init_job_later(m, after);
    }
    let calc_size = matches!(
        str_at(&m.obj, "/spec/calcSizeLevel").unwrap_or("all"),
        "all" | "full" | "incremental"
    );
    let args = ExecArgs {
        storage: storage.clone(),
        holder: m.key.holder(),
        version: tc
            .data
            .pointer("/spec/version")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("v7.5.1")
            .to_string(),
        calc_size,
        plan,
        snap_plan: m.plan(faults, FaultPhase::SnapshotsCreated),
        init: m.state(|s| s.init.clone()),
    };
    let sim = m.sim.clone();
    let first = scheduled("execute").field("backupPath", json!(storage.path()));
    m.start_job(
        "execute",
        format!("backup-{}", m.key.name),
        vec![first.into()],
        move |job, _stop| run_exec_job(sim, job, args),
        |s| &mut s.exec,
    );
    Ok(Next::Soon)
}

/// Kills the member's own init job (no resume) after `after`, once.
fn crash_init_job_later(m: &Member<'_>, after: Duration) {
    let init = m.state(|s| {
        if s.fired.insert("crash-init-job") {
            s.init.clone()
        } else {
            None
        }
    });
    match init {
        Some(init) => crash_later(init, after),
        None => {
            tracing::warn!(holder = %m.key.holder(), "crash-init-job: this member has no init job")
        }
    }
}

fn crash_later(init: Arc<Job>, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        init.request_stop(Stop::Crash);
    });
}

struct ExecArgs {
    storage: Storage,
    holder: String,
    version: String,
    calc_size: bool,
    plan: FaultPlan,
    snap_plan: FaultPlan,
    init: Option<Arc<Job>>,
}

fn volume_failed(message: impl Into<String>) -> CondReport {
    CondReport::new(cond::VOLUME_FAILED)
        .reason("BackupFailed")
        .message(message)
}

/// The execute job: `br backup full --type=aws-ebs`.
async fn run_exec_job(sim: Arc<Sim>, job: Arc<Job>, a: ExecArgs) -> JobEnd {
    let step = sim.cfg.step_delay;
    tokio::time::sleep(step).await;
    job.report(CondReport::new(cond::PREPARE));
    tokio::time::sleep(step).await;
    job.report(CondReport::new(cond::RUNNING));
    tokio::time::sleep(a.plan.delay).await;
    match a.plan.outcome {
        Some(FaultOutcome::Fail) => {
            job.report(
                volume_failed("simulated: BR failed before creating snapshots")
                    .reason(SIMULATED_FAULT),
            );
            return JobEnd::Failed;
        }
        Some(FaultOutcome::Hang) => std::future::pending::<()>().await,
        _ => {}
    }
    let cloud = &sim.cloud;
    let cluster: CloudSnapBackup = match cloud
        .get(&a.storage.bucket, &a.storage.key(CLUSTERMETA))
        .await
    {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(c) => c,
            Err(e) => {
                job.report(volume_failed(format!("clustermeta is not valid: {e}")));
                return JobEnd::Failed;
            }
        },
        Ok(None) => {
            job.report(volume_failed("clustermeta not found"));
            return JobEnd::Failed;
        }
        Err(e) => {
            job.report(volume_failed(format!("reading clustermeta: {e}")));
            return JobEnd::Failed;
        }
    };
    let resolved_ts = sim.tso.next();
    let volume_ids: Vec<String> = cluster.volumes().map(|v| v.volume_id.clone()).collect();
    let volumes = match cloud.volumes_by_id(&volume_ids).await {
        Ok(v) => v,
        Err(e) => {
            job.report(volume_failed(format!("describing volumes: {e}")));
            return JobEnd::Failed;
        }
    };
    let mut snapshots = BTreeMap::new();
    for v in &volumes {
        // BR tags each snapshot `TiDBCluster-BR=old` and nothing else (br/pkg/aws/ebs.go
        // `StartsEBSSnapshot`: CreateSnapshot without CopyTagsFromSource); the simulator's own
        // bookkeeping tags (`sim.brfed.dev/*`, which brfed never reads) ride along.
        let mut tags: BTreeMap<String, String> = v
            .tags
            .iter()
            .filter(|(k, _)| k.starts_with(SIM_TAG_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.insert(BR_SNAPSHOT_TAG.0.to_string(), BR_SNAPSHOT_TAG.1.to_string());
        tags.insert(TAG_BACKUP.to_string(), a.holder.clone());
        match cloud
            .create_snapshot(
                &v.id,
                &format!("brfed-sim backup {} of {}", a.holder, v.id),
                &tags,
            )
            .await
        {
            Ok(id) => {
                snapshots.insert(v.id.clone(), (id, v.az.clone()));
            }
            Err(e) => {
                // BR deletes what it created when its own run fails
                for (snap, _) in snapshots.values() {
                    let _ = cloud.delete_snapshot(snap).await;
                }
                job.report(volume_failed(format!("creating snapshots: {e}")));
                return JobEnd::Failed;
            }
        }
    }
    let taken = SnapshotsTaken {
        cluster_version: a.version.clone(),
        resolved_ts,
        snapshots,
        region: cloud.region.clone(),
    };
    let backupmeta = meta::backup_meta(&cluster, &taken);
    let backupmeta_key = a.storage.key(BACKUPMETA);
    let body = serde_json::to_vec(&backupmeta).expect("backupmeta serializes");
    if let Err(e) = cloud.put(&a.storage.bucket, &backupmeta_key, body).await {
        job.report(volume_failed(format!("writing backupmeta: {e}")));
        return JobEnd::Failed;
    }
    job.report(Report::CheckBackupMeta {
        bucket: a.storage.bucket.clone(),
        key: backupmeta_key,
    });

    // fault point: snapshots created, not completed yet
    if let (Some(after), Some(init)) = (a.snap_plan.crash_init_job, &a.init) {
        crash_later(init.clone(), after);
    }
    tokio::time::sleep(a.snap_plan.delay).await;
    match a.snap_plan.outcome {
        Some(FaultOutcome::Fail) => {
            job.report(
                volume_failed("simulated: a snapshot entered the error state")
                    .reason(SIMULATED_FAULT),
            );
            return JobEnd::Failed;
        }
        Some(FaultOutcome::Hang) => std::future::pending::<()>().await,
        _ => {}
    }
    tokio::time::sleep(sim.cfg.snapshot_complete_delay).await;
    let ids = backupmeta.snapshot_ids();
    match cloud.snapshots_by_id(&ids).await {
        Ok(found) if found.len() == ids.len() && found.iter().all(|s| s.state == "completed") => {}
        Ok(found) => {
            job.report(volume_failed(format!(
                "only {} of {} snapshots completed",
                found.len(),
                ids.len()
            )));
            return JobEnd::Failed;
        }
        Err(e) => {
            job.report(volume_failed(format!("waiting for snapshots: {e}")));
            return JobEnd::Failed;
        }
    }
    let size: u64 = if a.calc_size {
        volumes
            .iter()
            .map(|v| u64::try_from(v.size_gib).unwrap_or(0) << 30)
            .sum()
    } else {
        0
    };
    job.report(
        CondReport::new(cond::VOLUME_BACKUP_COMPLETE)
            .message(format!("EBS backup success, resolved_ts={resolved_ts}"))
            .field("commitTs", json!(resolved_ts.to_string()))
            .field("backupPath", json!(a.storage.path()))
            .field("backupSize", json!(size))
            .field("backupSizeReadable", json!(readable_size(size))),
    );
    JobEnd::Succeeded
}

/// Phase `teardown`: wait for the execute job, stop the init job unless resumed, then finish.
async fn teardown(m: &Member<'_>, plan: FaultPlan) -> Result<Next, SimError> {
    let (init, exec) = m.state(|s| (s.init.clone(), s.exec.clone()));
    if exec.as_ref().is_some_and(|j| !j.is_done()) {
        return Ok(Next::Poll);
    }
    match plan.outcome {
        Some(FaultOutcome::Invalid) => {
            return m.invalid_by_fault("teardown").await.map(|_| Next::Done);
        }
        Some(FaultOutcome::Hang) => return Ok(Next::Poll),
        _ => {}
    }
    if let Some(left) = m.delay_left("teardown", plan.delay) {
        return Ok(Next::After(left));
    }
    let mut init_ended_by_itself = false;
    if !m.has(cond::INITIALIZE_COMPLETE) {
        match &init {
            Some(job) => match job.ended() {
                None => {
                    stop_init_job(m, Stop::Graceful);
                    job.wait_ended(Duration::from_secs(10)).await;
                }
                Some(JobEnd::Deleted | JobEnd::Aborted) => {}
                Some(_) => init_ended_by_itself = !m.state(|s| s.init_stopped_by_operator),
            },
            None => init_ended_by_itself = m.has(cond::INITIALIZED),
        }
    }
    if plan.outcome == Some(FaultOutcome::Fail) {
        return m
            .faulted(cond::FAILED, "simulated: teardown failed")
            .await
            .map(|_| Next::Done);
    }
    let failure = if m.has(cond::INITIALIZE_FAILED) {
        Some(("VolumeBackupInitializeFailed", "initialize failed"))
    } else if m.has(cond::VOLUME_FAILED) {
        Some(("VolumeBackupFailed", "volume backup failed"))
    } else if init_ended_by_itself {
        Some((
            "InitializeJobCompletedOrFailed",
            "init job ended by itself: GC/scheduler pause not guaranteed",
        ))
    } else {
        None
    };
    match failure {
        Some((reason, message)) => m.condition(cond::FAILED, reason, message).await?,
        None => {
            m.condition(cond::COMPLETE, "", "volume snapshot backup complete")
                .await?
        }
    };
    Ok(Next::Done)
}

/// Deletion: `Retain` keeps the data, `Delete` (and `OnFailure` when failed) runs the clean job.
async fn deletion(m: &Member<'_>) -> Result<Next, SimError> {
    if !has_finalizer(&m.obj) {
        m.sim.jobs.forget(m.key);
        return Ok(Next::Done);
    }
    // the member's jobs go first
    m.state(|s| {
        if let Some(exec) = s.exec.as_ref().filter(|j| j.ended().is_none()) {
            exec.abort();
        }
    });
    stop_init_job(m, Stop::Graceful);

    let policy = clean_policy(&m.obj);
    let clean =
        policy == CleanPolicy::Delete || (policy == CleanPolicy::OnFailure && m.has(cond::FAILED));
    if !clean || m.has(cond::CLEAN) {
        remove_finalizer(m).await?;
        return Ok(Next::Done);
    }
    if m.has(cond::CLEAN_FAILED) {
        return Ok(Next::Done);
    }
    let job = m.state(|s| s.clean.clone());
    let Some(job) = job else {
        if str_at(&m.obj, "/status/backupPath").is_none() {
            return m
                .condition(cond::CLEAN, "", "no backup data to clean")
                .await;
        }
        let Some(storage) = m.storage() else {
            return m
                .condition(cond::CLEAN, "", "no backup storage to clean")
                .await;
        };
        let ratio = snapshots_delete_ratio(&m.obj.data);
        let tc = m.tidb_cluster().await.ok().flatten();
        let args = CleanArgs {
            storage,
            backup_failed: m.has(cond::FAILED),
            ratio,
            plan: m.plan(&m.faults(tc.as_ref()), FaultPhase::Clean),
        };
        let sim = m.sim.clone();
        let job = Job::spawn(
            format!("clean-{}", m.key.name),
            m.sim.trigger(m.key),
            Vec::new(),
            move |job, _| run_clean_job(sim, job, args),
        );
        m.state(|s| s.clean = Some(job));
        return Ok(Next::Soon);
    };
    match m.drain_conditions(&job).await? {
        Drained::Wrote => Ok(Next::Soon),
        _ => Ok(Next::Poll),
    }
}

async fn remove_finalizer(m: &Member<'_>) -> Result<(), SimError> {
    m.write(|o| {
        let Some(f) = o.metadata.finalizers.as_mut() else {
            return false;
        };
        let before = f.len();
        f.retain(|x| x != BACKUP_FINALIZER);
        f.len() != before
    })
    .await?;
    m.sim.jobs.forget(m.key);
    Ok(())
}

/// The member's `spec.cleanOption.snapshotsDeleteRatio`, taken as given as upstream `clean.go` does
/// (the federation keeps it within 0.1–2.0, the data plane does not); absent = the CRD default 1.
pub fn snapshots_delete_ratio(member: &serde_json::Value) -> f64 {
    member
        .pointer("/spec/cleanOption/snapshotsDeleteRatio")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(1.0)
}

/// Snapshots deleted between two flow-control checks (upstream `SnapshotDeletionFlowControlInterval`).
pub const FLOW_CONTROL_INTERVAL: u32 = 10;

/// The least time one round of [`FLOW_CONTROL_INTERVAL`] deletions takes at `ratio` deletions per
/// second, as upstream `DeleteSnapshots` computes it: `time.Duration(10/ratio) * time.Second`,
/// i.e. whole seconds, truncated (a ratio above 10 never waits). A ratio of 0, below 0 or not a
/// number never waits either (Go turns 10/0 = +Inf into a duration that is not positive on
/// amd64). Upstream overflows int64 for a ratio under ~1e-9; the simulator saturates instead.
pub fn flow_control_round(ratio: f64) -> Duration {
    let secs = (f64::from(FLOW_CONTROL_INTERVAL) / ratio).trunc();
    if ratio > 0.0 && secs.is_finite() && secs >= 1.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

struct CleanArgs {
    storage: Storage,
    backup_failed: bool,
    ratio: f64,
    plan: FaultPlan,
}

fn clean_failed(message: impl Into<String>) -> CondReport {
    CondReport::new(cond::CLEAN_FAILED)
        .reason("CleanBackupDataFailed")
        .message(message)
}

/// What the clean job's copy of `backupmeta` gave (upstream `copyRemoteBackupMetaToLocal`:
/// `rclone copy s3:{path}/backupmeta /`, then `os.ReadFile("/backupmeta")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaRead {
    /// The object's bytes.
    Found(Vec<u8>),
    /// No such key in an existing bucket. rclone's S3 backend then takes the path for a directory
    /// (`NewFs`: HEAD of the object fails, so no `ErrorIsFile`), lists it empty without an error
    /// (no directory markers) and `copy` exits 0 having copied nothing: the file is not there.
    Missing,
    /// The copy failed (bucket missing: ListObjects 404 → `ErrorDirNotFound`; access denied; a
    /// transient error that outlasted rclone's retries): rclone exits non-zero.
    Unreadable(String),
}

/// What the clean job does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanStart {
    /// Delete these snapshots, then every object under the prefix, then `Clean`.
    Delete(Vec<String>),
    /// `Clean` at once, deleting nothing (not a snapshot, not an object).
    NothingToDelete(String),
    /// `CleanFailed`/`CleanBackupDataFailed` with this message.
    Fail(String),
}

/// Upstream `deleteSnapshotsAndBackupMeta` on what reading `backupmeta` gave: a failed copy is
/// only a warning and returns success ("bucket or backup folder is deleted already"), so the
/// backup is `Clean` with nothing deleted; a copy that left no file is success with nothing
/// deleted for a Failed backup and an error for any other; an unparsable file is an error.
pub fn clean_start(read: MetaRead, backup_failed: bool) -> CleanStart {
    match read {
        MetaRead::Found(bytes) => match serde_json::from_slice::<CloudSnapBackup>(&bytes) {
            Ok(meta) => CleanStart::Delete(meta.snapshot_ids()),
            Err(e) => CleanStart::Fail(format!("backupmeta is not valid: {e}")),
        },
        MetaRead::Missing if backup_failed => CleanStart::NothingToDelete(
            "backupmeta not found for a failed backup".to_string(),
        ),
        MetaRead::Missing => CleanStart::Fail(
            "read metadata file /backupmeta failed: not found, a manual check or delete action required"
                .to_string(),
        ),
        MetaRead::Unreadable(e) => {
            CleanStart::NothingToDelete(format!("copying backupmeta failed ({e})"))
        }
    }
}

/// Attempts of the `backupmeta` copy on transient errors (rclone's `--retries` default).
const COPY_ATTEMPTS: u32 = 3;

async fn read_backupmeta(cloud: &crate::cloud::Cloud, storage: &Storage) -> MetaRead {
    let key = storage.key(BACKUPMETA);
    let mut attempt = 1;
    loop {
        match cloud.get(&storage.bucket, &key).await {
            Ok(Some(bytes)) => return MetaRead::Found(bytes),
            Ok(None) => return MetaRead::Missing,
            Err(e) if e.transient && attempt < COPY_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return MetaRead::Unreadable(e.to_string()),
        }
    }
}

/// The clean job: delete the snapshots listed in `backupmeta`, then the objects under the prefix
/// ([`clean_start`] when `backupmeta` cannot be read).
async fn run_clean_job(sim: Arc<Sim>, job: Arc<Job>, a: CleanArgs) -> JobEnd {
    tokio::time::sleep(sim.cfg.step_delay + a.plan.delay).await;
    match a.plan.outcome {
        Some(FaultOutcome::Fail) => {
            job.report(clean_failed("simulated: clean job failed").reason(SIMULATED_FAULT));
            return JobEnd::Failed;
        }
        Some(FaultOutcome::Hang) => std::future::pending::<()>().await,
        _ => {}
    }
    let cloud = &sim.cloud;
    let read = read_backupmeta(cloud, &a.storage).await;
    let snapshot_ids = match clean_start(read, a.backup_failed) {
        CleanStart::Delete(ids) => ids,
        CleanStart::NothingToDelete(why) => {
            tracing::warn!(path = %a.storage.path(), %why, "clean job: nothing deleted, a manual check is needed (as upstream)");
            job.report(CondReport::new(cond::CLEAN).message(format!("{why}: nothing deleted")));
            return JobEnd::Succeeded;
        }
        CleanStart::Fail(why) => {
            job.report(clean_failed(why));
            return JobEnd::Failed;
        }
    };
    // sequential deletions; after every 10, wait so that the rate stays <= ratio per second
    let batch_min = flow_control_round(a.ratio);
    let mut batch_start = Instant::now();
    for (i, id) in snapshot_ids.iter().enumerate() {
        if let Err(e) = cloud.delete_snapshot(id).await {
            job.report(clean_failed(format!("deleting snapshot {id}: {e}")));
            return JobEnd::Failed;
        }
        if (i + 1) % FLOW_CONTROL_INTERVAL as usize == 0 {
            let spent = batch_start.elapsed();
            if spent < batch_min {
                tokio::time::sleep(batch_min - spent).await;
            }
            batch_start = Instant::now();
        }
    }
    let deleted = if a.storage.prefix.is_empty() {
        // never wipe a whole bucket: only what a backup writes
        let mut n = 0;
        for name in [
            meta::CLUSTERMETA,
            meta::BACKUPMETA,
            meta::RESTOREMETA,
            "backup.lock",
        ] {
            if cloud.exists(&a.storage.bucket, name).await.unwrap_or(false)
                && cloud
                    .s3
                    .delete_object()
                    .bucket(&a.storage.bucket)
                    .key(name)
                    .send()
                    .await
                    .is_ok()
            {
                n += 1;
            }
        }
        cloud
            .delete_prefix(&a.storage.bucket, "manifests/")
            .await
            .map(|m| m + n)
    } else {
        cloud
            .delete_prefix(&a.storage.bucket, &format!("{}/", a.storage.prefix))
            .await
    };
    match deleted {
        Ok(n) => {
            job.report(CondReport::new(cond::CLEAN).message(format!(
                "deleted {} snapshots and {n} objects",
                snapshot_ids.len()
            )));
            JobEnd::Succeeded
        }
        Err(e) => {
            job.report(clean_failed(format!("deleting backup data: {e}")));
            JobEnd::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_backupmeta_deletes_nothing_as_upstream_clean_does() {
        // Failed backup: Clean at once, nothing deleted (the objects under the prefix stay)
        assert!(matches!(
            clean_start(MetaRead::Missing, true),
            CleanStart::NothingToDelete(_)
        ));
        // any other backup: CleanFailed
        assert!(matches!(
            clean_start(MetaRead::Missing, false),
            CleanStart::Fail(_)
        ));
        // the copy failed (bucket gone, access denied): a warning, Clean, nothing deleted
        for failed in [true, false] {
            assert!(matches!(
                clean_start(MetaRead::Unreadable("NoSuchBucket".into()), failed),
                CleanStart::NothingToDelete(_)
            ));
        }
        assert!(matches!(
            clean_start(MetaRead::Found(b"{not json".to_vec()), true),
            CleanStart::Fail(_)
        ));
    }

    #[test]
    fn the_clean_job_takes_the_delete_ratio_as_given() {
        let member = |ratio: serde_json::Value| json!({"spec": {"cleanOption": {"snapshotsDeleteRatio": ratio}}});
        assert_eq!(snapshots_delete_ratio(&member(json!(5.0))), 5.0);
        assert_eq!(snapshots_delete_ratio(&member(json!(0.05))), 0.05);
        assert_eq!(snapshots_delete_ratio(&member(json!(3))), 3.0);
        assert_eq!(snapshots_delete_ratio(&json!({"spec": {}})), 1.0);
    }

    #[test]
    fn a_flow_control_round_lasts_whole_seconds_as_upstream_computes_it() {
        let secs = |r: f64| flow_control_round(r).as_secs_f64();
        assert_eq!(secs(1.0), 10.0);
        assert_eq!(secs(2.0), 5.0);
        assert_eq!(secs(3.0), 3.0, "10/3 truncated");
        assert_eq!(secs(0.1), 100.0);
        assert_eq!(secs(5.0), 2.0);
        assert_eq!(secs(20.0), 0.0, "under a second: no wait");
        assert_eq!(secs(0.0), 0.0);
        assert_eq!(secs(-1.0), 0.0);
        assert_eq!(secs(f64::NAN), 0.0);
    }
}
