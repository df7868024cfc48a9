//! The backup steps on in-memory fakes: the whole ladder, idempotency, and every named rejection.

use super::*;
use crate::StepError;
use crate::backup::judge::Await;
use crate::backup::judge::Failure;
use crate::backup::spec::BackupRequest;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::status::vbk;
use crate::backup::steps::AbortReport;
use crate::backup::steps::abort::abort;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::FinalizeInput;
use crate::backup::steps::context::ObserveInput;
use crate::backup::steps::context::ObserveOutput;
use crate::backup::steps::context::StartInput;
use crate::backup::steps::context::StartOutput;
use crate::backup::steps::context::StepInput;
use crate::backup::steps::execute::execute;
use crate::backup::steps::finalize::finalize;
use crate::backup::steps::resume_gc::resume_gc;
use crate::backup::steps::start::preflight;
use crate::backup::steps::teardown::TeardownReport;
use crate::backup::steps::teardown::teardown;
use crate::backup::steps::teardown::unsettled_members;
use crate::catalog::Catalog;
use crate::execution::ExecutionDetail;
use crate::execution::ExecutionStatusChange;
use crate::member::MemberRef;
use crate::member::cond;
use crate::ports::Observation;
use crate::testing::{FakePlanes, FakeStore};
use crate::time::Phase;
use chrono::Utc;
use serde_json::Value;
use serde_json::json;
use std::time::Duration;

const BUCKET: &str = "catalog";
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup:bk";

fn env<'a>(planes: &'a FakePlanes, store: &'a FakeStore) -> Env<'a, FakePlanes, FakeStore> {
    Env {
        planes,
        store,
        catalog_bucket: BUCKET,
        observe_budget: Duration::from_secs(1),
    }
}

fn input(options: Value) -> Value {
    json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": "bk", "namespace": "br"},
        "spec": {"clusters": [
            {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"},
            {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb"},
            {"k8sClusterName": "dp3", "tcName": "basic", "tcNamespace": "tidb"}],
          "template": {"s3": {"provider": "aws", "bucket": "data", "prefix": "p"}, "cleanPolicy": "Delete"}},
        "options": options})
}

async fn started(planes: &FakePlanes, store: &FakeStore) -> StartOutput {
    start(
        &env(planes, store),
        StartInput {
            input: input(json!({})),
            execution: EXEC.into(),
        },
    )
    .await
    .unwrap()
}

async fn observe_now(
    planes: &FakePlanes,
    store: &FakeStore,
    ctx: &BackupContext,
    awaited: Await,
) -> ObserveOutput {
    observe(
        &env(planes, store),
        ObserveInput {
            backup: ctx.clone(),
            awaited,
            phase: Phase::now("x"),
        },
    )
    .await
    .unwrap()
}

fn each(planes: &FakePlanes, t: &str) {
    for c in ["dp1", "dp2", "dp3"] {
        planes.add_condition(c, "tidb", "fed-bk", t);
    }
}

