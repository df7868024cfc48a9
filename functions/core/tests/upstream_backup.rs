//! The original's federated backup tests (`pkg/fedvolumebackup/backup/backup_test.go`, TiDB
//! Operator release-1.6), case by case, as tests of brfed's own decisions: the backup steps run
//! as the `volume-backup` state machine runs them, on in-memory data planes that the tests play
//! as the original's tests play theirs (a condition on a member, then the next look).
//!
//! Where the original's `Sync` returns an error to be called again ("wait ..."), brfed's observe
//! step answers `pending`; where `Sync` moves the members on, a brfed step does. Where brfed
//! differs on purpose, the test checks what brfed does and `docs/upstream-tests.md` says why.

use brfed_core::backup::judge::{Await, Failure};
use brfed_core::backup::status::{VolumeBackupDoc, backup_key, vbk};
use brfed_core::backup::steps::{
    self, BackupContext, Env, FinalizeInput, FinalizeOutput, ObserveInput, ObserveOutput,
    StartInput, StepInput,
};
use brfed_core::catalog::Catalog;
use brfed_core::member::cond;
use brfed_core::testing::{FakePlanes, FakeStore};
use brfed_core::time::Phase;
use serde_json::{Value, json};
use std::time::Duration;

const CATALOG: &str = "catalog";
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup:ns-1.backup-1";
/// The original's three data planes, in `spec.clusters` order (the first initializes).
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];
/// The member `Backup` of every data plane: `fed-{name}`, as the original names it.
const MEMBER: &str = "fed-backup-1";

/// The original's `generateVolumeBackup`: three clusters, `sendCredToTikv: false`, an AWS S3
/// location, service account `tidb-backup-manager`, `cleanPolicy: Delete`. (Each data plane's
/// TidbCluster is `tidb/basic`, what the fakes hold, instead of `ns-N/db-N`.)
fn volume_backup() -> Value {
    let clusters: Vec<Value> = PLANES
        .iter()
        .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": "tidb"}))
        .collect();
    json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
        "metadata": {"name": "backup-1", "namespace": "ns-1"},
        "spec": {"clusters": clusters,
          "template": {"br": {"sendCredToTikv": false},
                       "s3": {"provider": "aws", "region": "us-west-2", "bucket": "bucket-1",
                              "prefix": "volume-backup-test-1"},
                       "serviceAccount": "tidb-backup-manager", "cleanPolicy": "Delete"}}})
}

/// The original's test helper: the data planes, the federation (here: the catalog), and a
/// method per step of the state machine.
struct Helper {
    planes: FakePlanes,
    store: FakeStore,
}

impl Helper {
    fn new() -> Self {
        Self {
            planes: FakePlanes::new(3),
            store: FakeStore::default(),
        }
    }

