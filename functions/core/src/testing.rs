//! Stateful in-memory fakes of the ports, for unit tests here and in other crates (feature
//! `testing`). They hold objects, apply merge patches like an API server, and can be told to fail.

use crate::backup::steps::Env;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::ports::{
    Created, DataPlanes, ExecutionFacts, Executions, MemberKind, ObjectStore, Observation,
    Precondition, Rules, ScheduleRule, SnapshotDeletion, SnapshotInfo, Started, Versioned,
    VolumeFacts, Volumes,
};
use crate::restore::steps::RestoreEnv;
use crate::schedule::steps::SchedulerEnv;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

type Key = (String, String, String);

/// Fake data planes: objects by (cluster, namespace, name).
#[derive(Default)]
pub struct FakePlanes {
    /// Known data-plane names.
    pub clusters: Vec<String>,
    backups: Mutex<BTreeMap<Key, Value>>,
    restores: Mutex<BTreeMap<Key, Value>>,
    tidb_clusters: Mutex<BTreeMap<Key, Value>>,
    down: Mutex<HashSet<String>>,
    /// Data planes that refuse every change (patch, delete) with this message.
    refusing: Mutex<BTreeMap<String, String>>,
    not_serving: Mutex<HashSet<String>>,
    /// Data planes whose member objects vanish at the next patch (their data plane finished
    /// deleting them between a read and the patch): the patch finds nothing.
    vanishing: Mutex<HashSet<String>>,
    /// (data plane, namespace) where brfed has no rights: its probe there is refused (403).
    forbidden: Mutex<HashSet<(String, String)>>,
    /// Every mutation, in order: `create cluster/ns/name`, `patch cluster/ns/name {...}`.
    pub log: Mutex<Vec<String>>,
}

impl FakePlanes {
    /// Merges `patch` into member `m` (into its `spec` when `into_spec`), only while its
    /// `metadata.uid` is `uid` when one is given (else 409, as the API server's precondition).
    fn merge_into(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: Option<&str>,
        into_spec: bool,
        patch: &Value,
    ) -> Result<(), StepError> {
        self.check_change(&m.k8s_cluster_name)?;
        if !self.serving(&m.k8s_cluster_name) {
            return Err(Self::not_found(&m.k8s_cluster_name, "patch"));
        }
        let mut b = self.objects(kind).lock().unwrap();
        if self.vanishing.lock().unwrap().remove(&m.k8s_cluster_name) {
            b.remove(&(
                m.k8s_cluster_name.clone(),
                m.tc_namespace.clone(),
                m.backup_name.clone(),
            ));
        }
        let obj = b
            .get_mut(&(
                m.k8s_cluster_name.clone(),
                m.tc_namespace.clone(),
                m.backup_name.clone(),
            ))
            .ok_or_else(|| StepError::MemberMissing(m.display()))?;
        if let Some(uid) = uid
            && obj["metadata"]["uid"].as_str().unwrap_or_default() != uid
        {
            return Err(StepError::MemberReplaced(format!(
                "{}: patch: Precondition failed: UID in precondition: {uid}",
                m.display()
            )));
        }
        merge(if into_spec { &mut obj["spec"] } else { obj }, patch);
        self.log
            .lock()
            .unwrap()
            .push(format!("patch {} {} {patch}", kind.kind(), m.display()));
        Ok(())
    }

    /// Data planes `dp1..dpN`, each with a ready TidbCluster `tidb/basic`.
    pub fn new(n: usize) -> Self {
        let planes = Self {
            clusters: (1..=n).map(|i| format!("dp{i}")).collect(),
            ..Default::default()
        };
        for c in planes.clusters.clone() {
            planes.put_tidb_cluster(
                &c,
                "tidb",
                "basic",
                json!({"spec": {"acrossK8s": true, "tikv": {"replicas": 1}},
                "status": {"tikv": {"stores": {"1": {"id": "1"}}}}}),
            );
        }
        planes
    }

