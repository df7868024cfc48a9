//! The original's backup schedule tests
//! (`pkg/fedvolumebackup/backupschedule/backup_schedule_manager_test.go`, TiDB Operator
//! release-1.6), case by case (and row by row), as tests of brfed's own decisions: the tick
//! (`canPerformNextBackup`, pause), the catch-up of missed ticks (`getLastScheduledTime`), the
//! backup a tick makes (`buildBackup`), and retention (`calculateExpiredBackups`, `backupGC`),
//! on an in-memory catalog and Step Functions.
//!
//! The original's manager runs on a clock it is given; brfed's steps take the time (`tick_at`,
//! `sweep_at`, `catch_up`) the same way. Where brfed differs on purpose, the test checks what
//! brfed does and `docs/upstream-tests.md` says why.

use brfed_core::backup::status::{VolumeBackupDoc, backup_key};
use brfed_core::names::execution_name;
use brfed_core::ports::Executions;
use brfed_core::schedule;
use brfed_core::schedule::cron::translate;
use brfed_core::schedule::retention::{Candidate, Decision, decide};
use brfed_core::schedule::spec::{Retention, ScheduleRequest};
use brfed_core::schedule::status::schedule_key;
use brfed_core::schedule::steps::{SweepEntry, TickInput, TickOutput};
use brfed_core::testing::{ScheduleFakes, pairs};
use brfed_core::time::rfc3339;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

const CATALOG: &str = ScheduleFakes::CATALOG;
const BACKUP_SM: &str = ScheduleFakes::BACKUP_STATE_MACHINE;
const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";
/// The original's schedules all live in namespace `ns`.
const NS: &str = "ns";

/// The "now" of these tests (the original uses `time.Now()`; a fixed time keeps them exact).
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap()
}

/// Midnight (UTC) of `now() + days`.
fn midnight(days: i64) -> DateTime<Utc> {
    let d = now() + Duration::days(days);
    Utc.from_utc_datetime(&d.date_naive().and_hms_opt(0, 0, 0).unwrap())
}

