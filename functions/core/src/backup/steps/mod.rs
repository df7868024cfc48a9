//! The backup's steps, one Lambda each, in the order the `volume-backup` state machine runs them:
//! start (preflight, catalog record, initialize member), observe, execute, resume GC, teardown,
//! finalize; and abort, on the execution's status change.

mod abort;
mod context;
mod execute;
mod finalize;
mod observe;
mod resume_gc;
mod start;
mod teardown;
#[cfg(test)]
mod tests;

pub use abort::{AbortReport, abort};
pub use context::{
    BackupContext, Env, FinalizeInput, ObserveInput, ObserveOutput, StartInput, StartOutput,
    StepInput,
};
pub use execute::execute;
pub use finalize::{FinalizeOutput, finalize};
pub use observe::observe;
pub use resume_gc::resume_gc;
pub use start::{Preflight, Problem, preflight, start, tidb_cluster_problems};
pub use teardown::{TeardownReport, request_teardown, teardown, unsettled_members};
