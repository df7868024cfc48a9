//! The state brfed passes between steps, at any scale, without data planes: the real state
//! objects of `brfed_core` (`StartOutput`, `ObserveOutput`, `FinalizeOutput` with its
//! `VolumeBackupDoc`, `RestoreStartOutput`, `RestoreFinalizeOutput` with its `VolumeRestoreDoc`,
//! `DeleteStartOutput`, `DeleteObserved`, `DeleteResult`), built from the member objects the data
//! planes would show (`build_member_backup` / `build_member_restore` plus a status) and judged by
//! brfed's own functions (`judge`, `judge_restore`, `pick_data_member`, `refresh_members`,
//! `refresh`, `finish`), then carried through the real ASL by [`crate::bench::asl::walk`].
//!
//! Volumes never enter the state except where a step puts them there on purpose; the restore's
//! failure report (`brfed.leftovers`) is built as `restore::steps::leftovers` builds it (one entry
//! per member: its volumes from `restoremeta`, one cleanup command per volume, and with
//! `cleanupOnFailure` one line per volume deleted), which is the one place where they do.

use crate::bench::asl::{self, TaskResult, Walk};
use brfed_core::backup::judge::{Await, Failure, Verdict, judge, views};
use brfed_core::backup::member::build_member_backup;
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::vbk;
use brfed_core::backup::status::{Remains, VolumeBackupDoc};
use brfed_core::backup::steps::{BackupContext, FinalizeOutput, ObserveOutput, StartOutput};
use brfed_core::catalog::DocMeta;
use brfed_core::delete::member::{CleanBy, DeleteMember};
use brfed_core::delete::pacing::SnapshotProgress;
use brfed_core::delete::status::DeleteResult;
use brfed_core::delete::steps::{DeleteContext, DeleteObserved, DeleteStartOutput};
use brfed_core::execution::NothingMore;
use brfed_core::input::{FEDERATION_API_VERSION, ObserveMode};
use brfed_core::member::{MemberRef, MemberView, phase};
use brfed_core::ports::Observation;
use brfed_core::restore::judge::{RestoreAwait, judge_restore, pick_data_member};
use brfed_core::restore::member::{RestoreView, build_member_restore, rcond};
use brfed_core::restore::spec::RestoreRequest;
use brfed_core::restore::status::{Leftover, RestoreRecord, VolumeRestoreDoc, VolumeRestoreStatus};
use brfed_core::restore::steps::WarmupPlan;
use brfed_core::restore::steps::{
    RestoreContext, RestoreFinalizeOutput, RestoreStartOutput, restore_members,
};
use brfed_core::time::Phase;
use brfed_core::time::rfc3339;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// What the data planes hold per member.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// EBS volumes per member (TiKV stores × volumes per store).
    pub volumes: usize,
    /// Bytes per volume.
    pub volume_bytes: i64,
    /// The message a failing member's condition carries.
    pub failure_message: String,
}

impl Facts {
    /// `volumes` volumes of 1 TiB, and a data-plane failure message of the length EBS errors have.
    pub fn new(volumes: usize) -> Self {
        Self {
            volumes,
            volume_bytes: 1 << 40,
            failure_message: "create snapshot of volume vol-0a1b2c3d4e5f60718 (store 17) failed: \
                SnapshotCreationPerVolumeRateExceeded: The maximum per volume CreateSnapshot \
                request rate has been exceeded. Use an increasing or variable sleep interval \
                between requests."
                .into(),
        }
    }
}

/// Which path an execution takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scenario {
    /// Every member fails (at snapshots complete for a backup, at restore-data for a restore;
    /// `CleanFailed` with the longest remaining lists for a deletion).
    pub failed: bool,
    /// Restore: `cleanupOnFailure` (one more line per volume in the report).
    pub cleanup: bool,
    /// Observe invocations that return `pending` (budget spent) in the longest wait: a backup's
    /// snapshots complete, a restore's restore-data, a deletion's data-plane cleanup.
    pub pending_loops: usize,
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

fn ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn to_json(v: &impl Serialize) -> Value {
    serde_json::to_value(v).expect("serializable state")
}

fn observe_output(verdict: Verdict, mode: ObserveMode, poll_seconds: u64) -> ObserveOutput {
    let (name, failure) = match verdict {
        Verdict::Met => ("met", None),
        Verdict::Pending => ("pending", None),
        Verdict::Failed(f) => ("failed", Some(f)),
    };
    ObserveOutput {
        verdict: name.into(),
        failure,
        wait_seconds: match (mode, name) {
            (ObserveMode::Poll, "pending") => poll_seconds,
            _ => 0,
        },
    }
}

