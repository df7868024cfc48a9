//! Deleting a federated backup (reference §4.2), as the `volume-backup-delete` state machine runs
//! it: take the deletion lock in the catalog (a conditional write: one deletion at a time), read
//! every member's `backupmeta` first (the data plane's clean job deletes it), delete the member
//! `Backup`s that are this backup's so that each data plane cleans up per `cleanPolicy`, wait
//! until they are gone or `CleanFailed`, delete the snapshots of members whose data plane no
//! longer exists (paced, with throttling backoff), then verify with EC2 and S3 that what the
//! policy said to delete is gone. The catalog document is removed when everything is accounted
//! for, and kept with a `CleanFailed` condition (and what remains) when not.
//!
//! Nothing that is not the backup's is deleted (`docs/safety.md`): a member object is deleted
//! only when it carries the backup's execution and namespace (else it is `foreignMembers`, left
//! with its data); a snapshot brfed deletes itself is read right before and deleted only when its
//! tags say it is this stack's and this backup's (else `notOwned`, left). A member whose
//! `backupmeta` lists a snapshot that is not the backup's is not left to its data plane's clean
//! job, which deletes whatever `backupmeta` lists: its `cleanPolicy` is set to `Retain` first and
//! brfed deletes what is the backup's itself ([`CleanBy::BrfedAfterRetain`]).

use crate::backup::Failure;
use crate::catalog::{CATALOG_PREFIX, Catalog, VolumeBackupDoc};
use crate::error::StepError;
use crate::member::{MemberRef, MemberView, cond};
use crate::orphans::{TAG_RETAINED, TAG_STACK, backup_tag, owned_by};
use crate::ports::{
    DataPlanes, MemberKind, ObjectStore, Observation, Precondition, SnapshotDeletion, SnapshotInfo,
    Volumes,
};
use crate::spec::BackupRequest;
use crate::status::{vbk, write_condition};
use crate::steps::{Env, now_ms, parse_time};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Key of the deletion manifest of backup `namespace/name`: the snapshot ids read from the
/// members' `backupmeta` before anything was deleted.
pub fn manifest_key(namespace: &str, name: &str) -> String {
    format!("{CATALOG_PREFIX}/deletions/{namespace}/{name}.json")
}

/// Longest list of remaining snapshot ids or object keys kept in a catalog document.
const REPORT_LIMIT: usize = 100;

/// What the deletion is asked: the backup, and brfed's options. All but `name` optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRequest {
    /// Federated backup name.
    pub name: String,
    /// Its namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Options.
    #[serde(default)]
    pub options: DeleteOptions,
}

fn default_namespace() -> String {
    "default".into()
}

/// brfed's options of a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteOptions {
    /// How long the data planes may take to clean up before the deletion is reported
    /// `DeletionDeadlineExceeded` (the original waits forever).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Snapshot deletions per second when brfed deletes snapshots itself (a data plane is gone);
    /// default: the backup's `snapshotsDeleteRatio`, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_per_second: Option<f64>,
}

fn default_timeout() -> u64 {
    6 * 3600
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self {
            timeout_seconds: default_timeout(),
            snapshots_per_second: None,
        }
    }
}

impl DeleteRequest {
    /// Parses and checks the execution input; every problem at once.
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let req: Self = serde_json::from_value(value)
            .map_err(|e| StepError::InvalidSpec(format!("deletion input: {e}")))?;
        let mut problems = Vec::new();
        if !crate::names::is_dns_subdomain(&req.name) {
            problems.push(format!("name `{}` is not a Kubernetes name", req.name));
        }
        if !crate::names::is_dns_label(&req.namespace) {
            problems.push(format!(
                "namespace `{}` is not a Kubernetes namespace",
                req.namespace
            ));
        }
        if req.options.timeout_seconds == 0
            || req.options.timeout_seconds > crate::spec::MAX_DEADLINE_SECONDS
        {
            problems.push(format!(
                "options.timeoutSeconds must be 1..={}",
                crate::spec::MAX_DEADLINE_SECONDS
            ));
        }
        if let Some(r) = req.options.snapshots_per_second
            && !(r > 0.0 && r <= 100.0)
        {
            problems.push("options.snapshotsPerSecond must be in (0, 100]".into());
        }
        if problems.is_empty() {
            Ok(req)
        } else {
            Err(StepError::InvalidSpec(problems.join("; ")))
        }
    }
}

/// Who removes a member's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CleanBy {
    /// Its data plane, when the member `Backup` is deleted (the original's path).
    DataPlane,
    /// brfed, because the data plane is no longer in the kubeconfig.
    Brfed,
    /// brfed, because the member's `backupmeta` lists snapshots that are not the backup's: its
    /// `cleanPolicy` was set to `Retain` (and the data plane's protection finalizer removed)
    /// before it was deleted, so that its clean job deletes nothing; brfed deletes the
    /// snapshots that are the backup's and the member's objects once it is gone.
    BrfedAfterRetain,
    /// Nobody: the member object of that name is not this backup's (another execution or
    /// namespace made it). Neither it nor anything of its data is touched; it is reported.
    Foreign,
}

