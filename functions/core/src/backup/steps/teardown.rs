//! Teardown: every member of a backup that is stopped asked to stop, with the UID it was read with,
//! and whether they have settled.

use crate::backup::status::VolumeBackupStatus;
use crate::backup::steps::context::BackupContext;
use crate::backup::steps::context::Env;
use crate::backup::steps::context::StepInput;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::cond;
use crate::member::phase;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::time::Phase;
use crate::time::now_ms;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Result of a teardown request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownReport {
    /// Members moved to `teardown` now.
    pub requested: Vec<String>,
    /// Members already in teardown.
    pub already: Vec<String>,
    /// Members that were never created.
    pub absent: Vec<String>,
    /// Data planes that could not be reached.
    pub unreachable: Vec<String>,
    /// Objects of the member's name that belong to something else: left alone.
    pub foreign: Vec<String>,
    /// Members deleted now, or found being deleted: an `Invalid` initialize member, whose
    /// data plane acts on neither `teardown` nor `resumeGcSchedule`; deleting it stops its init
    /// job, which resumes GC and schedulers ([`MemberView::strands_init_job`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// Members that had not settled when the step looked last ([`unsettled_members`]; filled by
    /// `backup-abort`, which fails `MembersRunning` while it is not empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<String>,
}

/// Moves every existing member to `teardown`; the initialize member is always asked to resume GC
/// and schedulers too, and is deleted instead when it is `Invalid` with its init job possibly
/// alive. Best effort over all members before reporting unreachable ones. Members that belong
/// to another execution (a name conflict) are never touched.
pub async fn request_teardown<D: DataPlanes>(
    planes: &D,
    members: &[MemberRef],
    execution: &str,
) -> TeardownReport {
    teardown_members(planes, members, execution).await.0
}

/// [`request_teardown`], with what each deleted member was when it was deleted.
pub(crate) async fn teardown_members<D: DataPlanes>(
    planes: &D,
    members: &[MemberRef],
    execution: &str,
) -> (TeardownReport, Vec<(MemberRef, MemberView)>) {
    let work = members.iter().enumerate().map(|(i, m)| async move {
        let obj = match planes.get_member(MemberKind::Backup, m).await {
            Ok(Some(o)) => o,
            Ok(None) => return ("absent", m.display(), None),
            Err(e) => return ("unreachable", format!("{}: {e}", m.display()), None),
        };
        let v = MemberView::from_object(&obj);
        if v.execution.as_deref() != Some(execution) {
            return ("foreign", m.display(), None);
        }
        // Every change below only if the object is still the one just read (UID precondition):
        // one of that name made meanwhile by something else is left alone.
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        if i == 0 && v.strands_init_job() {
            if v.deleting {
                return ("deleted", m.display(), Some(v));
            }
            return match planes.delete_member_if(MemberKind::Backup, m, uid).await {
                Ok(_) => {
                    tracing::warn!(member = %m.display(), "initialize member is Invalid: deleted so that its init job stops and GC resumes");
                    ("deleted", m.display(), Some(v))
                }
                Err(e) if uid_changed(&e) => ("foreign", m.display(), None),
                Err(e) => (
                    "unreachable",
                    format!("{}: delete: {e}", m.display()),
                    None,
                ),
            };
        }
        let needs_resume = i == 0 && !v.resume_gc_schedule;
        if v.federal_phase.as_deref() == Some(phase::TEARDOWN) && !needs_resume {
            return ("already", m.display(), None);
        }
        let mut patch = json!({"federalVolumeBackupPhase": phase::TEARDOWN});
        if i == 0 {
            patch["resumeGcSchedule"] = json!(true);
        }
        match planes
            .patch_member_if(MemberKind::Backup, m, uid, &json!({ "spec": patch }))
            .await
        {
            Ok(()) => ("requested", m.display(), None),
            Err(StepError::MemberMissing(_)) => ("absent", m.display(), None),
            Err(e) if uid_changed(&e) => ("foreign", m.display(), None),
            Err(e) => ("unreachable", format!("{}: {e}", m.display()), None),
        }
    });
    let mut r = TeardownReport::default();
    let mut deleted = Vec::new();
    for ((kind, what, view), m) in join_all(work).await.into_iter().zip(members) {
        match kind {
            "requested" => r.requested.push(what),
            "already" => r.already.push(what),
            "absent" => r.absent.push(what),
            "foreign" => r.foreign.push(what),
            "deleted" => {
                r.deleted.push(what);
                if let Some(v) = view {
                    deleted.push((m.clone(), v));
                }
            }
            _ => r.unreachable.push(what),
        }
    }
    (r, deleted)
}

