//! Step `backup-teardown`: which members are torn down, which deleted, and when a member has
//! settled.

use super::*;
use crate::backup::steps::teardown::unsettled_members;
use crate::member::MemberRef;
use crate::ports::Observation;

#[tokio::test]
async fn an_invalid_initialize_member_is_deleted_at_teardown_so_its_init_job_stops() {
    // backup:resume:invalid — the data plane ignores an Invalid Backup: neither teardown nor
    // resumeGcSchedule stops its init job, deleting the Backup does.
    let (w, ctx) = World::at(Stage::ResumeAsked).await;
    w.set(&[("dp1", cond::INVALID)]);
    let failure = w.observe(&ctx, Await::GcResumed).await.failure.unwrap();
    assert_eq!(failure.error, "MemberInvalid");
    w.teardown(&ctx, Some(&failure)).await.unwrap();
    assert!(
        w.member("dp1").is_none(),
        "the Invalid initialize member is deleted"
    );
    let log = w.planes.log.lock().unwrap().clone();
    assert!(log.contains(&"delete Backup dp1/tidb/fed-bk".to_string()));
    for c in ["dp2", "dp3"] {
        let spec = w.spec(c);
        assert_eq!(spec["federalVolumeBackupPhase"], "teardown", "{c}");
        assert!(spec.get("resumeGcSchedule").is_none(), "{c}");
    }
    w.changes_nothing("teardown twice", w.teardown(&ctx, Some(&failure)))
        .await;
    let doc = w.doc().await;
    let dp1 = entry(&doc, "dp1");
    assert!(
        dp1.deleted_at.is_some(),
        "the deletion is recorded: {dp1:?}"
    );
    assert_eq!(dp1.phase, cond::INVALID, "with what the member was");
    assert!(entry(&doc, "dp2").deleted_at.is_none());

    w.set(&[("dp2", cond::COMPLETE), ("dp3", cond::COMPLETE)]);
    assert_eq!(w.verdict(&ctx, Await::Terminal).await, "met");
    let out = w.finalize(&ctx, Some(&failure), None).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    let cause = out.cause.unwrap();
    assert!(cause.contains("brfed deleted dp1/tidb/fed-bk"), "{cause}");
    assert!(
        entry(&out.document, "dp1").deleted_at.is_some(),
        "finalize keeps the record"
    );
}

#[tokio::test]
async fn other_initialize_members_and_other_invalid_members_are_torn_down_not_deleted() {
    // Failed: the data plane deletes its init job itself; resumed: the init job is gone.
    for (cluster, conds) in [
        ("dp1", &[cond::FAILED][..]),
        ("dp1", &[cond::INITIALIZE_COMPLETE, cond::INVALID][..]),
        ("dp1", &[cond::INITIALIZE_FAILED, cond::INVALID][..]),
        ("dp2", &[cond::INVALID][..]),
    ] {
        let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
        for c in conds {
            w.set(&[(cluster, c)]);
        }
        w.teardown(&ctx, None).await.unwrap();
        assert_eq!(w.planes.backup_count(), 3, "{cluster} {conds:?}");
        assert_eq!(
            w.asked("dp1"),
            (json!("teardown"), json!(true)),
            "{cluster} {conds:?}"
        );
        let doc = w.doc().await;
        assert!(
            doc.status.backups.iter().all(|b| b.deleted_at.is_none()),
            "{cluster} {conds:?}"
        );
    }
}

#[tokio::test]
async fn a_deletion_whose_record_failed_is_recorded_by_the_retried_teardown() {
    let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
    w.set(&[("dp1", cond::INVALID)]);
    w.observe(&ctx, Await::SnapshotsComplete).await;
    *w.store.broken.lock().unwrap() = true;
    assert_eq!(
        w.teardown(&ctx, None).await.unwrap_err().name(),
        "CatalogUnavailable"
    );
    assert!(w.member("dp1").is_none());
    *w.store.broken.lock().unwrap() = false;
    w.teardown(&ctx, None).await.unwrap();
    assert!(
        entry(&w.doc().await, "dp1").deleted_at.is_some(),
        "absent now, Invalid when last seen: deleted by the first attempt"
    );
}