    fn env(&self) -> Env<'_, FakePlanes, FakeStore> {
        Env {
            planes: &self.planes,
            store: &self.store,
            catalog_bucket: CATALOG,
            observe_budget: Duration::ZERO,
            backup_locations: None,
        }
    }

    /// `createVolumeBackup` + the first `Sync`: the start step, and the state machine's first
    /// look (which records the initialize member in `status.backups`).
    async fn create(&self) -> (BackupContext, Phase) {
        assert!(
            self.store
                .get(CATALOG, &backup_key("ns-1", "backup-1"))
                .is_none(),
            "nothing recorded (no timeStarted) before the backup starts"
        );
        let input = StartInput {
            input: volume_backup(),
            execution: EXEC.into(),
        };
        let out = steps::start(&self.env(), input).await.unwrap();
        let first = self
            .observe(&out.backup, Await::Initialized, &out.phase)
            .await;
        assert_eq!(first.verdict, "pending", "wait initialized");
        (out.backup, out.phase)
    }

    /// One look for `awaited` (a `Sync` that only waits).
    async fn observe(&self, ctx: &BackupContext, awaited: Await, phase: &Phase) -> ObserveOutput {
        let input = ObserveInput {
            backup: ctx.clone(),
            awaited,
            phase: phase.clone(),
        };
        steps::observe(&self.env(), input).await.unwrap()
    }

    async fn verdict(&self, ctx: &BackupContext, awaited: Await, phase: &Phase) -> String {
        self.observe(ctx, awaited, phase).await.verdict
    }

    fn step(ctx: &BackupContext, failure: Option<&Failure>) -> StepInput {
        StepInput {
            backup: ctx.clone(),
            failure: failure.cloned(),
        }
    }

    async fn execute(&self, ctx: &BackupContext) -> Phase {
        steps::execute(&self.env(), Self::step(ctx, None))
            .await
            .unwrap()
    }

    async fn resume_gc(&self, ctx: &BackupContext) -> Phase {
        steps::resume_gc(&self.env(), Self::step(ctx, None))
            .await
            .unwrap()
    }

    async fn teardown(&self, ctx: &BackupContext, failure: Option<&Failure>) -> Phase {
        steps::teardown(&self.env(), Self::step(ctx, failure))
            .await
            .unwrap()
    }

    async fn finalize(&self, ctx: &BackupContext, failure: Option<&Failure>) -> FinalizeOutput {
        let input = FinalizeInput {
            backup: ctx.clone(),
            failure: failure.cloned(),
            observed: None,
        };
        steps::finalize(&self.env(), input).await.unwrap()
    }

    /// The `VolumeBackup` as brfed records it.
    async fn doc(&self) -> VolumeBackupDoc {
        Catalog::<_, VolumeBackupDoc>::new(&self.store, CATALOG)
            .get("ns-1", "backup-1")
            .await
            .unwrap()
            .expect("the backup is recorded")
            .0
    }

    /// The original's `setDataPlane*`: condition `type_` on the members of `planes`.
    fn set(&self, planes: &[&str], type_: &str) {
        for p in planes {
            self.planes.add_condition(p, "tidb", MEMBER, type_);
        }
    }

    /// Member `plane`'s `spec.federalVolumeBackupPhase`.
    fn federal_phase(&self, plane: &str) -> Value {
        self.member(plane)["spec"]["federalVolumeBackupPhase"].clone()
    }

    fn member(&self, plane: &str) -> Value {
        self.planes
            .backup(plane, "tidb", MEMBER)
            .unwrap_or_else(|| panic!("member of {plane} exists"))
    }

    /// The original's `assertRunInitialize`: one member, on the first cluster, in phase
    /// `initialize`; the backup `Running` since a start time.
    async fn assert_run_initialize(&self) {
        assert_eq!(self.planes.backup_count(), 1, "only the initialize member");
        assert_eq!(self.federal_phase("dp1"), "initialize");
        let doc = self.doc().await;
        assert_eq!(doc.status.progress.phase.as_deref(), Some(vbk::RUNNING));
        assert!(doc.status.progress.time_started.is_some());
        assert_eq!(doc.status.backups.len(), 1, "{:?}", doc.status.backups);
    }

    /// The original's `assertRunTeardown`: the members that exist are in phase `teardown`; only
    /// the initialize member when the backup failed at initialize.
    async fn assert_run_teardown(&self, initialize_failed: bool) {
        let planes: &[&str] = if initialize_failed {
            &PLANES[..1]
        } else {
            &PLANES
        };
        assert_eq!(self.planes.backup_count(), planes.len());
        for p in planes {
            assert_eq!(self.federal_phase(p), "teardown", "{p}");
        }
        assert_eq!(self.doc().await.status.backups.len(), planes.len());
    }

    /// The original's `assertFailed`: `Failed`, with a completion time and the time taken.
    fn assert_failed(out: &FinalizeOutput) {
        let p = &out.document.status.progress;
        assert_eq!(p.phase.as_deref(), Some(vbk::FAILED));
        assert!(p.has(vbk::FAILED));
        assert!(
            p.time_completed.is_some() && p.time_taken.is_some(),
            "{p:?}"
        );
        assert!(p.commit_ts.is_none(), "{p:?}");
    }
}

