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
use brfed_core::delete::pacing::Pacing;
use brfed_core::delete::status::manifest_key;
use brfed_core::delete::steps::{DeleteStartInput, DeleteStepInput};
use brfed_core::member::MemberRef;
use brfed_core::ports::{DataPlanes, ObjectStore, Precondition, Versioned};
use brfed_core::tags::{TAG_RETAINED, TAG_STACK, TAG_VOLUME_BACKUP};
use brfed_core::testing::{FakePlanes, FakeStore, FakeVolumes, fake_env};
use serde_json::{Value, json};
use std::time::Duration;

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup-delete:d1";

/// Three data planes, S3 and EC2, empty.
fn fakes() -> (FakePlanes, FakeStore, FakeVolumes) {
    (
        FakePlanes::new(3),
        FakeStore::default(),
        FakeVolumes::default(),
    )
}

fn env<'a>(planes: &'a FakePlanes, store: &'a FakeStore) -> Env<'a, FakePlanes, FakeStore> {
    fake_env(planes, store, CATALOG)
}

/// A `phase` backup `bk` over dp1..dp3 with 2 snapshots per member, in the catalog, S3 and EC2.
fn seed(planes: &FakePlanes, store: &FakeStore, ec2: &FakeVolumes, phase: &str, policy: &str) {
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
    let members: Vec<MemberRef> = req
        .spec
        .clusters
        .iter()
        .map(|c| MemberRef::new(c, "bk"))
        .collect();
    let mut doc = VolumeBackupDoc::new(&req, "exec-bk", members.clone(), "2026-01-01T00:00:00Z");
    doc.status.progress.phase = Some(phase.into());
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
            own(ec2, s);
        }
        let volumes: Vec<Value> = snaps
            .iter()
            .map(|s| json!({"volume_id": "vol", "type": "storage.data-dir", "snapshot_id": s}))
            .collect();
        let meta = json!({"tikv": {"stores": [{"store_id": 1, "volumes": volumes}]}});
        let prefix = format!("p-{}", m.k8s_cluster_name);
        store.put(DATA, &format!("{prefix}/backupmeta"), meta);
        store.put(DATA, &format!("{prefix}/clustermeta"), json!({}));
        if planes.cluster_names().contains(&m.k8s_cluster_name) {
            planes.put_backup(&m.k8s_cluster_name, member("exec-bk", "br"));
        }
    }
    store.put(
        CATALOG,
        &backup_key("br", "bk"),
        serde_json::to_value(&doc).unwrap(),
    );
}

/// A snapshot that is backup `br/bk`'s in stack `catalog`, as `backup-finalize` tags it.
fn own(ec2: &FakeVolumes, id: &str) {
    ec2.add_snapshot(id, chrono::Utc::now());
    ec2.set_tags(id, &[(TAG_STACK, CATALOG), (TAG_VOLUME_BACKUP, "br/bk")]);
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

fn start_input(extra: Value) -> DeleteStartInput {
    let mut input = json!({"name": "bk", "namespace": "br"});
    if let Value::Object(m) = extra {
        input.as_object_mut().unwrap().extend(m);
    }
    DeleteStartInput {
        input,
        execution: EXEC.into(),
    }
}

fn step(out: &delete::steps::DeleteStartOutput, cursor: usize) -> DeleteStepInput {
    DeleteStepInput {
        deletion: Some(out.deletion.clone()),
        cursor,
        input: None,
        failure: None,
    }
}

/// What the data planes' clean jobs do for `Delete`: snapshots and objects go.
fn data_planes_clean(store: &FakeStore, ec2: &FakeVolumes, clusters: &[&str]) {
    for c in clusters {
        ec2.snapshots
            .lock()
            .unwrap()
            .retain(|s| !s.starts_with(&format!("snap-{c}-")));
        for k in ["backupmeta", "clustermeta"] {
            store.remove(DATA, &format!("p-{c}/{k}"));
        }
    }
}

#[tokio::test]
async fn delete_policy_members_are_deleted_verified_and_the_record_removed() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    assert!(
        out.deletion
            .members
            .iter()
            .all(|m| m.clean_by == CleanBy::DataPlane && m.data_deleted && m.snapshots == 2)
    );
    assert_eq!(planes.backup_count(), 0, "every member Backup deleted");
    let again = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    assert_eq!(
        again.deletion.members, out.deletion.members,
        "start is idempotent"
    );
    assert_eq!(
        delete::steps::observe(&e, step(&out, 0))
            .await
            .unwrap()
            .verdict,
        "met"
    );

    // The data planes did not clean yet: finish reports what remains and keeps the record.
    let r = delete::steps::finish(&e, &ec2, step(&out, 0))
        .await
        .unwrap();
    assert_eq!(r.result, "CleanFailed");
    assert_eq!(r.failure.as_ref().unwrap().error, "SnapshotsRemain");
    assert_eq!(r.remains.remaining_snapshots.len(), 6);
    let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&store, CATALOG)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.brfed.deletion.unwrap().state, "CleanFailed");
    assert!(
        doc.status
            .progress
            .conditions
            .iter()
            .any(|c| c.type_ == "CleanFailed")
    );

    data_planes_clean(&store, &ec2, &["dp1", "dp2", "dp3"]);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let r = delete::steps::finish(&e, &ec2, step(&out, 0))
        .await
        .unwrap();
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 6);
    assert!(store.get(CATALOG, &backup_key("br", "bk")).is_none());
    assert!(store.get(CATALOG, &manifest_key("br", "bk")).is_none());
}

