//! The `VolumeBackupSchedule` (`federation.pingcap.com/v1alpha1`) users already have, as brfed
//! accepts it, and what one tick of it creates (reference §2.2, §2.4, §4.3).
//!
//! Parsing is strict in the way [`BackupRequest::from_text`] is; [`ScheduleRequest::validate`]
//! reports every problem at once, including those the original only logged while silently
//! doing nothing: a `maxReservedTime` such as `7d` (retention then never ran), a template
//! without `br` or `s3` (no backup was ever created), a schedule name too long for the data
//! plane's Job names once the 20-character tick suffix is added (reference §10 items 9, 23),
//! and a cron expression that no EventBridge rule can mean (see [`crate::schedule::cron`]).

use crate::backup::spec::BackupRequest;
use crate::backup::spec::Options;
use crate::backup::spec::ScheduledBy;
use crate::backup::spec::VolumeBackupSpec;
use crate::error::StepError;
use crate::input::FEDERATION_API_VERSION;
use crate::input::MAX_INPUT_BYTES;
use crate::input::ObjectMeta;
use crate::input::{describe, truncate};
use crate::names;
use crate::schedule::cron;
use crate::schedule::cron::CronError;
use crate::schedule::cron::EventBridgeSchedule;
use crate::time::parse_go_duration;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Annotation of a `VolumeBackupSchedule` overriding its RPO (`crate::schedule::rpo`): a Go
/// duration (`6h`, `90m`, `36h`), at least the longest interval between two firings of its
/// schedule. Not copied onto the backups its ticks make.
pub const ANNOTATION_RPO: &str = "brfed.io/rpo";

/// Kind of the schedule object.
pub const SCHEDULE_KIND: &str = "VolumeBackupSchedule";

/// Optional label on schedules: backups of all schedules of one group never run concurrently.
pub const LABEL_SCHEDULE_GROUP: &str = "tidb.pingcap.com/backup-schedule-group";

/// Label on every scheduled backup: the schedule's name.
pub const LABEL_BACKUP_SCHEDULE: &str = "tidb.pingcap.com/backup-schedule";

/// Label on every scheduled backup: [`APP_NAME_BACKUP_SCHEDULE`].
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";

/// Label on every scheduled backup: the schedule's name.
pub const LABEL_APP_INSTANCE: &str = "app.kubernetes.io/instance";

/// Value of [`LABEL_APP_NAME`] on scheduled backups.
pub const APP_NAME_BACKUP_SCHEDULE: &str = "backup-schedule";

/// Value of [`names::LABEL_MANAGED_BY`] on scheduled backups (the original's, kept so that
/// retention selects the same backups).
pub const MANAGED_BY_BACKUP_SCHEDULE: &str = "backup-schedule-operator";

/// `chrono` format of a tick in names and prefixes: Go layout `2006-01-02t15-04-05`, UTC.
pub const TICK_FORMAT: &str = "%Y-%m-%dt%H-%M-%S";

/// Longest schedule name whose backups' init Job name (`backup-fed-{name}-{19-char tick}-init`)
/// stays within the 63 characters of a label value (reference §10 item 23).
pub const MAX_SCHEDULE_NAME: usize = 27;

/// Longest EventBridge rule name.
pub const MAX_RULE_NAME: usize = 64;

/// Prefix of the rule names [`rule_name`] makes.
const RULE_PREFIX: &str = "brfed-schedule-";

/// `spec` of a `VolumeBackupSchedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeBackupScheduleSpec {
    /// robfig/cron v1.2 `ParseStandard` expression (five fields or a descriptor), UTC.
    pub schedule: String,
    /// No new backups while set (retention still runs).
    #[serde(default)]
    pub pause: bool,
    /// Keep at most this many backups; `0`/unset = unlimited; ignored when
    /// `maxReservedTime` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backups: Option<i32>,
    /// Keep backups this long: a Go duration such as `168h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reserved_time: Option<String>,
    /// What each tick creates.
    pub backup_template: VolumeBackupSpec,
}

/// A backup schedule, normalised from the YAML or JSON the user gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRequest {
    /// Name, namespace (default `default`), labels, annotations.
    pub metadata: ObjectMeta,
    /// The original's spec.
    pub spec: VolumeBackupScheduleSpec,
    /// brfed's options for every backup a tick starts (`options` beside `spec`, as a
    /// `VolumeBackup`'s): deadlines, observe mode, poll interval. Defaults when absent.
    pub options: Options,
}

/// Which backups retention deletes (reference §4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Finished backups created longer ago than this (takes precedence over `maxBackups`).
    MaxReservedTime(Duration),
    /// All but the newest N backups, running ones included.
    MaxBackups(u32),
    /// Nothing is deleted.
    Unlimited,
}

impl ScheduleRequest {
    /// Parses YAML or JSON text: a whole `VolumeBackupSchedule`. Refuses documents over
    /// [`MAX_INPUT_BYTES`], duplicate keys, YAML tags, unknown fields (outside `metadata`,
    /// whose server-set fields are ignored as for a `VolumeBackup`), a wrong `kind` or
    /// `apiVersion`. Checks only the shape; see [`Self::validate`].
    pub fn from_text(text: &str) -> Result<Self, StepError> {
        Self::from_value(crate::input::parse_document(text)?)
    }

