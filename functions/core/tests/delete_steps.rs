//! The deletion steps on in-memory fakes: what is deleted by whom, what is verified, what is
//! refused, and the pacing of brfed's own snapshot deletions under throttling.

use brfed_core::StepError;
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::MemberStatus;
use brfed_core::backup::status::{VolumeBackupDoc, backup_key};
use brfed_core::backup::steps::Env;
use brfed_core::catalog::Catalog;
use brfed_core::delete;
use brfed_core::delete::member::CleanBy;
use brfed_core::delete::pacing::{Pacing, SnapshotProgress};
use brfed_core::delete::status::{DeleteResult, manifest_key};
use brfed_core::delete::steps::{
    DeleteObserved, DeleteStartInput, DeleteStartOutput, DeleteStepInput,
};
use brfed_core::ports::{DataPlanes, ObjectStore, Precondition, Versioned};
use brfed_core::tags::{TAG_RETAINED, TAG_STACK, TAG_VOLUME_BACKUP};
use brfed_core::testing::{FakePlanes, FakeStore, FakeVolumes, fake_env};
use serde_json::{Value, json};
use std::time::Duration;

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup-delete:d1";

/// The request to delete backup `br/bk`.
fn bk() -> Value {
    json!({"name": "bk", "namespace": "br"})
}

/// The world a deletion runs in: the data planes, S3 (catalog and data) and EC2, holding a
/// backup `br/bk` over dp1..dp3 with 2 snapshots per member.
struct World {
    planes: FakePlanes,
    store: FakeStore,
    ec2: FakeVolumes,
}

impl World {
    /// The backup `bk` in `phase` with `cleanPolicy` `policy`, in the catalog, S3 and EC2, and
    /// its member `Backup`s in the first `planes` of dp1..dp3 (the others are gone from the
    /// kubeconfig).
    fn new(planes: usize, phase: &str, policy: &str) -> Self {
        let w = Self {
            planes: FakePlanes::new(planes),
            store: FakeStore::default(),
            ec2: FakeVolumes::default(),
        };
        let clusters: Vec<Value> = ["dp1", "dp2", "dp3"]
            .iter()
            .map(|c| json!({"k8sClusterName": c, "tcName": "basic", "tcNamespace": "tidb"}))
            .collect();
        let req = BackupRequest::from_value(json!({
            "metadata": {"name": "bk", "namespace": "br"},
            "spec": {"clusters": clusters,
              "template": {"s3": {"provider": "aws", "bucket": DATA, "prefix": "p"},
                           "cleanPolicy": policy, "snapshotsDeleteRatio": 5.0}}}))
        .unwrap();
        let members = req.members();
        let mut doc =
            VolumeBackupDoc::new(&req, "exec-bk", members.clone(), "2026-01-01T00:00:00Z");
        let at = "2026-01-01T01:00:00Z".parse().unwrap();
        doc.status.progress.set_condition(phase, None, None, at);
        for m in &members {
            doc.status.backups.push(MemberStatus {
                k8s_cluster_name: m.k8s_cluster_name.clone(),
                tc_name: m.tc_name.clone(),
                tc_namespace: m.tc_namespace.clone(),
                backup_name: m.backup_name.clone(),
                phase: "Complete".into(),
                ..Default::default()
            });
            let snaps: Vec<String> = (0..2)
                .map(|i| format!("snap-{}-{i}", m.k8s_cluster_name))
                .collect();
            for s in &snaps {
                w.own(s);
            }
            let volumes: Vec<Value> = snaps
                .iter()
                .map(|s| json!({"volume_id": "vol", "type": "storage.data-dir", "snapshot_id": s}))
                .collect();
            let meta = json!({"tikv": {"stores": [{"store_id": 1, "volumes": volumes}]}});
            let prefix = format!("p-{}", m.k8s_cluster_name);
            w.store.put(DATA, &format!("{prefix}/backupmeta"), meta);
            w.store
                .put(DATA, &format!("{prefix}/clustermeta"), json!({}));
            if w.planes.cluster_names().contains(&m.k8s_cluster_name) {
                w.planes
                    .put_backup(&m.k8s_cluster_name, member("exec-bk", "br"));
            }
        }
        w.store.put(
            CATALOG,
            &backup_key("br", "bk"),
            serde_json::to_value(&doc).unwrap(),
        );
        w
    }

