//! Schedules on fakes: management writes the catalog and the rule, the tick starts exactly the
//! backups it should (names, duplicates, running, paused, stale, groups), the sweep starts the
//! deletions retention asks for.

use brfed_core::StepError;
use brfed_core::backup::spec::{BackupRequest, ScheduledBy};
use brfed_core::backup::status::{VolumeBackupDoc, backup_key};
use brfed_core::execution;
use brfed_core::names::{execution_arn, execution_name};
use brfed_core::ports::{Executions, ScheduleRule};
use brfed_core::schedule;
use brfed_core::schedule::spec::ScheduleRequest;
use brfed_core::schedule::status::{ScheduleDoc, schedule_key};
use brfed_core::schedule::steps::{SweepOutput, TickInput, TickOutput, tick_input_template};
use brfed_core::testing::ScheduleFakes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const CATALOG: &str = ScheduleFakes::CATALOG;
const BACKUP_SM: &str = ScheduleFakes::BACKUP_STATE_MACHINE;
const DELETE_SM: &str = ScheduleFakes::DELETE_STATE_MACHINE;
const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";

/// The function's clock in these tests: a day after the first tick.
const NOW: &str = "2026-01-02T06:00:00Z";

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// Schedule `name` of namespace `br`, without labels: see [`schedule_in`].
fn schedule(name: &str, extra_spec: Value) -> ScheduleRequest {
    schedule_in("br", name, extra_spec, json!({}))
}

/// Schedule `ns/name` with `labels`: every 6 hours, backing up two data planes, with
/// `extra_spec` over that spec.
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

/// A backup document's `(name, creationTimestamp, status.phase)`.
type Backup<'a> = (&'a str, &'a str, &'a str);

/// A backup that has completed.
fn complete<'a>(name: &'a str, created: &'a str) -> Backup<'a> {
    (name, created, "Complete")
}

/// One test's world: a catalog (S3), Step Functions and EventBridge, all fakes, and the schedule
/// steps run on them. The plain methods expect the step to succeed; the `try_` ones return its
/// result, for the tests of its errors. Times are RFC 3339 strings; `clock` is the function's.
#[derive(Default)]
struct Fixture {
    fakes: ScheduleFakes,
}

impl Fixture {
    /// Empty fakes with `schedules` applied, in order.
    async fn with(schedules: impl IntoIterator<Item = ScheduleRequest>) -> Self {
        let f = Self::default();
        for s in schedules {
            f.apply(&s).await;
        }
        f
    }

    async fn try_apply(&self, s: &ScheduleRequest) -> Result<ScheduleDoc, StepError> {
        schedule::steps::apply(&self.fakes.env(), &self.fakes.rules, TICK_FN, s, None).await
    }

    async fn apply(&self, s: &ScheduleRequest) -> ScheduleDoc {
        self.try_apply(s).await.unwrap()
    }

