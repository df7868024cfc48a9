//! The restore's steps, one Lambda each, in the order the `volume-restore` state machine runs
//! them: start (preflight, catalog record, members), observe, restore data, finish, finalize; and
//! the abort, on the execution's status change. Cleanup of what a failed restore left is shared
//! by finalize and abort.

mod abort;
mod cleanup;
mod context;
mod data;
mod finalize;
mod finish;
mod observe;
mod start;
#[cfg(test)]
mod tests;

pub use abort::{RestoreAbortReport, restore_aborted};
pub use context::{
    RestoreContext, RestoreEnv, RestoreFinalizeOutput, RestoreObserveInput, RestoreStartOutput,
    RestoreStepInput,
};
pub use data::restore_data;
pub use finalize::restore_finalize;
pub use finish::restore_finish;
pub use observe::{SETTLE_LIMIT_SECONDS, restore_observe};
pub use start::{resolve_from_backup, restore_members, restore_problems, restore_start};
