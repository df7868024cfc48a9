//! The data-plane member objects brfed reads (`pingcap.com/v1alpha1` `Backup`, `Restore`): a
//! reference to one, its phase and conditions, and a typed view of what it reports.

use crate::conditions::Condition;
use crate::input::ObjectMeta;
use crate::names;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// API version of the data-plane objects.
pub const DATA_PLANE_API_VERSION: &str = "pingcap.com/v1alpha1";

/// `spec.federalVolumeBackupPhase` values.
pub mod phase {
    /// Pause GC and PD schedulers (init job), `clusters[0]` only.
    pub const INITIALIZE: &str = "initialize";
    /// Snapshot this data plane's volumes.
    pub const EXECUTE: &str = "execute";
    /// Finish: wait for jobs, resume GC if needed, set the final condition.
    pub const TEARDOWN: &str = "teardown";
}

/// Data-plane `Backup` condition types brfed reads.
pub mod cond {
    /// Init job paused GC and schedulers.
    pub const INITIALIZED: &str = "VolumeBackupInitialized";
    /// Init job failed or ended early.
    pub const INITIALIZE_FAILED: &str = "VolumeBackupInitializeFailed";
    /// `backupmeta` exists: snapshots were created.
    pub const SNAPSHOTS_CREATED: &str = "VolumeBackupSnapshotsCreated";
    /// Resume requested and done: init job deleted.
    pub const INITIALIZE_COMPLETE: &str = "VolumeBackupInitializeComplete";
    /// Snapshots completed.
    pub const VOLUME_COMPLETE: &str = "VolumeBackupComplete";
    /// Execute failed.
    pub const VOLUME_FAILED: &str = "VolumeBackupFailed";
    /// Final success after teardown.
    pub const COMPLETE: &str = "Complete";
    /// Final failure.
    pub const FAILED: &str = "Failed";
    /// Spec or TidbCluster validation failed.
    pub const INVALID: &str = "Invalid";
    /// Cleanup failed on deletion.
    pub const CLEAN_FAILED: &str = "CleanFailed";
}

/// Where a member lives and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    /// Data plane (kubeconfig context).
    pub k8s_cluster_name: String,
    /// TidbCluster name.
    pub tc_name: String,
    /// Namespace of the TidbCluster and of the member object.
    pub tc_namespace: String,
    /// Name of the member object.
    pub backup_name: String,
}

impl MemberRef {
    /// The member of `cluster` for federated backup `volume_backup`.
    pub fn new(cluster: &MemberCluster, volume_backup: &str) -> Self {
        Self {
            k8s_cluster_name: cluster.k8s_cluster_name.clone(),
            tc_name: cluster.tc_name.clone(),
            tc_namespace: cluster.tc_namespace.clone(),
            backup_name: names::member_backup_name(volume_backup),
        }
    }

    /// `cluster/namespace/name`, for messages.
    pub fn display(&self) -> String {
        format!(
            "{}/{}/{}",
            self.k8s_cluster_name, self.tc_namespace, self.backup_name
        )
    }
}