#[tokio::test]
async fn a_backup_walks_the_whole_ladder_and_every_step_is_idempotent() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let out = started(&planes, &store).await;
    let again = started(&planes, &store).await;
    assert_eq!(out.backup, again.backup, "start twice => same state");
    assert_eq!(
        planes.backup_count(),
        1,
        "only the initialize member exists"
    );
    let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
    assert_eq!(init["spec"]["federalVolumeBackupPhase"], "initialize");
    let ctx = out.backup;

    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Initialized)
            .await
            .verdict,
        "pending"
    );
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Initialized)
            .await
            .verdict,
        "met"
    );

    let step = StepInput {
        backup: ctx.clone(),
        failure: None,
    };
    execute(&e, step.clone()).await.unwrap();
    let log_len = planes.log.lock().unwrap().len();
    execute(&e, step.clone()).await.unwrap();
    assert_eq!(
        planes.log.lock().unwrap().len(),
        log_len,
        "execute twice => no new mutation"
    );
    assert_eq!(planes.backup_count(), 3);
    for c in ["dp1", "dp2", "dp3"] {
        assert_eq!(
            planes.backup(c, "tidb", "fed-bk").unwrap()["spec"]["federalVolumeBackupPhase"],
            "execute"
        );
        assert_eq!(
            planes.backup(c, "tidb", "fed-bk").unwrap()["spec"]["s3"]["prefix"],
            format!("p-{c}")
        );
    }

    planes.add_condition("dp1", "tidb", "fed-bk", cond::SNAPSHOTS_CREATED);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::SnapshotsCreated)
            .await
            .verdict,
        "pending"
    );
    planes.add_condition("dp2", "tidb", "fed-bk", cond::SNAPSHOTS_CREATED);
    planes.add_condition("dp3", "tidb", "fed-bk", cond::SNAPSHOTS_CREATED);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::SnapshotsCreated)
            .await
            .verdict,
        "met"
    );

    resume_gc(&e, step.clone()).await.unwrap();
    resume_gc(&e, step.clone()).await.unwrap();
    assert_eq!(
        planes.backup("dp1", "tidb", "fed-bk").unwrap()["spec"]["resumeGcSchedule"],
        true
    );
    assert!(
        planes.backup("dp2", "tidb", "fed-bk").unwrap()["spec"]
            .get("resumeGcSchedule")
            .is_none()
    );

    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZE_COMPLETE);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::GcResumed)
            .await
            .verdict,
        "met"
    );
    let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&store, BUCKET)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap();
    assert!(doc.status.progress.has(vbk::SNAPSHOTS_CREATED));
    assert!(
        doc.brfed.resume_requested_at.is_some()
            && doc.brfed.snapshots_created_observed_at.is_some()
    );

    for (c, ts) in [("dp1", "300"), ("dp2", "100"), ("dp3", "200")] {
        planes.set_status(
            c,
            "tidb",
            "fed-bk",
            json!({"commitTs": ts, "backupSize": 1000, "backupPath": format!("s3://data/p-{c}")}),
        );
    }
    each(&planes, cond::VOLUME_COMPLETE);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::SnapshotsComplete)
            .await
            .verdict,
        "met"
    );

    teardown(&e, step.clone()).await.unwrap();
    let log_len = planes.log.lock().unwrap().len();
    teardown(&e, step.clone()).await.unwrap();
    assert_eq!(
        planes.log.lock().unwrap().len(),
        log_len,
        "teardown twice => no new mutation"
    );
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Terminal)
            .await
            .verdict,
        "pending"
    );
    each(&planes, cond::COMPLETE);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Terminal)
            .await
            .verdict,
        "met"
    );

    let fin = FinalizeInput {
        backup: ctx.clone(),
        failure: None,
        observed: None,
    };
    let out = finalize(&e, fin.clone()).await.unwrap();
    let out2 = finalize(&e, fin).await.unwrap();
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
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = started(&planes, &store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZE_FAILED);
    let o = observe_now(&planes, &store, &ctx, Await::Initialized).await;
    assert_eq!(o.verdict, "failed");
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "InitializeFailed");
    teardown(
        &e,
        StepInput {
            backup: ctx.clone(),
            failure: Some(failure.clone()),
        },
    )
    .await
    .unwrap();
    let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
    assert_eq!(init["spec"]["federalVolumeBackupPhase"], "teardown");
    assert_eq!(
        init["spec"]["resumeGcSchedule"], true,
        "teardown always asks for the resume"
    );
    assert_eq!(
        planes.backup_count(),
        1,
        "members never created are not created by teardown"
    );
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Terminal)
            .await
            .verdict,
        "met"
    );
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx,
            failure: Some(failure),
            observed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out.document.status.progress.phase.as_deref(),
        Some("Failed")
    );
    assert_eq!(out.error.as_deref(), Some("InitializeFailed"));
    assert!(out.document.status.progress.commit_ts.is_none());
}

