//! The `spec.schedule` of a `VolumeBackupSchedule`, as the original reads it, translated into
//! the schedule expression of an EventBridge rule.
//!
//! **The source dialect** is robfig/cron v1.2 `ParseStandard` (reference §2.2), reproduced
//! here field by field from its parser:
//!
//! * five fields separated by white space: minute (0-59), hour (0-23), day-of-month (1-31),
//!   month (1-12 or `JAN`-`DEC`), day-of-week (0-6 or `SUN`-`SAT`, **0 = Sunday**; robfig's
//!   bounds are 0-6, so `7` is refused as out of range, where some other crons read Sunday);
//! * each field a comma-separated list of `*`, `?` (the same as `*`, accepted in every field as
//!   robfig does), `N`, `N-M`, any of these followed by `/step`, with `N/step` meaning
//!   `N-max/step`; names are three letters and case-insensitive; numbers may carry a leading
//!   `+` or zeros (Go's `strconv.Atoi`); empty list elements (`1,,2`) are skipped as robfig does;
//! * descriptors, exactly and in lower case: `@yearly`, `@annually`, `@monthly`, `@weekly`,
//!   `@daily`, `@midnight`, `@hourly`, and `@every <Go duration>`;
//! * day matching: robfig marks a field whose list has an element starting with `*` or `?`
//!   (including `*/2`); when either day field is so marked, a day must match both fields,
//!   otherwise it must match either (Vixie cron's rule);
//! * times are evaluated in UTC. The original evaluates them in the manager's time zone (the
//!   chart's `TZ`, UTC by default); EventBridge rules always evaluate `cron(...)` in UTC, so a
//!   manager that ran with another `TZ` fires at other instants here.
//!
//! brfed is stricter than robfig in two places where robfig silently does something
//! surprising: `*-5` (robfig ignores what follows `*`) and a field with no element at all
//! (`,`, which robfig accepts and which then never fires) are refused. It is more lenient in
//! one: white space around a descriptor (` @daily `) is ignored, where robfig refuses it.
//!
//! **The target dialect** is EventBridge's `cron(Minutes Hours Day-of-month Month Day-of-week
//! Year)`: day-of-week 1-7 = `SUN`-`SAT`, exactly one of the two day fields must be `?`, and a
//! rule whose expression is a `rate(...)` fires every N minutes, hours or days from the rule's
//! creation. The translation works on the sets of values each field matches, not on the text:
//! it renders every field from its set (day-of-week by name, so the 0-based robfig numbers and
//! the 1-based EventBridge numbers never meet), and refuses what one EventBridge rule cannot
//! mean: both day fields restricted, `@every` that is not a whole number of minutes, and an
//! expression that never fires (`0 0 30 2 *`).
//!
//! **`@every d`** becomes `rate(...)`: robfig's `@every` fires at the schedule's creation + d,
//! then every d after the previous scheduled time, not aligned to the clock; an EventBridge rate
//! likewise starts when the rule is created and is not aligned to the clock, so the meaning is
//! kept when d is a whole number of minutes (robfig first truncates d to whole seconds and raises
//! it to at least 1 s). Any other d is refused.

use crate::input::truncate;
use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Longest schedule expression EventBridge accepts (`PutRule`'s `ScheduleExpression`).
pub const EVENTBRIDGE_MAX_EXPRESSION: usize = 256;

/// Day names in robfig's order (index = robfig's number, 0 = Sunday). EventBridge numbers the
/// same days 1-7, which is why the translation writes names.
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Longest day of each month, leap years included.
const MONTH_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A field of a five-field cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    /// Minute, 0-59.
    Minute,
    /// Hour, 0-23.
    Hour,
    /// Day of the month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or `JAN`-`DEC`.
    Month,
    /// Day of the week, 0-6 (0 = Sunday) or `SUN`-`SAT`.
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        Self::Minute,
        Self::Hour,
        Self::DayOfMonth,
        Self::Month,
        Self::DayOfWeek,
    ];

    /// Smallest and largest value robfig accepts.
    fn bounds(self) -> (u32, u32) {
        match self {
            Self::Minute => (0, 59),
            Self::Hour => (0, 23),
            Self::DayOfMonth => (1, 31),
            Self::Month => (1, 12),
            Self::DayOfWeek => (0, 6),
        }
    }

    fn value_of_name(self, word: &str) -> Option<u32> {
        let lower = word.to_lowercase();
        let (names, first): (&[&str], u32) = match self {
            Self::Month => (&MONTH_NAMES, 1),
            Self::DayOfWeek => (&DAY_NAMES, 0),
            _ => return None,
        };
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(&lower))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + first)
    }

    fn full(self) -> u64 {
        let (min, max) = self.bounds();
        bits(min, max, 1)
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        })
    }
}

