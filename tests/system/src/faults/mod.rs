//! The fault matrix of `make test-faults` (`brfed-faults`): every backup and restore phase × every
//! kind of fault, each cell driven on the local world and judged the same way — the execution's
//! end, the catalog document, the simulated PD (nothing paused, no lease left), the member objects
//! and everything left in EC2/S3 (accounted for or not). See docs/reliability.md.

pub mod backup;
pub mod checks;
pub mod disrupt;
pub mod drive;
pub mod probe;
pub mod restore;

use serde::Serialize;
use std::fmt;

/// Which workflow a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// `volume-backup`.
    Backup,
    /// `volume-restore`.
    Restore,
}

impl Flow {
    /// Spelling in cell ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Backup => "backup",
            Flow::Restore => "restore",
        }
    }
}

/// The kind of fault a cell injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The member fails there (`sim.brfed.dev/fault: …:fail`).
    Failed,
    /// The member becomes `Invalid` there (`…:invalid`).
    Invalid,
    /// dp2's API server is down for 10 s while the member waits at the phase.
    ApiDown,
    /// dp2's API server is restarted while brfed's observe watch is open.
    ApiRestart,
    /// The observe Lambda's process is killed (SIGKILL) while it runs at the phase.
    LambdaKill,
    /// StopExecution while the member sits at the phase.
    Stopped,
    /// The member hangs at the phase and `options.phaseTimeoutSeconds` runs out.
    Deadline,
}

impl Fault {
    /// Every fault, in table order.
    pub const ALL: [Fault; 7] = [
        Fault::Failed,
        Fault::Invalid,
        Fault::ApiDown,
        Fault::ApiRestart,
        Fault::LambdaKill,
        Fault::Stopped,
        Fault::Deadline,
    ];

    /// Spelling in cell ids and in `BRFED_FAULTS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Failed => "failed",
            Fault::Invalid => "invalid",
            Fault::ApiDown => "api-down",
            Fault::ApiRestart => "api-restart",
            Fault::LambdaKill => "lambda-kill",
            Fault::Stopped => "stopped",
            Fault::Deadline => "deadline",
        }
    }

    /// Disruptive faults touch shared processes (an API server, the Lambda instances): they run
    /// one at a time with nothing else running.
    pub fn disruptive(self) -> bool {
        matches!(self, Fault::ApiDown | Fault::ApiRestart | Fault::LambdaKill)
    }
}

/// Backup phases of the simulator's fault points.
pub const BACKUP_PHASES: [&str; 5] = [
    "initialize",
    "execute",
    "snapshots-created",
    "resume",
    "teardown",
];
/// Restore phases of the simulator's fault points.
pub const RESTORE_PHASES: [&str; 4] =
    ["restore-volume", "warmup", "restore-data", "restore-finish"];

/// `options` of a cell's input: `phaseTimeoutSeconds` 8 for the deadline cells (the member hangs),
/// 90 for the disruptive ones (a safety net: a phase stuck after the fault fails by name instead of
/// outliving the run), the default otherwise.
pub fn phase_timeout(fault: Fault) -> serde_json::Value {
    match fault {
        Fault::Deadline => serde_json::json!({"phaseTimeoutSeconds": 8}),
        f if f.disruptive() => serde_json::json!({"phaseTimeoutSeconds": 90}),
        _ => serde_json::json!({}),
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Workflow.
    pub flow: Flow,
    /// Simulator fault phase.
    pub phase: &'static str,
    /// Fault.
    pub fault: Fault,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.flow.as_str(),
            self.phase,
            self.fault.as_str()
        )
    }
}

impl Cell {
    /// The data plane whose member gets the fault annotation: the initialize member (`clusters[0]`
    /// = dp1) for the phases only it has, every plane for restore-data (it runs on the member with
    /// the minimum commitTs only, which the test cannot choose), dp2 otherwise.
    pub fn fault_plane(&self) -> &'static str {
        match self.phase {
            "initialize" | "resume" => "dp1",
            "restore-data" => "*",
            _ => "dp2",
        }
    }

    /// The simulator rule the cell puts on the VolumeBackup/VolumeRestore.
    pub fn rule(&self) -> String {
        let action = match self.fault {
            Fault::Failed => "fail",
            Fault::Invalid => "invalid",
            Fault::Deadline | Fault::Stopped => "hang",
            Fault::ApiDown => "delay=4000",
            Fault::ApiRestart | Fault::LambdaKill => "delay=5000",
        };
        format!("{}:{}:{action}", self.fault_plane(), self.phase)
    }

    /// Why the cell cannot be produced or means nothing, if so.
    pub fn not_applicable(&self) -> Option<&'static str> {
        match (self.phase, self.fault) {
            ("snapshots-created", Fault::Invalid) => Some(
                "the simulator has no `invalid` at snapshots-created: the execute job can only fail, hang or be delayed there (tests/sim-operator/src/backup.rs run_exec_job); a real operator does not mark a member Invalid after its snapshots exist",
            ),
            ("warmup", Fault::Invalid) => Some(
                "the simulator has no `invalid` at warmup: the warmup job can only fail, hang or be delayed (tests/sim-operator/src/restore.rs warm_up); validation happens before restore-volume",
            ),
            _ => None,
        }
    }

    /// The observe Lambda that runs while the member waits at this phase.
    pub fn observe_function(&self) -> &'static str {
        match self.flow {
            Flow::Backup => "backup-observe",
            Flow::Restore => "restore-observe",
        }
    }
}

