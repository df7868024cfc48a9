//! Step `restore-start`: the backup to restore from, the preflight, the catalog record and the
//! member `Restore`s.

use crate::backup::status::VolumeBackupDoc;
use crate::backup::steps::Env;
use crate::backup::steps::StartInput;
use crate::catalog::Catalog;
use crate::catalog::DocMeta;
use crate::error::StepError;
use crate::input::FEDERATION_API_VERSION;
use crate::member::MemberRef;
use crate::names;
use crate::ports::Created;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Volumes;
use crate::restore::member::RestoreView;
use crate::restore::member::build_member_restore;
use crate::restore::spec::RestoreRequest;
use crate::restore::status::RestoreGeneration;
use crate::restore::status::RestoreRecord;
use crate::restore::status::VolumeRestoreDoc;
use crate::restore::status::VolumeRestoreStatus;
use crate::restore::steps::context::RestoreContext;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::steps::context::RestoreStartOutput;
use crate::restore::steps::context::WarmupPlan;
use crate::time::Phase;
use crate::time::now_ms;
use crate::time::rfc3339;
use chrono::Utc;
use futures::future::join_all;
use serde_json::{Value, json};

/// Fills each cluster's `backup.s3` from the backup `fromBackup` names, read from the catalog:
/// it must be `Complete` and have exactly the restore's clusters as members.
pub async fn resolve_from_backup<D, S: ObjectStore>(
    env: &Env<'_, D, S>,
    req: &mut RestoreRequest,
) -> Result<(), StepError> {
    let Some(from) = req.from_backup.clone() else {
        return Ok(());
    };
    let (doc, _) = Catalog::<S, VolumeBackupDoc>::new(env.store, env.catalog_bucket)
        .get(&from.namespace, &from.name)
        .await?
        .ok_or_else(|| {
            StepError::BackupNotRestorable(format!(
                "VolumeBackup {}/{} is not in the catalog",
                from.namespace, from.name
            ))
        })?;
    if doc.status.progress.phase.as_deref() != Some("Complete") {
        return Err(StepError::BackupNotRestorable(format!(
            "VolumeBackup {}/{} is {}, only a Complete backup can be restored",
            from.namespace,
            from.name,
            doc.status.progress.phase.as_deref().unwrap_or("unknown")
        )));
    }
    // A deletion that runs may take the snapshots away under the restore.
    if let Some(d) = &doc.brfed.deletion {
        return Err(StepError::BackupNotRestorable(format!(
            "VolumeBackup {}/{} is {} (deletion {}, asked {}): its snapshots may be gone",
            from.namespace, from.name, d.state, d.execution, d.requested_at
        )));
    }
    let backup_clusters: Vec<&str> = doc
        .status
        .backups
        .iter()
        .map(|b| b.k8s_cluster_name.as_str())
        .collect();
    let mut restore_clusters: Vec<&str> = req
        .spec
        .clusters
        .iter()
        .map(|c| c.k8s_cluster_name.as_str())
        .collect();
    let mut sorted = backup_clusters.clone();
    sorted.sort();
    restore_clusters.sort();
    if sorted != restore_clusters {
        return Err(StepError::TopologyMismatch(format!(
            "the restore's clusters ({}) must be the backup's members ({})",
            restore_clusters.join(", "),
            backup_clusters.join(", ")
        )));
    }
    for c in &mut req.spec.clusters {
        let b = doc
            .status
            .backups
            .iter()
            .find(|b| b.k8s_cluster_name == c.k8s_cluster_name)
            .expect("checked above");
        let path = b.backup_path.as_deref().unwrap_or_default();
        let (bucket, prefix) = path
            .strip_prefix("s3://")
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| {
                StepError::BackupNotRestorable(format!(
                    "member {} has no backupPath",
                    b.backup_name
                ))
            })?;
        let mut s3 = doc
            .spec
            .template
            .get("s3")
            .cloned()
            .unwrap_or_else(|| json!({}));
        s3["bucket"] = json!(bucket);
        s3["prefix"] = json!(prefix);
        c.backup.insert("s3".into(), s3);
    }
    Ok(())
}

