//! `brfed backup create|get|list|describe|delete`.

use crate::args::{BackupCommand, Output, WaitArgs};
use crate::config::Setting;
use crate::error::CliError;
use crate::render::{
    Describe, age, between, document, emit, list_document, note, or_none, pairs, table, when,
};
use crate::{Ctx, catalog, input, wait};
use brfed_core::backup::spec::BackupRequest;
use brfed_core::backup::status::VolumeBackupDoc;
use brfed_core::backup::status::humanize_bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const KIND: &str = "VolumeBackup";
const NOT_FOUND: &str = "BackupNotFound";

/// Runs one `backup` command.
pub async fn run(ctx: &Ctx, cmd: BackupCommand) -> Result<(), CliError> {
    match cmd {
        BackupCommand::Create { file, wait } => create(ctx, &file.file, wait).await,
        BackupCommand::Get { name } => get(ctx, &name).await,
        BackupCommand::List { all_namespaces } => list(ctx, all_namespaces).await,
        BackupCommand::Describe { name } => describe(ctx, &name).await,
        BackupCommand::Delete { name, wait } => delete(ctx, &name, wait).await,
    }
}

/// Reads and validates a `VolumeBackup` file (every problem at once), `-n` applied: the request
/// and the execution input.
pub fn read_request(
    path: &Path,
    namespace: Option<&str>,
) -> Result<(BackupRequest, Value), CliError> {
    let mut doc = input::read(path)?;
    let about = |e: brfed_core::StepError| CliError::from(e).about(&doc.source);
    let mut req = BackupRequest::from_text(&doc.text).map_err(about)?;
    if namespace.is_some() {
        input::apply_namespace(&mut doc.value, namespace)?;
        req = BackupRequest::from_value(doc.value.clone()).map_err(about)?;
    }
    req.validate(None).map_err(about)?;
    if req.scheduled_by.is_some() {
        return Err(about(brfed_core::StepError::InvalidSpec(
            "scheduledBy is set only by a schedule's tick (it makes the backup that schedule's retention's to delete); remove it".into(),
        )));
    }
    Ok((req, doc.value))
}

async fn create(ctx: &Ctx, path: &Path, w: WaitArgs) -> Result<(), CliError> {
    let (req, input) = read_request(path, ctx.namespace.as_deref())?;
    let state_machine = ctx.settings.require(Setting::BackupStateMachine)?;
    let bucket = if w.wait { Some(ctx.bucket()?) } else { None };
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let aws = ctx.aws().await;
    // `{ns}.{name}`: a repeated create is refused by Step Functions, and the same name in
    // another namespace is another backup.
    let arn = wait::start(
        &aws.executions,
        &state_machine,
        &brfed_core::names::execution_name(&ns, &name),
        &input,
        "BackupExists",
    )
    .await?;
    let Some(bucket) = bucket else {
        emit(&started_text(ctx.output, KIND, &ns, &name, &arn)?);
        return Ok(());
    };
    let what = format!("volumebackup {ns}/{name}");
    let done = wait::wait(aws.executions.client(), &arn, &what, w.timeout, || async {
        catalog::find::<_, VolumeBackupDoc>(&aws.store, &bucket, &ns, &name)
            .await
            .ok()
            .flatten()
            .map(|d| progress(&d))
    })
    .await?;
    let doc = catalog::find::<_, VolumeBackupDoc>(&aws.store, &bucket, &ns, &name).await?;
    match (&doc, ctx.output) {
        (Some(d), o) if o.is_document() => emit(&document(d, o)?),
        (Some(d), _) => emit(&describe_text(d, Utc::now())),
        (None, o) if o.is_document() => emit(&document(&done.output, o)?),
        (None, _) => {}
    }
    finished(&done, &what)
}

/// What `create` prints without `--wait`.
pub fn started_text(
    output: Output,
    kind: &str,
    ns: &str,
    name: &str,
    arn: &str,
) -> Result<String, CliError> {
    if output.is_document() {
        document(
            &json!({"kind": kind, "namespace": ns, "name": name, "execution": arn}),
            output,
        )
    } else {
        Ok(format!(
            "{} {ns}/{name} started (execution {arn})",
            kind.to_lowercase()
        ))
    }
}

/// Ok for a succeeded execution, the execution's own error name and cause otherwise.
pub fn finished(done: &wait::Finished, what: &str) -> Result<(), CliError> {
    if done.succeeded() {
        return Ok(());
    }
    let name = done
        .error
        .clone()
        .filter(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'))
        .unwrap_or_else(|| "ExecutionFailed".into());
    // A Lambda error reaches the execution's cause as {"errorType", "errorMessage", ...}.
    let cause = done.cause.clone().unwrap_or_default();
    let cause = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(String::from))
        .unwrap_or(cause);
    Err(CliError::failed(
        &name,
        format!("{what}: the execution ended {}: {cause}", done.status),
    ))
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
        None => doc.status.phase.clone().unwrap_or_default(),
    }
}

