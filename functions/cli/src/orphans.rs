//! `brfed orphans [--delete] [--include-retained]`: this stack's snapshots (`brfed.dev/stack` =
//! the catalog bucket) tagged with a federated backup (`brfed.dev/volumebackup`, written by
//! `backup-finalize`) whose backup is no longer in the catalog — a record removed by hand, a
//! deletion that could not finish; those a deletion kept on purpose (`brfed.dev/retained`) only
//! when asked. Reported; deleted only with `--delete`, paced and backing off on EC2 throttling,
//! each read again right before its deletion (`brfed_core::orphans`). Snapshots tagged with a
//! backup but no stack are listed apart and never deleted.

use crate::Ctx;
use crate::error::CliError;
use crate::render::{document, emit, note, table};
use brfed_adapters::Ec2Volumes;
use brfed_core::delete;
use brfed_core::delete::orphans::OrphanGroup;
use serde::Serialize;

/// What `orphans` found (and did).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The stack (catalog bucket).
    stack: String,
    orphans: Vec<OrphanGroup>,
    snapshots: usize,
    retained_left_out: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unknown_stack: Vec<OrphanGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_owned: Vec<String>,
}

/// Runs the command.
pub async fn run(
    ctx: &Ctx,
    delete: bool,
    include_retained: bool,
    per_second: f64,
) -> Result<(), CliError> {
    if !(per_second > 0.0 && per_second <= 100.0) {
        return Err(CliError::input(
            "InvalidArgument",
            format!("--snapshots-per-second {per_second} must be in (0, 100]"),
        ));
    }
    let bucket = ctx.bucket()?;
    let aws = ctx.aws().await;
    let ec2 = Ec2Volumes::new(&aws.sdk);
    let found = delete::orphans::find(&aws.store, &bucket, &ec2, include_retained).await?;
    let snapshots = found.snapshots();
    let mut report = Report {
        stack: bucket.clone(),
        orphans: found.orphans,
        snapshots,
        retained_left_out: found.retained_left_out,
        unknown_stack: found.unknown_stack,
        deleted: None,
        not_owned: Vec::new(),
    };
    if delete && snapshots > 0 {
        note(&format!(
            "deleting {snapshots} snapshot(s) at most {per_second}/s"
        ));
        let p =
            delete::orphans::delete(&ec2, &bucket, &report.orphans, per_second, include_retained)
                .await?;
        report.deleted = Some(p.deleted + p.not_found);
        report.not_owned = p.not_owned;
    }
    if ctx.output.is_document() {
        emit(&document(&report, ctx.output)?);
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = report
        .orphans
        .iter()
        .map(|g| {
            vec![
                g.backup.clone(),
                if g.retained { "retained" } else { "orphan" }.to_string(),
                g.snapshots.len().to_string(),
                g.snapshots.join(","),
            ]
        })
        .collect();
    rows.extend(report.unknown_stack.iter().map(|g| {
        vec![
            g.backup.clone(),
            "unknown-stack".to_string(),
            g.snapshots.len().to_string(),
            g.snapshots.join(","),
        ]
    }));
    if rows.is_empty() {
        emit("no orphan snapshots");
    } else {
        emit(&table(&["BACKUP", "KIND", "SNAPSHOTS", "IDS"], &rows));
    }
    if report.retained_left_out > 0 {
        emit(&format!(
            "{} snapshot(s) kept on purpose by a deletion left out: --include-retained lists them",
            report.retained_left_out
        ));
    }
    if !report.unknown_stack.is_empty() {
        emit(
            "unknown-stack: tagged with a backup but no stack (older versions): never deleted here",
        );
    }
    match report.deleted {
        Some(n) => emit(&format!("deleted {n} snapshot(s)")),
        None if report.snapshots > 0 => emit("not deleted: run again with --delete to delete them"),
        None => {}
    }
    if !report.not_owned.is_empty() {
        emit(&format!(
            "left (no longer this stack's orphans when read before deletion): {}",
            report.not_owned.join(",")
        ));
    }
    Ok(())
}
