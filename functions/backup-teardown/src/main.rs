//! Lambda `backup-teardown`: move every existing member to `teardown`; the initialize member is always asked to resume GC
//! (deleted instead when it is `Invalid`: its data plane ignores it, and deleting it stops its init job).

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::StepInput, _ctx| async move {
            backup::steps::teardown(&runtime.env(), input).await
        },
    )
}
