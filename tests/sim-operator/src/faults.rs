//! Fault injection driven by the annotation `sim.brfed.dev/fault`.
//!
//! The annotation holds comma-separated rules `<dataPlane|*>:<phase>:<action>[=<ms>]`. It is read from
//! the member `Backup`/`Restore` (the federation copies the federated object's annotations onto its
//! members) and from the member's `TidbCluster` (then it applies to every member of that cluster).
//!
//! | action | effect at that point |
//! |---|---|
//! | `fail` | the member fails there (`Failed`, `VolumeBackupFailed`, `VolumeBackupInitializeFailed` or `CleanFailed`, whichever fits; reason `SimulatedFault`) |
//! | `invalid` | the member becomes `Invalid` (reason `SimulatedFault`) |
//! | `hang` | the member never progresses past that point |
//! | `delay=<ms>` | that point takes `<ms>` longer |
//! | `crash-init-job[=<ms>]` | the member's init job dies there (after `<ms>`) without resuming GC/schedulers: the PD pause only ends when its lease expires |

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Annotation holding the fault rules.
pub const FAULT_ANNOTATION: &str = "sim.brfed.dev/fault";

/// A point of a member's life where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPhase {
    /// Backup: the init job pausing GC and schedulers.
    Initialize,
    /// Backup: the execute job, before snapshots are taken.
    Execute,
    /// Backup: right after `backupmeta` is written (snapshots created, not completed).
    SnapshotsCreated,
    /// Backup: the operator resuming GC/schedulers on `resumeGcSchedule`.
    Resume,
    /// Backup: the final teardown.
    Teardown,
    /// Restore: creating volumes from snapshots.
    RestoreVolume,
    /// Restore: the warmup jobs.
    Warmup,
    /// Restore: the restore-data job.
    RestoreData,
    /// Restore: leaving recovery mode.
    RestoreFinish,
    /// Backup deletion: the clean job.
    Clean,
}

impl FaultPhase {
    /// Every phase, in the spelling used by the annotation.
    pub const ALL: [FaultPhase; 10] = [
        FaultPhase::Initialize,
        FaultPhase::Execute,
        FaultPhase::SnapshotsCreated,
        FaultPhase::Resume,
        FaultPhase::Teardown,
        FaultPhase::RestoreVolume,
        FaultPhase::Warmup,
        FaultPhase::RestoreData,
        FaultPhase::RestoreFinish,
        FaultPhase::Clean,
    ];

    /// The annotation spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultPhase::Initialize => "initialize",
            FaultPhase::Execute => "execute",
            FaultPhase::SnapshotsCreated => "snapshots-created",
            FaultPhase::Resume => "resume",
            FaultPhase::Teardown => "teardown",
            FaultPhase::RestoreVolume => "restore-volume",
            FaultPhase::Warmup => "warmup",
            FaultPhase::RestoreData => "restore-data",
            FaultPhase::RestoreFinish => "restore-finish",
            FaultPhase::Clean => "clean",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for FaultPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens at the fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Fail the member.
    Fail,
    /// Mark the member `Invalid`.
    Invalid,
    /// Never progress.
    Hang,
    /// Progress later.
    Delay(Duration),
    /// Kill the init job without a resume, after the given time.
    CrashInitJob(Duration),
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Data plane it applies to; `None` for `*`.
    pub plane: Option<String>,
    /// Where it applies.
    pub phase: FaultPhase,
    /// What it does.
    pub action: FaultAction,
}

impl FaultRule {
    /// Parses `<dataPlane|*>:<phase>:<action>[=<ms>]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().splitn(3, ':').map(str::trim).collect();
        let [plane, phase, action] = parts[..] else {
            return Err(format!(
                "fault rule {text:?}: expected <dataPlane|*>:<phase>:<action>"
            ));
        };
        if plane.is_empty() {
            return Err(format!(
                "fault rule {text:?}: empty data plane (use * for all)"
            ));
        }
        let phase = FaultPhase::parse(phase)
            .ok_or_else(|| format!("fault rule {text:?}: unknown phase {phase:?}"))?;
        let (name, arg) = match action.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (action, None),
        };
        let ms = |arg: Option<&str>| -> Result<Option<Duration>, String> {
            arg.map(|a| {
                a.parse::<u64>().map(Duration::from_millis).map_err(|_| {
                    format!("fault rule {text:?}: {a:?} is not a number of milliseconds")
                })
            })
            .transpose()
        };
        let action = match (name, arg) {
            ("fail", None) => FaultAction::Fail,
            ("invalid", None) => FaultAction::Invalid,
            ("hang", None) => FaultAction::Hang,
            ("delay", Some(_)) => FaultAction::Delay(ms(arg)?.unwrap_or_default()),
            ("crash-init-job", _) => FaultAction::CrashInitJob(ms(arg)?.unwrap_or_default()),
            _ => return Err(format!("fault rule {text:?}: unknown action {action:?}")),
        };
        Ok(Self {
            plane: (plane != "*").then(|| plane.to_string()),
            phase,
            action,
        })
    }
}