#[tokio::test]
async fn a_failed_member_names_itself_in_the_final_status() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = started(&planes, &store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    execute(
        &e,
        StepInput {
            backup: ctx.clone(),
            failure: None,
        },
    )
    .await
    .unwrap();
    planes.add_condition("dp2", "tidb", "fed-bk", cond::VOLUME_FAILED);
    let o = observe_now(&planes, &store, &ctx, Await::SnapshotsCreated).await;
    let f = o.failure.unwrap();
    assert_eq!(f.error, "MemberFailed");
    assert!(f.cause.contains("dp2"));
    teardown(
        &e,
        StepInput {
            backup: ctx.clone(),
            failure: Some(f.clone()),
        },
    )
    .await
    .unwrap();
    for c in ["dp1", "dp2", "dp3"] {
        assert_eq!(
            planes.backup(c, "tidb", "fed-bk").unwrap()["spec"]["federalVolumeBackupPhase"],
            "teardown"
        );
    }
    planes.add_condition("dp1", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp2", "tidb", "fed-bk", cond::FAILED);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Terminal)
            .await
            .verdict,
        "pending",
        "dp3 still running"
    );
    planes.add_condition("dp3", "tidb", "fed-bk", cond::COMPLETE);
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx,
            failure: Some(f),
            observed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberFailed"));
    assert!(out.cause.unwrap().contains("dp2"));
}

async fn start_with(
    planes: &FakePlanes,
    store: &FakeStore,
    input: Value,
) -> Result<StartOutput, StepError> {
    start(
        &env(planes, store),
        StartInput {
            input,
            execution: EXEC.into(),
        },
    )
    .await
}

