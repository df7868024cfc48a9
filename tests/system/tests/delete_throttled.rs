//! Deleting a backup whose data plane no longer exists, under EC2 throttling: brfed deletes the
//! snapshots itself from the S3 metadata, never faster than the configured rate, backs off when
//! EC2 says `RequestLimitExceeded`, and ends with every snapshot gone and no failure.
//!
//! Alone in its test binary: the throttle is the emulator's, for every caller.

use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::{VolumeBackupDoc, backup_key};
use brfed_core::tags::{TAG_STACK, TAG_VOLUME_BACKUP};
use brfed_system_tests::dataplane::{World, unique};
use brfed_system_tests::workflow::{Workflows, catalog_doc, emulator, state_machine};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SNAPSHOTS: usize = 20;
const RATE: f64 = 4.0;

/// Removes the throttle however the test ends.
struct Throttle;

impl Drop for Throttle {
    fn drop(&mut self) {
        emulator("DELETE", "/_brfed/faults/ec2/DeleteSnapshot", None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gone_data_planes_snapshots_are_deleted_at_the_rate_through_throttling() {
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    let ns = unique("gone");
    let name = format!("old-{}", &ns[ns.len() - 8..]);
    let prefix = format!("{ns}/bk");

    // A backup taken when data plane `dp-gone` existed: its snapshots (tagged as its finalize
    // did: this stack's, this backup's), its S3 metadata, its catalog record. The kubeconfig no
    // longer has that context.
    let catalog = std::env::var("BRFED_CATALOG_BUCKET").unwrap_or_else(|_| world.bucket.clone());
    let tags = BTreeMap::from([
        ("brfed-test".to_string(), ns.clone()),
        (TAG_STACK.to_string(), catalog.clone()),
        (TAG_VOLUME_BACKUP.to_string(), format!("br/{name}")),
    ]);
    let vol = world
        .cloud
        .create_empty_volume("us-west-2a", 1, &tags)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..SNAPSHOTS {
        ids.push(
            world
                .cloud
                .create_snapshot(&vol, &format!("{name} {i}"), &tags)
                .await
                .unwrap(),
        );
    }
    let volumes: Vec<Value> = ids
        .iter()
        .map(|s| json!({"volume_id": vol, "type": "storage.data-dir", "snapshot_id": s}))
        .collect();
    let member_prefix = format!("{prefix}-dp-gone");
    for (key, body) in [
        (
            "backupmeta",
            json!({"tikv": {"replicas": 1, "stores": [{"store_id": 1, "volumes": volumes}]}}),
        ),
        ("clustermeta", json!({})),
    ] {
        world
            .cloud
            .put(
                &world.bucket,
                &format!("{member_prefix}/{key}"),
                body.to_string().into_bytes(),
            )
            .await
            .unwrap();
    }
    let req = BackupRequest::from_value(json!({
        "metadata": {"name": name, "namespace": "br"},
        "spec": {"clusters": [{"k8sClusterName": "dp-gone", "tcName": "basic", "tcNamespace": "tidb"}],
                 "template": {"br": {}, "s3": {"provider": "aws", "bucket": world.bucket, "prefix": prefix},
                              "cleanPolicy": "Delete"}}}))
    .unwrap();
    let members = req.members();
    let mut doc = VolumeBackupDoc::new(&req, "old-execution", members, "2026-01-01T00:00:00Z");
    doc.status.progress.phase = Some("Complete".into());
    world
        .cloud
        .put(
            &catalog,
            &backup_key("br", &name),
            serde_json::to_vec(&doc).unwrap(),
        )
        .await
        .unwrap();

    // EC2 allows 2 deletions/s (burst 1); brfed is configured for 4/s.
    let _guard = Throttle;
    let since = emulator("GET", "/_brfed/ec2-calls?action=DeleteSnapshot", None)["lastSeq"]
        .as_u64()
        .unwrap_or(0);
    emulator(
        "PUT",
        "/_brfed/faults/ec2/DeleteSnapshot",
        Some(&json!({"rate": 2.0, "burst": 1})),
    );
    let arn = flows
        .start(
            &state_machine("volume-backup-delete"),
            &format!("delete-{name}"),
            &json!({"name": name, "namespace": "br", "options": {"snapshotsPerSecond": RATE}}),
        )
        .await;
    let done = flows.wait(&arn, Duration::from_secs(180)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.unwrap();
    assert_eq!(out["result"], "Cleaned", "{out}");
    assert_eq!(out["snapshotsDeleted"], SNAPSHOTS, "{out}");

    // Every snapshot is gone, and so are the member's objects and the catalog record.
    for id in &ids {
        assert!(
            world
                .cloud
                .snapshots_by_id(std::slice::from_ref(id))
                .await
                .map_or(true, |s| s.is_empty()),
            "{id} still exists"
        );
    }
    assert!(
        world
            .cloud
            .list(&world.bucket, &format!("{member_prefix}/"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(catalog_doc(&world, "br", &name).await.is_none());

    // The journal: each snapshot accepted exactly once, some calls throttled, and no two calls
    // closer together than the configured rate allows.
    let calls = emulator(
        "GET",
        &format!("/_brfed/ec2-calls?action=DeleteSnapshot&since={since}"),
        None,
    )["calls"]
        .as_array()
        .cloned()
        .unwrap();
    let ours: BTreeSet<&String> = ids.iter().collect();
    let mine: Vec<&Value> = calls
        .iter()
        .filter(|c| {
            c["snapshotId"]
                .as_str()
                .is_some_and(|s| ours.contains(&s.to_string()))
        })
        .collect();
    let accepted: Vec<&&Value> = mine.iter().filter(|c| c["throttled"] == false).collect();
    let throttled = mine.len() - accepted.len();
    assert_eq!(accepted.len(), SNAPSHOTS, "each snapshot deleted once");
    assert!(
        accepted.iter().all(|c| c["status"] == 200),
        "no failed call"
    );
    assert!(
        throttled > 0,
        "EC2 throttled some calls (the test must exercise the backoff)"
    );
    let times: Vec<f64> = mine.iter().map(|c| c["t"].as_f64().unwrap()).collect();
    let min_gap = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::MAX, f64::min);
    assert!(
        min_gap >= 1.0 / RATE - 0.03,
        "two DeleteSnapshot calls {min_gap:.3} s apart: faster than {RATE}/s"
    );
    let span = times.last().unwrap() - times.first().unwrap();
    println!(
        "{} DeleteSnapshot calls ({} throttled) in {span:.1} s, closest {min_gap:.3} s apart (limit {:.3} s)",
        mine.len(),
        throttled,
        1.0 / RATE
    );
}
