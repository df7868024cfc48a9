//! At scale without data planes: the largest state payload of every workflow at `members` ×
//! `volumes` ([`crate::bench::model`] through the real ASL), and the state transitions and
//! history events of a long backup.
//!
//! Extrapolation (watch mode): an observe invocation returns when what it waits for holds, a
//! member fails, or its budget `B` (`BRFED_OBSERVE_BUDGET_SECONDS`) is spent; member changes that
//! do not decide the wait do not end it. A backup whose waits last `W` seconds in all therefore
//! makes at most `ceil(W / B) − 1` more observe invocations than one that waits on nothing, and
//! each adds its Task and its Choice: `states = S0 + 2·L`, `events = E0 + 7·L` with `L =
//! ceil(T / B) − 1` for a backup of `T` seconds (`S0`, `E0`: the walk with no wait; the per-loop
//! figures are measured by walking one more loop). In poll mode the loop adds a Wait state too.

use crate::bench::asl::Walk;
use crate::bench::model::{self, Facts, Modelled, Naming, Scenario};
use brfed_core::input::MAX_CLUSTERS;
use serde::Serialize;

/// Step Functions Standard: events per execution history.
pub const HISTORY_LIMIT: usize = 25_000;

/// The cost of a long backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extrapolation {
    /// `watch` or `poll`.
    pub mode: String,
    /// Observe budget (watch) or poll interval (poll), seconds.
    pub interval_seconds: u64,
    /// Backup duration, hours.
    pub hours: f64,
    /// Observe invocations that return `pending`.
    pub pending_loops: usize,
    /// States entered.
    pub state_transitions: usize,
    /// History events.
    pub history_events: usize,
}

/// The linear law of one mode and interval.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Law {
    /// `watch` or `poll`.
    pub mode: String,
    /// Observe budget or poll interval, seconds.
    pub interval_seconds: u64,
    /// States with no wait.
    pub base_states: usize,
    /// Events with no wait.
    pub base_events: usize,
    /// States per pending loop.
    pub states_per_loop: usize,
    /// Events per pending loop.
    pub events_per_loop: usize,
    /// Longest backup whose history stays within [`HISTORY_LIMIT`], hours.
    pub max_hours_within_history_limit: f64,
}

fn walk(mode: &str, interval: u64, loops: usize) -> Walk {
    // 3 members: the counts do not depend on the member count, and this walk is repeated
    let n = Naming::typical();
    let input = n.backup_input(3, mode, interval);
    model::walk_backup(
        &input,
        &n.execution("volume-backup", &n.backup),
        &Facts::new(2),
        Scenario {
            pending_loops: loops,
            ..Default::default()
        },
    )
}

/// The law for `mode` at `interval` seconds.
pub fn law(mode: &str, interval: u64) -> Law {
    let (w0, w1) = (walk(mode, interval, 0), walk(mode, interval, 1));
    let events_per_loop = w1.history_events - w0.history_events;
    let loops_within = (HISTORY_LIMIT - w0.history_events) / events_per_loop;
    Law {
        mode: mode.into(),
        interval_seconds: interval,
        base_states: w0.states_entered,
        base_events: w0.history_events,
        states_per_loop: w1.states_entered - w0.states_entered,
        events_per_loop,
        // L ≤ loops_within holds for every T ≤ (loops_within + 1)·interval
        max_hours_within_history_limit: ((loops_within + 1) as u64 * interval) as f64 / 3600.0,
    }
}

/// A backup of `hours` in `mode` at `interval` seconds, walked through the ASL (the most
/// pending observe loops such a backup can make).
pub fn extrapolate(mode: &str, interval: u64, hours: f64) -> Extrapolation {
    let t = (hours * 3600.0).round() as u64;
    let loops = t.div_ceil(interval).saturating_sub(1) as usize;
    let w = walk(mode, interval, loops);
    Extrapolation {
        mode: mode.into(),
        interval_seconds: interval,
        hours,
        pending_loops: loops,
        state_transitions: w.states_entered,
        history_events: w.history_events,
    }
}

/// Payloads at `members` × `volumes`, with typical names and with every name at its limit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payloads {
    /// Data planes.
    pub members: usize,
    /// Volumes per data plane.
    pub volumes: usize,
    /// Names used for `typical`.
    pub naming: Naming,
    /// Typical names.
    pub typical: Vec<Modelled>,
    /// Every name at its length limit.
    pub longest_names: Vec<Modelled>,
    /// Typical names, the most data planes a request may name (`MAX_CLUSTERS`).
    pub max_clusters: Vec<Modelled>,
    /// That number.
    pub max_clusters_members: usize,
}

/// The payloads of every workflow at `members` × `volumes`.
pub fn payloads(members: usize, volumes: usize) -> Payloads {
    let naming = Naming::typical();
    Payloads {
        members,
        volumes,
        typical: model::at_scale(&naming, members, volumes),
        longest_names: model::at_scale(&Naming::longest(), members, volumes),
        max_clusters: model::at_scale(&naming, MAX_CLUSTERS, volumes),
        max_clusters_members: MAX_CLUSTERS,
        naming,
    }
}
