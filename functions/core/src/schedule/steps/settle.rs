//! Settle checks: every retention sweep asks `backup-abort` again about each ended backup whose
//! members were not all asked to stop or had not settled, until they have.

use crate::catalog::CATALOG_PREFIX;

use crate::backup::status::VolumeBackupDoc;
use crate::error::StepError;
use crate::names;
use crate::ports::Executions;
use crate::ports::ObjectStore;
use crate::schedule::steps::context::SchedulerEnv;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A backup whose execution ended while a member was not asked to tear down yet
/// (`brfed.teardownPending`) or still ran (`brfed.membersSettled: false`): `backup-abort` is asked
/// again, by an event whose `detail` is the execution's status change as Step Functions sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleCheck {
    /// `namespace/name`.
    pub backup: String,
    /// What is not settled.
    pub why: String,
    /// `executionArn`, `stateMachineArn`, `name`, `status`, `input`, `error`, `cause`.
    pub detail: Value,
}

/// The settle checks of the whole catalog: every backup whose document says a member was not
/// asked to tear down yet or had not settled when it ended, and whose execution (of
/// `backup_state_machine`) has ended `ABORTED`, `TIMED_OUT` or `FAILED`: the case
/// `backup-abort` handles. A running execution is its own steps' (never sent); so is a
/// document of another state machine's execution (left, logged).
///
/// This is the safety net's own net: Lambda retries `backup-abort` twice (about 3 minutes), a
/// member may run for hours, and a data plane may be down for longer; every sweep asks again
/// until the document says every member has settled.
pub async fn settle_checks<S: ObjectStore, X: Executions>(
    env: &SchedulerEnv<'_, S, X>,
) -> Result<Vec<SettleCheck>, StepError> {
    let prefix = format!("{CATALOG_PREFIX}/volumebackups/");
    let mut out = Vec::new();
    for key in env.store.list_keys(env.catalog_bucket, &prefix).await? {
        let Some(v) = env.store.get_json(env.catalog_bucket, &key).await? else {
            continue;
        };
        let Ok(doc) = serde_json::from_value::<VolumeBackupDoc>(v.value) else {
            continue;
        };
        let b = &doc.brfed;
        let why = if !b.teardown_pending.is_empty() {
            format!(
                "not asked to tear down yet: {}",
                b.teardown_pending.join("; ")
            )
        } else if b.members_settled == Some(false) {
            format!(
                "still running when it ended: {}",
                b.unsettled_members.join("; ")
            )
        } else {
            continue;
        };
        let backup = format!("{}/{}", doc.metadata.meta.namespace, doc.metadata.meta.name);
        let Some(name) = b
            .execution
            .rsplit(':')
            .next()
            .filter(|n| names::execution_arn(env.backup_state_machine, n) == b.execution)
        else {
            tracing::warn!(%backup, execution = %b.execution, "not an execution of this stack's volume-backup: no settle check");
            continue;
        };
        let Some(facts) = env
            .executions
            .describe(env.backup_state_machine, name)
            .await?
        else {
            continue;
        };
        if !matches!(facts.status.as_str(), "ABORTED" | "TIMED_OUT" | "FAILED") {
            continue;
        }
        out.push(SettleCheck {
            backup,
            why,
            detail: json!({
                "executionArn": b.execution,
                "stateMachineArn": env.backup_state_machine,
                "name": name,
                "status": facts.status,
                "input": facts.input,
                "error": facts.error,
                "cause": facts.cause,
            }),
        });
    }
    Ok(out)
}
