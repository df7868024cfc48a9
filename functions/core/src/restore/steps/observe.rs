//! Step `restore-observe`: one look at the members, judged for the current wait; volumes claimed
//! as members reach `VolumeComplete`.

use crate::backup::judge::Failure;
use crate::backup::judge::Verdict;
use crate::backup::steps::ObserveOutput;
use crate::error::StepError;
use crate::input::ObserveMode;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::RestoreAwait;
use crate::restore::judge::judge_restore;
use crate::restore::member::RestoreView;
use crate::restore::member::rcond;
use crate::restore::steps::cleanup::new_claims;
use crate::restore::steps::cleanup::record_claims;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreObserveInput;
use crate::time::wait_window;
use chrono::Utc;

/// The longest the failure path waits for the members to settle before the leftovers report
/// (less when `phaseTimeoutSeconds` is less): a member that never settles (a hung job) must not
/// hold the report back for the whole phase timeout. The report notes members still running.
pub const SETTLE_LIMIT_SECONDS: u64 = 900;

/// Observe: watch the member `Restore`s for `await`, recording conditions and step timings.
pub async fn observe<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreObserveInput,
) -> Result<ObserveOutput, StepError> {
    let ctx = &input.restore;
    let phase_timeout = match input.awaited {
        RestoreAwait::Settled => ctx.options.phase_timeout_seconds.min(SETTLE_LIMIT_SECONDS),
        _ => ctx.options.phase_timeout_seconds,
    };
    let (deadline, deadline_name, budget) = wait_window(
        &input.phase,
        phase_timeout,
        &ctx.deadline,
        ctx.options.observe_mode,
        env.base.observe_budget,
    )?;
    let (awaited, dm, async_warmup) = (
        input.awaited,
        input.data_member,
        ctx.extra.warmup == "async",
    );
    let members = &ctx.members;
    let done = move |obs: &[Observation]| {
        judge_restore(awaited, members, obs, dm, async_warmup) != Verdict::Pending
    };
    let obs = env
        .base
        .planes
        .observe_members(MemberKind::Restore, members, budget, &done)
        .await;
    let mut verdict = judge_restore(awaited, members, &obs, dm, async_warmup);
    if verdict == Verdict::Pending && Utc::now() >= deadline {
        verdict = Verdict::Failed(Failure::new(
            deadline_name,
            format!(
                "phase {} waited past its deadline for {awaited:?}",
                input.phase.name
            ),
        ));
    }
    // Members that reached VolumeComplete: prove their volumes this restore's and tag them now,
    // before another restore of the same backup can rewrite its restoremeta.
    let volumes_made = obs.iter().any(|o| match o {
        Observation::Present(v) => RestoreView::from_object(v).has(rcond::VOLUME_COMPLETE),
        _ => false,
    });
    let claims = match volumes_made {
        true => match env.catalog().get(&ctx.namespace, &ctx.name).await? {
            Some((doc, _)) if doc.brfed.execution == ctx.execution => {
                new_claims(env, &doc, &obs).await
            }
            _ => Vec::new(),
        },
        false => Vec::new(),
    };
    let warmup = ctx.extra.warmup.clone();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.status.clone();
            d.status.refresh(members, &obs, &warmup, dm, Utc::now());
            let claimed = record_claims(d, &claims);
            d.status != before || claimed
        })
        .await?;
    let (name, failure) = match verdict {
        Verdict::Met => ("met", None),
        Verdict::Pending => ("pending", None),
        Verdict::Failed(f) => ("failed", Some(f)),
    };
    let wait_seconds = if ctx.options.observe_mode == ObserveMode::Poll && name == "pending" {
        ctx.options.poll_seconds
    } else {
        0
    };
    Ok(ObserveOutput {
        verdict: name.into(),
        failure,
        wait_seconds,
    })
}
