//! Lambda `backup-resume-gc`: ask the initialize member to resume GC and PD scheduling (`resumeGcSchedule: true`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: backup::steps::StepInput, _ctx| {
        let runtime = runtime.clone();
        async move { backup::steps::resume_gc(&runtime.env(), input).await }
    })
    .await
}
