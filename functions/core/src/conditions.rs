//! Conditions of a federated object's status (`type`, `status`, transition time, reason, message),
//! as the original writes them.

use crate::time::rfc3339;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One condition of a federated object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FedCondition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True"/"False".
    pub status: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Reason (a failure name on `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Writes condition `type_` (True) into `conditions`. An existing True condition of the same type
/// keeps its transition time (reference §2.1); shared by the backup and restore statuses.
pub fn write_condition(
    conditions: &mut Vec<FedCondition>,
    type_: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: DateTime<Utc>,
) {
    let reason = reason.map(String::from);
    let message = message.map(String::from);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == "True" => {
            c.reason = reason;
            c.message = message;
        }
        Some(c) => {
            c.status = "True".into();
            c.last_transition_time = Some(rfc3339(now));
            c.reason = reason;
            c.message = message;
        }
        None => conditions.push(FedCondition {
            type_: type_.into(),
            status: "True".into(),
            last_transition_time: Some(rfc3339(now)),
            reason,
            message,
        }),
    }
}

/// Whether condition `type_` is True in `conditions`.
pub fn condition_true(conditions: &[FedCondition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
