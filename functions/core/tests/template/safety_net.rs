//! The safety net: abort, tick and sweep fail into one queue, which alarms (and so does a long
//! GC pause); configured as in the local world.

use super::*;

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
                && statement_resources(s)
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
    let text = signals_rs();
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

/// A backup or a restore that ends Failed sets an alarm of this stack: the status metric of the
/// ends (`STATUS_METRIC` of `VolumeBackupDoc` / `VolumeRestoreDoc` in signals.rs), by the `stack`
/// dimension the functions write (their `BRFED_CATALOG_BUCKET`) and `status` Failed, notifying
/// `AlarmTopicArn` when it is set.
#[test]
fn a_failed_backup_or_restore_of_this_stack_sets_its_alarm() {
    let t = template();
    let text = signals_rs();
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    for metric in ["fed_volume_backup_status", "fed_volume_restore_status"] {
        assert!(
            text.contains(&format!(
                "const STATUS_METRIC: &'static str = \"{metric}\";"
            )),
            "signals.rs emits {metric}"
        );
        let on: Vec<_> = alarms
            .iter()
            .filter(|(_, a)| a["Properties"]["MetricName"].as_str() == Some(metric))
            .collect();
        assert_eq!(on.len(), 1, "one alarm on {metric}");
        let (id, a) = on[0];
        let p = &a["Properties"];
        assert_eq!(p["Namespace"].as_str(), Some("brfed"), "{id}");
        let dims = one_or_many(&p["Dimensions"]);
        let dim = |name: &str| {
            dims.iter()
                .find(|d| d["Name"].as_str() == Some(name))
                .map(|d| d["Value"].clone())
                .unwrap_or_else(|| panic!("{id}: dimension {name}"))
        };
        assert_eq!(
            dims.len(),
            2,
            "{id}: stack and status, as signals.rs's BY_STACK"
        );
        assert_eq!(dim("stack"), stack_identity(&t), "{id}: this stack's");
        assert_eq!(dim("status").as_str(), Some("Failed"), "{id}");
        assert_eq!(p["Statistic"].as_str(), Some("Sum"), "{id}");
        assert_eq!(p["Threshold"].as_u64(), Some(0), "{id}: any failure");
        assert_eq!(
            p["ComparisonOperator"].as_str(),
            Some("GreaterThanThreshold"),
            "{id}"
        );
        for key in ["AlarmActions", "OKActions"] {
            assert_eq!(p[key]["Fn::If"][0].as_str(), Some("NotifyAlarms"), "{id}");
        }
    }
    assert!(
        text.contains(r#"const BY_STACK: &[&str] = &["stack", "status"];"#),
        "the dimension set the alarms read"
    );
}

/// A schedule without a `Complete` backup within its RPO sets an alarm of this stack: on the
/// count `retention-sweep` writes at every sweep (`BEYOND_RPO_METRIC` of signals.rs), by the one
/// `stack` dimension it writes (its `BRFED_CATALOG_BUCKET`), above 0, keeping its state between
/// sweeps (`ignore`: a sweep that stops running is the safety net's to report), notifying
/// `AlarmTopicArn` when it is set.
#[test]
fn a_schedule_beyond_its_rpo_sets_the_stacks_alarm() {
    let t = template();
    let text = signals_rs();
    let namespace = signals_const("METRIC_NAMESPACE");
    let metric = signals_const("BEYOND_RPO_METRIC");
    assert!(
        text.contains(r#"const BY_STACK_ALONE: &[&str] = &["stack"];"#),
        "the dimension set the alarm reads"
    );
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let on: Vec<_> = alarms
        .iter()
        .filter(|(_, a)| a["Properties"]["MetricName"].as_str() == Some(metric.as_str()))
        .collect();
    assert_eq!(on.len(), 1, "one alarm on {metric}");
    let (id, a) = on[0];
    let p = &a["Properties"];
    assert_eq!(
        p["AlarmName"]["Fn::Sub"].as_str(),
        Some("${NamePrefix}-schedule-rpo"),
        "{id}"
    );
    assert_eq!(p["Namespace"].as_str(), Some(namespace.as_str()), "{id}");
    let dims = one_or_many(&p["Dimensions"]);
    assert_eq!(dims.len(), 1, "{id}: stack alone");
    assert_eq!(dims[0]["Name"].as_str(), Some("stack"), "{id}");
    assert_eq!(dims[0]["Value"], stack_identity(&t), "{id}: this stack's");
    assert_eq!(p["Statistic"].as_str(), Some("Maximum"), "{id}");
    assert_eq!(p["Threshold"].as_u64(), Some(0), "{id}: any schedule");
    assert_eq!(
        p["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold"),
        "{id}"
    );
    assert_eq!(p["TreatMissingData"].as_str(), Some("ignore"), "{id}");
    for key in ["AlarmActions", "OKActions"] {
        assert_eq!(p[key]["Fn::If"][0].as_str(), Some("NotifyAlarms"), "{id}");
        assert_eq!(
            ref_of(&p[key]["Fn::If"][1][0]),
            Some("AlarmTopicArn"),
            "{id}"
        );
    }
}
