//! A corpus of malformed and hostile `VolumeBackup` inputs. Every one must be refused with a
//! named error whose message says what is wrong, must not panic, and, driven through the start
//! step, must be refused before anything is read or written: no member object in any data plane,
//! no call to the catalog at all. The cases are written out in `backup_bad_input/cases.json`
//! (one a line, by section), but for those computed here ([`computed`]).

use brfed_core::StepError;
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::backup_key;
use brfed_core::backup::steps::{Env, StartInput, StartOutput, start};
use brfed_core::input::MAX_INPUT_BYTES;
use brfed_core::testing::{FakePlanes, FakeStore};
use futures::executor::block_on;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

const CATALOG: &str = "catalog";
const EXECUTION: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup:bk";
const INVALID: &str = "InvalidSpec";
const UNKNOWN: &str = "UnknownCluster";

/// The good `VolumeBackup` every JSON case is a variation of, with small chainable edits.
#[derive(Clone)]
struct Doc(Value);

impl Doc {
    fn good() -> Self {
        Self(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1",
            "kind": "VolumeBackup",
            "metadata": {"name": "bk", "namespace": "br", "labels": {"team": "db"}},
            "spec": {
                "clusters": [
                    {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"},
                    {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb"},
                    {"k8sClusterName": "dp3", "tcName": "basic", "tcNamespace": "tidb"}
                ],
                "template": {
                    "s3": {"provider": "aws", "region": "us-west-2", "bucket": "brfed-data", "prefix": "prod"},
                    "br": {"sendCredToTikv": false},
                    "cleanPolicy": "Delete"
                }
            }
        }))
    }

    /// Sets the value at a JSON pointer whose parent exists (an object key or a list index).
    fn set(mut self, pointer: &str, value: Value) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        match self.0.pointer_mut(parent) {
            Some(Value::Object(map)) => {
                map.insert(key.to_string(), value);
            }
            Some(Value::Array(list)) => list[key.parse::<usize>().expect("an index")] = value,
            _ => panic!("no object or list at {parent}"),
        }
        self
    }

    /// Removes the value at a JSON pointer.
    fn remove(mut self, pointer: &str) -> Self {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let map = self
            .0
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("no object at {parent}"));
        map.remove(key);
        self
    }

    fn value(self) -> Value {
        self.0
    }
}

fn good() -> Doc {
    Doc::good()
}

fn cluster(k8s: &str) -> Value {
    json!({"k8sClusterName": k8s, "tcName": "basic", "tcNamespace": "tidb"})
}

/// `[[[ ... ]]]`, `depth` lists deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("junk"), |inner, _| json!([inner]))
}

enum Input {
    Json(Value),
    Yaml(String),
}

struct Case {
    name: String,
    input: Input,
    /// The expected `StepError::name()` from the start step.
    error: &'static str,
    /// A fragment the message must contain.
    says: String,
}

/// Every case: those written out in `backup_bad_input/cases.json` and those computed here.
fn corpus() -> Vec<Case> {
    let mut cases = written();
    cases.extend(computed());
    cases
}

/// One case of `backup_bad_input/cases.json`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    /// What is wrong; unique.
    case: String,
    /// A fragment the message must contain.
    says: String,
    /// The expected error when not `InvalidSpec`.
    error: Option<String>,
    /// YAML text, read with `from_text`.
    yaml: Option<String>,
    /// A whole JSON input (`null` too).
    #[serde(default, deserialize_with = "present")]
    input: Option<Value>,
    /// Else an edit of the good input: these JSON pointers removed, ...
    #[serde(default)]
    remove: Vec<String>,
    /// ... then these set.
    #[serde(default)]
    set: BTreeMap<String, Value>,
}

/// A field that is there, even as `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The cases of `backup_bad_input/cases.json`, by section.
fn written() -> Vec<Case> {
    let sections: BTreeMap<String, Vec<Written>> =
        serde_json::from_str(include_str!("backup_bad_input/cases.json"))
            .expect("backup_bad_input/cases.json: sections of cases");
    sections.into_values().flatten().map(Case::from).collect()
}

impl From<Written> for Case {
    fn from(w: Written) -> Self {
        let edits = !w.remove.is_empty() || !w.set.is_empty();
        let input = match (w.yaml, w.input) {
            (Some(text), None) if !edits => Input::Yaml(text),
            (None, Some(whole)) if !edits => Input::Json(whole),
            (None, None) => {
                let doc = w.remove.iter().fold(good(), |doc, p| doc.remove(p));
                let doc = w.set.into_iter().fold(doc, |doc, (p, v)| doc.set(&p, v));
                Input::Json(doc.value())
            }
            _ => panic!("{}: `yaml`, `input` or an edit, one of them", w.case),
        };
        let error = match w.error.as_deref() {
            None | Some(INVALID) => INVALID,
            Some(UNKNOWN) => UNKNOWN,
            Some(other) => panic!("{}: unknown error {other}", w.case),
        };
        Case {
            name: w.case,
            input,
            error,
            says: w.says,
        }
    }
}