/// Columns of `backup get|list` (`kubectl get vbk`), then the `-o wide` ones.
pub const HEADERS: &[&str] = &[
    "NAME",
    "STATUS",
    "BACKUPSIZE",
    "COMMITTS",
    "TIMETAKEN",
    "AGE",
];
/// The `-o wide` columns.
pub const WIDE: &[&str] = &["CLUSTERS", "EXECUTION"];

/// The table of `docs`.
pub fn table_of(
    docs: &[VolumeBackupDoc],
    output: Output,
    all_namespaces: bool,
    now: DateTime<Utc>,
) -> String {
    let wide = output == Output::Wide;
    let mut headers: Vec<&str> = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend_from_slice(HEADERS);
    if wide {
        headers.extend_from_slice(WIDE);
    }
    let rows: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            let s = &d.status;
            let mut row = Vec::new();
            if all_namespaces {
                row.push(d.metadata.meta.namespace.clone());
            }
            row.extend([
                d.metadata.meta.name.clone(),
                status_of(d),
                s.backup_size_readable.clone().unwrap_or_default(),
                s.commit_ts.clone().unwrap_or_default(),
                s.time_taken.clone().unwrap_or_default(),
                age(d.metadata.creation_timestamp.as_deref(), now),
            ]);
            if wide {
                row.push(
                    d.spec
                        .clusters
                        .iter()
                        .map(|c| c.k8s_cluster_name.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                row.push(d.brfed.execution.clone());
            }
            row
        })
        .collect();
    table(&headers, &rows)
}

async fn get(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let doc: VolumeBackupDoc =
        catalog::get(&aws.store, &bucket, ctx.namespace(), name, KIND, NOT_FOUND).await?;
    if ctx.output.is_document() {
        emit(&document(&doc, ctx.output)?);
    } else {
        emit(&table_of(&[doc], ctx.output, false, Utc::now()));
    }
    Ok(())
}

async fn list(ctx: &Ctx, all_namespaces: bool) -> Result<(), CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let ns = (!all_namespaces).then(|| ctx.namespace());
    let docs: Vec<VolumeBackupDoc> =
        catalog::list(&aws.store, &bucket, "volumebackups", ns).await?;
    if ctx.output.is_document() {
        emit(&list_document(&docs, ctx.output)?);
    } else if docs.is_empty() {
        note(&no_resources(ns));
    } else {
        emit(&table_of(&docs, ctx.output, all_namespaces, Utc::now()));
    }
    Ok(())
}

/// kubectl's note for an empty list.
pub fn no_resources(ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".into(),
    }
}

async fn describe(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let doc: VolumeBackupDoc =
        catalog::get(&aws.store, &bucket, ctx.namespace(), name, KIND, NOT_FOUND).await?;
    if ctx.output.is_document() {
        emit(&document(&doc, ctx.output)?);
    } else {
        emit(&describe_text(&doc, Utc::now()));
    }
    Ok(())
}

fn template_str<'a>(doc: &'a VolumeBackupDoc, key: &str) -> Option<&'a str> {
    doc.spec.template.get(key).and_then(Value::as_str)
}