    /// Adds or replaces a TidbCluster.
    pub fn put_tidb_cluster(&self, cluster: &str, ns: &str, name: &str, tc: Value) {
        self.tidb_clusters
            .lock()
            .unwrap()
            .insert((cluster.into(), ns.into(), name.into()), tc);
    }

    /// Leaves namespace `ns` of data plane `cluster` without brfed's rights: the probe there is
    /// refused (`DataPlaneForbidden`, as the API server's 403).
    pub fn forbid(&self, cluster: &str, ns: &str) {
        self.forbidden
            .lock()
            .unwrap()
            .insert((cluster.into(), ns.into()));
    }

    /// Takes a data plane down or brings it back.
    pub fn set_down(&self, cluster: &str, down: bool) {
        let mut d = self.down.lock().unwrap();
        if down {
            d.insert(cluster.into());
        } else {
            d.remove(cluster);
        }
    }

    /// The member objects of `cluster` vanish at the next patch (deleted by their data plane
    /// between a read and the patch).
    pub fn vanish_at_next_patch(&self, cluster: &str) {
        self.vanishing.lock().unwrap().insert(cluster.to_string());
    }

    /// Makes a data plane refuse every patch and deletion with `DataPlaneRejected(message)`
    /// (an admission webhook, a quota, RBAC), or accept them again (`None`).
    pub fn refuse_changes(&self, cluster: &str, message: Option<&str>) {
        let mut r = self.refusing.lock().unwrap();
        match message {
            Some(msg) => r.insert(cluster.into(), msg.into()),
            None => r.remove(cluster),
        };
    }

    fn check_change(&self, cluster: &str) -> Result<(), StepError> {
        self.check(cluster)?;
        match self.refusing.lock().unwrap().get(cluster) {
            Some(msg) => Err(StepError::DataPlaneRejected(msg.clone())),
            None => Ok(()),
        }
    }

    /// Makes a data plane answer, but not serve its member resources (404 as from an API server
    /// that is starting and does not serve the CRDs yet): reads, creations and patches fail
    /// `DataPlaneUnreachable` (how the kube adapter classifies a 404 that names no object),
    /// deletions find nothing.
    pub fn set_serving(&self, cluster: &str, serving: bool) {
        let mut d = self.not_serving.lock().unwrap();
        if serving {
            d.remove(cluster);
        } else {
            d.insert(cluster.into());
        }
    }

    fn serving(&self, cluster: &str) -> bool {
        !self.not_serving.lock().unwrap().contains(cluster)
    }

    fn not_found(cluster: &str, what: &str) -> StepError {
        StepError::DataPlaneUnreachable(format!(
            "{cluster}: {what}: the API server does not serve the resource (starting, or its CRD is missing): 404 page not found"
        ))
    }

    fn objects(&self, kind: MemberKind) -> &Mutex<BTreeMap<Key, Value>> {
        match kind {
            MemberKind::Backup => &self.backups,
            MemberKind::Restore => &self.restores,
        }
    }

