//! Step `backup-delete-start`: the deletion lock, the manifest, and the members asked to go.

use crate::backup::member::snapshot_ids;
use crate::backup::spec::BackupRequest;
use crate::backup::status::DeletionRecord;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::status::vbk;
use crate::backup::steps::Env;
use crate::catalog::Catalog;
use crate::delete::member::BACKUP_PROTECTION_FINALIZER;
use crate::delete::member::CleanBy;
use crate::delete::member::DeleteMember;
use crate::delete::member::policy_deletes;
use crate::delete::spec::DeleteRequest;
use crate::delete::status::Manifest;
use crate::delete::status::manifest_key;
use crate::delete::steps::context::DeleteContext;
use crate::delete::steps::context::DeleteStartInput;
use crate::delete::steps::context::DeleteStartOutput;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Precondition;
use crate::ports::SnapshotInfo;
use crate::ports::Volumes;
use crate::tags::TAG_RETAINED;
use crate::tags::TAG_STACK;
use crate::tags::backup_tag;
use crate::tags::owned_by;
use crate::time::now_ms;
use chrono::Utc;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
            crate::backup::status::backup_key(ns, name)
        )));
    }
    // The lock first: a test-and-set on the document's ETag, so of two deletions started at
    // once (the CLI, the retention sweep, a console) exactly one gets past here.
    let doc = take_lock(&catalog, ns, name, &input.execution).await?;
    let backup = doc.request();
    // How the backup ended, not its phase: after a failed deletion that is `CleanFailed`.
    let failed = doc.status.progress.outcome() == Some(vbk::FAILED);
    let known = env.planes.cluster_names();
    let policy = backup.clean_policy().to_string();
    let rate = req
        .options
        .snapshots_per_second
        .filter(|r| *r > 0.0)
        .unwrap_or_else(|| backup.snapshots_delete_ratio());

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
        let prefix = backup.member_prefix(&m.k8s_cluster_name);
        let clean_by = if !known.contains(&m.k8s_cluster_name) {
            CleanBy::Brfed
        } else if data_deleted && !foreign_snapshots.is_empty() {
            tracing::warn!(member = %m.display(), not_owned = ?foreign_snapshots, "backupmeta lists snapshots that are not the backup's: the data plane will not clean this member, brfed will");
            CleanBy::BrfedAfterRetain
        } else if data_deleted
            && !env
                .store
                .exists(backup.bucket(), &format!("{prefix}/backupmeta"))
                .await?
        {
            // The data plane's clean job deletes nothing without backupmeta (a member that failed
            // before BR wrote it, or one whose clean already ran): its clustermeta and manifests
            // would stay for ever, and the deletion could never end. They are under the prefix
            // this backup was given (and found unused at its start): brfed deletes them.
            tracing::info!(member = %m.display(), "no backupmeta: the data plane's clean deletes nothing, brfed deletes the member's objects once it is gone");
            CleanBy::BrfedAfterRetain
        } else {
            CleanBy::DataPlane
        };
        members.push(DeleteMember {
            bucket: backup.bucket().to_string(),
            prefix,
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
            match env
                .planes
                .patch_member_if(MemberKind::Backup, &m.member, uid, &patch)
                .await
            {
                Ok(()) => {}
                // Its data plane finished deleting it between the read and the patch (a member
                // whose clean already ran, on a deletion run again): nothing left to ask.
                Err(StepError::MemberMissing(_)) => continue,
                Err(e) => return Err(e),
            }
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
            deadline: crate::time::rfc3339(deadline),
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
            if !d.status.progress.is_terminal() && d.brfed.deletion.is_none() {
                return Err(StepError::BackupRunning(format!(
                    "{ns}/{name} is {} (execution {}); delete it once it is Complete or Failed",
                    d.status.progress.phase.as_deref().unwrap_or("Running"),
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
pub(crate) async fn describe_all<'a, V: Volumes>(
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
    backup.members()
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
