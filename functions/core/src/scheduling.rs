//! Backup schedules on EventBridge (reference §4.3): the schedule as the catalog keeps it, its
//! management (apply, pause, resume, delete, list: what the CLI calls), the tick that one rule
//! delivery runs, and the retention sweep.
//!
//! A schedule is a catalog document (`VolumeBackupSchedule`-shaped) plus one EventBridge rule
//! (`cron(...)`/`rate(...)`, see [`crate::cron`]) whose target is the `schedule-tick` function
//! with `{"namespace", "name", "time": <event time>}`. Pausing disables the rule and sets
//! `spec.pause` (the tick also checks it). The sweep runs on its own rule, paused or not.

use crate::catalog::{CATALOG_PREFIX, Catalog, CatalogDoc, DocMeta, VolumeBackupDoc};
use crate::error::StepError;
use crate::names;
use crate::ports::{Executions, ObjectStore, Rules, ScheduleRule, Started};
use crate::retention::{self, Candidate, Decision};
use crate::schedule::{
    SCHEDULE_KIND, ScheduleRequest, VolumeBackupScheduleSpec, rule_name, tick_backup_name,
};
use crate::spec::{FEDERATION_API_VERSION, ScheduledBy};
use crate::status::rfc3339;
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;

/// Key of the document of schedule `namespace/name`.
pub fn schedule_key(namespace: &str, name: &str) -> String {
    format!("{CATALOG_PREFIX}/volumebackupschedules/{namespace}/{name}.json")
}

/// `VolumeBackupSchedule.status` (reference §2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Name of the last backup a tick started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Its scheduled time (not when it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<String>,
}

/// brfed's record beside the original's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRecord {
    /// EventBridge rule name.
    pub rule: String,
    /// Its schedule expression.
    pub expression: String,
    /// brfed's options for every backup of the schedule (`options` beside `spec` in the
    /// input); absent: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<crate::spec::Options>,
}

/// A `VolumeBackupSchedule` as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleDoc {
    /// `federation.pingcap.com/v1alpha1`.
    pub api_version: String,
    /// `VolumeBackupSchedule`.
    pub kind: String,
    /// Metadata.
    pub metadata: DocMeta,
    /// Spec as given.
    pub spec: VolumeBackupScheduleSpec,
    /// Status.
    #[serde(default)]
    pub status: ScheduleStatus,
    /// brfed's record.
    #[serde(default)]
    pub brfed: ScheduleRecord,
}

impl ScheduleDoc {
    /// The request this document was made from.
    pub fn request(&self) -> ScheduleRequest {
        ScheduleRequest {
            metadata: self.metadata.meta.clone(),
            spec: self.spec.clone(),
            options: self.brfed.options.clone().unwrap_or_default(),
        }
    }
}

impl CatalogDoc for ScheduleDoc {
    fn key_of(namespace: &str, name: &str) -> String {
        schedule_key(namespace, name)
    }
    fn id(&self) -> (&str, &str) {
        (&self.metadata.meta.namespace, &self.metadata.meta.name)
    }
    fn execution(&self) -> &str {
        ""
    }
}

/// What schedule management and the scheduled functions are given.
pub struct SchedulerEnv<'a, S, X> {
    /// S3.
    pub store: &'a S,
    /// Bucket of the catalog.
    pub catalog_bucket: &'a str,
    /// Step Functions.
    pub executions: &'a X,
    /// ARN of the `volume-backup` state machine.
    pub backup_state_machine: &'a str,
    /// ARN of the `volume-backup-delete` state machine.
    pub delete_state_machine: &'a str,
}

