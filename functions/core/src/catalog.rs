//! The catalog: one `VolumeBackup`-shaped JSON document per federated backup, in S3, written with
//! conditional puts. It outlives Step Functions' execution history and is what `get`/`list`,
//! retention and restore-by-name read.

use crate::conditions::Condition;
use crate::conditions::Progress;
use crate::error::StepError;
use crate::execution::ExecutionDetail;
use crate::input::ObjectMeta;
use crate::ports::ObjectStore;
use crate::ports::Precondition;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Key prefix of catalog documents.
pub const CATALOG_PREFIX: &str = "brfed/catalog";

/// Object metadata of a catalog document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocMeta {
    /// The original's metadata fields.
    #[serde(flatten)]
    pub meta: ObjectMeta,
    /// When the backup was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// A document the catalog keeps.
pub trait CatalogDoc: Serialize + serde::de::DeserializeOwned + Clone + PartialEq {
    /// Key of the document of `namespace/name`.
    fn key_of(namespace: &str, name: &str) -> String;
    /// `(namespace, name)` of this document.
    fn id(&self) -> (&str, &str);
    /// Execution that owns it.
    fn execution(&self) -> &str;
}

/// What a backup's and a restore's record show alike (their `status` and `spec` have these
/// fields under the same names); implemented for both by [`federated_doc!`].
pub trait FederatedDoc: CatalogDoc {
    /// Times, commitTs, phase and conditions of its status.
    fn progress(&self) -> &Progress;
    /// `(k8sClusterName, tcName)` of each member.
    fn clusters(&self) -> Vec<(&str, &str)>;

    /// `status.phase`: the type of the last condition written.
    fn phase(&self) -> Option<&str> {
        self.progress().phase.as_deref()
    }
    /// `Complete` or `Failed` once it ended; `None` before (what it ended as, also once a
    /// failed deletion made its phase `CleanFailed`).
    fn ended_phase(&self) -> Option<&str> {
        self.progress().outcome()
    }
    /// `status.conditions`.
    fn conditions(&self) -> &[Condition] {
        &self.progress().conditions
    }
    /// `status.commitTs`.
    fn commit_ts(&self) -> Option<&str> {
        self.progress().commit_ts.as_deref()
    }
    /// `status.timeTaken`.
    fn time_taken(&self) -> Option<&str> {
        self.progress().time_taken.as_deref()
    }
}

/// Implements [`FederatedDoc`] for a document with `status.progress` and
/// `spec.clusters[].{k8s_cluster_name, tc_name}`.
macro_rules! federated_doc {
    ($doc:ty) => {
        impl $crate::catalog::FederatedDoc for $doc {
            fn progress(&self) -> &$crate::conditions::Progress {
                &self.status.progress
            }
            fn clusters(&self) -> Vec<(&str, &str)> {
                let clusters = self.spec.clusters.iter();
                clusters
                    .map(|c| (c.k8s_cluster_name.as_str(), c.tc_name.as_str()))
                    .collect()
            }
        }
    };
}
pub(crate) use federated_doc;

/// Reads and writes catalog documents of type `D`.
pub struct Catalog<'a, S, D> {
    store: &'a S,
    bucket: &'a str,
    _doc: std::marker::PhantomData<D>,
}

impl<'a, S: ObjectStore, D: CatalogDoc> Catalog<'a, S, D> {
    /// A catalog in `bucket`.
    pub fn new(store: &'a S, bucket: &'a str) -> Self {
        Self {
            store,
            bucket,
            _doc: std::marker::PhantomData,
        }
    }

