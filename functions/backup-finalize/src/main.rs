//! Lambda `backup-finalize`: decide `Complete` or `Failed` from the members and write the final catalog document (the execution's output); tag the snapshots the members made with the stack, the backup and the data plane (ownership: only those proven the backup's, the others named in `snapshotTags.notTagged`); then its metrics and `VolumeBackup Complete`/`Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::StepError;
use brfed_core::backup;
use serde_json::json;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::FinalizeInput, _ctx| async move {
            let out = backup::steps::finalize(&runtime.env(), input).await?;
            // Tag the snapshots as the backup's (what proves them its own to a deletion and to
            // `brfed orphans`); a failure here does not change the backup's result, and leaves
            // them untagged: a deletion then leaves them (`notOwned`).
            let env = runtime.env();
            let tags = match backup::snapshots::tag_backup_snapshots(
                env.store,
                runtime.volumes(),
                env.catalog_bucket,
                &out.document,
            )
            .await
            {
                Ok(report) => {
                    tracing::info!(tagged = report.tagged, not_tagged = ?report.not_tagged, "snapshots tagged");
                    json!(report)
                }
                Err(e) => {
                    tracing::warn!(error.name = e.name(), error = %e, "tagging snapshots failed");
                    json!({"error": e.name(), "message": e.to_string()})
                }
            };
            runtime.signals().backup_ended(&out).await;
            let mut value = serde_json::to_value(&out)
                .map_err(|e| StepError::Internal(format!("finalize output: {e}")))?;
            value["snapshotTags"] = tags;
            Ok(value)
        },
    )
}