    /// A `Complete` backup with `cleanPolicy` `policy` on all three data planes.
    fn complete(policy: &str) -> Self {
        Self::new(3, "Complete", policy)
    }

    /// A `Complete` backup with `cleanPolicy: Delete` whose data plane dp3 is no longer in the
    /// kubeconfig: brfed deletes dp3's snapshots itself.
    fn dp3_gone() -> Self {
        Self::new(2, "Complete", "Delete")
    }

    fn env(&self) -> Env<'_, FakePlanes, FakeStore> {
        fake_env(&self.planes, &self.store, CATALOG)
    }

    /// A snapshot that is backup `br/bk`'s in stack `catalog`, as `backup-finalize` tags it.
    fn own(&self, id: &str) {
        self.ec2.add_snapshot(id, chrono::Utc::now());
        self.ec2
            .set_tags(id, &[(TAG_STACK, CATALOG), (TAG_VOLUME_BACKUP, "br/bk")]);
    }

    /// Appends `snapshot` to the `backupmeta` of member `cluster` (as whoever can write the
    /// prefix).
    fn add_to_backupmeta(&self, cluster: &str, snapshot: &str) {
        let key = format!("p-{cluster}/backupmeta");
        let mut meta = self.store.get(DATA, &key).unwrap();
        meta["tikv"]["stores"][0]["volumes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"volume_id": "vol", "snapshot_id": snapshot}));
        self.store.put(DATA, &key, meta);
    }

    /// What the data planes' clean jobs do for `Delete`: snapshots and objects go.
    fn data_planes_clean(&self, clusters: &[&str]) {
        for c in clusters {
            self.ec2
                .snapshots
                .lock()
                .unwrap()
                .retain(|s| !s.starts_with(&format!("snap-{c}-")));
            for k in ["backupmeta", "clustermeta"] {
                self.store.remove(DATA, &format!("p-{c}/{k}"));
            }
        }
    }

    async fn start_with(
        &self,
        input: Value,
        execution: &str,
    ) -> Result<DeleteStartOutput, StepError> {
        let input = DeleteStartInput {
            input,
            execution: execution.into(),
        };
        delete::steps::start(&self.env(), &self.ec2, input).await
    }

    /// The deletion of `br/bk` by [`EXEC`], started.
    async fn start(&self) -> DeleteStartOutput {
        self.start_with(bk(), EXEC)
            .await
            .expect("the deletion starts")
    }

    /// [`Self::start`], which leaves dp1's and dp3's data to their data planes and takes dp2's
    /// itself, after its member's `Retain` patch.
    async fn start_dp2_by_brfed(&self) -> DeleteStartOutput {
        let out = self.start().await;
        assert_eq!(
            clean_by(&out),
            [
                CleanBy::DataPlane,
                CleanBy::BrfedAfterRetain,
                CleanBy::DataPlane
            ]
        );
        out
    }

    async fn observe(&self, out: &DeleteStartOutput) -> DeleteObserved {
        delete::steps::observe(&self.env(), step(out, 0))
            .await
            .unwrap()
    }

    async fn delete_snapshots(
        &self,
        out: &DeleteStartOutput,
        cursor: usize,
        pacing: Pacing,
    ) -> Result<SnapshotProgress, StepError> {
        delete::steps::delete_snapshots(&self.env(), &self.ec2, step(out, cursor), pacing).await
    }

    /// The snapshot deletion from the start, done in one call.
    async fn delete_snapshots_at_once(&self, out: &DeleteStartOutput) -> SnapshotProgress {
        let p = self
            .delete_snapshots(out, 0, Pacing::default())
            .await
            .unwrap();
        assert!(p.done, "{p:?}");
        p
    }

    async fn finish(&self, out: &DeleteStartOutput, cursor: usize) -> DeleteResult {
        delete::steps::finish(&self.env(), &self.ec2, step(out, cursor))
            .await
            .unwrap()
    }

    /// The catalog's record of `br/bk`, which must be there.
    async fn doc(&self) -> VolumeBackupDoc {
        let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&self.store, CATALOG)
            .get("br", "bk")
            .await
            .unwrap()
            .expect("the record of br/bk");
        doc
    }

    /// Every call made to the data planes so far.
    fn log(&self) -> Vec<String> {
        self.planes.log.lock().unwrap().clone()
    }
}