    /// Parses a JSON value: a whole `VolumeBackupSchedule`. See [`Self::from_text`].
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
        if size > MAX_INPUT_BYTES {
            return Err(invalid(format!(
                "input is {size} bytes, more than the {MAX_INPUT_BYTES} accepted"
            )));
        }
        let Value::Object(mut top) = value else {
            return Err(invalid(format!(
                "input must be a {SCHEDULE_KIND} object, not {}",
                describe(&value)
            )));
        };
        for key in top.keys() {
            if ![
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "status",
                "options",
            ]
            .contains(&key.as_str())
            {
                return Err(invalid(format!(
                    "unknown field `{}` (a {SCHEDULE_KIND} has apiVersion, kind, metadata, spec, status, and brfed's options)",
                    truncate(key)
                )));
            }
        }
        match top.get("kind") {
            None => {}
            Some(Value::String(k)) if k == SCHEDULE_KIND => {}
            Some(k) => {
                return Err(invalid(format!(
                    "kind is {}, expected `{SCHEDULE_KIND}`",
                    describe(k)
                )));
            }
        }
        match top.get("apiVersion") {
            None => {}
            Some(Value::String(a)) if a == FEDERATION_API_VERSION => {}
            Some(a) => {
                return Err(invalid(format!(
                    "apiVersion is {}, expected `{FEDERATION_API_VERSION}`",
                    describe(a)
                )));
            }
        }
        // A status in the input is ignored, as the API server would on create.
        let metadata = parse_metadata(top.remove("metadata"))?;
        let spec = match top.remove("spec") {
            Some(Value::Object(spec)) => parse_spec(spec)?,
            Some(other) => {
                return Err(invalid(format!(
                    "spec must be an object, not {}",
                    describe(&other)
                )));
            }
            None => return Err(invalid("`spec` is missing")),
        };
        let options = match top.remove("options") {
            Some(o) => crate::backup::spec::parse_options(o)?,
            None => Options::default(),
        };
        Ok(Self {
            metadata,
            spec,
            options,
        })
    }

    /// Name of the schedule.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The schedule's group (label [`LABEL_SCHEDULE_GROUP`]), when set and not empty.
    pub fn group(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(LABEL_SCHEDULE_GROUP)
            .map(String::as_str)
            .filter(|g| !g.is_empty())
    }

    /// The EventBridge expression of `spec.schedule` (see [`cron::translate`]).
    pub fn eventbridge_schedule(&self) -> Result<EventBridgeSchedule, CronError> {
        cron::translate(&self.spec.schedule)
    }

    /// The retention policy, as the original applies it: `maxReservedTime` first, then a
    /// positive `maxBackups`, else none. Errs on what [`Self::validate`] refuses.
    pub fn retention(&self) -> Result<Retention, String> {
        if let Some(t) = &self.spec.max_reserved_time {
            let d = parse_go_duration(t).map_err(|e| format!("spec.maxReservedTime: {e}"))?;
            if d.is_zero() {
                return Err("spec.maxReservedTime must be positive".into());
            }
            return Ok(Retention::MaxReservedTime(d));
        }
        match self.spec.max_backups {
            Some(n) if n < 0 => Err(format!("spec.maxBackups {n} is negative")),
            Some(n) if n > 0 => Ok(Retention::MaxBackups(n.unsigned_abs())),
            _ => Ok(Retention::Unlimited),
        }
    }

    /// Checks everything that can be checked without the outside world and reports every
    /// problem at once. `known_clusters`, when given, is the set of data-plane names the
    /// registry knows. The template is checked as the `VolumeBackup` of a tick
    /// (`{name}-2006-01-02t15-04-05`), so that what a tick would refuse is refused now.
    pub fn validate(&self, known_clusters: Option<&HashSet<String>>) -> Result<(), StepError> {
        let mut problems: Vec<String> = Vec::new();
        let name = self.name();
        let name_ok = if name.is_empty() {
            problems.push("metadata.name is empty".into());
            false
        } else if !names::is_dns_subdomain(name) || name.len() > names::MAX_LABEL_VALUE {
            problems.push(format!(
                "metadata.name `{}` is not a valid schedule name: a Kubernetes name of at most 63 characters (it starts every backup's name and is a label value)",
                truncate(name)
            ));
            false
        } else {
            true
        };
        if let Err(e) = cron::translate(&self.spec.schedule) {
            problems.push(format!(
                "spec.schedule `{}` cannot be used: {e}",
                truncate(&self.spec.schedule)
            ));
        }
        if let Some(n) = self.spec.max_backups
            && n < 0
        {
            problems.push(format!(
                "spec.maxBackups {n} must not be negative (0 or unset keeps every backup)"
            ));
        }
        if let Some(t) = &self.spec.max_reserved_time {
            match parse_go_duration(t) {
                Err(e) => problems.push(format!("spec.maxReservedTime: {e}")),
                Ok(d) if d.is_zero() => problems.push(format!(
                    "spec.maxReservedTime `{}` must be positive: a zero retention would delete every finished backup as soon as it ends",
                    truncate(t)
                )),
                Ok(_) => {}
            }
        }
        if self.metadata.annotations.contains_key(ANNOTATION_RPO)
            && let Err(e) = self.rpo()
        {
            problems.push(e);
        }
        match self.spec.backup_template.template.get("br") {
            None | Some(Value::Null) => problems.push(
                "spec.backupTemplate.template.br is missing: the original creates no backup without it (give at least `br: {}`)".into(),
            ),
            Some(_) => {}
        }
        let tick_name = tick_backup_name(name, reference_tick());
        let tick = self.backup_request_for_tick(reference_tick());
        match tick.validate(known_clusters) {
            Ok(()) => {}
            Err(StepError::InvalidSpec(msg)) => {
                for p in msg.split("; ") {
                    if let Some(p) = rewrite_tick_problem(p, name, &tick_name, name_ok) {
                        problems.push(p);
                    }
                }
            }
            Err(other) => problems.push(other.to_string()),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StepError::InvalidSpec(problems.join("; ")))
        }
    }

    /// The `VolumeBackup` the tick at `tick` creates (reference §2.4, §4.3 step 5): the
    /// template with `s3.prefix` rewritten to `path.Join(prefix, "-" + ts)`, named
    /// `{schedule}-{ts}` in the schedule's namespace, with the four schedule labels over the
    /// schedule's own labels (the original merges them so, the first map winning) and the
    /// schedule's annotations but brfed's [`ANNOTATION_RPO`] (the
    /// schedule's, meaningless on a backup). Does not validate; see [`Self::validate`].
    pub fn backup_request_for_tick(&self, tick: DateTime<Utc>) -> BackupRequest {
        let ts = tick_timestamp(tick);
        let mut spec = self.spec.backup_template.clone();
        if let Some(Value::Object(s3)) = spec.template.get_mut("s3") {
            let prefix = match s3.get("prefix") {
                None | Some(Value::Null) => Some(String::new()),
                Some(Value::String(p)) => Some(p.clone()),
                // Left as is for validation to name.
                Some(_) => None,
            };
            if let Some(p) = prefix {
                s3.insert("prefix".into(), Value::String(tick_prefix(&p, &ts)));
            }
        }
        let name = self.name();
        let mut labels = self.metadata.labels.clone();
        for (k, v) in [
            (LABEL_APP_NAME, APP_NAME_BACKUP_SCHEDULE),
            (names::LABEL_MANAGED_BY, MANAGED_BY_BACKUP_SCHEDULE),
            (LABEL_APP_INSTANCE, name),
            (LABEL_BACKUP_SCHEDULE, name),
        ] {
            labels.insert(k.to_string(), v.to_string());
        }
        let mut annotations = self.metadata.annotations.clone();
        annotations.remove(ANNOTATION_RPO);
        BackupRequest {
            metadata: ObjectMeta {
                name: format!("{name}-{ts}"),
                namespace: self.metadata.namespace.clone(),
                labels,
                annotations,
            },
            spec,
            skip_gc: false,
            options: self.options.clone(),
            scheduled_by: Some(ScheduledBy {
                namespace: self.metadata.namespace.clone(),
                name: name.to_string(),
            }),
        }
    }
}

