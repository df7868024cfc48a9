//! What brfed tells the outside world when a backup, a restore or a backup deletion ends, built
//! without I/O: CloudWatch metrics in the Embedded Metric Format (EMF: one JSON object on one
//! stdout line, which CloudWatch Logs turns into metrics, no SDK call) and one EventBridge event.
//! [`crate::emit`] writes and sends them; `docs/signals.md` defines every metric and event.
//!
//! The metric names are the original's (`fed_volume_backup_*`, labels `namespace`, `tc` and
//! `status`), plus brfed's own pause window and restore metrics. `tc` is the sorted,
//! comma-joined `tcName`s of the clusters, as the original's label.

use brfed_core::backup::status::VolumeBackupDoc;
use brfed_core::backup::status::vbk;
use brfed_core::backup::steps::BackupContext;
use brfed_core::catalog::FederatedDoc;
use brfed_core::conditions::Condition;
use brfed_core::delete::status::DeleteResult;
use brfed_core::delete::steps::DeleteContext;
use brfed_core::member::{MemberView, cond};
use brfed_core::restore::status::VolumeRestoreDoc;
use brfed_core::schedule::steps::SweepOutput;
use brfed_core::time::go_duration;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// CloudWatch namespace of every metric.
pub const METRIC_NAMESPACE: &str = "brfed";
/// `source` of every event.
pub const EVENT_SOURCE: &str = "brfed";
/// Longest `cause` an event carries (characters); the catalog document has the whole story.
pub const CAUSE_LIMIT: usize = 2048;

/// Dimensions of the status counters.
const BY_STATUS: &[&str] = &["namespace", "tc", "status"];
/// Dimensions of the other metrics.
const BY_CLUSTER: &[&str] = &["namespace", "tc"];
/// The dimension of [`GC_PAUSED_METRIC`] that the stack's alarm watches: the emitting function's
/// name (`<NamePrefix>-backup-observe`), so that two stacks in one account alarm apart.
const BY_FUNCTION: &[&str] = &["FunctionName"];
/// The dimension set of the ends' status metrics that the stack's alarms read: its identity
/// (`stack` = the catalog bucket, `BRFED_CATALOG_BUCKET`) and the phase.
const BY_STACK: &[&str] = &["stack", "status"];

/// Seconds a running backup's initialize member has held GC and the PD schedulers paused
/// ([`gc_paused`]); `infra/aws/template.yaml`'s `GcPausedAlarm` watches it.
pub const GC_PAUSED_METRIC: &str = "GcPausedSeconds";

/// Seconds since a schedule's newest `Complete` backup (or its first apply), per schedule
/// ([`schedule_rpo`]).
pub const SINCE_COMPLETE_METRIC: &str = "fed_volume_backup_schedule_since_complete_sec";

/// How many schedules are beyond their RPO, by stack, at every sweep ([`schedule_rpo`]);
/// `infra/aws/template.yaml`'s `ScheduleRpoAlarm` watches it.
pub const BEYOND_RPO_METRIC: &str = "SchedulesBeyondRpo";

/// Dimensions of [`SINCE_COMPLETE_METRIC`]: the schedule's namespace and name.
const BY_SCHEDULE: &[&str] = &["namespace", "schedule"];
/// Dimensions of [`BEYOND_RPO_METRIC`], which the stack's alarm reads: the stack's identity.
const BY_STACK_ALONE: &[&str] = &["stack"];

/// Every metric the builders of this file write (namespace [`METRIC_NAMESPACE`]), each with every
/// dimension set it is written under; a unit test checks that they write exactly these.
/// `functions/core/tests/template/dashboard.rs` reads this table (one entry a line, the sets
/// named by the `BY_*` constants above) to check that the stack's dashboard graphs only what is
/// written.
pub const METRICS: &[(&str, &[&[&str]])] = &[
    ("fed_volume_backup_status", &[BY_STATUS, BY_STACK]),
    ("fed_volume_backup_total_time_sec", &[BY_CLUSTER]),
    ("fed_volume_backup_total_size_gb", &[BY_CLUSTER]),
    ("fed_volume_backup_pause_window_sec", &[BY_CLUSTER]),
    ("fed_volume_backup_cleanup_status", &[BY_STATUS, BY_STACK]),
    ("fed_volume_backup_cleanup_total_time_sec", &[BY_CLUSTER]),
    ("fed_volume_restore_status", &[BY_STATUS, BY_STACK]),
    ("fed_volume_restore_total_time_sec", &[BY_CLUSTER]),
    (GC_PAUSED_METRIC, &[BY_CLUSTER, BY_FUNCTION]),
    (SINCE_COMPLETE_METRIC, &[BY_SCHEDULE]),
    (BEYOND_RPO_METRIC, &[BY_STACK_ALONE]),
];

/// CloudWatch units brfed uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Durations.
    Seconds,
    /// Sizes, in GiB (bytes / 2^30, as the original's `total_size_gb`).
    Gigabytes,
    /// Counters (always 1: one ended backup).
    Count,
}

impl Unit {
    /// The unit as CloudWatch spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Gigabytes => "Gigabytes",
            Unit::Count => "Count",
        }
    }
}

/// One metric directive: a dimension set and the metrics (name, unit) reported under it.
type Directive = (Vec<String>, Vec<(String, Unit)>);

/// One EMF document: root members (dimension values, metric values, other properties) and the
/// directives that tell CloudWatch which root members are metrics, under which dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct Emf {
    namespace: String,
    timestamp_ms: i64,
    members: Map<String, Value>,
    directives: Vec<Directive>,
}

impl Emf {
    /// An empty document of `namespace`, timestamped `at`.
    pub fn new(namespace: &str, at: DateTime<Utc>) -> Self {
        Self {
            namespace: namespace.into(),
            timestamp_ms: at.timestamp_millis(),
            members: Map::new(),
            directives: Vec::new(),
        }
    }

    /// A dimension value (EMF wants it as a string root member). CloudWatch refuses an empty
    /// dimension value, so an empty one is written `-`.
    pub fn dimension(mut self, key: &str, value: &str) -> Self {
        let value = if value.trim().is_empty() { "-" } else { value };
        self.members.insert(key.into(), Value::String(value.into()));
        self
    }

