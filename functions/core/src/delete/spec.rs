//! What a deletion is asked: the backup (`namespace`, `name`) and its options.

use crate::error::StepError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the deletion is asked: the backup, and brfed's options. All but `name` optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteRequest {
    /// Federated backup name.
    pub name: String,
    /// Its namespace.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Options.
    #[serde(default)]
    pub options: DeleteOptions,
}

fn default_namespace() -> String {
    "default".into()
}

/// brfed's options of a deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteOptions {
    /// How long the data planes may take to clean up before the deletion is reported
    /// `DeletionDeadlineExceeded` (the original waits forever).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Snapshot deletions per second when brfed deletes snapshots itself (a data plane is gone);
    /// default: the backup's `snapshotsDeleteRatio` (1 when outside 0.1 to 2.0, as the data planes use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_per_second: Option<f64>,
}

fn default_timeout() -> u64 {
    6 * 3600
}

impl Default for DeleteOptions {
    fn default() -> Self {
        Self {
            timeout_seconds: default_timeout(),
            snapshots_per_second: None,
        }
    }
}

impl DeleteRequest {
    /// Parses and checks the execution input; every problem at once.
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let req: Self = serde_json::from_value(value)
            .map_err(|e| StepError::InvalidSpec(format!("deletion input: {e}")))?;
        let mut problems = Vec::new();
        if !crate::names::is_dns_subdomain(&req.name) {
            problems.push(format!("name `{}` is not a Kubernetes name", req.name));
        }
        if !crate::names::is_dns_label(&req.namespace) {
            problems.push(format!(
                "namespace `{}` is not a Kubernetes namespace",
                req.namespace
            ));
        }
        if req.options.timeout_seconds == 0
            || req.options.timeout_seconds > crate::input::MAX_DEADLINE_SECONDS
        {
            problems.push(format!(
                "options.timeoutSeconds must be 1..={}",
                crate::input::MAX_DEADLINE_SECONDS
            ));
        }
        if let Some(r) = req.options.snapshots_per_second
            && !(r > 0.0 && r <= 100.0)
        {
            problems.push("options.snapshotsPerSecond must be in (0, 100]".into());
        }
        if problems.is_empty() {
            Ok(req)
        } else {
            Err(StepError::InvalidSpec(problems.join("; ")))
        }
    }
}