fn refused(name: &str, input: Value, says: &str) -> Case {
    Case {
        name: name.into(),
        input: Input::Json(input),
        error: INVALID,
        says: says.into(),
    }
}

fn yaml(name: &str, text: &str, says: &str) -> Case {
    Case {
        name: name.into(),
        input: Input::Yaml(text.into()),
        error: INVALID,
        says: says.into(),
    }
}

/// The good input with `value` at `pointer`.
fn with(pointer: &str, value: Value) -> Value {
    good().set(pointer, value).value()
}

/// The cases built around the good input, and those too long or too deep to write out.
fn computed() -> Vec<Case> {
    let name = "/metadata/name";
    let bucket = "/spec/template/s3/bucket";
    let huge = "x".repeat(MAX_INPUT_BYTES);
    vec![
        refused(
            "a list at the top level",
            json!([good().value()]),
            "must be an object",
        ),
        refused(
            "an extra field beside volumeBackup",
            json!({"volumeBackup": good().value(), "dryRun": true}),
            "unknown field `dryRun` beside `volumeBackup`",
        ),
        refused(
            "options both beside and inside volumeBackup",
            json!({"volumeBackup": with("/options", json!({"pollSeconds": 5})),
                   "options": {"pollSeconds": 10}}),
            "options",
        ),
        refused(
            "a name so long the init Job name exceeds 63 characters",
            with(name, json!("a".repeat(48))),
            "too long",
        ),
        refused(
            "a name longer than any Kubernetes name",
            with(name, json!("a".repeat(300))),
            "is not a valid Kubernetes name",
        ),
        refused(
            "a label value longer than 63 characters",
            with("/metadata/labels/team", json!("d".repeat(64))),
            "metadata.labels.team",
        ),
        refused(
            "more than 100 clusters",
            with(
                "/spec/clusters",
                (1..=101).map(|i| cluster(&format!("dp{i}"))).collect(),
            ),
            "at most 100",
        ),
        refused(
            "a bucket name of 64 characters",
            with(bucket, json!("b".repeat(64))),
            "is not a valid bucket name",
        ),
        refused(
            "a huge init Job deadline",
            with(
                "/spec/template/volumeBackupInitJobMaxActiveSeconds",
                json!(u64::MAX),
            ),
            "must be an integer from 1 to 86400",
        ),
        refused(
            "a phase timeout too large for a clock",
            with("/options", json!({"phaseTimeoutSeconds": 1_u64 << 62})),
            "options.phaseTimeoutSeconds must be at most 82800",
        ),
        refused(
            "an input larger than 200 KiB",
            with("/metadata/annotations", json!({"note": huge})),
            "more than the 204800 accepted",
        ),
        refused(
            "deeply nested junk in an unknown template field",
            with("/spec/template/junk", nested(1000)),
            "spec.template.junk is not a field",
        ),
        refused(
            "deeply nested junk as the clusters",
            with("/spec/clusters", nested(1000)),
            "spec.clusters[0] must be an object",
        ),
        yaml("a YAML alias bomb", &alias_bomb(), "not YAML or JSON"),
        yaml(
            "YAML nested 10000 lists deep",
            &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            "not YAML or JSON",
        ),
        yaml(
            "YAML text larger than 200 KiB",
            &format!("# {huge}\nkind: VolumeBackup\n"),
            "more than the 204800 accepted",
        ),
        yaml(
            "the original's YAML with a shell command for a name",
            &GOOD_YAML.replace("name: bk", "name: \"bk; rm -rf /\""),
            "metadata.name `bk; rm -rf /` is not a valid Kubernetes name",
        ),
        yaml(
            "the original's YAML with cleanPolicy in lowercase",
            &GOOD_YAML.replace("cleanPolicy: Delete", "cleanPolicy: delete"),
            "cleanPolicy \"delete\" is not one of",
        ),
    ]
}

const GOOD_YAML: &str = "apiVersion: federation.pingcap.com/v1alpha1
kind: VolumeBackup
metadata:
  name: bk
  namespace: br
