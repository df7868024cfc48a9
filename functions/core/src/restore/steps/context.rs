//! The restore steps (reference §4.4), one function per Lambda, generic over the ports, each
//! idempotent like the backup steps.
//!
//! What every restore step gets and carries from step to step.

use crate::backup::judge::Failure;
use crate::backup::steps::Env;
use crate::backup::steps::ObserveOutput;
use crate::catalog::Catalog;
use crate::execution::RunContext;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::RestoreAwait;
use crate::restore::spec::RestoreOptions;
use crate::restore::spec::RestoreRequest;
use crate::restore::status::VolumeRestoreDoc;
use crate::time::Phase;
use serde::{Deserialize, Serialize};

/// The restore steps' environment: the backup one plus EBS.
pub struct RestoreEnv<'a, D, S, V> {
    /// Data planes, store, catalog bucket, observe budget.
    pub base: Env<'a, D, S>,
    /// EBS.
    pub volumes: &'a V,
}

impl<D: DataPlanes, S: ObjectStore, V: Volumes> RestoreEnv<'_, D, S, V> {
    pub(crate) fn catalog(&self) -> Catalog<'_, S, VolumeRestoreDoc> {
        Catalog::new(self.base.store, self.base.catalog_bucket)
    }

    /// What the data planes show of the member `Restore`s of `ctx`, in member order.
    pub(crate) async fn read_members(&self, ctx: &RestoreContext) -> Vec<Observation> {
        let planes = self.base.planes;
        planes.read_members(MemberKind::Restore, &ctx.members).await
    }
}

/// The small state a restore execution carries: a backup's, and the warmup.
pub type RestoreContext = RunContext<RestoreOptions, WarmupPlan>;

/// How a restore warms its volumes up (`template.warmup`, `template.warmupStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmupPlan {
    /// `template.warmup`: empty, `sync` or `async`.
    pub warmup: String,
    /// `template.warmupStrategy`.
    pub warmup_strategy: String,
}

impl WarmupPlan {
    /// The warmup request `req` asks for.
    pub fn of(req: &RestoreRequest) -> Self {
        Self {
            warmup: req.warmup().into(),
            warmup_strategy: req.warmup_strategy().into(),
        }
    }
}

/// Output of the restore start step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStartOutput {
    /// Context.
    pub restore: RestoreContext,
    /// Phase.
    pub phase: Phase,
    /// null.
    pub failure: Option<Failure>,
    /// null.
    pub observed: Option<ObserveOutput>,
    /// null until restore-data is started.
    pub data_member: Option<usize>,
}

/// Input of the restore mutating steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStepInput {
    /// Context.
    pub restore: RestoreContext,
    /// Failure, on the failure path.
    #[serde(default)]
    pub failure: Option<Failure>,
    /// The restore-data member.
    #[serde(default)]
    pub data_member: Option<usize>,
    /// The last observation.
    #[serde(default)]
    pub observed: Option<ObserveOutput>,
}

/// Input of the restore observe step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreObserveInput {
    /// Context.
    pub restore: RestoreContext,
    /// What to wait for.
    #[serde(rename = "await")]
    pub awaited: RestoreAwait,
    /// Current phase.
    pub phase: Phase,
    /// The restore-data member, once chosen.
    #[serde(default)]
    pub data_member: Option<usize>,
}

/// Output of the restore finalize step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFinalizeOutput {
    /// The final catalog document, without `brfed.leftovers` (read those from the catalog).
    pub document: VolumeRestoreDoc,
    /// Failure name.
    pub error: Option<String>,
    /// Cause.
    pub cause: Option<String>,
}

impl RestoreFinalizeOutput {
    /// The output for the final `document` of restore `ctx`, failed with `failure` or not. The
    /// state carries the document without its leftovers: they list every volume and a command
    /// per volume (over Step Functions' 256 KiB at a few thousand volumes); the catalog keeps them
    /// and the cause says where.
    pub fn new(
        ctx: &RestoreContext,
        mut document: VolumeRestoreDoc,
        failure: Option<&Failure>,
    ) -> Self {
        document.brfed.leftovers.clear();
        let (error, cause) = match failure {
            Some(f) => (
                Some(f.error.clone()),
                Some(format!(
                    "VolumeRestore {}/{} failed: {}; what was left and how to clean it up: the catalog document's brfed.leftovers",
                    ctx.namespace,
                    ctx.name,
                    f.message()
                )),
            ),
            None => (None, None),
        };
        Self {
            document,
            error,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::steps::BackupContext;
    use serde_json::json;

    #[test]
    fn both_contexts_travel_as_flat_json() {
        let backup = json!({
            "name": "bk", "namespace": "br", "execution": "arn:x",
            "members": [{"k8sClusterName": "dp1", "tcName": "tc", "tcNamespace": "tidb",
                         "backupName": "fed-bk"}],
            "options": {}, "deadline": "2026-01-01T00:00:00Z"
        });
        let ctx: BackupContext = serde_json::from_value(backup.clone()).unwrap();
        assert_eq!(ctx.members[0].backup_name, "fed-bk");
        let mut back = serde_json::to_value(&ctx).unwrap();
        back["options"] = json!({});
        assert_eq!(
            back, backup,
            "the backup's state carries no more fields than before"
        );

        let mut restore = backup;
        restore["warmup"] = json!("async");
        restore["warmupStrategy"] = json!("check-wal-only");
        let ctx: RestoreContext = serde_json::from_value(restore.clone()).unwrap();
        assert_eq!(ctx.extra.warmup, "async");
        assert_eq!(ctx.extra.warmup_strategy, "check-wal-only");
        let mut back = serde_json::to_value(&ctx).unwrap();
        back["options"] = json!({});
        assert_eq!(back, restore, "the warmup stands beside the other fields");
    }
}
