//! Lambda `backup-teardown`: move every existing member to `teardown`; the initialize member is always asked to resume GC
//! (deleted instead when it is `Invalid`: its data plane ignores it, and deleting it stops its init job).

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: backup::steps::StepInput, _ctx| {
        let runtime = runtime.clone();
        async move { backup::steps::teardown(&runtime.env(), input).await }
    })
    .await
}
