//! Snapshots brfed knows, and orphans: every snapshot of a finished federated backup is tagged
//! with the backup (`brfed.dev/volumebackup = {namespace}/{name}`) and its data plane; a tagged
//! snapshot whose backup is no longer in the catalog is an orphan (a `Retain` deletion, a
//! catalog record removed by hand, a deletion that could not finish). Orphans are reported;
//! they are deleted only when asked, paced like every brfed snapshot deletion.

use crate::catalog::{Catalog, VolumeBackupDoc};
use crate::delete::{Pacing, SnapshotProgress, delete_paced, snapshot_ids};
use crate::error::StepError;
use crate::ports::{ObjectStore, Volumes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tag key: the federated backup a snapshot belongs to, `{namespace}/{name}`.
pub const TAG_VOLUME_BACKUP: &str = "brfed.dev/volumebackup";
/// Tag key: the data plane (`k8sClusterName`) whose volume the snapshot is of.
pub const TAG_CLUSTER: &str = "brfed.dev/k8s-cluster";

/// Tags the snapshots of every member of `doc` (from each member's `backupmeta`) with the
/// backup and the member's data plane. Returns how many were tagged. A member without
/// `backupmeta` has no snapshots to tag.
pub async fn tag_backup_snapshots<S: ObjectStore, V: Volumes>(
    store: &S,
    volumes: &V,
    doc: &VolumeBackupDoc,
) -> Result<usize, StepError> {
    let req = doc.request();
    let owner = format!("{}/{}", req.metadata.namespace, req.metadata.name);
    let mut n = 0;
    for c in &req.spec.clusters {
        let key = format!("{}/backupmeta", req.member_prefix(&c.k8s_cluster_name));
        let Some(meta) = store.get_json(req.bucket(), &key).await? else {
            continue;
        };
        let ids = snapshot_ids(&meta.value);
        volumes
            .tag_snapshots(
                &ids,
                &[
                    (TAG_VOLUME_BACKUP.to_string(), owner.clone()),
                    (TAG_CLUSTER.to_string(), c.k8s_cluster_name.clone()),
                ],
            )
            .await?;
        n += ids.len();
    }
    Ok(n)
}

/// The orphans of one former backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanGroup {
    /// `{namespace}/{name}` from the tag.
    pub backup: String,
    /// Its snapshots that still exist.
    pub snapshots: Vec<String>,
}

/// Tagged snapshots whose backup is not in the catalog, grouped by backup.
pub async fn find<S: ObjectStore, V: Volumes>(
    store: &S,
    catalog_bucket: &str,
    volumes: &V,
) -> Result<Vec<OrphanGroup>, StepError> {
    let mut by_backup: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, owner) in volumes.tagged_snapshots(TAG_VOLUME_BACKUP).await? {
        by_backup.entry(owner).or_default().push(id);
    }
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(store, catalog_bucket);
    let mut out = Vec::new();
    for (owner, mut snapshots) in by_backup {
        let known = match owner.split_once('/') {
            Some((ns, name)) => catalog.get(ns, name).await?.is_some(),
            None => false,
        };
        if !known {
            snapshots.sort();
            out.push(OrphanGroup {
                backup: owner,
                snapshots,
            });
        }
    }
    Ok(out)
}

/// Deletes the snapshots of `groups`, at most `per_second` calls per second, throttling backed
/// off, `NotFound` = done.
pub async fn delete<V: Volumes>(
    volumes: &V,
    groups: &[OrphanGroup],
    per_second: f64,
) -> Result<SnapshotProgress, StepError> {
    let ids: Vec<String> = groups.iter().flat_map(|g| g.snapshots.clone()).collect();
    let pacing = Pacing {
        budget: std::time::Duration::MAX,
        ..Pacing::default()
    };
    let start = SnapshotProgress {
        cursor: 0,
        done: false,
        deleted: 0,
        not_found: 0,
        throttled: 0,
    };
    delete_paced(volumes, &ids, per_second, pacing, start).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::backup_key;
    use crate::testing::{FakeStore, FakeVolumes};
    use serde_json::json;

    fn doc(name: &str) -> VolumeBackupDoc {
        serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": name, "namespace": "br"},
            "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"}],
                     "template": {"s3": {"provider": "aws", "bucket": "data", "prefix": name}}},
            "status": {"phase": "Complete"}, "brfed": {"execution": name}}))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn tagged_snapshots_of_a_backup_gone_from_the_catalog_are_orphans() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        for (name, snaps) in [("kept", ["s1", "s2"]), ("gone", ["s3", "s4"])] {
            ec2.snapshots
                .lock()
                .unwrap()
                .extend(snaps.iter().map(|s| s.to_string()));
            let volumes: Vec<_> = snaps.iter().map(|s| json!({"snapshot_id": s})).collect();
            store.put(
                "data",
                &format!("{name}-dp1/backupmeta"),
                json!({"tikv": {"stores": [{"volumes": volumes}]}}),
            );
            let d = doc(name);
            store.put(
                "catalog",
                &backup_key("br", name),
                serde_json::to_value(&d).unwrap(),
            );
            assert_eq!(tag_backup_snapshots(&store, &ec2, &d).await.unwrap(), 2);
        }
        ec2.snapshots.lock().unwrap().insert("untagged".into());
        assert!(find(&store, "catalog", &ec2).await.unwrap().is_empty());

        store.remove("catalog", &backup_key("br", "gone"));
        let orphans = find(&store, "catalog", &ec2).await.unwrap();
        assert_eq!(
            orphans,
            vec![OrphanGroup {
                backup: "br/gone".into(),
                snapshots: vec!["s3".into(), "s4".into()]
            }]
        );
        let p = delete(&ec2, &orphans, 5.0).await.unwrap();
        assert_eq!((p.deleted, p.done), (2, true));
        assert!(find(&store, "catalog", &ec2).await.unwrap().is_empty());
        assert_eq!(
            ec2.snapshots.lock().unwrap().len(),
            3,
            "s1, s2, untagged stay"
        );
    }
}
