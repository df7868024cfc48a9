//! `VolumeRestore.status` with its step timings, and the catalog record of a restore: what it
//! claimed and what it left behind.

use crate::catalog::CatalogDoc;
use crate::conditions::Progress;
use crate::error::StepError;
use crate::member::MemberRef;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::restore::member::RestoreView;
use crate::restore::member::rcond;
use crate::restore::spec::FromBackup;
use crate::restore::spec::RestoreOptions;
use crate::restore::spec::RestoreRequest;
use crate::restore::spec::VolumeRestoreSpec;
use crate::time::rfc3339;
use crate::time::time_taken;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `status.restores[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreMemberStatus {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// TidbCluster.
    pub tc_name: String,
    /// Namespace.
    pub tc_namespace: String,
    /// Member `Restore` name.
    pub restore_name: String,
    /// Member phase.
    pub phase: String,
    /// Member commitTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_ts: Option<String>,
    /// From a failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From a failure condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `status.steps[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStep {
    /// `RestoreVolume`, `StartTiKV`, `WarmUp`, `RestoreData`, `RestartTiKV`.
    pub step_name: String,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_started: Option<String>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_completed: Option<String>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_taken: Option<String>,
}

/// `VolumeRestore.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreStatus {
    /// Members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<RestoreMemberStatus>,
    /// Step timings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RestoreStep>,
    /// Times, the restored point in time (commitTs of the restore-data member), phase and
    /// conditions.
    #[serde(flatten)]
    pub progress: Progress,
}

impl VolumeRestoreStatus {
    /// Starts step `name` (once).
    pub fn start_step(&mut self, name: &str, now: DateTime<Utc>) {
        if !self.steps.iter().any(|s| s.step_name == name) {
            self.steps.push(RestoreStep {
                step_name: name.into(),
                time_started: Some(rfc3339(now)),
                ..Default::default()
            });
        }
    }

    /// Finishes step `name` (once).
    pub fn finish_step(&mut self, name: &str, now: DateTime<Utc>) {
        if let Some(s) = self
            .steps
            .iter_mut()
            .find(|s| s.step_name == name && s.time_completed.is_none())
        {
            s.time_completed = Some(rfc3339(now));
            s.time_taken = time_taken(s.time_started.as_deref(), now);
        }
    }

    /// Upserts `restores[]` and derives the federation conditions and step timings from what
    /// the members show (reference §4.4 steps 6–11). `strategy`/`warmup` from the template.
    pub fn refresh(
        &mut self,
        members: &[MemberRef],
        obs: &[Observation],
        warmup: &str,
        data_member: Option<usize>,
        now: DateTime<Utc>,
    ) {
        let views = RestoreView::views(obs);
        for (m, v) in members.iter().zip(&views) {
            let Some(v) = v else { continue };
            let failed = v.conditions.iter().find(|c| {
                (c.type_ == rcond::FAILED || c.type_ == rcond::INVALID) && c.status == "True"
            });
            let entry = RestoreMemberStatus {
                k8s_cluster_name: m.k8s_cluster_name.clone(),
                tc_name: m.tc_name.clone(),
                tc_namespace: m.tc_namespace.clone(),
                restore_name: m.backup_name.clone(),
                phase: v.phase.clone().unwrap_or_default(),
                commit_ts: v.commit_ts.clone(),
                reason: failed.and_then(|c| c.reason.clone()),
                message: failed.and_then(|c| c.message.clone()),
            };
            match self
                .restores
                .iter_mut()
                .find(|r| r.k8s_cluster_name == m.k8s_cluster_name)
            {
                Some(r) => *r = entry,
                None => self.restores.push(entry),
            }
        }
        let all = |t: &str| {
            !views.is_empty() && views.iter().all(|v| v.as_ref().is_some_and(|v| v.has(t)))
        };
        if all(rcond::VOLUME_COMPLETE) && !self.progress.has(rcond::VOLUME_COMPLETE) {
            self.progress
                .set_condition(rcond::VOLUME_COMPLETE, None, None, now);
            self.finish_step("RestoreVolume", now);
            match warmup {
                "sync" => self.start_step("WarmUp", now),
                "async" => {
                    self.start_step("StartTiKV", now);
                    self.start_step("WarmUp", now);
                }
                _ => self.start_step("StartTiKV", now),
            }
        }
        if all(rcond::WARMUP_STARTED) && !self.progress.has(rcond::WARMUP_STARTED) {
            self.progress
                .set_condition(rcond::WARMUP_STARTED, None, None, now);
        }
        if all(rcond::WARMUP_COMPLETE) && !self.progress.has(rcond::WARMUP_COMPLETE) {
            self.progress
                .set_condition(rcond::WARMUP_COMPLETE, None, None, now);
            self.finish_step("WarmUp", now);
            if warmup == "sync" {
                self.start_step("StartTiKV", now);
            }
        }
        if all(rcond::TIKV_COMPLETE) && !self.progress.has(rcond::TIKV_COMPLETE) {
            self.progress
                .set_condition(rcond::TIKV_COMPLETE, None, None, now);
            self.finish_step("StartTiKV", now);
        }
        if let Some(v) = data_member
            .and_then(|i| views.get(i))
            .and_then(Option::as_ref)
            && v.has(rcond::DATA_COMPLETE)
            && !self.progress.has(rcond::DATA_COMPLETE)
        {
            self.progress.commit_ts = v.commit_ts.clone();
            self.progress
                .set_condition(rcond::DATA_COMPLETE, None, None, now);
            self.finish_step("RestoreData", now);
        }
        if all(rcond::COMPLETE) {
            self.finish_step("RestartTiKV", now);
        }
    }
}

