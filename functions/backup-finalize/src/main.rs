//! Lambda `backup-finalize`: decide `Complete` or `Failed` from the members and write the final catalog document (the execution's output); tag the members' snapshots with the backup (orphan detection); then its metrics and `VolumeBackup Complete`/`Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::{orphans, steps};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_tracing();
    let runtime = Runtime::load().await?;
    lambda::serve(move |input: steps::FinalizeInput, _ctx| {
        let runtime = runtime.clone();
        async move {
            let out = steps::finalize(&runtime.env(), input).await?;
            // Tag the snapshots with their backup, so that orphans can be found later
            // (`brfed orphans`); a failure here does not change the backup's result.
            let env = runtime.env();
            match orphans::tag_backup_snapshots(env.store, runtime.volumes(), &out.document).await {
                Ok(n) => tracing::info!(snapshots = n, "snapshots tagged"),
                Err(e) => {
                    tracing::warn!(error.name = e.name(), error = %e, "tagging snapshots failed")
                }
            }
            runtime.signals().backup_ended(&out).await;
            Ok(out)
        }
    })
    .await
}
