//! What every schedule step gets: the ports and the catalog of schedules.

use crate::backup::spec::ScheduledBy;
use crate::backup::status::VolumeBackupDoc;
use crate::catalog::CATALOG_PREFIX;
use crate::catalog::Catalog;
use crate::error::StepError;
use crate::ports::ObjectStore;
use crate::schedule::status::ScheduleDoc;

/// What schedule management and the scheduled functions are given.
pub struct SchedulerEnv<'a, S, X> {
    /// S3.
    pub store: &'a S,
    /// Bucket of the catalog.
    pub catalog_bucket: &'a str,
    /// Step Functions.
    pub executions: &'a X,
    /// ARN of the `volume-backup` state machine.
    pub backup_state_machine: &'a str,
    /// ARN of the `volume-backup-delete` state machine.
    pub delete_state_machine: &'a str,
}

impl<S: ObjectStore, X> SchedulerEnv<'_, S, X> {
    pub(crate) fn schedules(&self) -> Catalog<'_, S, ScheduleDoc> {
        Catalog::new(self.store, self.catalog_bucket)
    }

    /// Every schedule document (of `namespace`, or of all namespaces).
    pub async fn list(&self, namespace: Option<&str>) -> Result<Vec<ScheduleDoc>, StepError> {
        let prefix = match namespace {
            Some(ns) => format!("{CATALOG_PREFIX}/volumebackupschedules/{ns}/"),
            None => format!("{CATALOG_PREFIX}/volumebackupschedules/"),
        };
        let mut out = Vec::new();
        for key in self.store.list_keys(self.catalog_bucket, &prefix).await? {
            let Some(v) = self.store.get_json(self.catalog_bucket, &key).await? else {
                continue;
            };
            match serde_json::from_value::<ScheduleDoc>(v.value) {
                Ok(d) => out.push(d),
                Err(e) => tracing::warn!(key, error = %e, "unreadable schedule document skipped"),
            }
        }
        Ok(out)
    }

    /// The backups a schedule's ticks made: catalog documents whose `brfed.scheduledBy` names
    /// the schedule. Not the `tidb.pingcap.com/backup-schedule` label: a manual backup may carry
    /// it (copied from a scheduled one), and must not become the schedule's retention's to delete.
    pub async fn backups_of(
        &self,
        namespace: &str,
        schedule: &str,
    ) -> Result<Vec<VolumeBackupDoc>, StepError> {
        // A tick's backups are named `{schedule}-{ts}`: list that prefix, then check the record.
        let prefix = format!("{CATALOG_PREFIX}/volumebackups/{namespace}/{schedule}-");
        let mine = ScheduledBy {
            namespace: namespace.into(),
            name: schedule.into(),
        };
        let mut out = Vec::new();
        for key in self.store.list_keys(self.catalog_bucket, &prefix).await? {
            let Some(v) = self.store.get_json(self.catalog_bucket, &key).await? else {
                continue;
            };
            if let Ok(d) = serde_json::from_value::<VolumeBackupDoc>(v.value)
                && d.brfed.scheduled_by.as_ref() == Some(&mine)
                && d.metadata.meta.namespace == namespace
            {
                out.push(d);
            }
        }
        Ok(out)
    }
}