/// The tick used to check names: Go's reference time, 19 characters like every tick.
fn reference_tick() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2006, 1, 2, 15, 4, 5)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A problem of the tick's `VolumeBackup`, said about the schedule.
fn rewrite_tick_problem(p: &str, name: &str, tick_name: &str, name_ok: bool) -> Option<String> {
    if p.starts_with("scheduledBy") {
        return None; // follows from the schedule's own name and namespace, said about them
    }
    if let Some(rest) = p.strip_prefix("spec.") {
        return Some(format!("spec.backupTemplate.{rest}"));
    }
    if p.starts_with("metadata.name") {
        if !name_ok {
            return None; // already said about the schedule's own name
        }
        let head = format!("metadata.name `{tick_name}`");
        let rest = p.strip_prefix(&head).unwrap_or(p);
        let mut out = format!("metadata.name `{name}` (its backups are named `{tick_name}`){rest}");
        if rest.contains("too long") {
            out.push_str(&format!(
                ": a schedule name has at most {MAX_SCHEDULE_NAME} characters"
            ));
        }
        return Some(out);
    }
    let about_name = [LABEL_APP_INSTANCE, LABEL_BACKUP_SCHEDULE]
        .iter()
        .any(|k| p.starts_with(&format!("metadata.labels.{k}:")));
    if about_name && !name_ok {
        return None;
    }
    Some(p.to_string())
}

/// The tick as it appears in names and prefixes: `2024-05-01t00-00-00` (UTC).
pub fn tick_timestamp(tick: DateTime<Utc>) -> String {
    tick.format(TICK_FORMAT).to_string()
}

/// Name of the `VolumeBackup` a schedule creates at `tick`: `{schedule}-{YYYY-MM-DDtHH-MM-SS}`.
pub fn tick_backup_name(schedule: &str, tick: DateTime<Utc>) -> String {
    format!("{schedule}-{}", tick_timestamp(tick))
}

