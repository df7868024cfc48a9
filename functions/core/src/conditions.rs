//! Conditions of a federated object's status (`type`, `status`, transition time, reason, message),
//! as the original writes them.

use crate::time::rfc3339;
use crate::time::time_taken;
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

/// Condition types (and phases) that a federated backup and a federated restore share.
pub mod phases {
    /// Started.
    pub const RUNNING: &str = "Running";
    /// Done, succeeded.
    pub const COMPLETE: &str = "Complete";
    /// Done, failed.
    pub const FAILED: &str = "Failed";
}

/// What the status of a federated backup and of a federated restore show alike: when it ran,
/// the point in time it holds, its conditions, and the last of them as its phase. Flattened into
/// both statuses, so the fields stand at the status's top level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// When `Running` was first set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<String>,
    /// Go duration string, rounded to seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_taken: Option<String>,
    /// A backup: the minimum member commitTs (on `Complete`). A restore: the restored point in
    /// time (the commitTs of the restore-data member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// Type of the last condition written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Progress {
    /// Writes condition `type_` (True) and makes it the phase. An existing True condition of the
    /// same type keeps its transition time (reference §2.1). The first `Running` sets the start.
    pub fn set_condition(
        &mut self,
        type_: &str,
        reason: Option<&str>,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) {
        write_condition(&mut self.conditions, type_, reason, message, now);
        self.phase = Some(type_.into());
        if type_ == phases::RUNNING && self.time_started.is_none() {
            self.time_started = Some(rfc3339(now));
        }
    }

    /// Whether condition `type_` is True.
    pub fn has(&self, type_: &str) -> bool {
        condition_true(&self.conditions, type_)
    }

    /// How it ended: `Complete` or `Failed` (its phase, or its True condition); `None` while it
    /// runs. Not only the phase: a backup's phase becomes `CleanFailed` when a deletion of it
    /// fails, as the original shows it, and the backup still ended as it did.
    pub fn outcome(&self) -> Option<&'static str> {
        [phases::COMPLETE, phases::FAILED]
            .into_iter()
            .find(|t| self.phase.as_deref() == Some(*t) || self.has(t))
    }

    /// Whether it has ended ([`Self::outcome`]).
    pub fn is_terminal(&self) -> bool {
        self.outcome().is_some()
    }

    /// Ends it at `now`: the completion time, the time taken, and `Failed` with `failure`'s
    /// reason and message, or `Complete` without one.
    pub fn end(&mut self, failure: Option<(&str, &str)>, now: DateTime<Utc>) {
        self.time_completed = Some(rfc3339(now));
        if let Some(taken) = time_taken(self.time_started.as_deref(), now) {
            self.time_taken = Some(taken);
        }
        match failure {
            Some((reason, message)) => {
                self.set_condition(phases::FAILED, Some(reason), Some(message), now)
            }
            None => self.set_condition(phases::COMPLETE, None, None, now),
        }
    }
}
