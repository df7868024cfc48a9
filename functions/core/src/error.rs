//! The one error type of the backup steps. Variant names are the public error names: they are
//! what a Lambda reports as `errorType`, what the state machines match in `Retry`/`Catch`, and
//! what logs and metrics carry. They never change once published.

use thiserror::Error;

/// Why a step could not do its work.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StepError {
    /// The input is not a valid federated backup spec; nothing was done. Terminal.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A `k8sClusterName` names no context of the data-plane kubeconfig. Terminal.
    #[error("unknown data plane: {0}")]
    UnknownCluster(String),
    /// A member object of that name exists and belongs to something else (reference §10 item 8). Terminal.
    #[error("member name conflict: {0}")]
    MemberNameConflict(String),
    /// A federated backup of that namespace/name exists already (from another execution). Terminal.
    #[error("backup exists: {0}")]
    BackupExists(String),
    /// A federated restore of that namespace/name exists already (from another execution). Terminal.
    #[error("restore exists: {0}")]
    RestoreExists(String),
    /// No federated restore of that namespace/name is in the catalog (and none was deleted).
    /// Terminal.
    #[error("restore not found: {0}")]
    RestoreNotFound(String),
    /// The federated restore's execution is still running: it cannot be deleted until it has
    /// ended (stop it first). Terminal.
    #[error("restore running: {0}")]
    RestoreRunning(String),
    /// The backup named for a restore is not in the catalog or did not complete. Terminal.
    #[error("backup not restorable: {0}")]
    BackupNotRestorable(String),
    /// A member's `backupmeta` cannot be read from its S3 prefix. Terminal.
    #[error("backup metadata unreadable: {0}")]
    BackupMetaUnreadable(String),
    /// The restore targets do not match the backup (clusters, TiKV replicas, volumes). Terminal.
    #[error("topology mismatch: {0}")]
    TopologyMismatch(String),
    /// A member's resolved ts after restore-volume is empty or not a number. Terminal.
    #[error("resolved ts invalid: {0}")]
    ResolvedTsInvalid(String),
    /// A member's TidbCluster is missing or cannot take a volume-snapshot backup. Terminal.
    #[error("TidbCluster not ready: {0}")]
    TidbClusterInvalid(String),
    /// A member S3 prefix already holds a backup (`clustermeta`), see reference §10 item 7. Terminal.
    #[error("S3 prefix in use: {0}")]
    S3PrefixInUse(String),
    /// The backup's bucket or prefix is not where this stack may keep backups (its
    /// `BackupBucketName` and `BackupPrefix`), or S3 denied access there. Terminal.
    #[error("bucket not allowed: {0}")]
    BucketNotAllowed(String),
    /// A data plane's API server could not be reached or answered 5xx/429. Retryable.
    #[error("data plane unreachable: {0}")]
    DataPlaneUnreachable(String),
    /// A data plane refused a request (4xx other than 401/403/404/429: schema validation,
    /// missing CRD, a conflict, a webhook). Terminal.
    #[error("data plane rejected the request: {0}")]
    DataPlaneRejected(String),
    /// A data plane did not let brfed do something (401/403): its rights there
    /// (`infra/dataplane/brfed-rbac.yaml`) are missing or not bound to brfed in that namespace.
    /// The message is the API server's, naming the verb, resource and namespace. Terminal.
    #[error("data plane forbids it: {0}")]
    DataPlaneForbidden(String),
    /// A change made only while a member object is still the one brfed read (a UID
    /// precondition) was refused: an object of that name with another UID stands there now,
    /// another execution's or not brfed's, and it is left alone. Terminal.
    #[error("member replaced: {0}")]
    MemberReplaced(String),
    /// A member object brfed created is gone. Terminal.
    #[error("member missing: {0}")]
    MemberMissing(String),
    /// Members of a backup that was stopped, timed out or failed still run after every one was
    /// asked to tear down (`backup-abort` only, never a state-machine step): the function fails
    /// so that Lambda's asynchronous retries look again; the catalog says `membersSettled: false`
    /// meanwhile. Retried by Lambda, not by the state machines.
    #[error("members still running: {0}")]
    MembersRunning(String),
    /// The catalog (S3) could not be read or written. Retryable.
    #[error("catalog unavailable: {0}")]
    CatalogUnavailable(String),
    /// Another writer changed the catalog document between read and write. Retryable.
    #[error("catalog conflict: {0}")]
    CatalogConflict(String),
    /// No federated backup of that namespace/name is in the catalog. Terminal.
    #[error("backup not found: {0}")]
    BackupNotFound(String),
    /// The federated backup is still running and cannot be deleted. Terminal.
    #[error("backup running: {0}")]
    BackupRunning(String),
    /// Another execution is deleting the federated backup (it holds the deletion lock). Terminal.
    #[error("deletion in progress: {0}")]
    DeletionInProgress(String),
    /// No backup schedule of that namespace/name is in the catalog. Terminal.
    #[error("schedule not found: {0}")]
    ScheduleNotFound(String),
    /// A scheduled event's `time` (a tick, a retention sweep) is too far ahead of or behind the
    /// function's clock; nothing was done. Terminal.
    #[error("event time out of range: {0}")]
    EventTimeOutOfRange(String),
    /// EC2 kept throttling or failing (after brfed's own backoff). Retryable.
    #[error("EC2 unavailable: {0}")]
    Ec2Unavailable(String),
    /// Step Functions could not be asked (start/describe an execution). Retryable.
    #[error("Step Functions unavailable: {0}")]
    StepFunctionsUnavailable(String),
    /// EventBridge refused or could not be asked (schedule rules). Terminal for the caller.
    #[error("EventBridge unavailable: {0}")]
    EventBridgeUnavailable(String),
    /// The configuration of the function is wrong (missing kubeconfig, bucket). Terminal.
    #[error("configuration error: {0}")]
    Configuration(String),
    /// A bug: a state the step cannot be in. Terminal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StepError {
    /// The stable public name of this error (the variant name).
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::UnknownCluster(_) => "UnknownCluster",
            Self::MemberNameConflict(_) => "MemberNameConflict",
            Self::S3PrefixInUse(_) => "S3PrefixInUse",
            Self::BucketNotAllowed(_) => "BucketNotAllowed",
            Self::BackupExists(_) => "BackupExists",
            Self::TidbClusterInvalid(_) => "TidbClusterInvalid",
            Self::RestoreExists(_) => "RestoreExists",
            Self::RestoreNotFound(_) => "RestoreNotFound",
            Self::RestoreRunning(_) => "RestoreRunning",
            Self::BackupNotRestorable(_) => "BackupNotRestorable",
            Self::BackupMetaUnreadable(_) => "BackupMetaUnreadable",
            Self::TopologyMismatch(_) => "TopologyMismatch",
            Self::ResolvedTsInvalid(_) => "ResolvedTsInvalid",
            Self::DataPlaneUnreachable(_) => "DataPlaneUnreachable",
            Self::DataPlaneRejected(_) => "DataPlaneRejected",
            Self::DataPlaneForbidden(_) => "DataPlaneForbidden",
            Self::MemberReplaced(_) => "MemberReplaced",
            Self::MemberMissing(_) => "MemberMissing",
            Self::MembersRunning(_) => "MembersRunning",
            Self::CatalogUnavailable(_) => "CatalogUnavailable",
            Self::CatalogConflict(_) => "CatalogConflict",
            Self::BackupNotFound(_) => "BackupNotFound",
            Self::BackupRunning(_) => "BackupRunning",
            Self::DeletionInProgress(_) => "DeletionInProgress",
            Self::ScheduleNotFound(_) => "ScheduleNotFound",
            Self::EventTimeOutOfRange(_) => "EventTimeOutOfRange",
            Self::Ec2Unavailable(_) => "Ec2Unavailable",
            Self::StepFunctionsUnavailable(_) => "StepFunctionsUnavailable",
            Self::EventBridgeUnavailable(_) => "EventBridgeUnavailable",
            Self::Configuration(_) => "Configuration",
            Self::Internal(_) => "Internal",
        }
    }

    /// What the error says, without the prefix of its name (`Display` adds it): the text a
    /// summary of several errors joins, so that each prefix is said once.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidSpec(m)
            | Self::UnknownCluster(m)
            | Self::MemberNameConflict(m)
            | Self::BackupExists(m)
            | Self::RestoreExists(m)
            | Self::RestoreNotFound(m)
            | Self::RestoreRunning(m)
            | Self::BackupNotRestorable(m)
            | Self::BackupMetaUnreadable(m)
            | Self::TopologyMismatch(m)
            | Self::ResolvedTsInvalid(m)
            | Self::TidbClusterInvalid(m)
            | Self::S3PrefixInUse(m)
            | Self::BucketNotAllowed(m)
            | Self::DataPlaneUnreachable(m)
            | Self::DataPlaneRejected(m)
            | Self::DataPlaneForbidden(m)
            | Self::MemberReplaced(m)
            | Self::MemberMissing(m)
            | Self::MembersRunning(m)
            | Self::CatalogUnavailable(m)
            | Self::CatalogConflict(m)
            | Self::BackupNotFound(m)
            | Self::BackupRunning(m)
            | Self::DeletionInProgress(m)
            | Self::ScheduleNotFound(m)
            | Self::EventTimeOutOfRange(m)
            | Self::Ec2Unavailable(m)
            | Self::StepFunctionsUnavailable(m)
            | Self::EventBridgeUnavailable(m)
            | Self::Configuration(m)
            | Self::Internal(m) => m,
        }
    }

    /// Whether running the same step again may succeed.
    pub fn is_retryable(&self) -> bool {
        RETRYABLE_ERROR_NAMES.contains(&self.name())
    }
}

