//! Helpers for tests that play the federation by hand against the data planes of the local world:
//! build member `Backup`/`Restore` objects (the builders of [`crate::docs`]), wait for conditions, record phase walks, and read the
//! simulated PD of the simulated TiDB Operator.
//!
//! The world must be up: `KUBECONFIG` (contexts = data planes), `AWS_ENDPOINT_URL` (the emulator),
//! the simulated operator running with its HTTP endpoint on `SIM_HTTP_ADDR` (default
//! `127.0.0.1:18080`). `BRFED_BUCKET` names the bucket (default `brfed-system-tests`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brfed_sim_operator::cloud::Cloud;
use brfed_sim_operator::kubeobj::{
    DataPlane, backup_resource, data_planes, restore_resource, tidbcluster_resource,
};
use futures::StreamExt;
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

pub use crate::docs::{BackupMember, RestoreMember};

/// How long a test waits for one awaited state.
pub const WAIT: Duration = Duration::from_secs(60);

/// The local world as the tests see it.
pub struct World {
    /// Kubeconfig path.
    pub kubeconfig: PathBuf,
    /// Data planes, in kubeconfig order.
    pub planes: Vec<DataPlane>,
    /// EC2 and S3 of the emulator.
    pub cloud: Cloud,
    /// Bucket for backups.
    pub bucket: String,
    /// `host:port` of the simulator's HTTP endpoint.
    pub sim_http: String,
}

/// What the local world's clients read from the environment (`make world-env` sets it all).
pub const WORLD_ENV: &[&str] = &[
    "KUBECONFIG",
    "AWS_ENDPOINT_URL",
    "BRFED_VOLUME_BACKUP_STATE_MACHINE_ARN",
    "BRFED_VOLUME_RESTORE_STATE_MACHINE_ARN",
];

/// Why the local world cannot be reached from this environment: the first of [`WORLD_ENV`] that
/// is not set, said so that a user can act on it; `None` when all are set.
pub fn missing_world_env() -> Option<String> {
    let missing = WORLD_ENV
        .iter()
        .find(|n| std::env::var(n).map_or(true, |v| v.is_empty()))?;
    Some(format!(
        "{missing} is not set: this needs the local world (make world-up; eval \"$(make world-env)\"), \
         with the simulated operator running"
    ))
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{}",
            missing_world_env().unwrap_or_else(|| format!("{name} is not set"))
        ),
    }
}

impl World {
    /// Connects to the world described by the environment; panics with a clear message when it is missing.
    pub async fn from_env() -> Self {
        let kubeconfig = PathBuf::from(
            required_env("KUBECONFIG")
                .split(':')
                .next()
                .unwrap_or_default(),
        );
        required_env("AWS_ENDPOINT_URL");
        let planes = data_planes(&kubeconfig, &[])
            .await
            .expect("kubeconfig with data-plane contexts");
        assert!(
            planes.len() >= 2,
            "the world needs at least 2 data planes, kubeconfig has {}",
            planes.len()
        );
        let region = brfed_sim_operator::config::region_from(&|k| std::env::var(k).ok());
        let cloud = Cloud::from_env(&region).await;
        let bucket =
            std::env::var("BRFED_BUCKET").unwrap_or_else(|_| "brfed-system-tests".to_string());
        cloud.ensure_bucket(&bucket).await.expect("backup bucket");
        let sim_http =
            std::env::var("SIM_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:18080".to_string());
        let world = Self {
            kubeconfig,
            planes,
            cloud,
            bucket,
            sim_http,
        };
        let health = world.http_get("/healthz").await;
        assert!(
            health.is_ok(),
            "the simulated operator does not answer on {}: {health:?}",
            world.sim_http
        );
        world
    }

    /// Names of the first `n` data planes (at most all of them).
    pub fn plane_names(&self, n: usize) -> Vec<String> {
        self.planes.iter().take(n).map(|p| p.name.clone()).collect()
    }

    fn client(&self, plane: &str) -> kube::Client {
        self.planes
            .iter()
            .find(|p| p.name == plane)
            .unwrap_or_else(|| panic!("no data plane {plane}"))
            .client
            .clone()
    }

