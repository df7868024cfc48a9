//! The member-prefix metadata of an EBS backup (`clustermeta`, `backupmeta`, `restoremeta`), in the
//! exact JSON shape tidb-operator and BR exchange ("CloudSnapBackup"), plus the helpers that build it
//! from a `TidbCluster` and its volumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cloud::VolumeInfo;

/// Object written by the operator when execute starts.
pub const CLUSTERMETA: &str = "clustermeta";
/// Object written by BR right after the snapshots were requested.
pub const BACKUPMETA: &str = "backupmeta";
/// Object written after restore-volume.
pub const RESTOREMETA: &str = "restoremeta";
/// The only backup type restore accepts.
pub const FULL_BACKUP_TYPE: &str = "aws-ebs";
/// `type` of the TiKV data volume.
pub const DATA_DIR_TYPE: &str = "storage.data-dir";
/// Mount path of the TiKV data volume.
pub const DATA_MOUNT_PATH: &str = "/var/lib/tikv";

/// The whole document (`clustermeta` has no `cluster_info`/`region`, `backupmeta` adds them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudSnapBackup {
    /// Added by BR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_info: Option<ClusterInfo>,
    /// TiKV stores and their volumes.
    pub tikv: TikvMeta,
    /// PD replicas of this data plane.
    pub pd: Replicas,
    /// TiDB replicas of this data plane.
    pub tidb: Replicas,
    /// Kubernetes objects.
    pub kubernetes: KubernetesMeta,
    /// Always null.
    #[serde(default)]
    pub options: Value,
    /// Added by BR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `cluster_info` of `backupmeta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterInfo {
    /// TiDB version (semver with a leading `v`).
    pub cluster_version: String,
    /// Always `aws-ebs`.
    pub full_backup_type: String,
    /// The resolved ts read before the snapshots were taken.
    pub resolved_ts: u64,
    /// Component replicas.
    pub replicas: BTreeMap<String, u64>,
}

/// `tikv` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TikvMeta {
    /// Stores of the whole TiDB cluster (own + peer stores).
    pub replicas: u64,
    /// This data plane's stores.
    pub stores: Vec<StoreMeta>,
}

/// One store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoreMeta {
    /// Store id.
    pub store_id: u64,
    /// Its volumes, the data volume first.
    pub volumes: Vec<VolumeMeta>,
}

/// One volume of a store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VolumeMeta {
    /// Source EBS volume.
    pub volume_id: String,
    /// `storage.data-dir` for the data volume.
    #[serde(rename = "type")]
    pub volume_type: String,
    /// Written by the operator only (BR's struct has no such field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Filled by BR.
    #[serde(default)]
    pub snapshot_id: String,
    /// Filled by BR.
    #[serde(default)]
    pub volume_az: String,
    /// Filled by BR `--prepare`.
    #[serde(default)]
    pub restore_volume_id: String,
    /// BR field.
    #[serde(default)]
    pub status: String,
}

/// `pd` / `tidb` sections.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replicas {
    /// Replica count.
    pub replicas: u64,
}

/// `kubernetes` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubernetesMeta {
    /// TiKV PVCs.
    pub pvcs: Vec<Value>,
    /// Their PVs.
    pub pvs: Vec<Value>,
    /// The whole TidbCluster object.
    pub crd_tidb_cluster: Value,
    /// Always null.
    #[serde(default)]
    pub options: Value,
}

impl CloudSnapBackup {
    /// Every volume of every store, in order.
    pub fn volumes(&self) -> impl Iterator<Item = &VolumeMeta> {
        self.tikv.stores.iter().flat_map(|s| s.volumes.iter())
    }

