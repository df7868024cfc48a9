//! Step `restore-finish`: every member moves to `restore-finish`.

use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Volumes;
use crate::restore::member::RestoreView;
use crate::restore::member::rphase;
use crate::restore::steps::cleanup::carries;
use crate::restore::steps::cleanup::foreign;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreStepInput;
use crate::time::Phase;
use crate::time::now_ms;
use chrono::Utc;
use futures::future::join_all;
use serde_json::json;

/// Restore finish: every member to `restore-finish` (TiKV restarts out of recovery mode).
pub async fn finish<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: RestoreStepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.restore;
    let work = ctx.members.iter().map(|m| async move {
        let obj = env
            .base
            .planes
            .get_member(MemberKind::Restore, m)
            .await?
            .ok_or_else(|| StepError::MemberMissing(m.display()))?;
        if !carries(&obj, &ctx.execution, &ctx.namespace) {
            return Err(foreign(m));
        }
        if RestoreView::from_object(&obj).federal_phase.as_deref() != Some(rphase::RESTORE_FINISH) {
            env.base
                .planes
                .patch_member_spec(
                    MemberKind::Restore,
                    m,
                    &json!({"federalVolumeRestorePhase": rphase::RESTORE_FINISH}),
                )
                .await?;
        }
        Ok::<_, StepError>(())
    });
    for r in join_all(work).await {
        r?;
    }
    let now = Utc::now();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.status.steps.len();
            d.status.start_step("RestartTiKV", now);
            d.status.steps.len() != before
        })
        .await?;
    Ok(Phase {
        name: "RestoreFinish".into(),
        started_at: now_ms(),
    })
}
