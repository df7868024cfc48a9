//! `brfed restore create|get|list|describe|delete`.

use crate::args::{CreateArgs, ListArgs, RestoreCommand, WaitArgs};
use crate::config::Setting;
use crate::error::{CliError, without_prefix};
use crate::kind::{self, Kind, Run};
use crate::render::{Column, Describe, document, emit, lines_or_none, or_none, reason_text};
use crate::{Ctx, input};
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use brfed_core::restore::spec::RestoreRequest;
use brfed_core::restore::status::RestoreGeneration;
use brfed_core::restore::status::VolumeRestoreDoc;
use brfed_core::restore::steps::RestoreDeleteResult;
use chrono::{DateTime, Utc};
use serde_json::Value;
use serde_json::json;
use std::path::Path;

/// Runs one `restore` command.
pub async fn run(ctx: &Ctx, cmd: RestoreCommand) -> Result<(), CliError> {
    match cmd {
        RestoreCommand::Create(CreateArgs { file, wait }) => create(ctx, &file.file, wait).await,
        RestoreCommand::Get { name } => kind::get::<VolumeRestoreDoc>(ctx, &name).await,
        RestoreCommand::List(ListArgs { all_namespaces }) => {
            kind::list::<VolumeRestoreDoc>(ctx, all_namespaces).await
        }
        RestoreCommand::Describe { name } => kind::describe::<VolumeRestoreDoc>(ctx, &name).await,
        RestoreCommand::Delete { name } => delete(ctx, &name).await,
    }
}

/// Reads and validates a `VolumeRestore` file (every problem at once), `-n` applied: the request
/// and the execution input.
pub fn read_request(
    path: &Path,
    namespace: Option<&str>,
) -> Result<(RestoreRequest, Value), CliError> {
    input::read_request(
        path,
        namespace,
        RestoreRequest::from_text,
        RestoreRequest::from_value,
        RestoreRequest::validate,
    )
}

async fn create(ctx: &Ctx, path: &Path, w: WaitArgs) -> Result<(), CliError> {
    let (req, input) = read_request(path, ctx.namespace.as_deref())?;
    let (ns, name) = (req.metadata.namespace.as_str(), req.name());
    ctx.settings.require(Setting::RestoreStateMachine)?;
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    // After a deletion of a restore of that name, its next generation (docs/safety.md).
    let execution = RestoreGeneration::next_execution_name(&aws.store, &bucket, ns, name).await?;
    let state_machine = Setting::RestoreStateMachine;
    kind::create::<VolumeRestoreDoc>(ctx, state_machine, (ns, name), &execution, &input, w).await
}

/// `restore delete NAME`: invokes the restore-delete function and prints what it did.
async fn delete(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let function = ctx.settings.require(Setting::RestoreDeleteFunction)?;
    let ns = ctx.namespace().to_string();
    let aws = ctx.aws().await;
    let payload = serde_json::to_vec(&json!({"name": name, "namespace": ns}))
        .map_err(|e| CliError::failed("Internal", e.to_string()))?;
    let out = aws
        .lambda
        .invoke()
        .function_name(&function)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| {
            CliError::failed(
                "LambdaUnavailable",
                format!("Invoke {function}: {}", DisplayErrorContext(e)),
            )
        })?;
    let body: Value = out
        .payload()
        .and_then(|b| serde_json::from_slice(b.as_ref()).ok())
        .unwrap_or(Value::Null);
    if out.function_error().is_some() {
        return Err(function_error(&body));
    }
    let result: RestoreDeleteResult = serde_json::from_value(body.clone()).map_err(|e| {
        CliError::failed(
            "Internal",
            format!("{function} answered what is not a deletion's result ({e}): {body}"),
        )
    })?;
    emit(&if ctx.output.is_document() {
        document(&result, ctx.output)?
    } else {
        deletion_text(&result)
    });
    Ok(())
}

/// The error a function reported (`{"errorType", "errorMessage"}`): brfed's own names keep their
/// name and lose their prefix, as a step error does; bad input is exit status 2.
pub fn function_error(body: &Value) -> CliError {
    let name = body["errorType"].as_str().unwrap_or("FunctionError");
    let text = body["errorMessage"].as_str().unwrap_or_default();
    let message = match brfed_core::ERROR_NAMES.contains(&name) {
        true => without_prefix(text),
        false => text,
    };
    CliError::of_step(name, message)
}

/// What `restore delete` prints.
pub fn deletion_text(r: &RestoreDeleteResult) -> String {
    let mut d = Describe::new();
    d.field("VolumeRestore", format!("{}/{}", r.namespace, r.name))
        .field("Result", &r.result)
        .field("Execution", or_none(Some(&r.execution)))
        .field("Members Deleted", lines_or_none(&r.members_deleted, ", "))
        .field("Already Gone", lines_or_none(&r.members_gone, ", "));
    d.listed(
        "Foreign Members",
        &r.foreign_members,
        ", ",
        "not this restore's: left",
    )
    .listed(
        "Volumes Left",
        &r.volumes_left,
        ", ",
        "a failed restore's leftovers: a deletion never deletes volumes",
    );
    d.field("Next Execution", &r.next_execution_name);
    d.finish()
}

