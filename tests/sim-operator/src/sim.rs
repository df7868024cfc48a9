//! The simulator's runtime: shared context, a work queue that serializes reconciles per object,
//! and one watcher per data plane and kind (re-established with backoff when an apiserver goes
//! away, independently for every data plane).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::cloud::Cloud;
use crate::config::SimConfig;
use crate::jobs::{JobTable, Kind, ObjKey, Trigger, lock};
use crate::kubeobj::{DataPlane, backup_resource, restore_resource};
use crate::pd::PdRegistry;
use crate::tso::Tso;

/// What a reconcile wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the object changes.
    Done,
    /// Look again right away (something was written).
    Soon,
    /// Look again after this long.
    After(Duration),
    /// Look again at the poll interval.
    Poll,
}

/// Errors of one reconcile pass (retried).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An apiserver call failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// An AWS call failed.
    #[error("aws: {0}")]
    Cloud(#[from] crate::cloud::CloudError),
    /// The data plane is not in the kubeconfig.
    #[error("unknown data plane {0}")]
    UnknownPlane(String),
}

/// Shared state of the simulator.
pub struct Sim {
    /// Settings.
    pub cfg: SimConfig,
    /// Data planes by name.
    pub planes: BTreeMap<String, DataPlane>,
    /// AWS clients.
    pub cloud: Cloud,
    /// Simulated PDs.
    pub pd: PdRegistry,
    /// TSO for resolved ts values.
    pub tso: Tso,
    /// Jobs and per-member memory.
    pub jobs: JobTable,
    /// Work queue.
    pub queue: WorkQueue,
}

impl Sim {
    /// Assembles the context; `tx` is the sending side of the queue later consumed by [`run`].
    pub fn new(
        cfg: SimConfig,
        planes: Vec<DataPlane>,
        cloud: Cloud,
        tx: mpsc::UnboundedSender<ObjKey>,
    ) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            planes: planes.into_iter().map(|p| (p.name.clone(), p)).collect(),
            cloud,
            pd: PdRegistry::default(),
            tso: Tso::default(),
            jobs: JobTable::default(),
            queue: WorkQueue::new(tx),
        })
    }

    /// The data plane `name`.
    pub fn plane(&self, name: &str) -> Result<&DataPlane, SimError> {
        self.planes
            .get(name)
            .ok_or_else(|| SimError::UnknownPlane(name.to_string()))
    }

    /// A trigger waking the reconcile of `key`.
    pub fn trigger(&self, key: &ObjKey) -> Trigger {
        Trigger::new(self.queue.tx.clone(), key.clone())
    }
}

#[derive(Debug, Default)]
struct KeyState {
    running: bool,
    dirty: bool,
    wake: Option<Instant>,
}

/// Queue of objects to reconcile: one reconcile at a time per object, re-run when an event came in
/// meanwhile, and at most one pending timer per object (the earliest).
#[derive(Debug)]
pub struct WorkQueue {
    tx: mpsc::UnboundedSender<ObjKey>,
    keys: Arc<Mutex<HashMap<ObjKey, KeyState>>>,
}

impl WorkQueue {
    fn new(tx: mpsc::UnboundedSender<ObjKey>) -> Self {
        Self {
            tx,
            keys: Arc::default(),
        }
    }

    /// Asks for a reconcile of `key`.
    pub fn enqueue(&self, key: ObjKey) {
        let _ = self.tx.send(key);
    }

    /// True when the caller should start a worker for `key` (none is running).
    fn begin(&self, key: &ObjKey) -> bool {
        let mut keys = lock(&self.keys);
        let st = keys.entry(key.clone()).or_default();
        if st.running {
            st.dirty = true;
            false
        } else {
            st.running = true;
            true
        }
    }

    /// Called by a worker after a pass: true when it must run again.
    fn end_pass(&self, key: &ObjKey) -> bool {
        let mut keys = lock(&self.keys);
        let Some(st) = keys.get_mut(key) else {
            return false;
        };
        if st.dirty {
            st.dirty = false;
            return true;
        }
        st.running = false;
        if st.wake.is_none() {
            keys.remove(key);
        }
        false
    }

    /// Reconciles `key` again after `after` (unless an earlier wake-up is already planned).
    fn schedule(&self, key: ObjKey, after: Duration) {
        let at = Instant::now() + after;
        {
            let mut keys = lock(&self.keys);
            let st = keys.entry(key.clone()).or_default();
            if st.wake.is_some_and(|w| w <= at) {
                return;
            }
            st.wake = Some(at);
        }
        let keys = self.keys.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut keys = lock(&keys);
                match keys.get_mut(&key) {
                    Some(st) if st.wake == Some(at) => {
                        st.wake = None;
                        true
                    }
                    _ => false,
                }
            };
            if due {
                let _ = tx.send(key);
            }
        });
    }
}

/// Runs the simulator until the process ends: watchers for every data plane, the dispatcher and
/// the PD lease sweeper.
pub async fn run(sim: Arc<Sim>, mut rx: mpsc::UnboundedReceiver<ObjKey>) {
    for plane in sim.planes.values() {
        for kind in [Kind::Backup, Kind::Restore] {
            tokio::spawn(watch_kind(sim.clone(), plane.clone(), kind));
        }
    }
    let pd = sim.pd.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            pd.sweep();
        }
    });
    while let Some(key) = rx.recv().await {
        if sim.queue.begin(&key) {
            tokio::spawn(work(sim.clone(), key));
        }
    }
}

async fn work(sim: Arc<Sim>, key: ObjKey) {
    loop {
        let next = match key.kind {
            Kind::Backup => crate::backup::reconcile(&sim, &key).await,
            Kind::Restore => crate::restore::reconcile(&sim, &key).await,
        };
        let next = next.unwrap_or_else(|e| {
            tracing::warn!(plane = %key.plane, namespace = %key.namespace, name = %key.name, kind = ?key.kind, error = %e, "reconcile failed, retrying");
            Next::After(Duration::from_secs(1))
        });
        match next {
            Next::Done => {}
            Next::Soon => sim.queue.schedule(key.clone(), Duration::from_millis(20)),
            Next::After(d) => sim.queue.schedule(key.clone(), d),
            Next::Poll => sim.queue.schedule(key.clone(), sim.cfg.poll_interval),
        }
        if !sim.queue.end_pass(&key) {
            return;
        }
    }
}

async fn watch_kind(sim: Arc<Sim>, plane: DataPlane, kind: Kind) {
    let resource = match kind {
        Kind::Backup => backup_resource(),
        Kind::Restore => restore_resource(),
    };
    let api: Api<DynamicObject> = Api::all_with(plane.watch_client.clone(), &resource);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut healthy = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(
                watcher::Event::Apply(obj)
                | watcher::Event::InitApply(obj)
                | watcher::Event::Delete(obj),
            ) => {
                if !healthy {
                    tracing::info!(plane = %plane.name, ?kind, "watch re-established");
                    healthy = true;
                }
                sim.queue.enqueue(ObjKey {
                    plane: plane.name.clone(),
                    kind,
                    namespace: obj.namespace().unwrap_or_default(),
                    name: obj.name_any(),
                });
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => {
                if healthy {
                    tracing::warn!(plane = %plane.name, ?kind, error = %e, "watch failed, retrying with backoff");
                }
                healthy = false;
            }
        }
    }
}
