//! The `VolumeRestore` (reference §2.3) users already have, as brfed accepts it, or a convenience
//! form that names a backup of the catalog.

use crate::error::StepError;
use crate::input::FEDERATION_API_VERSION;
use crate::input::ObjectMeta;
use crate::input::ObserveMode;
use crate::input::parse_document;
use crate::input::validate_meta;
use crate::names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// AZ of the restored volumes; empty: each volume in the AZ of its backup volume, as the
    /// original (the member's `volumeAZ` is empty, BR gets no `--target-az`).
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
    /// Parses YAML or JSON text (a whole `VolumeRestore`, as [`Self::from_value`] takes it).
    pub fn from_text(text: &str) -> Result<Self, StepError> {
        Self::from_value(parse_document(text)?)
    }

    /// Parses a whole `VolumeRestore` (optionally with `fromBackup` and `options` beside it).
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > crate::input::MAX_INPUT_BYTES {
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
        if self.warmup_strategy() == "check-wal-only" && self.warmup() != "sync" {
            // The original cannot run it either: check-wal-only never starts TiKV (release-1.6
            // pkg/backup/restore/restore_manager.go `startTiKVIfNeeded`), and an async warmup
            // waits for running TiKV pods before it starts (`warmUpTiKVVolumesAsync`), so its
            // members stay at VolumeComplete for ever (docs/restore.md, "check-wal-only").
            let given = match self.warmup() {
                "" => "warmup is not set".to_string(),
                w => format!("not `{w}`"),
            };
            problems.push(format!(
                "spec.template.warmupStrategy check-wal-only needs warmup sync ({given}): the data plane starts no TiKV to check the WAL, so without a sync warmup nothing checks it, and an async warmup waits for running TiKV pods: the restore would never end"
            ));
        }
        if self.options.phase_timeout_seconds == 0
            || self.options.deadline_seconds == 0
            || self.options.deadline_seconds > crate::input::MAX_DEADLINE_SECONDS
        {
            problems.push(format!(
                "options: timeouts must be positive and deadlineSeconds at most {}",
                crate::input::MAX_DEADLINE_SECONDS
            ));
        }
        // As a backup's: the poll loop must fit in the execution's history until the deadline.
        let floor = crate::input::min_poll_seconds(
            self.options
                .deadline_seconds
                .min(crate::input::MAX_DEADLINE_SECONDS),
        );
        if self.options.poll_seconds == 0 || self.options.poll_seconds > 3600 {
            problems.push("options.pollSeconds must be between 1 and 3600".into());
        } else if self.options.poll_seconds < floor {
            problems.push(format!(
                "options.pollSeconds {} is too short for options.deadlineSeconds {}: polling that often until the deadline would exhaust the execution's {}-event history; give at least {floor} (docs/restore.md, first section)",
                self.options.poll_seconds,
                self.options.deadline_seconds,
                crate::input::HISTORY_EVENT_LIMIT
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
