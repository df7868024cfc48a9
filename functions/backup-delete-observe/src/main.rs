//! Lambda `backup-delete-observe`: watch the member `Backup`s until every data plane has cleaned up (they are gone), one is `CleanFailed`, or the deadline passed.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: delete::steps::DeleteStepInput, _ctx| async move {
            delete::steps::observe(&runtime.env(), input).await
        },
    )
}
