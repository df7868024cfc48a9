//! The member `Backup` (`pingcap.com/v1alpha1`) a federated backup writes in each data plane,
//! whether a member object is this backup's, and what its `backupmeta` lists.

use crate::backup::spec::BackupRequest;
use crate::member::MemberRef;
use crate::member::MemberView;
use crate::member::member_object;
use crate::member::phase;
use crate::names;
use serde_json::{Value, json};

/// Builds the data-plane `Backup` for `member` of `req`, in federal phase `federal_phase`.
pub fn build_member_backup(
    req: &BackupRequest,
    member: &MemberRef,
    federal_phase: &str,
    execution: &str,
) -> Value {
    let mut spec = req.spec.template.clone();
    // Fields of the federation template that the data-plane Backup does not have, or that the
    // original does not propagate (reference §2.1): handled below or dropped on purpose.
    spec.remove("volumeBackupInitJobMaxActiveSeconds");
    spec.remove("snapshotsDeleteRatio");
    spec.remove("automountServiceAccountToken");
    if let Some(Value::Object(s3)) = spec.get_mut("s3") {
        s3.insert(
            "prefix".into(),
            Value::String(req.member_prefix(&member.k8s_cluster_name)),
        );
    }
    let mut br = match spec.remove("br") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    br.insert("cluster".into(), Value::String(member.tc_name.clone()));
    br.insert(
        "clusterNamespace".into(),
        Value::String(member.tc_namespace.clone()),
    );
    spec.insert("br".into(), Value::Object(br));
    spec.insert("backupMode".into(), json!("volume-snapshot"));
    spec.insert("backupType".into(), json!("full"));
    spec.insert("federalVolumeBackupPhase".into(), json!(federal_phase));
    if federal_phase == phase::INITIALIZE {
        let secs = req
            .spec
            .template
            .get("volumeBackupInitJobMaxActiveSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(600);
        spec.insert("volumeBackupInitJobMaxActiveSeconds".into(), json!(secs));
    }
    // The original gives every member the ratio, reset to 1 outside [0.1, 2.0].
    let ratio = req.snapshots_delete_ratio();
    spec.insert(
        "cleanOption".into(),
        json!({ "snapshotsDeleteRatio": ratio }),
    );
    member_object(
        "Backup",
        member,
        &req.metadata,
        (names::LABEL_VOLUME_BACKUP, req.name()),
        execution,
        Value::Object(spec),
    )
}

pub(crate) fn member_of(view: &MemberView, execution: &str, namespace: &str) -> bool {
    view.execution.as_deref() == Some(execution)
        && view.federation_namespace.as_deref().unwrap_or(namespace) == namespace
}

/// Snapshot ids in a `backupmeta` document (reference §5).
pub fn snapshot_ids(meta: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for store in meta
        .pointer("/tikv/stores")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for vol in store
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = vol.get("snapshot_id").and_then(Value::as_str)
                && !id.is_empty()
            {
                out.push(id.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::cond;

    fn req() -> BackupRequest {
        BackupRequest::from_value(json!({"metadata": {"name": "bk", "namespace": "br", "labels": {"team": "db"},
            "annotations": {"iam.amazonaws.com/role": "r"}},
            "spec": {"clusters": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"}],
            "template": {"s3": {"provider": "aws", "bucket": "bkt", "prefix": "p"}, "br": {"concurrency": 4},
                "volumeBackupInitJobMaxActiveSeconds": 300, "snapshotsDeleteRatio": 0.5, "automountServiceAccountToken": false,
                "cleanPolicy": "Delete", "toolImage": "br:v7"}}}))
        .unwrap()
    }

    #[test]
    fn the_initialize_member_carries_the_template_and_the_phase_fields() {
        let r = req();
        let m = MemberRef::new(&r.spec.clusters[0], r.name());
        let b = build_member_backup(&r, &m, phase::INITIALIZE, "exec-1");
        assert_eq!(b["metadata"]["name"], "fed-bk");
        assert_eq!(b["metadata"]["namespace"], "tidb");
        assert_eq!(b["metadata"]["labels"]["team"], "db");
        assert_eq!(b["metadata"]["labels"][names::LABEL_VOLUME_BACKUP], "bk");
        assert_eq!(b["metadata"]["annotations"]["iam.amazonaws.com/role"], "r");
        assert_eq!(b["spec"]["s3"]["prefix"], "p-dp1");
        assert_eq!(b["spec"]["br"]["cluster"], "basic");
        assert_eq!(b["spec"]["br"]["clusterNamespace"], "tidb");
        assert_eq!(b["spec"]["br"]["concurrency"], 4);
        assert_eq!(b["spec"]["backupMode"], "volume-snapshot");
        assert_eq!(b["spec"]["federalVolumeBackupPhase"], "initialize");
        assert_eq!(b["spec"]["volumeBackupInitJobMaxActiveSeconds"], 300);
        assert_eq!(b["spec"]["cleanOption"]["snapshotsDeleteRatio"], 0.5);
        assert_eq!(b["spec"]["cleanPolicy"], "Delete");
        assert!(b["spec"].get("automountServiceAccountToken").is_none());
        assert!(b["spec"].get("snapshotsDeleteRatio").is_none());
    }

    #[test]
    fn a_delete_ratio_outside_its_range_is_reset_to_one_as_the_original_does_and_said() {
        for (given, member_gets, warned) in [
            (Some(json!(0.5)), 0.5, false),
            (Some(json!(2.0)), 2.0, false),
            (None, 1.0, false),
            (Some(json!(0)), 1.0, true),
            (Some(json!(5.0)), 1.0, true),
            (Some(json!(-1)), 1.0, true),
        ] {
            let mut r = req();
            r.spec.template.remove("snapshotsDeleteRatio");
            if let Some(v) = &given {
                r.spec
                    .template
                    .insert("snapshotsDeleteRatio".into(), v.clone());
            }
            assert!(r.validate(None).is_ok(), "{given:?} is accepted");
            let m = MemberRef::new(&r.spec.clusters[0], r.name());
            let b = build_member_backup(&r, &m, phase::EXECUTE, "exec-1");
            assert_eq!(
                b["spec"]["cleanOption"]["snapshotsDeleteRatio"],
                json!(member_gets),
                "{given:?}"
            );
            let warnings = r.warnings();
            assert_eq!(!warnings.is_empty(), warned, "{given:?}: {warnings:?}");
            if warned {
                assert!(warnings[0].contains("members get 1"), "{warnings:?}");
            }
        }
    }

    #[test]
    fn execute_members_have_no_init_deadline() {
        let r = req();
        let m = MemberRef::new(&r.spec.clusters[0], r.name());
        let b = build_member_backup(&r, &m, phase::EXECUTE, "exec-1");
        assert!(
            b["spec"]
                .get("volumeBackupInitJobMaxActiveSeconds")
                .is_none()
        );
    }

    #[test]
    fn a_member_view_reads_conditions_and_results() {
        let v = MemberView::from_object(
            &json!({"metadata": {"annotations": {"brfed.io/execution": "e"}},
            "spec": {"federalVolumeBackupPhase": "execute", "resumeGcSchedule": true},
            "status": {"phase": "VolumeBackupComplete", "commitTs": "42", "backupSize": 10, "backupPath": "s3://b/p",
                "conditions": [{"type": "VolumeBackupComplete", "status": "True"}, {"type": "Failed", "status": "False"}]}}),
        );
        assert!(v.has(cond::VOLUME_COMPLETE));
        assert!(v.failed().is_none());
        assert!(!v.terminal());
        assert_eq!(v.commit_ts.as_deref(), Some("42"));
        assert_eq!(v.execution.as_deref(), Some("e"));
        assert!(v.resume_gc_schedule);
    }
}