/// A member `Backup` `fed-bk` made by `execution` for a federated backup of `namespace`, with
/// the data plane's protection finalizer (its `cleanPolicy` cleans).
fn member(execution: &str, namespace: &str) -> Value {
    json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Backup",
           "metadata": {"name": "fed-bk", "namespace": "tidb", "uid": format!("uid-{execution}"),
                        "finalizers": [delete::member::BACKUP_PROTECTION_FINALIZER, "other.example/keep"],
                        "annotations": {"brfed.io/execution": execution,
                                        "brfed.io/federation-namespace": namespace}},
           "spec": {"cleanPolicy": "Delete"}})
}

/// Who cleans each member's data, in order.
fn clean_by(out: &DeleteStartOutput) -> Vec<CleanBy> {
    out.deletion.members.iter().map(|m| m.clean_by).collect()
}

fn step(out: &DeleteStartOutput, cursor: usize) -> DeleteStepInput {
    DeleteStepInput {
        deletion: Some(out.deletion.clone()),
        cursor,
        input: None,
        failure: None,
    }
}

/// The default pacing with a time budget of `budget`.
fn within(budget: Duration) -> Pacing {
    Pacing {
        budget,
        ..Pacing::default()
    }
}

#[tokio::test]
async fn delete_policy_members_are_deleted_verified_and_the_record_removed() {
    let w = World::complete("Delete");
    let out = w.start().await;
    assert!(
        out.deletion
            .members
            .iter()
            .all(|m| m.clean_by == CleanBy::DataPlane && m.data_deleted && m.snapshots == 2)
    );
    assert_eq!(w.planes.backup_count(), 0, "every member Backup deleted");
    let again = w.start().await;
    assert_eq!(
        again.deletion.members, out.deletion.members,
        "start is idempotent"
    );
    assert_eq!(w.observe(&out).await.verdict, "met");

    // The data planes did not clean yet: finish reports what remains and keeps the record.
    let r = w.finish(&out, 0).await;
    assert_eq!(r.result, "CleanFailed");
    assert_eq!(r.failure.as_ref().unwrap().error, "SnapshotsRemain");
    assert_eq!(r.remains.remaining_snapshots.len(), 6);
    let doc = w.doc().await;
    assert_eq!(doc.brfed.deletion.unwrap().state, "CleanFailed");
    assert!(
        doc.status
            .progress
            .conditions
            .iter()
            .any(|c| c.type_ == "CleanFailed")
    );
    assert_eq!(
        doc.status.progress.phase.as_deref(),
        Some("CleanFailed"),
        "status.phase shows the failed cleanup, as the original's does"
    );
    assert_eq!(
        doc.status.progress.outcome(),
        Some("Complete"),
        "and the backup still ended Complete"
    );

    w.data_planes_clean(&["dp1", "dp2", "dp3"]);
    let out = w.start().await;
    let r = w.finish(&out, 0).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 6);
    assert!(w.store.get(CATALOG, &backup_key("br", "bk")).is_none());
    assert!(w.store.get(CATALOG, &manifest_key("br", "bk")).is_none());
}

