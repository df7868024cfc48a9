//! What every backup step gets: the ports ([`Env`]) and the context the state machine carries
//! from step to step, with each step's input and output.
//!
//! Every step is idempotent: run again after a crash or a Step Functions retry it finds its own
//! earlier work (the catalog document's execution, the members' annotations and phase fields) and
//! does nothing twice.

use crate::backup::judge::Await;
use crate::backup::judge::Failure;
use crate::backup::spec::{BackupLocations, Options};
use crate::backup::status::VolumeBackupDoc;
use crate::catalog::Catalog;
use crate::execution::RunContext;
use crate::ports::ObjectStore;
use crate::time::Phase;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// What every step is given besides its input.
pub struct Env<'a, D, S> {
    /// The data planes.
    pub planes: &'a D,
    /// S3.
    pub store: &'a S,
    /// Bucket of the catalog.
    pub catalog_bucket: &'a str,
    /// Longest time one observe invocation may watch.
    pub observe_budget: Duration,
    /// Where this stack may keep backups (`None`: anywhere).
    pub backup_locations: Option<&'a BackupLocations>,
}

impl<D, S: ObjectStore> Env<'_, D, S> {
    pub(crate) fn catalog(&self) -> Catalog<'_, S, VolumeBackupDoc> {
        Catalog::new(self.store, self.catalog_bucket)
    }
}

/// The small state a backup execution carries from step to step.
pub type BackupContext = RunContext<Options>;

/// Input of the start step: the execution input and the execution's identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInput {
    /// Whatever the execution was started with (a `VolumeBackup`, YAML-derived JSON).
    pub input: Value,
    /// `$$.Execution.Id`.
    pub execution: String,
}

/// Output of the start step: the whole initial state of the execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartOutput {
    /// Context.
    pub backup: BackupContext,
    /// Phase `Initialize`.
    pub phase: Phase,
    /// Always null at start (the failure path fills it).
    pub failure: Option<Failure>,
    /// Always null at start.
    pub observed: Option<ObserveOutput>,
}

/// Input of the mutating steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepInput {
    /// Context.
    pub backup: BackupContext,
    /// Why the backup is failing, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// Input of the observe step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserveInput {
    /// Context.
    pub backup: BackupContext,
    /// What to wait for.
    #[serde(rename = "await")]
    pub awaited: Await,
    /// Current phase.
    pub phase: Phase,
}

/// Output of the observe step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObserveOutput {
    /// `met`, `pending` or `failed`.
    pub verdict: String,
    /// On `failed`.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Seconds the state machine should wait before observing again (0 in watch mode).
    pub wait_seconds: u64,
}

/// Input of the finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeInput {
    /// Context.
    pub backup: BackupContext,
    /// Why the backup failed, if it did.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The last observation (of the teardown wait).
    #[serde(default)]
    pub observed: Option<ObserveOutput>,
}