/// Why a schedule cannot become an EventBridge rule. The variant name is stable (see
/// [`CronError::name`]); the message names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CronError {
    /// Nothing was given.
    #[error(
        "the schedule is empty: give five fields (minute hour day-of-month month day-of-week), e.g. `0 1 * * *`, or a descriptor such as `@daily`"
    )]
    Empty,
    /// Not five fields.
    #[error("expected 5 fields (minute hour day-of-month month day-of-week), found {found}{hint}")]
    FieldCount {
        /// How many fields were found.
        found: usize,
        /// What the expression probably is.
        hint: &'static str,
    },
    /// A field is not written in the dialect (letters, `L`, `W`, `#`, stray characters).
    #[error("{field} `{text}`: {reason}")]
    Syntax {
        /// The field.
        field: CronField,
        /// The field as written (shortened).
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A value lies outside the field's bounds.
    #[error("{field} `{text}`: {value} is out of range, {field} values are {min}-{max}{hint}")]
    OutOfRange {
        /// The field.
        field: CronField,
        /// The field as written (shortened).
        text: String,
        /// The value as written.
        value: String,
        /// Smallest value.
        min: u32,
        /// Largest value.
        max: u32,
        /// A hint, e.g. about Sunday being 0.
        hint: &'static str,
    },
    /// A range whose end comes before its start; ranges do not wrap around.
    #[error(
        "{field} `{text}`: the range {start}-{end} runs backwards and ranges do not wrap around; write `{suggestion}`"
    )]
    ReversedRange {
        /// The field.
        field: CronField,
        /// The field as written (shortened).
        text: String,
        /// Start of the range.
        start: u32,
        /// End of the range.
        end: u32,
        /// The same days written as two ranges.
        suggestion: String,
    },
    /// An `@` word that is not one of robfig's descriptors.
    #[error(
        "`{text}` is not a descriptor; the descriptors are @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly and @every <duration>, in lower case"
    )]
    UnknownDescriptor {
        /// The descriptor as written (shortened).
        text: String,
    },
    /// `@every` with a duration Go's `time.ParseDuration` does not accept.
    #[error("`{text}`: {reason}")]
    InvalidEvery {
        /// The expression as written (shortened).
        text: String,
        /// What is wrong with the duration.
        reason: String,
    },
    /// A valid schedule whose meaning no single EventBridge rule has.
    #[error("`{text}` cannot be an EventBridge schedule: {reason}")]
    Unsupported {
        /// The expression as written (shortened).
        text: String,
        /// Why not, and what to write instead.
        reason: String,
    },
    /// Both day fields are restricted: the original ORs them (or ANDs them, when one starts
    /// with `*`), and EventBridge needs `?` in one of them.
    #[error(
        "day-of-month `{dom}` and day-of-week `{dow}` are both restricted: {meaning}, and an EventBridge rule needs `?` in one of the two, so this meaning cannot be kept in one rule ({advice})"
    )]
    DayOfMonthAndWeek {
        /// The day-of-month field as written (shortened).
        dom: String,
        /// The day-of-week field as written (shortened).
        dow: String,
        /// What the original does with the two.
        meaning: &'static str,
        /// How to rewrite it.
        advice: String,
    },
    /// No day of any chosen month has a chosen day of the month (`0 0 30 2 *`).
    #[error(
        "day-of-month `{dom}` never occurs in month `{month}`, so the schedule would never fire"
    )]
    NeverFires {
        /// The day-of-month field as written (shortened).
        dom: String,
        /// The month field as written (shortened).
        month: String,
    },
}

impl CronError {
    /// The stable name of the variant.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::FieldCount { .. } => "FieldCount",
            Self::Syntax { .. } => "Syntax",
            Self::OutOfRange { .. } => "OutOfRange",
            Self::ReversedRange { .. } => "ReversedRange",
            Self::UnknownDescriptor { .. } => "UnknownDescriptor",
            Self::InvalidEvery { .. } => "InvalidEvery",
            Self::Unsupported { .. } => "Unsupported",
            Self::DayOfMonthAndWeek { .. } => "DayOfMonthAndWeek",
            Self::NeverFires { .. } => "NeverFires",
        }
    }
}

/// Unit of an EventBridge `rate(...)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minutes,
    /// `hour` / `hours`.
    Hours,
    /// `day` / `days`.
    Days,
}

