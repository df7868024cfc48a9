//! `VolumeBackup.status` (reference §2.1): conditions, per-member entries, and the aggregates
//! (`commitTs` = minimum member commitTs, `backupSize` = sum, readable size, time taken).
//!
//! The catalog record of a backup: the `VolumeBackup`-shaped document ([`VolumeBackupDoc`]) with
//! brfed's own record beside it ([`BrfedRecord`]: execution, phases, teardown, deletion).

use crate::catalog::CATALOG_PREFIX;

use crate::backup::spec::BackupRequest;
use crate::backup::spec::Options;
use crate::backup::spec::VolumeBackupSpec;
use crate::catalog::CatalogDoc;
use crate::catalog::DocMeta;
use crate::conditions::Progress;
use crate::input::FEDERATION_API_VERSION;
use crate::member::MemberRef;
use crate::member::MemberView;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `VolumeBackup` condition types (= phase values).
pub mod vbk {
    pub use crate::conditions::phases::{COMPLETE, FAILED, RUNNING};
    /// All snapshots created and GC/schedulers resumed.
    pub const SNAPSHOTS_CREATED: &str = "SnapshotsCreated";
}

/// `status.backups[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// TidbCluster name.
    pub tc_name: String,
    /// TidbCluster namespace.
    pub tc_namespace: String,
    /// Member `Backup` name.
    pub backup_name: String,
    /// Member `status.phase`.
    pub phase: String,
    /// `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_path: Option<String>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_size: Option<i64>,
    /// Resolved TS of this member's snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// From the member's failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From the member's failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// brfed's own field: when brfed deleted this member before the backup ended (RFC 3339, ms).
    /// Only an `Invalid` initialize member is deleted (see [`MemberView::strands_init_job`]): its
    /// data plane no longer acts on it, and deleting it is what stops its init job and resumes
    /// GC. The entry keeps the member's last phase, reason and message; its data (snapshots,
    /// `backupmeta`) goes or stays as the backup's `cleanPolicy` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl MemberStatus {
    /// This entry is member `m`'s (key: backupName + k8sClusterName).
    fn is(&self, m: &MemberRef) -> bool {
        self.backup_name == m.backup_name && self.k8s_cluster_name == m.k8s_cluster_name
    }
}

/// `VolumeBackup.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeBackupStatus {
    /// One per created member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<MemberStatus>,
    /// Sum of member sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_size: Option<i64>,
    /// SI humanized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_size_readable: Option<String>,
    /// Times, commitTs, phase and conditions.
    #[serde(flatten)]
    pub progress: Progress,
}

impl VolumeBackupStatus {
    /// Upserts `status.backups[]` from what was observed (key: backupName + k8sClusterName).
    pub fn refresh_members(&mut self, observed: &[(MemberRef, Option<MemberView>)]) {
        for (m, view) in observed {
            let Some(view) = view else { continue };
            let mut entry = MemberStatus {
                k8s_cluster_name: m.k8s_cluster_name.clone(),
                tc_name: m.tc_name.clone(),
                tc_namespace: m.tc_namespace.clone(),
                backup_name: m.backup_name.clone(),
                phase: view.phase.clone().unwrap_or_default(),
                backup_path: view.backup_path.clone(),
                backup_size: view.backup_size,
                commit_ts: view.commit_ts.clone(),
                reason: None,
                message: None,
                deleted_at: None,
            };
            if let Some(c) = view.failed() {
                entry.reason = c.reason.clone();
                entry.message = c.message.clone();
            }
            match self.member_mut(m) {
                Some(b) => {
                    // a member brfed deleted may still be read while its data plane cleans up
                    entry.deleted_at = b.deleted_at.take();
                    *b = entry;
                }
                None => self.backups.push(entry),
            }
        }
    }

    fn member_mut(&mut self, m: &MemberRef) -> Option<&mut MemberStatus> {
        self.backups.iter_mut().find(|b| b.is(m))
    }

    /// The entry of member `m`, if any.
    pub fn member(&self, m: &MemberRef) -> Option<&MemberStatus> {
        self.backups.iter().find(|b| b.is(m))
    }

    /// Records that brfed deleted member `m` at `at` (kept if already recorded), refreshing its
    /// entry from `view` (what it was when deleted) first; an entry is added when there is none.
    pub fn mark_deleted(&mut self, m: &MemberRef, view: Option<&MemberView>, at: &str) {
        if let Some(v) = view {
            self.refresh_members(&[(m.clone(), Some(v.clone()))]);
        }
        let i = self
            .backups
            .iter()
            .position(|b| b.is(m))
            .unwrap_or_else(|| {
                self.backups.push(MemberStatus {
                    k8s_cluster_name: m.k8s_cluster_name.clone(),
                    tc_name: m.tc_name.clone(),
                    tc_namespace: m.tc_namespace.clone(),
                    backup_name: m.backup_name.clone(),
                    ..Default::default()
                });
                self.backups.len() - 1
            });
        self.backups[i]
            .deleted_at
            .get_or_insert_with(|| at.to_string());
    }