    /// A member `Restore`, as stored.
    pub fn restore(&self, cluster: &str, ns: &str, name: &str) -> Option<Value> {
        self.restores
            .lock()
            .unwrap()
            .get(&(cluster.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Plays the data plane for a `Restore`: appends condition `type_` and makes it the phase.
    pub fn add_restore_condition(&self, cluster: &str, ns: &str, name: &str, type_: &str) {
        self.with_status(MemberKind::Restore, cluster, ns, name, |st| {
            push_condition(st, type_)
        });
    }

    /// Sets `status` fields of a member `Restore`.
    pub fn set_restore_status(&self, cluster: &str, ns: &str, name: &str, fields: Value) {
        self.with_status(MemberKind::Restore, cluster, ns, name, |st| {
            merge(st, &fields)
        });
    }

    /// Number of member `Restore`s.
    pub fn restore_count(&self) -> usize {
        self.restores.lock().unwrap().len()
    }

    fn check(&self, cluster: &str) -> Result<(), StepError> {
        if !self.clusters.iter().any(|c| c == cluster) {
            return Err(StepError::UnknownCluster(cluster.into()));
        }
        if self.down.lock().unwrap().contains(cluster) {
            return Err(StepError::DataPlaneUnreachable(format!(
                "{cluster}: connection refused"
            )));
        }
        Ok(())
    }

    /// A member object, as stored.
    pub fn backup(&self, cluster: &str, ns: &str, name: &str) -> Option<Value> {
        self.backups
            .lock()
            .unwrap()
            .get(&(cluster.into(), ns.into(), name.into()))
            .cloned()
    }

    /// Plays the data plane: appends condition `type_` (True) to a member and makes it the phase.
    pub fn add_condition(&self, cluster: &str, ns: &str, name: &str, type_: &str) {
        self.with_status(MemberKind::Backup, cluster, ns, name, |st| {
            push_condition(st, type_)
        });
    }

    /// Sets `status` fields of a member.
    pub fn set_status(&self, cluster: &str, ns: &str, name: &str, fields: Value) {
        self.with_status(MemberKind::Backup, cluster, ns, name, |st| {
            merge(st, &fields)
        });
    }

    fn with_status(
        &self,
        kind: MemberKind,
        cluster: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut objects = self.objects(kind).lock().unwrap();
        let obj = objects
            .get_mut(&(cluster.into(), ns.into(), name.into()))
            .expect("member exists");
        f(obj
            .as_object_mut()
            .unwrap()
            .entry("status")
            .or_insert_with(|| json!({"conditions": []})));
    }

    /// Puts an object directly (e.g. a foreign one, to make a name conflict).
    pub fn put_backup(&self, cluster: &str, obj: Value) {
        let key = (
            cluster.into(),
            obj["metadata"]["namespace"].as_str().unwrap().into(),
            obj["metadata"]["name"].as_str().unwrap().into(),
        );
        self.backups.lock().unwrap().insert(key, obj);
    }

    /// Number of member objects.
    pub fn backup_count(&self) -> usize {
        self.backups.lock().unwrap().len()
    }
}

fn push_condition(status: &mut Value, type_: &str) {
    status["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": type_, "status": "True"}));
    status["phase"] = json!(type_);
}

/// Three data planes `dp1`..`dp3`, each with a recovery-mode TidbCluster `{target_ns}/basic`
/// (1 TiKV) and, in bucket `data`, the `backupmeta` of a backup of 2 TiKV volumes per member
/// under `p-dpN/` (volumes `vol-src-dpN-K`, snapshots `snap-dpN-K`): what a restore starts from.
pub fn restore_world(data: &str, target_ns: &str) -> (FakePlanes, FakeStore) {
    let planes = FakePlanes::new(3);
    let store = FakeStore::default();
    for p in ["dp1", "dp2", "dp3"] {
        planes.put_tidb_cluster(
            p,
            target_ns,
            "basic",
            json!({"spec": {"acrossK8s": true, "recoveryMode": true, "tikv": {"replicas": 1}}}),
        );
        let volumes: Vec<Value> = (0..2)
            .map(|k| json!({"volume_id": format!("vol-src-{p}-{k}"), "type": "storage.data-dir", "snapshot_id": format!("snap-{p}-{k}")}))
            .collect();
        store.put(
            data,
            &format!("p-{p}/backupmeta"),
            json!({"kubernetes": {"crd_tidb_cluster": {"spec": {"tikv": {"replicas": 1}}}},
                   "tikv": {"stores": [{"store_id": 1, "volumes": volumes}]}}),
        );
    }
    (planes, store)
}

/// A `VolumeRestore` of the backup of [`restore_world`] into `{target_ns}/basic` of each data
/// plane (AZ `az-dpN`), with `cleanupOnFailure` as given.
pub fn restore_request(name: &str, data: &str, target_ns: &str, cleanup: bool) -> Value {
    let clusters: Vec<Value> = ["dp1", "dp2", "dp3"]
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": target_ns, "azName": format!("az-{p}"),
                        "backup": {"s3": {"provider": "aws", "bucket": data, "prefix": format!("p-{p}")}}}))
        .collect();
    json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
           "metadata": {"name": name, "namespace": "br"},
           "spec": {"clusters": clusters, "template": {}},
           "options": {"cleanupOnFailure": cleanup}})
}