/// `s3.prefix` of a tick's `VolumeBackup`: Go's `path.Join(prefix, "-" + ts)`, so
/// `tidb-prod` → `tidb-prod/-2024-05-01t00-00-00`, an empty prefix → `-2024-05-01t00-00-00`,
/// and the joined path is cleaned as Go's `path.Clean` does (`a//b/` → `a/b`, `.` and
/// `x/..` elements dropped).
pub fn tick_prefix(prefix: &str, ts: &str) -> String {
    let joined = if prefix.is_empty() {
        format!("-{ts}")
    } else {
        format!("{prefix}/-{ts}")
    };
    go_path_clean(&joined)
}

/// Go's `path.Clean`.
fn go_path_clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Name of the EventBridge rule of the schedule `namespace/name`.
///
/// `brfed-schedule-{namespace}.{name}` when that is at most [`MAX_RULE_NAME`] characters and
/// both parts are Kubernetes names without '.' (namespace and name are joined by '.', which
/// neither contains, so `a-b/c` and `a/b-c` get different rules). Otherwise the first 47
/// characters of that form (characters outside `[.-_A-Za-z0-9]` replaced by '-'), '_', and the
/// 16 hex digits of the 64-bit FNV-1a hash of `namespace/name`: always 64 characters, stable
/// across releases, and never equal to an untruncated name (those contain no '_').
pub fn rule_name(namespace: &str, name: &str) -> String {
    let plain = format!("{RULE_PREFIX}{namespace}.{name}");
    let simple = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if plain.len() <= MAX_RULE_NAME && simple(namespace) && simple(name) {
        return plain;
    }
    let hash = fnv1a64(format!("{namespace}/{name}").as_bytes());
    let head: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_RULE_NAME - 17)
        .collect();
    format!("{head}_{hash:016x}")
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn parse_metadata(value: Option<Value>) -> Result<ObjectMeta, StepError> {
    let mut meta = match value {
        None | Some(Value::Null) => ObjectMeta::default(),
        Some(Value::Object(m)) => {
            for field in ["name", "namespace"] {
                if let Some(v) = m.get(field)
                    && !v.is_string()
                {
                    return Err(invalid(format!(
                        "metadata.{field} must be a string, not {}",
                        describe(v)
                    )));
                }
            }
            for field in ["labels", "annotations"] {
                match m.get(field) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(pairs)) => {
                        for (k, v) in pairs {
                            if !v.is_string() {
                                return Err(invalid(format!(
                                    "metadata.{field}.{} must be a string, not {}",
                                    truncate(k),
                                    describe(v)
                                )));
                            }
                        }
                    }
                    Some(v) => {
                        return Err(invalid(format!(
                            "metadata.{field} must be an object, not {}",
                            describe(v)
                        )));
                    }
                }
            }
            let mut m = m;
            m.retain(|k, v| {
                ["name", "namespace", "labels", "annotations"].contains(&k.as_str()) && !v.is_null()
            });
            serde_json::from_value(Value::Object(m))
                .map_err(|e| invalid(format!("metadata: {e}")))?
        }
        Some(v) => {
            return Err(invalid(format!(
                "metadata must be an object, not {}",
                describe(&v)
            )));
        }
    };
    if meta.namespace.is_empty() {
        meta.namespace = "default".into();
    }
    Ok(meta)
}

fn parse_spec(mut spec: Map<String, Value>) -> Result<VolumeBackupScheduleSpec, StepError> {
    const FIELDS: &[&str] = &[
        "schedule",
        "pause",
        "maxBackups",
        "maxReservedTime",
        "backupTemplate",
    ];
    for key in spec.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "spec.{} is not a field of VolumeBackupScheduleSpec ({})",
                truncate(key),
                FIELDS.join(", ")
            )));
        }
    }
    // Kubernetes reads an explicit null as unset.
    spec.retain(|_, v| !v.is_null());
    let schedule = match spec.remove("schedule") {
        Some(Value::String(s)) => s,
        Some(v) => {
            return Err(invalid(format!(
                "spec.schedule must be a string, not {}",
                describe(&v)
            )));
        }
        None => {
            return Err(invalid(
                "spec.schedule is missing (a cron expression such as `0 1 * * *`)",
            ));
        }
    };
    let pause = match spec.remove("pause") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(v) => {
            return Err(invalid(format!(
                "spec.pause must be a boolean, not {}",
                describe(&v)
            )));
        }
    };
    let max_backups = match spec.remove("maxBackups") {
        None => None,
        Some(v) => match v.as_i64().and_then(|n| i32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                return Err(invalid(format!(
                    "spec.maxBackups must be a 32-bit integer, not {}",
                    describe(&v)
                )));
            }
        },
    };
    let max_reserved_time = match spec.remove("maxReservedTime") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(v) => {
            return Err(invalid(format!(
                "spec.maxReservedTime must be a Go duration string such as \"168h\", not {}",
                describe(&v)
            )));
        }
    };
    let backup_template = match spec.remove("backupTemplate") {
        None => {
            return Err(invalid(
                "spec.backupTemplate is missing (the VolumeBackup spec each tick creates)",
            ));
        }
        Some(t @ Value::Object(_)) => {
            // The VolumeBackup parser checks the template's shape; its paths start at `spec`.
            let probe = serde_json::json!({"metadata": {"name": "probe"}, "spec": t});
            BackupRequest::from_value(probe)
                .map_err(|e| match e {
                    StepError::InvalidSpec(msg) => invalid(match msg.strip_prefix("spec") {
                        Some(rest) => format!("spec.backupTemplate{rest}"),
                        None => format!("spec.backupTemplate: {msg}"),
                    }),
                    other => other,
                })?
                .spec
        }
        Some(v) => {
            return Err(invalid(format!(
                "spec.backupTemplate must be an object, not {}",
                describe(&v)
            )));
        }
    };
    Ok(VolumeBackupScheduleSpec {
        schedule,
        pause,
        max_backups,
        max_reserved_time,
        backup_template,
    })
}

