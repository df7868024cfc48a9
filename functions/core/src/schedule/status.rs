//! A schedule as the catalog keeps it: the `VolumeBackupSchedule`-shaped document, its status
//! (last backup, last tick) and brfed's record beside it.

use crate::catalog::CATALOG_PREFIX;

use crate::catalog::CatalogDoc;
use crate::catalog::DocMeta;
use crate::schedule::spec::ScheduleRequest;
use crate::schedule::spec::VolumeBackupScheduleSpec;
use serde::{Deserialize, Serialize};

/// Key of the document of schedule `namespace/name`.
pub fn schedule_key(namespace: &str, name: &str) -> String {
    format!("{CATALOG_PREFIX}/volumebackupschedules/{namespace}/{name}.json")
}

/// `VolumeBackupSchedule.status` (reference §2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Name of the last backup a tick started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// Its scheduled time (not when it started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<String>,
}

/// brfed's record beside the original's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRecord {
    /// EventBridge rule name.
    pub rule: String,
    /// Its schedule expression.
    pub expression: String,
    /// brfed's options for every backup of the schedule (`options` beside `spec` in the
    /// input); absent: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<crate::backup::spec::Options>,
}

/// A `VolumeBackupSchedule` as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleDoc {
    /// `federation.pingcap.com/v1alpha1`.
    pub api_version: String,
    /// `VolumeBackupSchedule`.
    pub kind: String,
    /// Metadata.
    pub metadata: DocMeta,
    /// Spec as given.
    pub spec: VolumeBackupScheduleSpec,
    /// Status.
    #[serde(default)]
    pub status: ScheduleStatus,
    /// brfed's record.
    #[serde(default)]
    pub brfed: ScheduleRecord,
}

impl ScheduleDoc {
    /// The request this document was made from.
    pub fn request(&self) -> ScheduleRequest {
        ScheduleRequest {
            metadata: self.metadata.meta.clone(),
            spec: self.spec.clone(),
            options: self.brfed.options.clone().unwrap_or_default(),
        }
    }
}

impl CatalogDoc for ScheduleDoc {
    fn key_of(namespace: &str, name: &str) -> String {
        schedule_key(namespace, name)
    }
    fn id(&self) -> (&str, &str) {
        (&self.metadata.meta.namespace, &self.metadata.meta.name)
    }
    fn execution(&self) -> &str {
        ""
    }
}
