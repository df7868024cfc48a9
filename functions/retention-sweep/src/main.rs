//! Lambda `retention-sweep`: on its own EventBridge rule, for every schedule (paused or not) start the deletion of at most one backup its `maxReservedTime`/`maxBackups` lets go; never a running or `skipGC` one. The event's `time` is the sweep's "now".

use brfed_adapters::{SchedulerRuntime, lambda};
use brfed_core::scheduling;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = SchedulerRuntime::load().await?;
    lambda::serve(move |event: serde_json::Value, _ctx| {
        let runtime = runtime.clone();
        async move {
            let out = scheduling::sweep(&runtime.env(), &event).await?;
            for s in &out.schedules {
                tracing::info!(schedule = %s.schedule, deleting = ?s.deleting, reason = %s.reason, "retention");
            }
            Ok(out)
        }
    })
    .await
}
