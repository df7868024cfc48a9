//! Lambda `restore-finalize`: decide `Complete` or `Failed`; on failure report what each data plane was left with, and clean up when asked; then its metrics and `VolumeRestore Complete`/`Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: restore::steps::RestoreStepInput, _ctx| async move {
            let out = restore::steps::finalize(&runtime.restore_env(), input).await?;
            runtime.signals().restore_ended(&out).await;
            Ok(out)
        },
    )
}
