//! Lambda `restore-abort`: on a `volume-restore` execution that was stopped, timed out or failed outside its own failure path, wait for the members to settle, mark the restore `Failed` with the same leftovers report as finalize (and the opt-in cleanup); then its metrics and `VolumeRestore Failed` event (`docs/signals.md`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::execution;
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: execution::ExecutionStatusChange, _ctx| async move {
            let report = restore::steps::abort(&runtime.restore_env(), &input).await?;
            if let Some(ended) = &report.ended {
                runtime.signals().restore_ended(ended).await;
            }
            Ok(report)
        },
    )
}
