//! Lambda `schedule-tick`: one delivery of a schedule's EventBridge rule. Starts the backup of that tick (named `{schedule}-{YYYY-MM-DDtHH-MM-SS}`, its execution `{namespace}.{backup}`, so a repeated delivery starts nothing and the same schedule name in two namespaces makes two backups), unless the event's time is more than 5 min ahead of or 30 h behind the clock (`EventTimeOutOfRange`), the schedule is paused, the tick is stale, or the last backup of the schedule or its group may still run.

use brfed_adapters::{SchedulerRuntime, lambda};
use brfed_core::schedule;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        SchedulerRuntime::load,
        |runtime, input: schedule::steps::TickInput, _ctx| async move {
            let out = schedule::steps::tick(&runtime.env(), input).await?;
            tracing::info!(schedule = %out.schedule, result = %out.result, backup = %out.backup, "tick");
            Ok(out)
        },
    )
}
