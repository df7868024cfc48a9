//! The outside world as the steps see it: one small trait per system, speaking domain types.
//! `brfed-adapters` implements them with kube and the AWS SDK; tests use in-memory fakes.

use crate::error::StepError;
use crate::member::MemberRef;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// What a data plane said about one member object.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The object, as JSON.
    Present(Value),
    /// No such object.
    Absent,
    /// The data plane could not be asked.
    Unreachable(String),
}

impl Observation {
    /// The object, when there is one.
    pub fn present(&self) -> Option<&Value> {
        match self {
            Self::Present(v) => Some(v),
            _ => None,
        }
    }
}

/// Which data-plane object a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// `pingcap.com/v1alpha1` `Backup`.
    Backup,
    /// `pingcap.com/v1alpha1` `Restore`.
    Restore,
}

impl MemberKind {
    /// Kind name.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Backup => "Backup",
            Self::Restore => "Restore",
        }
    }

    /// Resource plural.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Backup => "backups",
            Self::Restore => "restores",
        }
    }
}

/// Result of a create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Newly created.
    Created,
    /// An object of that name was already there; here it is.
    AlreadyExists(Value),
}

/// The data planes: Kubernetes API servers of the member clusters, by name.
pub trait DataPlanes: Send + Sync {
    /// Names of every data plane the registry knows (kubeconfig contexts).
    fn cluster_names(&self) -> HashSet<String>;