    async fn try_set_paused(&self, name: &str, paused: bool) -> Result<ScheduleDoc, StepError> {
        schedule::steps::set_paused(&self.fakes.env(), &self.fakes.rules, "br", name, paused).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> ScheduleDoc {
        self.try_set_paused(name, paused).await.unwrap()
    }

    async fn try_remove(&self, name: &str) -> Result<ScheduleDoc, StepError> {
        schedule::steps::remove(&self.fakes.env(), &self.fakes.rules, "br", name).await
    }

    /// The tick of schedule `ns/name` whose event time is `time`.
    async fn try_tick(
        &self,
        ns: &str,
        name: &str,
        time: &str,
        clock: &str,
    ) -> Result<TickOutput, StepError> {
        let input = TickInput {
            namespace: ns.into(),
            name: name.into(),
            time: time.into(),
        };
        schedule::steps::tick_at(&self.fakes.env(), input, at(clock)).await
    }

    /// The tick of `br/name` at `time`, run at `clock`.
    async fn tick_on(&self, name: &str, time: &str, clock: &str) -> TickOutput {
        self.try_tick("br", name, time, clock).await.unwrap()
    }

    /// The tick of `br/name` at `time`, run at [`NOW`].
    async fn tick(&self, name: &str, time: &str) -> TickOutput {
        self.tick_on(name, time, NOW).await
    }

    /// [`Self::tick`], which must end in `want`.
    async fn expect_tick(&self, name: &str, time: &str, want: &str) -> TickOutput {
        let out = self.tick(name, time).await;
        assert_eq!(out.result, want, "the tick of {name} at {time}: {out:?}");
        out
    }

    /// [`Self::tick`], which must wait for a backup that still runs, saying `why`, and start
    /// nothing.
    async fn expect_waiting(&self, name: &str, time: &str, why: &str) {
        let before = self.fakes.executions.names(BACKUP_SM).len();
        let out = self.expect_tick(name, time, "lastBackupRunning").await;
        let reason = out.reason.as_deref().unwrap_or("");
        assert!(reason.contains(why), "{out:?}");
        let after = self.fakes.executions.names(BACKUP_SM).len();
        assert_eq!(after, before, "nothing new started: {out:?}");
    }

    async fn catch_up(&self, doc: &ScheduleDoc, clock: &str) -> Option<TickOutput> {
        schedule::steps::catch_up(&self.fakes.env(), doc, at(clock))
            .await
            .unwrap()
    }

    /// The retention sweep, delivered with `event`.
    async fn try_sweep(&self, event: Value, clock: &str) -> Result<SweepOutput, StepError> {
        schedule::steps::sweep_at(&self.fakes.env(), &event, at(clock)).await
    }

    async fn sweep(&self, event: Value, clock: &str) -> SweepOutput {
        self.try_sweep(event, clock).await.unwrap()
    }

    /// The tick the sweep at `clock` tried for the one schedule there is.
    async fn missed_tick(&self, clock: &str) -> Option<TickOutput> {
        self.sweep(json!({}), clock).await.schedules[0]
            .missed_tick
            .clone()
    }

    /// EventBridge's rule `name`.
    fn rule(&self, name: &str) -> ScheduleRule {
        let rules = self.fakes.rules.rules.lock().unwrap();
        rules
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {name}"))
    }

    fn no_rules(&self) -> bool {
        self.fakes.rules.rules.lock().unwrap().is_empty()
    }

    /// The executions of `state_machine`, sorted by name.
    fn started(&self, state_machine: &str) -> Vec<String> {
        let mut names = self.fakes.executions.names(state_machine);
        names.sort();
        names
    }

    /// The input of execution `name` of `state_machine`.
    fn input(&self, state_machine: &str, name: &str) -> Value {
        let key = (state_machine.to_string(), name.to_string());
        self.fakes.executions.runs.lock().unwrap()[&key].0.clone()
    }

    /// The input of the execution of backup `br/backup`.
    fn backup_input(&self, backup: &str) -> Value {
        self.input(BACKUP_SM, &execution_name("br", backup))
    }

    /// Ends the execution of backup `br/backup` with `status`.
    fn end_backup(&self, backup: &str, status: &str) {
        self.fakes
            .executions
            .set_status(BACKUP_SM, &execution_name("br", backup), status);
    }

    /// Backups of `br` made by the ticks of schedule `schedule`, whose label they carry.
    fn put_backups(&self, schedule: &str, backups: &[Backup]) {
        for b in backups {
            self.put_backup_in("br", Some(schedule), schedule, *b);
        }
    }

    /// A backup document in `ns`, made by the tick of schedule `by` (none: a manual backup),
    /// with the schedule label `label`.
    fn put_backup_in(&self, ns: &str, by: Option<&str>, label: &str, backup: Backup) {
        let (name, created, phase) = backup;
        let mut brfed = json!({"execution": name});
        if let Some(by) = by {
            brfed["scheduledBy"] = json!({"namespace": ns, "name": by});
        }
        self.put_doc(
            json!({"name": name, "namespace": ns, "creationTimestamp": created,
                   "labels": {"tidb.pingcap.com/backup-schedule": label}}),
            phase,
            brfed,
        );
    }

    /// A backup document of `metadata`, `status.phase` and `brfed`, in the catalog.
    fn put_doc(&self, metadata: Value, phase: &str, brfed: Value) {
        let doc: VolumeBackupDoc = serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": metadata,
            "spec": {"clusters": [], "template": {}},
            "status": {"phase": phase},
            "brfed": brfed}))
        .unwrap();
        let meta = &doc.metadata.meta;
        let key = backup_key(&meta.namespace, &meta.name);
        self.fakes
            .store
            .put(CATALOG, &key, serde_json::to_value(doc).unwrap());
    }

    /// Sets `fields` of backup `br/name`'s `brfed` record, as a step writes them.
    fn set_brfed(&self, name: &str, fields: Value) {
        let key = backup_key("br", name);
        let mut doc = self.fakes.store.get(CATALOG, &key).unwrap();
        for (k, v) in fields.as_object().unwrap() {
            doc["brfed"][k] = v.clone();
        }
        self.fakes.store.put(CATALOG, &key, doc);
    }
}