fn commit_ts(i: usize) -> String {
    (470_634_605_710_147_584u64 + 33_030_144 * i as u64).to_string()
}

fn condition(t: &str, reason: Option<&str>, message: Option<&str>) -> Value {
    let mut c = json!({"type": t, "status": "True", "lastTransitionTime": rfc3339(t0())});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// A member `Backup` as its data plane shows it at the end (`failed`: its snapshots failed).
fn member_backup(
    req: &BackupRequest,
    m: &MemberRef,
    i: usize,
    execution: &str,
    f: &Facts,
    failed: bool,
) -> Value {
    let mut obj = build_member_backup(req, m, phase::TEARDOWN, execution);
    if i == 0 {
        obj["spec"]["resumeGcSchedule"] = json!(true);
    }
    let mut conds = vec![
        condition("VolumeBackupInitialized", None, None),
        condition("VolumeBackupSnapshotsCreated", None, None),
        condition("VolumeBackupInitializeComplete", None, None),
    ];
    let phase = if failed {
        let msg = f.failure_message.as_str();
        conds.push(condition(
            "VolumeBackupFailed",
            Some("SnapshotFailed"),
            Some(msg),
        ));
        conds.push(condition("Failed", Some("SnapshotFailed"), Some(msg)));
        "Failed"
    } else {
        conds.push(condition("VolumeBackupComplete", None, None));
        conds.push(condition("Complete", None, None));
        "Complete"
    };
    obj["status"] = json!({
        "phase": phase,
        "backupPath": brfed_core::names::s3_path(req.bucket(), &req.member_prefix(&m.k8s_cluster_name)),
        "backupSize": f.volume_bytes * f.volumes as i64,
        "commitTs": commit_ts(i),
        "conditions": conds,
    });
    obj
}

/// Walks a backup with execution input `input` through `statemachines/volume-backup.asl.json`.
pub fn walk_backup(input: &Value, execution: &str, f: &Facts, sc: Scenario) -> Walk {
    let req = BackupRequest::from_value(input.clone()).expect("a VolumeBackup");
    let (mode, poll) = (req.options.observe_mode, req.options.poll_seconds);
    let members = req.members();
    let t = t0();
    let start = StartOutput {
        backup: BackupContext {
            name: req.name().into(),
            namespace: req.metadata.namespace.clone(),
            execution: execution.into(),
            members: members.clone(),
            options: req.options.clone(),
            deadline: rfc3339(t + Duration::seconds(req.options.deadline_seconds as i64)),
            extra: NothingMore::default(),
        },
        phase: Phase {
            name: "Initialize".into(),
            started_at: ms(t),
        },
        failure: None,
        observed: None,
    };
    let objects = |failed: bool| -> Vec<Observation> {
        members
            .iter()
            .enumerate()
            .map(|(i, m)| Observation::Present(member_backup(&req, m, i, execution, f, failed)))
            .collect()
    };
    let (progress, end) = (objects(false), objects(sc.failed));
    let phase_now = |name: &str| {
        to_json(&Phase {
            name: name.into(),
            started_at: ms(t),
        })
    };
    let mut loops = sc.pending_loops;
    let mut task = |krate: &str, state: &str, params: &Value| -> TaskResult {
        Ok(match krate {
            "backup-start" => to_json(&start),
            "backup-observe" => {
                let awaited: Await =
                    serde_json::from_value(params["await"].clone()).expect("await");
                let watched = if awaited == Await::Initialized {
                    &members[..1]
                } else {
                    &members[..]
                };
                let obs = match awaited {
                    Await::SnapshotsComplete | Await::Terminal => &end,
                    _ => &progress,
                };
                let verdict = if awaited == Await::SnapshotsComplete && loops > 0 {
                    loops -= 1;
                    Verdict::Pending
                } else {
                    judge(awaited, watched, &obs[..watched.len()])
                };
                to_json(&observe_output(verdict, mode, poll))
            }
            "backup-execute" => phase_now("Execute"),
            "backup-resume-gc" => phase_now("ResumeGc"),
            "backup-teardown" => phase_now("Teardown"),
            "backup-finalize" => to_json(&backup_finalize(
                &req,
                execution,
                &members,
                &end,
                serde_json::from_value(params["failure"].clone()).ok(),
            )),
            other => panic!("{state}: no script for {other}"),
        })
    };
    asl::walk(asl::BACKUP, input.clone(), execution, &mut task)
}

/// What `backup-finalize` returns, built as it builds it.
fn backup_finalize(
    req: &BackupRequest,
    execution: &str,
    members: &[MemberRef],
    obs: &[Observation],
    failure: Option<Failure>,
) -> FinalizeOutput {
    let t = t0();
    let mut doc = VolumeBackupDoc::new(req, execution, members.to_vec(), &rfc3339(t));
    doc.status
        .progress
        .set_condition(vbk::RUNNING, None, None, t);
    let pairs: Vec<(MemberRef, Option<MemberView>)> =
        members.iter().cloned().zip(views(obs)).collect();
    doc.status.refresh_members(&pairs);
    let later = t + Duration::seconds(3600);
    if failure.is_none() {
        doc.status
            .progress
            .set_condition(vbk::SNAPSHOTS_CREATED, None, None, later);
    }
    doc.brfed.snapshots_created_observed_at = Some(ms(t));
    doc.brfed.resume_requested_at = Some(ms(t));
    doc.brfed.teardown_requested_at = Some(ms(later));
    let f = failure.as_ref().map(|f| (f.error.clone(), f.message()));
    doc.status
        .finish(f.as_ref().map(|(e, m)| (e.as_str(), m.as_str())), later);
    let (error, cause) = match doc.status.progress.conditions.iter().rev().find(|c| {
        c.type_ == vbk::FAILED && doc.status.progress.phase.as_deref() == Some(vbk::FAILED)
    }) {
        Some(c) => (
            Some(c.reason.clone().unwrap_or_else(|| "MemberFailed".into())),
            Some(format!(
                "VolumeBackup {}/{} failed: {}",
                req.metadata.namespace,
                req.name(),
                c.message.clone().unwrap_or_default()
            )),
        ),
        None => (None, None),
    };
    FinalizeOutput {
        document: doc,
        error,
        cause,
    }
}

/// `fromBackup` resolved as `restore::steps::resolve_from_backup` resolves it: each cluster's
/// `backup.s3` is the backup template's `s3` with that member's bucket and prefix.
fn resolve(req: &mut RestoreRequest, backup: &BackupRequest) {
    for c in &mut req.spec.clusters {
        let mut s3 = backup
            .spec
            .template
            .get("s3")
            .cloned()
            .unwrap_or_else(|| json!({}));
        s3["bucket"] = json!(backup.bucket());
        s3["prefix"] = json!(backup.member_prefix(&c.k8s_cluster_name));
        c.backup.insert("s3".into(), s3);
    }
}

fn volume_id(member: usize, v: usize) -> String {
    format!(
        "vol-{:017x}",
        0x0a1b_2c3d_0000_0000u64 + (member as u64) * 1000 + v as u64
    )
}

/// A member `Restore` as its data plane shows it (`failed`: restore-data failed after TiKV
/// started; `complete`: every phase done).
fn member_restore(
    req: &RestoreRequest,
    m: &MemberRef,
    i: usize,
    execution: &str,
    f: &Facts,
    failed: bool,
) -> Value {
    let mut obj = build_member_restore(req, i, m, execution);
    let mut conds = vec![condition(rcond::VOLUME_COMPLETE, None, None)];
    if !req.warmup().is_empty() {
        conds.push(condition(rcond::WARMUP_STARTED, None, None));
        conds.push(condition(rcond::WARMUP_COMPLETE, None, None));
    }
    conds.push(condition(rcond::TIKV_COMPLETE, None, None));
    let phase = if failed {
        conds.push(condition(
            rcond::FAILED,
            Some("RestoreDataFailed"),
            Some(&f.failure_message),
        ));
        rcond::FAILED
    } else {
        conds.push(condition(rcond::DATA_COMPLETE, None, None));
        conds.push(condition(rcond::COMPLETE, None, None));
        rcond::COMPLETE
    };
    obj["status"] = json!({"phase": phase, "commitTs": commit_ts(i), "conditions": conds});
    obj
}

/// What `restore::steps::leftovers` reports for member `i` (its `restoremeta` lists `f.volumes`
/// restored volumes; the target TidbCluster is still in recovery mode).
fn leftover(m: &MemberRef, i: usize, o: &Observation, f: &Facts, cleanup: bool) -> Leftover {
    let ctx = format!("--context {} -n {}", m.k8s_cluster_name, m.tc_namespace);
    let mut l = Leftover {
        k8s_cluster_name: m.k8s_cluster_name.clone(),
        ..Default::default()
    };
    if let Observation::Present(v) = o {
        l.member = Some(format!("{}/{}", m.tc_namespace, m.backup_name));
        l.phase = RestoreView::from_object(v).phase;
    }
    l.volumes = (0..f.volumes).map(|v| volume_id(i, v)).collect();
    l.tidb_cluster_in_recovery_mode = true;
    l.cleanup_commands
        .push(format!("kubectl {ctx} delete restore {}", m.backup_name));
    for v in &l.volumes {
        l.cleanup_commands
            .push(format!("aws ec2 delete-volume --volume-id {v}"));
    }
    l.cleanup_commands.push(format!(
        "kubectl {ctx} delete tidbcluster {}  # and its TiKV PVCs; re-create it with spec.recoveryMode: true before retrying",
        m.tc_name
    ));
    if cleanup {
        l.cleaned.push(format!("deleted Restore {}", m.display()));
        for v in &l.volumes {
            l.cleaned.push(format!("deleted volume {v}"));
        }
    }
    l
}

/// Walks a restore with execution input `input` (with `fromBackup` naming the backup made from
/// `backup_input`) through `statemachines/volume-restore.asl.json`.
pub fn walk_restore(
    input: &Value,
    backup_input: &Value,
    execution: &str,
    f: &Facts,
    sc: Scenario,
) -> Walk {
    let mut req = RestoreRequest::from_value(input.clone()).expect("a VolumeRestore");
    let backup = BackupRequest::from_value(backup_input.clone()).expect("a VolumeBackup");
    resolve(&mut req, &backup);
    let (mode, poll) = (req.options.observe_mode, req.options.poll_seconds);
    let members = restore_members(&req);
    let t = t0();
    let ctx = RestoreContext {
        name: req.name().into(),
        namespace: req.metadata.namespace.clone(),
        execution: execution.into(),
        members: members.clone(),
        options: req.options.clone(),
        deadline: rfc3339(t + Duration::seconds(req.options.deadline_seconds as i64)),
        extra: WarmupPlan::of(&req),
    };
    let start = RestoreStartOutput {
        restore: ctx.clone(),
        phase: Phase {
            name: "RestoreVolume".into(),
            started_at: ms(t),
        },
        failure: None,
        observed: None,
        data_member: None,
    };
    let objects = |failed: bool| -> Vec<Observation> {
        members
            .iter()
            .enumerate()
            .map(|(i, m)| Observation::Present(member_restore(&req, m, i, execution, f, failed)))
            .collect()
    };
    let (progress, end) = (objects(false), objects(sc.failed));
    let async_warmup = ctx.extra.warmup == "async";
    let mut loops = sc.pending_loops;
    let mut task = |krate: &str, state: &str, params: &Value| -> TaskResult {
        Ok(match krate {
            "restore-start" => to_json(&start),
            "restore-observe" => {
                let awaited: RestoreAwait =
                    serde_json::from_value(params["await"].clone()).expect("await");
                let dm = params["dataMember"].as_u64().map(|d| d as usize);
                let obs = match awaited {
                    RestoreAwait::VolumesRestored | RestoreAwait::TikvStarted => &progress,
                    _ => &end,
                };
                let verdict = if awaited == RestoreAwait::DataRestored && loops > 0 {
                    loops -= 1;
                    Verdict::Pending
                } else {
                    judge_restore(awaited, &members, obs, dm, async_warmup)
                };
                to_json(&observe_output(verdict, mode, poll))
            }
            "restore-data" => json!(pick_data_member(&members, &progress).expect("commitTs")),
            "restore-finish" => to_json(&Phase {
                name: "RestoreFinish".into(),
                started_at: ms(t),
            }),
            "restore-finalize" => {
                let failure: Option<Failure> = serde_json::from_value(params["failure"].clone())
                    .ok()
                    .flatten();
                let dm = params["dataMember"].as_u64().map(|d| d as usize);
                to_json(&restore_finalize(
                    &req, &ctx, execution, &progress, &end, dm, failure, f, sc,
                ))
            }
            other => panic!("{state}: no script for {other}"),
        })
    };
    asl::walk(asl::RESTORE, input.clone(), execution, &mut task)
}

/// What `restore-finalize` returns, built as it builds it.
#[allow(clippy::too_many_arguments)]
fn restore_finalize(
    req: &RestoreRequest,
    ctx: &RestoreContext,
    execution: &str,
    progress: &[Observation],
    obs: &[Observation],
    data_member: Option<usize>,
    failure: Option<Failure>,
    f: &Facts,
    sc: Scenario,
) -> RestoreFinalizeOutput {
    let t = t0();
    let later = t + Duration::seconds(3600);
    let mut status = VolumeRestoreStatus::default();
    // as the steps write it: restore-start, the observations, restore-data, restore-finish
    status.progress.set_condition("Running", None, None, t);
    status.start_step("RestoreVolume", t);
    status.refresh(&ctx.members, progress, &ctx.extra.warmup, None, t);
    if data_member.is_some() {
        status.start_step("RestoreData", t);
    }
    status.refresh(&ctx.members, obs, &ctx.extra.warmup, data_member, t);
    if failure.is_none() {
        status.start_step("RestartTiKV", later);
    }
    status.refresh(&ctx.members, obs, &ctx.extra.warmup, data_member, later);
    let leftovers: Vec<Leftover> = match &failure {
        Some(_) => ctx
            .members
            .iter()
            .zip(obs)
            .enumerate()
            .map(|(i, (m, o))| leftover(m, i, o, f, sc.cleanup))
            .collect(),
        None => Vec::new(),
    };
    let fm = failure.as_ref().map(|f| (f.error.clone(), f.message()));
    status
        .progress
        .end(fm.as_ref().map(|(e, m)| (e.as_str(), m.as_str())), later);
    let document = VolumeRestoreDoc {
        api_version: FEDERATION_API_VERSION.into(),
        kind: "VolumeRestore".into(),
        metadata: DocMeta {
            meta: req.metadata.clone(),
            creation_timestamp: Some(rfc3339(t)),
        },
        spec: req.spec.clone(),
        status,
        brfed: RestoreRecord {
            execution: execution.into(),
            options: req.options.clone(),
            members: ctx.members.clone(),
            from_backup: req.from_backup.clone(),
            data_member,
            leftovers,
            // As restore::steps::observe: each member's volumes claimed at VolumeComplete.
            volume_claims: ctx
                .members
                .iter()
                .map(|m| brfed_core::restore::status::VolumeClaim {
                    k8s_cluster_name: m.k8s_cluster_name.clone(),
                    claimed: f.volumes,
                    refused: None,
                })
                .collect(),
            deletion: None,
        },
    };
    RestoreFinalizeOutput::new(ctx, document, failure.as_ref())
}

/// Walks the deletion of the backup made from `backup_input` through
/// `statemachines/volume-backup-delete.asl.json`: the data planes clean up (one `pending`
/// observation listing every member first, then `pending_loops` more), then either `Cleaned` or
/// (`failed`) `CleanFailed` with the longest remaining lists a result holds (100 snapshots, 100
/// objects).
pub fn walk_delete(backup_input: &Value, execution: &str, f: &Facts, sc: Scenario) -> Walk {
    let backup = BackupRequest::from_value(backup_input.clone()).expect("a VolumeBackup");
    let (name, ns) = (backup.name().to_string(), backup.metadata.namespace.clone());
    let members: Vec<DeleteMember> = backup
        .spec
        .clusters
        .iter()
        .map(|c| DeleteMember {
            member: MemberRef::new(c, &name),
            bucket: backup.bucket().into(),
            prefix: backup.member_prefix(&c.k8s_cluster_name),
            clean_by: CleanBy::DataPlane,
            data_deleted: true,
            snapshots: f.volumes,
        })
        .collect();
    let total = members.len() * f.volumes;
    let start = DeleteStartOutput {
        deletion: DeleteContext {
            name: name.clone(),
            namespace: ns.clone(),
            execution: execution.into(),
            deadline: rfc3339(t0() + Duration::seconds(6 * 3600)),
            snapshots_per_second: 1.0,
            clean_policy: "Delete".into(),
            members: members.clone(),
        },
        cursor: 0,
    };
    let remaining: Vec<String> = members.iter().map(|m| m.member.display()).collect();
    let mut first = true;
    let mut loops = sc.pending_loops;
    let mut task = |krate: &str, state: &str, _params: &Value| -> TaskResult {
        Ok(match krate {
            "backup-delete-start" => to_json(&start),
            "backup-delete-observe" => {
                let pending = std::mem::take(&mut first) || {
                    let more = loops > 0;
                    loops = loops.saturating_sub(1);
                    more
                };
                to_json(&DeleteObserved {
                    verdict: if pending { "pending" } else { "met" }.into(),
                    remaining: if pending {
                        remaining.clone()
                    } else {
                        Vec::new()
                    },
                    failure: None,
                })
            }
            "backup-delete-snapshots" => to_json(&SnapshotProgress {
                cursor: 0,
                done: true,
                deleted: 0,
                not_found: 0,
                throttled: 0,
                not_owned: Vec::new(),
            }),
            "backup-delete-finish" if sc.failed => {
                let snaps: Vec<String> = (0..total.min(100))
                    .map(|i| format!("snap-{:017x}", i))
                    .collect();
                let objects: Vec<String> = members
                    .iter()
                    .flat_map(|m| {
                        [
                            format!("{}/backupmeta", m.prefix),
                            format!("{}/clustermeta", m.prefix),
                        ]
                    })
                    .take(100)
                    .collect();
                let (n_snaps, n_objects) = (snaps.len(), objects.len());
                to_json(&DeleteResult {
                    name: name.clone(),
                    namespace: ns.clone(),
                    result: "CleanFailed".into(),
                    snapshots_deleted: total - n_snaps,
                    snapshots_retained: 0,
                    remains: Remains {
                        remaining_snapshots: snaps,
                        remaining_objects: objects,
                        ..Remains::default()
                    },
                    failure: Some(Failure::new(
                        "CleanFailed",
                        format!(
                            "{} snapshots and {} objects that cleanPolicy Delete removes still exist (first: {})",
                            n_snaps, n_objects, f.failure_message
                        ),
                    )),
                })
            }
            "backup-delete-finish" => to_json(&DeleteResult {
                name: name.clone(),
                namespace: ns.clone(),
                result: "Cleaned".into(),
                snapshots_deleted: total,
                snapshots_retained: 0,
                remains: Remains::default(),
                failure: None,
            }),
            other => panic!("{state}: no script for {other}"),
        })
    };
    asl::walk(
        asl::DELETE,
        json!({"name": name, "namespace": ns}),
        execution,
        &mut task,
    )
}

/// How names are chosen for a modelled federation of `members` data planes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Naming {
    /// `VolumeBackup` name.
    pub backup: String,
    /// `VolumeRestore` name.
    pub restore: String,
    /// Federation namespace.
    pub namespace: String,
    /// `k8sClusterName` of data plane `i` is this with `{i}` replaced.
    pub cluster: String,
    /// TidbCluster name.
    pub tc_name: String,
    /// TidbCluster namespace.
    pub tc_namespace: String,
    /// Bucket.
    pub bucket: String,
    /// S3 prefix of the backup.
    pub prefix: String,
}

