//! The signals of an ended backup on the local world (`docs/signals.md`): the `VolumeBackup
//! Complete` / `VolumeBackup Failed` event that `backup-finalize` puts on the default bus, as the
//! emulator delivered it to the `brfed-events-archive` rule (`infra/local/rules.json`, whose
//! target `smoke-fn` echoes it), and the EMF line the function wrote to its stdout (the emulator
//! keeps each function's stdout and stderr in `$BRFED_WORLD_DIR/logs/lambda/<function>.log`);
//! the same of `backup-abort` for a stopped backup, and of `backup-delete-finish` when the backup
//! is deleted (`VolumeBackup Cleaned`).

use brfed_system_tests::fixtures::BackupCase;
use brfed_system_tests::workflow::{Finished, emulator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(120);
/// The event pump delivers within a pump interval (0.5 s); the function logs before it sends.
const SIGNAL: Duration = Duration::from_secs(30);

/// The input of the test's backup `br/<name>` (over TidbCluster `basic` in a fresh namespace of
/// the first 3 planes), with `annotations`.
fn input(c: &BackupCase, annotations: Value) -> Value {
    c.input("Delete").annotations(annotations).build()
}

async fn backup(c: &BackupCase, annotations: Value) -> Finished {
    c.run(&input(c, annotations), RUN).await
}

/// The event of `detail_type` for this backup that the archive rule received.
async fn event(c: &BackupCase, detail_type: &str) -> Value {
    let deadline = Instant::now() + SIGNAL;
    loop {
        let answer = emulator("GET", "/_brfed/deliveries?rule=brfed-events-archive", None);
        let found = answer["deliveries"].as_array().and_then(|ds| {
            ds.iter()
                .find(|d| {
                    d["event"]["detail-type"] == detail_type
                        && d["event"]["detail"]["namespace"] == "br"
                        && d["event"]["detail"]["name"] == c.name.as_str()
                })
                .cloned()
        });
        if let Some(d) = found {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "no `{detail_type}` event of br/{} delivered to brfed-events-archive within {SIGNAL:?}",
            c.name
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The EMF document `function` wrote for `execution`, and the log's lines about it.
async fn metrics(function: &str, execution: &str) -> (Value, Vec<String>) {
    let world = std::env::var("BRFED_WORLD_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.world"),
        PathBuf::from,
    );
    let log = world.join(format!("logs/lambda/{function}.log"));
    let deadline = Instant::now() + SIGNAL;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(execution))
            .map(String::from)
            .collect();
        let emf = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v.get("_aws").is_some());
        if let Some(emf) = emf {
            return (emf, lines);
        }
        assert!(
            Instant::now() < deadline,
            "no EMF line of {execution} in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The EMF document's directive whose metrics include `metric`.
fn directive_of<'a>(emf: &'a Value, metric: &str) -> &'a Value {
    emf["_aws"]["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics")
        .iter()
        .find(|d| {
            d["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["Name"] == metric)
        })
        .unwrap_or_else(|| panic!("no directive reports {metric}: {emf}"))
}

/// What every brfed EMF document has: a recent ms timestamp, namespace `brfed`, the status
/// counter under (namespace, tc, status) and the `tc` of the three `basic` members.
fn assert_backup_emf(emf: &Value, status: &str) {
    let ts = emf["_aws"]["Timestamp"].as_i64().expect("ms timestamp");
    let age = chrono::Utc::now().timestamp_millis() - ts;
    assert!(
        (0..600_000).contains(&age),
        "timestamp {ts} is {age} ms old"
    );
    assert_eq!(emf["namespace"], "br");
    assert_eq!(emf["tc"], "basic,basic,basic");
    assert_eq!(emf["status"], status);
    assert_eq!(emf["fed_volume_backup_status"], 1.0);
    let d = directive_of(emf, "fed_volume_backup_status");
    assert_eq!(d["Namespace"], "brfed");
    assert_eq!(d["Dimensions"], json!([["namespace", "tc", "status"]]));
    let d = directive_of(emf, "fed_volume_backup_total_time_sec");
    assert_eq!(d["Dimensions"], json!([["namespace", "tc"]]));
    let total = emf["fed_volume_backup_total_time_sec"].as_f64().unwrap();
    assert!((0.0..120.0).contains(&total), "total time {total}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_complete_backup_sends_its_event_and_writes_its_metrics() {
    let c = BackupCase::new("sig-ok", "bk", 2).await;
    let done = backup(&c, json!({})).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.expect("output document");

    let delivery = event(&c, "VolumeBackup Complete").await;
    assert_eq!(delivery["ok"], true, "{delivery}");
    let detail = &delivery["event"]["detail"];
    assert_eq!(
        *detail,
        json!({"namespace": "br", "name": c.name, "phase": "Complete",
               "commitTs": out["status"]["commitTs"], "backupSize": out["status"]["backupSize"],
               "timeTaken": out["status"]["timeTaken"], "error": null, "cause": null,
               "execution": done.arn}),
        "the detail is small and complete"
    );
    let echoed = &delivery["result"]["payload"];
    assert_eq!(echoed["source"], "brfed", "{echoed}");
    assert_eq!(echoed["echoed"], true, "the archive function got the event");

    let (emf, lines) = metrics("backup-finalize", &done.arn).await;
    assert_backup_emf(&emf, "Complete");
    let size = emf["fed_volume_backup_total_size_gb"].as_f64().unwrap();
    let bytes = out["status"]["backupSize"].as_f64().unwrap();
    assert!(
        (size - bytes / 1024f64.powi(3)).abs() < 1e-9,
        "{size} GiB of {bytes} bytes"
    );
    let pause = emf["fed_volume_backup_pause_window_sec"]
        .as_f64()
        .expect("a complete backup resumed GC: its pause window is known");
    assert!(pause >= 0.0 && pause <= total_of(&emf), "pause {pause}");
    assert_eq!(emf["execution"], done.arn.as_str());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("event sent") && l.contains("VolumeBackup Complete")),
        "the step's log line about the event carries its execution: {lines:#?}"
    );
}

fn total_of(emf: &Value) -> f64 {
    emf["fed_volume_backup_total_time_sec"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_backup_sends_volume_backup_failed_with_its_failure_name() {
    let c = BackupCase::new("sig-fail", "bk", 2).await;
    let done = backup(&c, json!({"sim.brfed.dev/fault": "dp2:execute:fail"})).await;
    assert_eq!(done.status, "FAILED", "{done:?}");
    assert_eq!(done.error.as_deref(), Some("MemberFailed"), "{done:?}");

    let delivery = event(&c, "VolumeBackup Failed").await;
    assert_eq!(delivery["ok"], true, "{delivery}");
    let detail = &delivery["event"]["detail"];
    assert_eq!(detail["phase"], "Failed");
    assert_eq!(detail["error"], "MemberFailed");
    assert!(
        detail["cause"].as_str().unwrap_or_default().contains("dp2"),
        "{detail}"
    );
    assert_eq!(detail["execution"], done.arn.as_str());
    assert!(detail.get("backups").is_none() && detail.get("members").is_none());

    let (emf, _) = metrics("backup-finalize", &done.arn).await;
    assert_backup_emf(&emf, "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_backup_sends_volume_backup_cleaned_with_the_cleanup_time() {
    let c = BackupCase::new("sig-del", "bk", 2).await;
    let done = backup(&c, json!({})).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let deleted = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(deleted.status, "SUCCEEDED", "{deleted:?}");
    assert_eq!(deleted.output.as_ref().unwrap()["result"], "Cleaned");

    let delivery = event(&c, "VolumeBackup Cleaned").await;
    let detail = &delivery["event"]["detail"];
    assert_eq!(detail["phase"], "Cleaned");
    assert_eq!(
        detail["execution"],
        deleted.arn.as_str(),
        "the deletion's execution"
    );
    assert_eq!(detail["error"], Value::Null);
    assert!(detail["timeTaken"].is_string(), "{detail}");

    let (emf, _) = metrics("backup-delete-finish", &deleted.arn).await;
    assert_eq!(emf["status"], "Cleaned");
    assert_eq!(emf["tc"], "basic,basic,basic");
    assert_eq!(emf["fed_volume_backup_cleanup_status"], 1.0);
    let d = directive_of(&emf, "fed_volume_backup_cleanup_status");
    assert_eq!(d["Dimensions"], json!([["namespace", "tc", "status"]]));
    // and by the stack (its catalog bucket), which the stack's dashboard reads
    let catalog = std::env::var("BRFED_CATALOG_BUCKET").expect("BRFED_CATALOG_BUCKET");
    assert_eq!(emf["stack"], catalog.as_str());
    let by_stack = emf["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["Dimensions"] == json!([["stack", "status"]]));
    assert!(by_stack, "{emf}");
    let took = emf["fed_volume_backup_cleanup_total_time_sec"]
        .as_f64()
        .expect("the deletion record's requestedAt was read before it was removed");
    assert!((0.0..120.0).contains(&took), "cleanup took {took}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_backup_sends_volume_backup_failed_from_the_abort_function() {
    let c = BackupCase::new("sig-stop", "bk", 2).await;
    let arn = c
        .start(&input(
            &c,
            json!({"sim.brfed.dev/fault": "dp2:execute:hang"}),
        ))
        .await;
    let deadline = Instant::now() + RUN;
    let member = format!("fed-{}", c.name);
    while c
        .world
        .backups(&c.planes[1], &c.ns)
        .get_opt(&member)
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "members never created");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.flows.stop(&arn).await;
    assert_eq!(c.flows.wait(&arn, RUN).await.status, "ABORTED");

    let delivery = event(&c, "VolumeBackup Failed").await;
    let detail = &delivery["event"]["detail"];
    assert_eq!(detail["error"], "ExecutionAborted", "{detail}");
    assert_eq!(detail["execution"], arn.as_str());
    let (emf, _) = metrics("backup-abort", &arn).await;
    assert_backup_emf(&emf, "Failed");
}
