//! The AWS template (`infra/aws/template.yaml`) is data checked here against the workspace:
//! every function crate is deployed as a function named after it, every ASL placeholder is
//! supplied by its state machine's substitutions and nothing extra is, the function roles stay
//! narrow, the abort rule reaches `backup-abort`, the retention sweep rule reaches
//! `retention-sweep`, and the CLI's schedule rules may invoke `schedule-tick`. The ownership
//! model's IAM half (`docs/safety.md`, "IAM") is checked too: tag conditions on every snapshot
//! and volume deletion and every tagging, S3 grants per catalog collection and under prefixes
//! that end in `/`, a required `BackupPrefix` that is one folder, no execution data in the state
//! machines' logs. No network: the template is only parsed.
//!
//! The template is written with long-form intrinsics (`Fn::Sub:`), but short-form tags (`!Sub`)
//! are read too, turned into the same long form, so either style passes.
//!
//! One test binary (`cargo test -p brfed-core --test template`), one file per topic; this file
//! holds the readers of the template and of the workspace that the topics share:
//! - `functions.rs`: every crate deployed as its function, runtime, configuration, limits;
//! - `state_machines.rs`: placeholders and substitutions, the state machines' roles;
//! - `logs.rs`: log groups and retention, no execution data in the logs;
//! - `roles.rs`: the function roles stay narrow; tag conditions on deletions and tagging;
//! - `s3.rs`: S3 grants per catalog collection and under folders, `BackupPrefix`, the second
//!   and third backup locations;
//! - `rules.rs`: the abort, settle-check, sweep and schedule rules and their permissions;
//! - `safety_net.rs`: retries, the dead-letter queue, alarms, as in the local world;
//! - `policy_scanner.rs`: the checks checkov skips, each with its reason;
//! - `dashboard.rs`: the dashboard graphs what the functions write, every alarm, state machine
//!   and function.

mod dashboard;
mod functions;
mod logs;
mod policy_scanner;
mod roles;
mod rules;
mod s3;
mod safety_net;
mod state_machines;

use serde_yaml::{Mapping, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let path = root().join("infra/aws/template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let raw: Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    long_form(raw)
}

/// `!Ref X` → `{Ref: X}`, `!GetAtt A.B` → `{Fn::GetAtt: [A, B]}`, `!Condition C` →
/// `{Condition: C}`, any other `!F x` → `{Fn::F: x}`; recursively.
fn long_form(v: Value) -> Value {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            let inner = long_form(t.value);
            let (key, value) = match (name.as_str(), inner) {
                ("Ref", x) => ("Ref".to_string(), x),
                ("Condition", x) => ("Condition".to_string(), x),
                ("GetAtt", Value::String(s)) => {
                    let (res, attr) = s
                        .split_once('.')
                        .unwrap_or_else(|| panic!("!GetAtt {s} has no attribute"));
                    (
                        "Fn::GetAtt".to_string(),
                        Value::Sequence(vec![res.into(), attr.into()]),
                    )
                }
                (f, x) => (format!("Fn::{f}"), x),
            };
            let mut m = Mapping::new();
            m.insert(key.into(), value);
            Value::Mapping(m)
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(long_form).collect()),
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, v)| (long_form(k), long_form(v)))
                .collect(),
        ),
        other => other,
    }
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .expect("the template has Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect()
}

fn of_type<'a>(t: &'a Value, ty: &str) -> Vec<(String, &'a Value)> {
    resources(t)
        .into_iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .collect()
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(!r.is_null(), "the template has no resource {id}");
    r
}

/// Directories under `functions/` with a `src/main.rs`: the function crates (named like their
/// directory; `infra/local/deploy.py` refuses any other).
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/main.rs").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// `backup-resume-gc` → `BackupResumeGc`, as the ASL placeholders spell crate names.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .unwrap()
                .to_uppercase()
                .chain(c)
                .collect::<String>()
        })
        .collect()
}

/// The string of `{Fn::Sub: "..."}` or `{Fn::Sub: ["...", {...}]}`.
fn sub_text(v: &Value) -> Option<&str> {
    let s = &v["Fn::Sub"];
    s.as_str().or_else(|| s.get(0).and_then(Value::as_str))
}

/// `X` of `{Fn::GetAtt: [X, attr]}`.
fn get_att<'a>(v: &'a Value, attr: &str) -> Option<&'a str> {
    let g = v["Fn::GetAtt"].as_sequence()?;
    (g.len() == 2 && g[1].as_str() == Some(attr)).then(|| g[0].as_str())?
}

fn ref_of(v: &Value) -> Option<&str> {
    v["Ref"].as_str()
}

