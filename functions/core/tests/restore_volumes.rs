//! Which volumes a restore's cleanup may delete, on in-memory fakes: only the volumes it proved
//! its own at `VolumeComplete` (and tagged), read again right before each delete; never an
//! earlier restore's, never one it cannot prove.

use brfed_core::StepError;
use brfed_core::backup::steps::StartInput;
use brfed_core::ports::{SnapshotDeletion, SnapshotInfo, VolumeFacts, Volumes};
use brfed_core::restore::judge::RestoreAwait;
use brfed_core::restore::member::rcond;
use brfed_core::restore::status::{VolumeRestoreDoc, restore_key};
use brfed_core::restore::steps::{
    RestoreEnv, RestoreObserveInput, RestoreStartOutput, RestoreStepInput, restore_finalize,
    restore_observe, restore_start,
};
use brfed_core::tags::{TAG_CLUSTER, TAG_STACK, TAG_VOLUME_RESTORE};
use brfed_core::testing::{FakePlanes, FakeStore, FakeVolumes, fake_restore_env, restore_world};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const TARGET_NS: &str = "tidb-restore";
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];

/// The data planes and the backup a restore starts from ([`restore_world`]).
fn world() -> (FakePlanes, FakeStore) {
    restore_world(DATA, TARGET_NS)
}

async fn start<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    name: &str,
) -> RestoreStartOutput {
    let clusters: Vec<Value> = PLANES
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": TARGET_NS, "azName": format!("az-{p}"),
                        "backup": {"s3": {"provider": "aws", "bucket": DATA, "prefix": format!("p-{p}")}}}))
        .collect();
    let input = json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
        "metadata": {"name": name, "namespace": "br"},
        "spec": {"clusters": clusters, "template": {}},
        "options": {"cleanupOnFailure": true}});
    restore_start(
        e,
        StartInput {
            input,
            execution: format!("arn:aws:states:us-west-2:1:execution:volume-restore:{name}"),
        },
    )
    .await
    .unwrap()
}

fn volume(id: &str, snapshot: &str, az: &str, at: DateTime<Utc>) -> VolumeFacts {
    VolumeFacts {
        id: id.into(),
        snapshot_id: Some(snapshot.into()),
        availability_zone: az.into(),
        create_time: Some(at),
        state: "available".into(),
        // as BR tags a volume it restores: no tag names the restore, namespace or data plane
        tags: BTreeMap::from([
            ("TiDBCluster-BR".to_string(), "new".to_string()),
            (
                "snapshot/createdFromSnapshotId".to_string(),
                snapshot.to_string(),
            ),
        ]),
    }
}

/// Plays `plane`'s member `Restore` of restore `name` making its volumes (`vol-{name}-{plane}-k`,
/// now); with `complete`, it writes `restoremeta` and reports `VolumeComplete`, else it fails.
fn make_volumes(
    planes: &FakePlanes,
    store: &FakeStore,
    ec2: &FakeVolumes,
    name: &str,
    plane: &str,
    complete: bool,
) -> Vec<String> {
    let ids: Vec<String> = (0..2).map(|k| format!("vol-{name}-{plane}-{k}")).collect();
    for (k, id) in ids.iter().enumerate() {
        ec2.volumes.lock().unwrap().insert(
            id.clone(),
            volume(
                id,
                &format!("snap-{plane}-{k}"),
                &format!("az-{plane}"),
                Utc::now(),
            ),
        );
    }
    let member = format!("fed-{name}");
    if complete {
        let vols: Vec<Value> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| json!({"volume_id": format!("vol-src-{plane}-{k}"), "snapshot_id": format!("snap-{plane}-{k}"), "restore_volume_id": id}))
            .collect();
        store.put(
            DATA,
            &format!("p-{plane}/restoremeta"),
            json!({"tikv": {"stores": [{"store_id": 1, "volumes": vols}]}}),
        );
        planes.add_restore_condition(plane, TARGET_NS, &member, rcond::VOLUME_COMPLETE);
    } else {
        planes.add_restore_condition(plane, TARGET_NS, &member, rcond::FAILED);
    }
    ids
}

async fn observe<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    out: &RestoreStartOutput,
) -> String {
    let input = RestoreObserveInput {
        restore: out.restore.clone(),
        awaited: RestoreAwait::VolumesRestored,
        phase: out.phase.clone(),
        data_member: None,
    };
    restore_observe(e, input).await.unwrap().verdict
}

async fn fail<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    out: &RestoreStartOutput,
) -> VolumeRestoreDoc {
    let input: RestoreStepInput = serde_json::from_value(json!({
        "restore": out.restore,
        "failure": {"Error": "MemberFailed", "Cause": "simulated"},
    }))
    .unwrap();
    restore_finalize(e, input).await.unwrap();
    doc(e.base.store, &out.restore.name)
}

