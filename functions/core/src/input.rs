//! What every federated input shares: the API version, size and time limits, object metadata and
//! its checks, the JSON shape checks that run before serde, and YAML/JSON document parsing.

use crate::error::StepError;
use crate::names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// API version of the federation objects.
pub const FEDERATION_API_VERSION: &str = "federation.pingcap.com/v1alpha1";

/// Largest accepted input document, in bytes (Step Functions' own limit is 256 KiB).
pub const MAX_INPUT_BYTES: usize = 200 * 1024;

/// Longest overall deadline: below the state machines' 24 h `TimeoutSeconds`, so brfed's own
/// deadline (with teardown) always fires first.
pub const MAX_DEADLINE_SECONDS: u64 = 23 * 3600;

/// Largest number of member clusters.
pub const MAX_CLUSTERS: usize = 100;

/// Step Functions' limit on the events of one execution's history: an execution that reaches
/// it fails.
pub const HISTORY_EVENT_LIMIT: u64 = 25_000;

/// History events of one poll loop of `volume-backup` in `poll` mode: the observe Task
/// (entered, Lambda scheduled, started, succeeded, exited), its Choice (entered, exited) and the
/// `pollSeconds` Wait (entered, exited). Checked against `statemachines/volume-backup.asl.json`
/// by a test.
pub const EVENTS_PER_POLL_LOOP: u64 = 9;

/// History events kept for everything but poll loops: the fixed path (66 events for a backup
/// that never waits, more on the failure path), Lambda retries (3 events each), and the one
/// extra look each of the 5 waits may take: a tenth of [`HISTORY_EVENT_LIMIT`].
pub const HISTORY_EVENTS_RESERVED: u64 = HISTORY_EVENT_LIMIT / 10;

/// The shortest `pollSeconds` for a backup of `deadline_seconds`: poll loops run only until the
/// overall deadline (then every wait ends at its next look), one every `pollSeconds` at most,
/// and they must fit in the history that [`HISTORY_EVENTS_RESERVED`] leaves:
/// `ceil(deadline × 9 / 22,500)`, i.e. at most 2,500 loops: 9 s for the default 6 h deadline,
/// 34 s for the longest (23 h).
pub fn min_poll_seconds(deadline_seconds: u64) -> u64 {
    let budget = HISTORY_EVENT_LIMIT - HISTORY_EVENTS_RESERVED;
    deadline_seconds
        .saturating_mul(EVENTS_PER_POLL_LOOP)
        .div_ceil(budget)
        .max(1)
}

/// Object metadata brfed reads from the input and propagates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Name of the federated backup.
    #[serde(default)]
    pub name: String,
    /// Namespace of the federated backup (control-plane side; default `default`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Copied verbatim onto every member.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Copied verbatim onto every member.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// How the observe step waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ObserveMode {
    /// Kubernetes watch on the members; returns as soon as something happens.
    #[default]
    Watch,
    /// One read per invocation, the state machine waits `pollSeconds` between reads (the
    /// original's 30 s resync, kept as a baseline).
    Poll,
}

pub(crate) fn type_error(what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::InvalidSpec(format!("{what}: {e}"))
}

/// Checks a federated object's metadata: name (a valid Kubernetes name, dots allowed, short enough
/// for the data plane's Job names that start with `job_prefix`), namespace, labels.
pub fn validate_meta(meta: &ObjectMeta, job_prefix: &str, problems: &mut Vec<String>) {
    let name = &meta.name;
    if name.is_empty() {
        problems.push("metadata.name is empty".into());
    } else if !names::is_dns_subdomain(name) {
        problems.push(format!(
            "metadata.name `{}` is not a valid Kubernetes name",
            truncate(name)
        ));
    } else {
        // The data plane derives Job names and puts them in a pod label: the longest is
        // `backup-fed-{name}-init` for a backup and `restore-data-fed-{name}` for a restore.
        let job = if job_prefix == "backup-fed-" {
            names::init_job_name(&names::member_backup_name(name))
        } else {
            format!("{job_prefix}{name}")
        };
        if job.len() > names::MAX_LABEL_VALUE {
            problems.push(format!(
                "metadata.name `{name}` is too long: the data plane's Job `{job}` would be {} characters, the limit is {}",
                job.len(),
                names::MAX_LABEL_VALUE
            ));
        }
    }
    if !names::is_dns_label(&meta.namespace) {
        problems.push(format!(
            "metadata.namespace `{}` is not a valid namespace",
            truncate(&meta.namespace)
        ));
    }
    for (k, v) in meta.labels.iter() {
        if !is_qualified_name(k) {
            problems.push(format!(
                "metadata.labels: `{}` is not a valid label key ({QUALIFIED_NAME_RULE})",
                truncate(k)
            ));
        } else if !is_label_value(v) {
            problems.push(format!(
                "metadata.labels.{k}: `{}` is not a valid label value ({LABEL_VALUE_RULE})",
                truncate(v)
            ));
        }
    }
    for k in meta.annotations.keys() {
        if !is_qualified_name(k) {
            problems.push(format!(
                "metadata.annotations: `{}` is not a valid annotation key ({QUALIFIED_NAME_RULE})",
                truncate(k)
            ));
        }
    }
}

