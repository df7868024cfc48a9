//! Schedules on fakes: management writes the catalog and the rule, the tick starts exactly the
//! backups it should (names, duplicates, running, paused, stale, groups), the sweep starts the
//! deletions retention asks for.

use brfed_core::backup::spec::{BackupRequest, ScheduledBy};
use brfed_core::backup::status::{VolumeBackupDoc, backup_key};
use brfed_core::execution;
use brfed_core::names::execution_name;
use brfed_core::ports::Executions;
use brfed_core::schedule;
use brfed_core::schedule::spec::ScheduleRequest;
use brfed_core::schedule::status::schedule_key;
use brfed_core::schedule::steps::TickInput;
use brfed_core::schedule::steps::{SchedulerEnv, tick_input_template};
use brfed_core::testing::{FakeExecutions, FakeRules, FakeStore};
use chrono::{DateTime, Utc};
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

/// An empty catalog, Step Functions and EventBridge.
fn fakes() -> (FakeStore, FakeExecutions, FakeRules) {
    (
        FakeStore::default(),
        FakeExecutions::default(),
        FakeRules::default(),
    )
}

fn schedule(name: &str, extra_spec: Value, labels: Value) -> ScheduleRequest {
    schedule_in("br", name, extra_spec, labels)
}

fn schedule_in(ns: &str, name: &str, extra_spec: Value, labels: Value) -> ScheduleRequest {
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
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec}))
    .unwrap()
}

/// The function's clock in these tests: a day after the first tick.
fn now() -> DateTime<Utc> {
    at("2026-01-02T06:00:00Z")
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

fn tick_in(name: &str, time: &str) -> TickInput {
    TickInput {
        namespace: "br".into(),
        name: name.into(),
        time: time.into(),
    }
}

#[tokio::test]
async fn apply_writes_the_schedule_and_its_rule_and_keeps_the_status_on_update() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let doc = schedule::steps::apply(
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

    schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T06:00:00Z"), now())
        .await
        .unwrap();
    let doc = schedule::steps::apply(
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
    let (store, x, rules) = fakes();
    let bad = schedule(
        "weekly",
        json!({"schedule": "0 0 1 * 1", "maxReservedTime": "7d"}),
        json!({}),
    );
    let err = schedule::steps::apply(&env(&store, &x), &rules, TICK_FN, &bad, None)
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
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();

    // Seconds of the event time are dropped: the tick is the minute.
    let t = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T06:00:07Z"), now())
        .await
        .unwrap();
    assert_eq!(
        (t.result.as_str(), t.backup.as_str()),
        ("started", "daily-2026-01-01t06-00-00")
    );
    let (input, _) =
        x.runs.lock().unwrap()[&(BACKUP_SM.to_string(), execution_name("br", &t.backup))].clone();
    assert_eq!(
        input["scheduledBy"],
        json!({"namespace": "br", "name": "daily"}),
        "the tick records that the schedule made it, beside the VolumeBackup"
    );
    let vb = &input["volumeBackup"];
    assert_eq!(vb["metadata"]["name"], "daily-2026-01-01t06-00-00");
    assert_eq!(vb["metadata"]["namespace"], "br");
    assert_eq!(
        vb["metadata"]["labels"]["tidb.pingcap.com/backup-schedule"],
        "daily"
    );
    assert_eq!(
        vb["spec"]["template"]["s3"]["prefix"],
        "prod/-2026-01-01t06-00-00"
    );
    // What backup-start reads back, and records in the catalog document.
    let req = BackupRequest::from_value(input.clone()).unwrap();
    req.validate(None).unwrap();
    assert_eq!(
        req.scheduled_by,
        Some(ScheduledBy {
            namespace: "br".into(),
            name: "daily".into()
        })
    );

    let dup = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T06:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(dup.result, "duplicate");
    let busy = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T12:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(busy.result, "lastBackupRunning");
    assert_eq!(x.names(BACKUP_SM).len(), 1, "nothing new started");

    x.set_status(BACKUP_SM, "br.daily-2026-01-01t06-00-00", "SUCCEEDED");
    let next = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T18:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(next.result, "started");
    x.set_status(BACKUP_SM, &execution_name("br", &next.backup), "FAILED");
    let late = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-01T12:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(
        late.result, "stale",
        "a late delivery of an older tick runs nothing"
    );

    schedule::steps::set_paused(&e, &rules, "br", "daily", true)
        .await
        .unwrap();
    let p = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T00:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(p.result, "paused");
    assert!(!rules.rules.lock().unwrap().values().next().unwrap().enabled);
    schedule::steps::set_paused(&e, &rules, "br", "daily", false)
        .await
        .unwrap();
    let r = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T00:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(r.result, "started");
    assert_eq!(x.names(BACKUP_SM).len(), 3);
}

#[tokio::test]
async fn a_group_runs_one_backup_at_a_time() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let group = json!({"tidb.pingcap.com/backup-schedule-group": "g"});
    for n in ["a", "b"] {
        schedule::steps::apply(
            &e,
            &rules,
            TICK_FN,
            &schedule(n, json!({}), group.clone()),
            None,
        )
        .await
        .unwrap();
    }
    schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("c", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        schedule::steps::tick_at(&e, tick_in("a", "2026-01-01T06:00:00Z"), now())
            .await
            .unwrap()
            .result,
        "started"
    );
    assert_eq!(
        schedule::steps::tick_at(&e, tick_in("b", "2026-01-01T06:00:00Z"), now())
            .await
            .unwrap()
            .result,
        "lastBackupRunning"
    );
    assert_eq!(
        schedule::steps::tick_at(&e, tick_in("c", "2026-01-01T06:00:00Z"), now())
            .await
            .unwrap()
            .result,
        "started",
        "not in the group"
    );
}

#[tokio::test]
async fn an_unknown_schedule_is_named_and_management_of_it_too() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let err = schedule::steps::tick_at(&e, tick_in("nope", "2026-01-01T06:00:00Z"), now())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = schedule::steps::set_paused(&e, &rules, "br", "nope", true)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = schedule::steps::remove(&e, &rules, "br", "nope")
        .await
        .unwrap_err();
    assert_eq!(err.name(), "ScheduleNotFound");
    let err = schedule::steps::tick_at(&e, tick_in("nope", "yesterday"), now())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
}

