//! What Backup and Restore reconciles share: the member being reconciled, status writes, the
//! member's TidbCluster, and the storage location of its spec.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::faults::{FaultPhase, FaultPlan, Faults};
use crate::jobs::{CondReport, Job, JobEnd, MemberState, ObjKey, Report, Stop};
use crate::kubeobj::{
    self, has_condition, k8s_now, set_condition, status_mut, str_at, tidbcluster_resource,
    update_object,
};
use crate::pd::TIDB_CLUSTER_LABEL;
use crate::sim::{Next, Sim, SimError};

/// Reason of every condition caused by a fault rule.
pub const SIMULATED_FAULT: &str = "SimulatedFault";

/// Condition types of the data-plane `Backup` and `Restore`: those both write, then each kind's own.
pub mod cond {
    /// Job created.
    pub const SCHEDULED: &str = "Scheduled";
    /// Job running.
    pub const RUNNING: &str = "Running";
    /// Final success.
    pub const COMPLETE: &str = "Complete";
    /// Final failure.
    pub const FAILED: &str = "Failed";
    /// Spec or TidbCluster invalid.
    pub const INVALID: &str = "Invalid";

    // Backup
    /// Execute job preparing.
    pub const PREPARE: &str = "Prepare";
    /// GC and schedulers paused.
    pub const INITIALIZED: &str = "VolumeBackupInitialized";
    /// Pausing failed or the init job died too early.
    pub const INITIALIZE_FAILED: &str = "VolumeBackupInitializeFailed";
    /// `backupmeta` exists.
    pub const SNAPSHOTS_CREATED: &str = "VolumeBackupSnapshotsCreated";
    /// GC and schedulers resumed after the snapshots were created.
    pub const INITIALIZE_COMPLETE: &str = "VolumeBackupInitializeComplete";
    /// Snapshots completed.
    pub const VOLUME_BACKUP_COMPLETE: &str = "VolumeBackupComplete";
    /// Execute failed.
    pub const VOLUME_FAILED: &str = "VolumeBackupFailed";
    /// Data deleted.
    pub const CLEAN: &str = "Clean";
    /// Data deletion failed.
    pub const CLEAN_FAILED: &str = "CleanFailed";

    // Restore
    /// Volumes restored, `restoremeta` written.
    pub const VOLUME_COMPLETE: &str = "VolumeComplete";
    /// Volumes of a failed restore-volume deleted.
    pub const CLEAN_VOLUME_COMPLETE: &str = "CleanVolumeComplete";
    /// Warmup jobs started.
    pub const WARMUP_STARTED: &str = "WarmUpStarted";
    /// Warmup jobs finished.
    pub const WARMUP_COMPLETE: &str = "WarmUpComplete";
    /// TiKV up on the restored volumes.
    pub const TIKV_COMPLETE: &str = "TikvComplete";
    /// Data recovered to the resolved ts.
    pub const DATA_COMPLETE: &str = "DataComplete";
}

/// A member object during one reconcile pass.
pub struct Member<'a> {
    /// Simulator.
    pub sim: &'a Arc<Sim>,
    /// Which object.
    pub key: &'a ObjKey,
    /// Its API (namespaced).
    pub api: Api<DynamicObject>,
    /// The object as read at the start of the pass.
    pub obj: DynamicObject,
    /// Its uid.
    pub uid: String,
}

impl<'a> Member<'a> {
    /// The member `key` (an object of `resource`) as a pass starts: `None` when it is gone (its
    /// remembered state is then forgotten) or its `spec.{mode}` is not `volume-snapshot`.
    pub async fn load(
        sim: &'a Arc<Sim>,
        key: &'a ObjKey,
        resource: &ApiResource,
        mode: &str,
    ) -> Result<Option<Self>, SimError> {
        let plane = sim.plane(&key.plane)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(plane.client.clone(), &key.namespace, resource);
        let Some(obj) = api.get_opt(&key.name).await? else {
            sim.jobs.forget(key);
            return Ok(None);
        };
        if str_at(&obj, &format!("/spec/{mode}")) != Some("volume-snapshot") {
            return Ok(None);
        }
        let uid = obj.metadata.uid.clone().unwrap_or_default();
        Ok(Some(Self {
            sim,
            key,
            api,
            obj,
            uid,
        }))
    }

    /// Condition `ty` is true.
    pub fn has(&self, ty: &str) -> bool {
        has_condition(&self.obj, ty)
    }

    /// Runs `f` on the member's remembered state.
    pub fn state<R>(&self, f: impl FnOnce(&mut MemberState) -> R) -> R {
        self.sim.jobs.with(self.key, &self.uid, f)
    }