fn doc(store: &FakeStore, name: &str) -> VolumeRestoreDoc {
    serde_json::from_value(store.get(CATALOG, &restore_key("br", name)).unwrap()).unwrap()
}

fn existing(ec2: &FakeVolumes) -> BTreeSet<String> {
    ec2.volumes.lock().unwrap().keys().cloned().collect()
}

fn deleted(ec2: &FakeVolumes) -> BTreeSet<String> {
    ec2.volume_log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("delete ").map(String::from))
        .collect()
}

#[tokio::test]
async fn of_two_restores_in_turn_into_one_target_each_cleanup_deletes_only_its_own_volumes() {
    let (planes, store) = world();
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    // A volume made from the same snapshot long ago (a restore from before brfed tagged
    // volumes, or made by hand): never this restore's.
    let old = volume(
        "vol-old",
        "snap-dp1-0",
        "az-dp1",
        "2025-01-01T00:00:00Z".parse().unwrap(),
    );
    ec2.volumes.lock().unwrap().insert(old.id.clone(), old);

    // The first restore makes its volumes everywhere; at VolumeComplete they are claimed.
    let r1 = start(&e, "r1").await;
    let mut first = BTreeSet::new();
    for p in PLANES {
        first.extend(make_volumes(&planes, &store, &ec2, "r1", p, true));
    }
    assert_eq!(observe(&e, &r1).await, "met");
    for id in &first {
        let tags = &ec2.volumes.lock().unwrap()[id].tags;
        assert_eq!(
            tags.get(TAG_STACK).map(String::as_str),
            Some(CATALOG),
            "{id}"
        );
        assert_eq!(
            tags.get(TAG_VOLUME_RESTORE).map(String::as_str),
            Some("br/r1")
        );
        assert!(tags.contains_key(TAG_CLUSTER));
    }
    let claims = doc(&store, "r1").brfed.volume_claims;
    assert_eq!(claims.len(), 3, "{claims:?}");
    assert!(claims.iter().all(|c| c.claimed == 2 && c.refused.is_none()));
    // A later observation claims nothing again.
    let tags_before = ec2.volume_log.lock().unwrap().len();
    observe(&e, &r1).await;
    assert_eq!(ec2.volume_log.lock().unwrap().len(), tags_before);

    // The second restore into the same namespace and TidbCluster names: dp1 and dp2 make their
    // volumes, dp3 fails after making its own but before writing restoremeta (which still
    // lists the first restore's volumes).
    let r2 = start(&e, "r2").await;
    let mut second = BTreeSet::new();
    for p in ["dp1", "dp2"] {
        second.extend(make_volumes(&planes, &store, &ec2, "r2", p, true));
    }
    let stuck = make_volumes(&planes, &store, &ec2, "r2", "dp3", false);
    assert_eq!(observe(&e, &r2).await, "failed");
    let d = fail(&e, &r2).await;

    assert_eq!(
        deleted(&ec2),
        second,
        "deleted exactly its own proved volumes"
    );
    let have = existing(&ec2);
    assert!(
        first.is_subset(&have),
        "the first restore's volumes survive"
    );
    assert!(have.contains("vol-old"));
    assert!(stuck.iter().all(|v| have.contains(v)), "unproved: left");
    let by_plane: BTreeMap<&str, _> = d
        .brfed
        .leftovers
        .iter()
        .map(|l| (l.k8s_cluster_name.as_str(), l))
        .collect();
    for p in ["dp1", "dp2"] {
        let l = by_plane[p];
        let listed: BTreeSet<String> = l.volumes.iter().cloned().collect();
        assert_eq!(
            listed,
            second
                .iter()
                .filter(|v| v.contains(p))
                .cloned()
                .collect::<BTreeSet<_>>(),
            "{p}: {l:?}"
        );
        assert!(l.unconfirmed_volumes.is_empty(), "{p}: {l:?}");
    }
    let l3 = by_plane["dp3"];
    assert!(l3.volumes.is_empty(), "{l3:?}");
    assert_eq!(l3.unconfirmed_volumes, stuck, "{l3:?}");
    let report = serde_json::to_string(&d.brfed.leftovers).unwrap();
    for id in first.iter().chain(["vol-old".to_string()].iter()) {
        assert!(!report.contains(id.as_str()), "{id} in {report}");
    }
}

