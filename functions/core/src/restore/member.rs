//! The member `Restore` a federated restore writes in each data plane, its phases and conditions,
//! and a typed view of what it reports.

use crate::backup::judge::Failure;
use crate::conditions::Condition;
use crate::member::MemberRef;
use crate::member::member_object;
use crate::names;
use crate::ports::Observation;
use crate::restore::spec::RestoreRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `spec.federalVolumeRestorePhase` values.
pub mod rphase {
    /// Create volumes from the snapshots.
    pub const RESTORE_VOLUME: &str = "restore-volume";
    /// Recover the data (one member).
    pub const RESTORE_DATA: &str = "restore-data";
    /// Restart TiKV out of recovery mode.
    pub const RESTORE_FINISH: &str = "restore-finish";
}

/// Data-plane `Restore` condition types.
pub mod rcond {
    /// Volumes created.
    pub const VOLUME_COMPLETE: &str = "VolumeComplete";
    /// Warmup jobs started.
    pub const WARMUP_STARTED: &str = "WarmUpStarted";
    /// Warmup jobs done.
    pub const WARMUP_COMPLETE: &str = "WarmUpComplete";
    /// TiKV up.
    pub const TIKV_COMPLETE: &str = "TikvComplete";
    /// Data recovered.
    pub const DATA_COMPLETE: &str = "DataComplete";
    /// Done.
    pub const COMPLETE: &str = "Complete";
    /// Failed.
    pub const FAILED: &str = "Failed";
    /// Invalid.
    pub const INVALID: &str = "Invalid";
}

/// What brfed reads of a member `Restore`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreView {
    /// Annotation `brfed.io/execution`.
    pub execution: Option<String>,
    /// `spec.federalVolumeRestorePhase`.
    pub federal_phase: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.commitTs`.
    pub commit_ts: Option<String>,
}

impl RestoreView {
    /// The view of each observation that has an object.
    pub fn views(obs: &[Observation]) -> Vec<Option<Self>> {
        obs.iter()
            .map(|o| o.present().map(Self::from_object))
            .collect()
    }

    /// From the object's JSON.
    pub fn from_object(obj: &Value) -> Self {
        let s = |v: &Value| v.as_str().map(String::from);
        Self {
            execution: obj["metadata"]["annotations"]
                .get(names::ANNOTATION_EXECUTION)
                .and_then(s),
            federal_phase: s(&obj["spec"]["federalVolumeRestorePhase"]),
            phase: s(&obj["status"]["phase"]),
            conditions: serde_json::from_value(obj["status"]["conditions"].clone())
                .unwrap_or_default(),
            commit_ts: match &obj["status"]["commitTs"] {
                Value::String(c) => Some(c.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        }
    }

    /// Condition `t` is True.
    pub fn has(&self, t: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    }

    pub(crate) fn failure(&self, m: &MemberRef) -> Option<Failure> {
        let (name, c) = if let Some(c) = self
            .conditions
            .iter()
            .find(|c| c.type_ == rcond::INVALID && c.status == "True")
        {
            ("MemberInvalid", c)
        } else {
            (
                "MemberFailed",
                self.conditions
                    .iter()
                    .find(|c| c.type_ == rcond::FAILED && c.status == "True")?,
            )
        };
        let detail = c.detail();
        Some(Failure::new(
            name,
            format!("member {} is {} ({detail})", m.display(), c.type_),
        ))
    }
}

/// Builds the member `Restore` of cluster `i`.
pub fn build_member_restore(
    req: &RestoreRequest,
    i: usize,
    member: &MemberRef,
    execution: &str,
) -> Value {
    let c = &req.spec.clusters[i];
    let mut spec = req.spec.template.clone();
    spec.remove("automountServiceAccountToken");
    let mut br = match spec.remove("br") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    br.insert("cluster".into(), json!(member.tc_name));
    br.insert("clusterNamespace".into(), json!(member.tc_namespace));
    spec.insert("br".into(), Value::Object(br));
    for (k, v) in &c.backup {
        spec.insert(k.clone(), v.clone());
    }
    spec.insert("restoreMode".into(), json!("volume-snapshot"));
    spec.insert("backupType".into(), json!("full"));
    spec.insert(
        "federalVolumeRestorePhase".into(),
        json!(rphase::RESTORE_VOLUME),
    );
    spec.insert("volumeAZ".into(), json!(c.az_name));
    member_object(
        "Restore",
        member,
        &req.metadata,
        ("brfed.io/volume-restore", req.name()),
        execution,
        Value::Object(spec),
    )
}
