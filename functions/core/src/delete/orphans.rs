//! Whose an EBS snapshot is, and orphans.
//!
//! `backup-finalize` tags the snapshots a backup's members made with the stack (the catalog
//! bucket), the backup (`{namespace}/{name}`) and the data plane; only snapshots it can prove are
//! the backup's: they exist, EC2 started them after the backup began, and no other backup or stack
//! claims them. Every snapshot brfed deletes itself is read again right before the delete and
//! deleted only when those tags say it is this stack's and this backup's ([`owned_by`]).
//!
//! A tagged snapshot of this stack whose backup is no longer in the catalog is an orphan (a
//! `Retain` deletion, a catalog record removed by hand, a deletion that could not finish).
//! Orphans are reported; they are deleted only when asked, paced like every brfed snapshot
//! deletion. Snapshots a `Retain` deletion kept on purpose carry [`TAG_RETAINED`] and are left
//! out unless asked for; snapshots tagged before stacks were (no [`TAG_STACK`]) are listed apart
//! and never deleted; other stacks' snapshots are not looked at.

use crate::tags::tag;

use crate::backup::status::VolumeBackupDoc;
use crate::catalog::Catalog;
use crate::delete::pacing::Pacing;
use crate::delete::pacing::SnapshotProgress;
use crate::delete::pacing::delete_paced;
use crate::error::StepError;
use crate::ports::ObjectStore;
use crate::ports::SnapshotInfo;
use crate::ports::Volumes;
use crate::tags::TAG_RETAINED;
use crate::tags::TAG_STACK;
use crate::tags::TAG_VOLUME_BACKUP;
use crate::tags::owned_by;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The orphans of one former backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanGroup {
    /// `{namespace}/{name}` from the tag.
    pub backup: String,
    /// Whether a deletion kept these on purpose ([`TAG_RETAINED`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retained: bool,
    /// Its snapshots that still exist.
    pub snapshots: Vec<String>,
}

/// What [`find`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphans {
    /// This stack's snapshots whose backup is not in its catalog, by backup (with the retained
    /// ones only when asked): what `--delete` deletes.
    pub orphans: Vec<OrphanGroup>,
    /// Snapshots a deletion kept on purpose, left out because they were not asked for.
    pub retained_left_out: usize,
    /// Snapshots tagged with a backup that is not in this catalog but with no stack (tagged
    /// before stacks were): they may be another stack's, so they are listed, never deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_stack: Vec<OrphanGroup>,
}

impl Orphans {
    /// Snapshots in [`Orphans::orphans`].
    pub fn snapshots(&self) -> usize {
        self.orphans.iter().map(|g| g.snapshots.len()).sum()
    }
}

/// Snapshots of stack `stack` (tag [`TAG_STACK`] = its catalog bucket) whose backup is not in
/// the catalog, grouped by backup; those a deletion retained only when `include_retained`.
/// Snapshots of other stacks are not looked at; those with a backup tag but no stack tag whose
/// backup is not in the catalog are listed apart.
pub async fn find<S: ObjectStore, V: Volumes>(
    store: &S,
    stack: &str,
    volumes: &V,
    include_retained: bool,
) -> Result<Orphans, StepError> {
    let mut groups: BTreeMap<(bool, String, bool), Vec<String>> = BTreeMap::new();
    for info in volumes.snapshots_tagged(TAG_VOLUME_BACKUP).await? {
        let Some(owner) = tag(&info, TAG_VOLUME_BACKUP) else {
            continue;
        };
        let unknown = match tag(&info, TAG_STACK) {
            Some(s) if s == stack => false,
            Some(_) => continue,
            None => true,
        };
        let retained = tag(&info, TAG_RETAINED).is_some();
        groups
            .entry((unknown, owner.to_string(), retained))
            .or_default()
            .push(info.id);
    }
    let catalog: Catalog<'_, S, VolumeBackupDoc> = Catalog::new(store, stack);
    let mut known: BTreeMap<String, bool> = BTreeMap::new();
    let mut out = Orphans::default();
    for ((unknown, owner, retained), mut snapshots) in groups {
        let in_catalog = match known.get(&owner) {
            Some(k) => *k,
            None => {
                let k = match owner.split_once('/') {
                    Some((ns, name)) => catalog.get(ns, name).await?.is_some(),
                    None => false,
                };
                known.insert(owner.clone(), k);
                k
            }
        };
        if in_catalog {
            continue;
        }
        snapshots.sort();
        let group = OrphanGroup {
            backup: owner,
            retained,
            snapshots,
        };
        if unknown {
            out.unknown_stack.push(group);
        } else if retained && !include_retained {
            out.retained_left_out += group.snapshots.len();
        } else {
            out.orphans.push(group);
        }
    }
    Ok(out)
}