/// `TestVolumeBackup`: the whole ladder. Initialize on the first cluster; wait until it is
/// initialized; execute (the initialize member moves to `execute`, the others are created in
/// it); wait until every member created its snapshots; resume GC on the initialize member; wait
/// until it resumed (the backup is then `SnapshotsCreated`); wait until every member's snapshots
/// completed; tear every member down; `Complete` with the least member commitTs ("123" of 123,
/// 124, 125), a completion time and the time taken.
#[tokio::test]
async fn test_volume_backup() {
    let h = Helper::new();
    let (ctx, phase) = h.create().await;
    h.assert_run_initialize().await;

    // wait initialized
    assert_eq!(h.verdict(&ctx, Await::Initialized, &phase).await, "pending");

    // initialized, run execute phase
    h.set(&["dp1"], cond::INITIALIZED);
    assert_eq!(h.verdict(&ctx, Await::Initialized, &phase).await, "met");
    let phase = h.execute(&ctx).await;
    assert_eq!(h.planes.backup_count(), 3);
    for p in PLANES {
        assert_eq!(h.federal_phase(p), "execute", "{p}");
    }
    assert_eq!(
        h.verdict(&ctx, Await::SnapshotsCreated, &phase).await,
        "pending",
        "wait snapshots created"
    );
    assert_eq!(h.doc().await.status.backups.len(), 3);

    // snapshots created, resume gc and scheduler
    h.set(&PLANES, cond::SNAPSHOTS_CREATED);
    assert_eq!(
        h.verdict(&ctx, Await::SnapshotsCreated, &phase).await,
        "met"
    );
    let phase = h.resume_gc(&ctx).await;
    assert_eq!(h.member("dp1")["spec"]["resumeGcSchedule"], true);

    // wait initialize complete
    assert_eq!(h.verdict(&ctx, Await::GcResumed, &phase).await, "pending");
    assert!(!h.doc().await.status.progress.has(vbk::SNAPSHOTS_CREATED));

    // initialize complete: the federated backup is SnapshotsCreated
    h.set(&["dp1"], cond::INITIALIZE_COMPLETE);
    assert_eq!(h.verdict(&ctx, Await::GcResumed, &phase).await, "met");
    assert!(h.doc().await.status.progress.has(vbk::SNAPSHOTS_CREATED));

    // wait volume complete
    assert_eq!(
        h.verdict(&ctx, Await::SnapshotsComplete, &phase).await,
        "pending"
    );

    // volume complete, run teardown phase
    h.set(&PLANES, cond::VOLUME_COMPLETE);
    assert_eq!(
        h.verdict(&ctx, Await::SnapshotsComplete, &phase).await,
        "met"
    );
    let phase = h.teardown(&ctx, None).await;
    h.assert_run_teardown(false).await;

    // volume backup complete
    for (p, ts) in [("dp1", "123"), ("dp2", "124"), ("dp3", "125")] {
        h.planes
            .set_status(p, "tidb", MEMBER, json!({"commitTs": ts}));
    }
    h.set(&PLANES, cond::COMPLETE);
    assert_eq!(h.verdict(&ctx, Await::Terminal, &phase).await, "met");
    let out = h.finalize(&ctx, None).await;
    assert_eq!(out.error, None);
    let p = &out.document.status.progress;
    assert_eq!(p.phase.as_deref(), Some(vbk::COMPLETE));
    assert_eq!(p.commit_ts.as_deref(), Some("123"));
    assert!(
        p.time_completed.is_some() && p.time_taken.is_some(),
        "{p:?}"
    );
}

/// `TestVolumeBackupInitializeFailed`: the initialize member fails to initialize; only it is
/// torn down (no other member is ever created) and the backup is `Failed`.
#[tokio::test]
async fn test_volume_backup_initialize_failed() {
    let h = Helper::new();
    let (ctx, phase) = h.create().await;
    h.assert_run_initialize().await;

    // initialize failed, run teardown
    h.set(&["dp1"], cond::INITIALIZE_FAILED);
    let o = h.observe(&ctx, Await::Initialized, &phase).await;
    assert_eq!(o.verdict, "failed");
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "InitializeFailed");
    let phase = h.teardown(&ctx, Some(&failure)).await;
    h.assert_run_teardown(true).await;

    // volume backup failed (an initialize failure ends the wait at once)
    assert_eq!(h.verdict(&ctx, Await::Terminal, &phase).await, "met");
    let out = h.finalize(&ctx, Some(&failure)).await;
    Helper::assert_failed(&out);
    assert_eq!(out.error.as_deref(), Some("InitializeFailed"));
}

