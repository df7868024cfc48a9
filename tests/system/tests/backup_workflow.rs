//! Federated backups run end to end on the local world: brfed's state machine on the emulator's
//! Step Functions, our Lambda binaries, real API servers, the simulated TiDB Operator.

use brfed_core::backup::spec::BackupLocations;
use brfed_sim_operator::kubeobj::backup_resource;
use brfed_system_tests::dataplane::{PhaseLog, is_subsequence};
use brfed_system_tests::fixtures::{BackupCase, VolumeBackup, backup_clusters};
use brfed_system_tests::workflow::{Finished, catalog_doc, doc_condition_types, doc_conditions};
use serde_json::{Value, json};
use std::time::Duration;

const RUN: Duration = Duration::from_secs(120);

fn input(c: &BackupCase, annotations: Value, options: Value) -> Value {
    c.input("Delete")
        .annotations(annotations)
        .options(options)
        .build()
}

/// A backup of a new case (`prefix`) run with fault rule `rule` and `options` fails by the name
/// `error`, with GC paused `pauses` times and resumed as often, and every member torn down.
async fn fails_by_name(
    prefix: &str,
    (rule, options): (&str, Value),
    error: &str,
    pauses: u64,
) -> (BackupCase, Finished) {
    let c = BackupCase::new(prefix, "bk", 2).await;
    let done = run_faulted(&c, rule, options).await;
    assert_eq!(done.status, "FAILED");
    assert_eq!(done.error.as_deref(), Some(error), "{done:?}");
    assert_gc_resumed(&c, pauses).await;
    assert_all_torn_down(&c).await;
    (c, done)
}

/// Runs the backup with fault rule `rule` (annotation `sim.brfed.dev/fault`) and `options`.
async fn run_faulted(c: &BackupCase, rule: &str, options: Value) -> Finished {
    run(c, &input(c, json!({"sim.brfed.dev/fault": rule}), options)).await
}

async fn run(c: &BackupCase, input: &Value) -> Finished {
    c.run(input, RUN).await
}

/// GC must not be paused, and every pause must have been resumed (not expired).
async fn assert_gc_resumed(c: &BackupCase, pauses: u64) {
    let pd = c.world.pd(&c.key).await;
    if pauses == 0 {
        assert!(
            pd.as_ref().is_none_or(|p| p["pauseCount"] == 0),
            "GC was paused: {pd:?}"
        );
        return;
    }
    let pd = pd.expect("the PD was touched");
    assert_eq!(pd["paused"], false, "GC still paused: {pd}");
    assert_eq!(pd["pauseCount"], pauses, "{pd}");
    assert_eq!(pd["resumeCount"], pauses, "{pd}");
    assert_eq!(
        pd["expireCount"], 0,
        "a pause expired instead of being resumed: {pd}"
    );
}

