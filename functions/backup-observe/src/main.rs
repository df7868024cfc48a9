//! Lambda `backup-observe`: watch the members until the awaited condition holds, a member fails, a deadline passes, or the watch budget is spent.

use brfed_adapters::{Runtime, lambda};
use brfed_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::ObserveInput, _ctx| {
        let runtime = runtime.clone();
        async move { steps::observe(&runtime.env(), input).await }
    })
    .await
}