impl<S: ObjectStore, X> SchedulerEnv<'_, S, X> {
    fn schedules(&self) -> Catalog<'_, S, ScheduleDoc> {
        Catalog::new(self.store, self.catalog_bucket)
    }

    /// Every schedule document (of `namespace`, or of all namespaces).
    pub async fn list(&self, namespace: Option<&str>) -> Result<Vec<ScheduleDoc>, StepError> {
        let prefix = match namespace {
            Some(ns) => format!("{CATALOG_PREFIX}/volumebackupschedules/{ns}/"),
            None => format!("{CATALOG_PREFIX}/volumebackupschedules/"),
        };
        let mut out = Vec::new();
        for key in self.store.list_keys(self.catalog_bucket, &prefix).await? {
            let Some(v) = self.store.get_json(self.catalog_bucket, &key).await? else {
                continue;
            };
            match serde_json::from_value::<ScheduleDoc>(v.value) {
                Ok(d) => out.push(d),
                Err(e) => tracing::warn!(key, error = %e, "unreadable schedule document skipped"),
            }
        }
        Ok(out)
    }

    /// The backups a schedule's ticks made: catalog documents whose `brfed.scheduledBy` names
    /// the schedule. Not the `tidb.pingcap.com/backup-schedule` label: a manual backup may carry
    /// it (copied from a scheduled one), and must not become the schedule's retention's to delete.
    pub async fn backups_of(
        &self,
        namespace: &str,
        schedule: &str,
    ) -> Result<Vec<VolumeBackupDoc>, StepError> {
        // A tick's backups are named `{schedule}-{ts}`: list that prefix, then check the record.
        let prefix = format!("{CATALOG_PREFIX}/volumebackups/{namespace}/{schedule}-");
        let mine = ScheduledBy {
            namespace: namespace.into(),
            name: schedule.into(),
        };
        let mut out = Vec::new();
        for key in self.store.list_keys(self.catalog_bucket, &prefix).await? {
            let Some(v) = self.store.get_json(self.catalog_bucket, &key).await? else {
                continue;
            };
            if let Ok(d) = serde_json::from_value::<VolumeBackupDoc>(v.value)
                && d.brfed.scheduled_by.as_ref() == Some(&mine)
                && d.metadata.meta.namespace == namespace
            {
                out.push(d);
            }
        }
        Ok(out)
    }
}

// --- management -------------------------------------------------------------------------------

/// The options a schedule document records: none when they are the defaults.
fn recorded_options(request: &ScheduleRequest) -> Option<crate::spec::Options> {
    (request.options != crate::spec::Options::default()).then(|| request.options.clone())
}

/// Target input of a schedule rule: the schedule, and the event's time. The placeholder is
/// quoted: EventBridge then puts the string value inside those quotes.
pub fn tick_input_template(namespace: &str, name: &str) -> String {
    json!({"namespace": namespace, "name": name, "time": "<time>"}).to_string()
}

/// Creates or updates a schedule from the user's `VolumeBackupSchedule` (validated, every
/// problem at once, before anything is written), then its rule. The status is kept on update.
pub async fn apply<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    tick_function_arn: &str,
    request: &ScheduleRequest,
    known_clusters: Option<&HashSet<String>>,
) -> Result<ScheduleDoc, StepError> {
    request.validate(known_clusters)?;
    let expression = request
        .eventbridge_schedule()
        .map_err(|e| StepError::InvalidSpec(format!("spec.schedule: {e}")))?
        .expression();
    let (ns, name) = (
        request.metadata.namespace.clone(),
        request.metadata.name.clone(),
    );
    let rule = rule_name(&ns, &name);
    let schedules = env.schedules();
    let doc = match schedules.get(&ns, &name).await? {
        None => {
            let doc = ScheduleDoc {
                api_version: FEDERATION_API_VERSION.into(),
                kind: SCHEDULE_KIND.into(),
                metadata: DocMeta {
                    meta: request.metadata.clone(),
                    creation_timestamp: Some(rfc3339(Utc::now())),
                },
                spec: request.spec.clone(),
                status: ScheduleStatus::default(),
                brfed: ScheduleRecord {
                    rule: rule.clone(),
                    expression: expression.clone(),
                    options: recorded_options(request),
                },
            };
            schedules.create(&doc).await?
        }
        Some(_) => {
            schedules
                .update(&ns, &name, |d| {
                    d.metadata.meta = request.metadata.clone();
                    d.spec = request.spec.clone();
                    d.brfed = ScheduleRecord {
                        rule: rule.clone(),
                        expression: expression.clone(),
                        options: recorded_options(request),
                    };
                    true
                })
                .await?
        }
    };
    rules
        .put(&ScheduleRule {
            name: rule,
            expression,
            enabled: !doc.spec.pause,
            description: format!(
                "brfed VolumeBackupSchedule {ns}/{name}: {}",
                doc.spec.schedule
            ),
            target_arn: tick_function_arn.into(),
            input_template: tick_input_template(&ns, &name),
        })
        .await?;
    Ok(doc)
}

