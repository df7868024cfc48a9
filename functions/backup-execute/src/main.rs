//! Lambda `backup-execute`: move the initialize member to `execute` and create the members of the other data planes.

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::StepInput, _ctx| async move {
            backup::steps::execute(&runtime.env(), input).await
        },
    )
}