impl Naming {
    /// Names of a plausible production setup: a scheduled backup name, EKS-like data-plane
    /// names, a dated prefix.
    pub fn typical() -> Self {
        Self {
            backup: "prod-nightly-2026-11-22t02-00-00".into(),
            restore: "prod-restore-2026-11-22t09-30-00".into(),
            namespace: "tidb-backup".into(),
            cluster: "prod-tidb-us-west-2-dp-{i}".into(),
            tc_name: "tidb-prod".into(),
            tc_namespace: "tidb-prod".into(),
            bucket: "acme-tidb-prod-ebs-backups".into(),
            prefix: "federated/prod-nightly/2026-11-22t02-00-00".into(),
        }
    }

    /// Every name at its limit: backup and restore names of 43 characters (the longest whose
    /// data-plane Job names fit in 63), DNS-label names of 63, a 63-character bucket, a
    /// 200-character prefix.
    pub fn longest() -> Self {
        let label = |stem: &str| format!("{stem}{}", "x".repeat(63 - stem.len()));
        Self {
            backup: format!("b{}", "x".repeat(42)),
            restore: format!("r{}", "x".repeat(42)),
            namespace: label("ns-"),
            cluster: format!("{}-{{i}}", "c".repeat(60)),
            tc_name: label("tc-"),
            tc_namespace: label("tcns-"),
            bucket: label("bucket-"),
            prefix: format!("p{}", "x".repeat(199)),
        }
    }

