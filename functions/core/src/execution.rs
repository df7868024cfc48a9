//! A Step Functions execution: the small state it carries from step to step ([`RunContext`]), and
//! its status change, as EventBridge delivers it to the abort functions (and as the retention
//! sweep sends it for a settle check).

use crate::member::MemberRef;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The small state a backup's or a restore's execution carries from step to step: what it works
/// on, its members and options, and its deadline. `X` is what one workflow carries more (a
/// restore's warmup), flattened beside the rest: the state's JSON is flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunContext<O, X = NothingMore> {
    /// Name of the federated object (= execution name).
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Execution ARN.
    pub execution: String,
    /// Members in `spec.clusters` order (a backup's `members[0]` initializes; a restore's
    /// `backupName` holds the member `Restore`'s name).
    pub members: Vec<MemberRef>,
    /// Options in force.
    pub options: O,
    /// Overall deadline, RFC 3339 (empty in a context rebuilt from the catalog by an abort).
    pub deadline: String,
    /// What the workflow carries more.
    #[serde(flatten)]
    pub extra: X,
}

impl<O, X> RunContext<O, X> {
    /// The context an abort rebuilds for execution `execution` of `namespace/name` from what the
    /// catalog record holds: without a deadline (an abort has none).
    pub fn recorded(
        (namespace, name): (&str, &str),
        execution: &str,
        members: &[MemberRef],
        options: O,
        extra: X,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            execution: execution.into(),
            members: members.to_vec(),
            options,
            deadline: String::new(),
            extra,
        }
    }
}

/// A workflow that carries nothing more than [`RunContext`]'s fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NothingMore {}

/// The Step Functions "Execution Status Change" event the abort step receives (the fields it uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatusChange {
    /// `detail-type`: `Step Functions Execution Status Change`, or a settle check
    /// ([`crate::execution::SETTLE_CHECK_DETAIL_TYPE`]) the retention sweep sends.
    #[serde(default, rename = "detail-type")]
    pub detail_type: Option<String>,
    /// `detail`.
    pub detail: ExecutionDetail,
}

impl ExecutionStatusChange {
    /// Whether this is a settle check of the retention sweep rather than Step Functions' event.
    pub fn is_settle_check(&self) -> bool {
        self.detail_type.as_deref() == Some(crate::execution::SETTLE_CHECK_DETAIL_TYPE)
    }
}

/// `detail` of an execution status change.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    /// Execution ARN.
    pub execution_arn: String,
    /// Its state machine.
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    /// The execution input, as a JSON string.
    #[serde(default)]
    pub input: Option<String>,
    /// Error name, on FAILED.
    #[serde(default)]
    pub error: Option<String>,
    /// Cause, on FAILED.
    #[serde(default)]
    pub cause: Option<String>,
}

impl ExecutionDetail {
    /// The failure an ended execution gives its backup, restore or deletion: `ExecutionAborted`,
    /// `ExecutionTimedOut`, `ExecutionFailed`; `None` for any other status.
    pub fn failure_name(&self) -> Option<&'static str> {
        match self.status.as_str() {
            "ABORTED" => Some("ExecutionAborted"),
            "TIMED_OUT" => Some("ExecutionTimedOut"),
            "FAILED" => Some("ExecutionFailed"),
            _ => None,
        }
    }

    /// The execution input, parsed (`None` when absent or not JSON).
    pub fn input_value(&self) -> Option<Value> {
        self.input
            .as_deref()
            .and_then(|i| serde_json::from_str(i).ok())
    }

    /// The failure name of an execution that ended ABORTED, TIMED_OUT or FAILED and its input as
    /// `parse` reads it (`what`: what it must be); otherwise why an abort has nothing to do.
    pub fn ended_request<T>(
        &self,
        what: &str,
        parse: impl FnOnce(Value) -> Option<T>,
    ) -> Result<(&'static str, T), String> {
        let failure_name = self
            .failure_name()
            .ok_or_else(|| format!("status {}", self.status))?;
        let request = self
            .input_value()
            .and_then(parse)
            .ok_or_else(|| format!("input is not {what}"))?;
        Ok((failure_name, request))
    }

    /// `execution <arn> ended <status>[: <error>[: <cause>]]`.
    pub fn ended(&self) -> String {
        let arn = &self.execution_arn;
        match (self.error.as_deref(), self.cause.as_deref()) {
            (Some(e), Some(c)) => format!("execution {arn} ended {}: {e}: {c}", self.status),
            (Some(e), None) => format!("execution {arn} ended {}: {e}", self.status),
            _ => format!("execution {arn} ended {}", self.status),
        }
    }
}

/// `source` of a settle check event: not `brfed` (brfed's public events, `docs/signals.md`).
pub const SETTLE_CHECK_SOURCE: &str = "brfed.internal";

/// `detail-type` of a settle check event, which the stack's rule sends to `backup-abort`.
pub const SETTLE_CHECK_DETAIL_TYPE: &str = "VolumeBackup Settle Check";
