//! `make bench`: runs the same happy-path federated backup in watch mode and in 30 s-poll mode,
//! side by side on the local world, and prints one table: the pause-window overhead (last member
//! snapshots created → resume requested, both seen by one observer watching the members), the
//! end-to-end orchestration time, state transitions, history events, and the largest state
//! payload. Writes the same figures as JSON to `$CARGO_TARGET_DIR/bench/backup.json`.

use brfed_sim_operator::kubeobj::backup_resource;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_tidb_cluster};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::workflow::Workflows;
use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL};
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Figures {
    mode: String,
    status: String,
    pause_overhead_ms: Option<i64>,
    pause_window_ms: Option<i64>,
    end_to_end_ms: i64,
    state_transitions: usize,
    history_events: usize,
    largest_payload_bytes: usize,
    member_changes_observed: usize,
}

type Seen = Arc<Mutex<Vec<(DateTime<Utc>, usize, Value)>>>;

async fn run(world: &World, flows: &Workflows, mode: &str, poll_seconds: u64) -> Figures {
    let ns = unique(&format!("bench-{mode}"));
    let planes = world.plane_names(3);
    seed_tidb_cluster(
        &world.kubeconfig,
        &planes,
        &TidbClusterSeed::new(&ns, "basic", format!("{ns}-tidb")).stores_per_plane(2),
    )
    .await
    .expect("seed");
    let name = format!("bench-{mode}-{}", &ns[ns.len() - 6..]);
    // one observer for every member: arrival times of their changes, ms precision
    let seen: Seen = Arc::default();
    let mut watchers = Vec::new();
    for (i, p) in planes.iter().enumerate() {
        // a watch client (no read timeout): a quiet 30 s poll interval must not end the watch
        let plane = world.planes.iter().find(|d| &d.name == p).unwrap();
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(plane.watch_client.clone(), &ns, &backup_resource());
        let cfg = watcher::Config::default().fields(&format!("metadata.name=fed-{name}"));
        let seen = seen.clone();
        watchers.push(tokio::spawn(async move {
            let mut s = watcher(api, cfg)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(o)) = s.next().await {
                seen.lock()
                    .unwrap()
                    .push((Utc::now(), i, serde_json::to_value(&o).unwrap()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clusters: Vec<Value> = planes
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": ns}))
        .collect();
    let input = json!({
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"clusters": clusters, "template": {"s3": {"provider": "aws", "bucket": world.bucket, "prefix": format!("{ns}/b")}}},
        "options": {"observeMode": mode, "pollSeconds": poll_seconds},
    });
    let arn = flows.start(&flows.backup_arn, &name, &input).await;
    let done = flows.wait(&arn, Duration::from_secs(900)).await;
    for w in watchers {
        w.abort();
    }
    let d = flows
        .sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .unwrap();
    let started = d.start_date().to_millis().unwrap_or_default();
    let stopped = d
        .stop_date()
        .map(|t| t.to_millis().unwrap())
        .unwrap_or_default();
    let (states, events) = flows.entered_states(&arn).await;
    let largest = largest_payload(flows, &arn).await;
    let seen = seen.lock().unwrap().clone();
    let first = |pred: &dyn Fn(usize, &Value) -> bool| {
        seen.iter()
            .filter(|(_, i, o)| pred(*i, o))
            .map(|(t, _, _)| *t)
            .min()
    };
    let has = |o: &Value, t: &str| {
        o["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    let created: Vec<Option<DateTime<Utc>>> = (0..planes.len())
        .map(|m| first(&|i, o| i == m && has(o, "VolumeBackupSnapshotsCreated")))
        .collect();
    let last_created = created
        .iter()
        .copied()
        .collect::<Option<Vec<_>>>()
        .and_then(|v| v.into_iter().max());
    let resume = first(&|i, o| i == 0 && o["spec"]["resumeGcSchedule"] == true);
    let paused = first(&|i, o| i == 0 && has(o, "VolumeBackupInitialized"));
    let resumed = first(&|i, o| i == 0 && has(o, "VolumeBackupInitializeComplete"));
    Figures {
        mode: mode.into(),
        status: done.status,
        pause_overhead_ms: last_created
            .zip(resume)
            .map(|(a, b)| (b - a).num_milliseconds()),
        pause_window_ms: paused.zip(resumed).map(|(a, b)| (b - a).num_milliseconds()),
        end_to_end_ms: stopped - started,
        state_transitions: states.len(),
        history_events: events,
        largest_payload_bytes: largest,
        member_changes_observed: seen.len(),
    }
}

async fn largest_payload(flows: &Workflows, arn: &str) -> usize {
    let mut max = 0;
    let mut token = None;
    loop {
        let page = flows
            .sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        for e in page.events() {
            let sizes = [
                e.state_entered_event_details()
                    .and_then(|d| d.input())
                    .map(str::len),
                e.state_exited_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
                e.lambda_function_succeeded_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
                e.task_succeeded_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
            ];
            max = sizes.into_iter().flatten().fold(max, usize::max);
        }
        token = page.next_token().map(String::from);
        if token.is_none() {
            return max;
        }
    }
}

fn ms(v: Option<i64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v} ms"))
}

#[tokio::main]
async fn main() {
    let poll_seconds: u64 = std::env::var("BENCH_POLL_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    eprintln!(
        "bench: one backup in watch mode and one in {poll_seconds} s-poll mode, side by side (the poll one takes minutes)"
    );
    let (watch, poll) = tokio::join!(
        run(&world, &flows, "watch", poll_seconds),
        run(&world, &flows, "poll", poll_seconds)
    );
    let mut table = Table::new();
    table.load_preset(UTF8_FULL).set_header(vec![
        "3-cluster backup, instant data plane",
        "watch",
        &format!("{poll_seconds} s poll"),
    ]);
    let rows: Vec<(&str, String, String)> = vec![
        ("result", watch.status.clone(), poll.status.clone()),
        (
            "pause-window overhead (last snapshots created → resume requested)",
            ms(watch.pause_overhead_ms),
            ms(poll.pause_overhead_ms),
        ),
        (
            "GC/scheduler pause window (initialized → resumed)",
            ms(watch.pause_window_ms),
            ms(poll.pause_window_ms),
        ),
        (
            "end-to-end orchestration time",
            ms(Some(watch.end_to_end_ms)),
            ms(Some(poll.end_to_end_ms)),
        ),
        (
            "state transitions",
            watch.state_transitions.to_string(),
            poll.state_transitions.to_string(),
        ),
        (
            "history events",
            watch.history_events.to_string(),
            poll.history_events.to_string(),
        ),
        (
            "largest state payload",
            format!("{} B", watch.largest_payload_bytes),
            format!("{} B", poll.largest_payload_bytes),
        ),
    ];
    for (k, a, b) in rows {
        table.add_row(vec![k.to_string(), a, b]);
    }
    println!("{table}");
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backup.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(
            &json!({"date": Utc::now().to_rfc3339(), "watch": watch, "poll": poll}),
        )
        .unwrap(),
    )
    .unwrap();
    println!("written to {}", path.display());
    if watch.status != "SUCCEEDED" || poll.status != "SUCCEEDED" {
        std::process::exit(1);
    }
}
