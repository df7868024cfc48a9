//! `make bench`: brfed's performance figures, as one table, from the local world.
//!
//! - Live runs, watch mode and the 30 s-poll baseline side by side in the same run: repeated
//!   happy-path 3-cluster backups (`BRFED_BENCH_RUNS` in watch mode, one after the other, while
//!   `BRFED_BENCH_POLL_RUNS` poll-mode ones run one after the other beside them), each with one
//!   observer watching every member: pause-window overhead (last member snapshots created →
//!   resume requested) p50/p95, pause window, end-to-end time, state transitions, history
//!   events, largest payload; then a restore of the first watch backup (`fromBackup`) into
//!   freshly seeded recovery-mode TidbClusters, in watch mode and in poll mode.
//! - Every Lambda function: init time (spawned as Lambda does, until its first
//!   `GET /runtime/invocation/next`), debug binary and release zip sizes, peak RSS.
//! - At scale (`BRFED_BENCH_MEMBERS` × `BRFED_BENCH_VOLUMES`, default 50 × 200) without data
//!   planes: brfed's real state objects carried through the real ASL; and the state transitions
//!   and history events of a 1 h and a 24 h backup for several observe budgets.
//! - Cost on AWS (`bench/cost.rs`, prices in `bench/prices.rs`): the first watch backup and
//!   restore priced from their own Lambda invocations (the emulator's journal, at the template's
//!   `MemorySize`), transitions and S3/EventBridge requests; a real backup and restore of 10 min
//!   and 1 h; an hourly schedule for a month; the original's standing cost, and the ratio.
//!
//! Writes everything as JSON to `$CARGO_TARGET_DIR/bench/bench.json`; see docs/performance.md.

use brfed_system_tests::bench::asl::Walk;
use brfed_system_tests::bench::cost::{self, Measured, Requests, Usage};
use brfed_system_tests::bench::model::{self, Facts, Modelled, Scenario};
use brfed_system_tests::bench::runs::{self, BackupRun, Figures, RestoreRun};
use brfed_system_tests::bench::scale::Extrapolation;
use brfed_system_tests::bench::stats::Summary;
use brfed_system_tests::bench::{lambda, prices, scale};
use brfed_system_tests::dataplane::{World, missing_world_env};
use brfed_system_tests::workflow::Workflows;
use chrono::Utc;
use clap::Parser;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL};
use serde_json::json;
use std::time::Instant;

/// brfed's performance figures, as one table, from the local world (`make bench`).
///
/// Needs the local world's environment (`make world-up; eval "$(make world-env)"`). Prints one
/// table and writes every figure as JSON to `$CARGO_TARGET_DIR/bench/bench.json`; see
/// docs/performance.md.
#[derive(Debug, Parser)]
#[command(name = "brfed-bench")]
struct Args {
    /// Watch-mode backups (one after the other; the restores need at least one)
    #[arg(long, env = "BRFED_BENCH_RUNS", default_value_t = 5)]
    runs: usize,
    /// Poll-mode backups beside them (0 also skips the poll-mode restore)
    #[arg(long, env = "BRFED_BENCH_POLL_RUNS", default_value_t = 3)]
    poll_runs: usize,
    /// Seconds between polls of the poll-mode baseline (also read from BENCH_POLL_SECONDS)
    #[arg(long, env = "BRFED_BENCH_POLL_SECONDS", default_value_t = legacy_poll_seconds())]
    poll_seconds: u64,
    /// Starts per Lambda function for the init-time and RSS figures
    #[arg(long, env = "BRFED_BENCH_INIT_STARTS", default_value_t = 3)]
    init_starts: usize,
    /// Data planes of the modelled run at scale
    #[arg(long, env = "BRFED_BENCH_MEMBERS", default_value_t = 50)]
    members: usize,
    /// Volumes per data plane of the modelled run at scale
    #[arg(long, env = "BRFED_BENCH_VOLUMES", default_value_t = 200)]
    volumes: usize,
}

/// `BENCH_POLL_SECONDS`, the knob's older name, or 30.
fn legacy_poll_seconds() -> u64 {
    std::env::var("BENCH_POLL_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(30)
}

fn ms(v: Option<i64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v} ms"))
}

fn p50_p95(s: &Summary) -> String {
    format!("{} / {}", ms(s.p50), ms(s.p95))
}

