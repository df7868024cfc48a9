//! Decisions of the backup workflow (reference §4.1): what the observe step waits for, and how
//! the members' conditions are judged. Pure functions over observations.

use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::cond;
use crate::ports::Observation;
use serde::{Deserialize, Serialize};

/// What an observe step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Await {
    /// The initialize member paused GC and schedulers (`VolumeBackupInitialized`).
    Initialized,
    /// Every member wrote `backupmeta` (`VolumeBackupSnapshotsCreated`).
    SnapshotsCreated,
    /// The initialize member resumed GC and schedulers (`VolumeBackupInitializeComplete`).
    GcResumed,
    /// Every member's snapshots completed (`VolumeBackupComplete`).
    SnapshotsComplete,
    /// Every existing member reached a final condition after teardown.
    Terminal,
}

impl Await {
    /// Human name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Initialized => "GC and schedulers to be paused",
            Self::SnapshotsCreated => "all snapshots to be created",
            Self::GcResumed => "GC and schedulers to be resumed",
            Self::SnapshotsComplete => "all snapshots to complete",
            Self::Terminal => "all members to finish teardown",
        }
    }
}

/// Why a backup failed: `Error` is a name of [`crate::FAILURE_NAMES`] or [`crate::ERROR_NAMES`],
/// `Cause` a sentence. The shape of a Step Functions `Catch` result, so both meet in one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The failure name.
    #[serde(rename = "Error")]
    pub error: String,
    /// What happened.
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl Failure {
    /// A failure named `error`.
    pub fn new(error: &str, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// The human part of the cause: a Lambda error's `errorMessage` when the cause is one.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|v| {
                v.get("errorMessage")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// The verdict of one look at the members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// What was awaited holds.
    Met,
    /// Not yet.
    Pending,
    /// It cannot hold any more.
    Failed(Failure),
}

/// Parsed observations, in member order.
pub fn views(obs: &[Observation]) -> Vec<Option<MemberView>> {
    obs.iter()
        .map(|o| o.present().map(MemberView::from_object))
        .collect()
}

fn member_failure(m: &MemberRef, v: &MemberView) -> Option<Failure> {
    let c = v.failed()?;
    let name = match c.type_.as_str() {
        cond::INVALID => "MemberInvalid",
        cond::INITIALIZE_FAILED => "InitializeFailed",
        _ => "MemberFailed",
    };
    let detail = c.detail();
    Some(Failure::new(
        name,
        format!(
            "member {} is {}{}",
            m.display(),
            c.type_,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            }
        ),
    ))
}

/// Judges `obs` (one per member of `members`, same order) for `awaited`. `members[0]` is the
/// initialize member. Only members listed are judged: callers pass the members created so far.
pub fn judge(awaited: Await, members: &[MemberRef], obs: &[Observation]) -> Verdict {
    let views = views(obs);
    if awaited == Await::Terminal {
        return judge_terminal(members, &views, obs);
    }
    for (i, (m, o)) in members.iter().zip(obs).enumerate() {
        match (o, &views[i]) {
            (Observation::Absent, _) => {
                return Verdict::Failed(Failure::new(
                    "MemberMissing",
                    format!("member {} is gone", m.display()),
                ));
            }
            (_, Some(v)) => {
                if let Some(f) = member_failure(m, v) {
                    return Verdict::Failed(f);
                }
            }
            _ => {}
        }
    }
    let init = views.first().and_then(Option::as_ref);
    let all = |t: &str| {
        views.len() == members.len() && views.iter().all(|v| v.as_ref().is_some_and(|v| v.has(t)))
    };
    let met = match awaited {
        Await::Initialized => init.is_some_and(|v| v.has(cond::INITIALIZED)),
        Await::SnapshotsCreated => all(cond::SNAPSHOTS_CREATED),
        Await::GcResumed => init.is_some_and(|v| v.has(cond::INITIALIZE_COMPLETE)),
        Await::SnapshotsComplete => all(cond::VOLUME_COMPLETE),
        Await::Terminal => unreachable!("handled above"),
    };
    if met { Verdict::Met } else { Verdict::Pending }
}

