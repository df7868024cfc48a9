//! The data-plane `Restore` contract for `restoreMode: volume-snapshot` (reference §3.2).
//!
//! `restore-volume` creates real EBS volumes from the backup's snapshots, writes `restoremeta`, then
//! starts TiKV (annotation on the TidbCluster) with or without warmup; `restore-data` records the
//! truncation in the simulated PD; `restore-finish` takes the TidbCluster out of recovery mode.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::faults::{FaultOutcome, FaultPhase, FaultPlan};
use crate::jobs::{CondReport, Job, JobEnd, ObjKey, Report, lock};
use crate::kubeobj::{restore_resource, str_at, tidbcluster_resource, update_object};
use crate::member::{
    Drained, Member, SIMULATED_FAULT, Storage, pd_key, scheduled, tc_bool, tc_tikv_replicas,
};
use crate::meta::{
    self, BACKUPMETA, CloudSnapBackup, RESTOREMETA, TAG_CLUSTER, TAG_MOUNT_PATH, TAG_PLANE,
    TAG_PV_NAME, TAG_PVC_NAME, TAG_PVC_NAMESPACE, TAG_STORE, TAG_VOLUME_NAME,
};
use crate::sim::{Next, Sim, SimError};

/// Annotation telling the operator that TiKV may start on the restored volumes.
pub const VOLUMES_READY_ANNOTATION: &str = "tidb.pingcap.com/tikv-volumes-ready";
/// Tag naming the Restore (uid) that created a volume, used to delete them after a failure.
pub const TAG_RESTORE_UID: &str = "sim.brfed.dev/restore-uid";

/// Restore condition types (with the ones a Backup writes).
pub use crate::member::cond;

/// One reconcile pass of a `Restore`.
pub async fn reconcile(sim: &Arc<Sim>, key: &ObjKey) -> Result<Next, SimError> {
    let Some(m) = Member::load(sim, key, &restore_resource(), "restoreMode").await? else {
        return Ok(Next::Done);
    };
    if m.obj.metadata.deletion_timestamp.is_some() {
        sim.jobs.forget(key);
        return Ok(Next::Done);
    }

    if m.has(cond::FAILED) {
        return clean_failed_volumes(&m).await;
    }
    if m.has(cond::COMPLETE) {
        // an async warmup may end after the restore completed: upstream keeps reconciling a
        // Complete member with `warmup: async` until `WarmUpComplete` (restore_controller.go)
        if let Some(job) = m.state(|s| s.restore_volume.clone()) {
            match m.drain_conditions(&job).await? {
                Drained::Wrote => return Ok(Next::Soon),
                Drained::Empty if job.is_done() => {}
                _ => return Ok(Next::Poll),
            }
        }
        return Ok(Next::Done);
    }
    if m.has(cond::INVALID) {
        return Ok(Next::Done);
    }
    let tc = m.tidb_cluster().await?;

    let (volume_job, data_job) = m.state(|s| (s.restore_volume.clone(), s.restore_data.clone()));
    for job in [&volume_job, &data_job].into_iter().flatten() {
        match m.drain_conditions(job).await? {
            Drained::Empty => {}
            Drained::Wrote => return Ok(Next::Soon),
            Drained::Special(report) => {
                let Some(tc) = &tc else {
                    return Ok(Next::After(Duration::from_secs(1)));
                };
                handle_special(&m, tc, &report).await?;
                job.pop_report();
                return Ok(Next::Soon);
            }
        }
    }

    let phase = str_at(&m.obj, "/spec/federalVolumeRestorePhase")
        .unwrap_or_default()
        .to_string();
    let backup = match validate(&m, tc.as_ref(), &phase).await? {
        Ok(b) => b,
        Err(why) => {
            return m.invalid_spec(why).await;
        }
    };
    let tc = tc.expect("validated");
    let faults = m.faults(Some(&tc));

    match phase.as_str() {
        "restore-volume" => {
            if let Some(job) = volume_job {
                return Ok(if job.is_done() {
                    Next::Done
                } else {
                    Next::Poll
                });
            }
            let plan = m.plan(&faults, FaultPhase::RestoreVolume);
            if plan.outcome == Some(FaultOutcome::Invalid) {
                return m
                    .invalid_by_fault("restore-volume")
                    .await
                    .map(|_| Next::Done);
            }
            start_restore_volume(&m, &tc, backup, plan, m.plan(&faults, FaultPhase::Warmup));
            Ok(Next::Soon)
        }
        "restore-data" => {
            if !m.has(cond::TIKV_COMPLETE) {
                return Ok(Next::Poll);
            }
            if let Some(job) = data_job {
                return Ok(if job.is_done() {
                    Next::Done
                } else {
                    Next::Poll
                });
            }
            let plan = m.plan(&faults, FaultPhase::RestoreData);
            if plan.outcome == Some(FaultOutcome::Invalid) {
                return m.invalid_by_fault("restore-data").await.map(|_| Next::Done);
            }
            start_restore_data(&m, &tc, &backup, plan);
            Ok(Next::Soon)
        }
        "restore-finish" => {
            restore_finish(&m, &tc, m.plan(&faults, FaultPhase::RestoreFinish)).await
        }
        _ => Ok(Next::Done),
    }
}

