//! Simulated Kubernetes Jobs (tokio tasks) and the per-member bookkeeping of the operator.
//!
//! A job never writes the member itself: it queues [`Report`]s in its outbox and wakes the member's
//! reconcile, which writes them one at a time, in order. So every status write of a member goes
//! through one serialized reconcile, and the order of conditions is the order of events.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::meta::CloudSnapBackup;

/// Kind of a watched member object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `pingcap.com/v1alpha1` `Backup`.
    Backup,
    /// `pingcap.com/v1alpha1` `Restore`.
    Restore,
}

/// Identity of a member object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjKey {
    /// Data plane (kubeconfig context).
    pub plane: String,
    /// Backup or Restore.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjKey {
    /// `{plane}/{namespace}/{name}`: how the member signs PD log entries.
    pub fn holder(&self) -> String {
        format!("{}/{}/{}", self.plane, self.namespace, self.name)
    }
}

/// Wakes the reconcile of one member.
#[derive(Debug, Clone)]
pub struct Trigger {
    tx: mpsc::UnboundedSender<ObjKey>,
    key: ObjKey,
}

impl Trigger {
    /// Builds a trigger sending `key` on `tx`.
    pub fn new(tx: mpsc::UnboundedSender<ObjKey>, key: ObjKey) -> Self {
        Self { tx, key }
    }

    /// Asks for a reconcile.
    pub fn fire(&self) {
        // a closed channel means the simulator is shutting down: nothing left to wake
        let _ = self.tx.send(self.key.clone());
    }
}

/// A status change for the operator to write: a condition plus `status` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct CondReport {
    /// Condition type (becomes `status.phase`).
    pub ty: &'static str,
    /// Condition reason.
    pub reason: String,
    /// Condition message.
    pub message: String,
    /// Extra `status` fields written with it.
    pub fields: Vec<(&'static str, Value)>,
}

impl CondReport {
    /// A bare condition.
    pub fn new(ty: &'static str) -> Self {
        Self {
            ty,
            reason: String::new(),
            message: String::new(),
            fields: Vec::new(),
        }
    }

    /// With a reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// With a message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// With a `status` field.
    pub fn field(mut self, name: &'static str, value: Value) -> Self {
        self.fields.push((name, value));
        self
    }
}

/// What a job asks the operator to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Write a condition.
    Condition(CondReport),
    /// Mark `VolumeBackupSnapshotsCreated` once `backupmeta` exists at `s3://bucket/key`.
    CheckBackupMeta {
        /// Bucket.
        bucket: String,
        /// Key of `backupmeta`.
        key: String,
    },
    /// Annotate the TidbCluster `tidb.pingcap.com/tikv-volumes-ready`.
    AnnotateVolumesReady,
    /// TiKV is up on the restored volumes: fill the TidbCluster's stores, then `TikvComplete`.
    TikvStarted,
    /// The operator's tags of the restored volumes (upstream `prepareRestoreMetadata` →
    /// `AddVolumeTags`, after `VolumeComplete`): tags by restored volume id.
    TagRestoredVolumes(BTreeMap<String, BTreeMap<String, String>>),
}

impl From<CondReport> for Report {
    fn from(c: CondReport) -> Self {
        Report::Condition(c)
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    /// Exit 0.
    Succeeded,
    /// Exit non-zero.
    Failed,
    /// Deleted and stopped gracefully (SIGTERM honoured).
    Deleted,
    /// Died without cleaning up.
    Crashed,
    /// Killed at `activeDeadlineSeconds` (SIGTERM honoured).
    DeadlineExceeded,
    /// Removed together with its owner.
    Aborted,
}

/// A stop request sent to a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Delete the job: the process gets SIGTERM and cleans up.
    Graceful,
    /// The process dies at once (no cleanup).
    Crash,
}

/// A running or finished simulated job.
pub struct Job {
    /// Kubernetes-style name (`backup-{name}-init`, ...).
    pub name: String,
    outbox: Mutex<VecDeque<Report>>,
    end: watch::Sender<Option<JobEnd>>,
    stop: watch::Sender<Option<Stop>>,
    handle: Mutex<Option<JoinHandle<()>>>,
    trigger: Trigger,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("end", &self.ended())
            .finish()
    }
}