/// A step's ports on fakes, with no watch (`observe_budget` zero: one read).
pub fn fake_env<'a, S>(
    planes: &'a FakePlanes,
    store: &'a S,
    catalog_bucket: &'a str,
) -> Env<'a, FakePlanes, S> {
    Env {
        planes,
        store,
        catalog_bucket,
        observe_budget: Duration::ZERO,
        backup_locations: None,
    }
}

/// A restore step's ports on fakes ([`fake_env`] and EC2).
pub fn fake_restore_env<'a, S, V>(
    planes: &'a FakePlanes,
    store: &'a S,
    volumes: &'a V,
    catalog_bucket: &'a str,
) -> RestoreEnv<'a, FakePlanes, S, V> {
    RestoreEnv {
        base: fake_env(planes, store, catalog_bucket),
        volumes,
    }
}

/// The fakes a restore runs on: the data planes and the backup of [`restore_world`], EC2, and
/// the catalog bucket its steps are given.
pub struct RestoreFakes {
    /// The data planes, each with TidbCluster `{target_ns}/basic` in recovery mode.
    pub planes: FakePlanes,
    /// The backup (bucket `data`) and the catalog.
    pub store: FakeStore,
    /// EC2.
    pub ec2: FakeVolumes,
    /// The catalog bucket.
    pub catalog: String,
}

impl RestoreFakes {
    /// [`restore_world`] with the backup in bucket `data` and the TidbClusters in `target_ns`,
    /// an empty EC2, and catalog bucket `catalog`.
    pub fn new(data: &str, target_ns: &str, catalog: &str) -> Self {
        let (planes, store) = restore_world(data, target_ns);
        Self {
            planes,
            store,
            ec2: FakeVolumes::default(),
            catalog: catalog.into(),
        }
    }

    /// A restore step's ports on these fakes ([`fake_restore_env`]).
    pub fn env(&self) -> RestoreEnv<'_, FakePlanes, FakeStore, FakeVolumes> {
        self.env_with(&self.ec2)
    }

    /// A restore step's ports on these fakes, with `volumes` for EC2 (a wrapper of
    /// [`Self::ec2`] that fails or races, say).
    pub fn env_with<'a, V>(&'a self, volumes: &'a V) -> RestoreEnv<'a, FakePlanes, FakeStore, V> {
        fake_restore_env(&self.planes, &self.store, volumes, &self.catalog)
    }
}

/// The fakes the schedule steps run on: the catalog (S3), Step Functions and EventBridge.
#[derive(Default)]
pub struct ScheduleFakes {
    /// The catalog.
    pub store: FakeStore,
    /// Step Functions.
    pub executions: FakeExecutions,
    /// EventBridge.
    pub rules: FakeRules,
}

impl ScheduleFakes {
    /// The catalog bucket of [`Self::env`].
    pub const CATALOG: &'static str = "catalog";
    /// The backup state machine of [`Self::env`].
    pub const BACKUP_STATE_MACHINE: &'static str = "arn:sm:volume-backup";
    /// The backup-delete state machine of [`Self::env`].
    pub const DELETE_STATE_MACHINE: &'static str = "arn:sm:volume-backup-delete";

    /// The schedule steps' ports on these fakes.
    pub fn env(&self) -> SchedulerEnv<'_, FakeStore, FakeExecutions> {
        SchedulerEnv {
            store: &self.store,
            catalog_bucket: Self::CATALOG,
            executions: &self.executions,
            backup_state_machine: Self::BACKUP_STATE_MACHINE,
            delete_state_machine: Self::DELETE_STATE_MACHINE,
        }
    }
}

