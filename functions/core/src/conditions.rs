//! Conditions of a federated object's status (`type`, `status`, transition time, reason, message),
//! as the original writes them.

use crate::time::rfc3339;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One condition of a status: of a federated object (brfed writes it) or of a data-plane object
/// (brfed reads it; a missing `type` or `status` reads as empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// "True" or "False".
    #[serde(default)]
    pub status: String,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// `reason: message`, or whichever of them it has.
    pub fn detail(&self) -> String {
        [self.reason.as_deref(), self.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ")
    }
}

/// Writes condition `type_` (True) into `conditions`. An existing True condition of the same type
/// keeps its transition time (reference §2.1); shared by the backup and restore statuses.
pub fn write_condition(
    conditions: &mut Vec<Condition>,
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
        None => conditions.push(Condition {
            type_: type_.into(),
            status: "True".into(),
            last_transition_time: Some(rfc3339(now)),
            reason,
            message,
        }),
    }
}

/// Whether condition `type_` is True in `conditions`.
pub fn condition_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