#[tokio::test]
async fn remove_deletes_the_rule_and_the_document_and_keeps_the_backups() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    schedule::steps::apply(
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
    schedule::steps::remove(&e, &rules, "br", "daily")
        .await
        .unwrap();
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
    put_backup_in(store, "br", Some(schedule), schedule, name, created, phase);
}

/// A backup document in `ns`, made by the tick of schedule `by` (none: a manual backup), with
/// the schedule label `label`.
fn put_backup_in(
    store: &FakeStore,
    ns: &str,
    by: Option<&str>,
    label: &str,
    name: &str,
    created: &str,
    phase: &str,
) {
    let mut brfed = json!({"execution": name});
    if let Some(by) = by {
        brfed["scheduledBy"] = json!({"namespace": ns, "name": by});
    }
    put_doc(
        store,
        json!({"name": name, "namespace": ns, "creationTimestamp": created,
               "labels": {"tidb.pingcap.com/backup-schedule": label}}),
        phase,
        brfed,
    );
}

/// A backup document of `metadata`, `status.phase` and `brfed`, in the catalog.
fn put_doc(store: &FakeStore, metadata: Value, phase: &str, brfed: Value) {
    let doc: VolumeBackupDoc = serde_json::from_value(json!({
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
        "metadata": metadata,
        "spec": {"clusters": [], "template": {}},
        "status": {"phase": phase},
        "brfed": brfed}))
    .unwrap();
    store.put(
        CATALOG,
        &backup_key(
            doc.metadata.meta.namespace.as_str(),
            doc.metadata.meta.name.as_str(),
        ),
        serde_json::to_value(doc).unwrap(),
    );
}

#[tokio::test]
async fn the_sweep_starts_one_deletion_per_schedule_paused_or_not() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("count", json!({"maxBackups": 1, "pause": true}), json!({})),
        None,
    )
    .await
    .unwrap();
    schedule::steps::apply(
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

    let out = schedule::steps::sweep_at(
        &e,
        &json!({"time": "2026-01-03T06:00:00Z"}),
        at("2026-01-03T06:00:10Z"),
    )
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
    schedule::steps::sweep_at(
        &e,
        &json!({"time": "2026-01-03T06:00:00Z"}),
        at("2026-01-03T06:00:10Z"),
    )
    .await
    .unwrap();
    assert_eq!(x.names(DELETE_SM).len(), 2);
}

