//! Deleting federated backups on the local world (`volume-backup-delete`): the data planes clean
//! up per `cleanPolicy` (the simulated operator's clean job deletes real snapshots and objects in
//! the emulator), brfed verifies with EC2 and S3, and the catalog record goes. Nothing that is not
//! the backup's goes with it: a snapshot slipped into a `backupmeta` survives and is named, and
//! of two deletions started at once exactly one runs.

use brfed_core::backup::member::snapshot_ids;
use brfed_core::tags::{TAG_CLUSTER, TAG_RETAINED, TAG_STACK, TAG_VOLUME_BACKUP};
use brfed_system_tests::dataplane::World;
use brfed_system_tests::fixtures::BackupCase;
use brfed_system_tests::workflow::{catalog_doc, doc_conditions, state_machine};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(120);

fn prefix(c: &BackupCase, plane: &str) -> String {
    format!("{}/backup-{plane}", c.ns)
}

/// Runs a backup with `policy` to Complete; returns the snapshot ids per plane.
async fn backup(c: &BackupCase, policy: &str) -> Vec<(String, Vec<String>)> {
    backup_annotated(c, policy, json!({})).await
}

async fn backup_annotated(
    c: &BackupCase,
    policy: &str,
    annotations: Value,
) -> Vec<(String, Vec<String>)> {
    let input = c
        .input(policy)
        .annotations(annotations)
        .template("snapshotsDeleteRatio", json!(2.0))
        .build();
    let done = c.run(&input, RUN).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let mut out = Vec::new();
    for p in &c.planes {
        let meta = c
            .world
            .cloud
            .get(&c.world.bucket, &format!("{}/backupmeta", prefix(c, p)))
            .await
            .unwrap()
            .expect("backupmeta");
        let ids = snapshot_ids(&serde_json::from_slice(&meta).unwrap());
        assert_eq!(ids.len(), 2, "2 stores per plane");
        out.push((p.clone(), ids));
    }
    out
}

/// Every data plane deleted the backup's objects and its member.
async fn assert_planes_cleaned(c: &BackupCase) {
    for p in &c.planes {
        let left = c
            .world
            .cloud
            .list(&c.world.bucket, &format!("{}/", prefix(c, p)))
            .await
            .unwrap();
        assert!(left.is_empty(), "{p}: objects left {left:?}");
        assert!(
            c.member(p).await.is_none(),
            "{p}: member Backup still there"
        );
    }
}

/// Tags of snapshot `id` (empty when it does not exist).
async fn tags(c: &BackupCase, id: &str) -> BTreeMap<String, String> {
    c.world
        .cloud
        .snapshots_by_id(&[id.to_string()])
        .await
        .ok()
        .and_then(|s| s.into_iter().next())
        .map(|s| s.tags)
        .unwrap_or_default()
}

async fn existing(c: &BackupCase, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        if c.world
            .cloud
            .snapshots_by_id(std::slice::from_ref(id))
            .await
            .is_ok_and(|s| !s.is_empty())
        {
            out.push(id.clone());
        }
    }
    out
}