/// The checks of every restore target [`start`] runs before its first side effect, each
/// problem with its error name: the data plane answers, the TidbCluster exists with `acrossK8s`
/// and `recoveryMode`, the member's `backupmeta` is readable and its TiKV topology matches, no
/// `Restore` of that name belongs to another execution (`execution` `""` for a dry run: any
/// existing one). Reads only; `req` must have every backup location (see
/// [`resolve_from_backup`]).
pub async fn restore_problems<D: DataPlanes, S: ObjectStore>(
    env: &Env<'_, D, S>,
    req: &RestoreRequest,
    members: &[MemberRef],
    execution: &str,
) -> Vec<(&'static str, String)> {
    let checks = members.iter().enumerate().map(|(i, m)| async move {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        if let (Some(locations), Some((bucket, prefix))) = (env.backup_locations, req.backup_location(i))
            && let Err(e) = locations.check(&format!("spec.clusters[{i}].backup.s3"), &bucket, &prefix)
        {
            out.push((e.name(), e.message().to_string()));
            return out;
        }
        if let Err(e) = env
            .planes
            .probe(MemberKind::Restore, &m.k8s_cluster_name, &m.tc_namespace)
            .await {
            out.push((e.name(), e.message().to_string()));
            return out;
        }
        let at = format!("TidbCluster {}/{} in {}", m.tc_namespace, m.tc_name, m.k8s_cluster_name);
        let tc = match env.planes.get_tidb_cluster(&m.k8s_cluster_name, &m.tc_namespace, &m.tc_name).await {
            Ok(Some(tc)) => tc,
            Ok(None) => {
                out.push(("TidbClusterInvalid", format!("{at} does not exist: create it with spec.recoveryMode: true first")));
                return out;
            }
            Err(e) => {
                out.push((e.name(), e.message().to_string()));
                return out;
            }
        };
        if tc["spec"]["acrossK8s"].as_bool() != Some(true) {
            out.push(("TidbClusterInvalid", format!("{at}: set spec.acrossK8s: true")));
        }
        if tc["spec"]["recoveryMode"].as_bool() != Some(true) {
            out.push(("TidbClusterInvalid", format!("{at}: set spec.recoveryMode: true (TiKV must start in recovery mode)")));
        }
        let Some((bucket, prefix)) = req.backup_location(i) else {
            out.push(("InvalidSpec", format!("spec.clusters[{i}].backup.s3 is incomplete")));
            return out;
        };
        match env.store.get_json(&bucket, &format!("{prefix}/backupmeta")).await {
            Ok(Some(meta)) => {
                let backup_tc = &meta.value["kubernetes"]["crd_tidb_cluster"]["spec"]["tikv"];
                let (want, have) = (backup_tc["replicas"].as_i64(), tc["spec"]["tikv"]["replicas"].as_i64());
                if want != have {
                    out.push(("TopologyMismatch", format!(
                        "{at} has {} TiKV replicas, the backup of {} has {}: they must be equal",
                        have.unwrap_or(0), m.k8s_cluster_name, want.unwrap_or(0)
                    )));
                }
                let count = |v: &Value| v["storageVolumes"].as_array().map_or(0, Vec::len);
                if count(backup_tc) != count(&tc["spec"]["tikv"]) {
                    out.push(("TopologyMismatch", format!(
                        "{at} has {} TiKV storageVolumes, the backup has {}",
                        count(&tc["spec"]["tikv"]), count(backup_tc)
                    )));
                }
            }
            Ok(None) => out.push(("BackupMetaUnreadable", format!(
                "s3://{bucket}/{prefix}/backupmeta does not exist: spec.clusters[{i}].backup.s3.prefix must point at {}'s backup",
                m.k8s_cluster_name
            ))),
            Err(e) => out.push(("BackupMetaUnreadable", format!("s3://{bucket}/{prefix}/backupmeta: {e}"))),
        }
        match env.planes.get_member(MemberKind::Restore, m).await {
            Ok(Some(obj)) if RestoreView::from_object(&obj).execution.as_deref() != Some(execution) => {
                out.push(("MemberNameConflict", format!("Restore {}/{} already exists in {}", m.tc_namespace, m.backup_name, m.k8s_cluster_name)));
            }
            Ok(_) => {}
            Err(e) => out.push((e.name(), e.message().to_string())),
        }
        out
    });
    join_all(checks).await.into_iter().flatten().collect()
}

async fn restore_preflight<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    req: &RestoreRequest,
    members: &[MemberRef],
    execution: &str,
) -> Result<(), StepError> {
    let all = restore_problems(&env.base, req, members, execution).await;
    if all.is_empty() {
        return Ok(());
    }
    // the most actionable name first: unreachable (retryable), then by kind
    let message = all
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let first = [
        "BucketNotAllowed",
        "DataPlaneUnreachable",
        "MemberNameConflict",
        "DataPlaneForbidden",
        "DataPlaneRejected",
        "TidbClusterInvalid",
        "BackupMetaUnreadable",
        "TopologyMismatch",
    ]
    .into_iter()
    .find(|n| all.iter().any(|(k, _)| k == n))
    .unwrap_or(all[0].0);
    Err(match first {
        "DataPlaneUnreachable" => StepError::DataPlaneUnreachable(message),
        "MemberNameConflict" => StepError::MemberNameConflict(message),
        "TidbClusterInvalid" => StepError::TidbClusterInvalid(message),
        "BackupMetaUnreadable" => StepError::BackupMetaUnreadable(message),
        "TopologyMismatch" => StepError::TopologyMismatch(message),
        "InvalidSpec" => StepError::InvalidSpec(message),
        "DataPlaneForbidden" => StepError::DataPlaneForbidden(message),
        "BucketNotAllowed" => StepError::BucketNotAllowed(message),
        _ => StepError::DataPlaneRejected(message),
    })
}

