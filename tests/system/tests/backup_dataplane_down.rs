//! A data plane whose API server is down for the whole run: the backup is refused before anything
//! is paused or created anywhere. Its own test binary, so that taking dp3 down never overlaps
//! another test (cargo runs test binaries one after another).

use brfed_system_tests::faults::disrupt::stop_plane;
use brfed_system_tests::fixtures::{SeededCluster, seeded_world};
use brfed_system_tests::workflow::catalog_doc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_data_plane_down_for_the_whole_run_is_refused_before_any_side_effect() {
    let (world, flows, tc) = seeded_world("bk-down", "tidb", 1).await;
    let name = format!("down-{}", tc.id());
    let input = tc.backup(&name, &world.bucket).build();
    let SeededCluster { ns, key, .. } = tc;

    // Brought back even when the test fails.
    let down = stop_plane("dp3").expect("stop dp3");
    let done = flows
        .run(&flows.backup_arn, &name, &input, Duration::from_secs(120))
        .await;
    assert_eq!(done.status, "FAILED");
    assert_eq!(
        done.error.as_deref(),
        Some("DataPlaneUnreachable"),
        "{done:?}"
    );
    assert!(
        done.cause.as_deref().unwrap_or_default().contains("dp3"),
        "{done:?}"
    );
    down.start().expect("start dp3");

    for p in ["dp1", "dp2", "dp3"] {
        assert!(
            world
                .backups(p, &ns)
                .get_opt(&format!("fed-{name}"))
                .await
                .unwrap()
                .is_none(),
            "a member was created in {p}"
        );
    }
    assert!(
        catalog_doc(&world, "br", &name).await.is_none(),
        "a refused backup leaves no catalog record"
    );
    let pd = world.pd(&key).await;
    assert!(
        pd.as_ref().is_none_or(|p| p["pauseCount"] == 0),
        "GC was paused: {pd:?}"
    );
}
