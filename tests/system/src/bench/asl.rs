//! A small walker of brfed's own ASL (the files under `statemachines/`, compiled in): it applies
//! `InputPath`, `Parameters`, `ResultPath`, `OutputPath`, `Catch` and `Choice` rules the way Step
//! Functions does, with scripted Task results, and counts what an execution of that path costs:
//! states entered, history events, and the largest payload (state input/output, Lambda input and
//! output). Only the ASL features brfed's state machines use are implemented: paths of the form
//! `$`, `$.a.b`, `$$.Execution.Id` and `$$.State.EnteredTime`; `StringEquals`, `NumericEquals`, `BooleanEquals` and `And`
//! rules; `Task`, `Choice`, `Pass`, `Wait`, `Succeed`, `Fail`. Retries are not walked (a retried
//! attempt adds events, not payload).

use serde_json::{Map, Value};

/// `statemachines/volume-backup.asl.json`.
pub const BACKUP: &str = include_str!("../../../../statemachines/volume-backup.asl.json");
/// `statemachines/volume-restore.asl.json`.
pub const RESTORE: &str = include_str!("../../../../statemachines/volume-restore.asl.json");
/// `statemachines/volume-backup-delete.asl.json`.
pub const DELETE: &str = include_str!("../../../../statemachines/volume-backup-delete.asl.json");

/// History events of one state of each type, as Step Functions (and the emulator) writes them:
/// a Lambda Task is `TaskStateEntered`, `LambdaFunctionScheduled`, `LambdaFunctionStarted`,
/// `LambdaFunctionSucceeded|Failed`, `TaskStateExited`; other states an entered and an exited
/// event; a `Fail` state only its entered event (the execution's end event follows).
pub fn events_of(state_type: &str) -> usize {
    match state_type {
        "Task" => 5,
        "Fail" => 1,
        _ => 2,
    }
}

/// What one walk cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Walk {
    /// States entered (= state transitions as the bench counts them).
    pub states_entered: usize,
    /// Task states entered (= Lambda invocations, retries aside).
    pub tasks_entered: usize,
    /// History events, `ExecutionStarted` and the end event included.
    pub history_events: usize,
    /// Largest payload seen, bytes.
    pub largest_payload_bytes: usize,
    /// Where it was seen (`state name: what`).
    pub largest_at: String,
    /// `Succeed` or `Fail` state the walk ended in.
    pub ended_in: String,
}

impl Walk {
    fn see(&mut self, state: &str, what: &str, v: &Value) {
        let n = v.to_string().len();
        if n > self.largest_payload_bytes {
            self.largest_payload_bytes = n;
            self.largest_at = format!("{state}: {what}");
        }
    }
}

/// A Task's scripted answer: `Ok(output)` or `Err({"Error": ..., "Cause": ...})`.
pub type TaskResult = Result<Value, Value>;

