//! Whole runs of the `volume-backup` state machine: the ladder to Complete, and the failure path
//! from a wait that failed.

use super::*;
use crate::backup::status::vbk;

#[tokio::test]
async fn a_backup_walks_the_whole_ladder_and_every_step_is_idempotent() {
    let w = World::new(3);
    let out = w.start(input(json!({}))).await.unwrap();
    let again = w.start(input(json!({}))).await.unwrap();
    assert_eq!(out.backup, again.backup, "start twice => same state");
    assert_eq!(
        w.planes.backup_count(),
        1,
        "only the initialize member exists"
    );
    assert_eq!(w.spec("dp1")["federalVolumeBackupPhase"], "initialize");
    let ctx = out.backup;

    assert_eq!(w.verdict(&ctx, Await::Initialized).await, "pending");
    w.set(&[("dp1", cond::INITIALIZED)]);
    assert_eq!(w.verdict(&ctx, Await::Initialized).await, "met");

    w.execute(&ctx).await.unwrap();
    w.changes_nothing("execute twice", w.execute(&ctx)).await;
    assert_eq!(w.planes.backup_count(), 3);
    for c in PLANES {
        let spec = w.spec(c);
        assert_eq!(spec["federalVolumeBackupPhase"], "execute", "{c}");
        assert_eq!(spec["s3"]["prefix"], format!("p-{c}"), "{c}");
    }

    w.set(&[("dp1", cond::SNAPSHOTS_CREATED)]);
    assert_eq!(w.verdict(&ctx, Await::SnapshotsCreated).await, "pending");
    w.set(&[
        ("dp2", cond::SNAPSHOTS_CREATED),
        ("dp3", cond::SNAPSHOTS_CREATED),
    ]);
    assert_eq!(w.verdict(&ctx, Await::SnapshotsCreated).await, "met");

    w.resume_gc(&ctx).await.unwrap();
    w.resume_gc(&ctx).await.unwrap();
    assert_eq!(w.spec("dp1")["resumeGcSchedule"], true);
    assert!(w.spec("dp2").get("resumeGcSchedule").is_none());

    w.set(&[("dp1", cond::INITIALIZE_COMPLETE)]);
    assert_eq!(w.verdict(&ctx, Await::GcResumed).await, "met");
    let doc = w.doc().await;
    assert!(doc.status.progress.has(vbk::SNAPSHOTS_CREATED));
    assert!(
        doc.brfed.resume_requested_at.is_some()
            && doc.brfed.snapshots_created_observed_at.is_some()
    );

    for (c, ts) in [("dp1", "300"), ("dp2", "100"), ("dp3", "200")] {
        let done =
            json!({"commitTs": ts, "backupSize": 1000, "backupPath": format!("s3://data/p-{c}")});
        w.planes.set_status(c, "tidb", "fed-bk", done);
    }
    w.each(cond::VOLUME_COMPLETE);
    assert_eq!(w.verdict(&ctx, Await::SnapshotsComplete).await, "met");

    w.teardown(&ctx, None).await.unwrap();
    w.changes_nothing("teardown twice", w.teardown(&ctx, None))
        .await;
    assert_eq!(w.verdict(&ctx, Await::Terminal).await, "pending");
    w.each(cond::COMPLETE);
    assert_eq!(w.verdict(&ctx, Await::Terminal).await, "met");

    let out = w.finalize(&ctx, None, None).await.unwrap();
    let out2 = w.finalize(&ctx, None, None).await.unwrap();
    assert_eq!(
        out.document, out2.document,
        "finalize twice => same document"
    );
    let s = &out.document.status;
    assert_eq!(s.progress.phase.as_deref(), Some("Complete"));
    assert_eq!(s.progress.commit_ts.as_deref(), Some("100"));
    assert_eq!(s.backup_size, Some(3000));
    assert_eq!(s.backup_size_readable.as_deref(), Some("3.0 kB"));
    assert_eq!(s.backups.len(), 3);
    assert!(out.error.is_none());
    let types: Vec<_> = s
        .progress
        .conditions
        .iter()
        .map(|c| c.type_.as_str())
        .collect();
    assert_eq!(types, ["Running", "SnapshotsCreated", "Complete"]);
}

#[tokio::test]
async fn an_initialize_failure_tears_down_and_fails_with_its_name() {
    let (w, ctx) = World::at(Stage::Started).await;
    w.set(&[("dp1", cond::INITIALIZE_FAILED)]);
    let o = w.observe(&ctx, Await::Initialized).await;
    assert_eq!(o.verdict, "failed");
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "InitializeFailed");
    w.teardown(&ctx, Some(&failure)).await.unwrap();
    let (phase, resume) = w.asked("dp1");
    assert_eq!(phase, "teardown");
    assert_eq!(resume, true, "teardown always asks for the resume");
    assert_eq!(
        w.planes.backup_count(),
        1,
        "members never created are not created by teardown"
    );
    assert_eq!(w.verdict(&ctx, Await::Terminal).await, "met");
    let out = w.finalize(&ctx, Some(&failure), None).await.unwrap();
    assert_eq!(
        out.document.status.progress.phase.as_deref(),
        Some("Failed")
    );
    assert_eq!(out.error.as_deref(), Some("InitializeFailed"));
    assert!(out.document.status.progress.commit_ts.is_none());
}

#[tokio::test]
async fn a_failed_member_names_itself_in_the_final_status() {
    let (w, ctx) = World::at(Stage::Executed).await;
    w.set(&[("dp2", cond::VOLUME_FAILED)]);
    let f = w
        .observe(&ctx, Await::SnapshotsCreated)
        .await
        .failure
        .unwrap();
    assert_eq!(f.error, "MemberFailed");
    assert!(f.cause.contains("dp2"));
    w.teardown(&ctx, Some(&f)).await.unwrap();
    for c in PLANES {
        assert_eq!(w.spec(c)["federalVolumeBackupPhase"], "teardown", "{c}");
    }
    w.set(&[("dp1", cond::COMPLETE), ("dp2", cond::FAILED)]);
    assert_eq!(
        w.verdict(&ctx, Await::Terminal).await,
        "pending",
        "dp3 still running"
    );
    w.set(&[("dp3", cond::COMPLETE)]);
    let out = w.finalize(&ctx, Some(&f), None).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberFailed"));
    assert!(out.cause.unwrap().contains("dp2"));
}