/// The entries of `map` (labels, annotations) in order, as pairs to compare with a list.
pub fn pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// JSON merge patch (RFC 7386).
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl DataPlanes for FakePlanes {
    fn cluster_names(&self) -> HashSet<String> {
        self.clusters.iter().cloned().collect()
    }

    async fn probe(&self, kind: MemberKind, cluster: &str, ns: &str) -> Result<(), StepError> {
        self.check(cluster)?;
        if self
            .forbidden
            .lock()
            .unwrap()
            .contains(&(cluster.to_string(), ns.to_string()))
        {
            return Err(StepError::DataPlaneForbidden(format!(
                "{cluster}: list {} in namespace {ns}: 403 forbidden",
                kind.plural()
            )));
        }
        Ok(())
    }

    async fn get_tidb_cluster(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, StepError> {
        self.check(cluster)?;
        Ok(self
            .tidb_clusters
            .lock()
            .unwrap()
            .get(&(cluster.into(), namespace.into(), name.into()))
            .cloned())
    }

    async fn get_member(
        &self,
        kind: MemberKind,
        m: &MemberRef,
    ) -> Result<Option<Value>, StepError> {
        self.check(&m.k8s_cluster_name)?;
        if !self.serving(&m.k8s_cluster_name) {
            return Err(Self::not_found(&m.k8s_cluster_name, "get"));
        }
        Ok(self
            .objects(kind)
            .lock()
            .unwrap()
            .get(&(
                m.k8s_cluster_name.clone(),
                m.tc_namespace.clone(),
                m.backup_name.clone(),
            ))
            .cloned())
    }

    async fn create_member(
        &self,
        kind: MemberKind,
        cluster: &str,
        object: &Value,
    ) -> Result<Created, StepError> {
        self.check(cluster)?;
        if !self.serving(cluster) {
            return Err(Self::not_found(cluster, "create"));
        }
        let key: Key = (
            cluster.into(),
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .into(),
        );
        let mut b = self.objects(kind).lock().unwrap();
        if let Some(existing) = b.get(&key) {
            return Ok(Created::AlreadyExists(existing.clone()));
        }
        self.log.lock().unwrap().push(format!(
            "create {} {}/{}/{}",
            kind.kind(),
            key.0,
            key.1,
            key.2
        ));
        b.insert(key, object.clone());
        Ok(Created::Created)
    }

    async fn patch_member_spec(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        spec: &Value,
    ) -> Result<(), StepError> {
        self.merge_into(kind, m, None, true, spec)
    }

    async fn delete_member(&self, kind: MemberKind, m: &MemberRef) -> Result<bool, StepError> {
        self.check(&m.k8s_cluster_name)?;
        if !self.serving(&m.k8s_cluster_name) {
            return Ok(false);
        }
        let gone = self.objects(kind).lock().unwrap().remove(&(
            m.k8s_cluster_name.clone(),
            m.tc_namespace.clone(),
            m.backup_name.clone(),
        ));
        self.log
            .lock()
            .unwrap()
            .push(format!("delete {} {}", kind.kind(), m.display()));
        Ok(gone.is_some())
    }

    async fn patch_member_if(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: &str,
        patch: &Value,
    ) -> Result<(), StepError> {
        self.merge_into(kind, m, Some(uid), false, patch)
    }

    async fn delete_member_if(
        &self,
        kind: MemberKind,
        m: &MemberRef,
        uid: &str,
    ) -> Result<bool, StepError> {
        self.check_change(&m.k8s_cluster_name)?;
        if !self.serving(&m.k8s_cluster_name) {
            return Ok(false);
        }
        let key = (
            m.k8s_cluster_name.clone(),
            m.tc_namespace.clone(),
            m.backup_name.clone(),
        );
        let mut objects = self.objects(kind).lock().unwrap();
        let Some(obj) = objects.get(&key) else {
            return Ok(false);
        };
        if obj["metadata"]["uid"].as_str().unwrap_or_default() != uid {
            return Err(StepError::MemberReplaced(format!(
                "{}: delete: Precondition failed: UID in precondition: {uid}",
                m.display()
            )));
        }
        objects.remove(&key);
        self.log
            .lock()
            .unwrap()
            .push(format!("delete {} {}", kind.kind(), m.display()));
        Ok(true)
    }

    async fn observe_members(
        &self,
        kind: MemberKind,
        members: &[MemberRef],
        _budget: Duration,
        _done: &(dyn Fn(&[Observation]) -> bool + Send + Sync),
    ) -> Vec<Observation> {
        let mut out = Vec::new();
        for m in members {
            out.push(match self.get_member(kind, m).await {
                Ok(Some(v)) => Observation::Present(v),
                Ok(None) => Observation::Absent,
                Err(e) => Observation::Unreachable(e.to_string()),
            });
        }
        out
    }
}

/// Fake object store with ETags and preconditions.
#[derive(Default)]
pub struct FakeStore {
    objects: Mutex<BTreeMap<(String, String), (Value, u64)>>,
    /// When set, every call fails with `CatalogUnavailable`.
    pub broken: Mutex<bool>,
    /// Every call of the port, counted (a test can say the store was never touched).
    calls: AtomicUsize,
    /// A rival's write that lands right before the next put of a key ending so.
    rival: Mutex<Option<(String, Value)>>,
}

impl FakeStore {
    /// Puts an object directly.
    pub fn put(&self, bucket: &str, key: &str, v: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert((bucket.into(), key.into()), (v, 1));
    }

    /// Removes an object directly.
    pub fn remove(&self, bucket: &str, key: &str) {
        self.objects
            .lock()
            .unwrap()
            .remove(&(bucket.into(), key.into()));
    }

    /// Reads an object directly.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Value> {
        self.objects
            .lock()
            .unwrap()
            .get(&(bucket.into(), key.into()))
            .map(|(v, _)| v.clone())
    }

    /// How many times the port was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Another writer wins the race for the next put of a key ending in `key_suffix`: `value`
    /// is there (if nothing was) when that put runs.
    pub fn race_next_put(&self, key_suffix: &str, value: Value) {
        *self.rival.lock().unwrap() = Some((key_suffix.into(), value));
    }

    fn check(&self) -> Result<(), StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if *self.broken.lock().unwrap() {
            Err(StepError::CatalogUnavailable("fake store is broken".into()))
        } else {
            Ok(())
        }
    }
}

