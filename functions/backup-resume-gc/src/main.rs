//! Lambda `backup-resume-gc`: ask the initialize member to resume GC and PD scheduling (`resumeGcSchedule: true`).

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::StepInput, _ctx| async move {
            backup::steps::resume_gc(&runtime.env(), input).await
        },
    )
}