#[tokio::test]
async fn a_manual_backup_carrying_the_schedule_label_is_not_its_retentions() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let count = schedule("count", json!({"maxBackups": 1}), json!({}));
    schedule::steps::apply(&e, &rules, TICK_FN, &count, None)
        .await
        .unwrap();
    // Named and labelled like the schedule's oldest backup, but made by hand.
    put_backup_in(
        &store,
        "br",
        None,
        "count",
        "count-2000-01-01t00-00-00",
        "2000-01-01T00:00:00Z",
        "Complete",
    );
    // Made by the tick of a schedule of the same name in another namespace.
    put_backup_in(
        &store,
        "other",
        Some("count"),
        "count",
        "count-2000-01-01t00-00-00",
        "2000-01-01T00:00:00Z",
        "Complete",
    );
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
    let out = schedule::steps::sweep_at(&e, &json!({}), at("2026-01-03T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        out.schedules[0].deleting.as_deref(),
        Some("count-2026-01-01t00-00-00"),
        "{out:?}"
    );
    assert_eq!(
        x.names(DELETE_SM),
        vec!["delete-br.count-2026-01-01t00-00-00-20260103T000000Z"]
    );
}

#[tokio::test]
async fn the_same_schedule_name_in_two_namespaces_backs_up_and_expires_both() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    for ns in ["team-a", "team-b"] {
        let s = schedule_in(ns, "nightly", json!({"maxBackups": 1}), json!({}));
        schedule::steps::apply(&e, &rules, TICK_FN, &s, None)
            .await
            .unwrap();
    }
    for ns in ["team-a", "team-b"] {
        let t = schedule::steps::tick_at(
            &e,
            TickInput {
                namespace: ns.into(),
                name: "nightly".into(),
                time: "2026-01-02T06:00:00Z".into(),
            },
            now(),
        )
        .await
        .unwrap();
        assert_eq!(t.result, "started", "{ns}: {t:?}");
        assert_eq!(t.backup, "nightly-2026-01-02t06-00-00");
    }
    assert_eq!(
        x.names(BACKUP_SM),
        vec![
            "team-a.nightly-2026-01-02t06-00-00",
            "team-b.nightly-2026-01-02t06-00-00"
        ]
    );

    for ns in ["team-a", "team-b"] {
        for (name, created) in [
            ("nightly-2026-01-01t06-00-00", "2026-01-01T06:00:00Z"),
            ("nightly-2026-01-02t06-00-00", "2026-01-02T06:00:00Z"),
        ] {
            put_backup_in(
                &store,
                ns,
                Some("nightly"),
                "nightly",
                name,
                created,
                "Complete",
            );
        }
    }
    let out = schedule::steps::sweep_at(&e, &json!({}), now())
        .await
        .unwrap();
    let mut started = x.names(DELETE_SM);
    started.sort();
    assert_eq!(
        started,
        vec![
            "delete-team-a.nightly-2026-01-01t06-00-00-20260102T060000Z",
            "delete-team-b.nightly-2026-01-01t06-00-00-20260102T060000Z"
        ],
        "{out:?}"
    );
    for s in &out.schedules {
        assert!(!s.reason.contains("started before"), "{s:?}");
    }
    let (input, _) = x.runs.lock().unwrap()[&(
        DELETE_SM.to_string(),
        "delete-team-b.nightly-2026-01-01t06-00-00-20260102T060000Z".to_string(),
    )]
        .clone();
    assert_eq!(
        input,
        json!({"name": "nightly-2026-01-01t06-00-00", "namespace": "team-b"})
    );
}

