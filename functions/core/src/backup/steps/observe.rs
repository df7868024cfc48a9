//! Step `backup-observe`: one look (watch or poll) at the members, judged for the current wait.

use crate::backup::judge::Await;
use crate::backup::judge::Failure;
use crate::backup::judge::Verdict;
use crate::backup::judge::judge;
use crate::backup::judge::views;
use crate::backup::status::vbk;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::ObserveInput;
use crate::backup::steps::context::ObserveOutput;
use crate::error::StepError;
use crate::input::ObserveMode;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::time::now_ms;
use crate::time::wait_window;
use chrono::Utc;

/// Observe: watch the members until the awaited condition holds, one fails, the watch budget
/// is spent, or a deadline passes.
pub async fn observe<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: ObserveInput,
) -> Result<ObserveOutput, StepError> {
    let ctx = &input.backup;
    let (deadline, deadline_name, budget) = wait_window(
        &input.phase,
        ctx.options.phase_timeout_seconds,
        &ctx.deadline,
        ctx.options.observe_mode,
        env.observe_budget,
    )?;
    let watched: &[MemberRef] = if input.awaited == Await::Initialized {
        &ctx.members[..1]
    } else {
        &ctx.members
    };
    let awaited = input.awaited;
    let done = move |obs: &[Observation]| judge(awaited, watched, obs) != Verdict::Pending;
    let obs = env
        .planes
        .observe_members(MemberKind::Backup, watched, budget, &done)
        .await;
    let mut verdict = judge(awaited, watched, &obs);
    if verdict == Verdict::Pending && Utc::now() >= deadline {
        let what = if deadline_name == "PhaseDeadlineExceeded" {
            format!(
                "phase {} ran longer than {} s",
                input.phase.name, ctx.options.phase_timeout_seconds
            )
        } else {
            format!(
                "the backup ran longer than {} s",
                ctx.options.deadline_seconds
            )
        };
        verdict = Verdict::Failed(Failure::new(
            deadline_name,
            format!("{what} while waiting for {}", awaited.describe()),
        ));
    }
    record_observation(env, ctx, awaited, &verdict, &obs).await?;
    let (name, failure) = match verdict {
        Verdict::Met => ("met", None),
        Verdict::Pending => ("pending", None),
        Verdict::Failed(f) => ("failed", Some(f)),
    };
    let wait_seconds = match (ctx.options.observe_mode, name) {
        (ObserveMode::Poll, "pending") => ctx.options.poll_seconds,
        _ => 0,
    };
    Ok(ObserveOutput {
        verdict: name.into(),
        failure,
        wait_seconds,
    })
}

async fn record_observation<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
    awaited: Await,
    verdict: &Verdict,
    obs: &[Observation],
) -> Result<(), StepError> {
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(obs)).collect();
    let at = now_ms();
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.clone();
            d.status.refresh_members(&pairs);
            if *verdict == Verdict::Met {
                match awaited {
                    Await::SnapshotsCreated if d.brfed.snapshots_created_observed_at.is_none() => {
                        d.brfed.snapshots_created_observed_at = Some(at.clone());
                    }
                    Await::GcResumed if !d.status.progress.has(vbk::SNAPSHOTS_CREATED) => {
                        d.status
                            .progress
                            .set_condition(vbk::SNAPSHOTS_CREATED, None, None, now);
                    }
                    _ => {}
                }
            }
            *d != before
        })
        .await
        .map(|_| ())
}
