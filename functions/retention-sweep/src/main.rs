//! Lambda `retention-sweep`: on its own EventBridge rule, for every schedule run the latest tick it missed (not paused; `schedule::steps::catch_up`) and (paused or not) start the deletion of at most one backup its `maxReservedTime`/`maxBackups` lets go among the backups its ticks made; never a running or `skipGC` one. Age is judged as of the event's `time` when earlier than the clock, never later; a `time` more than 5 min ahead or 30 h behind is refused (`EventTimeOutOfRange`). Every schedule not paused is judged against its RPO (`schedule::rpo`): metrics `SchedulesBeyondRpo` (by stack, at every sweep) and `fed_volume_backup_schedule_since_complete_sec` (by namespace, schedule). Then the settle checks: one event for `backup-abort` per backup whose execution ended while members were not asked to tear down yet or still ran.

use brfed_adapters::{SchedulerRuntime, lambda};
use brfed_core::schedule;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        SchedulerRuntime::load,
        |runtime, event: serde_json::Value, _ctx| async move {
            let out = schedule::steps::sweep(&runtime.env(), &event).await?;
            brfed_adapters::emit::schedule_rpo(runtime.env().catalog_bucket, &out);
            for s in &out.schedules {
                tracing::info!(schedule = %s.schedule, deleting = ?s.deleting, reason = %s.reason, "retention");
            }
            for c in &out.settle_checks {
                tracing::warn!(backup = %c.backup, why = %c.why, "settle check sent to backup-abort");
            }
            runtime.send_settle_checks(&out.settle_checks).await?;
            Ok(out)
        },
    )
}
