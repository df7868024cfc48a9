//! Lambda `restore-finish`: move every member to `restore-finish` (TiKV restarts out of recovery mode).

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: restore::steps::RestoreStepInput, _ctx| {
        let runtime = runtime.clone();
        async move { restore::steps::restore_finish(&runtime.restore_env(), input).await }
    })
    .await
}
