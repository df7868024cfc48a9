//! What every runner on the local world builds alike (the system tests, `brfed-bench` and
//! `brfed-faults`): a TiDB cluster seeded in a fresh namespace of the first three data planes,
//! the `spec.clusters` over it, a backup case to start from; the `VolumeBackup` /
//! `VolumeRestore` execution inputs are the builders of [`crate::docs`].

use crate::dataplane::{World, unique};
pub use crate::docs::{VolumeBackup, VolumeRestore};
use crate::workflow::{Finished, Workflows, state_machine};
use brfed_sim_operator::seed::{SeedError, TidbClusterSeed, default_az, seed_tidb_cluster};
use kube::api::DynamicObject;
use serde_json::{Value, json};
use std::time::Duration;

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

    /// Starts `volume-backup-delete` with `input`, execution `{prefix}-{name}`: its ARN.
    pub async fn start_delete(&self, prefix: &str, input: &Value) -> String {
        let execution = format!("{prefix}-{}", self.name);
        let sm = state_machine("volume-backup-delete");
        self.flows.start(&sm, &execution, input).await
    }

    /// Runs `volume-backup-delete` with `input` (execution `delete-{name}`) to its end.
    pub async fn delete(&self, input: &Value, timeout: Duration) -> Finished {
        let arn = self.start_delete("delete", input).await;
        self.flows.wait(&arn, timeout).await
    }

    /// Starts `volume-backup` with `input` (execution = the backup's name): its ARN.
    pub async fn start(&self, input: &Value) -> String {
        self.flows
            .start(&self.flows.backup_arn, &self.name, input)
            .await
    }

    /// Runs `volume-backup` with `input` (execution = the backup's name) to its end.
    pub async fn run(&self, input: &Value, timeout: Duration) -> Finished {
        let arn = self.start(input).await;
        self.flows.wait(&arn, timeout).await
    }
}
