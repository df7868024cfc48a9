//! Backup schedules on the local world: the schedule's EventBridge rule fires the real
//! `schedule-tick` function, which starts correctly named backups once (a repeated delivery or a
//! tick beside a running backup starts nothing, a paused schedule nothing); the retention sweep
//! (its own rule, paused schedules too) deletes exactly what the policy lets go, through
//! `volume-backup-delete`, and the snapshots and objects of deleted backups are gone.

use brfed_adapters::{EventBridgeRules, SchedulerRuntime};
use brfed_core::delete::snapshot_ids;
use brfed_core::schedule::ScheduleRequest;
use brfed_core::scheduling;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_tidb_cluster};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::workflow::{Workflows, catalog_doc, emulator, state_machine};
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
    ns: String,
    name: String,
}

impl Case {
    async fn new(prefix: &str) -> Self {
        let world = World::from_env().await;
        let flows = Workflows::from_env().await;
        let ns = unique(prefix);
        seed_tidb_cluster(
            &world.kubeconfig,
            &world.plane_names(3),
            &TidbClusterSeed::new(&ns, "basic", format!("{ns}-tidb")).stores_per_plane(1),
        )
        .await
        .expect("seed");
        let sdk = aws_config::load_from_env().await;
        let bucket = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone());
        let sched = SchedulerRuntime::from_parts(
            &sdk,
            bucket,
            state_machine("volume-backup"),
            state_machine("volume-backup-delete"),
        )
        .unwrap();
        Self {
            name: format!("s{}", &ns[ns.len() - 8..]),
            rules: EventBridgeRules::new(&sdk),
            world,
            flows,
            sched,
            ns,
        }
    }

    /// Applies the schedule with `spec` fields over the defaults, and `annotations`.
    async fn apply(&self, spec: Value, annotations: Value) -> scheduling::ScheduleDoc {
        let clusters: Vec<Value> = self
            .world
            .plane_names(3)
            .iter()
            .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": self.ns}))
            .collect();
        let mut s = json!({
            "schedule": "0 0 1 1 *",
            "backupTemplate": {"clusters": clusters, "template": {
                "br": {"sendCredToTikv": false},
                "s3": {"provider": "aws", "region": "us-west-2", "bucket": self.world.bucket,
                       "prefix": format!("{}/sched", self.ns)},
                "toolImage": "pingcap/br:v7.5.1", "cleanPolicy": "Delete", "snapshotsDeleteRatio": 2.0}}});
        s.as_object_mut()
            .unwrap()
            .extend(spec.as_object().unwrap().clone());
        let req = ScheduleRequest::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackupSchedule",
            "metadata": {"name": self.name, "namespace": "br", "annotations": annotations},
            "spec": s}))
        .unwrap();
        scheduling::apply(&self.sched.env(), &self.rules, TICK_FN, &req, None)
            .await
            .unwrap()
    }

    /// Invokes `schedule-tick` as the rule would, for the tick at `at`.
    fn tick(&self, at: DateTime<Utc>) -> Value {
        invoke(
            "schedule-tick",
            &json!({"namespace": "br", "name": self.name,
                    "time": at.to_rfc3339_opts(SecondsFormat::Secs, true)}),
        )
    }

    async fn wait_backup(&self, name: &str) -> String {
        let arn = format!(
            "{}:{name}",
            state_machine("volume-backup").replace(":stateMachine:", ":execution:")
        );
        let done = self.flows.wait(&arn, RUN).await;
        done.status
    }

    async fn snapshots_of(&self, backup: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.world.plane_names(3) {
            let key = format!(
                "{}/sched/-{}-{p}/backupmeta",
                self.ns,
                &backup[self.name.len() + 1..]
            );
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
        let sm = state_machine("volume-backup-delete");
        let prefix = format!("delete-br.{backup}-");
        let start = std::time::Instant::now();
        loop {
            let page = self
                .flows
                .sfn
                .list_executions()
                .state_machine_arn(&sm)
                .max_results(1000)
                .send()
                .await
                .expect("ListExecutions");
            let ours: Vec<String> = page
                .executions()
                .iter()
                .filter(|e| e.name().starts_with(&prefix))
                .map(|e| e.execution_arn().to_string())
                .collect();
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
    scheduling::set_paused(&c.sched.env(), &c.rules, "br", &c.name, true)
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
    scheduling::remove(&c.sched.env(), &c.rules, "br", &c.name)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn age_retention_deletes_expired_backups_and_never_a_running_one() {
    let c = Case::new("age").await;
    c.apply(json!({"maxReservedTime": "1h", "maxBackups": 5}), json!({}))
        .await;
    let t1 = minute(Utc::now()) - Chrono::minutes(10);
    let first = c.tick(t1);
    assert_eq!(first["result"], "started", "{first}");
    let b1 = first["backup"].as_str().unwrap().to_string();
    assert_eq!(c.wait_backup(&b1).await, "SUCCEEDED");
    let s1 = c.snapshots_of(&b1).await;

    // The next backup runs slowly.
    c.apply(
        json!({"maxReservedTime": "1h", "maxBackups": 5}),
        json!({"sim.brfed.dev/fault": "*:execute:delay=25000"}),
    )
    .await;
    let second = c.tick(t1 + Chrono::minutes(1));
    assert_eq!(second["result"], "started", "{second}");
    let b2 = second["backup"].as_str().unwrap().to_string();

    // Two hours later, as far as the sweep is concerned: b1 expired, b2 runs.
    let later = (Utc::now() + Chrono::hours(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let out = invoke("retention-sweep", &json!({"time": later}));
    let mine = |out: &Value| {
        out["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["schedule"] == format!("br/{}", c.name))
            .cloned()
            .unwrap()
    };
    assert_eq!(mine(&out)["deleting"], b1.as_str(), "{out}");
    c.wait_deleted(&b1).await;
    assert_eq!(c.existing(&s1).await, 0);

    let out = invoke("retention-sweep", &json!({"time": later}));
    assert!(
        mine(&out).get("deleting").is_none(),
        "the running backup is never deleted: {out}"
    );
    assert_eq!(c.wait_backup(&b2).await, "SUCCEEDED");
    assert!(catalog_doc(&c.world, "br", &b2).await.is_some());
    scheduling::remove(&c.sched.env(), &c.rules, "br", &c.name)
        .await
        .unwrap();
}
