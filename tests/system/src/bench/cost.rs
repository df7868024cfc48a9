//! What a backup, a restore and a month of hourly backups cost on AWS, from the run's own
//! measurements, at the list prices of [`crate::bench::prices`]; and the original's standing cost
//! for the same job (see docs/performance.md, "Cost").
//!
//! - **Measured** (one execution as it ran on the local world): every Lambda invocation the
//!   execution made (the emulator journals each with its duration, `GET /_brfed/invocations`),
//!   billed as AWS bills it: duration rounded up to 1 ms × the function's `MemorySize` in
//!   `infra/aws/template.yaml` (not the emulator's 128 MB), plus one request each; the
//!   execution's state transitions (its history); the S3 and EventBridge requests the world made
//!   while it ran (`GET /_brfed/billed-calls`, between its start and its end).
//! - **Modelled** (a real backup or restore that takes `T`): the measured short steps as they
//!   are, plus the observe functions, which hold their watch while a phase runs, so that on AWS
//!   they are billed about `T` in all (at most one observe runs at a time); the transitions and
//!   the extra observe invocations of the ASL walk with `ceil(T / B) − 1` pending loops
//!   ([`crate::bench::scale`]).

use crate::bench::prices;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `infra/aws/template.yaml`, compiled in.
pub const TEMPLATE: &str = include_str!("../../../../infra/aws/template.yaml");

/// Functions that hold a watch while a phase runs (billed about the phase's wall time on AWS).
pub const OBSERVE_FUNCTIONS: &[&str] =
    &["backup-observe", "restore-observe", "backup-delete-observe"];

/// `MemorySize` (MB) of every `AWS::Lambda::Function` of `template`, by function crate (the
/// `FunctionName` is `${NamePrefix}-<crate>`). A function without a `MemorySize` or with a name
/// of another form is an error: nothing may be priced at 0 MB silently.
pub fn template_memory(template: &str) -> Result<BTreeMap<String, u64>, String> {
    let t: serde_json::Value =
        serde_saphyr::from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
    let resources = t["Resources"]
        .as_object()
        .ok_or("template.yaml has no Resources")?;
    let mut out = BTreeMap::new();
    for (id, r) in resources {
        if r["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        let p = &r["Properties"];
        let name = p["FunctionName"]["Fn::Sub"]
            .as_str()
            .and_then(|s| s.strip_prefix("${NamePrefix}-"))
            .ok_or(format!("{id}: FunctionName is not ${{NamePrefix}}-<crate>"))?;
        let mb = p["MemorySize"]
            .as_u64()
            .ok_or(format!("{id} ({name}): no MemorySize"))?;
        out.insert(name.to_string(), mb);
    }
    Ok(out)
}

/// One Lambda invocation, as the emulator journals it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    /// Function (crate) name.
    pub function: String,
    /// Start, seconds since the epoch.
    #[serde(default)]
    pub start: f64,
    /// Duration, ms, as measured around the call.
    pub duration_ms: f64,
    /// Error type, when it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Execution that made it.
    #[serde(default)]
    pub execution: Option<String>,
    /// State that made it.
    #[serde(default)]
    pub state: Option<String>,
}

impl Invocation {
    /// Billed duration: rounded up to 1 ms (at least 1 ms).
    pub fn billed_ms(&self) -> u64 {
        (self.duration_ms.max(0.0).ceil() as u64).max(1)
    }
}

/// The invocations `execution` made (`GET /_brfed/invocations?execution=...`).
pub fn invocations_of(execution: &str) -> Vec<Invocation> {
    let doc = crate::workflow::emulator(
        "GET",
        &format!("/_brfed/invocations?execution={execution}"),
        None,
    );
    serde_json::from_value(doc["invocations"].clone()).unwrap_or_default()
}

/// The last sequence number of the emulator's S3/EventBridge request journal.
pub fn billed_calls_seq() -> u64 {
    crate::workflow::emulator(
        "GET",
        "/_brfed/billed-calls?since=18446744073709551615",
        None,
    )["lastSeq"]
        .as_u64()
        .unwrap_or_default()
}

/// brfed's S3 and EventBridge requests after `since` (sequence number), counted as AWS bills
/// them; the data plane's are counted apart.
pub fn billed_calls_since(since: u64) -> Requests {
    let doc =
        crate::workflow::emulator("GET", &format!("/_brfed/billed-calls?since={since}"), None);
    let mut r = Requests::default();
    for c in doc["calls"].as_array().into_iter().flatten() {
        // the data plane's own requests (backup data, metadata) are the same for both tools
        if c["dataPlane"] == true {
            r.data_plane += 1;
            continue;
        }
        match (c["service"].as_str(), c["kind"].as_str()) {
            (Some("s3"), Some("tier1")) => r.s3_tier1 += 1,
            (Some("s3"), Some("tier2")) => r.s3_tier2 += 1,
            (Some("events"), Some("PutEvents")) => r.events += 1,
            _ => {}
        }
    }
    r
}

