//! Seeding of the local world: one federated TiDB cluster = a `TidbCluster` per data plane plus,
//! in the emulated EC2, one gp3 volume per TiKV store (and per extra `storageVolumes` entry) in
//! that data plane's AZ, tagged so the simulator finds them. Re-running a seed changes nothing.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::cloud::{Cloud, CloudError};
use crate::grant::{GrantError, grant_brfed};
use crate::kubeobj::{PlaneError, data_planes, k8s_now, tidbcluster_resource};
use crate::meta::{
    DATA_MOUNT_PATH, DATA_VOLUME_NAME, TAG_CLUSTER, TAG_MOUNT_PATH, TAG_PLANE, TAG_PV_NAME,
    TAG_PVC_NAME, TAG_PVC_NAMESPACE, TAG_STORE, TAG_VOLUME_NAME, TIKV_VOLUMES_ANNOTATION,
    tikv_volume_ids, tikv_volumes_annotation,
};
use crate::pd::TIDB_CLUSTER_LABEL;

/// A seeding failure.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Kubeconfig problem.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// Apiserver call failed.
    #[error("data plane {plane}: {source}")]
    Kube {
        /// Data plane.
        plane: String,
        /// Cause.
        source: kube::Error,
    },
    /// EC2 call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// Nothing to seed.
    #[error("no data plane (context) given")]
    NoPlanes,
    /// brfed's rights could not be granted.
    #[error(transparent)]
    Grant(#[from] GrantError),
}

/// An extra TiKV volume (`spec.tikv.storageVolumes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageVolume {
    /// Volume name (e.g. `raft`).
    pub name: String,
    /// Mount path (e.g. `/var/lib/raft`).
    pub mount_path: String,
    /// Kubernetes quantity (e.g. `10Gi`).
    pub size: String,
}

/// What to seed; build with [`TidbClusterSeed::new`] and the chainable setters.
#[derive(Debug, Clone)]
pub struct TidbClusterSeed {
    /// Namespace of the TidbClusters.
    pub namespace: String,
    /// Name of the TidbClusters.
    pub name: String,
    /// Federated TiDB cluster key (label `sim.brfed.dev/tidb-cluster`, PD key, volume tag).
    pub cluster_key: String,
    /// TiKV stores in each data plane.
    pub stores_per_plane: usize,
    /// AZ of each data plane (by position); defaults from the context name.
    pub azs: Option<Vec<String>>,
    /// TiDB version.
    pub version: String,
    /// PD replicas per data plane.
    pub pd_replicas: u32,
    /// TiDB replicas per data plane.
    pub tidb_replicas: u32,
    /// Extra TiKV volumes.
    pub storage_volumes: Vec<StorageVolume>,
    /// Size of every EBS volume, GiB.
    pub volume_size_gib: i32,
    /// `spec.acrossK8s`.
    pub across_k8s: bool,
    /// Region of the AZs.
    pub region: String,
    /// Grant brfed its shipped rights in the namespace (`crate::grant`), as the data plane's
    /// administrator does for every TiDB namespace brfed serves; on by default.
    pub grant_brfed: bool,
}

impl TidbClusterSeed {
    /// A seed with 3 stores per plane, TiDB v7.5.1, 1 PD and 1 TiDB per plane, 10 GiB volumes.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        cluster_key: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            cluster_key: cluster_key.into(),
            stores_per_plane: 3,
            azs: None,
            version: "v7.5.1".to_string(),
            pd_replicas: 1,
            tidb_replicas: 1,
            storage_volumes: Vec::new(),
            volume_size_gib: 10,
            across_k8s: true,
            region: crate::config::region_from(&|k| std::env::var(k).ok()),
            grant_brfed: true,
        }
    }

    /// Leaves the namespace without brfed's rights (a namespace its administrator did not
    /// grant brfed).
    pub fn without_brfed_grant(mut self) -> Self {
        self.grant_brfed = false;
        self
    }

    /// Stores per data plane.
    pub fn stores_per_plane(mut self, n: usize) -> Self {
        self.stores_per_plane = n;
        self
    }

    /// AZs by data-plane position.
    pub fn azs(mut self, azs: Vec<String>) -> Self {
        self.azs = Some(azs);
        self
    }

    /// Adds an extra TiKV volume.
    pub fn storage_volume(mut self, name: &str, mount_path: &str, size: &str) -> Self {
        self.storage_volumes.push(StorageVolume {
            name: name.to_string(),
            mount_path: mount_path.to_string(),
            size: size.to_string(),
        });
        self
    }

    /// Sets `spec.acrossK8s`.
    pub fn across_k8s(mut self, across: bool) -> Self {
        self.across_k8s = across;
        self
    }

    /// Sets the TiDB version.
    pub fn version(mut self, v: &str) -> Self {
        self.version = v.to_string();
        self
    }

    fn az_of(&self, plane: &str, index: usize) -> String {
        self.azs
            .as_ref()
            .and_then(|a| a.get(index).cloned())
            .unwrap_or_else(|| default_az(&self.region, plane, index))
    }

    fn store_ids(&self, plane_index: usize) -> Vec<u64> {
        (0..self.stores_per_plane)
            .map(|j| (plane_index * self.stores_per_plane + j + 1) as u64)
            .collect()
    }
}