    /// Writes a whole-object update (conflicts retried).
    pub async fn write(
        &self,
        mutate: impl FnMut(&mut DynamicObject) -> bool,
    ) -> Result<(), SimError> {
        update_object(&self.api, &self.key.name, &self.uid, mutate).await?;
        Ok(())
    }

    /// Writes one condition (and its fields).
    pub async fn report(&self, r: &CondReport) -> Result<Next, SimError> {
        tracing::info!(plane = %self.key.plane, namespace = %self.key.namespace, name = %self.key.name, kind = ?self.key.kind, condition = r.ty, reason = %r.reason, message = %r.message, "condition");
        self.write(|o| apply_report(o, r)).await?;
        Ok(Next::Soon)
    }

    /// Writes `ty` with `reason` and `message`.
    pub async fn condition(
        &self,
        ty: &'static str,
        reason: &str,
        message: impl Into<String>,
    ) -> Result<Next, SimError> {
        self.report(&CondReport::new(ty).reason(reason).message(message))
            .await
    }

    /// Writes `ty` for a fault rule (reason [`SIMULATED_FAULT`]).
    pub async fn faulted(
        &self,
        ty: &'static str,
        message: impl Into<String>,
    ) -> Result<Next, SimError> {
        self.condition(ty, SIMULATED_FAULT, message).await
    }

    /// Writes `Invalid` for a fault rule's `invalid` at `point` (`simulated: invalid at {point}`).
    pub async fn invalid_by_fault(&self, point: &str) -> Result<Next, SimError> {
        self.faulted(cond::INVALID, format!("simulated: invalid at {point}"))
            .await
    }

    /// Writes `Invalid` for a spec or TidbCluster the contract refuses (reason `InvalidSpec`);
    /// the member is done.
    pub async fn invalid_spec(&self, why: String) -> Result<Next, SimError> {
        self.condition(cond::INVALID, "InvalidSpec", why)
            .await
            .map(|_| Next::Done)
    }

    /// Starts the member's `what` job `name`, its outbox starting with `first`, logs that it was
    /// created and keeps it in the member's state, in the slot `slot` picks.
    pub fn start_job<F, Fut>(
        &self,
        what: &str,
        name: String,
        first: Vec<Report>,
        body: F,
        slot: impl FnOnce(&mut MemberState) -> &mut Option<Arc<Job>>,
    ) where
        F: FnOnce(Arc<Job>, watch::Receiver<Option<Stop>>) -> Fut,
        Fut: Future<Output = JobEnd> + Send + 'static,
    {
        let job = Job::spawn(name, self.sim.trigger(self.key), first, body);
        tracing::info!(plane = %self.key.plane, namespace = %self.key.namespace, name = %self.key.name, job = %job.name, "{what} job created");
        self.state(|s| *slot(s) = Some(job));
    }

    /// Writes `RetryFailed` for a transient problem (once per distinct message) and retries later.
    pub async fn retry_failed(&self, reason: &str, message: String) -> Result<Next, SimError> {
        let same = kubeobj::phase(&self.obj) == Some("RetryFailed")
            && kubeobj::condition(&self.obj, "RetryFailed")
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                == Some(message.as_str());
        if !same {
            self.condition("RetryFailed", reason, message).await?;
        }
        Ok(Next::After(Duration::from_secs(2)))
    }

    /// Writes the oldest report of `job` when it is a plain condition; returns `None` when the
    /// outbox is empty and `Some(report)` when it holds something the caller must handle.
    pub async fn drain_conditions(&self, job: &Arc<Job>) -> Result<Drained, SimError> {
        match job.next_report() {
            None => Ok(Drained::Empty),
            Some(crate::jobs::Report::Condition(c)) => {
                self.report(&c).await?;
                job.pop_report();
                Ok(Drained::Wrote)
            }
            Some(other) => Ok(Drained::Special(other)),
        }
    }

    /// The member's fault rules (its annotations, then its TidbCluster's).
    pub fn faults(&self, tc: Option<&DynamicObject>) -> Faults {
        Faults::from_annotations([
            self.obj.metadata.annotations.as_ref(),
            tc.and_then(|t| t.metadata.annotations.as_ref()),
        ])
    }

    /// The plan of the fault rules at `phase`.
    pub fn plan(&self, faults: &Faults, phase: FaultPhase) -> FaultPlan {
        faults.plan(&self.key.plane, phase)
    }

    /// Namespace and name of the member's TidbCluster (`spec.br.clusterNamespace`/`spec.br.cluster`).
    pub fn tc_ref(&self) -> Option<(String, String)> {
        let name = str_at(&self.obj, "/spec/br/cluster")?;
        let ns = str_at(&self.obj, "/spec/br/clusterNamespace").unwrap_or(&self.key.namespace);
        Some((ns.to_string(), name.to_string()))
    }

