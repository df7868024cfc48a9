//! Which scheduled backup retention deletes next (reference §4.3.1), as a pure decision.
//!
//! Kept from the original: `maxReservedTime` takes precedence over `maxBackups`; `skipGC`
//! backups are never candidates; at most one deletion per schedule at a time (a schedule with a
//! deletion in progress gets none); age is the backup's creation time (PR #5518).
//!
//! Different on purpose (docs/schedule.md):
//! - running backups are never deleted and do not count toward `maxBackups` (the original counts
//!   them, #5517, and may delete one while it runs);
//! - by count, failed backups go before complete ones (they hold nothing restorable), and the
//!   newest complete backup of a schedule is never deleted by count;
//! - a backup whose deletion ended `CleanFailed` is not retried by the sweep (it needs a person;
//!   the original stays stuck on it), it is reported instead and does not block the others.

use crate::backup::status::vbk;
use crate::schedule::spec::Retention;
use chrono::{DateTime, Utc};

/// One backup of a schedule, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Backup name.
    pub name: String,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// `status.phase` (`Running`, `SnapshotsCreated`, `Complete`, `Failed`).
    pub phase: Option<String>,
    /// `skipGC: true`.
    pub skip_gc: bool,
    /// Its deletion state, if one was asked (`Deleting`, `CleanFailed`).
    pub deletion: Option<String>,
}

impl Candidate {
    fn finished(&self) -> bool {
        matches!(
            self.phase.as_deref(),
            Some(vbk::COMPLETE) | Some(vbk::FAILED)
        )
    }
    fn complete(&self) -> bool {
        self.phase.as_deref() == Some(vbk::COMPLETE)
    }
}

/// What retention does for one schedule now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delete this backup.
    Delete {
        /// Backup name.
        name: String,
        /// Why, for the sweep's report.
        why: String,
    },
    /// Nothing to delete, and why.
    Keep(String),
}