#[tokio::test]
async fn rejections_happen_before_any_side_effect_with_their_names() {
    // a data plane down
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    planes.set_down("dp2", true);
    let err = start_with(&planes, &store, input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    assert!(err.is_retryable());
    assert_eq!(planes.backup_count(), 0);
    assert!(
        store
            .get(BUCKET, &crate::backup::status::backup_key("br", "bk"))
            .is_none()
    );
    // TidbCluster not acrossK8s
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    planes.put_tidb_cluster(
        "dp3",
        "tidb",
        "basic",
        json!({"spec": {"tikv": {"replicas": 1}}, "status": {"tikv": {"stores": {"1": {}}}}}),
    );
    let err = start_with(&planes, &store, input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "TidbClusterInvalid");
    assert!(err.to_string().contains("dp3") && err.to_string().contains("acrossK8s"));
    assert_eq!(planes.backup_count(), 0);
    // a member of that name owned by someone else
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    planes.put_backup("dp2", json!({"metadata": {"name": "fed-bk", "namespace": "tidb", "annotations": {"brfed.io/execution": "other"}}, "spec": {}}));
    let err = start_with(&planes, &store, input(json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "MemberNameConflict");
    assert_eq!(planes.backup_count(), 1);
    // a prefix already used
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    store.put("data", "p-dp3/clustermeta", json!({}));
    assert_eq!(
        start_with(&planes, &store, input(json!({})))
            .await
            .unwrap_err()
            .name(),
        "S3PrefixInUse"
    );
    assert_eq!(planes.backup_count(), 0);
    // an unknown data plane
    let (planes, store) = (FakePlanes::new(2), FakeStore::default());
    assert_eq!(
        start_with(&planes, &store, input(json!({})))
            .await
            .unwrap_err()
            .name(),
        "UnknownCluster"
    );
    // the same name from another execution
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    started(&planes, &store).await;
    let e = env(&planes, &store);
    let err = start(
        &e,
        StartInput {
            input: input(json!({})),
            execution: "another".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "BackupExists");
    // bad spec
    let err = start_with(
        &planes,
        &store,
        json!({"metadata": {"name": "x"}, "spec": {"clusters": []}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "InvalidSpec");
}

#[tokio::test]
async fn a_preflight_reports_every_problem_at_once_and_start_names_the_most_actionable() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    // dp1: a member of that name owned by someone else; dp2: no TidbCluster; dp3: prefix used;
    // dp4: not a data plane at all.
    planes.put_backup("dp1", json!({"metadata": {"name": "fed-bk", "namespace": "tidb", "annotations": {"brfed.io/execution": "other"}}, "spec": {}}));
    store.put("data", "p-dp3/clustermeta", json!({}));
    let mut v = input(json!({}));
    v["spec"]["clusters"][1]["tcName"] = json!("missing");
    v["spec"]["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"k8sClusterName": "dp4", "tcName": "basic", "tcNamespace": "tidb"}));
    let req = BackupRequest::from_value(v).unwrap();
    req.validate(None).unwrap();
    let log_len = planes.log.lock().unwrap().len();
    let report = preflight(&env(&planes, &store), &req, None).await;
    let names: Vec<&str> = report.problems.iter().map(|p| p.error.name()).collect();
    for want in ["UnknownCluster", "MemberNameConflict", "S3PrefixInUse"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.error.to_string().contains("does not exist in dp2")),
        "{report:?}"
    );
    assert_eq!(planes.log.lock().unwrap().len(), log_len, "no mutation");
    assert!(
        store
            .get(BUCKET, &crate::backup::status::backup_key("br", "bk"))
            .is_none()
    );
    assert_eq!(
        report.clone().into_result().unwrap_err().name(),
        "UnknownCluster"
    );
    // a clean one
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let req = BackupRequest::from_value(input(json!({}))).unwrap();
    assert!(preflight(&env(&planes, &store), &req, None).await.is_ok());
}

#[tokio::test]
async fn a_phase_deadline_fails_the_wait_by_name() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let out = start(
        &e,
        StartInput {
            input: input(json!({"phaseTimeoutSeconds": 1})),
            execution: EXEC.into(),
        },
    )
    .await
    .unwrap();
    let past = Phase {
        name: "Initialize".into(),
        started_at: (Utc::now() - chrono::Duration::seconds(5)).to_rfc3339(),
    };
    let o = observe(
        &e,
        ObserveInput {
            backup: out.backup,
            awaited: Await::Initialized,
            phase: past,
        },
    )
    .await
    .unwrap();
    assert_eq!(o.verdict, "failed");
    assert_eq!(o.failure.unwrap().error, "PhaseDeadlineExceeded");
}

#[tokio::test]
async fn poll_mode_asks_the_state_machine_to_wait() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let out = start(
        &e,
        StartInput {
            input: input(json!({"observeMode": "poll", "pollSeconds": 30})),
            execution: EXEC.into(),
        },
    )
    .await
    .unwrap();
    let o = observe(
        &e,
        ObserveInput {
            backup: out.backup,
            awaited: Await::Initialized,
            phase: out.phase,
        },
    )
    .await
    .unwrap();
    assert_eq!((o.verdict.as_str(), o.wait_seconds), ("pending", 30));
}

#[tokio::test]
async fn an_aborted_execution_is_torn_down_once_and_foreign_members_are_left_alone() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = started(&planes, &store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    execute(
        &e,
        StepInput {
            backup: ctx.clone(),
            failure: None,
        },
    )
    .await
    .unwrap();
    // dp3's member is replaced by a foreign object: abort must not touch it
    planes.put_backup("dp3", json!({"metadata": {"name": "fed-bk", "namespace": "tidb", "annotations": {"brfed.io/execution": "other"}}, "spec": {}}));
    let event = |status: &str| ExecutionStatusChange {
        detail_type: None,
        detail: ExecutionDetail {
            execution_arn: EXEC.into(),
            state_machine_arn: None,
            status: status.into(),
            input: Some(input(json!({})).to_string()),
            error: None,
            cause: None,
        },
    };
    assert_eq!(
        abort(&e, event("SUCCEEDED")).await.unwrap().action,
        "nothing-to-do"
    );
    let r = abort(&e, event("ABORTED")).await.unwrap();
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
    let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
    assert_eq!(
        (
            init["spec"]["federalVolumeBackupPhase"].as_str(),
            init["spec"]["resumeGcSchedule"].as_bool()
        ),
        (Some("teardown"), Some(true))
    );
    assert!(
        planes.backup("dp3", "tidb", "fed-bk").unwrap()["spec"]
            .get("federalVolumeBackupPhase")
            .is_none()
    );
    let (doc, _) = Catalog::<_, VolumeBackupDoc>::new(&store, BUCKET)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    assert_eq!(
        doc.status
            .progress
            .conditions
            .last()
            .unwrap()
            .reason
            .as_deref(),
        Some("ExecutionAborted")
    );
    assert_eq!(doc.brfed.members_settled, Some(false));
    // A later delivery (Lambda's retry) asks again and looks again; once the members are
    // terminal it records so, and the deliveries after that do nothing.
    let again = abort(&e, event("ABORTED")).await.unwrap();
    assert_eq!(again.action, "members-running");
    planes.add_condition("dp1", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp2", "tidb", "fed-bk", cond::FAILED);
    let settled = abort(&e, event("ABORTED")).await.unwrap();
    assert_eq!(settled.action, "members-settled");
    assert!(settled.clone().into_result().is_ok());
    let doc = catalog_doc(&store).await;
    assert_eq!(doc.brfed.members_settled, Some(true));
    assert!(doc.brfed.unsettled_members.is_empty());
    assert_eq!(
        doc.status
            .progress
            .conditions
            .last()
            .unwrap()
            .reason
            .as_deref(),
        Some("ExecutionAborted"),
        "the failure is written once"
    );
    assert_eq!(
        abort(&e, event("ABORTED")).await.unwrap().action,
        "nothing-to-do",
        "a delivery after the members settled does nothing"
    );
}

/// A backup whose every member has created its snapshots (GC still paused).
async fn at_snapshots_created(planes: &FakePlanes, store: &FakeStore) -> BackupContext {
    let e = env(planes, store);
    let ctx = started(planes, store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    execute(&e, step(&ctx)).await.unwrap();
    each(planes, cond::SNAPSHOTS_CREATED);
    assert_eq!(
        observe_now(planes, store, &ctx, Await::SnapshotsCreated)
            .await
            .verdict,
        "met"
    );
    ctx
}

fn step(ctx: &BackupContext) -> StepInput {
    StepInput {
        backup: ctx.clone(),
        failure: None,
    }
}

async fn catalog_doc(store: &FakeStore) -> VolumeBackupDoc {
    Catalog::<_, VolumeBackupDoc>::new(store, BUCKET)
        .get("br", "bk")
        .await
        .unwrap()
        .unwrap()
        .0
}

fn entry<'a>(doc: &'a VolumeBackupDoc, cluster: &str) -> &'a crate::backup::status::MemberStatus {
    doc.status
        .backups
        .iter()
        .find(|b| b.k8s_cluster_name == cluster)
        .unwrap()
}

#[tokio::test]
async fn an_invalid_initialize_member_is_deleted_at_teardown_so_its_init_job_stops() {
    // backup:resume:invalid — the data plane ignores an Invalid Backup: neither teardown nor
    // resumeGcSchedule stops its init job, deleting the Backup does.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    resume_gc(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INVALID);
    let o = observe_now(&planes, &store, &ctx, Await::GcResumed).await;
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "MemberInvalid");
    let input = StepInput {
        backup: ctx.clone(),
        failure: Some(failure.clone()),
    };
    teardown(&e, input.clone()).await.unwrap();
    assert!(
        planes.backup("dp1", "tidb", "fed-bk").is_none(),
        "the Invalid initialize member is deleted"
    );
    assert!(
        planes
            .log
            .lock()
            .unwrap()
            .contains(&"delete Backup dp1/tidb/fed-bk".to_string())
    );
    for c in ["dp2", "dp3"] {
        let m = planes.backup(c, "tidb", "fed-bk").unwrap();
        assert_eq!(m["spec"]["federalVolumeBackupPhase"], "teardown");
        assert!(m["spec"].get("resumeGcSchedule").is_none());
    }
    let log_len = planes.log.lock().unwrap().len();
    teardown(&e, input).await.unwrap();
    assert_eq!(
        planes.log.lock().unwrap().len(),
        log_len,
        "teardown twice => no new mutation"
    );
    let doc = catalog_doc(&store).await;
    let dp1 = entry(&doc, "dp1");
    assert!(
        dp1.deleted_at.is_some(),
        "the deletion is recorded: {dp1:?}"
    );
    assert_eq!(dp1.phase, cond::INVALID, "with what the member was");
    assert!(entry(&doc, "dp2").deleted_at.is_none());

    planes.add_condition("dp2", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp3", "tidb", "fed-bk", cond::COMPLETE);
    assert_eq!(
        observe_now(&planes, &store, &ctx, Await::Terminal)
            .await
            .verdict,
        "met"
    );
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx,
            failure: Some(failure),
            observed: None,
        },
    )
    .await
    .unwrap();
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
        let (planes, store) = (FakePlanes::new(3), FakeStore::default());
        let e = env(&planes, &store);
        let ctx = at_snapshots_created(&planes, &store).await;
        for c in conds {
            planes.add_condition(cluster, "tidb", "fed-bk", c);
        }
        teardown(&e, step(&ctx)).await.unwrap();
        assert_eq!(planes.backup_count(), 3, "{cluster} {conds:?}");
        let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
        assert_eq!(
            (
                init["spec"]["federalVolumeBackupPhase"].as_str(),
                init["spec"]["resumeGcSchedule"].as_bool()
            ),
            (Some("teardown"), Some(true)),
            "{cluster} {conds:?}"
        );
        assert!(
            catalog_doc(&store)
                .await
                .status
                .backups
                .iter()
                .all(|b| b.deleted_at.is_none())
        );
    }
}

