//! One tick of a schedule: the backup it starts, unless the last one still runs or has not settled.

use crate::backup::status::VolumeBackupDoc;
use crate::catalog::Catalog;
use crate::error::StepError;
use crate::names;
use crate::ports::Executions;
use crate::ports::ObjectStore;
use crate::ports::Started;
use crate::schedule::spec::tick_backup_name;
use crate::schedule::status::ScheduleDoc;
use crate::schedule::steps::context::SchedulerEnv;
use crate::time::rfc3339;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// How far ahead of the function's clock an event's `time` may be, in seconds. EventBridge
/// stamps a scheduled event with its scheduled time and delivers it at or after that time, so
/// a time ahead of the clock is clock skew (a few seconds) or an event someone made up: a tick
/// from the future would make every tick until then `stale`, a sweep from the future would
/// expire backups early.
pub const EVENT_TIME_AHEAD_SECONDS: i64 = 5 * 60;

/// How far behind the function's clock an event's `time` may be, in seconds: EventBridge retries
/// a delivery for up to 24 h, and Lambda keeps an asynchronous event for up to 6 h more. Older
/// is a replay, not a late delivery.
pub const EVENT_TIME_BEHIND_SECONDS: i64 = 30 * 3600;

/// The event's `time`, when it is within [`EVENT_TIME_BEHIND_SECONDS`] before and
/// [`EVENT_TIME_AHEAD_SECONDS`] after `now` (the function's clock); `EventTimeOutOfRange`
/// otherwise (`InvalidSpec` when it is not an RFC 3339 time). `what` names the event.
pub fn event_time(what: &str, time: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, StepError> {
    let shown: String = time.chars().take(64).collect();
    let at = DateTime::parse_from_rfc3339(time)
        .map_err(|e| StepError::InvalidSpec(format!("{what} time `{shown}`: {e}")))?
        .with_timezone(&Utc);
    let ahead = at.signed_duration_since(now).num_seconds();
    if ahead > EVENT_TIME_AHEAD_SECONDS {
        return Err(StepError::EventTimeOutOfRange(format!(
            "{what} time {shown} is {ahead} s ahead of the function's clock ({}); at most {EVENT_TIME_AHEAD_SECONDS} s ahead is accepted: nothing was done",
            rfc3339(now)
        )));
    }
    if -ahead > EVENT_TIME_BEHIND_SECONDS {
        return Err(StepError::EventTimeOutOfRange(format!(
            "{what} time {shown} is {} s behind the function's clock ({}); at most {EVENT_TIME_BEHIND_SECONDS} s behind is accepted: nothing was done",
            -ahead,
            rfc3339(now)
        )));
    }
    Ok(at)
}

/// Input of `schedule-tick` (what the rule's input transformer makes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TickInput {
    /// Schedule namespace.
    pub namespace: String,
    /// Schedule name.
    pub name: String,
    /// The event's time: the scheduled time of this tick (RFC 3339).
    pub time: String,
}

/// What a tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickOutput {
    /// `namespace/name`.
    pub schedule: String,
    /// `started`, `duplicate`, `paused`, `stale`, `lastBackupRunning`.
    pub result: String,
    /// The backup of this tick.
    pub backup: String,
    /// Its execution ARN, when started now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// Why nothing was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Step `schedule-tick` on the function's clock: see [`tick_at`].
pub async fn tick<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    input: TickInput,
) -> Result<TickOutput, StepError> {
    tick_at(env, input, Utc::now()).await
}

/// Step `schedule-tick` at `now`: starts the backup of one tick, unless the tick's time is out
/// of the window around `now` (`EventTimeOutOfRange`, see [`event_time`]), the schedule is
/// paused, this tick is older than the last one (a late delivery: only the latest tick runs), or
/// the last backup of the schedule or of any schedule of its group still runs (see
/// [`last_backup_busy`]). The execution is named [`names::execution_name`] of the backup, so a
/// repeated delivery of the same tick starts nothing, and the same schedule name in two
/// namespaces makes two backups.
pub async fn tick_at<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    input: TickInput,
    now: DateTime<Utc>,
) -> Result<TickOutput, StepError> {
    let at = event_time("tick", &input.time, now)?
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .ok_or_else(|| StepError::InvalidSpec(format!("tick time `{}`", input.time)))?;
    tick_once(env, &input.namespace, &input.name, at).await
}