impl CleanBy {
    /// Whether the member object is deleted in its data plane and watched until it is gone.
    fn in_data_plane(self) -> bool {
        matches!(self, Self::DataPlane | Self::BrfedAfterRetain)
    }

    /// Whether brfed deletes the member's snapshots and objects itself.
    fn by_brfed(self) -> bool {
        matches!(self, Self::Brfed | Self::BrfedAfterRetain)
    }
}

/// The data plane's finalizer on a member `Backup` whose `cleanPolicy` cleans (reference §4.2):
/// its controller removes it only after a clean, and only while `cleanPolicy` cleans.
pub const BACKUP_PROTECTION_FINALIZER: &str = "tidb.pingcap.com/backup-protection";

/// One member of the backup being deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMember {
    /// The member.
    pub member: MemberRef,
    /// Bucket of its data.
    pub bucket: String,
    /// Its S3 prefix.
    pub prefix: String,
    /// Who cleans up.
    pub clean_by: CleanBy,
    /// Whether `cleanPolicy` says its snapshots and objects go (`Delete`, or `OnFailure` on a
    /// failed member).
    pub data_deleted: bool,
    /// Snapshots named in its `backupmeta`.
    pub snapshots: usize,
}

/// The state a deletion execution carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteContext {
    /// Backup name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This execution.
    pub execution: String,
    /// When the data planes must be done (RFC 3339).
    pub deadline: String,
    /// Snapshot deletions per second brfed allows itself.
    pub snapshots_per_second: f64,
    /// The backup's `cleanPolicy`.
    pub clean_policy: String,
    /// Members.
    pub members: Vec<DeleteMember>,
}

/// The manifest: every member's snapshot ids, in member order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The deletion execution that wrote it (empty in manifests of older versions).
    #[serde(default)]
    pub execution: String,
    /// `members[i]` are the snapshot ids of context member `i`.
    pub members: Vec<Vec<String>>,
}

/// brfed's record of a deletion, in the catalog document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRecord {
    /// Execution that deletes (deleted) the backup.
    pub execution: String,
    /// When it was asked.
    pub requested_at: String,
    /// `Deleting` or `CleanFailed`.
    pub state: String,
    /// Snapshots that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_snapshots: Vec<String>,
    /// S3 objects that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_objects: Vec<String>,
    /// Snapshots the members' `backupmeta` lists that are not this stack's and this backup's:
    /// left (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<String>,
    /// Member objects of the backup's member names that are not the backup's: left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_members: Vec<String>,
}

/// Input of the start step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStartInput {
    /// The execution input (a [`DeleteRequest`]).
    pub input: Value,
    /// `$$.Execution.Id`.
    pub execution: String,
}

/// Output of the start step (the whole initial state).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStartOutput {
    /// Context.
    pub deletion: DeleteContext,
    /// Snapshots brfed itself has processed so far.
    pub cursor: usize,
}

/// Member's data is deleted by policy.
fn policy_deletes(policy: &str, member_phase: Option<&str>, backup_failed: bool) -> bool {
    match policy {
        "Delete" => true,
        "OnFailure" => backup_failed || member_phase.is_some_and(|p| p == cond::FAILED),
        _ => false,
    }
}

/// Snapshot ids in a `backupmeta` document (reference §5).
pub fn snapshot_ids(meta: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for store in meta
        .pointer("/tikv/stores")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for vol in store
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = vol.get("snapshot_id").and_then(Value::as_str)
                && !id.is_empty()
            {
                out.push(id.to_string());
            }
        }
    }
    out
}