#[tokio::test]
async fn ticks_and_sweeps_dated_outside_the_window_are_refused_and_change_nothing() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({"maxReservedTime": "1h"}), json!({})),
        None,
    )
    .await
    .unwrap();
    let before = store.get(CATALOG, &schedule_key("br", "daily"));
    for time in [
        "2026-01-03T06:00:00Z", // a day ahead
        "2026-01-02T06:05:01Z", // 301 s ahead
        "2025-12-31T23:59:59Z", // 30 h 1 s behind
        "1970-01-01T00:00:00Z",
    ] {
        let err = schedule::steps::tick_at(&e, tick_in("daily", time), now())
            .await
            .unwrap_err();
        assert_eq!(err.name(), "EventTimeOutOfRange", "{time}: {err}");
    }
    assert_eq!(store.get(CATALOG, &schedule_key("br", "daily")), before);
    assert!(x.names(BACKUP_SM).is_empty());

    // Later ticks still run: the refused one left no trace.
    let t = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T06:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(t.result, "started", "{t:?}");

    // The sweep: a day ahead is refused; a few minutes ahead judges as of its own clock.
    put_backup(
        &store,
        "daily",
        "daily-2026-01-02t05-01-00",
        "2026-01-02T05:01:00Z",
        "Complete",
    );
    let err = schedule::steps::sweep_at(&e, &json!({"time": "2026-01-03T06:00:00Z"}), now())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "EventTimeOutOfRange");
    assert!(x.names(DELETE_SM).is_empty(), "nothing expired early");
    let out = schedule::steps::sweep_at(&e, &json!({"time": "2026-01-02T06:04:00Z"}), now())
        .await
        .unwrap();
    assert_eq!(
        out.now, "2026-01-02T06:00:00Z",
        "never later than the clock"
    );
    assert_eq!(
        out.schedules[0].deleting, None,
        "59 min old at the clock's now, 63 min at the event's: {out:?}"
    );
    // A late delivery judges as of when it was due.
    let out = schedule::steps::sweep_at(&e, &json!({"time": "2026-01-02T05:00:00Z"}), now())
        .await
        .unwrap();
    assert_eq!(out.now, "2026-01-02T05:00:00Z");
    let err = schedule::steps::sweep_at(&e, &json!({"time": 5}), now())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
    assert_eq!(out.schedules[0].deleting, None, "{out:?}");
    assert!(x.names(DELETE_SM).is_empty());
    let out = schedule::steps::sweep_at(&e, &json!({}), at("2026-01-02T06:04:00Z"))
        .await
        .unwrap();
    assert_eq!(
        out.schedules[0].deleting.as_deref(),
        Some("daily-2026-01-02t05-01-00"),
        "63 min old at the clock's now: {out:?}"
    );
}

#[tokio::test]
async fn a_stopped_backup_whose_document_has_not_ended_blocks_the_next_tick() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("daily", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    let first = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T00:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(first.result, "started");
    // Stopped: the execution has ended, its members still run until backup-abort has asked
    // them to tear down and marked the document.
    x.set_status(BACKUP_SM, &execution_name("br", &first.backup), "ABORTED");
    put_backup(
        &store,
        "daily",
        &first.backup,
        "2026-01-02T00:00:01Z",
        "Running",
    );
    let busy = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T01:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(busy.result, "lastBackupRunning", "{busy:?}");
    assert!(
        busy.reason.as_deref().unwrap_or("").contains("Running"),
        "{busy:?}"
    );
    assert_eq!(x.names(BACKUP_SM).len(), 1);

    // Failed by backup-abort, but a member still runs: the tick still waits.
    put_backup(
        &store,
        "daily",
        &first.backup,
        "2026-01-02T00:00:01Z",
        "Failed",
    );
    let key = backup_key("br", &first.backup);
    let mut doc = store.get(CATALOG, &key).unwrap();
    doc["brfed"]["membersSettled"] = json!(false);
    doc["brfed"]["unsettledMembers"] = json!(["dp2/tidb/fed-x VolumeBackupSnapshotsCreated"]);
    store.put(CATALOG, &key, doc.clone());
    let still = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T01:30:00Z"), now())
        .await
        .unwrap();
    assert_eq!(still.result, "lastBackupRunning", "{still:?}");
    assert!(
        still
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("dp2/tidb/fed-x"),
        "{still:?}"
    );
    assert_eq!(x.names(BACKUP_SM).len(), 1);

    doc["brfed"]["membersSettled"] = json!(true);
    doc["brfed"]["unsettledMembers"] = json!([]);
    store.put(CATALOG, &key, doc);
    let next = schedule::steps::tick_at(&e, tick_in("daily", "2026-01-02T02:00:00Z"), now())
        .await
        .unwrap();
    assert_eq!(next.result, "started", "{next:?}");
}