/// The tick of schedule `ns/name` at `at` (a whole minute), whoever asks: the rule's delivery
/// ([`tick_at`]) or the catch-up of a missed tick ([`catch_up`]).
async fn tick_once<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    ns: &str,
    name: &str,
    at: DateTime<Utc>,
) -> Result<TickOutput, StepError> {
    let (ns, name) = (ns.to_string(), name.to_string());
    let schedules = env.schedules();
    let (doc, _) = schedules.get(&ns, &name).await?.ok_or_else(|| {
        StepError::ScheduleNotFound(format!(
            "{ns}/{name}: its rule fired but the schedule is not in the catalog (delete the rule)"
        ))
    })?;
    let backup = tick_backup_name(&name, at);
    let out = |result: &str, reason: Option<String>, execution: Option<String>| TickOutput {
        schedule: format!("{ns}/{name}"),
        result: result.into(),
        backup: backup.clone(),
        execution,
        reason,
    };
    if doc.spec.pause {
        return Ok(out("paused", Some("spec.pause is set".into()), None));
    }
    let request = doc.request().backup_request_for_tick(at);
    let input_doc = request.execution_input()?;
    if doc.status.last_backup.as_deref() != Some(backup.as_str()) {
        if let Some(last) = doc.status.last_backup_time.as_deref()
            && DateTime::parse_from_rfc3339(last).is_ok_and(|t| t.with_timezone(&Utc) > at)
        {
            return Ok(out(
                "stale",
                Some(format!(
                    "a later tick ({last}) already ran; only the latest runs"
                )),
                None,
            ));
        }
        if let Some(busy) = running_backup(env, &doc).await? {
            return Ok(out("lastBackupRunning", Some(busy), None));
        }
        let (b, t) = (backup.clone(), rfc3339(at));
        let updated = schedules
            .update(&ns, &name, |d| {
                if d.status.last_backup.as_deref() == Some(b.as_str()) {
                    return false;
                }
                d.status.last_backup = Some(b.clone());
                d.status.last_backup_time = Some(t.clone());
                true
            })
            .await?;
        if updated.status.last_backup.as_deref() != Some(backup.as_str()) {
            return Err(StepError::CatalogConflict(format!(
                "{ns}/{name} changed during the tick"
            )));
        }
    }
    // Recorded: start it (again after a crash between the two is fine: same name, same input).
    let execution = names::execution_name(&ns, &backup);
    match env
        .executions
        .start(env.backup_state_machine, &execution, &input_doc)
        .await?
    {
        Started::New(arn) => Ok(out("started", None, Some(arn))),
        Started::AlreadyExists => Ok(out(
            "duplicate",
            Some(format!(
                "an execution of this tick exists already ({execution})"
            )),
            None,
        )),
    }
}

/// Runs the latest tick a schedule missed, as the original does on every sync: the newest time
/// its expression fired after its last backup's tick (or after its creation, before any
/// backup), at or before `now` ([`crate::schedule::cron::EventBridgeSchedule::latest_fire`]), when the
/// rule's own delivery of it started nothing, because the last backup still ran
/// (`lastBackupRunning`) or the schedule was paused, or was lost. Only that one tick, never a
/// backlog; `None` when nothing was missed or the schedule is paused. The retention sweep calls
/// it for every schedule, and resuming a schedule does: a long backup's successor starts within
/// one sweep of its end, a resumed schedule at once. A tick the rule also delivers is started
/// once (the same backup name, and execution name, whoever comes first).
pub async fn catch_up<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    doc: &ScheduleDoc,
    now: DateTime<Utc>,
) -> Result<Option<TickOutput>, StepError> {
    if doc.spec.pause {
        return Ok(None);
    }
    let Ok(expression) = doc.request().eventbridge_schedule() else {
        return Ok(None);
    };
    let since = doc
        .status
        .last_backup_time
        .as_deref()
        .or(doc.metadata.creation_timestamp.as_deref())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let Some(since) = since else {
        return Ok(None);
    };
    let Some(missed) = expression.latest_fire(since, now) else {
        return Ok(None);
    };
    let (ns, name) = (&doc.metadata.meta.namespace, &doc.metadata.meta.name);
    tick_once(env, ns, name, missed).await.map(Some)
}

