//! Proof that [`brfed_core::schedule::cron::translate`] keeps the meaning of the schedules users have.
//!
//! For every accepted expression of the corpus, the next fire times of the ORIGINAL five-field
//! expression, computed by `croner`, must equal those of the TRANSLATED EventBridge expression,
//! computed by `cron` (zslayton, here `quartz_cron`), after several fixed instants, in UTC.
//! Neither evaluator is brfed code. What was checked in their sources (versions in Cargo.lock):
//!
//! * croner 4.0.3 (`src/parser.rs`, `src/pattern.rs`): five fields get a `0` seconds field;
//!   day-of-week 0-6 = SUN-SAT (7 also Sunday); names case-insensitive; `?` in the day fields
//!   is `*`; the day fields are ORed unless one of them is exactly `*` (after `?` → `*`), which
//!   is then ignored, i.e. Vixie cron; nicknames `@yearly @annually @monthly @weekly @daily
//!   @hourly` (no `@midnight`, no `@every`); `N/step` only with `sloppy_ranges(true)`, then
//!   meaning `N-max/step` as in robfig.
//! * cron 0.17.0 (`src/time_unit/days_of_week.rs`, `src/schedule.rs`, `src/parsing.rs`): seven
//!   fields `sec min hour dom month dow year`; day-of-week 1-7 with `sun` = 1 … `sat` = 7, as
//!   EventBridge; `?` accepted in the two day fields as "all"; a day must match both day fields
//!   (with one of them `?`, that is EventBridge's rule); `a/s` = `a, a+s, …` up to the field's
//!   maximum, as Quartz and EventBridge; years 1970-2100, so ticks are compared up to 2100.
//!
//! Where croner differs from robfig/cron v1.2 (the original's parser), the row is [`Want::Only`]
//! with the point in a comment: its translation is pinned, but not compared. The differences:
//! (a) robfig marks a day field as `*` when any element starts with `*` or `?` (`*/2`, `1,*`),
//! croner only when the whole field is `*`, so `*/1`-like day fields ANDed by robfig are ORed by
//! croner; (b) croner's day-of-week runs to 7, so `N/s` on day-of-week reaches Sunday again when
//! s divides 7−N (robfig stops at 6); (c) croner refuses what robfig accepts and brfed keeps:
//! `?` outside the day fields, a leading `+`, `*` as one element of a list (`1,*`), `@midnight`
//! (given to croner as robfig defines it), `@every`.

use brfed_core::schedule::cron::{CronError, translate};
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::CronParser;
use std::str::FromStr;

