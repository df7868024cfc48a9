//! `brfed backup create|get|list|describe|delete`.

use crate::args::{BackupCommand, CreateArgs, ListArgs, WaitArgs};
use crate::config::Setting;
use crate::error::CliError;
use crate::kind::{self, Kind, Run, finished, print_described, started_text};
use crate::render::{
    Column, Describe, between, document, emit, lines_or_none, or_none, reason_text, when,
};
use crate::{Ctx, catalog, input, wait};
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::{MemberStatus, VolumeBackupDoc, humanize_bytes};
use brfed_core::member::MemberRef;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const KIND: &str = "VolumeBackup";
const NOT_FOUND: &str = "BackupNotFound";

/// Runs one `backup` command.
pub async fn run(ctx: &Ctx, cmd: BackupCommand) -> Result<(), CliError> {
    match cmd {
        BackupCommand::Create(CreateArgs { file, wait }) => create(ctx, &file.file, wait).await,
        BackupCommand::Get { name } => kind::get::<VolumeBackupDoc>(ctx, &name).await,
        BackupCommand::List(ListArgs { all_namespaces }) => {
            kind::list::<VolumeBackupDoc>(ctx, all_namespaces).await
        }
        BackupCommand::Describe { name } => kind::describe::<VolumeBackupDoc>(ctx, &name).await,
        BackupCommand::Delete { name, wait } => delete(ctx, &name, wait).await,
    }
}

/// Reads and validates a `VolumeBackup` file (every problem at once), `-n` applied: the request
/// and the execution input.
pub fn read_request(
    path: &Path,
    namespace: Option<&str>,
) -> Result<(BackupRequest, Value), CliError> {
    let (req, value) = input::read_request(
        path,
        namespace,
        BackupRequest::from_text,
        BackupRequest::from_value,
        |req| {
            req.validate(None)?;
            if req.scheduled_by.is_some() {
                return Err(brfed_core::StepError::InvalidSpec(
                    "scheduledBy is set only by a schedule's tick (it makes the backup that schedule's retention's to delete); remove it".into(),
                ));
            }
            Ok(())
        },
    )?;
    warn(&req.warnings());
    Ok((req, value))
}

/// Prints what the request asks that brfed does otherwise, as the original does.
pub fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

async fn create(ctx: &Ctx, path: &Path, w: WaitArgs) -> Result<(), CliError> {
    let (req, input) = read_request(path, ctx.namespace.as_deref())?;
    let id = (req.metadata.namespace.as_str(), req.name());
    let execution = brfed_core::names::execution_name(id.0, id.1);
    kind::create::<VolumeBackupDoc>(ctx, Setting::BackupStateMachine, id, &execution, &input, w)
        .await
}

/// The progress line of a running backup: its phase and how many members are in which phase.
pub fn progress(doc: &VolumeBackupDoc) -> String {
    let mut out = status_of(doc);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &doc.status.backups {
        *counts.entry(b.phase.as_str()).or_default() += 1;
    }
    if !counts.is_empty() {
        let members: Vec<String> = counts
            .iter()
            .map(|(p, n)| format!("{n} {}", if p.is_empty() { "created" } else { p }))
            .collect();
        out.push_str(&format!(" · members: {}", members.join(", ")));
    }
    out
}

/// STATUS: `status.phase`, or the deletion's state while one runs or after it failed (the
/// original's `Cleaned`/`CleanFailed` phases).
pub fn status_of(doc: &VolumeBackupDoc) -> String {
    match &doc.brfed.deletion {
        Some(d) => d.state.clone(),
        None => doc.status.progress.phase.clone().unwrap_or_default(),
    }
}

impl Kind for VolumeBackupDoc {
    const KIND: &'static str = "VolumeBackup";
    /// `kubectl get vbk`'s.
    const COLUMNS: &'static [Column<Self>] = &[
        ("STATUS", status_of),
        ("BACKUPSIZE", |d| {
            d.status.backup_size_readable.clone().unwrap_or_default()
        }),
        ("COMMITTS", kind::commit_ts),
        ("TIMETAKEN", kind::time_taken),
    ];
    const WIDE: &'static [Column<Self>] = &[
        ("CLUSTERS", kind::clusters),
        ("EXECUTION", |d| d.brfed.execution.clone()),
    ];
    fn created(&self) -> Option<&str> {
        self.metadata.creation_timestamp.as_deref()
    }
}

