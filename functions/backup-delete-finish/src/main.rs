//! Lambda `backup-delete-finish`: verify with EC2 and S3 that what `cleanPolicy` deletes is gone, then remove the catalog record (`Cleaned`) or keep it with `CleanFailed` and what remains; then its metrics and `VolumeBackup Cleaned`/`CleanFailed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: delete::steps::DeleteStepInput, _ctx| async move {
            // Read before the step: a cleaned backup's record (and its requestedAt) is removed.
            let requested_at = runtime.signals().deletion_requested_at(&input).await;
            let ctx = input.deletion.clone();
            let out = delete::steps::finish(&runtime.env(), runtime.volumes(), input).await?;
            let signals = runtime.signals();
            signals
                .cleanup_ended(ctx.as_ref(), &out, requested_at.as_deref())
                .await;
            Ok(out)
        },
    )
}
