//! A schedule's recovery point objective (RPO): how long it may go without a `Complete` backup,
//! and the retention sweep's judgement of each schedule against it (brfed's own; the original
//! has no such check).
//!
//! **The RPO** is the annotation [`ANNOTATION_RPO`] of the schedule (a Go duration, `6h`), or by
//! default [`default_rpo_seconds`]: the longest interval `g` between two consecutive firings of
//! its expression plus the larger of `g` and the backups' `options.deadlineSeconds` (6 h by
//! default). Why: a healthy schedule's newest `Complete` backup is never older than the time
//! to its next tick (at most `g`; a tick skipped while the last backup still ran is run by the
//! next sweep after that backup ends) plus that tick's backup's duration (at most the
//! deadline: a longer one has failed). Past `g + max(g, deadline)`, a backup that should have
//! completed has not: a tick's backup failed and the next one has not completed within a
//! further interval, or ticks stopped (a rule disabled or deleted, every tick refused). A
//! single failed backup alone is `backup-failed`'s to report, not this one's, whenever the
//! deadline is shorter than an interval.

use crate::backup::status::VolumeBackupDoc;
use crate::conditions::phases;
use crate::input::truncate;
use crate::schedule::spec::ScheduleRequest;
use crate::schedule::status::ScheduleDoc;
use crate::time::{go_duration, parse_go_duration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::schedule::spec::ANNOTATION_RPO;

/// Where a schedule's RPO comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RpoSource {
    /// The [`ANNOTATION_RPO`] annotation.
    Annotation,
    /// [`default_rpo_seconds`] of its expression and deadline.
    Default,
}

/// A schedule's RPO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpo {
    /// Seconds.
    pub seconds: u64,
    /// Given or derived.
    pub source: RpoSource,
}

/// The default RPO of a schedule whose firings are at most `longest_gap` seconds apart and whose
/// backups may take `deadline` seconds: `longest_gap + max(longest_gap, deadline)` (see the
/// module documentation).
pub fn default_rpo_seconds(longest_gap: u64, deadline: u64) -> u64 {
    longest_gap.saturating_add(longest_gap.max(deadline))
}

impl ScheduleRequest {
    /// The schedule's RPO: its [`ANNOTATION_RPO`] when set, else [`default_rpo_seconds`] of its
    /// expression's longest interval and its backups' deadline. Errs, saying why, on an
    /// annotation that is not a Go duration, or is shorter than that interval (the schedule
    /// would be beyond it between any two ticks), or on an expression without an interval.
    /// [`Self::validate`] refuses what this errs on.
    pub fn rpo(&self) -> Result<Rpo, String> {
        let gap = self.longest_gap();
        match self.metadata.annotations.get(ANNOTATION_RPO) {
            Some(text) => {
                let what = format!("metadata.annotations.{ANNOTATION_RPO} `{}`", truncate(text));
                let d = parse_go_duration(text).map_err(|e| format!("{what}: {e}"))?;
                let seconds = d.as_secs();
                if let Some(gap) = gap
                    && seconds < gap
                {
                    return Err(format!(
                        "{what} is shorter than the longest interval between two firings of spec.schedule ({}): the schedule would be beyond it between two ticks; give at least that",
                        go_duration(gap)
                    ));
                }
                if seconds == 0 {
                    return Err(format!("{what} must be positive"));
                }
                Ok(Rpo {
                    seconds,
                    source: RpoSource::Annotation,
                })
            }
            None => self.default_rpo(),
        }
    }

    /// [`default_rpo_seconds`] of its expression's longest interval and its backups' deadline,
    /// whatever its annotation says; errs on an expression without an interval.
    pub fn default_rpo(&self) -> Result<Rpo, String> {
        self.longest_gap()
            .map(|gap| Rpo {
                seconds: default_rpo_seconds(gap, self.options.deadline_seconds),
                source: RpoSource::Default,
            })
            .ok_or_else(|| {
                "spec.schedule gives no interval between firings to derive an RPO from".into()
            })
    }

    fn longest_gap(&self) -> Option<u64> {
        self.eventbridge_schedule()
            .ok()
            .and_then(|s| s.longest_gap_seconds())
    }
}

/// How long a schedule has gone without a `Complete` backup, against its RPO: one sweep's
/// judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RpoCheck {
    /// Seconds from [`Self::since`] to the sweep's clock (0 when `since` is later).
    pub since_complete_seconds: u64,
    /// `timeCompleted` of the newest `Complete` backup of the schedule's ticks, or, before it
    /// has one, the schedule's `creationTimestamp` (its first apply).
    pub since: String,
    /// The backup `since` is of; absent before the schedule's first `Complete` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_complete: Option<String>,
    /// The RPO, in seconds; absent when it cannot be known (see [`Self::problem`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<u64>,
    /// Where it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_source: Option<RpoSource>,
    /// `since_complete_seconds > rpo_seconds`.
    pub beyond_rpo: bool,
    /// Why the annotation was not used (the default was), or why no RPO is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn parse(t: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The newest `Complete` backup among `backups` (a schedule's ticks' ones) and when it completed:
/// by its `status.timeCompleted`; one that ended otherwise, that is being or failed to be
/// deleted (a deletion record), or without a readable `timeCompleted`, does not count.
pub fn newest_complete(backups: &[VolumeBackupDoc]) -> Option<(&VolumeBackupDoc, DateTime<Utc>)> {
    backups
        .iter()
        .filter(|b| b.status.progress.outcome() == Some(phases::COMPLETE))
        .filter(|b| b.brfed.deletion.is_none())
        .filter_map(|b| Some((b, parse(b.status.progress.time_completed.as_deref())?)))
        .max_by_key(|(_, t)| *t)
}

