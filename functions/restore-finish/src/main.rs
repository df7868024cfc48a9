//! Lambda `restore-finish`: move every member to `restore-finish` (TiKV restarts out of recovery mode).

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: restore::steps::RestoreStepInput, _ctx| async move {
            restore::steps::finish(&runtime.restore_env(), input).await
        },
    )
}
