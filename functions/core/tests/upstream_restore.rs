//! The original's federated restore tests (`pkg/fedvolumebackup/restore/restore_test.go`, TiDB
//! Operator release-1.6), case by case, as tests of brfed's own decisions: the restore steps run
//! as the `volume-restore` state machine runs them (start, the waits, restore-data on the member
//! of least commitTs, restart, finalize; on a failure the settle wait, then finalize), on
//! in-memory data planes that the tests play as the original's tests play theirs.
//!
//! Where the original's `Sync` returns an error to be called again ("wait ..."), brfed's observe
//! step answers `pending`. Where brfed differs on purpose, the test checks what brfed does and
//! `docs/upstream-tests.md` says why.

use brfed_core::backup::judge::Failure;
use brfed_core::backup::steps::{ObserveOutput, StartInput};
use brfed_core::catalog::Catalog;
use brfed_core::restore::judge::RestoreAwait;
use brfed_core::restore::member::rcond;
use brfed_core::restore::status::VolumeRestoreDoc;
use brfed_core::restore::steps::{
    self, RestoreContext, RestoreFinalizeOutput, RestoreObserveInput, RestoreStepInput,
};
use brfed_core::testing::RestoreFakes;
use brfed_core::time::Phase;
use serde_json::{Value, json};

const CATALOG: &str = "catalog";
const DATA: &str = "bucket-1";
/// The namespace of each data plane's TidbCluster (in recovery mode, as a restore needs).
const TARGET_NS: &str = "tidb";
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-restore:ns-1.restore-1";
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];
/// The member `Restore` of every data plane: `fed-{name}`, as the original names it.
const MEMBER: &str = "fed-restore-1";

/// The original's `generateVolumeRestore` with `template` over its template (`warmup`,
/// `warmupStrategy`): three clusters, each restoring its own backup prefix of one bucket,
/// `sendCredToTikv: false`, service account `tidb-backup-manager`. brfed needs each cluster's
/// `azName` (where the volumes are made), which the original's test leaves out.
fn volume_restore(template: Value) -> Value {
    let clusters: Vec<Value> = PLANES
        .iter()
        .map(|p| {
            json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": TARGET_NS,
                   "azName": format!("az-{p}"),
                   "backup": {"s3": {"provider": "aws", "bucket": DATA, "prefix": format!("p-{p}")}}})
        })
        .collect();
    let mut t = json!({"br": {"sendCredToTikv": false}, "serviceAccount": "tidb-backup-manager"});
    t.as_object_mut()
        .unwrap()
        .extend(template.as_object().unwrap().clone());
    json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
           "metadata": {"name": "restore-1", "namespace": "ns-1"},
           "spec": {"clusters": clusters, "template": t}})
}

/// The original's test helper: the data planes (with the backup to restore), the federation
/// (here: the catalog) and EC2 ([`RestoreFakes`]), and a method per step of the state machine.
struct Helper {
    fakes: RestoreFakes,
}

/// What the state machine carries from step to step.
struct Run {
    ctx: RestoreContext,
    phase: Phase,
    data_member: Option<usize>,
}

impl Helper {
    fn new() -> Self {
        Self {
            fakes: RestoreFakes::new(DATA, TARGET_NS, CATALOG),
        }
    }

    /// `createVolumeRestoreWith` + the first `Sync`: the start step, and the state machine's
    /// first look. The original's `assertRunRestoreVolume`: `Running` since a start time, three
    /// members, all in phase `restore-volume`, one step (`RestoreVolume`).
    async fn create(&self, template: Value) -> Run {
        let input = StartInput {
            input: volume_restore(template),
            execution: EXEC.into(),
        };
        let out = steps::start(&self.fakes.env(), input).await.unwrap();
        let run = Run {
            ctx: out.restore,
            phase: out.phase,
            data_member: None,
        };
        assert_eq!(
            self.verdict(&run, RestoreAwait::VolumesRestored).await,
            "pending",
            "wait restore volume phase"
        );
        let doc = self.doc().await;
        assert_eq!(doc.status.progress.phase.as_deref(), Some("Running"));
        assert!(doc.status.progress.time_started.is_some());
        assert_eq!(doc.status.restores.len(), 3);
        assert_eq!(self.steps(&doc), ["RestoreVolume"]);
        for p in PLANES {
            assert_eq!(self.federal_phase(p), "restore-volume", "{p}");
        }
        run
    }

