//! Step `backup-finalize`: the backup ends `Complete` or `Failed`, with its aggregates.

use crate::backup::judge::Failure;
use crate::backup::judge::views;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::status::VolumeBackupStatus;
use crate::backup::status::vbk;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::FinalizeInput;
use crate::backup::steps::context::ObserveOutput;
use crate::backup::steps::teardown::deleted_note;
use crate::backup::steps::teardown::teardown_and_record;
use crate::backup::steps::teardown::unsettled_members;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::cond;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use chrono::Utc;
use serde::{Deserialize, Serialize};

/// Output of the finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeOutput {
    /// The final catalog document (the execution's output on success).
    pub document: VolumeBackupDoc,
    /// Failure name when the backup failed (the execution's error).
    pub error: Option<String>,
    /// What happened (the execution's cause).
    pub cause: Option<String>,
}

/// Finalize: read every member once more, decide Complete or Failed, and write the final
/// catalog document, which is also the execution's output.
pub async fn finalize<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: FinalizeInput,
) -> Result<FinalizeOutput, StepError> {
    let ctx = &input.backup;
    ask_pending_teardown(env, ctx).await?;
    let obs = env
        .planes
        .read_members(MemberKind::Backup, &ctx.members)
        .await;
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(&obs)).collect();
    let unsettled = unsettled_members(&ctx.members, &obs, &ctx.execution);
    let now = Utc::now();
    let document = env
        .catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.status.progress.is_terminal() {
                return false;
            }
            d.status.refresh_members(&pairs);
            d.brfed.members_settled = Some(unsettled.is_empty());
            d.brfed.unsettled_members = unsettled.clone();
            let failure = decide_failure(
                input.failure.as_ref(),
                input.observed.as_ref(),
                &pairs,
                &obs,
                &d.status,
            );
            let f = failure
                .as_ref()
                .map(|f| (f.error.as_str(), f.message() + &deleted_note(&d.status)));
            d.status
                .finish(f.as_ref().map(|(e, m)| (*e, m.as_str())), now);
            true
        })
        .await?;
    let failed = document.status.progress.conditions.iter().rev().find(|c| {
        c.type_ == vbk::FAILED && document.status.progress.phase.as_deref() == Some(vbk::FAILED)
    });
    let (error, cause) = match failed {
        Some(c) => (
            Some(c.reason.clone().unwrap_or_else(|| "MemberFailed".into())),
            Some(format!(
                "VolumeBackup {}/{} failed: {}",
                ctx.namespace,
                ctx.name,
                c.message.clone().unwrap_or_default()
            )),
        ),
        None => (None, None),
    };
    Ok(FinalizeOutput {
        document,
        error,
        cause,
    })
}

/// Before finalize writes anything terminal: members an earlier teardown could not ask
/// (`brfed.teardownPending`) are asked now. `DataPlaneUnreachable` while one still cannot be: the
/// state machine retries, and once it gives up the execution fails and `backup-abort` (the
/// execution status rule) takes over, retried by Lambda until every member was asked.
async fn ask_pending_teardown<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
) -> Result<(), StepError> {
    let pending = match env.catalog().get(&ctx.namespace, &ctx.name).await? {
        Some((doc, _)) => {
            !doc.status.progress.is_terminal() && !doc.brfed.teardown_pending.is_empty()
        }
        None => false,
    };
    if !pending {
        return Ok(());
    }
    let report = teardown_and_record(env, ctx).await?;
    if !report.unreachable.is_empty() {
        return Err(StepError::DataPlaneUnreachable(format!(
            "teardown could not reach: {}; nothing is marked terminal before every member was asked",
            report.unreachable.join("; ")
        )));
    }
    Ok(())
}

/// Why a backup that reached finalize failed, if it did: the failure it carries, else what the
/// members say. `status` is the catalog's (refreshed from `pairs`): members brfed deleted count as
/// what they were, `Invalid`.
fn decide_failure(
    failure: Option<&Failure>,
    observed: Option<&ObserveOutput>,
    pairs: &[(MemberRef, Option<MemberView>)],
    obs: &[Observation],
    status: &VolumeBackupStatus,
) -> Option<Failure> {
    if let Some(f) = failure {
        return Some(f.clone());
    }
    if let Some(Failure { error, cause }) = observed.and_then(|o| o.failure.as_ref()) {
        return Some(Failure::new(
            "TeardownIncomplete",
            format!("{error}: {cause}"),
        ));
    }
    if let Some((m, _)) = pairs
        .iter()
        .find(|(_, v)| v.as_ref().is_some_and(|v| v.has(cond::INITIALIZE_FAILED)))
    {
        return Some(Failure::new(
            "InitializeFailed",
            format!("member {} is VolumeBackupInitializeFailed", m.display()),
        ));
    }
    // (member, Invalid?) of every member that ended Failed or Invalid, in spec order
    let deleted = |m: &MemberRef, o: &Observation| {
        !matches!(o, Observation::Present(_)) && status.is_deleted(m)
    };
    let failed: Vec<(&MemberRef, bool)> = pairs
        .iter()
        .zip(obs)
        .filter_map(|((m, v), o)| match v {
            Some(v) if v.has(cond::INVALID) => Some((m, true)),
            Some(v) if v.has(cond::FAILED) => Some((m, false)),
            _ if deleted(m, o) => Some((m, true)),
            _ => None,
        })
        .collect();
    if let Some((_, invalid)) = failed.first() {
        let names: Vec<_> = failed.iter().map(|(m, _)| m.backup_name.as_str()).collect();
        let clusters: Vec<_> = failed
            .iter()
            .map(|(m, _)| m.k8s_cluster_name.as_str())
            .collect();
        // named like the observe step names a failed member (`backup::judge`): the first one's
        return Some(Failure::new(
            if *invalid {
                "MemberInvalid"
            } else {
                "MemberFailed"
            },
            format!(
                "backup members {} of clusters {} failed",
                names.join(","),
                clusters.join(",")
            ),
        ));
    }
    let missing: Vec<String> = pairs
        .iter()
        .zip(obs)
        .filter(|(_, o)| !matches!(o, Observation::Present(_)))
        .map(|((m, _), _)| m.display())
        .collect();
    if !missing.is_empty() {
        return Some(Failure::new(
            "MemberMissing",
            format!("members not readable at the end: {}", missing.join(", ")),
        ));
    }
    let incomplete: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.as_ref().is_some_and(|v| v.has(cond::COMPLETE)))
        .map(|(m, _)| m.display())
        .collect();
    if !incomplete.is_empty() {
        return Some(Failure::new(
            "TeardownIncomplete",
            format!("members not Complete: {}", incomplete.join(", ")),
        ));
    }
    None
}
