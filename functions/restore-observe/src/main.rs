//! Lambda `restore-observe`: watch the member `Restore`s until the awaited condition holds, one fails, a deadline passes, or the watch budget is spent; records conditions and step timings.

use brfed_adapters::{Runtime, lambda};
use brfed_core::restore;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: restore::steps::RestoreObserveInput, _ctx| async move {
            restore::steps::observe(&runtime.restore_env(), input).await
        },
    )
}