/// The member `Restore`s of `req`, in `spec.clusters` order (`backupName` holds each one's name).
pub fn restore_members(req: &RestoreRequest) -> Vec<MemberRef> {
    req.spec
        .clusters
        .iter()
        .map(|c| MemberRef {
            k8s_cluster_name: c.k8s_cluster_name.clone(),
            tc_name: c.tc_name.clone(),
            tc_namespace: c.tc_namespace.clone(),
            backup_name: names::member_backup_name(req.name()),
        })
        .collect()
}

/// Why a start cannot have the name: `RestoreExists`, or, when `doc` is the record of a restore
/// whose deletion removes it right now (it raised the name's generation past it), the retryable
/// `CatalogConflict`: the start of the name's next generation goes on once the record is gone.
async fn exists<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
) -> StepError {
    let (ns, name) = (&doc.metadata.meta.namespace, &doc.metadata.meta.name);
    let deleted = RestoreGeneration::read(env.base.store, env.base.catalog_bucket, ns, name).await;
    match deleted {
        Ok(Some((g, _))) if g.deleted_execution == doc.brfed.execution => {
            StepError::CatalogConflict(format!(
                "VolumeRestore {ns}/{name} of execution {} is being deleted: its record goes next",
                doc.brfed.execution
            ))
        }
        _ => StepError::RestoreExists(format!(
            "VolumeRestore {ns}/{name} already exists (execution {})",
            doc.brfed.execution
        )),
    }
}

/// Start: validate, resolve the backup, check every target, record the restore, create every
/// member `Restore` in `restore-volume` at once.
pub async fn start<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    input: StartInput,
) -> Result<RestoreStartOutput, StepError> {
    let mut req = RestoreRequest::from_value(input.input)?;
    req.validate()?;
    let known = env.base.planes.cluster_names();
    let unknown: Vec<&str> = req
        .spec
        .clusters
        .iter()
        .map(|c| c.k8s_cluster_name.as_str())
        .filter(|c| !known.contains(*c))
        .collect();
    if !unknown.is_empty() {
        return Err(StepError::UnknownCluster(format!(
            "not known data planes: {}",
            unknown.join(", ")
        )));
    }
    let execution = input.execution;
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let members = restore_members(&req);
    let resumed = match env.catalog().get(&ns, &name).await? {
        Some((doc, _)) if doc.brfed.execution == execution => {
            req.spec = doc.spec.clone();
            true
        }
        Some((doc, _)) => return Err(exists(env, &doc).await),
        None => false,
    };
    if !resumed {
        resolve_from_backup(&env.base, &mut req).await?;
        if let Err(e) = restore_preflight(env, &req, &members, &execution).await {
            // Another start of this restore won meanwhile (its document, then its members, were
            // created after the read above): name that, not the members it made.
            if matches!(e, StepError::MemberNameConflict(_))
                && let Some((doc, _)) = env.catalog().get(&ns, &name).await?
                && doc.brfed.execution != execution
            {
                return Err(exists(env, &doc).await);
            }
            return Err(e);
        }
    }
    let now = Utc::now();
    let mut status = VolumeRestoreStatus::default();
    status.progress.set_condition("Running", None, None, now);
    status.start_step("RestoreVolume", now);
    let doc = VolumeRestoreDoc {
        api_version: FEDERATION_API_VERSION.into(),
        kind: "VolumeRestore".into(),
        metadata: DocMeta {
            meta: req.metadata.clone(),
            creation_timestamp: Some(rfc3339(now)),
        },
        spec: req.spec.clone(),
        status,
        brfed: RestoreRecord {
            execution: execution.clone(),
            options: req.options.clone(),
            members: members.clone(),
            from_backup: req.from_backup.clone(),
            ..Default::default()
        },
    };
    // Two starts of one name can both pass the read above: the conditional create lets one
    // win, and returns the stored document to the other, which must stop here, before any
    // member exists.
    let stored = env.catalog().create(&doc).await?;
    if stored.brfed.execution != execution {
        return Err(exists(env, &stored).await);
    }
    let creations = members.iter().enumerate().map(|(i, m)| {
        let object = build_member_restore(&req, i, m, &execution);
        let execution = &execution;
        async move {
            match env
                .base
                .planes
                .create_member(MemberKind::Restore, &m.k8s_cluster_name, &object)
                .await?
            {
                Created::Created => Ok(()),
                Created::AlreadyExists(o)
                    if RestoreView::from_object(&o).execution.as_deref() == Some(execution) =>
                {
                    Ok(())
                }
                Created::AlreadyExists(_) => Err(StepError::MemberNameConflict(format!(
                    "Restore {} belongs to something else",
                    m.display()
                ))),
            }
        }
    });
    for r in join_all(creations).await {
        r?;
    }
    Ok(RestoreStartOutput {
        restore: RestoreContext {
            name,
            namespace: ns,
            execution,
            members,
            options: req.options.clone(),
            deadline: rfc3339(now + chrono::Duration::seconds(req.options.deadline_seconds as i64)),
            extra: WarmupPlan::of(&req),
        },
        phase: Phase {
            name: "RestoreVolume".into(),
            started_at: now_ms(),
        },
        failure: None,
        observed: None,
        data_member: None,
    })
}
