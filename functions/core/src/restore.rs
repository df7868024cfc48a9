//! `VolumeRestore` (reference §2.3, §3.2, §4.4): the spec users already have (or a convenience
//! form that names a backup of the catalog), member `Restore` builders, the judge of the restore
//! waits, and the restore status with its step timings.

use crate::backup::{Failure, Verdict};
use crate::catalog::CatalogDoc;
use crate::error::StepError;
use crate::member::{Condition, MemberRef};
use crate::names;
use crate::ports::Observation;
use crate::spec::{FEDERATION_API_VERSION, ObjectMeta, ObserveMode, validate_meta};
use crate::status::{FedCondition, condition_true, rfc3339, time_taken, write_condition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Fields of `spec.template` of a `VolumeRestore` (`VolumeRestoreMemberSpec`).
pub const RESTORE_TEMPLATE_FIELDS: &[&str] = &[
    "additionalVolumeMounts",
    "additionalVolumes",
    "automountServiceAccountToken",
    "br",
    "env",
    "imagePullSecrets",
    "priorityClassName",
    "resources",
    "serviceAccount",
    "tolerations",
    "toolImage",
    "warmup",
    "warmupImage",
    "warmupStrategy",
];

/// `spec.clusters[]` of a `VolumeRestore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreCluster {
    /// Data plane.
    #[serde(default)]
    pub k8s_cluster_name: String,
    /// Target TidbCluster.
    #[serde(default)]
    pub tc_name: String,
    /// Its namespace (the member `Restore` goes there).
    #[serde(default)]
    pub tc_namespace: String,
    /// AZ of the restored volumes.
    #[serde(default)]
    pub az_name: String,
    /// Storage of that member's backup (`{"s3": {...}}`).
    #[serde(default)]
    pub backup: Map<String, Value>,
}

/// `spec` of a `VolumeRestore`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeRestoreSpec {
    /// Members.
    #[serde(default)]
    pub clusters: Vec<RestoreCluster>,
    /// Copied into every member `Restore`.
    #[serde(default)]
    pub template: Map<String, Value>,
}

/// brfed's restore options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreOptions {
    /// Longest wait of one phase.
    #[serde(default = "default_phase")]
    pub phase_timeout_seconds: u64,
    /// Longest whole restore.
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
    /// Watch or poll.
    #[serde(default)]
    pub observe_mode: ObserveMode,
    /// Poll interval.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// On failure, delete the member `Restore`s and the volumes they created (opt-in).
    #[serde(default)]
    pub cleanup_on_failure: bool,
}

fn default_phase() -> u64 {
    3 * 3600
}
fn default_deadline() -> u64 {
    12 * 3600
}
fn default_poll() -> u64 {
    30
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            phase_timeout_seconds: default_phase(),
            deadline_seconds: default_deadline(),
            observe_mode: ObserveMode::default(),
            poll_seconds: default_poll(),
            cleanup_on_failure: false,
        }
    }
}

/// Convenience input: restore backup `namespace/name` of the catalog into these clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromBackup {
    /// Namespace of the `VolumeBackup` (default `default`).
    #[serde(default)]
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A federated restore request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec (with `backup` filled in from the catalog when `from_backup` was given).
    pub spec: VolumeRestoreSpec,
    /// The catalog backup it restores, when named.
    #[serde(default)]
    pub from_backup: Option<FromBackup>,
    /// Options.
    #[serde(default)]
    pub options: RestoreOptions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WholeRestore {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<VolumeRestoreSpec>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    from_backup: Option<FromBackup>,
    #[serde(default)]
    options: Option<RestoreOptions>,
}