/// Validation of a volume-snapshot restore; `Ok(Err(why))` means `Invalid`.
async fn validate(
    m: &Member<'_>,
    tc: Option<&DynamicObject>,
    phase: &str,
) -> Result<Result<Arc<CloudSnapBackup>, String>, SimError> {
    let Some((tc_ns, tc_name)) = m.tc_ref() else {
        return Ok(Err("spec.br.cluster is not set".into()));
    };
    let Some(storage) = m.storage() else {
        return Ok(Err("spec.s3.bucket is not set".into()));
    };
    let Some(tc) = tc else {
        return Ok(Err(format!("TidbCluster {tc_ns}/{tc_name} not found")));
    };
    if !tc_bool(tc, "/spec/acrossK8s") {
        return Ok(Err(format!(
            "TidbCluster {tc_ns}/{tc_name} is not acrossK8s"
        )));
    }
    if phase != "restore-finish" && !tc_bool(tc, "/spec/recoveryMode") {
        return Ok(Err(format!(
            "TidbCluster {tc_ns}/{tc_name} is not in recovery mode (spec.recoveryMode: true)"
        )));
    }
    let cached = m.state(|s| s.backupmeta.clone());
    let backup = match cached {
        Some(b) => b,
        None => match m
            .sim
            .cloud
            .get(&storage.bucket, &storage.key(BACKUPMETA))
            .await
        {
            Ok(Some(bytes)) => match serde_json::from_slice::<CloudSnapBackup>(&bytes) {
                Ok(b) => {
                    let b = Arc::new(b);
                    m.state(|s| s.backupmeta = Some(b.clone()));
                    b
                }
                Err(e) => {
                    return Ok(Err(format!(
                        "{}/backupmeta is not valid: {e}",
                        storage.path()
                    )));
                }
            },
            Ok(None) => return Ok(Err(format!("{}/backupmeta not found", storage.path()))),
            Err(e) if e.transient => return Err(e.into()),
            Err(e) => return Ok(Err(format!("reading {}/backupmeta: {e}", storage.path()))),
        },
    };
    match &backup.cluster_info {
        Some(info) if info.full_backup_type == meta::FULL_BACKUP_TYPE && info.resolved_ts != 0 => {}
        _ => {
            return Ok(Err(format!(
                "{}/backupmeta is not an aws-ebs backup with a resolved ts",
                storage.path()
            )));
        }
    }
    let want = backup.backup_tikv_replicas().unwrap_or(-1);
    if tc_tikv_replicas(tc) != want {
        return Ok(Err(format!(
            "TidbCluster {tc_ns}/{tc_name} has {} TiKV replicas, the backup has {want}",
            tc_tikv_replicas(tc)
        )));
    }
    let tc_value = serde_json::to_value(tc).unwrap_or(Value::Null);
    if meta::storage_volume_count(&tc_value) != backup.backup_storage_volume_count() {
        return Ok(Err(format!(
            "TidbCluster {tc_ns}/{tc_name} has {} TiKV storageVolumes, the backup has {}",
            meta::storage_volume_count(&tc_value),
            backup.backup_storage_volume_count()
        )));
    }
    if meta::tiflash_replicas(&tc_value) != backup.backup_tiflash_replicas() {
        return Ok(Err(format!(
            "TidbCluster {tc_ns}/{tc_name} TiFlash replicas differ from the backup's"
        )));
    }
    Ok(Ok(backup))
}

async fn update_tc(
    m: &Member<'_>,
    tc: &DynamicObject,
    mutate: impl FnMut(&mut DynamicObject) -> bool,
) -> Result<(), SimError> {
    let plane = m.sim.plane(&m.key.plane)?;
    let ns = tc.metadata.namespace.clone().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(plane.client.clone(), &ns, &tidbcluster_resource());
    let uid = tc.metadata.uid.clone().unwrap_or_default();
    update_object(
        &api,
        tc.metadata.name.as_deref().unwrap_or_default(),
        &uid,
        mutate,
    )
    .await?;
    Ok(())
}

async fn handle_special(
    m: &Member<'_>,
    tc: &DynamicObject,
    report: &Report,
) -> Result<(), SimError> {
    match report {
        Report::AnnotateVolumesReady => {
            let value = format!("{}/{}", m.key.namespace, m.key.name);
            update_tc(m, tc, |o| {
                let a = o.metadata.annotations.get_or_insert_with(BTreeMap::new);
                a.insert(VOLUMES_READY_ANNOTATION.to_string(), value.clone()) != Some(value.clone())
            })
            .await
        }
        Report::TikvStarted => {
            // TiKV keeps its store ids on the restored volumes: show them as this plane's
            // stores, and the restored volumes as theirs (so the restored cluster can be backed up)
            let (backup, restored) = m.state(|s| (s.backupmeta.clone(), s.restored.clone()));
            let restored = lock(&restored).clone();
            let by_store: BTreeMap<u64, Vec<String>> = backup
                .iter()
                .flat_map(|b| b.tikv.stores.iter())
                .map(|s| {
                    let ids = s
                        .volumes
                        .iter()
                        .filter_map(|v| restored.get(&v.volume_id).cloned());
                    (s.store_id, ids.collect())
                })
                .collect();
            let stores: Vec<u64> = by_store.keys().copied().collect();
            let volumes_annotation = meta::tikv_volumes_annotation(&by_store);
            let tc_name = tc.metadata.name.clone().unwrap_or_default();
            let tc_ns = tc.metadata.namespace.clone().unwrap_or_default();
            update_tc(m, tc, |o| {
                let previous = o
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(
                        meta::TIKV_VOLUMES_ANNOTATION.to_string(),
                        volumes_annotation.clone(),
                    );
                let annotated = previous.as_ref() != Some(&volumes_annotation);
                if o.data
                    .pointer("/status/tikv/stores")
                    .and_then(Value::as_object)
                    .is_some_and(|s| !s.is_empty())
                {
                    return annotated;
                }
                let map: serde_json::Map<String, Value> = stores
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        (
                            id.to_string(),
                            crate::seed::store_status(*id, &tc_name, &tc_ns, i),
                        )
                    })
                    .collect();
                let status = crate::kubeobj::status_mut(o);
                let tikv = status.entry("tikv").or_insert_with(|| json!({}));
                if !tikv.is_object() {
                    *tikv = json!({});
                }
                tikv["stores"] = Value::Object(map);
                true
            })
            .await?;
            m.condition(
                cond::TIKV_COMPLETE,
                "",
                "TiKV started on the restored volumes",
            )
            .await
            .map(|_| ())
        }
        Report::TagRestoredVolumes(tags) => {
            for (volume, tags) in tags {
                if let Err(e) = m.sim.cloud.add_tags(volume, tags).await {
                    // upstream: RetryFailed/volume_tag_adding_failed, then the next sync again
                    m.retry_failed("volume_tag_adding_failed", e.to_string())
                        .await?;
                    return Err(e.into());
                }
            }
            Ok(())
        }
        other => {
            tracing::warn!(?other, "unexpected report from a restore job");
            Ok(())
        }
    }
}

