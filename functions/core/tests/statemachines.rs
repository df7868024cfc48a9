//! The state machines are data checked here: every transition lands on a state, every state is
//! reachable, every Lambda task retries Lambda's own service errors, retryable names are retried
//! and terminal ones never are, every custom error name exists, and every placeholder names a
//! function crate of this workspace.

use brfed_core::{ERROR_NAMES, FAILURE_NAMES, RETRYABLE_ERROR_NAMES};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn machines() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("statemachines")).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().ends_with(".asl.json") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
    }
    assert!(!out.is_empty());
    out
}

fn nexts(state: &Value) -> Vec<String> {
    let mut n = Vec::new();
    let mut push = |v: &Value| {
        if let Some(s) = v.as_str() {
            n.push(s.to_string());
        }
    };
    push(&state["Next"]);
    push(&state["Default"]);
    for c in state["Choices"].as_array().into_iter().flatten() {
        push(&c["Next"]);
    }
    for c in state["Catch"].as_array().into_iter().flatten() {
        push(&c["Next"]);
    }
    n
}

#[test]
fn every_transition_lands_and_every_state_is_reachable() {
    for (file, asl) in machines() {
        let states = asl["States"].as_object().unwrap();
        let start = asl["StartAt"].as_str().unwrap();
        assert!(
            states.contains_key(start),
            "{file}: StartAt {start} missing"
        );
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(s) = todo.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            let state = states
                .get(&s)
                .unwrap_or_else(|| panic!("{file}: transition to missing state `{s}`"));
            let ty = state["Type"].as_str().unwrap();
            let n = nexts(state);
            if !matches!(ty, "Succeed" | "Fail") && state["End"] != Value::Bool(true) {
                assert!(!n.is_empty(), "{file}: `{s}` has no way on");
            }
            todo.extend(n);
        }
        let all: BTreeSet<String> = states.keys().cloned().collect();
        assert_eq!(seen, all, "{file}: unreachable states");
    }
}

#[test]
fn every_task_retries_lambda_service_errors_and_names_are_known() {
    for (file, asl) in machines() {
        for (name, state) in asl["States"].as_object().unwrap() {
            if state["Type"] != "Task" {
                continue;
            }
            let retry = state["Retry"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: {name} has no Retry"));
            let retried: Vec<&str> = retry
                .iter()
                .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
                .filter_map(Value::as_str)
                .collect();
            assert!(
                retried.contains(&"Lambda.ServiceException"),
                "{file}: {name} does not retry Lambda service errors"
            );
            assert!(
                retried.contains(&"Lambda.TooManyRequestsException"),
                "{file}: {name}"
            );
            for r in RETRYABLE_ERROR_NAMES {
                assert!(retried.contains(r), "{file}: {name} does not retry {r}");
            }
            // A function process that died (Lambda answers `Runtime.ExitError`) or hung to its
            // timeout (`Sandbox.Timedout`): every step is idempotent, so it is run again, at
            // most twice, in a retrier of its own (a timeout of an observe costs 15 minutes).
            let crash = retry
                .iter()
                .find(|r| {
                    r["ErrorEquals"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|e| e == "Runtime.ExitError")
                })
                .unwrap_or_else(|| panic!("{file}: {name} does not retry Runtime.ExitError"));
            let crash_names: Vec<&str> = crash["ErrorEquals"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                crash_names,
                ["Runtime.ExitError", "Sandbox.Timedout"],
                "{file}: {name}"
            );
            assert!(
                crash["MaxAttempts"].as_u64().unwrap() <= 2,
                "{file}: {name}"
            );
            for r in &retried {
                if !r.starts_with("Lambda.")
                    && !r.starts_with("States.")
                    && !crash_names.contains(r)
                {
                    assert!(
                        RETRYABLE_ERROR_NAMES.contains(r),
                        "{file}: {name} retries terminal error {r}"
                    );
                }
            }
            for c in state["Catch"].as_array().into_iter().flatten() {
                for e in c["ErrorEquals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                {
                    assert!(
                        e.starts_with("States.")
                            || e.starts_with("Lambda.")
                            || ERROR_NAMES.contains(&e)
                            || FAILURE_NAMES.contains(&e),
                        "{file}: {name} catches unknown error {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_placeholder_names_a_function_crate() {
    let mut crates = HashMap::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let p = entry.unwrap().path();
        if p.join("src/main.rs").exists() {
            let dir = p.file_name().unwrap().to_string_lossy().into_owned();
            let camel: String = dir
                .split('-')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            crates.insert(format!("{camel}FunctionArn"), dir);
        }
    }
    for (file, _) in machines() {
        let text = std::fs::read_to_string(root().join("statemachines").join(&file)).unwrap();
        let mut rest = text.as_str();
        let mut found = 0;
        while let Some(i) = rest.find("${") {
            let end = rest[i..].find('}').unwrap();
            let name = &rest[i + 2..i + end];
            assert!(
                crates.contains_key(name),
                "{file}: placeholder ${{{name}}} names no function crate"
            );
            found += 1;
            rest = &rest[i + end..];
        }
        assert!(found > 0, "{file}: no placeholders");
    }
}

/// Every `await` a restore wait passes is one the observe step knows, and the WAL check of
/// `check-wal-only` waits for `WalChecked` (every member `WarmUpComplete`, as the original).
#[test]
fn every_restore_wait_names_a_known_await_and_the_wal_check_waits_for_warmup() {
    use brfed_core::restore::judge::RestoreAwait;
    let (_, asl) = machines()
        .into_iter()
        .find(|(n, _)| n == "volume-restore.asl.json")
        .expect("volume-restore.asl.json");
    let mut waits = HashMap::new();
    for (name, state) in asl["States"].as_object().unwrap() {
        if let Some(a) = state["Parameters"]["await"].as_str() {
            let parsed: RestoreAwait = serde_json::from_value(Value::String(a.into()))
                .unwrap_or_else(|e| panic!("{name}: await `{a}` is not a RestoreAwait: {e}"));
            waits.insert(name.clone(), parsed);
        }
    }
    assert_eq!(
        waits.get("Wait For WAL Check"),
        Some(&RestoreAwait::WalChecked),
        "{waits:?}"
    );
    assert_eq!(
        waits.get("Wait For Restore Complete"),
        Some(&RestoreAwait::Complete)
    );
}
