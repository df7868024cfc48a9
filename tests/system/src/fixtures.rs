//! What every runner on the local world builds alike (the system tests, `brfed-bench` and
//! `brfed-faults`): a TiDB cluster seeded in a fresh namespace of the first three data planes,
//! the `spec.clusters` over it, and the `VolumeBackup` / `VolumeRestore` execution inputs, one
//! builder per kind.

use crate::dataplane::{World, unique};
use crate::workflow::{Finished, Workflows, state_machine};
use brfed_sim_operator::seed::{SeedError, TidbClusterSeed, default_az, seed_tidb_cluster};
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::marker::PhantomData;
use std::time::Duration;

/// `apiVersion` of the federation's kinds.
const API_VERSION: &str = "federation.pingcap.com/v1alpha1";

/// A TidbCluster `basic` seeded across the first three data planes, in a namespace of its own.
#[derive(Debug, Clone)]
pub struct SeededCluster {
    /// Namespace of its TidbClusters (`unique(prefix)`).
    pub ns: String,
    /// Cluster key (`{ns}-{key_suffix}`), the PD the simulated operator keeps for it.
    pub key: String,
    /// The data planes it spans.
    pub planes: Vec<String>,
}

impl SeededCluster {
    /// Seeds TidbCluster `basic` with `stores` TiKV per plane in namespace `unique(prefix)` of
    /// the first three data planes, cluster key `{ns}-{key_suffix}`.
    pub async fn seed(
        world: &World,
        prefix: &str,
        key_suffix: &str,
        stores: usize,
    ) -> Result<Self, SeedError> {
        let ns = unique(prefix);
        let key = format!("{ns}-{key_suffix}");
        let planes = world.plane_names(3);
        seed_tidb_cluster(
            &world.kubeconfig,
            &planes,
            &TidbClusterSeed::new(&ns, "basic", &key).stores_per_plane(stores),
        )
        .await?;
        Ok(Self { ns, key, planes })
    }

    /// The last 8 characters of the namespace: they differ between any two seeds of one run
    /// (names of backups and executions are cut from them).
    pub fn id(&self) -> &str {
        &self.ns[self.ns.len() - 8..]
    }

    /// The smallest backup of it ([`VolumeBackup::new`]): `name`, stored in `bucket` under
    /// `{ns}/b`.
    pub fn backup(&self, name: &str, bucket: &str) -> VolumeBackup {
        VolumeBackup::new(name, self.clusters(), bucket, &format!("{}/b", self.ns))
    }

    /// `spec.clusters` of a `VolumeBackup` of it.
    pub fn clusters(&self) -> Vec<Value> {
        backup_clusters(&self.planes, "basic", &self.ns)
    }
}

/// `spec.clusters` of a `VolumeBackup`: TidbCluster `tc` of namespace `ns` in every plane.
pub fn backup_clusters(planes: &[String], tc: &str, ns: &str) -> Vec<Value> {
    planes
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": tc, "tcNamespace": ns}))
        .collect()
}

/// `spec.clusters` of a `VolumeRestore`: TidbCluster `tc` of namespace `ns` in every plane, each
/// restored into the first AZ the simulated operator gives that plane in `region`.
pub fn restore_clusters(planes: &[String], tc: &str, ns: &str, region: &str) -> Vec<Value> {
    planes
        .iter()
        .map(|p| {
            json!({"k8sClusterName": p, "tcName": tc, "tcNamespace": ns,
                "azName": default_az(region, p, 0)})
        })
        .collect()
}

/// Builder of an execution input of kind `K`: [`VolumeBackup`] or [`VolumeRestore`]. The
/// setters of `metadata` and `options` serve both; each kind has its own starts and template.
#[derive(Debug, Clone)]
pub struct Input<K> {
    doc: Value,
    kind: PhantomData<K>,
}

/// Kind marker of [`VolumeBackup`].
#[derive(Debug, Clone)]
pub struct Backup;

/// Kind marker of [`VolumeRestore`].
#[derive(Debug, Clone)]
pub struct Restore;

/// Builder of a `volume-backup` execution input (a `VolumeBackup`).
pub type VolumeBackup = Input<Backup>;

/// Builder of a `volume-restore` execution input (a `VolumeRestore` from a catalog backup).
pub type VolumeRestore = Input<Restore>;

impl<K> Input<K> {
    fn of(doc: Value) -> Self {
        Self {
            doc,
            kind: PhantomData,
        }
    }

    /// `metadata.namespace`.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.doc["metadata"]["namespace"] = json!(namespace);
        self
    }

    /// `metadata.annotations`.
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.doc["metadata"]["annotations"] = annotations;
        self
    }

    /// `metadata.labels`.
    pub fn labels(mut self, labels: Value) -> Self {
        self.doc["metadata"]["labels"] = labels;
        self
    }

    /// `options` (brfed's: `observeMode`, `phaseTimeoutSeconds`, ...).
    pub fn options(mut self, options: Value) -> Self {
        self.doc["options"] = options;
        self
    }

    /// The input.
    pub fn build(self) -> Value {
        self.doc
    }

    /// Its `spec` alone (a schedule's `backupTemplate`).
    pub fn spec(mut self) -> Value {
        self.doc["spec"].take()
    }
}