/// Billed S3 and EventBridge requests.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    /// S3 PUT, COPY, POST, LIST.
    pub s3_tier1: u64,
    /// S3 GET, HEAD.
    pub s3_tier2: u64,
    /// EventBridge `PutEvents` calls (brfed puts one event per call).
    pub events: u64,
    /// Requests of the data plane (the simulated operator) in the same window: not brfed's, not
    /// priced.
    pub data_plane: u64,
}

/// What is billed, in billing units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Lambda requests.
    pub lambda_requests: f64,
    /// Lambda GB-seconds (billed duration × memory).
    pub gb_seconds: f64,
    /// Step Functions state transitions.
    pub transitions: f64,
    /// S3 PUT/COPY/POST/LIST requests.
    pub s3_tier1: f64,
    /// S3 GET/HEAD requests.
    pub s3_tier2: f64,
    /// EventBridge custom events.
    pub events: f64,
}

impl Usage {
    /// `self + o`.
    pub fn plus(self, o: Usage) -> Usage {
        Usage {
            lambda_requests: self.lambda_requests + o.lambda_requests,
            gb_seconds: self.gb_seconds + o.gb_seconds,
            transitions: self.transitions + o.transitions,
            s3_tier1: self.s3_tier1 + o.s3_tier1,
            s3_tier2: self.s3_tier2 + o.s3_tier2,
            events: self.events + o.events,
        }
    }

    /// `n` times `self`.
    pub fn times(self, n: f64) -> Usage {
        Usage {
            lambda_requests: self.lambda_requests * n,
            gb_seconds: self.gb_seconds * n,
            transitions: self.transitions * n,
            s3_tier1: self.s3_tier1 * n,
            s3_tier2: self.s3_tier2 * n,
            events: self.events * n,
        }
    }

    /// The S3 and EventBridge requests of `r`.
    pub fn of_requests(r: Requests) -> Usage {
        Usage {
            s3_tier1: r.s3_tier1 as f64,
            s3_tier2: r.s3_tier2 as f64,
            events: r.events as f64,
            ..Default::default()
        }
    }

    /// Its price, per service.
    pub fn bill(&self) -> Bill {
        let lambda = self.lambda_requests * prices::LAMBDA_REQUEST.usd
            + self.gb_seconds * prices::LAMBDA_GB_SECOND.usd;
        let step_functions = self.transitions * prices::SFN_TRANSITION.usd;
        let s3 = self.s3_tier1 * prices::S3_TIER1.usd + self.s3_tier2 * prices::S3_TIER2.usd;
        let eventbridge = self.events * prices::EVENTBRIDGE_EVENT.usd;
        Bill {
            lambda,
            step_functions,
            s3,
            eventbridge,
            total: lambda + step_functions + s3 + eventbridge,
        }
    }
}

/// GB-seconds of `billed_ms` at `memory_mb`.
pub fn gb_seconds(billed_ms: u64, memory_mb: u64) -> f64 {
    billed_ms as f64 / 1000.0 * memory_mb as f64 / 1024.0
}

/// US dollars, per service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bill {
    /// Lambda requests and duration.
    pub lambda: f64,
    /// Step Functions transitions.
    pub step_functions: f64,
    /// S3 requests.
    pub s3: f64,
    /// EventBridge events.
    pub eventbridge: f64,
    /// All of it.
    pub total: f64,
}

/// One function's invocations in an execution.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUse {
    /// Invocations.
    pub invocations: u64,
    /// Billed ms, summed.
    pub billed_ms: u64,
    /// Its `MemorySize` in the template.
    pub memory_mb: u64,
}

/// One execution as it ran on the local world.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measured {
    /// Per function.
    pub functions: BTreeMap<String, FunctionUse>,
    /// Billed ms of the short steps (every function but the observes), summed.
    pub short_billed_ms: u64,
    /// Short-step invocations.
    pub short_invocations: u64,
    /// GB-seconds of the short steps, at the template's memory.
    pub short_gb_seconds: f64,
    /// Observe invocations.
    pub observe_invocations: u64,
    /// `MemorySize` of the observe function it used (0 when it used none).
    pub observe_memory_mb: u64,
    /// The execution's billed usage as it ran.
    pub usage: Usage,
    /// Its price.
    pub bill: Bill,
}

