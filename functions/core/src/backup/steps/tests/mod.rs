//! The backup steps on in-memory fakes: `ladder` walks whole runs of the state machine, the other
//! files hold a step each (its idempotency and every named rejection). What they share is here:
//! the [`World`] of fakes, with one method a step, and the request and events they are given.

mod abort;
mod execute;
mod finalize;
mod ladder;
mod observe;
mod start;
mod teardown;

use crate::StepError;
use crate::backup::judge::Await;
use crate::backup::judge::Failure;
use crate::backup::status::MemberStatus;
use crate::backup::status::VolumeBackupDoc;
use crate::backup::status::backup_key;
use crate::backup::steps::AbortReport;
use crate::backup::steps::FinalizeOutput;
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
use crate::backup::steps::observe::observe;
use crate::backup::steps::resume_gc::resume_gc;
use crate::backup::steps::start::start;
use crate::backup::steps::teardown::teardown;
use crate::catalog::Catalog;
use crate::catalog::FederatedDoc;
use crate::execution::ExecutionDetail;
use crate::execution::ExecutionStatusChange;
use crate::member::cond;
use crate::testing::{FakePlanes, FakeStore};
use crate::time::Phase;
use serde_json::Value;
use serde_json::json;
use std::time::Duration;

/// The catalog's bucket.
const BUCKET: &str = "catalog";
/// The execution every backup here is started by.
const EXEC: &str = "arn:aws:states:us-west-2:123456789012:execution:volume-backup:bk";
/// The data planes of [`input`].
const PLANES: [&str; 3] = ["dp1", "dp2", "dp3"];

/// The VolumeBackup `br/bk` of TidbCluster `tidb/basic` on dp1..dp3 into `s3://data/p-dpN`
/// (members `tidb/fed-bk`), with `options`.
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

/// The event Step Functions sends when [`EXEC`], started with `input({})`, ends `status`.
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

/// A Backup named as this backup's members but made by another execution.
fn foreign_member() -> Value {
    json!({"metadata": {"name": "fed-bk", "namespace": "tidb", "annotations": {"brfed.io/execution": "other"}}, "spec": {}})
}

/// Member `cluster`'s entry in a catalog document.
fn entry<'a>(doc: &'a VolumeBackupDoc, cluster: &str) -> &'a MemberStatus {
    doc.status
        .backups
        .iter()
        .find(|b| b.k8s_cluster_name == cluster)
        .unwrap()
}

/// How far [`World::at`] runs a backup, each stage after the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Started: only the initialize member exists.
    Started,
    /// The initialize member (dp1) has initialized.
    Initialized,
    /// Executed: every member exists.
    Executed,
    /// Every member has created its snapshots (GC still paused).
    SnapshotsCreated,
    /// The initialize member is asked to resume GC.
    ResumeAsked,
}

/// Data planes `dp1..dpN`, each with a ready TidbCluster `tidb/basic`, and an empty catalog; a
/// method a step, run on them as the state machine runs it.
struct World {
    planes: FakePlanes,
    store: FakeStore,
}

impl World {
    fn new(planes: usize) -> Self {
        Self {
            planes: FakePlanes::new(planes),
            store: FakeStore::default(),
        }
    }

