//! Lambda `restore-start`: validate a `VolumeRestore` (or a restore of a catalog backup), check every target TidbCluster and backup, record it, and create every member `Restore` in `restore-volume`.

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;
use brfed_core::restore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: backup::steps::StartInput, _ctx| {
        let runtime = runtime.clone();
        async move { restore::steps::restore_start(&runtime.restore_env(), input).await }
    })
    .await
}
