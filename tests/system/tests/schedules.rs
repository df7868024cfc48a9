//! Backup schedules on the local world: the schedule's EventBridge rule fires the real
//! `schedule-tick` function, which starts correctly named backups once (a repeated delivery or a
//! tick beside a running backup starts nothing, a paused schedule nothing); the retention sweep
//! (its own rule, paused schedules too) deletes exactly what the policy lets go, through
//! `volume-backup-delete`, and the snapshots and objects of deleted backups are gone. The same
//! schedule name in two namespaces backs up both TidbClusters, and a deletion in one namespace
//! never reaches the other's same-named backup; a manual backup carrying the schedule label is
//! not the schedule's retention's; a tick or a sweep dated a day ahead is refused.

use brfed_adapters::{EventBridgeRules, SchedulerRuntime};
use brfed_core::backup::member::snapshot_ids;
use brfed_core::names::execution_name;
use brfed_core::schedule;
use brfed_core::schedule::spec::{ScheduleRequest, tick_backup_name};
use brfed_system_tests::dataplane::World;
use brfed_system_tests::fixtures::{VolumeBackup, backup_clusters, seeded_world};
use brfed_system_tests::workflow::{
    RetryDelays, Workflows, catalog_doc, emulator, rule_deliveries, state_machine,
};
use chrono::{DateTime, Duration as Chrono, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(120);
const TICK_FN: &str = "arn:aws:lambda:us-west-2:123456789012:function:schedule-tick";

struct Case {
    world: World,
    flows: Workflows,
    sched: SchedulerRuntime,
    rules: EventBridgeRules,
    /// Namespace of the TidbCluster (in every data plane).
    ns: String,
    /// Namespace of the schedule and its backups.
    fns: String,
    /// Schedule name.
    name: String,
}

impl Case {
    /// A schedule `s{id}` in namespace `br`, for a new TidbCluster.
    async fn new(prefix: &str) -> Self {
        Self::with(prefix, None).await
    }

    /// A schedule `name` in a namespace of its own (the TidbCluster's namespace's name), for a
    /// new TidbCluster.
    async fn in_own_namespace(prefix: &str, name: &str) -> Self {
        Self::with(prefix, Some(name)).await
    }

    async fn with(prefix: &str, own: Option<&str>) -> Self {
        let (world, flows, tc) = seeded_world(prefix, "tidb", 1).await;
        let ns = tc.ns;
        let sdk = aws_config::load_from_env().await;
        let bucket = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone());
        let sched = SchedulerRuntime::from_parts(
            &sdk,
            bucket,
            state_machine("volume-backup"),
            state_machine("volume-backup-delete"),
        )
        .unwrap();
        let (fns, name) = match own {
            Some(name) => (ns.clone(), name.to_string()),
            None => ("br".to_string(), format!("s{}", &ns[ns.len() - 8..])),
        };
        Self {
            name,
            fns,
            rules: EventBridgeRules::new(&sdk),
            world,
            flows,
            sched,
            ns,
        }
    }

    /// Applies the schedule with `spec` fields over the defaults, and `annotations`.
    async fn apply(&self, spec: Value, annotations: Value) -> schedule::status::ScheduleDoc {
        let template = VolumeBackup::written(
            "",
            backup_clusters(&self.world.plane_names(3), "basic", &self.ns),
            &self.world.bucket,
            &format!("{}/sched", self.ns),
            "Delete",
        )
        .template("snapshotsDeleteRatio", json!(2.0))
        .spec();
        let mut s = json!({"schedule": "0 0 1 1 *", "backupTemplate": template});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let req = ScheduleRequest::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackupSchedule",
            "metadata": {"name": self.name, "namespace": self.fns, "annotations": annotations},
            "spec": s}))
        .unwrap();
        schedule::steps::apply(&self.sched.env(), &self.rules, TICK_FN, &req, None)
            .await
            .unwrap()
    }

    /// Invokes `schedule-tick` as the rule would, for the tick at `at`.
    fn tick(&self, at: DateTime<Utc>) -> Value {
        invoke(
            "schedule-tick",
            &json!({"namespace": self.fns, "name": self.name,
                    "time": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
        )
    }

    /// `namespace/name` of the schedule, as the tick and the sweep report it.
    fn id(&self) -> String {
        format!("{}/{}", self.fns, self.name)
    }

    /// The sweep's entry of this schedule.
    fn entry(&self, sweep: &Value) -> Value {
        sweep["schedules"]
            .as_array()
            .unwrap_or_else(|| panic!("not a sweep output: {sweep}"))
            .iter()
            .find(|s| s["schedule"] == self.id())
            .cloned()
            .unwrap_or_else(|| panic!("no entry for {} in {sweep}", self.id()))
    }

    async fn wait_backup(&self, name: &str) -> String {
        self.wait_backup_for(name, RUN).await
    }

    async fn wait_backup_for(&self, name: &str, timeout: Duration) -> String {
        let arn = format!(
            "{}:{}",
            state_machine("volume-backup").replace(":stateMachine:", ":execution:"),
            execution_name(&self.fns, name)
        );
        let done = self.flows.wait(&arn, timeout).await;
        done.status
    }

    /// The backup's member `Backup` objects that exist, over the data planes.
    async fn members(&self, backup: &str) -> usize {
        let mut n = 0;
        for p in self.world.plane_names(3) {
            let member = self
                .world
                .backups(&p, &self.ns)
                .get_opt(&format!("fed-{backup}"))
                .await
                .unwrap();
            n += usize::from(member.is_some());
        }
        n
    }

    async fn snapshots_of(&self, backup: &str) -> Vec<String> {
        let ts = &backup[self.name.len() + 1..];
        self.snapshots_under(&format!("{}/sched/-{ts}", self.ns))
            .await
    }

    /// The snapshot ids of the backup whose member prefixes are `{prefix}-{plane}`.
    async fn snapshots_under(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.world.plane_names(3) {
            let key = format!("{prefix}-{p}/backupmeta");
            if let Some(meta) = self
                .world
                .cloud
                .get(&self.world.bucket, &key)
                .await
                .unwrap()
            {
                out.extend(snapshot_ids(&serde_json::from_slice(&meta).unwrap()));
            }
        }
        out
    }

    async fn existing(&self, ids: &[String]) -> usize {
        let mut n = 0;
        for id in ids {
            if self
                .world
                .cloud
                .snapshots_by_id(std::slice::from_ref(id))
                .await
                .is_ok_and(|s| !s.is_empty())
            {
                n += 1;
            }
        }
        n
    }

    /// Waits for the retention deletion of `backup` (`names::deletion_execution_name`: its
    /// time is the sweep's, and another test's sweep may have started it): one of the deletions
    /// of that backup succeeds, `Cleaned` (a second one started at once is refused by the lock).
    async fn wait_deleted(&self, backup: &str) {
        let start = std::time::Instant::now();
        loop {
            let ours = self.deletions_of(backup).await;
            for arn in &ours {
                let done = self.flows.wait(arn, RUN).await;
                if done.status == "SUCCEEDED" {
                    assert_eq!(done.output.unwrap()["result"], "Cleaned");
                    return;
                }
            }
            assert!(
                start.elapsed() < RUN,
                "no deletion of {backup} succeeded: {ours:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// ARNs of the deletions of `backup` of this schedule's namespace
    /// (`names::deletion_execution_name`: `delete-{namespace}.{backup}-{time}`).
    async fn deletions_of(&self, backup: &str) -> Vec<String> {
        let sm = state_machine("volume-backup-delete");
        let prefix = format!("delete-{}.{backup}-", self.fns);
        let page = self
            .flows
            .sfn
            .list_executions()
            .state_machine_arn(&sm)
            .max_results(1000)
            .send()
            .await
            .expect("ListExecutions");
        page.executions()
            .iter()
            .filter(|e| e.name().starts_with(&prefix))
            .map(|e| e.execution_arn().to_string())
            .collect()
    }
}

/// Invokes a deployed function through the emulator's Lambda API and returns its payload.
fn invoke(function: &str, payload: &Value) -> Value {
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL")
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let mut resp = agent
        .post(&url)
        .header("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-west-2/lambda/aws4_request, SignedHeaders=host, Signature=0")
        .send(payload.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("invoke {function}: {e}"));
    let text = resp.body_mut().read_to_string().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("{function} answered {text}"))
}

/// Fires a schedule rule now through the emulator; returns the first delivery's function result.
fn fire(rule: &str) -> Value {
    let out = emulator("POST", &format!("/_brfed/rules/{rule}/fire"), None);
    out["deliveries"][0]["result"]["payload"].clone()
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp() - t.timestamp() % 60, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rule_fires_named_backups_once_pause_stops_them_and_count_retention_deletes_the_oldest()
{
    let c = Case::new("sch").await;
    let doc = c
        .apply(
            json!({"maxBackups": 1}),
            json!({"sim.brfed.dev/fault": "*:execute:delay=6000"}),
        )
        .await;
    let rule = doc.brfed.rule.clone();
    let described = aws_sdk_eventbridge::Client::new(&aws_config::load_from_env().await)
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(described.schedule_expression(), Some("cron(0 0 1 1 ? *)"));
    assert_eq!(described.state().map(|s| s.as_str()), Some("ENABLED"));

    // The rule's delivery (its input transformer gives the event time) starts the backup.
    let first = fire(&rule);
    assert_eq!(first["result"], "started", "{first}");
    let b1 = first["backup"].as_str().unwrap().to_string();
    let t1: DateTime<Utc> = {
        let ts = &b1[c.name.len() + 1..];
        DateTime::parse_from_str(&format!("{ts}+0000"), "%Y-%m-%dt%H-%M-%S%z")
            .unwrap()
            .with_timezone(&Utc)
    };
    assert_eq!(t1, minute(t1), "named after the tick's minute");
    assert!(b1.starts_with(&format!("{}-", c.name)));

    // A repeated delivery of the same tick, and a tick while it runs: nothing started.
    assert_eq!(c.tick(t1 + Chrono::seconds(20))["result"], "duplicate");
    let busy = c.tick(t1 + Chrono::minutes(1));
    assert_eq!(busy["result"], "lastBackupRunning", "{busy}");
    assert_eq!(c.wait_backup(&b1).await, "SUCCEEDED");
    let doc1 = catalog_doc(&c.world, "br", &b1).await.unwrap();
    assert_eq!(
        doc1["spec"]["template"]["s3"]["prefix"],
        format!("{}/sched/-{}", c.ns, &b1[c.name.len() + 1..])
    );
    assert_eq!(
        doc1["metadata"]["labels"]["tidb.pingcap.com/backup-schedule"],
        c.name.as_str()
    );

    let second = c.tick(t1 + Chrono::minutes(2));
    assert_eq!(second["result"], "started", "{second}");
    let b2 = second["backup"].as_str().unwrap().to_string();
    assert_eq!(c.wait_backup(&b2).await, "SUCCEEDED");
    let (s1, s2) = (c.snapshots_of(&b1).await, c.snapshots_of(&b2).await);
    assert_eq!((s1.len(), s2.len()), (3, 3));

    // Paused: the rule is disabled and a delivery starts nothing; the sweep still runs.
    schedule::steps::set_paused(&c.sched.env(), &c.rules, "br", &c.name, true)
        .await
        .unwrap();
    assert_eq!(c.tick(t1 + Chrono::minutes(3))["result"], "paused");
    let sweep = fire("brfed-retention-sweep");
    let mine = sweep["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["schedule"] == format!("br/{}", c.name))
        .cloned()
        .unwrap_or_else(|| panic!("no entry for the schedule in {sweep}"));
    // Another test's sweep may have started it first: either way it is this backup.
    assert_eq!(mine["deleting"].as_str().unwrap_or(&b1), b1, "{mine}");
    c.wait_deleted(&b1).await;
    assert_eq!(
        c.existing(&s1).await,
        0,
        "the deleted backup's snapshots are gone"
    );
    assert_eq!(c.existing(&s2).await, 3, "the kept backup's are not");
    let left = c
        .world
        .cloud
        .list(
            &c.world.bucket,
            &format!("{}/sched/-{}", c.ns, &b1[c.name.len() + 1..]),
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "objects left: {left:?}");
    assert!(catalog_doc(&c.world, "br", &b1).await.is_none());
    assert!(catalog_doc(&c.world, "br", &b2).await.is_some());

    // One complete backup left, maxBackups 1: the next sweep keeps it.
    let again = invoke("retention-sweep", &json!({"time": Utc::now().to_rfc3339()}));
    let mine = again["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["schedule"] == format!("br/{}", c.name))
        .cloned()
        .unwrap();
    assert!(mine.get("deleting").is_none(), "{mine}");
    schedule::steps::remove(&c.sched.env(), &c.rules, "br", &c.name)
        .await
        .unwrap();
}

/// Age retention on the sweep function's own clock: a sweep cannot be dated ahead (see
/// `a_tick_or_a_sweep_dated_a_day_ahead_is_refused_and_later_ticks_still_run`), so the backups
/// really grow older than `maxReservedTime` (one minute here).
#[tokio::test(flavor = "multi_thread")]
async fn age_retention_deletes_expired_backups_and_never_a_running_one() {
    let c = Case::new("age").await;
    c.apply(json!({"maxReservedTime": "1m", "maxBackups": 5}), json!({}))
        .await;
    let t1 = minute(Utc::now()) - Chrono::minutes(10);
    let first = c.tick(t1);
    assert_eq!(first["result"], "started", "{first}");
    let b1 = first["backup"].as_str().unwrap().to_string();
    assert_eq!(c.wait_backup(&b1).await, "SUCCEEDED");
    let s1 = c.snapshots_of(&b1).await;

    // The next backup runs slowly: it is still running once it is older than maxReservedTime.
    c.apply(
        json!({"maxReservedTime": "1m", "maxBackups": 5}),
        json!({"sim.brfed.dev/fault": "*:execute:delay=150000"}),
    )
    .await;
    let second = c.tick(t1 + Chrono::minutes(1));
    assert_eq!(second["result"], "started", "{second}");
    let b2 = second["backup"].as_str().unwrap().to_string();
    let doc2 = loop {
        if let Some(d) = catalog_doc(&c.world, &c.fns, &b2).await {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let created2: DateTime<Utc> = doc2["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("no creationTimestamp: {doc2}"));
    // Both are expired when the younger one is: wait for that, on the real clock.
    while Utc::now() < created2 + Chrono::seconds(65) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let out = invoke("retention-sweep", &json!({}));
    // The sweep rule (every 5 minutes) may have started it first: either way it is b1.
    let mine = c.entry(&out);
    assert_eq!(mine["deleting"].as_str().unwrap_or(&b1), b1, "{out}");
    c.wait_deleted(&b1).await;
    assert_eq!(c.existing(&s1).await, 0);

    let out = invoke("retention-sweep", &json!({}));
    assert!(
        c.entry(&out).get("deleting").is_none(),
        "the running backup is never deleted, expired as it is: {out}"
    );
    assert_eq!(
        c.wait_backup_for(&b2, Duration::from_secs(300)).await,
        "SUCCEEDED"
    );
    schedule::steps::remove(&c.sched.env(), &c.rules, &c.fns, &c.name)
        .await
        .unwrap();
}

/// The same schedule name (`nightly`) in two namespaces, for two TidbClusters: each tick backs
/// up both (today's code took the second for a duplicate of the first and never backed that
/// cluster up), and deleting one namespace's backup, by hand and by retention, leaves the other
/// namespace's backup of the same name whole: its catalog document, its member objects in every
/// data plane and every one of its snapshots. A manual backup in the first namespace, named and
/// labelled like the schedule's oldest, is never its retention's.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_schedule_name_in_two_namespaces_backs_up_both_and_deletions_keep_apart() {
    let a = Case::in_own_namespace("twa", "nightly").await;
    let b = Case::in_own_namespace("twb", "nightly").await;
    a.apply(json!({"maxBackups": 1}), json!({})).await;
    b.apply(json!({"maxBackups": 2}), json!({})).await;

    // By hand, before any tick: labelled as the schedule's, its oldest by name and by age.
    let manual = "nightly-2000-01-01t00-00-00".to_string();
    let manual_prefix = format!("{}/manual", a.ns);
    let clusters = backup_clusters(&a.world.plane_names(3), "basic", &a.ns);
    let input = VolumeBackup::written(&manual, clusters, &a.world.bucket, &manual_prefix, "Delete")
        .namespace(&a.fns)
        .labels(json!({"tidb.pingcap.com/backup-schedule": "nightly"}))
        .build();
    let arn = a
        .flows
        .start(
            &state_machine("volume-backup"),
            &execution_name(&a.fns, &manual),
            &input,
        )
        .await;
    let done = a.flows.wait(&arn, RUN).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let s_manual = a.snapshots_under(&manual_prefix).await;
    assert_eq!(s_manual.len(), 3);

    // Two ticks, each delivered to both schedules: four backups, two names.
    let t1 = minute(Utc::now()) - Chrono::minutes(5);
    let mut names = Vec::new();
    for t in [t1, t1 + Chrono::minutes(1)] {
        let (ra, rb) = (a.tick(t), b.tick(t));
        assert_eq!(ra["result"], "started", "{ra}");
        assert_eq!(
            rb["result"], "started",
            "the other namespace's tick too: {rb}"
        );
        assert_eq!(ra["backup"], rb["backup"]);
        let name = ra["backup"].as_str().unwrap().to_string();
        assert_eq!(a.wait_backup(&name).await, "SUCCEEDED");
        assert_eq!(b.wait_backup(&name).await, "SUCCEEDED");
        names.push(name);
    }
    let (n1, n2) = (names[0].clone(), names[1].clone());
    let (a1, a2) = (a.snapshots_of(&n1).await, a.snapshots_of(&n2).await);
    let (b1, b2) = (b.snapshots_of(&n1).await, b.snapshots_of(&n2).await);
    for (what, s) in [("a1", &a1), ("a2", &a2), ("b1", &b1), ("b2", &b2)] {
        assert_eq!(s.len(), 3, "{what}");
    }
    assert!(a2.iter().all(|id| !b2.contains(id)), "distinct snapshots");
    for (c, n) in [(&a, &n1), (&a, &n2), (&b, &n1), (&b, &n2)] {
        assert_eq!(c.members(n).await, 3, "{}/{n}", c.fns);
    }

    // By hand: the second namespace's newest goes; the first's of the same name stays whole.
    let delete_sm = state_machine("volume-backup-delete");
    let arn = b
        .flows
        .start(
            &delete_sm,
            &format!("delete-{}", execution_name(&b.fns, &n2)),
            &json!({"name": n2, "namespace": b.fns}),
        )
        .await;
    let done = b.flows.wait(&arn, RUN).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    assert_eq!(done.output.unwrap()["result"], "Cleaned");
    assert_eq!(b.existing(&b2).await, 0, "the deleted backup's snapshots");
    assert!(catalog_doc(&b.world, &b.fns, &n2).await.is_none());
    assert!(catalog_doc(&a.world, &a.fns, &n2).await.is_some());
    assert_eq!(a.members(&n2).await, 3, "the other namespace's members");
    assert_eq!(a.existing(&a2).await, 3, "the other namespace's snapshots");

    // By retention: maxBackups 1 lets the first namespace's oldest tick backup go (not the
    // manual one); the second namespace keeps its one backup of that name, whole.
    let out = invoke("retention-sweep", &json!({}));
    // The sweep rule (every 5 minutes) may have started it first: either way it is n1.
    assert_eq!(
        a.entry(&out)["deleting"].as_str().unwrap_or(&n1),
        n1,
        "{out}"
    );
    assert!(b.entry(&out).get("deleting").is_none(), "{out}");
    a.wait_deleted(&n1).await;
    assert_eq!(a.existing(&a1).await, 0, "the expired backup's snapshots");
    assert!(catalog_doc(&b.world, &b.fns, &n1).await.is_some());
    assert_eq!(b.members(&n1).await, 3, "the other namespace's members");
    assert_eq!(b.existing(&b1).await, 3, "the other namespace's snapshots");
    assert!(catalog_doc(&a.world, &a.fns, &manual).await.is_some());
    assert_eq!(
        a.existing(&s_manual).await,
        3,
        "the manual backup's snapshots"
    );
    let again = invoke("retention-sweep", &json!({}));
    assert!(
        a.entry(&again).get("deleting").is_none(),
        "one tick backup left, and the manual one is not a candidate: {again}"
    );

    for c in [&a, &b] {
        schedule::steps::remove(&c.sched.env(), &c.rules, &c.fns, &c.name)
            .await
            .unwrap();
    }
}

/// A tick dated a day ahead would record a `lastBackupTime` that makes every real tick until
/// then `stale`, and a sweep dated a day ahead would expire backups early: both are refused by
/// name, change nothing, and the schedule's next real tick runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_tick_or_a_sweep_dated_a_day_ahead_is_refused_and_later_ticks_still_run() {
    let c = Case::new("ahead").await;
    c.apply(json!({"maxReservedTime": "1h"}), json!({})).await;
    let ahead = minute(Utc::now()) + Chrono::days(1);
    let refused = c.tick(ahead);
    assert_eq!(refused["errorType"], "EventTimeOutOfRange", "{refused}");
    let doc = schedule::steps::get(&c.sched.env(), &c.fns, &c.name)
        .await
        .unwrap();
    assert_eq!(doc.status, Default::default(), "nothing recorded");
    let sfn = aws_sdk_sfn::Client::new(&aws_config::load_from_env().await);
    let never = format!(
        "{}:{}",
        state_machine("volume-backup").replace(":stateMachine:", ":execution:"),
        execution_name(&c.fns, &tick_backup_name(&c.name, ahead))
    );
    assert!(
        sfn.describe_execution()
            .execution_arn(&never)
            .send()
            .await
            .is_err(),
        "no backup of the refused tick"
    );

    let now = c.tick(minute(Utc::now()));
    assert_eq!(now["result"], "started", "the next real tick runs: {now}");
    let b = now["backup"].as_str().unwrap().to_string();
    assert_eq!(c.wait_backup(&b).await, "SUCCEEDED");
    let s = c.snapshots_of(&b).await;

    // A day ahead, the backup would be older than maxReservedTime (1 h): refused, kept.
    let sweep = invoke(
        "retention-sweep",
        &json!({"time": ahead.to_rfc3339_opts(SecondsFormat::Secs, true)}),
    );
    assert_eq!(sweep["errorType"], "EventTimeOutOfRange", "{sweep}");
    assert_eq!(
        c.deletions_of(&b).await,
        Vec::<String>::new(),
        "no deletion started"
    );
    assert!(catalog_doc(&c.world, &c.fns, &b).await.is_some());
    assert_eq!(c.existing(&s).await, 3);
    schedule::steps::remove(&c.sched.env(), &c.rules, &c.fns, &c.name)
        .await
        .unwrap();
}

/// A stopped backup whose dp2 member still runs (its execute job takes 150 s, and the data
/// plane's teardown waits for it) blocks the schedule's next tick until that member is terminal,
/// as the original waits (PR #5735): `backup-abort` marks the backup `Failed` with
/// `membersSettled: false` and the tick answers `lastBackupRunning` while dp2 runs; once dp2
/// has ended, `backup-abort` (a Lambda retry, or a sweep's settle check) writes
/// `membersSettled: true`, and only then does a tick start the next backup.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_backup_with_a_member_still_running_blocks_the_next_tick_until_it_settles() {
    let c = Case::new("stl").await;
    c.apply(
        json!({}),
        json!({"sim.brfed.dev/fault": "dp2:execute:delay=150000"}),
    )
    .await;
    let _delays = RetryDelays::set(&[5]);
    let t1 = minute(Utc::now());
    let first = c.tick(t1);
    assert_eq!(first["result"], "started", "{first}");
    let b1 = first["backup"].as_str().unwrap().to_string();
    let arn = format!(
        "{}:{}",
        state_machine("volume-backup").replace(":stateMachine:", ":execution:"),
        execution_name(&c.fns, &b1)
    );

    // Stopped once every member exists and dp2's execute job runs.
    let end = std::time::Instant::now() + RUN;
    while c.members(&b1).await < 3 {
        assert!(std::time::Instant::now() < end, "members never created");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.flows.stop(&arn).await;

    let unsettled = wait_doc(&c, &b1, "Failed with membersSettled false", |d| {
        d["status"]["phase"] == "Failed" && d["brfed"]["membersSettled"] == false
    })
    .await;
    let running = unsettled["brfed"]["unsettledMembers"].to_string();
    assert!(running.contains("dp2/"), "{unsettled}");
    let busy = c.tick(t1 + Chrono::minutes(1));
    assert_eq!(busy["result"], "lastBackupRunning", "{busy}");
    assert!(
        busy["reason"].as_str().unwrap_or("").contains(&b1),
        "the tick names the backup it waits for: {busy}"
    );

    // dp2's member ends once its execute job has (Lambda's three attempts are over by then).
    let member = format!("fed-{b1}");
    let end = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let obj = c
            .world
            .backups("dp2", &c.ns)
            .get_opt(&member)
            .await
            .unwrap();
        let phase = obj
            .as_ref()
            .and_then(|o| o.data["status"]["phase"].as_str().map(String::from));
        if obj.is_none() || matches!(phase.as_deref(), Some("Complete" | "Failed")) {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "dp2's member never ended: {phase:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Lambda's own attempts (5 s apart here) found dp2 running. Under load they can be late
    // enough to see dp2 end and settle it themselves; otherwise a sweep's settle check does (this
    // test's, or any other sweep's: every sweep checks every unsettled backup of the catalog).
    // The settle check alone, deterministically: abort_safety_net.rs.
    let attempts = rule_deliveries("brfed-backup-execution-ended", &arn);
    assert!(
        attempts
            .iter()
            .any(|a| a["result"]["payload"]["errorType"] == "MembersRunning"),
        "{attempts:?}"
    );
    let sweep = invoke(
        "retention-sweep",
        &json!({"time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)}),
    );
    assert!(sweep["schedules"].is_array(), "{sweep}");
    let settled = wait_doc(&c, &b1, "membersSettled true", |d| {
        d["brfed"]["membersSettled"] == true
    })
    .await;
    assert_eq!(settled["status"]["phase"], "Failed", "{settled}");

    // The next tick runs (without the fault, the next backup is quick).
    c.apply(json!({}), json!({})).await;
    let next = c.tick(t1 + Chrono::minutes(3));
    assert_eq!(next["result"], "started", "{next}");
    let b2 = next["backup"].as_str().unwrap().to_string();
    assert_eq!(c.wait_backup(&b2).await, "SUCCEEDED");
    schedule::steps::remove(&c.sched.env(), &c.rules, &c.fns, &c.name)
        .await
        .unwrap();
}

/// The original runs the latest tick it missed as soon as the last backup has ended. A
/// schedule of every minute whose backup takes over a minute: while it runs, the sweep's catch-up
/// is refused (`lastBackupRunning`); after it ends, one sweep starts exactly one backup, the one
/// of the latest minute, not a backlog of every minute missed. (The rule itself is disabled
/// here so that only the sweep ticks; `spec.pause` stays false.)
#[tokio::test(flavor = "multi_thread")]
async fn the_latest_tick_missed_while_a_backup_ran_starts_after_it_once() {
    use brfed_core::ports::Rules;
    let c = Case::new("mis").await;
    let doc = c
        .apply(
            json!({"schedule": "* * * * *"}),
            json!({"sim.brfed.dev/fault": "*:execute:delay=75000"}),
        )
        .await;
    assert!(c.rules.set_enabled(&doc.brfed.rule, false).await.unwrap());
    let t1 = minute(Utc::now());
    let first = c.tick(t1);
    assert_eq!(first["result"], "started", "{first}");
    let b1 = first["backup"].as_str().unwrap().to_string();

    let sweep = || {
        invoke(
            "retention-sweep",
            &json!({"time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)}),
        )
    };
    // While it runs (wait for a minute after t1 to be due).
    tokio::time::sleep(Duration::from_secs(
        (65 - Utc::now().timestamp() % 60) as u64,
    ))
    .await;
    let busy = c.entry(&sweep());
    assert_eq!(busy["missedTick"]["result"], "lastBackupRunning", "{busy}");
    assert_eq!(
        c.wait_backup_for(&b1, Duration::from_secs(240)).await,
        "SUCCEEDED"
    );

    let started_before = Utc::now();
    let caught = c.entry(&sweep());
    assert_eq!(caught["missedTick"]["result"], "started", "{caught}");
    let b2 = caught["missedTick"]["backup"].as_str().unwrap().to_string();
    // The latest minute at or before the sweep, never an earlier missed one.
    let latest = [
        tick_backup_name(&c.name, minute(started_before)),
        tick_backup_name(&c.name, minute(Utc::now())),
    ];
    assert!(
        latest.contains(&b2),
        "{b2} is not the latest missed minute {latest:?}"
    );
    // Not a backlog: the schedule's executions are the first backup and this one.
    let prefix = execution_name(&c.fns, &format!("{}-", c.name));
    let page = c
        .flows
        .sfn
        .list_executions()
        .state_machine_arn(state_machine("volume-backup"))
        .max_results(1000)
        .send()
        .await
        .unwrap();
    let mut ours: Vec<String> = page
        .executions()
        .iter()
        .map(|e| e.name().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [execution_name(&c.fns, &b1), execution_name(&c.fns, &b2)]
    );
    // Once: a second sweep in the same minute starts nothing more.
    if minute(Utc::now()) == minute(started_before) {
        let again = c.entry(&sweep());
        assert_ne!(again["missedTick"]["result"], "started", "{again}");
    }
    schedule::steps::set_paused(&c.sched.env(), &c.rules, &c.fns, &c.name, true)
        .await
        .unwrap();
    assert_eq!(
        c.wait_backup_for(&b2, Duration::from_secs(240)).await,
        "SUCCEEDED"
    );
    schedule::steps::remove(&c.sched.env(), &c.rules, &c.fns, &c.name)
        .await
        .unwrap();
}

/// Waits (up to 3 minutes) until backup `name`'s catalog document satisfies `ok`; returns it.
async fn wait_doc(c: &Case, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let end = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let doc = catalog_doc(&c.world, &c.fns, name).await;
        if let Some(d) = doc.as_ref().filter(|d| ok(d)) {
            return d.clone();
        }
        assert!(
            std::time::Instant::now() < end,
            "{name}: never {what}: {doc:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
