//! Schedules on fakes: management writes the catalog and the rule, the tick starts exactly the
//! backups it should (names, duplicates, running, paused, stale, groups), the sweep starts the
//! deletions retention asks for.

use brfed_core::catalog::{VolumeBackupDoc, backup_key};
use brfed_core::schedule::ScheduleRequest;
use brfed_core::scheduling::{self, SchedulerEnv, TickInput, schedule_key, tick_input_template};
use brfed_core::testing::{FakeExecutions, FakeRules, FakeStore};
use serde_json::{Value, json};

const CATALOG: &str = "catalog";
const BACKUP_SM: &str = "arn:sm:volume-backup";
const DELETE_SM: &str = "arn:sm:volume-backup-delete";
const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";

fn env<'a>(
    store: &'a FakeStore,
    x: &'a FakeExecutions,
) -> SchedulerEnv<'a, FakeStore, FakeExecutions> {
    SchedulerEnv {
        store,
        catalog_bucket: CATALOG,
        executions: x,
        backup_state_machine: BACKUP_SM,
        delete_state_machine: DELETE_SM,
    }
}

fn schedule(name: &str, extra_spec: Value, labels: Value) -> ScheduleRequest {
    let mut spec = json!({
        "schedule": "0 */6 * * *",
        "backupTemplate": {
            "clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"},
                         {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb"}],
            "template": {"br": {}, "s3": {"provider": "aws", "bucket": "data", "prefix": "prod"},
                         "cleanPolicy": "Delete"}}});
    if let Value::Object(m) = extra_spec {
        spec.as_object_mut().unwrap().extend(m);
    }
    ScheduleRequest::from_value(json!({
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackupSchedule",
        "metadata": {"name": name, "namespace": "br", "labels": labels},
        "spec": spec}))
    .unwrap()
}

fn tick_at(name: &str, time: &str) -> TickInput {
    TickInput {
        namespace: "br".into(),
        name: name.into(),
        time: time.into(),
    }
}

#[tokio::test]
async fn apply_writes_the_schedule_and_its_rule_and_keeps_the_status_on_update() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    let doc = scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(doc.brfed.expression, "cron(0 0/6 * * ? *)");
    let rule = rules
        .rules
        .lock()
        .unwrap()
        .get(&doc.brfed.rule)
        .cloned()
        .unwrap();
    assert!(rule.enabled);
    assert_eq!(rule.target_arn, TICK_FN);
    let input: Value = serde_json::from_str(
        &rule
            .input_template
            .replace("<time>", "2026-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        input,
        json!({"namespace": "br", "name": "daily", "time": "2026-01-01T00:00:00Z"})
    );
    assert_eq!(tick_input_template("br", "daily"), rule.input_template);

    scheduling::tick(&e, tick_at("daily", "2026-01-01T06:00:00Z"))
        .await
        .unwrap();
    let doc = scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule(
            "daily",
            json!({"schedule": "@daily", "pause": true}),
            json!({}),
        ),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        doc.status.last_backup.as_deref(),
        Some("daily-2026-01-01t06-00-00")
    );
    let rule = rules
        .rules
        .lock()
        .unwrap()
        .get(&doc.brfed.rule)
        .cloned()
        .unwrap();
    assert_eq!(
        (rule.expression.as_str(), rule.enabled),
        ("cron(0 0 * * ? *)", false)
    );
}

#[tokio::test]
async fn a_bad_schedule_is_refused_with_every_problem_and_nothing_written() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let bad = schedule(
        "weekly",
        json!({"schedule": "0 0 1 * 1", "maxReservedTime": "7d"}),
        json!({}),
    );
    let err = scheduling::apply(&env(&store, &x), &rules, TICK_FN, &bad, None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
    let msg = err.to_string();
    assert!(msg.contains("7d") && msg.contains("day-of-month"), "{msg}");
    assert!(store.get(CATALOG, &schedule_key("br", "weekly")).is_none());
    assert!(rules.rules.lock().unwrap().is_empty());
}