impl RestoreRequest {
    /// Parses a whole `VolumeRestore` (optionally with `fromBackup` and `options` beside it).
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > crate::spec::MAX_INPUT_BYTES {
            return Err(StepError::InvalidSpec(format!(
                "input is {size} bytes, more than accepted"
            )));
        }
        let w: WholeRestore = serde_json::from_value(value)
            .map_err(|e| StepError::InvalidSpec(format!("input: {e}")))?;
        if let Some(k) = w.kind.as_deref().filter(|k| *k != "VolumeRestore") {
            return Err(StepError::InvalidSpec(format!(
                "kind is `{k}`, expected `VolumeRestore`"
            )));
        }
        if let Some(a) = w
            .api_version
            .as_deref()
            .filter(|a| *a != FEDERATION_API_VERSION)
        {
            return Err(StepError::InvalidSpec(format!(
                "apiVersion is `{a}`, expected `{FEDERATION_API_VERSION}`"
            )));
        }
        let _ = w.status;
        let mut metadata = w.metadata.unwrap_or_default();
        if metadata.namespace.is_empty() {
            metadata.namespace = "default".into();
        }
        let mut from_backup = w.from_backup;
        if let Some(f) = from_backup.as_mut().filter(|f| f.namespace.is_empty()) {
            f.namespace = "default".into();
        }
        let spec = w
            .spec
            .ok_or_else(|| StepError::InvalidSpec("`spec` is missing".into()))?;
        Ok(Self {
            metadata,
            spec,
            from_backup,
            options: w.options.unwrap_or_default(),
        })
    }

    /// Name.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `template.warmup` (`""`, `sync`, `async`).
    pub fn warmup(&self) -> &str {
        self.spec
            .template
            .get("warmup")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `template.warmupStrategy` (default `hybrid`).
    pub fn warmup_strategy(&self) -> &str {
        self.spec
            .template
            .get("warmupStrategy")
            .and_then(Value::as_str)
            .unwrap_or("hybrid")
    }

    /// Checks the shape of everything that needs no outside world; all problems at once.
    pub fn validate(&self) -> Result<(), StepError> {
        let mut problems = Vec::new();
        validate_meta(&self.metadata, "restore-data-fed-", &mut problems);
        if self.spec.clusters.is_empty() {
            problems.push("spec.clusters is empty".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.spec.clusters.iter().enumerate() {
            for (field, v, label) in [
                ("k8sClusterName", &c.k8s_cluster_name, false),
                ("tcName", &c.tc_name, false),
                ("tcNamespace", &c.tc_namespace, true),
            ] {
                let ok = if label {
                    names::is_dns_label(v)
                } else {
                    names::is_dns_subdomain(v)
                };
                if !ok {
                    problems.push(format!(
                        "spec.clusters[{i}].{field} `{v}` is empty or not a valid name"
                    ));
                }
            }
            if c.az_name.is_empty() {
                problems.push(format!(
                    "spec.clusters[{i}].azName is empty: restored volumes need a target AZ"
                ));
            }
            if !seen.insert(c.k8s_cluster_name.clone()) {
                problems.push(format!(
                    "spec.clusters[{i}].k8sClusterName `{}` appears twice",
                    c.k8s_cluster_name
                ));
            }
            if self.from_backup.is_none() {
                match c.backup.get("s3") {
                    Some(Value::Object(s3))
                        if s3
                            .get("bucket")
                            .and_then(Value::as_str)
                            .is_some_and(|b| !b.is_empty()) =>
                    {
                        if s3
                            .get("prefix")
                            .and_then(Value::as_str)
                            .is_none_or(str::is_empty)
                        {
                            problems.push(format!("spec.clusters[{i}].backup.s3.prefix is missing: it must point at that member's backup"));
                        }
                    }
                    _ => problems.push(format!(
                        "spec.clusters[{i}].backup.s3 with a bucket is missing (or give fromBackup)"
                    )),
                }
            }
        }
        for key in self.spec.template.keys() {
            if !RESTORE_TEMPLATE_FIELDS.contains(&key.as_str()) {
                problems.push(format!(
                    "spec.template.{key} is not a field of VolumeRestoreMemberSpec"
                ));
            }
        }
        if !["", "sync", "async"].contains(&self.warmup()) {
            problems.push(format!(
                "spec.template.warmup `{}` is not one of \"\", sync, async",
                self.warmup()
            ));
        }
        if !["hybrid", "fio", "fsr", "check-wal-only"].contains(&self.warmup_strategy()) {
            problems.push(format!(
                "spec.template.warmupStrategy `{}` is not one of hybrid, fio, fsr, check-wal-only",
                self.warmup_strategy()
            ));
        }
        if self.warmup_strategy() == "check-wal-only" && self.warmup().is_empty() {
            problems.push(
                "spec.template.warmupStrategy check-wal-only needs warmup sync or async".into(),
            );
        }
        if self.options.phase_timeout_seconds == 0
            || self.options.deadline_seconds == 0
            || self.options.deadline_seconds > crate::spec::MAX_DEADLINE_SECONDS
        {
            problems.push(format!(
                "options: timeouts must be positive and deadlineSeconds at most {}",
                crate::spec::MAX_DEADLINE_SECONDS
            ));
        }
        // As a backup's: the poll loop must fit in the execution's history until the deadline.
        let floor = crate::spec::min_poll_seconds(
            self.options
                .deadline_seconds
                .min(crate::spec::MAX_DEADLINE_SECONDS),
        );
        if self.options.poll_seconds == 0 || self.options.poll_seconds > 3600 {
            problems.push("options.pollSeconds must be between 1 and 3600".into());
        } else if self.options.poll_seconds < floor {
            problems.push(format!(
                "options.pollSeconds {} is too short for options.deadlineSeconds {}: polling that often until the deadline would exhaust the execution's {}-event history; give at least {floor} (docs/restore.md, first section)",
                self.options.poll_seconds,
                self.options.deadline_seconds,
                crate::spec::HISTORY_EVENT_LIMIT
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StepError::InvalidSpec(problems.join("; ")))
        }
    }

    /// Bucket and prefix of member `i`'s backup.
    pub fn backup_location(&self, i: usize) -> Option<(String, String)> {
        let s3 = self.spec.clusters.get(i)?.backup.get("s3")?;
        Some((
            s3.get("bucket")?.as_str()?.to_string(),
            s3.get("prefix")?.as_str()?.to_string(),
        ))
    }
}

/// `spec.federalVolumeRestorePhase` values.
pub mod rphase {
    /// Create volumes from the snapshots.
    pub const RESTORE_VOLUME: &str = "restore-volume";
    /// Recover the data (one member).
    pub const RESTORE_DATA: &str = "restore-data";
    /// Restart TiKV out of recovery mode.
    pub const RESTORE_FINISH: &str = "restore-finish";
}

/// Data-plane `Restore` condition types.
pub mod rcond {
    /// Volumes created.
    pub const VOLUME_COMPLETE: &str = "VolumeComplete";
    /// Warmup jobs started.
    pub const WARMUP_STARTED: &str = "WarmUpStarted";
    /// Warmup jobs done.
    pub const WARMUP_COMPLETE: &str = "WarmUpComplete";
    /// TiKV up.
    pub const TIKV_COMPLETE: &str = "TikvComplete";
    /// Data recovered.
    pub const DATA_COMPLETE: &str = "DataComplete";
    /// Done.
    pub const COMPLETE: &str = "Complete";
    /// Failed.
    pub const FAILED: &str = "Failed";
    /// Invalid.
    pub const INVALID: &str = "Invalid";
}

/// What brfed reads of a member `Restore`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreView {
    /// Annotation `brfed.io/execution`.
    pub execution: Option<String>,
    /// `spec.federalVolumeRestorePhase`.
    pub federal_phase: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.commitTs`.
    pub commit_ts: Option<String>,
}

impl RestoreView {
    /// From the object's JSON.
    pub fn from_object(obj: &Value) -> Self {
        let s = |v: &Value| v.as_str().map(String::from);
        Self {
            execution: obj["metadata"]["annotations"]
                .get(names::ANNOTATION_EXECUTION)
                .and_then(s),
            federal_phase: s(&obj["spec"]["federalVolumeRestorePhase"]),
            phase: s(&obj["status"]["phase"]),
            conditions: serde_json::from_value(obj["status"]["conditions"].clone())
                .unwrap_or_default(),
            commit_ts: match &obj["status"]["commitTs"] {
                Value::String(c) => Some(c.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        }
    }

    /// Condition `t` is True.
    pub fn has(&self, t: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    }

    fn failure(&self, m: &MemberRef) -> Option<Failure> {
        let (name, c) = if let Some(c) = self
            .conditions
            .iter()
            .find(|c| c.type_ == rcond::INVALID && c.status == "True")
        {
            ("MemberInvalid", c)
        } else {
            (
                "MemberFailed",
                self.conditions
                    .iter()
                    .find(|c| c.type_ == rcond::FAILED && c.status == "True")?,
            )
        };
        let detail = [c.reason.as_deref(), c.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        Some(Failure::new(
            name,
            format!("member {} is {} ({detail})", m.display(), c.type_),
        ))
    }
}

/// What a restore observe step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreAwait {
    /// Every member `VolumeComplete`.
    VolumesRestored,
    /// Every member `TikvComplete`.
    TikvStarted,
    /// The restore-data member `DataComplete`.
    DataRestored,
    /// Every member `Complete` (and `WarmUpComplete` for async warmup).
    Complete,
    /// On the failure path: every member has settled ([`volumes_settled`]), so that the
    /// leftovers report names every volume the restore created. Member failures do not end it.
    Settled,
}

/// A member has settled for the leftovers report: it no longer creates volumes that the report
/// could miss. It is gone, it has ended (`Complete`, `Failed`, `Invalid`, `CleanVolumeComplete`),
/// or its volumes are known (`VolumeComplete`: its `restoremeta` lists them). A member still in
/// restore-volume, or one that cannot be asked, has not.
pub fn volumes_settled(o: &Observation) -> bool {
    match o {
        Observation::Absent => true,
        Observation::Unreachable(_) => false,
        Observation::Present(v) => {
            let v = RestoreView::from_object(v);
            v.has(rcond::VOLUME_COMPLETE)
                || v.has(rcond::COMPLETE)
                || v.has(rcond::FAILED)
                || v.has(rcond::INVALID)
                || matches!(
                    v.phase.as_deref(),
                    Some("Complete" | "Failed" | "Invalid" | "CleanVolumeComplete")
                )
        }
    }
}

/// Judges restore observations.
pub fn judge_restore(
    awaited: RestoreAwait,
    members: &[MemberRef],
    obs: &[Observation],
    data_member: Option<usize>,
    async_warmup: bool,
) -> Verdict {
    let views: Vec<Option<RestoreView>> = obs
        .iter()
        .map(|o| {
            if let Observation::Present(v) = o {
                Some(RestoreView::from_object(v))
            } else {
                None
            }
        })
        .collect();
    // Settling is the failure path itself: member failures do not end it.
    if awaited != RestoreAwait::Settled {
        for ((m, o), v) in members.iter().zip(obs).zip(&views) {
            if matches!(o, Observation::Absent) {
                return Verdict::Failed(Failure::new(
                    "MemberMissing",
                    format!("member {} is gone", m.display()),
                ));
            }
            if let Some(f) = v.as_ref().and_then(|v| v.failure(m)) {
                return Verdict::Failed(f);
            }
        }
    }
    let all = |t: &str| views.iter().all(|v| v.as_ref().is_some_and(|v| v.has(t)));
    let met = match awaited {
        RestoreAwait::VolumesRestored => all(rcond::VOLUME_COMPLETE),
        RestoreAwait::TikvStarted => all(rcond::TIKV_COMPLETE),
        RestoreAwait::DataRestored => data_member
            .and_then(|i| views.get(i))
            .is_some_and(|v| v.as_ref().is_some_and(|v| v.has(rcond::DATA_COMPLETE))),
        RestoreAwait::Complete => {
            all(rcond::COMPLETE) && (!async_warmup || all(rcond::WARMUP_COMPLETE))
        }
        RestoreAwait::Settled => obs.iter().all(volumes_settled),
    };
    if met { Verdict::Met } else { Verdict::Pending }
}

/// The member that runs restore-data: the minimum `commitTs` (ties: first in spec order).
/// Empty or non-numeric commitTs fails (`ResolvedTsInvalid`).
pub fn pick_data_member(members: &[MemberRef], obs: &[Observation]) -> Result<usize, Failure> {
    let mut best: Option<(u64, usize)> = None;
    for (i, (m, o)) in members.iter().zip(obs).enumerate() {
        let ts = match o {
            Observation::Present(v) => RestoreView::from_object(v)
                .commit_ts
                .and_then(|c| c.trim().parse::<u64>().ok())
                .filter(|t| *t > 0),
            _ => None,
        }
        .ok_or_else(|| {
            Failure::new(
                "ResolvedTsInvalid",
                format!(
                    "member {} has no valid commitTs after restore-volume",
                    m.display()
                ),
            )
        })?;
        if best.is_none_or(|(b, _)| ts < b) {
            best = Some((ts, i));
        }
    }
    best.map(|(_, i)| i)
        .ok_or_else(|| Failure::new("ResolvedTsInvalid", "no members"))
}

/// `status.restores[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreMemberStatus {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// TidbCluster.
    pub tc_name: String,
    /// Namespace.
    pub tc_namespace: String,
    /// Member `Restore` name.
    pub restore_name: String,
    /// Member phase.
    pub phase: String,
    /// Member commitTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// From a failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From a failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status.steps[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStep {
    /// `RestoreVolume`, `StartTiKV`, `WarmUp`, `RestoreData`, `RestartTiKV`.
    pub step_name: String,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<String>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<String>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_taken: Option<String>,
}

/// `VolumeRestore.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreStatus {
    /// Members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<RestoreMemberStatus>,
    /// Step timings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RestoreStep>,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<String>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<String>,
    /// Duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_taken: Option<String>,
    /// The restored point in time (commitTs of the restore-data member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// Last condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<FedCondition>,
}

impl VolumeRestoreStatus {
    /// Sets a condition (kept transition time when already True) and the phase.
    pub fn set_condition(
        &mut self,
        t: &str,
        reason: Option<&str>,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) {
        write_condition(&mut self.conditions, t, reason, message, now);
        self.phase = Some(t.into());
        if t == "Running" && self.time_started.is_none() {
            self.time_started = Some(rfc3339(now));
        }
    }

    /// Condition `t` is True.
    pub fn has(&self, t: &str) -> bool {
        condition_true(&self.conditions, t)
    }

    /// Ended.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Complete") | Some("Failed"))
    }

    /// Starts step `name` (once).
    pub fn start_step(&mut self, name: &str, now: DateTime<Utc>) {
        if !self.steps.iter().any(|s| s.step_name == name) {
            self.steps.push(RestoreStep {
                step_name: name.into(),
                time_started: Some(rfc3339(now)),
                ..Default::default()
            });
        }
    }

    /// Finishes step `name` (once).
    pub fn finish_step(&mut self, name: &str, now: DateTime<Utc>) {
        if let Some(s) = self
            .steps
            .iter_mut()
            .find(|s| s.step_name == name && s.time_completed.is_none())
        {
            s.time_completed = Some(rfc3339(now));
            s.time_taken = time_taken(s.time_started.as_deref(), now);
        }
    }

    /// Ends the restore.
    pub fn finish(&mut self, failure: Option<(&str, &str)>, now: DateTime<Utc>) {
        self.time_completed = Some(rfc3339(now));
        if let Some(taken) = time_taken(self.time_started.as_deref(), now) {
            self.time_taken = Some(taken);
        }
        match failure {
            Some((r, m)) => self.set_condition("Failed", Some(r), Some(m), now),
            None => self.set_condition("Complete", None, None, now),
        }
    }

    /// Upserts `restores[]` and derives the federation conditions and step timings from what
    /// the members show (reference §4.4 steps 6–11). `strategy`/`warmup` from the template.
    pub fn refresh(
        &mut self,
        members: &[MemberRef],
        obs: &[Observation],
        warmup: &str,
        data_member: Option<usize>,
        now: DateTime<Utc>,
    ) {
        let views: Vec<Option<RestoreView>> = obs
            .iter()
            .map(|o| {
                if let Observation::Present(v) = o {
                    Some(RestoreView::from_object(v))
                } else {
                    None
                }
            })
            .collect();
        for (m, v) in members.iter().zip(&views) {
            let Some(v) = v else { continue };
            let failed = v.conditions.iter().find(|c| {
                (c.type_ == rcond::FAILED || c.type_ == rcond::INVALID) && c.status == "True"
            });
            let entry = RestoreMemberStatus {
                k8s_cluster_name: m.k8s_cluster_name.clone(),
                tc_name: m.tc_name.clone(),
                tc_namespace: m.tc_namespace.clone(),
                restore_name: m.backup_name.clone(),
                phase: v.phase.clone().unwrap_or_default(),
                commit_ts: v.commit_ts.clone(),
                reason: failed.and_then(|c| c.reason.clone()),
                message: failed.and_then(|c| c.message.clone()),
            };
            match self
                .restores
                .iter_mut()
                .find(|r| r.k8s_cluster_name == m.k8s_cluster_name)
            {
                Some(r) => *r = entry,
                None => self.restores.push(entry),
            }
        }
        let all = |t: &str| {
            !views.is_empty() && views.iter().all(|v| v.as_ref().is_some_and(|v| v.has(t)))
        };
        if all(rcond::VOLUME_COMPLETE) && !self.has(rcond::VOLUME_COMPLETE) {
            self.set_condition(rcond::VOLUME_COMPLETE, None, None, now);
            self.finish_step("RestoreVolume", now);
            match warmup {
                "sync" => self.start_step("WarmUp", now),
                "async" => {
                    self.start_step("StartTiKV", now);
                    self.start_step("WarmUp", now);
                }
                _ => self.start_step("StartTiKV", now),
            }
        }
        if all(rcond::WARMUP_STARTED) && !self.has(rcond::WARMUP_STARTED) {
            self.set_condition(rcond::WARMUP_STARTED, None, None, now);
        }
        if all(rcond::WARMUP_COMPLETE) && !self.has(rcond::WARMUP_COMPLETE) {
            self.set_condition(rcond::WARMUP_COMPLETE, None, None, now);
            self.finish_step("WarmUp", now);
            if warmup == "sync" {
                self.start_step("StartTiKV", now);
            }
        }
        if all(rcond::TIKV_COMPLETE) && !self.has(rcond::TIKV_COMPLETE) {
            self.set_condition(rcond::TIKV_COMPLETE, None, None, now);
            self.finish_step("StartTiKV", now);
        }
        if let Some(v) = data_member
            .and_then(|i| views.get(i))
            .and_then(Option::as_ref)
            && v.has(rcond::DATA_COMPLETE)
            && !self.has(rcond::DATA_COMPLETE)
        {
            self.commit_ts = v.commit_ts.clone();
            self.set_condition(rcond::DATA_COMPLETE, None, None, now);
            self.finish_step("RestoreData", now);
        }
        if all(rcond::COMPLETE) {
            self.finish_step("RestartTiKV", now);
        }
    }
}

/// brfed's record of a restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// Execution.
    pub execution: String,
    /// Options.
    #[serde(default)]
    pub options: RestoreOptions,
    /// Members in spec order.
    #[serde(default)]
    pub members: Vec<MemberRef>,
    /// The backup restored, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
    /// Index of the member that ran restore-data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_member: Option<usize>,
    /// On failure: what was left in each data plane, and how to clean it up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Leftover>,
    /// Per data plane, what brfed proved and tagged of its member's volumes once the member
    /// reached `VolumeComplete` (`restore_volumes::claim`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_claims: Vec<crate::restore_volumes::VolumeClaim>,
}

/// What a failed restore left in one data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// Member `Restore` (`ns/name`) and its phase, if it still exists.
    pub member: Option<String>,
    /// A `Restore` of the member's name that is not this restore's (another execution, or not
    /// brfed's): named, never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_member: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
    /// EBS volumes this restore's member made, still existing unless cleaned up: those brfed
    /// proved and tagged at `VolumeComplete` (`brfed.dev/stack`, `brfed.dev/volumerestore`,
    /// `brfed.dev/k8s-cluster`) that still pass every proof: made from the member's backup
    /// snapshots, in its AZ, after the restore began (`restore_volumes`).
    pub volumes: Vec<String>,
    /// Volumes that may be the member's (made from its backup snapshots, in its AZ, since the
    /// restore began) but lack a proof: listed, never deleted by the cleanup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_volumes: Vec<String>,
    /// What the report could not know (a member still creating volumes, EC2 not answering).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The TidbCluster is still in recovery mode.
    pub tidb_cluster_in_recovery_mode: bool,
    /// Shell commands that clean up what is left.
    pub cleanup_commands: Vec<String>,
    /// What the opt-in cleanup did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
}