#[tokio::test]
async fn retain_keeps_the_data_and_reports_it() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Retain");
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    assert!(out.deletion.members.iter().all(|m| !m.data_deleted));
    let r = delete::steps::finish(&e, &ec2, step(&out, 0))
        .await
        .unwrap();
    assert_eq!(
        (r.result.as_str(), r.snapshots_retained, r.snapshots_deleted),
        ("Cleaned", 6, 0)
    );
    assert_eq!(ec2.snapshots.lock().unwrap().len(), 6, "nothing deleted");
}

#[tokio::test]
async fn on_failure_deletes_only_a_failed_backup() {
    for (phase, deletes) in [("Complete", false), ("Failed", true)] {
        let (planes, store, ec2) = (
            FakePlanes::new(3),
            FakeStore::default(),
            FakeVolumes::default(),
        );
        seed(&planes, &store, &ec2, phase, "OnFailure");
        let out = delete::steps::start(&env(&planes, &store), &ec2, start_input(json!({})))
            .await
            .unwrap();
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
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Running", "Delete");
    let e = env(&planes, &store);
    let err = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "BackupRunning");
    assert_eq!(planes.backup_count(), 3, "no member deleted");
    assert!(store.get(CATALOG, &manifest_key("br", "bk")).is_none());

    let mut other = start_input(json!({}));
    other.input = json!({"name": "nope", "namespace": "br"});
    assert_eq!(
        delete::steps::start(&e, &ec2, other)
            .await
            .unwrap_err()
            .name(),
        "BackupNotFound"
    );
    for bad in [
        json!({"name": "Bad_Name"}),
        json!({"name": "bk", "namespace": "br", "extra": 1}),
        json!({"name": "bk", "namespace": "br", "options": {"snapshotsPerSecond": 0}}),
        json!({"name": "bk", "namespace": "br", "options": {"timeoutSeconds": 0}}),
        json!("bk"),
    ] {
        let mut i = start_input(json!({}));
        i.input = bad.clone();
        assert_eq!(
            delete::steps::start(&e, &ec2, i).await.unwrap_err().name(),
            "InvalidSpec",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_clean_failed_member_fails_the_deletion() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    // A data plane whose clean job failed keeps the member, with CleanFailed.
    planes.put_backup(
        "dp2",
        json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Backup",
               "metadata": {"name": "fed-bk", "namespace": "tidb"}, "spec": {},
               "status": {"conditions": [{"type": "CleanFailed", "status": "True"}]}}),
    );
    let o = delete::steps::observe(&e, step(&out, 0)).await.unwrap();
    assert_eq!(o.verdict, "failed");
    assert_eq!(o.failure.unwrap().error, "CleanFailed");
    assert_eq!(o.remaining, vec!["dp2/tidb/fed-bk".to_string()]);
    assert!(planes.backup("dp2", "tidb", "fed-bk").is_some());
}

