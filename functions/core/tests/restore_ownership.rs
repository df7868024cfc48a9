//! What a restore may touch, on in-memory fakes: one restore of a name at a time; its cleanup
//! deletes only member `Restore`s of its own execution, and only the volumes it proved its own at
//! `VolumeComplete` (and tagged), read again right before each delete: never an earlier
//! restore's, never one it cannot prove.

use brfed_core::StepError;
use brfed_core::backup::steps::StartInput;
use brfed_core::catalog::CatalogDoc;
use brfed_core::member::MemberRef;
use brfed_core::ports::{
    DataPlanes, MemberKind, SnapshotDeletion, SnapshotInfo, VolumeFacts, Volumes,
};
use brfed_core::restore::judge::RestoreAwait;
use brfed_core::restore::member::rcond;
use brfed_core::restore::status::{VolumeRestoreDoc, restore_key};
use brfed_core::restore::steps;
use brfed_core::restore::steps::{
    RestoreEnv, RestoreObserveInput, RestoreStartOutput, RestoreStepInput,
};
use brfed_core::tags::{TAG_CLUSTER, TAG_STACK, TAG_VOLUME_RESTORE};
use brfed_core::testing::{FakePlanes, FakeStore, FakeVolumes, RestoreFakes, restore_request};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const TARGET_NS: &str = "tidb-restore";
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];

fn exec(name: &str) -> String {
    format!("arn:aws:states:us-west-2:123456789012:execution:volume-restore:{name}")
}

/// The data planes and the backup a restore starts from, and EC2 ([`RestoreFakes`]), with the
/// plays of these tests.
struct World {
    fakes: RestoreFakes,
}

impl World {
    fn new() -> Self {
        Self {
            fakes: RestoreFakes::new(DATA, TARGET_NS, CATALOG),
        }
    }

    fn doc(&self, name: &str) -> VolumeRestoreDoc {
        record(&self.fakes.store, name)
    }

    /// Replaces `plane`'s member `Restore` `fed-r1` by `obj`, as someone else could.
    async fn replace_member(&self, plane: &str, obj: &Value) {
        let member = MemberRef {
            k8s_cluster_name: plane.into(),
            tc_name: "basic".into(),
            tc_namespace: TARGET_NS.into(),
            backup_name: "fed-r1".into(),
        };
        self.fakes
            .planes
            .delete_member(MemberKind::Restore, &member)
            .await
            .unwrap();
        self.fakes
            .planes
            .create_member(MemberKind::Restore, plane, obj)
            .await
            .unwrap();
    }

    /// Plays `plane`'s member `Restore` of restore `name` making its volumes
    /// (`vol-{name}-{plane}-k`, now); with `complete`, it writes `restoremeta` and reports
    /// `VolumeComplete`, else it fails.
    fn make_volumes(&self, name: &str, plane: &str, complete: bool) -> Vec<String> {
        let ids: Vec<String> = (0..2).map(|k| format!("vol-{name}-{plane}-{k}")).collect();
        for (k, id) in ids.iter().enumerate() {
            let snapshot = format!("snap-{plane}-{k}");
            self.add_volume(volume(id, &snapshot, &format!("az-{plane}"), Utc::now()));
        }
        let member = format!("fed-{name}");
        if complete {
            let vols: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(k, id)| json!({"volume_id": format!("vol-src-{plane}-{k}"), "snapshot_id": format!("snap-{plane}-{k}"), "restore_volume_id": id}))
                .collect();
            self.fakes.store.put(
                DATA,
                &format!("p-{plane}/restoremeta"),
                json!({"tikv": {"stores": [{"store_id": 1, "volumes": vols}]}}),
            );
            self.fakes.planes.add_restore_condition(
                plane,
                TARGET_NS,
                &member,
                rcond::VOLUME_COMPLETE,
            );
        } else {
            self.fakes
                .planes
                .add_restore_condition(plane, TARGET_NS, &member, rcond::FAILED);
        }
        ids
    }

    fn add_volume(&self, v: VolumeFacts) {
        self.fakes
            .ec2
            .volumes
            .lock()
            .unwrap()
            .insert(v.id.clone(), v);
    }

    /// The tags of volume `id`, which must exist.
    fn volume_tags(&self, id: &str) -> BTreeMap<String, String> {
        self.fakes.ec2.volumes.lock().unwrap()[id].tags.clone()
    }

    fn existing(&self) -> BTreeSet<String> {
        self.fakes
            .ec2
            .volumes
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn deleted(&self) -> BTreeSet<String> {
        self.fakes
            .ec2
            .volume_log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("delete ").map(String::from))
            .collect()
    }
}