/// The stack of the deployed functions: the catalog bucket.
fn stack(world: &World) -> String {
    std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_policy_the_data_planes_clean_up_and_brfed_verifies() {
    let c = BackupCase::new("del", "bk", 2).await;
    let snaps = backup(&c, "Delete").await;
    let all: Vec<String> = snaps.iter().flat_map(|(_, s)| s.clone()).collect();
    assert_eq!(existing(&c, &all).await.len(), 6);
    // backup-finalize tagged each with the stack, the backup and its data plane.
    for (plane, ids) in &snaps {
        for id in ids {
            let t = tags(&c, id).await;
            assert_eq!(t.get(TAG_STACK), Some(&stack(&c.world)), "{id}: {t:?}");
            assert_eq!(
                t.get(TAG_VOLUME_BACKUP),
                Some(&format!("br/{}", c.name)),
                "{id}"
            );
            assert_eq!(t.get(TAG_CLUSTER), Some(plane), "{id}");
        }
    }

    let done = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.unwrap();
    assert_eq!(out["result"], "Cleaned", "{out}");
    assert_eq!(out["snapshotsDeleted"], 6, "{out}");
    assert!(
        existing(&c, &all).await.is_empty(),
        "every snapshot is gone in EC2"
    );
    assert_planes_cleaned(&c).await;
    assert!(
        catalog_doc(&c.world, "br", &c.name).await.is_none(),
        "catalog record removed"
    );

    // Deleting it again: named, nothing done.
    let arn = c
        .start_delete("again", &json!({"name": c.name, "namespace": "br"}))
        .await;
    let again = c.flows.wait(&arn, RUN).await;
    assert_eq!(again.status, "FAILED");
    assert_eq!(again.error.as_deref(), Some("BackupNotFound"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retain_policy_keeps_snapshots_and_says_so() {
    let c = BackupCase::new("ret", "bk", 2).await;
    let snaps = backup(&c, "Retain").await;
    let all: Vec<String> = snaps.iter().flat_map(|(_, s)| s.clone()).collect();
    let done = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.unwrap();
    assert_eq!(
        (out["result"].as_str(), out["snapshotsRetained"].as_u64()),
        (Some("Cleaned"), Some(6)),
        "{out}"
    );
    assert_eq!(
        existing(&c, &all).await.len(),
        6,
        "Retain keeps every snapshot"
    );
    for id in &all {
        assert!(
            tags(&c, id).await.contains_key(TAG_RETAINED),
            "{id} marked as kept on purpose"
        );
    }
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_slipped_into_backupmeta_survives_the_deletion_and_is_named() {
    let c = BackupCase::new("own", "bk", 2).await;
    let snaps = backup(&c, "Delete").await;
    let all: Vec<String> = snaps.iter().flat_map(|(_, s)| s.clone()).collect();
    // A production snapshot of another volume, which brfed never made...
    let tags = BTreeMap::from([("app".to_string(), "production".to_string())]);
    let vol = c
        .world
        .cloud
        .create_empty_volume("us-west-2a", 1, &tags)
        .await
        .unwrap();
    let prod = c
        .world
        .cloud
        .create_snapshot(&vol, "production data", &tags)
        .await
        .unwrap();
    // ...listed in dp2's backupmeta by whoever can write the backup prefix.
    let plane = &c.planes[1];
    let key = format!("{}/backupmeta", prefix(&c, plane));
    let mut meta: Value = serde_json::from_slice(
        &c.world
            .cloud
            .get(&c.world.bucket, &key)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    meta["tikv"]["stores"][0]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"volume_id": vol, "type": "storage.data-dir", "snapshot_id": prod}));
    c.world
        .cloud
        .put(&c.world.bucket, &key, meta.to_string().into_bytes())
        .await
        .unwrap();

    let done = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.unwrap();
    assert_eq!(out["result"], "Cleaned", "{out}");
    assert_eq!(out["notOwned"], json!([prod]), "named in the result: {out}");
    assert_eq!(out["snapshotsDeleted"], 6, "{out}");
    assert_eq!(
        existing(&c, std::slice::from_ref(&prod)).await,
        std::slice::from_ref(&prod),
        "the production snapshot survives"
    );
    assert!(
        existing(&c, &all).await.is_empty(),
        "the backup's own are gone"
    );
    assert_planes_cleaned(&c).await;
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
    let _ = c.world.cloud.delete_snapshot(&prod).await;
    let _ = c.world.cloud.delete_volume(&vol).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_deletions_started_at_once_exactly_one_runs_the_other_is_refused_by_name() {
    let c = BackupCase::new("two", "bk", 2).await;
    backup(&c, "Delete").await;
    // As `brfed backup delete` and the retention sweep name them, a second apart.
    let now = chrono::Utc::now();
    let names = [
        brfed_core::names::deletion_execution_name("br", &c.name, now),
        brfed_core::names::deletion_execution_name(
            "br",
            &c.name,
            now + chrono::Duration::seconds(1),
        ),
    ];
    let sm = state_machine("volume-backup-delete");
    let input = json!({"name": c.name, "namespace": "br"});
    let (a, b) = tokio::join!(
        c.flows.start(&sm, &names[0], &input),
        c.flows.start(&sm, &names[1], &input)
    );
    let (a, b) = tokio::join!(c.flows.wait(&a, RUN), c.flows.wait(&b, RUN));
    let (won, lost) = match (a.status.as_str(), b.status.as_str()) {
        ("SUCCEEDED", "FAILED") => (a, b),
        ("FAILED", "SUCCEEDED") => (b, a),
        _ => panic!("exactly one must run: {a:?} / {b:?}"),
    };
    assert_eq!(won.output.unwrap()["result"], "Cleaned");
    assert_eq!(
        lost.error.as_deref(),
        Some("DeletionInProgress"),
        "{lost:?}"
    );
    assert!(
        lost.cause.unwrap_or_default().contains(&won.arn),
        "the refusal names the deletion that runs"
    );
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_deletion_is_marked_clean_failed_and_can_be_run_again() {
    let c = BackupCase::new("stp", "bk", 2).await;
    // dp2's clean job hangs: the deletion waits on it.
    backup_annotated(
        &c,
        "Delete",
        json!({"sim.brfed.dev/fault": "dp2:clean:hang"}),
    )
    .await;
    let arn = c
        .start_delete("delete", &json!({"name": c.name, "namespace": "br"}))
        .await;
    // Until the catalog says Deleting, then stop it as from the console.
    let mut deleting = false;
    for _ in 0..100 {
        let doc = catalog_doc(&c.world, "br", &c.name).await.unwrap();
        if doc["brfed"]["deletion"]["state"] == "Deleting" {
            deleting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(deleting);
    c.flows.stop(&arn).await;
    let mut state = Value::Null;
    for _ in 0..150 {
        let doc = catalog_doc(&c.world, "br", &c.name).await.unwrap();
        state = doc["brfed"]["deletion"]["state"].clone();
        if state == "CleanFailed" {
            let cond = doc_conditions(&doc)
                .iter()
                .find(|x| x["type"] == "CleanFailed")
                .unwrap();
            assert_eq!(cond["reason"], "ExecutionAborted");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "CleanFailed", "the abort rule marked it");
    // Not stuck: another deletion starts (and waits on dp2 again, then is stopped too).
    let again = c
        .start_delete(
            "again",
            &json!({"name": c.name, "namespace": "br", "options": {"timeoutSeconds": 3}}),
        )
        .await;
    let done = c.flows.wait(&again, RUN).await;
    assert_eq!(
        done.error.as_deref(),
        Some("DeletionDeadlineExceeded"),
        "{done:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_backup_is_not_deleted() {
    let c = BackupCase::new("run", "bk", 2).await;
    // A catalog record of a backup still running (its execution is elsewhere).
    let doc = json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": c.name, "namespace": "br"},
        "spec": {"clusters": [{"k8sClusterName": c.planes[0], "tcName": "basic", "tcNamespace": c.ns}],
                 "template": {"s3": {"provider": "aws", "bucket": c.world.bucket, "prefix": "x"}, "cleanPolicy": "Delete"}},
        "status": {"phase": "Running"}, "brfed": {"execution": "elsewhere"}});
    let bucket = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| c.world.bucket.clone());
    c.world
        .cloud
        .put(
            &bucket,
            &brfed_core::backup::status::backup_key("br", &c.name),
            doc.to_string().into_bytes(),
        )
        .await
        .unwrap();
    let done = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some("BackupRunning"), "{done:?}");
    let kept = catalog_doc(&c.world, "br", &c.name).await.unwrap();
    assert!(kept["brfed"].get("deletion").is_none(), "nothing recorded");
}

/// A member that failed before BR wrote its `backupmeta` (dp2's execute job fails): the data
/// plane's clean job deletes nothing then, as the real one's, so brfed deletes that member's
/// objects itself; the deletion ends `Cleaned` with nothing left (it ended `CleanFailed` for ever
/// before).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_member_without_backupmeta_is_cleaned_and_the_deletion_ends() {
    let c = BackupCase::new("nometa", "bk", 2).await;
    let input = c
        .input("Delete")
        .annotations(json!({"sim.brfed.dev/fault": "dp2:execute:fail"}))
        .build();
    let done = c.run(&input, RUN).await;
    assert_eq!(done.status, "FAILED", "{done:?}");
    let dp2 = prefix(&c, "dp2");
    let objects = c
        .world
        .cloud
        .list(&c.world.bucket, &format!("{dp2}/"))
        .await
        .unwrap();
    assert!(
        !objects.is_empty() && !objects.iter().any(|k| k.ends_with("/backupmeta")),
        "dp2 wrote clustermeta but no backupmeta: {objects:?}"
    );

    let done = c
        .delete(&json!({"name": c.name, "namespace": "br"}), RUN)
        .await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.unwrap();
    assert_eq!(out["result"], "Cleaned", "{out}");
    assert_planes_cleaned(&c).await;
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
}
