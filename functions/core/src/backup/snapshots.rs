//! Tagging the EBS snapshots a backup's members made (`backup-finalize`): only those brfed can
//! prove are the backup's (they exist, EC2 started them after the backup began, and no other
//! backup or stack claims them) get the stack, backup and data-plane tags that every later
//! deletion checks (`docs/safety.md`).

use crate::tags::tag;

use crate::backup::member::snapshot_ids;
use crate::backup::status::VolumeBackupDoc;
use crate::error::StepError;
use crate::ports::ObjectStore;
use crate::ports::SnapshotInfo;
use crate::ports::Volumes;
use crate::tags::CLOCK_SKEW_SECONDS;
use crate::tags::TAG_CLUSTER;
use crate::tags::TAG_STACK;
use crate::tags::TAG_VOLUME_BACKUP;
use crate::tags::backup_tag;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a snapshot a member's `backupmeta` lists was not tagged as the backup's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotTagged {
    /// The snapshot.
    pub snapshot: String,
    /// Why.
    pub why: String,
}

/// What [`tag_backup_snapshots`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagReport {
    /// Snapshots tagged as the backup's (again, for those tagged before).
    pub tagged: usize,
    /// Snapshots listed but not proven the backup's: not tagged, named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_tagged: Vec<NotTagged>,
}

/// Why `info` cannot be the snapshot of backup `owner` of stack `stack` begun at `began`:
/// `None` when it can.
fn disproof(
    info: &SnapshotInfo,
    stack: &str,
    owner: &str,
    began: Option<DateTime<Utc>>,
) -> Option<String> {
    if let Some(s) = tag(info, TAG_STACK).filter(|s| *s != stack) {
        return Some(format!("it belongs to stack {s}"));
    }
    if let Some(b) = tag(info, TAG_VOLUME_BACKUP).filter(|b| *b != owner) {
        return Some(format!("it belongs to backup {b}"));
    }
    let Some(began) = began else {
        return Some("the backup's creationTimestamp is unknown".into());
    };
    if info.start_time < began - chrono::Duration::seconds(CLOCK_SKEW_SECONDS) {
        return Some(format!(
            "EC2 started it at {}, before the backup began ({})",
            crate::time::rfc3339(info.start_time),
            crate::time::rfc3339(began)
        ));
    }
    None
}

/// Tags the snapshots the members of `doc` made (from each member's `backupmeta`) with stack
/// `stack`, the backup and the member's data plane: only those that exist, that EC2 started after
/// the backup began (less [`CLOCK_SKEW_SECONDS`]) and that no other backup or stack claims; the
/// others are named in the report. A member without `backupmeta` has nothing to tag.
pub async fn tag_backup_snapshots<S: ObjectStore, V: Volumes>(
    store: &S,
    volumes: &V,
    stack: &str,
    doc: &VolumeBackupDoc,
) -> Result<TagReport, StepError> {
    let req = doc.request();
    let owner = backup_tag(&req.metadata.namespace, &req.metadata.name);
    let began = doc
        .metadata
        .creation_timestamp
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let mut report = TagReport::default();
    let mut seen = BTreeSet::new();
    for c in &req.spec.clusters {
        let key = format!("{}/backupmeta", req.member_prefix(&c.k8s_cluster_name));
        let Some(meta) = store.get_json(req.bucket(), &key).await? else {
            continue;
        };
        let ids: Vec<String> = snapshot_ids(&meta.value)
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(200) {
            for info in volumes.describe_snapshots(chunk).await? {
                found.insert(info.id.clone(), info);
            }
        }
        let mut ours = Vec::new();
        for id in ids {
            let why = match found.get(&id) {
                None => Some("it does not exist (or this account does not own it)".into()),
                Some(info) => disproof(info, stack, &owner, began),
            };
            match why {
                None => ours.push(id),
                Some(why) => {
                    tracing::warn!(snapshot = %id, backup = %owner, cluster = %c.k8s_cluster_name, why = %why, "backupmeta lists a snapshot that is not the backup's: not tagged");
                    report.not_tagged.push(NotTagged { snapshot: id, why });
                }
            }
        }
        volumes
            .tag_snapshots(
                &ours,
                &[
                    (TAG_STACK.to_string(), stack.to_string()),
                    (TAG_VOLUME_BACKUP.to_string(), owner.clone()),
                    (TAG_CLUSTER.to_string(), c.k8s_cluster_name.clone()),
                ],
            )
            .await?;
        report.tagged += ours.len();
    }
    Ok(report)
}