/// A failed restore-volume deletes the volumes it created, then `CleanVolumeComplete`.
async fn clean_failed_volumes(m: &Member<'_>) -> Result<Next, SimError> {
    if m.has(cond::VOLUME_COMPLETE)
        || m.has(cond::CLEAN_VOLUME_COMPLETE)
        || str_at(&m.obj, "/spec/federalVolumeRestorePhase") != Some("restore-volume")
    {
        return Ok(Next::Done);
    }
    if m.state(|s| {
        s.restore_volume
            .as_ref()
            .is_some_and(|j| j.ended().is_none())
    }) {
        return Ok(Next::Poll);
    }
    // the job of this process knows what it created; after a restart, look the volumes up by tag
    let (ran_here, restored) = m.state(|s| (s.restore_volume.is_some(), s.restored.clone()));
    let ids: Vec<String> = if ran_here {
        lock(&restored).values().cloned().collect()
    } else {
        let tagged = m
            .sim
            .cloud
            .volumes_tagged(&[(TAG_RESTORE_UID, &m.uid)])
            .await?;
        tagged.into_iter().map(|v| v.id).collect()
    };
    for id in &ids {
        m.sim.cloud.delete_volume(id).await?;
    }
    m.condition(
        cond::CLEAN_VOLUME_COMPLETE,
        "",
        format!("deleted {} restored volumes", ids.len()),
    )
    .await
    .map(|_| Next::Done)
}

struct VolumeArgs {
    storage: Storage,
    backup: Arc<CloudSnapBackup>,
    volume_az: Option<String>,
    volume_type: String,
    warmup: String,
    strategy: String,
    target_key: String,
    plane: String,
    tc_name: String,
    /// `spec.br.clusterNamespace` (else the TidbCluster's): the restored PVCs' namespace.
    tc_namespace: String,
    uid: String,
    plan: FaultPlan,
    warmup_plan: FaultPlan,
    restored: Arc<Mutex<BTreeMap<String, String>>>,
}