#[tokio::test]
async fn apply_writes_the_schedule_and_its_rule_and_keeps_the_status_on_update() {
    let f = Fixture::default();
    let doc = f.apply(&schedule("daily", json!({}))).await;
    assert_eq!(doc.brfed.expression, "cron(0 0/6 * * ? *)");
    let rule = f.rule(&doc.brfed.rule);
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

    f.tick("daily", "2026-01-01T06:00:00Z").await;
    let paused_daily = schedule("daily", json!({"schedule": "@daily", "pause": true}));
    let doc = f.apply(&paused_daily).await;
    assert_eq!(
        doc.status.last_backup.as_deref(),
        Some("daily-2026-01-01t06-00-00")
    );
    let rule = f.rule(&doc.brfed.rule);
    assert_eq!(
        (rule.expression.as_str(), rule.enabled),
        ("cron(0 0 * * ? *)", false)
    );
}

#[tokio::test]
async fn a_bad_schedule_is_refused_with_every_problem_and_nothing_written() {
    let f = Fixture::default();
    let bad = schedule(
        "weekly",
        json!({"schedule": "0 0 1 * 1", "maxReservedTime": "7d"}),
    );
    let err = f.try_apply(&bad).await.unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
    let msg = err.to_string();
    assert!(msg.contains("7d") && msg.contains("day-of-month"), "{msg}");
    assert!(
        f.fakes
            .store
            .get(CATALOG, &schedule_key("br", "weekly"))
            .is_none()
    );
    assert!(f.no_rules());
}

#[tokio::test]
async fn ticks_start_named_backups_once_and_never_beside_a_running_one() {
    let f = Fixture::with([schedule("daily", json!({}))]).await;

    // Seconds of the event time are dropped: the tick is the minute.
    let t = f.tick("daily", "2026-01-01T06:00:07Z").await;
    assert_eq!(
        (t.result.as_str(), t.backup.as_str()),
        ("started", "daily-2026-01-01t06-00-00")
    );
    let input = f.backup_input(&t.backup);
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

    f.expect_tick("daily", "2026-01-01T06:00:00Z", "duplicate")
        .await;
    f.expect_tick("daily", "2026-01-01T12:00:00Z", "lastBackupRunning")
        .await;
    assert_eq!(
        f.fakes.executions.names(BACKUP_SM).len(),
        1,
        "nothing new started"
    );

    f.fakes
        .executions
        .set_status(BACKUP_SM, "br.daily-2026-01-01t06-00-00", "SUCCEEDED");
    let next = f
        .expect_tick("daily", "2026-01-01T18:00:00Z", "started")
        .await;
    f.end_backup(&next.backup, "FAILED");
    // A late delivery of an older tick runs nothing.
    f.expect_tick("daily", "2026-01-01T12:00:00Z", "stale")
        .await;

    f.set_paused("daily", true).await;
    f.expect_tick("daily", "2026-01-02T00:00:00Z", "paused")
        .await;
    assert!(!f.rule(&schedule::spec::rule_name("br", "daily")).enabled);
    f.set_paused("daily", false).await;
    f.expect_tick("daily", "2026-01-02T00:00:00Z", "started")
        .await;
    assert_eq!(f.fakes.executions.names(BACKUP_SM).len(), 3);
}

#[tokio::test]
async fn a_group_runs_one_backup_at_a_time() {
    let group = json!({"tidb.pingcap.com/backup-schedule-group": "g"});
    let f = Fixture::with([
        schedule_in("br", "a", json!({}), group.clone()),
        schedule_in("br", "b", json!({}), group),
        schedule("c", json!({})),
    ])
    .await;
    for (name, want, why) in [
        ("a", "started", "the group's first"),
        ("b", "lastBackupRunning", "a's backup runs"),
        ("c", "started", "not in the group"),
    ] {
        let out = f.tick(name, "2026-01-01T06:00:00Z").await;
        assert_eq!(out.result, want, "{name}: {why}");
    }
}

