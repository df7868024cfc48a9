//! Step `backup-execute`: the initialize member moves to `execute`, the other members are created.

use crate::backup::member::member_of;

use crate::backup::member::build_member_backup;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::StepInput;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::phase;
use crate::ports::Created;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::time::Phase;
use futures::future::join_all;
use serde_json::{Value, json};

pub(crate) async fn ensure_member<D: DataPlanes, S>(
    env: &Env<'_, D, S>,
    m: &MemberRef,
    object: &Value,
    execution: &str,
    namespace: &str,
) -> Result<(), StepError> {
    // (an API server that does not serve Backups yet is `DataPlaneUnreachable`: the adapter's
    // `classify`)
    match env
        .planes
        .create_member(MemberKind::Backup, &m.k8s_cluster_name, object)
        .await?
    {
        Created::Created => {
            tracing::info!(cluster = %m.k8s_cluster_name, member = %m.backup_name, "member created");
            Ok(())
        }
        Created::AlreadyExists(obj) => {
            let v = MemberView::from_object(&obj);
            if member_of(&v, execution, namespace) {
                Ok(())
            } else {
                Err(StepError::MemberNameConflict(format!(
                    "Backup {}/{} in {} belongs to {}",
                    m.tc_namespace,
                    m.backup_name,
                    m.k8s_cluster_name,
                    v.execution.as_deref().unwrap_or("something else")
                )))
            }
        }
    }
}

/// Execute: move the initialize member to `execute` and create the other members in `execute`.
/// Every data plane is tried; those that could not be told are named together in one
/// `DataPlaneUnreachable` (retried by the state machine, which then creates what is missing).
pub async fn execute<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    let (doc, _) = env
        .catalog()
        .get(&ctx.namespace, &ctx.name)
        .await?
        .ok_or_else(|| {
            StepError::CatalogUnavailable(format!(
                "no catalog document for {}/{}",
                ctx.namespace, ctx.name
            ))
        })?;
    let req = doc.request();
    let init = &ctx.members[0];
    let current = env
        .planes
        .get_member(MemberKind::Backup, init)
        .await?
        .ok_or_else(|| {
            StepError::MemberMissing(format!("initialize member {} is gone", init.display()))
        })?;
    if MemberView::from_object(&current).federal_phase.as_deref() == Some(phase::INITIALIZE) {
        env.planes
            .patch_member_spec(
                MemberKind::Backup,
                init,
                &json!({"federalVolumeBackupPhase": phase::EXECUTE}),
            )
            .await?;
    }
    let creations = ctx.members[1..].iter().map(|m| {
        let object = build_member_backup(&req, m, phase::EXECUTE, &ctx.execution);
        async move { ensure_member(env, m, &object, &ctx.execution, &ctx.namespace).await }
    });
    // Every plane is tried; a plane that could not be told is named, with every other one.
    let errors: Vec<StepError> = join_all(creations)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if let Some(e) = errors.iter().find(|e| !e.is_retryable()) {
        return Err(e.clone());
    }
    let unreachable: Vec<&str> = errors
        .iter()
        .filter_map(|e| match e {
            StepError::DataPlaneUnreachable(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    match errors.first() {
        None => Ok(Phase::now("Execute")),
        Some(_) if unreachable.len() == errors.len() => {
            Err(StepError::DataPlaneUnreachable(unreachable.join("; ")))
        }
        Some(e) => Err(e.clone()),
    }
}
