//! Lambda `backup-observe`: watch the members until the awaited condition holds, a member fails, a deadline passes, or the watch budget is spent; then, while the backup holds GC paused, how long (metric `GcPausedSeconds`, `docs/signals.md`).

use brfed_adapters::{Runtime, emit, lambda};
use brfed_core::backup;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: backup::steps::ObserveInput, _ctx| async move {
            let ctx = input.backup.clone();
            let out = backup::steps::observe(&runtime.env(), input).await?;
            emit::gc_paused(&runtime, &ctx).await;
            Ok(out)
        },
    )
}
