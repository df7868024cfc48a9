//! Which EBS volumes are a restore's own (`docs/safety.md`, `docs/restore.md` "Leftovers").
//!
//! Every restore of one backup writes its `restoremeta` into the backup's prefix, and the volumes
//! the data plane makes carry no tag naming the restore or its Kubernetes cluster (BR tags them
//! `TiDBCluster-BR`, `snapshot/createdFromSnapshotId` and the snapshot's tags under `snapshot/`;
//! after `VolumeComplete` the operator adds `CSIVolumeName`, the PV name and the PVC's name
//! `{vol}-{tc}-tikv-N` and namespace, which name the target TidbCluster). So brfed proves
//! ownership itself, from what EC2 says of each volume, and records the proof in tags:
//!
//! * **At `VolumeComplete`** of a member `Restore` that carries this execution, brfed *claims*
//!   the member's volumes ([`claim`]): those of the member's `restoremeta`, when EC2 shows exactly
//!   them and nothing else made from the member's backup snapshots, in the member's AZ, since the
//!   restore began (less [`CREATE_SKEW_SECONDS`]), not tagged for anything else, one per backup
//!   volume. Then no other restore can have made any of them, and brfed tags them
//!   [`TAG_STACK`], [`TAG_VOLUME_RESTORE`], [`TAG_CLUSTER`]. Anything else (another restore
//!   of the same backup in the same AZ at the same time, a `restoremeta` already rewritten) and
//!   nothing is claimed.
//! * **In the leftovers report and the cleanup**, a volume is the restore's only when it carries
//!   those three tags *and* passes every proof again ([`Scope::judge`]); the cleanup reads it once
//!   more right before deleting it. A volume that could be the restore's but lacks a proof is
//!   listed as unconfirmed and never deleted.

use crate::restore::status::VolumeClaim;
use crate::tags::{TAG_CLUSTER, TAG_STACK};

use crate::error::StepError;
use crate::ports::ObjectStore;
use crate::ports::VolumeFacts;
use crate::ports::Volumes;
use crate::restore::spec::RestoreCluster;
use crate::restore::status::VolumeRestoreDoc;
use crate::tags::TAG_PVC_NAME;
use crate::tags::TAG_PVC_NAMESPACE;
use crate::tags::TAG_VOLUME_RESTORE;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// How much earlier than the restore's start (the catalog document's `creationTimestamp`, a
/// Lambda clock) a volume's `CreateTime` (EC2's clock) may be and still count as made after it.
pub const CREATE_SKEW_SECONDS: i64 = 10;

/// What a volume is to a restore member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Tagged for this restore and member, and every proof holds: the cleanup may delete it.
    Ours,
    /// Could be this member's, but a proof is missing: reported, never deleted.
    Unconfirmed(String),
    /// Someone else's (another restore, stack or TidbCluster; made before this restore, or in
    /// another AZ): not reported.
    NotOurs(String),
}

/// What one member of a restore judges volumes by.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The catalog bucket.
    pub stack: String,
    /// `{namespace}/{name}` of the restore.
    pub restore: String,
    /// The member's data plane.
    pub k8s_cluster: String,
    /// Its target TidbCluster.
    pub tc_name: String,
    /// Its namespace.
    pub tc_namespace: String,
    /// The AZ the member restores into (`azName`); empty when the restore gives none, and each
    /// volume is then made in the AZ of the backup volume of its snapshot (BR without
    /// `--target-az`), which [`Scope::snapshot_azs`] holds.
    pub az: String,
    /// The AZ of the backup volume of each snapshot (`backupmeta`'s `volume_az`).
    pub snapshot_azs: BTreeMap<String, String>,
    /// When the restore began (the catalog document's `creationTimestamp`), if readable.
    pub started: Option<DateTime<Utc>>,
    /// The snapshots of the member's backup (`backupmeta`), one per backup volume.
    pub snapshots: Vec<String>,
}

impl Scope {
    /// The scope of member `cluster` of restore `doc` in stack `stack`, with the snapshots of its
    /// backup (its `backupmeta`).
    pub fn new(
        stack: &str,
        doc: &VolumeRestoreDoc,
        cluster: &RestoreCluster,
        backupmeta: &Value,
    ) -> Self {
        let snapshots = crate::backup::member::snapshot_ids(backupmeta);
        Self {
            snapshot_azs: snapshot_azs(backupmeta),
            stack: stack.to_string(),
            restore: format!("{}/{}", doc.metadata.meta.namespace, doc.metadata.meta.name),
            k8s_cluster: cluster.k8s_cluster_name.clone(),
            tc_name: cluster.tc_name.clone(),
            tc_namespace: cluster.tc_namespace.clone(),
            az: cluster.az_name.clone(),
            started: doc
                .metadata
                .creation_timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            snapshots,
        }
    }

