//! The `VolumeBackup` (`federation.pingcap.com/v1alpha1`) users already have, as brfed accepts it:
//! the whole object (YAML or JSON) or only its `spec` with a name, and brfed's own options.
//! Parsing is strict where the original silently pruned or crashed (reference §10 items 2, 21),
//! and [`BackupRequest::validate`] reports every problem at once, before any side effect.

use crate::error::StepError;
use crate::input::FEDERATION_API_VERSION;
use crate::input::HISTORY_EVENT_LIMIT;
use crate::input::MAX_CLUSTERS;
use crate::input::MAX_DEADLINE_SECONDS;
use crate::input::MAX_INPUT_BYTES;
use crate::input::ObjectMeta;
use crate::input::ObserveMode;
use crate::input::Shape;
use crate::input::check_fields;
use crate::input::min_poll_seconds;
use crate::input::parse_document;
use crate::input::shape_error;
use crate::input::shape_problem;
use crate::input::truncate;
use crate::input::type_error;
use crate::input::valid_bucket;
use crate::input::validate_meta;
use crate::member::MemberCluster;
use crate::member::MemberRef;
use crate::names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Fields of `spec.template` that the original's CRD defines. Anything else is refused instead of
/// being silently pruned as the API server would.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "additionalVolumeMounts",
    "additionalVolumes",
    "automountServiceAccountToken",
    "azblob",
    "br",
    "calcSizeLevel",
    "cleanPolicy",
    "env",
    "gcs",
    "imagePullSecrets",
    "local",
    "priorityClassName",
    "resources",
    "s3",
    "serviceAccount",
    "snapshotsDeleteRatio",
    "tolerations",
    "toolImage",
    "volumeBackupInitJobMaxActiveSeconds",
];

/// The range of `snapshotsDeleteRatio` the original keeps, and what it uses outside it.
const DELETE_RATIO_MIN: f64 = 0.1;
const DELETE_RATIO_MAX: f64 = 2.0;
const DELETE_RATIO_DEFAULT: f64 = 1.0;

const BR_FIELDS: &[&str] = &[
    "checkRequirements",
    "concurrency",
    "options",
    "sendCredToTikv",
];

const S3_FIELDS: &[&str] = &[
    "acl",
    "bucket",
    "endpoint",
    "forcePathStyle",
    "options",
    "path",
    "prefix",
    "provider",
    "region",
    "secretName",
    "sse",
    "storageClass",
];

/// `spec` of a `VolumeBackup`. The template is kept as JSON so that every field the user set is
/// carried to the members verbatim; typed accessors read what brfed itself needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeBackupSpec {
    /// Member clusters; `clusters[0]` runs the initialize step.
    #[serde(default)]
    pub clusters: Vec<MemberCluster>,
    /// Copied into every member `Backup`.
    #[serde(default)]
    pub template: Map<String, Value>,
}

/// brfed's own options, beside the original's fields. All optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// Longest time any one phase may wait before the backup is torn down (`PhaseDeadlineExceeded`).
    #[serde(default = "default_phase_timeout")]
    pub phase_timeout_seconds: u64,
    /// Longest time the whole backup may take before it is torn down (`DeadlineExceeded`).
    #[serde(default = "default_deadline")]
    pub deadline_seconds: u64,
    /// Watch (default) or poll.
    #[serde(default)]
    pub observe_mode: ObserveMode,
    /// Seconds between reads in poll mode.
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: u64,
}

fn default_phase_timeout() -> u64 {
    3600
}

fn default_deadline() -> u64 {
    6 * 3600
}

fn default_poll_seconds() -> u64 {
    30
}

impl Default for Options {
    fn default() -> Self {
        Self {
            phase_timeout_seconds: default_phase_timeout(),
            deadline_seconds: default_deadline(),
            observe_mode: ObserveMode::default(),
            poll_seconds: default_poll_seconds(),
        }
    }
}

/// A federated backup request, normalised from whatever form the user gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    /// Name, namespace, labels, annotations.
    pub metadata: ObjectMeta,
    /// The original's spec.
    pub spec: VolumeBackupSpec,
    /// Immune to schedule retention (top-level field, as in the original).
    #[serde(default, rename = "skipGC")]
    pub skip_gc: bool,
    /// brfed options.
    #[serde(default)]
    pub options: Options,
    /// The schedule whose tick made this request (`scheduledBy` beside `volumeBackup` in the
    /// execution input, see [`Self::execution_input`]); never part of a `VolumeBackup` itself,
    /// so that a user's file or a copied label cannot make a backup a schedule's.
    #[serde(skip)]
    pub scheduled_by: Option<ScheduledBy>,
}

/// The schedule a backup was made by: recorded by the schedule's tick, the only thing that
/// makes a backup a candidate of that schedule's retention (not its labels, which anyone may
/// copy onto a manual backup).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledBy {
    /// The schedule's namespace (the backup's).
    pub namespace: String,
    /// The schedule's name.
    pub name: String,
}