/// Step `backup-delete-start`: checks the request and the backup, takes the deletion lock (the
/// catalog's deletion record, written only if no other execution holds it), writes the manifest,
/// marks the snapshots the policy keeps as retained, and deletes every member `Backup` that is
/// the backup's in the data planes that exist (after setting `cleanPolicy: Retain` on those whose
/// `backupmeta` lists snapshots that are not the backup's). Nothing is deleted when the backup is
/// missing, still running, or being deleted by another execution (`DeletionInProgress`).
pub async fn start<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &Env<'_, D, S>,
    volumes: &V,
    input: DeleteStartInput,
) -> Result<DeleteStartOutput, StepError> {
    let req = DeleteRequest::from_value(input.input)?;
    let (ns, name) = (req.namespace.as_str(), req.name.as_str());
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    if catalog.get(ns, name).await?.is_none() {
        return Err(StepError::BackupNotFound(format!(
            "{ns}/{name} is not in the catalog (s3://{}/{})",
            env.catalog_bucket,
            crate::catalog::backup_key(ns, name)
        )));
    }
    // The lock first: a test-and-set on the document's ETag, so of two deletions started at
    // once (the CLI, the retention sweep, a console) exactly one gets past here.
    let doc = take_lock(&catalog, ns, name, &input.execution).await?;
    let backup = doc.request();
    let failed = doc.status.phase.as_deref() == Some(vbk::FAILED);
    let known = env.planes.cluster_names();
    let policy = backup.clean_policy().to_string();
    let rate = req
        .options
        .snapshots_per_second
        .or_else(|| {
            backup
                .spec
                .template
                .get("snapshotsDeleteRatio")
                .and_then(Value::as_f64)
        })
        .filter(|r| *r > 0.0)
        .unwrap_or(1.0);

    // The manifest next: once a data plane's clean job ran, backupmeta is gone.
    let manifest = write_manifest(env, &backup, &doc, &input.execution).await?;
    let owner = backup_tag(ns, name);
    let infos = describe_all(volumes, manifest.members.iter().flatten()).await?;
    let mut members: Vec<DeleteMember> = Vec::new();
    for (i, m) in members_of(&backup, &doc).into_iter().enumerate() {
        let snaps = manifest.members.get(i).cloned().unwrap_or_default();
        let phase = doc
            .status
            .backups
            .iter()
            .find(|b| b.k8s_cluster_name == m.k8s_cluster_name)
            .map(|b| b.phase.as_str());
        let data_deleted = policy_deletes(&policy, phase, failed);
        let foreign_snapshots: Vec<&String> = snaps
            .iter()
            .filter(|id| {
                infos
                    .get(*id)
                    .is_some_and(|info| !owned_by(info, env.catalog_bucket, &owner))
            })
            .collect();
        let clean_by = if !known.contains(&m.k8s_cluster_name) {
            CleanBy::Brfed
        } else if data_deleted && !foreign_snapshots.is_empty() {
            tracing::warn!(member = %m.display(), not_owned = ?foreign_snapshots, "backupmeta lists snapshots that are not the backup's: the data plane will not clean this member, brfed will");
            CleanBy::BrfedAfterRetain
        } else {
            CleanBy::DataPlane
        };
        members.push(DeleteMember {
            bucket: backup.bucket().to_string(),
            prefix: backup.member_prefix(&m.k8s_cluster_name),
            clean_by,
            data_deleted,
            snapshots: snaps.len(),
            member: m,
        });
    }

    // Snapshots the policy keeps, marked so (`brfed orphans` leaves them unless asked).
    let kept: Vec<String> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.data_deleted)
        .flat_map(|(i, _)| manifest.members.get(i).into_iter().flatten())
        .filter(|id| {
            infos.get(*id).is_some_and(|info| {
                owned_by(info, env.catalog_bucket, &owner) && !info.tags.contains_key(TAG_RETAINED)
            })
        })
        .cloned()
        .collect();
    if !kept.is_empty() {
        volumes
            .tag_snapshots(
                &kept,
                // The stack's tag again: IAM lets brfed tag only with it, on its own snapshots.
                &[
                    (TAG_STACK.to_string(), env.catalog_bucket.to_string()),
                    (TAG_RETAINED.to_string(), now_ms()),
                ],
            )
            .await?;
    }

    // The member objects: only the backup's; the others are named and left with their data.
    for m in members.iter_mut().filter(|m| m.clean_by.in_data_plane()) {
        let Some(obj) = env.planes.get_member(MemberKind::Backup, &m.member).await? else {
            continue;
        };
        let view = MemberView::from_object(&obj);
        if view.execution.as_deref() != Some(doc.brfed.execution.as_str())
            || view.federation_namespace.as_deref() != Some(ns)
        {
            tracing::warn!(member = %m.member.display(), execution = ?view.execution, namespace = ?view.federation_namespace, "member object of that name is not this backup's: left");
            m.clean_by = CleanBy::Foreign;
            continue;
        }
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if m.clean_by == CleanBy::BrfedAfterRetain {
            let finalizers: Vec<&Value> = obj["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f.as_str() != Some(BACKUP_PROTECTION_FINALIZER))
                .collect();
            let patch = serde_json::json!({
                "metadata": {"finalizers": finalizers},
                "spec": {"cleanPolicy": "Retain"},
            });
            env.planes
                .patch_member_if(MemberKind::Backup, &m.member, uid, &patch)
                .await?;
        }
        env.planes
            .delete_member_if(MemberKind::Backup, &m.member, uid)
            .await?;
    }
    let deadline = Utc::now() + chrono::Duration::seconds(req.options.timeout_seconds as i64);
    Ok(DeleteStartOutput {
        deletion: DeleteContext {
            name: req.name,
            namespace: req.namespace,
            execution: input.execution,
            deadline: crate::status::rfc3339(deadline),
            snapshots_per_second: rate,
            clean_policy: policy,
            members,
        },
        cursor: 0,
    })
}