    /// Whether brfed recorded member `m` as deleted.
    pub fn is_deleted(&self, m: &MemberRef) -> bool {
        self.member(m).is_some_and(|b| b.deleted_at.is_some())
    }

    /// `cluster/namespace/name` of every member brfed deleted, in entry order.
    pub fn deleted_members(&self) -> Vec<String> {
        self.backups
            .iter()
            .filter(|b| b.deleted_at.is_some())
            .map(|b| {
                format!(
                    "{}/{}/{}",
                    b.k8s_cluster_name, b.tc_namespace, b.backup_name
                )
            })
            .collect()
    }

    /// Ends the backup: sizes summed, time taken, and on success the minimum commitTs (a
    /// backup whose commitTs cannot be trusted fails with `MemberFailed`).
    pub fn finish(&mut self, failure: Option<(&str, &str)>, now: DateTime<Utc>) {
        let size: i64 = self.backups.iter().filter_map(|b| b.backup_size).sum();
        self.backup_size = Some(size);
        self.backup_size_readable = Some(humanize_bytes(size.max(0) as u64));
        let untrusted = match failure {
            Some(_) => None,
            None => match min_commit_ts(&self.backups) {
                Ok(ts) => {
                    self.progress.commit_ts = Some(ts.to_string());
                    None
                }
                Err(msg) => Some(msg),
            },
        };
        let failure = failure.or(untrusted.as_deref().map(|msg| ("MemberFailed", msg)));
        self.progress.end(failure, now);
    }
}

/// Minimum of the members' commitTs; every member must have a numeric one.
pub fn min_commit_ts(members: &[MemberStatus]) -> Result<u64, String> {
    let mut min: Option<u64> = None;
    if members.is_empty() {
        return Err("no member reported a commitTs".into());
    }
    for m in members {
        let ts = m
            .commit_ts
            .as_deref()
            .and_then(|c| c.trim().parse::<u64>().ok())
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                format!(
                    "member {} in {} reported no valid commitTs",
                    m.backup_name, m.k8s_cluster_name
                )
            })?;
        min = Some(min.map_or(ts, |m| m.min(ts)));
    }
    min.ok_or_else(|| "no commitTs".into())
}

/// Bytes in SI units the way the original shows them (go-humanize `Bytes`): `83 MB`, `1.2 TB`.
pub fn humanize_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = (n as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

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
    pub deletion: Option<crate::backup::status::DeletionRecord>,
    /// The schedule whose tick made this backup: what makes it a candidate of that schedule's
    /// retention (`docs/schedule.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<crate::backup::spec::ScheduledBy>,
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

crate::catalog::federated_doc!(VolumeBackupDoc);

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

/// brfed's record of a deletion, in the catalog document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletionRecord {
    /// Execution that deletes (deleted) the backup.
    pub execution: String,
    /// When it was asked.
    pub requested_at: String,
    /// `Deleting` or `CleanFailed`.
    pub state: String,
    /// What the deletion left (`CleanFailed`).
    #[serde(flatten)]
    pub remains: Remains,
}

/// What a deletion left: what should be gone and is not, and what it leaves on purpose. The
/// deletion's result and the catalog record of a `CleanFailed` backup show the same fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remains {
    /// Snapshots that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_snapshots: Vec<String>,
    /// S3 objects that should be gone and are not (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remaining_objects: Vec<String>,
    /// Snapshots the members' `backupmeta` lists that still exist and are not this stack's and
    /// this backup's: left on purpose (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_owned: Vec<String>,
    /// Member objects of the backup's member names that are not the backup's: left, with their
    /// data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_members: Vec<String>,
}

impl Remains {
    /// Whether something that should be gone is not.
    pub fn anything_remains(&self) -> bool {
        !self.remaining_snapshots.is_empty() || !self.remaining_objects.is_empty()
    }

