//! Lambda `restore-start`: validate a `VolumeRestore` (or a restore of a catalog backup), check every target TidbCluster and backup, record it, and create every member `Restore` in `restore-volume`.

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::StartInput, _ctx| async move {
            restore::steps::start(&runtime.restore_env(), input).await
        },
    )
}