fn size(n: usize) -> String {
    if n < 10 * 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", n as f64 / 1024.0 / 1024.0)
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / 1024.0 / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn results(runs: &[String]) -> String {
    if runs.is_empty() {
        return "not run".into();
    }
    let ok = runs.iter().filter(|s| *s == "SUCCEEDED").count();
    if ok == runs.len() {
        format!("{ok}/{} SUCCEEDED", runs.len())
    } else {
        format!("{ok}/{} SUCCEEDED ({})", runs.len(), runs.join(", "))
    }
}

fn range(v: &[usize]) -> String {
    match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "n/a".into(),
    }
}

/// Summaries of a set of backup runs.
fn backup_summary(runs: &[BackupRun]) -> serde_json::Value {
    json!({
        "runs": runs,
        "pauseOverheadMs": Summary::of(runs.iter().map(|r| r.pause_overhead_ms)),
        "pauseWindowMs": Summary::of(runs.iter().map(|r| r.pause_window_ms)),
        "endToEndMs": Summary::of(runs.iter().map(|r| Some(r.end_to_end_ms))),
    })
}

fn modelled<'a>(v: &'a [Modelled], workflow: &str, scenario: &str) -> &'a Walk {
    &v.iter()
        .find(|m| m.workflow == workflow && m.scenario == scenario)
        .expect("modelled scenario")
        .walk
}

/// `states/events/payload vs states/events/payload`: the model's walk against a live run's
/// [`Figures`].
fn model_vs_measured(w: &Walk, (states, events, payload): Figures) -> String {
    format!(
        "{}/{}/{} vs {states}/{events}/{payload}",
        w.states_entered, w.history_events, w.largest_payload_bytes
    )
}

/// The JSON of a model check: the walk, and a live run's [`Figures`].
fn model_check_json(w: &Walk, (states, events, payload): Figures) -> serde_json::Value {
    json!({"modelled": w, "measured": {"states": states, "events": events, "largestPayloadBytes": payload}})
}

/// Wall times of the modelled real backups and restores, seconds (10 min, 1 h).
const REAL_WALL_SECONDS: [u64; 2] = [600, 3600];

/// The observe budget of the AWS template's default (`ObserveBudgetSeconds`).
const AWS_OBSERVE_BUDGET: u64 = 600;

/// Observe time assumed for a deletion (its data planes delete the snapshots), seconds.
const DELETION_OBSERVE_SECONDS: f64 = 60.0;

/// S3 requests assumed for a schedule tick (read the schedule, record the backup it starts) and
/// for a retention sweep over one schedule (list the schedules and the schedule's backups, read
/// the schedule): not measured here.
const TICK_REQUESTS: Requests = Requests {
    s3_tier1: 1,
    s3_tier2: 2,
    events: 0,
    data_plane: 0,
};
const SWEEP_REQUESTS: Requests = Requests {
    s3_tier1: 2,
    s3_tier2: 1,
    events: 0,
    data_plane: 0,
};

/// A modelled real execution of `wall_seconds`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Real {
    wall_seconds: u64,
    pending_loops: usize,
    usage: Usage,
    bill: cost::Bill,
}

/// The cost rows' figures.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Costs {
    template_memory_mb: std::collections::BTreeMap<String, u64>,
    backup_measured: Measured,
    restore_measured: Option<Measured>,
    backup_real: Vec<Real>,
    restore_real: Vec<Real>,
    /// Mean billed ms of the backup's short steps: the stand-in for the steps not measured
    /// (deletion steps, schedule tick, retention sweep).
    mean_short_step_ms: u64,
    deletion: Usage,
    tick: Usage,
    sweep: Usage,
    /// One month of an hourly schedule with retention, for each wall time.
    months: Vec<(u64, cost::Month)>,
    original: cost::Standing,
    /// brfed's own standing cost (the template's alarms and dashboard, its EMF metrics).
    monitoring: cost::Monitoring,
    /// Original's standing cost / brfed's month, for each wall time.
    ratios: Vec<(u64, f64)>,
    /// The same, brfed's monitoring added to its month.
    ratios_with_monitoring: Vec<(u64, f64)>,
    assumptions: Vec<&'static str>,
}