/// Starts restore `name` by `execution`, with `cleanupOnFailure` as given.
async fn start<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    name: &str,
    execution: &str,
    cleanup: bool,
) -> Result<RestoreStartOutput, StepError> {
    steps::start(
        e,
        StartInput {
            input: restore_request(name, DATA, TARGET_NS, cleanup),
            execution: execution.into(),
        },
    )
    .await
}

/// Restore `name` by its own execution, with `cleanupOnFailure`, started.
async fn started<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    name: &str,
) -> RestoreStartOutput {
    start(e, name, &exec(name), true)
        .await
        .expect("the restore starts")
}

/// The input of the steps after a member failed.
fn after_failure(out: &RestoreStartOutput) -> RestoreStepInput {
    serde_json::from_value(json!({
        "restore": out.restore,
        "failure": {"Error": "MemberFailed", "Cause": "simulated"},
    }))
    .unwrap()
}

/// The verdict of one observation while the volumes are restored.
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
    steps::observe(e, input).await.unwrap().verdict
}

/// Finalizes the restore after a member failed (its cleanup runs); returns its record.
async fn fail<V: Volumes>(
    e: &RestoreEnv<'_, FakePlanes, FakeStore, V>,
    out: &RestoreStartOutput,
) -> VolumeRestoreDoc {
    steps::finalize(e, after_failure(out)).await.unwrap();
    record(e.base.store, &out.restore.name)
}

/// The catalog's record of restore `br/{name}`, which must be there.
fn record(store: &FakeStore, name: &str) -> VolumeRestoreDoc {
    let stored = store.get(CATALOG, &restore_key("br", name));
    serde_json::from_value(stored.expect("the restore's record")).unwrap()
}

/// A member `Restore` `fed-r1` made by `execution` for a federated restore of `namespace`.
fn member(execution: &str, namespace: &str) -> Value {
    json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Restore",
        "metadata": {"name": "fed-r1", "namespace": TARGET_NS,
                     "annotations": {"brfed.io/execution": execution, "brfed.io/federation-namespace": namespace}},
        "spec": {}})
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

// One restore of a name at a time.

#[tokio::test]
async fn of_two_starts_of_one_restore_name_the_one_that_loses_the_catalog_create_stops() {
    let w = World::new();
    // The winner's document, as the other start wrote it.
    let winner = {
        let other = World::new();
        start(&other.fakes.env(), "r1", &exec("winner"), false)
            .await
            .unwrap();
        other
            .fakes
            .store
            .get(CATALOG, &restore_key("br", "r1"))
            .unwrap()
    };
    // another start of the same restore wins the race: its document appears between this
    // start's read and its conditional create
    w.fakes.store.race_next_put("/r1.json", winner);
    let err = start(&w.fakes.env(), "r1", &exec("loser"), false)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "RestoreExists", "{err}");
    assert!(err.to_string().contains("winner"), "{err}");
    assert_eq!(
        w.fakes.planes.restore_count(),
        0,
        "{:?}",
        w.fakes.planes.log.lock().unwrap()
    );
    assert_eq!(w.doc("r1").execution(), exec("winner"));
}

#[tokio::test]
async fn a_second_start_of_a_running_restore_name_is_refused_by_name() {
    let w = World::new();
    let e = w.fakes.env();
    start(&e, "r1", &exec("first"), false).await.unwrap();
    let err = start(&e, "r1", &exec("second"), false).await.unwrap_err();
    assert_eq!(err.name(), "RestoreExists", "{err}");
    // the first one's start, repeated, is a no-op that succeeds
    start(&e, "r1", &exec("first"), false).await.unwrap();
}

#[tokio::test]
async fn a_restore_into_a_namespace_where_brfed_has_no_rights_is_refused_by_that_name() {
    let w = World::new();
    w.fakes.planes.forbid("dp3", TARGET_NS);
    let err = start(&w.fakes.env(), "r1", &exec("r1"), false)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DataPlaneForbidden", "{err}");
    assert!(
        err.to_string()
            .contains("list restores in namespace tidb-restore"),
        "{err}"
    );
    assert_eq!(
        err.to_string().matches("data plane forbids it").count(),
        1,
        "the name's prefix once: {err}"
    );
    assert!(
        w.fakes.planes.log.lock().unwrap().is_empty(),
        "nothing created"
    );
}