/// Schedule `ns/name`: `spec` over a daily schedule backing up one data plane into an AWS S3
/// location (the original's `BR: {}`, `S3: {}` template, with the bucket brfed needs), with
/// `labels`.
fn schedule_with(name: &str, spec: Value, labels: Value) -> ScheduleRequest {
    let mut s = json!({
        "schedule": "0 0 * * *",
        "backupTemplate": {
            "clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"}],
            "template": {"br": {}, "s3": {"provider": "aws", "bucket": "bucket-1"}}}});
    s.as_object_mut()
        .unwrap()
        .extend(spec.as_object().unwrap().clone());
    ScheduleRequest::from_value(json!({
        "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackupSchedule",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": s}))
    .unwrap()
}

fn schedule(name: &str, spec: Value) -> ScheduleRequest {
    schedule_with(name, spec, json!({}))
}

/// A schedule of backup-schedule group `group`.
fn grouped(name: &str, group: &str) -> ScheduleRequest {
    schedule_with(
        name,
        json!({}),
        json!({"tidb.pingcap.com/backup-schedule-group": group}),
    )
}

/// The original's helper: the catalog (its control-plane API server), Step Functions and
/// EventBridge, all fakes, and the schedule steps on them.
#[derive(Default)]
struct Helper {
    fakes: ScheduleFakes,
}

impl Helper {
    /// `createBackupSchedule` (or an update of it: its status stays).
    async fn apply(&self, s: &ScheduleRequest) {
        schedule::steps::apply(&self.fakes.env(), &self.fakes.rules, TICK_FN, s, None)
            .await
            .unwrap();
    }

    /// The tick of `ns/name` due at `at`, delivered 5 s later.
    async fn tick(&self, name: &str, at: DateTime<Utc>) -> TickOutput {
        let input = TickInput {
            namespace: NS.into(),
            name: name.into(),
            time: rfc3339(at),
        };
        let clock = at + Duration::seconds(5);
        schedule::steps::tick_at(&self.fakes.env(), input, clock)
            .await
            .unwrap()
    }

    /// The retention sweep at `clock`, which also runs each schedule's latest missed tick; the
    /// entry of schedule `name`.
    async fn sweep(&self, name: &str, clock: DateTime<Utc>) -> SweepEntry {
        let out = schedule::steps::sweep_at(&self.fakes.env(), &json!({}), clock)
            .await
            .unwrap();
        out.schedules
            .into_iter()
            .find(|e| e.schedule == format!("{NS}/{name}"))
            .unwrap()
    }

    /// Sets `fields` of schedule `name`'s document (`status`, `metadata.creationTimestamp`), as
    /// the original's tests set them on the object.
    fn edit_schedule(&self, name: &str, edit: impl FnOnce(&mut Value)) {
        let key = schedule_key(NS, name);
        let mut doc = self.fakes.store.get(CATALOG, &key).unwrap();
        edit(&mut doc);
        self.fakes.store.put(CATALOG, &key, doc);
    }

    /// `bs.Status.LastBackup = last`, ticked a day before [`now`].
    fn set_last_backup(&self, name: &str, last: &str) {
        let t = rfc3339(midnight(-1));
        self.edit_schedule(name, |d| {
            d["status"] = json!({"lastBackup": last, "lastBackupTime": t});
        });
    }

    /// `createBackup`: backup `name` in the catalog, with `phase` (`Complete`, `Failed`,
    /// `Running`), created at `created`, made by the ticks of schedule `by` (none: by hand).
    fn put_backup(&self, name: &str, phase: &str, created: DateTime<Utc>, by: Option<&str>) {
        let mut brfed = json!({"execution": name});
        if let Some(by) = by {
            brfed["scheduledBy"] = json!({"namespace": NS, "name": by});
        }
        let doc: VolumeBackupDoc = serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": name, "namespace": NS, "creationTimestamp": rfc3339(created),
                         "labels": {"tidb.pingcap.com/backup-schedule": by.unwrap_or("")}},
            "spec": {"clusters": [], "template": {}},
            "status": {"phase": phase, "conditions": [{"type": phase, "status": "True"}]},
            "brfed": brfed}))
        .unwrap();
        self.fakes.store.put(
            CATALOG,
            &backup_key(NS, name),
            serde_json::to_value(doc).unwrap(),
        );
    }

    /// `helper.deleteBackup`: the deletion is done, the record gone.
    fn deleted(&self, name: &str) {
        self.fakes.store.remove(CATALOG, &backup_key(NS, name));
    }

    /// The backup started by a tick ran and ended `phase`, created at `created`, as the
    /// original's test completes each backup its `Sync` created.
    fn complete(&self, schedule: &str, backup: &str, created: DateTime<Utc>) {
        let exec = execution_name(NS, backup);
        self.fakes
            .executions
            .set_status(BACKUP_SM, &exec, "SUCCEEDED");
        self.put_backup(backup, "Complete", created, Some(schedule));
    }

    /// Backup executions started so far.
    fn started(&self) -> usize {
        self.fakes.executions.names(BACKUP_SM).len()
    }
}

/// `TestManager`, pause: a paused schedule's `Sync` creates nothing ("has been paused"); its
/// tick starts nothing.
#[tokio::test]
async fn test_manager_pause() {
    let h = Helper::default();
    h.apply(&schedule("bsname", json!({"pause": true}))).await;
    let t = h.tick("bsname", midnight(0)).await;
    assert_eq!(t.result, "paused", "{t:?}");
    assert!(t.reason.unwrap().contains("pause"));
    assert_eq!(h.started(), 0);
}

/// `TestManager`, `canPerformNextBackup`: the next backup may start when the last backup is not
/// found, when it is `Complete`, and when it is `Failed`.
#[tokio::test]
async fn test_manager_can_perform_next_backup() {
    for last in [None, Some("Complete"), Some("Failed")] {
        let h = Helper::default();
        h.apply(&schedule("bsname", json!({}))).await;
        h.set_last_backup("bsname", "backupname");
        if let Some(phase) = last {
            h.put_backup("backupname", phase, midnight(-1), Some("bsname"));
            let status = if phase == "Complete" {
                "SUCCEEDED"
            } else {
                "FAILED"
            };
            let exec = execution_name(NS, "backupname");
            h.fakes
                .executions
                .start(BACKUP_SM, &exec, &json!({}))
                .await
                .unwrap();
            h.fakes.executions.set_status(BACKUP_SM, &exec, status);
        }
        let t = h.tick("bsname", midnight(0)).await;
        assert_eq!(t.result, "started", "last backup {last:?}: {t:?}");
    }
}