/// A member object of `kind` for `member`: the federated object's labels and annotations copied,
/// with `label` = `name`, managed by brfed, and the execution and federation namespace that make
/// it this execution's (`docs/safety.md`).
pub(crate) fn member_object(
    kind: &str,
    member: &MemberRef,
    meta: &ObjectMeta,
    (label, name): (&str, &str),
    execution: &str,
    spec: Value,
) -> Value {
    let mut labels = serde_json::to_value(&meta.labels).unwrap_or_else(|_| json!({}));
    labels[label] = json!(name);
    labels[names::LABEL_MANAGED_BY] = json!(names::MANAGED_BY);
    let mut annotations = serde_json::to_value(&meta.annotations).unwrap_or_else(|_| json!({}));
    annotations[names::ANNOTATION_EXECUTION] = json!(execution);
    annotations[names::ANNOTATION_FEDERATION_NAMESPACE] = json!(meta.namespace);
    json!({
        "apiVersion": DATA_PLANE_API_VERSION,
        "kind": kind,
        "metadata": {
            "name": member.backup_name,
            "namespace": member.tc_namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    })
}

/// What the steps need to know about one member `Backup`, read from the data plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `metadata.annotations[brfed.io/execution]`.
    pub execution: Option<String>,
    /// `metadata.annotations[brfed.io/federation-namespace]`.
    pub federation_namespace: Option<String>,
    /// Whether the object carries brfed's label for this backup.
    pub labelled_for: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `spec.federalVolumeBackupPhase`.
    pub federal_phase: Option<String>,
    /// `spec.resumeGcSchedule`.
    pub resume_gc_schedule: bool,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.backupPath`.
    pub backup_path: Option<String>,
    /// `status.backupSize`.
    pub backup_size: Option<i64>,
    /// `status.commitTs`.
    pub commit_ts: Option<String>,
}

impl MemberView {
    /// Reads the fields brfed needs from a `Backup` object as JSON.
    pub fn from_object(obj: &Value) -> Self {
        let s = |v: &Value| v.as_str().map(String::from);
        let meta = &obj["metadata"];
        let spec = &obj["spec"];
        let status = &obj["status"];
        Self {
            execution: meta["annotations"]
                .get(names::ANNOTATION_EXECUTION)
                .and_then(s),
            federation_namespace: meta["annotations"]
                .get(names::ANNOTATION_FEDERATION_NAMESPACE)
                .and_then(s),
            labelled_for: meta["labels"].get(names::LABEL_VOLUME_BACKUP).and_then(s),
            deleting: !meta["deletionTimestamp"].is_null(),
            federal_phase: s(&spec["federalVolumeBackupPhase"]),
            resume_gc_schedule: spec["resumeGcSchedule"].as_bool().unwrap_or(false),
            phase: s(&status["phase"]),
            conditions: serde_json::from_value(status["conditions"].clone()).unwrap_or_default(),
            backup_path: s(&status["backupPath"]),
            backup_size: status["backupSize"].as_i64(),
            commit_ts: match &status["commitTs"] {
                Value::String(c) => Some(c.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        }
    }

    /// Whether condition `t` is present with status True.
    pub fn has(&self, t: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    }

    /// The condition `t`, if present and True.
    pub fn condition(&self, t: &str) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    }

    /// `VolumeBackupInitializeFailed`, `VolumeBackupFailed`, `Failed` or `Invalid`: the member
    /// cannot succeed any more (reference §4.1 step 6).
    pub fn failed(&self) -> Option<&Condition> {
        [
            cond::INVALID,
            cond::INITIALIZE_FAILED,
            cond::VOLUME_FAILED,
            cond::FAILED,
        ]
        .iter()
        .find_map(|t| self.condition(t))
    }

    /// `Complete`, `Failed` or `Invalid`: the data plane is done with this member.
    pub fn terminal(&self) -> bool {
        self.has(cond::COMPLETE) || self.has(cond::FAILED) || self.has(cond::INVALID)
    }

    /// Whether this initialize member can only be stopped from holding GC and PD schedulers
    /// paused by deleting it: it is `Invalid`, and nothing shows that its init job has ended
    /// (`VolumeBackupInitializeComplete`: deleted after the resume; `VolumeBackupInitializeFailed`:
    /// ended or stopped). The data plane no longer reconciles an `Invalid` Backup, so it acts on
    /// neither `resumeGcSchedule` nor `teardown`, and the init job would keep renewing the pause
    /// until `volumeBackupInitJobMaxActiveSeconds`. Deleting the Backup stops the Job it owns
    /// (reference §4.2: running backup Jobs are stopped first, or garbage-collected with their
    /// owner), and BR resumes GC and schedulers as it is stopped. `Failed` members are not
    /// included: the data plane deletes their init job itself (reference §3.1 step 4).
    pub fn strands_init_job(&self) -> bool {
        self.has(cond::INVALID)
            && !self.has(cond::INITIALIZE_COMPLETE)
            && !self.has(cond::INITIALIZE_FAILED)
    }
}

/// One member cluster of a federated backup (`spec.clusters[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberCluster {
    /// Kubeconfig context name of the data plane.
    #[serde(default)]
    pub k8s_cluster_name: String,
    /// TidbCluster name in that data plane.
    #[serde(default)]
    pub tc_name: String,
    /// TidbCluster namespace; the member `Backup` is created there.
    #[serde(default)]
    pub tc_namespace: String,
}
