//! Lambda `backup-abort`: on a Step Functions execution status change (ABORTED, TIMED_OUT, FAILED), tear down a backup still running and mark it `Failed`.

use brfed_adapters::{Runtime, lambda};
use brfed_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::ExecutionStatusChange, _ctx| {
        let runtime = runtime.clone();
        async move { steps::abort(&runtime.env(), input).await }
    })
    .await
}