spec:
  clusters:
  - {k8sClusterName: dp1, tcName: basic, tcNamespace: tidb}
  - {k8sClusterName: dp2, tcName: basic, tcNamespace: tidb}
  template:
    s3: {provider: aws, region: us-west-2, bucket: brfed-data, prefix: prod}
    cleanPolicy: Delete
";

/// Nine levels of aliases, each repeating the one before nine times: 9^9 leaves once expanded.
fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    text
}

/// Runs the start step on three fresh data planes and an empty catalog.
fn run_start(input: Value) -> (Result<StartOutput, StepError>, FakePlanes, FakeStore) {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let env = Env {
        planes: &planes,
        store: &store,
        catalog_bucket: CATALOG,
        observe_budget: Duration::from_secs(1),
        backup_locations: None,
    };
    let out = block_on(start(
        &env,
        StartInput {
            input,
            execution: EXECUTION.into(),
        },
    ));
    (out, planes, store)
}

fn known() -> HashSet<String> {
    ["dp1", "dp2", "dp3"]
        .into_iter()
        .map(String::from)
        .collect()
}

/// Checks one refusal: the error name and a fragment of its message.
fn check_error(
    path: &str,
    got: Result<(), StepError>,
    error: &str,
    says: &str,
) -> Result<(), String> {
    match got {
        Ok(()) => Err(format!("{path}: accepted")),
        Err(e) if e.name() != error => Err(format!("{path}: {} instead of {error}: {e}", e.name())),
        Err(e) if !e.to_string().contains(says) => {
            Err(format!("{path}: message does not say `{says}`: {e}"))
        }
        Err(_) => Ok(()),
    }
}

/// Runs one case; `Err` says how it went wrong.
fn run(case: &Case) -> Result<(), String> {
    match &case.input {
        Input::Yaml(text) => check_error(
            "from_text",
            BackupRequest::from_text(text).and_then(|r| r.validate(Some(&known()))),
            INVALID,
            &case.says,
        ),
        Input::Json(value) => {
            // Parsing and validating alone never knows the registry's verdict, only the problem.
            check_error(
                "from_value",
                BackupRequest::from_value(value.clone()).and_then(|r| r.validate(Some(&known()))),
                INVALID,
                &case.says,
            )?;
            let (out, planes, store) = run_start(value.clone());
            check_error("start", out.map(|_| ()), case.error, &case.says)?;
            if planes.backup_count() != 0 || !planes.log.lock().unwrap().is_empty() {
                return Err(format!(
                    "start: touched a data plane: {:?}",
                    planes.log.lock().unwrap()
                ));
            }
            if store.calls() != 0 {
                return Err(format!("start: called the catalog {} times", store.calls()));
            }
            Ok(())
        }
    }
}

#[test]
fn every_bad_input_is_refused_with_a_named_error_that_says_why_before_any_side_effect() {
    let cases = corpus();
    assert!(cases.len() >= 35, "only {} cases", cases.len());
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        assert!(
            names.insert(case.name.as_str()),
            "case `{}` twice",
            case.name
        );
        let outcome = catch_unwind(AssertUnwindSafe(|| run(case)))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_good_input_the_corpus_varies_is_accepted_and_its_side_effects_are_seen() {
    let (out, planes, store) = run_start(Doc::good().value());
    let out = out.expect("the good input starts");
    assert_eq!(out.backup.members.len(), 3);
    assert_eq!(planes.backup_count(), 1, "the initialize member exists");
    assert!(store.calls() > 0);
    assert!(
        store.get(CATALOG, &backup_key("br", "bk")).is_some(),
        "the catalog document exists"
    );
    let from_yaml = BackupRequest::from_text(GOOD_YAML).expect("the good YAML parses");
    from_yaml.validate(Some(&known())).expect("and is valid");
}

/// A name with dots, as the CRD's schema (a Kubernetes name) lets the original take: the member
/// `fed-{name}`, its init Job and the execution `{namespace}.{name}` are all valid with them (the
/// namespace has no dot, so the first dot still separates the two).
#[test]
fn a_name_with_dots_is_accepted_as_the_original_accepts_it() {
    let (out, planes, store) = run_start(with("/metadata/name", json!("daily.2026-12-05.a")));
    let out = out.expect("a dotted name starts");
    assert_eq!(out.backup.name, "daily.2026-12-05.a");
    assert_eq!(planes.backup_count(), 1, "the initialize member exists");
    assert!(
        store
            .get(CATALOG, &backup_key("br", "daily.2026-12-05.a"))
            .is_some()
    );
    assert_eq!(
        brfed_core::names::execution_name("br", "daily.2026-12-05.a"),
        "br.daily.2026-12-05.a"
    );
}
