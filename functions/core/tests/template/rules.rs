//! The rules of the template and the permissions EventBridge needs to invoke their targets: the
//! abort rule reaches `backup-abort`, the settle-check rule too, the retention sweep rule reaches
//! `retention-sweep`, and the CLI's schedule rules may invoke `schedule-tick`; each as the local
//! world's rule (`infra/local/rules.json`).

use super::*;

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