#[tokio::test]
async fn a_deletion_whose_record_failed_is_recorded_by_the_retried_teardown() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INVALID);
    observe_now(&planes, &store, &ctx, Await::SnapshotsComplete).await;
    *store.broken.lock().unwrap() = true;
    assert_eq!(
        teardown(&e, step(&ctx)).await.unwrap_err().name(),
        "CatalogUnavailable"
    );
    assert!(planes.backup("dp1", "tidb", "fed-bk").is_none());
    *store.broken.lock().unwrap() = false;
    teardown(&e, step(&ctx)).await.unwrap();
    assert!(
        entry(&catalog_doc(&store).await, "dp1")
            .deleted_at
            .is_some(),
        "absent now, Invalid when last seen: deleted by the first attempt"
    );
}

#[tokio::test]
async fn an_aborted_execution_deletes_an_invalid_initialize_member_and_says_so() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    resume_gc(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INVALID);
    let r = abort(
        &e,
        ExecutionStatusChange {
            detail_type: None,
            detail: ExecutionDetail {
                execution_arn: EXEC.into(),
                state_machine_arn: None,
                status: "ABORTED".into(),
                input: Some(input(json!({})).to_string()),
                error: None,
                cause: None,
            },
        },
    )
    .await
    .unwrap();
    assert_eq!(r.action, "torn-down");
    let report = r.teardown.unwrap();
    assert_eq!(report.deleted, ["dp1/tidb/fed-bk"]);
    assert_eq!(report.requested.len(), 2);
    assert!(planes.backup("dp1", "tidb", "fed-bk").is_none());
    assert!(
        r.detail.contains("brfed deleted dp1/tidb/fed-bk"),
        "{}",
        r.detail
    );
    let doc = catalog_doc(&store).await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    let failed = doc.status.progress.conditions.last().unwrap();
    assert_eq!(failed.reason.as_deref(), Some("ExecutionAborted"));
    assert!(
        failed
            .message
            .as_deref()
            .unwrap()
            .contains("brfed deleted dp1/tidb/fed-bk")
    );
    assert!(entry(&doc, "dp1").deleted_at.is_some());
}

