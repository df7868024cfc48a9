//! Output: kubectl-like tables and ages, `describe` text, JSON and YAML documents, and writing
//! to stdout without panicking on a closed pipe.

use crate::args::Output;
use crate::error::CliError;
use chrono::{DateTime, Utc};
use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};
use serde::Serialize;
use std::io::Write;

/// Writes `text` (and a newline) to stdout. A closed pipe (`brfed backup list | head -1`) ends
/// the output quietly.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
}

/// Writes a line to stderr (progress, notes), ignoring a closed stderr.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// A serializable value as JSON (pretty) or YAML, fields in their declared order.
pub fn document<T: Serialize>(value: &T, output: Output) -> Result<String, CliError> {
    match output {
        Output::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| CliError::failed("Internal", format!("cannot render YAML: {e}"))),
        _ => serde_json::to_string_pretty(value)
            .map_err(|e| CliError::failed("Internal", format!("cannot render JSON: {e}"))),
    }
}

/// Several documents as one, the way kubectl prints a list: `{"apiVersion": "v1", "kind":
/// "List", "items": [...]}`.
pub fn list_document<T: Serialize>(items: &[T], output: Output) -> Result<String, CliError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a, T> {
        api_version: &'static str,
        kind: &'static str,
        items: &'a [T],
    }
    document(
        &List {
            api_version: "v1",
            kind: "List",
            items,
        },
        output,
    )
}

/// A table as `kubectl get` prints it: upper-case headers, columns three spaces apart, no
/// borders, nothing wrapped.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_string()));
    for row in rows {
        t.add_row(row.clone());
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 3));
        c.set_constraint(ColumnConstraint::ContentWidth);
    }
    let text = t.to_string();
    let mut out: Vec<&str> = text.lines().map(str::trim_end).collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.retain(|l| !l.is_empty());
    out.join("\n")
}

/// kubectl's `HumanDuration`: `45s`, `3m20s`, `125m`, `5h5m`, `20h`, `3d4h`, `12d`, `2y30d`, `9y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return two_units((minutes, "m"), (seconds % 60, "s"));
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return two_units((hours, "h"), (minutes % 60, "m"));
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return two_units((days, "d"), (hours % 24, "h"));
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return two_units((days / 365, "y"), (days % 365, "d"));
    }
    format!("{}y", days / 365)
}

/// `5h5m`, or `5h` when the smaller unit is naught.
fn two_units((big, big_unit): (i64, &str), (small, small_unit): (i64, &str)) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// Parses an RFC 3339 time.
pub fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The age of something created at `created` (RFC 3339), as kubectl's AGE column; empty when
/// unknown.
pub fn age(created: Option<&str>, now: DateTime<Utc>) -> String {
    created
        .and_then(parse_time)
        .map(|t| human_duration((now - t).num_seconds()))
        .unwrap_or_default()
}

/// A time for `describe`: the RFC 3339 text and how long ago.
pub fn when(t: Option<&str>, now: DateTime<Utc>) -> String {
    match t {
        None => "<none>".into(),
        Some(s) => match parse_time(s) {
            Some(_) => format!("{s} ({} ago)", age(Some(s), now)),
            None => s.to_string(),
        },
    }
}

/// Milliseconds between two RFC 3339 times, as `4.37s` or `850ms`.
pub fn between(from: Option<&str>, to: Option<&str>) -> Option<String> {
    let (a, b) = (parse_time(from?)?, parse_time(to?)?);
    let ms = (b - a).num_milliseconds();
    Some(if ms.abs() < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.2}s", ms as f64 / 1000.0)
    })
}

/// An empty value as kubectl's describe shows it.
pub fn or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".into(),
    }
}