    fn cluster(&self, i: usize) -> String {
        self.cluster.replace("{i}", &format!("{i:02}"))
    }

    /// Execution ARN of `name` on state machine `sm`.
    pub fn execution(&self, sm: &str, name: &str) -> String {
        format!("arn:aws:states:us-west-2:123456789012:execution:{sm}:{name}")
    }

    /// The `VolumeBackup` execution input for `members` data planes.
    pub fn backup_input(&self, members: usize, mode: &str, poll_seconds: u64) -> Value {
        let clusters: Vec<Value> = (1..=members)
            .map(|i| json!({"k8sClusterName": self.cluster(i), "tcName": self.tc_name, "tcNamespace": self.tc_namespace}))
            .collect();
        json!({
            "apiVersion": FEDERATION_API_VERSION, "kind": "VolumeBackup",
            "metadata": {"name": self.backup, "namespace": self.namespace,
                "annotations": {"iam.amazonaws.com/role": "arn:aws:iam::123456789012:role/tidb-backup"}},
            "spec": {"clusters": clusters, "template": {
                "br": {"sendCredToTikv": false}, "cleanPolicy": "Delete", "toolImage": "pingcap/br:v7.5.1",
                "s3": {"provider": "aws", "region": "us-west-2", "bucket": self.bucket, "prefix": self.prefix}}},
            "options": {"observeMode": mode, "pollSeconds": poll_seconds},
        })
    }