    /// Keeps at most `limit` entries of each list that can grow with the backup.
    pub fn truncate(&mut self, limit: usize) {
        self.remaining_snapshots.truncate(limit);
        self.remaining_objects.truncate(limit);
        self.not_owned.truncate(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::go_duration;

    #[test]
    fn sizes_read_like_the_originals() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(82854982), "83 MB");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(1_200_000_000_000), "1.2 TB");
        assert_eq!(humanize_bytes(999), "999 B");
    }

    #[test]
    fn a_deletion_record_keeps_what_remains_at_its_top_level() {
        let stored = serde_json::json!({
            "execution": "x", "requestedAt": "t", "state": "CleanFailed",
            "remainingSnapshots": ["snap-1"], "notOwned": ["snap-9"]
        });
        let record: DeletionRecord = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(record.remains.remaining_snapshots, ["snap-1"]);
        assert_eq!(record.remains.not_owned, ["snap-9"]);
        assert!(record.remains.anything_remains());
        assert_eq!(serde_json::to_value(&record).unwrap(), stored);
        let old: DeletionRecord = serde_json::from_value(
            serde_json::json!({"execution": "x", "requestedAt": "t", "state": "Deleting"}),
        )
        .unwrap();
        assert_eq!(old.remains, Remains::default());
    }

    #[test]
    fn the_status_keeps_times_phase_and_conditions_at_its_top_level() {
        let stored = serde_json::json!({
            "backups": [{"k8sClusterName": "dp1", "tcName": "tc", "tcNamespace": "ns",
                         "backupName": "b", "phase": "Complete", "commitTs": "7"}],
            "backupSize": 10, "backupSizeReadable": "10 B",
            "timeStarted": "2026-01-01T00:00:00Z", "timeCompleted": "2026-01-01T00:01:00Z",
            "timeTaken": "1m0s", "commitTs": "7", "phase": "Complete",
            "conditions": [{"type": "Complete", "status": "True"}]
        });
        let status: VolumeBackupStatus = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(status.progress.commit_ts.as_deref(), Some("7"));
        assert!(status.progress.is_terminal() && status.progress.has(vbk::COMPLETE));
        assert_eq!(serde_json::to_value(&status).unwrap(), stored);
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(723), "12m3s");
        assert_eq!(go_duration(3605), "1h0m5s");
    }

    #[test]
    fn commit_ts_is_the_minimum_and_must_be_numeric() {
        let m = |ts: Option<&str>| MemberStatus {
            commit_ts: ts.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            min_commit_ts(&[m(Some("30")), m(Some("10")), m(Some("20"))]),
            Ok(10)
        );
        assert!(min_commit_ts(&[m(Some("30")), m(None)]).is_err());
        assert!(min_commit_ts(&[m(Some("x"))]).is_err());
        assert!(min_commit_ts(&[]).is_err());
    }

    #[test]
    fn a_deleted_member_keeps_its_record_when_read_again() {
        let m = MemberRef {
            k8s_cluster_name: "dp1".into(),
            tc_name: "basic".into(),
            tc_namespace: "tidb".into(),
            backup_name: "fed-bk".into(),
        };
        let invalid = MemberView {
            phase: Some("Invalid".into()),
            deleting: true,
            ..Default::default()
        };
        let mut s = VolumeBackupStatus::default();
        s.mark_deleted(&m, Some(&invalid), "2026-01-01T00:00:00.000Z");
        assert_eq!(s.backups.len(), 1);
        assert_eq!(s.backups[0].phase, "Invalid");
        s.mark_deleted(&m, None, "2026-01-01T00:05:00.000Z");
        assert_eq!(
            s.backups[0].deleted_at.as_deref(),
            Some("2026-01-01T00:00:00.000Z"),
            "the first deletion time stays"
        );
        // still present while its data plane cleans up: refreshed, still deleted
        s.refresh_members(&[(m.clone(), Some(invalid))]);
        assert!(s.is_deleted(&m));
        assert_eq!(s.deleted_members(), ["dp1/tidb/fed-bk"]);
        // a member never seen gets an entry
        let mut s = VolumeBackupStatus::default();
        s.mark_deleted(&m, None, "t");
        assert_eq!(s.backups[0].backup_name, "fed-bk");
        assert!(s.is_deleted(&m));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["backups"][0]["deletedAt"], "t");
    }

    #[test]
    fn a_repeated_condition_keeps_its_transition_time() {
        let mut s = VolumeBackupStatus::default();
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t1 = DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .unwrap()
            .with_timezone(&Utc);
        s.progress.set_condition(vbk::RUNNING, None, None, t0);
        s.progress.set_condition(vbk::RUNNING, None, None, t1);
        assert_eq!(s.progress.conditions.len(), 1);
        assert_eq!(
            s.progress.conditions[0].last_transition_time.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            s.progress.time_started.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        s.finish(None, t1);
        assert_eq!(
            s.progress.phase.as_deref(),
            Some(vbk::FAILED),
            "no members => no commitTs => failed"
        );
        assert_eq!(s.progress.time_taken.as_deref(), Some("10m0s"));
    }
}
