//! What a failed restore left, and its cleanup: only member objects that carry this execution and
//! only volumes it claimed and proves again (`docs/restore.md`, "Leftovers").

use crate::error::StepError;
use crate::member::MemberRef;
use crate::names;
use crate::ports::DataPlanes;
use crate::ports::MemberKind;
use crate::ports::ObjectStore;
use crate::ports::Observation;
use crate::ports::Volumes;
use crate::restore::judge::volumes_settled;
use crate::restore::member::RestoreView;
use crate::restore::member::rcond;
use crate::restore::status::Leftover;
use crate::restore::status::VolumeClaim;
use crate::restore::status::VolumeRestoreDoc;
use crate::restore::steps::context::RestoreEnv;
use crate::restore::volumes;
use crate::restore::volumes::Judged;
use crate::restore::volumes::Scope;
use crate::restore::volumes::member_metas;
use crate::restore::volumes::restoremeta_volumes;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether a member `Restore` is `doc`'s: it carries the restore's execution and namespace.
fn is_ours(obj: &Value, doc: &VolumeRestoreDoc) -> bool {
    carries(obj, &doc.brfed.execution, &doc.metadata.meta.namespace)
}

/// Whether a member `Restore` carries `execution` and federation namespace `namespace`.
pub(crate) fn carries(obj: &Value, execution: &str, namespace: &str) -> bool {
    let annotations = &obj["metadata"]["annotations"];
    annotations[names::ANNOTATION_EXECUTION].as_str() == Some(execution)
        && annotations[names::ANNOTATION_FEDERATION_NAMESPACE].as_str() == Some(namespace)
}

/// A member `Restore` that is not this restore's: refused by name, never patched.
pub(crate) fn foreign(m: &MemberRef) -> StepError {
    StepError::MemberNameConflict(format!(
        "Restore {} no longer carries this restore's execution: left as it is",
        m.display()
    ))
}

/// Claims the volumes of every member that reached `VolumeComplete` under `doc`'s execution and
/// has no claim yet (`volumes::claim`); an error leaves that member for a later try.
pub(crate) async fn new_claims<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    obs: &[Observation],
) -> Vec<VolumeClaim> {
    let mut out = Vec::new();
    for (i, (m, o)) in doc.brfed.members.iter().zip(obs).enumerate() {
        let Observation::Present(obj) = o else {
            continue;
        };
        let done = RestoreView::from_object(obj).has(rcond::VOLUME_COMPLETE);
        let claimed = doc
            .brfed
            .volume_claims
            .iter()
            .any(|c| c.k8s_cluster_name == m.k8s_cluster_name);
        if !done || claimed || !is_ours(obj, doc) {
            continue;
        }
        match volumes::claim(env.base.store, env.volumes, env.base.catalog_bucket, doc, i).await {
            Ok(c) => {
                tracing::info!(member = %m.display(), claimed = c.claimed, refused = ?c.refused, "restored volumes claimed");
                out.push(c);
            }
            // EC2 or S3 busy: a later observation, or the report, tries again.
            Err(e) if e.is_retryable() => {
                tracing::warn!(member = %m.display(), error = %e, "restored volumes not claimed yet");
            }
            // Refused (IAM, a volume gone meanwhile): recorded, not tried again.
            Err(e) => {
                tracing::warn!(member = %m.display(), error = %e, "restored volumes not claimed");
                out.push(VolumeClaim {
                    k8s_cluster_name: m.k8s_cluster_name.clone(),
                    claimed: 0,
                    refused: Some(format!("{}: {e}", e.name())),
                });
            }
        }
    }
    out
}

/// Adds `claims` to `d` (one per data plane); whether anything changed.
pub(crate) fn record_claims(d: &mut VolumeRestoreDoc, claims: &[VolumeClaim]) -> bool {
    let mut changed = false;
    for c in claims {
        if !d
            .brfed
            .volume_claims
            .iter()
            .any(|x| x.k8s_cluster_name == c.k8s_cluster_name)
        {
            d.brfed.volume_claims.push(c.clone());
            changed = true;
        }
    }
    changed
}