/// How a fault point ends, when a rule says it does not simply go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Fail the member.
    Fail,
    /// Mark the member invalid.
    Invalid,
    /// Stop forever.
    Hang,
}

/// The effect of all rules at one point for one data plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Extra time the point takes (sum of `delay` rules).
    pub delay: Duration,
    /// The first `fail`/`invalid`/`hang` rule.
    pub outcome: Option<FaultOutcome>,
    /// When to crash the init job, if a rule says so.
    pub crash_init_job: Option<Duration>,
}

impl FaultPlan {
    /// True when no rule applies.
    pub fn is_empty(&self) -> bool {
        *self == FaultPlan::default()
    }
}

/// The rules that apply to one member (its own annotations first, then its TidbCluster's).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    /// Parses the rules of a list of annotation maps; broken rules are logged and skipped.
    pub fn from_annotations<'a>(
        sources: impl IntoIterator<Item = Option<&'a BTreeMap<String, String>>>,
    ) -> Self {
        let mut rules = Vec::new();
        for text in sources
            .into_iter()
            .flatten()
            .filter_map(|a| a.get(FAULT_ANNOTATION))
        {
            for item in text.split(',').filter(|s| !s.trim().is_empty()) {
                match FaultRule::parse(item) {
                    Ok(rule) => rules.push(rule),
                    Err(why) => tracing::warn!(rule = item, %why, "ignoring fault rule"),
                }
            }
        }
        Self { rules }
    }

    /// What the rules say for `plane` at `phase`.
    pub fn plan(&self, plane: &str, phase: FaultPhase) -> FaultPlan {
        let mut plan = FaultPlan::default();
        let matching = self
            .rules
            .iter()
            .filter(|r| r.phase == phase && r.plane.as_deref().is_none_or(|p| p == plane));
        for rule in matching {
            match rule.action {
                FaultAction::Delay(d) => plan.delay += d,
                FaultAction::CrashInitJob(d) => {
                    plan.crash_init_job.get_or_insert(d);
                }
                FaultAction::Fail => {
                    plan.outcome.get_or_insert(FaultOutcome::Fail);
                }
                FaultAction::Invalid => {
                    plan.outcome.get_or_insert(FaultOutcome::Invalid);
                }
                FaultAction::Hang => {
                    plan.outcome.get_or_insert(FaultOutcome::Hang);
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(text: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(FAULT_ANNOTATION.to_string(), text.to_string())])
    }

    #[test]
    fn every_action_parses() {
        let r = FaultRule::parse("dp2:execute:fail").unwrap();
        assert_eq!(r.plane.as_deref(), Some("dp2"));
        assert_eq!(r.phase, FaultPhase::Execute);
        assert_eq!(r.action, FaultAction::Fail);
        let r = FaultRule::parse(" * : snapshots-created : delay=1500 ").unwrap();
        assert_eq!(r.plane, None);
        assert_eq!(r.action, FaultAction::Delay(Duration::from_millis(1500)));
        assert_eq!(
            FaultRule::parse("dp1:initialize:crash-init-job")
                .unwrap()
                .action,
            FaultAction::CrashInitJob(Duration::ZERO)
        );
        assert_eq!(
            FaultRule::parse("dp1:restore-finish:hang").unwrap().action,
            FaultAction::Hang
        );
        assert_eq!(
            FaultRule::parse("dp1:clean:invalid").unwrap().action,
            FaultAction::Invalid
        );
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "dp1:execute",
            "dp1:nowhere:fail",
            "dp1:execute:explode",
            "dp1:execute:delay",
            ":execute:fail",
            "dp1:execute:delay=soon",
        ] {
            assert!(FaultRule::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn member_rules_come_before_cluster_rules_and_planes_are_matched() {
        let member = annotations("dp1:execute:fail, bogus");
        let tc = annotations("*:execute:hang,*:execute:delay=10,dp1:execute:delay=5");
        let faults = Faults::from_annotations([Some(&member), Some(&tc)]);
        let dp1 = faults.plan("dp1", FaultPhase::Execute);
        assert_eq!(dp1.outcome, Some(FaultOutcome::Fail));
        assert_eq!(dp1.delay, Duration::from_millis(15));
        let dp2 = faults.plan("dp2", FaultPhase::Execute);
        assert_eq!(dp2.outcome, Some(FaultOutcome::Hang));
        assert_eq!(dp2.delay, Duration::from_millis(10));
        assert!(faults.plan("dp2", FaultPhase::Teardown).is_empty());
    }
}