    /// The steps' ports, watching at most a second.
    fn env(&self) -> Env<'_, FakePlanes, FakeStore> {
        Env {
            planes: &self.planes,
            store: &self.store,
            catalog_bucket: BUCKET,
            observe_budget: Duration::from_secs(1),
            backup_locations: None,
        }
    }

    async fn start_as(&self, input: Value, execution: &str) -> Result<StartOutput, StepError> {
        let execution = execution.into();
        start(&self.env(), StartInput { input, execution }).await
    }

    /// Start by [`EXEC`].
    async fn start(&self, input: Value) -> Result<StartOutput, StepError> {
        self.start_as(input, EXEC).await
    }

    /// Three data planes and the backup of `input({})` run up to `stage`, as the state machine
    /// and the data planes would run it.
    async fn at(stage: Stage) -> (Self, BackupContext) {
        let w = Self::new(3);
        let ctx = w.start(input(json!({}))).await.unwrap().backup;
        if stage >= Stage::Initialized {
            w.set(&[("dp1", cond::INITIALIZED)]);
        }
        if stage >= Stage::Executed {
            w.execute(&ctx).await.unwrap();
        }
        if stage >= Stage::SnapshotsCreated {
            w.each(cond::SNAPSHOTS_CREATED);
            assert_eq!(w.verdict(&ctx, Await::SnapshotsCreated).await, "met");
        }
        if stage >= Stage::ResumeAsked {
            w.resume_gc(&ctx).await.unwrap();
        }
        (w, ctx)
    }

    async fn observe_in(&self, ctx: &BackupContext, awaited: Await, phase: Phase) -> ObserveOutput {
        let backup = ctx.clone();
        let input = ObserveInput {
            backup,
            awaited,
            phase,
        };
        observe(&self.env(), input).await.unwrap()
    }

    /// One look, in a phase that has just begun.
    async fn observe(&self, ctx: &BackupContext, awaited: Await) -> ObserveOutput {
        self.observe_in(ctx, awaited, Phase::now("x")).await
    }

    async fn verdict(&self, ctx: &BackupContext, awaited: Await) -> String {
        self.observe(ctx, awaited).await.verdict
    }

    async fn execute(&self, ctx: &BackupContext) -> Result<Phase, StepError> {
        execute(&self.env(), step(ctx, None)).await
    }

    async fn resume_gc(&self, ctx: &BackupContext) -> Result<Phase, StepError> {
        resume_gc(&self.env(), step(ctx, None)).await
    }

    async fn teardown(
        &self,
        ctx: &BackupContext,
        failure: Option<&Failure>,
    ) -> Result<Phase, StepError> {
        teardown(&self.env(), step(ctx, failure)).await
    }

    async fn finalize(
        &self,
        ctx: &BackupContext,
        failure: Option<&Failure>,
        observed: Option<ObserveOutput>,
    ) -> Result<FinalizeOutput, StepError> {
        let input = FinalizeInput {
            backup: ctx.clone(),
            failure: failure.cloned(),
            observed,
        };
        finalize(&self.env(), input).await
    }

    /// The abort step, on [`ended`]`(status)`.
    async fn abort(&self, status: &str) -> Result<AbortReport, StepError> {
        abort(&self.env(), ended(status)).await
    }

    /// Runs `step` (a step not yet polled, so not yet run) and checks that it mutated nothing on
    /// the data planes: `what` says which step ran again.
    async fn changes_nothing<T>(
        &self,
        what: &str,
        step: impl Future<Output = Result<T, StepError>>,
    ) {
        let before = self.mutations();
        step.await.unwrap();
        assert_eq!(self.mutations(), before, "{what} => no new mutation");
    }

    /// Plays the data planes: each `(cluster, condition)` on that cluster's member, in order.
    fn set(&self, conditions: &[(&str, &str)]) {
        for (cluster, condition) in conditions {
            self.planes
                .add_condition(cluster, "tidb", "fed-bk", condition);
        }
    }

    /// Plays the data planes: `condition` on every member.
    fn each(&self, condition: &str) {
        for c in PLANES {
            self.set(&[(c, condition)]);
        }
    }

    /// Member `cluster`, as stored.
    fn member(&self, cluster: &str) -> Option<Value> {
        self.planes.backup(cluster, "tidb", "fed-bk")
    }

    /// Member `cluster`'s spec (the member exists).
    fn spec(&self, cluster: &str) -> Value {
        self.member(cluster).unwrap()["spec"].clone()
    }

    /// What member `cluster` is asked: its `federalVolumeBackupPhase` and `resumeGcSchedule`
    /// (null where not set).
    fn asked(&self, cluster: &str) -> (Value, Value) {
        let spec = self.spec(cluster);
        (
            spec["federalVolumeBackupPhase"].clone(),
            spec["resumeGcSchedule"].clone(),
        )
    }

    /// How many mutations the data planes have seen.
    fn mutations(&self) -> usize {
        self.planes.log.lock().unwrap().len()
    }

    /// The backup's catalog document (it exists).
    async fn doc(&self) -> VolumeBackupDoc {
        Catalog::<_, VolumeBackupDoc>::new(&self.store, BUCKET)
            .get("br", "bk")
            .await
            .unwrap()
            .unwrap()
            .0
    }

    /// Whether the catalog has no record of the backup.
    fn unrecorded(&self) -> bool {
        self.store.get(BUCKET, &backup_key("br", "bk")).is_none()
    }
}

/// A mutating step's input.
fn step(ctx: &BackupContext, failure: Option<&Failure>) -> StepInput {
    StepInput {
        backup: ctx.clone(),
        failure: failure.cloned(),
    }
}

/// The reason of the last condition a catalog document records.
fn last_reason(doc: &VolumeBackupDoc) -> Option<&str> {
    doc.conditions().last().and_then(|c| c.reason.as_deref())
}
