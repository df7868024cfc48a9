//! The stack's CloudWatch dashboard (`AWS::CloudWatch::Dashboard`): its body is JSON once
//! CloudFormation fills its placeholders; every metric of namespace `brfed` it graphs is one the
//! functions write (`METRICS` of `functions/adapters/src/signals.rs`), under a dimension set they
//! write it with, and for this stack's identity where it selects one; its alarm widget shows every
//! alarm of the template; it graphs the safety-net queue, every state machine's failed, aborted
//! and timed-out executions and every function's errors and throttles; the `DashboardUrl`
//! output opens it.

use super::*;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The metrics the operator reads on the dashboard (docs/deploy.md, "Dashboard").
const GRAPHED: &[&str] = &[
    "fed_volume_backup_status",
    "fed_volume_restore_status",
    "fed_volume_backup_cleanup_status",
    "fed_volume_backup_total_time_sec",
    "fed_volume_backup_pause_window_sec",
    "GcPausedSeconds",
    "fed_volume_restore_total_time_sec",
    "fed_volume_backup_schedule_since_complete_sec",
    "SchedulesBeyondRpo",
];

/// Metric name → its dimension sets (each sorted), as `signals.rs` writes them.
type Written = BTreeMap<String, Vec<Vec<String>>>;

/// The value of `const NAME: <ty> = <value>;` (`pub` or not) in `text`.
fn const_value<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .map(|l| l.trim_start_matches("pub ").trim())
        .find_map(|l| l.strip_prefix(&format!("const {name}: ")))
        .and_then(|l| l.split_once(" = "))
        .map(|(_, v)| v.trim_end_matches(';'))
        .unwrap_or_else(|| panic!("signals.rs has no const {name}"))
}

/// The strings of `"a"` or `&["a", "b"]`.
fn literals(v: &str) -> Vec<String> {
    v.split('"').skip(1).step_by(2).map(String::from).collect()
}

/// `METRICS` of `signals.rs`: one `(name, &[SET, ...]),` a line, names and sets as literals or
/// constants of that file.
fn written() -> Written {
    let text = signals_rs();
    let resolve = |token: &str| -> Vec<String> {
        if token.starts_with('"') || token.starts_with("&[") {
            literals(token)
        } else {
            literals(const_value(&text, token))
        }
    };
    let mut out = Written::new();
    let mut rows = text
        .lines()
        .skip_while(|l| !l.starts_with("pub const METRICS: "))
        .skip(1);
    for line in rows.by_ref().take_while(|l| l.trim() != "];") {
        let row = line
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix("),"))
            .unwrap_or_else(|| panic!("METRICS: not one (name, &[sets]) a line: {line}"));
        let (name, sets) = row
            .split_once(", &[")
            .unwrap_or_else(|| panic!("METRICS: {line}"));
        let name = resolve(name.trim());
        assert_eq!(name.len(), 1, "METRICS: one name: {line}");
        let sets = sets
            .trim_end_matches(']')
            .split(", ")
            .map(|set| {
                let mut dims = resolve(set.trim());
                dims.sort();
                dims
            })
            .collect();
        out.insert(name[0].clone(), sets);
    }
    assert!(out.len() >= 5, "signals.rs's METRICS read: {out:?}");
    out
}

fn dashboard(t: &Value) -> (String, &Value) {
    let found = of_type(t, "AWS::CloudWatch::Dashboard");
    assert_eq!(found.len(), 1, "one dashboard");
    found.into_iter().next().unwrap()
}

/// The dashboard's `Fn::Sub` text and variables.
fn body_sub(t: &Value) -> (&str, &Mapping) {
    let (id, d) = dashboard(t);
    let sub = &d["Properties"]["DashboardBody"]["Fn::Sub"];
    let text = sub[0]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: DashboardBody is Fn::Sub [text, variables]"));
    let vars = sub[1]
        .as_mapping()
        .unwrap_or_else(|| panic!("{id}: DashboardBody's Fn::Sub has variables"));
    (text, vars)
}