impl Run for VolumeBackupDoc {
    const COLLECTION: &'static str = "volumebackups";
    const NOT_FOUND: &'static str = NOT_FOUND;
    const EXISTS: &'static str = "BackupExists";
    fn progress(&self) -> String {
        progress(self)
    }
    fn describe_text(&self, now: DateTime<Utc>) -> String {
        describe_text(self, now)
    }
}

fn template_str<'a>(doc: &'a VolumeBackupDoc, key: &str) -> Option<&'a str> {
    doc.spec.template.get(key).and_then(Value::as_str)
}

/// `backup describe`: everything the catalog knows of one backup.
pub fn describe_text(doc: &VolumeBackupDoc, now: DateTime<Utc>) -> String {
    let (s, b) = (&doc.status, &doc.brfed);
    let mut d = kind::describe_head(&doc.metadata, &b.execution, now);
    d.field("Status", or_none(Some(&status_of(doc)))).field(
        "Backup Size",
        match (&s.backup_size_readable, s.backup_size) {
            (Some(r), Some(n)) => format!("{r} ({n} bytes)"),
            (None, Some(n)) => format!("{n} bytes"),
            (r, None) => or_none(r.as_deref()),
        },
    );
    kind::describe_progress(&mut d, &s.progress, now).field("Skip GC", doc.skip_gc.to_string());
    let s3 = doc.spec.template.get("s3");
    let s3 = |key: &str| s3.and_then(|s3| s3.get(key)).and_then(Value::as_str);
    let (bucket, prefix) = (
        s3("bucket").unwrap_or_default(),
        s3("prefix").unwrap_or_default(),
    );
    d.section("Template")
        .field(
            "S3",
            format!("s3://{bucket}/{prefix} (one prefix per member: {prefix}-<k8sClusterName>)"),
        )
        .field(
            "Clean Policy",
            template_str(doc, "cleanPolicy").unwrap_or("Retain"),
        )
        .field("Tool Image", or_none(template_str(doc, "toolImage")));
    d.section("Options")
        .field(
            "Observe Mode",
            serde_json::to_value(b.options.observe_mode)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
        )
        .field(
            "Phase Timeout",
            format!("{} s", b.options.phase_timeout_seconds),
        )
        .field("Deadline", format!("{} s", b.options.deadline_seconds));
    let resumed = s
        .progress
        .conditions
        .iter()
        .find(|c| c.type_ == "SnapshotsCreated" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_deref());
    d.section("GC Pause")
        .field("Requested", when(s.progress.time_started.as_deref(), now))
        .field(
            "Snapshots Created",
            when(b.snapshots_created_observed_at.as_deref(), now),
        )
        .field(
            "Resume Requested",
            when(b.resume_requested_at.as_deref(), now),
        )
        .field("Resumed", when(resumed, now))
        .field(
            "Window",
            between(
                s.progress.time_started.as_deref(),
                b.resume_requested_at.as_deref(),
            )
            .map(|w| format!("{w} (requested -> resume requested)"))
            .unwrap_or_else(|| "<none>".into()),
        )
        .field(
            "Resume Delay",
            between(
                b.snapshots_created_observed_at.as_deref(),
                b.resume_requested_at.as_deref(),
            )
            .map(|w| format!("{w} (last snapshots created -> resume requested)"))
            .unwrap_or_else(|| "<none>".into()),
        );
    if let Some(t) = &b.teardown_requested_at {
        d.field("Teardown Requested", when(Some(t), now));
    }
    // The safety net (docs/reliability.md): members not asked yet, members still running.
    d.listed(
        "Teardown Pending",
        &b.teardown_pending,
        "; ",
        "not asked yet: backup-abort is retried until they are",
    );
    match b.members_settled {
        Some(false) => {
            d.field(
                "Members Settled",
                format!(
                    "false: {} (the schedule's next tick waits)",
                    if b.unsettled_members.is_empty() {
                        "<unknown>".to_string()
                    } else {
                        b.unsettled_members.join("; ")
                    }
                ),
            );
        }
        Some(true) => {
            d.field("Members Settled", "true");
        }
        None => {}
    }
    // Until the members report a status: the members the execution made, nothing more known.
    let members: Vec<(MemberRef, Option<&MemberStatus>)> = if s.backups.is_empty() {
        b.members.iter().map(|m| (m.clone(), None)).collect()
    } else {
        let id = |m: &MemberStatus| MemberRef {
            k8s_cluster_name: m.k8s_cluster_name.clone(),
            tc_name: m.tc_name.clone(),
            tc_namespace: m.tc_namespace.clone(),
            backup_name: m.backup_name.clone(),
        };
        s.backups.iter().map(|m| (id(m), Some(m))).collect()
    };
    let member_rows: Vec<Vec<String>> = members
        .into_iter()
        .map(|(id, status)| {
            let mut row = vec![
                id.k8s_cluster_name,
                format!("{}/{}", id.tc_namespace, id.tc_name),
                id.backup_name,
            ];
            match status {
                Some(m) => row.extend([
                    m.phase.clone(),
                    m.backup_path.clone().unwrap_or_default(),
                    m.backup_size
                        .map(|n| humanize_bytes(n.max(0) as u64))
                        .unwrap_or_default(),
                    m.commit_ts.clone().unwrap_or_default(),
                    reason_text(m.reason.as_deref(), m.message.as_deref()),
                ]),
                None => row.resize(8, String::new()),
            }
            row
        })
        .collect();
    d.table_section(
        "Members",
        &[
            "CLUSTER",
            "TIDBCLUSTER",
            "MEMBER",
            "PHASE",
            "BACKUPPATH",
            "SIZE",
            "COMMITTS",
            "REASON",
        ],
        &member_rows,
    );
    d.conditions(&s.progress.conditions);
    match &b.deletion {
        None => {
            d.empty_section("Deletion", "<none>");
        }
        Some(x) => {
            d.section("Deletion")
                .field("State", &x.state)
                .field("Execution", or_none(Some(&x.execution)))
                .field(
                    "Requested",
                    when(
                        Some(&x.requested_at)
                            .filter(|t| !t.is_empty())
                            .map(String::as_str),
                        now,
                    ),
                )
                .field(
                    "Remaining Snapshots",
                    lines_or_none(&x.remains.remaining_snapshots, "\n"),
                )
                .field(
                    "Remaining Objects",
                    lines_or_none(&x.remains.remaining_objects, "\n"),
                );
        }
    }
    d.finish()
}