#[tokio::test(start_paused = true)]
async fn brfed_deletes_the_snapshots_of_a_gone_data_plane_at_the_rate_through_throttling() {
    // dp3 is no longer in the kubeconfig.
    let (planes, store, ec2) = (
        FakePlanes::new(2),
        FakeStore::default(),
        FakeVolumes::default(),
    );
    seed(&planes, &store, &ec2, "Complete", "Delete");
    for i in 2..40 {
        own(&ec2, &format!("snap-dp3-{i}"));
    }
    let mut meta = store.get(DATA, "p-dp3/backupmeta").unwrap();
    meta["tikv"]["stores"][0]["volumes"] = Value::Array(
        (0..40)
            .map(|i| json!({"volume_id": "vol", "snapshot_id": format!("snap-dp3-{i}")}))
            .collect(),
    );
    store.put(DATA, "p-dp3/backupmeta", meta);
    *ec2.throttle_every.lock().unwrap() = 4;
    let e = env(&planes, &store);
    let out = delete::steps::start(
        &e,
        &ec2,
        start_input(json!({"options": {"snapshotsPerSecond": 2.0}})),
    )
    .await
    .unwrap();
    let dp3 = &out.deletion.members[2];
    assert_eq!((dp3.clean_by, dp3.snapshots), (CleanBy::Brfed, 40));
    assert_eq!(out.deletion.snapshots_per_second, 2.0);

    let pacing = Pacing {
        budget: Duration::from_secs(3600),
        ..Pacing::default()
    };
    let t0 = tokio::time::Instant::now();
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), pacing)
        .await
        .unwrap();
    let took = t0.elapsed();
    assert!(p.done);
    assert_eq!(p.deleted, 40);
    assert!(p.throttled > 0, "the fake throttled some calls");
    // 40 accepted deletions at 2/s, plus backoff after every throttled call: never faster.
    assert!(took >= Duration::from_millis(19_500), "took {took:?}");
    assert!(
        store.get(DATA, "p-dp3/backupmeta").is_none(),
        "objects deleted"
    );
    data_planes_clean(&store, &ec2, &["dp1", "dp2"]);
    let r = delete::steps::finish(&e, &ec2, step(&out, p.cursor))
        .await
        .unwrap();
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 44);
}

#[tokio::test(start_paused = true)]
async fn snapshot_deletion_stops_at_its_budget_and_resumes_at_the_cursor() {
    let (planes, store, ec2) = (
        FakePlanes::new(2),
        FakeStore::default(),
        FakeVolumes::default(),
    );
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let e = env(&planes, &store);
    let out = delete::steps::start(
        &e,
        &ec2,
        start_input(json!({"options": {"snapshotsPerSecond": 1.0}})),
    )
    .await
    .unwrap();
    let pacing = Pacing {
        budget: Duration::from_millis(500),
        ..Pacing::default()
    };
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), pacing)
        .await
        .unwrap();
    assert!(!p.done);
    assert_eq!(p.cursor, 1);
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, p.cursor), Pacing::default())
        .await
        .unwrap();
    assert!(p.done);
    assert_eq!((p.cursor, p.deleted), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn endless_throttling_is_ec2_unavailable() {
    let (planes, store, ec2) = (
        FakePlanes::new(2),
        FakeStore::default(),
        FakeVolumes::default(),
    );
    seed(&planes, &store, &ec2, "Complete", "Delete");
    *ec2.throttle_every.lock().unwrap() = 1;
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let err = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), Pacing::default())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "Ec2Unavailable");
    assert_eq!(ec2.snapshot_calls.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn a_stopped_deletion_leaves_the_record_clean_failed_not_deleting() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let e = env(&planes, &store);
    delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let event: brfed_core::execution::ExecutionStatusChange = serde_json::from_value(json!({
        "detail": {"executionArn": EXEC, "status": "ABORTED",
                   "input": json!({"name": "bk", "namespace": "br"}).to_string()}}))
    .unwrap();
    let r = delete::steps::aborted(&e, &event).await.unwrap();
    assert_eq!(r.action, "marked-clean-failed");
    let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&store, CATALOG)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.brfed.deletion.unwrap().state, "CleanFailed");
    let c = doc
        .status
        .progress
        .conditions
        .iter()
        .find(|c| c.type_ == "CleanFailed")
        .unwrap();
    assert_eq!(c.reason.as_deref(), Some("ExecutionAborted"));
    // Again (at-least-once delivery), or for another execution: nothing.
    assert_eq!(
        delete::steps::aborted(&e, &event).await.unwrap().action,
        "nothing-to-do"
    );
    // And a new deletion is allowed.
    let mut again = start_input(json!({}));
    again.execution = "another".into();
    assert!(delete::steps::start(&e, &ec2, again).await.is_ok());
}

