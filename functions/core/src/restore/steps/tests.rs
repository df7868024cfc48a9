//! The restore steps on in-memory fakes.

use crate::backup::judge::Verdict;
use crate::member::MemberRef;
use crate::ports::Observation;
use crate::restore::judge::RestoreAwait;
use crate::restore::judge::judge_restore;
use crate::restore::judge::volumes_settled;
use crate::restore::member::rcond;
use serde_json::{Value, json};

fn member() -> MemberRef {
    MemberRef {
        k8s_cluster_name: "dp1".into(),
        tc_name: "basic".into(),
        tc_namespace: "tidb".into(),
        backup_name: "fed-r1".into(),
    }
}

fn restore_obj(phase: &str, conditions: &[&str]) -> Observation {
    let conds: Vec<Value> = conditions
        .iter()
        .map(|t| json!({"type": t, "status": "True"}))
        .collect();
    Observation::Present(json!({
        "metadata": {"name": "fed-r1"},
        "status": {"phase": phase, "conditions": conds}
    }))
}

#[test]
fn a_member_settles_once_its_volumes_are_known_or_it_has_ended() {
    assert!(!volumes_settled(&restore_obj("Running", &[])));
    assert!(!volumes_settled(&Observation::Unreachable("down".into())));
    assert!(volumes_settled(&Observation::Absent));
    assert!(volumes_settled(&restore_obj(
        "TikvComplete",
        &[rcond::VOLUME_COMPLETE, rcond::TIKV_COMPLETE]
    )));
    assert!(volumes_settled(&restore_obj("Failed", &[rcond::FAILED])));
    assert!(volumes_settled(&restore_obj("Invalid", &[rcond::INVALID])));
    assert!(volumes_settled(&restore_obj("CleanVolumeComplete", &[])));
}

#[test]
fn settling_waits_for_a_running_member_and_ignores_failed_ones() {
    let members = vec![member(), member(), member()];
    let failed = restore_obj("Failed", &[rcond::FAILED]);
    let running = restore_obj("Running", &[]);
    let done = restore_obj("VolumeComplete", &[rcond::VOLUME_COMPLETE]);
    let judge =
        |obs: &[Observation]| judge_restore(RestoreAwait::Settled, &members, obs, None, false);
    assert_eq!(
        judge(&[failed.clone(), running, done.clone()]),
        Verdict::Pending
    );
    assert_eq!(
        judge(&[failed.clone(), done.clone(), Observation::Absent]),
        Verdict::Met
    );
    // Any other wait ends at the failure.
    assert!(matches!(
        judge_restore(
            RestoreAwait::VolumesRestored,
            &members,
            &[failed, done.clone(), done],
            None,
            false
        ),
        Verdict::Failed(_)
    ));
}

#[tokio::test]
async fn a_backup_under_deletion_is_not_restorable() {
    use crate::backup::spec::BackupRequest;
    use crate::backup::status::{DeletionRecord, VolumeBackupDoc, backup_key};
    use crate::restore::spec::RestoreRequest;
    use crate::restore::steps::resolve_from_backup;
    use crate::testing::{fake_env, restore_world};

    let (planes, store) = restore_world("data", "tidb");
    let env = fake_env(&planes, &store, "catalog");
    let backup = BackupRequest::from_value(json!({
        "metadata": {"name": "bk", "namespace": "br"},
        "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"}],
                 "template": {"s3": {"provider": "aws", "bucket": "data", "prefix": "p"}}}}))
    .unwrap();
    let mut doc = VolumeBackupDoc::new(&backup, "exec", backup.members(), "2026-01-01T00:00:00Z");
    let now = "2026-01-01T01:00:00Z".parse().unwrap();
    doc.status
        .progress
        .set_condition("Complete", None, None, now);
    let restore = || {
        RestoreRequest::from_value(json!({
            "metadata": {"name": "r", "namespace": "br"},
            "fromBackup": {"namespace": "br", "name": "bk"},
            "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "basic",
                                   "tcNamespace": "tidb", "azName": "az-dp1"}],
                     "template": {}}}))
        .unwrap()
    };
    for (state, says) in [
        ("Deleting", "is Deleting"),
        ("CleanFailed", "is CleanFailed"),
    ] {
        let mut d = doc.clone();
        d.brfed.deletion = Some(DeletionRecord {
            execution: "delete-bk".into(),
            requested_at: "2026-01-02T00:00:00Z".into(),
            state: state.into(),
            ..Default::default()
        });
        if state == "CleanFailed" {
            d.status
                .progress
                .set_condition("CleanFailed", None, None, now);
        }
        store.put(
            "catalog",
            &backup_key("br", "bk"),
            serde_json::to_value(&d).unwrap(),
        );
        let err = resolve_from_backup(&env, &mut restore()).await.unwrap_err();
        assert_eq!(err.name(), "BackupNotRestorable", "{state}: {err}");
        assert!(err.to_string().contains(says), "{state}: {err}");
    }
}

