//! Step `backup-delete-observe`: wait until the member `Backup`s are gone or `CleanFailed`.

use crate::backup::judge::Failure;
use crate::backup::steps::Env;
use crate::delete::member::clean_failed;
use crate::delete::steps::context::DeleteObserved;
use crate::delete::steps::context::DeleteStepInput;
use crate::delete::steps::context::context;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::time::parse_time;
use chrono::Utc;
use std::time::Duration;

/// Step `backup-delete-observe`: watches the members the data planes clean up until all are gone
/// (`met`), one is `CleanFailed` or the deadline passed (`failed`), or the budget is spent
/// (`pending`).
pub async fn observe<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: DeleteStepInput,
) -> Result<DeleteObserved, StepError> {
    let ctx = context(&input)?;
    let watched: Vec<MemberRef> = ctx
        .members
        .iter()
        .filter(|m| m.clean_by.in_data_plane())
        .map(|m| m.member.clone())
        .collect();
    let deadline = parse_time(&ctx.deadline)?;
    let budget = env
        .observe_budget
        .min((deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO));
    let done = |obs: &[Observation]| {
        obs.iter().all(|o| matches!(o, Observation::Absent)) || obs.iter().any(clean_failed)
    };
    let obs = if watched.is_empty() {
        Vec::new()
    } else {
        env.planes
            .observe_members(MemberKind::Backup, &watched, budget, &done)
            .await
    };
    let remaining: Vec<String> = watched
        .iter()
        .zip(&obs)
        .filter(|(_, o)| !matches!(o, Observation::Absent))
        .map(|(m, _)| m.display())
        .collect();
    if let Some((m, _)) = watched.iter().zip(&obs).find(|(_, o)| clean_failed(o)) {
        return Ok(DeleteObserved {
            verdict: "failed".into(),
            remaining,
            failure: Some(Failure::new(
                "CleanFailed",
                format!(
                    "{} is CleanFailed in its data plane (see its clean job); the member and its data stay until that is fixed",
                    m.display()
                ),
            )),
        });
    }
    if remaining.is_empty() {
        return Ok(DeleteObserved {
            verdict: "met".into(),
            remaining,
            failure: None,
        });
    }
    if Utc::now() >= deadline {
        return Ok(DeleteObserved {
            verdict: "failed".into(),
            failure: Some(Failure::new(
                "DeletionDeadlineExceeded",
                format!(
                    "still present after options.timeoutSeconds: {}",
                    remaining.join(", ")
                ),
            )),
            remaining,
        });
    }
    Ok(DeleteObserved {
        verdict: "pending".into(),
        remaining,
        failure: None,
    })
}