/// Sorts member `i`'s volumes into its report: the ones proved its own (`volumes`), the ones
/// that may be (`unconfirmed_volumes`); the scope to judge them again by, when there is one.
async fn member_volumes<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    i: usize,
    l: &mut Leftover,
) -> Option<Scope> {
    let (backupmeta, restoremeta) = member_metas(env.base.store, doc, i).await;
    let listed = restoremeta
        .as_ref()
        .map(restoremeta_volumes)
        .unwrap_or_default();
    let (Some(cluster), Some(backupmeta)) = (doc.spec.clusters.get(i), backupmeta) else {
        l.notes.push(
            "the backup's backupmeta is unreadable, so no volume can be proved this restore's: the volumes of restoremeta are listed unconfirmed".into(),
        );
        l.unconfirmed_volumes = listed;
        return None;
    };
    let scope = Scope::new(env.base.catalog_bucket, doc, cluster, &backupmeta);
    match env.volumes.volumes_from_snapshots(&scope.snapshots).await {
        Ok(mut found) => {
            found.sort_by(|a, b| a.id.cmp(&b.id));
            let mut why: BTreeMap<String, usize> = BTreeMap::new();
            for v in found {
                match scope.judge(&v) {
                    Judged::Ours => l.volumes.push(v.id),
                    Judged::Unconfirmed(reason) => {
                        *why.entry(reason).or_default() += 1;
                        l.unconfirmed_volumes.push(v.id);
                    }
                    Judged::NotOurs(_) => {}
                }
            }
            for (reason, n) in why {
                l.notes.push(format!("{n} volume(s) unconfirmed: {reason}"));
            }
        }
        Err(e) => {
            l.notes.push(format!(
                "could not ask EC2 which volumes are this restore's ({e}): the volumes of restoremeta are listed unconfirmed"
            ));
            l.unconfirmed_volumes = listed;
        }
    }
    Some(scope)
}

/// The leftovers report (and, when asked, the cleanup) of a failed restore, and the volume
/// claims made on the way (members that reached `VolumeComplete` since the last observation).
pub(crate) async fn leftovers<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    obs: &[Observation],
    cleanup: bool,
) -> (Vec<Leftover>, Vec<VolumeClaim>) {
    let claims = new_claims(env, doc, obs).await;
    let mut all_claims = doc.brfed.volume_claims.clone();
    all_claims.extend(claims.iter().cloned());
    let mut out = Vec::new();
    for (i, (m, o)) in doc.brfed.members.iter().zip(obs).enumerate() {
        let mut l = Leftover {
            k8s_cluster_name: m.k8s_cluster_name.clone(),
            ..Default::default()
        };
        let ctx = format!("--context {} -n {}", m.k8s_cluster_name, m.tc_namespace);
        let name = format!("{}/{}", m.tc_namespace, m.backup_name);
        match o {
            Observation::Present(v) if is_ours(v, doc) => {
                l.member = Some(name);
                l.phase = RestoreView::from_object(v).phase;
            }
            Observation::Present(v) => {
                let execution = RestoreView::from_object(v).execution;
                l.notes.push(format!(
                    "Restore {name} in {} is not this restore's (execution {}): left as it is",
                    m.k8s_cluster_name,
                    execution.as_deref().unwrap_or("none")
                ));
                l.foreign_member = Some(name);
            }
            Observation::Unreachable(e) => {
                l.member = Some(name);
                l.notes
                    .push(format!("data plane unreachable, member state unknown: {e}"));
            }
            Observation::Absent => {}
        }
        if !volumes_settled(o) {
            l.notes.push(format!(
                "the member was still creating volumes when this was written: volumes it made later are not listed (made from {}'s backup snapshots, in {})",
                m.k8s_cluster_name,
                doc.spec
                    .clusters
                    .get(i)
                    .map(|c| c.az_name.as_str())
                    .filter(|az| !az.is_empty())
                    .unwrap_or("the AZs of the backup's volumes")
            ));
        }
        if let Some(why) = all_claims
            .iter()
            .find(|c| c.k8s_cluster_name == m.k8s_cluster_name)
            .and_then(|c| c.refused.as_ref())
        {
            l.notes.push(format!(
                "the member's volumes could not be proved this restore's at VolumeComplete: {why}"
            ));
        }
        let scope = member_volumes(env, doc, i, &mut l).await;
        if let Ok(Some(tc)) = env
            .base
            .planes
            .get_tidb_cluster(&m.k8s_cluster_name, &m.tc_namespace, &m.tc_name)
            .await
        {
            l.tidb_cluster_in_recovery_mode = tc["spec"]["recoveryMode"].as_bool() == Some(true);
        }
        if cleanup {
            clean_up(env, doc, m, scope.as_ref(), &mut l).await;
        }
        if l.member.is_some() {
            l.cleanup_commands
                .push(format!("kubectl {ctx} delete restore {}", m.backup_name));
        }
        for v in &l.volumes {
            l.cleanup_commands
                .push(format!("aws ec2 delete-volume --volume-id {v}"));
        }
        if !l.unconfirmed_volumes.is_empty() {
            l.cleanup_commands.push(format!(
                "aws ec2 describe-volumes --volume-ids {}  # check whose they are before deleting them",
                l.unconfirmed_volumes.join(" ")
            ));
        }
        if l.tidb_cluster_in_recovery_mode {
            l.cleanup_commands.push(format!(
                "kubectl {ctx} delete tidbcluster {}  # and its TiKV PVCs; re-create it with spec.recoveryMode: true before retrying",
                m.tc_name
            ));
        }
        out.push(l);
    }
    (out, claims)
}

