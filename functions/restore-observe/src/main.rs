//! Lambda `restore-observe`: watch the member `Restore`s until the awaited condition holds, one fails, a deadline passes, or the watch budget is spent; records conditions and step timings.

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: restore::steps::RestoreObserveInput, _ctx| {
        let runtime = runtime.clone();
        async move { restore::steps::restore_observe(&runtime.restore_env(), input).await }
    })
    .await
}