/// Whether a data plane refused a change because the object's UID is no longer the one read
/// (the UID precondition failed: another object of that name now). Any other refusal (RBAC,
/// validation, whatever its message says) is not taken for "not ours": the member stays to be
/// asked again.
fn uid_changed(e: &StepError) -> bool {
    matches!(e, StepError::MemberReplaced(_))
}

/// Records in `status` the members [`teardown_members`] deleted. An initialize member found
/// absent that brfed last saw `Invalid` was deleted by an earlier teardown whose record was not
/// written (the step failed after the deletion and was retried): recorded too.
pub(crate) fn record_deleted(
    status: &mut VolumeBackupStatus,
    members: &[MemberRef],
    report: &TeardownReport,
    deleted: &[(MemberRef, MemberView)],
    at: &str,
) {
    for (m, v) in deleted {
        status.mark_deleted(m, Some(v), at);
    }
    if let Some(init) = members.first()
        && report.absent.contains(&init.display())
        && status
            .member(init)
            .is_some_and(|b| b.phase == cond::INVALID)
    {
        status.mark_deleted(init, None, at);
    }
}

/// What a failure message adds when brfed deleted members: which, and why.
pub(crate) fn deleted_note(status: &VolumeBackupStatus) -> String {
    let deleted = status.deleted_members();
    if deleted.is_empty() {
        return String::new();
    }
    format!(
        "; brfed deleted {} (Invalid initialize member: its data plane acts on neither teardown nor resumeGcSchedule, so deleting it is what stops its init job and resumes GC; its snapshots and backupmeta go or stay as cleanPolicy says)",
        deleted.join(", ")
    )
}

/// Teardown: every existing member to `teardown`, resume requested on the initialize member (an
/// `Invalid` one is deleted instead, and recorded in the catalog document).
/// Fails with `DataPlaneUnreachable` (retryable) if a data plane could not be told; the members
/// it could not tell are recorded (`brfed.teardownPending`), and `backup-finalize` asks them
/// again before it writes anything terminal.
pub async fn teardown<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    input: StepInput,
) -> Result<Phase, StepError> {
    let ctx = &input.backup;
    let report = teardown_and_record(env, ctx).await?;
    if !report.unreachable.is_empty() {
        return Err(StepError::DataPlaneUnreachable(format!(
            "teardown could not reach: {}",
            report.unreachable.join("; ")
        )));
    }
    Ok(Phase::now("Teardown"))
}

/// Asks every member to tear down ([`teardown_members`]) and records it in the catalog document:
/// when teardown was first requested, the members deleted, and the members it could not ask
/// (`teardown_pending`, emptied once every member was asked).
pub(crate) async fn teardown_and_record<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    ctx: &BackupContext,
) -> Result<TeardownReport, StepError> {
    let (report, deleted) = teardown_members(env.planes, &ctx.members, &ctx.execution).await;
    tracing::info!(requested = ?report.requested, already = ?report.already, deleted = ?report.deleted, unreachable = ?report.unreachable, "teardown");
    let at = now_ms();
    env.catalog()
        .update(&ctx.namespace, &ctx.name, |d| {
            let before = d.clone();
            d.brfed
                .teardown_requested_at
                .get_or_insert_with(|| at.clone());
            d.brfed.teardown_pending = report.unreachable.clone();
            record_deleted(&mut d.status, &ctx.members, &report, &deleted, &at);
            *d != before
        })
        .await?;
    Ok(report)
}

/// Reads every member, watching for up to `budget` until all have settled.
pub(crate) async fn observe_settling<D: DataPlanes>(
    planes: &D,
    ctx: &BackupContext,
    budget: Duration,
) -> Vec<Observation> {
    let settled =
        |obs: &[Observation]| unsettled_members(&ctx.members, obs, &ctx.execution).is_empty();
    planes
        .observe_members(MemberKind::Backup, &ctx.members, budget, &settled)
        .await
}

/// The members that have not settled: this execution's, present and not terminal (or being
/// deleted), or in a data plane that could not be read (`cluster/namespace/name phase`). Absent
/// members and objects of another execution have settled as far as this backup is concerned.
pub fn unsettled_members(
    members: &[MemberRef],
    obs: &[Observation],
    execution: &str,
) -> Vec<String> {
    members
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match obs.get(i) {
            Some(Observation::Absent) => None,
            Some(Observation::Present(obj)) => {
                let v = MemberView::from_object(obj);
                if v.execution.as_deref() != Some(execution) || (v.terminal() && !v.deleting) {
                    return None;
                }
                let phase = if v.deleting {
                    "being deleted"
                } else {
                    v.phase.as_deref().unwrap_or("no phase yet")
                };
                Some(format!("{} {phase}", m.display()))
            }
            Some(Observation::Unreachable(e)) => Some(format!("{} unreachable ({e})", m.display())),
            None => Some(format!("{} not observed", m.display())),
        })
        .collect()
}
