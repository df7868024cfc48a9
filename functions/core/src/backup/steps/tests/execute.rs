//! Step `backup-execute`: every plane is tried, and those that could not be told are retried.

use super::*;

#[tokio::test]
async fn execute_retries_a_plane_that_answers_404_while_starting_and_names_every_plane() {
    // backup:initialize:api-down — dp2's API server is up again but does not serve the Backup
    // CRD yet: its create answers 404, which must be retried, not end the backup MemberMissing.
    let (w, ctx) = World::at(Stage::Initialized).await;
    w.planes.set_serving("dp2", false);
    let err = w.execute(&ctx).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable", "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("dp2"), "{err}");
    assert!(w.member("dp3").is_some(), "the others are created");
    // dp2 serves Backups again: the retry creates its member and finds dp3's
    w.planes.set_serving("dp2", true);
    w.execute(&ctx).await.unwrap();
    assert_eq!(w.planes.backup_count(), 3);
    assert_eq!(w.spec("dp2")["federalVolumeBackupPhase"], "execute");

    // two planes that cannot be told are both named
    let (w, ctx) = World::at(Stage::Initialized).await;
    w.planes.set_serving("dp2", false);
    w.planes.set_down("dp3", true);
    let err = w.execute(&ctx).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    let m = err.to_string();
    assert!(m.contains("dp2") && m.contains("dp3"), "{m}");
    // a name conflict is not retried, whatever else happened
    w.planes.set_down("dp3", false);
    w.planes.put_backup("dp3", foreign_member());
    assert_eq!(
        w.execute(&ctx).await.unwrap_err().name(),
        "MemberNameConflict"
    );
}