/// Takes the deletion lock of `ns/name` for `execution`: writes the catalog's deletion record
/// (`Deleting`) unless another execution's is there, as one conditional write. Returns the
/// document as locked. A retry of the same execution finds its own record and goes on.
async fn take_lock<S: ObjectStore>(
    catalog: &Catalog<'_, S, VolumeBackupDoc>,
    ns: &str,
    name: &str,
    execution: &str,
) -> Result<VolumeBackupDoc, StepError> {
    let now = now_ms();
    catalog
        .try_update(ns, name, |d| {
            if !d.status.is_terminal() && d.brfed.deletion.is_none() {
                return Err(StepError::BackupRunning(format!(
                    "{ns}/{name} is {} (execution {}); delete it once it is Complete or Failed",
                    d.status.phase.as_deref().unwrap_or("Running"),
                    d.brfed.execution
                )));
            }
            match &d.brfed.deletion {
                Some(x) if x.state == "Deleting" && x.execution == execution => Ok(false),
                Some(x) if x.state == "Deleting" => Err(StepError::DeletionInProgress(format!(
                    "{ns}/{name} is being deleted by {} (since {})",
                    x.execution, x.requested_at
                ))),
                _ => {
                    d.brfed.deletion = Some(DeletionRecord {
                        execution: execution.to_string(),
                        requested_at: now.clone(),
                        state: "Deleting".into(),
                        ..Default::default()
                    });
                    Ok(true)
                }
            }
        })
        .await
}

/// The deletion's manifest: this execution's own when it wrote one (a retry), else every
/// member's `backupmeta` now, with the ids of an earlier deletion's manifest kept (its data
/// planes may have deleted `backupmeta` since). Written with a precondition: created only if
/// absent, replaced only at the ETag read.
async fn write_manifest<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    backup: &BackupRequest,
    doc: &VolumeBackupDoc,
    execution: &str,
) -> Result<Manifest, StepError> {
    let key = manifest_key(&backup.metadata.namespace, &backup.metadata.name);
    let stored = env.store.get_json(env.catalog_bucket, &key).await?;
    let (mut manifest, precondition) = match stored {
        Some(v) => {
            let earlier: Manifest = serde_json::from_value(v.value)
                .map_err(|e| StepError::Internal(format!("manifest {key}: {e}")))?;
            if earlier.execution == execution {
                return Ok(earlier);
            }
            let mut now = read_manifest(env.store, backup, doc).await?;
            for (i, ids) in now.members.iter_mut().enumerate() {
                let mut merged = earlier.members.get(i).cloned().unwrap_or_default();
                merged.extend(
                    ids.drain(..)
                        .filter(|id| !earlier.members.get(i).is_some_and(|e| e.contains(id))),
                );
                *ids = merged;
            }
            (now, Precondition::IfMatch(v.etag))
        }
        None => (
            read_manifest(env.store, backup, doc).await?,
            Precondition::IfAbsent,
        ),
    };
    manifest.execution = execution.to_string();
    let value = serde_json::to_value(&manifest).map_err(|e| StepError::Internal(e.to_string()))?;
    env.store
        .put_json(env.catalog_bucket, &key, &value, precondition)
        .await?;
    Ok(manifest)
}

/// Every snapshot of `ids` that exists, read now, by id.
async fn describe_all<'a, V: Volumes>(
    volumes: &V,
    ids: impl Iterator<Item = &'a String>,
) -> Result<BTreeMap<String, SnapshotInfo>, StepError> {
    let ids: Vec<String> = ids.cloned().collect::<BTreeSet<_>>().into_iter().collect();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(200) {
        for info in volumes.describe_snapshots(chunk).await? {
            out.insert(info.id.clone(), info);
        }
    }
    Ok(out)
}

/// Members of a catalog backup: the recorded ones (older name forms keep working), else those
/// the spec implies.
fn members_of(backup: &BackupRequest, doc: &VolumeBackupDoc) -> Vec<MemberRef> {
    if !doc.brfed.members.is_empty() {
        return doc.brfed.members.clone();
    }
    backup
        .spec
        .clusters
        .iter()
        .map(|c| MemberRef::new(c, backup.name()))
        .collect()
}

async fn read_manifest<S: ObjectStore>(
    store: &S,
    backup: &BackupRequest,
    doc: &VolumeBackupDoc,
) -> Result<Manifest, StepError> {
    let mut members = Vec::new();
    for m in members_of(backup, doc) {
        let key = format!("{}/backupmeta", backup.member_prefix(&m.k8s_cluster_name));
        let ids = match store.get_json(backup.bucket(), &key).await? {
            Some(v) => snapshot_ids(&v.value),
            None => Vec::new(),
        };
        members.push(ids);
    }
    Ok(Manifest {
        execution: String::new(),
        members,
    })
}