/// Every error name a step can return.
pub const ERROR_NAMES: &[&str] = &[
    "InvalidSpec",
    "UnknownCluster",
    "MemberNameConflict",
    "S3PrefixInUse",
    "BucketNotAllowed",
    "BackupExists",
    "TidbClusterInvalid",
    "RestoreExists",
    "RestoreNotFound",
    "RestoreRunning",
    "BackupNotRestorable",
    "BackupMetaUnreadable",
    "TopologyMismatch",
    "ResolvedTsInvalid",
    "DataPlaneUnreachable",
    "DataPlaneRejected",
    "DataPlaneForbidden",
    "MemberReplaced",
    "MemberMissing",
    "MembersRunning",
    "CatalogUnavailable",
    "CatalogConflict",
    "BackupNotFound",
    "BackupRunning",
    "DeletionInProgress",
    "ScheduleNotFound",
    "EventTimeOutOfRange",
    "Ec2Unavailable",
    "StepFunctionsUnavailable",
    "EventBridgeUnavailable",
    "Configuration",
    "Internal",
];

/// The error names the state machines retry.
pub const RETRYABLE_ERROR_NAMES: &[&str] = &[
    "DataPlaneUnreachable",
    "CatalogUnavailable",
    "CatalogConflict",
    "Ec2Unavailable",
    "StepFunctionsUnavailable",
];

