//! Two stacks (two catalog buckets) in one account and region: `brfed orphans --delete` run for
//! one never touches the other's snapshots, nor snapshots a deletion kept on purpose unless asked
//! (`--include-retained`), nor snapshots tagged before stacks were (listed as unknown-stack).
//!
//! The stacks are two fresh buckets that no deployed function uses: the CLI is run with
//! `BRFED_CATALOG_BUCKET` set to each, as an operator of that stack would. Snapshots are made in
//! the emulator with the tags `backup-finalize` writes (and a deletion's `brfed.dev/retained`).
//! Needs `target/debug/brfed` (`cargo build -p brfed-cli`).

use brfed_core::tags::{TAG_CLUSTER, TAG_RETAINED, TAG_STACK, TAG_VOLUME_BACKUP};
use brfed_system_tests::dataplane::{World, unique};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `target/debug/brfed`, beside this test's own `target/debug/deps/orphans_two_stacks-*`.
fn brfed_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/<test>")
        .join("brfed");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (cargo build -p brfed-cli)",
        bin.display()
    );
    bin
}

/// `brfed orphans ARGS -o json` for stack `stack`: its JSON report.
async fn orphans(stack: &str, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(brfed_bin())
        .arg("orphans")
        .args(args)
        .args(["-o", "json"])
        .env("BRFED_CATALOG_BUCKET", stack)
        .output()
        .await
        .expect("run brfed");
    assert!(
        out.status.success(),
        "brfed orphans {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Ids of the snapshots in the groups of `report[key]`.
fn ids(report: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = report[key]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["snapshots"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(String::from))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_of_one_stack_never_touch_another_stacks_or_retained_snapshots() {
    let world = World::from_env().await;
    let cloud = &world.cloud;
    let (a, b) = (unique("stack-a"), unique("stack-b"));
    for bucket in [&a, &b] {
        cloud.ensure_bucket(bucket).await.unwrap();
    }
    let marker = unique("orph");
    let vol = cloud
        .create_empty_volume(
            "us-west-2a",
            1,
            &BTreeMap::from([("brfed-test".to_string(), marker.clone())]),
        )
        .await
        .unwrap();
    let snap = |tags: &[(&str, &str)]| {
        let mut t = BTreeMap::from([("brfed-test".to_string(), marker.clone())]);
        t.extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let vol = vol.clone();
        async move {
            cloud
                .create_snapshot(&vol, "orphans test", &t)
                .await
                .unwrap()
        }
    };
    // The same backup name `br/nightly` in both stacks, neither in its catalog any more.
    let a1 = snap(&[
        (TAG_STACK, &a),
        (TAG_VOLUME_BACKUP, "br/nightly"),
        (TAG_CLUSTER, "dp1"),
    ])
    .await;
    let b1 = snap(&[
        (TAG_STACK, &b),
        (TAG_VOLUME_BACKUP, "br/nightly"),
        (TAG_CLUSTER, "dp1"),
    ])
    .await;
    // Kept on purpose by a Retain deletion in stack a.
    let a_kept = snap(&[
        (TAG_STACK, &a),
        (TAG_VOLUME_BACKUP, "br/kept"),
        (TAG_RETAINED, "2026-12-01T00:00:00.000Z"),
    ])
    .await;
    // Tagged by an older version: a backup, no stack.
    let old = snap(&[(TAG_VOLUME_BACKUP, "br/nightly")]).await;
    let exists = |id: String| async move {
        cloud
            .snapshots_by_id(std::slice::from_ref(&id))
            .await
            .is_ok_and(|s| !s.is_empty())
    };

    // Stack a sees its orphan, counts its retained one, lists the old one apart.
    let listed = orphans(&a, &[]).await;
    assert_eq!(
        ids(&listed, "orphans"),
        std::slice::from_ref(&a1),
        "{listed}"
    );
    assert_eq!(listed["retainedLeftOut"], 1, "{listed}");
    assert!(ids(&listed, "unknownStack").contains(&old), "{listed}");

    // --delete in stack a: only a1 goes.
    let deleted = orphans(&a, &["--delete", "--snapshots-per-second", "10"]).await;
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    assert!(!exists(a1.clone()).await, "a's orphan deleted");
    assert!(exists(b1.clone()).await, "b's snapshot untouched");
    assert!(
        exists(a_kept.clone()).await,
        "the retained snapshot survives"
    );
    assert!(
        exists(old.clone()).await,
        "the unknown-stack snapshot survives"
    );

    // Asked for explicitly: the retained one goes, still nothing of b nor the old one.
    let with_retained = orphans(
        &a,
        &[
            "--delete",
            "--include-retained",
            "--snapshots-per-second",
            "10",
        ],
    )
    .await;
    assert_eq!(
        ids(&with_retained, "orphans"),
        std::slice::from_ref(&a_kept),
        "{with_retained}"
    );
    assert!(!exists(a_kept.clone()).await);
    assert!(exists(b1.clone()).await);
    assert!(exists(old.clone()).await);

    // Stack b deletes its own; the old one is never deleted by any stack.
    let deleted = orphans(&b, &["--delete", "--snapshots-per-second", "10"]).await;
    assert_eq!(deleted["deleted"], 1, "{deleted}");
    assert!(!exists(b1.clone()).await);
    assert!(exists(old.clone()).await);

    let _ = cloud.delete_snapshot(&old).await;
    let _ = cloud.delete_volume(&vol).await;
}