    /// The tags brfed puts on the member's volumes.
    pub fn tags(&self) -> Vec<(String, String)> {
        vec![
            (TAG_STACK.to_string(), self.stack.clone()),
            (TAG_VOLUME_RESTORE.to_string(), self.restore.clone()),
            (TAG_CLUSTER.to_string(), self.k8s_cluster.clone()),
        ]
    }

    /// `Ok(true)`: it carries all of brfed's tags, with this member's values; `Ok(false)`: none
    /// of them; `Err`: a tag says it is someone else's.
    fn tagged(&self, v: &VolumeFacts) -> Result<bool, String> {
        let ours = self.tags();
        let mut have = 0;
        for (k, want) in &ours {
            match v.tags.get(k) {
                Some(got) if got == want => have += 1,
                Some(got) => return Err(format!("{k}={got}")),
                None => {}
            }
        }
        if let Some(ns) = v
            .tags
            .get(TAG_PVC_NAMESPACE)
            .filter(|ns| **ns != self.tc_namespace)
        {
            return Err(format!("{TAG_PVC_NAMESPACE}={ns}"));
        }
        if let Some(name) = v.tags.get(TAG_PVC_NAME) {
            let pod = format!("{}-tikv-", self.tc_name);
            let names_tc = name.starts_with(&pod) || name.contains(&format!("-{pod}"));
            if !names_tc {
                return Err(format!("{TAG_PVC_NAME}={name}"));
            }
        }
        match have {
            0 => Ok(false),
            n if n == ours.len() => Ok(true),
            _ => Err("only some of brfed's tags".into()),
        }
    }

    /// The proofs that need no tag: made from the member's backup snapshots, in its AZ, after the
    /// restore began, and not on its way out.
    fn plausible(&self, v: &VolumeFacts) -> Result<(), String> {
        if !v
            .snapshot_id
            .as_ref()
            .is_some_and(|s| self.snapshots.contains(s))
        {
            return Err(format!(
                "not made from {}'s backup snapshots",
                self.k8s_cluster
            ));
        }
        let az = match self.az.as_str() {
            "" => v
                .snapshot_id
                .as_ref()
                .and_then(|s| self.snapshot_azs.get(s))
                .map_or("", String::as_str),
            az => az,
        };
        if v.availability_zone != az {
            return Err(format!(
                "in {}, the member restores into {}",
                v.availability_zone,
                if az.is_empty() { "an unknown AZ" } else { az }
            ));
        }
        let Some(started) = self.started else {
            return Err("the restore's start time is unknown".into());
        };
        match v.create_time {
            Some(t) if t >= started - Duration::seconds(CREATE_SKEW_SECONDS) => {}
            Some(t) => {
                return Err(format!(
                    "made at {}, before this restore began ({})",
                    crate::time::rfc3339(t),
                    crate::time::rfc3339(started)
                ));
            }
            None => return Err("EC2 gave no creation time".into()),
        }
        if matches!(v.state.as_str(), "deleting" | "deleted") {
            return Err(format!("state {}", v.state));
        }
        Ok(())
    }

    /// What `v` is to this member.
    pub fn judge(&self, v: &VolumeFacts) -> Judged {
        match (self.tagged(v), self.plausible(v)) {
            (Err(tag), _) => Judged::NotOurs(format!("tagged {tag}")),
            (Ok(true), Ok(())) => Judged::Ours,
            (Ok(true), Err(why)) => {
                Judged::Unconfirmed(format!("tagged for this restore, but {why}"))
            }
            (Ok(false), Ok(())) => Judged::Unconfirmed(
                "not proved this restore's when its member reached VolumeComplete".into(),
            ),
            (Ok(false), Err(why)) => Judged::NotOurs(why),
        }
    }
}

/// The AZ of each snapshot's backup volume in a `backupmeta`
/// (`tikv.stores[].volumes[].{snapshot_id, volume_az}`), where it says.
pub fn snapshot_azs(meta: &Value) -> BTreeMap<String, String> {
    meta["tikv"]["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["volumes"].as_array().into_iter().flatten())
        .filter_map(|v| Some((v["snapshot_id"].as_str()?, v["volume_az"].as_str()?)))
        .filter(|(s, az)| !s.is_empty() && !az.is_empty())
        .map(|(s, az)| (s.to_string(), az.to_string()))
        .collect()
}

/// The volume ids of a `restoremeta` (`tikv.stores[].volumes[].restore_volume_id`).
pub fn restoremeta_volumes(meta: &Value) -> Vec<String> {
    meta["tikv"]["stores"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["volumes"].as_array().into_iter().flatten())
        .filter_map(|v| v["restore_volume_id"].as_str())
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect()
}

/// Reads member `i`'s `backupmeta` and `restoremeta` (each `None` when missing or unreadable).
pub async fn member_metas<S: ObjectStore>(
    store: &S,
    doc: &VolumeRestoreDoc,
    i: usize,
) -> (Option<Value>, Option<Value>) {
    let Some((bucket, prefix)) = doc.request().backup_location(i) else {
        return (None, None);
    };
    let read = |key: &'static str| {
        let (bucket, prefix) = (bucket.clone(), prefix.clone());
        async move {
            store
                .get_json(&bucket, &format!("{prefix}/{key}"))
                .await
                .ok()
                .flatten()
                .map(|m| m.value)
        }
    };
    (read("backupmeta").await, read("restoremeta").await)
}