/// Output of the observe step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteObserved {
    /// `met` (every member gone), `pending`, or `failed`.
    pub verdict: String,
    /// Members still present.
    pub remaining: Vec<String>,
    /// The failure, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Input of the observe, snapshot and finish steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStepInput {
    /// Context (absent when the start step itself failed).
    #[serde(default)]
    pub deletion: Option<DeleteContext>,
    /// Snapshots processed so far by brfed.
    #[serde(default)]
    pub cursor: usize,
    /// The execution input (for the failure path of the start step).
    #[serde(default)]
    pub input: Option<Value>,
    /// The failure, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
}

fn context(input: &DeleteStepInput) -> Result<&DeleteContext, StepError> {
    input
        .deletion
        .as_ref()
        .ok_or_else(|| StepError::Internal("step input has no `deletion`".into()))
}

/// Step `backup-delete-observe`: watches the members the data planes clean up until all are gone
/// (`met`), one is `CleanFailed` or the deadline passed (`failed`), or the budget is spent
/// (`pending`).
pub async fn observe<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: DeleteStepInput,
) -> Result<DeleteObserved, StepError> {
    let ctx = context(&input)?;
    let watched: Vec<MemberRef> = ctx
        .members
        .iter()
        .filter(|m| m.clean_by.in_data_plane())
        .map(|m| m.member.clone())
        .collect();
    let deadline = parse_time(&ctx.deadline)?;
    let budget = env
        .observe_budget
        .min((deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO));
    let done = |obs: &[Observation]| {
        obs.iter().all(|o| matches!(o, Observation::Absent)) || obs.iter().any(clean_failed)
    };
    let obs = if watched.is_empty() {
        Vec::new()
    } else {
        env.planes
            .observe_members(MemberKind::Backup, &watched, budget, &done)
            .await
    };
    let remaining: Vec<String> = watched
        .iter()
        .zip(&obs)
        .filter(|(_, o)| !matches!(o, Observation::Absent))
        .map(|(m, _)| m.display())
        .collect();
    if let Some((m, _)) = watched.iter().zip(&obs).find(|(_, o)| clean_failed(o)) {
        return Ok(DeleteObserved {
            verdict: "failed".into(),
            remaining,
            failure: Some(Failure::new(
                "CleanFailed",
                format!(
                    "{} is CleanFailed in its data plane (see its clean job); the member and its data stay until that is fixed",
                    m.display()
                ),
            )),
        });
    }
    if remaining.is_empty() {
        return Ok(DeleteObserved {
            verdict: "met".into(),
            remaining,
            failure: None,
        });
    }
    if Utc::now() >= deadline {
        return Ok(DeleteObserved {
            verdict: "failed".into(),
            failure: Some(Failure::new(
                "DeletionDeadlineExceeded",
                format!(
                    "still present after options.timeoutSeconds: {}",
                    remaining.join(", ")
                ),
            )),
            remaining,
        });
    }
    Ok(DeleteObserved {
        verdict: "pending".into(),
        remaining,
        failure: None,
    })
}

fn clean_failed(o: &Observation) -> bool {
    match o {
        Observation::Present(v) => {
            crate::member::MemberView::from_object(v).has(cond::CLEAN_FAILED)
        }
        _ => false,
    }
}

/// Output of the snapshot step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProgress {
    /// Snapshots processed so far (the next call starts there).
    pub cursor: usize,
    /// Whether every snapshot brfed must delete is processed.
    pub done: bool,
    /// Deleted by this call.
    pub deleted: usize,
    /// Already gone (`InvalidSnapshot.NotFound`) in this call.
    pub not_found: usize,
    /// Throttled attempts in this call (each retried after a backoff).
    pub throttled: usize,
    /// Snapshots left in this call because, read right before their deletion, they were not
    /// the owner's (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<String>,
}

/// Pacing of brfed's own snapshot deletions: the rate limit, the throttling backoff and the
/// per-invocation budget.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// How long one invocation may work.
    pub budget: Duration,
    /// First backoff after a throttled call (doubles up to `max_backoff`).
    pub first_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Attempts per snapshot before `Ec2Unavailable`.
    pub attempts: u32,
}

impl Pacing {
    /// This pacing with its budget cut to `left` (what the invocation has before its deadline,
    /// less a margin), when that is shorter.
    pub fn within(self, left: Duration) -> Self {
        Self {
            budget: self.budget.min(left),
            ..self
        }
    }
}

impl Default for Pacing {
    /// The data plane's clean job values (reference §4.2): 1 s doubling up to 1 min, 8 tries.
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(600),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            attempts: 8,
        }
    }
}