    async fn observe(&self, run: &Run, awaited: RestoreAwait) -> ObserveOutput {
        let input = RestoreObserveInput {
            restore: run.ctx.clone(),
            awaited,
            phase: run.phase.clone(),
            data_member: run.data_member,
        };
        steps::observe(&self.fakes.env(), input).await.unwrap()
    }

    async fn verdict(&self, run: &Run, awaited: RestoreAwait) -> String {
        self.observe(run, awaited).await.verdict
    }

    fn step_input(run: &Run, failure: Option<&Failure>) -> RestoreStepInput {
        RestoreStepInput {
            restore: run.ctx.clone(),
            failure: failure.cloned(),
            data_member: run.data_member,
            observed: None,
        }
    }

    /// Every member `TikvComplete` (the wait for TiKV is met), then restore data on the member of
    /// least commitTs. The original's `assertRunRestoreData`: `TikvComplete`, member 1 (commitTs
    /// 121) in `restore-data`, the others still in `restore-volume`; `steps` steps.
    async fn restore_data(&self, run: &mut Run, steps: usize) {
        self.set(&PLANES, rcond::TIKV_COMPLETE);
        assert_eq!(self.verdict(run, RestoreAwait::TikvStarted).await, "met");
        let i = steps::data(&self.fakes.env(), Self::step_input(run, None))
            .await
            .unwrap();
        run.data_member = Some(i);
        assert_eq!(i, 0, "dp1 has the least commitTs");
        let doc = self.doc().await;
        assert_eq!(
            doc.status.progress.phase.as_deref(),
            Some(rcond::TIKV_COMPLETE)
        );
        assert_eq!(self.steps(&doc).len(), steps, "{:?}", doc.status.steps);
        assert_eq!(self.federal_phase("dp1"), "restore-data");
        for p in ["dp2", "dp3"] {
            assert_eq!(self.federal_phase(p), "restore-volume", "{p}");
        }
    }

    /// Member 1 `DataComplete` (the wait for the data is met), then restart every TiKV. The
    /// original's `assertRunRestoreFinish`: `DataComplete` at commitTs 121, every member in
    /// `restore-finish`; `steps` steps.
    async fn restore_finish(&self, run: &mut Run, steps: usize) {
        self.data_complete();
        assert_eq!(self.verdict(run, RestoreAwait::DataRestored).await, "met");
        run.phase = steps::finish(&self.fakes.env(), Self::step_input(run, None))
            .await
            .unwrap();
        let doc = self.doc().await;
        assert_eq!(
            doc.status.progress.phase.as_deref(),
            Some(rcond::DATA_COMPLETE)
        );
        assert_eq!(doc.status.progress.commit_ts.as_deref(), Some("121"));
        assert_eq!(self.steps(&doc).len(), steps, "{:?}", doc.status.steps);
        for p in PLANES {
            assert_eq!(self.federal_phase(p), "restore-finish", "{p}");
        }
    }

    /// The middle of a restore that succeeds: data plane TiKV complete, run the restore data
    /// phase ([`Self::restore_data`], `steps` steps); wait for the restore data phase; data
    /// plane data complete, run the restore finish phase ([`Self::restore_finish`], one step
    /// more); wait for the restore to complete.
    async fn restore_data_and_finish(&self, run: &mut Run, steps: usize) {
        self.restore_data(run, steps).await;
        assert_eq!(
            self.verdict(run, RestoreAwait::DataRestored).await,
            "pending"
        );
        self.restore_finish(run, steps + 1).await;
        assert_eq!(self.verdict(run, RestoreAwait::Complete).await, "pending");
    }