#[tokio::test]
async fn a_member_invalid_at_teardown_fails_the_backup_member_invalid() {
    // backup:teardown:invalid — no failure before teardown; dp2 turns Invalid in it.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    resume_gc(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZE_COMPLETE);
    each(&planes, cond::VOLUME_COMPLETE);
    teardown(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp1", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp2", "tidb", "fed-bk", cond::INVALID);
    planes.add_condition("dp3", "tidb", "fed-bk", cond::COMPLETE);
    let observed = observe_now(&planes, &store, &ctx, Await::Terminal).await;
    assert_eq!(observed.verdict, "met");
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx,
            failure: None,
            observed: Some(observed),
        },
    )
    .await
    .unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    assert!(out.cause.unwrap().contains("dp2"));
}

#[tokio::test]
async fn execute_retries_a_plane_that_answers_404_while_starting_and_names_every_plane() {
    // backup:initialize:api-down — dp2's API server is up again but does not serve the Backup
    // CRD yet: its create answers 404, which must be retried, not end the backup MemberMissing.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = started(&planes, &store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    planes.set_serving("dp2", false);
    let err = execute(&e, step(&ctx)).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable", "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("dp2"), "{err}");
    assert!(
        planes.backup("dp3", "tidb", "fed-bk").is_some(),
        "the others are created"
    );
    // dp2 serves Backups again: the retry creates its member and finds dp3's
    planes.set_serving("dp2", true);
    execute(&e, step(&ctx)).await.unwrap();
    assert_eq!(planes.backup_count(), 3);
    assert_eq!(
        planes.backup("dp2", "tidb", "fed-bk").unwrap()["spec"]["federalVolumeBackupPhase"],
        "execute"
    );

    // two planes that cannot be told are both named
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = started(&planes, &store).await.backup;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INITIALIZED);
    planes.set_serving("dp2", false);
    planes.set_down("dp3", true);
    let err = execute(&e, step(&ctx)).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    let m = err.to_string();
    assert!(m.contains("dp2") && m.contains("dp3"), "{m}");
    // a name conflict is not retried, whatever else happened
    planes.set_down("dp3", false);
    planes.put_backup("dp3", json!({"metadata": {"name": "fed-bk", "namespace": "tidb", "annotations": {"brfed.io/execution": "other"}}, "spec": {}}));
    assert_eq!(
        execute(&e, step(&ctx)).await.unwrap_err().name(),
        "MemberNameConflict"
    );
}

