//! Lambda `restore-delete`: the deletion of a restore, as the original's deletion of a
//! `VolumeRestore` (`cleanVolumeRestore`): its member `Restore`s in the data planes, then its
//! catalog record, so that the name can be used again. The restored volumes, PVs and
//! TidbClusters are the restored TiKV now: never touched.

use crate::backup::steps::Env;
use crate::catalog::Catalog;
use crate::catalog::Rewrite;
use crate::catalog::read_modify_write;
use crate::error::StepError;
use crate::names;
use crate::ports::DataPlanes;
use crate::ports::Executions;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::restore::status::RestoreDeletion;
use crate::restore::status::RestoreGeneration;
use crate::restore::status::VolumeRestoreDoc;
use crate::restore::status::generation_key;
use crate::restore::status::restore_key;
use crate::restore::steps::cleanup::carries;
use crate::time::now_ms;
use serde::{Deserialize, Serialize};

/// What `restore-delete` is asked: the restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreDeleteInput {
    /// `VolumeRestore` name.
    pub name: String,
    /// Its namespace (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".into()
}

/// What a deletion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDeleteResult {
    /// `VolumeRestore` name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `Deleted`, or `AlreadyDeleted` (no record, and the last restore of that name was
    /// deleted: a repeat of a deletion that succeeded).
    pub result: String,
    /// The execution of the restore deleted.
    pub execution: String,
    /// Member `Restore`s deleted now (`cluster/namespace/name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members_deleted: Vec<String>,
    /// Member `Restore`s that were already gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members_gone: Vec<String>,
    /// `Restore`s of a member's name that are not this restore's (another execution's, or not
    /// brfed's): left as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_members: Vec<String>,
    /// Volumes a failed restore left (its record's leftovers): never deleted by a deletion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_left: Vec<String>,
    /// The execution name the next restore of this name gets (`brfed restore create` uses it).
    pub next_execution_name: String,
}

/// Deletes restore `namespace/name`: refused while its execution runs (`RestoreRunning`) or when
/// no restore of that name is in the catalog (`RestoreNotFound`; `AlreadyDeleted` when the last
/// one was deleted). Each member `Restore` is deleted only when it carries this restore's
/// execution and namespace, with a UID precondition; another one of that name is named and
/// left. The record goes, and the name's generation goes up, only once no member of its own
/// remains; otherwise the record keeps what remains (`brfed.deletion`) and the deletion fails by
/// name, to be run again.
pub async fn delete<D: DataPlanes, S: ObjectStore, E: Executions>(
    env: &Env<'_, D, S>,
    executions: &E,
    input: RestoreDeleteInput,
) -> Result<RestoreDeleteResult, StepError> {
    let (ns, name) = (input.namespace.as_str(), input.name.as_str());
    let mut problems = Vec::new();
    if !names::is_dns_subdomain(name) {
        problems.push(format!("name `{name}` is not a Kubernetes name"));
    }
    if !names::is_dns_label(ns) {
        problems.push(format!("namespace `{ns}` is not a Kubernetes namespace"));
    }
    if !problems.is_empty() {
        return Err(StepError::InvalidSpec(problems.join("; ")));
    }
    let catalog: Catalog<'_, S, VolumeRestoreDoc> = Catalog::new(env.store, env.catalog_bucket);
    let mut result = RestoreDeleteResult {
        name: name.into(),
        namespace: ns.into(),
        ..Default::default()
    };
    let Some((doc, _)) = catalog.get(ns, name).await? else {
        return match RestoreGeneration::read(env.store, env.catalog_bucket, ns, name).await? {
            Some((g, _)) => Ok(RestoreDeleteResult {
                result: "AlreadyDeleted".into(),
                execution: g.deleted_execution,
                next_execution_name: names::restore_execution_name(ns, name, g.next),
                ..result
            }),
            None => Err(StepError::RestoreNotFound(format!(
                "{ns}/{name} is not in the catalog (s3://{}/{})",
                env.catalog_bucket,
                restore_key(ns, name)
            ))),
        };
    };
    let execution = doc.brfed.execution.clone();
    result.execution = execution.clone();
    refuse_running(executions, &doc).await?;

    let known = env.planes.cluster_names();
    let mut remaining: Vec<String> = Vec::new();
    let mut first_error: Option<StepError> = None;
    for m in &doc.brfed.members {
        let at = m.display();
        if !known.contains(&m.k8s_cluster_name) {
            remaining.push(format!(
                "{at}: data plane {} is not in the kubeconfig",
                m.k8s_cluster_name
            ));
            first_error.get_or_insert(StepError::UnknownCluster(m.k8s_cluster_name.clone()));
            continue;
        }
        let obj = match env.planes.get_member(MemberKind::Restore, m).await {
            Ok(Some(obj)) => obj,
            Ok(None) => {
                result.members_gone.push(at);
                continue;
            }
            Err(e) => {
                remaining.push(format!("{at}: {e}"));
                first_error.get_or_insert(e);
                continue;
            }
        };
        if !carries(&obj, &execution, ns) {
            tracing::warn!(member = %at, "a Restore of the member's name that is not this restore's: left");
            result.foreign_members.push(at);
            continue;
        }
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        match env
            .planes
            .delete_member_if(MemberKind::Restore, m, uid)
            .await
        {
            Ok(true) => result.members_deleted.push(at),
            Ok(false) => result.members_gone.push(at),
            // Replaced between the read and the delete: not this restore's any more.
            Err(StepError::MemberReplaced(_)) => result.foreign_members.push(at),
            Err(e) => {
                remaining.push(format!("{at}: {e}"));
                first_error.get_or_insert(e);
            }
        }
    }
    result.volumes_left = doc
        .brfed
        .leftovers
        .iter()
        .flat_map(|l| l.volumes.iter().chain(&l.unconfirmed_volumes))
        .cloned()
        .collect();

    if let Some(e) = first_error {
        let record = RestoreDeletion {
            tried_at: now_ms(),
            error: e.name().to_string(),
            remaining_members: remaining.clone(),
        };
        catalog
            .update(ns, name, |d| {
                if d.brfed.execution != execution {
                    return false;
                }
                d.brfed.deletion = Some(record.clone());
                true
            })
            .await?;
        let message = format!(
            "{ns}/{name}: {} member Restore(s) of its own may remain ({}); the catalog record stays, run the deletion again",
            remaining.len(),
            remaining.join("; ")
        );
        return Err(same_kind(&e, message));
    }

    let generation = bump_generation(env, ns, name, &execution).await?;
    // The record of this restore only: another restore of the name made meanwhile keeps its own.
    match catalog.get(ns, name).await? {
        Some((d, _)) if d.brfed.execution != execution => {
            tracing::warn!(other = %d.brfed.execution, "the record is another restore's now: left");
        }
        Some(_) => {
            env.store
                .delete_object(env.catalog_bucket, &restore_key(ns, name))
                .await?
        }
        None => {}
    }
    result.result = "Deleted".into();
    result.next_execution_name = names::restore_execution_name(ns, name, generation);
    Ok(result)
}