#[test]
fn a_member_has_settled_when_it_is_terminal_gone_or_not_this_backups() {
    let members: Vec<MemberRef> = ["dp1", "dp2", "dp3", "dp4", "dp5", "dp6"]
        .iter()
        .map(|c| MemberRef {
            k8s_cluster_name: (*c).into(),
            tc_name: "basic".into(),
            tc_namespace: "tidb".into(),
            backup_name: "fed-bk".into(),
        })
        .collect();
    let ours = |phase: &str, deleting: bool| {
        let mut o = json!({"metadata": {"annotations": {"brfed.io/execution": EXEC}},
            "status": {"phase": phase, "conditions": [{"type": phase, "status": "True"}]}});
        if deleting {
            o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Observation::Present(o)
    };
    let obs = [
        ours("Complete", false),
        ours("Invalid", true),
        Observation::Absent,
        Observation::Present(json!({"metadata": {"annotations": {"brfed.io/execution": "other"}}})),
        ours("VolumeBackupComplete", false),
        Observation::Unreachable("connection refused".into()),
    ];
    assert_eq!(
        unsettled_members(&members, &obs, EXEC),
        [
            "dp2/tidb/fed-bk being deleted",
            "dp5/tidb/fed-bk VolumeBackupComplete",
            "dp6/tidb/fed-bk unreachable (connection refused)"
        ]
    );
    assert_eq!(
        unsettled_members(&members, &obs[..2], EXEC).len(),
        5,
        "a member not observed has not settled"
    );
}

#[tokio::test]
async fn a_refused_change_is_asked_again_whatever_its_message_says() {
    // A refusal that is not the UID precondition (an admission webhook, a quota) must not read
    // as "another object of that name now": the member would be left unasked, and the
    // initialize member's GC paused, until its init job's deadline.
    use crate::backup::steps::teardown::teardown_members;
    let (w, ctx) = World::at(Stage::Executed).await;
    let refusal = "dp1: patch: 422 admission webhook \"quota\" denied the request: 409 objects";
    w.planes.refuse_changes("dp1", Some(refusal));
    let (report, _) = teardown_members(&w.planes, &ctx.members, &ctx.execution).await;
    assert!(report.foreign.is_empty(), "{report:?}");
    assert_eq!(report.unreachable.len(), 1, "{report:?}");
    assert!(
        report.unreachable[0].starts_with("dp1/tidb/fed-bk"),
        "{report:?}"
    );

    w.planes.refuse_changes("dp1", None);
    let (report, _) = teardown_members(&w.planes, &ctx.members, &ctx.execution).await;
    assert!(
        report.requested.contains(&"dp1/tidb/fed-bk".to_string()),
        "{report:?}"
    );
    assert_eq!(w.asked("dp1"), (json!("teardown"), json!(true)));
}

#[tokio::test]
async fn a_change_under_a_stale_uid_is_named_member_replaced() {
    // What teardown reads as "another object of that name now", as the kube adapter names a
    // 409 on a UID precondition.
    use crate::ports::{DataPlanes, MemberKind};
    let (w, ctx) = World::at(Stage::Executed).await;
    let m = &ctx.members[1];
    let patch = w
        .planes
        .patch_member_if(MemberKind::Backup, m, "another-uid", &json!({}))
        .await
        .unwrap_err();
    let delete = w
        .planes
        .delete_member_if(MemberKind::Backup, m, "another-uid")
        .await
        .unwrap_err();
    for e in [patch, delete] {
        assert_eq!(e.name(), "MemberReplaced", "{e}");
    }
    assert!(w.member("dp2").is_some(), "nothing was deleted");
}
