//! `brfed preflight -f FILE`: the start steps' own checks (`brfed_core::backup::steps::preflight`,
//! `brfed_core::restore::steps::restore_problems`) run against the data planes and the catalog
//! with no side effect, every problem reported.

use crate::args::Output;
use crate::config::{Aws, Setting, read_kubeconfig};
use crate::error::{CliError, step_message};
use crate::render::{document, emit, table};
use crate::{Ctx, backup, catalog, restore};
use brfed_adapters::{KubeRegistry, S3Store};
use brfed_core::StepError;
use brfed_core::backup::spec::BackupLocations;
use brfed_core::backup::steps::{Env, preflight};
use brfed_core::restore::status::VolumeRestoreDoc;
use brfed_core::restore::steps::{resolve_from_backup, restore_members, restore_problems};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// One problem, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error name (what `create` would fail with).
    pub error: String,
    /// What is wrong.
    pub message: String,
}

impl From<&StepError> for Finding {
    fn from(e: &StepError) -> Self {
        Self {
            error: e.name().into(),
            message: step_message(e),
        }
    }
}

/// What a preflight found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `VolumeBackup` or `VolumeRestore`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// No problem.
    pub ok: bool,
    /// Every problem.
    pub problems: Vec<Finding>,
}

/// The text of a report.
pub fn report_text(r: &Report) -> String {
    if r.ok {
        let checked = if r.kind == "VolumeRestore" {
            "backup restorable, data planes answer, target TidbClusters in recovery mode, backupmeta readable, topology matches, names free"
        } else {
            "data planes answer, TidbClusters ready, names and S3 prefixes free"
        };
        return format!(
            "{} {}/{}: preflight passed ({checked}); nothing was created",
            r.kind, r.namespace, r.name
        );
    }
    let rows: Vec<Vec<String>> = r
        .problems
        .iter()
        .map(|p| vec![p.error.clone(), p.message.clone()])
        .collect();
    format!(
        "{} {}/{}: {} problem(s); nothing was created\n{}",
        r.kind,
        r.namespace,
        r.name,
        r.problems.len(),
        table(&["PROBLEM", "MESSAGE"], &rows)
    )
}

/// Runs `preflight -f path`.
pub async fn run(ctx: &Ctx, path: &Path) -> Result<(), CliError> {
    let doc = crate::input::read(path)?;
    let is_restore = doc.kind() == Some("VolumeRestore") || doc.value.get("fromBackup").is_some();
    if let Some(k) = doc
        .kind()
        .filter(|k| !matches!(*k, "VolumeBackup" | "VolumeRestore"))
    {
        return Err(CliError::input(
            "InvalidSpec",
            format!("kind is `{k}`: preflight takes a VolumeBackup or a VolumeRestore"),
        )
        .about(&doc.source));
    }
    let ns = ctx.namespace.as_deref();
    // Validated here first: an invalid file is refused before any call.
    let report = if is_restore {
        let (req, _) = restore::read_request(path, ns)?;
        let locations = locations(ctx)?;
        let (bucket, aws, planes) = connect(ctx).await?;
        let env = env(&planes, &aws.store, &bucket, locations.as_ref());
        restore_report(&env, req).await
    } else {
        let (req, _) = backup::read_request(path, ns)?;
        let locations = locations(ctx)?;
        let (bucket, aws, planes) = connect(ctx).await?;
        let env = env(&planes, &aws.store, &bucket, locations.as_ref());
        let found = preflight(&env, &req, None).await;
        Report {
            kind: "VolumeBackup".into(),
            namespace: req.metadata.namespace.clone(),
            name: req.name().into(),
            ok: found.is_ok(),
            problems: found
                .problems
                .iter()
                .map(|p| Finding::from(&p.error))
                .collect(),
        }
    };
    emit(&match ctx.output {
        Output::Json | Output::Yaml => document(&report, ctx.output)?,
        _ => report_text(&report),
    });
    if report.ok {
        Ok(())
    } else {
        Err(CliError::failed(
            "PreflightFailed",
            format!(
                "{} {}/{}: {} problem(s): {}",
                report.kind,
                report.namespace,
                report.name,
                report.problems.len(),
                names(&report.problems).join(", ")
            ),
        ))
    }
}

/// The error names of `problems`, each once, in order.
fn names(problems: &[Finding]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for p in problems {
        if !out.contains(&p.error.as_str()) {
            out.push(&p.error);
        }
    }
    out
}