fn start_restore_volume(
    m: &Member<'_>,
    tc: &DynamicObject,
    backup: Arc<CloudSnapBackup>,
    plan: FaultPlan,
    warmup_plan: FaultPlan,
) {
    let volume_type = m
        .obj
        .data
        .pointer("/spec/br/options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|o| o.strip_prefix("--volume-type=").map(String::from))
        .unwrap_or_else(|| "gp3".to_string());
    let args = VolumeArgs {
        storage: m.storage().expect("validated"),
        backup,
        // an empty volumeAZ is no --target-az: BR restores each volume into its backup volume's AZ
        volume_az: str_at(&m.obj, "/spec/volumeAZ")
            .filter(|az| !az.is_empty())
            .map(String::from),
        volume_type,
        warmup: str_at(&m.obj, "/spec/warmup").unwrap_or("").to_string(),
        strategy: str_at(&m.obj, "/spec/warmupStrategy")
            .unwrap_or("hybrid")
            .to_string(),
        target_key: pd_key(tc),
        plane: m.key.plane.clone(),
        tc_name: tc.metadata.name.clone().unwrap_or_default(),
        tc_namespace: str_at(&m.obj, "/spec/br/clusterNamespace")
            .filter(|ns| !ns.is_empty())
            .map(String::from)
            .or_else(|| tc.metadata.namespace.clone())
            .unwrap_or_default(),
        uid: m.uid.clone(),
        plan,
        warmup_plan,
        restored: m.state(|s| s.restored.clone()),
    };
    let sim = m.sim.clone();
    m.start_job(
        "restore-volume",
        format!("restore-{}", m.key.name),
        vec![scheduled("restore-volume").into()],
        move |job, _| run_restore_volume(sim, job, args),
        |s| &mut s.restore_volume,
    );
}

fn failed(reason: &str, message: impl Into<String>) -> CondReport {
    CondReport::new(cond::FAILED)
        .reason(reason)
        .message(message)
}

/// `br restore full --type=aws-ebs --prepare`, then TiKV start and warmup as the spec says.
async fn run_restore_volume(sim: Arc<Sim>, job: Arc<Job>, a: VolumeArgs) -> JobEnd {
    let step = sim.cfg.step_delay;
    tokio::time::sleep(step).await;
    job.report(CondReport::new(cond::RUNNING));
    tokio::time::sleep(a.plan.delay).await;
    if a.plan.outcome == Some(FaultOutcome::Hang) {
        std::future::pending::<()>().await;
    }
    let cloud = &sim.cloud;
    let ids = a.backup.snapshot_ids();
    let snapshots = match cloud.snapshots_by_id(&ids).await {
        Ok(s) => s
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect::<BTreeMap<_, _>>(),
        Err(e) => {
            job.report(failed(
                "RestoreVolumeFailed",
                format!("describing snapshots: {e}"),
            ));
            return JobEnd::Failed;
        }
    };
    let mut restored = BTreeMap::new();
    for store in &a.backup.tikv.stores {
        for v in &store.volumes {
            let Some(snap) = snapshots.get(&v.snapshot_id) else {
                job.report(failed(
                    "RestoreVolumeFailed",
                    format!(
                        "snapshot {} of volume {} not found",
                        v.snapshot_id, v.volume_id
                    ),
                ));
                return JobEnd::Failed;
            };
            let az = a.volume_az.clone().unwrap_or_else(|| v.volume_az.clone());
            let vol_name = snap
                .tags
                .get(TAG_VOLUME_NAME)
                .cloned()
                .unwrap_or_else(|| meta::DATA_VOLUME_NAME.to_string());
            // BR's tags (`CreateVolumes`); the operator's come after `VolumeComplete`
            // (`TagRestoredVolumes`). The `sim.brfed.dev/*` tags are the simulator's own
            // bookkeeping (what the real operator reads from PVs and the TidbCluster).
            let mut tags = br_volume_tags(&snap.id, &snap.tags);
            tags.extend([
                (TAG_CLUSTER.to_string(), a.target_key.clone()),
                (TAG_PLANE.to_string(), a.plane.clone()),
                (TAG_STORE.to_string(), store.store_id.to_string()),
                (TAG_VOLUME_NAME.to_string(), vol_name),
                (TAG_RESTORE_UID.to_string(), a.uid.clone()),
            ]);
            if let Some(path) = snap.tags.get(TAG_MOUNT_PATH) {
                tags.insert(TAG_MOUNT_PATH.to_string(), path.clone());
            }
            let token = format!("{}-{}", a.uid, snap.id);
            match cloud
                .create_volume_from_snapshot(&snap.id, &az, &a.volume_type, &tags, &token)
                .await
            {
                Ok(id) => {
                    lock(&a.restored).insert(v.volume_id.clone(), id.clone());
                    restored.insert(v.volume_id.clone(), id);
                }
                Err(e) => {
                    job.report(failed(
                        "RestoreVolumeFailed",
                        format!("creating a volume from {}: {e}", snap.id),
                    ));
                    return JobEnd::Failed;
                }
            }
        }
    }
    if a.plan.outcome == Some(FaultOutcome::Fail) {
        job.report(failed(
            SIMULATED_FAULT,
            "simulated: restore-volume failed after creating volumes",
        ));
        return JobEnd::Failed;
    }
    let new_ids: Vec<String> = restored.values().cloned().collect();
    let mut available = false;
    for _ in 0..50 {
        match cloud.volumes_by_id(&new_ids).await {
            Ok(vols)
                if vols.len() == new_ids.len() && vols.iter().all(|v| v.state == "available") =>
            {
                available = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    if !available {
        job.report(failed(
            "RestoreVolumeFailed",
            "restored volumes did not become available",
        ));
        return JobEnd::Failed;
    }
    let restoremeta = meta::restore_meta(&a.backup, &restored);
    let body = serde_json::to_vec(&restoremeta).expect("restoremeta serializes");
    if let Err(e) = cloud
        .put(&a.storage.bucket, &a.storage.key(RESTOREMETA), body)
        .await
    {
        job.report(failed(
            "RestoreVolumeFailed",
            format!("writing restoremeta: {e}"),
        ));
        return JobEnd::Failed;
    }
    let resolved_ts = a.backup.cluster_info.as_ref().map_or(0, |i| i.resolved_ts);
    job.report(
        CondReport::new(cond::VOLUME_COMPLETE)
            .message(format!("EBS restore success, resolved_ts={resolved_ts}"))
            .field("commitTs", json!(resolved_ts.to_string())),
    );
    // the operator, seeing VolumeComplete: PVs and PVCs, then their tags on the volumes
    match operator_volume_tags(&a.backup, &restored, &a.tc_name, &a.tc_namespace, &a.uid) {
        Ok(tags) => job.report(Report::TagRestoredVolumes(tags)),
        Err(NamesFailed { reason, message }) => {
            // upstream retries for ever with RetryFailed: the member stays at VolumeComplete
            job.report(
                CondReport::new("RetryFailed")
                    .reason(reason)
                    .message(message),
            );
            return JobEnd::Failed;
        }
    }
    start_tikv(&sim, &job, &a).await
}

/// The tags BR puts on a volume it creates from snapshot `snapshot_id` (BR `CreateVolumes`):
/// `TiDBCluster-BR=new`, `ebs.csi.aws.com/cluster=true`, `snapshot/createdFromSnapshotId`, and
/// every tag of the snapshot not under `snapshot/` copied as `snapshot/{key}`.
pub fn br_volume_tags(
    snapshot_id: &str,
    snapshot_tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = snapshot_tags
        .iter()
        .filter(|(k, _)| !k.starts_with("snapshot/"))
        .map(|(k, v)| (format!("snapshot/{k}"), v.clone()))
        .collect();
    tags.extend([
        ("TiDBCluster-BR".to_string(), "new".to_string()),
        ("ebs.csi.aws.com/cluster".to_string(), "true".to_string()),
        (
            "snapshot/createdFromSnapshotId".to_string(),
            snapshot_id.to_string(),
        ),
    ]);
    tags
}

/// Tag `CSIVolumeName` written by the operator on a restored volume (upstream `PVCTagKey`).
pub const TAG_CSI_VOLUME_NAME: &str = "CSIVolumeName";
/// PV annotation naming the backed-up volume (upstream `AnnTemporaryVolumeID`).
const ANN_TEMPORARY_VOLUME_ID: &str = "temporary/volume-id";

/// Why the operator could not name the restored PVs and PVCs (upstream reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesFailed {
    /// Upstream's reason (`GetPVFailed`, `PVClaimRefNil`, `PVCNotFound`, `InvalidPVCName`).
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

fn names_failed(reason: &'static str, message: String) -> NamesFailed {
    NamesFailed { reason, message }
}

/// One restored PV and the PVC it is claimed by.
struct RestoredPv {
    volume_id: String,
    pv_name: String,
    pvc_name: String,
    pvc_namespace: String,
}

/// The operator's tags of the restored volumes, by restored volume id (upstream
/// `ProcessCSBPVCsAndPVs` names the PVs and PVCs, `AddVolumeTags` tags each volume with them):
/// `CSIVolumeName` and `kubernetes.io/created-for/pv/name` = the PV,
/// `kubernetes.io/created-for/pvc/name` and `…/pvc/namespace` = its claim.
///
/// The backup's PV of each volume (`temporary/volume-id`) and its PVC are taken over. When the
/// target namespace or TidbCluster name differs from the backup's (`resetMetadataAndStatus`),
/// the PVC goes to `target_ns` and its name's `{tc}-tikv-N` ends in the target's name, and the PV
/// gets a new name `pvc-{uuid}` (upstream: a random UUID; here one made of the Restore's `uid`
/// and the volume's position). Then the PVCs of each volume name are numbered 0..n in order
/// (`resetPVCSequence`).
pub fn operator_volume_tags(
    backup: &CloudSnapBackup,
    restored: &BTreeMap<String, String>,
    target_tc: &str,
    target_ns: &str,
    uid: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>, NamesFailed> {
    let k8s = &backup.kubernetes;
    let backup_tc = k8s
        .crd_tidb_cluster
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_str).map(String::from);
    let mut pvs = Vec::new();
    for (n, (backup_volume, restored_volume)) in restored.iter().enumerate() {
        let pv = k8s
            .pvs
            .iter()
            .find(|pv| {
                pv.pointer("/metadata/annotations")
                    .and_then(|a| a.get(ANN_TEMPORARY_VOLUME_ID))
                    .and_then(Value::as_str)
                    == Some(backup_volume.as_str())
            })
            .ok_or_else(|| {
                names_failed(
                    "GetPVFailed",
                    format!("pv with volume id {backup_volume} not found"),
                )
            })?;
        let pv_name = text(pv, "/metadata/name").unwrap_or_default();
        let (Some(claim_name), claim_ns) = (
            text(pv, "/spec/claimRef/name"),
            text(pv, "/spec/claimRef/namespace").unwrap_or_default(),
        ) else {
            return Err(names_failed(
                "PVClaimRefNil",
                format!("pv {pv_name} claimRef is nil"),
            ));
        };
        let pvc = k8s
            .pvcs
            .iter()
            .find(|pvc| text(pvc, "/metadata/name").as_deref() == Some(claim_name.as_str()))
            .ok_or_else(|| {
                names_failed(
                    "PVCNotFound",
                    format!("pvc {claim_ns}/{claim_name} not found"),
                )
            })?;
        let pvc_ns = text(pvc, "/metadata/namespace").unwrap_or_default();
        let mut restored_pv = RestoredPv {
            volume_id: restored_volume.clone(),
            pv_name,
            pvc_name: claim_name,
            pvc_namespace: claim_ns,
        };
        if target_ns != pvc_ns || target_tc != backup_tc {
            restored_pv.pvc_name = rename_statefulset(
                &restored_pv.pvc_name,
                &format!("{backup_tc}-tikv"),
                &format!("{target_tc}-tikv"),
            );
            restored_pv.pvc_namespace = target_ns.to_string();
            restored_pv.pv_name = format!("pvc-{}{n:012x}", uid.get(..24).unwrap_or(uid));
        }
        pvs.push(restored_pv);
    }
    resequence(&format!("{target_tc}-tikv"), &mut pvs)?;
    Ok(pvs
        .into_iter()
        .map(|pv| {
            let tags = BTreeMap::from([
                (TAG_CSI_VOLUME_NAME.to_string(), pv.pv_name.clone()),
                (TAG_PV_NAME.to_string(), pv.pv_name),
                (TAG_PVC_NAME.to_string(), pv.pvc_name),
                (TAG_PVC_NAMESPACE.to_string(), pv.pvc_namespace),
            ]);
            (pv.volume_id, tags)
        })
        .collect())
}

/// Splits `{head}-{N}` into `head` and `N` (upstream matches `-([0-9]+)$`).
fn ordinal_suffix(name: &str) -> Option<(&str, usize)> {
    let (head, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head, digits.parse().ok()?))
}

/// `{x}{from}-{N}` → `{x}{to}-{N}`; other names unchanged (upstream `resetMetadataAndStatus`).
fn rename_statefulset(pvc: &str, from: &str, to: &str) -> String {
    match ordinal_suffix(pvc) {
        Some((head, n)) if head.ends_with(from) => {
            format!("{}{to}-{n}", &head[..head.len() - from.len()])
        }
        _ => pvc.to_string(),
    }
}

/// Upstream `resetPVCSequence`: PVC names must be `{volume}-{sts}-{N}`; per volume name, the
/// PVCs sorted by N are renumbered 0, 1, ...
fn resequence(sts: &str, pvs: &mut [RestoredPv]) -> Result<(), NamesFailed> {
    let suffix = format!("-{sts}");
    let mut groups: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, pv) in pvs.iter().enumerate() {
        let parsed = ordinal_suffix(&pv.pvc_name).and_then(|(head, n)| {
            let volume = head.strip_suffix(&suffix)?;
            (!volume.is_empty()).then(|| (volume.to_string(), n))
        });
        let Some((volume, n)) = parsed else {
            return Err(names_failed(
                "InvalidPVCName",
                format!(
                    "pvc name {} doesn't match regex ^(.+)-{sts}-(\\d+)$",
                    pv.pvc_name
                ),
            ));
        };
        groups.entry(volume).or_default().push((n, i));
    }
    for (volume, mut members) in groups {
        members.sort_unstable();
        for (want, (n, i)) in members.into_iter().enumerate() {
            if want != n {
                pvs[i].pvc_name = format!("{volume}{suffix}-{want}");
            }
        }
    }
    Ok(())
}

/// What the operator does once the volumes are restored (`VolumeComplete`), by `spec.warmup` and
/// `spec.warmupStrategy` (upstream `restore_manager.go` `volumeSnapshotRestore`,
/// `startTiKVIfNeeded`, `syncRestoreJob`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterVolumes {
    /// No warmup: annotate the TidbCluster, TiKV starts → `TikvComplete`.
    StartTikv,
    /// `warmup: sync`: warmup jobs on the PVCs (`WarmUpStarted`, `WarmUpComplete`), then the
    /// annotation and `TikvComplete`; with `check-wal-only`, `Complete` instead of TiKV
    /// (`checkWALOnlyFinish`, only on this path).
    Sync {
        /// `warmupStrategy: check-wal-only`.
        check_wal_only: bool,
    },
    /// `warmup: async`: the annotation, then warmup jobs on the running TiKV pods
    /// (`WarmUpStarted`), `TikvComplete`, and `WarmUpComplete` only after it.
    Async,
    /// `check-wal-only` without `warmup: sync`: `startTiKVIfNeeded` never annotates, so TiKV pods
    /// never exist; async warmup waits for them (`warmUpTiKVVolumesAsync`: "wait all TiKV pods
    /// started") and no warmup waits for TiKVs to be available: the member stays at
    /// `VolumeComplete` for ever.
    Stalled,
}

impl AfterVolumes {
    /// The plan for `warmup` and `strategy` (as in the member's spec).
    pub fn of(warmup: &str, strategy: &str) -> Self {
        let check_wal_only = strategy == CHECK_WAL_ONLY;
        match warmup {
            "sync" => Self::Sync { check_wal_only },
            _ if check_wal_only => Self::Stalled,
            "async" => Self::Async,
            _ => Self::StartTikv,
        }
    }
}

/// `warmupStrategy: check-wal-only`.
pub const CHECK_WAL_ONLY: &str = "check-wal-only";

/// Whether a failed warmup job fails the restore: only with `check-wal-only`
/// (`waitWarmUpJobsFinished`); otherwise a failed job counts as finished → `WarmUpComplete`.
pub fn warmup_failure_fails_restore(strategy: &str) -> bool {
    strategy == CHECK_WAL_ONLY
}

/// The warmup jobs: run for the warmup duration; `Some(false)` when they failed and that fails the
/// restore (`Failed` reported), `Some(true)` when they finished (failed ones included, as upstream
/// counts them), never returns on `hang`.
async fn run_warmup_jobs(sim: &Sim, job: &Job, plan: FaultPlan, strategy: &str) -> bool {
    tokio::time::sleep(sim.cfg.warmup_duration + plan.delay).await;
    match plan.outcome {
        Some(FaultOutcome::Fail) if warmup_failure_fails_restore(strategy) => {
            job.report(failed(
                SIMULATED_FAULT,
                "simulated: warmup job failed (check-wal-only found a corrupted WAL)",
            ));
            false
        }
        Some(FaultOutcome::Fail) => {
            tracing::info!(
                job = %job.name,
                "simulated warmup job failed: counted as finished, as upstream does for {strategy}"
            );
            true
        }
        Some(FaultOutcome::Hang) => std::future::pending().await,
        _ => true,
    }
}

async fn start_tikv(sim: &Sim, job: &Job, a: &VolumeArgs) -> JobEnd {
    let step = sim.cfg.step_delay;
    match AfterVolumes::of(&a.warmup, &a.strategy) {
        AfterVolumes::Sync { check_wal_only } => {
            job.report(CondReport::new(cond::WARMUP_STARTED));
            if !run_warmup_jobs(sim, job, a.warmup_plan, &a.strategy).await {
                return JobEnd::Failed;
            }
            job.report(CondReport::new(cond::WARMUP_COMPLETE));
            if check_wal_only {
                job.report(CondReport::new(cond::COMPLETE).message("WAL check passed"));
                return JobEnd::Succeeded;
            }
            job.report(Report::AnnotateVolumesReady);
            tokio::time::sleep(step).await;
            job.report(Report::TikvStarted);
            JobEnd::Succeeded
        }
        AfterVolumes::Async => {
            job.report(Report::AnnotateVolumesReady);
            // the warmup jobs need every TiKV pod running
            tokio::time::sleep(step).await;
            job.report(CondReport::new(cond::WARMUP_STARTED));
            let tikv = async {
                tokio::time::sleep(step).await;
                job.report(Report::TikvStarted);
            };
            let ((), warmed) =
                tokio::join!(tikv, run_warmup_jobs(sim, job, a.warmup_plan, &a.strategy));
            if !warmed {
                return JobEnd::Failed;
            }
            // queued after TikvStarted: WarmUpComplete is written after TikvComplete
            job.report(CondReport::new(cond::WARMUP_COMPLETE));
            JobEnd::Succeeded
        }
        AfterVolumes::Stalled => {
            tracing::info!(
                job = %job.name,
                warmup = %a.warmup,
                "check-wal-only without sync warmup: TiKV is never started, the restore stays at VolumeComplete (as upstream)"
            );
            JobEnd::Succeeded
        }
        AfterVolumes::StartTikv => {
            job.report(Report::AnnotateVolumesReady);
            tokio::time::sleep(step).await;
            job.report(Report::TikvStarted);
            JobEnd::Succeeded
        }
    }
}

fn start_restore_data(
    m: &Member<'_>,
    tc: &DynamicObject,
    backup: &CloudSnapBackup,
    plan: FaultPlan,
) {
    let pd = pd_key(tc);
    let holder = m.key.holder();
    let resolved_ts = backup.cluster_info.as_ref().map_or(0, |i| i.resolved_ts);
    let sim = m.sim.clone();
    m.start_job(
        "restore-data",
        format!("restore-data-{}", m.key.name),
        Vec::new(),
        move |job, _| async move {
            tokio::time::sleep(sim.cfg.step_delay).await;
            job.report(CondReport::new(cond::RUNNING).message("restore-data job running"));
            tokio::time::sleep(sim.cfg.step_delay + plan.delay).await;
            match plan.outcome {
                Some(FaultOutcome::Fail) => {
                    job.report(failed(SIMULATED_FAULT, "simulated: restore-data failed"));
                    return JobEnd::Failed;
                }
                Some(FaultOutcome::Hang) => std::future::pending::<()>().await,
                _ => {}
            }
            sim.pd.record_restore_data(&pd, &holder, resolved_ts);
            job.report(
                CondReport::new(cond::DATA_COMPLETE)
                    .message(format!("data recovered to resolved_ts={resolved_ts}")),
            );
            JobEnd::Succeeded
        },
        |s| &mut s.restore_data,
    );
}

/// `restore-finish`: leave recovery mode (only when the TidbCluster is still in it), then `Complete`.
async fn restore_finish(
    m: &Member<'_>,
    tc: &DynamicObject,
    plan: FaultPlan,
) -> Result<Next, SimError> {
    match plan.outcome {
        Some(FaultOutcome::Invalid) => {
            return m
                .invalid_by_fault("restore-finish")
                .await
                .map(|_| Next::Done);
        }
        Some(FaultOutcome::Hang) => return Ok(Next::Poll),
        _ => {}
    }
    let finished = m.state(|s| s.finish_done);
    if !finished && !tc_bool(tc, "/spec/recoveryMode") {
        // the real operator does nothing here, and the Restore never completes
        return Ok(Next::Poll);
    }
    if let Some(left) = m.delay_left("restore-finish", m.sim.cfg.step_delay + plan.delay) {
        return Ok(Next::After(left));
    }
    if plan.outcome == Some(FaultOutcome::Fail) {
        return m
            .faulted(cond::FAILED, "simulated: restore-finish failed")
            .await
            .map(|_| Next::Done);
    }
    if !finished {
        update_tc(m, tc, |o| {
            let mut changed = false;
            if let Some(spec) = o.data.get_mut("spec").and_then(Value::as_object_mut) {
                changed |=
                    spec.insert("recoveryMode".to_string(), json!(false)) != Some(json!(false));
            }
            if let Some(a) = o.metadata.annotations.as_mut() {
                changed |= a.remove(VOLUMES_READY_ANNOTATION).is_some();
            }
            changed
        })
        .await?;
        m.state(|s| s.finish_done = true);
    }
    m.condition(cond::COMPLETE, "", "TiKV restarted, recovery mode off")
        .await
        .map(|_| Next::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cloud::VolumeInfo;

    /// A backup of TidbCluster `basic` in `ns`: stores 4 and 7 (scaled in: ordinals 0 and 2),
    /// each with a `tikv` and a `raft` volume.
    fn backup() -> CloudSnapBackup {
        let tc = json!({
            "metadata": {"name": "basic", "namespace": "ns"},
            "spec": {"tikv": {"replicas": 2}},
            "status": {"tikv": {"stores": {"4": {"id": "4"}, "7": {"id": "7"}}}},
        });
        let vol = |id: &str, store: u64, ordinal: u64, name: &str| VolumeInfo {
            id: id.to_string(),
            az: "us-west-2a".to_string(),
            size_gib: 10,
            snapshot_id: None,
            state: "available".to_string(),
            tags: BTreeMap::from([
                (TAG_STORE.to_string(), store.to_string()),
                (TAG_VOLUME_NAME.to_string(), name.to_string()),
                (
                    TAG_PVC_NAME.to_string(),
                    format!("{name}-basic-tikv-{ordinal}"),
                ),
                (TAG_PV_NAME.to_string(), format!("pvc-backup-{id}")),
            ]),
        };
        let vols = [
            vol("vol-a", 4, 0, "tikv"),
            vol("vol-b", 4, 0, "raft"),
            vol("vol-c", 7, 2, "tikv"),
            vol("vol-d", 7, 2, "raft"),
        ];
        meta::cluster_meta(&tc, &vols).expect("clustermeta")
    }

    fn restored() -> BTreeMap<String, String> {
        ["a", "b", "c", "d"]
            .iter()
            .map(|x| (format!("vol-{x}"), format!("vol-new-{x}")))
            .collect()
    }

    const UID: &str = "0123abcd-0000-4000-8000-00000000cafe";

    fn tag<'a>(
        tags: &'a BTreeMap<String, BTreeMap<String, String>>,
        vol: &str,
        k: &str,
    ) -> &'a str {
        tags[vol][k].as_str()
    }

    #[test]
    fn the_operator_tags_restored_volumes_with_upstreams_pv_and_pvc_names() {
        // same namespace and TidbCluster name: the backup's PV names; PVCs renumbered 0..n
        let tags = operator_volume_tags(&backup(), &restored(), "basic", "ns", UID).expect("tags");
        assert_eq!(tags.len(), 4);
        for (vol, pvc) in [
            ("vol-new-a", "tikv-basic-tikv-0"),
            ("vol-new-b", "raft-basic-tikv-0"),
            ("vol-new-c", "tikv-basic-tikv-1"),
            ("vol-new-d", "raft-basic-tikv-1"),
        ] {
            assert_eq!(
                tags[vol].keys().map(String::as_str).collect::<Vec<_>>(),
                [
                    TAG_CSI_VOLUME_NAME,
                    TAG_PV_NAME,
                    TAG_PVC_NAME,
                    TAG_PVC_NAMESPACE
                ]
            );
            assert_eq!(tag(&tags, vol, TAG_PVC_NAME), pvc, "{vol}");
            assert_eq!(tag(&tags, vol, TAG_PVC_NAMESPACE), "ns");
            assert_eq!(
                tag(&tags, vol, TAG_CSI_VOLUME_NAME),
                tag(&tags, vol, TAG_PV_NAME)
            );
        }
        assert_eq!(tag(&tags, "vol-new-a", TAG_PV_NAME), "pvc-backup-vol-a");

        // another namespace: the PVCs move there, the PVs get new names
        let tags = operator_volume_tags(&backup(), &restored(), "basic", "ns2", UID).expect("tags");
        assert_eq!(tag(&tags, "vol-new-c", TAG_PVC_NAME), "tikv-basic-tikv-1");
        assert_eq!(tag(&tags, "vol-new-c", TAG_PVC_NAMESPACE), "ns2");
        let pv = tag(&tags, "vol-new-c", TAG_PV_NAME);
        assert!(
            pv.starts_with("pvc-0123abcd-0000-4000-8000-") && pv.len() == 40,
            "{pv}"
        );
        let names: std::collections::BTreeSet<&str> =
            tags.keys().map(|v| tag(&tags, v, TAG_PV_NAME)).collect();
        assert_eq!(names.len(), 4, "one PV each");

        // another TidbCluster name: `{volume}-{tc}-tikv-N` names the target
        let tags = operator_volume_tags(&backup(), &restored(), "other", "ns", UID).expect("tags");
        assert_eq!(tag(&tags, "vol-new-b", TAG_PVC_NAME), "raft-other-tikv-0");
        assert_eq!(tag(&tags, "vol-new-d", TAG_PVC_NAME), "raft-other-tikv-1");
    }

    #[test]
    fn restored_pv_names_fail_as_upstream_without_the_backups_pv() {
        let mut restored = restored();
        restored.insert("vol-x".into(), "vol-new-x".into());
        let err = operator_volume_tags(&backup(), &restored, "basic", "ns", UID).unwrap_err();
        assert_eq!(err.reason, "GetPVFailed");
    }

    #[test]
    fn br_tags_a_new_volume_without_the_operators_tags() {
        let snap = BTreeMap::from([
            (TAG_PVC_NAME.to_string(), "tikv-basic-tikv-0".to_string()),
            ("snapshot/old".to_string(), "x".to_string()),
        ]);
        let tags = br_volume_tags("snap-1", &snap);
        assert_eq!(
            tags,
            BTreeMap::from([
                ("TiDBCluster-BR".to_string(), "new".to_string()),
                ("ebs.csi.aws.com/cluster".to_string(), "true".to_string()),
                (
                    "snapshot/createdFromSnapshotId".to_string(),
                    "snap-1".to_string()
                ),
                (
                    format!("snapshot/{TAG_PVC_NAME}"),
                    "tikv-basic-tikv-0".to_string()
                ),
            ])
        );
    }

    #[test]
    fn check_wal_only_finishes_only_on_the_sync_path() {
        assert_eq!(
            AfterVolumes::of("sync", CHECK_WAL_ONLY),
            AfterVolumes::Sync {
                check_wal_only: true
            }
        );
        assert_eq!(
            AfterVolumes::of("async", CHECK_WAL_ONLY),
            AfterVolumes::Stalled
        );
        assert_eq!(AfterVolumes::of("", CHECK_WAL_ONLY), AfterVolumes::Stalled);
    }

    #[test]
    fn every_other_strategy_starts_tikv() {
        for strategy in ["hybrid", "fio", "fsr"] {
            assert_eq!(
                AfterVolumes::of("sync", strategy),
                AfterVolumes::Sync {
                    check_wal_only: false
                }
            );
            assert_eq!(AfterVolumes::of("async", strategy), AfterVolumes::Async);
            assert_eq!(AfterVolumes::of("", strategy), AfterVolumes::StartTikv);
        }
    }

    #[test]
    fn only_check_wal_only_fails_the_restore_on_a_failed_warmup_job() {
        assert!(warmup_failure_fails_restore(CHECK_WAL_ONLY));
        for strategy in ["hybrid", "fio", "fsr"] {
            assert!(!warmup_failure_fails_restore(strategy), "{strategy}");
        }
    }
}