/// Claims member `i`'s volumes at `VolumeComplete` (see the module docs): proves them this
/// restore's and tags them. A failed proof is a claim with `refused` (nothing tagged); an EC2
/// or S3 error is returned (the next observation, or the leftovers report, tries again).
pub async fn claim<S: ObjectStore, V: Volumes>(
    store: &S,
    volumes: &V,
    stack: &str,
    doc: &VolumeRestoreDoc,
    i: usize,
) -> Result<VolumeClaim, StepError> {
    let cluster = doc
        .spec
        .clusters
        .get(i)
        .ok_or_else(|| StepError::Internal(format!("no member {i}")))?;
    let refused = |why: String| VolumeClaim {
        k8s_cluster_name: cluster.k8s_cluster_name.clone(),
        claimed: 0,
        refused: Some(why),
    };
    let (backupmeta, restoremeta) = member_metas(store, doc, i).await;
    let Some(backupmeta) = backupmeta else {
        return Ok(refused("the backup's backupmeta is unreadable".into()));
    };
    let Some(restoremeta) = restoremeta else {
        return Ok(refused("the backup's restoremeta is unreadable".into()));
    };
    let scope = Scope::new(stack, doc, cluster, &backupmeta);
    let listed: BTreeSet<String> = restoremeta_volumes(&restoremeta).into_iter().collect();
    let found = volumes.volumes_from_snapshots(&scope.snapshots).await?;
    let mut candidates = BTreeSet::new();
    let mut why_not: BTreeMap<String, String> = BTreeMap::new();
    for v in &found {
        match (scope.tagged(v), scope.plausible(v)) {
            (Ok(_), Ok(())) => {
                candidates.insert(v.id.clone());
            }
            (Err(tag), _) => {
                why_not.insert(v.id.clone(), format!("tagged {tag}"));
            }
            (Ok(_), Err(why)) => {
                why_not.insert(v.id.clone(), why);
            }
        }
    }
    if listed.len() != scope.snapshots.len() {
        return Ok(refused(format!(
            "restoremeta lists {} volumes, the backup has {}: it is not this member's",
            listed.len(),
            scope.snapshots.len()
        )));
    }
    if candidates != listed {
        let extra: Vec<&String> = candidates.difference(&listed).collect();
        let missing: Vec<String> = listed
            .difference(&candidates)
            .map(|id| match why_not.get(id) {
                Some(why) => format!("{id} ({why})"),
                None => format!("{id} (not found)"),
            })
            .collect();
        return Ok(refused(format!(
            "EC2 and restoremeta disagree on the volumes made from {}'s snapshots in {} since the restore began (another restore of this backup at the same time?): not in restoremeta {extra:?}, not provable {missing:?}",
            scope.k8s_cluster, scope.az
        )));
    }
    let ids: Vec<String> = listed.into_iter().collect();
    volumes.tag_volumes(&ids, &scope.tags()).await?;
    Ok(VolumeClaim {
        k8s_cluster_name: cluster.k8s_cluster_name.clone(),
        claimed: ids.len(),
        refused: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            stack: "cat".into(),
            restore: "br/r1".into(),
            k8s_cluster: "dp1".into(),
            tc_name: "basic".into(),
            tc_namespace: "tidb".into(),
            az: "az-a".into(),
            snapshot_azs: BTreeMap::new(),
            started: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            snapshots: vec!["snap-1".into(), "snap-2".into()],
        }
    }

    /// Without `azName`, BR makes each volume in the AZ of its snapshot's backup volume
    /// (`backupmeta`'s `volume_az`): that AZ is the proof, and another is not.
    #[test]
    fn without_an_az_name_each_volume_is_judged_by_its_backup_volumes_az() {
        let meta = serde_json::json!({"tikv": {"stores": [{"volumes": [
            {"snapshot_id": "snap-1", "volume_az": "az-b"},
            {"snapshot_id": "snap-2", "volume_az": "az-c"}]}]}});
        let mut s = scope();
        s.az = String::new();
        s.snapshot_azs = snapshot_azs(&meta);
        let at = "2026-01-01T00:01:00Z";
        let mut v = vol("v", at, &[]);
        v.availability_zone = "az-b".into();
        assert!(s.plausible(&v).is_ok(), "{:?}", s.plausible(&v));
        v.availability_zone = "az-a".into();
        assert!(s.plausible(&v).unwrap_err().contains("restores into az-b"));
        // A snapshot whose AZ backupmeta does not give proves nothing.
        v.snapshot_id = Some("snap-3".into());
        s.snapshots.push("snap-3".into());
        assert!(s.plausible(&v).unwrap_err().contains("an unknown AZ"));
    }

    fn vol(id: &str, at: &str, tags: &[(&str, &str)]) -> VolumeFacts {
        VolumeFacts {
            id: id.into(),
            snapshot_id: Some("snap-1".into()),
            availability_zone: "az-a".into(),
            create_time: Some(at.parse().unwrap()),
            state: "available".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    const OURS: &[(&str, &str)] = &[
        (TAG_STACK, "cat"),
        (TAG_VOLUME_RESTORE, "br/r1"),
        (TAG_CLUSTER, "dp1"),
    ];

    #[test]
    fn a_volume_is_the_members_only_with_its_tags_and_every_proof() {
        let s = scope();
        let at = "2026-01-01T00:01:00Z";
        assert_eq!(s.judge(&vol("v", at, OURS)), Judged::Ours);
        // made a little before the start (clock skew) still counts; long before does not
        assert_eq!(
            s.judge(&vol("v", "2025-12-31T23:59:55Z", OURS)),
            Judged::Ours
        );
        assert!(matches!(
            s.judge(&vol("v", "2025-12-31T23:00:00Z", OURS)),
            Judged::Unconfirmed(_)
        ));
        let mut other_az = vol("v", at, OURS);
        other_az.availability_zone = "az-b".into();
        assert!(matches!(s.judge(&other_az), Judged::Unconfirmed(_)));
        let mut other_snap = vol("v", at, OURS);
        other_snap.snapshot_id = Some("snap-9".into());
        assert!(matches!(s.judge(&other_snap), Judged::Unconfirmed(_)));
        let mut going = vol("v", at, OURS);
        going.state = "deleting".into();
        assert!(matches!(s.judge(&going), Judged::Unconfirmed(_)));
    }

    #[test]
    fn another_restore_stack_or_cluster_makes_it_not_ours() {
        let s = scope();
        let at = "2026-01-01T00:01:00Z";
        for (k, v) in [
            (TAG_STACK, "other-bucket"),
            (TAG_VOLUME_RESTORE, "br/r0"),
            (TAG_CLUSTER, "dp2"),
            (TAG_PVC_NAMESPACE, "tidb-2"),
            (TAG_PVC_NAME, "other-tikv-0"),
        ] {
            let mut tags: BTreeMap<&str, &str> = OURS.iter().copied().collect();
            tags.insert(k, v);
            let tags: Vec<(&str, &str)> = tags.into_iter().collect();
            assert!(
                matches!(s.judge(&vol("v", at, &tags)), Judged::NotOurs(_)),
                "{k}={v}"
            );
        }
        // the PVC name as the operator tags it ({vol}-{tc}-tikv-N) and a bare pod-style name both
        // name the TidbCluster
        for name in ["basic-tikv-0", "tikv-basic-tikv-1"] {
            let mut tags = OURS.to_vec();
            tags.push((TAG_PVC_NAME, name));
            assert_eq!(s.judge(&vol("v", at, &tags)), Judged::Ours, "{name}");
        }
        // only some of brfed's tags: not a claim brfed made
        assert!(matches!(
            s.judge(&vol("v", at, &OURS[..1])),
            Judged::NotOurs(_)
        ));
    }

    #[test]
    fn an_untagged_volume_is_unconfirmed_when_plausible_and_else_not_listed() {
        let s = scope();
        assert!(matches!(
            s.judge(&vol(
                "v",
                "2026-01-01T00:01:00Z",
                &[("TiDBCluster-BR", "new")]
            )),
            Judged::Unconfirmed(_)
        ));
        assert!(matches!(
            s.judge(&vol("v", "2025-06-01T00:00:00Z", &[])),
            Judged::NotOurs(_)
        ));
        let mut unknown_start = s.clone();
        unknown_start.started = None;
        assert!(matches!(
            unknown_start.judge(&vol("v", "2026-01-01T00:01:00Z", OURS)),
            Judged::Unconfirmed(_)
        ));
    }
}