impl ScheduledBy {
    /// The schedule of a backup is in the backup's namespace and the backup is named after it
    /// (`{schedule}-{tick}`).
    fn validate(&self, meta: &ObjectMeta, problems: &mut Vec<String>) {
        if self.namespace != meta.namespace {
            problems.push(format!(
                "scheduledBy.namespace `{}` is not the backup's namespace `{}`",
                truncate(&self.namespace),
                truncate(&meta.namespace)
            ));
        }
        if !names::is_dns_label(&self.name) {
            problems.push(format!(
                "scheduledBy.name `{}` is not a schedule name",
                truncate(&self.name)
            ));
        } else if !meta.name.starts_with(&format!("{}-", self.name)) {
            problems.push(format!(
                "scheduledBy.name `{}`: a schedule's backups are named `{}-{{tick}}`, not `{}`",
                self.name,
                self.name,
                truncate(&meta.name)
            ));
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WholeObject {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    spec: Option<Value>,
    #[serde(default, rename = "skipGC")]
    skip_gc: Option<bool>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    options: Option<Value>,
    /// Spec-only form: `{"name": ..., "spec": ...}`.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

impl BackupRequest {
    /// The member of each `spec.clusters[]` entry, in that order.
    pub fn members(&self) -> Vec<MemberRef> {
        let clusters = self.spec.clusters.iter();
        clusters.map(|c| MemberRef::new(c, self.name())).collect()
    }

    /// Parses YAML or JSON text (a whole `VolumeBackup`, or `{name, spec}`).
    pub fn from_text(text: &str) -> Result<Self, StepError> {
        Self::from_value(parse_document(text)?)
    }

    /// Parses a JSON value: a whole `VolumeBackup`, `{"volumeBackup": {...}, "options": {...}}`,
    /// or `{name, namespace?, spec}`. Checks only the shape; see [`Self::validate`].
    pub fn from_value(value: Value) -> Result<Self, StepError> {
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_INPUT_BYTES {
            return Err(StepError::InvalidSpec(format!(
                "input is {size} bytes, more than the {MAX_INPUT_BYTES} accepted"
            )));
        }
        let mut map = match value {
            Value::Object(map) => map,
            other => return Err(shape_error("input", &other, Shape::Object)),
        };
        let mut scheduled_by = None;
        if let Some(inner) = map.remove("volumeBackup") {
            let outer_options = map.remove("options");
            if let Some(by) = map.remove("scheduledBy") {
                if !by.is_object() {
                    return Err(shape_error("scheduledBy", &by, Shape::Object));
                }
                let by: ScheduledBy =
                    serde_json::from_value(by).map_err(|e| type_error("scheduledBy", e))?;
                scheduled_by = Some(by);
            }
            if let Some(extra) = map.keys().next() {
                return Err(StepError::InvalidSpec(format!(
                    "unknown field `{}` beside `volumeBackup`",
                    truncate(extra)
                )));
            }
            map = match inner {
                Value::Object(inner) => inner,
                other => return Err(shape_error("volumeBackup", &other, Shape::Object)),
            };
            if let Some(o) = outer_options {
                if map.contains_key("options") {
                    return Err(StepError::InvalidSpec(
                        "`options` is given both beside and inside `volumeBackup`; give it once"
                            .into(),
                    ));
                }
                map.insert("options".into(), o);
            }
        }
        check_shapes(&map)?;
        let whole: WholeObject =
            serde_json::from_value(Value::Object(map)).map_err(|e| type_error("input", e))?;
        if let Some(kind) = &whole.kind
            && kind != "VolumeBackup"
        {
            return Err(StepError::InvalidSpec(format!(
                "kind is `{kind}`, expected `VolumeBackup`"
            )));
        }
        if let Some(api) = &whole.api_version
            && api != FEDERATION_API_VERSION
        {
            return Err(StepError::InvalidSpec(format!(
                "apiVersion is `{api}`, expected `{FEDERATION_API_VERSION}`"
            )));
        }
        let _ = whole.status; // a status in the input is ignored, as the API server would on create
        let mut metadata: ObjectMeta = match whole.metadata {
            Some(m) => serde_json::from_value(m).map_err(|e| type_error("metadata", e))?,
            None => ObjectMeta::default(),
        };
        if let Some(n) = whole.name {
            if !metadata.name.is_empty() && metadata.name != n {
                return Err(StepError::InvalidSpec(
                    "`name` and `metadata.name` differ".into(),
                ));
            }
            metadata.name = n;
        }
        if let Some(ns) = whole.namespace {
            if !metadata.namespace.is_empty() && metadata.namespace != ns {
                return Err(StepError::InvalidSpec(
                    "`namespace` and `metadata.namespace` differ".into(),
                ));
            }
            metadata.namespace = ns;
        }
        if metadata.namespace.is_empty() {
            metadata.namespace = "default".into();
        }
        let spec_value = whole
            .spec
            .ok_or_else(|| StepError::InvalidSpec("`spec` is missing".into()))?;
        let spec: VolumeBackupSpec =
            serde_json::from_value(spec_value).map_err(|e| type_error("spec", e))?;
        let options = match whole.options {
            Some(o) => serde_json::from_value(o).map_err(|e| type_error("options", e))?,
            None => Options::default(),
        };
        Ok(Self {
            metadata,
            spec,
            skip_gc: whole.skip_gc.unwrap_or(false),
            options,
            scheduled_by,
        })
    }

    /// The execution input of this request, which [`Self::from_value`] reads back: the request
    /// itself, or `{"volumeBackup": ..., "scheduledBy": ...}` for a schedule's tick.
    pub fn execution_input(&self) -> Result<Value, StepError> {
        let request = serde_json::to_value(self).map_err(|e| StepError::Internal(e.to_string()))?;
        Ok(match &self.scheduled_by {
            None => request,
            Some(by) => serde_json::json!({"volumeBackup": request, "scheduledBy": by}),
        })
    }

    /// Name of the federated backup.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Checks everything that can be checked without the outside world, and reports every
    /// problem at once. `known_clusters`, when given, is the set of data-plane names the
    /// registry knows.
    pub fn validate(&self, known_clusters: Option<&HashSet<String>>) -> Result<(), StepError> {
        let mut problems: Vec<String> = Vec::new();
        validate_meta(&self.metadata, "backup-fed-", &mut problems);
        if self.spec.clusters.is_empty() {
            problems.push("spec.clusters is empty".into());
        }
        if self.spec.clusters.len() > MAX_CLUSTERS {
            problems.push(format!(
                "spec.clusters has {} entries, at most {MAX_CLUSTERS} are accepted",
                self.spec.clusters.len()
            ));
        }
        let mut seen = HashSet::new();
        for (i, c) in self.spec.clusters.iter().enumerate() {
            if c.k8s_cluster_name.is_empty() {
                problems.push(format!("spec.clusters[{i}].k8sClusterName is empty"));
            } else if !names::is_dns_subdomain(&c.k8s_cluster_name) {
                problems.push(format!(
                    "spec.clusters[{i}].k8sClusterName `{}` is not a valid name",
                    truncate(&c.k8s_cluster_name)
                ));
            } else if let Some(known) = known_clusters
                && !known.contains(&c.k8s_cluster_name)
            {
                let mut k: Vec<_> = known.iter().cloned().collect();
                k.sort();
                problems.push(format!(
                    "spec.clusters[{i}].k8sClusterName `{}` is not a known data plane (known: {})",
                    c.k8s_cluster_name,
                    k.join(", ")
                ));
            }
            if c.tc_name.is_empty() {
                problems.push(format!("spec.clusters[{i}].tcName is empty"));
            } else if !names::is_dns_subdomain(&c.tc_name) {
                problems.push(format!(
                    "spec.clusters[{i}].tcName `{}` is not a valid name",
                    truncate(&c.tc_name)
                ));
            }
            if c.tc_namespace.is_empty() {
                problems.push(format!("spec.clusters[{i}].tcNamespace is empty"));
            } else if !names::is_dns_label(&c.tc_namespace) {
                problems.push(format!(
                    "spec.clusters[{i}].tcNamespace `{}` is not a valid namespace",
                    truncate(&c.tc_namespace)
                ));
            }
            if !c.k8s_cluster_name.is_empty() && !seen.insert(c.k8s_cluster_name.clone()) {
                problems.push(format!(
                    "spec.clusters[{i}].k8sClusterName `{}` appears twice (one member per data plane)",
                    c.k8s_cluster_name
                ));
            }
        }
        self.validate_template(&mut problems);
        if self.options.phase_timeout_seconds == 0 || self.options.deadline_seconds == 0 {
            problems.push("options: timeouts must be positive".into());
        }
        if self.options.phase_timeout_seconds > MAX_DEADLINE_SECONDS {
            problems.push(format!(
                "options.phaseTimeoutSeconds must be at most {MAX_DEADLINE_SECONDS} (no phase outlasts the whole backup)"
            ));
        }
        if self.options.deadline_seconds > MAX_DEADLINE_SECONDS {
            problems.push(format!(
                "options.deadlineSeconds must be at most {MAX_DEADLINE_SECONDS} (the state machine's own timeout is 24 h)"
            ));
        }
        let floor = min_poll_seconds(self.options.deadline_seconds.min(MAX_DEADLINE_SECONDS));
        if self.options.poll_seconds == 0 || self.options.poll_seconds > 3600 {
            problems.push("options.pollSeconds must be between 1 and 3600".into());
        } else if self.options.poll_seconds < floor {
            problems.push(format!(
                "options.pollSeconds {} is too short for options.deadlineSeconds {}: polling that often until the deadline would exhaust the execution's {HISTORY_EVENT_LIMIT}-event history; give at least {floor} (docs/backup.md, \"Poll mode and the history limit\")",
                self.options.poll_seconds, self.options.deadline_seconds
            ));
        }
        if let Some(by) = &self.scheduled_by {
            by.validate(&self.metadata, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StepError::InvalidSpec(problems.join("; ")))
        }
    }

    fn validate_template(&self, problems: &mut Vec<String>) {
        let t = &self.spec.template;
        for key in t.keys() {
            if !TEMPLATE_FIELDS.contains(&key.as_str()) {
                problems.push(format!(
                    "spec.template.{} is not a field of VolumeBackupMemberSpec",
                    truncate(key)
                ));
            }
        }
        match t.get("s3") {
            None | Some(Value::Null) => problems.push(
                "spec.template.s3 is missing: EBS volume-snapshot backups need an S3 location for their metadata".into(),
            ),
            Some(Value::Object(s3)) => {
                for key in s3.keys() {
                    if !S3_FIELDS.contains(&key.as_str()) {
                        problems.push(format!("spec.template.s3.{} is not a field of S3StorageProvider", truncate(key)));
                    }
                }
                match s3.get("bucket") {
                    Some(Value::String(b)) if valid_bucket(b) => {}
                    Some(Value::String(b)) => problems.push(format!("spec.template.s3.bucket `{}` is not a valid bucket name", truncate(b))),
                    None | Some(Value::Null) => problems.push("spec.template.s3.bucket is missing".into()),
                    Some(b) => problems.push(shape_problem("spec.template.s3.bucket", b, Shape::String)),
                }
                match s3.get("provider") {
                    Some(Value::String(p)) if p == "aws" => {}
                    Some(Value::String(p)) => problems.push(format!(
                        "spec.template.s3.provider is `{}`: EBS snapshots need provider `aws`",
                        truncate(p)
                    )),
                    None | Some(Value::Null) => problems.push("spec.template.s3.provider is missing (the CRD requires it; use `aws`)".into()),
                    Some(p) => problems.push(shape_problem("spec.template.s3.provider", p, Shape::String)),
                }
                match s3.get("prefix") {
                    None => {}
                    Some(Value::String(p)) if p.len() <= 512 && !p.starts_with('/') && !p.contains("..") && !p.chars().any(char::is_control) => {}
                    Some(_) => problems.push("spec.template.s3.prefix must be a relative path string without `..` or control characters".into()),
                }
                for key in ["region", "endpoint", "secretName", "storageClass", "acl", "sse", "path"] {
                    if let Some(v) = s3.get(key)
                        && !v.is_string() {
                            problems.push(shape_problem(&format!("spec.template.s3.{key}"), v, Shape::String));
                        }
                }
                if let Some(v) = s3.get("forcePathStyle")
                    && !v.is_boolean()
                {
                    problems.push(shape_problem("spec.template.s3.forcePathStyle", v, Shape::Boolean));
                }
                if let Some(o) = s3.get("options")
                    && !o.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                {
                    problems.push("spec.template.s3.options must be a list of strings".into());
                }
            }
            Some(_) => problems.push("spec.template.s3 must be an object".into()),
        }
        if let Some(br) = t.get("br") {
            match br {
                Value::Object(m) => {
                    for key in m.keys() {
                        if !BR_FIELDS.contains(&key.as_str()) {
                            problems.push(format!(
                                "spec.template.br.{} is not a field of the federation's BRConfig (brfed sets cluster and clusterNamespace itself)",
                                truncate(key)
                            ));
                        }
                    }
                    if let Some(c) = m.get("concurrency")
                        && c.as_u64().is_none_or(|c| c > u32::MAX as u64)
                    {
                        problems.push(
                            "spec.template.br.concurrency must be a non-negative integer".into(),
                        );
                    }
                    if let Some(o) = m.get("options")
                        && !o.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                    {
                        problems.push("spec.template.br.options must be a list of strings".into());
                    }
                    for key in ["checkRequirements", "sendCredToTikv"] {
                        if let Some(v) = m.get(key)
                            && !v.is_boolean()
                        {
                            problems.push(shape_problem(
                                &format!("spec.template.br.{key}"),
                                v,
                                Shape::Boolean,
                            ));
                        }
                    }
                }
                _ => problems.push("spec.template.br must be an object".into()),
            }
        }
        match t.get("cleanPolicy") {
            None => {}
            Some(Value::String(p)) if ["Retain", "OnFailure", "Delete"].contains(&p.as_str()) => {}
            Some(p) => problems.push(format!(
                "spec.template.cleanPolicy {p} is not one of Retain, OnFailure, Delete"
            )),
        }
        match t.get("calcSizeLevel") {
            None => {}
            Some(Value::String(p))
                if ["all", "full", "incremental", "none"].contains(&p.as_str()) => {}
            Some(p) => problems.push(format!(
                "spec.template.calcSizeLevel {p} is not one of all, full, incremental, none"
            )),
        }
        match t.get("volumeBackupInitJobMaxActiveSeconds") {
            None => {}
            Some(v) if v.as_u64().is_some_and(|s| (1..=86_400).contains(&s)) => {}
            Some(v) => problems.push(format!("spec.template.volumeBackupInitJobMaxActiveSeconds {v} must be an integer from 1 to 86400")),
        }
        // A number outside [0.1, 2.0] is reset to 1 as the original resets it (with a warning:
        // see `warnings`); what is not a number the CRD's schema refuses.
        match t.get("snapshotsDeleteRatio") {
            None => {}
            Some(v) if v.is_number() => {}
            Some(v) => problems.push(format!(
                "spec.template.snapshotsDeleteRatio {v} must be a number (from 0.1 to 2.0)"
            )),
        }
        for (key, want) in [
            ("toolImage", Shape::String),
            ("serviceAccount", Shape::String),
            ("priorityClassName", Shape::String),
            ("env", Shape::List),
            ("tolerations", Shape::List),
            ("imagePullSecrets", Shape::List),
            ("additionalVolumes", Shape::List),
            ("additionalVolumeMounts", Shape::List),
            ("resources", Shape::Object),
            ("automountServiceAccountToken", Shape::Boolean),
        ] {
            if let Some(v) = t.get(key)
                && !want.accepts(v)
            {
                problems.push(shape_problem(&format!("spec.template.{key}"), v, want));
            }
        }
    }

    /// `template.s3.bucket` (validated non-empty).
    pub fn bucket(&self) -> &str {
        self.spec
            .template
            .get("s3")
            .and_then(|s| s.get("bucket"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `template.s3.prefix` (may be empty).
    pub fn prefix(&self) -> &str {
        self.spec
            .template
            .get("s3")
            .and_then(|s| s.get("prefix"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `template.cleanPolicy`, defaulting to `Retain` as the data-plane CRD does.
    pub fn clean_policy(&self) -> &str {
        self.spec
            .template
            .get("cleanPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Retain")
    }

    /// Snapshot deletions per second each data plane's clean job makes: `snapshotsDeleteRatio`
    /// when it is from 0.1 to 2.0, else 1, as the original resets it when it builds a member
    /// (`buildBackupMember`); absent reads as 0 there, so 1 as well.
    pub fn snapshots_delete_ratio(&self) -> f64 {
        let given = self.spec.template.get("snapshotsDeleteRatio");
        given
            .and_then(Value::as_f64)
            .filter(|r| (DELETE_RATIO_MIN..=DELETE_RATIO_MAX).contains(r))
            .unwrap_or(DELETE_RATIO_DEFAULT)
    }

    /// What the request asks that brfed does otherwise, as the original does, said so that a
    /// user sees it (the CLI prints these; the start step logs them): today, a
    /// `snapshotsDeleteRatio` outside [0.1, 2.0].
    pub fn warnings(&self) -> Vec<String> {
        let given = self.spec.template.get("snapshotsDeleteRatio");
        match given.and_then(Value::as_f64) {
            Some(r) if r != self.snapshots_delete_ratio() => vec![format!(
                "spec.template.snapshotsDeleteRatio {r} is outside {DELETE_RATIO_MIN} to \
                 {DELETE_RATIO_MAX}: the members get {DELETE_RATIO_DEFAULT}, as the original resets it"
            )],
            _ => Vec::new(),
        }
    }

    /// S3 prefix of the member in `k8s_cluster_name`.
    pub fn member_prefix(&self, k8s_cluster_name: &str) -> String {
        names::member_prefix(self.prefix(), k8s_cluster_name)
    }
}

/// One place a stack may keep backups: a bucket and a folder of it (ending in `/`; empty: the
/// whole bucket, which the template never gives, the local world does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLocation {
    /// The bucket.
    pub bucket: String,
    /// The folder every backup prefix there lies under.
    pub prefix: String,
}

impl BackupLocation {
    /// Whether `prefix` lies under this folder, and is not the folder itself.
    fn holds(&self, prefix: &str) -> bool {
        prefix.starts_with(&self.prefix) && prefix.len() > self.prefix.len()
    }
}

impl std::fmt::Display for BackupLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Where a stack may keep backups: its template parameters `BackupBucketName`/`BackupPrefix`
/// and the optional `BackupBucketName2`/`BackupPrefix2`, `BackupBucketName3`/`BackupPrefix3`,
/// given to the functions as `BRFED_BACKUP_LOCATIONS` (`bucket/folder/`, comma-separated): the
/// only places its roles may read and delete backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLocations(Vec<BackupLocation>);

impl BackupLocations {
    /// The locations of `text`: `bucket/folder/` entries separated by commas (spaces around an
    /// entry and empty entries ignored; a folder ends in `/`, `bucket/` alone is the whole
    /// bucket). `Err` names the entry that is none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut all = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: &str| format!("`{entry}` is no `bucket/folder/`: {why}");
            let (bucket, prefix) = entry
                .strip_prefix("s3://")
                .unwrap_or(entry)
                .split_once('/')
                .ok_or_else(|| bad("no `/` after the bucket"))?;
            if !crate::input::valid_bucket(bucket) {
                return Err(bad("the bucket is not an S3 bucket name"));
            }
            if !prefix.is_empty() && !prefix.ends_with('/') {
                return Err(bad("the folder must end in `/`"));
            }
            if prefix.contains(['*', '?']) {
                return Err(bad("the folder may not hold `*` or `?`"));
            }
            all.push(BackupLocation {
                bucket: bucket.into(),
                prefix: prefix.into(),
            });
        }
        if all.is_empty() {
            return Err(format!("`{text}` names no location"));
        }
        Ok(Self(all))
    }

    /// The locations, in the order given.
    pub fn all(&self) -> &[BackupLocation] {
        &self.0
    }

    /// `BucketNotAllowed` unless `prefix` in `bucket` lies under one of the folders the stack
    /// has in that bucket (S3 would deny the stack's roles anywhere else: said here, before
    /// anything). `what` names the input's field (`spec.template.s3`).
    pub fn check(&self, what: &str, bucket: &str, prefix: &str) -> Result<(), StepError> {
        let list = || {
            self.0
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut folders = self.0.iter().filter(|l| l.bucket == bucket).peekable();
        if folders.peek().is_none() {
            return Err(StepError::BucketNotAllowed(format!(
                "{what}.bucket `{bucket}`: this stack keeps backups only in {} (its \
                 BackupBucketName/BackupPrefix parameters, up to 3; docs/deploy.md, \
                 \"Backup buckets and folders\")",
                list()
            )));
        }
        if folders.any(|l| l.holds(prefix)) {
            return Ok(());
        }
        Err(StepError::BucketNotAllowed(format!(
            "{what}.prefix `{prefix}` in `{bucket}`: this stack keeps backups only under {} \
             (its BackupBucketName/BackupPrefix parameters; docs/deploy.md, \"Backup buckets and folders\")",
            list()
        )))
    }

    /// [`Self::check`] of a backup's `spec.template.s3`.
    pub fn check_backup(&self, req: &BackupRequest) -> Result<(), StepError> {
        self.check("spec.template.s3", req.bucket(), req.prefix())
    }
}

/// The JSON types of the input, level by level, before serde reads it: serde would take a list
/// for a struct (positionally) and names no field in its type errors.
fn check_shapes(top: &Map<String, Value>) -> Result<(), StepError> {
    check_fields(
        "",
        top,
        &[
            ("apiVersion", Shape::String),
            ("kind", Shape::String),
            ("name", Shape::String),
            ("namespace", Shape::String),
            ("skipGC", Shape::Boolean),
            ("metadata", Shape::Object),
            ("spec", Shape::Object),
            ("options", Shape::Object),
        ],
    )?;
    if let Some(Value::Object(meta)) = top.get("metadata") {
        check_fields(
            "metadata",
            meta,
            &[
                ("name", Shape::String),
                ("namespace", Shape::String),
                ("labels", Shape::Object),
                ("annotations", Shape::Object),
            ],
        )?;
        for field in ["labels", "annotations"] {
            if let Some(Value::Object(pairs)) = meta.get(field) {
                for (k, v) in pairs {
                    if !v.is_string() {
                        return Err(shape_error(
                            &format!("metadata.{field}.{}", truncate(k)),
                            v,
                            Shape::String,
                        ));
                    }
                }
            }
        }
    }
    if let Some(Value::Object(spec)) = top.get("spec") {
        check_fields(
            "spec",
            spec,
            &[("clusters", Shape::List), ("template", Shape::Object)],
        )?;
        if let Some(Value::Array(entries)) = spec.get("clusters") {
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("spec.clusters[{i}]");
                let Value::Object(entry) = entry else {
                    return Err(shape_error(&at, entry, Shape::Object));
                };
                check_fields(
                    &at,
                    entry,
                    &[
                        ("k8sClusterName", Shape::String),
                        ("tcName", Shape::String),
                        ("tcNamespace", Shape::String),
                    ],
                )?;
            }
        }
    }
    if let Some(Value::Object(options)) = top.get("options") {
        check_option_fields(options)?;
    }
    Ok(())
}

fn check_option_fields(options: &Map<String, Value>) -> Result<(), StepError> {
    check_fields(
        "options",
        options,
        &[
            ("phaseTimeoutSeconds", Shape::Seconds),
            ("deadlineSeconds", Shape::Seconds),
            ("pollSeconds", Shape::Seconds),
            ("observeMode", Shape::String),
        ],
    )
}

/// Parses brfed's `options` of a backup (as a schedule gives them for its ticks' backups): an
/// object of known fields of the right shapes. Their values are checked by
/// [`BackupRequest::validate`].
pub fn parse_options(value: Value) -> Result<Options, StepError> {
    let Value::Object(map) = &value else {
        return Err(shape_error("options", &value, Shape::Object));
    };
    check_option_fields(map)?;
    serde_json::from_value(value).map_err(|e| type_error("options", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::EVENTS_PER_POLL_LOOP;
    use crate::input::HISTORY_EVENTS_RESERVED;

    const YAML: &str = r#"
apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackup
metadata:
  name: bk1
  namespace: br
  annotations: {iam.amazonaws.com/role: "arn:aws:iam::1:role/x"}
spec:
  clusters:
  - {k8sClusterName: dp1, tcName: basic, tcNamespace: tidb}
  - {k8sClusterName: dp2, tcName: basic, tcNamespace: tidb}
  template:
    br: {sendCredToTikv: false}
    s3: {provider: aws, region: us-west-2, bucket: brfed-backups, prefix: tidb-prod}
    toolImage: pingcap/br:v7.5.1
    cleanPolicy: Delete
"#;

    fn known() -> HashSet<String> {
        ["dp1", "dp2", "dp3"]
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_originals_yaml_is_accepted_as_is() {
        let r = BackupRequest::from_text(YAML).unwrap();
        r.validate(Some(&known())).unwrap();
        assert_eq!(r.name(), "bk1");
        assert_eq!(r.metadata.namespace, "br");
        assert_eq!(r.bucket(), "brfed-backups");
        assert_eq!(r.member_prefix("dp2"), "tidb-prod-dp2");
        assert_eq!(r.clean_policy(), "Delete");
        assert_eq!(r.options.observe_mode, ObserveMode::Watch);
    }

    #[test]
    fn a_spec_with_a_name_is_accepted() {
        let v = serde_json::json!({"name": "bk2", "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "a", "tcNamespace": "b"}],
            "template": {"s3": {"provider": "aws", "bucket": "bkt"}}}, "options": {"observeMode": "poll", "pollSeconds": 9}});
        let r = BackupRequest::from_value(v).unwrap();
        r.validate(Some(&known())).unwrap();
        assert_eq!(r.metadata.namespace, "default");
        assert_eq!(r.options.observe_mode, ObserveMode::Poll);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let v = serde_json::json!({"metadata": {"name": "bk"}, "spec": {"clusters": [
            {"k8sClusterName": "dp1", "tcName": "a", "tcNamespace": "b"},
            {"k8sClusterName": "dp1", "tcName": "a", "tcNamespace": "b"},
            {"k8sClusterName": "nope", "tcName": "", "tcNamespace": "b"}],
            "template": {"cleanPolicy": "Sometimes", "calcSizeLevel": "x", "bogus": 1}}});
        let err = BackupRequest::from_value(v)
            .unwrap()
            .validate(Some(&known()))
            .unwrap_err();
        let StepError::InvalidSpec(msg) = err else {
            panic!("wrong error")
        };
        for needle in [
            "appears twice",
            "not a known data plane",
            "tcName is empty",
            "s3 is missing",
            "cleanPolicy",
            "calcSizeLevel",
            "bogus",
        ] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
    }

    #[test]
    fn empty_clusters_and_long_names_are_refused() {
        let v = serde_json::json!({"metadata": {"name": "a".repeat(60)}, "spec": {"clusters": [], "template": {"s3": {"provider": "aws", "bucket": "bkt"}}}});
        let StepError::InvalidSpec(msg) = BackupRequest::from_value(v)
            .unwrap()
            .validate(None)
            .unwrap_err()
        else {
            panic!()
        };
        assert!(msg.contains("clusters is empty"));
        assert!(msg.contains("too long"));
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_named_errors() {
        for v in [
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"clusters": "dp1"}}),
            serde_json::json!({"metadata": {"name": "x"}, "spec": {"clusters": [], "extra": 1}}),
            serde_json::json!({"kind": "Backup", "metadata": {"name": "x"}, "spec": {}}),
            serde_json::json!({"metadata": {"name": "x"}}),
            serde_json::json!([1, 2]),
        ] {
            assert!(matches!(
                BackupRequest::from_value(v),
                Err(StepError::InvalidSpec(_))
            ));
        }
    }

    #[test]
    fn the_poll_floor_keeps_polling_until_the_deadline_within_the_history() {
        assert_eq!(min_poll_seconds(21_600), 9, "the default 6 h deadline");
        assert_eq!(min_poll_seconds(MAX_DEADLINE_SECONDS), 34);
        assert_eq!(min_poll_seconds(1), 1);
        for deadline in [60, 3600, 21_600, 50_000, MAX_DEADLINE_SECONDS] {
            let floor = min_poll_seconds(deadline);
            // One loop per pollSeconds until the deadline, plus one more look per wait.
            let events = (deadline.div_ceil(floor) + 5) * EVENTS_PER_POLL_LOOP;
            assert!(
                events + HISTORY_EVENTS_RESERVED <= HISTORY_EVENT_LIMIT + 5 * EVENTS_PER_POLL_LOOP,
                "{deadline}: {events}"
            );
            assert!(
                (deadline / (floor - 1).max(1)) * EVENTS_PER_POLL_LOOP
                    > HISTORY_EVENT_LIMIT - HISTORY_EVENTS_RESERVED
                    || floor == 1,
                "{deadline}: {floor} is the least that fits"
            );
        }
        let with = |options: Value| {
            let mut v = serde_json::to_value(BackupRequest::from_text(YAML).unwrap()).unwrap();
            v["options"] = options;
            BackupRequest::from_value(v)
                .unwrap()
                .validate(Some(&known()))
        };
        with(serde_json::json!({"observeMode": "poll", "pollSeconds": 9})).unwrap();
        with(serde_json::json!({"observeMode": "poll", "pollSeconds": 30})).unwrap();
        let Err(StepError::InvalidSpec(msg)) =
            with(serde_json::json!({"observeMode": "poll", "pollSeconds": 1}))
        else {
            panic!("pollSeconds 1 accepted");
        };
        assert!(
            msg.contains("options.pollSeconds 1 is too short for options.deadlineSeconds 21600")
                && msg.contains("at least 9"),
            "{msg}"
        );
        // The floor follows the deadline, in watch mode too (the mode may be changed later).
        let Err(StepError::InvalidSpec(msg)) =
            with(serde_json::json!({"deadlineSeconds": 82_800, "pollSeconds": 30}))
        else {
            panic!("pollSeconds 30 accepted with a 23 h deadline");
        };
        assert!(msg.contains("at least 34"), "{msg}");
        with(serde_json::json!({"deadlineSeconds": 3600, "pollSeconds": 2})).unwrap();
    }

    #[test]
    fn a_poll_loop_of_the_state_machine_is_the_events_counted() {
        let asl: Value = serde_json::from_str(include_str!(
            "../../../../statemachines/volume-backup.asl.json"
        ))
        .unwrap();
        let states = asl["States"].as_object().unwrap();
        // History events per state type: Task (entered, Lambda scheduled, started, succeeded,
        // exited), Choice and Wait (entered, exited).
        let events = |name: &str| match states[name]["Type"].as_str() {
            Some("Task") => 5,
            Some("Choice") | Some("Wait") => 2,
            other => panic!("{name}: {other:?} in a poll loop"),
        };
        let mut loops = 0;
        for (name, state) in states {
            if state["Type"] != "Wait" || state.get("SecondsPath").is_none() {
                continue;
            }
            // Wait -> observe Task -> Choice -> back to this Wait.
            let task = state["Next"].as_str().unwrap();
            let choice = states[task]["Next"].as_str().unwrap();
            let back = states[choice]["Choices"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["Next"] == name.as_str());
            assert!(back, "{name}: the loop does not come back");
            assert_eq!(
                events(name) + events(task) + events(choice),
                EVENTS_PER_POLL_LOOP,
                "{name}"
            );
            loops += 1;
        }
        assert_eq!(loops, 5, "the five waits of a backup");
        assert_eq!(asl["TimeoutSeconds"], 86_400);
    }

    #[test]
    fn scheduled_by_is_read_beside_volume_backup_only_and_checked() {
        let vb = serde_json::to_value(BackupRequest::from_text(YAML).unwrap()).unwrap();
        let by = serde_json::json!({"namespace": "br", "name": "bk1"});
        let mut named = vb.clone();
        named["metadata"]["name"] = Value::from("bk1-2026-01-01t00-00-00");
        let r = BackupRequest::from_value(
            serde_json::json!({"volumeBackup": named, "scheduledBy": by}),
        )
        .unwrap();
        r.validate(Some(&known())).unwrap();
        assert_eq!(
            r.scheduled_by,
            Some(ScheduledBy {
                namespace: "br".into(),
                name: "bk1".into()
            })
        );
        // Round trip through the execution input.
        assert_eq!(
            BackupRequest::from_value(r.execution_input().unwrap()).unwrap(),
            r
        );
        assert_eq!(
            BackupRequest::from_value(serde_json::to_value(&r).unwrap())
                .unwrap()
                .scheduled_by,
            None,
            "serialised alone, a request carries no schedule"
        );
        // Not a field of a VolumeBackup: a user's file cannot carry it.
        let mut inside = vb.clone();
        inside["scheduledBy"] = by.clone();
        let err = BackupRequest::from_value(inside).unwrap_err();
        assert!(err.to_string().contains("scheduledBy"), "{err}");
        for (bad, needle) in [
            (serde_json::json!("br/bk1"), "scheduledBy must be an object"),
            (serde_json::json!({"namespace": "br"}), "scheduledBy"),
            (
                serde_json::json!({"namespace": "br", "name": "bk1", "uid": 1}),
                "unknown field",
            ),
        ] {
            let err = BackupRequest::from_value(
                serde_json::json!({"volumeBackup": named, "scheduledBy": bad}),
            )
            .unwrap_err();
            assert_eq!(err.name(), "InvalidSpec");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
        for (by, needle) in [
            (
                serde_json::json!({"namespace": "other", "name": "bk1"}),
                "is not the backup's namespace",
            ),
            (
                serde_json::json!({"namespace": "br", "name": "daily"}),
                "are named `daily-{tick}`",
            ),
            (
                serde_json::json!({"namespace": "br", "name": "Bk1"}),
                "is not a schedule name",
            ),
        ] {
            let err = BackupRequest::from_value(
                serde_json::json!({"volumeBackup": named, "scheduledBy": by}),
            )
            .unwrap()
            .validate(Some(&known()))
            .unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn backup_locations_read_as_the_template_writes_them_and_refuse_what_is_no_folder() {
        let l = BackupLocations::parse(" data/tidb/ ,s3://second/a/b/,,whole/").unwrap();
        let all: Vec<String> = l.all().iter().map(ToString::to_string).collect();
        assert_eq!(all, ["s3://data/tidb/", "s3://second/a/b/", "s3://whole/"]);
        // the whole bucket holds any prefix but the empty one
        assert!(l.check("s", "whole", "x/y").is_ok());
        assert_eq!(
            l.check("s", "whole", "").unwrap_err().name(),
            "BucketNotAllowed"
        );
        assert!(l.check("s", "second", "a/b/c").is_ok());
        assert!(l.check("s", "second", "a/bc").is_err());
        for (bad, says) in [
            ("", "names no location"),
            (" , ", "names no location"),
            ("data", "no `/` after the bucket"),
            ("data/tidb", "must end in `/`"),
            ("Data/tidb/", "not an S3 bucket name"),
            ("data/*/", "may not hold"),
            ("data/tidb/,x/", "not an S3 bucket name"),
        ] {
            let err = BackupLocations::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