/// `TestManager`, the normal `Sync` loop: a daily schedule whose last backups were all cleaned
/// 101 days ago (`resetLastBackup`) makes one backup on its first sync (the latest missed
/// midnight, not the 92 missed), then one a day, each completed, for 10 days; then
/// `maxBackups: 5` deletes one (the oldest: 9 left), then `maxReservedTime: 71h` (without
/// `maxBackups`) one more (8 left). brfed deletes one backup per schedule per sweep too.
#[tokio::test]
async fn test_manager_sync() {
    let h = Helper::default();
    h.apply(&schedule("bsname", json!({}))).await;
    let created = rfc3339(now() - Duration::days(101));
    h.edit_schedule("bsname", |d| {
        d["metadata"]["creationTimestamp"] = json!(created);
    });

    // 10 backups, one per day
    let mut backups = Vec::new();
    for i in -9..=0 {
        let t = if i == -9 {
            // the first sync: the latest missed tick, run by the sweep's catch-up
            let entry = h.sweep("bsname", now() + Duration::days(i)).await;
            entry.missed_tick.expect("a missed tick is run")
        } else {
            h.tick("bsname", midnight(i)).await
        };
        assert_eq!(t.result, "started", "day {i}: {t:?}");
        assert_eq!(
            t.backup,
            format!("bsname-{}", midnight(i).format("%Y-%m-%dt00-00-00"))
        );
        assert_eq!(h.started(), (i + 10) as usize, "day {i}: one backup a day");
        h.complete("bsname", &t.backup, midnight(i) + Duration::minutes(1));
        backups.push(t.backup);
    }

    // test setting MaxBackups
    h.apply(&schedule("bsname", json!({"maxBackups": 5}))).await;
    let e = h.sweep("bsname", now()).await;
    assert_eq!(e.deleting.as_deref(), Some(backups[0].as_str()), "{e:?}");
    h.deleted(&backups[0]); // 9 left

    // test setting MaxReservedTime
    h.apply(&schedule("bsname", json!({"maxReservedTime": "71h"})))
        .await;
    let e = h.sweep("bsname", now() + Duration::seconds(2)).await;
    assert_eq!(e.deleting.as_deref(), Some(backups[1].as_str()), "{e:?}");
    h.deleted(&backups[1]); // 8 left
    assert_eq!(h.started(), 10, "the sweeps started no backup");
}

/// `TestMultiSchedules`: schedules without a group look at their own last backup only; two
/// schedules of one group whose last backups are complete may both start; in a group where one
/// schedule's last backup runs, neither starts, and both say which backup runs
/// ("the last backup bs21_backupname is still running"; brfed's names take no `_`).
#[tokio::test]
async fn test_multi_schedules() {
    let h = Helper::default();
    // without the group label
    for name in ["bsname1", "bsname2"] {
        h.apply(&schedule(name, json!({}))).await;
        let last = format!("{name}-backupname");
        h.set_last_backup(name, &last);
        h.put_backup(&last, "Complete", midnight(-1), Some(name));
        let t = h.tick(name, midnight(0)).await;
        assert_eq!(t.result, "started", "{name}: {t:?}");
    }

    // 2 schedules in the same group, neither has an active backup
    for name in ["bsname11", "bsname12"] {
        h.apply(&grouped(name, "group1")).await;
        let last = format!("{name}-backupname");
        h.set_last_backup(name, &last);
        h.put_backup(&last, "Complete", midnight(-1), Some(name));
        let t = h.tick(name, midnight(0)).await;
        assert_eq!(t.result, "started", "{name}: {t:?}");
        // it ran and completed before the next schedule of the group is looked at
        h.complete(name, &t.backup, midnight(0));
    }

    // 2 schedules in the same group, one has a running backup
    h.apply(&grouped("bsname21", "group2")).await;
    h.set_last_backup("bsname21", "bs21-backupname");
    h.put_backup("bs21-backupname", "Running", midnight(-1), Some("bsname21"));
    h.apply(&grouped("bsname22", "group2")).await;
    h.set_last_backup("bsname22", "bs22-backupname");
    h.put_backup(
        "bs22-backupname",
        "Complete",
        midnight(-1),
        Some("bsname22"),
    );
    let before = h.started();
    for name in ["bsname21", "bsname22"] {
        let t = h.tick(name, midnight(0)).await;
        assert_eq!(t.result, "lastBackupRunning", "{name}: {t:?}");
        let why = t.reason.unwrap();
        assert!(why.contains("bs21-backupname"), "{name}: {why}");
    }
    assert_eq!(h.started(), before, "nothing started in group2");
}