    /// The `VolumeRestore` execution input (`fromBackup` = this naming's backup).
    pub fn restore_input(&self, members: usize, mode: &str, poll_seconds: u64) -> Value {
        let clusters: Vec<Value> = (1..=members)
            .map(|i| json!({"k8sClusterName": self.cluster(i), "tcName": self.tc_name,
                "tcNamespace": self.tc_namespace, "azName": format!("us-west-2{}", ['a', 'b', 'c'][i % 3])}))
            .collect();
        json!({
            "apiVersion": FEDERATION_API_VERSION, "kind": "VolumeRestore",
            "metadata": {"name": self.restore, "namespace": self.namespace},
            "spec": {"clusters": clusters, "template": {"toolImage": "pingcap/br:v7.5.1", "warmup": "sync", "warmupStrategy": "fio"}},
            "fromBackup": {"namespace": self.namespace, "name": self.backup},
            "options": {"observeMode": mode, "pollSeconds": poll_seconds},
        })
    }
}

/// One modelled execution.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Modelled {
    /// `backup`, `restore`, `delete`.
    pub workflow: String,
    /// What path it took.
    pub scenario: String,
    /// Its walk.
    pub walk: Walk,
}

/// Every workflow at `members` × `volumes` with `naming`, on its happy path and on its failure
/// path with the largest state (watch mode).
pub fn at_scale(naming: &Naming, members: usize, volumes: usize) -> Vec<Modelled> {
    let f = Facts::new(volumes);
    let b = naming.backup_input(members, "watch", 30);
    let r = naming.restore_input(members, "watch", 30);
    let bx = naming.execution("volume-backup", &naming.backup);
    let rx = naming.execution("volume-restore", &naming.restore);
    let dx = naming.execution("volume-backup-delete", &naming.backup);
    let failed = Scenario {
        failed: true,
        ..Default::default()
    };
    let cleanup = Scenario {
        failed: true,
        cleanup: true,
        ..Default::default()
    };
    let m = |workflow: &str, scenario: &str, walk: Walk| Modelled {
        workflow: workflow.into(),
        scenario: scenario.into(),
        walk,
    };
    vec![
        m(
            "backup",
            "complete",
            walk_backup(&b, &bx, &f, Scenario::default()),
        ),
        m(
            "backup",
            "every member failed",
            walk_backup(&b, &bx, &f, failed),
        ),
        m(
            "restore",
            "complete",
            walk_restore(&r, &b, &rx, &f, Scenario::default()),
        ),
        m(
            "restore",
            "failed (leftovers report)",
            walk_restore(&r, &b, &rx, &f, failed),
        ),
        m(
            "restore",
            "failed, cleanupOnFailure",
            walk_restore(&r, &b, &rx, &f, cleanup),
        ),
        m(
            "delete",
            "cleaned",
            walk_delete(&b, &dx, &f, Scenario::default()),
        ),
        m(
            "delete",
            "CleanFailed (longest lists)",
            walk_delete(&b, &dx, &f, failed),
        ),
    ]
}