impl RateUnit {
    /// Seconds in one unit.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Minutes => 60,
            Self::Hours => 3600,
            Self::Days => 86_400,
        }
    }
}

/// An EventBridge schedule expression. `Display` writes it as `PutRule` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBridgeSchedule {
    /// `cron(minutes hours day-of-month month day-of-week *)`, evaluated in UTC. Exactly one
    /// of the two day fields is `?`; day-of-week is written with names (`SUN`-`SAT`).
    Cron {
        /// Minutes field.
        minutes: String,
        /// Hours field.
        hours: String,
        /// Day-of-month field.
        day_of_month: String,
        /// Month field (numbers).
        month: String,
        /// Day-of-week field.
        day_of_week: String,
    },
    /// `rate(value unit)`: every `value` units from the rule's creation.
    Rate {
        /// How many units (at least 1).
        value: u64,
        /// The unit.
        unit: RateUnit,
    },
}

impl EventBridgeSchedule {
    /// The expression, e.g. `cron(0 1 * * ? *)` or `rate(6 hours)`.
    pub fn expression(&self) -> String {
        self.to_string()
    }

    /// The latest time this schedule fires after `after` and no later than `until`, `None` when
    /// it does not fire in between: the original's `getLastScheduledTime` (the newest scheduled
    /// time since the last backup). A `cron(...)` is evaluated as EventBridge does (UTC, Quartz
    /// fields; `tests/schedule_cron.rs` proves the translation keeps the original's fire times),
    /// looking back at most 400 days from `until`; a `rate(...)` fires every period from
    /// `after`, as robfig's `@every` fires every period after the previous scheduled time.
    pub fn latest_fire(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if until <= after {
            return None;
        }
        match self {
            Self::Rate { value, unit } => {
                let step = i64::try_from(value.checked_mul(unit.seconds())?).ok()?;
                let periods = (until - after).num_seconds() / step;
                (periods >= 1).then(|| after + chrono::Duration::seconds(periods * step))
            }
            Self::Cron { .. } => {
                // `cron(m h dom mon dow *)` as Quartz reads it: a seconds field first.
                let text = self.to_string();
                let fields = text.strip_prefix("cron(")?.strip_suffix(')')?;
                let schedule = quartz_cron::Schedule::from_str(&format!("0 {fields}")).ok()?;
                let from = after.max(until - chrono::Duration::days(400));
                schedule.after(&from).take_while(|t| *t <= until).last()
            }
        }
    }

    /// The longest time between two consecutive firings, in seconds: a `rate(...)`'s period; for
    /// a `cron(...)`, found over the years 2024 to 2032 (three leap days, so that `0 0 29 2 *`
    /// gives its 4 years; every expression [`translate`] accepts fires at least twice in them).
    /// A cron's firings are its times of day (minutes × hours, the same on every day it fires)
    /// on the days it fires, so the longest gap is the longest between two times of one day or
    /// from the last time of a firing day to the first time of the next: found from about 3,300
    /// days and 1,440 times of day, never by walking every minute. `None` when the expression
    /// does not fire twice in those years (not one `translate` makes).
    pub fn longest_gap_seconds(&self) -> Option<u64> {
        match self {
            Self::Rate { value, unit } => value.checked_mul(unit.seconds()).filter(|s| *s > 0),
            Self::Cron {
                minutes,
                hours,
                day_of_month,
                month,
                day_of_week,
            } => {
                let parse = |text: String| quartz_cron::Schedule::from_str(&text).ok();
                let days = parse(format!("0 0 0 {day_of_month} {month} {day_of_week} *"))?;
                let times = parse(format!("0 {minutes} {hours} * * ? *"))?;
                let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                    .ok()?
                    .with_timezone(&Utc);
                let before = start - chrono::Duration::seconds(1);
                let day_end = start + chrono::Duration::days(1);
                let window_end = DateTime::parse_from_rfc3339("2033-01-01T00:00:00Z")
                    .ok()?
                    .with_timezone(&Utc);
                // Seconds after midnight of each firing in a day, in order.
                let offsets: Vec<i64> = times
                    .after(&before)
                    .take_while(|t| *t < day_end)
                    .map(|t| (t - start).num_seconds())
                    .collect();
                let (first, last) = (*offsets.first()?, *offsets.last()?);
                let within_day = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
                let midnights: Vec<DateTime<Utc>> = days
                    .after(&before)
                    .take_while(|t| *t < window_end)
                    .collect();
                let across_days = midnights
                    .windows(2)
                    .map(|w| (w[1] - w[0]).num_seconds() + first - last)
                    .max();
                // One firing day in nine years is not a gap found: no answer rather than a
                // within-day one.
                let gap = across_days?.max(within_day);
                u64::try_from(gap).ok().filter(|s| *s > 0)
            }
        }
    }
}

