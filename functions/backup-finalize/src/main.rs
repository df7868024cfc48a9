//! Lambda `backup-finalize`: decide `Complete` or `Failed` from the members and write the final catalog document (the execution's output).

use brfed_adapters::{Runtime, lambda};
use brfed_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::FinalizeInput, _ctx| {
        let runtime = runtime.clone();
        async move { steps::finalize(&runtime.env(), input).await }
    })
    .await
}