/// `text` with each `${X}` as CloudFormation fills it, by a sample that names it: `var:X` (a
/// variable of the Fn::Sub), `param:X`, `us-west-2` (the region), `pseudo:X`, `att:R.A` (an
/// attribute of resource R), `ref:R`. Any other placeholder would fail the stack: it fails here.
fn fill(t: &Value, text: &str, vars: &Mapping) -> String {
    let placeholder = regex::Regex::new(r"\$\{([^}]*)\}").unwrap();
    placeholder
        .replace_all(text, |c: &regex::Captures| {
            let x = &c[1];
            if vars.contains_key(x) {
                format!("var:{x}")
            } else if !t["Parameters"][x].is_null() {
                format!("param:{x}")
            } else if x == "AWS::Region" {
                "us-west-2".to_string()
            } else if x.starts_with("AWS::") {
                format!("pseudo:{x}")
            } else if let Some((r, _)) = x.split_once('.') {
                assert!(!t["Resources"][r].is_null(), "${{{x}}}: no resource {r}");
                format!("att:{x}")
            } else {
                assert!(
                    !t["Resources"][x].is_null(),
                    "${{{x}}}: nothing of that name"
                );
                format!("ref:{x}")
            }
        })
        .into_owned()
}

fn parse_body(filled: &str) -> Json {
    serde_json::from_str(filled)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON once filled: {e}\n{filled}"))
}

fn body(t: &Value) -> Json {
    let (text, vars) = body_sub(t);
    parse_body(&fill(t, text, vars))
}

fn widgets(body: &Json) -> &Vec<Json> {
    body["widgets"]
        .as_array()
        .expect("the dashboard body has widgets")
}

/// One metric a widget graphs, written whole: namespace, name, dimensions (name, value).
#[derive(Debug)]
struct Plain {
    namespace: String,
    name: String,
    dims: Vec<(String, String)>,
}

/// One `SEARCH('{namespace,dim,...} MetricName="m" dim="v"', ...)` of an expression.
#[derive(Debug)]
struct Search {
    namespace: String,
    schema: Vec<String>,
    metric: Option<String>,
    terms: Vec<(String, String)>,
}