impl fmt::Display for EventBridgeSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cron {
                minutes,
                hours,
                day_of_month,
                month,
                day_of_week,
            } => write!(
                f,
                "cron({minutes} {hours} {day_of_month} {month} {day_of_week} *)"
            ),
            Self::Rate { value, unit } => {
                let word = match unit {
                    RateUnit::Minutes => "minute",
                    RateUnit::Hours => "hour",
                    RateUnit::Days => "day",
                };
                // EventBridge wants the singular for 1 and the plural otherwise.
                let plural = if *value == 1 { "" } else { "s" };
                write!(f, "rate({value} {word}{plural})")
            }
        }
    }
}

/// One parsed field: the set of values it matches (bit `v` for value `v`), and whether robfig
/// marks it as starred (an element starting with `*` or `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldSet {
    bits: u64,
    star: bool,
}

/// A parsed five-field expression (or descriptor other than `@every`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    fields: [FieldSet; 5],
    /// The fields as written, for messages.
    texts: [String; 5],
}

impl Spec {
    fn field(&self, f: CronField) -> FieldSet {
        self.fields[f as usize]
    }
    fn text(&self, f: CronField) -> &str {
        &self.texts[f as usize]
    }
}

enum Standard {
    Spec(Spec),
    /// `@every`: the duration robfig keeps, in whole seconds.
    Every(u64),
}

/// Translates a `VolumeBackupSchedule.spec.schedule` (robfig/cron v1.2 `ParseStandard`) into
/// the EventBridge expression that fires at the same instants (UTC). See the module
/// documentation for both dialects and what is refused.
pub fn translate(expr: &str) -> Result<EventBridgeSchedule, CronError> {
    let out = match parse_standard(expr)? {
        Standard::Every(seconds) => every_to_rate(expr, seconds)?,
        Standard::Spec(spec) => spec_to_cron(&spec)?,
    };
    let len = out.to_string().len();
    if len > EVENTBRIDGE_MAX_EXPRESSION {
        return Err(CronError::Unsupported {
            text: truncate(expr),
            reason: format!(
                "its EventBridge form is {len} characters, more than the {EVENTBRIDGE_MAX_EXPRESSION} EventBridge accepts; use fewer list elements"
            ),
        });
    }
    Ok(out)
}

fn parse_standard(expr: &str) -> Result<Standard, CronError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(CronError::Empty);
    }
    if trimmed.starts_with('@') {
        return parse_descriptor(trimmed);
    }
    let words: Vec<&str> = trimmed.split_whitespace().collect();
    if words.len() != 5 {
        let hint = match words.len() {
            6 | 7 => {
                " (this looks like Quartz or EventBridge syntax with a seconds or year field; the original's parser, robfig/cron ParseStandard, takes five: `0 0 1 * * ?` is written `0 1 * * *`)"
            }
            _ => "",
        };
        return Err(CronError::FieldCount {
            found: words.len(),
            hint,
        });
    }
    let mut fields = [FieldSet {
        bits: 0,
        star: false,
    }; 5];
    for (i, field) in CronField::ALL.into_iter().enumerate() {
        fields[i] = parse_field(field, words[i])?;
    }
    Ok(Standard::Spec(Spec {
        fields,
        texts: std::array::from_fn(|i| truncate(words[i])),
    }))
}

fn parse_descriptor(text: &str) -> Result<Standard, CronError> {
    let star = |f: CronField| FieldSet {
        bits: f.full(),
        star: true,
    };
    let one = |v: u32| FieldSet {
        bits: 1 << v,
        star: false,
    };
    use CronField::*;
    // As robfig builds them: every `all(...)` field carries the star mark.
    let fields = match text {
        "@yearly" | "@annually" => [one(0), one(0), one(1), one(1), star(DayOfWeek)],
        "@monthly" => [one(0), one(0), one(1), star(Month), star(DayOfWeek)],
        "@weekly" => [one(0), one(0), star(DayOfMonth), star(Month), one(0)],
        "@daily" | "@midnight" => [
            one(0),
            one(0),
            star(DayOfMonth),
            star(Month),
            star(DayOfWeek),
        ],
        "@hourly" => [
            one(0),
            star(Hour),
            star(DayOfMonth),
            star(Month),
            star(DayOfWeek),
        ],
        _ => {
            if let Some(duration) = text.strip_prefix("@every ") {
                return parse_every(text, duration);
            }
            if text == "@every" {
                return Err(CronError::InvalidEvery {
                    text: truncate(text),
                    reason: "@every needs a Go duration, e.g. `@every 6h`".into(),
                });
            }
            return Err(CronError::UnknownDescriptor {
                text: truncate(text),
            });
        }
    };
    let texts = fields.map(|f| render_plain(f.bits));
    Ok(Standard::Spec(Spec { fields, texts }))
}

