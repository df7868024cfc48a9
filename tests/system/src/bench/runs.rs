//! Live runs on the local world: a happy-path 3-cluster backup (watch or poll mode) with one
//! observer watching every member, and a restore of such a backup (`fromBackup`) into freshly
//! seeded recovery-mode TidbClusters; what their execution histories say.

use crate::bench::cost::{self, Invocation, Requests};
use crate::dataplane::{World, unique};
use crate::fixtures::{SeededCluster, VolumeBackup, VolumeRestore, restore_clusters};
use crate::workflow::Workflows;
use brfed_sim_operator::kubeobj::backup_resource;
use brfed_sim_operator::seed::{TidbClusterSeed, seed_restore_target};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a bench execution may run.
const RUN: Duration = Duration::from_secs(900);

/// What an execution's history says.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// Names of the states entered, in order.
    pub states: Vec<String>,
    /// Events.
    pub events: usize,
    /// Largest state input/output, Lambda input/output or task output, bytes.
    pub largest_payload_bytes: usize,
    /// Events of one `pending` observe loop in watch mode (Task + Choice), when seen: from a
    /// Task state entered to the next state entered after its Choice.
    pub events_per_observe: Option<usize>,
}

/// Reads the whole history of `arn`.
pub async fn history(flows: &Workflows, arn: &str) -> History {
    let mut h = History::default();
    let mut entered: Vec<(usize, String, String)> = Vec::new(); // (event index, type, name)
    flows
        .each_event(arn, |e| {
            if let Some(d) = e.state_entered_event_details() {
                h.states.push(d.name().to_string());
                entered.push((h.events, e.r#type().as_str().to_string(), d.name().into()));
            }
            h.events += 1;
            let sizes = [
                e.state_entered_event_details()
                    .and_then(|d| d.input())
                    .map(str::len),
                e.state_exited_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
                e.lambda_function_scheduled_event_details()
                    .and_then(|d| d.input())
                    .map(str::len),
                e.lambda_function_succeeded_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
                e.task_succeeded_event_details()
                    .and_then(|d| d.output())
                    .map(str::len),
            ];
            h.largest_payload_bytes = sizes
                .into_iter()
                .flatten()
                .fold(h.largest_payload_bytes, usize::max);
        })
        .await
        .expect("GetExecutionHistory");
    // an observe Task ("Wait For …") followed by its Choice ("Wait For …?"): its events
    h.events_per_observe = entered.windows(3).find_map(|w| {
        (w[0].1 == "TaskStateEntered"
            && w[1].1 == "ChoiceStateEntered"
            && w[1].2 == format!("{}?", w[0].2))
        .then(|| w[2].0 - w[0].0)
    });
    h
}

/// The emulator's request journal position, before an execution starts.
async fn billed_mark() -> u64 {
    tokio::task::spawn_blocking(cost::billed_calls_seq)
        .await
        .unwrap_or_default()
}

/// The invocations `arn` made, and the S3/EventBridge requests since `mark`.
async fn billed(arn: &str, mark: u64) -> (Vec<Invocation>, Requests) {
    let arn = arn.to_string();
    tokio::task::spawn_blocking(move || {
        (cost::invocations_of(&arn), cost::billed_calls_since(mark))
    })
    .await
    .unwrap_or_default()
}

/// Execution start and stop, ms since the epoch.
async fn times(flows: &Workflows, arn: &str) -> (i64, i64) {
    let d = flows.describe(arn).await.expect("DescribeExecution");
    let started = d.start_date().to_millis().unwrap_or_default();
    let stopped = d
        .stop_date()
        .map(|t| t.to_millis().unwrap_or_default())
        .unwrap_or_default();
    (started, stopped)
}

/// One backup run.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRun {
    /// `watch` or `poll`.
    pub mode: String,
    /// Backup (and execution) name.
    pub name: String,
    /// Namespace of its TidbClusters.
    pub tc_namespace: String,
    /// Data planes.
    pub planes: Vec<String>,
    /// Execution input.
    pub input: Value,
    /// Execution ARN.
    pub arn: String,
    /// Execution status.
    pub status: String,
    /// Last member `VolumeBackupSnapshotsCreated` → initialize member `resumeGcSchedule: true`.
    pub pause_overhead_ms: Option<i64>,
    /// Initialize member `VolumeBackupInitialized` → `VolumeBackupInitializeComplete`.
    pub pause_window_ms: Option<i64>,
    /// Execution start → stop.
    pub end_to_end_ms: i64,
    /// States entered.
    pub state_transitions: usize,
    /// History events.
    pub history_events: usize,
    /// Largest payload in the history.
    pub largest_payload_bytes: usize,
    /// Events of one observe loop, when the history shows one.
    pub events_per_observe: Option<usize>,
    /// Member changes the observer saw.
    pub member_changes_observed: usize,
    /// The Lambda invocations the execution made (the emulator's journal).
    pub invocations: Vec<Invocation>,
    /// S3 and EventBridge requests of the world from its start to its end (every run's, when
    /// runs overlap).
    pub requests: Requests,
}

/// States entered, history events and the largest payload of a live run.
pub type Figures = (usize, usize, usize);

impl BackupRun {
    /// Its [`Figures`].
    pub fn figures(&self) -> Figures {
        (
            self.state_transitions,
            self.history_events,
            self.largest_payload_bytes,
        )
    }
}

type Seen = Arc<Mutex<Vec<(DateTime<Utc>, usize, Value)>>>;

/// Seeds a 3-cluster TidbCluster (2 TiKV per plane) and backs it up in `mode`, with one observer
/// watching every member from before the start.
pub async fn backup(world: &World, flows: &Workflows, mode: &str, poll_seconds: u64) -> BackupRun {
    let tc = SeededCluster::seed(world, &format!("bench-{mode}"), "tidb", 2)
        .await
        .expect("seed");
    let name = format!("bench-{mode}-{}", tc.id());
    let clusters = tc.clusters();
    let SeededCluster { ns, planes, .. } = tc;
    // one observer for every member: arrival times of their changes, ms precision
    let seen: Seen = Arc::default();
    let mut watchers = Vec::new();
    for (i, p) in planes.iter().enumerate() {
        // a watch client (no read timeout): a quiet 30 s poll interval must not end the watch
        let plane = world.planes.iter().find(|d| &d.name == p).expect("plane");
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
                let v = serde_json::to_value(&o).unwrap_or_default();
                seen.lock().expect("seen").push((Utc::now(), i, v));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let input = VolumeBackup::new(&name, clusters, &world.bucket, &format!("{ns}/b"))
        .namespace("bench")
        .options(json!({"observeMode": mode, "pollSeconds": poll_seconds}))
        .build();
    let mark = billed_mark().await;
    let arn = flows.start(&flows.backup_arn, &name, &input).await;
    let done = flows.wait(&arn, RUN).await;
    let (invocations, requests) = billed(&arn, mark).await;
    for w in watchers {
        w.abort();
    }
    let (started, stopped) = times(flows, &arn).await;
    let h = history(flows, &arn).await;
    let seen = seen.lock().expect("seen").clone();
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
    BackupRun {
        mode: mode.into(),
        name,
        tc_namespace: ns,
        planes,
        input,
        arn,
        status: done.status,
        pause_overhead_ms: last_created
            .zip(resume)
            .map(|(a, b)| (b - a).num_milliseconds()),
        pause_window_ms: paused.zip(resumed).map(|(a, b)| (b - a).num_milliseconds()),
        end_to_end_ms: stopped - started,
        state_transitions: h.states.len(),
        history_events: h.events,
        largest_payload_bytes: h.largest_payload_bytes,
        events_per_observe: h.events_per_observe,
        member_changes_observed: seen.len(),
        invocations,
        requests,
    }
}

/// One restore run.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRun {
    /// `watch` or `poll`.
    pub mode: String,
    /// Restore (and execution) name.
    pub name: String,
    /// The backup it restores.
    pub from_backup: String,
    /// Execution input.
    pub input: Value,
    /// Execution ARN.
    pub arn: String,
    /// Execution status.
    pub status: String,
    /// Error, when it failed.
    pub error: Option<String>,
    /// Execution start → stop.
    pub end_to_end_ms: i64,
    /// States entered.
    pub state_transitions: usize,
    /// History events.
    pub history_events: usize,
    /// Largest payload in the history.
    pub largest_payload_bytes: usize,
    /// The Lambda invocations the execution made (the emulator's journal).
    pub invocations: Vec<Invocation>,
    /// S3 and EventBridge requests of the world from its start to its end.
    pub requests: Requests,
}

impl RestoreRun {
    /// Its [`Figures`].
    pub fn figures(&self) -> Figures {
        (
            self.state_transitions,
            self.history_events,
            self.largest_payload_bytes,
        )
    }
}

/// Seeds recovery-mode restore targets (2 TiKV per plane, as the backup's source) and restores
/// `source` into them in `mode`, from the catalog (`fromBackup`).
pub async fn restore(
    world: &World,
    flows: &Workflows,
    source: &BackupRun,
    mode: &str,
    poll_seconds: u64,
) -> RestoreRun {
    let ns = unique(&format!("bench-rt-{mode}"));
    seed_restore_target(
        &world.kubeconfig,
        &source.planes,
        &TidbClusterSeed::new(&ns, "restored", format!("{ns}-dst")).stores_per_plane(2),
    )
    .await
    .expect("seed restore target");
    let region = brfed_sim_operator::config::region_from(&|k| std::env::var(k).ok());
    let name = format!("bench-rt-{mode}-{}", &ns[ns.len() - 8..]);
    let clusters = restore_clusters(&source.planes, "restored", &ns, &region);
    let input = VolumeRestore::from_backup(&name, "bench", clusters, &source.name)
        .options(json!({"observeMode": mode, "pollSeconds": poll_seconds}))
        .build();
    let mark = billed_mark().await;
    let arn = flows.start(&flows.restore_arn, &name, &input).await;
    let done = flows.wait(&arn, RUN).await;
    let (invocations, requests) = billed(&arn, mark).await;
    let (started, stopped) = times(flows, &arn).await;
    let h = history(flows, &arn).await;
    RestoreRun {
        mode: mode.into(),
        name,
        from_backup: source.name.clone(),
        input,
        arn,
        status: done.status,
        error: done.error,
        end_to_end_ms: stopped - started,
        state_transitions: h.states.len(),
        history_events: h.events,
        largest_payload_bytes: h.largest_payload_bytes,
        invocations,
        requests,
    }
}
