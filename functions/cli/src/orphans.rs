//! `brfed orphans [--delete]`: snapshots tagged with a federated backup (`brfed.dev/volumebackup`,
//! written by `backup-finalize`) whose backup is no longer in the catalog — left by a `Retain`
//! deletion, a record removed by hand, a deletion that could not finish. Reported; deleted only
//! with `--delete`, paced and backing off on EC2 throttling (`brfed_core::orphans`).

use crate::Ctx;
use crate::error::CliError;
use crate::render::{document, emit, note, table};
use brfed_adapters::Ec2Volumes;
use brfed_core::orphans::{self, OrphanGroup};
use serde::Serialize;

/// What `orphans` found (and did).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    orphans: Vec<OrphanGroup>,
    snapshots: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
}

/// Runs the command.
pub async fn run(ctx: &Ctx, delete: bool, per_second: f64) -> Result<(), CliError> {
    if !(per_second > 0.0 && per_second <= 100.0) {
        return Err(CliError::input(
            "InvalidArgument",
            format!("--snapshots-per-second {per_second} must be in (0, 100]"),
        ));
    }
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let ec2 = Ec2Volumes::new(&aws.sdk);
    let groups = orphans::find(&aws.store, &bucket, &ec2).await?;
    let snapshots = groups.iter().map(|g| g.snapshots.len()).sum();
    let mut report = Report {
        orphans: groups,
        snapshots,
        deleted: None,
    };
    if delete && snapshots > 0 {
        note(&format!(
            "deleting {snapshots} snapshot(s) at most {per_second}/s"
        ));
        let p = orphans::delete(&ec2, &report.orphans, per_second).await?;
        report.deleted = Some(p.deleted + p.not_found);
    }
    if ctx.output.is_document() {
        emit(&document(&report, ctx.output)?);
        return Ok(());
    }
    if report.orphans.is_empty() {
        emit("no orphan snapshots");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = report
        .orphans
        .iter()
        .map(|g| {
            vec![
                g.backup.clone(),
                g.snapshots.len().to_string(),
                g.snapshots.join(","),
            ]
        })
        .collect();
    emit(&table(&["BACKUP", "SNAPSHOTS", "IDS"], &rows));
    match report.deleted {
        Some(n) => emit(&format!("deleted {n} snapshot(s)")),
        None => emit("not deleted: run again with --delete to delete them"),
    }
    Ok(())
}