fn parse_every(text: &str, duration: &str) -> Result<Standard, CronError> {
    let (negative, nanos) =
        crate::time::go_duration_parts(duration).map_err(|reason| CronError::InvalidEvery {
            text: truncate(text),
            reason,
        })?;
    // robfig's Every: below one second becomes one second, then truncated to whole seconds.
    let seconds = if negative {
        1
    } else {
        (nanos / 1_000_000_000).max(1)
    };
    Ok(Standard::Every(seconds))
}

fn every_to_rate(text: &str, seconds: u64) -> Result<EventBridgeSchedule, CronError> {
    if !seconds.is_multiple_of(60) {
        return Err(CronError::Unsupported {
            text: truncate(text),
            reason: format!(
                "the original fires every {seconds} s from the schedule's creation, and an EventBridge rate counts whole minutes; use a whole number of minutes (e.g. `@every {}m`) or a cron expression",
                seconds.div_ceil(60)
            ),
        });
    }
    let minutes = seconds / 60;
    let (value, unit) = if minutes.is_multiple_of(1440) {
        (minutes / 1440, RateUnit::Days)
    } else if minutes.is_multiple_of(60) {
        (minutes / 60, RateUnit::Hours)
    } else {
        (minutes, RateUnit::Minutes)
    };
    Ok(EventBridgeSchedule::Rate { value, unit })
}

fn parse_field(field: CronField, text: &str) -> Result<FieldSet, CronError> {
    let mut set = FieldSet {
        bits: 0,
        star: false,
    };
    let mut any = false;
    // robfig splits with strings.FieldsFunc, which drops empty elements.
    for element in text.split(',').filter(|e| !e.is_empty()) {
        any = true;
        parse_element(field, text, element, &mut set)?;
    }
    if !any {
        return Err(syntax(
            field,
            text,
            "the list has no element, so it would match nothing",
        ));
    }
    Ok(set)
}

/// `*`, `?`, `N`, `N-M`, each optionally followed by `/step`.
fn parse_element(
    field: CronField,
    text: &str,
    element: &str,
    set: &mut FieldSet,
) -> Result<(), CronError> {
    let (min, max) = field.bounds();
    let mut parts = element.split('/');
    let range = parts.next().unwrap_or_default();
    let step_text = parts.next();
    if parts.next().is_some() {
        return Err(syntax(field, text, "more than one `/` in an element"));
    }
    let ends: Vec<&str> = range.split('-').collect();
    let (start, mut end) = if ends[0] == "*" || ends[0] == "?" {
        if ends.len() > 1 {
            return Err(syntax(
                field,
                text,
                "`*` and `?` cannot start a range (robfig would silently ignore the rest)",
            ));
        }
        set.star = true;
        (min, max)
    } else {
        if ends.len() > 2 {
            return Err(syntax(
                field,
                text,
                "more than one `-` in an element (negative numbers are not accepted)",
            ));
        }
        let start = value(field, text, ends[0])?;
        let end = match ends.get(1) {
            Some(e) => value(field, text, e)?,
            None => start,
        };
        (start, end)
    };
    let step = match step_text {
        None => 1,
        Some(s) => {
            let step = number(field, text, s, "step")?;
            if ends.len() == 1 {
                // robfig: `N/step` means `N-max/step`.
                end = max;
            }
            step
        }
    };
    if start > end {
        let suggestion = if field == CronField::DayOfWeek {
            format!(
                "{}-{},{}-{}",
                DAY_NAMES[start as usize],
                DAY_NAMES[max as usize],
                DAY_NAMES[min as usize],
                DAY_NAMES[end as usize]
            )
        } else {
            format!("{start}-{max},{min}-{end}")
        };
        return Err(CronError::ReversedRange {
            field,
            text: truncate(text),
            start,
            end,
            suggestion,
        });
    }
    if step == 0 {
        return Err(syntax(field, text, "a step must be at least 1"));
    }
    set.bits |= bits(start, end, step);
    Ok(())
}