#[tokio::test]
async fn retain_keeps_the_data_and_reports_it() {
    let w = World::complete("Retain");
    let out = w.start().await;
    assert!(out.deletion.members.iter().all(|m| !m.data_deleted));
    let r = w.finish(&out, 0).await;
    assert_eq!(
        (r.result.as_str(), r.snapshots_retained, r.snapshots_deleted),
        ("Cleaned", 6, 0)
    );
    assert_eq!(w.ec2.snapshots.lock().unwrap().len(), 6, "nothing deleted");
}

#[tokio::test]
async fn a_failed_backup_whose_cleanup_failed_shows_it_and_is_still_failed_for_its_policy() {
    let w = World::new(3, "Failed", "OnFailure");
    let out = w.start().await;
    assert!(out.deletion.members.iter().all(|m| m.data_deleted));
    // The data planes did not clean: CleanFailed, in status.phase as the original shows it.
    assert_eq!(w.finish(&out, 0).await.result, "CleanFailed");
    let doc = w.doc().await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("CleanFailed"));
    assert_eq!(doc.status.progress.outcome(), Some("Failed"));
    // The next deletion still reads the backup as failed: OnFailure still deletes its data.
    let again = w.start().await;
    assert!(
        again.deletion.members.iter().all(|m| m.data_deleted),
        "{:?}",
        again.deletion.members
    );
}

/// A member that failed before BR wrote its `backupmeta`: the data plane's clean job deletes
/// nothing then (as the original's: upstream `deleteSnapshotsAndBackupMeta` returns at a missing
/// `backupmeta`), so its `clustermeta` would stay and every deletion of the backup would end
/// `CleanFailed`. brfed deletes that member's objects itself once the member is gone.
#[tokio::test]
async fn a_member_without_backupmeta_has_its_objects_deleted_by_brfed_and_the_deletion_ends() {
    let w = World::new(3, "Failed", "Delete");
    w.store.remove(DATA, "p-dp2/backupmeta");
    let out = w.start_dp2_by_brfed().await;
    assert_eq!(w.observe(&out).await.verdict, "met");
    let p = w.delete_snapshots_at_once(&out).await;
    assert!(w.store.get(DATA, "p-dp2/clustermeta").is_none());
    w.data_planes_clean(&["dp1", "dp3"]);
    let r = w.finish(&out, p.cursor).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert!(!r.remains.anything_remains(), "{r:?}");
}

/// Run again after a stopped deletion, a member whose clean already ran (no `backupmeta`) may
/// vanish between the read and the patch that hands it to brfed: it is gone, not an error (the
/// system test `a_stopped_deletion_is_marked_clean_failed_and_can_be_run_again` met this as
/// `MemberMissing`).
#[tokio::test]
async fn a_member_that_vanishes_before_its_patch_is_gone_not_missing() {
    let w = World::new(3, "Failed", "Delete");
    w.store.remove(DATA, "p-dp2/backupmeta");
    w.planes.vanish_at_next_patch("dp2");
    let out = w.start().await;
    assert_eq!(out.deletion.members[1].clean_by, CleanBy::BrfedAfterRetain);
    assert_eq!(w.observe(&out).await.verdict, "met");
}

#[tokio::test]
async fn on_failure_deletes_only_a_failed_backup() {
    for (phase, deletes) in [("Complete", false), ("Failed", true)] {
        let out = World::new(3, phase, "OnFailure").start().await;
        assert!(
            out.deletion
                .members
                .iter()
                .all(|m| m.data_deleted == deletes),
            "{phase}"
        );
    }
}

