//! `make test-faults`: the fault matrix on the local world — every backup phase (initialize,
//! execute, snapshots-created, resume, teardown) and every restore phase (restore-volume, warmup,
//! restore-data, restore-finish) × {member Failed, member Invalid, data plane API down, API server
//! restart mid-watch, observe Lambda killed mid-step, execution stopped, phase deadline}.
//!
//! Each cell runs in its own namespace (its own TiDB cluster and PD). The non-disruptive cells
//! (failed, invalid, stopped, deadline) run side by side (`BRFED_FAULTS_CONCURRENCY`, default 4);
//! the disruptive ones (API down, API restart, Lambda kill) run afterwards one at a time with
//! nothing else running. `BRFED_FAULTS=backup:execute:*,restore,*:*:failed` runs a subset.
//!
//! Prints one table, writes `$CARGO_TARGET_DIR/faults/faults.json`, and exits non-zero when a cell
//! that ran is not clean (something paused, a member not terminal, something unaccounted for, or
//! the fault could not be produced). Cells that cannot be produced are printed `n/a` with the
//! reason. See docs/reliability.md.

use brfed_system_tests::dataplane::{World, missing_world_env};
use brfed_system_tests::faults::drive::Ctx;
use brfed_system_tests::faults::restore::Source;
use brfed_system_tests::faults::{Cell, CellResult, Flow, backup, matrix, restore, selected};
use brfed_system_tests::workflow::Workflows;
use clap::Parser;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

async fn run_cell(ctx: Arc<Ctx>, cell: Cell, src: Option<Result<Source, String>>) -> CellResult {
    let handle = tokio::spawn(async move {
        match cell.flow {
            Flow::Backup => backup::run(&ctx, cell).await,
            Flow::Restore => restore::run(&ctx, cell, src).await,
        }
    });
    let r = match handle.await {
        Ok(r) => r,
        Err(e) => {
            let mut r = CellResult::of(&cell);
            r.notes.push(format!("the harness failed: {e}"));
            r
        }
    };
    eprintln!(
        "[{}] {:<40} {:>6.1}s  {}",
        chrono::Utc::now().format("%H:%M:%S"),
        r.id,
        r.seconds,
        if r.clean { "clean" } else { "NOT CLEAN" }
    );
    r
}

/// The same table in Markdown (written beside the JSON, for docs/reliability.md).
fn markdown_table(results: &[CellResult]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "| cell | execution / error | catalog | GC (from fault) | members | leftovers | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        if let Some(why) = &r.not_applicable {
            let short = why.split(':').next().unwrap_or(why);
            out.push_str(&format!(
                "| {} | n/a: {} | | | | | n/a |\n",
                r.id,
                esc(short)
            ));
            continue;
        }
        let mut left = mark(r.leftovers.ok, &r.leftovers.text);
        if let Some(rec) = &r.recovery {
            left = format!("{left}; {}", mark(rec.ok, &rec.text));
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            esc(&execution_text(r)),
            esc(&mark(r.catalog.ok, &r.catalog.text)),
            esc(&mark(r.gc.ok, &r.gc.text)),
            esc(&mark(r.members.ok, &r.members.text)),
            esc(&left),
            if r.clean { "clean" } else { "**NOT CLEAN**" }
        ));
    }
    out
}

enum Done {
    Cell(usize, Box<CellResult>),
    Source(usize, Result<Source, String>),
}

fn execution_text(r: &CellResult) -> String {
    match &r.error {
        Some(e) => format!("{} {e}", r.status),
        None if r.status.is_empty() => "(not run)".into(),
        None => r.status.clone(),
    }
}

fn mark(ok: bool, text: &str) -> String {
    if ok {
        text.to_string()
    } else {
        format!("✗ {text}")
    }
}