/// Step `backup-delete-snapshots`: for members brfed cleans itself (their data plane is gone, or
/// their `backupmeta` lists snapshots that are not the backup's) and whose policy deletes data,
/// deletes the manifest's snapshots that are this stack's and this backup's (each read right
/// before its deletion; the others are left) at no more than `snapshots_per_second` (EC2
/// throttling backed off, `NotFound` = done), and then the objects under their prefixes.
/// Resumable: returns `done: false` with a cursor when the budget is spent, never sleeping past
/// it.
pub async fn delete_snapshots<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &Env<'_, D, S>,
    volumes: &V,
    input: DeleteStepInput,
    pacing: Pacing,
) -> Result<SnapshotProgress, StepError> {
    let ctx = context(&input)?;
    let mut progress = SnapshotProgress {
        cursor: input.cursor,
        ..Default::default()
    };
    let ours: Vec<(usize, &DeleteMember)> = ctx
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.clean_by.by_brfed() && m.data_deleted)
        .collect();
    if ours.is_empty() {
        progress.done = true;
        return Ok(progress);
    }
    let manifest = load_manifest(env, ctx).await?;
    let ids: Vec<String> = ours
        .iter()
        .flat_map(|(i, _)| manifest.members.get(*i).into_iter().flatten().cloned())
        .collect();
    let owner = backup_tag(&ctx.namespace, &ctx.name);
    let owns = |info: &SnapshotInfo| owned_by(info, env.catalog_bucket, &owner);
    progress = delete_paced(
        volumes,
        &ids,
        &owns,
        ctx.snapshots_per_second,
        pacing,
        progress,
    )
    .await?;
    if progress.cursor < ids.len() {
        progress.done = false;
        return Ok(progress);
    }
    for (_, m) in &ours {
        for key in env
            .store
            .list_keys(&m.bucket, &format!("{}/", m.prefix))
            .await?
        {
            env.store.delete_object(&m.bucket, &key).await?;
        }
    }
    progress.done = true;
    Ok(progress)
}