/// Pauses (`true`) or resumes a schedule: `spec.pause` and the rule's state.
pub async fn set_paused<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    namespace: &str,
    name: &str,
    paused: bool,
) -> Result<ScheduleDoc, StepError> {
    let schedules = env.schedules();
    if schedules.get(namespace, name).await?.is_none() {
        return Err(StepError::ScheduleNotFound(format!("{namespace}/{name}")));
    }
    let doc = schedules
        .update(namespace, name, |d| {
            let change = d.spec.pause != paused;
            d.spec.pause = paused;
            change
        })
        .await?;
    if !rules.set_enabled(&doc.brfed.rule, !paused).await? {
        return Err(StepError::EventBridgeUnavailable(format!(
            "rule {} of schedule {namespace}/{name} does not exist; apply the schedule again",
            doc.brfed.rule
        )));
    }
    Ok(doc)
}

/// Deletes a schedule: its rule, then its document. Its backups stay (unlike the original,
/// whose owner references delete them all, reference §10 item 10); delete them by name.
pub async fn remove<S: ObjectStore, X, R: Rules>(
    env: &SchedulerEnv<'_, S, X>,
    rules: &R,
    namespace: &str,
    name: &str,
) -> Result<ScheduleDoc, StepError> {
    let (doc, _) = env
        .schedules()
        .get(namespace, name)
        .await?
        .ok_or_else(|| StepError::ScheduleNotFound(format!("{namespace}/{name}")))?;
    rules.delete(&doc.brfed.rule).await?;
    env.store
        .delete_object(env.catalog_bucket, &schedule_key(namespace, name))
        .await?;
    Ok(doc)
}

// --- the tick ---------------------------------------------------------------------------------

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
/// backup), at or before `now` ([`crate::cron::EventBridgeSchedule::latest_fire`]), when the
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
    if !doc.status.is_terminal() {
        return Some(format!(
            "its catalog document is {} (its members may still run; backup-abort ends it)",
            doc.status.phase.as_deref().unwrap_or("without a phase")
        ));
    }
    // Ended, but backup-abort (or finalize) saw members still running: they settle later, and
    // backup-abort writes `membersSettled: true` when they have.
    if doc.brfed.members_settled == Some(false) {
        return Some(format!(
            "it ended {} while members still ran ({}); backup-abort marks them settled once they end",
            doc.status.phase.as_deref().unwrap_or("without a phase"),
            if doc.brfed.unsettled_members.is_empty() {
                "not named".to_string()
            } else {
                doc.brfed.unsettled_members.join(", ")
            }
        ));
    }
    None
}

// --- the retention sweep ----------------------------------------------------------------------

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
}

/// Output of `retention-sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepOutput {
    /// The time the sweep judged age against.
    pub now: String,
    /// One entry per schedule.
    pub schedules: Vec<SweepEntry>,
    /// Backups `backup-abort` is asked to look at again ([`settle_checks`]); the function sends
    /// each as an event ([`SETTLE_CHECK_SOURCE`], [`SETTLE_CHECK_DETAIL_TYPE`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settle_checks: Vec<SettleCheck>,
}

/// `source` of a settle check event: not `brfed` (brfed's public events, `docs/signals.md`).
pub const SETTLE_CHECK_SOURCE: &str = "brfed.internal";
/// `detail-type` of a settle check event, which the stack's rule sends to `backup-abort`.
pub const SETTLE_CHECK_DETAIL_TYPE: &str = "VolumeBackup Settle Check";