/// The opt-in cleanup of one member: its `Restore` and its volumes, each read again right
/// before it is deleted and deleted only when it is still this restore's. A volume that no
/// longer passes is moved to `unconfirmed_volumes`.
async fn clean_up<D: DataPlanes, S: ObjectStore, V: Volumes>(
    env: &RestoreEnv<'_, D, S, V>,
    doc: &VolumeRestoreDoc,
    m: &MemberRef,
    scope: Option<&Scope>,
    l: &mut Leftover,
) {
    if l.member.is_some() {
        let planes = &env.base.planes;
        let did = match planes.get_member(MemberKind::Restore, m).await {
            Ok(Some(obj)) if is_ours(&obj, doc) => {
                match planes.delete_member(MemberKind::Restore, m).await {
                    Ok(_) => format!("deleted Restore {}", m.display()),
                    Err(e) => format!("could not delete Restore {}: {e}", m.display()),
                }
            }
            Ok(Some(_)) => {
                l.foreign_member = l.member.take();
                format!(
                    "left Restore {}: it is no longer this restore's",
                    m.display()
                )
            }
            Ok(None) => format!("Restore {} was already gone", m.display()),
            Err(e) => format!(
                "could not read Restore {} before deleting it: {e}",
                m.display()
            ),
        };
        l.cleaned.push(did);
    }
    let Some(scope) = scope else {
        return;
    };
    let mut kept = Vec::new();
    for v in std::mem::take(&mut l.volumes) {
        let did = match env.volumes.describe_volume(&v).await {
            Ok(None) => format!("volume {v} was already gone"),
            Ok(Some(facts)) => match scope.judge(&facts) {
                Judged::Ours => match env.volumes.delete_volume(&v).await {
                    Ok(true) => format!("deleted volume {v}"),
                    Ok(false) => format!("volume {v} was already gone"),
                    Err(e) => format!("could not delete volume {v}: {e}"),
                },
                Judged::Unconfirmed(why) | Judged::NotOurs(why) => {
                    l.unconfirmed_volumes.push(v.clone());
                    l.cleaned.push(format!("left volume {v}: {why}"));
                    continue;
                }
            },
            Err(e) => format!("could not read volume {v} before deleting it: {e}"),
        };
        l.cleaned.push(did);
        kept.push(v);
    }
    l.volumes = kept;
}
