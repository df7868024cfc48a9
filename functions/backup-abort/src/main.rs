//! Lambda `backup-abort`: on a Step Functions execution status change (ABORTED, TIMED_OUT, FAILED), tear down a backup still running and mark it `Failed` once every member was asked (a stopped `volume-backup-delete` execution: mark its backup `CleanFailed`, not left `Deleting`); then its metrics and `VolumeBackup Failed` event (`docs/signals.md`). It fails, so that Lambda retries the event, while a data plane cannot be reached or members still run (`docs/reliability.md`, "The safety net"); a settle check of `retention-sweep` (same `detail`) does not fail for those: the next sweep asks again.

use brfed_adapters::{Runtime, lambda};
use brfed_core::backup;
use brfed_core::delete;
use brfed_core::execution;

fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(
        Runtime::load,
        |runtime, input: execution::ExecutionStatusChange, _ctx| async move {
            // The same rule covers volume-backup-delete: a stopped deletion must not stay
            // `Deleting` (it would refuse later deletions and stall retention).
            let deletion = input
                .detail
                .state_machine_arn
                .as_deref()
                .is_some_and(|a| a.ends_with("volume-backup-delete"));
            if deletion {
                return delete::steps::abort(&runtime.env(), &input).await;
            }
            let event = input.clone();
            let result = backup::steps::abort(&runtime.env(), input).await;
            // Signals only from an invocation that did its work: an error left the backup as it
            // was (or was already ended by an earlier delivery, which sent them).
            if result.is_ok() {
                runtime.signals().backup_aborted(&event, &result).await;
            }
            // A settle check of the retention sweep: the next sweep asks again (no failure).
            if event.is_settle_check() {
                return backup::steps::AbortReport::settle_check_result(result);
            }
            // Members still running: fail, so that Lambda's asynchronous retries look again.
            result.and_then(backup::steps::AbortReport::into_result)
        },
    )
}
