//! Lambda `backup-start`: validate a `VolumeBackup`, check every data plane and S3 prefix, record it in the catalog, and create the initialize member in `clusters[0]` (GC and schedulers get paused).

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::StartInput, _ctx| async move {
            backup::steps::start(&runtime.env(), input).await
        },
    )
}