pub(crate) fn invalid(msg: impl Into<String>) -> StepError {
    StepError::InvalidSpec(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pairs;
    use crate::time::go_duration_parts;

    const YAML: &str = r#"
apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackupSchedule
metadata:
  name: daily
  namespace: br
  labels: {team: dba}
  annotations: {iam.amazonaws.com/role: "arn:aws:iam::1:role/x"}
spec:
  schedule: "0 0 * * *"
  maxReservedTime: "168h"
  backupTemplate:
    clusters:
    - {k8sClusterName: az-a, tcName: basic, tcNamespace: tidb}
    - {k8sClusterName: az-b, tcName: basic, tcNamespace: tidb}
    template:
      br: {sendCredToTikv: false}
      s3: {provider: aws, region: us-west-2, bucket: bkt, prefix: tidb-prod}
      cleanPolicy: Delete
"#;

    fn known() -> HashSet<String> {
        ["az-a", "az-b"].into_iter().map(String::from).collect()
    }

    fn problems(r: &ScheduleRequest) -> String {
        match r.validate(Some(&known())) {
            Err(StepError::InvalidSpec(msg)) => msg,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    fn with(edit: impl FnOnce(&mut Value)) -> ScheduleRequest {
        let mut v: Value = crate::input::parse_yaml(YAML).unwrap();
        edit(&mut v);
        ScheduleRequest::from_value(v).unwrap()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    /// A schedule gives its ticks' backups brfed's options (a first full EBS snapshot can take
    /// longer than the default 1 h phase timeout); what a backup would refuse is refused when
    /// the schedule is applied, and an unknown or mistyped option when it is read.
    #[test]
    fn options_beside_spec_go_to_every_ticks_backup_and_are_checked_as_a_backups() {
        let r = with(|v| {
            v["options"] = serde_json::json!({"phaseTimeoutSeconds": 14_400, "deadlineSeconds": 43_200,
                                              "observeMode": "poll", "pollSeconds": 60});
        });
        assert_eq!(r.validate(Some(&known())), Ok(()));
        let b = r.backup_request_for_tick(at(2026, 1, 2, 0, 0, 0));
        assert_eq!(b.options, r.options);
        assert_eq!(b.options.phase_timeout_seconds, 14_400);
        assert_eq!(
            ScheduleRequest::from_text(YAML).unwrap().options,
            Options::default()
        );

        let short = with(|v| {
            v["options"] = serde_json::json!({"deadlineSeconds": 43_200, "pollSeconds": 5})
        });
        let p = problems(&short);
        assert!(p.contains("options.pollSeconds 5 is too short"), "{p}");
        for (options, needle) in [
            (serde_json::json!({"retries": 3}), "retries"),
            (
                serde_json::json!({"pollSeconds": "60"}),
                "options.pollSeconds",
            ),
            (serde_json::json!("fast"), "options"),
        ] {
            let mut v: Value = crate::input::parse_yaml(YAML).unwrap();
            v["options"] = options.clone();
            let e = ScheduleRequest::from_value(v).unwrap_err();
            assert_eq!(e.name(), "InvalidSpec", "{options}");
            assert!(e.to_string().contains(needle), "{options}: {e}");
        }
    }

    #[test]
    fn the_originals_schedule_is_accepted_as_is() {
        let r = ScheduleRequest::from_text(YAML).unwrap();
        r.validate(Some(&known())).unwrap();
        assert_eq!(r.name(), "daily");
        assert_eq!(r.metadata.namespace, "br");
        assert!(!r.spec.pause);
        assert_eq!(r.group(), None);
        assert_eq!(
            r.eventbridge_schedule().unwrap().to_string(),
            "cron(0 0 * * ? *)"
        );
        assert_eq!(
            r.retention().unwrap(),
            Retention::MaxReservedTime(Duration::from_secs(168 * 3600))
        );
    }

    #[test]
    fn the_worked_example_of_the_reference_is_reproduced() {
        let r = ScheduleRequest::from_text(YAML).unwrap();
        let b = r.backup_request_for_tick(at(2024, 5, 1, 0, 0, 0));
        b.validate(Some(&known())).unwrap();
        assert_eq!(b.name(), "daily-2024-05-01t00-00-00");
        assert_eq!(b.metadata.namespace, "br");
        assert_eq!(b.prefix(), "tidb-prod/-2024-05-01t00-00-00");
        assert_eq!(
            b.member_prefix("az-a"),
            "tidb-prod/-2024-05-01t00-00-00-az-a"
        );
        assert_eq!(
            names::s3_path(b.bucket(), &b.member_prefix("az-a")),
            "s3://bkt/tidb-prod/-2024-05-01t00-00-00-az-a"
        );
        let member = names::member_backup_name(b.name());
        assert_eq!(member, "fed-daily-2024-05-01t00-00-00");
        assert_eq!(
            names::init_job_name(&member),
            "backup-fed-daily-2024-05-01t00-00-00-init"
        );
        assert_eq!(
            pairs(&b.metadata.labels),
            [
                ("app.kubernetes.io/instance", "daily"),
                ("app.kubernetes.io/managed-by", "backup-schedule-operator"),
                ("app.kubernetes.io/name", "backup-schedule"),
                ("team", "dba"),
                ("tidb.pingcap.com/backup-schedule", "daily"),
            ]
        );
        assert_eq!(b.metadata.annotations, r.metadata.annotations);
        assert!(!b.skip_gc);
        // The template is copied, not moved: the schedule's own prefix is unchanged.
        assert_eq!(
            r.spec.backup_template.template["s3"]["prefix"],
            Value::from("tidb-prod")
        );
    }

    #[test]
    fn the_schedule_labels_win_over_the_schedules_own() {
        let r = with(|v| {
            v["metadata"]["labels"] = serde_json::json!({"app.kubernetes.io/name": "mine",
                "app.kubernetes.io/managed-by": "Helm", LABEL_SCHEDULE_GROUP: "g1"})
        });
        assert_eq!(r.group(), Some("g1"));
        let b = r.backup_request_for_tick(at(2024, 5, 1, 0, 0, 0));
        assert_eq!(b.metadata.labels[LABEL_APP_NAME], "backup-schedule");
        assert_eq!(
            b.metadata.labels[names::LABEL_MANAGED_BY],
            "backup-schedule-operator"
        );
        assert_eq!(b.metadata.labels[LABEL_SCHEDULE_GROUP], "g1");
    }

    #[test]
    fn tick_names_and_prefixes_follow_go() {
        let t = at(2024, 5, 1, 0, 0, 0);
        assert_eq!(tick_timestamp(t), "2024-05-01t00-00-00");
        assert_eq!(
            tick_backup_name("daily", at(2024, 12, 31, 23, 59, 58)),
            "daily-2024-12-31t23-59-58"
        );
        let ts = tick_timestamp(t);
        for (prefix, want) in [
            ("tidb-prod", "tidb-prod/-2024-05-01t00-00-00"),
            ("", "-2024-05-01t00-00-00"),
            ("tidb-prod/", "tidb-prod/-2024-05-01t00-00-00"),
            ("tidb-prod//", "tidb-prod/-2024-05-01t00-00-00"),
            ("a//b/./c", "a/b/c/-2024-05-01t00-00-00"),
            ("a/b/..", "a/-2024-05-01t00-00-00"),
            ("./a", "a/-2024-05-01t00-00-00"),
            ("..", "../-2024-05-01t00-00-00"),
            ("/abs", "/abs/-2024-05-01t00-00-00"),
        ] {
            assert_eq!(tick_prefix(prefix, &ts), want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn a_template_without_prefix_gets_the_tick_alone() {
        let r = with(|v| {
            v["spec"]["backupTemplate"]["template"]["s3"]
                .as_object_mut()
                .unwrap()
                .remove("prefix");
        });
        let b = r.backup_request_for_tick(at(2024, 5, 1, 0, 0, 0));
        assert_eq!(b.prefix(), "-2024-05-01t00-00-00");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let r = with(|v| {
            v["metadata"]["name"] = Value::from("a".repeat(28));
            v["spec"]["schedule"] = Value::from("0 0 1 * 1");
            v["spec"]["maxReservedTime"] = Value::from("7d");
            v["spec"]["maxBackups"] = Value::from(-1);
            let t = v["spec"]["backupTemplate"]["template"]
                .as_object_mut()
                .unwrap();
            t.remove("br");
            t.remove("s3");
            v["spec"]["backupTemplate"]["clusters"][1]["k8sClusterName"] = Value::from("nope");
        });
        let msg = problems(&r);
        for needle in [
            "spec.schedule `0 0 1 * 1` cannot be used: day-of-month `1` and day-of-week `1` are both restricted",
            "two schedules",
            "spec.maxReservedTime: `7d` is not a Go duration: unknown unit `d`; Go duration syntax, e.g. 168h; days are not a unit",
            "spec.maxBackups -1 must not be negative",
            "spec.backupTemplate.template.br is missing",
            "spec.backupTemplate.template.s3 is missing",
            "spec.backupTemplate.clusters[1].k8sClusterName `nope` is not a known data plane",
            &format!(
                "metadata.name `{}` (its backups are named `{}-2006-01-02t15-04-05`) is too long",
                "a".repeat(28),
                "a".repeat(28)
            ),
            "at most 27 characters",
        ] {
            assert!(msg.contains(needle), "`{needle}` missing from {msg}");
        }
    }

    #[test]
    fn the_longest_schedule_name_fits_the_data_planes_job_names() {
        let job = |n: usize| {
            names::init_job_name(&names::member_backup_name(&tick_backup_name(
                &"a".repeat(n),
                reference_tick(),
            )))
            .len()
        };
        assert_eq!(job(MAX_SCHEDULE_NAME), names::MAX_LABEL_VALUE);
        with(|v| v["metadata"]["name"] = Value::from("a".repeat(MAX_SCHEDULE_NAME)))
            .validate(Some(&known()))
            .unwrap();
    }

    #[test]
    fn invalid_schedule_names_are_said_once() {
        for bad in ["", "Daily", "a..b", "-a", "a.-b"] {
            let msg = problems(&with(|v| v["metadata"]["name"] = Value::from(bad)));
            assert!(msg.starts_with("metadata.name"), "{bad}: {msg}");
            assert!(!msg.contains("its backups"), "{bad}: {msg}");
            assert!(!msg.contains("metadata.labels"), "{bad}: {msg}");
        }
    }

    /// Dots, as the CRD (a Kubernetes name) lets the original take them: every tick's backup
    /// name starts with the schedule's, and a dotted backup name is valid too.
    #[test]
    fn a_schedule_name_with_dots_is_accepted_and_its_rule_stays_its_own() {
        let r = with(|v| v["metadata"]["name"] = Value::from("nightly.eu"));
        r.validate(Some(&known())).unwrap();
        let rule = rule_name("br", "nightly.eu");
        assert!(rule.len() <= MAX_RULE_NAME, "{rule}");
        assert_ne!(rule, rule_name("br.nightly", "eu"));
        assert_ne!(rule, rule_name("br", "nightly-eu"));
    }

    #[test]
    fn a_zero_retention_and_a_zero_limit_differ() {
        let msg = problems(&with(|v| v["spec"]["maxReservedTime"] = Value::from("0s")));
        assert!(msg.contains("must be positive"), "{msg}");
        let r = with(|v| {
            v["spec"].as_object_mut().unwrap().remove("maxReservedTime");
            v["spec"]["maxBackups"] = Value::from(0);
        });
        r.validate(Some(&known())).unwrap();
        assert_eq!(r.retention().unwrap(), Retention::Unlimited);
        let r = with(|v| {
            v["spec"].as_object_mut().unwrap().remove("maxReservedTime");
            v["spec"]["maxBackups"] = Value::from(7);
        });
        assert_eq!(r.retention().unwrap(), Retention::MaxBackups(7));
    }

    #[test]
    fn strict_parsing_refuses_what_the_api_server_would_prune() {
        let base = YAML.to_string();
        let cases = [
            (base.replace("kind: VolumeBackupSchedule", "kind: VolumeBackup"), "kind is"),
            (base.replace("v1alpha1", "v1"), "apiVersion is"),
            (base.replace("  maxReservedTime", "  paused: true\n  maxReservedTime"), "spec.paused is not a field"),
            (format!("{base}extra: 1\n"), "unknown field `extra`"),
            (base.replace("maxReservedTime: \"168h\"", "maxReservedTime: 168"), "maxReservedTime must be a Go duration string"),
            (base.replace("maxReservedTime: \"168h\"", "maxBackups: 3000000000"), "32-bit integer"),
            (base.replace("maxReservedTime: \"168h\"", "maxBackups: 1.5"), "32-bit integer"),
            (base.replace("maxReservedTime: \"168h\"", "pause: \"yes\""), "spec.pause must be a boolean"),
            (base.replace("schedule: \"0 0 * * *\"", "schedule: 5"), "spec.schedule must be a string"),
            (base.replace("  schedule: \"0 0 * * *\"\n", ""), "spec.schedule is missing"),
            (base.replace("    clusters:", "    bogus: 1\n    clusters:"), "spec.backupTemplate: unknown field `bogus`"),
            (base.replace("- {k8sClusterName: az-a, tcName: basic, tcNamespace: tidb}", "- {k8sClusterName: 1}"), "spec.backupTemplate.clusters[0].k8sClusterName must be a string"),
            (base.replace("labels: {team: dba}", "labels: {team: 1}"), "metadata.labels.team must be a string"),
            (base.replace("labels: {team: dba}", "labels: {team: dba, team: dbb}"), "duplicate"),
            (base.replace("prefix: tidb-prod", "prefix: !secret tidb-prod"), "YAML tags"),
            ("[1, 2]".to_string(), "must be a VolumeBackupSchedule object"),
            ("apiVersion: federation.pingcap.com/v1alpha1\nkind: VolumeBackupSchedule\nmetadata: {name: x}\n".to_string(), "`spec` is missing"),
            (" ".repeat(MAX_INPUT_BYTES + 1), "bytes, more than"),
        ];
        for (text, needle) in cases {
            match ScheduleRequest::from_text(&text) {
                Err(StepError::InvalidSpec(msg)) => {
                    assert!(msg.contains(needle), "`{needle}` missing from {msg}")
                }
                other => panic!("`{needle}`: expected InvalidSpec, got {other:?}"),
            }
        }
    }

    #[test]
    fn namespace_defaults_and_server_fields_are_ignored() {
        let text = YAML
            .replace(
                "  namespace: br\n",
                "  uid: 1234\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n",
            )
            .replace("spec:\n", "status: {lastBackup: x}\nspec:\n");
        let r = ScheduleRequest::from_text(&text).unwrap();
        assert_eq!(r.metadata.namespace, "default");
        let json = serde_json::to_value(&r).unwrap();
        let back: ScheduleRequest = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, r);
        assert_eq!(ScheduleRequest::from_value(json).unwrap(), r);
    }

    #[test]
    fn go_durations_parse_as_go_does() {
        let ok = [
            ("0", 0u128),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("1ns", 1),
            ("1us", 1_000),
            ("1µs", 1_000),
            ("1μs", 1_000),
            ("1ms", 1_000_000),
            ("1s", 1_000_000_000),
            ("1m", 60_000_000_000),
            ("168h", 168 * 3_600_000_000_000),
            ("+5h", 5 * 3_600_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("1.h", 3_600_000_000_000),
            (".5m", 30_000_000_000),
            ("1h1h", 7_200_000_000_000),
            ("3m0.5s", 180_500_000_000),
            ("0.1ns", 0),
            ("0.000000001s", 1),
            ("1.0000000000000000000000001s", 1_000_000_000),
            ("2562047h47m16.854775807s", 9_223_372_036_854_775_807),
            ("9223372036854775807ns", 9_223_372_036_854_775_807),
        ];
        for (text, nanos) in ok {
            assert_eq!(
                parse_go_duration(text).map(|d| d.as_nanos()),
                Ok(nanos),
                "{text}"
            );
        }
        let bad = [
            ("", "empty"),
            ("7d", "days are not a unit"),
            ("1w", "days are not a unit"),
            ("1", "without a unit"),
            ("10", "without a unit"),
            ("1h 30m", "unknown unit `h `"),
            (" 1h", "not a Go duration"),
            ("1H", "unknown unit `H`"),
            ("1.5.h", "without a unit"),
            (".", "not a Go duration"),
            (".s", "not a Go duration"),
            ("-.s", "not a Go duration"),
            ("+", "not a Go duration"),
            ("-", "not a Go duration"),
            ("h", "not a Go duration"),
            ("-1h", "negative"),
            ("-1.5s", "negative"),
            ("9223372036854775808ns", "too long"),
            ("2562048h", "too long"),
            ("99999999999999999999h", "too long"),
            ("2562047h47m16.854775808s", "too long"),
        ];
        for (text, needle) in bad {
            match parse_go_duration(text) {
                Err(msg) => assert!(
                    msg.contains(needle),
                    "{text}: `{needle}` missing from {msg}"
                ),
                Ok(d) => panic!("{text} parsed as {d:?}"),
            }
        }
        // Go's most negative duration parses, and is negative.
        assert_eq!(
            go_duration_parts("-2562047h47m16.854775808s"),
            Ok((true, 1 << 63))
        );
    }

    #[test]
    fn rule_names_fit_eventbridge_and_stay_distinct() {
        assert_eq!(rule_name("br", "daily"), "brfed-schedule-br.daily");
        assert_ne!(rule_name("a-b", "c"), rule_name("a", "b-c"));
        let long = rule_name(&"n".repeat(40), &"s".repeat(27));
        assert_eq!(long.len(), MAX_RULE_NAME);
        assert!(long.starts_with("brfed-schedule-nnnn"), "{long}");
        assert_eq!(long, rule_name(&"n".repeat(40), &"s".repeat(27)));
        assert_ne!(long, rule_name(&"n".repeat(40), &"s".repeat(26)));
        // FNV-1a 64 of "a/b", pinned so that a change of hash (and of every rule name) is seen.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        for (ns, name) in [
            ("", ""),
            ("ns", "a b/ü\u{0}"),
            ("x".repeat(300).as_str(), "y"),
        ] {
            let r = rule_name(ns, name);
            assert!((1..=MAX_RULE_NAME).contains(&r.len()), "{r}");
            assert!(
                r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
                "{r}"
            );
        }
    }

    #[test]
    fn odd_documents_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let pieces = [
            "apiVersion: ",
            "kind: ",
            "metadata:",
            "spec:",
            "  schedule: ",
            "  backupTemplate:",
            "{",
            "}",
            "[",
            "]",
            "\n",
            "  ",
            "- ",
            ": ",
            "\"",
            "'",
            "!",
            "&a",
            "*a",
            "~",
            "null",
            "0",
            "-1",
            "1e999",
            "ü",
            "\u{0}",
            "7d",
            "@every",
            "maxReservedTime",
            "maxBackups",
            "pause",
            "template",
            "s3",
            "br",
            "prefix",
            "clusters",
            "#",
            ",",
            "?",
        ];
        for _ in 0..3000 {
            let mut doc = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                doc.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            if let Ok(r) = ScheduleRequest::from_text(&doc) {
                let _ = r.validate(None);
                let _ = r.retention();
                let _ = r.backup_request_for_tick(reference_tick());
            }
            let _ = parse_go_duration(&doc);
        }
    }
}