#[tokio::test]
async fn no_volume_is_claimed_while_another_restore_of_the_backup_makes_volumes_in_the_same_az() {
    let (planes, store) = world();
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    let r = start(&e, "r1").await;
    // Someone else restores dp1's backup into the same AZ meanwhile.
    let theirs = volume("vol-theirs", "snap-dp1-0", "az-dp1", Utc::now());
    ec2.volumes
        .lock()
        .unwrap()
        .insert(theirs.id.clone(), theirs);
    let mut mine = BTreeMap::new();
    for p in PLANES {
        mine.insert(p, make_volumes(&planes, &store, &ec2, "r1", p, true));
    }
    observe(&e, &r).await;
    let claims = doc(&store, "r1").brfed.volume_claims;
    let dp1 = claims.iter().find(|c| c.k8s_cluster_name == "dp1").unwrap();
    assert_eq!(dp1.claimed, 0);
    assert!(
        dp1.refused.as_deref().unwrap().contains("vol-theirs"),
        "{dp1:?}"
    );
    for id in &mine["dp1"] {
        assert!(
            !ec2.volumes.lock().unwrap()[id]
                .tags
                .contains_key(TAG_VOLUME_RESTORE)
        );
    }
    planes.add_restore_condition("dp2", TARGET_NS, "fed-r1", rcond::FAILED);
    let d = fail(&e, &r).await;
    let l1 = &d.brfed.leftovers[0];
    assert!(l1.volumes.is_empty(), "{l1:?}");
    let unconfirmed: BTreeSet<&str> = l1.unconfirmed_volumes.iter().map(String::as_str).collect();
    assert_eq!(
        unconfirmed,
        ["vol-r1-dp1-0", "vol-r1-dp1-1", "vol-theirs"]
            .into_iter()
            .collect()
    );
    assert!(
        l1.notes.iter().any(|n| n.contains("could not be proved")),
        "{l1:?}"
    );
    let gone = deleted(&ec2);
    assert!(
        gone.iter().all(|v| !v.contains("dp1") && v != "vol-theirs"),
        "{gone:?}"
    );
    assert_eq!(gone.len(), 4, "dp2's and dp3's volumes: {gone:?}");
}

/// EC2 whose answer to `describe_volume` (the read right before a delete) shows one volume
/// retagged since the report was made.
struct Retagged {
    inner: FakeVolumes,
    id: String,
    tags: Mutex<Option<(String, String)>>,
}

impl Volumes for Retagged {
    async fn delete_volume(&self, id: &str) -> Result<bool, StepError> {
        self.inner.delete_volume(id).await
    }
    async fn delete_snapshot(&self, id: &str) -> Result<SnapshotDeletion, StepError> {
        self.inner.delete_snapshot(id).await
    }
    async fn tag_snapshots(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        self.inner.tag_snapshots(ids, tags).await
    }
    async fn describe_snapshots(&self, ids: &[String]) -> Result<Vec<SnapshotInfo>, StepError> {
        self.inner.describe_snapshots(ids).await
    }
    async fn snapshots_tagged(&self, key: &str) -> Result<Vec<SnapshotInfo>, StepError> {
        self.inner.snapshots_tagged(key).await
    }
    async fn volumes_from_snapshots(
        &self,
        snapshots: &[String],
    ) -> Result<Vec<VolumeFacts>, StepError> {
        self.inner.volumes_from_snapshots(snapshots).await
    }
    async fn describe_volume(&self, id: &str) -> Result<Option<VolumeFacts>, StepError> {
        let mut v = self.inner.describe_volume(id).await?;
        if id == self.id
            && let (Some(v), Some((k, val))) = (v.as_mut(), self.tags.lock().unwrap().clone())
        {
            v.tags.insert(k, val);
        }
        Ok(v)
    }
    async fn tag_volumes(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> Result<(), StepError> {
        self.inner.tag_volumes(ids, tags).await
    }
}

#[tokio::test]
async fn the_cleanup_reads_each_volume_again_and_leaves_one_no_longer_its_own() {
    let (planes, store) = world();
    let ec2 = Retagged {
        inner: FakeVolumes::default(),
        id: "vol-r1-dp1-0".into(),
        tags: Mutex::new(None),
    };
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    let r = start(&e, "r1").await;
    for p in PLANES {
        make_volumes(&planes, &store, &ec2.inner, "r1", p, true);
    }
    observe(&e, &r).await;
    *ec2.tags.lock().unwrap() = Some((TAG_VOLUME_RESTORE.into(), "br/someone-else".into()));
    let d = fail(&e, &r).await;
    assert!(existing(&ec2.inner).contains("vol-r1-dp1-0"));
    assert!(!deleted(&ec2.inner).contains("vol-r1-dp1-0"));
    assert_eq!(deleted(&ec2.inner).len(), 5);
    let l1 = &d.brfed.leftovers[0];
    assert_eq!(l1.unconfirmed_volumes, vec!["vol-r1-dp1-0".to_string()]);
    assert_eq!(l1.volumes, vec!["vol-r1-dp1-1".to_string()]);
    assert!(
        l1.cleaned
            .iter()
            .any(|c| c.contains("left volume vol-r1-dp1-0")),
        "{l1:?}"
    );
}