#[tokio::test]
async fn a_running_or_missing_backup_is_refused_before_anything_happens() {
    let w = World::new(3, "Running", "Delete");
    let err = w.start_with(bk(), EXEC).await.unwrap_err();
    assert_eq!(err.name(), "BackupRunning");
    assert_eq!(w.planes.backup_count(), 3, "no member deleted");
    assert!(w.store.get(CATALOG, &manifest_key("br", "bk")).is_none());

    let missing = json!({"name": "nope", "namespace": "br"});
    let err = w.start_with(missing, EXEC).await.unwrap_err();
    assert_eq!(err.name(), "BackupNotFound");
    for bad in [
        json!({"name": "Bad_Name"}),
        json!({"name": "bk", "namespace": "br", "extra": 1}),
        json!({"name": "bk", "namespace": "br", "options": {"snapshotsPerSecond": 0}}),
        json!({"name": "bk", "namespace": "br", "options": {"timeoutSeconds": 0}}),
        json!("bk"),
    ] {
        let err = w.start_with(bad.clone(), EXEC).await.unwrap_err();
        assert_eq!(err.name(), "InvalidSpec", "{bad}");
    }
}

#[tokio::test]
async fn a_clean_failed_member_fails_the_deletion() {
    let w = World::complete("Delete");
    let out = w.start().await;
    // A data plane whose clean job failed keeps the member, with CleanFailed.
    w.planes.put_backup(
        "dp2",
        json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Backup",
               "metadata": {"name": "fed-bk", "namespace": "tidb"}, "spec": {},
               "status": {"conditions": [{"type": "CleanFailed", "status": "True"}]}}),
    );
    let o = w.observe(&out).await;
    assert_eq!(o.verdict, "failed");
    assert_eq!(o.failure.unwrap().error, "CleanFailed");
    assert_eq!(o.remaining, vec!["dp2/tidb/fed-bk".to_string()]);
    assert!(w.planes.backup("dp2", "tidb", "fed-bk").is_some());
}

#[tokio::test(start_paused = true)]
async fn brfed_deletes_the_snapshots_of_a_gone_data_plane_at_the_rate_through_throttling() {
    let w = World::dp3_gone();
    for i in 2..40 {
        w.own(&format!("snap-dp3-{i}"));
    }
    let mut meta = w.store.get(DATA, "p-dp3/backupmeta").unwrap();
    meta["tikv"]["stores"][0]["volumes"] = Value::Array(
        (0..40)
            .map(|i| json!({"volume_id": "vol", "snapshot_id": format!("snap-dp3-{i}")}))
            .collect(),
    );
    w.store.put(DATA, "p-dp3/backupmeta", meta);
    *w.ec2.throttle_every.lock().unwrap() = 4;
    let at_2_per_second =
        json!({"name": "bk", "namespace": "br", "options": {"snapshotsPerSecond": 2.0}});
    let out = w.start_with(at_2_per_second, EXEC).await.unwrap();
    let dp3 = &out.deletion.members[2];
    assert_eq!((dp3.clean_by, dp3.snapshots), (CleanBy::Brfed, 40));
    assert_eq!(out.deletion.snapshots_per_second, 2.0);

    let t0 = tokio::time::Instant::now();
    let p = w
        .delete_snapshots(&out, 0, within(Duration::from_secs(3600)))
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(p.done);
    assert_eq!(p.deleted, 40);
    assert!(p.throttled > 0, "the fake throttled some calls");
    // 40 accepted deletions at 2/s, plus backoff after every throttled call: never faster.
    assert!(took >= Duration::from_millis(19_500), "took {took:?}");
    assert!(
        w.store.get(DATA, "p-dp3/backupmeta").is_none(),
        "objects deleted"
    );
    w.data_planes_clean(&["dp1", "dp2"]);
    let r = w.finish(&out, p.cursor).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 44);
}