#[tokio::test]
async fn an_unknown_schedule_is_named_and_management_of_it_too() {
    let f = Fixture::default();
    let refused = [
        (
            "tick",
            f.try_tick("br", "nope", "2026-01-01T06:00:00Z", NOW)
                .await
                .err(),
        ),
        ("pause", f.try_set_paused("nope", true).await.err()),
        ("remove", f.try_remove("nope").await.err()),
    ];
    for (what, err) in refused {
        assert_eq!(err.map(|e| e.name()), Some("ScheduleNotFound"), "{what}");
    }
    let err = f
        .try_tick("br", "nope", "yesterday", NOW)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
}

#[tokio::test]
async fn remove_deletes_the_rule_and_the_document_and_keeps_the_backups() {
    let f = Fixture::with([schedule("daily", json!({}))]).await;
    let backup = "daily-2026-01-01t00-00-00";
    f.put_backups("daily", &[complete(backup, "2026-01-01T00:00:00Z")]);
    f.try_remove("daily").await.unwrap();
    assert!(f.no_rules());
    assert!(
        f.fakes
            .store
            .get(CATALOG, &schedule_key("br", "daily"))
            .is_none()
    );
    assert!(
        f.fakes
            .store
            .get(CATALOG, &backup_key("br", backup))
            .is_some()
    );
    assert!(f.fakes.env().list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sweep_starts_one_deletion_per_schedule_paused_or_not() {
    let f = Fixture::with([
        schedule("count", json!({"maxBackups": 1, "pause": true})),
        schedule("age", json!({"maxReservedTime": "24h", "maxBackups": 100})),
    ])
    .await;
    f.put_backups(
        "count",
        &[
            complete("count-2026-01-01t00-00-00", "2026-01-01T00:00:00Z"),
            complete("count-2026-01-02t00-00-00", "2026-01-02T00:00:00Z"),
            (
                "count-2026-01-03t00-00-00",
                "2026-01-03T00:00:00Z",
                "Running",
            ),
        ],
    );
    // Another schedule whose name starts the same: not this schedule's backup.
    let other = complete("count-x-2026-01-01t00-00-00", "2026-01-01T00:00:00Z");
    f.put_backups("count-x", &[other]);
    f.put_backups(
        "age",
        &[
            complete("age-2026-01-01t00-00-00", "2026-01-01T00:00:00Z"),
            complete("age-2026-01-02t12-00-00", "2026-01-02T12:00:00Z"),
        ],
    );

    let event = json!({"time": "2026-01-03T06:00:00Z"});
    let out = f.sweep(event.clone(), "2026-01-03T06:00:10Z").await;
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
    let started = f.started(DELETE_SM);
    assert_eq!(
        started,
        vec![
            "delete-br.age-2026-01-01t00-00-00-20260103T060000Z",
            "delete-br.count-2026-01-01t00-00-00-20260103T060000Z"
        ]
    );
    assert_eq!(
        f.input(DELETE_SM, &started[1]),
        json!({"name": "count-2026-01-01t00-00-00", "namespace": "br"})
    );

    // Same sweep again (a duplicate delivery): nothing new.
    f.sweep(event, "2026-01-03T06:00:10Z").await;
    assert_eq!(f.fakes.executions.names(DELETE_SM).len(), 2);
}

#[tokio::test]
async fn a_manual_backup_carrying_the_schedule_label_is_not_its_retentions() {
    let f = Fixture::with([schedule("count", json!({"maxBackups": 1}))]).await;
    let oldest = complete("count-2000-01-01t00-00-00", "2000-01-01T00:00:00Z");
    for (ns, by) in [
        // Named and labelled like the schedule's oldest backup, but made by hand.
        ("br", None),
        // Made by the tick of a schedule of the same name in another namespace.
        ("other", Some("count")),
    ] {
        f.put_backup_in(ns, by, "count", oldest);
    }
    f.put_backups(
        "count",
        &[
            complete("count-2026-01-01t00-00-00", "2026-01-01T00:00:00Z"),
            complete("count-2026-01-02t00-00-00", "2026-01-02T00:00:00Z"),
        ],
    );
    let out = f.sweep(json!({}), "2026-01-03T00:00:00Z").await;
    assert_eq!(
        out.schedules[0].deleting.as_deref(),
        Some("count-2026-01-01t00-00-00"),
        "{out:?}"
    );
    assert_eq!(
        f.fakes.executions.names(DELETE_SM),
        vec!["delete-br.count-2026-01-01t00-00-00-20260103T000000Z"]
    );
}

#[tokio::test]
async fn the_same_schedule_name_in_two_namespaces_backs_up_and_expires_both() {
    let namespaces = ["team-a", "team-b"];
    let f = Fixture::default();
    for ns in namespaces {
        f.apply(&schedule_in(
            ns,
            "nightly",
            json!({"maxBackups": 1}),
            json!({}),
        ))
        .await;
    }
    for ns in namespaces {
        let t = f.try_tick(ns, "nightly", NOW, NOW).await.unwrap();
        assert_eq!(t.result, "started", "{ns}: {t:?}");
        assert_eq!(t.backup, "nightly-2026-01-02t06-00-00");
    }
    assert_eq!(
        f.fakes.executions.names(BACKUP_SM),
        vec![
            "team-a.nightly-2026-01-02t06-00-00",
            "team-b.nightly-2026-01-02t06-00-00"
        ]
    );

    for ns in namespaces {
        for backup in [
            complete("nightly-2026-01-01t06-00-00", "2026-01-01T06:00:00Z"),
            complete("nightly-2026-01-02t06-00-00", "2026-01-02T06:00:00Z"),
        ] {
            f.put_backup_in(ns, Some("nightly"), "nightly", backup);
        }
    }
    let out = f.sweep(json!({}), NOW).await;
    assert_eq!(
        f.started(DELETE_SM),
        vec![
            "delete-team-a.nightly-2026-01-01t06-00-00-20260102T060000Z",
            "delete-team-b.nightly-2026-01-01t06-00-00-20260102T060000Z"
        ],
        "{out:?}"
    );
    for s in &out.schedules {
        assert!(!s.reason.contains("started before"), "{s:?}");
    }
    assert_eq!(
        f.input(
            DELETE_SM,
            "delete-team-b.nightly-2026-01-01t06-00-00-20260102T060000Z"
        ),
        json!({"name": "nightly-2026-01-01t06-00-00", "namespace": "team-b"})
    );
}

#[tokio::test]
async fn ticks_and_sweeps_dated_outside_the_window_are_refused_and_change_nothing() {
    let f = Fixture::with([schedule("daily", json!({"maxReservedTime": "1h"}))]).await;
    let before = f.fakes.store.get(CATALOG, &schedule_key("br", "daily"));
    for time in [
        "2026-01-03T06:00:00Z", // a day ahead
        "2026-01-02T06:05:01Z", // 301 s ahead
        "2025-12-31T23:59:59Z", // 30 h 1 s behind
        "1970-01-01T00:00:00Z",
    ] {
        let err = f.try_tick("br", "daily", time, NOW).await.unwrap_err();
        assert_eq!(err.name(), "EventTimeOutOfRange", "{time}: {err}");
    }
    assert_eq!(
        f.fakes.store.get(CATALOG, &schedule_key("br", "daily")),
        before
    );
    assert!(f.fakes.executions.names(BACKUP_SM).is_empty());

    // Later ticks still run: the refused one left no trace.
    f.expect_tick("daily", NOW, "started").await;

    // The sweep: a day ahead is refused; a few minutes ahead judges as of its own clock.
    let backup = "daily-2026-01-02t05-01-00";
    f.put_backups("daily", &[complete(backup, "2026-01-02T05:01:00Z")]);
    let err = f
        .try_sweep(json!({"time": "2026-01-03T06:00:00Z"}), NOW)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "EventTimeOutOfRange");
    assert!(
        f.fakes.executions.names(DELETE_SM).is_empty(),
        "nothing expired early"
    );
    let out = f.sweep(json!({"time": "2026-01-02T06:04:00Z"}), NOW).await;
    assert_eq!(out.now, NOW, "never later than the clock");
    assert_eq!(
        out.schedules[0].deleting, None,
        "59 min old at the clock's now, 63 min at the event's: {out:?}"
    );
    // A late delivery judges as of when it was due.
    let out = f.sweep(json!({"time": "2026-01-02T05:00:00Z"}), NOW).await;
    assert_eq!(out.now, "2026-01-02T05:00:00Z");
    let err = f.try_sweep(json!({"time": 5}), NOW).await.unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
    assert_eq!(out.schedules[0].deleting, None, "{out:?}");
    assert!(f.fakes.executions.names(DELETE_SM).is_empty());
    let out = f.sweep(json!({}), "2026-01-02T06:04:00Z").await;
    assert_eq!(
        out.schedules[0].deleting.as_deref(),
        Some(backup),
        "63 min old at the clock's now: {out:?}"
    );
}

#[tokio::test]
async fn a_stopped_backup_whose_document_has_not_ended_blocks_the_next_tick() {
    let f = Fixture::with([schedule("daily", json!({}))]).await;
    let first = f
        .expect_tick("daily", "2026-01-02T00:00:00Z", "started")
        .await;
    let stopped = |phase| [(first.backup.as_str(), "2026-01-02T00:00:01Z", phase)];
    // Stopped: the execution has ended, its members still run until backup-abort has asked
    // them to tear down and marked the document.
    f.end_backup(&first.backup, "ABORTED");
    f.put_backups("daily", &stopped("Running"));
    f.expect_waiting("daily", "2026-01-02T01:00:00Z", "Running")
        .await;

    // Failed by backup-abort, but a member still runs: the tick still waits.
    f.put_backups("daily", &stopped("Failed"));
    let unsettled = json!({"membersSettled": false,
                           "unsettledMembers": ["dp2/tidb/fed-x VolumeBackupSnapshotsCreated"]});
    f.set_brfed(&first.backup, unsettled);
    f.expect_waiting("daily", "2026-01-02T01:30:00Z", "dp2/tidb/fed-x")
        .await;

    f.set_brfed(
        &first.backup,
        json!({"membersSettled": true, "unsettledMembers": []}),
    );
    f.expect_tick("daily", "2026-01-02T02:00:00Z", "started")
        .await;
}

/// The safety net's own net: every sweep asks `backup-abort` again about each backup whose
/// execution ended (stopped, timed out, failed) while a member was not asked to tear down yet or
/// still ran, with the execution's own status change as the event's `detail`; never about a
/// settled backup, one whose execution still runs, or one of another state machine.
#[tokio::test]
async fn the_sweep_asks_abort_again_about_ended_backups_whose_members_had_not_settled() {
    let f = Fixture::default();
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
    for (name, sm, status, phase, record) in cases {
        let exec = execution_name("br", name);
        let input = json!({"volumeBackup": {"metadata": {"name": name, "namespace": "br"}}});
        f.fakes.executions.start(sm, &exec, &input).await.unwrap();
        f.fakes.executions.set_status(sm, &exec, status);
        f.put_doc(
            json!({"name": name, "namespace": "br", "creationTimestamp": "2026-01-01T00:00:00Z"}),
            phase,
            json!({"execution": execution_arn(sm, &exec)}),
        );
        f.set_brfed(name, record);
    }
    let out = f.sweep(json!({}), NOW).await;
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
    let event: execution::ExecutionStatusChange = serde_json::from_value(json!({
        "detail-type": execution::SETTLE_CHECK_DETAIL_TYPE,
        "source": execution::SETTLE_CHECK_SOURCE,
        "detail": running.detail}))
    .unwrap();
    assert!(event.is_settle_check());
    assert_eq!(
        event.detail.execution_arn,
        execution_arn(BACKUP_SM, "br.running")
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
    let f = Fixture::default();
    let mut with_options = schedule("long", json!({}));
    with_options.options.phase_timeout_seconds = 4 * 3600;
    with_options.options.deadline_seconds = 12 * 3600;
    let doc = f.apply(&with_options).await;
    assert_eq!(doc.brfed.options.as_ref(), Some(&with_options.options));
    let plain = f.apply(&schedule("plain", json!({}))).await;
    assert_eq!(plain.brfed.options, None);

    for (name, phase) in [("long", 4 * 3600), ("plain", 3600)] {
        let out = f.expect_tick(name, NOW, "started").await;
        let req = BackupRequest::from_value(f.backup_input(&out.backup)).unwrap();
        assert_eq!(req.options.phase_timeout_seconds, phase, "{name}");
    }
}

/// The original runs the latest tick it missed as soon as it may (reference: the schedule
/// manager's getLastScheduledTime on every sync). Ticks refused because the last backup still
/// ran are run by the next sweep after it ends: only the latest one, never a backlog, and once.
#[tokio::test]
async fn the_sweep_runs_the_latest_tick_missed_while_the_last_backup_ran_once() {
    let f = Fixture::with([schedule("hourly", json!({"schedule": "0 * * * *"}))]).await;
    let first = f
        .tick_on("hourly", "2026-01-01T01:00:00Z", "2026-01-01T01:00:05Z")
        .await;
    assert_eq!(first.result, "started");
    for t in ["2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"] {
        let busy = f.tick_on("hourly", t, t).await;
        assert_eq!(busy.result, "lastBackupRunning", "{t}");
    }
    // Still running at 03:10: the sweep tries the 03:00 tick and is refused too.
    let missed = f.missed_tick("2026-01-01T03:10:00Z").await.unwrap();
    assert_eq!(missed.result, "lastBackupRunning", "{missed:?}");
    assert_eq!(f.fakes.executions.names(BACKUP_SM).len(), 1);

    f.end_backup(&first.backup, "SUCCEEDED");
    let missed = f.missed_tick("2026-01-01T03:20:00Z").await.unwrap();
    assert_eq!(missed.result, "started", "{missed:?}");
    assert_eq!(
        missed.backup, "hourly-2026-01-01t03-00-00",
        "the latest, not 02:00"
    );
    assert_eq!(
        f.started(BACKUP_SM),
        [
            "br.hourly-2026-01-01t01-00-00",
            "br.hourly-2026-01-01t03-00-00"
        ]
    );
    // Nothing missed any more; the 04:00 rule delivery runs as usual.
    assert_eq!(f.missed_tick("2026-01-01T03:25:00Z").await, None);
    assert_eq!(f.fakes.executions.names(BACKUP_SM).len(), 2);
}

/// Resuming a schedule runs the latest tick it missed while paused (the rule is disabled then,
/// so no delivery recorded it); a paused schedule catches nothing up.
#[tokio::test]
async fn a_resumed_schedule_runs_the_latest_tick_missed_while_paused() {
    let f = Fixture::with([schedule("nightly", json!({"schedule": "0 2 * * *"}))]).await;
    let two = "2026-01-01T02:00:00Z";
    let first = f.tick_on("nightly", two, two).await;
    f.end_backup(&first.backup, "SUCCEEDED");
    let later = "2026-01-05T12:00:00Z";
    let paused = f.set_paused("nightly", true).await;
    assert_eq!(f.catch_up(&paused, later).await, None, "paused: nothing");
    let resumed = f.set_paused("nightly", false).await;
    let t = f.catch_up(&resumed, later).await.unwrap();
    assert_eq!(
        (t.result.as_str(), t.backup.as_str()),
        ("started", "nightly-2026-01-05t02-00-00")
    );
    assert_eq!(
        f.fakes.executions.names(BACKUP_SM).len(),
        2,
        "one, not the four missed nights"
    );
}

impl Fixture {
    /// A backup document of `br`, made by schedule `schedule`'s tick, that ended `phase` at
    /// `completed`, with `brfed` fields over the tick's record.
    fn put_ended(&self, schedule: &str, name: &str, phase: &str, completed: &str, brfed: Value) {
        let mut record = json!({"execution": name,
                                "scheduledBy": {"namespace": "br", "name": schedule}});
        record
            .as_object_mut()
            .unwrap()
            .extend(brfed.as_object().unwrap().clone());
        let doc: VolumeBackupDoc = serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": name, "namespace": "br", "creationTimestamp": completed},
            "spec": {"clusters": [], "template": {}},
            "status": {"phase": phase, "timeCompleted": completed},
            "brfed": record}))
        .unwrap();
        self.fakes.store.put(
            CATALOG,
            &backup_key("br", name),
            serde_json::to_value(doc).unwrap(),
        );
    }

    /// Sets schedule `br/name`'s `creationTimestamp` (its first apply) to `t`.
    fn set_created(&self, name: &str, t: &str) {
        let key = schedule_key("br", name);
        let mut doc = self.fakes.store.get(CATALOG, &key).unwrap();
        doc["metadata"]["creationTimestamp"] = json!(t);
        self.fakes.store.put(CATALOG, &key, doc);
    }
}

