//! Step `backup-delete-snapshots`: brfed deletes the snapshots no data plane will clean up.

use crate::backup::steps::Env;
use crate::delete::member::DeleteMember;
use crate::delete::pacing::Pacing;
use crate::delete::pacing::SnapshotProgress;
use crate::delete::pacing::delete_paced;
use crate::delete::steps::context::DeleteStepInput;
use crate::delete::steps::context::context;
use crate::delete::steps::context::load_manifest;
use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::ObjectStore;
use crate::ports::SnapshotInfo;
use crate::ports::Volumes;
use crate::tags::backup_tag;
use crate::tags::owned_by;

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
