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

/// The EC2 actions a function calls (`functions/adapters/src/ec2_volumes.rs`), by crate: the
/// only EC2 grants a function role may have.
const EC2_CALLS: &[(&str, &str)] = &[
    // Opt-in cleanup of a failed restore's volumes (RestoreVolumeCleanup).
    ("restore-finalize", "ec2:DeleteVolume"),
    ("restore-abort", "ec2:DeleteVolume"),
    // Whose the volumes made from a member's snapshots are (`restore::volumes::claim`,
    // `Ec2Volumes::volumes_from_snapshots` and `describe_volume`).
    ("restore-observe", "ec2:DescribeVolumes"),
    ("restore-finalize", "ec2:DescribeVolumes"),
    ("restore-abort", "ec2:DescribeVolumes"),
    // Claims them: tags them with the stack and the restore (`Volumes::tag_volumes`), at
    // VolumeComplete (observe) or in the leftovers report (finalize, abort).
    ("restore-observe", "ec2:CreateTags"),
    ("restore-finalize", "ec2:CreateTags"),
    ("restore-abort", "ec2:CreateTags"),
    // Snapshots of members brfed cleans itself (`delete::delete_snapshots`), each read right
    // before its deletion (`Ec2Volumes::describe_snapshots`).
    ("backup-delete-snapshots", "ec2:DeleteSnapshot"),
    ("backup-delete-snapshots", "ec2:DescribeSnapshots"),
    // Verifies the snapshots are gone, and whose those left are (`Ec2Volumes::describe_snapshots`).
    ("backup-delete-finish", "ec2:DescribeSnapshots"),
    // Whose the listed snapshots are, and `brfed.dev/retained` on those the policy keeps
    // (`delete::start`).
    ("backup-delete-start", "ec2:DescribeSnapshots"),
    ("backup-delete-start", "ec2:CreateTags"),
    // Tags the snapshots proven the backup's with the stack and the backup
    // (`orphans::tag_backup_snapshots`).
    ("backup-finalize", "ec2:CreateTags"),
    ("backup-finalize", "ec2:DescribeSnapshots"),
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

/// The crate that sends settle checks (`schedule::steps::settle_checks`, sent by
/// `SchedulerRuntime::send_settle_checks`) and runs missed ticks (`schedule::steps::catch_up`):
/// besides its own state machine, `StartExecution` on `volume-backup` and `DescribeExecution`
/// on its executions (has the backup's execution ended? was this tick started?), and
/// `events:PutEvents` on the default bus of source `brfed.internal` only (not brfed's public
/// events), which the settle-check rule sends to `backup-abort`.
const SETTLE_CHECKER: &str = "retention-sweep";

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
                let role = role_of(&t, &krate);
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
    for (file, text, id, sm) in state_machines(&t) {
        let wanted = placeholders(&text);
        let supplied: BTreeSet<String> = substitutions(sm)
            .into_iter()
            .map(|(k, _)| k.to_string())
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
    for (_, _, id, sm) in state_machines(&t) {
        for (k, v) in substitutions(sm) {
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
    for (file, _, id, sm) in state_machines(&t) {
        let p = &sm["Properties"];
        let used: BTreeSet<String> = substitutions(sm)
            .into_iter()
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
    let invoked_by_events = invoked_by_events(&t);
    let mut roles = BTreeSet::new();
    for (krate, role_id, role) in function_roles(&t) {
        let id = function_id(&krate);
        assert!(roles.insert(role_id.clone()), "{id} shares {role_id}");
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "{role_id}: inline policies only, so this test sees every grant"
        );
        let stmts = statements(role);
        assert!(!stmts.is_empty(), "{role_id} grants nothing");
        let mut sfn_granted = BTreeSet::new();
        let mut events_granted = false;
        let mut settle_granted = false;
        for s in stmts {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{role_id}");
            assert!(
                s["NotAction"].is_null() && s["NotResource"].is_null(),
                "{role_id}"
            );
            let actions = actions_of(s);
            let sfn = SFN_CALLS
                .iter()
                .find(|(k, _)| *k == krate)
                .map(|(_, file)| *file);
            for a in &actions {
                assert!(
                    *a != "*" && !a.ends_with(":*"),
                    "{role_id}: wildcard action {a}"
                );
                // Only what the functions call: their logs, S3, the EC2 actions listed, for
                // the scheduled functions the two Step Functions calls, and for those
                // EventBridge invokes, Lambda's on-failure delivery to the safety-net queue.
                assert!(
                    a.starts_with("logs:")
                        || a.starts_with("s3:")
                        || EC2_CALLS.contains(&(krate.as_str(), *a))
                        || (sfn.is_some()
                            && ["states:StartExecution", "states:DescribeExecution"].contains(a))
                        || (*a == "events:PutEvents"
                            && (EVENT_EMITTERS.contains(&krate.as_str())
                                || krate == SETTLE_CHECKER))
                        || (*a == "sqs:SendMessage" && invoked_by_events.contains(&krate)),
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
                let source = s["Condition"]["StringEquals"]["events:source"].as_str();
                if krate == SETTLE_CHECKER {
                    assert_eq!(
                        source,
                        Some("brfed.internal"),
                        "{role_id}: settle checks of source brfed.internal only"
                    );
                    settle_granted = true;
                } else {
                    assert_eq!(
                        source,
                        Some("brfed"),
                        "{role_id}: PutEvents of source brfed only"
                    );
                    events_granted = true;
                }
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
                let executions_of = |file: &str| {
                    format!(
                        "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:${{NamePrefix}}-{}:*",
                        file.trim_end_matches(".asl.json")
                    )
                };
                let executions = executions_of(file);
                let backups = executions_of("volume-backup.asl.json");
                assert_eq!(
                    actions.len(),
                    1,
                    "{role_id}: one Step Functions action a statement"
                );
                for r in one_or_many(&s["Resource"]) {
                    match actions[0] {
                        "states:StartExecution"
                            if krate == SETTLE_CHECKER
                                && ref_of(r) == Some("VolumeBackupStateMachine") => {}
                        "states:StartExecution" => assert_eq!(
                            ref_of(r),
                            Some(sm_id.as_str()),
                            "{role_id}: StartExecution on {sm_id} only"
                        ),
                        _ if krate == SETTLE_CHECKER && sub_text(r) == Some(backups.as_str()) => {}
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
                    // One of the stack's buckets (`s3_resource` refuses any other), and never
                    // every object of it.
                    let (bucket, key) = s3_resource(&t, &role_id, r);
                    assert_ne!(
                        key.as_deref(),
                        Some("*"),
                        "{role_id}: {r:?} is a whole {bucket:?} bucket"
                    );
                }
            }
        }
        assert_eq!(
            events_granted,
            EVENT_EMITTERS.contains(&krate.as_str()),
            "{role_id}: events:PutEvents exactly for the crates that emit events"
        );
        assert_eq!(
            settle_granted,
            krate == SETTLE_CHECKER,
            "{role_id}: settle checks are {SETTLE_CHECKER}'s only"
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
    for (file, _, id, sm) in state_machines(&t) {
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

/// The one rule of the template that `matches`, with its id.
fn one_rule<'a>(t: &'a Value, what: &str, matches: impl Fn(&Value) -> bool) -> (String, &'a Value) {
    let mut rules: Vec<_> = of_type(t, "AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| matches(r))
        .collect();
    assert_eq!(rules.len(), 1, "one rule {what}");
    rules.remove(0)
}

/// The one target of rule `rule_id`: the function of crate `krate`, which EventBridge may invoke
/// for that rule.
fn only_target<'a>(t: &Value, rule_id: &str, rule: &'a Value, krate: &str) -> &'a Value {
    let targets = one_or_many(&rule["Properties"]["Targets"]);
    assert_eq!(targets.len(), 1, "{rule_id}: one target");
    assert_eq!(
        get_att(&targets[0]["Arn"], "Arn"),
        Some(function_id(krate).as_str()),
        "{rule_id} must target {krate}"
    );
    assert!(
        events_may_invoke(t, krate, |s| get_att(s, "Arn") == Some(rule_id)),
        "EventBridge may not invoke {krate} for {rule_id}"
    );
    targets[0]
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

#[test]
fn the_abort_rule_sends_aborted_timed_out_and_failed_backups_to_backup_abort() {
    let t = template();
    let (sm_id, _) = state_machine_of(&t, "volume-backup.asl.json");
    let (rule_id, rule) = one_rule(&t, &format!("on the executions of {sm_id}"), |r| {
        one_or_many(&r["Properties"]["EventPattern"]["detail"]["stateMachineArn"])
            .into_iter()
            .any(|a| ref_of(a) == Some(sm_id.as_str()))
    });
    only_target(&t, &rule_id, rule, "backup-abort");

    // The same pattern as the local world's rule, so the two cannot drift apart.
    let pattern = &rule["Properties"]["EventPattern"];
    let local = &local_rule("backup-abort")["eventPattern"];
    let set =
        |v: &Value| -> BTreeSet<String> { strings(v).into_iter().map(String::from).collect() };
    let local_set = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(set(&pattern["source"]), local_set(&local["source"]));
    assert_eq!(
        set(&pattern["detail-type"]),
        local_set(&local["detail-type"])
    );
    let status = set(&pattern["detail"]["status"]);
    assert_eq!(status, local_set(&local["detail"]["status"]));
    assert_eq!(
        status,
        ["ABORTED", "TIMED_OUT", "FAILED"]
            .map(String::from)
            .into_iter()
            .collect()
    );
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
    let sweep = function_id("retention-sweep");
    let (rule_id, rule) = one_rule(&t, "runs retention-sweep", |r| {
        one_or_many(&r["Properties"]["Targets"])
            .into_iter()
            .any(|x| get_att(&x["Arn"], "Arn") == Some(sweep.as_str()))
    });
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
    let target = only_target(&t, &rule_id, rule, "retention-sweep");
    assert!(
        target["Input"].is_null()
            && target["InputPath"].is_null()
            && target["InputTransformer"].is_null(),
        "{rule_id}: the sweep reads the scheduled event's `time`; no input of its own"
    );
}

#[test]
fn the_clis_schedule_rules_may_invoke_schedule_tick_and_only_it() {
    let t = template();
    // The rules are made at run time (`brfed_core::schedule::spec::rule_name`), so the permission is
    // on their name pattern; it must cover the names the code makes, short and hashed.
    let pattern = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/";
    let covers = |s: &Value| {
        sub_text(s)
            .and_then(|a| a.strip_prefix(pattern))
            .and_then(|n| n.strip_suffix('*'))
            .is_some_and(|prefix| {
                !prefix.is_empty()
                    && [
                        brfed_core::schedule::spec::rule_name("br", "daily"),
                        brfed_core::schedule::spec::rule_name(&"n".repeat(40), &"S".repeat(30)),
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

// --- ownership in IAM (docs/safety.md, "IAM") ----------------------------------------------------

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

/// IAM's wildcard match: `*` is any run of characters (`/` included), `?` one character.
fn iam_glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    go(&p, &t)
}

#[test]
fn iam_glob_matches_as_iam_does() {
    assert!(iam_glob(
        "brfed/catalog/volumebackups/*",
        "brfed/catalog/volumebackups/a/b.json"
    ));
    assert!(!iam_glob(
        "brfed/catalog/deletions/*",
        "brfed/catalog/deletions-x/a.json"
    ));
    assert!(iam_glob("b/*/clustermeta", "b/x/y-dp1/clustermeta"));
    assert!(iam_glob("a?c", "abc") && !iam_glob("a?c", "ac"));
}

/// The BackupPrefix value the S3 checks substitute (one the parameter accepts).
const SAMPLE_BACKUP_PREFIX: &str = "tidb-backups/";

/// A regex of a parameter's `AllowedPattern`, anchored as CloudFormation applies it (the whole
/// value must match).
fn allowed(t: &Value, param: &str) -> regex::Regex {
    let p = t["Parameters"][param]["AllowedPattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{param} has no AllowedPattern"));
    regex::Regex::new(&format!("^(?:{p})$")).unwrap_or_else(|e| panic!("{param}: {e}"))
}

#[test]
fn backup_prefix_is_required_not_empty_and_one_folder() {
    let t = template();
    let p = &t["Parameters"]["BackupPrefix"];
    assert!(
        p["Default"].is_null(),
        "BackupPrefix must have no default: the deployer names the folder"
    );
    let re = allowed(&t, "BackupPrefix");
    for ok in [SAMPLE_BACKUP_PREFIX, "a/", "team.a/tidb_backups/", "x/(y)/"] {
        assert!(re.is_match(ok), "BackupPrefix must accept {ok:?}");
    }
    for bad in [
        "",
        "/",
        "a",
        "tidb-backups",
        "/tidb/",
        "*/",
        "a*/",
        "a?/",
        "${x}/",
        "a/b",
        "a /",
    ] {
        assert!(!re.is_match(bad), "BackupPrefix must refuse {bad:?}");
    }
    let d = p["Description"].as_str().unwrap_or_default();
    assert!(
        d.contains("ending in /") && d.contains("Required"),
        "BackupPrefix's description must say it is required and ends in /"
    );
}

/// Which bucket an S3 resource is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum S3Bucket {
    /// `BRFED_CATALOG_BUCKET`.
    Catalog,
    /// `BackupBucketName`.
    Backup,
    /// The kubeconfig object of `KubeconfigLocation`.
    Kubeconfig,
}

/// `text` with `${BackupPrefix}` replaced by [`SAMPLE_BACKUP_PREFIX`], once the parameter is
/// known to refuse every value that is not a folder (empty, or without its trailing `/`): only
/// then is `${BackupPrefix}*` one folder, whatever the deployer passes.
fn with_backup_prefix(t: &Value, text: &str) -> String {
    if text.contains("${BackupPrefix}") {
        let re = allowed(t, "BackupPrefix");
        assert!(re.is_match(SAMPLE_BACKUP_PREFIX));
        for not_a_folder in ["", "tidb-backups", "a/b"] {
            assert!(
                !re.is_match(not_a_folder),
                "BackupPrefix accepts {not_a_folder:?}, so ${{BackupPrefix}}* in {text} is not one folder"
            );
        }
    }
    text.replace("${BackupPrefix}", SAMPLE_BACKUP_PREFIX)
}

/// `(bucket, key pattern)` of an S3 ARN resource (`None` for the bucket itself), with
/// `${BackupPrefix}` replaced by [`SAMPLE_BACKUP_PREFIX`] ([`with_backup_prefix`]).
fn s3_resource(t: &Value, role_id: &str, r: &Value) -> (S3Bucket, Option<String>) {
    let arn = r
        .as_str()
        .or_else(|| sub_text(r))
        .unwrap_or_else(|| panic!("{role_id}: S3 resource {r:?}"));
    let path = arn
        .strip_prefix("arn:${AWS::Partition}:s3:::")
        .unwrap_or_else(|| panic!("{role_id}: S3 resource {arn} is no S3 ARN of this partition"));
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    let bucket = match bucket {
        "${Bucket}" => {
            assert_eq!(
                r["Fn::Sub"][1]["Bucket"],
                stack_identity(t),
                "{role_id}: ${{Bucket}} of {arn} must be the catalog bucket"
            );
            S3Bucket::Catalog
        }
        "${BackupBucketName}" => S3Bucket::Backup,
        "${Object}" => {
            // `bucket/key` of KubeconfigLocation, granted as one exact object: the parameter
            // must refuse IAM's wildcards in it.
            let re = allowed(t, "KubeconfigLocation");
            assert!(re.is_match("s3://my-config/brfed/kubeconfig"));
            for wild in [
                "s3://my-config/*",
                "s3://my-config/k?",
                "s3://my-config/a/*/k",
            ] {
                assert!(
                    !re.is_match(wild),
                    "KubeconfigLocation must refuse {wild}: the grant would reach more than one object"
                );
            }
            return (S3Bucket::Kubeconfig, Some("kubeconfig".into()));
        }
        other => panic!("{role_id}: {arn} is in bucket {other}, none of the stack's"),
    };
    let key = key.map(|k| with_backup_prefix(t, k));
    if let Some(k) = &key {
        assert!(
            !k.contains("${"),
            "{role_id}: {arn}: a key may use no parameter but BackupPrefix"
        );
    }
    (bucket, key)
}

/// Whether a key pattern stays inside a folder: the text before its first wildcard is not empty
/// and ends in `/` (so `brfed/catalog/deletions/*` cannot reach `brfed/catalog/deletions-x`).
fn under_a_folder(pattern: &str) -> bool {
    match pattern.find(['*', '?']) {
        None => !pattern.is_empty(),
        Some(i) => pattern[..i].ends_with('/'),
    }
}

#[test]
fn every_s3_grant_is_under_a_prefix_that_ends_in_a_slash() {
    let t = template();
    for (_, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.iter().any(|a| a.starts_with("s3:")) {
                continue;
            }
            for r in one_or_many(&s["Resource"]) {
                let (bucket, key) = s3_resource(&t, &role_id, r);
                match key {
                    Some(k) => {
                        assert!(
                            !actions.contains(&"s3:ListBucket"),
                            "{role_id}: s3:ListBucket is granted on buckets, not on {k}"
                        );
                        assert!(
                            under_a_folder(&k),
                            "{role_id}: {bucket:?} key {k} is not under a prefix ending in /"
                        );
                    }
                    None => {
                        assert_eq!(
                            actions,
                            ["s3:ListBucket"],
                            "{role_id}: only s3:ListBucket on a whole {bucket:?} bucket"
                        );
                        for p in one_or_many(&s["Condition"]["StringLike"]["s3:prefix"]) {
                            let p = with_backup_prefix(
                                &t,
                                p.as_str()
                                    .or_else(|| sub_text(p))
                                    .unwrap_or_else(|| panic!("{role_id}: s3:prefix {p:?}")),
                            );
                            assert!(
                                under_a_folder(&p),
                                "{role_id}: s3:prefix {p} is not under a prefix ending in /"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The catalog collections each function crate reads (`r`), writes (`w`) or deletes from (`d`),
/// read in its step (`functions/core/src`): its role gets exactly these, and nothing of the
/// other collections.
const CATALOG_ACCESS: &[(&str, &str, &str)] = &[
    ("backup-start", "volumebackups", "rw"),
    ("backup-observe", "volumebackups", "rw"),
    ("backup-execute", "volumebackups", "rw"),
    ("backup-resume-gc", "volumebackups", "rw"),
    ("backup-teardown", "volumebackups", "rw"),
    ("backup-finalize", "volumebackups", "rw"),
    // `steps::abort`, and `delete::aborted` for a stopped deletion.
    ("backup-abort", "volumebackups", "rw"),
    ("restore-start", "volumerestores", "rw"),
    // `restore::steps::resolve_from_backup`: a restore named after a backup.
    ("restore-start", "volumebackups", "r"),
    ("restore-observe", "volumerestores", "rw"),
    ("restore-data", "volumerestores", "rw"),
    ("restore-finish", "volumerestores", "rw"),
    ("restore-finalize", "volumerestores", "rw"),
    ("restore-abort", "volumerestores", "rw"),
    ("backup-delete-start", "volumebackups", "rw"),
    ("backup-delete-start", "deletions", "rw"),
    ("backup-delete-snapshots", "deletions", "r"),
    ("backup-delete-finish", "volumebackups", "rwd"),
    ("backup-delete-finish", "deletions", "rd"),
    ("schedule-tick", "volumebackupschedules", "rw"),
    // The last backup's document: a tick waits while its members still run.
    ("schedule-tick", "volumebackups", "r"),
    // The sweep runs a schedule's latest missed tick and records it as the tick does.
    ("retention-sweep", "volumebackupschedules", "rw"),
    ("retention-sweep", "volumebackups", "r"),
];

/// A key of each catalog collection, as the code makes it.
fn catalog_keys() -> Vec<(&'static str, String)> {
    let keys = vec![
        (
            "volumebackups",
            brfed_core::backup::status::backup_key("team-a", "nightly-x"),
        ),
        (
            "volumerestores",
            brfed_core::restore::status::restore_key("team-a", "nightly-x"),
        ),
        (
            "volumebackupschedules",
            brfed_core::schedule::status::schedule_key("team-a", "nightly"),
        ),
        (
            "deletions",
            brfed_core::delete::status::manifest_key("team-a", "nightly-x"),
        ),
    ];
    for (c, k) in &keys {
        assert!(
            k.starts_with(&format!("{}/{c}/", brfed_core::catalog::CATALOG_PREFIX)),
            "{k} is not in collection {c}"
        );
    }
    keys
}

#[test]
fn every_function_gets_exactly_the_catalog_collections_it_uses() {
    let t = template();
    let keys = catalog_keys();
    let letter = |a: &str| match a {
        "s3:GetObject" => 'r',
        "s3:PutObject" => 'w',
        "s3:DeleteObject" => 'd',
        other => panic!("catalog action {other}"),
    };
    for (krate, role_id, role) in function_roles(&t) {
        // (letter, key pattern) granted on the catalog bucket's objects.
        let mut granted: Vec<(char, String)> = Vec::new();
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.iter().any(|a| a.starts_with("s3:")) {
                continue;
            }
            for r in one_or_many(&s["Resource"]) {
                if let (S3Bucket::Catalog, Some(k)) = s3_resource(&t, &role_id, r) {
                    for a in &actions {
                        granted.push((letter(a), k.clone()));
                    }
                }
            }
        }
        for (collection, key) in &keys {
            let wanted = CATALOG_ACCESS
                .iter()
                .find(|(k, c, _)| *k == krate && c == collection)
                .map(|(_, _, a)| *a)
                .unwrap_or("");
            for l in ['r', 'w', 'd'] {
                let has = granted.iter().any(|(g, p)| *g == l && iam_glob(p, key));
                assert_eq!(
                    has,
                    wanted.contains(l),
                    "{role_id}: {krate} {} `{l}` on catalog collection {collection} ({key})",
                    if wanted.contains(l) {
                        "needs"
                    } else {
                        "must not have"
                    }
                );
            }
        }
        for (l, p) in &granted {
            assert!(
                keys.iter().any(|(_, k)| iam_glob(p, k)),
                "{role_id}: `{l}` on catalog keys {p}, which is no collection brfed has"
            );
        }
    }
}

/// The conditions of a statement under operator `op` and key `key`.
fn condition<'a>(s: &'a Value, op: &str, key: &str) -> &'a Value {
    &s["Condition"][op][key]
}

/// Every `ec2:DeleteSnapshot` and `ec2:DeleteVolume` only on resources tagged with this stack
/// (`brfed.dev/stack` = the catalog bucket) and as a backup's / a restore's: whatever a
/// `backupmeta` or a restore's leftovers name, IAM refuses what is not brfed's.
#[test]
fn every_snapshot_and_volume_deletion_needs_this_stacks_tags() {
    let t = template();
    let stack = stack_identity(&t);
    let mut seen = BTreeSet::new();
    for (krate, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            for (action, kind_tag) in [
                ("ec2:DeleteSnapshot", "brfed.dev/volumebackup"),
                ("ec2:DeleteVolume", "brfed.dev/volumerestore"),
            ] {
                if !actions.contains(&action) {
                    continue;
                }
                seen.insert(action);
                assert_eq!(
                    actions,
                    [action],
                    "{role_id}: {action} alone in its statement"
                );
                assert_eq!(
                    condition(s, "StringEquals", "aws:ResourceTag/brfed.dev/stack"),
                    &stack,
                    "{role_id} ({krate}): {action} only on resources tagged brfed.dev/stack = the catalog bucket"
                );
                assert_eq!(
                    condition(s, "Null", &format!("aws:ResourceTag/{kind_tag}")).as_str(),
                    Some("false"),
                    "{role_id} ({krate}): {action} only on resources tagged {kind_tag}"
                );
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["ec2:DeleteSnapshot", "ec2:DeleteVolume"]),
        "the template grants both deletions somewhere; this test must see them"
    );
}

/// Every `ec2:CreateTags`: `brfed.dev/*` keys only, always with `brfed.dev/stack` = this stack,
/// on resources that carry no `brfed.dev/stack` yet or carry ours. IAM ANDs the conditions of
/// one statement and ORs statements, so "untagged or ours" takes two statements: one with
/// `Null` = true, one with `StringEquals` ours (never `...IfExists`, never both in one).
#[test]
fn every_create_tags_sets_brfed_keys_with_this_stack_on_unowned_or_own_resources() {
    let t = template();
    let stack = stack_identity(&t);
    let mut saw_unowned = false;
    let mut saw_own = false;
    for (krate, role_id, role) in function_roles(&t) {
        for s in statements(role) {
            let actions = actions_of(s);
            if !actions.contains(&"ec2:CreateTags") {
                continue;
            }
            assert_eq!(actions, ["ec2:CreateTags"], "{role_id}: CreateTags alone");
            for r in one_or_many(&s["Resource"]) {
                let arn = sub_text(r).unwrap_or_default();
                assert!(
                    arn.ends_with(":snapshot/*") || arn.ends_with(":volume/*"),
                    "{role_id}: CreateTags on snapshots or volumes only, not {r:?}"
                );
            }
            let ops: BTreeSet<&str> = s["Condition"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{role_id} ({krate}): CreateTags without conditions"))
                .keys()
                .map(|k| k.as_str().unwrap())
                .collect();
            assert!(
                ops.iter().all(|o| !o.ends_with("IfExists")),
                "{role_id}: no IfExists operator may loosen CreateTags"
            );
            let keys: Vec<_> = one_or_many(condition(s, "ForAllValues:StringLike", "aws:TagKeys"))
                .into_iter()
                .map(|k| k.as_str().unwrap_or_default())
                .collect();
            assert_eq!(
                keys,
                ["brfed.dev/*"],
                "{role_id}: CreateTags of brfed.dev/* keys only"
            );
            assert_eq!(
                condition(s, "StringEquals", "aws:RequestTag/brfed.dev/stack"),
                &stack,
                "{role_id}: every CreateTags sets brfed.dev/stack = the catalog bucket"
            );
            let unowned =
                condition(s, "Null", "aws:ResourceTag/brfed.dev/stack").as_str() == Some("true");
            let own = condition(s, "StringEquals", "aws:ResourceTag/brfed.dev/stack") == &stack;
            assert!(
                unowned ^ own,
                "{role_id}: CreateTags only on resources without brfed.dev/stack (Null true) or with ours (StringEquals), one per statement"
            );
            saw_unowned |= unowned;
            saw_own |= own;
        }
    }
    assert!(
        saw_unowned && saw_own,
        "snapshot tagging needs both statements: untagged snapshots and this stack's"
    );
}

#[test]
fn no_state_machine_logs_execution_data() {
    let t = template();
    for (_, _, id, sm) in state_machines(&t) {
        let include = &sm["Properties"]["LoggingConfiguration"]["IncludeExecutionData"];
        assert!(
            include.is_null() || include.as_bool() == Some(false),
            "{id}: IncludeExecutionData would log the VolumeBackup's template (env values) with every transition"
        );
    }
}

// --- the safety net: abort, tick and sweep fail into one queue, which alarms -----------------------

/// The function crates EventBridge may invoke (a `lambda:InvokeFunction` permission for
/// `events.amazonaws.com`): the ones invoked asynchronously, whose failures nobody waits for.
fn invoked_by_events(t: &Value) -> BTreeSet<String> {
    function_crates()
        .into_iter()
        .filter(|k| events_may_invoke(t, k, |_| true))
        .collect()
}

/// Every target of every rule of the template: the rule's id, the target, and the function
/// crate whose function it is.
fn rule_targets(t: &Value) -> Vec<(String, &Value, String)> {
    let crates = function_crates();
    let mut out = Vec::new();
    for (rule_id, rule) in of_type(t, "AWS::Events::Rule") {
        for target in one_or_many(&rule["Properties"]["Targets"]) {
            let krate = get_att(&target["Arn"], "Arn")
                .and_then(|f| crates.iter().find(|k| function_id(k) == f))
                .unwrap_or_else(|| {
                    panic!("{rule_id}: a target that is no function of the template")
                });
            out.push((rule_id.clone(), target, krate.clone()));
        }
    }
    out
}

/// The id of the safety-net queue: the one SQS queue of the template, the `SafetyNetQueueArn`
/// output.
fn safety_net_queue(t: &Value) -> String {
    let queues = of_type(t, "AWS::SQS::Queue");
    assert_eq!(queues.len(), 1, "one safety-net queue");
    let id = queues[0].0.clone();
    assert_eq!(
        get_att(&t["Outputs"]["SafetyNetQueueArn"]["Value"], "Arn"),
        Some(id.as_str()),
        "the SafetyNetQueueArn output (the CLI's schedule rules dead-letter there)"
    );
    id
}

#[test]
fn the_functions_eventbridge_invokes_are_the_aborts_the_tick_and_the_sweep() {
    let t = template();
    assert_eq!(
        invoked_by_events(&t),
        [
            "backup-abort",
            "restore-abort",
            "retention-sweep",
            "schedule-tick"
        ]
        .map(String::from)
        .into_iter()
        .collect(),
        "a new asynchronously invoked function needs the safety net below too"
    );
}

#[test]
fn every_rule_target_retries_its_delivery_then_dead_letters_to_the_safety_net() {
    let t = template();
    let queue = safety_net_queue(&t);
    let targets = rule_targets(&t);
    for (rule_id, target, krate) in &targets {
        let retry = &target["RetryPolicy"];
        let attempts = retry["MaximumRetryAttempts"]
            .as_u64()
            .unwrap_or_else(|| panic!("{rule_id} -> {krate}: no RetryPolicy.MaximumRetryAttempts"));
        let age = retry["MaximumEventAgeInSeconds"]
            .as_u64()
            .unwrap_or_else(|| {
                panic!("{rule_id} -> {krate}: no RetryPolicy.MaximumEventAgeInSeconds")
            });
        assert!(
            (1..=185).contains(&attempts) && (60..=86_400).contains(&age),
            "{rule_id} -> {krate}: RetryPolicy out of EventBridge's ranges"
        );
        if krate.ends_with("-abort") {
            assert_eq!(
                (attempts, age),
                (185, 86_400),
                "{rule_id}: an abort's delivery is retried for as long as EventBridge can (GC may be paused)"
            );
        }
        assert_eq!(
            get_att(&target["DeadLetterConfig"]["Arn"], "Arn"),
            Some(queue.as_str()),
            "{rule_id} -> {krate}: an undeliverable event must land in {queue}"
        );
    }
    for krate in ["backup-abort", "restore-abort", "retention-sweep"] {
        assert!(
            targets.iter().any(|(_, _, k)| k == krate),
            "no rule of the template targets {krate}"
        );
    }
}

#[test]
fn the_safety_net_queue_is_encrypted_and_takes_dead_letters_of_brfeds_rules_only() {
    let t = template();
    let queue = safety_net_queue(&t);
    let q = &resource(&t, &queue)["Properties"];
    assert!(
        q["SqsManagedSseEnabled"].as_bool() == Some(true) || !q["KmsMasterKeyId"].is_null(),
        "{queue}: encrypted at rest"
    );
    assert_eq!(
        q["MessageRetentionPeriod"].as_u64(),
        Some(1_209_600),
        "{queue}: failed events wait the longest SQS allows for a person"
    );
    let policies: Vec<_> = of_type(&t, "AWS::SQS::QueuePolicy")
        .into_iter()
        .filter(|(_, p)| {
            one_or_many(&p["Properties"]["Queues"])
                .into_iter()
                .any(|x| ref_of(x) == Some(queue.as_str()))
        })
        .collect();
    assert_eq!(policies.len(), 1, "{queue}: one queue policy");
    let (policy_id, policy) = &policies[0];
    let rules: BTreeSet<String> = of_type(&t, "AWS::Events::Rule")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut allowed_rules = BTreeSet::new();
    let mut schedule_rules = false;
    for s in one_or_many(&policy["Properties"]["PolicyDocument"]["Statement"]) {
        if s["Effect"].as_str() != Some("Allow") {
            continue;
        }
        assert_eq!(
            s["Principal"]["Service"].as_str(),
            Some("events.amazonaws.com"),
            "{policy_id}: only EventBridge may send"
        );
        assert_eq!(actions_of(s), ["sqs:SendMessage"], "{policy_id}");
        assert_eq!(get_att(&s["Resource"], "Arn"), Some(queue.as_str()));
        let sources = one_or_many(&s["Condition"]["ArnLike"]["aws:SourceArn"]);
        assert!(!sources.is_empty(), "{policy_id}: from named rules only");
        for src in sources {
            if let Some(rule) = get_att(src, "Arn") {
                allowed_rules.insert(rule.to_string());
            } else {
                assert_eq!(
                    sub_text(src),
                    Some(
                        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/brfed-schedule-*"
                    ),
                    "{policy_id}: a source that is neither a rule of the template nor the CLI's schedule rules"
                );
                schedule_rules = true;
            }
        }
    }
    assert_eq!(
        allowed_rules, rules,
        "{policy_id}: every rule of the template may dead-letter"
    );
    assert!(
        schedule_rules,
        "{policy_id}: the CLI's schedule rules may dead-letter"
    );
}

#[test]
fn every_function_eventbridge_invokes_retries_twice_then_sends_the_event_to_the_safety_net() {
    let t = template();
    let queue = safety_net_queue(&t);
    let configs = of_type(&t, "AWS::Lambda::EventInvokeConfig");
    for krate in invoked_by_events(&t) {
        let id = function_id(&krate);
        let found: Vec<_> = configs
            .iter()
            .filter(|(_, c)| ref_of(&c["Properties"]["FunctionName"]) == Some(id.as_str()))
            .collect();
        assert_eq!(found.len(), 1, "{krate}: one EventInvokeConfig");
        let (cid, c) = found[0];
        let p = &c["Properties"];
        assert_eq!(
            p["Qualifier"].as_str(),
            Some("$LATEST"),
            "{cid}: EventBridge invokes the unqualified function"
        );
        assert_eq!(p["MaximumRetryAttempts"].as_u64(), Some(2), "{cid}");
        assert!(
            p["MaximumEventAgeInSeconds"]
                .as_u64()
                .is_some_and(|a| (60..=21_600).contains(&a)),
            "{cid}: MaximumEventAgeInSeconds"
        );
        assert_eq!(
            get_att(&p["DestinationConfig"]["OnFailure"]["Destination"], "Arn"),
            Some(queue.as_str()),
            "{cid}: a failed invocation must land in {queue}"
        );
        // Lambda sends to an on-failure destination with the function's own role.
        let role_id = role_of(&t, &krate);
        let sends = statements(resource(&t, role_id)).into_iter().any(|s| {
            actions_of(s) == ["sqs:SendMessage"]
                && one_or_many(&s["Resource"])
                    .into_iter()
                    .all(|r| get_att(r, "Arn") == Some(queue.as_str()))
        });
        assert!(sends, "{role_id}: sqs:SendMessage on {queue} alone");
    }
}

/// The local world configures its safety net from `infra/local/rules.json` (`queues`,
/// `asyncInvokeConfigs`, the targets' `retryPolicy` and `deadLetterQueue`); the template must
/// say the same, so that what the system tests show is what AWS does.
#[test]
fn the_safety_net_is_configured_as_in_the_local_world() {
    let t = template();
    let queue = safety_net_queue(&t);
    let local = local_world();
    let prefix = t["Parameters"]["NamePrefix"]["Default"].as_str().unwrap();
    let name = sub_text(&resource(&t, &queue)["Properties"]["QueueName"])
        .expect("the queue's name is <NamePrefix>-...")
        .replace("${NamePrefix}", prefix);
    assert!(
        local["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["name"] == name.as_str())),
        "{queue}: with the default NamePrefix it is {name}, the local world's queue"
    );
    let configs = local["asyncInvokeConfigs"].as_array().unwrap();
    let crates: BTreeSet<String> = configs
        .iter()
        .map(|c| c["function"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(crates, invoked_by_events(&t), "the same functions");
    for c in configs {
        let id = function_id(c["function"].as_str().unwrap());
        let (cid, cfg) = of_type(&t, "AWS::Lambda::EventInvokeConfig")
            .into_iter()
            .find(|(_, x)| ref_of(&x["Properties"]["FunctionName"]) == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id}: no EventInvokeConfig"));
        let p = &cfg["Properties"];
        assert_eq!(
            p["MaximumRetryAttempts"].as_u64(),
            c["maximumRetryAttempts"].as_u64(),
            "{cid}"
        );
        assert_eq!(
            p["MaximumEventAgeInSeconds"].as_u64(),
            c["maximumEventAgeInSeconds"].as_u64(),
            "{cid}"
        );
        assert_eq!(c["onFailure"].as_str(), Some(name.as_str()), "{cid}");
    }
    for (rule_id, target, krate) in rule_targets(&t) {
        let l = &local_rule(&krate)["targets"][0];
        let retry = &target["RetryPolicy"];
        assert_eq!(
            retry["MaximumRetryAttempts"].as_u64(),
            l["retryPolicy"]["maximumRetryAttempts"].as_u64(),
            "{rule_id}"
        );
        assert_eq!(
            retry["MaximumEventAgeInSeconds"].as_u64(),
            l["retryPolicy"]["maximumEventAgeInSeconds"].as_u64(),
            "{rule_id}"
        );
        assert_eq!(
            l["deadLetterQueue"].as_str(),
            Some(name.as_str()),
            "{rule_id}"
        );
    }
}

/// A `pub const NAME: &str = "value";` of `functions/adapters/src/signals.rs` (this crate cannot
/// depend on the adapters).
fn signals_const(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("functions/adapters/src/signals.rs")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("pub const {name}: &str = ")))
        .unwrap_or_else(|| panic!("signals.rs has no {name}"));
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn alarms_watch_the_safety_net_queue_and_the_gc_pause() {
    let t = template();
    let queue = safety_net_queue(&t);
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let notify = |id: &str, p: &Value| {
        for key in ["AlarmActions", "OKActions"] {
            let branches = p[key]["Fn::If"].as_sequence().unwrap_or_else(|| {
                panic!("{id}: {key} must notify the AlarmTopicArn parameter when it is set")
            });
            assert_eq!(branches[0].as_str(), Some("NotifyAlarms"), "{id}");
            assert_eq!(ref_of(&branches[1][0]), Some("AlarmTopicArn"), "{id}");
            assert_eq!(ref_of(&branches[2]), Some("AWS::NoValue"), "{id}");
        }
    };
    assert_eq!(
        t["Parameters"]["AlarmTopicArn"]["Default"].as_str(),
        Some("")
    );

    let on_queue: Vec<_> = alarms
        .iter()
        .filter(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"].as_str() == Some("AWS/SQS")
                && p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
                && one_or_many(&p["Dimensions"]).into_iter().any(|d| {
                    d["Name"].as_str() == Some("QueueName")
                        && get_att(&d["Value"], "QueueName") == Some(queue.as_str())
                })
        })
        .collect();
    assert_eq!(on_queue.len(), 1, "one alarm on {queue}'s visible messages");
    let (id, a) = on_queue[0];
    let p = &a["Properties"];
    assert_eq!(p["Threshold"].as_u64(), Some(0), "{id}: any message");
    assert_eq!(
        p["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold"),
        "{id}"
    );
    notify(id, p);

    let namespace = signals_const("METRIC_NAMESPACE");
    let metric = signals_const("GC_PAUSED_METRIC");
    let on_gc: Vec<_> = alarms
        .iter()
        .filter(|(_, a)| {
            one_or_many(&a["Properties"]["Metrics"])
                .into_iter()
                .any(|m| m["MetricStat"]["Metric"]["MetricName"].as_str() == Some(metric.as_str()))
        })
        .collect();
    assert_eq!(on_gc.len(), 1, "one alarm on {metric}");
    let (id, a) = on_gc[0];
    let p = &a["Properties"];
    let metrics = one_or_many(&p["Metrics"]);
    let stat = metrics.iter().find(|m| !m["MetricStat"].is_null()).unwrap();
    let m = &stat["MetricStat"]["Metric"];
    assert_eq!(m["Namespace"].as_str(), Some(namespace.as_str()), "{id}");
    // The dimension backup-observe writes with its own name (`emit::gc_paused`): this stack's.
    let dims = one_or_many(&m["Dimensions"]);
    assert_eq!(dims.len(), 1, "{id}: one dimension");
    assert_eq!(dims[0]["Name"].as_str(), Some("FunctionName"), "{id}");
    assert_eq!(
        dims[0]["Value"],
        resource(&t, &function_id("backup-observe"))["Properties"]["FunctionName"],
        "{id}: the metric of this stack's backup-observe"
    );
    assert_eq!(stat["MetricStat"]["Stat"].as_str(), Some("Maximum"), "{id}");
    let returned: Vec<_> = metrics
        .iter()
        .filter(|m| m["ReturnData"].as_bool() == Some(true))
        .collect();
    assert_eq!(returned.len(), 1, "{id}");
    assert_eq!(
        returned[0]["Expression"].as_str(),
        Some(format!("{} / 60", stat["Id"].as_str().unwrap()).as_str()),
        "{id}: seconds to minutes"
    );
    assert_eq!(
        ref_of(&p["Threshold"]),
        Some("GcPausedAlarmMinutes"),
        "{id}"
    );
    assert_eq!(
        t["Parameters"]["GcPausedAlarmMinutes"]["Default"].as_u64(),
        Some(30)
    );
    assert_eq!(
        p["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold"),
        "{id}"
    );
    notify(id, p);
}

// --- the policy scanner's configuration -----------------------------------------------------------

/// `make lint` runs checkov with `infra/aws/.checkov.yaml`: every check it skips is listed there
/// with its reason on the same line, and the scan covers this template, offline.
#[test]
fn every_check_the_policy_scanner_skips_says_why() {
    let path = root().join("infra/aws/.checkov.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config: Value = serde_yaml::from_str(&text).expect("infra/aws/.checkov.yaml is YAML");
    assert_eq!(
        one_or_many(&config["file"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>(),
        ["infra/aws/template.yaml"],
        "the scan covers the template"
    );
    assert_eq!(
        one_or_many(&config["framework"])
            .into_iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>(),
        ["cloudformation"]
    );
    assert_eq!(
        config["skip-download"].as_bool(),
        Some(true),
        "the scan runs offline"
    );
    let skipped: BTreeSet<&str> = one_or_many(&config["skip-check"])
        .into_iter()
        .map(|c| c.as_str().expect("skip-check entries are check ids"))
        .collect();
    let mut explained = BTreeSet::new();
    for line in text.lines() {
        let Some(item) = line.trim_start().strip_prefix("- CKV_") else {
            continue;
        };
        let (id, reason) = item
            .split_once('#')
            .unwrap_or_else(|| panic!("skipped CKV_{item} has no reason on its line"));
        let id = format!("CKV_{}", id.trim());
        assert!(
            reason.split_whitespace().count() >= 8,
            "{id}: the reason for skipping it is too short to judge: {reason}"
        );
        explained.insert(id);
    }
    let skipped: BTreeSet<String> = skipped.into_iter().map(String::from).collect();
    assert_eq!(skipped, explained, "every skipped check has a reason");
}

/// The settle checks of `retention-sweep` (source `brfed.internal`, detail-type
/// `VolumeBackup Settle Check`, `brfed_core::scheduling`) reach `backup-abort` through one rule
/// of exactly that pattern, the same as the local world's, which only that rule may invoke it
/// for; no other rule matches `brfed.internal`.
#[test]
fn the_settle_check_rule_sends_the_sweeps_checks_to_backup_abort() {
    use brfed_core::execution::{SETTLE_CHECK_DETAIL_TYPE, SETTLE_CHECK_SOURCE};
    let t = template();
    let (rule_id, rule) = one_rule(&t, "for the settle checks", |r| {
        strings(&r["Properties"]["EventPattern"]["source"]).contains(&SETTLE_CHECK_SOURCE)
    });
    let pattern = &rule["Properties"]["EventPattern"];
    assert_eq!(strings(&pattern["source"]), [SETTLE_CHECK_SOURCE]);
    assert_eq!(strings(&pattern["detail-type"]), [SETTLE_CHECK_DETAIL_TYPE]);
    only_target(&t, &rule_id, rule, "backup-abort");

    let local_rule = local_rule_where("for the settle checks", |r| {
        r["eventPattern"]["source"][0] == SETTLE_CHECK_SOURCE
    });
    assert_eq!(
        local_rule["eventPattern"],
        serde_json::json!({"source": [SETTLE_CHECK_SOURCE], "detail-type": [SETTLE_CHECK_DETAIL_TYPE]})
    );
    assert_eq!(local_rule["targets"][0]["function"], "backup-abort");
}
