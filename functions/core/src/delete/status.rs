//! What a deletion records: the manifest (what each member's `backupmeta` listed, read before any
//! clean job could delete it) and the result it reports.

use crate::catalog::CATALOG_PREFIX;

use crate::backup::judge::Failure;
use crate::backup::status::Remains;
use serde::{Deserialize, Serialize};

/// Key of the deletion manifest of backup `namespace/name`: the snapshot ids read from the
/// members' `backupmeta` before anything was deleted.
pub fn manifest_key(namespace: &str, name: &str) -> String {
    format!("{CATALOG_PREFIX}/deletions/{namespace}/{name}.json")
}

/// Longest list of remaining snapshot ids or object keys kept in a catalog document.
pub(crate) const REPORT_LIMIT: usize = 100;

/// The manifest: every member's snapshot ids, in member order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The deletion execution that wrote it (empty in manifests of older versions).
    #[serde(default)]
    pub execution: String,
    /// `members[i]` are the snapshot ids of context member `i`.
    pub members: Vec<Vec<String>>,
}

/// Output of the finish step: the execution output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteResult {
    /// Backup.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `Cleaned` (the catalog document is removed) or `CleanFailed` (it is kept, with what
    /// remains).
    pub result: String,
    /// Snapshots that are gone and were to go.
    pub snapshots_deleted: usize,
    /// Snapshots kept because `cleanPolicy` keeps them (`Retain`, `OnFailure` on a success).
    pub snapshots_retained: usize,
    /// What it left.
    #[serde(flatten)]
    pub remains: Remains,
    /// Why the deletion failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}
