//! The tags brfed puts on EBS snapshots and volumes, and whose a snapshot is by them.

use crate::ports::SnapshotInfo;

/// Tag key: the stack a snapshot belongs to, the name of its catalog bucket (globally unique).
pub const TAG_STACK: &str = "brfed.dev/stack";

/// Tag key: the federated backup a snapshot belongs to, `{namespace}/{name}`.
pub const TAG_VOLUME_BACKUP: &str = "brfed.dev/volumebackup";

/// Tag key: the data plane (`k8sClusterName`) whose volume the snapshot is of.
pub const TAG_CLUSTER: &str = "brfed.dev/k8s-cluster";

/// Tag key: a deletion of the backup kept this snapshot on purpose (`cleanPolicy` `Retain`, or
/// `OnFailure` on a member that succeeded); the value is when.
pub const TAG_RETAINED: &str = "brfed.dev/retained";

/// How much earlier than the backup's `creationTimestamp` EC2 may date a snapshot that is still
/// the backup's. The timestamp is taken by `backup-start` before any member exists, and the
/// data plane snapshots only after its member is created, so a snapshot of this backup starts
/// later by construction; but the two times come from two clocks (the function's and EC2's).
/// Both are NTP-disciplined (Amazon Time Sync: well under a second apart); one minute also
/// covers a local world whose clocks are not, and stays far shorter than any earlier backup of
/// the same volumes (whose snapshots its own finalize has tagged anyway).
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// `{namespace}/{name}`: the value of [`TAG_VOLUME_BACKUP`].
pub fn backup_tag(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

pub(crate) fn tag<'a>(info: &'a SnapshotInfo, key: &str) -> Option<&'a str> {
    info.tags.get(key).map(String::as_str)
}

/// Whether `info`'s tags say it is stack `stack`'s and backup `backup`'s (`{namespace}/{name}`).
pub fn owned_by(info: &SnapshotInfo, stack: &str, backup: &str) -> bool {
    tag(info, TAG_STACK) == Some(stack) && tag(info, TAG_VOLUME_BACKUP) == Some(backup)
}

/// Tag with the federated restore that claimed a volume: `{namespace}/{name}`.
pub const TAG_VOLUME_RESTORE: &str = "brfed.dev/volumerestore";

/// Tag the EBS CSI driver puts on the volumes it provisions: the PVC's namespace (never on the
/// volumes a restore makes, but checked when present).
pub const TAG_PVC_NAMESPACE: &str = "kubernetes.io/created-for/pvc/namespace";

/// Tag with the PVC's name (CSI driver), or the TiKV pod's name (the operator, on restored
/// volumes): either way it names the TidbCluster (`*-{tc}-tikv-N` or `{tc}-tikv-N`).
pub const TAG_PVC_NAME: &str = "kubernetes.io/created-for/pvc/name";