#[tokio::test]
async fn a_deleted_initialize_member_counts_as_invalid_not_missing() {
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    planes.add_condition("dp1", "tidb", "fed-bk", cond::INVALID);
    teardown(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp2", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp3", "tidb", "fed-bk", cond::COMPLETE);
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx,
            failure: None,
            observed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    let cause = out.cause.unwrap();
    assert!(
        cause.contains("of clusters dp1 failed") && cause.contains("brfed deleted dp1/tidb/fed-bk"),
        "{cause}"
    );
}

fn ended(status: &str) -> ExecutionStatusChange {
    ExecutionStatusChange {
        detail_type: None,
        detail: ExecutionDetail {
            execution_arn: EXEC.into(),
            state_machine_arn: None,
            status: status.into(),
            input: Some(input(json!({})).to_string()),
            error: None,
            cause: None,
        },
    }
}

#[tokio::test]
async fn an_abort_that_cannot_reach_the_initialize_plane_writes_nothing_terminal_and_its_retry_resumes_gc()
 {
    // Finding 4: the abort marked the backup Failed before it returned DataPlaneUnreachable, so
    // Lambda's retry found it terminal and did nothing: GC stayed paused.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    planes.set_down("dp1", true);
    let err = abort(&e, ended("ABORTED")).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    assert!(err.to_string().contains("dp1/tidb/fed-bk"), "{err}");
    let doc = catalog_doc(&store).await;
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
            planes.backup(c, "tidb", "fed-bk").unwrap()["spec"]["federalVolumeBackupPhase"],
            "teardown",
            "the planes that answer are asked at once"
        );
    }

    // Lambda retries the event; the plane is still down: still nothing terminal.
    assert_eq!(
        abort(&e, ended("ABORTED")).await.unwrap_err().name(),
        "DataPlaneUnreachable"
    );
    assert_eq!(
        catalog_doc(&store).await.status.progress.phase.as_deref(),
        Some("Running")
    );

    // The plane is back: the next retry asks it, GC resume included, and ends the backup.
    planes.set_down("dp1", false);
    let r = abort(&e, ended("ABORTED")).await.unwrap();
    assert_eq!(r.action, "torn-down");
    let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
    assert_eq!(
        (
            init["spec"]["federalVolumeBackupPhase"].as_str(),
            init["spec"]["resumeGcSchedule"].as_bool()
        ),
        (Some("teardown"), Some(true))
    );
    let doc = catalog_doc(&store).await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some("Failed"));
    assert_eq!(
        doc.status
            .progress
            .conditions
            .last()
            .unwrap()
            .reason
            .as_deref(),
        Some("ExecutionAborted")
    );
    assert!(doc.brfed.teardown_pending.is_empty());
    assert_eq!(
        doc.brfed.members_settled,
        Some(false),
        "none is terminal yet"
    );
    assert_eq!(ctx.members.len(), doc.brfed.unsettled_members.len());
}

