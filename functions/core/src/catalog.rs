//! The catalog: one `VolumeBackup`-shaped JSON document per federated backup, in S3, written with
//! conditional puts. It outlives Step Functions' execution history and is what `get`/`list`,
//! retention and restore-by-name read.

use crate::error::StepError;
use crate::member::MemberRef;
use crate::ports::{ObjectStore, Precondition};
use crate::spec::{BackupRequest, FEDERATION_API_VERSION, ObjectMeta, Options, VolumeBackupSpec};
use crate::status::VolumeBackupStatus;
use serde::{Deserialize, Serialize};

/// Key prefix of catalog documents.
pub const CATALOG_PREFIX: &str = "brfed/catalog";

/// Key of the document of backup `namespace/name`.
pub fn backup_key(namespace: &str, name: &str) -> String {
    format!("{CATALOG_PREFIX}/volumebackups/{namespace}/{name}.json")
}

/// brfed's own record beside the original's fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrfedRecord {
    /// Step Functions execution that runs (ran) this backup.
    pub execution: String,
    /// Options in force.
    #[serde(default)]
    pub options: Options,
    /// Members, in `spec.clusters` order.
    #[serde(default)]
    pub members: Vec<MemberRef>,
    /// When brfed saw the last member's snapshots created (RFC 3339, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_created_observed_at: Option<String>,
    /// When brfed asked the initialize member to resume GC and schedulers (RFC 3339, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_requested_at: Option<String>,
    /// When teardown was requested, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown_requested_at: Option<String>,
    /// Members a teardown could not ask yet (`cluster/namespace/name: error`), while it is retried
    /// (the Teardown step, `backup-finalize`, `backup-abort`): no terminal state is written while
    /// this is not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown_pending: Vec<String>,
    /// Whether every member had settled (terminal, gone, or not this backup's) when the backup
    /// ended: `false` while one may still run (a stopped backup, a teardown wait that ran out).
    /// `backup-abort` looks again until it can write `true`. A schedule's next tick waits while
    /// the last backup is not terminal or this is `false`. Absent: not recorded (documents written
    /// before brfed recorded it); read as settled once the backup is terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_settled: Option<bool>,
    /// The members that had not settled at the last look (`cluster/namespace/name phase`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled_members: Vec<String>,
    /// The deletion of this backup, once one was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<crate::delete::DeletionRecord>,
    /// The schedule whose tick made this backup: what makes it a candidate of that schedule's
    /// retention (`docs/schedule.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<crate::spec::ScheduledBy>,
}

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

/// A `VolumeBackup` as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupDoc {
    /// `federation.pingcap.com/v1alpha1`.
    pub api_version: String,
    /// `VolumeBackup`.
    pub kind: String,
    /// Metadata.
    pub metadata: DocMeta,
    /// Spec as given.
    pub spec: VolumeBackupSpec,
    /// Retention immunity.
    #[serde(default, rename = "skipGC")]
    pub skip_gc: bool,
    /// Status.
    #[serde(default)]
    pub status: VolumeBackupStatus,
    /// brfed's record.
    #[serde(default)]
    pub brfed: BrfedRecord,
}

impl VolumeBackupDoc {
    /// A new document for `req`.
    pub fn new(
        req: &BackupRequest,
        execution: &str,
        members: Vec<MemberRef>,
        created: &str,
    ) -> Self {
        Self {
            api_version: FEDERATION_API_VERSION.into(),
            kind: "VolumeBackup".into(),
            metadata: DocMeta {
                meta: req.metadata.clone(),
                creation_timestamp: Some(created.into()),
            },
            spec: req.spec.clone(),
            skip_gc: req.skip_gc,
            status: VolumeBackupStatus::default(),
            brfed: BrfedRecord {
                execution: execution.into(),
                options: req.options.clone(),
                members,
                scheduled_by: req.scheduled_by.clone(),
                ..Default::default()
            },
        }
    }

    /// The request this document was made from.
    pub fn request(&self) -> BackupRequest {
        BackupRequest {
            metadata: self.metadata.meta.clone(),
            spec: self.spec.clone(),
            skip_gc: self.skip_gc,
            options: self.brfed.options.clone(),
            scheduled_by: self.brfed.scheduled_by.clone(),
        }
    }
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

impl CatalogDoc for VolumeBackupDoc {
    fn key_of(namespace: &str, name: &str) -> String {
        backup_key(namespace, name)
    }
    fn id(&self) -> (&str, &str) {
        (&self.metadata.meta.namespace, &self.metadata.meta.name)
    }
    fn execution(&self) -> &str {
        &self.brfed.execution
    }
}

/// Reads and writes catalog documents of type `D`.
pub struct Catalog<'a, S, D = VolumeBackupDoc> {
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
