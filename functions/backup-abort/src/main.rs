//! Lambda `backup-abort`: on a Step Functions execution status change (ABORTED, TIMED_OUT, FAILED), tear down a backup still running and mark it `Failed`; then its metrics and `VolumeBackup Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::ExecutionStatusChange, _ctx| {
        let runtime = runtime.clone();
        async move {
            let event = input.clone();
            let result = steps::abort(&runtime.env(), input).await;
            runtime.signals().backup_aborted(&event, &result).await;
            result
        }
    })
    .await
}