#[tokio::test(start_paused = true)]
async fn snapshot_deletion_stops_at_its_budget_and_resumes_at_the_cursor() {
    let w = World::dp3_gone();
    let at_1_per_second =
        json!({"name": "bk", "namespace": "br", "options": {"snapshotsPerSecond": 1.0}});
    let out = w.start_with(at_1_per_second, EXEC).await.unwrap();
    let p = w
        .delete_snapshots(&out, 0, within(Duration::from_millis(500)))
        .await
        .unwrap();
    assert!(!p.done);
    assert_eq!(p.cursor, 1);
    let p = w
        .delete_snapshots(&out, p.cursor, Pacing::default())
        .await
        .unwrap();
    assert!(p.done);
    assert_eq!((p.cursor, p.deleted), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn endless_throttling_is_ec2_unavailable() {
    let w = World::dp3_gone();
    *w.ec2.throttle_every.lock().unwrap() = 1;
    let out = w.start().await;
    let err = w
        .delete_snapshots(&out, 0, Pacing::default())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "Ec2Unavailable");
    assert_eq!(w.ec2.snapshot_calls.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn a_stopped_deletion_leaves_the_record_clean_failed_not_deleting() {
    let w = World::complete("Delete");
    let e = w.env();
    w.start().await;
    let event: brfed_core::execution::ExecutionStatusChange = serde_json::from_value(json!({
        "detail": {"executionArn": EXEC, "status": "ABORTED", "input": bk().to_string()}}))
    .unwrap();
    let r = delete::steps::abort(&e, &event).await.unwrap();
    assert_eq!(r.action, "marked-clean-failed");
    let doc = w.doc().await;
    assert_eq!(doc.brfed.deletion.unwrap().state, "CleanFailed");
    let c = doc
        .status
        .progress
        .conditions
        .iter()
        .find(|c| c.type_ == "CleanFailed")
        .unwrap();
    assert_eq!(c.reason.as_deref(), Some("ExecutionAborted"));
    assert_eq!(doc.status.progress.phase.as_deref(), Some("CleanFailed"));
    // Again (at-least-once delivery), or for another execution: nothing.
    assert_eq!(
        delete::steps::abort(&e, &event).await.unwrap().action,
        "nothing-to-do"
    );
    // And a new deletion is allowed.
    assert!(w.start_with(bk(), "another").await.is_ok());
}

#[tokio::test]
async fn retain_marks_the_kept_snapshots_retained() {
    let w = World::complete("Retain");
    // Listed by a member's backupmeta but not the backup's: not marked either.
    w.ec2.add_snapshot("snap-foreign", chrono::Utc::now());
    w.add_to_backupmeta("dp1", "snap-foreign");
    w.start().await;
    let tags = w.ec2.tags.lock().unwrap().clone();
    for c in ["dp1", "dp2", "dp3"] {
        for i in 0..2 {
            assert!(
                tags[&format!("snap-{c}-{i}")].contains_key(TAG_RETAINED),
                "{c}/{i}"
            );
        }
    }
    assert!(!tags.contains_key("snap-foreign"));
}

#[tokio::test(start_paused = true)]
async fn a_backupmeta_listing_a_snapshot_that_is_not_the_backups_is_not_left_to_its_clean_job() {
    let w = World::complete("Delete");
    // dp2's backupmeta now also lists a production snapshot brfed never made.
    w.ec2.add_snapshot("snap-prod", chrono::Utc::now());
    w.add_to_backupmeta("dp2", "snap-prod");
    let out = w.start_dp2_by_brfed().await;
    // Before its deletion, dp2's member was told to keep its data, and the data plane's
    // protection finalizer (which only a clean would remove) was taken off; nothing else.
    let log = w.log();
    let patch = log
        .iter()
        .position(|l| l.starts_with("patch Backup dp2/tidb/fed-bk"))
        .expect("dp2 patched");
    let delete = log
        .iter()
        .position(|l| l == "delete Backup dp2/tidb/fed-bk")
        .expect("dp2 deleted");
    assert!(patch < delete, "{log:?}");
    assert!(
        log[patch].contains(r#""cleanPolicy":"Retain""#),
        "{}",
        log[patch]
    );
    assert!(
        log[patch].contains(r#""finalizers":["other.example/keep"]"#),
        "{}",
        log[patch]
    );
    assert_eq!(w.planes.backup_count(), 0);
    assert_eq!(w.observe(&out).await.verdict, "met");

    // brfed deletes dp2's own snapshots and objects itself, and leaves the other one.
    let p = w.delete_snapshots_at_once(&out).await;
    assert_eq!(
        (p.deleted, p.not_owned.clone()),
        (2, vec!["snap-prod".to_string()])
    );
    assert!(w.store.get(DATA, "p-dp2/backupmeta").is_none());
    w.data_planes_clean(&["dp1", "dp3"]);
    let r = w.finish(&out, p.cursor).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 6);
    assert_eq!(r.remains.not_owned, ["snap-prod"]);
    assert!(w.ec2.snapshots.lock().unwrap().contains("snap-prod"));
    assert!(
        !w.ec2
            .snapshot_calls
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s == "snap-prod"),
        "never even asked to delete it"
    );
}

#[tokio::test(start_paused = true)]
async fn on_a_gone_data_plane_brfed_deletes_only_what_is_the_backups() {
    let w = World::dp3_gone();
    let t = chrono::Utc::now();
    w.ec2.add_snapshot("snap-other-backup", t);
    w.ec2.set_tags(
        "snap-other-backup",
        &[(TAG_STACK, CATALOG), (TAG_VOLUME_BACKUP, "team-b/bk")],
    );
    w.ec2.add_snapshot("snap-other-stack", t);
    w.ec2.set_tags(
        "snap-other-stack",
        &[(TAG_STACK, "catalog-b"), (TAG_VOLUME_BACKUP, "br/bk")],
    );
    w.ec2.add_snapshot("snap-untagged", t);
    for s in ["snap-other-backup", "snap-other-stack", "snap-untagged"] {
        w.add_to_backupmeta("dp3", s);
    }
    let out = w.start().await;
    assert_eq!(out.deletion.members[2].clean_by, CleanBy::Brfed);
    // One of the backup's own was re-tagged by someone since the start: read before the
    // delete, it is left too.
    w.ec2
        .set_tags("snap-dp3-1", &[(TAG_VOLUME_BACKUP, "br/someone-else")]);
    let p = w
        .delete_snapshots(&out, 0, Pacing::default())
        .await
        .unwrap();
    assert_eq!(p.deleted, 1);
    assert_eq!(
        p.not_owned,
        [
            "snap-dp3-1",
            "snap-other-backup",
            "snap-other-stack",
            "snap-untagged"
        ]
    );
    let calls: Vec<String> = w
        .ec2
        .snapshot_calls
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(calls, ["snap-dp3-0"]);
    w.data_planes_clean(&["dp1", "dp2"]);
    let r = w.finish(&out, p.cursor).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.remains.not_owned.len(), 4);
}

#[tokio::test]
async fn member_objects_that_are_not_the_backups_are_left_and_named() {
    let w = World::complete("Delete");
    // dp1: another execution's member of that name; dp2: this execution's name, but for a
    // backup of another namespace; dp3: this backup's.
    w.planes.put_backup("dp1", member("exec-other", "br"));
    w.planes.put_backup("dp2", member("exec-bk", "team-b"));
    let out = w.start().await;
    assert_eq!(
        clean_by(&out),
        [CleanBy::Foreign, CleanBy::Foreign, CleanBy::DataPlane]
    );
    assert!(w.planes.backup("dp1", "tidb", "fed-bk").is_some());
    assert!(w.planes.backup("dp2", "tidb", "fed-bk").is_some());
    assert!(w.planes.backup("dp3", "tidb", "fed-bk").is_none());
    assert!(
        !w.log()
            .iter()
            .any(|l| l.contains("dp1/") || l.contains("dp2/")),
        "nothing done to them"
    );
    // Not waited for either.
    assert_eq!(w.observe(&out).await.verdict, "met");
    w.data_planes_clean(&["dp3"]);
    let r = w.finish(&out, 0).await;
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(
        r.remains.foreign_members,
        ["dp1/tidb/fed-bk", "dp2/tidb/fed-bk"]
    );
    assert_eq!(w.ec2.snapshots.lock().unwrap().len(), 4, "their data stays");
}

/// The fake store, yielding to the scheduler before every call: concurrent steps interleave
/// between their reads and their writes, as two Lambdas do.
struct Interleaved<'a>(&'a FakeStore);

impl ObjectStore for Interleaved<'_> {
    async fn get_json(&self, b: &str, k: &str) -> Result<Option<Versioned>, StepError> {
        tokio::task::yield_now().await;
        self.0.get_json(b, k).await
    }
    async fn put_json(
        &self,
        b: &str,
        k: &str,
        v: &Value,
        p: Precondition,
    ) -> Result<(), StepError> {
        tokio::task::yield_now().await;
        self.0.put_json(b, k, v, p).await
    }
    async fn exists(&self, b: &str, k: &str) -> Result<bool, StepError> {
        tokio::task::yield_now().await;
        self.0.exists(b, k).await
    }
    async fn list_keys(&self, b: &str, p: &str) -> Result<Vec<String>, StepError> {
        tokio::task::yield_now().await;
        self.0.list_keys(b, p).await
    }
    async fn delete_object(&self, b: &str, k: &str) -> Result<(), StepError> {
        tokio::task::yield_now().await;
        self.0.delete_object(b, k).await
    }
}

