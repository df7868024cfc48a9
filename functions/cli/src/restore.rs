//! `brfed restore create|get|list|describe`.

use crate::args::{Output, RestoreCommand, WaitArgs};
use crate::backup::{conditions, finished, no_resources, started_text};
use crate::config::Setting;
use crate::error::CliError;
use crate::render::{
    Describe, age, document, emit, list_document, note, or_none, pairs, table, when,
};
use crate::{Ctx, catalog, input, wait};
use brfed_core::restore::spec::RestoreRequest;
use brfed_core::restore::status::VolumeRestoreDoc;
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::Path;

const KIND: &str = "VolumeRestore";
const NOT_FOUND: &str = "RestoreNotFound";

/// Runs one `restore` command.
pub async fn run(ctx: &Ctx, cmd: RestoreCommand) -> Result<(), CliError> {
    match cmd {
        RestoreCommand::Create { file, wait } => create(ctx, &file.file, wait).await,
        RestoreCommand::Get { name } => get(ctx, &name).await,
        RestoreCommand::List { all_namespaces } => list(ctx, all_namespaces).await,
        RestoreCommand::Describe { name } => describe(ctx, &name).await,
    }
}

/// Reads and validates a `VolumeRestore` file (every problem at once), `-n` applied: the request
/// and the execution input.
pub fn read_request(
    path: &Path,
    namespace: Option<&str>,
) -> Result<(RestoreRequest, Value), CliError> {
    let mut doc = input::read(path)?;
    input::apply_namespace(&mut doc.value, namespace)?;
    let about = |e: brfed_core::StepError| CliError::from(e).about(&doc.source);
    let req = RestoreRequest::from_value(doc.value.clone()).map_err(about)?;
    req.validate().map_err(about)?;
    Ok((req, doc.value))
}

async fn create(ctx: &Ctx, path: &Path, w: WaitArgs) -> Result<(), CliError> {
    let (req, input) = read_request(path, ctx.namespace.as_deref())?;
    let state_machine = ctx.settings.require(Setting::RestoreStateMachine)?;
    let bucket = if w.wait { Some(ctx.bucket()?) } else { None };
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let aws = ctx.aws().await;
    // `{namespace}.{name}`: restores of one name in two namespaces are two executions.
    let execution = brfed_core::names::execution_name(&ns, &name);
    let arn = wait::start(
        &aws.executions,
        &state_machine,
        &execution,
        &input,
        "RestoreExists",
    )
    .await?;
    let Some(bucket) = bucket else {
        emit(&started_text(ctx.output, KIND, &ns, &name, &arn)?);
        return Ok(());
    };
    let what = format!("volumerestore {ns}/{name}");
    let done = wait::wait(aws.executions.client(), &arn, &what, w.timeout, || async {
        catalog::find::<_, VolumeRestoreDoc>(&aws.store, &bucket, &ns, &name)
            .await
            .ok()
            .flatten()
            .map(|d| progress(&d))
    })
    .await?;
    let doc = catalog::find::<_, VolumeRestoreDoc>(&aws.store, &bucket, &ns, &name).await?;
    match (&doc, ctx.output) {
        (Some(d), o) if o.is_document() => emit(&document(d, o)?),
        (Some(d), _) => emit(&describe_text(d, Utc::now())),
        (None, o) if o.is_document() => emit(&document(&done.output, o)?),
        (None, _) => {}
    }
    finished(&done, &what)
}

/// The progress line of a running restore: its phase and the step running.
pub fn progress(doc: &VolumeRestoreDoc) -> String {
    let mut out = doc.status.phase.clone().unwrap_or_default();
    let running: Vec<&str> = doc
        .status
        .steps
        .iter()
        .filter(|s| s.time_completed.is_none())
        .map(|s| s.step_name.as_str())
        .collect();
    if !running.is_empty() {
        out.push_str(&format!(" · step {}", running.join(", ")));
    }
    out
}

/// Columns of `restore get|list` (`kubectl get vrt`).
pub const HEADERS: &[&str] = &["NAME", "STATUS", "COMMITTS", "TIMETAKEN", "AGE"];
/// The `-o wide` columns.
pub const WIDE: &[&str] = &["CLUSTERS", "FROMBACKUP", "EXECUTION"];