#[tokio::test]
async fn ticks_start_named_backups_once_and_never_beside_a_running_one() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();

    // Seconds of the event time are dropped: the tick is the minute.
    let t = scheduling::tick(&e, tick_at("daily", "2026-01-01T06:00:07Z"))
        .await
        .unwrap();
    assert_eq!(
        (t.result.as_str(), t.backup.as_str()),
        ("started", "daily-2026-01-01t06-00-00")
    );
    let (input, _) = x.runs.lock().unwrap()[&(BACKUP_SM.to_string(), t.backup.clone())].clone();
    assert_eq!(input["metadata"]["name"], "daily-2026-01-01t06-00-00");
    assert_eq!(input["metadata"]["namespace"], "br");
    assert_eq!(
        input["metadata"]["labels"]["tidb.pingcap.com/backup-schedule"],
        "daily"
    );
    assert_eq!(
        input["spec"]["template"]["s3"]["prefix"],
        "prod/-2026-01-01t06-00-00"
    );

    let dup = scheduling::tick(&e, tick_at("daily", "2026-01-01T06:00:00Z"))
        .await
        .unwrap();
    assert_eq!(dup.result, "duplicate");
    let busy = scheduling::tick(&e, tick_at("daily", "2026-01-01T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(busy.result, "lastBackupRunning");
    assert_eq!(x.names(BACKUP_SM).len(), 1, "nothing new started");

    x.set_status(BACKUP_SM, "daily-2026-01-01t06-00-00", "SUCCEEDED");
    let next = scheduling::tick(&e, tick_at("daily", "2026-01-01T18:00:00Z"))
        .await
        .unwrap();
    assert_eq!(next.result, "started");
    x.set_status(BACKUP_SM, &next.backup, "FAILED");
    let late = scheduling::tick(&e, tick_at("daily", "2026-01-01T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        late.result, "stale",
        "a late delivery of an older tick runs nothing"
    );

    scheduling::set_paused(&e, &rules, "br", "daily", true)
        .await
        .unwrap();
    let p = scheduling::tick(&e, tick_at("daily", "2026-01-02T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(p.result, "paused");
    assert!(!rules.rules.lock().unwrap().values().next().unwrap().enabled);
    scheduling::set_paused(&e, &rules, "br", "daily", false)
        .await
        .unwrap();
    let r = scheduling::tick(&e, tick_at("daily", "2026-01-02T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.result, "started");
    assert_eq!(x.names(BACKUP_SM).len(), 3);
}

#[tokio::test]
async fn a_group_runs_one_backup_at_a_time() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    let group = json!({"tidb.pingcap.com/backup-schedule-group": "g"});
    for n in ["a", "b"] {
        scheduling::apply(
            &e,
            &rules,
            TICK_FN,
            &schedule(n, json!({}), group.clone()),
            None,
        )
        .await
        .unwrap();
    }
    scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("c", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        scheduling::tick(&e, tick_at("a", "2026-01-01T06:00:00Z"))
            .await
            .unwrap()
            .result,
        "started"
    );
    assert_eq!(
        scheduling::tick(&e, tick_at("b", "2026-01-01T06:00:00Z"))
            .await
            .unwrap()
            .result,
        "lastBackupRunning"
    );
    assert_eq!(
        scheduling::tick(&e, tick_at("c", "2026-01-01T06:00:00Z"))
            .await
            .unwrap()
            .result,
        "started",
        "not in the group"
    );
}

#[tokio::test]
async fn an_unknown_schedule_is_named_and_management_of_it_too() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    let err = scheduling::tick(&e, tick_at("nope", "2026-01-01T06:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = scheduling::set_paused(&e, &rules, "br", "nope", true)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = scheduling::remove(&e, &rules, "br", "nope")
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = scheduling::tick(&e, tick_at("nope", "yesterday"))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
}

#[tokio::test]
async fn remove_deletes_the_rule_and_the_document_and_keeps_the_backups() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    put_backup(
        &store,
        "daily",
        "daily-2026-01-01t00-00-00",
        "2026-01-01T00:00:00Z",
        "Complete",
    );
    scheduling::remove(&e, &rules, "br", "daily").await.unwrap();
    assert!(rules.rules.lock().unwrap().is_empty());
    assert!(store.get(CATALOG, &schedule_key("br", "daily")).is_none());
    assert!(
        store
            .get(CATALOG, &backup_key("br", "daily-2026-01-01t00-00-00"))
            .is_some()
    );
    assert!(e.list(None).await.unwrap().is_empty());
}

fn put_backup(store: &FakeStore, schedule: &str, name: &str, created: &str, phase: &str) {
    let doc: VolumeBackupDoc = serde_json::from_value(json!({
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": name, "namespace": "br", "creationTimestamp": created,
                     "labels": {"tidb.pingcap.com/backup-schedule": schedule}},
        "spec": {"clusters": [], "template": {}},
        "status": {"phase": phase},
        "brfed": {"execution": name}}))
    .unwrap();
    store.put(
        CATALOG,
        &backup_key("br", name),
        serde_json::to_value(doc).unwrap(),
    );
}

#[tokio::test]
async fn the_sweep_starts_one_deletion_per_schedule_paused_or_not() {
    let (store, x, rules) = (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    );
    let e = env(&store, &x);
    scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("count", json!({"maxBackups": 1, "pause": true}), json!({})),
        None,
    )
    .await
    .unwrap();
    scheduling::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule(
            "age",
            json!({"maxReservedTime": "24h", "maxBackups": 100}),
            json!({}),
        ),
        None,
    )
    .await
    .unwrap();
    put_backup(
        &store,
        "count",
        "count-2026-01-01t00-00-00",
        "2026-01-01T00:00:00Z",
        "Complete",
    );
    put_backup(
        &store,
        "count",
        "count-2026-01-02t00-00-00",
        "2026-01-02T00:00:00Z",
        "Complete",
    );
    put_backup(
        &store,
        "count",
        "count-2026-01-03t00-00-00",
        "2026-01-03T00:00:00Z",
        "Running",
    );
    // Another schedule whose name starts the same: not this schedule's backup.
    put_backup(
        &store,
        "count-x",
        "count-x-2026-01-01t00-00-00",
        "2026-01-01T00:00:00Z",
        "Complete",
    );
    put_backup(
        &store,
        "age",
        "age-2026-01-01t00-00-00",
        "2026-01-01T00:00:00Z",
        "Complete",
    );
    put_backup(
        &store,
        "age",
        "age-2026-01-02t12-00-00",
        "2026-01-02T12:00:00Z",
        "Complete",
    );

    let out = scheduling::sweep(&e, &json!({"time": "2026-01-03T06:00:00Z"}))
        .await
        .unwrap();
    let by: std::collections::BTreeMap<_, _> = out
        .schedules
        .iter()
        .map(|s| (s.schedule.as_str(), s.deleting.clone()))
        .collect();
    assert_eq!(
        by["br/count"].as_deref(),
        Some("count-2026-01-01t00-00-00"),
        "{out:?}"
    );
    assert_eq!(
        by["br/age"].as_deref(),
        Some("age-2026-01-01t00-00-00"),
        "maxReservedTime wins"
    );
    let mut started = x.names(DELETE_SM);
    started.sort();
    assert_eq!(
        started,
        vec![
            "delete-br.age-2026-01-01t00-00-00-20260103T060000Z",
            "delete-br.count-2026-01-01t00-00-00-20260103T060000Z"
        ]
    );
    let (input, _) = x.runs.lock().unwrap()[&(DELETE_SM.to_string(), started[1].clone())].clone();
    assert_eq!(
        input,
        json!({"name": "count-2026-01-01t00-00-00", "namespace": "br"})
    );

    // Same sweep again (a duplicate delivery): nothing new.
    scheduling::sweep(&e, &json!({"time": "2026-01-03T06:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(x.names(DELETE_SM).len(), 2);
}
