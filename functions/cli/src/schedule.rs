//! `brfed schedule apply|pause|resume|delete|list|get`: `brfed_core::scheduling` on the catalog
//! and EventBridge.

use crate::args::{ListArgs, ScheduleCommand};
use crate::config::{Aws, Setting};
use crate::error::CliError;
use crate::kind::{Kind, print_list, print_one};
use crate::render::{Column, document, emit};
use crate::{Ctx, input};
use brfed_adapters::{EventBridgeRules, SchedulerRuntime};
use brfed_core::StepError;
use brfed_core::schedule;
use brfed_core::schedule::spec::ScheduleRequest;
use brfed_core::schedule::status::ScheduleDoc;
use chrono::Utc;
use std::path::Path;

/// Runs one `schedule` command.
pub async fn run(ctx: &Ctx, cmd: ScheduleCommand) -> Result<(), CliError> {
    match cmd {
        ScheduleCommand::Apply { file } => apply(ctx, &file.file).await,
        ScheduleCommand::Pause { name } => set_paused(ctx, &name, true).await,
        ScheduleCommand::Resume { name } => set_paused(ctx, &name, false).await,
        ScheduleCommand::Delete { name } => delete(ctx, &name).await,
        ScheduleCommand::List(ListArgs { all_namespaces }) => list(ctx, all_namespaces).await,
        ScheduleCommand::Get { name } => get(ctx, &name).await,
    }
}

/// The scheduling environment: the catalog, and the state machine ARNs when they are set (only
/// the tick and the sweep use them; no command here does).
fn runtime(ctx: &Ctx, aws: &Aws) -> Result<SchedulerRuntime, CliError> {
    let s = &ctx.settings;
    Ok(SchedulerRuntime::from_parts(
        &aws.sdk,
        ctx.bucket()?,
        s.get(Setting::BackupStateMachine)
            .unwrap_or_default()
            .into(),
        s.get(Setting::DeleteStateMachine)
            .unwrap_or_default()
            .into(),
    )?)
}

/// Reads and validates a `VolumeBackupSchedule` file (every problem at once), `-n` applied.
pub fn read_request(path: &Path, namespace: Option<&str>) -> Result<ScheduleRequest, CliError> {
    let (req, _) = input::read_request(
        path,
        namespace,
        ScheduleRequest::from_text,
        ScheduleRequest::from_value,
        |req| req.validate(None),
    )?;
    crate::backup::warn(&req.backup_request_for_tick(chrono::Utc::now()).warnings());
    Ok(req)
}

/// `ScheduleNotFound` said as the other commands say a missing name.
fn named(e: StepError) -> CliError {
    match e {
        StepError::ScheduleNotFound(id) => CliError::failed(
            "ScheduleNotFound",
            format!("VolumeBackupSchedule {id} is not in the catalog"),
        ),
        other => other.into(),
    }
}

fn summary(doc: &ScheduleDoc, what: &str) -> String {
    let m = &doc.metadata.meta;
    format!(
        "volumebackupschedule {}/{} {what} (rule {} {}, {})",
        m.namespace,
        m.name,
        doc.brfed.rule,
        if doc.spec.pause {
            "disabled"
        } else {
            "enabled"
        },
        doc.brfed.expression
    )
}

fn show(ctx: &Ctx, doc: &ScheduleDoc, what: &str) -> Result<(), CliError> {
    emit(&if ctx.output.is_document() {
        document(doc, ctx.output)?
    } else {
        summary(doc, what)
    });
    Ok(())
}

async fn apply(ctx: &Ctx, path: &Path) -> Result<(), CliError> {
    let req = read_request(path, ctx.namespace.as_deref())?;
    let tick = ctx.settings.require(Setting::TickFunction)?;
    // A tick EventBridge cannot deliver is retried, then kept in the safety-net queue (which
    // alarms), never dropped: the queue is required, before anything is written.
    let queue = ctx.settings.require(Setting::SafetyNetQueue)?;
    let aws = ctx.aws().await;
    let rt = runtime(ctx, &aws)?;
    let doc = schedule::steps::apply(
        &rt.env(),
        &EventBridgeRules::new(&aws.sdk).with_dead_letter(queue),
        &tick,
        &req,
        None,
    )
    .await?;
    show(ctx, &doc, "configured")
}