    /// `Backup` API of a namespace in a data plane.
    pub fn backups(&self, plane: &str, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(plane), ns, &backup_resource())
    }

    /// `Restore` API of a namespace in a data plane.
    pub fn restores(&self, plane: &str, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(plane), ns, &restore_resource())
    }

    /// `TidbCluster` API of a namespace in a data plane.
    pub fn tidbclusters(&self, plane: &str, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client(plane), ns, &tidbcluster_resource())
    }

    /// Every volume in EC2 restored into the target TidbClusters of `key` (the simulator's own
    /// tag: as on the real operator's volumes, no tag names the restore or its namespace).
    pub async fn target_volumes(&self, key: &str) -> BTreeSet<String> {
        self.cloud
            .volumes_tagged(&[(brfed_sim_operator::meta::TAG_CLUSTER, key)])
            .await
            .expect("DescribeVolumes")
            .into_iter()
            .map(|v| v.id)
            .collect()
    }

    async fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://{}{path}", self.sim_http);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .into();
            let mut resp = agent.get(&url).call().map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?;
            Ok((status, body))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The simulated PD of a TiDB cluster (`GET /pd/{key}`); `None` when it was never touched.
    pub async fn pd(&self, key: &str) -> Option<Value> {
        let (status, body) = self
            .http_get(&format!("/pd/{key}"))
            .await
            .expect("simulator HTTP endpoint");
        match status {
            200 => Some(serde_json::from_str(&body).expect("PD JSON")),
            404 => None,
            other => panic!("GET /pd/{key}: HTTP {other}: {body}"),
        }
    }
}

/// A name unique to this test run: `{prefix}-{pid}-{millis}` (lowercase, DNS-safe).
/// The last 8 characters differ between any two calls of one process (tests cut names from them).
pub fn unique(prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 100;
    let ms = chrono::Utc::now().timestamp_millis() % 1_000_000;
    format!("{prefix}-{}-{ms:06}{n:02}", std::process::id())
}

/// Creates an object.
pub async fn create(api: &Api<DynamicObject>, obj: &DynamicObject) -> DynamicObject {
    api.create(&PostParams::default(), obj)
        .await
        .expect("create member")
}

/// Merge-patches `spec` of an object (how a test moves a member to its next phase).
pub async fn patch_spec(api: &Api<DynamicObject>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap_or_else(|e| panic!("patching {name}: {e}"));
}