/// Locks a mutex, tolerating poisoning (a panicked holder leaves plain data behind).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Job {
    /// Starts `body` as a job; `first` is queued before the body runs (e.g. `Scheduled`).
    pub fn spawn<F, Fut>(
        name: impl Into<String>,
        trigger: Trigger,
        first: Vec<Report>,
        body: F,
    ) -> Arc<Job>
    where
        F: FnOnce(Arc<Job>, watch::Receiver<Option<Stop>>) -> Fut,
        Fut: Future<Output = JobEnd> + Send + 'static,
    {
        let (end, _) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(None);
        let job = Arc::new(Job {
            name: name.into(),
            outbox: Mutex::new(first.into_iter().collect()),
            end,
            stop,
            handle: Mutex::new(None),
            trigger,
        });
        let fut = body(job.clone(), stop_rx);
        let runner = job.clone();
        let handle = tokio::spawn(async move {
            let end = fut.await;
            runner.finish(end);
        });
        *lock(&job.handle) = Some(handle);
        job.trigger.fire();
        job
    }

    /// Queues a report and wakes the operator.
    pub fn report(&self, r: impl Into<Report>) {
        lock(&self.outbox).push_back(r.into());
        self.trigger.fire();
    }

    /// The oldest unwritten report.
    pub fn next_report(&self) -> Option<Report> {
        lock(&self.outbox).front().cloned()
    }

    /// Drops the oldest report (after it was written).
    pub fn pop_report(&self) {
        lock(&self.outbox).pop_front();
    }

    /// How it ended, `None` while running.
    pub fn ended(&self) -> Option<JobEnd> {
        *self.end.borrow()
    }

    /// Ended and every report written.
    pub fn is_done(&self) -> bool {
        self.ended().is_some() && lock(&self.outbox).is_empty()
    }

    fn finish(&self, how: JobEnd) {
        self.end.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(how);
                true
            } else {
                false
            }
        });
        self.trigger.fire();
    }

    /// Asks the job to stop (no effect once it ended).
    pub fn request_stop(&self, how: Stop) {
        if self.ended().is_none() {
            self.stop.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(how);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Waits until the job ended, at most `timeout`.
    pub async fn wait_ended(&self, timeout: Duration) -> Option<JobEnd> {
        let mut rx = self.end.subscribe();
        let res = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match res {
            Ok(Ok(end)) => *end,
            _ => self.ended(),
        }
    }

    /// Kills the task at once (for jobs without graceful semantics).
    pub fn abort(&self) {
        if let Some(h) = lock(&self.handle).take() {
            h.abort();
        }
        self.finish(JobEnd::Aborted);
    }
}

/// Waits for `d` unless a stop request comes first (which is returned).
pub async fn sleep_or_stop(stop: &mut watch::Receiver<Option<Stop>>, d: Duration) -> Option<Stop> {
    tokio::select! {
        () = tokio::time::sleep(d) => None,
        s = wait_stop(stop) => Some(s),
    }
}

/// Waits for a stop request.
pub async fn wait_stop(stop: &mut watch::Receiver<Option<Stop>>) -> Stop {
    match stop.wait_for(Option::is_some).await {
        Ok(s) => s.unwrap_or(Stop::Graceful),
        // the sender lives in the Job, which outlives its task: treat a closed channel as a delete
        Err(_) => Stop::Graceful,
    }
}

/// What the operator remembers about one member object (lost on restart, like Jobs of a deleted namespace).
#[derive(Debug, Default)]
pub struct MemberState {
    /// Object uid this state belongs to.
    pub uid: String,
    /// Backup: the init job (initialize member only).
    pub init: Option<Arc<Job>>,
    /// Backup: the execute job.
    pub exec: Option<Arc<Job>>,
    /// Backup: the clean job.
    pub clean: Option<Arc<Job>>,
    /// Restore: the restore-volume job (with TiKV start and warmup).
    pub restore_volume: Option<Arc<Job>>,
    /// Restore: the restore-data job.
    pub restore_data: Option<Arc<Job>>,
    /// The operator stopped the init job itself (not a death of the job).
    pub init_stopped_by_operator: bool,
    /// First time a fault point was reached (for `delay` at operator-side points).
    pub first_seen: HashMap<&'static str, Instant>,
    /// One-shot faults already fired.
    pub fired: HashSet<&'static str>,
    /// Restore: the backup's `backupmeta`, read once.
    pub backupmeta: Option<Arc<CloudSnapBackup>>,
    /// Restore: source volume id -> restored volume id, filled by the restore-volume job.
    pub restored: Arc<Mutex<BTreeMap<String, String>>>,
    /// Restore: recovery mode was left by this member.
    pub finish_done: bool,
}

impl MemberState {
    fn new(uid: &str) -> Self {
        Self {
            uid: uid.to_string(),
            ..Self::default()
        }
    }

    /// How long ago `point` was first reached (records it now if never).
    pub fn since_first(&mut self, point: &'static str) -> Duration {
        self.first_seen
            .entry(point)
            .or_insert_with(Instant::now)
            .elapsed()
    }

    /// Stops everything: the init job gracefully (its owner is gone), the others at once.
    pub fn shutdown(&self) {
        if let Some(init) = &self.init {
            init.request_stop(Stop::Graceful);
        }
        for job in [
            &self.exec,
            &self.clean,
            &self.restore_volume,
            &self.restore_data,
        ]
        .into_iter()
        .flatten()
        {
            if job.ended().is_none() {
                job.abort();
            }
        }
    }
}

/// Member states by object.
#[derive(Debug, Default)]
pub struct JobTable {
    members: Mutex<HashMap<ObjKey, MemberState>>,
}

impl JobTable {
    /// Runs `f` on the state of `key` for object `uid`; a state left by an older object of the same
    /// name is shut down and replaced.
    pub fn with<R>(&self, key: &ObjKey, uid: &str, f: impl FnOnce(&mut MemberState) -> R) -> R {
        let mut all = lock(&self.members);
        let state = all
            .entry(key.clone())
            .or_insert_with(|| MemberState::new(uid));
        if state.uid != uid {
            state.shutdown();
            *state = MemberState::new(uid);
        }
        f(state)
    }

    /// Forgets a deleted object, stopping its jobs.
    pub fn forget(&self, key: &ObjKey) {
        if let Some(state) = lock(&self.members).remove(key) {
            state.shutdown();
        }
    }
}