/// check-wal-only ends when every member's warmup checked the WAL (`WarmUpComplete`), without
/// waiting for the members' `Complete`, as the original's `maybeBreakForCheckWALOnly` decides; a
/// failed or invalid member still fails it.
#[test]
fn a_wal_check_is_met_when_every_member_warmed_up_and_fails_on_a_failed_member() {
    let members = vec![member(), member()];
    let warmed = restore_obj(
        "VolumeComplete",
        &[
            rcond::VOLUME_COMPLETE,
            rcond::WARMUP_STARTED,
            rcond::WARMUP_COMPLETE,
        ],
    );
    let warming = restore_obj(
        "VolumeComplete",
        &[rcond::VOLUME_COMPLETE, rcond::WARMUP_STARTED],
    );
    let judge = |obs: &[Observation], async_warmup: bool| {
        judge_restore(RestoreAwait::WalChecked, &members, obs, None, async_warmup)
    };
    for async_warmup in [false, true] {
        assert_eq!(
            judge(&[warmed.clone(), warmed.clone()], async_warmup),
            Verdict::Met
        );
        assert_eq!(
            judge(&[warmed.clone(), warming.clone()], async_warmup),
            Verdict::Pending
        );
    }
    // The same members are not yet Complete.
    assert_eq!(
        judge_restore(
            RestoreAwait::Complete,
            &members,
            &[warmed.clone(), warmed.clone()],
            None,
            false
        ),
        Verdict::Pending
    );
    let failed = restore_obj("Failed", &[rcond::WARMUP_COMPLETE, rcond::FAILED]);
    assert!(matches!(
        judge(&[warmed, failed], false),
        Verdict::Failed(_)
    ));
}

/// `warmupStrategy: check-wal-only` runs only with `warmup: sync`: the original starts no TiKV for
/// it and an async warmup waits for running TiKV pods, so its members would never end.
#[test]
fn check_wal_only_without_a_sync_warmup_is_refused_by_name() {
    use crate::restore::spec::RestoreRequest;
    use crate::testing::restore_request;
    let with = |warmup: &str| {
        let mut v = restore_request("r", "data", "tidb", false);
        v["spec"]["template"] = json!({"warmup": warmup, "warmupStrategy": "check-wal-only"});
        RestoreRequest::from_value(v).unwrap().validate()
    };
    assert!(with("sync").is_ok(), "{:?}", with("sync"));
    for (warmup, says) in [("async", "not `async`"), ("", "warmup is not set")] {
        let err = with(warmup).unwrap_err();
        assert_eq!(err.name(), "InvalidSpec", "{warmup}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("check-wal-only needs warmup sync") && text.contains(says),
            "{warmup}: {text}"
        );
    }
}

/// A cluster without `azName` is accepted, as the original takes it (each volume is restored
/// into its backup volume's AZ), and the member `Restore` gets an empty `volumeAZ`, as the
/// original's `buildRestoreMember` writes it.
#[test]
fn a_restore_without_an_az_name_is_accepted_as_the_original_accepts_it() {
    use crate::restore::spec::RestoreRequest;
    use crate::testing::restore_request;
    let mut v = restore_request("r", "data", "tidb", false);
    for c in v["spec"]["clusters"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("azName");
    }
    let req = RestoreRequest::from_value(v).unwrap();
    req.validate().expect("valid without azName");
    assert!(req.spec.clusters.iter().all(|c| c.az_name.is_empty()));
}