fn costing(
    backup: &BackupRun,
    restore: Option<&RestoreRun>,
    three: &Facts,
) -> Result<Costs, String> {
    let memory = cost::template_memory(cost::TEMPLATE)?;
    let mem = |f: &str| {
        memory
            .get(f)
            .copied()
            .ok_or(format!("{f}: no MemorySize in infra/aws/template.yaml"))
    };
    if backup.invocations.is_empty() {
        return Err("the emulator journaled no invocation of the backup (an emulator without GET /_brfed/invocations?)".into());
    }
    let b = cost::measure(
        &backup.invocations,
        backup.state_transitions,
        backup.requests,
        &memory,
    )?;
    let r = restore
        .map(|r| cost::measure(&r.invocations, r.state_transitions, r.requests, &memory))
        .transpose()?;
    let loops = |t: u64| t.div_ceil(AWS_OBSERVE_BUDGET).saturating_sub(1) as usize;
    let backup_real: Vec<Real> = REAL_WALL_SECONDS
        .iter()
        .map(|&t| {
            let transitions = scale::extrapolate("watch", AWS_OBSERVE_BUDGET, t as f64 / 3600.0)
                .state_transitions;
            let usage = cost::real(&b, t as f64, loops(t), transitions);
            Real {
                wall_seconds: t,
                pending_loops: loops(t),
                usage,
                bill: usage.bill(),
            }
        })
        .collect();
    let restore_real: Vec<Real> = match (restore, &r) {
        (Some(rr), Some(rm)) => REAL_WALL_SECONDS
            .iter()
            .map(|&t| {
                let w = model::walk_restore(
                    &rr.input,
                    &backup.input,
                    &rr.arn,
                    three,
                    Scenario {
                        pending_loops: loops(t),
                        ..Default::default()
                    },
                );
                let usage = cost::real(rm, t as f64, loops(t), w.states_entered);
                Real {
                    wall_seconds: t,
                    pending_loops: loops(t),
                    usage,
                    bill: usage.bill(),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let mean_short = b.short_billed_ms / b.short_invocations.max(1);
    // a deletion: the ASL walk of a cleaned deletion, each Task the mean short step (the observe
    // also DELETION_OBSERVE_SECONDS), S3/EventBridge as the backup's
    let d = model::walk_delete(&backup.input, &backup.arn, three, Scenario::default());
    let delete_mb = mem("backup-delete-snapshots")?.max(mem("backup-delete-start")?);
    let deletion = cost::assumed(
        d.tasks_entered as f64,
        mean_short,
        delete_mb,
        d.states_entered as f64,
        backup.requests,
    )
    .plus(Usage {
        gb_seconds: DELETION_OBSERVE_SECONDS * mem("backup-delete-observe")? as f64 / 1024.0,
        ..Default::default()
    });
    let tick = cost::assumed(1.0, mean_short, mem("schedule-tick")?, 0.0, TICK_REQUESTS);
    let sweep = cost::assumed(
        1.0,
        mean_short,
        mem("retention-sweep")?,
        0.0,
        SWEEP_REQUESTS,
    );
    let months: Vec<(u64, cost::Month)> = backup_real
        .iter()
        .map(|br| {
            (
                br.wall_seconds,
                cost::month(
                    br.usage,
                    deletion,
                    tick,
                    sweep,
                    cost::HOURLY_BACKUPS_PER_MONTH,
                    cost::SWEEPS_PER_MONTH,
                ),
            )
        })
        .collect();
    let original = cost::original_standing();
    let series = brfed_adapters::signals::METRICS
        .iter()
        .map(|(_, sets)| sets.len() as u64)
        .sum();
    let monitoring = cost::monitoring(cost::TEMPLATE, series)?;
    let ratios = months
        .iter()
        .map(|(t, m)| (*t, original.total / m.bill.total))
        .collect();
    let ratios_with_monitoring = months
        .iter()
        .map(|(t, m)| (*t, original.total / (m.bill.total + monitoring.usd)))
        .collect();
    Ok(Costs {
        template_memory_mb: memory,
        backup_measured: b,
        restore_measured: r,
        backup_real,
        restore_real,
        mean_short_step_ms: mean_short,
        deletion,
        tick,
        sweep,
        months,
        original,
        monitoring,
        ratios,
        ratios_with_monitoring,
        assumptions: vec![
            "observe functions are billed the workflow's wall time T in all (they hold their watch while a phase runs; at most one runs at a time)",
            "short steps take on AWS what they took here (debug builds, loopback API servers)",
            "deletion: the ASL walk of a cleaned deletion, each Task the backup's mean short step, its observe 60 s, S3/EventBridge requests as the backup's",
            "schedule tick and retention sweep: one invocation of the backup's mean short step; S3 1 PUT + 2 GET (tick), 2 LIST + 1 GET (sweep over one schedule)",
            "free tiers, savings plans, CloudWatch (logs, metrics, alarms, dashboard) and EBS snapshots are left out",
        ],
    })
}

fn usd(v: f64) -> String {
    if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.6}")
    }
}

fn usage_cell(u: &Usage) -> String {
    format!(
        "{:.0} inv, {:.1} GB-s, {:.0} transitions, S3 {:.0}/{:.0}, {:.0} events",
        u.lambda_requests, u.gb_seconds, u.transitions, u.s3_tier1, u.s3_tier2, u.events
    )
}

fn cost_rows(
    row: &mut dyn FnMut(&str, String, String, String),
    costs: Option<&Result<Costs, String>>,
) {
    row(
        "COST ON AWS, us-east-1 list prices (tests/system/src/bench/prices.rs, read 2026-12-05), first watch backup and restore",
        String::new(),
        String::new(),
        String::new(),
    );
    let c = match costs {
        None => {
            row(
                "cost",
                "n/a: no successful watch backup".into(),
                String::new(),
                String::new(),
            );
            return;
        }
        Some(Err(e)) => {
            row("cost", format!("n/a: {e}"), String::new(), String::new());
            return;
        }
        Some(Ok(c)) => c,
    };
    let b = &c.backup_measured;
    row(
        "3-cluster backup as run (template memory)",
        usd(b.bill.total),
        usage_cell(&b.usage),
        format!(
            "Lambda {} + Step Functions {} + S3 {} + EventBridge {}",
            usd(b.bill.lambda),
            usd(b.bill.step_functions),
            usd(b.bill.s3),
            usd(b.bill.eventbridge)
        ),
    );
    if let Some(r) = &c.restore_measured {
        row(
            "3-cluster restore as run (template memory)",
            usd(r.bill.total),
            usage_cell(&r.usage),
            String::new(),
        );
    }
    let reals = |v: &[Real]| {
        v.iter()
            .map(|r| usd(r.bill.total))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    row(
        "real backup of T = 10 min / 1 h (observe ≈ T, B = 600 s)",
        reals(&c.backup_real),
        c.backup_real
            .iter()
            .map(|r| usage_cell(&r.usage))
            .collect::<Vec<_>>()
            .join(" · "),
        String::new(),
    );
    if !c.restore_real.is_empty() {
        row(
            "real restore of T = 10 min / 1 h (observe ≈ T)",
            reals(&c.restore_real),
            c.restore_real
                .iter()
                .map(|r| usage_cell(&r.usage))
                .collect::<Vec<_>>()
                .join(" · "),
            String::new(),
        );
    }
    row(
        "hourly schedule, a month: 730 backups of 10 min / 1 h + 730 deletions + 730 ticks + 8,760 sweeps",
        c.months
            .iter()
            .map(|(_, m)| usd(m.bill.total))
            .collect::<Vec<_>>()
            .join(" / "),
        c.months
            .iter()
            .map(|(_, m)| usage_cell(&m.total))
            .collect::<Vec<_>>()
            .join(" · "),
        format!(
            "deletion, tick, sweep: mean short step {} ms, assumed (docs/performance.md)",
            c.mean_short_step_ms
        ),
    );
    row(
        "original: control-plane EKS cluster + manager pod, a month",
        usd(c.original.total),
        format!(
            "EKS {} + {:.0} % of a t3.medium {}",
            usd(c.original.eks_cluster),
            c.original.node_share * 100.0,
            usd(c.original.manager_pod)
        ),
        String::new(),
    );
    let m = &c.monitoring;
    row(
        "brfed's standing monitoring, a month (not usage)",
        usd(m.usd),
        format!(
            "{} alarms, {} dashboard, {} EMF metric series (one value per dimension)",
            m.alarms, m.dashboards, m.metric_series
        ),
        "CloudWatch prices of prices.rs: assumptions".into(),
    );
    let ratio = |v: &[(u64, f64)]| {
        v.iter()
            .map(|(_, r)| format!("{r:.1}×"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    row(
        "original / brfed, a month (10 min / 1 h backups)",
        ratio(&c.ratios),
        format!(
            "with brfed's monitoring: {}",
            ratio(&c.ratios_with_monitoring)
        ),
        String::new(),
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(missing) = missing_world_env() {
        eprintln!("brfed-bench: {missing}");
        std::process::exit(2);
    }
    let (poll_seconds, n_watch, n_poll) = (args.poll_seconds, args.runs, args.poll_runs);
    let (starts, members, volumes) = (args.init_starts, args.members, args.volumes);
    let world = World::from_env().await;
    let flows = Workflows::from_env().await;
    let began = Instant::now();
    eprintln!(
        "bench: {n_watch} watch-mode backups then 2 restores, beside {n_poll} {poll_seconds} s-poll backups (each about a minute)"
    );
    let watch_side = async {
        let mut backups = Vec::new();
        for i in 0..n_watch {
            let r = runs::backup(&world, &flows, "watch", poll_seconds).await;
            eprintln!(
                "bench: watch backup {}/{n_watch}: {} in {} ms",
                i + 1,
                r.status,
                r.end_to_end_ms
            );
            backups.push(r);
        }
        let mut restores: Vec<RestoreRun> = Vec::new();
        if let Some(source) = backups.iter().find(|r| r.status == "SUCCEEDED") {
            let modes: &[&str] = if n_poll > 0 {
                &["watch", "poll"]
            } else {
                &["watch"]
            };
            for mode in modes {
                let r = runs::restore(&world, &flows, source, mode, poll_seconds).await;
                eprintln!(
                    "bench: {mode} restore: {} in {} ms",
                    r.status, r.end_to_end_ms
                );
                restores.push(r);
            }
        }
        (backups, restores)
    };
    let poll_side = async {
        let mut backups = Vec::new();
        for i in 0..n_poll {
            let r = runs::backup(&world, &flows, "poll", poll_seconds).await;
            eprintln!(
                "bench: poll backup {}/{n_poll}: {} in {} ms",
                i + 1,
                r.status,
                r.end_to_end_ms
            );
            backups.push(r);
        }
        backups
    };
    let ((watch, restores), poll) = tokio::join!(watch_side, poll_side);
    let live_seconds = began.elapsed().as_secs();
    eprintln!("bench: live runs took {live_seconds} s; starting every function {starts} times");
    let functions = lambda::measure(&lambda::function_names(), starts).await;

    // at scale, and the extrapolation
    let payloads = scale::payloads(members, volumes);
    let laws: Vec<scale::Law> = [
        ("watch", 20),
        ("watch", 600),
        ("watch", 840),
        ("poll", poll_seconds),
    ]
    .into_iter()
    .map(|(m, i)| scale::law(m, i))
    .collect();
    let extrapolations: Vec<scale::Extrapolation> = [1.0, 24.0]
        .into_iter()
        .flat_map(|h| {
            laws.iter()
                .map(move |l| scale::extrapolate(&l.mode, l.interval_seconds, h))
        })
        .collect();
    let ext = |mode: &str, interval: u64, hours: f64| {
        extrapolations
            .iter()
            .find(|e| e.mode == mode && e.interval_seconds == interval && e.hours == hours)
            .expect("extrapolated")
    };

    // the model, for this run's own 3 members: does it find what the history shows?
    let three = Facts {
        volume_bytes: 10 << 30,
        ..Facts::new(2)
    };
    let source = watch.iter().find(|r| r.status == "SUCCEEDED");
    let backup_check = source.map(|r| {
        (
            model::walk_backup(&r.input, &r.arn, &three, Scenario::default()),
            r,
        )
    });
    let restore_check = source.and_then(|s| {
        restores
            .iter()
            .find(|r| r.mode == "watch" && r.status == "SUCCEEDED")
            .map(|r| {
                (
                    model::walk_restore(&r.input, &s.input, &r.arn, &three, Scenario::default()),
                    r,
                )
            })
    });

    // --- cost on AWS -----------------------------------------------------------------------------
    let costs = source.map(|s| {
        costing(
            s,
            restores
                .iter()
                .find(|r| r.mode == "watch" && r.status == "SUCCEEDED"),
            &three,
        )
    });

    // --- the table ------------------------------------------------------------------------------
    let ws = |f: fn(&BackupRun) -> Option<i64>| Summary::of(watch.iter().map(f));
    let ps = |f: fn(&BackupRun) -> Option<i64>| Summary::of(poll.iter().map(f));
    let overhead = (ws(|r| r.pause_overhead_ms), ps(|r| r.pause_overhead_ms));
    let window = (ws(|r| r.pause_window_ms), ps(|r| r.pause_window_ms));
    let e2e = (ws(|r| Some(r.end_to_end_ms)), ps(|r| Some(r.end_to_end_ms)));
    let overhead_ok = overhead.0.p95.is_some_and(|v| v <= 1000);
    let restore_of = |mode: &str| restores.iter().find(|r| r.mode == mode);
    let rcell = |mode: &str, f: &dyn Fn(&RestoreRun) -> String| {
        restore_of(mode).map_or_else(|| "not run".to_string(), f)
    };

    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(150)
        .set_header(vec![
            "brfed bench (local world)".to_string(),
            "watch".to_string(),
            format!("{poll_seconds} s poll"),
            "issue".to_string(),
        ]);
    let mut row = |a: &str, b: String, c: String, d: String| {
        table.add_row(vec![a.to_string(), b, c, d]);
    };
    row(
        &format!("3-CLUSTER BACKUP, instant data plane: {n_watch} watch / {n_poll} poll runs"),
        String::new(),
        String::new(),
        String::new(),
    );
    row(
        "result",
        results(&watch.iter().map(|r| r.status.clone()).collect::<Vec<_>>()),
        results(&poll.iter().map(|r| r.status.clone()).collect::<Vec<_>>()),
        String::new(),
    );
    row(
        "pause-window overhead p50 / p95",
        p50_p95(&overhead.0),
        p50_p95(&overhead.1),
        format!("p95 ≤ 1 s in watch mode: {}", verdict(overhead_ok)),
    );
    row(
        "GC/scheduler pause window p50 / p95",
        p50_p95(&window.0),
        p50_p95(&window.1),
        String::new(),
    );
    row(
        "end-to-end time p50 / p95",
        p50_p95(&e2e.0),
        p50_p95(&e2e.1),
        String::new(),
    );
    row(
        "state transitions",
        range(
            &watch
                .iter()
                .map(|r| r.state_transitions)
                .collect::<Vec<_>>(),
        ),
        range(&poll.iter().map(|r| r.state_transitions).collect::<Vec<_>>()),
        String::new(),
    );
    row(
        "history events",
        range(&watch.iter().map(|r| r.history_events).collect::<Vec<_>>()),
        range(&poll.iter().map(|r| r.history_events).collect::<Vec<_>>()),
        String::new(),
    );
    row(
        "largest state payload",
        size(
            watch
                .iter()
                .map(|r| r.largest_payload_bytes)
                .max()
                .unwrap_or_default(),
        ),
        size(
            poll.iter()
                .map(|r| r.largest_payload_bytes)
                .max()
                .unwrap_or_default(),
        ),
        String::new(),
    );
    row(
        "3-CLUSTER RESTORE of the first watch backup (fromBackup): 1 run each",
        String::new(),
        String::new(),
        String::new(),
    );
    row(
        "result",
        rcell("watch", &|r| {
            r.error
                .as_ref()
                .map_or(r.status.clone(), |e| format!("{} ({e})", r.status))
        }),
        rcell("poll", &|r| {
            r.error
                .as_ref()
                .map_or(r.status.clone(), |e| format!("{} ({e})", r.status))
        }),
        String::new(),
    );
    row(
        "end-to-end time",
        rcell("watch", &|r| ms(Some(r.end_to_end_ms))),
        rcell("poll", &|r| ms(Some(r.end_to_end_ms))),
        String::new(),
    );
    row(
        "state transitions / history events",
        rcell("watch", &|r| {
            format!("{} / {}", r.state_transitions, r.history_events)
        }),
        rcell("poll", &|r| {
            format!("{} / {}", r.state_transitions, r.history_events)
        }),
        String::new(),
    );
    row(
        "largest state payload",
        rcell("watch", &|r| size(r.largest_payload_bytes)),
        rcell("poll", &|r| size(r.largest_payload_bytes)),
        String::new(),
    );
    row(
        &format!("LAMBDA FUNCTIONS ({starts} starts each)"),
        "init p50 · peak RSS served (init-only)".into(),
        "debug binary · release zip (unzipped)".into(),
        String::new(),
    );
    for f in &functions {
        let rss = match (f.rss_served_kib, f.rss_init_kib) {
            (Some(s), Some(i)) => format!("{} ({})", mib(s * 1024), mib(i * 1024)),
            (None, Some(i)) => format!("- ({})", mib(i * 1024)),
            (Some(s), None) => mib(s * 1024),
            (None, None) => "n/a".into(),
        };
        let init = if f.init_failures.is_empty() {
            ms(f.init_p50_ms)
        } else {
            format!("{} ({} failed)", ms(f.init_p50_ms), f.init_failures.len())
        };
        let zip = match (f.release_zip_bytes, f.release_bootstrap_bytes) {
            (Some(z), Some(b)) => format!("{} ({})", mib(z), mib(b)),
            (Some(z), None) => mib(z),
            _ => "no zip".into(),
        };
        row(
            &f.name,
            format!("{init} · {rss}"),
            format!("{} · {zip}", f.debug_binary_bytes.map_or("n/a".into(), mib)),
            String::new(),
        );
    }
    row(
        &format!(
            "AT SCALE: {members} data planes × {volumes} volumes, modelled (state objects through the ASL)"
        ),
        String::new(),
        String::new(),
        String::new(),
    );
    let t = &payloads.typical;
    let l = &payloads.longest_names;
    let under = |w: &Walk| w.largest_payload_bytes < 64 * 1024;
    let pair = |v: &[Modelled], wf: &str, a: &str, b: &str| {
        let (x, y) = (modelled(v, wf, a), modelled(v, wf, b));
        (
            format!(
                "{} / {}",
                size(x.largest_payload_bytes),
                size(y.largest_payload_bytes)
            ),
            under(x) && under(y),
        )
    };
    let (b_cell, b_ok) = pair(t, "backup", "complete", "every member failed");
    row(
        "largest payload, backup: complete / all members failed",
        b_cell,
        String::new(),
        format!("< 64 KiB: {}", verdict(b_ok)),
    );
    let (r_cell, r_ok) = pair(t, "restore", "complete", "failed (leftovers report)");
    let rc = modelled(t, "restore", "failed, cleanupOnFailure");
    row(
        "largest payload, restore: complete / failed / failed + cleanupOnFailure",
        format!("{r_cell} / {}", size(rc.largest_payload_bytes)),
        String::new(),
        format!(
            "< 64 KiB: {}{}",
            verdict(r_ok && under(rc)),
            if modelled(t, "restore", "complete").largest_payload_bytes < 64 * 1024 && !r_ok {
                " (complete PASS; failed: brfed.leftovers lists every volume)"
            } else {
                ""
            }
        ),
    );
    let (d_cell, d_ok) = pair(t, "delete", "cleaned", "CleanFailed (longest lists)");
    row(
        "largest payload, delete: cleaned / CleanFailed",
        d_cell,
        String::new(),
        format!("< 64 KiB: {}", verdict(d_ok)),
    );
    let lb = modelled(l, "backup", "every member failed");
    let lr = modelled(l, "restore", "complete");
    row(
        "largest payload, every name at its length limit: backup failed / restore complete",
        format!(
            "{} / {}",
            size(lb.largest_payload_bytes),
            size(lr.largest_payload_bytes)
        ),
        String::new(),
        format!(
            "worst case; < 64 KiB: {}, < 256 KiB (AWS): {}",
            verdict(under(lb) && under(lr)),
            verdict(lb.largest_payload_bytes.max(lr.largest_payload_bytes) < 256 * 1024)
        ),
    );
    row(
        "model check, this run's 3 members: states/events/payload, model vs measured",
        backup_check.as_ref().map_or("n/a".into(), |(w, r)| {
            format!("backup {}", model_vs_measured(w, r.figures()))
        }),
        restore_check.as_ref().map_or("n/a".into(), |(w, r)| {
            format!("restore {} (watch)", model_vs_measured(w, r.figures()))
        }),
        String::new(),
    );
    let hour_ok = |i: u64| ext("watch", i, 1.0).state_transitions <= 100;
    // the watch budgets of the 1 h rows: 20 s, 600 s, 840 s
    let at_budgets = |figure: fn(&Extrapolation) -> usize| {
        let [a, b, c] = [20, 600, 840].map(|i| figure(ext("watch", i, 1.0)));
        format!("{a} / {b} / {c}")
    };
    row(
        "1 h backup: state transitions (watch: budget 20 s / 600 s / 840 s)",
        at_budgets(|e| e.state_transitions),
        ext("poll", poll_seconds, 1.0).state_transitions.to_string(),
        format!(
            "≤ 100: {} at 600 and 840 s, {} at 20 s",
            verdict(hour_ok(600) && hour_ok(840)),
            verdict(hour_ok(20))
        ),
    );
    row(
        "1 h backup: history events (same budgets)",
        at_budgets(|e| e.history_events),
        ext("poll", poll_seconds, 1.0).history_events.to_string(),
        String::new(),
    );
    let day = |i: u64, mode: &str| {
        let e = ext(mode, i, 24.0);
        format!("{} / {}", e.state_transitions, e.history_events)
    };
    let law_of = |mode: &str, i: u64| {
        laws.iter()
            .find(|l| l.mode == mode && l.interval_seconds == i)
            .expect("law")
    };
    row(
        "24 h backup: transitions / events (budget 20 s · 840 s)",
        format!("{} · {}", day(20, "watch"), day(840, "watch")),
        day(poll_seconds, "poll"),
        format!(
            "{} events reached after {:.1} h (20 s), {:.0} h (840 s), {:.1} h (poll)",
            scale::HISTORY_LIMIT,
            law_of("watch", 20).max_hours_within_history_limit,
            law_of("watch", 840).max_hours_within_history_limit,
            law_of("poll", poll_seconds).max_hours_within_history_limit
        ),
    );
    cost_rows(&mut row, costs.as_ref());
    println!("{table}");

    // --- JSON ------------------------------------------------------------------------------------
    let thresholds = json!([
        {"what": "pause-window overhead p95 ≤ 1 s in watch mode", "value": overhead.0.p95, "pass": overhead_ok},
        {"what": "≤ 100 state transitions for a 1 h backup (watch, budget 600 s and 840 s)",
            "value": [ext("watch", 600, 1.0).state_transitions, ext("watch", 840, 1.0).state_transitions],
            "pass": hour_ok(600) && hour_ok(840)},
        {"what": "≤ 100 state transitions for a 1 h backup (watch, local budget 20 s)",
            "value": ext("watch", 20, 1.0).state_transitions, "pass": hour_ok(20)},
        {"what": format!("largest payload < 64 KiB at {members} × {volumes}: backup"), "pass": b_ok},
        {"what": format!("largest payload < 64 KiB at {members} × {volumes}: restore, complete"),
            "value": modelled(t, "restore", "complete").largest_payload_bytes,
            "pass": under(modelled(t, "restore", "complete"))},
        {"what": format!("largest payload < 64 KiB at {members} × {volumes}: restore, failed (leftovers)"),
            "value": modelled(t, "restore", "failed (leftovers report)").largest_payload_bytes,
            "pass": under(modelled(t, "restore", "failed (leftovers report)")) && under(rc)},
        {"what": format!("largest payload < 64 KiB at {members} × {volumes}: delete"), "pass": d_ok},
    ]);
    let doc = json!({
        "date": Utc::now().to_rfc3339(),
        "command": "make bench",
        "config": {"watchRuns": n_watch, "pollRuns": n_poll, "pollSeconds": poll_seconds,
            "initStarts": starts, "members": members, "volumes": volumes, "liveSeconds": live_seconds},
        "backup": {"watch": backup_summary(&watch), "poll": backup_summary(&poll)},
        "restore": restores,
        "lambda": functions,
        "scale": {"payloads": payloads, "laws": laws, "extrapolations": extrapolations},
        "modelCheck": {
            "backup": backup_check.map(|(w, r)| model_check_json(&w, r.figures())),
            "restore": restore_check.map(|(w, r)| model_check_json(&w, r.figures())),
        },
        "thresholds": thresholds,
        "cost": costs.as_ref().map(|c| match c {
            Ok(c) => json!(c),
            Err(e) => json!({"error": e}),
        }),
        "prices": prices::ALL,
    });
    let dir = lambda::target_dir().join("bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("JSON"))
        .expect("write bench.json");
    println!("written to {}", path.display());
    let failed = watch
        .iter()
        .chain(&poll)
        .map(|r| &r.status)
        .chain(restores.iter().map(|r| &r.status))
        .any(|s| s != "SUCCEEDED");
    if failed || watch.is_empty() {
        std::process::exit(1);
    }
}