/// AZ of a data plane: `dpN` → the N-th of a/b/c (cycling), else by position.
pub fn default_az(region: &str, plane: &str, index: usize) -> String {
    let digits: String = plane
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let n = digits
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(index + 1);
    let letter = ['a', 'b', 'c'][(n - 1) % 3];
    format!("{region}{letter}")
}

/// What was seeded in one data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededPlane {
    /// Data plane.
    pub plane: String,
    /// Its AZ.
    pub az: String,
    /// Its TiKV store ids.
    pub store_ids: Vec<u64>,
    /// Its EBS volumes (empty for a restore target).
    pub volume_ids: Vec<String>,
}

/// `status.tikv.stores[id]` entry of a TidbCluster.
pub fn store_status(id: u64, tc_name: &str, tc_ns: &str, ordinal: usize) -> Value {
    json!({
        "id": id.to_string(),
        "ip": format!("{tc_name}-tikv-{ordinal}.{tc_name}-tikv-peer.{tc_ns}.svc"),
        "leaderCount": 0,
        "podName": format!("{tc_name}-tikv-{ordinal}"),
        "state": "Up",
        "lastTransitionTime": k8s_now(),
    })
}

fn tidb_cluster(
    seed: &TidbClusterSeed,
    plane_index: usize,
    all: &[Vec<u64>],
    recovery: bool,
) -> Value {
    let mut tikv = json!({
        "replicas": seed.stores_per_plane,
        "baseImage": "pingcap/tikv",
        "requests": {"storage": format!("{}Gi", seed.volume_size_gib)},
        "storageClassName": "gp3",
    });
    if !seed.storage_volumes.is_empty() {
        tikv["storageVolumes"] = Value::Array(
            seed.storage_volumes
                .iter()
                .map(|v| json!({"name": v.name, "mountPath": v.mount_path, "storageSize": v.size, "storageClassName": "gp3"}))
                .collect(),
        );
    }
    let mut spec = json!({
        "acrossK8s": seed.across_k8s,
        "clusterDomain": "cluster.local",
        "version": seed.version,
        "pd": {"replicas": seed.pd_replicas, "baseImage": "pingcap/pd", "requests": {"storage": "1Gi"}},
        "tidb": {"replicas": seed.tidb_replicas, "baseImage": "pingcap/tidb"},
        "tikv": tikv,
    });
    if recovery {
        spec["recoveryMode"] = json!(true);
    }
    let mut obj = json!({
        "apiVersion": "pingcap.com/v1alpha1",
        "kind": "TidbCluster",
        "metadata": {
            "name": seed.name,
            "namespace": seed.namespace,
            "labels": {TIDB_CLUSTER_LABEL: seed.cluster_key},
        },
        "spec": spec,
    });
    if !recovery {
        let stores: serde_json::Map<String, Value> = all[plane_index]
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id.to_string(),
                    store_status(*id, &seed.name, &seed.namespace, i),
                )
            })
            .collect();
        let peers: serde_json::Map<String, Value> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != plane_index)
            .flat_map(|(_, ids)| {
                ids.iter().enumerate().map(|(i, id)| {
                    (
                        id.to_string(),
                        store_status(*id, &seed.name, &seed.namespace, i),
                    )
                })
            })
            .collect();
        obj["status"] = json!({"tikv": {"stores": stores, "peerStores": peers, "phase": "Normal"}});
    }
    obj
}

