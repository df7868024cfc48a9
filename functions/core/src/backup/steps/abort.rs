//! Step `backup-abort`: a stopped, timed-out or failed execution never leaves GC paused.

use crate::backup::judge::views;
use crate::backup::spec::BackupRequest;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::teardown::TeardownReport;
use crate::backup::steps::teardown::deleted_note;
use crate::backup::steps::teardown::observe_settling;
use crate::backup::steps::teardown::record_deleted;
use crate::backup::steps::teardown::teardown_members;
use crate::backup::steps::teardown::unsettled_members;
use crate::error::StepError;
use crate::execution::ExecutionStatusChange;
use crate::execution::NothingMore;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::ports::DataPlanes;
use crate::ports::ObjectStore;
use crate::time::now_ms;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Abort: an execution stopped, timed out or failed outside the workflow's own failure path. If
/// its backup is still running in the catalog, ask every member to tear down (GC resumed), then
/// mark it `Failed`. Harmless for executions that ended normally.
///
/// Nothing terminal is written before every member was asked: when a data plane cannot be
/// reached, the members it could not ask are recorded (`brfed.teardownPending`), the backup stays
/// as it is, and the step fails `DataPlaneUnreachable`, so that Lambda retries the event (and, once
/// its retries are spent, sends it to the dead-letter queue). Once every member was asked, it
/// watches them for up to the observe budget and records whether they all settled
/// (`brfed.membersSettled`); a backup that ended with members still running (here or in
/// `backup-finalize`) is looked at again by every later delivery, until they have.
pub async fn abort<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    event: ExecutionStatusChange,
) -> Result<AbortReport, StepError> {
    let d = event.detail;
    let id = |r: &BackupRequest| (r.metadata.namespace.clone(), r.name().to_string());
    let parse = |v| BackupRequest::from_value(v).ok();
    let (failure_name, req, doc) = match env
        .catalog()
        .aborted(&d, "a backup request", parse, id)
        .await?
    {
        Ok(found) => found,
        Err(detail) => return Ok(AbortReport::nothing(detail)),
    };
    let (ns, name) = id(&req);
    if doc.status.progress.is_terminal() && doc.brfed.members_settled != Some(false) {
        return Ok(AbortReport::nothing(format!("{ns}/{name} already ended")));
    }
    let record = &doc.brfed;
    let ctx = BackupContext::recorded(
        (&ns, &name),
        &record.execution,
        &record.members,
        record.options.clone(),
        NothingMore::default(),
    );
    let cause = d.ended();
    let (report, deleted) = teardown_members(env.planes, &ctx.members, &ctx.execution).await;
    tracing::info!(requested = ?report.requested, already = ?report.already, deleted = ?report.deleted, unreachable = ?report.unreachable, "abort teardown");
    let at = now_ms();
    if !report.unreachable.is_empty() {
        let obs = observe_settling(env.planes, &ctx, Duration::ZERO).await;
        let pairs: Vec<(MemberRef, Option<MemberView>)> =
            ctx.members.iter().cloned().zip(views(&obs)).collect();
        env.catalog()
            .update(&ns, &name, |doc| {
                let before = doc.clone();
                doc.status.refresh_members(&pairs);
                doc.brfed
                    .teardown_requested_at
                    .get_or_insert_with(|| at.clone());
                doc.brfed.teardown_pending = report.unreachable.clone();
                record_deleted(&mut doc.status, &ctx.members, &report, &deleted, &at);
                *doc != before
            })
            .await?;
        return Err(StepError::DataPlaneUnreachable(format!(
            "{cause}; teardown of {ns}/{name} could not reach: {}; it is not marked Failed before every member was asked (retried)",
            report.unreachable.join("; ")
        )));
    }
    let obs = observe_settling(env.planes, &ctx, env.observe_budget).await;
    let unsettled = unsettled_members(&ctx.members, &obs, &ctx.execution);
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        ctx.members.iter().cloned().zip(views(&obs)).collect();
    let message = format!(
        "{cause}; teardown requested for {} member(s)",
        report.requested.len() + report.already.len()
    );
    let now = Utc::now();
    let mut detail = message.clone();
    let mut ended_now = false;
    env.catalog()
        .update(&ns, &name, |doc| {
            let before = doc.clone();
            ended_now = false;
            doc.status.refresh_members(&pairs);
            doc.brfed
                .teardown_requested_at
                .get_or_insert_with(|| at.clone());
            doc.brfed.teardown_pending.clear();
            doc.brfed.members_settled = Some(unsettled.is_empty());
            doc.brfed.unsettled_members = unsettled.clone();
            record_deleted(&mut doc.status, &ctx.members, &report, &deleted, &at);
            if !doc.status.progress.is_terminal() {
                detail = format!("{message}{}", deleted_note(&doc.status));
                doc.status.finish(Some((failure_name, &detail)), now);
                ended_now = true;
            }
            *doc != before
        })
        .await?;
    let action = match (ended_now, unsettled.is_empty()) {
        (true, _) => "torn-down",
        (false, true) => "members-settled",
        (false, false) => "members-running",
    };
    if !ended_now {
        detail = format!("{ns}/{name} had ended with members not settled: {cause}");
    }
    Ok(AbortReport {
        action: action.into(),
        detail,
        teardown: Some(TeardownReport {
            unsettled,
            ..report
        }),
    })
}

/// What the abort step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortReport {
    /// `nothing-to-do`; `torn-down` (every member was asked, and the backup marked `Failed` by
    /// this invocation); `members-settled` or `members-running` (a backup that ended while its
    /// members still ran, looked at again).
    pub action: String,
    /// Why.
    pub detail: String,
    /// Teardown details, and the members that had not settled when it ended.
    #[serde(default)]
    pub teardown: Option<TeardownReport>,
}

impl AbortReport {
    /// `nothing-to-do`, and why.
    pub fn nothing(detail: String) -> Self {
        Self {
            action: "nothing-to-do".into(),
            detail,
            teardown: None,
        }
    }

    /// What the invocation of a settle check returns: the report, also while a member has not
    /// settled (`members-running`) or a data plane still cannot be reached (`teardown-pending`,
    /// recorded in the document as on any delivery). The next sweep asks again; failing would
    /// only add Lambda's retries and a dead-letter message per sweep to the first delivery's.
    pub fn settle_check_result(
        result: Result<AbortReport, StepError>,
    ) -> Result<AbortReport, StepError> {
        match result {
            Err(StepError::DataPlaneUnreachable(m)) => Ok(AbortReport {
                action: "teardown-pending".into(),
                detail: m,
                teardown: None,
            }),
            other => other,
        }
    }

    /// What the invocation returns: `MembersRunning` while a member has not settled, so that
    /// Lambda's asynchronous retries look again (the handler sends its signals first).
    pub fn into_result(self) -> Result<Self, StepError> {
        match &self.teardown {
            Some(t) if !t.unsettled.is_empty() => Err(StepError::MembersRunning(format!(
                "{}; not settled: {}",
                self.detail,
                t.unsettled.join(", ")
            ))),
            _ => Ok(self),
        }
    }
}