/// `backup describe`: everything the catalog knows of one backup.
pub fn describe_text(doc: &VolumeBackupDoc, now: DateTime<Utc>) -> String {
    let (m, s, b) = (&doc.metadata, &doc.status, &doc.brfed);
    let mut d = Describe::new();
    d.field("Name", &m.meta.name)
        .field("Namespace", &m.meta.namespace)
        .field("Labels", pairs(&m.meta.labels))
        .field("Annotations", pairs(&m.meta.annotations))
        .field("Created", when(m.creation_timestamp.as_deref(), now))
        .field("Execution", or_none(Some(&b.execution)))
        .field("Status", or_none(Some(&status_of(doc))))
        .field(
            "Backup Size",
            match (&s.backup_size_readable, s.backup_size) {
                (Some(r), Some(n)) => format!("{r} ({n} bytes)"),
                (None, Some(n)) => format!("{n} bytes"),
                (r, None) => or_none(r.as_deref()),
            },
        )
        .field("Commit TS", or_none(s.commit_ts.as_deref()))
        .field("Started", when(s.time_started.as_deref(), now))
        .field("Completed", when(s.time_completed.as_deref(), now))
        .field("Time Taken", or_none(s.time_taken.as_deref()))
        .field("Skip GC", doc.skip_gc.to_string());
    let bucket = doc
        .spec
        .template
        .get("s3")
        .and_then(|s3| s3.get("bucket"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let prefix = doc
        .spec
        .template
        .get("s3")
        .and_then(|s3| s3.get("prefix"))
        .and_then(Value::as_str)
        .unwrap_or_default();
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
        .conditions
        .iter()
        .find(|c| c.type_ == "SnapshotsCreated" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_deref());
    d.section("GC Pause")
        .field("Requested", when(s.time_started.as_deref(), now))
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
            between(s.time_started.as_deref(), b.resume_requested_at.as_deref())
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
    if !b.teardown_pending.is_empty() {
        d.field(
            "Teardown Pending",
            format!(
                "{} (not asked yet: backup-abort is retried until they are)",
                b.teardown_pending.join("; ")
            ),
        );
    }
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
    let member_rows: Vec<Vec<String>> = if s.backups.is_empty() {
        b.members
            .iter()
            .map(|m| {
                vec![
                    m.k8s_cluster_name.clone(),
                    format!("{}/{}", m.tc_namespace, m.tc_name),
                    m.backup_name.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]
            })
            .collect()
    } else {
        s.backups
            .iter()
            .map(|m| {
                vec![
                    m.k8s_cluster_name.clone(),
                    format!("{}/{}", m.tc_namespace, m.tc_name),
                    m.backup_name.clone(),
                    m.phase.clone(),
                    m.backup_path.clone().unwrap_or_default(),
                    m.backup_size
                        .map(|n| humanize_bytes(n.max(0) as u64))
                        .unwrap_or_default(),
                    m.commit_ts.clone().unwrap_or_default(),
                    match (&m.reason, &m.message) {
                        (Some(r), Some(msg)) => format!("{r}: {msg}"),
                        (Some(r), None) => r.clone(),
                        _ => String::new(),
                    },
                ]
            })
            .collect()
    };
    if member_rows.is_empty() {
        d.empty_section("Members", "<none>");
    } else {
        d.section("Members").table(
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
    }
    conditions(&mut d, &s.conditions);
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
                    if x.remaining_snapshots.is_empty() {
                        "<none>".into()
                    } else {
                        x.remaining_snapshots.join("\n")
                    },
                )
                .field(
                    "Remaining Objects",
                    if x.remaining_objects.is_empty() {
                        "<none>".into()
                    } else {
                        x.remaining_objects.join("\n")
                    },
                );
        }
    }
    d.finish()
}

/// The `Conditions:` section shared by backups and restores.
pub fn conditions(d: &mut Describe, conditions: &[brfed_core::conditions::Condition]) {
    if conditions.is_empty() {
        d.empty_section("Conditions", "<none>");
        return;
    }
    let rows: Vec<Vec<String>> = conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.last_transition_time.clone().unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    d.section("Conditions").table(
        &["TYPE", "STATUS", "LASTTRANSITION", "REASON", "MESSAGE"],
        &rows,
    );
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
    if !w.wait {
        emit(&if ctx.output.is_document() {
            document(
                &json!({"kind": KIND, "namespace": ns, "name": name, "execution": arn}),
                ctx.output,
            )?
        } else {
            format!("volumebackup {ns}/{name} deletion started (execution {arn})")
        });
        return Ok(());
    }
    let what = format!("volumebackup {ns}/{name} deletion");
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
        emit(&if ctx.output.is_document() {
            document(&doc, ctx.output)?
        } else {
            describe_text(&doc, Utc::now())
        });
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
        d.field(
            title,
            if items.is_empty() {
                "<none>".into()
            } else {
                items.join("\n")
            },
        );
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
    use crate::render::parse_time;

    fn doc() -> VolumeBackupDoc {
        serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeBackup",
            "metadata": {"name": "bk1", "namespace": "br", "creationTimestamp": "2024-05-01T00:00:00Z",
                         "annotations": {"iam.amazonaws.com/role": "arn:aws:iam::1:role/x"}},
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
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T00:05:00Z").unwrap()
    }

    #[test]
    fn get_prints_the_printer_columns_of_vbk() {
        let t = table_of(&[doc()], Output::Table, false, now());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "NAME",
                "STATUS",
                "BACKUPSIZE",
                "COMMITTS",
                "TIMETAKEN",
                "AGE"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["bk1", "Complete", "3.0", "kB", "100", "12s", "5m"]
        );
        let wide = table_of(&[doc()], Output::Wide, true, now());
        let head: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(head.first(), Some(&"NAMESPACE"));
        assert_eq!(&head[head.len() - 2..], ["CLUSTERS", "EXECUTION"]);
        assert!(wide.contains("dp1,dp2") && wide.contains("execution:volume-backup:bk1"));
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
            remaining_snapshots: vec!["snap-1".into()],
            ..Default::default()
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

    #[test]
    fn a_failed_execution_is_named_by_its_error() {
        let done = wait::Finished {
            status: "FAILED".into(),
            output: None,
            error: Some("MemberFailed".into()),
            cause: Some("dp2 failed".into()),
        };
        let e = finished(&done, "volumebackup br/bk1").unwrap_err();
        assert_eq!((e.name.as_str(), e.exit_code()), ("MemberFailed", 1));
        assert!(e.message.contains("dp2 failed"));
        let done = wait::Finished {
            status: "ABORTED".into(),
            output: None,
            error: None,
            cause: None,
        };
        assert_eq!(finished(&done, "x").unwrap_err().name, "ExecutionFailed");
    }
}
