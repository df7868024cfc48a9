//! The restore's steps, one Lambda each, in the order the `volume-restore` state machine runs
//! them: start (preflight, catalog record, members), observe, restore data, finish, finalize; and
//! the abort, on the execution's status change; and the deletion of a restore (`restore-delete`, not a
//! state-machine step). Cleanup of what a failed restore left is shared by finalize and abort.

mod abort;
mod cleanup;
mod context;
mod data;
mod delete;
mod finalize;
mod finish;
mod observe;
mod start;
#[cfg(test)]
mod tests;

pub use abort::{RestoreAbortReport, abort};
pub use context::{
    RestoreContext, RestoreEnv, RestoreFinalizeOutput, RestoreObserveInput, RestoreStartOutput,
    RestoreStepInput, WarmupPlan,
};
pub use data::data;
pub use delete::{RestoreDeleteInput, RestoreDeleteResult, delete};
pub use finalize::finalize;
pub use finish::finish;
pub use observe::{SETTLE_LIMIT_SECONDS, observe};
pub use start::{resolve_from_backup, restore_members, restore_problems, start};