/// Every sweep judges each schedule that is not paused against its RPO, on the function's
/// clock: the time since the newest `Complete` backup its ticks made (its `timeCompleted`; a
/// `Failed` one or one being deleted does not count), or since its first apply before it has
/// one; and counts those beyond it, 0 included (the `SchedulesBeyondRpo` metric). Every 6 h
/// with the default 6 h deadline: an RPO of 12 h; `brfed.io/rpo` overrides it.
#[tokio::test]
async fn the_sweep_counts_the_schedules_without_a_complete_backup_within_their_rpo() {
    let mut annotated = schedule("annotated", json!({}));
    annotated
        .metadata
        .annotations
        .insert("brfed.io/rpo".into(), "36h".into());
    let names = [
        "fresh", "stale", "failing", "deleting", "never", "new", "paused",
    ];
    let f = Fixture::with(names.iter().map(|n| {
        let pause = *n == "paused";
        schedule(n, json!({"pause": pause}))
    }))
    .await;
    f.apply(&annotated).await;
    for n in names.iter().chain(&["annotated"]) {
        f.set_created(n, "2025-12-01T00:00:00Z");
    }
    let long_ago = "2026-01-01T17:00:00Z"; // 13 h before NOW
    let recent = "2026-01-02T04:00:00Z"; // 2 h before NOW
    f.put_ended("fresh", "fresh-1", "Complete", long_ago, json!({}));
    f.put_ended("fresh", "fresh-2", "Complete", recent, json!({}));
    f.put_ended("stale", "stale-1", "Complete", long_ago, json!({}));
    f.put_ended("failing", "failing-1", "Complete", long_ago, json!({}));
    f.put_ended("failing", "failing-2", "Failed", recent, json!({}));
    f.put_ended("deleting", "deleting-1", "Complete", long_ago, json!({}));
    let deletion = json!({"deletion": {"execution": "arn:d", "requestedAt": recent,
                                       "state": "Deleting"}});
    f.put_ended("deleting", "deleting-2", "Complete", recent, deletion);
    f.set_created("never", "2026-01-01T00:00:00Z");
    f.set_created("new", "2026-01-02T05:00:00Z");
    f.put_ended(
        "paused",
        "paused-1",
        "Complete",
        "2025-12-01T00:00:00Z",
        json!({}),
    );
    f.put_ended("annotated", "annotated-1", "Complete", long_ago, json!({}));
    // A manual backup of the same name prefix does not count for `never`.
    f.put_backup_in("br", None, "never", complete("never-1", recent));

    let out = f.sweep(json!({}), NOW).await;
    let rpo = |name: &str| {
        out.schedules
            .iter()
            .find(|s| s.schedule == format!("br/{name}"))
            .unwrap()
            .rpo
            .clone()
    };
    for (name, since, last, beyond) in [
        ("fresh", 2 * 3600, Some("fresh-2"), false),
        ("stale", 13 * 3600, Some("stale-1"), true),
        ("failing", 13 * 3600, Some("failing-1"), true),
        ("deleting", 13 * 3600, Some("deleting-1"), true),
        ("never", 30 * 3600, None, true),
        ("new", 3600, None, false),
    ] {
        let r = rpo(name).unwrap_or_else(|| panic!("{name}: {out:?}"));
        assert_eq!(r.since_complete_seconds, since, "{name}: {r:?}");
        assert_eq!(r.last_complete.as_deref(), last, "{name}: {r:?}");
        assert_eq!(r.rpo_seconds, Some(12 * 3600), "{name}: {r:?}");
        assert_eq!(r.beyond_rpo, beyond, "{name}: {r:?}");
    }
    assert_eq!(rpo("never").unwrap().since, "2026-01-01T00:00:00Z");
    let a = rpo("annotated").unwrap();
    assert_eq!((a.rpo_seconds, a.beyond_rpo), (Some(36 * 3600), false));
    assert_eq!(rpo("paused"), None, "a paused schedule is not judged");
    assert_eq!(out.schedules_beyond_rpo, 4, "{out:?}");

    // Zero is said too, so that the alarm tells it from a sweep that did not run.
    let f = Fixture::with([schedule("fresh", json!({}))]).await;
    f.set_created("fresh", "2025-12-01T00:00:00Z");
    f.put_ended("fresh", "fresh-2", "Complete", recent, json!({}));
    let out = f.sweep(json!({}), NOW).await;
    assert_eq!(
        serde_json::to_value(&out).unwrap()["schedulesBeyondRpo"],
        json!(0)
    );
}