/// `RestoreRunning` while the restore has not ended: its record is not `Complete` or `Failed`
/// and Step Functions says its execution is `RUNNING`. A record that never ended whose execution
/// did (stopped before `restore-abort` marked it) may be deleted.
async fn refuse_running<E: Executions>(
    executions: &E,
    doc: &VolumeRestoreDoc,
) -> Result<(), StepError> {
    if doc.status.progress.is_terminal() {
        return Ok(());
    }
    let (ns, name) = (&doc.metadata.meta.namespace, &doc.metadata.meta.name);
    let execution = &doc.brfed.execution;
    let status = match names::split_execution_arn(execution) {
        Some((state_machine, run)) => executions
            .describe(&state_machine, &run)
            .await?
            .map(|f| f.status),
        None => None,
    };
    match status.as_deref() {
        Some("RUNNING") => Err(StepError::RestoreRunning(format!(
            "{ns}/{name} is {} (execution {execution}); stop the execution (aws stepfunctions stop-execution) or let it end, then delete it",
            doc.status.progress.phase.as_deref().unwrap_or("Running"),
        ))),
        other => {
            tracing::warn!(%execution, status = ?other, "the record never ended but its execution is not running: deleting");
            Ok(())
        }
    }
}

/// Raises the generation of the name `ns/name` past the restore of `execution` (once: a repeat
/// for the same restore finds its own), with a precondition on the record as read. The new
/// generation.
async fn bump_generation<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ns: &str,
    name: &str,
    execution: &str,
) -> Result<u32, StepError> {
    let key = generation_key(ns, name);
    let bucket = env.catalog_bucket;
    let parse = |v| RestoreGeneration::parse(bucket, &key, v);
    let g = read_modify_write(env.store, bucket, &key, parse, |stored| {
        Ok(match stored {
            Some(g) if g.deleted_execution == execution => Rewrite::Keep(g),
            stored => Rewrite::Write(RestoreGeneration {
                next: stored.map_or(2, |g| g.next.max(1) + 1),
                deleted_execution: execution.to_string(),
                deleted_at: now_ms(),
            }),
        })
    })
    .await?;
    Ok(g.next)
}

/// An error of the same name as `e`, with `message`.
fn same_kind(e: &StepError, message: String) -> StepError {
    match e {
        StepError::DataPlaneUnreachable(_) => StepError::DataPlaneUnreachable(message),
        StepError::UnknownCluster(_) => StepError::UnknownCluster(message),
        StepError::CatalogUnavailable(_) => StepError::CatalogUnavailable(message),
        StepError::CatalogConflict(_) => StepError::CatalogConflict(message),
        StepError::DataPlaneRejected(_) => StepError::DataPlaneRejected(message),
        StepError::DataPlaneForbidden(_) => StepError::DataPlaneForbidden(message),
        other => other.clone(),
    }
}