/// The stack's backup locations (`--backup-locations`), when given.
fn locations(ctx: &Ctx) -> Result<Option<BackupLocations>, CliError> {
    let Some(text) = ctx.settings.get(Setting::BackupLocations) else {
        return Ok(None);
    };
    BackupLocations::parse(text).map(Some).map_err(|e| {
        CliError::input(
            "Configuration",
            format!("--backup-locations (BRFED_BACKUP_LOCATIONS, or the stack's output BackupLocations): {e}"),
        )
    })
}

async fn connect(ctx: &Ctx) -> Result<(String, Aws, KubeRegistry), CliError> {
    let bucket = ctx.bucket()?;
    let location = ctx.settings.kubeconfig()?;
    let aws = ctx.aws().await;
    let text = read_kubeconfig(&location, &aws).await?;
    let planes = KubeRegistry::from_yaml(&text, &aws.sdk)
        .await
        .map_err(|e| CliError::from(e).about(&location))?;
    Ok((bucket, aws, planes))
}

fn env<'a>(
    planes: &'a KubeRegistry,
    store: &'a S3Store,
    bucket: &'a str,
    backup_locations: Option<&'a BackupLocations>,
) -> Env<'a, KubeRegistry, S3Store> {
    Env {
        planes,
        store,
        catalog_bucket: bucket,
        observe_budget: Duration::ZERO,
        backup_locations,
    }
}

async fn restore_report(
    env: &Env<'_, KubeRegistry, S3Store>,
    mut req: brfed_core::restore::spec::RestoreRequest,
) -> Report {
    let (ns, name) = (req.metadata.namespace.clone(), req.name().to_string());
    let mut problems: Vec<Finding> = Vec::new();
    match catalog::find::<_, VolumeRestoreDoc>(env.store, env.catalog_bucket, &ns, &name).await {
        Ok(Some(doc)) => problems.push(Finding {
            error: "RestoreExists".into(),
            message: format!(
                "VolumeRestore {ns}/{name} already exists (execution {})",
                doc.brfed.execution
            ),
        }),
        Ok(None) => {}
        Err(e) => problems.push(Finding {
            error: e.name,
            message: e.message,
        }),
    }
    let resolved = resolve_from_backup(env, &mut req).await;
    if let Err(e) = &resolved {
        problems.push(Finding::from(e));
    }
    let members = restore_members(&req);
    for (error, message) in restore_problems(env, &req, &members, "").await {
        // Without the backup, its locations are missing: that is the problem already named.
        if resolved.is_err() && error == "InvalidSpec" {
            continue;
        }
        // Errors a data plane answered come whole (`unknown data plane: ...`): without the
        // prefix, as every other message here.
        let worded = [
            "TidbClusterInvalid",
            "TopologyMismatch",
            "BackupMetaUnreadable",
            "MemberNameConflict",
        ];
        let message = match message.split_once(": ") {
            Some((_, m)) if !worded.contains(&error) => m.to_string(),
            _ => message,
        };
        problems.push(Finding {
            error: error.into(),
            message,
        });
    }
    Report {
        kind: "VolumeRestore".into(),
        namespace: ns,
        name,
        ok: problems.is_empty(),
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_every_problem_with_its_name() {
        let r = Report {
            kind: "VolumeBackup".into(),
            namespace: "br".into(),
            name: "bk1".into(),
            ok: false,
            problems: vec![
                Finding::from(&StepError::UnknownCluster(
                    "`nope` is not a known data plane".into(),
                )),
                Finding::from(&StepError::S3PrefixInUse(
                    "s3://b/p-dp1/clustermeta already exists".into(),
                )),
            ],
        };
        let text = report_text(&r);
        assert!(
            text.starts_with("VolumeBackup br/bk1: 2 problem(s); nothing was created\nPROBLEM"),
            "{text}"
        );
        assert!(
            text.contains("UnknownCluster   `nope` is not a known data plane"),
            "{text}"
        );
        assert!(
            text.contains("S3PrefixInUse    s3://b/p-dp1/clustermeta already exists"),
            "{text}"
        );
        assert_eq!(names(&r.problems), ["UnknownCluster", "S3PrefixInUse"]);
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["problems"][1]["error"], "S3PrefixInUse");
        assert_eq!(json["ok"], false);
    }
}
