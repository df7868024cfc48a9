//! Deleting a federated backup (reference §4.2), as the `volume-backup-delete` state machine runs
//! it: read every member's `backupmeta` first (the data plane's clean job deletes it), delete the
//! member `Backup`s so that each data plane cleans up per `cleanPolicy`, wait until they are gone
//! or `CleanFailed`, delete the snapshots of members whose data plane no longer exists (paced, with
//! throttling backoff), then verify with EC2 and S3 that what the policy said to delete is gone.
//! The catalog document is removed when everything is accounted for, and kept with a `CleanFailed`
//! condition (and what remains) when not.

use crate::backup::Failure;
use crate::catalog::{CATALOG_PREFIX, Catalog, VolumeBackupDoc};
use crate::error::StepError;
use crate::member::{MemberRef, cond};
use crate::ports::{DataPlanes, MemberKind, ObjectStore, Observation, SnapshotDeletion, Volumes};
use crate::spec::BackupRequest;
use crate::status::{vbk, write_condition};
use crate::steps::{Env, now_ms, parse_time};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
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
}

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

/// Step `backup-delete-start`: checks the request and the backup, writes the manifest and the
/// catalog's deletion record, and deletes every member `Backup` in the data planes that exist.
/// Nothing is deleted when the backup is missing or still running.
pub async fn start<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: DeleteStartInput,
) -> Result<DeleteStartOutput, StepError> {
    let req = DeleteRequest::from_value(input.input)?;
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    let (doc, _) = catalog
        .get(&req.namespace, &req.name)
        .await?
        .ok_or_else(|| {
            StepError::BackupNotFound(format!(
                "{}/{} is not in the catalog (s3://{}/{})",
                req.namespace,
                req.name,
                env.catalog_bucket,
                crate::catalog::backup_key(&req.namespace, &req.name)
            ))
        })?;
    let ours = doc
        .brfed
        .deletion
        .as_ref()
        .is_some_and(|d| d.execution == input.execution);
    if !doc.status.is_terminal() && doc.brfed.deletion.is_none() {
        return Err(StepError::BackupRunning(format!(
            "{}/{} is {} (execution {}); delete it once it is Complete or Failed",
            req.namespace,
            req.name,
            doc.status.phase.as_deref().unwrap_or("Running"),
            doc.brfed.execution
        )));
    }
    if let Some(d) = &doc.brfed.deletion
        && !ours
        && d.state == "Deleting"
    {
        return Err(StepError::BackupRunning(format!(
            "{}/{} is being deleted by {}",
            req.namespace, req.name, d.execution
        )));
    }
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

    // The manifest first: once a data plane's clean job ran, backupmeta is gone.
    let manifest_key = manifest_key(&req.namespace, &req.name);
    let manifest = match env
        .store
        .get_json(env.catalog_bucket, &manifest_key)
        .await?
    {
        Some(v) if ours => serde_json::from_value::<Manifest>(v.value)
            .map_err(|e| StepError::Internal(format!("manifest {manifest_key}: {e}")))?,
        _ => read_manifest(env.store, &backup, &doc).await?,
    };
    let members: Vec<DeleteMember> = members_of(&backup, &doc)
        .into_iter()
        .zip(&manifest.members)
        .map(|(m, snaps)| {
            let phase = doc
                .status
                .backups
                .iter()
                .find(|b| b.k8s_cluster_name == m.k8s_cluster_name)
                .map(|b| b.phase.as_str());
            DeleteMember {
                bucket: backup.bucket().to_string(),
                prefix: backup.member_prefix(&m.k8s_cluster_name),
                clean_by: if known.contains(&m.k8s_cluster_name) {
                    CleanBy::DataPlane
                } else {
                    CleanBy::Brfed
                },
                data_deleted: policy_deletes(&policy, phase, failed),
                snapshots: snaps.len(),
                member: m,
            }
        })
        .collect();
    let manifest_value =
        serde_json::to_value(&manifest).map_err(|e| StepError::Internal(e.to_string()))?;
    env.store
        .put_json(
            env.catalog_bucket,
            &manifest_key,
            &manifest_value,
            crate::ports::Precondition::None,
        )
        .await?;
    let now = now_ms();
    let execution = input.execution.clone();
    catalog
        .update(&req.namespace, &req.name, |d| {
            if d.brfed
                .deletion
                .as_ref()
                .is_some_and(|x| x.execution == execution && x.state == "Deleting")
            {
                return false;
            }
            d.brfed.deletion = Some(DeletionRecord {
                execution: execution.clone(),
                requested_at: now.clone(),
                state: "Deleting".into(),
                ..Default::default()
            });
            true
        })
        .await?;
    for m in members.iter().filter(|m| m.clean_by == CleanBy::DataPlane) {
        env.planes
            .delete_member(MemberKind::Backup, &m.member)
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
    Ok(Manifest { members })
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
        .filter(|m| m.clean_by == CleanBy::DataPlane)
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Step `backup-delete-snapshots`: for members whose data plane is gone and whose policy deletes
/// data, deletes the manifest's snapshots at no more than `snapshots_per_second` (EC2 throttling
/// backed off, `NotFound` = done) and then the objects under their prefixes. Resumable: returns
/// `done: false` with a cursor when the budget is spent.
pub async fn delete_snapshots<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &Env<'_, D, S>,
    volumes: &V,
    input: DeleteStepInput,
    pacing: Pacing,
) -> Result<SnapshotProgress, StepError> {
    let ctx = context(&input)?;
    let mut progress = SnapshotProgress {
        cursor: input.cursor,
        done: false,
        deleted: 0,
        not_found: 0,
        throttled: 0,
    };
    let ours: Vec<(usize, &DeleteMember)> = ctx
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.clean_by == CleanBy::Brfed && m.data_deleted)
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
    progress = delete_paced(volumes, &ids, ctx.snapshots_per_second, pacing, progress).await?;
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

/// Deletes `ids[progress.cursor..]` one at a time, at most `per_second` calls per second
/// (throttled attempts included), backing off on throttling, `NotFound` = done; stops before a
/// call that could not start within `pacing.budget`. Returns the advanced progress (`done` when
/// every id is processed).
pub async fn delete_paced<V: Volumes>(
    volumes: &V,
    ids: &[String],
    per_second: f64,
    pacing: Pacing,
    mut progress: SnapshotProgress,
) -> Result<SnapshotProgress, StepError> {
    let started = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let mut next_slot = tokio::time::Instant::now();
    while progress.cursor < ids.len() {
        // Stop before a call that could not start within the budget.
        if next_slot.max(tokio::time::Instant::now()) - started >= pacing.budget {
            return Ok(progress);
        }
        let id = &ids[progress.cursor];
        let mut backoff = pacing.first_backoff;
        let mut attempt = 0;
        loop {
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
        failure: input.failure.clone(),
    };
    if result.failure.is_none() {
        let mut expected: Vec<String> = Vec::new();
        for (i, m) in ctx.members.iter().enumerate() {
            let ids = manifest.members.get(i).cloned().unwrap_or_default();
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
        let expected: Vec<String> = expected
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut remaining = Vec::new();
        for chunk in expected.chunks(200) {
            remaining.extend(volumes.existing_snapshots(chunk).await?);
        }
        result.snapshots_deleted = expected.len() - remaining.len();
        result.remaining_snapshots = remaining;
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
    }
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    match &result.failure {
        None => {
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
            };
            let (error, message) = (f.error.clone(), f.message());
            catalog
                .update(&ctx.namespace, &ctx.name, |d| {
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