/// Deletes the snapshots of `groups`, at most `per_second` calls per second, throttling backed
/// off, `NotFound` = done. Each snapshot is read right before its deletion and deleted only if
/// it is still stack `stack`'s and its group's backup's (and not retained, unless
/// `include_retained`); the others are left and named in the progress (`notOwned`).
pub async fn delete<V: Volumes>(
    volumes: &V,
    stack: &str,
    groups: &[OrphanGroup],
    per_second: f64,
    include_retained: bool,
) -> Result<SnapshotProgress, StepError> {
    let owner: BTreeMap<&str, &str> = groups
        .iter()
        .flat_map(|g| g.snapshots.iter().map(|s| (s.as_str(), g.backup.as_str())))
        .collect();
    let ids: Vec<String> = owner.keys().map(|s| s.to_string()).collect();
    let owns = |info: &SnapshotInfo| {
        owner
            .get(info.id.as_str())
            .is_some_and(|b| owned_by(info, stack, b))
            && (include_retained || tag(info, TAG_RETAINED).is_none())
    };
    let pacing = Pacing {
        budget: std::time::Duration::MAX,
        ..Pacing::default()
    };
    delete_paced(
        volumes,
        &ids,
        &owns,
        per_second,
        pacing,
        SnapshotProgress::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::snapshots::tag_backup_snapshots;
    use crate::tags::TAG_CLUSTER;
    use chrono::{DateTime, Utc};

    use crate::backup::status::backup_key;
    use crate::testing::FakeStore;
    use crate::testing::FakeVolumes;
    use serde_json::json;

    fn doc(name: &str, created: &str) -> VolumeBackupDoc {
        serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": name, "namespace": "br", "creationTimestamp": created},
            "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"}],
                     "template": {"s3": {"provider": "aws", "bucket": "data", "prefix": name}}},
            "status": {"phase": "Complete"}, "brfed": {"execution": name}}))
        .unwrap()
    }

    fn meta(store: &FakeStore, name: &str, snaps: &[&str]) {
        let volumes: Vec<_> = snaps.iter().map(|s| json!({"snapshot_id": s})).collect();
        store.put(
            "data",
            &format!("{name}-dp1/backupmeta"),
            json!({"tikv": {"stores": [{"volumes": volumes}]}}),
        );
    }

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    #[tokio::test(start_paused = true)]
    async fn finalize_tags_only_snapshots_the_backup_made() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        ec2.add_snapshot("made", at("2026-05-01T00:01:00Z"));
        ec2.add_snapshot(
            "skewed",
            at("2026-05-01T00:00:00Z") - chrono::Duration::seconds(30),
        );
        ec2.add_snapshot("older", at("2026-04-30T23:00:00Z"));
        ec2.add_snapshot("other-backup", at("2026-05-01T00:01:00Z"));
        ec2.set_tags("other-backup", &[(TAG_VOLUME_BACKUP, "br/other")]);
        ec2.add_snapshot("other-stack", at("2026-05-01T00:01:00Z"));
        ec2.set_tags("other-stack", &[(TAG_STACK, "catalog-b")]);
        meta(
            &store,
            "bk",
            &[
                "made",
                "skewed",
                "older",
                "other-backup",
                "other-stack",
                "missing",
            ],
        );
        let d = doc("bk", "2026-05-01T00:00:00Z");
        let report = tag_backup_snapshots(&store, &ec2, "catalog", &d)
            .await
            .unwrap();
        assert_eq!(report.tagged, 2, "{report:?}");
        let left: Vec<&str> = report
            .not_tagged
            .iter()
            .map(|n| n.snapshot.as_str())
            .collect();
        assert_eq!(left, ["older", "other-backup", "other-stack", "missing"]);
        assert!(report.not_tagged[0].why.contains("before the backup began"));
        assert!(report.not_tagged[1].why.contains("backup br/other"));
        assert!(report.not_tagged[2].why.contains("stack catalog-b"));
        let tags = ec2.tags.lock().unwrap().clone();
        for ours in ["made", "skewed"] {
            assert_eq!(tags[ours][TAG_STACK], "catalog");
            assert_eq!(tags[ours][TAG_VOLUME_BACKUP], "br/bk");
            assert_eq!(tags[ours][TAG_CLUSTER], "dp1");
        }
        assert_eq!(tags["other-backup"][TAG_VOLUME_BACKUP], "br/other");
        assert!(!tags["other-backup"].contains_key(TAG_STACK));
        assert_eq!(tags["other-stack"][TAG_STACK], "catalog-b");
        assert!(!tags.contains_key("older"));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_creation_timestamp_nothing_is_tagged() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        ec2.add_snapshot("s1", at("2026-05-01T00:01:00Z"));
        meta(&store, "bk", &["s1"]);
        let mut d = doc("bk", "2026-05-01T00:00:00Z");
        d.metadata.creation_timestamp = None;
        let report = tag_backup_snapshots(&store, &ec2, "catalog", &d)
            .await
            .unwrap();
        assert_eq!(report.tagged, 0);
        assert!(ec2.tags.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn tagged_snapshots_of_a_backup_gone_from_the_catalog_are_orphans() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        for (name, snaps) in [("kept", ["s1", "s2"]), ("gone", ["s3", "s4"])] {
            for s in snaps {
                ec2.add_snapshot(s, at("2026-05-01T00:01:00Z"));
            }
            meta(&store, name, &snaps);
            let d = doc(name, "2026-05-01T00:00:00Z");
            store.put(
                "catalog",
                &backup_key("br", name),
                serde_json::to_value(&d).unwrap(),
            );
            let r = tag_backup_snapshots(&store, &ec2, "catalog", &d)
                .await
                .unwrap();
            assert_eq!(r.tagged, 2);
        }
        ec2.add_snapshot("untagged", at("2026-05-01T00:01:00Z"));
        assert_eq!(
            find(&store, "catalog", &ec2, false).await.unwrap(),
            Orphans::default()
        );

        store.remove("catalog", &backup_key("br", "gone"));
        let found = find(&store, "catalog", &ec2, false).await.unwrap();
        assert_eq!(
            found.orphans,
            vec![OrphanGroup {
                backup: "br/gone".into(),
                retained: false,
                snapshots: vec!["s3".into(), "s4".into()]
            }]
        );
        let p = delete(&ec2, "catalog", &found.orphans, 5.0, false)
            .await
            .unwrap();
        assert_eq!((p.deleted, p.done), (2, true));
        assert!(
            find(&store, "catalog", &ec2, false)
                .await
                .unwrap()
                .orphans
                .is_empty()
        );
        assert_eq!(
            ec2.snapshots.lock().unwrap().len(),
            3,
            "s1, s2, untagged stay"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn orphans_of_one_stack_never_reach_another_stacks_snapshots() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        let t = at("2026-05-01T00:01:00Z");
        for (id, stack) in [("a1", "catalog-a"), ("b1", "catalog-b")] {
            ec2.add_snapshot(id, t);
            ec2.set_tags(id, &[(TAG_STACK, stack), (TAG_VOLUME_BACKUP, "br/same")]);
        }
        ec2.add_snapshot("a-kept", t);
        ec2.set_tags(
            "a-kept",
            &[
                (TAG_STACK, "catalog-a"),
                (TAG_VOLUME_BACKUP, "br/kept"),
                (TAG_RETAINED, "2026-05-02T00:00:00Z"),
            ],
        );
        ec2.add_snapshot("old", t);
        ec2.set_tags("old", &[(TAG_VOLUME_BACKUP, "br/same")]);

        let found = find(&store, "catalog-a", &ec2, false).await.unwrap();
        assert_eq!(found.snapshots(), 1);
        assert_eq!(found.orphans[0].snapshots, ["a1"]);
        assert_eq!(found.retained_left_out, 1);
        assert_eq!(found.unknown_stack[0].snapshots, ["old"]);
        let p = delete(&ec2, "catalog-a", &found.orphans, 5.0, false)
            .await
            .unwrap();
        assert_eq!(p.deleted, 1);
        let have = ec2.snapshots.lock().unwrap().clone();
        assert!(have.contains("b1") && have.contains("a-kept") && have.contains("old"));
        assert!(!have.contains("a1"));

        // Asked for: the retained one goes too; still nothing of stack b, nor the untagged-stack one.
        let found = find(&store, "catalog-a", &ec2, true).await.unwrap();
        assert_eq!(found.orphans.len(), 1);
        assert!(found.orphans[0].retained);
        delete(&ec2, "catalog-a", &found.orphans, 5.0, true)
            .await
            .unwrap();
        let have = ec2.snapshots.lock().unwrap().clone();
        assert_eq!(
            have,
            ["b1".to_string(), "old".to_string()].into_iter().collect()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_orphan_whose_tags_changed_since_it_was_listed_is_left() {
        let (store, ec2) = (FakeStore::default(), FakeVolumes::default());
        let t = at("2026-05-01T00:01:00Z");
        for id in ["x1", "x2"] {
            ec2.add_snapshot(id, t);
            ec2.set_tags(id, &[(TAG_STACK, "catalog"), (TAG_VOLUME_BACKUP, "br/x")]);
        }
        let found = find(&store, "catalog", &ec2, false).await.unwrap();
        // Between the listing and the deletion, x2 was claimed by another stack, and x1 marked
        // retained.
        ec2.set_tags("x2", &[(TAG_STACK, "catalog-b")]);
        ec2.set_tags("x1", &[(TAG_RETAINED, "now")]);
        let p = delete(&ec2, "catalog", &found.orphans, 5.0, false)
            .await
            .unwrap();
        assert_eq!(p.deleted, 0);
        assert_eq!(p.not_owned, ["x1", "x2"]);
        assert_eq!(ec2.snapshots.lock().unwrap().len(), 2);
    }
}
