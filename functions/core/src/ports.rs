//! The outside world as the steps see it: one small trait per system, speaking domain types.
//! `brfed-adapters` implements them with kube and the AWS SDK; tests use in-memory fakes.

use crate::error::StepError;
use crate::member::MemberRef;
use serde_json::Value;
use std::collections::HashSet;
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

    /// Checks that the data plane answers and serves the `Backup` resource.
    fn probe(&self, cluster: &str) -> impl Future<Output = Result<(), StepError>> + Send;

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

    /// Observes `members` until `done` holds for the observations, or `budget` has passed, and
    /// returns the last observations. A watch in production; `budget` zero means one read.
    fn observe_members(
        &self,
        kind: MemberKind,
        members: &[MemberRef],
        budget: Duration,
        done: &(dyn Fn(&[Observation]) -> bool + Send + Sync),
    ) -> impl Future<Output = Vec<Observation>> + Send;
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
}

/// EBS volumes (what the opt-in restore cleanup deletes).
pub trait Volumes: Send + Sync {
    /// Deletes a volume; `false` when it did not exist.
    fn delete_volume(&self, id: &str) -> impl Future<Output = Result<bool, StepError>> + Send;
}