    /// Data plane complete, restore complete: every member `Complete`, the wait for the end is
    /// met, and finalize ends the restore `Complete` with `steps` steps.
    async fn complete(&self, run: &Run, steps: usize) {
        self.set(&PLANES, rcond::COMPLETE);
        assert_eq!(self.verdict(run, RestoreAwait::Complete).await, "met");
        let out = self.finalize(run, None).await;
        self.assert_complete(&out, steps, false);
    }

    async fn finalize(&self, run: &Run, failure: Option<&Failure>) -> RestoreFinalizeOutput {
        steps::finalize(&self.fakes.env(), Self::step_input(run, failure))
            .await
            .unwrap()
    }

    /// Member 1 `Failed` (the original's `setDataPlaneFailed`), so that a wait ends in a
    /// member's failure, then the failure path: the settle wait answers `settled` (`met`, or
    /// `pending` for members still making volumes, which the state machine ends at its limit),
    /// then finalize. The original's `assertRestoreFailed`: `Failed` with a completion time and
    /// the time taken, and no commitTs unless the data was restored.
    async fn fail(&self, run: &Run, awaited: RestoreAwait, settled: &str) -> RestoreFinalizeOutput {
        self.set(&["dp1"], rcond::FAILED);
        let o = self.observe(run, awaited).await;
        assert_eq!(o.verdict, "failed", "{o:?}");
        let failure = o.failure.unwrap();
        assert_eq!(failure.error, "MemberFailed");
        assert_eq!(self.verdict(run, RestoreAwait::Settled).await, settled);
        let out = self.finalize(run, Some(&failure)).await;
        let p = &out.document.status.progress;
        assert_eq!(p.phase.as_deref(), Some("Failed"));
        assert!(
            p.time_completed.is_some() && p.time_taken.is_some(),
            "{p:?}"
        );
        if !p.has(rcond::DATA_COMPLETE) {
            assert_eq!(p.commit_ts, None);
        }
        assert_eq!(out.error.as_deref(), Some("MemberFailed"));
        out
    }

    /// The original's `assertRestoreComplete`: `Complete`, with a completion time and the time
    /// taken; commitTs 121 unless only the WAL was checked; `steps` steps.
    fn assert_complete(&self, out: &RestoreFinalizeOutput, steps: usize, check_wal_only: bool) {
        assert_eq!(out.error, None, "{:?}", out.cause);
        let s = &out.document.status;
        assert_eq!(s.progress.phase.as_deref(), Some("Complete"));
        assert!(s.progress.time_completed.is_some() && s.progress.time_taken.is_some());
        if !check_wal_only {
            assert_eq!(s.progress.commit_ts.as_deref(), Some("121"));
        }
        assert_eq!(s.steps.len(), steps, "{:?}", s.steps);
    }

    async fn doc(&self) -> VolumeRestoreDoc {
        Catalog::<_, VolumeRestoreDoc>::new(&self.fakes.store, CATALOG)
            .get("ns-1", "restore-1")
            .await
            .unwrap()
            .expect("the restore is recorded")
            .0
    }

    fn steps(&self, doc: &VolumeRestoreDoc) -> Vec<String> {
        doc.status
            .steps
            .iter()
            .map(|s| s.step_name.clone())
            .collect()
    }

    async fn phase(&self) -> Option<String> {
        self.doc().await.status.progress.phase
    }

    fn federal_phase(&self, plane: &str) -> Value {
        let m = self.fakes.planes.restore(plane, TARGET_NS, MEMBER);
        m.unwrap_or_else(|| panic!("member of {plane} exists"))["spec"]["federalVolumeRestorePhase"]
            .clone()
    }

    /// The original's `setDataPlane*`: condition `type_` on the members of `planes`.
    fn set(&self, planes: &[&str], type_: &str) {
        for p in planes {
            self.fakes
                .planes
                .add_restore_condition(p, TARGET_NS, MEMBER, type_);
        }
    }