async fn set_paused(ctx: &Ctx, name: &str, paused: bool) -> Result<(), CliError> {
    let aws = ctx.aws().await;
    let rt = runtime(ctx, &aws)?;
    let rules = EventBridgeRules::new(&aws.sdk);
    let doc = schedule::steps::set_paused(&rt.env(), &rules, ctx.namespace(), name, paused)
        .await
        .map_err(named)?;
    show(ctx, &doc, if paused { "paused" } else { "resumed" })?;
    if !paused {
        // As the original: the latest tick missed while paused runs now, not at the next one.
        let note = if ctx.settings.get(Setting::BackupStateMachine).is_none() {
            "missed tick: not looked for (--backup-state-machine is not set); the retention sweep runs it".to_string()
        } else {
            match schedule::steps::catch_up(&rt.env(), &doc, Utc::now()).await {
                Ok(None) => String::new(),
                Ok(Some(t)) => format!(
                    "missed tick: {} {}{}",
                    t.backup,
                    t.result,
                    t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                Err(e) => format!(
                    "missed tick: not started ({}: {e}); the retention sweep runs it",
                    e.name()
                ),
            }
        };
        if !note.is_empty() {
            eprintln!("{note}");
        }
    }
    Ok(())
}

async fn delete(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let aws = ctx.aws().await;
    let rt = runtime(ctx, &aws)?;
    let rules = EventBridgeRules::new(&aws.sdk);
    let ns = ctx.namespace();
    let doc = schedule::steps::remove(&rt.env(), &rules, ns, name)
        .await
        .map_err(named)?;
    let kept = rt.env().backups_of(ns, name).await?.len();
    if ctx.output.is_document() {
        return show(ctx, &doc, "deleted");
    }
    emit(&format!(
        "volumebackupschedule {ns}/{name} deleted (rule {} removed); its {kept} backup(s) stay in the catalog: delete them with brfed backup delete",
        doc.brfed.rule
    ));
    Ok(())
}

async fn get(ctx: &Ctx, name: &str) -> Result<(), CliError> {
    let aws = ctx.aws().await;
    let rt = runtime(ctx, &aws)?;
    let doc = schedule::steps::get(&rt.env(), ctx.namespace(), name)
        .await
        .map_err(named)?;
    print_one(&doc, ctx.output)
}

async fn list(ctx: &Ctx, all_namespaces: bool) -> Result<(), CliError> {
    let aws = ctx.aws().await;
    let rt = runtime(ctx, &aws)?;
    let ns = (!all_namespaces).then(|| ctx.namespace());
    let mut docs = rt.env().list(ns).await?;
    docs.sort_by(|a, b| {
        (&a.metadata.meta.namespace, &a.metadata.meta.name)
            .cmp(&(&b.metadata.meta.namespace, &b.metadata.meta.name))
    });
    print_list(&docs, ctx.output, ns)
}

impl Kind for ScheduleDoc {
    const KIND: &'static str = "VolumeBackupSchedule";
    /// `kubectl get vbks -o wide`'s, LASTBACKUP and LASTBACKUPTIME always shown.
    const COLUMNS: &'static [Column<Self>] = &[
        ("SCHEDULE", |d| d.spec.schedule.clone()),
        ("MAXBACKUPS", |d| {
            d.spec
                .max_backups
                .map(|n| n.to_string())
                .unwrap_or_default()
        }),
        ("MAXRESERVEDTIME", |d| {
            d.spec.max_reserved_time.clone().unwrap_or_default()
        }),
        ("PAUSED", |d| d.spec.pause.to_string()),
        ("LASTBACKUP", |d| {
            d.status.last_backup.clone().unwrap_or_default()
        }),
        ("LASTBACKUPTIME", |d| {
            d.status.last_backup_time.clone().unwrap_or_default()
        }),
    ];
    const WIDE: &'static [Column<Self>] = &[
        ("RULE", |d| d.brfed.rule.clone()),
        ("EXPRESSION", |d| d.brfed.expression.clone()),
        // its annotation `brfed.io/rpo`, else the default from its expression (docs/schedule.md)
        ("RPO", |d| {
            d.request()
                .rpo()
                .map(|r| brfed_core::time::go_duration(r.seconds))
                .unwrap_or_default()
        }),
    ];
    fn created(&self) -> Option<&str> {
        self.metadata.creation_timestamp.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Output;
    use crate::kind;
    use crate::render::parse_time;
    use serde_json::json;

    #[test]
    fn list_prints_the_printer_columns_of_vbks() {
        let doc: ScheduleDoc = kind::test_doc(
            "VolumeBackupSchedule",
            "daily",
            json!({
                "spec": {"schedule": "0 0 * * *", "maxReservedTime": "168h",
                         "backupTemplate": {"clusters": [], "template": {}}},
                "status": {"lastBackup": "daily-2024-05-02t00-00-00", "lastBackupTime": "2024-05-02T00:00:00Z"},
                "brfed": {"rule": "brfed-schedule-br.daily", "expression": "cron(0 0 * * ? *)"}
            }),
        );
        let now = parse_time("2024-05-03T00:00:00Z").unwrap();
        let t = kind::table_of(std::slice::from_ref(&doc), Output::Wide, false, now);
        assert_eq!(
            t,
            "NAME    SCHEDULE    MAXBACKUPS   MAXRESERVEDTIME   PAUSED   LASTBACKUP                  \
             LASTBACKUPTIME         AGE   RULE                      EXPRESSION          RPO\n\
             daily   0 0 * * *                168h              false    daily-2024-05-02t00-00-00   \
             2024-05-02T00:00:00Z   2d    brfed-schedule-br.daily   cron(0 0 * * ? *)   48h0m0s"
        );
        assert_eq!(
            summary(&doc, "configured"),
            "volumebackupschedule br/daily configured (rule brfed-schedule-br.daily enabled, cron(0 0 * * ? *))"
        );
    }
}
