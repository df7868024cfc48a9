//! Times and durations: RFC 3339 as the original writes it, Go durations as it reads and writes
//! them, and the wait windows of the observe steps.

use crate::error::StepError;
use crate::input::ObserveMode;
use crate::input::truncate;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub(crate) fn now_ms() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, StepError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StepError::Internal(format!("bad time `{s}` in state: {e}")))
}

/// When an observe step must give up, under which failure name, and how long it may watch: the
/// earlier of the phase deadline and the overall one; no watch at all in poll mode.
pub(crate) fn wait_window(
    phase: &Phase,
    phase_timeout_seconds: u64,
    overall_deadline: &str,
    mode: ObserveMode,
    observe_budget: Duration,
) -> Result<(DateTime<Utc>, &'static str, Duration), StepError> {
    let phase_deadline =
        parse_time(&phase.started_at)? + chrono::Duration::seconds(phase_timeout_seconds as i64);
    let overall = parse_time(overall_deadline)?;
    let (deadline, name) = if phase_deadline < overall {
        (phase_deadline, "PhaseDeadlineExceeded")
    } else {
        (overall, "DeadlineExceeded")
    };
    let budget = match mode {
        ObserveMode::Poll => Duration::ZERO,
        ObserveMode::Watch => {
            observe_budget.min((deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO))
        }
    };
    Ok((deadline, name, budget))
}

/// RFC 3339 with seconds, as Kubernetes writes times.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Go duration (rounded to seconds) from the RFC 3339 time `started` to `now`.
pub fn time_taken(started: Option<&str>, now: DateTime<Utc>) -> Option<String> {
    let started = DateTime::parse_from_rfc3339(started?).ok()?;
    let secs = (now - started.with_timezone(&Utc))
        .num_milliseconds()
        .max(0) as f64
        / 1000.0;
    Some(go_duration(secs.round() as u64))
}

/// A Go `time.Duration` string for whole seconds: `0s`, `45s`, `12m3s`, `1h0m5s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Parses a duration as Go's `time.ParseDuration` does, for non-negative durations: decimal
/// numbers with optional fractions, each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`,
/// `h`), concatenated (`1h30m`, `1.5h`), or `0`; an optional leading `+`. Refuses what Go
/// refuses (`7d`, `1h 30m`, `""`, `1`, overflow past about 2562047h) and negative durations.
/// `0` gives [`Duration::ZERO`]; callers that need a positive value check it themselves.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let (negative, nanos) = go_duration_parts(s)?;
    if negative && nanos != 0 {
        return Err(format!(
            "`{}` is negative; a positive Go duration is needed, e.g. 168h",
            truncate(s)
        ));
    }
    Ok(Duration::from_nanos(nanos))
}

/// Go's `time.ParseDuration`, as sign and magnitude in nanoseconds (at most 2^63).
pub(crate) fn go_duration_parts(s: &str) -> Result<(bool, u64), String> {
    const LIMIT: u64 = 1 << 63;
    let shown = truncate(s);
    let invalid = || format!("`{shown}` is not a Go duration (e.g. 168h, 1h30m, 90m)");
    let overflow = || format!("`{shown}` is too long a duration (at most about 2562047h)");
    let mut rest = s.as_bytes();
    let mut negative = false;
    if let Some(&c) = rest.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        rest = &rest[1..];
    }
    if rest == b"0" {
        return Ok((false, 0));
    }
    if rest.is_empty() {
        return Err(if s.is_empty() {
            "the duration is empty (e.g. 168h)".to_string()
        } else {
            invalid()
        });
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Whole part.
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &b in &rest[..digits] {
            if whole > LIMIT / 10 {
                return Err(overflow());
            }
            whole = whole * 10 + u64::from(b - b'0');
            if whole > LIMIT {
                return Err(overflow());
            }
        }
        let pre = digits > 0;
        rest = &rest[digits..];
        // Fraction: stops gaining precision instead of overflowing, as Go's.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if rest.first() == Some(&b'.') {
            rest = &rest[1..];
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            post = digits > 0;
            let mut overflowed = false;
            for &b in &rest[..digits] {
                if overflowed {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(b - b'0');
                if next > LIMIT {
                    overflowed = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = &rest[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.'.
        let len = rest
            .iter()
            .take_while(|&&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if len == 0 {
            return Err(format!(
                "`{shown}` has a number without a unit; Go duration units are ns, us, ms, s, m, h (e.g. 168h)"
            ));
        }
        let unit_text = String::from_utf8_lossy(&rest[..len]).into_owned();
        rest = &rest[len..];
        let unit: u64 = match unit_text.as_str() {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                let days = ["d", "day", "days", "w", "wk", "week", "weeks", "y", "yr"]
                    .contains(&other.to_ascii_lowercase().as_str());
                return Err(if days {
                    format!(
                        "`{shown}` is not a Go duration: unknown unit `{}`; Go duration syntax, e.g. 168h; days are not a unit",
                        truncate(other)
                    )
                } else {
                    format!(
                        "`{shown}` is not a Go duration: unknown unit `{}` (units are ns, us, ms, s, m, h)",
                        truncate(other)
                    )
                });
            }
        };
        if whole > LIMIT / unit {
            return Err(overflow());
        }
        let mut v = whole * unit;
        if fraction > 0 {
            // As Go: float64 keeps nanosecond accuracy for fractions of an hour.
            v += (fraction as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(overflow());
            }
        }
        total = total.checked_add(v).ok_or_else(overflow)?;
        if total > LIMIT {
            return Err(overflow());
        }
    }
    if !negative && total > LIMIT - 1 {
        return Err(overflow());
    }
    Ok((negative, total))
}

/// The phase the execution is in, and since when (for phase deadlines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// RFC 3339 with ms.
    pub started_at: String,
}

impl Phase {
    pub(crate) fn now(name: &str) -> Self {
        Self {
            name: name.into(),
            started_at: now_ms(),
        }
    }
}