/// Deletes `ids[progress.cursor..]` one at a time: each is read first (`DescribeSnapshots`) and
/// deleted only when `owns` says so (else left and listed in `not_owned`; a missing one counts
/// as `not_found`), at most `per_second` deletion calls per second (throttled attempts
/// included), backing off on throttling. Never waits past `pacing.budget`: before a read, and
/// before every wait for the next slot or for a backoff, it returns with the cursor at the
/// snapshot not yet done when that wait would end past the budget. Returns the advanced progress
/// (`done` when every id is processed).
pub async fn delete_paced<V: Volumes>(
    volumes: &V,
    ids: &[String],
    owns: &(dyn Fn(&SnapshotInfo) -> bool + Send + Sync),
    per_second: f64,
    pacing: Pacing,
    mut progress: SnapshotProgress,
) -> Result<SnapshotProgress, StepError> {
    let started = tokio::time::Instant::now();
    // `None`: no budget (Duration::MAX does not fit an Instant).
    let end = started.checked_add(pacing.budget);
    let past_budget = |at: tokio::time::Instant| end.is_some_and(|e| at >= e);
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let mut next_slot = tokio::time::Instant::now();
    while progress.cursor < ids.len() {
        // Stop before a call that could not start within the budget.
        if past_budget(next_slot.max(tokio::time::Instant::now())) {
            return Ok(progress);
        }
        let id = &ids[progress.cursor];
        // Read right before the delete: deleted only if it is still the owner's.
        let info = volumes
            .describe_snapshots(std::slice::from_ref(id))
            .await?
            .into_iter()
            .find(|i| &i.id == id);
        match info {
            None => {
                progress.not_found += 1;
                progress.cursor += 1;
                continue;
            }
            Some(info) if !owns(&info) => {
                tracing::warn!(snapshot = %id, tags = ?info.tags, "snapshot is not the owner's: left");
                if progress.not_owned.len() < REPORT_LIMIT {
                    progress.not_owned.push(id.clone());
                }
                progress.cursor += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut backoff = pacing.first_backoff;
        let mut attempt = 0;
        loop {
            // A wait (the rate's slot, or a throttling backoff) that would end past the budget
            // is not started: the next invocation takes this snapshot up again.
            if past_budget(next_slot) {
                return Ok(progress);
            }
            tokio::time::sleep_until(next_slot).await;
            next_slot = tokio::time::Instant::now() + interval;
            attempt += 1;
            match volumes.delete_snapshot(id).await? {
                SnapshotDeletion::Deleted => progress.deleted += 1,
                SnapshotDeletion::NotFound => progress.not_found += 1,
                SnapshotDeletion::Throttled if attempt < pacing.attempts => {
                    progress.throttled += 1;
                    tracing::info!(snapshot = %id, backoff_ms = backoff.as_millis() as u64, "EC2 throttled DeleteSnapshot; backing off");
                    next_slot = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(pacing.max_backoff);
                    continue;
                }
                SnapshotDeletion::Throttled => {
                    return Err(StepError::Ec2Unavailable(format!(
                        "DeleteSnapshot {id} throttled {attempt} times in a row"
                    )));
                }
            }
            break;
        }
        progress.cursor += 1;
    }
    progress.done = true;
    Ok(progress)
}

async fn load_manifest<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &DeleteContext,
) -> Result<Manifest, StepError> {
    let key = manifest_key(&ctx.namespace, &ctx.name);
    let v = env
        .store
        .get_json(env.catalog_bucket, &key)
        .await?
        .ok_or_else(|| StepError::CatalogUnavailable(format!("manifest {key} is missing")))?;
    serde_json::from_value(v.value).map_err(|e| StepError::Internal(format!("manifest {key}: {e}")))
}

/// Output of the finish step: the execution output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    /// Backup.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `Cleaned` (the catalog document is removed) or `CleanFailed` (it is kept, with what
    /// remains).
    pub result: String,
    /// Snapshots that are gone and were to go.
    pub snapshots_deleted: usize,
    /// Snapshots kept because `cleanPolicy` keeps them (`Retain`, `OnFailure` on a success).
    pub snapshots_retained: usize,
    /// Snapshots that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_snapshots: Vec<String>,
    /// Objects that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_objects: Vec<String>,
    /// Snapshots the members' `backupmeta` lists that still exist and are not this stack's
    /// and this backup's: left on purpose (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<String>,
    /// Member objects of the backup's member names that are not the backup's: left, with
    /// their data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_members: Vec<String>,
    /// Why the deletion failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Step `backup-delete-finish`: verifies with EC2 and S3 that what the policy deletes is gone,
/// then removes the catalog document (`Cleaned`) or records `CleanFailed` with what remains. On
/// the failure path (`failure` set) it records the failure without verifying.
pub async fn finish<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &Env<'_, D, S>,
    volumes: &V,
    input: DeleteStepInput,
) -> Result<DeleteResult, StepError> {
    let Some(ctx) = input.deletion.as_ref() else {
        // The start step failed: record it when the input names a backup we know.
        let failure = input
            .failure
            .clone()
            .unwrap_or_else(|| Failure::new("Internal", "no context and no failure"));
        let req = input
            .input
            .clone()
            .and_then(|v| DeleteRequest::from_value(v).ok());
        let (name, namespace) = req.map(|r| (r.name, r.namespace)).unwrap_or_default();
        return Ok(DeleteResult {
            name,
            namespace,
            result: "Rejected".into(),
            snapshots_deleted: 0,
            snapshots_retained: 0,
            remaining_snapshots: Vec::new(),
            remaining_objects: Vec::new(),
            not_owned: Vec::new(),
            foreign_members: Vec::new(),
            failure: Some(failure),
        });
    };
    let manifest = load_manifest(env, ctx).await?;
    let mut result = DeleteResult {
        name: ctx.name.clone(),
        namespace: ctx.namespace.clone(),
        result: "Cleaned".into(),
        snapshots_deleted: 0,
        snapshots_retained: 0,
        remaining_snapshots: Vec::new(),
        remaining_objects: Vec::new(),
        not_owned: Vec::new(),
        foreign_members: ctx
            .members
            .iter()
            .filter(|m| m.clean_by == CleanBy::Foreign)
            .map(|m| m.member.display())
            .collect(),
        failure: input.failure.clone(),
    };
    if result.failure.is_none() {
        let mut expected: Vec<String> = Vec::new();
        for (i, m) in ctx.members.iter().enumerate() {
            let ids = manifest.members.get(i).cloned().unwrap_or_default();
            if m.clean_by == CleanBy::Foreign {
                continue;
            }
            if m.data_deleted {
                expected.extend(ids);
                let keys = env
                    .store
                    .list_keys(&m.bucket, &format!("{}/", m.prefix))
                    .await?;
                result
                    .remaining_objects
                    .extend(keys.into_iter().map(|k| format!("s3://{}/{k}", m.bucket)));
            } else {
                result.snapshots_retained += ids.len();
            }
        }
        let existing = describe_all(volumes, expected.iter()).await?;
        let expected: BTreeSet<&String> = expected.iter().collect();
        let owner = backup_tag(&ctx.namespace, &ctx.name);
        for (id, info) in &existing {
            if owned_by(info, env.catalog_bucket, &owner) {
                result.remaining_snapshots.push(id.clone());
            } else {
                result.not_owned.push(id.clone());
            }
        }
        result.snapshots_deleted = expected.len() - existing.len();
        if !result.not_owned.is_empty() {
            tracing::warn!(not_owned = ?result.not_owned, "snapshots listed in backupmeta that are not this backup's were left");
        }
        if !result.remaining_snapshots.is_empty() || !result.remaining_objects.is_empty() {
            result.failure = Some(Failure::new(
                "SnapshotsRemain",
                format!(
                    "cleanPolicy {} should have removed them, but {} snapshot(s) and {} object(s) remain: {}",
                    ctx.clean_policy,
                    result.remaining_snapshots.len(),
                    result.remaining_objects.len(),
                    result
                        .remaining_snapshots
                        .iter()
                        .chain(&result.remaining_objects)
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        result.remaining_snapshots.truncate(REPORT_LIMIT);
        result.remaining_objects.truncate(REPORT_LIMIT);
        result.not_owned.truncate(REPORT_LIMIT);
    }
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    // Only the holder of the deletion lock removes or records anything.
    let holds_lock = |d: &VolumeBackupDoc| {
        d.brfed
            .deletion
            .as_ref()
            .is_some_and(|x| x.execution == ctx.execution)
    };
    match &result.failure {
        None => {
            if let Some((d, _)) = catalog.get(&ctx.namespace, &ctx.name).await?
                && !holds_lock(&d)
            {
                return Err(StepError::DeletionInProgress(format!(
                    "{}/{} is being deleted by another execution; this one leaves the record",
                    ctx.namespace, ctx.name
                )));
            }
            env.store
                .delete_object(
                    env.catalog_bucket,
                    &crate::catalog::backup_key(&ctx.namespace, &ctx.name),
                )
                .await?;
            env.store
                .delete_object(env.catalog_bucket, &manifest_key(&ctx.namespace, &ctx.name))
                .await?;
        }
        Some(f) => {
            result.result = "CleanFailed".into();
            let record = DeletionRecord {
                execution: ctx.execution.clone(),
                requested_at: String::new(),
                state: "CleanFailed".into(),
                remaining_snapshots: result.remaining_snapshots.clone(),
                remaining_objects: result.remaining_objects.clone(),
                not_owned: result.not_owned.clone(),
                foreign_members: result.foreign_members.clone(),
            };
            let (error, message) = (f.error.clone(), f.message());
            catalog
                .update(&ctx.namespace, &ctx.name, |d| {
                    if d.brfed.deletion.is_some() && !holds_lock(d) {
                        return false;
                    }
                    let requested_at = d
                        .brfed
                        .deletion
                        .as_ref()
                        .map(|x| x.requested_at.clone())
                        .unwrap_or_else(now_ms);
                    d.brfed.deletion = Some(DeletionRecord {
                        requested_at,
                        ..record.clone()
                    });
                    write_condition(
                        &mut d.status.conditions,
                        cond::CLEAN_FAILED,
                        Some(&error),
                        Some(&message),
                        Utc::now(),
                    );
                    true
                })
                .await?;
        }
    }
    Ok(result)
}

/// A deletion execution that was stopped or timed out (or failed outside its own failure path,
/// which records `CleanFailed` itself): its catalog record must not stay `Deleting`, which would
/// refuse every later deletion and stop retention of its schedule. Marks it `CleanFailed` with
/// the failure name; harmless for other executions.
pub async fn aborted<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    event: &crate::steps::ExecutionStatusChange,
) -> Result<crate::steps::AbortReport, StepError> {
    let d = &event.detail;
    let nothing = |detail: String| crate::steps::AbortReport {
        action: "nothing-to-do".into(),
        detail,
        teardown: None,
    };
    let Some(failure_name) = d.failure_name() else {
        return Ok(nothing(format!("status {}", d.status)));
    };
    let Some(req) = d
        .input_value()
        .and_then(|v| DeleteRequest::from_value(v).ok())
    else {
        return Ok(nothing("input is not a deletion request".into()));
    };
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    let Some((doc, _)) = catalog.get(&req.namespace, &req.name).await? else {
        return Ok(nothing(format!(
            "{}/{} is not in the catalog",
            req.namespace, req.name
        )));
    };
    let deleting = doc
        .brfed
        .deletion
        .as_ref()
        .is_some_and(|x| x.execution == d.execution_arn && x.state == "Deleting");
    if !deleting {
        return Ok(nothing(format!(
            "{}/{} is not being deleted by {}",
            req.namespace, req.name, d.execution_arn
        )));
    }
    let message = format!(
        "deletion execution {} ended {}{}; some members may still be cleaning up: delete the backup again",
        d.execution_arn,
        d.status,
        d.cause
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default()
    );
    let arn = d.execution_arn.clone();
    catalog
        .update(&req.namespace, &req.name, |doc| {
            let Some(x) = doc.brfed.deletion.as_mut() else {
                return false;
            };
            if x.execution != arn || x.state != "Deleting" {
                return false;
            }
            x.state = "CleanFailed".into();
            write_condition(
                &mut doc.status.conditions,
                cond::CLEAN_FAILED,
                Some(failure_name),
                Some(&message),
                Utc::now(),
            );
            true
        })
        .await?;
    Ok(crate::steps::AbortReport {
        action: "marked-clean-failed".into(),
        detail: format!("{}/{}: {failure_name}", req.namespace, req.name),
        teardown: None,
    })
}
