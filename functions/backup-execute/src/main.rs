//! Lambda `backup-execute`: move the initialize member to `execute` and create the members of the other data planes.

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: backup::steps::StepInput, _ctx| {
        let runtime = runtime.clone();
        async move { backup::steps::execute(&runtime.env(), input).await }
    })
    .await
}