impl Input<Backup> {
    /// The smallest input: `name` in namespace `br` over `clusters`, stored under
    /// `s3://bucket/prefix`; no `apiVersion`/`kind`, nothing else in the template.
    pub fn new(name: &str, clusters: Vec<Value>, bucket: &str, prefix: &str) -> Self {
        Self::of(json!({"metadata": {"name": name, "namespace": "br"},
            "spec": {"clusters": clusters, "template": {
                "s3": {"provider": "aws", "bucket": bucket, "prefix": prefix}}}}))
    }

    /// The input as a user writes the object: [`Self::new`] with `apiVersion` and `kind`, and a
    /// template with `br.sendCredToTikv: false`, the S3 region `us-west-2`, tool image
    /// `pingcap/br:v7.5.1` and `cleanPolicy`.
    pub fn written(
        name: &str,
        clusters: Vec<Value>,
        bucket: &str,
        prefix: &str,
        clean_policy: &str,
    ) -> Self {
        let mut b = Self::new(name, clusters, bucket, prefix)
            .template("br", json!({"sendCredToTikv": false}))
            .template("toolImage", json!("pingcap/br:v7.5.1"))
            .template("cleanPolicy", json!(clean_policy));
        b.doc["apiVersion"] = json!(API_VERSION);
        b.doc["kind"] = json!("VolumeBackup");
        b.doc["spec"]["template"]["s3"]["region"] = json!("us-west-2");
        b
    }

    /// Sets `spec.template.{key}`.
    pub fn template(mut self, key: &str, value: Value) -> Self {
        self.doc["spec"]["template"][key] = value;
        self
    }
}

impl Input<Restore> {
    /// `name` in `namespace` over `clusters`, from backup `namespace/backup` of the catalog
    /// (`fromBackup`), with an empty template.
    pub fn from_backup(name: &str, namespace: &str, clusters: Vec<Value>, backup: &str) -> Self {
        Self::of(json!({"apiVersion": API_VERSION, "kind": "VolumeRestore",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusters": clusters, "template": {}},
            "fromBackup": {"namespace": namespace, "name": backup}}))
    }

    /// `spec.template` (`warmup`, `warmupStrategy`, ...).
    pub fn template(mut self, template: Value) -> Self {
        self.doc["spec"]["template"] = template;
        self
    }
}

/// The world, its workflows and a TidbCluster seeded as [`SeededCluster::seed`] does: what most
/// system tests start from. Panics when the world is missing or the seed fails.
pub async fn seeded_world(
    prefix: &str,
    key_suffix: &str,
    stores: usize,
) -> (World, Workflows, SeededCluster) {
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    let tc = SeededCluster::seed(&world, prefix, key_suffix, stores)
        .await
        .expect("seed");
    (world, flows, tc)
}

/// A federated backup `br/{name}` of a freshly seeded TidbCluster, not taken yet: what the
/// backup tests start from.
pub struct BackupCase {
    /// The world.
    pub world: World,
    /// Its workflows.
    pub flows: Workflows,
    /// Namespace of the TidbClusters.
    pub ns: String,
    /// Cluster key (the simulated PD's).
    pub key: String,
    /// Backup (and execution) name: `{name_prefix}-{id}`.
    pub name: String,
    /// The data planes it spans.
    pub planes: Vec<String>,
}

impl BackupCase {
    /// Seeds TidbCluster `basic` with `stores` TiKV per plane in namespace `unique(prefix)` of the
    /// first three data planes (cluster key `{ns}-tidb`); the backup is `{name_prefix}-{id}`.
    pub async fn new(prefix: &str, name_prefix: &str, stores: usize) -> Self {
        let (world, flows, tc) = seeded_world(prefix, "tidb", stores).await;
        Self {
            name: format!("{name_prefix}-{}", tc.id()),
            world,
            flows,
            ns: tc.ns,
            key: tc.key,
            planes: tc.planes,
        }
    }

    /// The backup as a user writes it ([`VolumeBackup::written`]) with `clean_policy`, stored
    /// under `{ns}/backup`.
    pub fn input(&self, clean_policy: &str) -> VolumeBackup {
        VolumeBackup::written(
            &self.name,
            backup_clusters(&self.planes, "basic", &self.ns),
            &self.world.bucket,
            &format!("{}/backup", self.ns),
            clean_policy,
        )
    }

    /// Its member `fed-{name}` in `plane`, if there is one.
    pub async fn member(&self, plane: &str) -> Option<DynamicObject> {
        self.world
            .backups(plane, &self.ns)
            .get_opt(&format!("fed-{}", self.name))
            .await
            .unwrap()
    }

    /// Runs `volume-backup-delete` with `input` (execution `delete-{name}`) to its end.
    pub async fn delete(&self, input: &Value, timeout: Duration) -> Finished {
        self.flows
            .run(
                &state_machine("volume-backup-delete"),
                &format!("delete-{}", self.name),
                input,
                timeout,
            )
            .await
    }

    /// Runs `volume-backup` with `input` (execution = the backup's name) to its end.
    pub async fn run(&self, input: &Value, timeout: Duration) -> Finished {
        self.flows
            .run(&self.flows.backup_arn, &self.name, input, timeout)
            .await
    }
}