#[tokio::test]
async fn retain_marks_the_kept_snapshots_retained() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Retain");
    // Listed by a member's backupmeta but not the backup's: not marked either.
    ec2.add_snapshot("snap-foreign", chrono::Utc::now());
    add_to_backupmeta(&store, "dp1", "snap-foreign");
    delete::steps::start(&env(&planes, &store), &ec2, start_input(json!({})))
        .await
        .unwrap();
    let tags = ec2.tags.lock().unwrap().clone();
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

/// Appends `snapshot` to the `backupmeta` of member `cluster` (as whoever can write the prefix).
fn add_to_backupmeta(store: &FakeStore, cluster: &str, snapshot: &str) {
    let key = format!("p-{cluster}/backupmeta");
    let mut meta = store.get(DATA, &key).unwrap();
    meta["tikv"]["stores"][0]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"volume_id": "vol", "snapshot_id": snapshot}));
    store.put(DATA, &key, meta);
}

#[tokio::test(start_paused = true)]
async fn a_backupmeta_listing_a_snapshot_that_is_not_the_backups_is_not_left_to_its_clean_job() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    // dp2's backupmeta now also lists a production snapshot brfed never made.
    ec2.add_snapshot("snap-prod", chrono::Utc::now());
    add_to_backupmeta(&store, "dp2", "snap-prod");
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let by: Vec<CleanBy> = out.deletion.members.iter().map(|m| m.clean_by).collect();
    assert_eq!(
        by,
        [
            CleanBy::DataPlane,
            CleanBy::BrfedAfterRetain,
            CleanBy::DataPlane
        ]
    );
    // Before its deletion, dp2's member was told to keep its data, and the data plane's
    // protection finalizer (which only a clean would remove) was taken off; nothing else.
    let log = planes.log.lock().unwrap().clone();
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
    assert_eq!(planes.backup_count(), 0);
    assert_eq!(
        delete::steps::observe(&e, step(&out, 0))
            .await
            .unwrap()
            .verdict,
        "met"
    );

    // brfed deletes dp2's own snapshots and objects itself, and leaves the other one.
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), Pacing::default())
        .await
        .unwrap();
    assert!(p.done);
    assert_eq!(
        (p.deleted, p.not_owned.clone()),
        (2, vec!["snap-prod".to_string()])
    );
    assert!(store.get(DATA, "p-dp2/backupmeta").is_none());
    data_planes_clean(&store, &ec2, &["dp1", "dp3"]);
    let r = delete::steps::finish(&e, &ec2, step(&out, p.cursor))
        .await
        .unwrap();
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.snapshots_deleted, 6);
    assert_eq!(r.remains.not_owned, ["snap-prod"]);
    assert!(ec2.snapshots.lock().unwrap().contains("snap-prod"));
    assert!(
        !ec2.snapshot_calls
            .lock()
            .unwrap()
            .iter()
            .any(|(s, _)| s == "snap-prod"),
        "never even asked to delete it"
    );
}

#[tokio::test(start_paused = true)]
async fn on_a_gone_data_plane_brfed_deletes_only_what_is_the_backups() {
    let (planes, store, ec2) = (
        FakePlanes::new(2),
        FakeStore::default(),
        FakeVolumes::default(),
    );
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let t = chrono::Utc::now();
    ec2.add_snapshot("snap-other-backup", t);
    ec2.set_tags(
        "snap-other-backup",
        &[(TAG_STACK, CATALOG), (TAG_VOLUME_BACKUP, "team-b/bk")],
    );
    ec2.add_snapshot("snap-other-stack", t);
    ec2.set_tags(
        "snap-other-stack",
        &[(TAG_STACK, "catalog-b"), (TAG_VOLUME_BACKUP, "br/bk")],
    );
    ec2.add_snapshot("snap-untagged", t);
    for s in ["snap-other-backup", "snap-other-stack", "snap-untagged"] {
        add_to_backupmeta(&store, "dp3", s);
    }
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    assert_eq!(out.deletion.members[2].clean_by, CleanBy::Brfed);
    // One of the backup's own was re-tagged by someone since the start: read before the
    // delete, it is left too.
    ec2.set_tags("snap-dp3-1", &[(TAG_VOLUME_BACKUP, "br/someone-else")]);
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), Pacing::default())
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
    let calls: Vec<String> = ec2
        .snapshot_calls
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(calls, ["snap-dp3-0"]);
    data_planes_clean(&store, &ec2, &["dp1", "dp2"]);
    let r = delete::steps::finish(&e, &ec2, step(&out, p.cursor))
        .await
        .unwrap();
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(r.remains.not_owned.len(), 4);
}

