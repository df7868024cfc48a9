//! `-f FILE`: the YAML or JSON a user has, read and turned into the JSON an execution takes.

use crate::error::CliError;
use brfed_core::StepError;
use brfed_core::input::MAX_INPUT_BYTES;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// A file given with `-f`: its text and its JSON value.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from (`-` = standard input), for messages.
    pub source: String,
    /// The text as read.
    pub text: String,
    /// The text as JSON (YAML read through YAML's own value, as the core does: duplicate keys
    /// and tags are refused).
    pub value: Value,
}

impl Document {
    /// `kind`, when the document has one.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }
}

/// Reads `path` (`-` = standard input). An unreadable file is `FileUnreadable`; text that is not
/// YAML or JSON is `InvalidSpec`; both are bad input.
pub fn read(path: &Path) -> Result<Document, CliError> {
    let source = path.display().to_string();
    let text = if source == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::input("FileUnreadable", format!("standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::input("FileUnreadable", format!("cannot read {source}: {e}")))?
    };
    parse(&source, text)
}

/// Parses text read from `source`.
pub fn parse(source: &str, text: String) -> Result<Document, CliError> {
    let invalid = |why: String| CliError::input("InvalidSpec", why).about(source);
    if text.len() > MAX_INPUT_BYTES {
        return Err(invalid(format!(
            "{} bytes, more than the {MAX_INPUT_BYTES} accepted",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    let value: serde_json::Value = brfed_core::input::parse_yaml(&text)
        .map_err(|e| invalid(format!("not YAML or JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid("the document is not a mapping (an object)".into()));
    }
    Ok(Document {
        source: source.to_string(),
        text,
        value,
    })
}

/// Reads and checks a request file (every problem at once): `from_text` on the text as written,
/// or with `-n`, `from_value` on the document with the namespace applied; then `check`. A
/// refusal names the file. The request, and the document's value (an execution's input).
pub fn read_request<R>(
    path: &Path,
    namespace: Option<&str>,
    from_text: impl FnOnce(&str) -> Result<R, StepError>,
    from_value: impl FnOnce(Value) -> Result<R, StepError>,
    check: impl FnOnce(&R) -> Result<(), StepError>,
) -> Result<(R, Value), CliError> {
    let mut doc = read(path)?;
    let about = |e: StepError| CliError::from(e).about(&doc.source);
    let mut req = from_text(&doc.text).map_err(about)?;
    if namespace.is_some() {
        apply_namespace(&mut doc.value, namespace)?;
        req = from_value(doc.value.clone()).map_err(about)?;
    }
    check(&req).map_err(about)?;
    Ok((req, doc.value))
}

/// Applies `-n` to a document: a namespace-less object gets it (as kubectl does); one whose
/// namespace differs is refused. Looks inside a `{"volumeBackup": {...}}` wrapper and at the
/// `{name, namespace, spec}` form.
pub fn apply_namespace(value: &mut Value, namespace: Option<&str>) -> Result<(), CliError> {
    let Some(ns) = namespace else { return Ok(()) };
    let target = match value.get("volumeBackup") {
        Some(_) => &mut value["volumeBackup"],
        None => value,
    };
    let Some(obj) = target.as_object_mut() else {
        return Ok(());
    };
    let given = obj
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .or_else(|| obj.get("namespace"))
        .and_then(Value::as_str)
        .map(String::from);
    match given {
        Some(g) if g != ns => Err(CliError::input(
            "NamespaceMismatch",
            format!("the file says namespace `{g}`, -n says `{ns}`"),
        )),
        Some(_) => Ok(()),
        None => {
            if obj.contains_key("metadata") || !obj.contains_key("name") {
                let meta = obj
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(m) = meta.as_object_mut() {
                    m.insert("namespace".into(), Value::String(ns.into()));
                }
            } else {
                obj.insert("namespace".into(), Value::String(ns.into()));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_and_json_read_the_same_and_bad_text_is_bad_input() {
        let y = parse("a.yaml", "kind: VolumeBackup\nmetadata: {name: x}\n".into()).unwrap();
        let j = parse(
            "a.json",
            r#"{"kind": "VolumeBackup", "metadata": {"name": "x"}}"#.into(),
        )
        .unwrap();
        assert_eq!(y.value, j.value);
        assert_eq!(y.kind(), Some("VolumeBackup"));
        for bad in [
            "a: [1, 2",
            "a: 1\na: 2\n",
            "x: !secret y\n",
            "",
            "- 1\n- 2\n",
        ] {
            let e = parse("f.yaml", bad.into()).unwrap_err();
            assert_eq!(
                (e.name.as_str(), e.exit_code()),
                ("InvalidSpec", 2),
                "{bad:?}: {e}"
            );
            assert_eq!(e.about.as_deref(), Some("f.yaml"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read(Path::new("/nonexistent/vbk.yaml")).unwrap_err();
        assert_eq!(e.name, "FileUnreadable");
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("/nonexistent/vbk.yaml"), "{e}");
    }

    #[test]
    fn dash_n_fills_a_missing_namespace_and_refuses_another() {
        let mut v = json!({"metadata": {"name": "x"}, "spec": {}});
        apply_namespace(&mut v, Some("br")).unwrap();
        assert_eq!(v["metadata"]["namespace"], "br");
        let mut v = json!({"name": "x", "spec": {}});
        apply_namespace(&mut v, Some("br")).unwrap();
        assert_eq!(v["namespace"], "br");
        let mut v = json!({"volumeBackup": {"metadata": {"name": "x", "namespace": "a"}}});
        let e = apply_namespace(&mut v, Some("br")).unwrap_err();
        assert_eq!((e.name.as_str(), e.exit_code()), ("NamespaceMismatch", 2));
        let mut v = json!({"metadata": {"name": "x", "namespace": "br"}});
        apply_namespace(&mut v, Some("br")).unwrap();
        let mut v = json!({"metadata": {"name": "x"}});
        apply_namespace(&mut v, None).unwrap();
        assert!(v["metadata"].get("namespace").is_none());
    }
}