/// Prices one execution: `invocations` (the Lambda invocations it made), `transitions` (states
/// entered), `requests` (S3 and EventBridge while it ran), at `memory` (the template's).
pub fn measure(
    invocations: &[Invocation],
    transitions: usize,
    requests: Requests,
    memory: &BTreeMap<String, u64>,
) -> Result<Measured, String> {
    let mut m = Measured::default();
    let mut gbs = 0.0;
    for i in invocations {
        let mb = *memory.get(&i.function).ok_or(format!(
            "{}: no MemorySize in infra/aws/template.yaml",
            i.function
        ))?;
        let f = m.functions.entry(i.function.clone()).or_default();
        f.invocations += 1;
        f.billed_ms += i.billed_ms();
        f.memory_mb = mb;
        let g = gb_seconds(i.billed_ms(), mb);
        gbs += g;
        if OBSERVE_FUNCTIONS.contains(&i.function.as_str()) {
            m.observe_invocations += 1;
            m.observe_memory_mb = m.observe_memory_mb.max(mb);
        } else {
            m.short_invocations += 1;
            m.short_billed_ms += i.billed_ms();
            m.short_gb_seconds += g;
        }
    }
    m.usage = Usage {
        lambda_requests: invocations.len() as f64,
        gb_seconds: gbs,
        transitions: transitions as f64,
        ..Usage::of_requests(requests)
    };
    m.bill = m.usage.bill();
    Ok(m)
}

/// A real execution of `wall_seconds` modelled from a measured one: its short steps as
/// measured, its observe functions billed `wall_seconds` in all at their memory, `loops` more
/// observe invocations (pending loops), `transitions` from the ASL walk with those loops, its S3
/// and EventBridge requests as measured.
pub fn real(m: &Measured, wall_seconds: f64, loops: usize, transitions: usize) -> Usage {
    Usage {
        lambda_requests: (m.short_invocations + m.observe_invocations + loops as u64) as f64,
        gb_seconds: m.short_gb_seconds + wall_seconds * m.observe_memory_mb as f64 / 1024.0,
        transitions: transitions as f64,
        s3_tier1: m.usage.s3_tier1,
        s3_tier2: m.usage.s3_tier2,
        events: m.usage.events,
    }
}

/// A step that is not measured here, priced from assumptions: `invocations` of `billed_ms` each
/// at `memory_mb`, `transitions`, and S3 requests.
pub fn assumed(
    invocations: f64,
    billed_ms: u64,
    memory_mb: u64,
    transitions: f64,
    requests: Requests,
) -> Usage {
    Usage {
        lambda_requests: invocations,
        gb_seconds: invocations * gb_seconds(billed_ms, memory_mb),
        transitions,
        ..Usage::of_requests(requests)
    }
}

/// Backups of an hourly schedule in a month ([`prices::HOURS_PER_MONTH`]).
pub const HOURLY_BACKUPS_PER_MONTH: f64 = prices::HOURS_PER_MONTH;

/// Retention sweeps in a month at the template's default `rate(5 minutes)`.
pub const SWEEPS_PER_MONTH: f64 = prices::HOURS_PER_MONTH * 12.0;

/// A month of one hourly schedule with retention: `per_month` backups (each started by a
/// schedule tick, each deleted again by retention once the schedule keeps a steady number) and
/// `sweeps` retention sweeps.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    /// Backups.
    pub backups: Usage,
    /// Deletions retention starts.
    pub deletions: Usage,
    /// Schedule ticks.
    pub ticks: Usage,
    /// Retention sweeps.
    pub sweeps: Usage,
    /// All of it.
    pub total: Usage,
    /// Its price.
    pub bill: Bill,
}

/// [`Month`] from the usage of one backup, deletion, tick and sweep.
pub fn month(
    backup: Usage,
    deletion: Usage,
    tick: Usage,
    sweep: Usage,
    per_month: f64,
    sweeps: f64,
) -> Month {
    let (backups, deletions, ticks) = (
        backup.times(per_month),
        deletion.times(per_month),
        tick.times(per_month),
    );
    let sweeps = sweep.times(sweeps);
    let total = backups.plus(deletions).plus(ticks).plus(sweeps);
    Month {
        backups,
        deletions,
        ticks,
        sweeps,
        total,
        bill: total.bill(),
    }
}

/// brfed's own standing cost per month: the monitoring its template deploys (alarms, the
/// dashboard) and the custom metrics its EMF lines create. Not usage: it does not depend on
/// how many backups run.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Monitoring {
    /// `AWS::CloudWatch::Alarm` resources of the template.
    pub alarms: u64,
    /// `AWS::CloudWatch::Dashboard` resources of the template.
    pub dashboards: u64,
    /// Metric series: one per metric and dimension set brfed writes (each dimension with one
    /// value: one stack, one schedule, one TidbCluster, one outcome; more values, more series).
    pub metric_series: u64,
    /// US dollars per month.
    pub usd: f64,
}