    /// Snapshot ids (non-empty ones).
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.volumes()
            .filter(|v| !v.snapshot_id.is_empty())
            .map(|v| v.snapshot_id.clone())
            .collect()
    }

    /// The backed-up TidbCluster's `spec.tikv.replicas`.
    pub fn backup_tikv_replicas(&self) -> Option<i64> {
        self.kubernetes
            .crd_tidb_cluster
            .pointer("/spec/tikv/replicas")
            .and_then(Value::as_i64)
    }

    /// The backed-up TidbCluster's number of `spec.tikv.storageVolumes`.
    pub fn backup_storage_volume_count(&self) -> usize {
        storage_volume_count(&self.kubernetes.crd_tidb_cluster)
    }

    /// The backed-up TidbCluster's `spec.tiflash.replicas` (0 without TiFlash).
    pub fn backup_tiflash_replicas(&self) -> i64 {
        tiflash_replicas(&self.kubernetes.crd_tidb_cluster)
    }
}

/// Number of `spec.tikv.storageVolumes` of a TidbCluster.
pub fn storage_volume_count(tc: &Value) -> usize {
    tc.pointer("/spec/tikv/storageVolumes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// `spec.tiflash.replicas` of a TidbCluster, 0 when absent.
pub fn tiflash_replicas(tc: &Value) -> i64 {
    tc.pointer("/spec/tiflash/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Tag naming the federated TiDB cluster a volume belongs to.
pub const TAG_CLUSTER: &str = "sim.brfed.dev/tidb-cluster";
/// Tag naming the data plane of a volume.
pub const TAG_PLANE: &str = "sim.brfed.dev/data-plane";
/// Tag with the TiKV store id of a volume.
pub const TAG_STORE: &str = "sim.brfed.dev/store-id";
/// Tag with the TiKV volume name (`tikv` = data volume, else a `storageVolumes` name).
pub const TAG_VOLUME_NAME: &str = "sim.brfed.dev/volume";
/// Tag with the volume's mount path.
pub const TAG_MOUNT_PATH: &str = "sim.brfed.dev/mount-path";
/// PVC name tag written by the EBS CSI driver.
pub const TAG_PVC_NAME: &str = "kubernetes.io/created-for/pvc/name";
/// PVC namespace tag written by the EBS CSI driver.
pub const TAG_PVC_NAMESPACE: &str = "kubernetes.io/created-for/pvc/namespace";
/// PV name tag written by the EBS CSI driver.
pub const TAG_PV_NAME: &str = "kubernetes.io/created-for/pv/name";
/// Volume name of the TiKV data volume.
pub const DATA_VOLUME_NAME: &str = "tikv";
/// Annotation of a `TidbCluster` listing the EBS volumes of its TiKV stores in this data plane, as
/// JSON `{"<storeId>": ["vol-...", ...]}`. The local world has no core API, so no PVs to read the
/// volume ids from (what the real operator does): the seeder and restore write them here instead.
pub const TIKV_VOLUMES_ANNOTATION: &str = "sim.brfed.dev/tikv-volumes";

/// The volume ids of [`TIKV_VOLUMES_ANNOTATION`], `None` when absent or unreadable.
pub fn tikv_volume_ids(annotations: Option<&BTreeMap<String, String>>) -> Option<Vec<String>> {
    let text = annotations?.get(TIKV_VOLUMES_ANNOTATION)?;
    let by_store: BTreeMap<String, Vec<String>> = serde_json::from_str(text).ok()?;
    Some(by_store.into_values().flatten().collect())
}

/// The value of [`TIKV_VOLUMES_ANNOTATION`] for volume ids by store.
pub fn tikv_volumes_annotation(by_store: &BTreeMap<u64, Vec<String>>) -> String {
    serde_json::to_string(by_store).expect("a map of strings serializes")
}

/// Removes `metadata.managedFields` (and the server-side noise) from an object.
pub fn strip_object(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// Builds `clustermeta` for one data plane: `tc` is the TidbCluster object, `volumes` the EBS
/// volumes of its stores (tagged with [`TAG_STORE`]).
pub fn cluster_meta(tc: &Value, volumes: &[VolumeInfo]) -> Result<CloudSnapBackup, String> {
    let tc_name = tc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let tc_ns = tc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let own = store_ids(tc.pointer("/status/tikv/stores"));
    let peers = store_ids(tc.pointer("/status/tikv/peerStores"));
    if own.is_empty() {
        return Err(format!("TidbCluster {tc_ns}/{tc_name} has no TiKV stores"));
    }
    let mut stores = Vec::new();
    let mut pvcs = Vec::new();
    let mut pvs = Vec::new();
    for store_id in &own {
        let mut vols: Vec<&VolumeInfo> = volumes
            .iter()
            .filter(|v| {
                v.tags.get(TAG_STORE).and_then(|s| s.parse::<u64>().ok()) == Some(*store_id)
            })
            .collect();
        if vols.is_empty() {
            return Err(format!(
                "no EBS volume found for TiKV store {store_id} of {tc_ns}/{tc_name}"
            ));
        }
        // the data volume first, then the others by name
        vols.sort_by_key(|v| {
            let name = v.tags.get(TAG_VOLUME_NAME).cloned().unwrap_or_default();
            (name != DATA_VOLUME_NAME, name, v.id.clone())
        });
        let mut metas = Vec::new();
        for v in vols {
            let is_data = v
                .tags
                .get(TAG_VOLUME_NAME)
                .is_none_or(|n| n == DATA_VOLUME_NAME);
            let mount_path = v
                .tags
                .get(TAG_MOUNT_PATH)
                .cloned()
                .unwrap_or_else(|| DATA_MOUNT_PATH.to_string());
            metas.push(VolumeMeta {
                volume_id: v.id.clone(),
                volume_type: if is_data {
                    DATA_DIR_TYPE.to_string()
                } else {
                    String::new()
                },
                mount_path: Some(mount_path),
                ..VolumeMeta::default()
            });
            let (pvc, pv) = pvc_and_pv(v, tc_name, tc_ns, *store_id);
            pvcs.push(pvc);
            pvs.push(pv);
        }
        stores.push(StoreMeta {
            store_id: *store_id,
            volumes: metas,
        });
    }
    let replicas = |path: &str| tc.pointer(path).and_then(Value::as_u64).unwrap_or(0);
    Ok(CloudSnapBackup {
        cluster_info: None,
        tikv: TikvMeta {
            replicas: (own.len() + peers.len()) as u64,
            stores,
        },
        pd: Replicas {
            replicas: replicas("/spec/pd/replicas"),
        },
        tidb: Replicas {
            replicas: replicas("/spec/tidb/replicas"),
        },
        kubernetes: KubernetesMeta {
            pvcs,
            pvs,
            crd_tidb_cluster: strip_object(tc),
            options: Value::Null,
        },
        options: Value::Null,
        region: None,
    })
}

/// What BR adds to `clustermeta` to make `backupmeta`.
#[derive(Debug, Clone)]
pub struct SnapshotsTaken {
    /// TiDB version.
    pub cluster_version: String,
    /// Resolved ts read before snapshotting.
    pub resolved_ts: u64,
    /// Snapshot id and AZ per source volume id.
    pub snapshots: BTreeMap<String, (String, String)>,
    /// Region.
    pub region: String,
}

/// Builds `backupmeta` from `clustermeta`.
pub fn backup_meta(cluster: &CloudSnapBackup, taken: &SnapshotsTaken) -> CloudSnapBackup {
    let mut meta = cluster.clone();
    for store in &mut meta.tikv.stores {
        for v in &mut store.volumes {
            v.mount_path = None;
            if let Some((snap, az)) = taken.snapshots.get(&v.volume_id) {
                v.snapshot_id = snap.clone();
                v.volume_az = az.clone();
            }
        }
    }
    let own_stores = meta.tikv.stores.len() as u64;
    meta.cluster_info = Some(ClusterInfo {
        cluster_version: taken.cluster_version.clone(),
        full_backup_type: FULL_BACKUP_TYPE.to_string(),
        resolved_ts: taken.resolved_ts,
        replicas: BTreeMap::from([
            ("pd".to_string(), meta.pd.replicas),
            ("tidb".to_string(), meta.tidb.replicas),
            ("tikv".to_string(), own_stores),
        ]),
    });
    meta.region = Some(taken.region.clone());
    meta
}

/// Builds `restoremeta`: `backupmeta` plus the restored volume id of every source volume.
pub fn restore_meta(
    backup: &CloudSnapBackup,
    restored: &BTreeMap<String, String>,
) -> CloudSnapBackup {
    let mut meta = backup.clone();
    for store in &mut meta.tikv.stores {
        for v in &mut store.volumes {
            if let Some(new_id) = restored.get(&v.volume_id) {
                v.restore_volume_id = new_id.clone();
            }
        }
    }
    meta
}

fn store_ids(stores: Option<&Value>) -> Vec<u64> {
    let mut ids: Vec<u64> = stores
        .and_then(Value::as_object)
        .map(|m| m.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

fn pvc_and_pv(v: &VolumeInfo, tc_name: &str, tc_ns: &str, store_id: u64) -> (Value, Value) {
    let vol_name = v
        .tags
        .get(TAG_VOLUME_NAME)
        .map_or(DATA_VOLUME_NAME, String::as_str);
    // The CSI driver's tag names the PVC (on a restored volume the operator's does, the same way).
    let pvc_name = v
        .tags
        .get(TAG_PVC_NAME)
        .filter(|n| n.starts_with(&format!("{vol_name}-{tc_name}-tikv-")))
        .cloned()
        .unwrap_or_else(|| format!("{vol_name}-{tc_name}-tikv-{store_id}"));
    let pv_name = v
        .tags
        .get(TAG_PV_NAME)
        .cloned()
        .unwrap_or_else(|| format!("pvc-{}", v.id.trim_start_matches("vol-")));
    let size = format!("{}Gi", v.size_gib);
    let labels = json!({
        "app.kubernetes.io/component": "tikv",
        "app.kubernetes.io/instance": tc_name,
        "app.kubernetes.io/managed-by": "tidb-operator",
        "app.kubernetes.io/name": "tidb-cluster",
        "tidb.pingcap.com/store-id": store_id.to_string(),
    });
    let pvc = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name,
            "namespace": tc_ns,
            "labels": labels,
            "annotations": {"pv.kubernetes.io/bind-completed": "yes", "volume.kubernetes.io/selected-node": format!("node-{}", v.az)},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "storageClassName": "gp3",
            "volumeMode": "Filesystem",
            "volumeName": pv_name,
        },
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}},
    });
    let pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv_name,
            "labels": labels,
            "annotations": {"pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com", "temporary/volume-id": v.id},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": size},
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": tc_ns, "name": pvc_name},
            "csi": {"driver": "ebs.csi.aws.com", "fsType": "ext4", "volumeHandle": v.id},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": [v.az]}
            ]}]}},
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "gp3",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    });
    (pvc, pv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(id: &str, store: u64, name: &str) -> VolumeInfo {
        let mut tags = BTreeMap::from([
            (TAG_STORE.to_string(), store.to_string()),
            (TAG_VOLUME_NAME.to_string(), name.to_string()),
        ]);
        if name != DATA_VOLUME_NAME {
            tags.insert(TAG_MOUNT_PATH.to_string(), format!("/var/lib/{name}"));
        }
        VolumeInfo {
            id: id.to_string(),
            az: "us-west-2a".to_string(),
            size_gib: 10,
            snapshot_id: None,
            state: "available".to_string(),
            tags,
        }
    }

    fn tc() -> Value {
        json!({
            "apiVersion": "pingcap.com/v1alpha1", "kind": "TidbCluster",
            "metadata": {"name": "basic", "namespace": "ns", "managedFields": [{"manager": "x"}]},
            "spec": {"pd": {"replicas": 3}, "tidb": {"replicas": 2}, "tikv": {"replicas": 2}},
            "status": {"tikv": {
                "stores": {"1": {"id": "1"}, "2": {"id": "2"}},
                "peerStores": {"4": {"id": "4"}, "5": {"id": "5"}, "6": {"id": "6"}},
            }},
        })
    }

    #[test]
    fn clustermeta_has_the_exact_keys_and_counts_peer_stores() {
        let vols = [
            volume("vol-b", 1, "raft"),
            volume("vol-a", 1, "tikv"),
            volume("vol-c", 2, "tikv"),
        ];
        let meta = cluster_meta(&tc(), &vols).unwrap();
        let json = serde_json::to_value(&meta).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["kubernetes", "options", "pd", "tidb", "tikv"]);
        assert_eq!(json["tikv"]["replicas"], 5);
        assert_eq!(json["pd"]["replicas"], 3);
        let first = &json["tikv"]["stores"][0];
        assert_eq!(first["store_id"], 1);
        assert_eq!(first["volumes"][0]["volume_id"], "vol-a");
        assert_eq!(first["volumes"][0]["type"], "storage.data-dir");
        assert_eq!(first["volumes"][0]["mount_path"], "/var/lib/tikv");
        assert_eq!(first["volumes"][1]["type"], "");
        assert_eq!(
            json["kubernetes"]["pvs"][0]["metadata"]["annotations"]["temporary/volume-id"],
            "vol-a"
        );
        assert!(
            json["kubernetes"]["crd_tidb_cluster"]["metadata"]
                .get("managedFields")
                .is_none()
        );
        assert!(json["kubernetes"]["options"].is_null());
    }

    #[test]
    fn backupmeta_adds_cluster_info_snapshots_and_region_and_restoremeta_adds_volumes() {
        let cluster = cluster_meta(
            &tc(),
            &[volume("vol-a", 1, "tikv"), volume("vol-c", 2, "tikv")],
        )
        .unwrap();
        let taken = SnapshotsTaken {
            cluster_version: "v7.5.1".into(),
            resolved_ts: 449_000_000_000_000_001,
            snapshots: BTreeMap::from([
                (
                    "vol-a".to_string(),
                    ("snap-a".to_string(), "us-west-2a".to_string()),
                ),
                (
                    "vol-c".to_string(),
                    ("snap-c".to_string(), "us-west-2a".to_string()),
                ),
            ]),
            region: "us-west-2".into(),
        };
        let backup = backup_meta(&cluster, &taken);
        let json = serde_json::to_value(&backup).unwrap();
        assert_eq!(json["cluster_info"]["full_backup_type"], "aws-ebs");
        assert_eq!(
            json["cluster_info"]["resolved_ts"],
            449_000_000_000_000_001_u64
        );
        assert_eq!(json["region"], "us-west-2");
        assert_eq!(
            json["tikv"]["stores"][1]["volumes"][0]["snapshot_id"],
            "snap-c"
        );
        assert!(
            json["tikv"]["stores"][0]["volumes"][0]
                .get("mount_path")
                .is_none()
        );
        assert_eq!(backup.snapshot_ids(), ["snap-a", "snap-c"]);
        let restored = restore_meta(
            &backup,
            &BTreeMap::from([("vol-a".to_string(), "vol-new".to_string())]),
        );
        assert_eq!(
            restored.tikv.stores[0].volumes[0].restore_volume_id,
            "vol-new"
        );
        let by_store = BTreeMap::from([
            (2_u64, vec!["vol-c".to_string()]),
            (1, vec!["vol-a".into(), "vol-b".into()]),
        ]);
        let annotations = BTreeMap::from([(
            TIKV_VOLUMES_ANNOTATION.to_string(),
            tikv_volumes_annotation(&by_store),
        )]);
        assert_eq!(
            tikv_volume_ids(Some(&annotations)).unwrap(),
            ["vol-a", "vol-b", "vol-c"]
        );
        assert_eq!(tikv_volume_ids(None), None);
        let round: CloudSnapBackup =
            serde_json::from_value(serde_json::to_value(&restored).unwrap()).unwrap();
        assert_eq!(round, restored);
        assert_eq!(round.backup_tikv_replicas(), Some(2));
    }
}