/// Condition `ty` is present with status `True`.
pub fn has(obj: &DynamicObject, ty: &str) -> bool {
    conditions(obj)
        .iter()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

/// The conditions of an object.
pub fn conditions(obj: &DynamicObject) -> Vec<Value> {
    obj.data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The condition `ty`.
pub fn condition(obj: &DynamicObject, ty: &str) -> Option<Value> {
    conditions(obj).into_iter().find(|c| c["type"] == ty)
}

/// Condition types in the order they were first written.
pub fn condition_types(obj: &DynamicObject) -> Vec<String> {
    conditions(obj)
        .iter()
        .filter_map(|c| c["type"].as_str().map(String::from))
        .collect()
}

/// A string of `status`.
pub fn status_str(obj: &DynamicObject, field: &str) -> String {
    obj.data
        .pointer(&format!("/status/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Waits until `pred` holds for the object (re-read every 100 ms), at most `timeout`.
pub async fn wait_for(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    let start = Instant::now();
    let mut last = None;
    loop {
        match api.get_opt(name).await {
            Ok(Some(obj)) => {
                if pred(&obj) {
                    return obj;
                }
                last = Some(obj);
            }
            Ok(None) => last = None,
            Err(e) => tracing::warn!(name, error = %e, "get failed while waiting"),
        }
        if start.elapsed() > timeout {
            let seen = last.map(|o| (status_str(&o, "phase"), condition_types(&o)));
            panic!(
                "timed out after {timeout:?} waiting for {name} to be {what}; last seen (phase, conditions): {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until condition `ty` is on the object, whatever else it has.
pub async fn wait_has(api: &Api<DynamicObject>, name: &str, ty: &str) -> DynamicObject {
    wait_for(api, name, ty, WAIT, |o| has(o, ty)).await
}

/// The `reason` of condition `ty`; panics when the object has no such condition.
pub fn reason(obj: &DynamicObject, ty: &str) -> Value {
    condition(obj, ty).unwrap_or_else(|| panic!("no {ty} condition: {:?}", condition_types(obj)))
        ["reason"]
        .clone()
}

/// Waits for condition `ty` on the object; fails at once on a terminal failure condition it was not waiting for.
pub async fn wait_condition(api: &Api<DynamicObject>, name: &str, ty: &str) -> DynamicObject {
    let obj = wait_for(api, name, ty, WAIT, |o| {
        has(o, ty)
            || [
                "Failed",
                "Invalid",
                "VolumeBackupFailed",
                "VolumeBackupInitializeFailed",
            ]
            .iter()
            .any(|f| *f != ty && has(o, f))
    })
    .await;
    assert!(
        has(&obj, ty),
        "{name} failed while waiting for {ty}: conditions {:?}",
        conditions(&obj)
    );
    obj
}

/// Waits until the object is gone.
pub async fn wait_gone(api: &Api<DynamicObject>, name: &str) {
    let start = Instant::now();
    while api.get_opt(name).await.expect("get").is_some() {
        assert!(start.elapsed() < WAIT, "{name} still exists after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records every distinct `status.phase` one object goes through (from a watch started before it exists).
///
/// A watch that had to re-list (after an error) may have skipped phases: the log then knows it has
/// a gap, and [`PhaseLog::assert_walk`] only judges an unbroken record.
pub struct PhaseLog {
    phases: Arc<Mutex<Vec<String>>>,
    gap: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PhaseLog {
    /// Starts watching `name`; returns once the watch is established.
    pub async fn start(api: Api<DynamicObject>, name: &str) -> Self {
        let phases = Arc::new(Mutex::new(Vec::new()));
        let gap = Arc::new(AtomicBool::new(false));
        let (sink, gap_flag) = (phases.clone(), gap.clone());
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = watcher(api, cfg).default_backoff().boxed();
            while let Some(ev) = events.next().await {
                let obj = match ev {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    // a second list, or an error before it: events may have been skipped
                    Ok(watcher::Event::Init) if ready.is_none() => {
                        gap_flag.store(true, Ordering::SeqCst);
                        continue;
                    }
                    Err(_) => {
                        gap_flag.store(true, Ordering::SeqCst);
                        continue;
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                    _ => continue,
                };
                let phase = status_str(&obj, "phase");
                if phase.is_empty() {
                    continue;
                }
                let mut log = sink.lock().expect("phase log");
                if log.last() != Some(&phase) {
                    log.push(phase);
                }
            }
        });
        tokio::time::timeout(WAIT, ready_rx)
            .await
            .unwrap_or_else(|_| panic!("the watch on {name} was not established within {WAIT:?}"))
            .expect("phase log watch task");
        Self { phases, gap, task }
    }

    /// The phases so far.
    pub fn phases(&self) -> Vec<String> {
        self.phases.lock().expect("phase log").clone()
    }

    /// Asserts that the phases went through `expected` in order (unless the watch had a gap,
    /// which is reported instead: a lost watch event is not the simulator's fault).
    /// The watch may deliver the last change a moment after the test saw it by a read: give it
    /// up to 10 s.
    pub async fn assert_walk(&self, expected: &[&str], what: &str) {
        for _ in 0..200 {
            if is_subsequence(expected, &self.phases()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = self.phases();
        if self.gap.load(Ordering::SeqCst) {
            eprintln!("note: the watch of {what} re-listed; phase walk not judged: {seen:?}");
            return;
        }
        assert!(
            is_subsequence(expected, &seen),
            "{what} phase walk: {seen:?}, expected in order: {expected:?}"
        );
    }
}

impl Drop for PhaseLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// True when `expected` appears in `seen` in order (other entries may be interleaved).
pub fn is_subsequence(expected: &[&str], seen: &[String]) -> bool {
    let mut it = seen.iter();
    expected.iter().all(|e| it.any(|s| s == e))
}

/// PD events of one kind.
pub fn pd_events<'a>(pd: &'a Value, kind: &str) -> Vec<&'a Value> {
    pd["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).collect())
        .unwrap_or_default()
}
