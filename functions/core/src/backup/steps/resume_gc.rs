//! Step `backup-resume-gc`: the initialize member moves on, so that the data plane resumes GC.

use crate::backup::steps::context::Env;
use crate::backup::steps::context::StepInput;
use crate::error::StepError;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::time::Phase;
use crate::time::now_ms;
use serde_json::json;

/// Resume GC and scheduling: ask the initialize member to resume (`resumeGcSchedule: true`).
pub async fn resume_gc<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    env.planes
        .patch_member_spec(
            MemberKind::Backup,
            &ctx.members[0],
            &json!({"resumeGcSchedule": true}),
        )
        .await?;
    let at = now_ms();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            if d.brfed.resume_requested_at.is_some() {
                return false;
            }
            d.brfed.resume_requested_at = Some(at.clone());
            true
        })
        .await?;
    Ok(Phase::now("ResumeGc"))
}
