//! Step `backup-abort`: an execution that ended without finishing its backup is torn down and
//! failed, once; later deliveries look again until the members have settled.

use super::*;
use crate::backup::steps::teardown::TeardownReport;

#[tokio::test]
async fn an_aborted_execution_is_torn_down_once_and_foreign_members_are_left_alone() {
    let (w, _) = World::at(Stage::Executed).await;
    // dp3's member is replaced by a foreign object: abort must not touch it
    w.planes.put_backup("dp3", foreign_member());
    assert_eq!(w.abort("SUCCEEDED").await.unwrap().action, "nothing-to-do");
    let r = w.abort("ABORTED").await.unwrap();
    assert_eq!(r.action, "torn-down");
    let report = r.teardown.clone().unwrap();
    assert_eq!(report.foreign.len(), 1);
    assert_eq!(
        report.unsettled,
        [
            "dp1/tidb/fed-bk VolumeBackupInitialized",
            "dp2/tidb/fed-bk no phase yet"
        ],
        "the foreign object is not this backup's member: it settles nothing"
    );
    assert_eq!(r.into_result().unwrap_err().name(), "MembersRunning");
    assert_eq!(w.asked("dp1"), (json!("teardown"), json!(true)));
    assert!(w.spec("dp3").get("federalVolumeBackupPhase").is_none());
    let doc = w.doc().await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    assert_eq!(last_reason(&doc), Some("ExecutionAborted"));
    assert_eq!(doc.brfed.members_settled, Some(false));
    // A later delivery (Lambda's retry) asks again and looks again; once the members are
    // terminal it records so, and the deliveries after that do nothing.
    let again = w.abort("ABORTED").await.unwrap();
    assert_eq!(again.action, "members-running");
    w.set(&[("dp1", cond::COMPLETE), ("dp2", cond::FAILED)]);
    let settled = w.abort("ABORTED").await.unwrap();
    assert_eq!(settled.action, "members-settled");
    assert!(settled.clone().into_result().is_ok());
    let doc = w.doc().await;
    assert_eq!(doc.brfed.members_settled, Some(true));
    assert!(doc.brfed.unsettled_members.is_empty());
    assert_eq!(
        last_reason(&doc),
        Some("ExecutionAborted"),
        "the failure is written once"
    );
    assert_eq!(
        w.abort("ABORTED").await.unwrap().action,
        "nothing-to-do",
        "a delivery after the members settled does nothing"
    );
}

#[tokio::test]
async fn an_aborted_execution_deletes_an_invalid_initialize_member_and_says_so() {
    let (w, _) = World::at(Stage::ResumeAsked).await;
    w.set(&[("dp1", cond::INVALID)]);
    let r = w.abort("ABORTED").await.unwrap();
    assert_eq!(r.action, "torn-down");
    let report = r.teardown.unwrap();
    assert_eq!(report.deleted, ["dp1/tidb/fed-bk"]);
    assert_eq!(report.requested.len(), 2);
    assert!(w.member("dp1").is_none());
    assert!(
        r.detail.contains("brfed deleted dp1/tidb/fed-bk"),
        "{}",
        r.detail
    );
    let doc = w.doc().await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    let failed = doc.status.progress.conditions.last().unwrap();
    assert_eq!(failed.reason.as_deref(), Some("ExecutionAborted"));
    let message = failed.message.as_deref().unwrap();
    assert!(
        message.contains("brfed deleted dp1/tidb/fed-bk"),
        "{message}"
    );
    assert!(entry(&doc, "dp1").deleted_at.is_some());
}