/// Why the last backup of `doc`'s schedule, or of a schedule of its group, still occupies its
/// clusters; `None` when none does.
async fn running_backup<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    doc: &ScheduleDoc,
) -> Result<Option<String>, StepError> {
    let ns = &doc.metadata.meta.namespace;
    let mut lasts: Vec<String> = doc.status.last_backup.iter().cloned().collect();
    if let Some(group) = doc.request().group() {
        for other in env.list(Some(ns)).await? {
            if other.request().group() == Some(group) {
                lasts.extend(other.status.last_backup.iter().cloned());
            }
        }
    }
    let backups: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(env.store, env.catalog_bucket);
    for last in lasts {
        let execution = names::execution_name(ns, &last);
        if env
            .executions
            .status(env.backup_state_machine, &execution)
            .await?
            .as_deref()
            == Some("RUNNING")
        {
            return Ok(Some(format!(
                "{ns}/{last} is still running (execution {execution})"
            )));
        }
        if let Some((last_doc, _)) = backups.get(ns, &last).await?
            && let Some(why) = last_backup_busy(&last_doc)
        {
            return Ok(Some(format!("{ns}/{last}: {why}")));
        }
    }
    Ok(None)
}

/// Why a backup's members may still run although its execution ended, from its catalog
/// document; `None` when they have settled. An execution that was stopped or timed out ends at
/// once, while its members go on until `backup-abort` has asked each of them to tear down and
/// marked the document `Failed`: until the document is `Complete` or `Failed`, the next tick
/// waits (as the original does, PR #5735), rather than start a backup beside them.
pub fn last_backup_busy(doc: &VolumeBackupDoc) -> Option<String> {
    if !doc.status.progress.is_terminal() {
        return Some(format!(
            "its catalog document is {} (its members may still run; backup-abort ends it)",
            doc.status
                .progress
                .phase
                .as_deref()
                .unwrap_or("without a phase")
        ));
    }
    // Ended, but backup-abort (or finalize) saw members still running: they settle later, and
    // backup-abort writes `membersSettled: true` when they have.
    if doc.brfed.members_settled == Some(false) {
        return Some(format!(
            "it ended {} while members still ran ({}); backup-abort marks them settled once they end",
            doc.status
                .progress
                .phase
                .as_deref()
                .unwrap_or("without a phase"),
            if doc.brfed.unsettled_members.is_empty() {
                "not named".to_string()
            } else {
                doc.brfed.unsettled_members.join(", ")
            }
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn event_times_are_accepted_within_the_window_only() {
        let now = at("2026-06-01T12:00:00Z");
        for ok in [
            "2026-06-01T12:00:00Z",
            "2026-06-01T12:05:00Z",
            "2026-06-01T14:05:00+02:00",
            "2026-05-31T06:00:00Z",
        ] {
            assert_eq!(event_time("tick", ok, now).unwrap(), at(ok), "{ok}");
        }
        for (bad, needle) in [
            ("2026-06-01T12:05:01Z", "301 s ahead"),
            ("2026-06-02T12:00:00Z", "86400 s ahead"),
            ("2026-05-31T05:59:59Z", "108001 s behind"),
            ("0001-01-01T00:00:00Z", "behind"),
            ("9999-12-31T23:59:59Z", "ahead"),
        ] {
            let err = event_time("tick", bad, now).unwrap_err();
            assert_eq!(err.name(), "EventTimeOutOfRange", "{bad}");
            assert!(err.to_string().contains(needle), "{bad}: {err}");
            assert!(err.to_string().contains("nothing was done"), "{err}");
        }
        let err = event_time("tick", "tomorrow", now).unwrap_err();
        assert_eq!(err.name(), "InvalidSpec");
    }
}