/// The sweep's judgement of schedule `doc`, given the backups its ticks made, at `now`: `None`
/// when it is paused (it makes no backups on purpose) or has no readable `creationTimestamp`
/// and no `Complete` backup (nothing to measure from). An annotation the catalog holds but
/// [`ScheduleRequest::rpo`] refuses (written before brfed checked it) is set aside for the
/// default, saying so in `problem`; without any RPO the schedule is never beyond it, and
/// `problem` says why.
pub fn check(
    doc: &ScheduleDoc,
    backups: &[VolumeBackupDoc],
    now: DateTime<Utc>,
) -> Option<RpoCheck> {
    if doc.spec.pause {
        return None;
    }
    let newest = newest_complete(backups);
    let (since, last_complete) = match newest {
        Some((b, t)) => (t, Some(b.metadata.meta.name.clone())),
        None => (parse(doc.metadata.creation_timestamp.as_deref())?, None),
    };
    let since_complete_seconds = u64::try_from((now - since).num_seconds()).unwrap_or(0);
    let request = doc.request();
    let (rpo, problem) = match request.rpo() {
        Ok(rpo) => (Some(rpo), None),
        Err(e) => match request.default_rpo() {
            Ok(rpo) => (Some(rpo), Some(format!("{e}; the default RPO is used"))),
            Err(e2) => (None, Some(e2)),
        },
    };
    Some(RpoCheck {
        since_complete_seconds,
        since: crate::time::rfc3339(since),
        last_complete,
        rpo_seconds: rpo.map(|r| r.seconds),
        rpo_source: rpo.map(|r| r.source),
        beyond_rpo: rpo.is_some_and(|r| since_complete_seconds > r.seconds),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schedule of `spec.schedule` `expr`, with `annotations` and `options`.
    fn request(
        expr: &str,
        annotations: serde_json::Value,
        options: serde_json::Value,
    ) -> ScheduleRequest {
        ScheduleRequest::from_value(serde_json::json!({
            "metadata": {"name": "s", "namespace": "br", "annotations": annotations},
            "spec": {"schedule": expr, "backupTemplate": {
                "clusters": [{"k8sClusterName": "dp1", "tcName": "t", "tcNamespace": "tidb"}],
                "template": {"br": {}, "s3": {"provider": "aws", "bucket": "data", "prefix": "p"}}}},
            "options": options}))
        .unwrap()
    }

    fn plain(expr: &str) -> ScheduleRequest {
        request(expr, serde_json::json!({}), serde_json::json!({}))
    }

    /// By default an interval plus the larger of an interval and the backups' deadline: twice the
    /// interval for a daily schedule, the interval plus 6 h for an hourly one, whose backups may
    /// each take up to their 6 h deadline while the next ticks wait.
    #[test]
    fn the_default_rpo_is_an_interval_plus_the_larger_of_an_interval_and_the_deadline() {
        let h = 3600;
        for (expr, want) in [
            ("0 1 * * *", 48 * h),
            ("@weekly", 14 * 24 * h),
            ("0 */6 * * *", 12 * h),
            ("0 * * * *", 7 * h),
            ("*/5 * * * *", 6 * h + 300),
        ] {
            assert_eq!(
                plain(expr).rpo(),
                Ok(Rpo {
                    seconds: want,
                    source: RpoSource::Default
                }),
                "{expr}"
            );
        }
        let short = request(
            "0 * * * *",
            serde_json::json!({}),
            serde_json::json!({"deadlineSeconds": 1800, "phaseTimeoutSeconds": 1800}),
        );
        assert_eq!(
            short.rpo().map(|r| r.seconds),
            Ok(2 * h),
            "the deadline given"
        );
    }

    #[test]
    fn the_annotation_overrides_the_default_and_a_bad_one_is_refused_by_name() {
        let with = |rpo: &str| {
            request(
                "0 1 * * *",
                serde_json::json!({ANNOTATION_RPO: rpo}),
                serde_json::json!({}),
            )
        };
        assert_eq!(
            with("36h").rpo(),
            Ok(Rpo {
                seconds: 36 * 3600,
                source: RpoSource::Annotation
            })
        );
        assert_eq!(with("1h30m").rpo().map(|r| r.seconds), Err(
            "metadata.annotations.brfed.io/rpo `1h30m` is shorter than the longest interval between two firings of spec.schedule (24h0m0s): the schedule would be beyond it between two ticks; give at least that".to_string()
        ));
        for (bad, needle) in [
            ("2d", "is not a Go duration"),
            ("", "brfed.io/rpo ``"),
            ("-48h", "brfed.io/rpo `-48h`"),
            ("12h", "shorter than the longest interval"),
            ("0s", "shorter than the longest interval"),
        ] {
            let r = with(bad);
            let e = r.rpo().unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
            // Refused when the schedule is applied, with every other problem, as InvalidSpec.
            match r.validate(None) {
                Err(crate::StepError::InvalidSpec(msg)) => assert!(msg.contains(&e), "{msg}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        with("24h").validate(None).unwrap();
        plain("0 1 * * *").validate(None).unwrap();
    }

    /// The annotation is the schedule's: its ticks' backups (and their members) do not carry it.
    #[test]
    fn the_annotation_stays_on_the_schedule() {
        let r = request(
            "0 1 * * *",
            serde_json::json!({ANNOTATION_RPO: "36h", "team": "dba"}),
            serde_json::json!({}),
        );
        let b = r.backup_request_for_tick(DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(
            b.metadata.annotations.keys().collect::<Vec<_>>(),
            vec!["team"]
        );
    }
}