async fn delete(ctx: &Ctx, name: &str, w: WaitArgs) -> Result<(), CliError> {
    let state_machine = ctx.settings.require(Setting::DeleteStateMachine)?;
    let bucket = ctx.bucket()?;
    let ns = ctx.namespace().to_string();
    let aws = ctx.aws().await;
    // Said here at once rather than by a failed execution (the execution's lock decides: two
    // deletions started at once are refused there, this only saves a start).
    let doc: VolumeBackupDoc =
        catalog::get(&aws.store, &bucket, &ns, name, KIND, NOT_FOUND).await?;
    if let Some(d) = doc
        .brfed
        .deletion
        .as_ref()
        .filter(|d| d.state == "Deleting")
    {
        return Err(CliError::failed(
            "DeletionInProgress",
            format!(
                "volumebackup {ns}/{name} is being deleted by {} (since {})",
                d.execution, d.requested_at
            ),
        ));
    }
    let execution = brfed_core::names::deletion_execution_name(&ns, name, Utc::now());
    let input = json!({"name": name, "namespace": ns});
    let arn = wait::start(
        &aws.executions,
        &state_machine,
        &execution,
        &input,
        "DeletionExists",
    )
    .await?;
    let what = format!("volumebackup {ns}/{name} deletion");
    if !w.wait {
        emit(&started_text(ctx.output, KIND, (&ns, name), &what, &arn)?);
        return Ok(());
    }
    let done = wait::wait(aws.executions.client(), &arn, &what, w.timeout, || async {
        catalog::find::<_, VolumeBackupDoc>(&aws.store, &bucket, &ns, name)
            .await
            .ok()
            .flatten()
            .and_then(|d| d.brfed.deletion.map(|x| x.state))
    })
    .await?;
    if done.succeeded() {
        let out = done.output.clone().unwrap_or(Value::Null);
        emit(&if ctx.output.is_document() {
            document(&out, ctx.output)?
        } else {
            deletion_text(&ns, name, &out)
        });
        return Ok(());
    }
    // Failed: the catalog keeps the document with what remains.
    if let Some(doc) = catalog::find::<_, VolumeBackupDoc>(&aws.store, &bucket, &ns, name).await? {
        print_described(&doc, ctx.output)?;
    }
    finished(&done, &what)
}