/// Names of the ways a federated backup can fail (the `reason` of its `Failed` condition and the
/// `Error` of a failed execution), beyond step errors that end it.
pub const FAILURE_NAMES: &[&str] = &[
    "InitializeFailed",
    "MemberFailed",
    "MemberInvalid",
    "MemberMissing",
    "PhaseDeadlineExceeded",
    "DeadlineExceeded",
    "ExecutionAborted",
    "ExecutionTimedOut",
    "ExecutionFailed",
    "TeardownIncomplete",
    "CleanFailed",
    "SnapshotsRemain",
    "DeletionDeadlineExceeded",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_name_is_listed_and_says_its_message_after_one_prefix() {
        const WRONG: &str = "what was wrong";
        let all = [
            StepError::InvalidSpec(WRONG.into()),
            StepError::UnknownCluster(WRONG.into()),
            StepError::MemberNameConflict(WRONG.into()),
            StepError::S3PrefixInUse(WRONG.into()),
            StepError::BucketNotAllowed(WRONG.into()),
            StepError::BackupExists(WRONG.into()),
            StepError::TidbClusterInvalid(WRONG.into()),
            StepError::RestoreExists(WRONG.into()),
            StepError::RestoreNotFound(WRONG.into()),
            StepError::RestoreRunning(WRONG.into()),
            StepError::BackupNotRestorable(WRONG.into()),
            StepError::BackupMetaUnreadable(WRONG.into()),
            StepError::TopologyMismatch(WRONG.into()),
            StepError::ResolvedTsInvalid(WRONG.into()),
            StepError::DataPlaneUnreachable(WRONG.into()),
            StepError::DataPlaneRejected(WRONG.into()),
            StepError::DataPlaneForbidden(WRONG.into()),
            StepError::MemberReplaced(WRONG.into()),
            StepError::MemberMissing(WRONG.into()),
            StepError::MembersRunning(WRONG.into()),
            StepError::CatalogUnavailable(WRONG.into()),
            StepError::CatalogConflict(WRONG.into()),
            StepError::BackupNotFound(WRONG.into()),
            StepError::BackupRunning(WRONG.into()),
            StepError::DeletionInProgress(WRONG.into()),
            StepError::ScheduleNotFound(WRONG.into()),
            StepError::EventTimeOutOfRange(WRONG.into()),
            StepError::Ec2Unavailable(WRONG.into()),
            StepError::StepFunctionsUnavailable(WRONG.into()),
            StepError::EventBridgeUnavailable(WRONG.into()),
            StepError::Configuration(WRONG.into()),
            StepError::Internal(WRONG.into()),
        ];
        assert_eq!(all.len(), ERROR_NAMES.len());
        for e in all {
            assert!(ERROR_NAMES.contains(&e.name()), "{} not listed", e.name());
            // `message` is what `Display` says after the name's prefix
            assert_eq!(e.message(), WRONG, "{}", e.name());
            let said = e.to_string();
            let prefix = said.strip_suffix(WRONG).unwrap_or_else(|| panic!("{said}"));
            assert!(
                prefix.ends_with(": ") && !prefix[..prefix.len() - 2].contains(": "),
                "{said}"
            );
        }
        for r in RETRYABLE_ERROR_NAMES {
            assert!(ERROR_NAMES.contains(r));
        }
    }
}
