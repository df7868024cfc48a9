//! brfed domain: the federation specs users already have (`VolumeBackup`, `VolumeRestore`,
//! `VolumeBackupSchedule`), their validation, the data-plane member objects brfed creates, status
//! aggregation, and the decisions of every step. Nothing here talks to AWS or Kubernetes: the
//! outside world is reached through the port traits of [`ports`], implemented in `brfed-adapters`
//! (and by in-memory fakes in tests).
//!
//! One folder a workflow, each with the same inner shape (`spec`: its input; `member`: the member
//! objects it writes; `status`: its status and catalog record; `steps/`: one file a step):
//! [`backup`], [`restore`], [`schedule`], [`delete`]. Below them, what they share: [`catalog`],
//! [`conditions`], [`error`], [`execution`], [`input`], [`member`], [`names`], [`ports`], [`tags`],
//! [`time`]. A module uses only modules beside or below it (checked by `tests/layout.rs`).

pub mod backup;
pub mod delete;
pub mod restore;
pub mod schedule;

pub mod catalog;
pub mod conditions;
pub mod error;
pub mod execution;
pub mod input;
pub mod member;
pub mod names;
pub mod ports;
pub mod tags;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;

pub use error::{ERROR_NAMES, FAILURE_NAMES, RETRYABLE_ERROR_NAMES, StepError};