/// The safety net's own net: every sweep asks `backup-abort` again about each backup whose
/// execution ended (stopped, timed out, failed) while a member was not asked to tear down yet or
/// still ran, with the execution's own status change as the event's `detail`; never about a
/// settled backup, one whose execution still runs, or one of another state machine.
#[tokio::test]
async fn the_sweep_asks_abort_again_about_ended_backups_whose_members_had_not_settled() {
    let (store, x) = (FakeStore::default(), FakeExecutions::default());
    let e = env(&store, &x);
    let cases = [
        (
            "running",
            BACKUP_SM,
            "ABORTED",
            "Failed",
            json!({"membersSettled": false, "unsettledMembers": ["dp2/tidb/basic/fed-running execute"]}),
        ),
        (
            "pending",
            BACKUP_SM,
            "TIMED_OUT",
            "Running",
            json!({"teardownPending": ["dp1/tidb/basic/fed-pending: connection refused"]}),
        ),
        (
            "settled",
            BACKUP_SM,
            "ABORTED",
            "Failed",
            json!({"membersSettled": true}),
        ),
        (
            "executing",
            BACKUP_SM,
            "RUNNING",
            "Running",
            json!({"teardownPending": ["dp1/tidb/basic/fed-executing: connection refused"]}),
        ),
        (
            "elsewhere",
            "arn:sm:another-volume-backup",
            "ABORTED",
            "Failed",
            json!({"membersSettled": false}),
        ),
    ];
    for (name, sm, status, phase, extra) in cases {
        let exec = execution_name("br", name);
        let input = json!({"volumeBackup": {"metadata": {"name": name, "namespace": "br"}}});
        x.start(sm, &exec, &input).await.unwrap();
        x.set_status(sm, &exec, status);
        let mut brfed = json!({"execution": brfed_core::names::execution_arn(sm, &exec)});
        brfed
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        put_doc(
            &store,
            json!({"name": name, "namespace": "br", "creationTimestamp": "2026-01-01T00:00:00Z"}),
            phase,
            brfed,
        );
    }
    let out = schedule::steps::sweep_at(&e, &json!({}), now())
        .await
        .unwrap();
    let checks: Vec<(&str, &str)> = out
        .settle_checks
        .iter()
        .map(|c| (c.backup.as_str(), c.detail["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        vec![("br/pending", "TIMED_OUT"), ("br/running", "ABORTED")],
        "{out:?}"
    );
    let running = &out.settle_checks[1];
    assert!(
        running.why.contains("dp2/tidb/basic/fed-running execute"),
        "{running:?}"
    );
    // The detail is what backup-abort reads from Step Functions' own event.
    let event: brfed_core::execution::ExecutionStatusChange = serde_json::from_value(json!({
        "detail-type": execution::SETTLE_CHECK_DETAIL_TYPE,
        "source": execution::SETTLE_CHECK_SOURCE,
        "detail": running.detail}))
    .unwrap();
    assert!(event.is_settle_check());
    assert_eq!(
        event.detail.execution_arn,
        brfed_core::names::execution_arn(BACKUP_SM, "br.running")
    );
    assert_eq!(event.detail.failure_name(), Some("ExecutionAborted"));
    assert_eq!(
        event.detail.input_value().unwrap()["volumeBackup"]["metadata"]["name"],
        "running"
    );
    assert!(out.schedules.is_empty(), "no schedule here");
}

/// A schedule's `options` are recorded with it and every tick's backup runs with them (the
/// execution input carries them); a schedule without `options` records none and its backups
/// get the defaults.
#[tokio::test]
async fn a_schedules_options_reach_every_backup_its_ticks_start() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let mut with_options = schedule("long", json!({}), json!({}));
    with_options.options.phase_timeout_seconds = 4 * 3600;
    with_options.options.deadline_seconds = 12 * 3600;
    let doc = schedule::steps::apply(&e, &rules, TICK_FN, &with_options, None)
        .await
        .unwrap();
    assert_eq!(doc.brfed.options.as_ref(), Some(&with_options.options));
    let plain = schedule::steps::apply(
        &e,
        &rules,
        TICK_FN,
        &schedule("plain", json!({}), json!({})),
        None,
    )
    .await
    .unwrap();
    assert_eq!(plain.brfed.options, None);

    for (name, phase) in [("long", 4 * 3600), ("plain", 3600)] {
        let out = schedule::steps::tick_at(&e, tick_in(name, "2026-01-02T06:00:00Z"), now())
            .await
            .unwrap();
        assert_eq!(out.result, "started", "{out:?}");
        let exec = execution_name("br", &out.backup);
        let (input, _) = x.runs.lock().unwrap()[&(BACKUP_SM.to_string(), exec)].clone();
        let req = BackupRequest::from_value(input).unwrap();
        assert_eq!(req.options.phase_timeout_seconds, phase, "{name}");
    }
}

/// The original runs the latest tick it missed as soon as it may (reference: the schedule
/// manager's getLastScheduledTime on every sync). Ticks refused because the last backup still
/// ran are run by the next sweep after it ends: only the latest one, never a backlog, and once.
#[tokio::test]
async fn the_sweep_runs_the_latest_tick_missed_while_the_last_backup_ran_once() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let hourly = schedule("hourly", json!({"schedule": "0 * * * *"}), json!({}));
    schedule::steps::apply(&e, &rules, TICK_FN, &hourly, None)
        .await
        .unwrap();
    let first = schedule::steps::tick_at(
        &e,
        tick_in("hourly", "2026-01-01T01:00:00Z"),
        at("2026-01-01T01:00:05Z"),
    )
    .await
    .unwrap();
    assert_eq!(first.result, "started");
    for t in ["2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"] {
        let busy = schedule::steps::tick_at(&e, tick_in("hourly", t), at(t))
            .await
            .unwrap();
        assert_eq!(busy.result, "lastBackupRunning", "{t}");
    }
    // Still running at 03:10: the sweep tries the 03:00 tick and is refused too.
    let out = schedule::steps::sweep_at(&e, &json!({}), at("2026-01-01T03:10:00Z"))
        .await
        .unwrap();
    let missed = out.schedules[0].missed_tick.clone().unwrap();
    assert_eq!(missed.result, "lastBackupRunning", "{missed:?}");
    assert_eq!(x.names(BACKUP_SM).len(), 1);

    x.set_status(BACKUP_SM, &execution_name("br", &first.backup), "SUCCEEDED");
    let out = schedule::steps::sweep_at(&e, &json!({}), at("2026-01-01T03:20:00Z"))
        .await
        .unwrap();
    let missed = out.schedules[0].missed_tick.clone().unwrap();
    assert_eq!(missed.result, "started", "{missed:?}");
    assert_eq!(
        missed.backup, "hourly-2026-01-01t03-00-00",
        "the latest, not 02:00"
    );
    let mut started = x.names(BACKUP_SM);
    started.sort();
    assert_eq!(
        started,
        [
            "br.hourly-2026-01-01t01-00-00",
            "br.hourly-2026-01-01t03-00-00"
        ]
    );
    // Nothing missed any more; the 04:00 rule delivery runs as usual.
    let out = schedule::steps::sweep_at(&e, &json!({}), at("2026-01-01T03:25:00Z"))
        .await
        .unwrap();
    assert_eq!(out.schedules[0].missed_tick, None);
    assert_eq!(x.names(BACKUP_SM).len(), 2);
}

