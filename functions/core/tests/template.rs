//! The AWS template (`infra/aws/template.yaml`) is data checked here against the workspace:
//! every function crate is deployed as a function named after it, every ASL placeholder is
//! supplied by its state machine's substitutions and nothing extra is, the function roles stay
//! narrow, the abort rule reaches `backup-abort`, the retention sweep rule reaches
//! `retention-sweep`, and the CLI's schedule rules may invoke `schedule-tick`. No network: the
//! template is only parsed.
//!
//! The template is written with long-form intrinsics (`Fn::Sub:`), but short-form tags (`!Sub`)
//! are read too, turned into the same long form, so either style passes.

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

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let end = after.find('}').expect("an unclosed ${ in an ASL file");
        out.insert(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
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
    for p in one_or_many(&role["Properties"]["Policies"]) {
        for s in one_or_many(&p["PolicyDocument"]["Statement"]) {
            flatten(s, &mut out);
        }
    }
    out
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

/// The EC2 actions a function calls (`functions/adapters/src/ec2_volumes.rs`), by crate: the
/// only EC2 grants a function role may have.
const EC2_CALLS: &[(&str, &str)] = &[
    // Opt-in cleanup of a failed restore's volumes (RestoreVolumeCleanup).
    ("restore-finalize", "ec2:DeleteVolume"),
    ("restore-abort", "ec2:DeleteVolume"),
    // Which volumes are the restore's (`Ec2Volumes::volumes_from_snapshots`, `describe_volume`),
    // and the claim of a member's volumes at VolumeComplete (`restore_volumes::claim`).
    ("restore-finalize", "ec2:DescribeVolumes"),
    ("restore-abort", "ec2:DescribeVolumes"),
    ("restore-observe", "ec2:DescribeVolumes"),
    ("restore-observe", "ec2:CreateTags"),
    ("restore-finalize", "ec2:CreateTags"),
    ("restore-abort", "ec2:CreateTags"),
    // Snapshots of members whose data plane is gone (`delete::delete_snapshots`).
    ("backup-delete-snapshots", "ec2:DeleteSnapshot"),
    // Verifies the snapshots are gone (`Ec2Volumes::existing_snapshots`).
    ("backup-delete-finish", "ec2:DescribeSnapshots"),
    // Tags the members' snapshots with their backup (`orphans::tag_backup_snapshots`).
    ("backup-finalize", "ec2:CreateTags"),
];

/// EC2 actions without resource-level permissions: IAM only matches them with `Resource: "*"`.
/// A statement may grant one of these on `"*"` only when it grants nothing else, so that the
/// `"*"` reaches no action that could be narrowed. Everything else in EC2 must name an ARN.
const EC2_WITHOUT_RESOURCE_LEVEL: &[&str] = &["ec2:DescribeSnapshots", "ec2:DescribeVolumes"];

/// The Step Functions calls of the scheduled functions (`functions/adapters/src/sfn_executions.rs`),
/// by crate: the state machine (its ASL file) whose executions it starts. `Executions::start`
/// asks `DescribeExecution` first (a repeated start is reported as one), and `schedule-tick` also
/// asks it of the last backups; so each gets `states:StartExecution` on that state machine and
/// `states:DescribeExecution` on its executions, and nothing else of Step Functions.
const SFN_CALLS: &[(&str, &str)] = &[
    ("schedule-tick", "volume-backup.asl.json"),
    ("retention-sweep", "volume-backup-delete.asl.json"),
];

/// The crates that put brfed's events on EventBridge (`docs/signals.md`): their `src/main.rs`
/// calls `runtime.signals()` (`functions/adapters/src/emit.rs`) after its step. Exactly these get
/// `events:PutEvents`, alone in its statement, on the default bus only (`BRFED_EVENT_BUS` is left
/// at its default `default`) and only for events of source `brfed` (`events:source`).
const EVENT_EMITTERS: &[&str] = &[
    "backup-finalize",
    "backup-abort",
    "restore-finalize",
    "restore-abort",
    "backup-delete-finish",
];

/// The ARN of the default event bus, as the template spells it.
const DEFAULT_BUS: &str =
    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default";

/// Functions whose timeout is neither an observe's (900 s) nor a short step's (60 s), and why.
const OTHER_TIMEOUTS: &[(&str, u64)] = &[
    // Reads every schedule and its backups from the catalog and may start one deletion each.
    ("retention-sweep", 300),
    // Waits up to the observe budget for a stopped restore's members to settle.
    ("restore-abort", 900),
];

/// How a function crate builds its clients, read from its `src/main.rs`.
#[derive(Debug, PartialEq)]
enum FnRuntime {
    /// `Runtime::load`: kubeconfig, catalog, data planes (every `backup-*`/`restore-*` step).
    Steps,
    /// `SchedulerRuntime::load` (`functions/adapters/src/scheduler.rs`): catalog and Step
    /// Functions only, no kubeconfig.
    Scheduler,
}

fn main_rs(krate: &str) -> String {
    std::fs::read_to_string(root().join("functions").join(krate).join("src/main.rs")).unwrap()
}

fn runtime_of(krate: &str) -> FnRuntime {
    let text = main_rs(krate);
    if text.contains("SchedulerRuntime::load") {
        FnRuntime::Scheduler
    } else if text.contains("Runtime::load") {
        FnRuntime::Steps
    } else {
        panic!(
            "{krate}: src/main.rs loads neither Runtime nor SchedulerRuntime; teach this test its configuration"
        )
    }
}

/// Whether a crate emits brfed's events (`runtime.signals()` in its `src/main.rs`).
fn emits_events(krate: &str) -> bool {
    main_rs(krate).contains(".signals()")
}

/// The crates whose step paces itself against a work budget (`runtime.pacing()`).
fn uses_work_budget(krate: &str) -> bool {
    main_rs(krate).contains(".pacing()")
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
fn every_function_crate_is_a_lambda_function_named_after_it() {
    let t = template();
    for krate in function_crates() {
        let id = function_id(&krate);
        let f = resource(&t, &id);
        assert_eq!(f["Type"].as_str(), Some("AWS::Lambda::Function"), "{id}");
        let p = &f["Properties"];
        assert_eq!(
            sub_text(&p["FunctionName"]),
            Some(format!("${{NamePrefix}}-{krate}").as_str()),
            "{id}: FunctionName must be <NamePrefix>-{krate}"
        );
        assert_eq!(p["Runtime"].as_str(), Some("provided.al2023"), "{id}");
        assert_eq!(p["Handler"].as_str(), Some("bootstrap"), "{id}");
        assert_eq!(
            p["Code"].as_str(),
            Some(format!("lambda/{krate}/bootstrap.zip").as_str()),
            "{id}: Code must be the zip `make package` writes for {krate}"
        );
    }
}

#[test]
fn every_lambda_function_of_the_template_is_a_function_crate() {
    let t = template();
    let crates = function_crates();
    for (id, f) in of_type(&t, "AWS::Lambda::Function") {
        let name = sub_text(&f["Properties"]["FunctionName"])
            .and_then(|n| n.strip_prefix("${NamePrefix}-"))
            .unwrap_or_else(|| panic!("{id}: FunctionName must be ${{NamePrefix}}-<crate>"));
        assert!(
            crates.contains(name),
            "{id} deploys `{name}`, which is no crate under functions/"
        );
        assert_eq!(id, function_id(name));
    }
}

#[test]
fn every_function_gets_its_configuration_from_parameters_and_the_agreed_limits() {
    let t = template();
    let (backup_sm, _) = state_machine_of(&t, "volume-backup.asl.json");
    let (delete_sm, _) = state_machine_of(&t, "volume-backup-delete.asl.json");
    for krate in function_crates() {
        let id = function_id(&krate);
        let f = resource(&t, &id);
        let p = &f["Properties"];
        let env = &p["Environment"]["Variables"];
        assert!(
            !env["BRFED_CATALOG_BUCKET"].is_null(),
            "{id}: BRFED_CATALOG_BUCKET"
        );
        // What each runtime reads at start-up (`FunctionConfig::from_env`,
        // `SchedulerRuntime::load`): a step function without its kubeconfig fails its cold
        // start, and a scheduled function has no business with the data planes, so it gets
        // neither the variable nor the grant to read the kubeconfig.
        match runtime_of(&krate) {
            FnRuntime::Steps => {
                assert_eq!(
                    ref_of(&env["BRFED_KUBECONFIG"]),
                    Some("KubeconfigLocation"),
                    "{id}"
                );
                assert_eq!(
                    ref_of(&env["BRFED_OBSERVE_BUDGET_SECONDS"]),
                    Some("ObserveBudgetSeconds"),
                    "{id}"
                );
            }
            FnRuntime::Scheduler => {
                assert!(
                    env["BRFED_KUBECONFIG"].is_null(),
                    "{id}: a scheduled function needs no kubeconfig"
                );
                assert_eq!(
                    ref_of(&env["BRFED_BACKUP_STATE_MACHINE_ARN"]),
                    Some(backup_sm.as_str()),
                    "{id}"
                );
                assert_eq!(
                    ref_of(&env["BRFED_DELETE_STATE_MACHINE_ARN"]),
                    Some(delete_sm.as_str()),
                    "{id}"
                );
                let role = get_att(&p["Role"], "Arn").unwrap();
                let role_text = serde_yaml::to_string(resource(&t, role)).unwrap();
                assert!(
                    !role_text.contains("KubeconfigLocation"),
                    "{role}: a scheduled function must not read the kubeconfig"
                );
            }
        }
        // An observe step holds a watch for up to the budget, a paced step works for up to
        // its work budget; every other step is short.
        let long = krate.ends_with("-observe") || uses_work_budget(&krate);
        let timeout = OTHER_TIMEOUTS
            .iter()
            .find(|(k, _)| *k == krate)
            .map(|(_, s)| *s)
            .unwrap_or(if long { 900 } else { 60 });
        assert_eq!(p["Timeout"].as_u64(), Some(timeout), "{id}: Timeout");
        assert_eq!(p["MemorySize"].as_u64(), Some(256), "{id}: MemorySize");
        if uses_work_budget(&krate) {
            assert_eq!(
                ref_of(&env["BRFED_WORK_BUDGET_SECONDS"]),
                Some("WorkBudgetSeconds"),
                "{id}: its work budget"
            );
        }
    }
    let budget = &t["Parameters"]["ObserveBudgetSeconds"];
    assert_eq!(budget["Default"].as_u64(), Some(600));
    assert!(
        budget["MaxValue"].as_u64().unwrap() < 900,
        "the observe budget must stay under the observe function's timeout"
    );
    let work = &t["Parameters"]["WorkBudgetSeconds"];
    assert_eq!(work["Default"].as_u64(), Some(780));
    assert!(
        work["MaxValue"].as_u64().unwrap() < 900,
        "the work budget must stay under the paced function's timeout"
    );
}

#[test]
fn every_placeholder_of_every_state_machine_is_supplied_and_nothing_extra() {
    let t = template();
    for (file, text) in asl_files() {
        let (id, sm) = state_machine_of(&t, &file);
        let wanted = placeholders(&text);
        let subs = sm["Properties"]["DefinitionSubstitutions"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let supplied: BTreeSet<String> = subs
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let missing: Vec<_> = wanted.difference(&supplied).collect();
        let extra: Vec<_> = supplied.difference(&wanted).collect();
        assert!(
            missing.is_empty(),
            "{id} ({file}): not supplied: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{id} ({file}): supplied but unused: {extra:?}"
        );
    }
}

#[test]
fn every_function_arn_substitution_is_the_arn_of_the_crate_it_names() {
    let t = template();
    let crates = function_crates();
    for (file, _) in asl_files() {
        let (id, sm) = state_machine_of(&t, &file);
        let subs = sm["Properties"]["DefinitionSubstitutions"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        for (k, v) in &subs {
            let k = k.as_str().unwrap();
            let Some(camel_name) = k.strip_suffix("FunctionArn") else {
                continue;
            };
            let krate = crates
                .iter()
                .find(|c| camel(c) == camel_name)
                .unwrap_or_else(|| panic!("{id}: ${{{k}}} names no function crate"));
            assert_eq!(
                get_att(v, "Arn"),
                Some(function_id(krate).as_str()),
                "{id}: ${{{k}}} must be the Arn of {}",
                function_id(krate)
            );
        }
    }
}

#[test]
fn every_state_machine_role_invokes_exactly_the_functions_its_definition_uses() {
    let t = template();
    for (file, _) in asl_files() {
        let (id, sm) = state_machine_of(&t, &file);
        let p = &sm["Properties"];
        let used: BTreeSet<String> = p["DefinitionSubstitutions"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(_, v)| get_att(v, "Arn"))
            .filter(|r| resource(&t, r)["Type"].as_str() == Some("AWS::Lambda::Function"))
            .map(str::to_string)
            .collect();
        let role_id = get_att(&p["RoleArn"], "Arn")
            .unwrap_or_else(|| panic!("{id}: RoleArn must be the Arn of a role of the template"));
        let mut invoked = BTreeSet::new();
        for s in statements(resource(&t, role_id)) {
            let actions: Vec<_> = one_or_many(&s["Action"])
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                !actions
                    .iter()
                    .any(|a| *a == "*" || a.starts_with("lambda:*")),
                "{role_id}: wildcard action"
            );
            if actions.contains(&"lambda:InvokeFunction") {
                for r in one_or_many(&s["Resource"]) {
                    let f = get_att(r, "Arn").unwrap_or_else(|| {
                        panic!("{role_id}: lambda:InvokeFunction on something not a function of the template: {r:?}")
                    });
                    invoked.insert(f.to_string());
                }
            }
        }
        assert_eq!(
            invoked, used,
            "{role_id} must invoke exactly the functions of {file}"
        );
    }
}

#[test]
fn every_function_has_its_own_role_with_no_wildcard_action_and_no_wildcard_s3_resource() {
    let t = template();
    let mut roles = BTreeSet::new();
    for krate in function_crates() {
        let id = function_id(&krate);
        let role_id = get_att(&resource(&t, &id)["Properties"]["Role"], "Arn")
            .unwrap_or_else(|| panic!("{id}: Role must be the Arn of a role of the template"))
            .to_string();
        assert!(roles.insert(role_id.clone()), "{id} shares {role_id}");
        let role = resource(&t, &role_id);
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "{role_id}: inline policies only, so this test sees every grant"
        );
        let stmts = statements(role);
        assert!(!stmts.is_empty(), "{role_id} grants nothing");
        let mut sfn_granted = BTreeSet::new();
        let mut events_granted = false;
        for s in stmts {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{role_id}");
            assert!(
                s["NotAction"].is_null() && s["NotResource"].is_null(),
                "{role_id}"
            );
            let actions: Vec<&str> = one_or_many(&s["Action"])
                .into_iter()
                .map(|a| a.as_str().expect("actions are plain strings"))
                .collect();
            let sfn = SFN_CALLS
                .iter()
                .find(|(k, _)| *k == krate)
                .map(|(_, file)| *file);
            for a in &actions {
                assert!(
                    *a != "*" && !a.ends_with(":*"),
                    "{role_id}: wildcard action {a}"
                );
                // Only what the functions call: their logs, S3, the EC2 actions listed, and
                // for the scheduled functions the two Step Functions calls.
                assert!(
                    a.starts_with("logs:")
                        || a.starts_with("s3:")
                        || EC2_CALLS.contains(&(krate.as_str(), *a))
                        || (sfn.is_some()
                            && ["states:StartExecution", "states:DescribeExecution"].contains(a))
                        || (*a == "events:PutEvents" && EVENT_EMITTERS.contains(&krate.as_str())),
                    "{role_id}: {krate} does not call {a}"
                );
            }
            if actions.contains(&"events:PutEvents") {
                // brfed's events only: the default bus, source `brfed`, nothing else granted.
                assert_eq!(actions, ["events:PutEvents"], "{role_id}: PutEvents alone");
                let resources = one_or_many(&s["Resource"]);
                assert_eq!(resources.len(), 1, "{role_id}: one bus");
                assert_eq!(
                    sub_text(resources[0]),
                    Some(DEFAULT_BUS),
                    "{role_id}: PutEvents on the default bus only"
                );
                assert_eq!(
                    s["Condition"]["StringEquals"]["events:source"].as_str(),
                    Some("brfed"),
                    "{role_id}: PutEvents of source brfed only"
                );
                events_granted = true;
            }
            if actions.iter().any(|a| a.starts_with("ec2:")) {
                let describe_only = actions
                    .iter()
                    .all(|a| EC2_WITHOUT_RESOURCE_LEVEL.contains(a));
                for r in one_or_many(&s["Resource"]) {
                    if describe_only && r.as_str() == Some("*") {
                        continue;
                    }
                    let arn = r.as_str().or_else(|| sub_text(r)).unwrap_or_default();
                    assert!(arn.starts_with("arn:"), "{role_id}: EC2 resource {r:?}");
                }
            }
            if let Some(file) = sfn
                && actions.iter().any(|a| a.starts_with("states:"))
            {
                // Exactly the one state machine: StartExecution on it, DescribeExecution on its
                // executions (`execution:<name>:*`, which no other machine's name matches).
                let (sm_id, _) = state_machine_of(&t, file);
                let executions = format!(
                    "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:${{NamePrefix}}-{}:*",
                    file.trim_end_matches(".asl.json")
                );
                assert_eq!(
                    actions.len(),
                    1,
                    "{role_id}: one Step Functions action a statement"
                );
                for r in one_or_many(&s["Resource"]) {
                    match actions[0] {
                        "states:StartExecution" => assert_eq!(
                            ref_of(r),
                            Some(sm_id.as_str()),
                            "{role_id}: StartExecution on {sm_id} only"
                        ),
                        _ => assert_eq!(
                            sub_text(r),
                            Some(executions.as_str()),
                            "{role_id}: DescribeExecution on the executions of {sm_id} only"
                        ),
                    }
                    sfn_granted.insert(actions[0]);
                }
            }
            if actions.iter().any(|a| a.starts_with("s3:")) {
                for r in one_or_many(&s["Resource"]) {
                    let arn = r
                        .as_str()
                        .or_else(|| sub_text(r))
                        .unwrap_or_else(|| panic!("{role_id}: S3 resource {r:?}"));
                    let path = arn
                        .strip_prefix("arn:${AWS::Partition}:s3:::")
                        .or_else(|| arn.strip_prefix("arn:aws:s3:::"))
                        .unwrap_or_else(|| panic!("{role_id}: S3 resource {arn} is no S3 ARN"));
                    assert!(
                        !path.is_empty() && !path.starts_with('*'),
                        "{role_id}: S3 resource {arn} is any bucket"
                    );
                    assert!(!path.ends_with("}/*"), "{role_id}: {arn} is a whole bucket");
                }
            }
        }
        assert_eq!(
            events_granted,
            EVENT_EMITTERS.contains(&krate.as_str()),
            "{role_id}: events:PutEvents exactly for the crates that emit events"
        );
        if SFN_CALLS.iter().any(|(k, _)| *k == krate) {
            assert_eq!(
                sfn_granted,
                BTreeSet::from(["states:DescribeExecution", "states:StartExecution"]),
                "{role_id}: {krate} starts and describes executions"
            );
        }
    }
}

#[test]
fn the_event_emitters_are_the_crates_whose_main_emits_signals() {
    let emitting: BTreeSet<String> = function_crates()
        .into_iter()
        .filter(|k| emits_events(k))
        .collect();
    let listed: BTreeSet<String> = EVENT_EMITTERS.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        emitting, listed,
        "EVENT_EMITTERS must list exactly the crates that call runtime.signals()"
    );
}

#[test]
fn every_function_and_state_machine_logs_to_its_own_log_group_with_the_retention_parameter() {
    let t = template();
    let check = |lg_id: &str, name: &str| {
        let lg = resource(&t, lg_id);
        assert_eq!(lg["Type"].as_str(), Some("AWS::Logs::LogGroup"), "{lg_id}");
        assert_eq!(
            ref_of(&lg["Properties"]["RetentionInDays"]),
            Some("LogRetentionDays"),
            "{lg_id}: retention"
        );
        assert_eq!(
            sub_text(&lg["Properties"]["LogGroupName"]),
            Some(name),
            "{lg_id}"
        );
    };
    for krate in function_crates() {
        let id = function_id(&krate);
        let lg = ref_of(&resource(&t, &id)["Properties"]["LoggingConfig"]["LogGroup"])
            .unwrap_or_else(|| {
                panic!("{id}: LoggingConfig.LogGroup must be a log group of the template")
            });
        check(lg, &format!("/aws/lambda/${{NamePrefix}}-{krate}"));
        // JSON: Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON and `lambda::init_tracing` writes one
        // flat JSON object per line, with the execution and cluster (docs/signals.md).
        assert_eq!(
            resource(&t, &id)["Properties"]["LoggingConfig"]["LogFormat"].as_str(),
            Some("JSON"),
            "{id}: LoggingConfig.LogFormat"
        );
    }
    for (file, _) in asl_files() {
        let (id, sm) = state_machine_of(&t, &file);
        let dest = &sm["Properties"]["LoggingConfiguration"]["Destinations"][0];
        let lg = get_att(&dest["CloudWatchLogsLogGroup"]["LogGroupArn"], "Arn")
            .unwrap_or_else(|| panic!("{id}: logs to no log group of the template"));
        let stem = file.trim_end_matches(".asl.json");
        check(
            lg,
            &format!("/aws/vendedlogs/states/${{NamePrefix}}-{stem}"),
        );
    }
}

#[test]
fn the_abort_rule_sends_aborted_timed_out_and_failed_backups_to_backup_abort() {
    let t = template();
    let (sm_id, _) = state_machine_of(&t, "volume-backup.asl.json");
    let rules: Vec<_> = of_type(&t, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| {
            one_or_many(&r["Properties"]["EventPattern"]["detail"]["stateMachineArn"])
                .into_iter()
                .any(|a| ref_of(a) == Some(sm_id.as_str()))
        })
        .collect();
    assert_eq!(rules.len(), 1, "one rule on the executions of {sm_id}");
    let (rule_id, rule) = &rules[0];
    let p = &rule["Properties"];

    // The same pattern as the local world's rule, so the two cannot drift apart.
    let local: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("infra/local/rules.json")).unwrap(),
    )
    .unwrap();
    let local_rule = local["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["targets"][0]["function"] == "backup-abort")
        .expect("infra/local/rules.json has the backup-abort rule");
    let strings = |v: &Value| -> BTreeSet<String> {
        one_or_many(v)
            .into_iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let local_strings = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let pattern = &p["EventPattern"];
    let local_pattern = &local_rule["eventPattern"];
    assert_eq!(
        strings(&pattern["source"]),
        local_strings(&local_pattern["source"])
    );
    assert_eq!(
        strings(&pattern["detail-type"]),
        local_strings(&local_pattern["detail-type"])
    );
    let status = strings(&pattern["detail"]["status"]);
    assert_eq!(status, local_strings(&local_pattern["detail"]["status"]));
    assert_eq!(
        status,
        ["ABORTED", "TIMED_OUT", "FAILED"]
            .map(String::from)
            .into_iter()
            .collect()
    );

    let targets = one_or_many(&p["Targets"]);
    assert_eq!(targets.len(), 1, "{rule_id}: one target");
    assert_eq!(
        get_att(&targets[0]["Arn"], "Arn"),
        Some(function_id("backup-abort").as_str()),
        "{rule_id} must target backup-abort"
    );

    let allowed = of_type(&t, "AWS::Lambda::Permission")
        .into_iter()
        .any(|(_, perm)| {
            let q = &perm["Properties"];
            let f = &q["FunctionName"];
            (ref_of(f).or_else(|| get_att(f, "Arn")) == Some(function_id("backup-abort").as_str()))
                && q["Action"].as_str() == Some("lambda:InvokeFunction")
                && q["Principal"].as_str() == Some("events.amazonaws.com")
                && get_att(&q["SourceArn"], "Arn") == Some(rule_id.as_str())
        });
    assert!(
        allowed,
        "EventBridge may not invoke backup-abort for {rule_id}"
    );
}

/// The local world's rule of `function` (`infra/local/rules.json`).
fn local_rule(function: &str) -> serde_json::Value {
    let local: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("infra/local/rules.json")).unwrap(),
    )
    .unwrap();
    local["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["targets"][0]["function"] == function)
        .unwrap_or_else(|| panic!("infra/local/rules.json has no rule for {function}"))
        .clone()
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

#[test]
fn the_retention_sweep_rule_runs_retention_sweep_on_the_local_worlds_schedule() {
    let t = template();
    let rules: Vec<_> = of_type(&t, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| {
            one_or_many(&r["Properties"]["Targets"])
                .into_iter()
                .any(|x| get_att(&x["Arn"], "Arn") == Some(function_id("retention-sweep").as_str()))
        })
        .collect();
    assert_eq!(rules.len(), 1, "one rule runs retention-sweep");
    let (rule_id, rule) = &rules[0];
    let p = &rule["Properties"];
    assert_eq!(
        sub_text(&p["Name"]),
        Some("${NamePrefix}-retention-sweep"),
        "{rule_id}"
    );
    let param = ref_of(&p["ScheduleExpression"])
        .unwrap_or_else(|| panic!("{rule_id}: ScheduleExpression must be a parameter"));
    assert_eq!(
        t["Parameters"][param]["Default"].as_str(),
        local_rule("retention-sweep")["scheduleExpression"].as_str(),
        "{param}: the default is the local world's schedule"
    );
    let targets = one_or_many(&p["Targets"]);
    assert_eq!(targets.len(), 1, "{rule_id}: one target");
    assert!(
        targets[0]["Input"].is_null()
            && targets[0]["InputPath"].is_null()
            && targets[0]["InputTransformer"].is_null(),
        "{rule_id}: the sweep reads the scheduled event's `time`; no input of its own"
    );
    assert!(
        events_may_invoke(&t, "retention-sweep", |s| get_att(s, "Arn")
            == Some(rule_id.as_str())),
        "EventBridge may not invoke retention-sweep for {rule_id}"
    );
}

#[test]
fn the_clis_schedule_rules_may_invoke_schedule_tick_and_only_it() {
    let t = template();
    // The rules are made at run time (`brfed_core::schedule::rule_name`), so the permission is
    // on their name pattern; it must cover the names the code makes, short and hashed.
    let pattern = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/";
    let covers = |s: &Value| {
        sub_text(s)
            .and_then(|a| a.strip_prefix(pattern))
            .and_then(|n| n.strip_suffix('*'))
            .is_some_and(|prefix| {
                !prefix.is_empty()
                    && [
                        brfed_core::schedule::rule_name("br", "daily"),
                        brfed_core::schedule::rule_name(&"n".repeat(40), &"S".repeat(30)),
                    ]
                    .iter()
                    .all(|r| r.starts_with(prefix))
            })
    };
    assert!(
        events_may_invoke(&t, "schedule-tick", covers),
        "EventBridge may not invoke schedule-tick from the brfed-schedule-* rules"
    );
    for krate in function_crates() {
        if krate != "schedule-tick" {
            assert!(
                !events_may_invoke(&t, &krate, covers),
                "the schedule rules may invoke {krate}"
            );
        }
    }
    let out = &t["Outputs"]["ScheduleTickFunctionArn"]["Value"];
    assert_eq!(
        get_att(out, "Arn"),
        Some(function_id("schedule-tick").as_str()),
        "the CLI reads the rules' target from the ScheduleTickFunctionArn output"
    );
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