/// `TestGetLastScheduledTime`, an invalid schedule: refused (`getLastScheduledTime` errors on
/// every sync; brfed refuses the schedule at `apply`, with the cron error's name).
#[tokio::test]
async fn test_get_last_scheduled_time_invalid() {
    assert!(translate("#$#$#$@").is_err());
    let bad = schedule("bsname", json!({"schedule": "#$#$#$@"}));
    let err = bad.validate(None).unwrap_err();
    assert_eq!(err.name(), "InvalidSpec", "{err}");
    let h = Helper::default();
    let err = schedule::steps::apply(&h.fakes.env(), &h.fakes.rules, TICK_FN, &bad, None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
    assert!(
        h.fakes.env().list(None).await.unwrap().is_empty(),
        "nothing written"
    );
}

/// `TestGetLastScheduledTime`, the last backup time after now (clock fallback): nothing is due.
#[test]
fn test_get_last_scheduled_time_after_now() {
    let daily = translate("0 0 * * *").unwrap();
    assert_eq!(daily.latest_fire(now() + Duration::days(1), now()), None);
}

/// `TestGetLastScheduledTime`, scheduled: whenever the last backup was 1 to 10 days ago, the
/// time to run is today's midnight (UTC: brfed evaluates schedules in UTC, the original in its
/// manager's time zone, UTC by default; `docs/migration.md`).
#[test]
fn test_get_last_scheduled_time_scheduled() {
    let daily = translate("0 0 * * *").unwrap();
    for i in 0..10 {
        let last = now() - Duration::days(i + 1);
        assert_eq!(daily.latest_fire(last, now()), Some(midnight(0)), "{i}");
    }
}

/// `TestGetLastScheduledTime`, too many missed (the last backup 10 years ago). Different on
/// purpose: the original finds nothing on that sync (more than 1000 missed times: it moves
/// `lastBackupTime` to a period ago) and today's midnight on the next; brfed finds today's
/// midnight at once (it looks back at most 400 days, without walking every missed time), and
/// runs that one tick, once (`docs/upstream-tests.md`).
#[tokio::test]
async fn test_get_last_scheduled_time_too_many_missed() {
    let daily = translate("0 0 * * *").unwrap();
    let ten_years = now() - Duration::days(3653);
    assert_eq!(daily.latest_fire(ten_years, now()), Some(midnight(0)));

    let h = Helper::default();
    h.apply(&schedule("bsname", json!({}))).await;
    let (last, t) = ("bsname-2016-03-20t00-00-00", rfc3339(ten_years));
    h.edit_schedule("bsname", |d| {
        d["status"] = json!({"lastBackup": last, "lastBackupTime": t});
    });
    let doc = h.fakes.env().list(None).await.unwrap().remove(0);
    let tick = schedule::steps::catch_up(&h.fakes.env(), &doc, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tick.result, "started");
    assert_eq!(tick.backup, "bsname-2026-03-20t00-00-00");
    let doc = h.fakes.env().list(None).await.unwrap().remove(0);
    let next = schedule::steps::catch_up(&h.fakes.env(), &doc, now())
        .await
        .unwrap();
    assert_eq!(next, None, "the next look finds nothing more");
    assert_eq!(h.started(), 1);
}

/// `TestBuildBackup`: the backup of the tick at `now` is named `{schedule}-{ts}`, in the
/// schedule's namespace, with the schedule labels (`instance` and `backup-schedule` = the
/// schedule's name), the template's `br` and `s3` copied, and `s3.prefix` =
/// `path.Join(prefix, "-" + ts)` ("-ts" for the empty prefix). Different on purpose: no owner
/// reference to the schedule (deleting a schedule keeps its backups; `docs/migration.md`).
#[test]
fn test_build_backup() {
    let bs = schedule("bsname", json!({}));
    let tick = now();
    let get = bs.backup_request_for_tick(tick);
    assert_eq!(get.metadata.name, "bsname-2026-03-20t12-00-00");
    assert_eq!(get.metadata.namespace, NS);
    assert_eq!(
        pairs(&get.metadata.labels),
        [
            ("app.kubernetes.io/instance", "bsname"),
            ("app.kubernetes.io/managed-by", "backup-schedule-operator"),
            ("app.kubernetes.io/name", "backup-schedule"),
            ("tidb.pingcap.com/backup-schedule", "bsname"),
        ]
    );
    let template = Value::Object(get.spec.template.clone());
    assert_eq!(
        template,
        json!({"br": {}, "s3": {"provider": "aws", "bucket": "bucket-1",
                                "prefix": "-2026-03-20t12-00-00"}})
    );
    assert_eq!(get.spec.clusters, bs.spec.backup_template.clusters);
    let input = get.execution_input().unwrap();
    assert!(
        input["volumeBackup"]["metadata"]
            .get("ownerReferences")
            .is_none(),
        "{input}"
    );
}

/// A `Complete` (or `Failed`) backup created at `created`, as retention sees it.
fn candidate(name: &str, created: DateTime<Utc>, phase: &str) -> Candidate {
    Candidate {
        name: name.into(),
        created,
        phase: Some(phase.into()),
        skip_gc: false,
        deletion: None,
    }
}

/// What retention deletes of `backups` at `at`, one deletion after the other as each ends (the
/// original deletes one per sync too, of those `calculateExpiredBackups` returns).
fn expired(policy: Retention, mut backups: Vec<Candidate>, at: DateTime<Utc>) -> Vec<String> {
    let mut gone = Vec::new();
    while let Decision::Delete { name, .. } = decide(policy, &backups, at) {
        backups.retain(|b| b.name != name);
        gone.push(name);
    }
    gone
}

/// `TestCalculateExpiredBackups`, both rows (reserved time 24 h): a backup 10 minutes old is
/// kept; of a failed backup 3 days old and complete ones 2 days, 1 day and 10 minutes old, the
/// three older ones go. The original's `calculateExpiredBackups` reads the clock a moment after
/// the test took `now`, so "1 day ago" is just past 24 h then: the sweep here judges 1 s later.
#[test]
fn test_calculate_expired_backups() {
    let day = Retention::MaxReservedTime(std::time::Duration::from_secs(24 * 3600));
    let t = now();
    let ago = |d: Duration| t - d;
    let judged = t + Duration::seconds(1);

    let row1 = vec![candidate(
        "last10min",
        ago(Duration::minutes(10)),
        "Complete",
    )];
    assert_eq!(expired(day, row1, judged), Vec::<String>::new());

    let row2 = vec![
        candidate("last3day", ago(Duration::days(3)), "Failed"),
        candidate("last2day", ago(Duration::days(2)), "Complete"),
        candidate("last1day", ago(Duration::days(1)), "Complete"),
        candidate("last10min", ago(Duration::minutes(10)), "Complete"),
    ];
    assert_eq!(
        expired(day, row2.clone(), judged),
        ["last3day", "last2day", "last1day"]
    );
    // Exactly the reserved time old is kept, in both (`Compare(expiredTS) >= 0` keeps it).
    assert_eq!(expired(day, row2, t), ["last3day", "last2day"]);
}