/// Resuming a schedule runs the latest tick it missed while paused (the rule is disabled then,
/// so no delivery recorded it); a paused schedule catches nothing up.
#[tokio::test]
async fn a_resumed_schedule_runs_the_latest_tick_missed_while_paused() {
    let (store, x, rules) = fakes();
    let e = env(&store, &x);
    let daily = schedule("nightly", json!({"schedule": "0 2 * * *"}), json!({}));
    schedule::steps::apply(&e, &rules, TICK_FN, &daily, None)
        .await
        .unwrap();
    let first = schedule::steps::tick_at(
        &e,
        tick_in("nightly", "2026-01-01T02:00:00Z"),
        at("2026-01-01T02:00:00Z"),
    )
    .await
    .unwrap();
    x.set_status(BACKUP_SM, &execution_name("br", &first.backup), "SUCCEEDED");
    let paused = schedule::steps::set_paused(&e, &rules, "br", "nightly", true)
        .await
        .unwrap();
    assert_eq!(
        schedule::steps::catch_up(&e, &paused, at("2026-01-05T12:00:00Z"))
            .await
            .unwrap(),
        None,
        "paused: nothing"
    );
    let resumed = schedule::steps::set_paused(&e, &rules, "br", "nightly", false)
        .await
        .unwrap();
    let t = schedule::steps::catch_up(&e, &resumed, at("2026-01-05T12:00:00Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.result.as_str(), t.backup.as_str()),
        ("started", "nightly-2026-01-05t02-00-00")
    );
    assert_eq!(
        x.names(BACKUP_SM).len(),
        2,
        "one, not the four missed nights"
    );
}