/// One column of a table: its header and its cell of an item.
pub type Column<D> = (&'static str, fn(&D) -> String);

/// `describe` text: `Key:  value` lines aligned per block, sections with indented blocks and
/// tables.
#[derive(Debug, Default)]
pub struct Describe {
    out: String,
    block: Vec<(String, String)>,
    indent: usize,
}

impl Describe {
    /// An empty description.
    pub fn new() -> Self {
        Self::default()
    }

    /// One `Key: value` line.
    pub fn field(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.block.push((key.to_string(), value.into()));
        self
    }

    /// A `Key: a, b (note)` line (items joined by `sep`), only when there are items.
    pub fn listed(&mut self, key: &str, items: &[String], sep: &str, note: &str) -> &mut Self {
        if !items.is_empty() {
            self.field(key, format!("{} ({note})", items.join(sep)));
        }
        self
    }

    fn flush(&mut self) {
        let width = self.block.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 3;
        let pad = " ".repeat(self.indent);
        for (k, v) in self.block.drain(..) {
            let key = format!("{k}:");
            let mut lines = v.lines();
            let first = lines.next().unwrap_or("");
            self.out
                .push_str(format!("{pad}{key:<width$}{first}").trim_end());
            self.out.push('\n');
            for more in lines {
                self.out.push_str(&format!("{pad}{:width$}{more}\n", ""));
            }
        }
    }

    /// A section title (`Members:`); what follows is indented by two.
    pub fn section(&mut self, title: &str) -> &mut Self {
        self.flush();
        self.indent = 0;
        self.out.push_str(&format!("{title}:\n"));
        self.indent = 2;
        self
    }

    /// A section title with a value on its line (`Conditions:  <none>`).
    pub fn empty_section(&mut self, title: &str, value: &str) -> &mut Self {
        self.flush();
        self.indent = 0;
        self.field(title, value);
        self.flush();
        self
    }

    /// Back to top-level fields.
    pub fn top(&mut self) -> &mut Self {
        self.flush();
        self.indent = 0;
        self
    }

    /// A table inside the current section.
    pub fn table(&mut self, headers: &[&str], rows: &[Vec<String>]) -> &mut Self {
        self.flush();
        let pad = " ".repeat(self.indent);
        for line in table(headers, rows).lines() {
            self.out.push_str(&format!("{pad}{line}\n"));
        }
        self
    }

    /// A section holding a table (`Title:  <none>` without rows).
    pub fn table_section(
        &mut self,
        title: &str,
        headers: &[&str],
        rows: &[Vec<String>],
    ) -> &mut Self {
        if rows.is_empty() {
            self.empty_section(title, "<none>")
        } else {
            self.section(title).table(headers, rows)
        }
    }

    /// A section holding the table of `items`, a column each of `columns` (the items first: they
    /// tell the compiler what the columns' cells are given).
    pub fn columns_section<D>(
        &mut self,
        title: &str,
        items: &[D],
        columns: &[Column<D>],
    ) -> &mut Self {
        let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
            .collect();
        self.table_section(title, &headers, &rows)
    }

    /// The `Conditions:` section of backups and restores.
    pub fn conditions(&mut self, conditions: &[brfed_core::conditions::Condition]) -> &mut Self {
        self.columns_section(
            "Conditions",
            conditions,
            &[
                ("TYPE", |c| c.type_.clone()),
                ("STATUS", |c| c.status.clone()),
                ("LASTTRANSITION", |c| {
                    c.last_transition_time.clone().unwrap_or_default()
                }),
                ("REASON", |c| c.reason.clone().unwrap_or_default()),
                ("MESSAGE", |c| c.message.clone().unwrap_or_default()),
            ],
        )
    }

    /// The text.
    pub fn finish(mut self) -> String {
        self.flush();
        self.out.trim_end().to_string()
    }
}

/// Items one a line (`sep` `\n`) or in a line (`, `), `<none>` when there are none.
pub fn lines_or_none<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(sep)
}

/// A member's `reason: message` (the reason alone without a message; empty without a reason).
pub fn reason_text(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_string(),
        _ => String::new(),
    }
}

/// `key=value,...` of a map, as kubectl's describe shows labels and annotations (`<none>` when
/// empty).
pub fn pairs(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn durations_read_like_kubectl() {
        for (s, want) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (15 * 60 + 7, "15m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (2 * 3600 + 5 * 60, "125m"),
            (5 * 3600 + 5 * 60, "5h5m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (2 * 86400, "2d"),
            (12 * 86400, "12d"),
            (800 * 86400, "2y70d"),
            (365 * 2 * 86400, "2y"),
            (365 * 9 * 86400, "9y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn a_table_looks_like_kubectl_get() {
        let t = table(
            &["NAME", "STATUS", "AGE"],
            &[
                vec!["bk1".into(), "Complete".into(), "5m".into()],
                vec!["a-longer-name".into(), "".into(), "12s".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME            STATUS     AGE\n\
             bk1             Complete   5m\n\
             a-longer-name              12s"
        );
    }

    #[test]
    fn ages_and_spans_come_from_rfc3339() {
        let now = parse_time("2024-05-01T00:10:00Z").unwrap();
        assert_eq!(age(Some("2024-05-01T00:00:00Z"), now), "10m");
        assert_eq!(age(Some("nonsense"), now), "");
        assert_eq!(age(None, now), "");
        assert_eq!(
            between(
                Some("2024-05-01T00:00:00.100Z"),
                Some("2024-05-01T00:00:04.470Z")
            )
            .as_deref(),
            Some("4.37s")
        );
        assert_eq!(
            between(
                Some("2024-05-01T00:00:00.100Z"),
                Some("2024-05-01T00:00:00.950Z")
            )
            .as_deref(),
            Some("850ms")
        );
        assert_eq!(between(None, Some("2024-05-01T00:00:00Z")), None);
    }

    #[test]
    fn describe_aligns_each_block_and_indents_sections() {
        let mut d = Describe::new();
        d.field("Name", "bk1").field("Namespace", "br");
        d.section("Members").table(
            &["CLUSTER", "PHASE"],
            &[vec!["dp1".into(), "Complete".into()]],
        );
        d.empty_section("Conditions", "<none>");
        assert_eq!(
            d.finish(),
            "Name:       bk1\nNamespace:  br\nMembers:\n  CLUSTER   PHASE\n  dp1       Complete\nConditions:  <none>"
        );
    }

    #[test]
    fn lists_and_documents_render_as_json_and_yaml() {
        let items = vec![json!({"a": 1})];
        let j: Value = serde_json::from_str(&list_document(&items, Output::Json).unwrap()).unwrap();
        assert_eq!(j["kind"], "List");
        assert_eq!(j["items"][0]["a"], 1);
        let y: Value = serde_saphyr::from_str(&document(&items[0], Output::Yaml).unwrap()).unwrap();
        assert_eq!(y["a"], 1);
    }
}
