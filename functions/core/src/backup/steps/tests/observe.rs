//! Step `backup-observe`: how a wait ends besides its condition (deadlines, poll mode).

use super::*;
use chrono::Utc;

#[tokio::test]
async fn a_phase_deadline_fails_the_wait_by_name() {
    let w = World::new(3);
    let options = json!({"phaseTimeoutSeconds": 1});
    let ctx = w.start(input(options)).await.unwrap().backup;
    let past = Phase {
        name: "Initialize".into(),
        started_at: (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339(),
    };
    let o = w.observe_in(&ctx, Await::Initialized, past).await;
    assert_eq!(o.verdict, "failed");
    assert_eq!(o.failure.unwrap().error, "PhaseDeadlineExceeded");
}

#[tokio::test]
async fn poll_mode_asks_the_state_machine_to_wait() {
    let w = World::new(3);
    let options = json!({"observeMode": "poll", "pollSeconds": 30});
    let out = w.start(input(options)).await.unwrap();
    let o = w
        .observe_in(&out.backup, Await::Initialized, out.phase)
        .await;
    assert_eq!((o.verdict.as_str(), o.wait_seconds), ("pending", 30));
}
