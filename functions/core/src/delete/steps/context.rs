//! What every deletion step gets and carries from step to step.

use crate::backup::judge::Failure;
use crate::backup::steps::Env;
use crate::delete::member::DeleteMember;
use crate::delete::status::Manifest;
use crate::delete::status::manifest_key;
use crate::error::StepError;
use crate::ports::ObjectStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state a deletion execution carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteContext {
    /// Backup name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// This execution.
    pub execution: String,
    /// When the data planes must be done (RFC 3339).
    pub deadline: String,
    /// Snapshot deletions per second brfed allows itself.
    pub snapshots_per_second: f64,
    /// The backup's `cleanPolicy`.
    pub clean_policy: String,
    /// Members.
    pub members: Vec<DeleteMember>,
}

/// Input of the start step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStartInput {
    /// The execution input (a [`DeleteRequest`]).
    pub input: Value,
    /// `$$.Execution.Id`.
    pub execution: String,
}

/// Output of the start step (the whole initial state).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStartOutput {
    /// Context.
    pub deletion: DeleteContext,
    /// Snapshots brfed itself has processed so far.
    pub cursor: usize,
}

/// Output of the observe step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteObserved {
    /// `met` (every member gone), `pending`, or `failed`.
    pub verdict: String,
    /// Members still present.
    pub remaining: Vec<String>,
    /// The failure, when `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Input of the observe, snapshot and finish steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStepInput {
    /// Context (absent when the start step itself failed).
    #[serde(default)]
    pub deletion: Option<DeleteContext>,
    /// Snapshots processed so far by brfed.
    #[serde(default)]
    pub cursor: usize,
    /// The execution input (for the failure path of the start step).
    #[serde(default)]
    pub input: Option<Value>,
    /// The failure, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
}

pub(crate) fn context(input: &DeleteStepInput) -> Result<&DeleteContext, StepError> {
    input
        .deletion
        .as_ref()
        .ok_or_else(|| StepError::Internal("step input has no `deletion`".into()))
}

pub(crate) async fn load_manifest<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &DeleteContext,
) -> Result<Manifest, StepError> {
    let key = manifest_key(&ctx.namespace, &ctx.name);
    let v = env
        .store
        .get_json(env.catalog_bucket, &key)
        .await?
        .ok_or_else(|| StepError::CatalogUnavailable(format!("manifest {key} is missing")))?;
    serde_json::from_value(v.value).map_err(|e| StepError::Internal(format!("manifest {key}: {e}")))
}
