//! What a restore may touch, on in-memory fakes: one restore of a name at a time, and its cleanup
//! deletes only member `Restore`s of its own execution.

use brfed_core::StepError;
use brfed_core::backup::steps::StartInput;
use brfed_core::catalog::{Catalog, CatalogDoc};
use brfed_core::member::MemberRef;
use brfed_core::ports::{DataPlanes, MemberKind, ObjectStore};
use brfed_core::restore::member::rcond;
use brfed_core::restore::status::{VolumeRestoreDoc, restore_key};
use brfed_core::restore::steps::{
    RestoreEnv, RestoreStartOutput, RestoreStepInput, restore_finalize, restore_start,
};
use brfed_core::testing::{
    FakePlanes, FakeStore, FakeVolumes, fake_restore_env, restore_request, restore_world,
};
use serde_json::json;

const CATALOG: &str = "catalog";
const DATA: &str = "data";
const TARGET_NS: &str = "tidb-restore";

fn exec(name: &str) -> String {
    format!("arn:aws:states:us-west-2:123456789012:execution:volume-restore:{name}")
}

/// The data planes and the backup a restore starts from ([`restore_world`]).
fn world() -> (FakePlanes, FakeStore) {
    restore_world(DATA, TARGET_NS)
}

async fn start<S: ObjectStore>(
    e: &RestoreEnv<'_, FakePlanes, S, FakeVolumes>,
    name: &str,
    execution: &str,
    cleanup: bool,
) -> Result<RestoreStartOutput, StepError> {
    restore_start(
        e,
        StartInput {
            input: restore_request(name, DATA, TARGET_NS, cleanup),
            execution: execution.into(),
        },
    )
    .await
}

#[tokio::test]
async fn of_two_starts_of_one_restore_name_the_one_that_loses_the_catalog_create_stops() {
    let (planes, store) = world();
    // The winner's document, as the other start wrote it.
    let winner = {
        let (p2, s2) = world();
        let ec2 = FakeVolumes::default();
        start(
            &fake_restore_env(&p2, &s2, &ec2, CATALOG),
            "r1",
            &exec("winner"),
            false,
        )
        .await
        .unwrap();
        s2.get(CATALOG, &restore_key("br", "r1")).unwrap()
    };
    // another start of the same restore wins the race: its document appears between this
    // start's read and its conditional create
    store.race_next_put("/r1.json", winner);
    let raced = store;
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &raced, &ec2, CATALOG);
    let err = start(&e, "r1", &exec("loser"), false).await.unwrap_err();
    assert_eq!(err.name(), "RestoreExists", "{err}");
    assert!(err.to_string().contains("winner"), "{err}");
    assert_eq!(
        planes.restore_count(),
        0,
        "{:?}",
        planes.log.lock().unwrap()
    );
    let (doc, _) = Catalog::<_, VolumeRestoreDoc>::new(&raced, CATALOG)
        .get("br", "r1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.execution(), exec("winner"));
}

#[tokio::test]
async fn a_second_start_of_a_running_restore_name_is_refused_by_name() {
    let (planes, store) = world();
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    start(&e, "r1", &exec("first"), false).await.unwrap();
    let err = start(&e, "r1", &exec("second"), false).await.unwrap_err();
    assert_eq!(err.name(), "RestoreExists", "{err}");
    // the first one's start, repeated, is a no-op that succeeds
    start(&e, "r1", &exec("first"), false).await.unwrap();
}

fn step_input(out: &RestoreStartOutput) -> RestoreStepInput {
    serde_json::from_value(json!({
        "restore": out.restore,
        "failure": {"Error": "MemberFailed", "Cause": "simulated"},
    }))
    .unwrap()
}

#[tokio::test]
async fn the_cleanup_deletes_only_member_restores_of_its_own_execution() {
    let (planes, store) = world();
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    let out = start(&e, "r1", &exec("r1"), true).await.unwrap();
    let m = |p: &str| MemberRef {
        k8s_cluster_name: p.into(),
        tc_name: "basic".into(),
        tc_namespace: TARGET_NS.into(),
        backup_name: "fed-r1".into(),
    };
    // dp2's Restore of that name was replaced by someone else's (another execution); dp3's
    // carries the execution but not the federation namespace.
    planes
        .delete_member(MemberKind::Restore, &m("dp2"))
        .await
        .unwrap();
    let foreign = json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Restore",
        "metadata": {"name": "fed-r1", "namespace": TARGET_NS,
                     "annotations": {"brfed.io/execution": exec("someone-else"), "brfed.io/federation-namespace": "br"}},
        "spec": {}});
    planes
        .create_member(MemberKind::Restore, "dp2", &foreign)
        .await
        .unwrap();
    planes
        .delete_member(MemberKind::Restore, &m("dp3"))
        .await
        .unwrap();
    let mut other_ns = foreign.clone();
    other_ns["metadata"]["annotations"] =
        json!({"brfed.io/execution": exec("r1"), "brfed.io/federation-namespace": "team-b"});
    planes
        .create_member(MemberKind::Restore, "dp3", &other_ns)
        .await
        .unwrap();
    planes.add_restore_condition("dp1", TARGET_NS, "fed-r1", rcond::FAILED);

    let done = restore_finalize(&e, step_input(&out)).await.unwrap();
    assert_eq!(done.error.as_deref(), Some("MemberFailed"));
    assert!(
        planes.restore("dp1", TARGET_NS, "fed-r1").is_none(),
        "own member deleted"
    );
    assert_eq!(
        planes.restore("dp2", TARGET_NS, "fed-r1"),
        Some(foreign),
        "another execution's Restore is left"
    );
    assert_eq!(
        planes.restore("dp3", TARGET_NS, "fed-r1"),
        Some(other_ns),
        "a Restore of another federation namespace is left"
    );
    let doc: VolumeRestoreDoc =
        serde_json::from_value(store.get(CATALOG, &restore_key("br", "r1")).unwrap()).unwrap();
    let left = &doc.brfed.leftovers;
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
    let (planes, store) = world();
    let ec2 = FakeVolumes::default();
    let e = fake_restore_env(&planes, &store, &ec2, CATALOG);
    let out = start(&e, "r1", &exec("r1"), false).await.unwrap();
    let dp2 = MemberRef {
        k8s_cluster_name: "dp2".into(),
        tc_name: "basic".into(),
        tc_namespace: TARGET_NS.into(),
        backup_name: "fed-r1".into(),
    };
    planes
        .delete_member(MemberKind::Restore, &dp2)
        .await
        .unwrap();
    let foreign = json!({"apiVersion": "pingcap.com/v1alpha1", "kind": "Restore",
        "metadata": {"name": "fed-r1", "namespace": TARGET_NS,
                     "annotations": {"brfed.io/execution": exec("someone-else"), "brfed.io/federation-namespace": "br"}},
        "spec": {"federalVolumeRestorePhase": "restore-volume"}});
    planes
        .create_member(MemberKind::Restore, "dp2", &foreign)
        .await
        .unwrap();
    let err = brfed_core::restore::steps::restore_finish(&e, step_input(&out))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "MemberNameConflict", "{err}");
    assert_eq!(planes.restore("dp2", TARGET_NS, "fed-r1"), Some(foreign));
}