/// [`Monitoring`] of `template` with `metric_series` series.
pub fn monitoring(template: &str, metric_series: u64) -> Result<Monitoring, String> {
    let t: serde_json::Value =
        serde_saphyr::from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
    let count = |ty: &str| {
        t["Resources"]
            .as_object()
            .map_or(0, |r| r.values().filter(|v| v["Type"] == ty).count() as u64)
    };
    let (alarms, dashboards) = (
        count("AWS::CloudWatch::Alarm"),
        count("AWS::CloudWatch::Dashboard"),
    );
    Ok(Monitoring {
        alarms,
        dashboards,
        metric_series,
        usd: alarms as f64 * prices::CW_ALARM_MONTH.usd
            + dashboards as f64 * prices::CW_DASHBOARD_MONTH.usd
            + metric_series as f64 * prices::CW_METRIC_MONTH.usd,
    })
}

/// The original's standing cost per month: the control-plane EKS cluster's fee and the manager
/// pod's share of a t3.medium node (the larger of its CPU and memory shares).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    /// EKS cluster fee, per month.
    pub eks_cluster: f64,
    /// The manager pod's node share, per month.
    pub manager_pod: f64,
    /// Its share of the node.
    pub node_share: f64,
    /// Both.
    pub total: f64,
}

/// [`Standing`] at the list prices.
pub fn original_standing() -> Standing {
    let node_share = (prices::MANAGER_CPU_MILLIS / prices::T3_MEDIUM_MILLICPU)
        .max(prices::MANAGER_MEMORY_MIB / prices::T3_MEDIUM_MIB);
    let eks_cluster = prices::EKS_CLUSTER_HOUR.usd * prices::HOURS_PER_MONTH;
    let manager_pod = prices::EC2_T3_MEDIUM_HOUR.usd * node_share * prices::HOURS_PER_MONTH;
    Standing {
        eks_cluster,
        manager_pod,
        node_share,
        total: eks_cluster + manager_pod,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> BTreeMap<String, u64> {
        [("backup-start", 256), ("backup-observe", 512)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn inv(function: &str, duration_ms: f64) -> Invocation {
        Invocation {
            function: function.into(),
            duration_ms,
            ..Default::default()
        }
    }

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond() {
        assert_eq!(inv("f", 12.001).billed_ms(), 13);
        assert_eq!(inv("f", 12.0).billed_ms(), 12);
        assert_eq!(inv("f", 0.2).billed_ms(), 1);
    }

    /// By hand: backup-start 100.4 ms → 101 ms at 256 MB = 0.101 × 0.25 = 0.02525 GB-s;
    /// backup-observe 2000 ms at 512 MB = 2 × 0.5 = 1 GB-s. 2 requests, 10 transitions, 3 S3
    /// PUTs, 4 GETs, 1 event:
    /// Lambda 2 × 0.0000002 + 1.02525 × 0.0000166667 = 0.0000004 + 0.0000170875...
    /// Step Functions 10 × 0.000025 = 0.00025; S3 3 × 0.000005 + 4 × 0.0000004 = 0.0000166;
    /// EventBridge 0.000001.
    #[test]
    fn an_execution_is_priced_as_aws_bills_it() {
        let m = measure(
            &[inv("backup-start", 100.4), inv("backup-observe", 2000.0)],
            10,
            Requests {
                s3_tier1: 3,
                s3_tier2: 4,
                events: 1,
                data_plane: 9,
            },
            &memory(),
        )
        .unwrap();
        assert_eq!(m.short_billed_ms, 101);
        assert_eq!((m.short_invocations, m.observe_invocations), (1, 1));
        assert_eq!(m.observe_memory_mb, 512);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(
            close(m.usage.gb_seconds, 1.025_25),
            "{}",
            m.usage.gb_seconds
        );
        let lambda = 2.0 * 0.000_000_2 + 1.025_25 * 0.000_016_666_7;
        assert!(
            close(m.bill.lambda, lambda),
            "{} vs {lambda}",
            m.bill.lambda
        );
        assert!(close(m.bill.step_functions, 0.000_25));
        assert!(close(m.bill.s3, 0.000_016_6));
        assert!(close(m.bill.eventbridge, 0.000_001));
        assert!(close(
            m.bill.total,
            lambda + 0.000_25 + 0.000_016_6 + 0.000_001
        ));
    }

    #[test]
    fn a_function_without_memory_is_an_error_not_free() {
        let e = measure(
            &[inv("schedule-tick", 5.0)],
            0,
            Requests::default(),
            &memory(),
        )
        .unwrap_err();
        assert!(e.contains("schedule-tick"), "{e}");
    }

    /// By hand: the short step as measured (0.02525 GB-s), observe 600 s at 512 MB = 300 GB-s,
    /// 1 + 1 + 2 loops = 4 requests, 21 transitions.
    #[test]
    fn a_real_backup_bills_its_observes_the_wall_time() {
        let m = measure(
            &[inv("backup-start", 100.4), inv("backup-observe", 2000.0)],
            10,
            Requests::default(),
            &memory(),
        )
        .unwrap();
        let u = real(&m, 600.0, 2, 21);
        assert_eq!(u.lambda_requests, 4.0);
        assert!((u.gb_seconds - 300.025_25).abs() < 1e-9, "{}", u.gb_seconds);
        assert_eq!(u.transitions, 21.0);
        assert_eq!(u.times(730.0).transitions, 15_330.0);
    }

    /// By hand: 730 × (1 + 2 + 3) transitions + 8,760 × 4 = 4,380 + 35,040 = 39,420 transitions
    /// = $0.9855; 730 backups of 0.5 GB-s = 365 GB-s.
    #[test]
    fn a_month_adds_its_backups_deletions_ticks_and_sweeps() {
        let t = |n: f64| Usage {
            transitions: n,
            ..Default::default()
        };
        let backup = Usage {
            gb_seconds: 0.5,
            ..t(1.0)
        };
        let m = month(backup, t(2.0), t(3.0), t(4.0), 730.0, 8_760.0);
        assert_eq!(m.total.transitions, 39_420.0);
        assert_eq!(m.backups.gb_seconds, 365.0);
        assert!((m.bill.step_functions - 0.985_5).abs() < 1e-9);
    }

    /// By hand: $0.10 × 730 = $73.00; 80m of 2 vCPU = 4 % (memory: 50/4096 = 1.2 %) of $0.0416 × 730
    /// = $1.21472.
    #[test]
    fn the_original_pays_a_cluster_and_a_node_share() {
        let s = original_standing();
        assert!((s.eks_cluster - 73.0).abs() < 1e-9);
        assert!((s.node_share - 0.04).abs() < 1e-12);
        assert!((s.manager_pod - 1.214_72).abs() < 1e-9, "{}", s.manager_pod);
        assert!((s.total - 74.214_72).abs() < 1e-9);
    }

    /// By hand: 2 alarms × $0.10 + 1 dashboard × $3 + 10 series × $0.30 = $6.20.
    #[test]
    fn monitoring_counts_the_templates_alarms_and_dashboards() {
        let t = "Resources:\n  A:\n    Type: AWS::CloudWatch::Alarm\n  B:\n    Type: AWS::CloudWatch::Alarm\n  D:\n    Type: AWS::CloudWatch::Dashboard\n  F:\n    Type: AWS::Lambda::Function\n";
        let m = monitoring(t, 10).unwrap();
        assert_eq!((m.alarms, m.dashboards), (2, 1));
        assert!((m.usd - 6.2).abs() < 1e-9, "{}", m.usd);
    }

    /// Every function crate (`functions/<crate>/src/main.rs`) has a `MemorySize` in the template
    /// that the cost model reads, and the template has no function that is not a crate: a new
    /// function cannot be priced at 0.
    #[test]
    fn every_function_has_a_memory_size_the_model_reads() {
        let mem = template_memory(TEMPLATE).unwrap();
        let crates = crate::bench::lambda::function_names();
        assert!(!crates.is_empty());
        for c in &crates {
            let mb = mem
                .get(c)
                .unwrap_or_else(|| panic!("{c}: no MemorySize read from infra/aws/template.yaml"));
            assert!(*mb >= 128, "{c}: {mb} MB");
        }
        let extra: Vec<_> = mem.keys().filter(|k| !crates.contains(k)).collect();
        assert!(
            extra.is_empty(),
            "template functions that are no crate: {extra:?}"
        );
        for f in OBSERVE_FUNCTIONS {
            assert!(mem.contains_key(*f), "{f}");
        }
    }

    #[test]
    fn a_function_without_memory_size_in_the_template_is_refused() {
        let t = "Resources:\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      FunctionName:\n        Fn::Sub: \"${NamePrefix}-new-step\"\n";
        let e = template_memory(t).unwrap_err();
        assert!(e.contains("new-step") && e.contains("MemorySize"), "{e}");
    }
}
