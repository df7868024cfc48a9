//! Lambda `backup-finalize`: decide `Complete` or `Failed` from the members and write the final catalog document (the execution's output); then its metrics and `VolumeBackup Complete`/`Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::steps;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::FinalizeInput, _ctx| {
        let runtime = runtime.clone();
        async move {
            let out = steps::finalize(&runtime.env(), input).await?;
            runtime.signals().backup_ended(&out).await;
            Ok(out)
        }
    })
    .await
}