/// A value of the field: a name or a number within bounds.
fn value(field: CronField, text: &str, word: &str) -> Result<u32, CronError> {
    if let Some(v) = field.value_of_name(word) {
        return Ok(v);
    }
    let v = number(field, text, word, "value")?;
    let (min, max) = field.bounds();
    if v < u64::from(min) || v > u64::from(max) {
        let hint = match (field, v) {
            (CronField::DayOfWeek, 7) => {
                " (robfig numbers Sunday 0 and does not accept 7; write 0 or SUN)"
            }
            (CronField::DayOfMonth, 0) => " (days of the month start at 1)",
            (CronField::Month, 0) => " (months start at 1)",
            _ => "",
        };
        return Err(CronError::OutOfRange {
            field,
            text: truncate(text),
            value: truncate(word),
            min,
            max,
            hint,
        });
    }
    u32::try_from(v).map_err(|_| syntax(field, text, "number too large"))
}

/// A non-negative number as Go's `strconv.Atoi` reads it (optional `+`, decimal digits).
fn number(field: CronField, text: &str, word: &str, what: &str) -> Result<u64, CronError> {
    let digits = word.strip_prefix('+').unwrap_or(word);
    if word.is_empty() {
        return Err(syntax(field, text, &format!("a {what} is missing")));
    }
    if word.starts_with('-') {
        return Err(syntax(field, text, "negative numbers are not accepted"));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let names = match field {
            CronField::Month => " or a month name JAN-DEC",
            CronField::DayOfWeek => " or a day name SUN-SAT",
            _ => "",
        };
        let special = if ["L", "W", "#"].iter().any(|c| word.contains(c)) {
            "; `L`, `W` and `#` are not part of the original's cron dialect"
        } else {
            ""
        };
        return Err(syntax(
            field,
            text,
            &format!(
                "`{}` is not a {what}: expected a number{names}{special}",
                truncate(word)
            ),
        ));
    }
    // Longer than any bound or step that matters: saturate, the bound check refuses it.
    Ok(digits.parse::<u64>().unwrap_or(u64::MAX))
}

fn syntax(field: CronField, text: &str, reason: &str) -> CronError {
    CronError::Syntax {
        field,
        text: truncate(text),
        reason: reason.to_string(),
    }
}

/// Values `start..=end` every `step`, as a bit set (values are below 64).
fn bits(start: u32, end: u32, step: u64) -> u64 {
    let step = usize::try_from(step.min(64)).unwrap_or(64);
    (start..=end.min(63))
        .step_by(step)
        .fold(0, |acc, v| acc | 1 << v)
}

fn values(bits: u64) -> Vec<u32> {
    (0..64).filter(|v| bits & (1 << v) != 0).collect()
}

fn spec_to_cron(spec: &Spec) -> Result<EventBridgeSchedule, CronError> {
    use CronField::*;
    let dom = spec.field(DayOfMonth);
    let dow = spec.field(DayOfWeek);
    let dom_full = dom.bits == DayOfMonth.full();
    let dow_full = dow.bits == DayOfWeek.full();
    let (day_of_month, day_of_week) = if dom.star || dow.star {
        // robfig ANDs the two day fields.
        match (dom_full, dow_full) {
            (true, true) => ("*".to_string(), "?".to_string()),
            (true, false) => ("?".to_string(), render_days(dow.bits)),
            (false, true) => (render_plain(dom.bits), "?".to_string()),
            (false, false) => {
                return Err(CronError::DayOfMonthAndWeek {
                    dom: spec.text(DayOfMonth).to_string(),
                    dow: spec.text(DayOfWeek).to_string(),
                    meaning: "as one of them starts with `*`, the original fires only on days matching both",
                    advice: "restrict only one of the two fields".into(),
                });
            }
        }
    } else if dom_full || dow_full {
        // Vixie's OR with a field that matches every day: every day.
        ("*".to_string(), "?".to_string())
    } else {
        return Err(CronError::DayOfMonthAndWeek {
            dom: spec.text(DayOfMonth).to_string(),
            dow: spec.text(DayOfWeek).to_string(),
            meaning: "the original fires on days matching either of them (Vixie cron)",
            advice: format!(
                "split it into two schedules, one with day-of-month `{}` and day-of-week `*`, the other with day-of-month `*` and day-of-week `{}`",
                spec.text(DayOfMonth),
                spec.text(DayOfWeek)
            ),
        });
    };
    if day_of_month != "?" && day_of_month != "*" {
        let months = spec.field(Month).bits;
        let possible = values(months).into_iter().any(|m| {
            let last = MONTH_DAYS[(m as usize).saturating_sub(1) % 12];
            dom.bits & bits(1, last, 1) != 0
        });
        if !possible {
            return Err(CronError::NeverFires {
                dom: spec.text(DayOfMonth).to_string(),
                month: spec.text(Month).to_string(),
            });
        }
    }
    Ok(EventBridgeSchedule::Cron {
        minutes: render_stepped(spec.field(Minute).bits, Minute),
        hours: render_stepped(spec.field(Hour).bits, Hour),
        day_of_month,
        month: if spec.field(Month).bits == Month.full() {
            "*".into()
        } else {
            render_plain(spec.field(Month).bits)
        },
        day_of_week,
    })
}