/// Creates the TidbCluster, or replaces an existing one keeping its other labels and annotations
/// (e.g. fault rules) but dropping the annotations named in `drop`.
async fn upsert(
    api: &Api<DynamicObject>,
    plane: &str,
    desired: Value,
    drop: &[&str],
) -> Result<(), SeedError> {
    let obj: DynamicObject = serde_json::from_value(desired).expect("a TidbCluster object");
    let name = obj.metadata.name.clone().unwrap_or_default();
    let err = |source| SeedError::Kube {
        plane: plane.to_string(),
        source,
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let current = api.get(&name).await.map_err(err)?;
            let mut next = obj;
            next.metadata.resource_version = current.metadata.resource_version;
            let mut labels = current.metadata.labels.unwrap_or_default();
            labels.extend(next.metadata.labels.take().unwrap_or_default());
            next.metadata.labels = Some(labels);
            let mut annotations = current.metadata.annotations.unwrap_or_default();
            annotations.retain(|k, _| !drop.contains(&k.as_str()));
            annotations.extend(next.metadata.annotations.take().unwrap_or_default());
            next.metadata.annotations = Some(annotations);
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(err)?;
            Ok(())
        }
        Err(e) => Err(err(e)),
    }
}

fn pv_name(parts: &[&str]) -> String {
    let mut a = DefaultHasher::new();
    parts.hash(&mut a);
    let x = a.finish();
    let mut b = DefaultHasher::new();
    (x, "pv").hash(&mut b);
    let y = b.finish();
    let hex = format!("{x:016x}{y:016x}");
    format!(
        "pvc-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn seed(
    kubeconfig: &Path,
    contexts: &[String],
    seed: &TidbClusterSeed,
    restore_target: bool,
) -> Result<Vec<SeededPlane>, SeedError> {
    let planes = data_planes(kubeconfig, contexts).await?;
    if planes.is_empty() {
        return Err(SeedError::NoPlanes);
    }
    let cloud = if restore_target {
        None
    } else {
        Some(Cloud::from_env(&seed.region).await)
    };
    let all_ids: Vec<Vec<u64>> = (0..planes.len()).map(|i| seed.store_ids(i)).collect();
    let mut out = Vec::new();
    for (index, plane) in planes.iter().enumerate() {
        let az = seed.az_of(&plane.name, index);
        let api: Api<DynamicObject> = Api::namespaced_with(
            plane.client.clone(),
            &seed.namespace,
            &tidbcluster_resource(),
        );
        let mut volume_ids = Vec::new();
        let mut by_store: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        if let Some(cloud) = &cloud {
            // what an earlier run of this seed created, found through the TidbCluster's annotation
            let current = api
                .get_opt(&seed.name)
                .await
                .map_err(|source| SeedError::Kube {
                    plane: plane.name.clone(),
                    source,
                })?;
            let known = tikv_volume_ids(
                current
                    .as_ref()
                    .and_then(|tc| tc.metadata.annotations.as_ref()),
            );
            let existing = match known {
                // a volume deleted since then makes the lookup fail: create them all again
                Some(ids) => cloud.volumes_by_id(&ids).await.unwrap_or_default(),
                None => Vec::new(),
            };
            let mut names = vec![(DATA_VOLUME_NAME.to_string(), DATA_MOUNT_PATH.to_string())];
            names.extend(
                seed.storage_volumes
                    .iter()
                    .map(|v| (v.name.clone(), v.mount_path.clone())),
            );
            for (ordinal, store_id) in all_ids[index].iter().enumerate() {
                let store = store_id.to_string();
                for (vol_name, mount_path) in &names {
                    let wanted = [
                        (TAG_CLUSTER, seed.cluster_key.as_str()),
                        (TAG_PLANE, plane.name.as_str()),
                        (TAG_STORE, store.as_str()),
                        (TAG_VOLUME_NAME, vol_name.as_str()),
                    ];
                    let found = existing.iter().find(|v| v.has_tags(&wanted));
                    if let Some(found) = found {
                        volume_ids.push(found.id.clone());
                        by_store
                            .entry(*store_id)
                            .or_default()
                            .push(found.id.clone());
                        continue;
                    }
                    let pvc = format!("{vol_name}-{}-tikv-{ordinal}", seed.name);
                    let mut tags: BTreeMap<String, String> = wanted
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect();
                    tags.insert(TAG_MOUNT_PATH.to_string(), mount_path.clone());
                    tags.insert(
                        TAG_PV_NAME.to_string(),
                        pv_name(&[&seed.cluster_key, &plane.name, &store, vol_name]),
                    );
                    tags.insert(
                        "CSIVolumeName".to_string(),
                        pv_name(&[&seed.cluster_key, &plane.name, &store, vol_name]),
                    );
                    tags.insert(TAG_PVC_NAME.to_string(), pvc);
                    tags.insert(TAG_PVC_NAMESPACE.to_string(), seed.namespace.clone());
                    tags.insert("KubernetesCluster".to_string(), plane.name.clone());
                    let id = cloud
                        .create_empty_volume(&az, seed.volume_size_gib, &tags)
                        .await?;
                    by_store.entry(*store_id).or_default().push(id.clone());
                    volume_ids.push(id);
                }
            }
        }
        let mut tc = tidb_cluster(seed, index, &all_ids, restore_target);
        if !restore_target {
            tc["metadata"]["annotations"] =
                json!({TIKV_VOLUMES_ANNOTATION: tikv_volumes_annotation(&by_store)});
        }
        upsert(&api, &plane.name, tc, &[TIKV_VOLUMES_ANNOTATION]).await?;
        if seed.grant_brfed {
            grant_brfed(plane, &seed.namespace).await?;
        }
        tracing::info!(plane = %plane.name, namespace = %seed.namespace, name = %seed.name, %az, volumes = volume_ids.len(), restore_target, "seeded");
        out.push(SeededPlane {
            plane: plane.name.clone(),
            az,
            store_ids: all_ids[index].clone(),
            volume_ids,
        });
    }
    Ok(out)
}

/// Seeds a TiDB cluster spanning `contexts` (all contexts of the kubeconfig when empty): a
/// `TidbCluster` per data plane with its stores (and the other planes' as peer stores) and the
/// EBS volumes of its stores in the emulator.
pub async fn seed_tidb_cluster(
    kubeconfig: &Path,
    contexts: &[String],
    s: &TidbClusterSeed,
) -> Result<Vec<SeededPlane>, SeedError> {
    seed(kubeconfig, contexts, s, false).await
}

/// Seeds restore targets: the same `TidbCluster` layout with `recoveryMode: true`, no stores in
/// status (TiKV does not run before its volumes exist) and no volumes.
pub async fn seed_restore_target(
    kubeconfig: &Path,
    contexts: &[String],
    s: &TidbClusterSeed,
) -> Result<Vec<SeededPlane>, SeedError> {
    seed(kubeconfig, contexts, s, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_planes_get_azs_by_their_number() {
        assert_eq!(default_az("us-west-2", "dp1", 5), "us-west-2a");
        assert_eq!(default_az("us-west-2", "dp3", 0), "us-west-2c");
        assert_eq!(default_az("us-west-2", "dp4", 0), "us-west-2a");
        assert_eq!(default_az("us-west-2", "east", 1), "us-west-2b");
    }

    #[test]
    fn store_ids_are_unique_across_planes_and_peers_are_the_other_planes() {
        let s = TidbClusterSeed::new("ns", "basic", "k").stores_per_plane(2);
        let all: Vec<Vec<u64>> = (0..3).map(|i| s.store_ids(i)).collect();
        assert_eq!(all, [vec![1, 2], vec![3, 4], vec![5, 6]]);
        let tc = tidb_cluster(&s, 1, &all, false);
        let own: Vec<_> = tc["status"]["tikv"]["stores"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let peers: Vec<_> = tc["status"]["tikv"]["peerStores"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(own, ["3", "4"]);
        assert_eq!(peers, ["1", "2", "5", "6"]);
        assert_eq!(tc["spec"]["tikv"]["replicas"], 2);
        assert_eq!(tc["metadata"]["labels"][TIDB_CLUSTER_LABEL], "k");
        let target = tidb_cluster(&s, 1, &all, true);
        assert_eq!(target["spec"]["recoveryMode"], true);
        assert!(target.get("status").is_none());
    }

    #[test]
    fn pv_names_look_like_uuids_and_are_stable() {
        let a = pv_name(&["k", "dp1", "1", "tikv"]);
        assert_eq!(a, pv_name(&["k", "dp1", "1", "tikv"]));
        assert_eq!(a.len(), "pvc-".len() + 36);
        assert_ne!(a, pv_name(&["k", "dp1", "2", "tikv"]));
    }
}
