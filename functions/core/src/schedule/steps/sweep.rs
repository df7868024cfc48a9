//! The retention sweep: per schedule, the deletion retention lets go (see [`crate::schedule::retention`]),
//! the latest missed tick and the time since its newest `Complete` backup against its RPO (see
//! [`crate::schedule::rpo`]); then the settle checks.

use crate::error::StepError;
use crate::ports::Executions;
use crate::ports::ObjectStore;
use crate::ports::Started;
use crate::schedule::retention;
use crate::schedule::retention::Candidate;
use crate::schedule::retention::Decision;
use crate::schedule::rpo;
use crate::schedule::rpo::RpoCheck;
use crate::schedule::steps::context::SchedulerEnv;
use crate::schedule::steps::settle::SettleCheck;
use crate::schedule::steps::settle::settle_checks;
use crate::schedule::steps::tick::TickOutput;
use crate::schedule::steps::tick::catch_up;
use crate::schedule::steps::tick::event_time;
use crate::time::rfc3339;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the sweep did for one schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepEntry {
    /// `namespace/name`.
    pub schedule: String,
    /// Backup whose deletion was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<String>,
    /// The name of that deletion's `volume-backup-delete` execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
    /// Why (or why nothing).
    pub reason: String,
    /// Backups whose deletion ended `CleanFailed` (they need a person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clean_failed: Vec<String>,
    /// The latest tick the schedule missed, run now ([`catch_up`]): `started`, or why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_tick: Option<TickOutput>,
    /// Time since its newest `Complete` backup against its RPO ([`rpo::check`]); absent for a
    /// paused schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoCheck>,
}

/// Output of `retention-sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepOutput {
    /// The time the sweep judged age against.
    pub now: String,
    /// One entry per schedule.
    pub schedules: Vec<SweepEntry>,
    /// How many schedules (not paused) are beyond their RPO ([`RpoCheck::beyond_rpo`]): the
    /// `SchedulesBeyondRpo` metric, written at every sweep, 0 included.
    pub schedules_beyond_rpo: u32,
    /// Backups `backup-abort` is asked to look at again ([`settle_checks`]); the function sends
    /// each as an event ([`SETTLE_CHECK_SOURCE`], [`SETTLE_CHECK_DETAIL_TYPE`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settle_checks: Vec<SettleCheck>,
}

/// Step `retention-sweep` on the function's clock: see [`sweep_at`].
pub async fn sweep<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    event: &Value,
) -> Result<SweepOutput, StepError> {
    sweep_at(env, event, Utc::now()).await
}

/// Step `retention-sweep` at `now`: for every schedule (paused ones too) starts the deletion of
/// at most one backup that its retention policy lets go (see [`retention::decide`]) among the
/// backups its ticks made ([`SchedulerEnv::backups_of`]), and judges every schedule not paused
/// against its RPO on the function's clock ([`rpo::check`], counted in
/// [`SweepOutput::schedules_beyond_rpo`]); then lists the [`settle_checks`]. Age is judged as of the scheduled
/// event's `time` when it is earlier than `now` (a late delivery judges as of when it was due),
/// never later: a `time` ahead of `now` by more than [`EVENT_TIME_AHEAD_SECONDS`], or older than
/// [`EVENT_TIME_BEHIND_SECONDS`], is refused (`EventTimeOutOfRange`) and nothing is started.
pub async fn sweep_at<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
    event: &Value,
    now: DateTime<Utc>,
) -> Result<SweepOutput, StepError> {
    let clock = now;
    let now = match event.get("time") {
        None | Some(Value::Null) => now,
        Some(Value::String(t)) => event_time("sweep event", t, now)?.min(now),
        Some(other) => {
            return Err(StepError::InvalidSpec(format!(
                "sweep event time must be an RFC 3339 string, not {}",
                other.to_string().chars().take(64).collect::<String>()
            )));
        }
    };
    let mut out = SweepOutput {
        now: rfc3339(now),
        schedules: Vec::new(),
        schedules_beyond_rpo: 0,
        settle_checks: Vec::new(),
    };
    for doc in env.list(None).await? {
        let (ns, name) = (
            doc.metadata.meta.namespace.clone(),
            doc.metadata.meta.name.clone(),
        );
        let mut entry = SweepEntry {
            schedule: format!("{ns}/{name}"),
            deleting: None,
            execution: None,
            reason: String::new(),
            clean_failed: Vec::new(),
            missed_tick: None,
            rpo: None,
        };
        // On the function's clock, not the event's: a missed tick is due when it is due.
        match catch_up(env, &doc, clock).await {
            Ok(t) => entry.missed_tick = t,
            // The rule's own tick raced it, or a service is busy: the next sweep looks again.
            Err(e) => tracing::warn!(schedule = %entry.schedule, error = %e, "missed tick not run"),
        }
        let backups = env.backups_of(&ns, &name).await?;
        // On the function's clock too: how old the newest restore point is now.
        entry.rpo = rpo::check(&doc, &backups, clock);
        if let Some(check) = &entry.rpo {
            out.schedules_beyond_rpo += u32::from(check.beyond_rpo);
            if let Some(problem) = &check.problem {
                tracing::warn!(schedule = %entry.schedule, problem, "RPO");
            }
        }
        let policy = match doc.request().retention() {
            Ok(p) => p,
            Err(e) => {
                entry.reason = format!("no retention: {e}");
                out.schedules.push(entry);
                continue;
            }
        };
        let candidates: Vec<Candidate> = backups
            .iter()
            .map(|b| Candidate {
                name: b.metadata.meta.name.clone(),
                created: b
                    .metadata
                    .creation_timestamp
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(now),
                // How it ended (a failed deletion makes its phase `CleanFailed`), else its phase.
                phase: (b.status.progress.outcome().map(String::from))
                    .or_else(|| b.status.progress.phase.clone()),
                skip_gc: b.skip_gc,
                deletion: b.brfed.deletion.as_ref().map(|d| d.state.clone()),
            })
            .collect();
        entry.clean_failed = candidates
            .iter()
            .filter(|c| c.deletion.as_deref() == Some("CleanFailed"))
            .map(|c| c.name.clone())
            .collect();
        match retention::decide(policy, &candidates, now) {
            Decision::Keep(why) => entry.reason = why,
            Decision::Delete { name: victim, why } => {
                let exec = crate::names::deletion_execution_name(&ns, &victim, now);
                let started = env
                    .executions
                    .start(
                        env.delete_state_machine,
                        &exec,
                        &json!({"name": victim, "namespace": ns}),
                    )
                    .await?;
                entry.reason = match started {
                    Started::New(_) => why,
                    Started::AlreadyExists => format!("{why} (its deletion was started before)"),
                };
                entry.deleting = Some(victim);
                entry.execution = Some(exec);
            }
        }
        out.schedules.push(entry);
    }
    out.settle_checks = settle_checks(env).await?;
    Ok(out)
}