/// Every metric and every search of the metric widgets; what cannot be read (a `"."` shorthand,
/// a search without a schema) is a violation.
fn graphed(body: &Json) -> (Vec<Plain>, Vec<Search>, Vec<String>) {
    let search = regex::Regex::new(r"SEARCH\(\s*'([^']*)'").unwrap();
    let schema = regex::Regex::new(r"^\s*\{([^}]*)\}(.*)$").unwrap();
    let term = regex::Regex::new(r#"([A-Za-z_]+)\s*=\s*"([^"]*)""#).unwrap();
    let (mut plain, mut searches, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for w in widgets(body).iter().filter(|w| w["type"] == "metric") {
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts = m.as_array().map(Vec::as_slice).unwrap_or_default();
            if let Some(e) = parts.first().and_then(|p| p["expression"].as_str()) {
                for c in search.captures_iter(e) {
                    let Some(s) = schema.captures(&c[1]) else {
                        bad.push(format!("a search without a metric schema: {e}"));
                        continue;
                    };
                    let mut schema = s[1].split(',').map(|x| x.trim().to_string());
                    let namespace = schema.next().unwrap_or_default();
                    let mut terms: Vec<(String, String)> = term
                        .captures_iter(&s[2])
                        .map(|t| (t[1].to_string(), t[2].to_string()))
                        .collect();
                    let metric = terms
                        .iter()
                        .position(|(k, _)| k == "MetricName")
                        .map(|i| terms.remove(i).1);
                    searches.push(Search {
                        namespace,
                        schema: schema.collect(),
                        metric,
                        terms,
                    });
                }
                continue;
            }
            let strings: Vec<&str> = parts.iter().map_while(Json::as_str).collect();
            if strings.len() < 2 || !strings.len().is_multiple_of(2) || strings.contains(&".") {
                bad.push(format!("a metric not written whole: {m}"));
                continue;
            }
            plain.push(Plain {
                namespace: strings[0].into(),
                name: strings[1].into(),
                dims: strings[2..]
                    .chunks(2)
                    .map(|d| (d[0].into(), d[1].into()))
                    .collect(),
            });
        }
    }
    (plain, searches, bad)
}

/// What the dashboard graphs of namespace `brfed` that the functions do not write as graphed:
/// an unknown metric, a dimension set it is not written with.
fn unwritten(body: &Json, written: &Written) -> Vec<String> {
    let (plain, searches, mut bad) = graphed(body);
    let check = |name: &str, mut dims: Vec<String>, what: &str| {
        dims.sort();
        match written.get(name) {
            None => Some(format!("{what}: brfed writes no metric {name}")),
            Some(sets) if !sets.contains(&dims) => Some(format!(
                "{what}: brfed writes {name} by {sets:?}, never by {dims:?}"
            )),
            Some(_) => None,
        }
    };
    for p in plain.iter().filter(|p| p.namespace == "brfed") {
        let dims = p.dims.iter().map(|(k, _)| k.clone()).collect();
        bad.extend(check(&p.name, dims, &format!("{p:?}")));
    }
    for s in searches.iter().filter(|s| s.namespace == "brfed") {
        let what = format!("{s:?}");
        let Some(metric) = &s.metric else {
            bad.push(format!("{what}: a search of brfed names its MetricName"));
            continue;
        };
        for (k, _) in &s.terms {
            if !s.schema.contains(k) {
                bad.push(format!("{what}: {k} is not a dimension of its schema"));
            }
        }
        bad.extend(check(metric, s.schema.clone(), &what));
    }
    bad
}

#[test]
fn the_dashboard_is_named_per_region_and_its_body_is_json_once_filled() {
    let t = template();
    let (id, d) = dashboard(&t);
    assert_eq!(
        sub_text(&d["Properties"]["DashboardName"]),
        Some("${NamePrefix}-${AWS::Region}"),
        "{id}: dashboards are global to the account, NamePrefix is unique per region"
    );
    let b = body(&t);
    assert!(widgets(&b).len() >= 10, "{b}");
    for w in widgets(&b) {
        for key in ["x", "y", "width", "height"] {
            assert!(w[key].is_u64(), "{key} of {w}");
        }
        assert!(
            w["x"].as_u64().unwrap() + w["width"].as_u64().unwrap() <= 24,
            "{w}"
        );
        if w["type"] == "metric" {
            assert_eq!(
                w["properties"]["region"], "us-west-2",
                "a dashboard is global: each metric widget names the stack's region: {w}"
            );
        }
    }
}

#[test]
fn every_brfed_metric_on_the_dashboard_is_written_by_the_functions_with_that_dimension_set() {
    let t = template();
    let written = written();
    let b = body(&t);
    assert_eq!(unwritten(&b, &written), Vec::<String>::new());

    let (plain, searches, _) = graphed(&b);
    let names: BTreeSet<&str> = plain
        .iter()
        .filter(|p| p.namespace == "brfed")
        .map(|p| p.name.as_str())
        .chain(searches.iter().filter_map(|s| s.metric.as_deref()))
        .collect();
    for m in GRAPHED {
        assert!(names.contains(m), "the dashboard graphs {m}");
    }

    // This stack's counters: its identity, as its alarms and functions have it.
    let (_, vars) = body_sub(&t);
    assert_eq!(
        vars.get("Stack").cloned(),
        Some(stack_identity(&t)),
        "the Stack variable is BRFED_CATALOG_BUCKET's value"
    );
    for p in plain.iter().filter(|p| p.namespace == "brfed") {
        for (k, v) in &p.dims {
            if k == "stack" {
                assert_eq!(v, "var:Stack", "{p:?}");
            }
        }
    }
}

#[test]
fn a_misspelled_metric_or_a_dimension_set_never_written_is_caught() {
    let t = template();
    let written = written();
    let (text, vars) = body_sub(&t);
    let filled = fill(&t, text, vars);
    for (from, to) in [
        (
            "\"fed_volume_backup_status\"",
            "\"fed_volume_backups_status\"",
        ),
        (
            r#"MetricName=\"fed_volume_backup_pause_window_sec\""#,
            r#"MetricName=\"fed_volume_backup_pause_window_secs\""#,
        ),
        (
            r#"{brfed,namespace,tc} MetricName=\"GcPausedSeconds\""#,
            r#"{brfed,namespace} MetricName=\"GcPausedSeconds\""#,
        ),
        (r#""stack", "var:Stack", "#, ""),
    ] {
        assert!(filled.contains(from), "the body has {from}");
        let broken = parse_body(&filled.replacen(from, to, 1));
        assert!(
            !unwritten(&broken, &written).is_empty(),
            "{from} → {to} must be caught"
        );
    }
}

#[test]
fn the_alarm_widget_shows_every_alarm_of_the_template() {
    let t = template();
    let b = body(&t);
    let shown: BTreeSet<String> = widgets(&b)
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| {
            w["properties"]["alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|a| a.as_str().expect("alarm ARNs").to_string())
        .collect();
    let alarms: BTreeSet<String> = of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, _)| format!("att:{id}.Arn"))
        .collect();
    assert!(!alarms.is_empty());
    assert_eq!(shown, alarms);
}

/// Whether the dashboard graphs `namespace`/`name` with the one dimension `dim` = `value`.
fn graphs(plain: &[Plain], namespace: &str, name: &str, dim: &str, value: &str) -> bool {
    plain.iter().any(|p| {
        p.namespace == namespace
            && p.name == name
            && p.dims == [(dim.to_string(), value.to_string())]
    })
}

#[test]
fn the_queue_every_state_machine_and_every_function_have_their_failures_graphed() {
    let t = template();
    let (plain, _, bad) = graphed(&body(&t));
    assert_eq!(bad, Vec::<String>::new());
    let queues = of_type(&t, "AWS::SQS::Queue");
    assert!(!queues.is_empty());
    for (id, _) in &queues {
        assert!(
            graphs(
                &plain,
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                &format!("att:{id}.QueueName")
            ),
            "{id}'s depth"
        );
    }
    let machines = of_type(&t, "AWS::StepFunctions::StateMachine");
    assert_eq!(machines.len(), asl_files().len());
    for (id, _) in &machines {
        for m in [
            "ExecutionsFailed",
            "ExecutionsAborted",
            "ExecutionsTimedOut",
        ] {
            assert!(
                graphs(
                    &plain,
                    "AWS/States",
                    m,
                    "StateMachineArn",
                    &format!("ref:{id}")
                ),
                "{id}: {m}"
            );
        }
    }
    for krate in function_crates() {
        for m in ["Errors", "Throttles"] {
            let f = format!("ref:{}", function_id(&krate));
            assert!(
                graphs(&plain, "AWS/Lambda", m, "FunctionName", &f),
                "{krate}: {m}"
            );
        }
    }
}

#[test]
fn the_dashboard_url_output_opens_it_in_its_region() {
    let t = template();
    let (id, _) = dashboard(&t);
    assert_eq!(
        sub_text(&t["Outputs"]["DashboardUrl"]["Value"]),
        Some(
            format!(
                "https://${{AWS::Region}}.console.aws.amazon.com/cloudwatch/home?region=${{AWS::Region}}#dashboards:name=${{{id}}}"
            )
            .as_str()
        )
    );
}