#[tokio::test]
async fn two_deletions_started_at_once_exactly_one_runs_the_other_is_refused_by_name() {
    let w = World::complete("Delete");
    let interleaved = Interleaved(&w.store);
    let e = fake_env(&w.planes, &interleaved, CATALOG);
    let start = |execution: &str| {
        let input = DeleteStartInput {
            input: bk(),
            execution: execution.into(),
        };
        delete::steps::start(&e, &w.ec2, input)
    };
    let (cli, sweep) = (
        "delete-br.bk-20260101T000000Z",
        "delete-br.bk-20260101T000001Z",
    );
    let (a, b) = tokio::join!(start(cli), start(sweep));
    let (won, lost) = match (&a, &b) {
        (Ok(_), Err(err)) => (cli, err),
        (Err(err), Ok(_)) => (sweep, err),
        _ => panic!("exactly one must run: {a:?} / {b:?}"),
    };
    assert_eq!(lost.name(), "DeletionInProgress", "{lost}");
    assert!(lost.to_string().contains(won), "{lost}");
    let deletes = w.log().iter().filter(|l| l.starts_with("delete ")).count();
    assert_eq!(deletes, 3, "the members deleted once, by the one that runs");
    assert_eq!(w.doc().await.brfed.deletion.unwrap().execution, won);
    let manifest = w.store.get(CATALOG, &manifest_key("br", "bk")).unwrap();
    assert_eq!(manifest["execution"], json!(won));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_snapshot_never_keeps_the_step_past_its_budget() {
    // dp3 is gone; EC2 throttles every deletion: the backoff (1 s doubling to 60 s, 8 tries)
    // would take over two minutes.
    let w = World::dp3_gone();
    *w.ec2.throttle_every.lock().unwrap() = 1;
    let out = w.start().await;
    let budget = Duration::from_secs(10);
    let t0 = tokio::time::Instant::now();
    let p = w
        .delete_snapshots(&out, 0, within(budget))
        .await
        .expect("returns with a cursor, not an error");
    assert!(t0.elapsed() <= budget, "took {:?}", t0.elapsed());
    assert!(!p.done);
    assert_eq!(
        (p.cursor, p.deleted),
        (0, 0),
        "the snapshot is taken up again"
    );
    assert!(p.throttled >= 2);
    // The next invocation picks it up where it stopped.
    *w.ec2.throttle_every.lock().unwrap() = 0;
    let p = w
        .delete_snapshots(&out, p.cursor, within(budget))
        .await
        .unwrap();
    assert_eq!((p.done, p.deleted), (true, 2));
}
