//! Lambda `schedule-tick`: one delivery of a schedule's EventBridge rule. Starts the backup of that tick (named `{schedule}-{YYYY-MM-DDtHH-MM-SS}`, the execution name too, so a repeated delivery starts nothing), unless the schedule is paused, the tick is stale, or the last backup of the schedule or its group still runs.

use brfed_adapters::{SchedulerRuntime, lambda};
use brfed_core::scheduling;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = SchedulerRuntime::load().await?;
    lambda::serve(move |input: scheduling::TickInput, _ctx| {
        let runtime = runtime.clone();
        async move {
            let out = scheduling::tick(&runtime.env(), input).await?;
            tracing::info!(schedule = %out.schedule, result = %out.result, backup = %out.backup, "tick");
            Ok(out)
        }
    })
    .await
}