/// `TestVolumeBackupVolumeFailed`: a member's snapshots fail after execute; every member is
/// torn down; while one member is `Failed` and the others still run, the backup stays `Running`
/// ("wait VolumeBackup complete"); when all have failed, it is `Failed`.
#[tokio::test]
async fn test_volume_backup_volume_failed() {
    let h = Helper::new();
    let (ctx, phase) = h.create().await;
    h.assert_run_initialize().await;

    // initialized, run execute phase
    h.set(&["dp1"], cond::INITIALIZED);
    assert_eq!(h.verdict(&ctx, Await::Initialized, &phase).await, "met");
    let phase = h.execute(&ctx).await;
    for p in PLANES {
        assert_eq!(h.federal_phase(p), "execute", "{p}");
    }

    // volume failed, run teardown
    h.set(&["dp1"], cond::VOLUME_FAILED);
    let o = h.observe(&ctx, Await::SnapshotsCreated, &phase).await;
    assert_eq!(o.verdict, "failed");
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "MemberFailed");
    let phase = h.teardown(&ctx, Some(&failure)).await;
    h.assert_run_teardown(false).await;

    // one data plane failed: wait VolumeBackup complete, still Running
    h.set(&["dp1"], cond::FAILED);
    assert_eq!(h.verdict(&ctx, Await::Terminal, &phase).await, "pending");
    let doc = h.doc().await;
    assert_eq!(doc.status.progress.phase.as_deref(), Some(vbk::RUNNING));
    assert!(!doc.status.progress.is_terminal());

    // all data planes failed
    h.set(&["dp2", "dp3"], cond::FAILED);
    assert_eq!(h.verdict(&ctx, Await::Terminal, &phase).await, "met");
    let out = h.finalize(&ctx, Some(&failure)).await;
    Helper::assert_failed(&out);
    assert_eq!(out.error.as_deref(), Some("MemberFailed"));
}

/// `TestVolumeBackupFailed4Invalid`: the initialize member is `Invalid`; only it is handled (no
/// other member is ever created) and the backup is `Failed`. Different on purpose: the original
/// puts the `Invalid` member in phase `teardown`, which its data plane ignores (it no longer
/// reconciles an `Invalid` Backup), so its init job keeps GC paused until its deadline; brfed
/// deletes it instead (its init job stops, GC resumes) and records when in
/// `status.backups[].deletedAt` (`docs/backup.md`, `docs/upstream-tests.md`).
#[tokio::test]
async fn test_volume_backup_failed_4_invalid() {
    let h = Helper::new();
    let (ctx, phase) = h.create().await;
    h.assert_run_initialize().await;

    // invalid member backup, run teardown
    h.set(&["dp1"], cond::INVALID);
    let o = h.observe(&ctx, Await::Initialized, &phase).await;
    assert_eq!(o.verdict, "failed");
    let failure = o.failure.unwrap();
    assert_eq!(failure.error, "MemberInvalid");
    let phase = h.teardown(&ctx, Some(&failure)).await;
    assert_eq!(h.planes.backup_count(), 0, "deleted, not torn down");
    let doc = h.doc().await;
    assert_eq!(doc.status.backups.len(), 1, "only the initialize member");
    assert!(doc.status.backups[0].deleted_at.is_some(), "{doc:?}");

    // volume backup failed
    assert_eq!(h.verdict(&ctx, Await::Terminal, &phase).await, "met");
    let out = h.finalize(&ctx, Some(&failure)).await;
    Helper::assert_failed(&out);
    assert_eq!(out.error.as_deref(), Some("MemberInvalid"));
    assert_eq!(out.document.status.backups.len(), 1);
}