fn judge_terminal(
    members: &[MemberRef],
    views: &[Option<MemberView>],
    obs: &[Observation],
) -> Verdict {
    // A member whose init job failed makes the backup fail at once (reference §4.1 step 7).
    for (m, v) in members.iter().zip(views) {
        if let Some(v) = v {
            if v.has(cond::INITIALIZE_FAILED) {
                return Verdict::Met;
            }
            let _ = m;
        }
    }
    let waiting = obs.iter().zip(views).any(|(o, v)| match (o, v) {
        (Observation::Absent, _) => false,
        (_, Some(v)) => !v.terminal(),
        _ => true, // unreachable: cannot tell yet
    });
    if waiting {
        Verdict::Pending
    } else {
        Verdict::Met
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(n: usize) -> Vec<MemberRef> {
        (1..=n)
            .map(|i| MemberRef {
                k8s_cluster_name: format!("dp{i}"),
                tc_name: "basic".into(),
                tc_namespace: "tidb".into(),
                backup_name: "fed-bk".into(),
            })
            .collect()
    }

    fn with(conds: &[&str]) -> Observation {
        let c: Vec<_> = conds
            .iter()
            .map(|t| json!({"type": t, "status": "True"}))
            .collect();
        Observation::Present(json!({"status": {"phase": conds.last(), "conditions": c}}))
    }

    #[test]
    fn initialized_waits_for_the_first_member_only() {
        let m = refs(1);
        assert_eq!(
            judge(Await::Initialized, &m, &[with(&["Scheduled"])]),
            Verdict::Pending
        );
        assert_eq!(
            judge(
                Await::Initialized,
                &m,
                &[with(&["Scheduled", cond::INITIALIZED])]
            ),
            Verdict::Met
        );
    }

    #[test]
    fn any_failed_member_fails_the_wait_with_its_name() {
        let m = refs(3);
        let obs = [
            with(&[cond::SNAPSHOTS_CREATED]),
            with(&[cond::INVALID]),
            with(&[]),
        ];
        let Verdict::Failed(f) = judge(Await::SnapshotsCreated, &m, &obs) else {
            panic!()
        };
        assert_eq!(f.error, "MemberInvalid");
        assert!(f.cause.contains("dp2"));
        let obs = [with(&[cond::INITIALIZE_FAILED]), with(&[]), with(&[])];
        let Verdict::Failed(f) = judge(Await::SnapshotsCreated, &m, &obs) else {
            panic!()
        };
        assert_eq!(f.error, "InitializeFailed");
    }

    #[test]
    fn snapshots_created_needs_every_member() {
        let m = refs(3);
        let c = cond::SNAPSHOTS_CREATED;
        assert_eq!(
            judge(
                Await::SnapshotsCreated,
                &m,
                &[with(&[c]), with(&[c]), with(&[])]
            ),
            Verdict::Pending
        );
        assert_eq!(
            judge(
                Await::SnapshotsCreated,
                &m,
                &[with(&[c]), with(&[c]), Observation::Unreachable("x".into())]
            ),
            Verdict::Pending
        );
        assert_eq!(
            judge(
                Await::SnapshotsCreated,
                &m,
                &[with(&[c]), with(&[c]), with(&[c])]
            ),
            Verdict::Met
        );
        assert!(matches!(
            judge(
                Await::SnapshotsCreated,
                &m,
                &[with(&[c]), Observation::Absent, with(&[c])]
            ),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn terminal_waits_for_every_existing_member_but_not_absent_ones() {
        let m = refs(3);
        assert_eq!(
            judge(
                Await::Terminal,
                &m,
                &[with(&["Complete"]), with(&["Running"]), Observation::Absent]
            ),
            Verdict::Pending
        );
        assert_eq!(
            judge(
                Await::Terminal,
                &m,
                &[with(&["Complete"]), with(&["Failed"]), Observation::Absent]
            ),
            Verdict::Met
        );
        assert_eq!(
            judge(
                Await::Terminal,
                &m,
                &[
                    with(&[cond::INITIALIZE_FAILED]),
                    with(&["Running"]),
                    with(&[])
                ]
            ),
            Verdict::Met
        );
        assert_eq!(
            judge(
                Await::Terminal,
                &m,
                &[
                    with(&["Complete"]),
                    Observation::Unreachable("x".into()),
                    with(&["Complete"])
                ]
            ),
            Verdict::Pending
        );
    }

    #[test]
    fn a_lambda_cause_yields_its_message() {
        let f = Failure::new(
            "DataPlaneUnreachable",
            r#"{"errorType":"DataPlaneUnreachable","errorMessage":"dp2 down"}"#,
        );
        assert_eq!(f.message(), "dp2 down");
        assert_eq!(Failure::new("X", "plain").message(), "plain");
    }
}