/// A backup whose execution ended while a member was not asked to tear down yet
/// (`brfed.teardownPending`) or still ran (`brfed.membersSettled: false`): `backup-abort` is asked
/// again, by an event whose `detail` is the execution's status change as Step Functions sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleCheck {
    /// `namespace/name`.
    pub backup: String,
    /// What is not settled.
    pub why: String,
    /// `executionArn`, `stateMachineArn`, `name`, `status`, `input`, `error`, `cause`.
    pub detail: Value,
}

/// The settle checks of the whole catalog: every backup whose document says a member was not
/// asked to tear down yet or had not settled when it ended, and whose execution (of
/// `backup_state_machine`) has ended `ABORTED`, `TIMED_OUT` or `FAILED`: the case
/// `backup-abort` handles. A running execution is its own steps' (never sent); so is a
/// document of another state machine's execution (left, logged).
///
/// This is the safety net's own net: Lambda retries `backup-abort` twice (about 3 minutes), a
/// member may run for hours, and a data plane may be down for longer; every sweep asks again
/// until the document says every member has settled.
pub async fn settle_checks<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
) -> Result<Vec<SettleCheck>, StepError> {
    let prefix = format!("{CATALOG_PREFIX}/volumebackups/");
    let mut out = Vec::new();
    for key in env.store.list_keys(env.catalog_bucket, &prefix).await? {
        let Some(v) = env.store.get_json(env.catalog_bucket, &key).await? else {
            continue;
        };
        let Ok(doc) = serde_json::from_value::<VolumeBackupDoc>(v.value) else {
            continue;
        };
        let b = &doc.brfed;
        let why = if !b.teardown_pending.is_empty() {
            format!(
                "not asked to tear down yet: {}",
                b.teardown_pending.join("; ")
            )
        } else if b.members_settled == Some(false) {
            format!(
                "still running when it ended: {}",
                b.unsettled_members.join("; ")
            )
        } else {
            continue;
        };
        let backup = format!("{}/{}", doc.metadata.meta.namespace, doc.metadata.meta.name);
        let Some(name) = b
            .execution
            .rsplit(':')
            .next()
            .filter(|n| names::execution_arn(env.backup_state_machine, n) == b.execution)
        else {
            tracing::warn!(%backup, execution = %b.execution, "not an execution of this stack's volume-backup: no settle check");
            continue;
        };
        let Some(facts) = env
            .executions
            .describe(env.backup_state_machine, name)
            .await?
        else {
            continue;
        };
        if !matches!(facts.status.as_str(), "ABORTED" | "TIMED_OUT" | "FAILED") {
            continue;
        }
        out.push(SettleCheck {
            backup,
            why,
            detail: json!({
                "executionArn": b.execution,
                "stateMachineArn": env.backup_state_machine,
                "name": name,
                "status": facts.status,
                "input": facts.input,
                "error": facts.error,
                "cause": facts.cause,
            }),
        });
    }
    Ok(out)
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
/// backups its ticks made ([`SchedulerEnv::backups_of`]); then lists the [`settle_checks`]. Age is judged as of the scheduled
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
        };
        // On the function's clock, not the event's: a missed tick is due when it is due.
        match catch_up(env, &doc, clock).await {
            Ok(t) => entry.missed_tick = t,
            // The rule's own tick raced it, or a service is busy: the next sweep looks again.
            Err(e) => tracing::warn!(schedule = %entry.schedule, error = %e, "missed tick not run"),
        }
        let policy = match doc.request().retention() {
            Ok(p) => p,
            Err(e) => {
                entry.reason = format!("no retention: {e}");
                out.schedules.push(entry);
                continue;
            }
        };
        let backups = env.backups_of(&ns, &name).await?;
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
                phase: b.status.phase.clone(),
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

/// Reads a schedule document (for `get`).
pub async fn get<S: ObjectStore, X>(
    env: &SchedulerEnv<'_, S, X>,
    namespace: &str,
    name: &str,
) -> Result<ScheduleDoc, StepError> {
    env.schedules()
        .get(namespace, name)
        .await?
        .map(|(d, _)| d)
        .ok_or_else(|| StepError::ScheduleNotFound(format!("{namespace}/{name}")))
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