#[tokio::test]
async fn an_abort_that_cannot_reach_the_initialize_plane_writes_nothing_terminal_and_its_retry_resumes_gc()
 {
    // Finding 4: the abort marked the backup Failed before it returned DataPlaneUnreachable, so
    // Lambda's retry found it terminal and did nothing: GC stayed paused.
    let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
    w.planes.set_down("dp1", true);
    let err = w.abort("ABORTED").await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    assert!(err.to_string().contains("dp1/tidb/fed-bk"), "{err}");
    let doc = w.doc().await;
    assert_eq!(
        doc.status.progress.phase.as_deref(),
        Some("Running"),
        "nothing terminal before every member was asked"
    );
    assert!(doc.brfed.teardown_requested_at.is_some());
    assert_eq!(doc.brfed.teardown_pending.len(), 1, "{:?}", doc.brfed);
    assert!(doc.brfed.teardown_pending[0].starts_with("dp1/tidb/fed-bk"));
    for c in ["dp2", "dp3"] {
        assert_eq!(
            w.spec(c)["federalVolumeBackupPhase"],
            "teardown",
            "the planes that answer are asked at once: {c}"
        );
    }

    // Lambda retries the event; the plane is still down: still nothing terminal.
    assert_eq!(
        w.abort("ABORTED").await.unwrap_err().name(),
        "DataPlaneUnreachable"
    );
    assert_eq!(
        w.doc().await.status.progress.phase.as_deref(),
        Some("Running")
    );

    // The plane is back: the next retry asks it, GC resume included, and ends the backup.
    w.planes.set_down("dp1", false);
    let r = w.abort("ABORTED").await.unwrap();
    assert_eq!(r.action, "torn-down");
    assert_eq!(w.asked("dp1"), (json!("teardown"), json!(true)));
    let doc = w.doc().await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    assert_eq!(last_reason(&doc), Some("ExecutionAborted"));
    assert!(doc.brfed.teardown_pending.is_empty());
    assert_eq!(
        doc.brfed.members_settled,
        Some(false),
        "none is terminal yet"
    );
    assert_eq!(ctx.members.len(), doc.brfed.unsettled_members.len());
}

#[tokio::test]
async fn a_backup_that_ended_with_members_running_is_looked_at_again_by_the_abort_of_its_failed_execution()
 {
    // Finding 10: a backup marked Failed while a member still runs must say so, and the
    // execution-ended rule (FAILED) looks again until the member has settled.
    let (w, ctx) = World::at(Stage::SnapshotsCreated).await;
    w.teardown(&ctx, None).await.unwrap();
    w.set(&[("dp1", cond::COMPLETE), ("dp3", cond::COMPLETE)]);
    // dp2 hangs: the teardown wait runs out and Finalize fails the backup
    let deadline = Failure::new("PhaseDeadlineExceeded", "phase ran long");
    let out = w.finalize(&ctx, Some(&deadline), None).await.unwrap();
    assert_eq!(
        out.document.status.progress.phase.as_deref(),
        Some("Failed")
    );
    assert_eq!(out.document.brfed.members_settled, Some(false));
    assert_eq!(
        out.document.brfed.unsettled_members,
        ["dp2/tidb/fed-bk VolumeBackupSnapshotsCreated"]
    );

    let r = w.abort("FAILED").await.unwrap();
    assert_eq!(r.action, "members-running");
    assert_eq!(r.into_result().unwrap_err().name(), "MembersRunning");
    w.set(&[("dp2", cond::FAILED)]);
    let r = w.abort("FAILED").await.unwrap();
    assert_eq!(r.action, "members-settled");
    let doc = w.doc().await;
    assert_eq!(doc.brfed.members_settled, Some(true));
    assert_eq!(
        last_reason(&doc),
        Some("PhaseDeadlineExceeded"),
        "the failure finalize wrote stays"
    );
}

/// A settle check of the retention sweep does not fail while members run or a data plane is
/// down (the next sweep asks again); any other error stays an error, and Step Functions' own
/// event still fails so that Lambda retries it.
#[test]
fn a_settle_check_reports_what_is_not_settled_instead_of_failing() {
    let running = AbortReport {
        action: "members-running".into(),
        detail: "d".into(),
        teardown: Some(TeardownReport {
            unsettled: vec!["dp2/tidb/basic/fed-bk execute".into()],
            ..Default::default()
        }),
    };
    assert_eq!(
        AbortReport::settle_check_result(Ok(running.clone())).unwrap(),
        running
    );
    assert_eq!(
        running.clone().into_result().unwrap_err().name(),
        "MembersRunning"
    );
    let pending = AbortReport::settle_check_result(Err(StepError::DataPlaneUnreachable(
        "dp1: connection refused".into(),
    )))
    .unwrap();
    assert_eq!(pending.action, "teardown-pending");
    assert!(pending.detail.contains("dp1"), "{pending:?}");
    let other = AbortReport::settle_check_result(Err(StepError::CatalogUnavailable("s3".into())));
    assert_eq!(other.unwrap_err().name(), "CatalogUnavailable");
    let mut event = ended("ABORTED");
    assert!(!event.is_settle_check());
    event.detail_type = Some(crate::execution::SETTLE_CHECK_DETAIL_TYPE.into());
    assert!(event.is_settle_check());
}