impl ObjectStore for FakeStore {
    async fn get_json(&self, bucket: &str, key: &str) -> Result<Option<Versioned>, StepError> {
        self.check()?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(&(bucket.into(), key.into()))
            .map(|(v, n)| Versioned {
                value: v.clone(),
                etag: format!("\"{n}\""),
            }))
    }

    async fn put_json(
        &self,
        bucket: &str,
        key: &str,
        value: &Value,
        precondition: Precondition,
    ) -> Result<(), StepError> {
        self.check()?;
        let mut o = self.objects.lock().unwrap();
        let k = (bucket.to_string(), key.to_string());
        let mut rival = self.rival.lock().unwrap();
        if let Some((_, won)) = rival.take_if(|(suffix, _)| key.ends_with(suffix.as_str())) {
            o.entry(k.clone()).or_insert((won, 1));
        }
        let current = o.get(&k).map(|(_, n)| *n);
        match (&precondition, current) {
            (Precondition::IfAbsent, Some(_)) => {
                return Err(StepError::CatalogConflict(key.into()));
            }
            (Precondition::IfMatch(e), Some(n)) if *e != format!("\"{n}\"") => {
                return Err(StepError::CatalogConflict(key.into()));
            }
            (Precondition::IfMatch(_), None) => return Err(StepError::CatalogConflict(key.into())),
            _ => {}
        }
        o.insert(k, (value.clone(), current.unwrap_or(0) + 1));
        Ok(())
    }

    async fn exists(&self, bucket: &str, key: &str) -> Result<bool, StepError> {
        self.check()?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .contains_key(&(bucket.into(), key.into())))
    }

    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StepError> {
        self.check()?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .keys()
            .filter(|(b, k)| b == bucket && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect())
    }

    async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), StepError> {
        self.check()?;
        self.objects
            .lock()
            .unwrap()
            .remove(&(bucket.into(), key.into()));
        Ok(())
    }
}

