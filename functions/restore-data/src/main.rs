//! Lambda `restore-data`: move the member with the minimum commitTs (and only it) to `restore-data`.

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: restore::steps::RestoreStepInput, _ctx| async move {
            restore::steps::data(&runtime.restore_env(), input).await
        },
    )
}
