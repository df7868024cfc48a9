//! Step `backup-delete-finish`: verify with EC2 and S3 that what the policy said to delete is
//! gone; remove the catalog document, or keep it `CleanFailed` with what remains.

use crate::backup::judge::Failure;
use crate::backup::status::DeletionRecord;
use crate::backup::status::Remains;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::steps::Env;
use crate::catalog::Catalog;
use crate::delete::member::CleanBy;
use crate::delete::spec::DeleteRequest;
use crate::delete::status::DeleteResult;
use crate::delete::status::REPORT_LIMIT;
use crate::delete::status::manifest_key;
use crate::delete::steps::context::DeleteStepInput;
use crate::delete::steps::context::load_manifest;
use crate::delete::steps::start::describe_all;
use crate::error::StepError;
use crate::member::cond;
use crate::ports::DataPlanes;
use crate::ports::ObjectStore;
use crate::ports::Volumes;
use crate::tags::backup_tag;
use crate::tags::owned_by;
use crate::time::now_ms;
use chrono::Utc;
use std::collections::BTreeSet;

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
            remains: Remains::default(),
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
        remains: Remains {
            foreign_members: ctx
                .members
                .iter()
                .filter(|m| m.clean_by == CleanBy::Foreign)
                .map(|m| m.member.display())
                .collect(),
            ..Remains::default()
        },
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
                    .remains
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
                result.remains.remaining_snapshots.push(id.clone());
            } else {
                result.remains.not_owned.push(id.clone());
            }
        }
        result.snapshots_deleted = expected.len() - existing.len();
        if !result.remains.not_owned.is_empty() {
            tracing::warn!(not_owned = ?result.remains.not_owned, "snapshots listed in backupmeta that are not this backup's were left");
        }
        if result.remains.anything_remains() {
            result.failure = Some(Failure::new(
                "SnapshotsRemain",
                format!(
                    "cleanPolicy {} should have removed them, but {} snapshot(s) and {} object(s) remain: {}",
                    ctx.clean_policy,
                    result.remains.remaining_snapshots.len(),
                    result.remains.remaining_objects.len(),
                    result
                        .remains
                        .remaining_snapshots
                        .iter()
                        .chain(&result.remains.remaining_objects)
                        .take(10)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        result.remains.truncate(REPORT_LIMIT);
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
                    &crate::backup::status::backup_key(&ctx.namespace, &ctx.name),
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
                remains: result.remains.clone(),
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
                    // Condition and phase, as the original shows a failed cleanup.
                    d.status.progress.set_condition(
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