    /// `setDataPlaneVolumeComplete`: every member `VolumeComplete`, commitTs 121, 122, 123.
    fn volume_complete(&self) {
        for (p, ts) in [("dp1", "121"), ("dp2", "122"), ("dp3", "123")] {
            self.fakes
                .planes
                .set_restore_status(p, TARGET_NS, MEMBER, json!({"commitTs": ts}));
        }
        self.set(&PLANES, rcond::VOLUME_COMPLETE);
    }

    /// `setDataPlaneDataComplete`: member 1 `DataComplete` at commitTs 121.
    fn data_complete(&self) {
        self.fakes
            .planes
            .set_restore_status("dp1", TARGET_NS, MEMBER, json!({"commitTs": "121"}));
        self.set(&["dp1"], rcond::DATA_COMPLETE);
    }

    /// Volumes restored; the original's `assertRestoreVolumeComplete`: `VolumeComplete`, and the
    /// steps started with it (`StartTiKV` and `WarmUp` for async warmup, one of them otherwise).
    async fn volumes_restored(&self, run: &Run, steps: &[&str]) {
        self.volume_complete();
        assert_eq!(
            self.verdict(run, RestoreAwait::VolumesRestored).await,
            "met"
        );
        let doc = self.doc().await;
        assert_eq!(
            doc.status.progress.phase.as_deref(),
            Some(rcond::VOLUME_COMPLETE)
        );
        assert_eq!(self.steps(&doc), steps);
    }

    /// Warmup started on every member; the original's `assertRestoreWarmUpStarted`.
    async fn warmup_started(&self, run: &Run, awaited: RestoreAwait, steps: usize) {
        self.set(&PLANES, rcond::WARMUP_STARTED);
        assert_eq!(self.verdict(run, awaited).await, "pending");
        let doc = self.doc().await;
        assert_eq!(
            doc.status.progress.phase.as_deref(),
            Some(rcond::WARMUP_STARTED)
        );
        assert_eq!(self.steps(&doc).len(), steps);
    }
}

/// `TestVolumeRestore`: no warmup. Volumes, then TiKV started, then restore-data on the member
/// of least commitTs, then every TiKV restarted, then `Complete` at that commitTs with 4 steps.
#[tokio::test]
async fn test_volume_restore() {
    let h = Helper::new();
    let mut run = h.create(json!({})).await;

    // data plane volume complete, still need to wait tikv ready
    h.volumes_restored(&run, &["RestoreVolume", "StartTiKV"])
        .await;
    assert_eq!(h.verdict(&run, RestoreAwait::TikvStarted).await, "pending");

    h.restore_data_and_finish(&mut run, 3).await;

    h.complete(&run, 4).await;
}

/// `TestVolumeRestoreWithWarmUpSync`: warmup before TiKV starts. `WarmUp` starts with the
/// volumes, `WarmUpStarted`, then `WarmUpComplete` starts `StartTiKV`; then as without warmup,
/// ending `Complete` with 5 steps.
#[tokio::test]
async fn test_volume_restore_with_warm_up_sync() {
    let h = Helper::new();
    let mut run = h.create(json!({"warmup": "sync"})).await;

    h.volumes_restored(&run, &["RestoreVolume", "WarmUp"]).await;
    assert_eq!(h.verdict(&run, RestoreAwait::TikvStarted).await, "pending");

    // warmup start
    h.warmup_started(&run, RestoreAwait::TikvStarted, 2).await;

    // warmup complete
    h.set(&PLANES, rcond::WARMUP_COMPLETE);
    assert_eq!(h.verdict(&run, RestoreAwait::TikvStarted).await, "pending");
    let doc = h.doc().await;
    assert!(doc.status.progress.has(rcond::WARMUP_COMPLETE));
    assert_eq!(h.steps(&doc), ["RestoreVolume", "WarmUp", "StartTiKV"]);

    h.restore_data_and_finish(&mut run, 4).await;

    h.complete(&run, 5).await;
}