/// Fake EBS: existing volume and snapshot ids, and a throttle that refuses every `n`-th
/// snapshot deletion.
#[derive(Default)]
pub struct FakeVolumes {
    /// Existing snapshots.
    pub snapshots: Mutex<HashSet<String>>,
    /// When non-zero, every `throttle_every`-th `DeleteSnapshot` is throttled.
    pub throttle_every: Mutex<usize>,
    /// Every `DeleteSnapshot` call: (snapshot, throttled).
    pub snapshot_calls: Mutex<Vec<(String, bool)>>,
    /// Snapshot tags.
    pub tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Existing volumes, by id.
    pub volumes: Mutex<BTreeMap<String, VolumeFacts>>,
    /// Every volume mutation, in order: `delete vol-...`, `tag vol-... k=v,k=v`.
    pub volume_log: Mutex<Vec<String>>,
    /// When EC2 started each snapshot (`StartTime`); a snapshot not listed here started "now",
    /// when it is described.
    pub start_times: Mutex<BTreeMap<String, DateTime<Utc>>>,
}

impl FakeVolumes {
    /// Adds a snapshot that EC2 started at `start`.
    pub fn add_snapshot(&self, id: &str, start: DateTime<Utc>) {
        self.snapshots.lock().unwrap().insert(id.into());
        self.start_times.lock().unwrap().insert(id.into(), start);
    }

    /// Sets tags of a snapshot (others stay), as anyone with `ec2:CreateTags` could.
    pub fn set_tags(&self, id: &str, tags: &[(&str, &str)]) {
        let mut all = self.tags.lock().unwrap();
        let t = all.entry(id.into()).or_default();
        for (k, v) in tags {
            t.insert(k.to_string(), v.to_string());
        }
    }