    /// Checks that the data plane answers, serves `kind`'s resource, and lets brfed list it in
    /// `namespace` (the only place brfed needs rights: a namespaced RoleBinding is enough).
    fn probe(
        &self,
        kind: MemberKind,
        cluster: &str,
        namespace: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Reads a `TidbCluster`.
    fn get_tidb_cluster(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Value>, StepError>> + Send;

    /// Reads one member object.
    fn get_member(
        &self,
        kind: MemberKind,
        member: &MemberRef,
    ) -> impl Future<Output = Result<Option<Value>, StepError>> + Send;

    /// Creates a member object in `cluster` (namespace from the object).
    fn create_member(
        &self,
        kind: MemberKind,
        cluster: &str,
        object: &Value,
    ) -> impl Future<Output = Result<Created, StepError>> + Send;

    /// JSON merge-patches a member's `spec`.
    fn patch_member_spec(
        &self,
        kind: MemberKind,
        member: &MemberRef,
        spec: &Value,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Deletes a member object; `false` if it was already gone.
    fn delete_member(
        &self,
        kind: MemberKind,
        member: &MemberRef,
    ) -> impl Future<Output = Result<bool, StepError>> + Send;

    /// JSON merge-patches a member object (`metadata` and `spec`), only if its
    /// `metadata.uid` is still `uid` (the API server's precondition; another object of that
    /// name now is `DataPlaneRejected`, a missing one `MemberMissing`).
    fn patch_member_if(
        &self,
        kind: MemberKind,
        member: &MemberRef,
        uid: &str,
        patch: &Value,
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    /// Deletes a member object only if its `metadata.uid` is still `uid` (a delete
    /// precondition): `false` when it is gone; another object of that name now is
    /// `DataPlaneRejected`.
    fn delete_member_if(
        &self,
        kind: MemberKind,
        member: &MemberRef,
        uid: &str,
    ) -> impl Future<Output = Result<bool, StepError>> + Send;

    /// Observes `members` until `done` holds for the observations, or `budget` has passed, and
    /// returns the last observations. A watch in production; `budget` zero means one read.
    fn observe_members(
        &self,
        kind: MemberKind,
        members: &[MemberRef],
        budget: Duration,
        done: &(dyn Fn(&[Observation]) -> bool + Send + Sync),
    ) -> impl Future<Output = Vec<Observation>> + Send;

    /// One read of `members`, now.
    fn read_members(
        &self,
        kind: MemberKind,
        members: &[MemberRef],
    ) -> impl Future<Output = Vec<Observation>> + Send {
        self.observe_members(kind, members, Duration::ZERO, &|_: &[Observation]| true)
    }
}

/// Precondition of a conditional put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Overwrite whatever is there.
    None,
    /// Only if the object does not exist.
    IfAbsent,
    /// Only if the object still has this ETag.
    IfMatch(String),
}

/// A stored JSON document and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    /// The document.
    pub value: Value,
    /// Its ETag.
    pub etag: String,
}

/// An object store (S3).
pub trait ObjectStore: Send + Sync {
    /// Reads a JSON object.
    fn get_json(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, StepError>> + Send;
    /// Writes a JSON object; a failed precondition is [`StepError::CatalogConflict`].
    fn put_json(
        &self,
        bucket: &str,
        key: &str,
        value: &Value,
        precondition: Precondition,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Whether an object exists.
    fn exists(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<bool, StepError>> + Send;
    /// Keys under `prefix`, in key order (every page).
    fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StepError>> + Send;
    /// Deletes an object; deleting a missing object is not an error.
    fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// What one snapshot deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotDeletion {
    /// Deleted now.
    Deleted,
    /// There was no such snapshot (`InvalidSnapshot.NotFound`): counts as done.
    NotFound,
    /// EC2 throttled the call (`RequestLimitExceeded`); try again later.
    Throttled,
}

/// One EBS snapshot as `DescribeSnapshots` tells it: what brfed needs to prove whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// `snap-...`.
    pub id: String,
    /// When EC2 started it (`StartTime`).
    pub start_time: DateTime<Utc>,
    /// `pending`, `completed`, `error`, ...
    pub state: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// EBS volumes and snapshots (what the opt-in restore cleanup and the backup deletion touch).
pub trait Volumes: Send + Sync {
    /// Deletes a volume; `false` when it did not exist.
    fn delete_volume(&self, id: &str) -> impl Future<Output = Result<bool, StepError>> + Send;
    /// Deletes a snapshot once, without retrying: throttling is reported, the caller paces.
    fn delete_snapshot(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<SnapshotDeletion, StepError>> + Send;
    /// Tags snapshots (existing tags of other keys stay).
    fn tag_snapshots(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), StepError>> + Send;

    // The restore's volumes (`restore::volumes`): found by the snapshot they were made from (an
    // EC2 attribute, not a tag), judged by what EC2 says of each, read again before a delete.

    /// Volumes made from any of `snapshots` (`DescribeVolumes` filtered by `snapshot-id`).
    fn volumes_from_snapshots(
        &self,
        snapshots: &[String],
    ) -> impl Future<Output = Result<Vec<VolumeFacts>, StepError>> + Send;
    /// One volume as EC2 describes it now; `None` when it does not exist.
    fn describe_volume(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<VolumeFacts>, StepError>> + Send;
    /// Tags volumes (existing tags of other keys stay).
    fn tag_volumes(
        &self,
        ids: &[String],
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Those of `ids` that exist and this account owns, read right now (`DescribeSnapshots`
    /// filtered by `snapshot-id`: a snapshot that does not exist is left out, not an error).
    fn describe_snapshots(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, StepError>> + Send;
    /// Snapshots this account owns that carry tag `key` (any value).
    fn snapshots_tagged(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, StepError>> + Send;
}

/// What EC2 says of one EBS volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFacts {
    /// `vol-...`.
    pub id: String,
    /// The snapshot it was made from (`SnapshotId`), if any.
    pub snapshot_id: Option<String>,
    /// `AvailabilityZone`.
    pub availability_zone: String,
    /// `CreateTime`.
    pub create_time: Option<chrono::DateTime<chrono::Utc>>,
    /// `State` (`creating`, `available`, `in-use`, `deleting`, ...).
    pub state: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// What a start of an execution found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new execution (its ARN).
    New(String),
    /// An execution of that name exists already (at-least-once delivery, a retry): nothing new.
    AlreadyExists,
}

/// Step Functions executions, by state machine and execution name.
pub trait Executions: Send + Sync {
    /// Starts execution `name` of `state_machine` with `input`.
    fn start(
        &self,
        state_machine: &str,
        name: &str,
        input: &Value,
    ) -> impl Future<Output = Result<Started, StepError>> + Send;
    /// Status of execution `name` of `state_machine` (`RUNNING`, `SUCCEEDED`, ...), `None` when
    /// there is none.
    fn status(
        &self,
        state_machine: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, StepError>> + Send;
    /// Execution `name` of `state_machine` as `DescribeExecution` tells it, `None` when there is
    /// none.
    fn describe(
        &self,
        state_machine: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ExecutionFacts>, StepError>> + Send;
}

/// What `DescribeExecution` says of one execution (what a status-change event carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFacts {
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`, ...
    pub status: String,
    /// The input, a JSON string (absent when Step Functions withholds it).
    pub input: Option<String>,
    /// Error name, when it failed or was stopped with one.
    pub error: Option<String>,
    /// Cause.
    pub cause: Option<String>,
}

/// An EventBridge schedule rule whose one target is a Lambda function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRule {
    /// Rule name.
    pub name: String,
    /// `cron(...)` or `rate(...)`.
    pub expression: String,
    /// Enabled (fires) or disabled.
    pub enabled: bool,
    /// Description.
    pub description: String,
    /// ARN of the target function.
    pub target_arn: String,
    /// Target input: a JSON template where `<time>` is the event's time (an input transformer).
    pub input_template: String,
}

/// EventBridge rules.
pub trait Rules: Send + Sync {
    /// Creates or replaces a schedule rule and its target.
    fn put(&self, rule: &ScheduleRule) -> impl Future<Output = Result<(), StepError>> + Send;
    /// Enables or disables a rule; `false` when there is no such rule.
    fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<bool, StepError>> + Send;
    /// Deletes a rule and its targets; `false` when there was none.
    fn delete(&self, name: &str) -> impl Future<Output = Result<bool, StepError>> + Send;
}