/// brfed's record of a restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRecord {
    /// Execution.
    pub execution: String,
    /// Options.
    #[serde(default)]
    pub options: RestoreOptions,
    /// Members in spec order.
    #[serde(default)]
    pub members: Vec<MemberRef>,
    /// The backup restored, when named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_backup: Option<FromBackup>,
    /// Index of the member that ran restore-data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_member: Option<usize>,
    /// On failure: what was left in each data plane, and how to clean it up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Leftover>,
    /// Per data plane, what brfed proved and tagged of its member's volumes once the member
    /// reached `VolumeComplete` (`restore_volumes::claim`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_claims: Vec<VolumeClaim>,
    /// A deletion that could not finish (`brfed restore delete`): what it left, so that it can be
    /// run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<RestoreDeletion>,
}

/// What a deletion of the restore that could not finish left (`brfed.deletion`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDeletion {
    /// When it was last tried.
    pub tried_at: String,
    /// Its error name.
    pub error: String,
    /// The member `Restore`s of this restore that are still there, or may be, each with why.
    pub remaining_members: Vec<String>,
}

/// What a failed restore left in one data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// Member `Restore` (`ns/name`) and its phase, if it still exists.
    pub member: Option<String>,
    /// A `Restore` of the member's name that is not this restore's (another execution, or not
    /// brfed's): named, never deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign_member: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
    /// EBS volumes this restore's member made, still existing unless cleaned up: those brfed
    /// proved and tagged at `VolumeComplete` (`brfed.dev/stack`, `brfed.dev/volumerestore`,
    /// `brfed.dev/k8s-cluster`) that still pass every proof: made from the member's backup
    /// snapshots, in its AZ, after the restore began (`restore_volumes`).
    pub volumes: Vec<String>,
    /// Volumes that may be the member's (made from its backup snapshots, in its AZ, since the
    /// restore began) but lack a proof: listed, never deleted by the cleanup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed_volumes: Vec<String>,
    /// What the report could not know (a member still creating volumes, EC2 not answering).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The TidbCluster is still in recovery mode.
    pub tidb_cluster_in_recovery_mode: bool,
    /// Shell commands that clean up what is left.
    pub cleanup_commands: Vec<String>,
    /// What the opt-in cleanup did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleaned: Vec<String>,
}

/// A `VolumeRestore` as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRestoreDoc {
    /// API version.
    pub api_version: String,
    /// `VolumeRestore`.
    pub kind: String,
    /// Metadata.
    pub metadata: crate::catalog::DocMeta,
    /// Spec (with each member's backup location).
    pub spec: VolumeRestoreSpec,
    /// Status.
    #[serde(default)]
    pub status: VolumeRestoreStatus,
    /// brfed's record.
    #[serde(default)]
    pub brfed: RestoreRecord,
}

impl VolumeRestoreDoc {
    /// The request as recorded: metadata, spec with each member's backup location, options
    /// (`fromBackup` was resolved into the spec at start).
    pub fn request(&self) -> RestoreRequest {
        RestoreRequest {
            metadata: self.metadata.meta.clone(),
            spec: self.spec.clone(),
            from_backup: None,
            options: self.brfed.options.clone(),
        }
    }
}

/// Catalog key of restore `namespace/name`.
pub fn restore_key(namespace: &str, name: &str) -> String {
    format!(
        "{}/volumerestores/{namespace}/{name}.json",
        crate::catalog::CATALOG_PREFIX
    )
}