/// `TestVolumeRestoreWithWarmUpAsync`: TiKV starts while the volumes warm up (`StartTiKV` and
/// `WarmUp` start together). Every member `Complete` is not enough: the restore waits for
/// every member's `WarmUpComplete`, then is `Complete` with 5 steps.
#[tokio::test]
async fn test_volume_restore_with_warm_up_async() {
    let h = Helper::new();
    let mut run = h.create(json!({"warmup": "async"})).await;

    h.volumes_restored(&run, &["RestoreVolume", "StartTiKV", "WarmUp"])
        .await;
    assert_eq!(h.verdict(&run, RestoreAwait::TikvStarted).await, "pending");

    // warmup start
    h.warmup_started(&run, RestoreAwait::TikvStarted, 3).await;

    h.restore_data_and_finish(&mut run, 4).await;

    // data plane complete, wait warmup complete
    h.set(&PLANES, rcond::COMPLETE);
    assert_eq!(h.verdict(&run, RestoreAwait::Complete).await, "pending");
    assert!(!h.doc().await.status.progress.is_terminal());

    // warmup complete, and restore complete
    h.set(&PLANES, rcond::WARMUP_COMPLETE);
    assert_eq!(h.verdict(&run, RestoreAwait::Complete).await, "met");
    let out = h.finalize(&run, None).await;
    assert!(out.document.status.progress.has(rcond::WARMUP_COMPLETE));
    h.assert_complete(&out, 5, false);
}

/// `TestVolumeRestore_RestoreVolumeFailed`: a member fails while making volumes; the restore is
/// `Failed` without a commitTs. Different on purpose: the original writes `Failed` at once;
/// brfed first waits (at most 15 min) for the other members to stop making volumes, so that the
/// leftovers report names every volume (`docs/restore.md`, "Wait For Members Settled").
#[tokio::test]
async fn test_volume_restore_restore_volume_failed() {
    let h = Helper::new();
    let run = h.create(json!({})).await;

    // restore volume failed, restore failed (dp2 and dp3 still make volumes: not settled)
    let out = h.fail(&run, RestoreAwait::VolumesRestored, "pending").await;
    assert_eq!(out.document.status.progress.commit_ts, None);
}

/// The restore without warmup, up to the restore data phase (3 steps).
async fn restoring_data(h: &Helper) -> Run {
    let mut run = h.create(json!({})).await;
    h.volumes_restored(&run, &["RestoreVolume", "StartTiKV"])
        .await;
    h.restore_data(&mut run, 3).await;
    run
}

/// `TestVolumeRestore_RestoreDataFailed`: the restore-data member fails; the restore is
/// `Failed` without a commitTs.
#[tokio::test]
async fn test_volume_restore_restore_data_failed() {
    let h = Helper::new();
    let run = restoring_data(&h).await;

    // restore data failed, restore failed
    let out = h.fail(&run, RestoreAwait::DataRestored, "met").await;
    assert_eq!(out.document.status.progress.commit_ts, None);
}

/// `TestVolumeRestore_RestoreFinishFailed`: a member fails while TiKV restarts after the data
/// was restored; the restore is `Failed`, and keeps the commitTs it restored to.
#[tokio::test]
async fn test_volume_restore_restore_finish_failed() {
    let h = Helper::new();
    let mut run = restoring_data(&h).await;
    h.restore_finish(&mut run, 4).await;

    // restore finish failed, restore failed
    let out = h.fail(&run, RestoreAwait::Complete, "met").await;
    assert_eq!(
        out.document.status.progress.commit_ts.as_deref(),
        Some("121")
    );
}

/// The check-wal-only restore with a sync warmup, up to its volumes: `Wait For WAL Check`
/// follows.
async fn check_wal_only(h: &Helper) -> Run {
    let run = h
        .create(json!({"warmup": "sync", "warmupStrategy": "check-wal-only"}))
        .await;
    h.volumes_restored(&run, &["RestoreVolume", "WarmUp"]).await;
    run
}

