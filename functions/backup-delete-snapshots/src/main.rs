//! Lambda `backup-delete-snapshots`: delete the snapshots and objects of members brfed cleans itself (their data plane is gone, or their `backupmeta` lists snapshots that are not the backup's), each snapshot read right before and deleted only if it is this stack's and this backup's, paced to the deletion rate with throttling backoff; resumable, never working past its budget or the invocation's deadline.

use brfed_adapters::{Runtime, lambda};
use brfed_core::delete;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Kept free before the invocation's deadline: the last EC2 call, the S3 object deletions and the
/// reply.
const MARGIN: Duration = Duration::from_secs(30);

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: delete::steps::DeleteStepInput, ctx| async move {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let left = Duration::from_millis(ctx.deadline.saturating_sub(now_ms));
            // A deadline not beyond the margin is no deadline a function gets from Lambda (its
            // timeout is 900 s): keep the configured budget rather than work not at all.
            let pacing = match left.checked_sub(MARGIN) {
                Some(rest) if !rest.is_zero() => runtime.pacing().within(rest),
                _ => runtime.pacing(),
            };
            delete::steps::delete_snapshots(&runtime.env(), runtime.volumes(), input, pacing).await
        },
    )
}