/// Catalog key of the generation record of restore name `namespace/name`.
pub fn generation_key(namespace: &str, name: &str) -> String {
    format!(
        "{}/volumerestore-generations/{namespace}/{name}.json",
        crate::catalog::CATALOG_PREFIX
    )
}

/// What the deletions of the restores of one `namespace/name` leave for the next restore of that
/// name (`brfed/catalog/volumerestore-generations/{ns}/{name}.json`): the generation in its
/// execution name ([`crate::names::restore_execution_name`]), since Step Functions keeps a closed
/// execution's name for 90 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreGeneration {
    /// The generation of the next restore of this name (the first is 1, no suffix).
    pub next: u32,
    /// The execution of the restore of this name deleted last.
    pub deleted_execution: String,
    /// When it was deleted.
    pub deleted_at: String,
}

impl RestoreGeneration {
    /// The generation record of `namespace/name` and its ETag, `None` when no restore of that
    /// name was ever deleted.
    pub async fn read<S: ObjectStore>(
        store: &S,
        bucket: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<(Self, String)>, StepError> {
        let key = generation_key(namespace, name);
        let Some(v) = store.get_json(bucket, &key).await? else {
            return Ok(None);
        };
        Ok(Some((Self::parse(bucket, &key, v.value)?, v.etag)))
    }

    /// The generation record stored at `key` in `bucket`, from its `value`.
    pub(crate) fn parse(
        bucket: &str,
        key: &str,
        value: serde_json::Value,
    ) -> Result<Self, StepError> {
        serde_json::from_value(value).map_err(|e| {
            StepError::CatalogUnavailable(format!("s3://{bucket}/{key} is unreadable: {e}"))
        })
    }

    /// The execution name the next restore of `namespace/name` gets.
    pub async fn next_execution_name<S: ObjectStore>(
        store: &S,
        bucket: &str,
        namespace: &str,
        name: &str,
    ) -> Result<String, StepError> {
        let next = Self::read(store, bucket, namespace, name)
            .await?
            .map_or(1, |(g, _)| g.next);
        Ok(crate::names::restore_execution_name(namespace, name, next))
    }
}

crate::catalog::federated_doc!(VolumeRestoreDoc);

impl CatalogDoc for VolumeRestoreDoc {
    fn key_of(namespace: &str, name: &str) -> String {
        restore_key(namespace, name)
    }
    fn id(&self) -> (&str, &str) {
        (&self.metadata.meta.namespace, &self.metadata.meta.name)
    }
    fn execution(&self) -> &str {
        &self.brfed.execution
    }
}

/// What brfed claimed of one member's volumes at `VolumeComplete` (`brfed.volumeClaims`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeClaim {
    /// Data plane.
    pub k8s_cluster_name: String,
    /// How many volumes were proved the restore's and tagged.
    pub claimed: usize,
    /// Why none were, when a proof failed (the volumes are then reported unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use serde_json::json;

    fn restore(options: Value) -> Value {
        let clusters: Vec<Value> = ["dp1", "dp2"]
            .iter()
            .map(|p| json!({"k8sClusterName": p, "tcName": "basic", "tcNamespace": "tidb", "azName": "us-west-2a",
                            "backup": {"s3": {"provider": "aws", "bucket": "b", "prefix": format!("p-{p}")}}}))
            .collect();
        json!({"apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
               "metadata": {"name": "r1", "namespace": "br"},
               "spec": {"clusters": clusters, "template": {}},
               "options": options})
    }

    fn problem(options: Value) -> Option<String> {
        RestoreRequest::from_value(restore(options))
            .and_then(|r| r.validate())
            .err()
            .map(|e| {
                assert_eq!(e.name(), "InvalidSpec", "{e}");
                e.to_string()
            })
    }

    #[test]
    fn the_poll_interval_is_bounded_as_a_backups() {
        assert_eq!(problem(json!({})), None, "the defaults");
        assert_eq!(problem(json!({"pollSeconds": 18})), None, "12 h needs 18 s");
        for (options, needle) in [
            (json!({"pollSeconds": 0}), "between 1 and 3600"),
            (json!({"pollSeconds": 3601}), "between 1 and 3600"),
            (json!({"pollSeconds": 17}), "give at least 18"),
            (
                json!({"pollSeconds": 1, "deadlineSeconds": 82_800}),
                "give at least 34",
            ),
        ] {
            let p = problem(options.clone()).unwrap_or_else(|| panic!("{options} accepted"));
            assert!(p.contains(needle), "{options}: {p}");
        }
    }
}
