//! The safety net of a stopped backup (docs/reliability.md, "The safety net"): `backup-abort`
//! writes nothing terminal before every member was asked to tear down, Lambda retries it while
//! the initialize member's data plane is down, and an abort that fails for good ends in the
//! dead-letter queue `brfed-events-dlq`; once the plane is back, the retention sweep's settle
//! check finishes the abort, and the runbook's replay of the dead-lettered event changes nothing.
//!
//! Both tests stop dp1's API server and change the emulator's retry waits: they take turns (one
//! lock), and this file is its own test binary so that nothing else runs beside them.

use brfed_system_tests::dataplane::World;
use brfed_system_tests::faults::disrupt::stop_plane;
use brfed_system_tests::fixtures::{SeededCluster, VolumeBackup, seeded_world};
use brfed_system_tests::workflow::{
    RetryDelays, Workflows, catalog_doc, doc_conditions, rule_deliveries,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const RULE: &str = "brfed-backup-execution-ended";
const DLQ: &str = "brfed-events-dlq";

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An AWS API call to the emulator without the SDK: moto reads the service from the credential
/// scope and does not check signatures. `target` is an `X-Amz-Target` (JSON protocols) or empty.
fn aws_call(
    service: &str,
    method_path: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-west-2".into());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let mut req = agent
        .post(format!("{endpoint}{method_path}"))
        .header("Authorization", &auth);
    // The JSON protocol (SQS) is dispatched by its target; a REST call (Lambda's Invoke) with
    // that content type and no target is not routed to its path.
    if !target.is_empty() {
        req = req
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Target", target);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let mut resp = req
        .send(body.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{service} {method_path} {target}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sqs(action: &str, body: Value) -> Value {
    let (status, out) = aws_call("sqs", "/", &format!("AmazonSQS.{action}"), &[], &body);
    assert_eq!(status, 200, "SQS {action}: {out}");
    out
}

/// The dead-letter queue's message about execution `arn` (deleted from the queue once read).
fn dead_letter_of(arn: &str) -> Option<Value> {
    let url = sqs("GetQueueUrl", json!({ "QueueName": DLQ }))["QueueUrl"]
        .as_str()
        .expect("QueueUrl")
        .to_string();
    for _ in 0..20 {
        let out = sqs(
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 60}),
        );
        let messages = out["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        for m in messages {
            let body: Value =
                serde_json::from_str(m["Body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            if body["requestPayload"]["detail"]["executionArn"] == arn {
                sqs(
                    "DeleteMessage",
                    json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
                );
                return Some(body);
            }
        }
    }
    None
}

/// The delivery attempts of the abort rule for execution `arn`, in order.
fn abort_attempts(arn: &str) -> Vec<Value> {
    rule_deliveries(RULE, arn)
}

fn error_type(attempt: &Value) -> &str {
    attempt["result"]["payload"]["errorType"]
        .as_str()
        .unwrap_or("")
}

struct Case {
    world: World,
    flows: Workflows,
    key: String,
    name: String,
}

impl Case {
    /// A backup of a fresh TiDB cluster whose dp2 member's execute job takes 30 s, running with
    /// GC paused; returns its execution.
    async fn paused(prefix: &str) -> (Self, String) {
        let (world, flows, tc) = seeded_world(prefix, "tidb", 1).await;
        let name = format!("net-{}", tc.id());
        let input = VolumeBackup::written(
            &name,
            tc.clusters(),
            &world.bucket,
            &format!("{}/backup", tc.ns),
            "Delete",
        )
        .annotations(json!({"sim.brfed.dev/fault": "dp2:execute:delay=30000"}))
        .build();
        let SeededCluster { ns, key, .. } = tc;
        let arn = flows.start(&flows.backup_arn, &name, &input).await;
        let c = Self {
            world,
            flows,
            key,
            name,
        };
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let dp2 = c
                .world
                .backups("dp2", &ns)
                .get_opt(&format!("fed-{}", c.name))
                .await
                .unwrap();
            if dp2.is_some() && c.gc_paused().await {
                break;
            }
            assert!(
                Instant::now() < end,
                "GC never paused with every member created"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (c, arn)
    }

    async fn pd(&self) -> Value {
        self.world.pd(&self.key).await.unwrap_or(Value::Null)
    }

    async fn gc_paused(&self) -> bool {
        self.pd().await["paused"] == true
    }

    async fn doc(&self) -> Value {
        catalog_doc(&self.world, "br", &self.name)
            .await
            .expect("catalog document")
    }

    /// Waits until GC was resumed (not expired) and the catalog says `Failed`.
    async fn wait_resumed_and_failed(&self, within: Duration, what: &str) {
        let end = Instant::now() + within;
        loop {
            let (pd, doc) = (self.pd().await, self.doc().await);
            if pd["paused"] == false && doc["status"]["phase"] == "Failed" {
                assert!(pd["resumeCount"].as_u64().unwrap_or(0) >= 1, "{pd}");
                assert_eq!(
                    pd["expireCount"], 0,
                    "the pause expired, brfed did not end it: {pd}"
                );
                let last = doc_conditions(&doc).last().unwrap();
                assert_eq!(last["reason"], "ExecutionAborted", "{doc}");
                assert!(
                    doc["brfed"]["teardownPending"].is_null(),
                    "every member was asked: {doc}"
                );
                return;
            }
            assert!(
                Instant::now() < end,
                "{what}: GC paused={} and catalog phase {} after {within:?}",
                pd["paused"],
                doc["status"]["phase"]
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Asserts that the backup is not terminal and names dp1 as not yet asked; GC still paused.
    async fn assert_teardown_pending(&self) {
        let doc = self.doc().await;
        assert_eq!(
            doc["status"]["phase"], "Running",
            "nothing terminal while a member was never asked to tear down: {doc}"
        );
        let pending = doc["brfed"]["teardownPending"].to_string();
        assert!(pending.contains("dp1/"), "{doc}");
        assert!(doc["brfed"]["teardownRequestedAt"].is_string(), "{doc}");
        assert!(self.gc_paused().await, "GC is paused until dp1 is told");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_while_the_initialize_plane_is_down_for_60s_resumes_gc_once_it_is_back() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // Lambda waits ~1 min then ~2 min; here 25 s then 60 s: the second attempt comes while dp1
    // is still down, the third after it is back, wherever the first falls in the stop's 20 s.
    let _delays = RetryDelays::set(&[25, 60]);
    let (c, arn) = Case::paused("net-down60").await;
    let down = stop_plane("dp1").expect("stop dp1");
    let t0 = Instant::now();
    c.flows.stop(&arn).await;
    assert_eq!(
        c.flows.wait(&arn, Duration::from_secs(90)).await.status,
        "ABORTED"
    );

    // the first attempt cannot reach dp1: it records that and fails, so that Lambda retries
    let end = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(a) = abort_attempts(&arn).into_iter().next() {
            break a;
        }
        assert!(
            Instant::now() < end,
            "backup-abort was never invoked for {arn}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(first["ok"], false, "{first}");
    assert_eq!(error_type(&first), "DataPlaneUnreachable", "{first}");
    assert!(
        first["retryInSeconds"].is_number(),
        "another attempt follows: {first}"
    );
    c.assert_teardown_pending().await;

    // dp1 is back 60 s after it went down
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(t0.elapsed())).await;
    let attempts = abort_attempts(&arn);
    assert!(
        attempts.len() >= 2
            && attempts
                .iter()
                .all(|a| error_type(a) == "DataPlaneUnreachable"),
        "a retry came while dp1 was down: {attempts:?}"
    );
    c.assert_teardown_pending().await;
    down.start().expect("start dp1");

    // the next retry asks dp1: GC resumed, the backup Failed
    c.wait_resumed_and_failed(Duration::from_secs(150), "after dp1 came back")
        .await;
    // (the attempt is journaled once it returned, after its catalog write)
    let end = Instant::now() + Duration::from_secs(30);
    let attempts = loop {
        let a = abort_attempts(&arn);
        if a.last()
            .is_some_and(|x| error_type(x) != "DataPlaneUnreachable")
        {
            break a;
        }
        assert!(Instant::now() < end, "{a:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a["requestId"] == attempts[0]["requestId"]),
        "one event, retried: {attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_that_fails_for_good_lands_in_the_dead_letter_queue_and_can_be_sent_again() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let _delays = RetryDelays::set(&[2, 2]);
    let (c, arn) = Case::paused("net-dlq").await;
    let down = stop_plane("dp1").expect("stop dp1");
    c.flows.stop(&arn).await;
    assert_eq!(
        c.flows.wait(&arn, Duration::from_secs(90)).await.status,
        "ABORTED"
    );

    // 1 + 2 attempts, every one unable to reach dp1, then the invocation record to the queue
    let end = Instant::now() + Duration::from_secs(90);
    let attempts = loop {
        let a = abort_attempts(&arn);
        if a.iter().any(|x| !x["onFailure"].is_null()) {
            break a;
        }
        assert!(
            Instant::now() < end,
            "never sent to the dead-letter queue: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["attempt"], i + 1, "{a}");
        assert_eq!(error_type(a), "DataPlaneUnreachable", "{a}");
    }
    assert_eq!(attempts[2]["onFailure"]["condition"], "RetriesExhausted");
    let record = dead_letter_of(&arn).expect("the event is in brfed-events-dlq");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert!(
        record["requestContext"]["functionArn"]
            .as_str()
            .unwrap_or("")
            .contains(":function:backup-abort"),
        "{record}"
    );
    assert_eq!(
        record["responsePayload"]["errorType"],
        "DataPlaneUnreachable"
    );
    assert_eq!(record["requestPayload"]["detail"]["status"], "ABORTED");
    // meanwhile the backup says what is pending, and GC is still paused
    c.assert_teardown_pending().await;

    // Once the plane is back, the next retention sweep's settle check asks again: GC resumed,
    // the backup Failed, with no one sending anything (Lambda's retries were all spent).
    down.start().expect("start dp1");
    // (The world's own sweep, every 5 minutes, may come first: either one does it.)
    let sweep = invoke_sweep();
    assert!(sweep["schedules"].is_array(), "{sweep}");
    c.wait_resumed_and_failed(Duration::from_secs(90), "after the sweep's settle check")
        .await;
    // The emulator records a delivery when the invocation returns, a moment after backup-abort
    // wrote the document: look until it is there.
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let checks = rule_deliveries("brfed-backup-settle-check", &arn);
        if checks
            .iter()
            .any(|d| d["result"]["payload"]["action"] == "torn-down")
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "torn down by a settle check: {checks:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The runbook's replay of the dead-lettered event still works, and changes nothing now.
    let (status, _) = aws_call(
        "lambda",
        "/2015-03-31/functions/backup-abort/invocations",
        "",
        &[("X-Amz-Invocation-Type", "Event")],
        &record["requestPayload"],
    );
    assert_eq!(status, 202, "Invoke (Event) of backup-abort");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!c.gc_paused().await, "the replay changed nothing");
    assert_eq!(c.doc().await["status"]["phase"], "Failed");
}

/// Invokes `retention-sweep` (as its rule would) and returns its answer.
fn invoke_sweep() -> Value {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, out) = aws_call(
        "lambda",
        "/2015-03-31/functions/retention-sweep/invocations",
        "",
        &[],
        &json!({ "time": time }),
    );
    assert_eq!(status, 200, "retention-sweep: {out}");
    out
}