/// The fault matrix on the local world (`make test-faults`): every backup and restore phase ×
/// {member Failed, member Invalid, API down, API restart, observe Lambda killed, execution
/// stopped, phase deadline}.
///
/// Needs the local world's environment (`make world-up; eval "$(make world-env)"`). Prints one
/// table, writes `$CARGO_TARGET_DIR/faults/faults.json`, and exits non-zero when a cell that ran
/// is not clean; see docs/reliability.md.
#[derive(Debug, Parser)]
#[command(name = "brfed-faults")]
struct Args {
    /// The cells to run: comma-separated `flow:phase:fault` patterns, `*` for any part, missing
    /// trailing parts meaning `*` (`backup:execute:*,restore:*:stopped`); all when not given
    #[arg(long, env = "BRFED_FAULTS")]
    cells: Option<String>,
    /// How many non-disruptive cells run side by side (the disruptive ones run alone)
    #[arg(long, env = "BRFED_FAULTS_CONCURRENCY", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(missing) = missing_world_env() {
        eprintln!("brfed-faults: {missing}");
        std::process::exit(2);
    }
    let t0 = Instant::now();
    let started = chrono::Utc::now();
    let filter = args.cells;
    let concurrency = usize::from(args.concurrency);
    let cells: Vec<Cell> = matrix()
        .into_iter()
        .filter(|c| selected(filter.as_deref(), c))
        .collect();
    if cells.is_empty() {
        eprintln!("BRFED_FAULTS={filter:?} selects no cell");
        std::process::exit(2);
    }
    let ctx = Arc::new(Ctx {
        world: World::from_env().await,
        flows: Workflows::from_env().await,
    });

    let mut results: Vec<Option<CellResult>> = vec![None; cells.len()];
    let mut calm = Vec::new();
    let mut disruptive = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        if let Some(why) = c.not_applicable() {
            let mut r = CellResult::of(c);
            r.not_applicable = Some(why.to_string());
            results[i] = Some(r);
        } else if c.fault.disruptive() {
            disruptive.push(i);
        } else {
            calm.push(i);
        }
    }
    eprintln!(
        "{} cells: {} side by side ({concurrency} at a time), {} one at a time, {} n/a",
        cells.len(),
        calm.len(),
        disruptive.len(),
        cells.len() - calm.len() - disruptive.len()
    );
    // the source backups of the disruptive restore cells are taken beside the calm cells
    let mut jobs: Vec<BoxFuture<'static, Done>> = Vec::new();
    for &i in disruptive
        .iter()
        .filter(|&&i| cells[i].flow == Flow::Restore)
    {
        let ctx = ctx.clone();
        jobs.push(Box::pin(async move {
            Done::Source(i, restore::source(&ctx).await)
        }));
    }
    for &i in &calm {
        let (ctx, cell) = (ctx.clone(), cells[i]);
        jobs.push(Box::pin(async move {
            Done::Cell(i, Box::new(run_cell(ctx, cell, None).await))
        }));
    }
    let mut sources: Vec<Option<Result<Source, String>>> = vec![None; cells.len()];
    let mut stream = futures::stream::iter(jobs).buffer_unordered(concurrency);
    while let Some(done) = stream.next().await {
        match done {
            Done::Cell(i, r) => results[i] = Some(*r),
            Done::Source(i, s) => sources[i] = Some(s),
        }
    }
    for &i in &disruptive {
        let src = sources[i].take();
        results[i] = Some(run_cell(ctx.clone(), cells[i], src).await);
    }
    let results: Vec<CellResult> = results.into_iter().flatten().collect();

    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "cell",
            "execution / error",
            "catalog",
            "GC (from fault)",
            "members (·td teardown, ·L in leftovers)",
            "leftovers accounted/total",
            "verdict",
        ]);
    for r in &results {
        if let Some(why) = &r.not_applicable {
            let short: String = why.split(':').next().unwrap_or(why).to_string();
            table.add_row([
                r.id.clone(),
                format!("n/a: {short}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "n/a".into(),
            ]);
            continue;
        }
        let mut left = mark(r.leftovers.ok, &r.leftovers.text);
        if let Some(rec) = &r.recovery {
            left = format!("{left}; {}", mark(rec.ok, &rec.text));
        }
        table.add_row([
            r.id.clone(),
            execution_text(r),
            mark(r.catalog.ok, &r.catalog.text),
            mark(r.gc.ok, &r.gc.text),
            mark(r.members.ok, &r.members.text),
            left,
            if r.clean { "clean" } else { "NOT CLEAN" }.into(),
        ]);
    }
    println!("{table}");
    let markdown = markdown_table(&results);
    let ran: Vec<&CellResult> = results
        .iter()
        .filter(|r| r.not_applicable.is_none())
        .collect();
    let dirty: Vec<&&CellResult> = ran.iter().filter(|r| !r.clean).collect();
    for r in &results {
        if let Some(why) = &r.not_applicable {
            println!("n/a {}: {why}", r.id);
        }
    }
    for r in &dirty {
        println!(
            "NOT CLEAN {} ({}): {}{}",
            r.id,
            r.execution,
            r.notes.join("; "),
            r.cause
                .as_deref()
                .map(|c| format!(" — cause: {c}"))
                .unwrap_or_default()
        );
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{} cells: {} clean, {} not clean, {} n/a; {:.0} s ({:.1} min)",
        results.len(),
        ran.len() - dirty.len(),
        dirty.len(),
        results.len() - ran.len(),
        secs,
        secs / 60.0
    );

    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("faults");
    let doc = json!({
        "date": started.to_rfc3339(),
        "seconds": secs,
        "filter": filter,
        "concurrency": concurrency,
        "cells": results,
    });
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| {
            std::fs::write(
                dir.join("faults.json"),
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )
        })
        .and_then(|()| std::fs::write(dir.join("faults.md"), &markdown))
    {
        eprintln!("writing {}: {e}", dir.display());
    } else {
        println!("JSON: {}", dir.join("faults.json").display());
    }
    if !dirty.is_empty() {
        std::process::exit(1);
    }
}