/// The progress line of a running restore: its phase and the step running.
pub fn progress(doc: &VolumeRestoreDoc) -> String {
    let mut out = doc.status.progress.phase.clone().unwrap_or_default();
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

/// `restore`'s `From Backup`: `namespace/name`.
fn from_backup(doc: &VolumeRestoreDoc) -> Option<String> {
    let f = doc.brfed.from_backup.as_ref()?;
    Some(format!("{}/{}", f.namespace, f.name))
}

impl Kind for VolumeRestoreDoc {
    const KIND: &'static str = "VolumeRestore";
    /// `kubectl get vrt`'s.
    const COLUMNS: &'static [Column<Self>] = &[
        ("STATUS", |d| {
            d.status.progress.phase.clone().unwrap_or_default()
        }),
        ("COMMITTS", kind::commit_ts),
        ("TIMETAKEN", kind::time_taken),
    ];
    const WIDE: &'static [Column<Self>] = &[
        ("CLUSTERS", kind::clusters),
        ("FROMBACKUP", |d| from_backup(d).unwrap_or_default()),
        ("EXECUTION", |d| d.brfed.execution.clone()),
    ];
    fn created(&self) -> Option<&str> {
        self.metadata.creation_timestamp.as_deref()
    }
}

impl Run for VolumeRestoreDoc {
    const COLLECTION: &'static str = "volumerestores";
    const NOT_FOUND: &'static str = "RestoreNotFound";
    const EXISTS: &'static str = "RestoreExists";
    fn progress(&self) -> String {
        progress(self)
    }
    fn describe_text(&self, now: DateTime<Utc>) -> String {
        describe_text(self, now)
    }
}

/// `restore describe`: everything the catalog knows of one restore.
pub fn describe_text(doc: &VolumeRestoreDoc, now: DateTime<Utc>) -> String {
    let (s, b) = (&doc.status, &doc.brfed);
    let template = |k: &str| doc.spec.template.get(k).and_then(Value::as_str);
    let mut d = kind::describe_head(&doc.metadata, &b.execution, now);
    d.field("From Backup", or_none(from_backup(doc).as_deref()))
        .field("Status", or_none(s.progress.phase.as_deref()));
    kind::describe_progress(&mut d, &s.progress, now)
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
                st.map(|r| reason_text(r.reason.as_deref(), r.message.as_deref()))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    d.table_section(
        "Members",
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
    d.columns_section(
        "Steps",
        &s.steps,
        &[
            ("STEP", |st| st.step_name.clone()),
            ("STARTED", |st| st.time_started.clone().unwrap_or_default()),
            ("COMPLETED", |st| {
                st.time_completed.clone().unwrap_or_default()
            }),
            ("TIMETAKEN", |st| st.time_taken.clone().unwrap_or_default()),
        ],
    );
    d.conditions(&s.progress.conditions);
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
                .field("Volumes", lines_or_none(&l.volumes, ", "))
                .field("Recovery Mode", l.tidb_cluster_in_recovery_mode.to_string());
            d.listed(
                "Unconfirmed Volumes",
                &l.unconfirmed_volumes,
                ", ",
                "not proved this restore's: never deleted",
            );
            if let Some(f) = &l.foreign_member {
                d.field("Foreign Member", format!("{f} (not this restore's: left)"));
            }
            if !l.notes.is_empty() {
                d.field("Notes", l.notes.join("\n"));
            }
            d.field("Clean Up", lines_or_none(&l.cleanup_commands, "\n"));
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
    use crate::args::Output;
    use crate::render::parse_time;
    use serde_json::json;

    fn doc() -> VolumeRestoreDoc {
        kind::test_doc(
            "VolumeRestore",
            "rt1",
            json!({
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
            }),
        )
    }

    #[test]
    fn a_function_error_keeps_brfeds_name_and_its_exit_status() {
        let e = function_error(&json!({"errorType": "RestoreRunning",
            "errorMessage": "restore running: br/r1 is Running (execution x)"}));
        assert_eq!(e.name, "RestoreRunning");
        assert_eq!(e.message, "br/r1 is Running (execution x)");
        assert_eq!(e.exit_code(), 1);
        let e = function_error(
            &json!({"errorType": "InvalidSpec", "errorMessage": "invalid spec: name `X`"}),
        );
        assert_eq!((e.message.as_str(), e.exit_code()), ("name `X`", 2));
        let e = function_error(&json!({"errorType": "Runtime.ExitError", "errorMessage": "a: b"}));
        assert_eq!(
            (e.name.as_str(), e.message.as_str()),
            ("Runtime.ExitError", "a: b")
        );
    }

    #[test]
    fn a_deletion_says_what_went_what_was_left_and_the_next_name() {
        let r = RestoreDeleteResult {
            name: "r1".into(),
            namespace: "br".into(),
            result: "Deleted".into(),
            execution: "arn:x".into(),
            members_deleted: vec!["dp1/tidb/fed-r1".into()],
            foreign_members: vec!["dp2/tidb/fed-r1".into()],
            next_execution_name: "br.r1_2".into(),
            ..Default::default()
        };
        let text = deletion_text(&r);
        for needle in [
            "br/r1",
            "Deleted",
            "dp1/tidb/fed-r1",
            "dp2/tidb/fed-r1 (not this restore's: left)",
            "br.r1_2",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn get_prints_the_printer_columns_of_vrt() {
        let now = parse_time("2024-05-01T01:00:00Z").unwrap();
        let t = kind::table_of(&[doc()], Output::Wide, false, now);
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