/// A restore from a bucket or folder the stack may not read is refused by that name, before any
/// data plane or backup object is read (its role would get 403 there, reported as an unreadable
/// backup).
#[tokio::test]
async fn a_restore_from_outside_the_stack_s_backup_locations_is_refused_by_that_name() {
    use brfed_core::backup::spec::BackupLocations;
    let w = World::new();
    let elsewhere = BackupLocations::parse("other/tidb/, data/q/").unwrap();
    let mut e = w.fakes.env();
    e.base.backup_locations = Some(&elsewhere);
    let reads = w.fakes.store.calls();
    let err = start(&e, "r1", &exec("r1"), false).await.unwrap_err();
    assert_eq!(err.name(), "BucketNotAllowed", "{err}");
    let text = err.to_string();
    assert_eq!(text.matches("bucket not allowed").count(), 1, "{text}");
    assert!(
        text.contains("spec.clusters[0].backup.s3.prefix `p-dp1` in `data`")
            && text.contains("`s3://other/tidb/`, `s3://data/q/`"),
        "{text}"
    );
    assert!(
        w.fakes.planes.log.lock().unwrap().is_empty(),
        "nothing created"
    );
    assert_eq!(
        w.fakes.store.calls(),
        reads + 1,
        "the catalog's record of the name only, no backupmeta"
    );
    // where the backup is, the same restore starts
    let here = BackupLocations::parse("other/tidb/,data/").unwrap();
    e.base.backup_locations = Some(&here);
    start(&e, "r1", &exec("r1"), false)
        .await
        .expect("it starts");
}

// The member `Restore`s: only its own execution's.