    /// Reads the member's TidbCluster (`None` when unset or missing).
    pub async fn tidb_cluster(&self) -> Result<Option<DynamicObject>, SimError> {
        let Some((ns, name)) = self.tc_ref() else {
            return Ok(None);
        };
        let plane = self.sim.plane(&self.key.plane)?;
        let api: Api<DynamicObject> =
            Api::namespaced_with(plane.client.clone(), &ns, &tidbcluster_resource());
        Ok(api.get_opt(&name).await?)
    }

    /// Bucket and prefix of `spec.s3`.
    pub fn storage(&self) -> Option<Storage> {
        let bucket = str_at(&self.obj, "/spec/s3/bucket")?.to_string();
        let prefix = str_at(&self.obj, "/spec/s3/prefix")
            .unwrap_or("")
            .trim_matches('/')
            .to_string();
        Some(Storage { bucket, prefix })
    }

    /// How long ago the operator-side point `point` was first reached; `Some(wait)` while its
    /// `delay` is not over yet.
    pub fn delay_left(&self, point: &'static str, delay: Duration) -> Option<Duration> {
        let since = self.state(|s| s.since_first(point));
        (since < delay).then(|| delay - since)
    }
}

/// The `Scheduled` condition a member's new `what` job reports first (`{what} job created`).
pub fn scheduled(what: &str) -> CondReport {
    CondReport::new(cond::SCHEDULED).message(format!("{what} job created"))
}

/// Result of [`Member::drain_conditions`].
#[derive(Debug)]
pub enum Drained {
    /// Nothing queued.
    Empty,
    /// A condition was written.
    Wrote,
    /// A report that is not a plain condition is next.
    Special(crate::jobs::Report),
}

/// Applies a report to an object: the condition, its fields, `timeStarted` on the first write and
/// `timeCompleted` on a final one.
pub fn apply_report(obj: &mut DynamicObject, r: &CondReport) -> bool {
    let before = obj.data.get("status").cloned();
    set_condition(obj, r.ty, &r.reason, &r.message);
    let status = status_mut(obj);
    for (k, v) in &r.fields {
        status.insert((*k).to_string(), v.clone());
    }
    if !status.contains_key("timeStarted") {
        status.insert("timeStarted".to_string(), json!(k8s_now()));
    }
    if matches!(r.ty, "Complete" | "Failed") {
        status.insert("timeCompleted".to_string(), json!(k8s_now()));
    }
    obj.data.get("status") != before.as_ref()
}

/// The PD key of a TidbCluster: its `sim.brfed.dev/tidb-cluster` label, else `{namespace}/{name}`.
pub fn pd_key(tc: &DynamicObject) -> String {
    tc.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(TIDB_CLUSTER_LABEL))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            format!(
                "{}/{}",
                tc.metadata.namespace.as_deref().unwrap_or_default(),
                tc.metadata.name.as_deref().unwrap_or_default()
            )
        })
}

/// The TidbCluster as plain JSON (metadata included).
pub fn tc_json(tc: &DynamicObject) -> Value {
    serde_json::to_value(tc).unwrap_or(Value::Null)
}

/// A bucket and a prefix without surrounding slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// Bucket.
    pub bucket: String,
    /// Prefix (may be empty).
    pub prefix: String,
}

impl Storage {
    /// Key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// `s3://bucket/prefix`.
    pub fn path(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Reads a bool at a pointer of a TidbCluster.
pub fn tc_bool(tc: &DynamicObject, pointer: &str) -> bool {
    tc.data
        .pointer(pointer)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Number of entries of the map `status.tikv.stores` of a TidbCluster.
pub fn tc_store_count(tc: &DynamicObject) -> usize {
    tc.data
        .pointer("/status/tikv/stores")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

/// `spec.tikv.replicas` of a TidbCluster.
pub fn tc_tikv_replicas(tc: &DynamicObject) -> i64 {
    tc.data
        .pointer("/spec/tikv/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Human readable size, SI units (`"12 GB"`), as `backupSizeReadable`.
pub fn readable_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_humanize() {
        assert_eq!(readable_size(0), "0 B");
        assert_eq!(readable_size(3 * 10 * (1 << 30)), "32 GB");
        assert_eq!(readable_size(1_200_000_000_000), "1.2 TB");
    }

    #[test]
    fn storage_keys_join_the_prefix() {
        let s = Storage {
            bucket: "b".into(),
            prefix: "p/x-dp1".into(),
        };
        assert_eq!(s.key("backupmeta"), "p/x-dp1/backupmeta");
        assert_eq!(s.path(), "s3://b/p/x-dp1");
        let root = Storage {
            bucket: "b".into(),
            prefix: String::new(),
        };
        assert_eq!(root.key("clustermeta"), "clustermeta");
    }
}