/// Decides the next deletion of a schedule with `policy` among its backups, at `now`.
pub fn decide(policy: Retention, backups: &[Candidate], now: DateTime<Utc>) -> Decision {
    if let Some(b) = backups
        .iter()
        .find(|b| b.deletion.as_deref() == Some("Deleting"))
    {
        return Decision::Keep(format!(
            "{} is being deleted; one deletion at a time",
            b.name
        ));
    }
    let mut eligible: Vec<&Candidate> = backups
        .iter()
        .filter(|b| !b.skip_gc && b.deletion.is_none() && b.finished())
        .collect();
    eligible.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    match policy {
        Retention::Unlimited => Decision::Keep("no retention policy".into()),
        Retention::MaxReservedTime(keep) => {
            let Ok(keep) = chrono::Duration::from_std(keep) else {
                return Decision::Keep("maxReservedTime out of range".into());
            };
            match eligible.first() {
                Some(b) if b.created < now - keep => Decision::Delete {
                    name: b.name.clone(),
                    why: format!(
                        "created {} is older than maxReservedTime",
                        crate::time::rfc3339(b.created)
                    ),
                },
                _ => Decision::Keep("nothing older than maxReservedTime".into()),
            }
        }
        Retention::MaxBackups(max) => {
            let max = max as usize;
            if eligible.len() <= max {
                return Decision::Keep(format!(
                    "{} finished backup(s), maxBackups {max}",
                    eligible.len()
                ));
            }
            let newest_complete = eligible
                .iter()
                .rev()
                .find(|b| b.complete())
                .map(|b| &b.name);
            let victim = eligible
                .iter()
                .find(|b| !b.complete())
                .or_else(|| eligible.iter().find(|b| Some(&b.name) != newest_complete));
            match victim {
                Some(b) => Decision::Delete {
                    name: b.name.clone(),
                    why: format!(
                        "{} finished backup(s) > maxBackups {max}; oldest {}",
                        eligible.len(),
                        if b.complete() { "complete" } else { "failed" }
                    ),
                },
                None => Decision::Keep("only the newest complete backup is left".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeZone;
    use std::time::Duration;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap()
    }

    fn b(name: &str, h: u32, phase: &str) -> Candidate {
        Candidate {
            name: name.into(),
            created: at(h),
            phase: Some(phase.into()),
            skip_gc: false,
            deletion: None,
        }
    }

    fn deleted(d: Decision) -> Option<String> {
        match d {
            Decision::Delete { name, .. } => Some(name),
            Decision::Keep(_) => None,
        }
    }

    #[test]
    fn by_age_the_oldest_expired_finished_backup_goes_first() {
        let p = Retention::MaxReservedTime(Duration::from_secs(3 * 3600));
        let bs = [
            b("r", 0, "Running"),
            b("c1", 1, "Complete"),
            b("f2", 2, "Failed"),
            b("c9", 9, "Complete"),
        ];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("c1".into()));
        assert_eq!(deleted(decide(p, &bs[2..], at(10))), Some("f2".into()));
        assert_eq!(deleted(decide(p, &bs[3..], at(10))), None, "c9 is 1 h old");
        assert_eq!(deleted(decide(p, &bs[..1], at(10))), None, "running never");
    }

    #[test]
    fn by_age_even_the_last_complete_backup_expires() {
        let p = Retention::MaxReservedTime(Duration::from_secs(3600));
        assert_eq!(
            deleted(decide(p, &[b("c1", 1, "Complete")], at(10))),
            Some("c1".into())
        );
    }

    #[test]
    fn skip_gc_and_clean_failed_backups_are_never_candidates() {
        let p = Retention::MaxReservedTime(Duration::from_secs(3600));
        let mut keep = b("k", 0, "Complete");
        keep.skip_gc = true;
        let mut stuck = b("s", 1, "Complete");
        stuck.deletion = Some("CleanFailed".into());
        let bs = [keep, stuck, b("c", 2, "Complete")];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("c".into()));
    }

    #[test]
    fn one_deletion_at_a_time() {
        let p = Retention::MaxBackups(1);
        let mut busy = b("c0", 0, "Complete");
        busy.deletion = Some("Deleting".into());
        let bs = [busy, b("c1", 1, "Complete"), b("c2", 2, "Complete")];
        assert_eq!(deleted(decide(p, &bs, at(10))), None);
    }

    #[test]
    fn by_count_running_ones_do_not_count_failed_ones_go_first() {
        let p = Retention::MaxBackups(2);
        let bs = [
            b("c1", 1, "Complete"),
            b("c2", 2, "Complete"),
            b("f3", 3, "Failed"),
            b("r4", 4, "Running"),
        ];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("f3".into()));
        let bs = [
            b("c1", 1, "Complete"),
            b("c2", 2, "Complete"),
            b("r4", 4, "Running"),
        ];
        assert_eq!(deleted(decide(p, &bs, at(10))), None, "2 finished, max 2");
        let bs = [
            b("c1", 1, "Complete"),
            b("c2", 2, "Complete"),
            b("c3", 3, "Complete"),
        ];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("c1".into()));
    }

    #[test]
    fn by_count_the_newest_complete_backup_stays() {
        let p = Retention::MaxBackups(1);
        // Two failures after the only complete backup: the failures go, never the complete one.
        let bs = [
            b("c1", 1, "Complete"),
            b("f2", 2, "Failed"),
            b("f3", 3, "Failed"),
        ];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("f2".into()));
        assert_eq!(deleted(decide(p, &bs[..1], at(10))), None);
        let bs = [b("c1", 1, "Complete"), b("f3", 3, "Failed")];
        assert_eq!(deleted(decide(p, &bs, at(10))), Some("f3".into()));
    }

    #[test]
    fn unlimited_deletes_nothing() {
        let bs = [b("c1", 1, "Complete"), b("c2", 2, "Complete")];
        assert_eq!(deleted(decide(Retention::Unlimited, &bs, at(10))), None);
    }
}