/// The function crate a Task `Resource` placeholder names: `${BackupStartFunctionArn}` →
/// `backup-start`.
pub fn crate_of(resource: &str) -> String {
    let camel = resource
        .trim_start_matches("${")
        .trim_end_matches('}')
        .trim_end_matches("FunctionArn");
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    let mut cur = doc;
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn select(doc: &Value, path: Option<&Value>, execution: &str) -> Value {
    match path.and_then(Value::as_str) {
        None | Some("$") => doc.clone(),
        Some("$$.Execution.Id") => Value::String(execution.into()),
        // (as long as Step Functions writes it)
        Some("$$.State.EnteredTime") => Value::String("2026-01-01T00:00:00.000Z".into()),
        Some(p) => get(doc, p).cloned().unwrap_or(Value::Null),
    }
}

fn parameters(template: &Value, input: &Value, execution: &str) -> Value {
    match template {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.strip_suffix(".$") {
                    Some(key) => {
                        out.insert(key.into(), select(input, Some(v), execution));
                    }
                    None => {
                        out.insert(k.clone(), parameters(v, input, execution));
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn put(doc: &Value, result_path: Option<&Value>, result: Value) -> Value {
    let path = match result_path {
        None => "$",
        Some(Value::Null) => return doc.clone(),
        Some(p) => p.as_str().unwrap_or("$"),
    };
    if path == "$" {
        return result;
    }
    let mut out = doc.clone();
    let parts: Vec<&str> = path
        .trim_start_matches('$')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut cur = &mut out;
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let m = cur.as_object_mut().expect("an object");
        if i + 1 == parts.len() {
            m.insert((*part).into(), result);
            break;
        }
        cur = m.entry(*part).or_insert_with(|| Value::Object(Map::new()));
    }
    out
}

fn rule_holds(rule: &Value, doc: &Value) -> bool {
    if let Some(all) = rule.get("And").and_then(Value::as_array) {
        return all.iter().all(|r| rule_holds(r, doc));
    }
    let var = rule
        .get("Variable")
        .and_then(Value::as_str)
        .and_then(|p| get(doc, p));
    let Some(var) = var else { return false };
    if let Some(s) = rule.get("StringEquals") {
        return var == s;
    }
    if let Some(n) = rule.get("NumericEquals").and_then(Value::as_f64) {
        return var.as_f64() == Some(n);
    }
    if let Some(b) = rule.get("BooleanEquals") {
        return var == b;
    }
    false
}

/// Walks `definition` from its `StartAt` with execution input `input`; `task(crate, state,
/// lambda_input)` answers each Task. Panics on a definition it does not understand, or after
/// 1,000,000 states (a script that never ends a loop).
pub fn walk(
    definition: &str,
    input: Value,
    execution: &str,
    task: &mut dyn FnMut(&str, &str, &Value) -> TaskResult,
) -> Walk {
    let def: Value = serde_json::from_str(definition).expect("ASL JSON");
    let states = &def["States"];
    let mut w = Walk {
        history_events: 2,
        ..Default::default()
    };
    w.see("execution", "input", &input);
    let mut doc = input;
    let mut name = def["StartAt"].as_str().expect("StartAt").to_string();
    loop {
        assert!(w.states_entered < 1_000_000, "walk does not end");
        let st = &states[&name];
        let ty = st["Type"]
            .as_str()
            .unwrap_or_else(|| panic!("state {name}"));
        w.states_entered += 1;
        if ty == "Task" {
            w.tasks_entered += 1;
        }
        w.history_events += events_of(ty);
        w.see(&name, "state input", &doc);
        let effective = select(&doc, st.get("InputPath"), execution);
        let next = match ty {
            "Task" => {
                let params = match st.get("Parameters") {
                    Some(p) => parameters(p, &effective, execution),
                    None => effective,
                };
                w.see(&name, "Lambda input", &params);
                let krate = crate_of(st["Resource"].as_str().expect("Resource"));
                match task(&krate, &name, &params) {
                    Ok(out) => {
                        w.see(&name, "Lambda output", &out);
                        doc = put(&doc, st.get("ResultPath"), out);
                        st["Next"].as_str().map(String::from)
                    }
                    Err(err) => {
                        w.see(&name, "error", &err);
                        let error = err["Error"].as_str().unwrap_or_default().to_string();
                        let catch = st["Catch"].as_array().and_then(|cs| {
                            cs.iter().find(|c| {
                                c["ErrorEquals"].as_array().is_some_and(|e| {
                                    e.iter().any(|n| n == "States.ALL" || *n == error)
                                })
                            })
                        });
                        match catch {
                            Some(c) => {
                                doc = put(&doc, c.get("ResultPath"), err);
                                c["Next"].as_str().map(String::from)
                            }
                            None => {
                                w.ended_in = format!("{name} (uncaught {error})");
                                w.see(&name, "state output", &doc);
                                return w;
                            }
                        }
                    }
                }
            }
            "Choice" => {
                let hit = st["Choices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|r| rule_holds(r, &doc));
                Some(
                    hit.map(|r| &r["Next"])
                        .unwrap_or(&st["Default"])
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: no choice and no Default"))
                        .to_string(),
                )
            }
            "Pass" => {
                let result = match (st.get("Result"), st.get("Parameters")) {
                    (Some(r), _) => r.clone(),
                    (None, Some(p)) => parameters(p, &effective, execution),
                    (None, None) => effective,
                };
                doc = put(&doc, st.get("ResultPath"), result);
                st["Next"].as_str().map(String::from)
            }
            "Wait" => st["Next"].as_str().map(String::from),
            "Succeed" | "Fail" => None,
            other => panic!("state {name}: type {other} is not walked"),
        };
        if ty != "Fail" {
            doc = select(&doc, st.get("OutputPath"), execution);
            w.see(&name, "state output", &doc);
        }
        match next {
            Some(n) => name = n,
            None => {
                w.ended_in = name;
                return w;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resources_name_their_crates() {
        assert_eq!(crate_of("${BackupStartFunctionArn}"), "backup-start");
        assert_eq!(crate_of("${BackupResumeGcFunctionArn}"), "backup-resume-gc");
    }

    #[test]
    fn result_paths_merge_like_step_functions() {
        let d = json!({"a": 1});
        assert_eq!(
            put(&d, Some(&json!("$.b.c")), json!(2)),
            json!({"a": 1, "b": {"c": 2}})
        );
        assert_eq!(put(&d, Some(&json!("$")), json!(3)), json!(3));
        assert_eq!(put(&d, Some(&Value::Null), json!(3)), d);
    }

    #[test]
    fn a_pass_state_with_parameters_puts_only_them() {
        let def = json!({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Parameters": {"name": "Settle", "startedAt.$": "$$.State.EnteredTime"},
                  "ResultPath": "$.phase", "Next": "E"},
            "E": {"Type": "Succeed"}}});
        let w = walk(
            &def.to_string(),
            json!({"a": 1}),
            "arn:x",
            &mut |_, _, _| unreachable!("no Task"),
        );
        assert_eq!(w.states_entered, 2);
        assert_eq!(w.ended_in, "E");
        let out =
            json!({"a": 1, "phase": {"name": "Settle", "startedAt": "2026-01-01T00:00:00.000Z"}});
        assert_eq!(
            w.largest_payload_bytes,
            out.to_string().len(),
            "{}",
            w.largest_at
        );
    }
}