/// The result of a deletion (the execution's output: `result`, `snapshotsDeleted`, ...).
pub fn deletion_text(ns: &str, name: &str, out: &Value) -> String {
    let mut d = Describe::new();
    d.field("VolumeBackup", format!("{ns}/{name}"))
        .field("Result", or_none(out["result"].as_str()))
        .field(
            "Snapshots Deleted",
            out["snapshotsDeleted"].as_u64().unwrap_or(0).to_string(),
        )
        .field(
            "Snapshots Retained",
            out["snapshotsRetained"].as_u64().unwrap_or(0).to_string(),
        );
    for (key, title) in [
        ("remainingSnapshots", "Remaining Snapshots"),
        ("remainingObjects", "Remaining Objects"),
        ("notOwned", "Not Owned (left)"),
        ("foreignMembers", "Foreign Members (left)"),
    ] {
        let items: Vec<&str> = out[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // What was left on purpose is shown only when there is some.
        if items.is_empty() && matches!(key, "notOwned" | "foreignMembers") {
            continue;
        }
        d.field(title, lines_or_none(&items, "\n"));
    }
    if let Some(f) = out.get("failure").filter(|f| !f.is_null()) {
        d.field(
            "Failure",
            format!(
                "{}: {}",
                f["error"].as_str().unwrap_or(""),
                f["cause"].as_str().unwrap_or("")
            ),
        );
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Output;
    use crate::render::parse_time;

    fn doc() -> VolumeBackupDoc {
        kind::test_doc(
            "VolumeBackup",
            "bk1",
            json!({
                "metadata": {"annotations": {"iam.amazonaws.com/role": "arn:aws:iam::1:role/x"}},
                "spec": {"clusters": [
                    {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb"},
                    {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb"}],
                  "template": {"s3": {"provider": "aws", "bucket": "bkt", "prefix": "p"}, "cleanPolicy": "Delete"}},
                "status": {
                    "backups": [
                      {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb", "backupName": "fed-bk1",
                       "phase": "Complete", "backupPath": "s3://bkt/p-dp1", "backupSize": 1500, "commitTs": "200"},
                      {"k8sClusterName": "dp2", "tcName": "basic", "tcNamespace": "tidb", "backupName": "fed-bk1",
                       "phase": "Complete", "backupPath": "s3://bkt/p-dp2", "backupSize": 1500, "commitTs": "100"}],
                    "timeStarted": "2024-05-01T00:00:00Z", "timeCompleted": "2024-05-01T00:00:12Z", "timeTaken": "12s",
                    "backupSize": 3000, "backupSizeReadable": "3.0 kB", "commitTs": "100", "phase": "Complete",
                    "conditions": [
                      {"type": "Running", "status": "True", "lastTransitionTime": "2024-05-01T00:00:00Z"},
                      {"type": "SnapshotsCreated", "status": "True", "lastTransitionTime": "2024-05-01T00:00:05Z"},
                      {"type": "Complete", "status": "True", "lastTransitionTime": "2024-05-01T00:00:12Z"}]},
                "brfed": {"execution": "arn:aws:states:us-west-2:1:execution:volume-backup:bk1",
                          "snapshotsCreatedObservedAt": "2024-05-01T00:00:04.100Z",
                          "resumeRequestedAt": "2024-05-01T00:00:04.363Z"}
            }),
        )
    }

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T00:05:00Z").unwrap()
    }

    #[test]
    fn get_prints_the_printer_columns_of_vbk() {
        let t = kind::table_of(&[doc()], Output::Table, false, now());
        assert_eq!(
            t,
            "NAME   STATUS     BACKUPSIZE   COMMITTS   TIMETAKEN   AGE\n\
             bk1    Complete   3.0 kB       100        12s         5m"
        );
        let wide = kind::table_of(&[doc()], Output::Wide, true, now());
        assert_eq!(
            wide,
            "NAMESPACE   NAME   STATUS     BACKUPSIZE   COMMITTS   TIMETAKEN   AGE   CLUSTERS   EXECUTION\n\
             br          bk1    Complete   3.0 kB       100        12s         5m    dp1,dp2    \
             arn:aws:states:us-west-2:1:execution:volume-backup:bk1"
        );
    }

    #[test]
    fn describe_shows_members_conditions_and_the_pause_window() {
        let text = describe_text(&doc(), now());
        for needle in [
            "Name:",
            "bk1",
            "Status:",
            "Complete",
            "3.0 kB (3000 bytes)",
            "Commit TS:",
            "s3://bkt/p-dp1",
            "fed-bk1",
            "1.5 kB",
            "Resume Requested:",
            "4.36s (requested -> resume requested)",
            "263ms (last snapshots created -> resume requested)",
            "SnapshotsCreated",
            "Deletion:",
            "iam.amazonaws.com/role=arn:aws:iam::1:role/x",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn a_deletion_shows_as_the_status() {
        let mut d = doc();
        d.brfed.deletion = Some(brfed_core::backup::status::DeletionRecord {
            execution: "x".into(),
            requested_at: "2024-05-01T00:01:00Z".into(),
            state: "CleanFailed".into(),
            remains: brfed_core::backup::status::Remains {
                remaining_snapshots: vec!["snap-1".into()],
                ..Default::default()
            },
        });
        assert_eq!(status_of(&d), "CleanFailed");
        let text = describe_text(&d, now());
        assert!(text.contains("snap-1"), "{text}");
        assert_eq!(progress(&d), "CleanFailed · members: 2 Complete");
    }

    #[test]
    fn the_safety_net_shows_pending_teardowns_and_running_members() {
        let text = describe_text(&doc(), now());
        assert!(!text.contains("Teardown Pending"), "{text}");
        assert!(!text.contains("Members Settled"), "{text}");
        let mut d = doc();
        d.brfed.teardown_pending = vec!["dp1/tidb/basic/fed-bk1: connection refused".into()];
        d.brfed.members_settled = Some(false);
        d.brfed.unsettled_members = vec!["dp2/tidb/basic/fed-bk1 execute".into()];
        let text = describe_text(&d, now());
        assert!(
            text.contains("Teardown Pending:") && text.contains("dp1/tidb/basic/fed-bk1"),
            "{text}"
        );
        assert!(
            text.contains("Members Settled:")
                && text.contains("false: dp2/tidb/basic/fed-bk1 execute"),
            "{text}"
        );
    }

    #[test]
    fn a_deletion_result_reads_its_counts() {
        let out = json!({"name": "bk1", "namespace": "br", "result": "Cleaned", "snapshotsDeleted": 6, "snapshotsRetained": 0});
        let text = deletion_text("br", "bk1", &out);
        assert!(
            text.contains("Result:") && text.contains("Cleaned"),
            "{text}"
        );
        assert!(text.contains("Snapshots Deleted:    6"), "{text}");
        assert!(!text.contains("Not Owned"), "{text}");

        let out = json!({"name": "bk1", "namespace": "br", "result": "Cleaned", "snapshotsDeleted": 6,
                         "snapshotsRetained": 0, "notOwned": ["snap-prod"]});
        let text = deletion_text("br", "bk1", &out);
        assert!(
            text.contains("Not Owned (left):") && text.contains("snap-prod"),
            "{text}"
        );
    }
}
