//! The member `Backup`s a deletion deletes, and who cleans up after each (the data plane per
//! `cleanPolicy`, or brfed after setting `Retain`).

use crate::member::MemberRef;
use crate::member::cond;
use crate::ports::Observation;
use serde::{Deserialize, Serialize};

/// Who removes a member's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CleanBy {
    /// Its data plane, when the member `Backup` is deleted (the original's path).
    DataPlane,
    /// brfed, because the data plane is no longer in the kubeconfig.
    Brfed,
    /// brfed, after the member object is deleted with `cleanPolicy: Retain` (and the data
    /// plane's protection finalizer removed), so that its clean job deletes nothing: because the
    /// member's `backupmeta` lists snapshots that are not the backup's, or because it has no
    /// `backupmeta` (the data plane's clean deletes nothing then, as the original's does, and
    /// the member's `clustermeta` and manifests would stay). brfed deletes the snapshots that
    /// are the backup's and the member's objects once it is gone.
    BrfedAfterRetain,
    /// Nobody: the member object of that name is not this backup's (another execution or
    /// namespace made it). Neither it nor anything of its data is touched; it is reported.
    Foreign,
}

impl CleanBy {
    /// Whether the member object is deleted in its data plane and watched until it is gone.
    pub(crate) fn in_data_plane(self) -> bool {
        matches!(self, Self::DataPlane | Self::BrfedAfterRetain)
    }

    /// Whether brfed deletes the member's snapshots and objects itself.
    pub(crate) fn by_brfed(self) -> bool {
        matches!(self, Self::Brfed | Self::BrfedAfterRetain)
    }
}

/// The data plane's finalizer on a member `Backup` whose `cleanPolicy` cleans (reference §4.2):
/// its controller removes it only after a clean, and only while `cleanPolicy` cleans.
pub const BACKUP_PROTECTION_FINALIZER: &str = "tidb.pingcap.com/backup-protection";

/// One member of the backup being deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteMember {
    /// The member.
    pub member: MemberRef,
    /// Bucket of its data.
    pub bucket: String,
    /// Its S3 prefix.
    pub prefix: String,
    /// Who cleans up.
    pub clean_by: CleanBy,
    /// Whether `cleanPolicy` says its snapshots and objects go (`Delete`, or `OnFailure` on a
    /// failed member).
    pub data_deleted: bool,
    /// Snapshots named in its `backupmeta`.
    pub snapshots: usize,
}

/// Member's data is deleted by policy.
pub(crate) fn policy_deletes(
    policy: &str,
    member_phase: Option<&str>,
    backup_failed: bool,
) -> bool {
    match policy {
        "Delete" => true,
        "OnFailure" => backup_failed || member_phase.is_some_and(|p| p == cond::FAILED),
        _ => false,
    }
}

pub(crate) fn clean_failed(o: &Observation) -> bool {
    match o {
        Observation::Present(v) => {
            crate::member::MemberView::from_object(v).has(cond::CLEAN_FAILED)
        }
        _ => false,
    }
}