    /// What an abort acts on: the failure name of `ended` (an execution that ended ABORTED,
    /// TIMED_OUT or FAILED), its request as `parse` reads it (`what`: what it must be), and the
    /// document of the request's `(namespace, name)` when that execution owns it; otherwise why
    /// there is nothing to do.
    pub async fn aborted<R>(
        &self,
        ended: &ExecutionDetail,
        what: &str,
        parse: impl FnOnce(Value) -> Option<R>,
        id: impl FnOnce(&R) -> (String, String),
    ) -> Result<Result<(&'static str, R, D), String>, StepError> {
        let (failure_name, request) = match ended.ended_request(what, parse) {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let (namespace, name) = id(&request);
        let owned = self
            .owned_by(&namespace, &name, &ended.execution_arn)
            .await?;
        Ok(owned.map(|doc| (failure_name, request, doc)))
    }

    /// The document of `namespace/name` when `execution` owns it; otherwise why not (there is
    /// none, or another execution's), for the abort steps' `nothing-to-do`.
    pub async fn owned_by(
        &self,
        namespace: &str,
        name: &str,
        execution: &str,
    ) -> Result<Result<D, String>, StepError> {
        Ok(match self.get(namespace, name).await? {
            None => Err(format!("no catalog document for {namespace}/{name}")),
            Some((doc, _)) if doc.execution() != execution => {
                Err(format!("{namespace}/{name} belongs to {}", doc.execution()))
            }
            Some((doc, _)) => Ok(doc),
        })
    }

    /// Reads the document of `namespace/name`.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Option<(D, String)>, StepError> {
        let Some(v) = self
            .store
            .get_json(self.bucket, &D::key_of(namespace, name))
            .await?
        else {
            return Ok(None);
        };
        let doc = serde_json::from_value(v.value).map_err(|e| {
            StepError::CatalogUnavailable(format!(
                "catalog document {namespace}/{name} is unreadable: {e}"
            ))
        })?;
        Ok(Some((doc, v.etag)))
    }

    /// Creates the document unless one exists; returns the stored one.
    pub async fn create(&self, doc: &D) -> Result<D, StepError> {
        let (namespace, name) = doc.id();
        let key = D::key_of(namespace, name);
        let value = serde_json::to_value(doc).map_err(|e| StepError::Internal(e.to_string()))?;
        match self
            .store
            .put_json(self.bucket, &key, &value, Precondition::IfAbsent)
            .await
        {
            Ok(()) => Ok(doc.clone()),
            Err(StepError::CatalogConflict(_)) => self
                .get(namespace, name)
                .await?
                .map(|(d, _)| d)
                .ok_or_else(|| {
                    StepError::CatalogConflict(format!("{key} vanished while being created"))
                }),
            Err(e) => Err(e),
        }
    }

    /// Read-modify-write of `namespace/name` with an ETag precondition, retried a few times on
    /// conflict. `change` returns false to leave the document as it is.
    pub async fn update(
        &self,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(&mut D) -> bool,
    ) -> Result<D, StepError> {
        self.try_update(namespace, name, |d| Ok(change(d))).await
    }

    /// [`Catalog::update`] whose `change` may refuse: its error is returned and nothing is
    /// written. `change` sees the document as stored at the write's ETag, so a refusal decided
    /// on it holds against every concurrent writer (a test-and-set).
    pub async fn try_update(
        &self,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(&mut D) -> Result<bool, StepError>,
    ) -> Result<D, StepError> {
        let key = D::key_of(namespace, name);
        let mut last = None;
        for _ in 0..5 {
            let (mut doc, etag) = self.get(namespace, name).await?.ok_or_else(|| {
                StepError::CatalogUnavailable(format!("catalog document {key} does not exist"))
            })?;
            if !change(&mut doc)? {
                return Ok(doc);
            }
            let value =
                serde_json::to_value(&doc).map_err(|e| StepError::Internal(e.to_string()))?;
            match self
                .store
                .put_json(self.bucket, &key, &value, Precondition::IfMatch(etag))
                .await
            {
                Ok(()) => return Ok(doc),
                Err(StepError::CatalogConflict(m)) => last = Some(m),
                Err(e) => return Err(e),
            }
        }
        Err(StepError::CatalogConflict(last.unwrap_or_default()))
    }
}