async fn assert_all_torn_down(c: &BackupCase) {
    for p in &c.planes {
        if let Some(m) = c.member(p).await {
            assert_eq!(
                m.data["spec"]["federalVolumeBackupPhase"], "teardown",
                "{p}: {:?}",
                m.data["spec"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_federated_backup_walks_the_ladder_and_completes() {
    let c = BackupCase::new("bk-happy", "bk", 2).await;
    let mut logs = Vec::new();
    for p in &c.planes {
        // a watch client (no read timeout): the log must not miss a phase on a slow run
        let plane = c.world.planes.iter().find(|d| &d.name == p).unwrap();
        let api = kube::Api::namespaced_with(plane.watch_client.clone(), &c.ns, &backup_resource());
        logs.push(PhaseLog::start(api, &format!("fed-{}", c.name)).await);
    }
    let done = run(&c, &input(&c, json!({}), json!({}))).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    let out = done.output.expect("output document");
    assert_eq!(out["kind"], "VolumeBackup");
    assert_eq!(out["status"]["phase"], "Complete");
    let backups = out["status"]["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 3);
    let mut min = u64::MAX;
    for (b, p) in backups.iter().zip(&c.planes) {
        assert_eq!(b["k8sClusterName"], p.as_str());
        assert_eq!(b["phase"], "Complete");
        assert_eq!(
            b["backupPath"],
            format!("s3://{}/{}/backup-{p}", c.world.bucket, c.ns)
        );
        min = min.min(b["commitTs"].as_str().unwrap().parse().unwrap());
    }
    assert_eq!(
        out["status"]["commitTs"],
        min.to_string(),
        "commitTs is the minimum of the members'"
    );
    let types = doc_condition_types(&out);
    assert_eq!(types, ["Running", "SnapshotsCreated", "Complete"]);
    assert!(out["status"]["backupSize"].as_i64().unwrap() > 0);
    assert_eq!(
        catalog_doc(&c.world, "br", &c.name)
            .await
            .expect("catalog document"),
        out,
        "catalog = output"
    );
    assert_gc_resumed(&c, 1).await;

    // The initialize member's snapshots may complete before or after its init job is deleted:
    // both orders are the data plane's to choose.
    let init_ladders: [&[&str]; 2] = [
        &[
            "VolumeBackupInitialized",
            "VolumeBackupSnapshotsCreated",
            "VolumeBackupInitializeComplete",
            "Complete",
        ],
        &[
            "VolumeBackupInitialized",
            "VolumeBackupSnapshotsCreated",
            "VolumeBackupComplete",
            "Complete",
        ],
    ];
    let ladder: &[&str] = &[
        "VolumeBackupSnapshotsCreated",
        "VolumeBackupComplete",
        "Complete",
    ];
    for (i, log) in logs.iter().enumerate() {
        let seen = log.phases();
        let wants: Vec<&[&str]> = if i == 0 {
            init_ladders.to_vec()
        } else {
            vec![ladder]
        };
        for want in wants {
            assert!(
                is_subsequence(want, &seen),
                "{}: phases {seen:?} do not walk {want:?}",
                c.planes[i]
            );
        }
    }
    let (states, events) = c.flows.entered_states(&done.arn).await;
    assert!(states.contains(&"Resume GC And Scheduling".to_string()));
    assert!(events < 200, "{events} history events");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_initialize_failure_fails_by_name_with_nothing_paused() {
    let (c, _) = fails_by_name(
        "bk-initfail",
        ("dp1:initialize:fail", json!({})),
        "InitializeFailed",
        0,
    )
    .await;
    assert!(
        c.member("dp2").await.is_none(),
        "no member is created after a failed initialize"
    );
    let doc = catalog_doc(&c.world, "br", &c.name).await.unwrap();
    assert_eq!(doc["status"]["phase"], "Failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execute_failure_in_the_second_cluster_tears_everything_down() {
    let (c, done) = fails_by_name(
        "bk-execfail",
        ("dp2:execute:fail", json!({})),
        "MemberFailed",
        1,
    )
    .await;
    assert!(
        done.cause.as_deref().unwrap_or_default().contains("dp2"),
        "{done:?}"
    );
    for p in &c.planes {
        let m = c.member(p).await.expect("member exists");
        let phase = m.data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            phase == "Complete" || phase == "Failed",
            "{p} ended {phase}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_member_fails_by_name() {
    fails_by_name(
        "bk-invalid",
        ("dp3:execute:invalid", json!({})),
        "MemberInvalid",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phase_deadline_tears_down_and_fails_by_name() {
    fails_by_name(
        "bk-deadline",
        ("dp2:execute:hang", json!({"phaseTimeoutSeconds": 4})),
        "PhaseDeadlineExceeded",
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_execution_is_torn_down_by_the_status_change_rule() {
    let c = BackupCase::new("bk-stopped", "bk", 2).await;
    let arn = c
        .start(&input(
            &c,
            json!({"sim.brfed.dev/fault": "dp2:execute:hang"}),
            json!({}),
        ))
        .await;
    // wait until GC is paused and the members exist, then stop the execution from "the console"
    let deadline = std::time::Instant::now() + RUN;
    while c.member("dp2").await.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "members never created"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(c.world.pd(&c.key).await.unwrap()["paused"], true);
    c.flows.stop(&arn).await;
    let done = c.flows.wait(&arn, RUN).await;
    if done.status != "ABORTED" {
        // Say what the execution went through: an ended execution cannot be stopped, and an
        // emulator that let a stopped one fail would show its last states here.
        let (states, events) = c.flows.entered_states(&arn).await;
        panic!("expected ABORTED after the stop, got {done:?}; {events} events, states {states:?}");
    }
    // the abort Lambda, fired by the execution-status-change rule, tears down and resumes GC
    let deadline = std::time::Instant::now() + RUN;
    loop {
        let doc = catalog_doc(&c.world, "br", &c.name).await.unwrap();
        if doc["status"]["phase"] == "Failed" {
            let last = doc_conditions(&doc).last().unwrap();
            assert_eq!(last["reason"], "ExecutionAborted");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "catalog never marked Failed: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_all_torn_down(&c).await;
    let deadline = std::time::Instant::now() + RUN;
    while c.world.pd(&c.key).await.unwrap()["paused"] == true {
        assert!(
            std::time::Instant::now() < deadline,
            "GC still paused after abort"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_gc_resumed(&c, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_rejected_before_any_side_effect() {
    let c = BackupCase::new("bk-bad", "bk", 2).await;
    let mut input = input(&c, json!({}), json!({}));
    input["spec"]["template"]["cleanPolicy"] = json!("Sometimes");
    let done = run(&c, &input).await;
    done.assert_failed_with("InvalidSpec", "cleanPolicy");
    assert!(c.member("dp1").await.is_none());
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
    assert_gc_resumed(&c, 0).await;
}

/// The world's stack keeps backups in two locations (`BRFED_BACKUP_LOCATIONS`, as the template
/// gives its BackupBucketName/BackupPrefix and BackupBucketName2/BackupPrefix2): a backup in the
/// second completes with its members' objects there; one in a bucket that is none of them is
/// refused by name at its start, before any member or record is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_in_the_second_location_completes_and_one_elsewhere_is_refused_by_name() {
    let text =
        std::env::var("BRFED_BACKUP_LOCATIONS").expect("BRFED_BACKUP_LOCATIONS (make world-env)");
    let locations = BackupLocations::parse(&text).expect("the world's locations");
    let second = locations
        .all()
        .get(1)
        .expect("the world has a second location");
    let written = |c: &BackupCase, bucket: &str, prefix: &str| {
        VolumeBackup::written(
            &c.name,
            backup_clusters(&c.planes, "basic", &c.ns),
            bucket,
            prefix,
            "Delete",
        )
        .build()
    };

    let c = BackupCase::new("bk-second", "bk", 1).await;
    c.world.cloud.ensure_bucket(&second.bucket).await.unwrap();
    let prefix = format!("{}{}/backup", second.prefix, c.ns);
    let done = run(&c, &written(&c, &second.bucket, &prefix)).await;
    assert_eq!(done.status, "SUCCEEDED", "{done:?}");
    for p in &c.planes {
        let meta = format!("{prefix}-{p}/backupmeta");
        assert!(
            c.world.cloud.exists(&second.bucket, &meta).await.unwrap(),
            "s3://{}/{meta}",
            second.bucket
        );
    }
    assert_eq!(
        catalog_doc(&c.world, "br", &c.name)
            .await
            .expect("recorded")["status"]["phase"],
        "Complete"
    );

    let c = BackupCase::new("bk-elsewhere", "bk", 1).await;
    let elsewhere = "brfed-not-a-location";
    assert!(locations.all().iter().all(|l| l.bucket != elsewhere));
    let done = run(&c, &written(&c, elsewhere, &format!("{}/backup", c.ns))).await;
    done.assert_failed_with("BucketNotAllowed", &format!("`{elsewhere}`"));
    done.assert_failed_with("BucketNotAllowed", &format!("`{second}`"));
    for p in &c.planes {
        assert!(c.member(p).await.is_none(), "{p}: no member");
    }
    assert!(catalog_doc(&c.world, "br", &c.name).await.is_none());
}
