//! The deletion's steps, one Lambda each, in the order the `backup-delete` state machine runs
//! them: start (lock, manifest, members asked), observe, delete snapshots, finish; and the abort,
//! on the execution's status change.

mod abort;
mod context;
mod finish;
mod observe;
mod snapshots;
mod start;

pub use abort::abort;
pub use context::{
    DeleteContext, DeleteObserved, DeleteStartInput, DeleteStartOutput, DeleteStepInput,
};
pub use finish::finish;
pub use observe::observe;
pub use snapshots::delete_snapshots;
pub use start::start;