const LABEL_VALUE_RULE: &str =
    "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";
const QUALIFIED_NAME_RULE: &str = "an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/// A label value: empty, or at most 63 alphanumerics, '-', '_', '.', alphanumeric at both ends.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    v.is_empty()
        || (b.len() <= names::MAX_LABEL_VALUE
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain, the name non-empty
/// and shaped like a label value.
fn is_qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, k),
    };
    prefix.is_none_or(names::is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    String,
    Boolean,
    Object,
    List,
    Seconds,
}

impl Shape {
    pub(crate) fn accepts(self, v: &Value) -> bool {
        match self {
            Self::String => v.is_string(),
            Self::Boolean => v.is_boolean(),
            Self::Object => v.is_object(),
            Self::List => v.is_array(),
            Self::Seconds => v.is_u64(),
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Boolean => "a boolean",
            Self::Object => "an object",
            Self::List => "a list",
            Self::Seconds => "a whole number of seconds",
        }
    }
}

/// `{path} must be {shape}, not {what it is}`.
pub(crate) fn shape_problem(path: &str, v: &Value, want: Shape) -> String {
    format!("{path} must be {}, not {}", want.describe(), describe(v))
}

/// What a JSON value is, for messages: its kind for a list or an object, else the value itself.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
        scalar => truncate(&scalar.to_string()),
    }
}

pub(crate) fn shape_error(path: &str, v: &Value, want: Shape) -> StepError {
    StepError::InvalidSpec(shape_problem(path, v, want))
}

/// Checks the fields of `map` that are present against `fields`, stopping at the first wrong one.
pub(crate) fn check_fields(
    path: &str,
    map: &Map<String, Value>,
    fields: &[(&str, Shape)],
) -> Result<(), StepError> {
    for &(field, want) in fields {
        if let Some(v) = map.get(field)
            && !want.accepts(v)
        {
            let at = if path.is_empty() {
                field.to_string()
            } else {
                format!("{path}.{field}")
            };
            return Err(shape_error(&at, v, want));
        }
    }
    Ok(())
}

/// Parses the YAML or JSON text of an input document into JSON: at most [`MAX_INPUT_BYTES`],
/// one document, duplicate keys refused (JSON's parsers keep the last silently), YAML tags of
/// applications (`!secret x`) refused (no JSON meaning). Scalars resolve as `kubectl` reads
/// them (YAML 1.1: `yes` is `true`, `0x1F` is 31).
pub fn parse_document(text: &str) -> Result<Value, StepError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(StepError::InvalidSpec(format!(
            "input is {} bytes, more than the {MAX_INPUT_BYTES} accepted",
            text.len()
        )));
    }
    parse_yaml(text).map_err(|e| StepError::InvalidSpec(format!("not YAML or JSON: {e}")))
}

/// YAML (or JSON) text to JSON with brfed's rules (see [`parse_document`]); the error names
/// the line and column and quotes no input (an input may carry secrets).
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.reject_unsupported_tags = true;
    // `<<` stays a plain key (refused as an unknown field), as brfed has always read it
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_error(&e))
}

/// A YAML error as brfed reports it: its first line (the parser's words and where), never the
/// snippet of input the parser can add (an input may carry secrets).
fn yaml_error(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("unreadable").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match e {
        serde_saphyr::Error::UnsupportedTag { .. } => {
            format!("YAML tags (`!name`) are not accepted: {first}")
        }
        _ => first.to_string(),
    }
}

pub(crate) fn valid_bucket(b: &str) -> bool {
    !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err()
        && (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

pub(crate) fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
