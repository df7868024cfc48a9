//! Step `restore-finalize`: `Complete`, or `Failed` with, per data plane, what was left.

use crate::backup::judge::Failure;
use crate::backup::judge::Verdict;
use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::RestoreAwait;
use crate::restore::judge::judge_restore;
use crate::restore::steps::cleanup::leftovers;
use crate::restore::steps::cleanup::record_claims;
use crate::restore::steps::context::RestoreContext;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreFinalizeOutput;
use crate::restore::steps::context::RestoreStepInput;
use chrono::Utc;

/// Finalize: `Complete`, or `Failed` with, per data plane, what was left and how to clean it up;
/// with `cleanupOnFailure`, deletes the member `Restore`s and the volumes they created.
pub async fn finalize<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<RestoreFinalizeOutput, StepError> {
    let ctx = &input.restore;
    let obs = env.read_members(ctx).await;
    let awaited = match ctx.extra.warmup_strategy.as_str() {
        "check-wal-only" => RestoreAwait::WalChecked,
        _ => RestoreAwait::Complete,
    };
    let failure = input.failure.clone().or_else(|| {
        match judge_restore(
            awaited,
            &ctx.members,
            &obs,
            input.data_member,
            ctx.extra.warmup == "async",
        ) {
            Verdict::Met => None,
            Verdict::Failed(f) => Some(f),
            Verdict::Pending => Some(Failure::new(
                "TeardownIncomplete",
                format!("members did not all reach {awaited:?}"),
            )),
        }
    });
    conclude(env, ctx, &obs, failure, input.data_member).await
}

/// Writes the end of a restore: `Complete`, or `Failed` with the leftovers report (and the
/// opt-in cleanup). Shared by finalize and the abort of a stopped execution.
pub(crate) async fn conclude<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    ctx: &RestoreContext,
    obs: &[Observation],
    failure: Option<Failure>,
    data_member: Option<usize>,
) -> Result<RestoreFinalizeOutput, StepError> {
    let (doc, _) = env
        .catalog()
        .get(&ctx.namespace, &ctx.name)
        .await?
        .ok_or_else(|| StepError::CatalogUnavailable("restore document missing".into()))?;
    let (leftovers, claims) = match &failure {
        Some(_) => leftovers(env, &doc, obs, ctx.options.cleanup_on_failure).await,
        None => (Vec::new(), Vec::new()),
    };
    let now = Utc::now();
    let warmup = ctx.extra.warmup.clone();
    let document = env
        .catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.status.progress.is_terminal() {
                return false;
            }
            d.status
                .refresh(&ctx.members, obs, &warmup, data_member, now);
            d.brfed.leftovers = leftovers.clone();
            record_claims(d, &claims);
            let f = failure.as_ref().map(|f| (f.error.clone(), f.message()));
            d.status
                .progress
                .end(f.as_ref().map(|(e, m)| (e.as_str(), m.as_str())), now);
            true
        })
        .await?;
    Ok(RestoreFinalizeOutput::new(ctx, document, failure.as_ref()))
}