    fn info(&self, id: &str) -> SnapshotInfo {
        SnapshotInfo {
            id: id.into(),
            start_time: self
                .start_times
                .lock()
                .unwrap()
                .get(id)
                .copied()
                .unwrap_or_else(Utc::now),
            state: "completed".into(),
            tags: self
                .tags
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl Volumes for FakeVolumes {
    async fn delete_volume(&self, id: &str) -> Result<bool, StepError> {
        self.volume_log.lock().unwrap().push(format!("delete {id}"));
        Ok(self.volumes.lock().unwrap().remove(id).is_some())
    }

    async fn delete_snapshot(&self, id: &str) -> Result<SnapshotDeletion, StepError> {
        let mut calls = self.snapshot_calls.lock().unwrap();
        let every = *self.throttle_every.lock().unwrap();
        if every > 0 && (calls.len() + 1).is_multiple_of(every) {
            calls.push((id.to_string(), true));
            return Ok(SnapshotDeletion::Throttled);
        }
        calls.push((id.to_string(), false));
        Ok(if self.snapshots.lock().unwrap().remove(id) {
            SnapshotDeletion::Deleted
        } else {
            SnapshotDeletion::NotFound
        })
    }

    async fn tag_snapshots(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        let have = self.snapshots.lock().unwrap();
        let mut all = self.tags.lock().unwrap();
        for id in ids.iter().filter(|i| have.contains(*i)) {
            let t = all.entry(id.clone()).or_default();
            for (k, v) in tags {
                t.insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }

    async fn describe_snapshots(&self, ids: &[String]) -> Result<Vec<SnapshotInfo>, StepError> {
        let have: Vec<String> = {
            let s = self.snapshots.lock().unwrap();
            ids.iter().filter(|i| s.contains(*i)).cloned().collect()
        };
        Ok(have.iter().map(|id| self.info(id)).collect())
    }

    async fn snapshots_tagged(&self, key: &str) -> Result<Vec<SnapshotInfo>, StepError> {
        let ids: Vec<String> = {
            let have = self.snapshots.lock().unwrap();
            self.tags
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, t)| have.contains(*id) && t.contains_key(key))
                .map(|(id, _)| id.clone())
                .collect()
        };
        Ok(ids.iter().map(|id| self.info(id)).collect())
    }

    async fn volumes_from_snapshots(
        &self,
        snapshots: &[String],
    ) -> Result<Vec<VolumeFacts>, StepError> {
        Ok(self
            .volumes
            .lock()
            .unwrap()
            .values()
            .filter(|v| {
                v.snapshot_id
                    .as_ref()
                    .is_some_and(|s| snapshots.contains(s))
            })
            .cloned()
            .collect())
    }

    async fn describe_volume(&self, id: &str) -> Result<Option<VolumeFacts>, StepError> {
        Ok(self.volumes.lock().unwrap().get(id).cloned())
    }

    async fn tag_volumes(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        let mut all = self.volumes.lock().unwrap();
        let text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for id in ids {
            if let Some(v) = all.get_mut(id) {
                self.volume_log
                    .lock()
                    .unwrap()
                    .push(format!("tag {id} {}", text.join(",")));
                v.tags.extend(tags.iter().cloned());
            }
        }
        Ok(())
    }
}

/// Fake Step Functions: executions by (state machine, name), with their input and status.
#[derive(Default)]
pub struct FakeExecutions {
    /// (state machine, name) -> (input, status).
    pub runs: Mutex<BTreeMap<(String, String), (Value, String)>>,
}

impl FakeExecutions {
    /// Sets the status of an execution.
    pub fn set_status(&self, state_machine: &str, name: &str, status: &str) {
        if let Some(r) = self
            .runs
            .lock()
            .unwrap()
            .get_mut(&(state_machine.into(), name.into()))
        {
            r.1 = status.into();
        }
    }

    /// Names of the executions of `state_machine`.
    pub fn names(&self, state_machine: &str) -> Vec<String> {
        self.runs
            .lock()
            .unwrap()
            .keys()
            .filter(|(sm, _)| sm == state_machine)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

impl Executions for FakeExecutions {
    async fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: &Value,
    ) -> Result<Started, StepError> {
        let mut runs = self.runs.lock().unwrap();
        let key = (state_machine.to_string(), name.to_string());
        if runs.contains_key(&key) {
            return Ok(Started::AlreadyExists);
        }
        runs.insert(key, (input.clone(), "RUNNING".into()));
        Ok(Started::New(format!("{state_machine}:{name}")))
    }

    async fn status(&self, state_machine: &str, name: &str) -> Result<Option<String>, StepError> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .get(&(state_machine.into(), name.into()))
            .map(|r| r.1.clone()))
    }

    async fn describe(
        &self,
        state_machine: &str,
        name: &str,
    ) -> Result<Option<ExecutionFacts>, StepError> {
        Ok(self
            .runs
            .lock()
            .unwrap()
            .get(&(state_machine.into(), name.into()))
            .map(|(input, status)| ExecutionFacts {
                status: status.clone(),
                input: Some(input.to_string()),
                error: None,
                cause: None,
            }))
    }
}

/// Fake EventBridge rules.
#[derive(Default)]
pub struct FakeRules {
    /// Rules by name.
    pub rules: Mutex<BTreeMap<String, ScheduleRule>>,
}

impl Rules for FakeRules {
    async fn put(&self, rule: &ScheduleRule) -> Result<(), StepError> {
        self.rules
            .lock()
            .unwrap()
            .insert(rule.name.clone(), rule.clone());
        Ok(())
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, StepError> {
        Ok(match self.rules.lock().unwrap().get_mut(name) {
            Some(r) => {
                r.enabled = enabled;
                true
            }
            None => false,
        })
    }

    async fn delete(&self, name: &str) -> Result<bool, StepError> {
        Ok(self.rules.lock().unwrap().remove(name).is_some())
    }
}