/// One value or a list of them, as IAM writes `Action` and `Resource`.
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The source of `functions/adapters/src/signals.rs` (the metric names and dimension sets the
/// alarms and the dashboard must match).
fn signals_rs() -> String {
    let path = root().join("functions/adapters/src/signals.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `Resource` of a statement, one or a list; an `Fn::If` element counts with both branches,
/// `AWS::NoValue` with none.
fn statement_resources(s: &Value) -> Vec<&Value> {
    one_or_many(&s["Resource"])
        .into_iter()
        .flat_map(|r| match r["Fn::If"].as_sequence() {
            Some(branches) => branches[1..].iter().collect(),
            None => vec![r],
        })
        .filter(|r| ref_of(r) != Some("AWS::NoValue"))
        .collect()
}

/// What CloudFormation makes of a string-valued expression (`Ref` of a parameter, `Fn::Sub`,
/// `Fn::If`) given the parameters' values; `None` for anything else.
fn evaluate(t: &Value, params: &[(&str, &str)], v: &Value) -> Option<String> {
    if let Some(text) = v.as_str() {
        return Some(text.into());
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    if let Some(name) = ref_of(v) {
        return param(name);
    }
    if let Some(branches) = v["Fn::If"].as_sequence() {
        let condition = &t["Conditions"][branches[0].as_str()?];
        let pick = if holds(t, params, condition)? { 1 } else { 2 };
        return evaluate(t, params, &branches[pick]);
    }
    let text = sub_text(v)?;
    let vars = &v["Fn::Sub"][1];
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let end = rest[i..].find('}')? + i;
        let name = &rest[i + 2..end];
        out.push_str(&rest[..i]);
        out.push_str(&match vars.get(name) {
            Some(var) => evaluate(t, params, var)?,
            None => param(name)?,
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether a condition (or a rule's assertion) holds given the parameters' values.
fn holds(t: &Value, params: &[(&str, &str)], c: &Value) -> Option<bool> {
    let args = |f: &str| c[f].as_sequence();
    if let Some(a) = args("Fn::Equals") {
        return Some(evaluate(t, params, &a[0])? == evaluate(t, params, &a[1])?);
    }
    if let Some(a) = args("Fn::Not") {
        return holds(t, params, &a[0]).map(|b| !b);
    }
    for (f, all) in [("Fn::And", true), ("Fn::Or", false)] {
        if let Some(a) = args(f) {
            let each: Vec<bool> = a
                .iter()
                .map(|x| holds(t, params, x))
                .collect::<Option<_>>()?;
            return Some(if all {
                each.iter().all(|b| *b)
            } else {
                each.iter().any(|b| *b)
            });
        }
    }
    if let Some(name) = c["Condition"].as_str() {
        return holds(t, params, &t["Conditions"][name]);
    }
    None
}

/// Every statement of a role's inline policies; both branches of an `Fn::If` count.
fn statements(role: &Value) -> Vec<&Value> {
    fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        if let Some(branches) = v["Fn::If"].as_sequence() {
            for b in &branches[1..] {
                flatten(b, out);
            }
        } else if ref_of(v) != Some("AWS::NoValue") {
            out.push(v);
        }
    }
    let mut out = Vec::new();
    for s in policy_statements(role) {
        flatten(s, &mut out);
    }
    out
}

/// The statements of a role's inline policies as written: a conditional one is its `Fn::If`.
fn policy_statements(role: &Value) -> Vec<&Value> {
    one_or_many(&role["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| one_or_many(&p["PolicyDocument"]["Statement"]))
        .collect()
}

/// The function resource of each crate: `<Camel>Function`.
fn function_id(krate: &str) -> String {
    format!("{}Function", camel(krate))
}

fn state_machine_of<'a>(t: &'a Value, asl_file: &str) -> (String, &'a Value) {
    let want = format!("../../statemachines/{asl_file}");
    let found: Vec<_> = of_type(t, "AWS::StepFunctions::StateMachine")
        .into_iter()
        .filter(|(_, r)| r["Properties"]["DefinitionS3Location"].as_str() == Some(want.as_str()))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one state machine must be defined by {want}"
    );
    found.into_iter().next().unwrap()
}

/// Every ASL file of `statemachines/` with its text, its state machine's id and resource.
fn state_machines(t: &Value) -> Vec<(String, String, String, &Value)> {
    asl_files()
        .into_iter()
        .map(|(file, text)| {
            let (id, sm) = state_machine_of(t, &file);
            (file, text, id, sm)
        })
        .collect()
}

/// A state machine's `DefinitionSubstitutions`: placeholder name and value.
fn substitutions(sm: &Value) -> Vec<(&str, &Value)> {
    sm["Properties"]["DefinitionSubstitutions"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str().expect("placeholder names are strings"), v))
        .collect()
}

fn asl_files() -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(root().join("statemachines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".asl.json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

fn main_rs(krate: &str) -> String {
    std::fs::read_to_string(root().join("functions").join(krate).join("src/main.rs")).unwrap()
}

/// The strings of one value or a list of them, in order.
fn strings(v: &Value) -> Vec<&str> {
    one_or_many(v)
        .into_iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

/// The local world's rules, queues and asynchronous invocation settings
/// (`infra/local/rules.json`).
fn local_world() -> serde_json::Value {
    let path = root().join("infra/local/rules.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The local world's first rule that `matches`.
fn local_rule_where(what: &str, matches: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    local_world()["rules"]
        .as_array()
        .expect("infra/local/rules.json has rules")
        .iter()
        .find(|r| matches(r))
        .unwrap_or_else(|| panic!("infra/local/rules.json has no rule {what}"))
        .clone()
}

/// The local world's rule of `function`.
fn local_rule(function: &str) -> serde_json::Value {
    local_rule_where(&format!("for {function}"), |r| {
        r["targets"][0]["function"] == function
    })
}

/// Whether a `lambda:InvokeFunction` permission for `events.amazonaws.com` on `function` (a
/// crate) from this account matches `source`.
fn events_may_invoke(t: &Value, function: &str, source: impl Fn(&Value) -> bool) -> bool {
    of_type(t, "AWS::Lambda::Permission")
        .into_iter()
        .any(|(_, perm)| {
            let q = &perm["Properties"];
            let f = &q["FunctionName"];
            ref_of(f).or_else(|| get_att(f, "Arn")) == Some(function_id(function).as_str())
                && q["Action"].as_str() == Some("lambda:InvokeFunction")
                && q["Principal"].as_str() == Some("events.amazonaws.com")
                && ref_of(&q["SourceAccount"]) == Some("AWS::AccountId")
                && source(&q["SourceArn"])
        })
}

/// Every function crate with its role id and role.
fn function_roles(t: &Value) -> Vec<(String, String, &Value)> {
    function_crates()
        .into_iter()
        .map(|krate| {
            let role_id = role_of(t, &krate).to_string();
            let role = resource(t, &role_id);
            (krate, role_id, role)
        })
        .collect()
}

/// The id of the role of a function crate's function.
fn role_of<'a>(t: &'a Value, krate: &str) -> &'a str {
    let id = function_id(krate);
    get_att(&resource(t, &id)["Properties"]["Role"], "Arn")
        .unwrap_or_else(|| panic!("{id}: Role must be the Arn of a role of the template"))
}

/// The stack's identity as the functions get it (`BRFED_CATALOG_BUCKET`): the value every
/// ownership condition must compare with.
fn stack_identity(t: &Value) -> Value {
    let crates = function_crates();
    let first = crates.iter().next().expect("function crates");
    let v = resource(t, &function_id(first))["Properties"]["Environment"]["Variables"]
        ["BRFED_CATALOG_BUCKET"]
        .clone();
    assert!(!v.is_null(), "{first}: BRFED_CATALOG_BUCKET");
    for krate in &crates {
        assert_eq!(
            resource(t, &function_id(krate))["Properties"]["Environment"]["Variables"]["BRFED_CATALOG_BUCKET"],
            v,
            "{krate}: every function has the same catalog bucket"
        );
    }
    v
}

fn actions_of(s: &Value) -> Vec<&str> {
    one_or_many(&s["Action"])
        .into_iter()
        .map(|a| a.as_str().expect("actions are plain strings"))
        .collect()
}

/// The function crates EventBridge may invoke (a `lambda:InvokeFunction` permission for
/// `events.amazonaws.com`): the ones invoked asynchronously, whose failures nobody waits for.
fn invoked_by_events(t: &Value) -> BTreeSet<String> {
    function_crates()
        .into_iter()
        .filter(|k| events_may_invoke(t, k, |_| true))
        .collect()
}

#[test]
fn the_template_is_plain_cloudformation_that_parses() {
    let t = template();
    assert_eq!(t["AWSTemplateFormatVersion"].as_str(), Some("2010-09-09"));
    assert!(
        t["Transform"].is_null(),
        "no transform: the test reads the resources exactly as CloudFormation creates them"
    );
    assert!(!resources(&t).is_empty());
}

#[test]
fn short_form_tags_read_as_their_long_form() {
    let v = long_form(
        serde_yaml::from_str("a: !Ref X\nb: !GetAtt F.Arn\nc: !Sub \"${X}-y\"\nd: !If [C, 1, 2]")
            .unwrap(),
    );
    assert_eq!(ref_of(&v["a"]), Some("X"));
    assert_eq!(get_att(&v["b"], "Arn"), Some("F"));
    assert_eq!(sub_text(&v["c"]), Some("${X}-y"));
    assert_eq!(v["d"]["Fn::If"][0].as_str(), Some("C"));
}
