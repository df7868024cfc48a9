//! brfed domain: the federation specs users already have (`VolumeBackup`), their validation,
//! the data-plane member objects brfed creates, status aggregation, and the decisions of every
//! backup step. Nothing here talks to AWS or Kubernetes: the outside world is reached through
//! the port traits of [`ports`], implemented in `brfed-adapters` (and by in-memory fakes in tests).

pub mod backup;
pub mod catalog;
pub mod cron;
pub mod delete;
pub mod error;
pub mod member;
pub mod names;
pub mod orphans;
pub mod ports;
pub mod restore;
pub mod restore_steps;
pub mod restore_volumes;
pub mod retention;
pub mod schedule;
pub mod scheduling;
pub mod spec;
pub mod status;
pub mod steps;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ERROR_NAMES, FAILURE_NAMES, RETRYABLE_ERROR_NAMES, StepError};