#[tokio::test]
async fn the_cleanup_deletes_only_member_restores_of_its_own_execution() {
    let w = World::new();
    let e = w.fakes.env();
    let out = started(&e, "r1").await;
    // dp2's Restore of that name was replaced by someone else's (another execution); dp3's
    // carries the execution but not the federation namespace.
    let foreign = member(&exec("someone-else"), "br");
    w.replace_member("dp2", &foreign).await;
    let other_ns = member(&exec("r1"), "team-b");
    w.replace_member("dp3", &other_ns).await;
    w.fakes
        .planes
        .add_restore_condition("dp1", TARGET_NS, "fed-r1", rcond::FAILED);

    let done = steps::finalize(&e, after_failure(&out)).await.unwrap();
    assert_eq!(done.error.as_deref(), Some("MemberFailed"));
    assert!(
        w.fakes.planes.restore("dp1", TARGET_NS, "fed-r1").is_none(),
        "own member deleted"
    );
    assert_eq!(
        w.fakes.planes.restore("dp2", TARGET_NS, "fed-r1"),
        Some(foreign),
        "another execution's Restore is left"
    );
    assert_eq!(
        w.fakes.planes.restore("dp3", TARGET_NS, "fed-r1"),
        Some(other_ns),
        "a Restore of another federation namespace is left"
    );
    let left = &w.doc("r1").brfed.leftovers;
    assert_eq!(left.len(), 3);
    for l in &left[1..] {
        let text = serde_json::to_string(l).unwrap();
        assert!(l.member.is_none(), "{text}");
        assert!(text.contains("fed-r1"), "named: {text}");
        assert!(
            !l.cleanup_commands
                .iter()
                .any(|c| c.contains("delete restore")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn restore_finish_never_patches_a_restore_of_another_execution() {
    let w = World::new();
    let e = w.fakes.env();
    let out = start(&e, "r1", &exec("r1"), false).await.unwrap();
    let mut foreign = member(&exec("someone-else"), "br");
    foreign["spec"] = json!({"federalVolumeRestorePhase": "restore-volume"});
    w.replace_member("dp2", &foreign).await;
    let err = steps::finish(&e, after_failure(&out)).await.unwrap_err();
    assert_eq!(err.name(), "MemberNameConflict", "{err}");
    assert_eq!(
        w.fakes.planes.restore("dp2", TARGET_NS, "fed-r1"),
        Some(foreign)
    );
}

// The volumes: only those it proved its own, read again before each delete.

#[tokio::test]
async fn of_two_restores_in_turn_into_one_target_each_cleanup_deletes_only_its_own_volumes() {
    let w = World::new();
    let e = w.fakes.env();
    // A volume made from the same snapshot long ago (a restore from before brfed tagged
    // volumes, or made by hand): never this restore's.
    w.add_volume(volume(
        "vol-old",
        "snap-dp1-0",
        "az-dp1",
        "2025-01-01T00:00:00Z".parse().unwrap(),
    ));

    // The first restore makes its volumes everywhere; at VolumeComplete they are claimed.
    let r1 = started(&e, "r1").await;
    let mut first = BTreeSet::new();
    for p in PLANES {
        first.extend(w.make_volumes("r1", p, true));
    }
    assert_eq!(observe(&e, &r1).await, "met");
    for id in &first {
        let tags = w.volume_tags(id);
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
    let claims = w.doc("r1").brfed.volume_claims;
    assert_eq!(claims.len(), 3, "{claims:?}");
    assert!(claims.iter().all(|c| c.claimed == 2 && c.refused.is_none()));
    // A later observation claims nothing again.
    let tags_before = w.fakes.ec2.volume_log.lock().unwrap().len();
    observe(&e, &r1).await;
    assert_eq!(w.fakes.ec2.volume_log.lock().unwrap().len(), tags_before);

    // The second restore into the same namespace and TidbCluster names: dp1 and dp2 make their
    // volumes, dp3 fails after making its own but before writing restoremeta (which still
    // lists the first restore's volumes).
    let r2 = started(&e, "r2").await;
    let mut second = BTreeSet::new();
    for p in ["dp1", "dp2"] {
        second.extend(w.make_volumes("r2", p, true));
    }
    let stuck = w.make_volumes("r2", "dp3", false);
    assert_eq!(observe(&e, &r2).await, "failed");
    let d = fail(&e, &r2).await;

    assert_eq!(
        w.deleted(),
        second,
        "deleted exactly its own proved volumes"
    );
    let have = w.existing();
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
    let w = World::new();
    let e = w.fakes.env();
    let r = started(&e, "r1").await;
    // Someone else restores dp1's backup into the same AZ meanwhile.
    w.add_volume(volume("vol-theirs", "snap-dp1-0", "az-dp1", Utc::now()));
    let mut mine = BTreeMap::new();
    for p in PLANES {
        mine.insert(p, w.make_volumes("r1", p, true));
    }
    observe(&e, &r).await;
    let claims = w.doc("r1").brfed.volume_claims;
    let dp1 = claims.iter().find(|c| c.k8s_cluster_name == "dp1").unwrap();
    assert_eq!(dp1.claimed, 0);
    assert!(
        dp1.refused.as_deref().unwrap().contains("vol-theirs"),
        "{dp1:?}"
    );
    for id in &mine["dp1"] {
        assert!(!w.volume_tags(id).contains_key(TAG_VOLUME_RESTORE), "{id}");
    }
    w.fakes
        .planes
        .add_restore_condition("dp2", TARGET_NS, "fed-r1", rcond::FAILED);
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
    let gone = w.deleted();
    assert!(
        gone.iter().all(|v| !v.contains("dp1") && v != "vol-theirs"),
        "{gone:?}"
    );
    assert_eq!(gone.len(), 4, "dp2's and dp3's volumes: {gone:?}");
}

/// EC2 whose answer to `describe_volume` (the read right before a delete) shows one volume
/// retagged since the report was made.
struct Retagged<'a> {
    inner: &'a FakeVolumes,
    id: String,
    tags: Mutex<Option<(String, String)>>,
}

impl Volumes for Retagged<'_> {
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
    let w = World::new();
    let ec2 = Retagged {
        inner: &w.fakes.ec2,
        id: "vol-r1-dp1-0".into(),
        tags: Mutex::new(None),
    };
    let e = w.fakes.env_with(&ec2);
    let r = started(&e, "r1").await;
    for p in PLANES {
        w.make_volumes("r1", p, true);
    }
    observe(&e, &r).await;
    *ec2.tags.lock().unwrap() = Some((TAG_VOLUME_RESTORE.into(), "br/someone-else".into()));
    let d = fail(&e, &r).await;
    assert!(w.existing().contains("vol-r1-dp1-0"));
    assert!(!w.deleted().contains("vol-r1-dp1-0"));
    assert_eq!(w.deleted().len(), 5);
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