    /// A root member that is neither a dimension nor a metric (searchable in Logs Insights).
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.members.insert(key.into(), value.into());
        self
    }

    /// Metric `name` = `value` in `unit`, under the dimension set `dimensions` (keys set with
    /// [`Self::dimension`]). Metrics of one dimension set share one directive. A value that is
    /// not finite is left out.
    pub fn metric(mut self, dimensions: &[&str], name: &str, unit: Unit, value: f64) -> Self {
        let Some(number) = serde_json::Number::from_f64(value) else {
            return self;
        };
        self.members.insert(name.into(), Value::Number(number));
        let dims: Vec<String> = dimensions.iter().map(|d| d.to_string()).collect();
        match self.directives.iter_mut().find(|(d, _)| *d == dims) {
            Some((_, metrics)) => metrics.push((name.into(), unit)),
            None => self.directives.push((dims, vec![(name.into(), unit)])),
        }
        self
    }

    /// [`Self::metric`] when there is a value; `None` (an unknown duration, no size) adds nothing.
    pub fn metric_of(
        self,
        dimensions: &[&str],
        name: &str,
        unit: Unit,
        value: Option<f64>,
    ) -> Self {
        match value {
            Some(value) => self.metric(dimensions, name, unit, value),
            None => self,
        }
    }

    /// Whether no metric was added.
    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    /// The document: `_aws` (timestamp in ms, one directive per dimension set) beside the root
    /// members.
    pub fn to_json(&self) -> Value {
        let directives: Vec<Value> = self
            .directives
            .iter()
            .map(|(dims, metrics)| {
                json!({
                    "Namespace": self.namespace,
                    "Dimensions": [dims],
                    "Metrics": metrics
                        .iter()
                        .map(|(name, unit)| json!({"Name": name, "Unit": unit.as_str()}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut root = self.members.clone();
        root.insert(
            "_aws".into(),
            json!({"Timestamp": self.timestamp_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(root)
    }

    /// The document as the one line CloudWatch Logs reads.
    pub fn line(&self) -> String {
        self.to_json().to_string()
    }
}

/// `detail` of a brfed event. Every key is always there (`null` when it does not apply), so
/// that rules can match on any of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    /// Namespace of the `VolumeBackup` / `VolumeRestore`.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `Complete`, `Failed`, `Cleaned` or `CleanFailed`.
    pub phase: String,
    /// The backup's or restore's commitTs.
    pub commit_ts: Option<String>,
    /// Bytes (backups).
    pub backup_size: Option<i64>,
    /// Go duration: the backup's or restore's `timeTaken`, the deletion's duration.
    pub time_taken: Option<String>,
    /// The failure name.
    pub error: Option<String>,
    /// What happened (at most [`CAUSE_LIMIT`] characters).
    pub cause: Option<String>,
    /// The Step Functions execution ARN.
    pub execution: String,
}

/// One EventBridge event of source [`EVENT_SOURCE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `VolumeBackup Complete`, `VolumeBackup Failed`, `VolumeRestore Complete`,
    /// `VolumeRestore Failed`, `VolumeBackup Cleaned`, `VolumeBackup CleanFailed`.
    pub detail_type: String,
    /// The detail.
    pub detail: EventDetail,
}

/// What one ended backup, restore or deletion emits.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// The EMF document.
    pub metrics: Emf,
    /// The event.
    pub event: Event,
}

/// The end of one backup, restore or deletion as each of its signals says it: the kind
/// (`VolumeBackup`, `VolumeRestore`), the `tc` dimension, and the event's detail.
struct Ended {
    kind: &'static str,
    tc: String,
    detail: EventDetail,
}

impl Ended {
    /// The end of `namespace/name` (of `execution`) in `phase`; nothing known yet of its result.
    fn new(
        kind: &'static str,
        (namespace, name): (&str, &str),
        execution: &str,
        phase: &str,
    ) -> Self {
        Self {
            kind,
            tc: String::new(),
            detail: EventDetail {
                namespace: namespace.into(),
                name: name.into(),
                phase: phase.into(),
                commit_ts: None,
                backup_size: None,
                time_taken: None,
                error: None,
                cause: None,
                execution: execution.into(),
            },
        }
    }

    /// With the `tc` dimension of the TidbClusters named `tc_names`.
    fn tc<'a>(self, tc_names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            tc: tc_dimension(tc_names),
            ..self
        }
    }

    /// The metrics of every end: `status_metric` = 1 by namespace, tc and status, and (given a
    /// `stack`, the stack's identity) by stack and status for the stack's alarms, with the name
    /// and the execution as properties.
    fn metrics(&self, status_metric: &str, stack: Option<&str>, now: DateTime<Utc>) -> Emf {
        let d = &self.detail;
        let emf = Emf::new(METRIC_NAMESPACE, now)
            .dimension("namespace", &d.namespace)
            .dimension("tc", &self.tc)
            .dimension("status", &d.phase)
            .property("name", d.name.as_str())
            .property("execution", d.execution.as_str())
            .metric(BY_STATUS, status_metric, Unit::Count, 1.0);
        match stack {
            Some(stack) => {
                emf.dimension("stack", stack)
                    .metric(BY_STACK, status_metric, Unit::Count, 1.0)
            }
            None => emf,
        }
    }

    /// The signal: `metrics`, and the event `{kind} {phase}`.
    fn signal(self, metrics: Emf) -> Signal {
        Signal {
            metrics,
            event: Event {
                detail_type: format!("{} {}", self.kind, self.detail.phase),
                detail: self.detail,
            },
        }
    }
}

/// The `tc` dimension: the `tcName`s sorted and comma-joined (duplicates kept, as the original).
pub fn tc_dimension<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.join(",")
}

fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds from `from` to `to` (RFC 3339), when both are readable and in order.
fn seconds_between(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    let d = time(to)? - time(from)?;
    (d >= chrono::Duration::zero()).then(|| d.num_milliseconds() as f64 / 1000.0)
}

fn true_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions
        .iter()
        .rev()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn limited(s: &str) -> String {
    match s.char_indices().nth(CAUSE_LIMIT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The failure name and cause of an ended object: the ones given, else its `Failed` condition.
fn failure(
    phase: &str,
    conditions: &[Condition],
    error: Option<&str>,
    cause: Option<&str>,
) -> (Option<String>, Option<String>) {
    if phase != vbk::FAILED {
        return (None, None);
    }
    let failed = true_condition(conditions, vbk::FAILED);
    let error = error
        .map(String::from)
        .or_else(|| failed.and_then(|c| c.reason.clone()));
    let cause = cause
        .map(String::from)
        .or_else(|| failed.and_then(|c| c.message.clone()));
    (error, cause.as_deref().map(limited))
}

/// A backup or a restore as the signal of its end reads it ([`ended`]).
pub trait EndedDoc: FederatedDoc {
    /// `VolumeBackup`, `VolumeRestore`.
    const KIND: &'static str;
    /// Its status metric (1, by namespace, tc, status).
    const STATUS_METRIC: &'static str;
    /// Its own metrics, by namespace and tc, added to `m`.
    fn metrics(&self, m: Emf) -> Emf;
    /// What the event tells of its result, added to `detail`.
    fn result(&self, detail: EventDetail) -> EventDetail;
}

/// The signal of a backup or a restore that ended (`Complete` or `Failed`); `None` while it has
/// not. `error`/`cause` are the finalize step's; without them the `Failed` condition's are used.
pub fn ended<D: EndedDoc>(
    doc: &D,
    error: Option<&str>,
    cause: Option<&str>,
    stack: &str,
    now: DateTime<Utc>,
) -> Option<Signal> {
    let phase = doc.ended_phase()?;
    let ended = Ended::new(D::KIND, doc.id(), doc.execution(), phase)
        .tc(doc.clusters().into_iter().map(|(_, tc)| tc));
    let metrics = doc.metrics(ended.metrics(D::STATUS_METRIC, Some(stack), now));
    let (error, cause) = failure(phase, doc.conditions(), error, cause);
    let detail = doc.result(EventDetail {
        error,
        cause,
        ..ended.detail
    });
    Some(Ended { detail, ..ended }.signal(metrics))
}

/// A backup's end. Metrics: `fed_volume_backup_status` (1, by namespace, tc, status) and, by
/// namespace and tc, `fed_volume_backup_total_time_sec` (`timeCompleted - timeStarted`),
/// `fed_volume_backup_total_size_gb` (when the size is known and above 0) and
/// `fed_volume_backup_pause_window_sec` (`SnapshotsCreated` condition time - `timeStarted`:
/// from the backup's start, before which nothing is paused, to brfed's observation that the
/// initialize member resumed GC and the PD schedulers; absent when the backup never got there).
impl EndedDoc for VolumeBackupDoc {
    const KIND: &'static str = "VolumeBackup";
    const STATUS_METRIC: &'static str = "fed_volume_backup_status";
    fn metrics(&self, m: Emf) -> Emf {
        let status = &self.status;
        let started = status.progress.time_started.as_deref();
        let resumed = true_condition(&status.progress.conditions, vbk::SNAPSHOTS_CREATED)
            .and_then(|c| c.last_transition_time.as_deref());
        let size_gb = status.backup_size.filter(|b| *b > 0);
        m.metric_of(
            BY_CLUSTER,
            "fed_volume_backup_total_time_sec",
            Unit::Seconds,
            seconds_between(started, status.progress.time_completed.as_deref()),
        )
        .metric_of(
            BY_CLUSTER,
            "fed_volume_backup_total_size_gb",
            Unit::Gigabytes,
            size_gb.map(|bytes| bytes as f64 / f64::from(1u32 << 30)),
        )
        .metric_of(
            BY_CLUSTER,
            "fed_volume_backup_pause_window_sec",
            Unit::Seconds,
            seconds_between(started, resumed),
        )
    }
    fn result(&self, detail: EventDetail) -> EventDetail {
        EventDetail {
            commit_ts: self.status.progress.commit_ts.clone(),
            backup_size: self.status.backup_size,
            time_taken: self.status.progress.time_taken.clone(),
            ..detail
        }
    }
}

/// While the initialize member (`init`, read from its data plane) of the running backup `ctx`
/// holds GC and the PD schedulers paused, [`GC_PAUSED_METRIC`] = seconds from its
/// `VolumeBackupInitialized` condition to `now`, by namespace and tc and by `FunctionName` =
/// `function` (the alarm's dimension), with the backup's name and execution as properties.
/// `None` when it does not hold the pause: not initialized yet, or its init job ended
/// (`VolumeBackupInitializeComplete`: resumed; `VolumeBackupInitializeFailed`: ended or stopped;
/// `Complete`/`Failed`: the data plane is done with it), or it is not this execution's member
/// (no `brfed.io/execution` = `ctx.execution`), or the condition has no readable time.
pub fn gc_paused(
    ctx: &BackupContext,
    init: &MemberView,
    function: &str,
    now: DateTime<Utc>,
) -> Option<Emf> {
    if init.execution.as_deref() != Some(ctx.execution.as_str())
        || init.has(cond::INITIALIZE_COMPLETE)
        || init.has(cond::INITIALIZE_FAILED)
        || init.has(cond::COMPLETE)
        || init.has(cond::FAILED)
    {
        return None;
    }
    let since = init
        .condition(cond::INITIALIZED)?
        .last_transition_time
        .as_deref();
    let now_text = now.to_rfc3339();
    let seconds = seconds_between(since, Some(&now_text))?;
    Some(
        Emf::new(METRIC_NAMESPACE, now)
            .dimension("namespace", &ctx.namespace)
            .dimension(
                "tc",
                &tc_dimension(ctx.members.iter().map(|m| m.tc_name.as_str())),
            )
            .dimension("FunctionName", function)
            .property("name", ctx.name.as_str())
            .property("execution", ctx.execution.as_str())
            .property("pausedSince", since.unwrap_or_default())
            .metric(BY_CLUSTER, GC_PAUSED_METRIC, Unit::Seconds, seconds)
            .metric(BY_FUNCTION, GC_PAUSED_METRIC, Unit::Seconds, seconds),
    )
}

/// What one retention sweep says of the schedules' RPO (brfed's own metrics): first
/// [`BEYOND_RPO_METRIC`] = [`SweepOutput::schedules_beyond_rpo`] by `stack` (0 included: the
/// stack's alarm tells it from a sweep that did not run), then per schedule it judged (not
/// paused) [`SINCE_COMPLETE_METRIC`] by `namespace` and `schedule` (its name), with its RPO, whether
/// it is beyond it and its newest `Complete` backup as properties. Timestamped `now` (the
/// sweep judged on its clock).
pub fn schedule_rpo(out: &SweepOutput, stack: &str, now: DateTime<Utc>) -> Vec<Emf> {
    let mut docs = vec![
        Emf::new(METRIC_NAMESPACE, now)
            .dimension("stack", stack)
            .metric(
                BY_STACK_ALONE,
                BEYOND_RPO_METRIC,
                Unit::Count,
                f64::from(out.schedules_beyond_rpo),
            ),
    ];
    for entry in &out.schedules {
        let Some(check) = &entry.rpo else { continue };
        let (namespace, name) = entry
            .schedule
            .split_once('/')
            .unwrap_or(("", entry.schedule.as_str()));
        let mut doc = Emf::new(METRIC_NAMESPACE, now)
            .dimension("namespace", namespace)
            .dimension("schedule", name)
            .property("since", check.since.as_str())
            .property("beyondRpo", check.beyond_rpo)
            .metric(
                BY_SCHEDULE,
                SINCE_COMPLETE_METRIC,
                Unit::Seconds,
                check.since_complete_seconds as f64,
            );
        if let Some(rpo) = check.rpo_seconds {
            doc = doc.property("rpoSeconds", rpo);
        }
        if let Some(last) = &check.last_complete {
            doc = doc.property("lastComplete", last.as_str());
        }
        docs.push(doc);
    }
    docs
}

/// A restore's end: `fed_volume_restore_status` (1, by namespace, tc, status) and
/// `fed_volume_restore_total_time_sec` (`timeCompleted - timeStarted`).
impl EndedDoc for VolumeRestoreDoc {
    const KIND: &'static str = "VolumeRestore";
    const STATUS_METRIC: &'static str = "fed_volume_restore_status";
    fn metrics(&self, m: Emf) -> Emf {
        m.metric_of(
            BY_CLUSTER,
            "fed_volume_restore_total_time_sec",
            Unit::Seconds,
            seconds_between(
                self.status.progress.time_started.as_deref(),
                self.status.progress.time_completed.as_deref(),
            ),
        )
    }
    fn result(&self, detail: EventDetail) -> EventDetail {
        EventDetail {
            commit_ts: self.status.progress.commit_ts.clone(),
            time_taken: self.status.progress.time_taken.clone(),
            ..detail
        }
    }
}

/// The signal of a backup deletion that ended `Cleaned` or `CleanFailed` (a rejected one emits
/// nothing): `fed_volume_backup_cleanup_status` (1, by namespace, tc, status, and by `stack` and
/// status as the other ends: the stack's dashboard counts its own deletions) and
/// `fed_volume_backup_cleanup_total_time_sec` (`now - requested_at`, the deletion record's
/// `requestedAt`, as the original measures from the deletion timestamp; absent when unknown).
pub fn cleanup_ended(
    ctx: &DeleteContext,
    result: &DeleteResult,
    requested_at: Option<&str>,
    stack: &str,
    now: DateTime<Utc>,
) -> Option<Signal> {
    let phase = result.result.as_str();
    if phase != "Cleaned" && phase != "CleanFailed" {
        return None;
    }
    let now_text = now.to_rfc3339();
    let took = seconds_between(requested_at, Some(&now_text));
    let ended = Ended::new(
        "VolumeBackup",
        (&ctx.namespace, &ctx.name),
        &ctx.execution,
        phase,
    )
    .tc(ctx.members.iter().map(|m| m.member.tc_name.as_str()));
    let metrics = ended
        .metrics("fed_volume_backup_cleanup_status", Some(stack), now)
        .metric_of(
            BY_CLUSTER,
            "fed_volume_backup_cleanup_total_time_sec",
            Unit::Seconds,
            took,
        );
    let failure = result.failure.as_ref();
    let detail = EventDetail {
        time_taken: took.map(|s| go_duration(s.round() as u64)),
        error: failure.map(|f| f.error.clone()),
        cause: failure.map(|f| limited(&f.message())),
        ..ended.detail
    };
    Some(Ended { detail, ..ended }.signal(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use brfed_core::backup::judge::Failure;
    use brfed_core::delete::member::{CleanBy, DeleteMember};
    use brfed_core::member::MemberRef;

    /// Checks `doc` against the Embedded Metric Format specification (CloudWatch User Guide,
    /// "Specification: Embedded metric format"): a JSON object whose `_aws` member holds a
    /// numeric `Timestamp` (ms since the epoch) and a `CloudWatchMetrics` array of directives;
    /// each directive has a `Namespace` (1-255 characters), `Dimensions` (an array of dimension
    /// sets, each an array of at most 30 keys naming root members whose values are strings) and
    /// `Metrics` (at most 100 definitions, each a `Name` of 1-255 characters naming a root member
    /// whose value is a number or an array of at most 100 numbers, an optional `Unit` among
    /// CloudWatch's units, and nothing else). Returns every violation.
    fn emf_violations(doc: &Value) -> Vec<String> {
        const UNITS: &[&str] = &[
            "Seconds",
            "Microseconds",
            "Milliseconds",
            "Bytes",
            "Kilobytes",
            "Megabytes",
            "Gigabytes",
            "Terabytes",
            "Bits",
            "Kilobits",
            "Megabits",
            "Gigabits",
            "Terabits",
            "Percent",
            "Count",
            "Bytes/Second",
            "Kilobytes/Second",
            "Megabytes/Second",
            "Gigabytes/Second",
            "Terabytes/Second",
            "Bits/Second",
            "Kilobits/Second",
            "Megabits/Second",
            "Gigabits/Second",
            "Terabits/Second",
            "Count/Second",
            "None",
        ];
        let mut v = Vec::new();
        let Some(root) = doc.as_object() else {
            return vec!["the root is not an object".into()];
        };
        let aws = &doc["_aws"];
        let Some(aws_obj) = aws.as_object() else {
            return vec!["no _aws object".into()];
        };
        for k in aws_obj.keys() {
            if k != "Timestamp" && k != "CloudWatchMetrics" {
                v.push(format!("_aws has an unknown member {k}"));
            }
        }
        if !aws["Timestamp"].is_i64() && !aws["Timestamp"].is_u64() {
            v.push("_aws.Timestamp is not an integer number of ms".into());
        }
        let Some(directives) = aws["CloudWatchMetrics"].as_array() else {
            v.push("_aws.CloudWatchMetrics is not an array".into());
            return v;
        };
        for d in directives {
            let Some(obj) = d.as_object() else {
                v.push("a directive is not an object".into());
                continue;
            };
            for k in obj.keys() {
                if !["Namespace", "Dimensions", "Metrics"].contains(&k.as_str()) {
                    v.push(format!("a directive has an unknown member {k}"));
                }
            }
            match d["Namespace"].as_str() {
                Some(n) if !n.is_empty() && n.len() <= 255 => {}
                _ => v.push("Namespace is not a 1-255 character string".into()),
            }
            let Some(sets) = d["Dimensions"].as_array() else {
                v.push("Dimensions is not an array".into());
                continue;
            };
            for set in sets {
                let Some(keys) = set.as_array() else {
                    v.push("a dimension set is not an array".into());
                    continue;
                };
                if keys.len() > 30 {
                    v.push("a dimension set has more than 30 keys".into());
                }
                for k in keys {
                    match k.as_str().and_then(|k| root.get(k)) {
                        Some(Value::String(s)) if !s.trim().is_empty() => {}
                        _ => v.push(format!("dimension {k} is not a non-empty root string")),
                    }
                }
            }
            let Some(metrics) = d["Metrics"].as_array() else {
                v.push("Metrics is not an array".into());
                continue;
            };
            if metrics.len() > 100 {
                v.push("more than 100 metrics in a directive".into());
            }
            for m in metrics {
                for k in m.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !["Name", "Unit", "StorageResolution"].contains(&k.as_str()) {
                        v.push(format!("a metric definition has an unknown member {k}"));
                    }
                }
                let name = m["Name"].as_str().unwrap_or_default();
                if name.is_empty() || name.len() > 255 {
                    v.push(format!(
                        "metric name {:?} is not 1-255 characters",
                        m["Name"]
                    ));
                }
                match root.get(name) {
                    Some(Value::Number(_)) => {}
                    Some(Value::Array(a)) if a.len() <= 100 && a.iter().all(Value::is_number) => {}
                    _ => v.push(format!("metric {name} has no numeric root member")),
                }
                if let Some(u) = m.get("Unit")
                    && !u.as_str().is_some_and(|u| UNITS.contains(&u))
                {
                    v.push(format!("metric {name}: unit {u} is not a CloudWatch unit"));
                }
            }
        }
        v
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn condition(type_: &str, time: &str, reason: Option<&str>, msg: Option<&str>) -> Value {
        json!({"type": type_, "status": "True", "lastTransitionTime": time,
               "reason": reason, "message": msg})
    }

    /// A catalog document of backup `br/bk1` over tc `b` (dp1) and `a` (dp2), with `status`.
    fn backup_doc(status: Value) -> VolumeBackupDoc {
        serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": "bk1", "namespace": "br"},
            "spec": {"clusters": [
                {"k8sClusterName": "dp1", "tcName": "b", "tcNamespace": "tidb"},
                {"k8sClusterName": "dp2", "tcName": "a", "tcNamespace": "tidb"}],
                "template": {}},
            "status": status,
            "brfed": {"execution": "arn:aws:states:us-west-2:1:execution:volume-backup:bk1"},
        }))
        .unwrap()
    }

    fn complete_backup() -> VolumeBackupDoc {
        backup_doc(json!({
            "timeStarted": "2026-01-02T03:00:00Z",
            "timeCompleted": "2026-01-02T03:10:30Z",
            "timeTaken": "10m30s",
            "backupSize": 3_221_225_472_i64,
            "commitTs": "447",
            "phase": "Complete",
            "conditions": [
                condition("Running", "2026-01-02T03:00:00Z", None, None),
                condition("SnapshotsCreated", "2026-01-02T03:01:15Z", None, None),
                condition("Complete", "2026-01-02T03:10:30Z", None, None),
            ],
        }))
    }

    const NOW: &str = "2026-01-02T03:10:31.250Z";
    /// The stack identity (catalog bucket) the ends carry as a dimension.
    const STACK: &str = "brfed-catalog";

    #[test]
    fn a_complete_backup_emits_the_originals_metrics_and_the_pause_window_as_valid_emf() {
        let s = ended(&complete_backup(), None, None, STACK, at(NOW)).unwrap();
        let doc: Value = serde_json::from_str(&s.metrics.line()).unwrap();
        assert_eq!(emf_violations(&doc), Vec::<String>::new(), "{doc}");
        assert_eq!(doc["_aws"]["Timestamp"], at(NOW).timestamp_millis());
        assert_eq!(doc["namespace"], "br");
        assert_eq!(doc["tc"], "a,b", "sorted, comma-joined tcNames");
        assert_eq!(doc["status"], "Complete");
        assert_eq!(doc["fed_volume_backup_status"], 1.0);
        assert_eq!(doc["fed_volume_backup_total_time_sec"], 630.0);
        assert_eq!(doc["fed_volume_backup_total_size_gb"], 3.0, "GiB");
        assert_eq!(doc["fed_volume_backup_pause_window_sec"], 75.0);
        assert_eq!(doc["execution"], s.event.detail.execution);
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 3, "{doc}");
        assert_eq!(
            directives[0],
            json!({"Namespace": "brfed", "Dimensions": [["namespace", "tc", "status"]],
                   "Metrics": [{"Name": "fed_volume_backup_status", "Unit": "Count"}]})
        );
        // what the stack's backup-failed alarm reads (infra/aws/template.yaml)
        assert_eq!(doc["stack"], STACK);
        assert_eq!(
            directives[1],
            json!({"Namespace": "brfed", "Dimensions": [["stack", "status"]],
                   "Metrics": [{"Name": "fed_volume_backup_status", "Unit": "Count"}]})
        );
        assert_eq!(
            directives[2],
            json!({"Namespace": "brfed", "Dimensions": [["namespace", "tc"]],
                   "Metrics": [
                       {"Name": "fed_volume_backup_total_time_sec", "Unit": "Seconds"},
                       {"Name": "fed_volume_backup_total_size_gb", "Unit": "Gigabytes"},
                       {"Name": "fed_volume_backup_pause_window_sec", "Unit": "Seconds"}]})
        );
        assert!(!s.metrics.line().contains('\n'), "one line");
    }

    #[test]
    fn a_complete_backup_event_carries_the_small_detail_and_never_the_members() {
        let s = ended(&complete_backup(), None, None, STACK, at(NOW)).unwrap();
        assert_eq!(s.event.detail_type, "VolumeBackup Complete");
        assert_eq!(
            serde_json::to_value(&s.event.detail).unwrap(),
            json!({"namespace": "br", "name": "bk1", "phase": "Complete", "commitTs": "447",
                   "backupSize": 3_221_225_472_i64, "timeTaken": "10m30s", "error": null,
                   "cause": null,
                   "execution": "arn:aws:states:us-west-2:1:execution:volume-backup:bk1"})
        );
    }

    #[test]
    fn a_backup_that_failed_before_gc_resumed_has_no_pause_window_and_names_its_failure() {
        let doc = backup_doc(json!({
            "timeStarted": "2026-01-02T03:00:00Z",
            "timeCompleted": "2026-01-02T03:02:00Z",
            "phase": "Failed",
            "conditions": [
                condition("Running", "2026-01-02T03:00:00Z", None, None),
                condition("Failed", "2026-01-02T03:02:00Z", Some("ExecutionAborted"),
                          Some("execution arn ended ABORTED")),
            ],
        }));
        let s = ended(&doc, None, None, STACK, at(NOW)).unwrap();
        let m = s.metrics.to_json();
        assert_eq!(emf_violations(&m), Vec::<String>::new());
        assert_eq!(m["status"], "Failed");
        assert_eq!(m["fed_volume_backup_total_time_sec"], 120.0);
        assert!(m.get("fed_volume_backup_pause_window_sec").is_none());
        assert!(
            m.get("fed_volume_backup_total_size_gb").is_none(),
            "no size"
        );
        assert_eq!(s.event.detail_type, "VolumeBackup Failed");
        assert_eq!(s.event.detail.error.as_deref(), Some("ExecutionAborted"));
        assert_eq!(
            s.event.detail.cause.as_deref(),
            Some("execution arn ended ABORTED")
        );
        let given = ended(
            &doc,
            Some("MemberFailed"),
            Some("dp2 failed"),
            STACK,
            at(NOW),
        )
        .unwrap()
        .event
        .detail;
        assert_eq!(given.error.as_deref(), Some("MemberFailed"));
        assert_eq!(given.cause.as_deref(), Some("dp2 failed"));
    }

    #[test]
    fn a_running_backup_emits_nothing() {
        let doc = backup_doc(
            json!({"timeStarted": "2026-01-02T03:00:00Z", "phase": "Running",
            "conditions": [condition("Running", "2026-01-02T03:00:00Z", None, None)]}),
        );
        assert!(ended(&doc, None, None, STACK, at(NOW)).is_none());
    }

    #[test]
    fn a_long_cause_is_cut() {
        let long = "x".repeat(CAUSE_LIMIT + 10);
        let doc = backup_doc(json!({"phase": "Failed"}));
        let s = ended(&doc, Some("MemberFailed"), Some(&long), STACK, at(NOW)).unwrap();
        assert_eq!(
            s.event.detail.cause.unwrap().chars().count(),
            CAUSE_LIMIT + 1
        );
    }

    /// The context of running backup `br/bk1` over tc `b` (dp1, initializes) and `a` (dp2).
    fn running_backup() -> BackupContext {
        serde_json::from_value(json!({
            "name": "bk1", "namespace": "br",
            "execution": "arn:aws:states:us-west-2:1:execution:volume-backup:br.bk1",
            "members": [
                {"k8sClusterName": "dp1", "tcName": "b", "tcNamespace": "tidb", "backupName": "fed-bk1"},
                {"k8sClusterName": "dp2", "tcName": "a", "tcNamespace": "tidb", "backupName": "fed-bk1"}],
            "options": {},
            "deadline": "2026-01-02T05:00:00Z",
        }))
        .unwrap()
    }

    /// The initialize member as its data plane shows it: annotated with `execution`, with
    /// `conditions`.
    fn init_member(execution: &str, conditions: Vec<Value>) -> MemberView {
        MemberView::from_object(&json!({
            "metadata": {"name": "fed-bk1", "namespace": "tidb",
                         "annotations": {"brfed.io/execution": execution}},
            "spec": {"federalVolumeBackupPhase": "initialize"},
            "status": {"phase": "Running", "conditions": conditions},
        }))
    }

    const PAUSED_AT: &str = "2026-01-02T03:00:10Z";

    #[test]
    fn a_backup_holding_the_gc_pause_reports_how_long_as_valid_emf_the_alarm_can_select() {
        let ctx = running_backup();
        let init = init_member(
            &ctx.execution,
            vec![
                condition("Scheduled", "2026-01-02T03:00:00Z", None, None),
                condition("VolumeBackupInitialized", PAUSED_AT, None, None),
            ],
        );
        let m = gc_paused(&ctx, &init, "brfed-backup-observe", at(NOW)).unwrap();
        let doc: Value = serde_json::from_str(&m.line()).unwrap();
        assert_eq!(emf_violations(&doc), Vec::<String>::new(), "{doc}");
        assert_eq!(doc["GcPausedSeconds"], 621.25, "{doc}");
        assert_eq!(doc["namespace"], "br");
        assert_eq!(doc["tc"], "a,b");
        assert_eq!(doc["name"], "bk1");
        assert_eq!(doc["execution"], ctx.execution.as_str());
        assert_eq!(doc["pausedSince"], PAUSED_AT);
        assert_eq!(doc["FunctionName"], "brfed-backup-observe");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"],
            json!([
                {"Namespace": "brfed", "Dimensions": [["namespace", "tc"]],
                 "Metrics": [{"Name": "GcPausedSeconds", "Unit": "Seconds"}]},
                {"Namespace": "brfed", "Dimensions": [["FunctionName"]],
                 "Metrics": [{"Name": "GcPausedSeconds", "Unit": "Seconds"}]},
            ])
        );
    }

    #[test]
    fn no_gc_pause_is_reported_unless_this_backups_initialize_member_holds_it() {
        let ctx = running_backup();
        let paused = condition("VolumeBackupInitialized", PAUSED_AT, None, None);
        let later = "2026-01-02T03:05:00Z";
        let cases = [
            ("not initialized yet", ctx.execution.clone(), vec![]),
            (
                "GC resumed",
                ctx.execution.clone(),
                vec![
                    paused.clone(),
                    condition("VolumeBackupInitializeComplete", later, None, None),
                ],
            ),
            (
                "init job ended",
                ctx.execution.clone(),
                vec![
                    paused.clone(),
                    condition("VolumeBackupInitializeFailed", later, None, None),
                ],
            ),
            (
                "member failed",
                ctx.execution.clone(),
                vec![paused.clone(), condition("Failed", later, None, None)],
            ),
            (
                "another execution's member",
                "arn:aws:states:us-west-2:1:execution:volume-backup:other.bk1".to_string(),
                vec![paused.clone()],
            ),
            (
                "pause time in the future",
                ctx.execution.clone(),
                vec![condition(
                    "VolumeBackupInitialized",
                    "2026-01-03T00:00:00Z",
                    None,
                    None,
                )],
            ),
        ];
        for (what, execution, conditions) in cases {
            let init = init_member(&execution, conditions);
            assert_eq!(
                gc_paused(&ctx, &init, "brfed-backup-observe", at(NOW)),
                None,
                "{what}"
            );
        }
        let unreadable = init_member(
            &ctx.execution,
            vec![json!({"type": "VolumeBackupInitialized", "status": "True"})],
        );
        assert_eq!(gc_paused(&ctx, &unreadable, "f", at(NOW)), None, "no time");
    }

    #[test]
    fn a_restore_emits_its_status_and_total_time() {
        let doc: VolumeRestoreDoc = serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
            "metadata": {"name": "rt1", "namespace": "br"},
            "spec": {"clusters": [
                {"k8sClusterName": "dp1", "tcName": "z", "tcNamespace": "t", "azName": "a"},
                {"k8sClusterName": "dp2", "tcName": "y", "tcNamespace": "t", "azName": "b"}],
                "template": {}},
            "status": {"timeStarted": "2026-01-02T03:00:00Z",
                       "timeCompleted": "2026-01-02T03:00:42Z", "timeTaken": "42s",
                       "commitTs": "99", "phase": "Failed",
                       "conditions": [condition("Failed", "2026-01-02T03:00:42Z",
                                                Some("MemberFailed"), Some("dp1"))]},
            "brfed": {"execution": "arn:x"},
        }))
        .unwrap();
        let s = ended(
            &doc,
            Some("MemberFailed"),
            Some("restore failed"),
            STACK,
            at(NOW),
        )
        .unwrap();
        let m = s.metrics.to_json();
        assert_eq!(emf_violations(&m), Vec::<String>::new(), "{m}");
        assert_eq!(m["tc"], "y,z");
        assert_eq!(m["status"], "Failed");
        assert_eq!(m["fed_volume_restore_status"], 1.0);
        assert_eq!(m["fed_volume_restore_total_time_sec"], 42.0);
        assert_eq!(s.event.detail_type, "VolumeRestore Failed");
        assert_eq!(s.event.detail.commit_ts.as_deref(), Some("99"));
        assert_eq!(s.event.detail.backup_size, None);
        assert_eq!(s.event.detail.cause.as_deref(), Some("restore failed"));
    }

    fn deletion() -> DeleteContext {
        let member = |plane: &str, tc: &str| DeleteMember {
            member: MemberRef {
                k8s_cluster_name: plane.into(),
                tc_name: tc.into(),
                tc_namespace: "tidb".into(),
                backup_name: "fed-bk1".into(),
            },
            bucket: "b".into(),
            prefix: "p".into(),
            clean_by: CleanBy::DataPlane,
            data_deleted: true,
            snapshots: 2,
        };
        DeleteContext {
            name: "bk1".into(),
            namespace: "br".into(),
            execution: "arn:delete".into(),
            deadline: "2026-01-02T09:00:00Z".into(),
            snapshots_per_second: 1.0,
            clean_policy: "Delete".into(),
            members: vec![member("dp1", "basic"), member("dp2", "basic")],
        }
    }

    fn result(result: &str, failure: Option<Failure>) -> DeleteResult {
        DeleteResult {
            name: "bk1".into(),
            namespace: "br".into(),
            result: result.into(),
            snapshots_deleted: 4,
            snapshots_retained: 0,
            remains: Default::default(),
            failure,
        }
    }

    #[test]
    fn a_cleaned_backup_emits_the_cleanup_status_and_the_time_since_the_deletion_was_asked() {
        let s = cleanup_ended(
            &deletion(),
            &result("Cleaned", None),
            Some("2026-01-02T03:09:31.250Z"),
            STACK,
            at(NOW),
        )
        .unwrap();
        let m = s.metrics.to_json();
        assert_eq!(emf_violations(&m), Vec::<String>::new(), "{m}");
        assert_eq!(m["tc"], "basic,basic", "duplicates kept, as the original");
        assert_eq!(m["status"], "Cleaned");
        assert_eq!(m["fed_volume_backup_cleanup_status"], 1.0);
        assert_eq!(m["fed_volume_backup_cleanup_total_time_sec"], 60.0);
        // what the stack's dashboard counts as its own deletions (infra/aws/template.yaml)
        assert_eq!(m["stack"], STACK);
        assert!(
            written(&m).contains(&(
                "fed_volume_backup_cleanup_status".into(),
                vec!["stack".into(), "status".into()]
            )),
            "{m}"
        );
        assert_eq!(s.event.detail_type, "VolumeBackup Cleaned");
        assert_eq!(s.event.detail.time_taken.as_deref(), Some("1m0s"));
        assert_eq!(s.event.detail.error, None);
        assert_eq!(s.event.detail.execution, "arn:delete");
    }

    #[test]
    fn a_clean_failure_names_its_failure_and_a_rejected_deletion_emits_nothing() {
        let f = Failure::new("SnapshotsRemain", "2 snapshot(s) remain");
        let s = cleanup_ended(
            &deletion(),
            &result("CleanFailed", Some(f)),
            None,
            STACK,
            at(NOW),
        )
        .unwrap();
        let m = s.metrics.to_json();
        assert_eq!(emf_violations(&m), Vec::<String>::new());
        assert!(m.get("fed_volume_backup_cleanup_total_time_sec").is_none());
        assert_eq!(s.event.detail_type, "VolumeBackup CleanFailed");
        assert_eq!(s.event.detail.error.as_deref(), Some("SnapshotsRemain"));
        assert_eq!(
            s.event.detail.cause.as_deref(),
            Some("2 snapshot(s) remain")
        );
        assert!(
            cleanup_ended(&deletion(), &result("Rejected", None), None, STACK, at(NOW)).is_none()
        );
    }

    /// Every (metric, dimension set) of an EMF document.
    fn written(doc: &Value) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for d in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for set in d["Dimensions"].as_array().unwrap() {
                let dims: Vec<String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect();
                for m in d["Metrics"].as_array().unwrap() {
                    out.push((m["Name"].as_str().unwrap().to_string(), dims.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_metrics_table_is_exactly_what_the_builders_write() {
        let ctx = running_backup();
        let init = init_member(
            &ctx.execution,
            vec![condition(
                cond::INITIALIZED,
                "2026-01-02T03:00:00Z",
                None,
                None,
            )],
        );
        let restore: VolumeRestoreDoc = serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
            "metadata": {"name": "rt1", "namespace": "br"},
            "spec": {"clusters": [
                {"k8sClusterName": "dp1", "tcName": "z", "tcNamespace": "t", "azName": "a"}],
                "template": {}},
            "status": {"timeStarted": "2026-01-02T03:00:00Z",
                       "timeCompleted": "2026-01-02T03:00:42Z", "phase": "Complete"},
            "brfed": {"execution": "arn:x"},
        }))
        .unwrap();
        let docs = [
            ended(&complete_backup(), None, None, STACK, at(NOW))
                .unwrap()
                .metrics,
            ended(&restore, None, None, STACK, at(NOW)).unwrap().metrics,
            cleanup_ended(
                &deletion(),
                &result("Cleaned", None),
                Some("2026-01-02T03:09:31.250Z"),
                STACK,
                at(NOW),
            )
            .unwrap()
            .metrics,
            gc_paused(&ctx, &init, "brfed-backup-observe", at(NOW)).unwrap(),
        ];
        let sweep: SweepOutput = serde_json::from_value(json!({
            "now": NOW, "schedulesBeyondRpo": 0,
            "schedules": [{"schedule": "br/daily", "reason": "",
                           "rpo": {"sinceCompleteSeconds": 60, "since": NOW, "rpoSeconds": 7200,
                                   "rpoSource": "annotation", "beyondRpo": false}}]}))
        .unwrap();
        let docs: Vec<Emf> = docs
            .into_iter()
            .chain(schedule_rpo(&sweep, STACK, at(NOW)))
            .collect();
        let mut written: Vec<_> = docs.iter().flat_map(|m| written(&m.to_json())).collect();
        written.sort();
        written.dedup();
        let mut table: Vec<(String, Vec<String>)> = METRICS
            .iter()
            .flat_map(|(name, sets)| {
                sets.iter().map(move |set| {
                    (
                        name.to_string(),
                        set.iter().map(|d| d.to_string()).collect(),
                    )
                })
            })
            .collect();
        table.sort();
        assert_eq!(written, table);
        assert!(docs.iter().all(|m| m.namespace == METRIC_NAMESPACE));
    }

    #[test]
    fn a_sweep_reports_the_schedules_beyond_their_rpo_by_stack_and_each_ones_age_as_valid_emf() {
        let out: SweepOutput = serde_json::from_value(json!({
        "now": "2026-01-02T03:10:31Z",
        "schedulesBeyondRpo": 1,
        "schedules": [
            {"schedule": "br/daily", "reason": "",
             "rpo": {"sinceCompleteSeconds": 180_000, "since": "2025-12-31T01:10:31Z",
                     "lastComplete": "daily-2025-12-31t01-00-00", "rpoSeconds": 172_800,
                     "rpoSource": "default", "beyondRpo": true}},
            {"schedule": "br/paused", "reason": ""},
            {"schedule": "team-a/new", "reason": "",
             "rpo": {"sinceCompleteSeconds": 60, "since": "2026-01-02T03:09:31Z",
                     "rpoSeconds": 7200, "rpoSource": "annotation", "beyondRpo": false}},
        ]}))
        .unwrap();
        let docs: Vec<Value> = schedule_rpo(&out, STACK, at(NOW))
            .iter()
            .map(|d| serde_json::from_str(&d.line()).unwrap())
            .collect();
        assert_eq!(
            docs.len(),
            3,
            "the count, and one per schedule judged: {docs:?}"
        );
        for d in &docs {
            assert_eq!(emf_violations(d), Vec::<String>::new(), "{d}");
            assert_eq!(d["_aws"]["Timestamp"], at(NOW).timestamp_millis());
        }
        // What the stack's schedule-rpo alarm reads (infra/aws/template.yaml).
        assert_eq!(docs[0]["stack"], STACK);
        assert_eq!(docs[0]["SchedulesBeyondRpo"], 1.0);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"],
            json!([{"Namespace": "brfed", "Dimensions": [["stack"]],
                    "Metrics": [{"Name": "SchedulesBeyondRpo", "Unit": "Count"}]}])
        );
        let per_schedule = json!([{"Namespace": "brfed", "Dimensions": [["namespace", "schedule"]],
                    "Metrics": [{"Name": "fed_volume_backup_schedule_since_complete_sec",
                                 "Unit": "Seconds"}]}]);
        let d = &docs[1];
        assert_eq!(
            (&d["namespace"], &d["schedule"]),
            (&json!("br"), &json!("daily"))
        );
        assert_eq!(
            d["fed_volume_backup_schedule_since_complete_sec"],
            180_000.0
        );
        assert_eq!(d["rpoSeconds"], 172_800);
        assert_eq!(d["beyondRpo"], true);
        assert_eq!(d["lastComplete"], "daily-2025-12-31t01-00-00");
        assert_eq!(d["_aws"]["CloudWatchMetrics"], per_schedule);
        let d = &docs[2];
        assert_eq!(
            (&d["namespace"], &d["schedule"]),
            (&json!("team-a"), &json!("new"))
        );
        assert_eq!(d["fed_volume_backup_schedule_since_complete_sec"], 60.0);
        assert!(d.get("lastComplete").is_none(), "{d}");

        // Zero is written too.
        let none: SweepOutput =
            serde_json::from_value(json!({"now": NOW, "schedulesBeyondRpo": 0, "schedules": []}))
                .unwrap();
        let docs = schedule_rpo(&none, STACK, at(NOW));
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].to_json()["SchedulesBeyondRpo"], 0.0);
    }

    #[test]
    fn the_spec_checker_catches_what_cloudwatch_would_refuse() {
        let ok = Emf::new("brfed", at(NOW))
            .dimension("namespace", "br")
            .metric(&["namespace"], "m", Unit::Count, 1.0)
            .to_json();
        assert!(emf_violations(&ok).is_empty());
        let mut bad = ok.clone();
        bad["namespace"] = json!(3);
        assert!(
            !emf_violations(&bad).is_empty(),
            "a dimension must be a string"
        );
        let mut bad = ok.clone();
        bad["m"] = json!("1");
        assert!(
            !emf_violations(&bad).is_empty(),
            "a metric must be a number"
        );
        let mut bad = ok.clone();
        bad["_aws"]["Timestamp"] = json!("2026-01-02T03:10:31Z");
        assert!(!emf_violations(&bad).is_empty(), "ms since the epoch");
        let mut bad = ok;
        bad["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("GiB");
        assert!(!emf_violations(&bad).is_empty(), "a CloudWatch unit");
    }

    #[test]
    fn an_empty_dimension_value_and_a_non_finite_metric_are_never_written() {
        let m = Emf::new("brfed", at(NOW))
            .dimension("tc", "")
            .metric(&["tc"], "bad", Unit::Seconds, f64::NAN)
            .to_json();
        assert_eq!(m["tc"], "-");
        assert!(m.get("bad").is_none());
        assert_eq!(m["_aws"]["CloudWatchMetrics"], json!([]));
    }
}