/// A `VolumeRestore` as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreDoc {
    /// API version.
    pub api_version: String,
    /// `VolumeRestore`.
    pub kind: String,
    /// Metadata.
    pub metadata: crate::catalog::DocMeta,
    /// Spec (with each member's backup location).
    pub spec: VolumeRestoreSpec,
    /// Status.
    #[serde(default)]
    pub status: VolumeRestoreStatus,
    /// brfed's record.
    #[serde(default)]
    pub brfed: RestoreRecord,
}

impl VolumeRestoreDoc {
    /// The request as recorded: metadata, spec with each member's backup location, options
    /// (`fromBackup` was resolved into the spec at start).
    pub fn request(&self) -> RestoreRequest {
        RestoreRequest {
            metadata: self.metadata.meta.clone(),
            spec: self.spec.clone(),
            from_backup: None,
            options: self.brfed.options.clone(),
        }
    }
}

/// Catalog key of restore `namespace/name`.
pub fn restore_key(namespace: &str, name: &str) -> String {
    format!(
        "{}/volumerestores/{namespace}/{name}.json",
        crate::catalog::CATALOG_PREFIX
    )
}

impl CatalogDoc for VolumeRestoreDoc {
    fn key_of(namespace: &str, name: &str) -> String {
        restore_key(namespace, name)
    }
    fn id(&self) -> (&str, &str) {
        (&self.metadata.meta.namespace, &self.metadata.meta.name)
    }
    fn execution(&self) -> &str {
        &self.brfed.execution
    }
}