/// Minutes and hours: `*`, `a/s` when the set is `a, a+s, …` up to the end of the field (at
/// least three values; `a/s` means exactly that in EventBridge, as in Quartz), else a list.
fn render_stepped(bits: u64, field: CronField) -> String {
    if bits == field.full() {
        return "*".into();
    }
    let v = values(bits);
    let (_, max) = field.bounds();
    if v.len() >= 3 {
        let step = v[1] - v[0];
        let progression = step >= 2 && v.windows(2).all(|w| w[1] - w[0] == step);
        if progression && v[v.len() - 1] + step > max {
            return format!("{}/{step}", v[0]);
        }
    }
    render_plain(bits)
}

/// A list of values and ranges (`a-b` for three or more consecutive values).
fn render_plain(bits: u64) -> String {
    render_runs(bits, |v| v.to_string())
}

/// Days of the week by name (`SUN`-`SAT`): EventBridge numbers them 1-7, robfig 0-6.
fn render_days(bits: u64) -> String {
    render_runs(bits, |v| {
        DAY_NAMES
            .get(v as usize)
            .copied()
            .unwrap_or("?")
            .to_string()
    })
}

fn render_runs(bits: u64, name: impl Fn(u32) -> String) -> String {
    let v = values(bits);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            out.push(format!("{}-{}", name(v[i]), name(v[j])));
        } else {
            out.extend(v[i..=j].iter().map(|&x| name(x)));
        }
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    /// The newest scheduled time since the last backup (the original's getLastScheduledTime):
    /// strictly after it, at or before now, as EventBridge fires the translated expression.
    #[test]
    fn the_latest_fire_is_the_newest_scheduled_time_since_the_last() {
        let daily = translate("0 2 * * *").unwrap();
        let latest = |after: &str, until: &str| daily.latest_fire(utc(after), utc(until));
        assert_eq!(
            latest("2026-01-01T02:00:00Z", "2026-01-03T01:59:59Z"),
            Some(utc("2026-01-02T02:00:00Z"))
        );
        assert_eq!(
            latest("2026-01-01T02:00:00Z", "2026-01-03T02:00:00Z"),
            Some(utc("2026-01-03T02:00:00Z")),
            "a time equal to now is due"
        );
        assert_eq!(latest("2026-01-01T02:00:00Z", "2026-01-02T01:59:00Z"), None);
        assert_eq!(latest("2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z"), None);
        // A year paused: the newest only, found without walking every minute of it.
        let minutely = translate("* * * * *").unwrap();
        assert_eq!(
            minutely.latest_fire(utc("2025-01-01T00:00:00Z"), utc("2026-03-01T12:34:56Z")),
            Some(utc("2026-03-01T12:34:00Z"))
        );
        // Sundays (robfig 0 = SUN, written by name for EventBridge).
        let sundays = translate("30 1 * * 0").unwrap();
        assert_eq!(
            sundays.latest_fire(utc("2026-01-01T00:00:00Z"), utc("2026-01-14T00:00:00Z")),
            Some(utc("2026-01-11T01:30:00Z"))
        );
        // @every: every period after the last scheduled time.
        let every = translate("@every 6h").unwrap();
        assert_eq!(
            every.latest_fire(utc("2026-01-01T10:17:00Z"), utc("2026-01-01T22:20:00Z")),
            Some(utc("2026-01-01T22:17:00Z"))
        );
        assert_eq!(
            every.latest_fire(utc("2026-01-01T10:17:00Z"), utc("2026-01-01T16:16:59Z")),
            None
        );
    }

    /// The longest interval between consecutive firings (the default RPO is made of it).
    #[test]
    fn the_longest_gap_between_firings_is_found_across_days_months_and_years() {
        let gap = |expr: &str| translate(expr).unwrap().longest_gap_seconds();
        let (m, h, d) = (60, 3600, 86_400);
        for (expr, want) in [
            ("0 2 * * *", d),
            ("@daily", d),
            ("0 */6 * * *", 6 * h),
            ("* * * * *", m),
            // Two a night: the long gap is from 02:00 to 01:00 the next day.
            ("0 1,2 * * *", 23 * h),
            ("30 1 * * 0", 7 * d),
            // Office hours: Friday 17:55 to Monday 09:00.
            ("*/5 9-17 * * 1-5", 2 * d + 15 * h + 5 * m),
            // The 31st: May 31 to July 31.
            ("0 0 31 * *", 61 * d),
            // The 29th of February: every 4 years.
            ("0 0 29 2 *", (3 * 365 + 366) * d),
            ("@yearly", 366 * d),
            ("@every 90m", 90 * m),
            ("@every 2h", 2 * h),
        ] {
            assert_eq!(gap(expr), Some(want), "{expr}");
        }
    }

    fn ok(expr: &str) -> String {
        translate(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .to_string()
    }

    #[test]
    fn the_everyday_schedules_translate() {
        assert_eq!(ok("0 1 * * *"), "cron(0 1 * * ? *)");
        assert_eq!(ok("@daily"), "cron(0 0 * * ? *)");
        assert_eq!(ok("*/15 * * * *"), "cron(0/15 * * * ? *)");
        assert_eq!(ok("30 2 * * mon-fri"), "cron(30 2 ? * MON-FRI *)");
        assert_eq!(ok("0 0 1 */3 *"), "cron(0 0 1 1,4,7,10 ? *)");
    }

    #[test]
    fn day_of_week_is_shifted_by_writing_names() {
        assert_eq!(ok("0 0 * * 0"), "cron(0 0 ? * SUN *)");
        assert_eq!(ok("0 0 * * 6"), "cron(0 0 ? * SAT *)");
        assert_eq!(ok("0 0 * * */2"), "cron(0 0 ? * SUN,TUE,THU,SAT *)");
        assert_eq!(ok("0 0 * * 1-5/2"), "cron(0 0 ? * MON,WED,FRI *)");
    }

    #[test]
    fn the_two_day_fields_are_refused_together() {
        assert_eq!(
            translate("0 0 1 * 1").unwrap_err().name(),
            "DayOfMonthAndWeek"
        );
        assert_eq!(
            translate("0 0 */2 * 1").unwrap_err().name(),
            "DayOfMonthAndWeek"
        );
        let msg = translate("0 0 1 * 1").unwrap_err().to_string();
        assert!(msg.contains("two schedules"), "{msg}");
    }

    #[test]
    fn every_becomes_a_rate_only_in_whole_minutes() {
        assert_eq!(ok("@every 1h"), "rate(1 hour)");
        assert_eq!(ok("@every 90m"), "rate(90 minutes)");
        assert_eq!(ok("@every 48h"), "rate(2 days)");
        assert_eq!(ok("@every 1m0.5s"), "rate(1 minute)");
        assert_eq!(translate("@every 90s").unwrap_err().name(), "Unsupported");
        assert_eq!(translate("@every 7d").unwrap_err().name(), "InvalidEvery");
    }

    #[test]
    fn odd_input_never_panics() {
        let odd = [
            "",
            " ",
            "@",
            "@every",
            "@every ",
            "*/",
            "/",
            "-",
            ",",
            "1-",
            "-1",
            "*-*",
            "99999999999999999999999 * * * *",
            "* * * * */99999999999999999999",
            "\u{0}\u{1} * * * *",
            "ä ö ü ß ∞",
            "@every -1h",
            "@every 1µs",
            "1,,2 * * * *",
            "* * * * ,",
            "@every 9223372036854775807ns",
            "@every 2562047h47m16.854775808s",
        ];
        for s in odd {
            let _ = translate(s);
        }
        assert_eq!(ok("1,,2 * * * *"), "cron(1,2 * * * ? *)");
    }

    #[test]
    fn random_characters_never_panic_and_what_passes_is_well_formed() {
        let alphabet: Vec<char> = "0123456789*/,-? @LW#JjAaNnMmOoEeVvYyRrSsUuHh\t\u{b5}ä+."
            .chars()
            .collect();
        let mut seed: u64 = 0x0123_4567_89ab_cdef;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = next() % 30;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            match translate(&s) {
                Ok(t) => {
                    let e = t.to_string();
                    assert!(e.len() <= EVENTBRIDGE_MAX_EXPRESSION, "{s:?} → {e}");
                    assert!(
                        e.starts_with("rate(") || e.matches('?').count() == 1,
                        "{s:?} → {e}"
                    );
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}
