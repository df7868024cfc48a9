//! Step `restore-abort`: a stopped, timed-out or failed restore is marked `Failed`, with what it left.

use crate::backup::judge::Failure;
use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::volumes_settled;
use crate::restore::spec::RestoreRequest;
use crate::restore::steps::context::RestoreContext;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreFinalizeOutput;
use crate::restore::steps::context::WarmupPlan;
use crate::restore::steps::finalize::conclude;
use serde::{Deserialize, Serialize};

/// What the abort of a restore execution did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreAbortReport {
    /// `failed` (the restore was marked `Failed` with its leftovers) or `nothing-to-do`.
    pub action: String,
    /// Why.
    pub detail: String,
    /// The end written, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<RestoreFinalizeOutput>,
}

impl RestoreAbortReport {
    /// `nothing-to-do`, and why.
    pub fn nothing(detail: String) -> Self {
        Self {
            action: "nothing-to-do".into(),
            detail,
            ended: None,
        }
    }
}

/// On a `volume-restore` execution that ended ABORTED, TIMED_OUT or FAILED outside its own
/// failure path (a stop, the state machine's timeout, a step out of retries): waits up to the
/// observe budget for the members to settle ([`volumes_settled`]), then marks the restore
/// `Failed` (`ExecutionAborted`, `ExecutionTimedOut`, `ExecutionFailed`) with the same
/// leftovers report (and opt-in cleanup) as finalize. Nothing to do for a restore that already
/// ended or belongs to another execution. Members are not stopped: the data-plane operator has
/// no way to cancel a running `Restore`; the report says which ones were still running.
pub async fn abort<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    event: &crate::execution::ExecutionStatusChange,
) -> Result<RestoreAbortReport, StepError> {
    let d = &event.detail;
    let id = |r: &RestoreRequest| (r.metadata.namespace.clone(), r.name().to_string());
    let parse = |v| RestoreRequest::from_value(v).ok();
    let (failure_name, req, doc) = match env
        .catalog()
        .aborted(d, "a restore request", parse, id)
        .await?
    {
        Ok(found) => found,
        Err(detail) => return Ok(RestoreAbortReport::nothing(detail)),
    };
    let (ns, name) = id(&req);
    if doc.status.progress.is_terminal() {
        return Ok(RestoreAbortReport::nothing(format!(
            "{ns}/{name} already ended"
        )));
    }
    let stored = doc.request();
    let record = &doc.brfed;
    let ctx = RestoreContext::recorded(
        (&ns, &name),
        &record.execution,
        &record.members,
        record.options.clone(),
        WarmupPlan::of(&stored),
    );
    let obs = env
        .base
        .planes
        .observe_members(
            MemberKind::Restore,
            &ctx.members,
            env.base.observe_budget,
            &|obs: &[Observation]| obs.iter().all(volumes_settled),
        )
        .await;
    let cause = d.ended();
    let failure = Failure::new(failure_name, cause);
    let ended = conclude(env, &ctx, &obs, Some(failure), doc.brfed.data_member).await?;
    Ok(RestoreAbortReport {
        action: "failed".into(),
        detail: format!("{ns}/{name} marked Failed ({failure_name})"),
        ended: Some(ended),
    })
}