/// Builds the member `Restore` of cluster `i`.
pub fn build_member_restore(
    req: &RestoreRequest,
    i: usize,
    member: &MemberRef,
    execution: &str,
) -> Value {
    let c = &req.spec.clusters[i];
    let mut spec = req.spec.template.clone();
    spec.remove("automountServiceAccountToken");
    let mut br = match spec.remove("br") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    br.insert("cluster".into(), json!(member.tc_name));
    br.insert("clusterNamespace".into(), json!(member.tc_namespace));
    spec.insert("br".into(), Value::Object(br));
    for (k, v) in &c.backup {
        spec.insert(k.clone(), v.clone());
    }
    spec.insert("restoreMode".into(), json!("volume-snapshot"));
    spec.insert("backupType".into(), json!("full"));
    spec.insert(
        "federalVolumeRestorePhase".into(),
        json!(rphase::RESTORE_VOLUME),
    );
    spec.insert("volumeAZ".into(), json!(c.az_name));
    let mut labels = serde_json::to_value(&req.metadata.labels).unwrap_or_else(|_| json!({}));
    labels["brfed.io/volume-restore"] = json!(req.name());
    labels[names::LABEL_MANAGED_BY] = json!(names::MANAGED_BY);
    let mut annotations =
        serde_json::to_value(&req.metadata.annotations).unwrap_or_else(|_| json!({}));
    annotations[names::ANNOTATION_EXECUTION] = json!(execution);
    annotations[names::ANNOTATION_FEDERATION_NAMESPACE] = json!(req.metadata.namespace);
    json!({
        "apiVersion": crate::member::DATA_PLANE_API_VERSION,
        "kind": "Restore",
        "metadata": {"name": member.backup_name, "namespace": member.tc_namespace, "labels": labels, "annotations": annotations},
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn restore(options: Value) -> Value {
        let clusters: Vec<Value> = ["dp1", "dp2"]
            .iter()
            .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": "tidb", "azName": "us-west-2a",
                            "backup": {"s3": {"provider": "aws", "bucket": "b", "prefix": format!("p-{p}")}}}))
            .collect();
        json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
               "metadata": {"name": "r1", "namespace": "br"},
               "spec": {"clusters": clusters, "template": {}},
               "options": options})
    }

    fn problem(options: Value) -> Option<String> {
        RestoreRequest::from_value(restore(options))
            .and_then(|r| r.validate())
            .err()
            .map(|e| {
                assert_eq!(e.name(), "InvalidSpec", "{e}");
                e.to_string()
            })
    }

    #[test]
    fn the_poll_interval_is_bounded_as_a_backups() {
        assert_eq!(problem(json!({})), None, "the defaults");
        assert_eq!(problem(json!({"pollSeconds": 18})), None, "12 h needs 18 s");
        for (options, needle) in [
            (json!({"pollSeconds": 0}), "between 1 and 3600"),
            (json!({"pollSeconds": 3601}), "between 1 and 3600"),
            (json!({"pollSeconds": 17}), "give at least 18"),
            (
                json!({"pollSeconds": 1, "deadlineSeconds": 82_800}),
                "give at least 34",
            ),
        ] {
            let p = problem(options.clone()).unwrap_or_else(|| panic!("{options} accepted"));
            assert!(p.contains(needle), "{options}: {p}");
        }
    }
}
