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
        Ok(Some((Self::parse(namespace, name, v.value)?, v.etag)))
    }

    /// The document of `namespace/name` in `value`, as stored.
    fn parse(namespace: &str, name: &str, value: Value) -> Result<D, StepError> {
        serde_json::from_value(value).map_err(|e| {
            StepError::CatalogUnavailable(format!(
                "catalog document {namespace}/{name} is unreadable: {e}"
            ))
        })
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
        let parse = |v| Self::parse(namespace, name, v);
        read_modify_write(self.store, self.bucket, &key, parse, |stored| {
            let mut doc = stored.ok_or_else(|| {
                StepError::CatalogUnavailable(format!("catalog document {key} does not exist"))
            })?;
            Ok(if change(&mut doc)? {
                Rewrite::Write(doc)
            } else {
                Rewrite::Keep(doc)
            })
        })
        .await
    }
}

/// What a [`read_modify_write`] does with what it read.
pub(crate) enum Rewrite<T> {
    /// Writes nothing; the answer is this.
    Keep(T),
    /// Writes this in place of what was read.
    Write(T),
}

/// A read-modify-write of the JSON object at `key` in `bucket`: `parse` reads what is stored,
/// `change` decides on it (`None`: nothing is) what to keep or write, and the write is
/// conditional on the read (its ETag, or that nothing exists yet). A write that loses to a
/// concurrent one (`CatalogConflict`) is tried again from the read, a few times; after the last,
/// its conflict is the error. The object kept or written.
pub(crate) async fn read_modify_write<S: ObjectStore, T: Serialize>(
    store: &S,
    bucket: &str,
    key: &str,
    parse: impl Fn(Value) -> Result<T, StepError>,
    mut change: impl FnMut(Option<T>) -> Result<Rewrite<T>, StepError>,
) -> Result<T, StepError> {
    let mut last = None;
    for _ in 0..5 {
        let (stored, precondition) = match store.get_json(bucket, key).await? {
            Some(v) => (Some(parse(v.value)?), Precondition::IfMatch(v.etag)),
            None => (None, Precondition::IfAbsent),
        };
        let next = match change(stored)? {
            Rewrite::Keep(kept) => return Ok(kept),
            Rewrite::Write(next) => next,
        };
        let value = serde_json::to_value(&next).map_err(|e| StepError::Internal(e.to_string()))?;
        match store.put_json(bucket, key, &value, precondition).await {
            Ok(()) => return Ok(next),
            Err(StepError::CatalogConflict(m)) => last = Some(m),
            Err(e) => return Err(e),
        }
    }
    Err(StepError::CatalogConflict(last.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeStore;
    use serde_json::json;

    fn parse(v: Value) -> Result<u32, StepError> {
        serde_json::from_value(v).map_err(|e| StepError::CatalogUnavailable(e.to_string()))
    }

    /// One more than what is stored, 1 when nothing is; what each call saw.
    async fn count_up(store: &FakeStore, seen: &mut Vec<Option<u32>>) -> Result<u32, StepError> {
        read_modify_write(store, "b", "k", parse, |stored| {
            seen.push(stored);
            Ok(Rewrite::Write(stored.map_or(1, |n| n + 1)))
        })
        .await
    }

    #[tokio::test]
    async fn a_read_modify_write_that_loses_the_race_is_done_again_on_the_winners_object() {
        let store = FakeStore::default();
        let mut seen = vec![];
        store.race_next_put("k", json!(10));
        assert_eq!(count_up(&store, &mut seen).await.unwrap(), 11);
        assert_eq!(seen, [None, Some(10)], "created by a rival after the read");
        assert_eq!(store.get("b", "k"), Some(json!(11)));

        seen.clear();
        assert_eq!(count_up(&store, &mut seen).await.unwrap(), 12);
        assert_eq!(seen, [Some(11)]);
    }

    #[tokio::test]
    async fn a_read_modify_write_that_keeps_writes_nothing() {
        let store = FakeStore::default();
        store.put("b", "k", json!(3));
        let out = read_modify_write(&store, "b", "k", parse, |stored| {
            Ok(Rewrite::Keep(stored.unwrap_or_default() * 2))
        })
        .await
        .unwrap();
        assert_eq!(out, 6);
        assert_eq!(store.get("b", "k"), Some(json!(3)));
    }

    #[tokio::test]
    async fn a_read_modify_write_refused_or_unreadable_writes_nothing() {
        let store = FakeStore::default();
        let err = read_modify_write(&store, "b", "k", parse, |_| {
            Err::<Rewrite<u32>, _>(StepError::InvalidSpec("no".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(err.name(), "InvalidSpec");
        assert_eq!(store.get("b", "k"), None);

        store.put("b", "k", json!("not a number"));
        let mut seen = vec![];
        let err = count_up(&store, &mut seen).await.unwrap_err();
        assert_eq!(err.name(), "CatalogUnavailable", "{err}");
        assert!(seen.is_empty());
        assert_eq!(store.get("b", "k"), Some(json!("not a number")));
    }
}