/// `TestVolumeRestore_CheckWAL/failed_async` and `success_async`: check-wal-only with an async
/// warmup. Different on purpose: the original takes it and its test plays the data plane to the
/// end, but a real data plane never ends it (no TiKV starts for check-wal-only, and an async
/// warmup waits for running TiKV pods), so the federated restore runs for ever; brfed refuses it
/// before anything is created (`InvalidSpec`, saying why; `docs/restore.md`, "check-wal-only
/// needs `warmup: sync`").
#[tokio::test]
async fn test_volume_restore_check_wal_async_is_refused() {
    let h = Helper::new();
    let input = StartInput {
        input: volume_restore(json!({"warmup": "async", "warmupStrategy": "check-wal-only"})),
        execution: EXEC.into(),
    };
    let err = steps::start(&h.fakes.env(), input).await.unwrap_err();
    assert_eq!(err.name(), "InvalidSpec", "{err}");
    assert!(err.to_string().contains("check-wal-only"), "{err}");
    assert_eq!(h.fakes.planes.restore_count(), 0, "no member created");
    let recorded = Catalog::<_, VolumeRestoreDoc>::new(&h.fakes.store, CATALOG)
        .get("ns-1", "restore-1")
        .await
        .unwrap();
    assert!(recorded.is_none(), "nothing recorded");
}

/// `TestVolumeRestore_CheckWAL/failed_sync` (`testVolumeRestore_CheckWALFailed`): a member fails
/// while the WAL is checked; the restore is `Failed` without a commitTs.
#[tokio::test]
async fn test_volume_restore_check_wal_failed_sync() {
    let h = Helper::new();
    let run = check_wal_only(&h).await;
    let out = h.fail(&run, RestoreAwait::WalChecked, "met").await;
    assert_eq!(out.document.status.progress.commit_ts, None);
    assert_eq!(h.federal_phase("dp1"), "restore-volume", "no restore-data");
}

/// `TestVolumeRestore_CheckWAL/success_sync` (`testVolumeRestore_CheckWALOnly`): warmup starts,
/// then every member is `WarmUpComplete` and `Complete` (as the test sets them); the restore is
/// `Complete` with 3 steps (`RestoreVolume`, `WarmUp`, `StartTiKV`), no restore-data ever run.
#[tokio::test]
async fn test_volume_restore_check_wal_only_sync() {
    let h = Helper::new();
    let run = check_wal_only(&h).await;

    // warmup start
    h.warmup_started(&run, RestoreAwait::WalChecked, 2).await;

    h.set(&PLANES, rcond::WARMUP_COMPLETE);
    h.set(&PLANES, rcond::COMPLETE);
    assert_eq!(h.verdict(&run, RestoreAwait::WalChecked).await, "met");
    let out = h.finalize(&run, None).await;
    h.assert_complete(&out, 3, true);
    for p in PLANES {
        assert_eq!(h.federal_phase(p), "restore-volume", "{p}: no restore-data");
    }
}

/// The original's `maybeBreakForCheckWALOnly`, which `testVolumeRestore_CheckWALOnly` goes
/// through: with `warmupStrategy: check-wal-only` the restore is `Complete` once every member
/// is `WarmUpComplete`, whether or not any member is `Complete` yet.
#[tokio::test]
async fn test_volume_restore_check_wal_only_completes_on_warm_up_complete() {
    let h = Helper::new();
    let run = check_wal_only(&h).await;
    h.set(&PLANES, rcond::WARMUP_STARTED);
    assert_eq!(h.verdict(&run, RestoreAwait::WalChecked).await, "pending");
    h.set(&["dp1", "dp2"], rcond::WARMUP_COMPLETE);
    assert_eq!(h.verdict(&run, RestoreAwait::WalChecked).await, "pending");
    h.set(&["dp3"], rcond::WARMUP_COMPLETE);
    assert_eq!(
        h.verdict(&run, RestoreAwait::WalChecked).await,
        "met",
        "every member WarmUpComplete, none Complete"
    );
    let out = h.finalize(&run, None).await;
    h.assert_complete(&out, 3, true);
    assert_eq!(h.phase().await.as_deref(), Some("Complete"));
}
