//! Step `restore-data`: the member with the minimum commitTs (and only it) moves to `restore-data`.

use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::pick_data_member;
use crate::restore::member::RestoreView;
use crate::restore::member::rphase;
use crate::restore::steps::cleanup::carries;
use crate::restore::steps::cleanup::foreign;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreStepInput;
use chrono::Utc;
use serde_json::json;

/// Restore data: pick the member with the minimum commitTs and move only it to `restore-data`;
/// returns its index (the state machine keeps it as `dataMember`).
pub async fn data<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<usize, StepError> {
    let ctx = &input.restore;
    let obs = env.read_members(ctx).await;
    let views = RestoreView::views(&obs);
    // already chosen (a re-run): the member already past restore-volume
    let chosen = views.iter().position(|v| {
        v.as_ref().is_some_and(|v| {
            matches!(
                v.federal_phase.as_deref(),
                Some(rphase::RESTORE_DATA) | Some(rphase::RESTORE_FINISH)
            )
        })
    });
    let index = match chosen {
        Some(i) => i,
        None => {
            let i = pick_data_member(&ctx.members, &obs)
                .map_err(|f| StepError::ResolvedTsInvalid(f.cause))?;
            match &obs[i] {
                Observation::Present(v) if carries(v, &ctx.execution, &ctx.namespace) => {}
                _ => return Err(foreign(&ctx.members[i])),
            }
            env.base
                .planes
                .patch_member_spec(
                    MemberKind::Restore,
                    &ctx.members[i],
                    &json!({"federalVolumeRestorePhase": rphase::RESTORE_DATA}),
                )
                .await?;
            i
        }
    };
    let commit_ts = views[index]
        .as_ref()
        .and_then(|v| v.commit_ts.clone())
        .unwrap_or_default();
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.brfed.data_member == Some(index) {
                return false;
            }
            d.brfed.data_member = Some(index);
            d.status.start_step("RestoreData", now);
            true
        })
        .await?;
    tracing::info!(member = %ctx.members[index].display(), commit_ts, "restore-data");
    Ok(index)
}