#[tokio::test]
async fn finalize_asks_the_members_a_teardown_could_not_reach_before_it_writes_anything_terminal() {
    // The workflow's own failure path: Teardown gave up on an unreachable plane (its Catch goes
    // on to the wait and Finalize), which marked the backup Failed with that member never told.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    planes.set_down("dp1", true);
    let failure = Failure::new("MemberFailed", "dp2 failed");
    let input = StepInput {
        backup: ctx.clone(),
        failure: Some(failure.clone()),
    };
    assert_eq!(
        teardown(&e, input).await.unwrap_err().name(),
        "DataPlaneUnreachable"
    );
    assert_eq!(catalog_doc(&store).await.brfed.teardown_pending.len(), 1);
    let fin = FinalizeInput {
        backup: ctx.clone(),
        failure: Some(failure),
        observed: None,
    };
    let err = finalize(&e, fin.clone()).await.unwrap_err();
    assert_eq!(err.name(), "DataPlaneUnreachable");
    assert_eq!(
        catalog_doc(&store).await.status.progress.phase.as_deref(),
        Some("Running"),
        "a member was never asked to tear down: nothing terminal"
    );

    planes.set_down("dp1", false);
    let out = finalize(&e, fin).await.unwrap();
    assert_eq!(out.error.as_deref(), Some("MemberFailed"));
    let init = planes.backup("dp1", "tidb", "fed-bk").unwrap();
    assert_eq!(init["spec"]["resumeGcSchedule"], true);
    assert_eq!(init["spec"]["federalVolumeBackupPhase"], "teardown");
    assert!(out.document.brfed.teardown_pending.is_empty());
    assert_eq!(out.document.brfed.members_settled, Some(false));
}

#[tokio::test]
async fn a_backup_that_ended_with_members_running_is_looked_at_again_by_the_abort_of_its_failed_execution()
 {
    // Finding 10: a backup marked Failed while a member still runs must say so, and the
    // execution-ended rule (FAILED) looks again until the member has settled.
    let (planes, store) = (FakePlanes::new(3), FakeStore::default());
    let e = env(&planes, &store);
    let ctx = at_snapshots_created(&planes, &store).await;
    teardown(&e, step(&ctx)).await.unwrap();
    planes.add_condition("dp1", "tidb", "fed-bk", cond::COMPLETE);
    planes.add_condition("dp3", "tidb", "fed-bk", cond::COMPLETE);
    // dp2 hangs: the teardown wait runs out and Finalize fails the backup
    let out = finalize(
        &e,
        FinalizeInput {
            backup: ctx.clone(),
            failure: Some(Failure::new("PhaseDeadlineExceeded", "phase ran long")),
            observed: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        out.document.status.progress.phase.as_deref(),
        Some("Failed")
    );
    assert_eq!(out.document.brfed.members_settled, Some(false));
    assert_eq!(
        out.document.brfed.unsettled_members,
        ["dp2/tidb/fed-bk VolumeBackupSnapshotsCreated"]
    );

    let r = abort(&e, ended("FAILED")).await.unwrap();
    assert_eq!(r.action, "members-running");
    assert_eq!(r.into_result().unwrap_err().name(), "MembersRunning");
    planes.add_condition("dp2", "tidb", "fed-bk", cond::FAILED);
    let r = abort(&e, ended("FAILED")).await.unwrap();
    assert_eq!(r.action, "members-settled");
    let doc = catalog_doc(&store).await;
    assert_eq!(doc.brfed.members_settled, Some(true));
    assert_eq!(
        doc.status
            .progress
            .conditions
            .last()
            .unwrap()
            .reason
            .as_deref(),
        Some("PhaseDeadlineExceeded"),
        "the failure finalize wrote stays"
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