#[tokio::test]
async fn member_objects_that_are_not_the_backups_are_left_and_named() {
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    // dp1: another execution's member of that name; dp2: this execution's name, but for a
    // backup of another namespace; dp3: this backup's.
    planes.put_backup("dp1", member("exec-other", "br"));
    planes.put_backup("dp2", member("exec-bk", "team-b"));
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let by: Vec<CleanBy> = out.deletion.members.iter().map(|m| m.clean_by).collect();
    assert_eq!(by, [CleanBy::Foreign, CleanBy::Foreign, CleanBy::DataPlane]);
    assert!(planes.backup("dp1", "tidb", "fed-bk").is_some());
    assert!(planes.backup("dp2", "tidb", "fed-bk").is_some());
    assert!(planes.backup("dp3", "tidb", "fed-bk").is_none());
    assert!(
        !planes
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("dp1/") || l.contains("dp2/")),
        "nothing done to them"
    );
    // Not waited for either.
    assert_eq!(
        delete::steps::observe(&e, step(&out, 0))
            .await
            .unwrap()
            .verdict,
        "met"
    );
    data_planes_clean(&store, &ec2, &["dp3"]);
    let r = delete::steps::finish(&e, &ec2, step(&out, 0))
        .await
        .unwrap();
    assert_eq!(r.result, "Cleaned", "{r:?}");
    assert_eq!(
        r.remains.foreign_members,
        ["dp1/tidb/fed-bk", "dp2/tidb/fed-bk"]
    );
    assert_eq!(ec2.snapshots.lock().unwrap().len(), 4, "their data stays");
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
    let (planes, store, ec2) = fakes();
    seed(&planes, &store, &ec2, "Complete", "Delete");
    let interleaved = Interleaved(&store);
    let e = fake_env(&planes, &interleaved, CATALOG);
    let mut cli = start_input(json!({}));
    cli.execution = "delete-br.bk-20260101T000000Z".into();
    let mut sweep = start_input(json!({}));
    sweep.execution = "delete-br.bk-20260101T000001Z".into();
    let (a, b) = tokio::join!(
        delete::steps::start(&e, &ec2, cli.clone()),
        delete::steps::start(&e, &ec2, sweep.clone())
    );
    let (won, lost) = match (&a, &b) {
        (Ok(_), Err(err)) => (&cli.execution, err),
        (Err(err), Ok(_)) => (&sweep.execution, err),
        _ => panic!("exactly one must run: {a:?} / {b:?}"),
    };
    assert_eq!(lost.name(), "DeletionInProgress", "{lost}");
    assert!(lost.to_string().contains(won.as_str()), "{lost}");
    let deletes = planes
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("delete "))
        .count();
    assert_eq!(deletes, 3, "the members deleted once, by the one that runs");
    let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&store, CATALOG)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&doc.brfed.deletion.unwrap().execution, won);
    let manifest = store.get(CATALOG, &manifest_key("br", "bk")).unwrap();
    assert_eq!(manifest["execution"], json!(won));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_snapshot_never_keeps_the_step_past_its_budget() {
    // dp3 is gone; EC2 throttles every deletion: the backoff (1 s doubling to 60 s, 8 tries)
    // would take over two minutes.
    let (planes, store, ec2) = (
        FakePlanes::new(2),
        FakeStore::default(),
        FakeVolumes::default(),
    );
    seed(&planes, &store, &ec2, "Complete", "Delete");
    *ec2.throttle_every.lock().unwrap() = 1;
    let e = env(&planes, &store);
    let out = delete::steps::start(&e, &ec2, start_input(json!({})))
        .await
        .unwrap();
    let budget = Duration::from_secs(10);
    let pacing = Pacing {
        budget,
        ..Pacing::default()
    };
    let t0 = tokio::time::Instant::now();
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, 0), pacing)
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
    *ec2.throttle_every.lock().unwrap() = 0;
    let p = delete::steps::delete_snapshots(&e, &ec2, step(&out, p.cursor), pacing)
        .await
        .unwrap();
    assert_eq!((p.done, p.deleted), (true, 2));
}