/// The table of `docs`.
pub fn table_of(
    docs: &[VolumeRestoreDoc],
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
                s.phase.clone().unwrap_or_default(),
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
                row.push(
                    d.brfed
                        .from_backup
                        .as_ref()
                        .map(|f| format!("{}/{}", f.namespace, f.name))
                        .unwrap_or_default(),
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
    let doc: VolumeRestoreDoc =
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
    let docs: Vec<VolumeRestoreDoc> =
        catalog::list(&aws.store, &bucket, "volumerestores", ns).await?;
    if ctx.output.is_document() {
        emit(&list_document(&docs, ctx.output)?);
    } else if docs.is_empty() {
        note(&no_resources(ns));
    } else {
        emit(&table_of(&docs, ctx.output, all_namespaces, Utc::now()));
    }
    Ok(())
}

async fn describe(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let doc: VolumeRestoreDoc =
        catalog::get(&aws.store, &bucket, ctx.namespace(), name, KIND, NOT_FOUND).await?;
    if ctx.output.is_document() {
        emit(&document(&doc, ctx.output)?);
    } else {
        emit(&describe_text(&doc, Utc::now()));
    }
    Ok(())
}

/// `restore describe`: everything the catalog knows of one restore.
pub fn describe_text(doc: &VolumeRestoreDoc, now: DateTime<Utc>) -> String {
    let (m, s, b) = (&doc.metadata, &doc.status, &doc.brfed);
    let template = |k: &str| doc.spec.template.get(k).and_then(Value::as_str);
    let mut d = Describe::new();
    d.field("Name", &m.meta.name)
        .field("Namespace", &m.meta.namespace)
        .field("Labels", pairs(&m.meta.labels))
        .field("Annotations", pairs(&m.meta.annotations))
        .field("Created", when(m.creation_timestamp.as_deref(), now))
        .field("Execution", or_none(Some(&b.execution)))
        .field(
            "From Backup",
            b.from_backup
                .as_ref()
                .map(|f| format!("{}/{}", f.namespace, f.name))
                .unwrap_or_else(|| "<none>".into()),
        )
        .field("Status", or_none(s.phase.as_deref()))
        .field("Commit TS", or_none(s.commit_ts.as_deref()))
        .field("Started", when(s.time_started.as_deref(), now))
        .field("Completed", when(s.time_completed.as_deref(), now))
        .field("Time Taken", or_none(s.time_taken.as_deref()))
        .field("Warmup", or_none(template("warmup")))
        .field(
            "Warmup Strategy",
            template("warmupStrategy").unwrap_or("hybrid"),
        )
        .field(
            "Restore Data On",
            b.data_member
                .and_then(|i| b.members.get(i))
                .map(|m| m.k8s_cluster_name.clone())
                .unwrap_or_else(|| "<none>".into()),
        );
    let rows: Vec<Vec<String>> = doc
        .spec
        .clusters
        .iter()
        .map(|c| {
            let st = s
                .restores
                .iter()
                .find(|r| r.k8s_cluster_name == c.k8s_cluster_name);
            let backup = c
                .backup
                .get("s3")
                .map(|s3| {
                    format!(
                        "s3://{}/{}",
                        s3.get("bucket").and_then(Value::as_str).unwrap_or_default(),
                        s3.get("prefix").and_then(Value::as_str).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            vec![
                c.k8s_cluster_name.clone(),
                format!("{}/{}", c.tc_namespace, c.tc_name),
                st.map(|r| r.restore_name.clone()).unwrap_or_default(),
                c.az_name.clone(),
                st.map(|r| r.phase.clone()).unwrap_or_default(),
                st.and_then(|r| r.commit_ts.clone()).unwrap_or_default(),
                backup,
                st.and_then(|r| match (&r.reason, &r.message) {
                    (Some(a), Some(b)) => Some(format!("{a}: {b}")),
                    (Some(a), None) => Some(a.clone()),
                    _ => None,
                })
                .unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        d.empty_section("Members", "<none>");
    } else {
        d.section("Members").table(
            &[
                "CLUSTER",
                "TIDBCLUSTER",
                "MEMBER",
                "AZ",
                "PHASE",
                "COMMITTS",
                "BACKUP",
                "REASON",
            ],
            &rows,
        );
    }
    if s.steps.is_empty() {
        d.empty_section("Steps", "<none>");
    } else {
        let rows: Vec<Vec<String>> = s
            .steps
            .iter()
            .map(|st| {
                vec![
                    st.step_name.clone(),
                    st.time_started.clone().unwrap_or_default(),
                    st.time_completed.clone().unwrap_or_default(),
                    st.time_taken.clone().unwrap_or_default(),
                ]
            })
            .collect();
        d.section("Steps")
            .table(&["STEP", "STARTED", "COMPLETED", "TIMETAKEN"], &rows);
    }
    conditions(&mut d, &s.conditions);
    if b.leftovers.is_empty() {
        d.empty_section("Leftovers", "<none>");
    } else {
        d.section("Leftovers");
        for l in &b.leftovers {
            d.field("Cluster", &l.k8s_cluster_name)
                .field(
                    "Member",
                    match (&l.member, &l.phase) {
                        (Some(m), Some(p)) => format!("{m} ({p})"),
                        (Some(m), None) => m.clone(),
                        _ => "<none>".into(),
                    },
                )
                .field(
                    "Volumes",
                    if l.volumes.is_empty() {
                        "<none>".into()
                    } else {
                        l.volumes.join(", ")
                    },
                )
                .field("Recovery Mode", l.tidb_cluster_in_recovery_mode.to_string());
            if !l.unconfirmed_volumes.is_empty() {
                d.field(
                    "Unconfirmed Volumes",
                    format!(
                        "{} (not proved this restore's: never deleted)",
                        l.unconfirmed_volumes.join(", ")
                    ),
                );
            }
            if let Some(f) = &l.foreign_member {
                d.field("Foreign Member", format!("{f} (not this restore's: left)"));
            }
            if !l.notes.is_empty() {
                d.field("Notes", l.notes.join("\n"));
            }
            d.field(
                "Clean Up",
                if l.cleanup_commands.is_empty() {
                    "<none>".into()
                } else {
                    l.cleanup_commands.join("\n")
                },
            );
            if !l.cleaned.is_empty() {
                d.field("Cleaned", l.cleaned.join("\n"));
            }
        }
    }
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::parse_time;
    use serde_json::json;

    fn doc() -> VolumeRestoreDoc {
        serde_json::from_value(json!({
            "apiVersion": "federation.pingcap.com/v1alpha1", "kind": "VolumeRestore",
            "metadata": {"name": "rt1", "namespace": "br", "creationTimestamp": "2024-05-01T00:00:00Z"},
            "spec": {"clusters": [
                {"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb", "azName": "us-west-2a",
                 "backup": {"s3": {"bucket": "bkt", "prefix": "p-dp1"}}}],
              "template": {"warmup": "sync"}},
            "status": {
                "restores": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb",
                              "restoreName": "fed-rt1", "phase": "Complete", "commitTs": "100"}],
                "steps": [{"stepName": "RestoreVolume", "timeStarted": "2024-05-01T00:00:00Z",
                           "timeCompleted": "2024-05-01T00:00:03Z", "timeTaken": "3s"},
                          {"stepName": "WarmUp", "timeStarted": "2024-05-01T00:00:03Z"}],
                "commitTs": "100", "phase": "Complete", "timeTaken": "9s",
                "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2024-05-01T00:00:09Z"}]},
            "brfed": {"execution": "arn:x", "fromBackup": {"namespace": "br", "name": "bk1"}, "dataMember": 0,
                      "members": [{"k8sClusterName": "dp1", "tcName": "basic", "tcNamespace": "tidb", "backupName": "fed-rt1"}]}
        }))
        .unwrap()
    }

    #[test]
    fn get_prints_the_printer_columns_of_vrt() {
        let now = parse_time("2024-05-01T01:00:00Z").unwrap();
        let t = table_of(&[doc()], Output::Wide, false, now);
        let lines: Vec<Vec<&str>> = t.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(
            lines[0],
            [
                "NAME",
                "STATUS",
                "COMMITTS",
                "TIMETAKEN",
                "AGE",
                "CLUSTERS",
                "FROMBACKUP",
                "EXECUTION"
            ]
        );
        assert_eq!(
            lines[1],
            [
                "rt1", "Complete", "100", "9s", "60m", "dp1", "br/bk1", "arn:x"
            ]
        );
    }

    #[test]
    fn describe_shows_members_steps_and_where_the_data_was_restored() {
        let now = parse_time("2024-05-01T01:00:00Z").unwrap();
        let text = describe_text(&doc(), now);
        for needle in [
            "From Backup:",
            "br/bk1",
            "fed-rt1",
            "us-west-2a",
            "s3://bkt/p-dp1",
            "RestoreVolume",
            "Restore Data On:",
            "Leftovers:",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        assert_eq!(progress(&doc()), "Complete · step WarmUp");
    }
}
