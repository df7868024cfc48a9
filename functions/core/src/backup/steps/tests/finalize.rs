//! Step `backup-finalize`: the failure it names from what the members ended as, and the members
//! a teardown could not reach, asked before anything terminal is written.

use super::*;

#[tokio::test]
async fn a_member_invalid_at_teardown_fails_the_backup_member_invalid() {
    // backup:teardown:invalid — no failure before teardown; dp2 turns Invalid in it.
    let (w, ctx) = World::at(Stage::ResumeAsked).await;
    w.set(&[("dp1", cond::INITIALIZE_COMPLETE)]);
    w.each(cond::VOLUME_COMPLETE);
    w.teardown(&ctx, None).await.unwrap();
    w.set(&[
        ("dp1", cond::COMPLETE),
        ("dp2", cond::INVALID),
        ("dp3", cond::COMPLETE),
    ]);
    let observed = w.observe(&ctx, Await::Terminal).await;
    assert_eq!(observed.verdict, "met");
    let out = w.finalize(&ctx, None, Some(observed)).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    assert!(out.cause.unwrap().contains("dp2"));
}

#[tokio::test]
async fn a_deleted_initialize_member_counts_as_invalid_not_missing() {
    let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
    w.set(&[("dp1", cond::INVALID)]);
    w.teardown(&ctx, None).await.unwrap();
    w.set(&[("dp2", cond::COMPLETE), ("dp3", cond::COMPLETE)]);
    let out = w.finalize(&ctx, None, None).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    let cause = out.cause.unwrap();
    assert!(
        cause.contains("of clusters dp1 failed") && cause.contains("brfed deleted dp1/tidb/fed-bk"),
        "{cause}"
    );
}

#[tokio::test]
async fn finalize_asks_the_members_a_teardown_could_not_reach_before_it_writes_anything_terminal() {
    // The workflow's own failure path: Teardown gave up on an unreachable plane (its Catch goes
    // on to the wait and Finalize), which marked the backup Failed with that member never told.
    let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
    w.planes.set_down("dp1", true);
    let failure = Failure::new("MemberFailed", "dp2 failed");
    assert_eq!(
        w.teardown(&ctx, Some(&failure)).await.unwrap_err().name(),
        "DataPlaneUnreachable"
    );
    assert_eq!(w.doc().await.brfed.teardown_pending.len(), 1);
    let err = w.finalize(&ctx, Some(&failure), None).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    assert_eq!(
        w.doc().await.status.progress.phase.as_deref(),
        Some("Running"),
        "a member was never asked to tear down: nothing terminal"
    );

    w.planes.set_down("dp1", false);
    let out = w.finalize(&ctx, Some(&failure), None).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberFailed"));
    assert_eq!(w.asked("dp1"), (json!("teardown"), json!(true)));
    assert!(out.document.brfed.teardown_pending.is_empty());
    assert_eq!(out.document.brfed.members_settled, Some(false));
}