/// Every cell, in table order.
pub fn matrix() -> Vec<Cell> {
    let mut cells = Vec::new();
    for (flow, phases) in [
        (Flow::Backup, &BACKUP_PHASES[..]),
        (Flow::Restore, &RESTORE_PHASES[..]),
    ] {
        for &phase in phases {
            for fault in Fault::ALL {
                cells.push(Cell { flow, phase, fault });
            }
        }
    }
    cells
}

/// `BRFED_FAULTS`: comma-separated `flow:phase:fault` patterns, `*` for any part, missing trailing
/// parts = `*` (`backup`, `restore:warmup`, `*:*:failed`). Empty or unset: every cell.
pub fn selected(filter: Option<&str>, cell: &Cell) -> bool {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return true;
    };
    filter.split(',').map(str::trim).any(|pat| {
        let mut parts = pat.split(':');
        let part = |p: Option<&str>, v: &str| p.is_none_or(|p| p == "*" || p.is_empty() || p == v);
        part(parts.next(), cell.flow.as_str())
            && part(parts.next(), cell.phase)
            && part(parts.next(), cell.fault.as_str())
    })
}

/// What one check found.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Short text for the table.
    pub text: String,
    /// Whether the check passed.
    pub ok: bool,
}

impl Check {
    /// A check result.
    pub fn new(ok: bool, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ok,
        }
    }
}

/// The result of one cell.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellResult {
    /// `flow:phase:fault`.
    pub id: String,
    /// Workflow.
    pub flow: String,
    /// Phase.
    pub phase: String,
    /// Fault.
    pub fault: String,
    /// The fault rule used.
    pub rule: String,
    /// Why the cell was not run.
    pub not_applicable: Option<String>,
    /// Execution name.
    pub execution: String,
    /// Final execution status.
    pub status: String,
    /// Error name of a failed execution.
    pub error: Option<String>,
    /// Cause, shortened.
    pub cause: Option<String>,
    /// Catalog document phase.
    pub catalog: Check,
    /// PD: pause resumed or expired, time from the fault.
    pub gc: Check,
    /// Milliseconds from the fault to the end of the pause (resume or expiry).
    pub gc_after_fault_ms: Option<i64>,
    /// Members: terminal, in teardown, gone (or reported as leftovers, restores).
    pub members: Check,
    /// Snapshots/volumes/objects left and whether they are accounted for.
    pub leftovers: Check,
    /// Recovery-mode TidbClusters (restores).
    pub recovery: Option<Check>,
    /// Findings in words.
    pub notes: Vec<String>,
    /// The cell ran and every check passed.
    pub clean: bool,
    /// Wall time of the cell.
    pub seconds: f64,
}

impl CellResult {
    /// An empty result for `cell`.
    pub fn of(cell: &Cell) -> Self {
        Self {
            id: cell.to_string(),
            flow: cell.flow.as_str().into(),
            phase: cell.phase.into(),
            fault: cell.fault.as_str().into(),
            rule: cell.rule(),
            ..Self::default()
        }
    }

    /// The result once the checks are in: a fault that was not `produced` does not count as
    /// clean; judged, with its time since `started`.
    pub fn finish(mut self, produced: bool, started: std::time::Instant) -> Self {
        if !produced {
            self.notes
                .push("the fault was not produced: the cell does not count as clean".into());
            self.catalog.ok = false;
        }
        self.judge();
        self.seconds = started.elapsed().as_secs_f64();
        self
    }

    /// Sets `clean` from the checks.
    pub fn judge(&mut self) {
        self.clean = self.not_applicable.is_none()
            && !self.status.is_empty()
            && self.status != "RUNNING"
            && self.catalog.ok
            && self.gc.ok
            && self.members.ok
            && self.leftovers.ok
            && self.recovery.as_ref().is_none_or(|r| r.ok);
    }
}