/// What the corpus expects of an expression.
enum Want {
    /// Translates to this, and both evaluators agree on the fire times.
    Same(&'static str),
    /// Translates to this, and agrees with croner evaluating the second text, which is what
    /// robfig defines the first to be.
    SameAs(&'static str, &'static str),
    /// Translates to this; not compared because croner differs from robfig here (see the
    /// module documentation and the row's comment).
    Only(&'static str),
    /// Refused with this `CronError` variant.
    Refused(&'static str),
}
use Want::*;

const CORPUS: &[(&str, Want)] = &[
    // Descriptors.
    ("@yearly", Same("cron(0 0 1 1 ? *)")),
    ("@annually", Same("cron(0 0 1 1 ? *)")),
    ("@monthly", Same("cron(0 0 1 * ? *)")),
    ("@weekly", Same("cron(0 0 ? * SUN *)")),
    ("@daily", Same("cron(0 0 * * ? *)")),
    ("@midnight", SameAs("cron(0 0 * * ? *)", "0 0 * * *")),
    ("@hourly", Same("cron(0 * * * ? *)")),
    // Minutes and hours: steps, ranges, lists.
    ("* * * * *", Same("cron(* * * * ? *)")),
    ("0 1 * * *", Same("cron(0 1 * * ? *)")),
    ("59 23 * * *", Same("cron(59 23 * * ? *)")),
    ("*/5 * * * *", Same("cron(0/5 * * * ? *)")),
    ("*/15 * * * *", Same("cron(0/15 * * * ? *)")),
    ("*/7 * * * *", Same("cron(0/7 * * * ? *)")),
    ("0-59/15 * * * *", Same("cron(0/15 * * * ? *)")),
    ("5/10 * * * *", Same("cron(5/10 * * * ? *)")),
    ("1-10/2 * * * *", Same("cron(1,3,5,7,9 * * * ? *)")),
    ("0,30 * * * *", Same("cron(0,30 * * * ? *)")),
    ("*/30 */12 * * *", Same("cron(0,30 0,12 * * ? *)")),
    ("0 */6 * * *", Same("cron(0 0/6 * * ? *)")),
    ("0 0-23/5 * * *", Same("cron(0 0/5 * * ? *)")),
    (
        "23 0-20/2 * * *",
        Same("cron(23 0,2,4,6,8,10,12,14,16,18,20 * * ? *)"),
    ),
    ("0 9-17 * * *", Same("cron(0 9-17 * * ? *)")),
    ("15 8,12,18 * * *", Same("cron(15 8,12,18 * * ? *)")),
    ("0,1,2,30 * * * *", Same("cron(0-2,30 * * * ? *)")),
    ("05 01 * * *", Same("cron(5 1 * * ? *)")),
    ("  0   1  *  *  *  ", Same("cron(0 1 * * ? *)")),
    // (c) croner refuses a leading `+`; robfig's strconv.Atoi takes it.
    ("+5 +1 * * *", Only("cron(5 1 * * ? *)")),
    // (c) croner refuses `?` outside the day fields; robfig reads it as `*` everywhere.
    ("? ? * * *", Only("cron(* * * * ? *)")),
    // Empty list elements are skipped, by robfig and by croner.
    ("0 0 1,,15 * *", Same("cron(0 0 1,15 * ? *)")),
    // (c) croner refuses `*` as one element of a list; robfig takes it as the whole range.
    ("0,* 1 * * *", Only("cron(* 1 * * ? *)")),
    // Day of month, months, names.
    ("0 0 29 2 *", Same("cron(0 0 29 2 ? *)")),
    ("0 0 31 * *", Same("cron(0 0 31 * ? *)")),
    ("0 0 31 1,2 *", Same("cron(0 0 31 1,2 ? *)")),
    ("0 0 30 4,6,9,11 *", Same("cron(0 0 30 4,6,9,11 ? *)")),
    ("0 0 1,15 * *", Same("cron(0 0 1,15 * ? *)")),
    ("0 0 1-7 * *", Same("cron(0 0 1-7 * ? *)")),
    ("0 0 28-31 * *", Same("cron(0 0 28-31 * ? *)")),
    ("0 0 1-10/3 * *", Same("cron(0 0 1,4,7,10 * ? *)")),
    (
        "0 0 */2 * *",
        Same("cron(0 0 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31 * ? *)"),
    ),
    ("59 23 31 12 *", Same("cron(59 23 31 12 ? *)")),
    ("7 7 7 7 *", Same("cron(7 7 7 7 ? *)")),
    ("0 0 * 2 *", Same("cron(0 0 * 2 ? *)")),
    ("0 12 * JAN,jul *", Same("cron(0 12 * 1,7 ? *)")),
    ("0 0 1 jan-mar *", Same("cron(0 0 1 1-3 ? *)")),
    ("0 0 1 JAN *", Same("cron(0 0 1 1 ? *)")),
    ("0 0 1 */3 *", Same("cron(0 0 1 1,4,7,10 ? *)")),
    ("0 0,12 1 */2 *", Same("cron(0 0,12 1 1,3,5,7,9,11 ? *)")),
    ("0 0 1 * ?", Same("cron(0 0 1 * ? *)")),
    // Day of week: 0 and 6, names, ranges, lists, steps (+1 shift by name).
    ("0 0 * * 0", Same("cron(0 0 ? * SUN *)")),
    ("0 0 * * 6", Same("cron(0 0 ? * SAT *)")),
    ("0 0 * * 0,6", Same("cron(0 0 ? * SUN,SAT *)")),
    ("30 4 * * sat,sun", Same("cron(30 4 ? * SUN,SAT *)")),
    ("0 0 * * 1-5", Same("cron(0 0 ? * MON-FRI *)")),
    ("0 0 * * MON-FRI", Same("cron(0 0 ? * MON-FRI *)")),
    ("0 0 * * Mon", Same("cron(0 0 ? * MON *)")),
    ("0 3 * * wed", Same("cron(0 3 ? * WED *)")),
    ("0 0 * * 5-5", Same("cron(0 0 ? * FRI *)")),
    ("0 0 * * 0-3", Same("cron(0 0 ? * SUN-WED *)")),
    ("0 0 * * 4-6", Same("cron(0 0 ? * THU-SAT *)")),
    ("0 0 * * 0,1,2", Same("cron(0 0 ? * SUN-TUE *)")),
    ("0 0 * * 1,3-5", Same("cron(0 0 ? * MON,WED-FRI *)")),
    ("0 0 * * */2", Same("cron(0 0 ? * SUN,TUE,THU,SAT *)")),
    ("0 0 * * */3", Same("cron(0 0 ? * SUN,WED,SAT *)")),
    ("0 0 * * 1-5/2", Same("cron(0 0 ? * MON,WED,FRI *)")),
    ("0 0 * * 2/2", Same("cron(0 0 ? * TUE,THU,SAT *)")),
    // (b) croner: 1/2 on day-of-week is 1,3,5,7 and 7 is Sunday; robfig: 1-6/2 = 1,3,5.
    ("0 0 * * 1/2", Only("cron(0 0 ? * MON,WED,FRI *)")),
    ("0 0 ? * 1", Same("cron(0 0 ? * MON *)")),
    ("0 0 ? * ?", Same("cron(0 0 * * ? *)")),
    (
        "*/20 9-17 * * mon-fri",
        Same("cron(0/20 9-17 ? * MON-FRI *)"),
    ),
    ("0 22 * * 1-5", Same("cron(0 22 ? * MON-FRI *)")),
    ("5 4 * * sun", Same("cron(5 4 ? * SUN *)")),
    // Both day fields, one of which matches every day.
    ("0 0 * * 0-6", Same("cron(0 0 * * ? *)")),
    ("0 0 * * SUN-SAT", Same("cron(0 0 * * ? *)")),
    ("0 0 1-31 * 1", Same("cron(0 0 * * ? *)")),
    ("0 0 1 * 0-6", Same("cron(0 0 * * ? *)")),
    // (a) robfig: `*/1` marks day-of-month as `*`, so it ANDs with Monday: Mondays. croner ORs.
    ("0 0 */1 * 1", Only("cron(0 0 ? * MON *)")),
    // @every: the rate EventBridge fires from the rule's creation.
    ("@every 1m", Only("rate(1 minute)")),
    ("@every 60s", Only("rate(1 minute)")),
    ("@every 1m0.5s", Only("rate(1 minute)")),
    ("@every 30m", Only("rate(30 minutes)")),
    ("@every 1h30m", Only("rate(90 minutes)")),
    ("@every 1h", Only("rate(1 hour)")),
    ("@every 1.5h", Only("rate(90 minutes)")),
    ("@every 12h", Only("rate(12 hours)")),
    ("@every 24h", Only("rate(1 day)")),
    ("@every 168h", Only("rate(7 days)")),
    // Refused.
    ("0 0 1 * 1", Refused("DayOfMonthAndWeek")),
    ("0 0 1-15 * MON-FRI", Refused("DayOfMonthAndWeek")),
    ("0 0 13 * 5", Refused("DayOfMonthAndWeek")),
    ("0 0 */2 * 1", Refused("DayOfMonthAndWeek")),
    ("0 0 1 * * ?", Refused("FieldCount")),
    ("0 0 0 1 * ? *", Refused("FieldCount")),
    ("0 0 *", Refused("FieldCount")),
    ("garbage", Refused("FieldCount")),
    ("a b c d e", Refused("Syntax")),
    ("", Refused("Empty")),
    ("   ", Refused("Empty")),
    ("5-1 * * * *", Refused("ReversedRange")),
    ("0 22-2 * * *", Refused("ReversedRange")),
    ("0 0 * * FRI-MON", Refused("ReversedRange")),
    ("0 0 * * FRI-SUN", Refused("ReversedRange")),
    ("60 * * * *", Refused("OutOfRange")),
    ("* 24 * * *", Refused("OutOfRange")),
    ("* * 32 * *", Refused("OutOfRange")),
    ("* * 0 * *", Refused("OutOfRange")),
    ("* * * 13 *", Refused("OutOfRange")),
    ("* * * 0 *", Refused("OutOfRange")),
    ("0 0 * * 7", Refused("OutOfRange")),
    ("0 0 * * 0-7", Refused("OutOfRange")),
    ("70/5 * * * *", Refused("OutOfRange")),
    ("99999999999999999999 * * * *", Refused("OutOfRange")),
    ("0 0 L * *", Refused("Syntax")),
    ("0 0 15W * *", Refused("Syntax")),
    ("0 0 * * 5#3", Refused("Syntax")),
    ("0 0 * * 5L", Refused("Syntax")),
    ("0 0 * * monday", Refused("Syntax")),
    ("0 0 1 JANUARY *", Refused("Syntax")),
    ("*/0 * * * *", Refused("Syntax")),
    ("1-2-3 * * * *", Refused("Syntax")),
    ("1/2/3 * * * *", Refused("Syntax")),
    ("*-5 * * * *", Refused("Syntax")),
    ("-1 * * * *", Refused("Syntax")),
    ("*/-1 * * * *", Refused("Syntax")),
    (", * * * *", Refused("Syntax")),
    ("/5 * * * *", Refused("Syntax")),
    ("1- * * * *", Refused("Syntax")),
    ("0 0 30 2 *", Refused("NeverFires")),
    ("0 0 31 2,4 *", Refused("NeverFires")),
    ("@every 7d", Refused("InvalidEvery")),
    ("@every", Refused("InvalidEvery")),
    ("@every  1h", Refused("InvalidEvery")),
    ("@every 90s", Refused("Unsupported")),
    ("@every 30s", Refused("Unsupported")),
    ("@every 0s", Refused("Unsupported")),
    ("@every -1h", Refused("Unsupported")),
    ("@every 2h0m30.5s", Refused("Unsupported")),
    ("@reboot", Refused("UnknownDescriptor")),
    ("@Daily", Refused("UnknownDescriptor")),
];

/// Instants after which fire times are compared: year starts, a leap February's last second,
/// a mid-year odd time, a year's end, a non-leap March.
fn starts() -> Vec<DateTime<Utc>> {
    [
        (2024, 1, 1, 0, 0, 0),
        (2024, 2, 28, 23, 59, 59),
        (2025, 6, 15, 12, 34, 56),
        (2026, 12, 31, 23, 30, 0),
        (2027, 3, 1, 0, 0, 0),
    ]
    .into_iter()
    .map(|(y, mo, d, h, mi, s)| Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    .collect()
}

/// How many fire times are compared after each start.
const TICKS: usize = 50;

fn horizon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
}

fn croner(expr: &str) -> Result<Cron, croner::errors::CronError> {
    // `sloppy_ranges` accepts robfig's `N/step` (= `N-max/step`); nothing else changes.
    CronParser::builder()
        .sloppy_ranges(true)
        .build()
        .parse(expr)
}

/// Next fire times of the original expression (croner).
fn original_ticks(cron: &Cron, start: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    cron.iter_after(start)
        .take(n)
        .take_while(|t| *t < horizon())
        .collect()
}

/// Next fire times of an EventBridge `cron(...)` expression (zslayton's cron, seconds `0`).
fn eventbridge_ticks(expr: &str, start: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let inner = expr
        .strip_prefix("cron(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{expr} is not a cron(...) expression"));
    let schedule = quartz_cron::Schedule::from_str(&format!("0 {inner}"))
        .unwrap_or_else(|e| panic!("{expr} is not a Quartz expression: {e}"));
    schedule
        .after(&start)
        .take(n)
        .take_while(|t| *t < horizon())
        .collect()
}

/// Fails unless the two evaluators agree on `expr` (original) and `translated`.
fn assert_same_ticks(expr: &str, croner_text: &str, translated: &str) {
    let cron = croner(croner_text).unwrap_or_else(|e| panic!("croner refuses {croner_text}: {e}"));
    for start in starts() {
        let want = original_ticks(&cron, start, TICKS);
        let got = eventbridge_ticks(translated, start, TICKS);
        assert!(!want.is_empty(), "{expr}: no fire time after {start}");
        assert_eq!(
            got, want,
            "{expr} → {translated}: fire times after {start} differ"
        );
    }
}

#[test]
fn the_corpus_keeps_its_meaning_on_eventbridge() {
    let accepted = CORPUS
        .iter()
        .filter(|(_, w)| !matches!(w, Refused(_)))
        .count();
    let refused = CORPUS.len() - accepted;
    assert!(accepted >= 60, "{accepted} accepted expressions");
    assert!(refused >= 15, "{refused} refused expressions");
    for (expr, want) in CORPUS {
        let got = translate(expr);
        match want {
            Same(e) | SameAs(e, _) | Only(e) => {
                let got = got
                    .unwrap_or_else(|err| panic!("{expr:?} refused: {err}"))
                    .to_string();
                assert_eq!(&got, e, "{expr:?}");
            }
            Refused(name) => match got {
                Err(err) => {
                    assert_eq!(err.name(), *name, "{expr:?}: {err}");
                    assert!(!err.to_string().is_empty());
                }
                Ok(t) => panic!("{expr:?} translated to {t}, expected {name}"),
            },
        }
        match want {
            Same(e) => assert_same_ticks(expr, expr, e),
            SameAs(e, croner_text) => assert_same_ticks(expr, croner_text, e),
            Only(_) | Refused(_) => {}
        }
    }
}

#[test]
fn the_quartz_side_crate_numbers_sunday_1_as_eventbridge_does() {
    // 2024-01-01 is a Monday; the next Sunday is the 7th.
    let monday = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let sunday = Utc.with_ymd_and_hms(2024, 1, 7, 0, 0, 0).unwrap();
    for expr in ["cron(0 0 ? * 1 *)", "cron(0 0 ? * SUN *)"] {
        assert_eq!(eventbridge_ticks(expr, monday, 1), [sunday], "{expr}");
    }
    let saturday = Utc.with_ymd_and_hms(2024, 1, 6, 0, 0, 0).unwrap();
    assert_eq!(
        eventbridge_ticks("cron(0 0 ? * 7 *)", monday, 1),
        [saturday]
    );
    // And the original side numbers it 0.
    let c = croner("0 0 * * 0").unwrap();
    assert_eq!(original_ticks(&c, monday, 1), [sunday]);
}

#[test]
fn both_day_fields_restricted_fire_on_either_so_no_single_rule_can_mean_it() {
    // Vixie/robfig OR: the 1st of each month and every Monday.
    let c = croner("0 0 1 * 1").unwrap();
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let ticks = original_ticks(&c, start, 12);
    let day = |t: &DateTime<Utc>| t.format("%d %a").to_string();
    assert!(ticks.iter().any(|t| day(t) == "01 Thu"), "{ticks:?}"); // 2024-02-01
    assert!(ticks.iter().any(|t| day(t) == "08 Mon"), "{ticks:?}");
    assert_ne!(ticks, eventbridge_ticks("cron(0 0 1 * ? *)", start, 12));
    assert_ne!(ticks, eventbridge_ticks("cron(0 0 ? * MON *)", start, 12));
    assert!(matches!(
        translate("0 0 1 * 1"),
        Err(CronError::DayOfMonthAndWeek { .. })
    ));
}

/// A tiny deterministic generator (xorshift64), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
}

const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// One random element of a field with bounds `lo..=hi`.
fn element(rng: &mut Rng, lo: u32, hi: u32, names: Option<(&[&str], u32)>) -> String {
    let v = |rng: &mut Rng| {
        let n = rng.between(lo, hi);
        match names {
            Some((names, first)) if rng.below(3) == 0 => names[(n - first) as usize].to_string(),
            _ => n.to_string(),
        }
    };
    match rng.below(8) {
        0 => "*".into(),
        1 => format!("*/{}", rng.between(1, hi - lo + 2)),
        2 | 3 => v(rng),
        4 | 5 => {
            let (a, b) = (rng.between(lo, hi), rng.between(lo, hi));
            let (a, b) = (a.min(b), a.max(b));
            format!("{a}-{b}")
        }
        6 => {
            let (a, b) = (rng.between(lo, hi), rng.between(lo, hi));
            format!("{}-{}/{}", a.min(b), a.max(b), rng.between(1, 8))
        }
        _ => format!("{}/{}", rng.between(lo, hi), rng.between(1, 8)),
    }
}

fn field(rng: &mut Rng, lo: u32, hi: u32, names: Option<(&[&str], u32)>) -> String {
    if rng.below(3) == 0 {
        return "*".into();
    }
    let n = 1 + rng.below(3);
    (0..n)
        .map(|_| element(rng, lo, hi, names))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether croner is known to differ from robfig on this expression (module doc, (a), (b), (c)).
fn croner_differs(fields: &[String]) -> bool {
    let star_in_list = fields
        .iter()
        .any(|f| f != "*" && f.split(',').any(|e| e == "*"));
    let starred_but_not_star = |f: &str| f != "*" && f.split(',').any(|e| e.starts_with('*'));
    let dow_open_step = fields[4]
        .split(',')
        .any(|e| e.contains('/') && !e.contains('-') && !e.starts_with('*'));
    star_in_list
        || starred_but_not_star(&fields[2])
        || starred_but_not_star(&fields[4])
        || dow_open_step
}

#[test]
fn random_expressions_translate_to_the_same_fire_times() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut compared, mut refused) = (0, 0);
    for _ in 0..2000 {
        let mut fields = vec![
            field(&mut rng, 0, 59, None),
            field(&mut rng, 0, 23, None),
            field(&mut rng, 1, 31, None),
            field(&mut rng, 1, 12, Some((&MONTHS, 1))),
            field(&mut rng, 0, 6, Some((&DAYS, 0))),
        ];
        // Most schedules restrict one day field at most; keep that common.
        if rng.below(2) == 0 {
            let i = if rng.below(2) == 0 { 2 } else { 4 };
            fields[i] = "*".into();
        }
        let expr = fields.join(" ");
        match translate(&expr) {
            Err(_) => refused += 1,
            Ok(t) if !croner_differs(&fields) => {
                let cron = croner(&expr).unwrap_or_else(|e| panic!("croner refuses {expr}: {e}"));
                for start in starts().into_iter().take(3) {
                    let want = original_ticks(&cron, start, 20);
                    let got = eventbridge_ticks(&t.to_string(), start, 20);
                    assert_eq!(got, want, "{expr} → {t}: fire times after {start} differ");
                }
                compared += 1;
            }
            Ok(_) => {}
        }
    }
    println!("{compared} compared with croner, {refused} refused");
    assert!(
        compared >= 600,
        "only {compared} compared ({refused} refused)"
    );
}
