//! Decisions of the restore workflow (reference §4.4): what each wait waits for, how the members
//! are judged, and which member restores the data. Pure functions over observations.

use crate::backup::judge::Failure;
use crate::backup::judge::Verdict;
use crate::member::MemberRef;
use crate::ports::Observation;
use crate::restore::member::RestoreView;
use crate::restore::member::rcond;
use serde::{Deserialize, Serialize};

/// What a restore observe step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreAwait {
    /// Every member `VolumeComplete`.
    VolumesRestored,
    /// Every member `TikvComplete`.
    TikvStarted,
    /// The restore-data member `DataComplete`.
    DataRestored,
    /// Every member `Complete` (and `WarmUpComplete` for async warmup).
    Complete,
    /// `warmupStrategy: check-wal-only`: every member `WarmUpComplete` (its warmup jobs checked
    /// the WAL). The original completes the federated restore there, without waiting for the
    /// members' `Complete` (release-1.6 `pkg/fedvolumebackup/restore/restore_manager.go`,
    /// `maybeBreakForCheckWALOnly`); a failed or invalid member still fails it.
    WalChecked,
    /// On the failure path: every member has settled ([`volumes_settled`]), so that the
    /// leftovers report names every volume the restore created. Member failures do not end it.
    Settled,
}

/// A member has settled for the leftovers report: it no longer creates volumes that the report
/// could miss. It is gone, it has ended (`Complete`, `Failed`, `Invalid`, `CleanVolumeComplete`),
/// or its volumes are known (`VolumeComplete`: its `restoremeta` lists them). A member still in
/// restore-volume, or one that cannot be asked, has not.
pub fn volumes_settled(o: &Observation) -> bool {
    match o {
        Observation::Absent => true,
        Observation::Unreachable(_) => false,
        Observation::Present(v) => {
            let v = RestoreView::from_object(v);
            v.has(rcond::VOLUME_COMPLETE)
                || v.has(rcond::COMPLETE)
                || v.has(rcond::FAILED)
                || v.has(rcond::INVALID)
                || matches!(
                    v.phase.as_deref(),
                    Some("Complete" | "Failed" | "Invalid" | "CleanVolumeComplete")
                )
        }
    }
}

/// Judges restore observations.
pub fn judge_restore(
    awaited: RestoreAwait,
    members: &[MemberRef],
    obs: &[Observation],
    data_member: Option<usize>,
    async_warmup: bool,
) -> Verdict {
    let views = RestoreView::views(obs);
    // Settling is the failure path itself: member failures do not end it.
    if awaited != RestoreAwait::Settled {
        for ((m, o), v) in members.iter().zip(obs).zip(&views) {
            if matches!(o, Observation::Absent) {
                return Verdict::Failed(Failure::new(
                    "MemberMissing",
                    format!("member {} is gone", m.display()),
                ));
            }
            if let Some(f) = v.as_ref().and_then(|v| v.failure(m)) {
                return Verdict::Failed(f);
            }
        }
    }
    let all = |t: &str| views.iter().all(|v| v.as_ref().is_some_and(|v| v.has(t)));
    let met = match awaited {
        RestoreAwait::VolumesRestored => all(rcond::VOLUME_COMPLETE),
        RestoreAwait::TikvStarted => all(rcond::TIKV_COMPLETE),
        RestoreAwait::DataRestored => data_member
            .and_then(|i| views.get(i))
            .is_some_and(|v| v.as_ref().is_some_and(|v| v.has(rcond::DATA_COMPLETE))),
        RestoreAwait::Complete => {
            all(rcond::COMPLETE) && (!async_warmup || all(rcond::WARMUP_COMPLETE))
        }
        RestoreAwait::WalChecked => all(rcond::WARMUP_COMPLETE),
        RestoreAwait::Settled => obs.iter().all(volumes_settled),
    };
    if met { Verdict::Met } else { Verdict::Pending }
}

/// The member that runs restore-data: the minimum `commitTs` (ties: first in spec order).
/// Empty or non-numeric commitTs fails (`ResolvedTsInvalid`).
pub fn pick_data_member(members: &[MemberRef], obs: &[Observation]) -> Result<usize, Failure> {
    let mut best: Option<(u64, usize)> = None;
    for (i, (m, o)) in members.iter().zip(obs).enumerate() {
        let ts = match o {
            Observation::Present(v) => RestoreView::from_object(v)
                .commit_ts
                .and_then(|c| c.trim().parse::<u64>().ok())
                .filter(|t| *t > 0),
            _ => None,
        }
        .ok_or_else(|| {
            Failure::new(
                "ResolvedTsInvalid",
                format!(
                    "member {} has no valid commitTs after restore-volume",
                    m.display()
                ),
            )
        })?;
        if best.is_none_or(|(b, _)| ts < b) {
            best = Some((ts, i));
        }
    }
    best.map(|(_, i)| i)
        .ok_or_else(|| Failure::new("ResolvedTsInvalid", "no members"))
}
