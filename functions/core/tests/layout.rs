//! The shape of `functions/core/src` (`make lint` runs this file): no module imports, directly
//! or through others, a module that imports it; no folder (workflow) does either; and the
//! shared modules beside the workflow folders use none of them ("shared types live below their
//! users"). Each finding names the files and the line that makes each step of the circle.
//!
//! A module's imports are every `crate::…` and `super::…` path in its code (in `use` lines and
//! inline), and in a `mod.rs` the paths that start with one of its own child modules (its
//! `pub use child::…` re-exports). Test code (`#[cfg(test)] mod tests`, `tests.rs`, `testing.rs`)
//! is left out: nothing imports a test, so it cannot close a circle.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The folders of the workflows; everything else at the top of the crate is shared by them.
const WORKFLOWS: &[&str] = &["backup", "restore", "schedule", "delete"];

/// A module path (`["backup", "steps", "start"]`; the crate root is `[]`).
type ModPath = Vec<String>;

/// One import: from which module, to which, and the line that makes it.
#[derive(Debug, Clone)]
struct Edge {
    to: ModPath,
    file: PathBuf,
    line: usize,
    text: String,
}

/// Every module of the tree below `src` and its file.
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("the source tree is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src");
            let mut segs: ModPath = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if segs.last().is_some_and(|s| s == "mod" || s == "lib") {
                segs.pop();
            }
            out.insert(segs, path);
        }
    }
    out
}

/// The code of a file that counts: no comments, no test module.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            let next = text.lines().nth(i + 1).unwrap_or("");
            if next.starts_with("mod tests") {
                break;
            }
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// The paths of `text` that start with `start` (`crate::`, `super::`), each as its segments after
/// `start`.
fn paths_after(text: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(start) {
        let begin = from + at;
        from = begin + start.len();
        let boundary = begin == 0 || {
            let c = bytes[begin - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        if boundary {
            out.extend(parse_path(&text[from..]));
        }
    }
    out
}

/// The path at the start of `rest` as its segments; `a::{b, c::d}` gives `a::b` and `a::c::d`
/// (one level of braces is all rustfmt leaves in this tree; deeper ones give their prefix).
fn parse_path(rest: &str) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut pos = 0;
    loop {
        let ident: String = rest[pos..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        pos += ident.len();
        segs.push(ident);
        if rest[pos..].starts_with("::") {
            pos += 2;
        } else {
            break;
        }
    }
    if !rest[pos..].starts_with('{') {
        return if segs.is_empty() { vec![] } else { vec![segs] };
    }
    let inner_end = rest[pos..].find('}').map_or(rest.len(), |e| pos + e);
    rest[pos + 1..inner_end]
        .split(',')
        .map(|entry| {
            let mut full = segs.clone();
            full.extend(
                entry
                    .trim()
                    .split("::")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "self" && s != "*"),
            );
            full
        })
        .collect()
}

/// The module a path names: the longest prefix of it that is a module.
fn resolve(mods: &BTreeMap<ModPath, PathBuf>, path: &[String]) -> Option<ModPath> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| mods.contains_key(p))
}

fn is_test(m: &ModPath) -> bool {
    m.iter().any(|s| s == "tests" || s == "testing")
}

/// Every import of every (non-test) module.
fn imports(mods: &BTreeMap<ModPath, PathBuf>) -> BTreeMap<ModPath, Vec<Edge>> {
    let mut out = BTreeMap::new();
    for (module, file) in mods {
        if is_test(module) {
            continue;
        }
        let text = fs::read_to_string(file).expect("a source file is readable");
        let is_folder = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let mut edges = Vec::new();
        for (line, code) in code_lines(&text) {
            let mut targets: Vec<ModPath> = Vec::new();
            targets.extend(paths_after(&code, "crate::"));
            for p in paths_after(&code, "super::") {
                let up = &module[..module.len().saturating_sub(1)];
                targets.push(up.iter().cloned().chain(p).collect());
            }
            let trimmed = code.trim_start();
            if is_folder && (trimmed.starts_with("pub use ") || trimmed.starts_with("use ")) {
                let after = trimmed
                    .trim_start_matches("pub ")
                    .trim_start_matches("use ");
                let head: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let mut child = module.clone();
                child.push(head);
                if mods.contains_key(&child) {
                    for p in parse_path(after) {
                        targets.push(module.iter().cloned().chain(p).collect());
                    }
                }
            }
            for t in targets {
                if let Some(to) = resolve(mods, &t)
                    && &to != module
                    && !is_test(&to)
                {
                    edges.push(Edge {
                        to,
                        file: file.clone(),
                        line,
                        text: code.trim().to_string(),
                    });
                }
            }
        }
        out.insert(module.clone(), edges);
    }
    out
}

/// A circle of `graph` as the edges that make it, if there is one.
fn find_circle<N: Ord + Clone>(graph: &BTreeMap<N, Vec<(N, Edge)>>) -> Option<Vec<(N, Edge)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<N: Ord + Clone>(
        n: &N,
        graph: &BTreeMap<N, Vec<(N, Edge)>>,
        marks: &mut BTreeMap<N, Mark>,
        stack: &mut Vec<(N, Edge)>,
    ) -> Option<Vec<(N, Edge)>> {
        marks.insert(n.clone(), Mark::Open);
        for (to, edge) in graph.get(n).into_iter().flatten() {
            stack.push((n.clone(), edge.clone()));
            match marks.get(to) {
                Some(Mark::Open) => {
                    let at = stack.iter().position(|(from, _)| from == to).unwrap_or(0);
                    return Some(stack[at..].to_vec());
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(c) = visit(to, graph, marks, stack) {
                        return Some(c);
                    }
                }
            }
            stack.pop();
        }
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in graph.keys() {
        if !marks.contains_key(n)
            && let Some(c) = visit(n, graph, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn describe<N>(circle: &[(N, Edge)], name: impl Fn(&N) -> String) -> String {
    circle
        .iter()
        .map(|(from, e)| {
            format!(
                "  {} -> {} ({}:{}: {})",
                name(from),
                show(&e.to),
                e.file.display(),
                e.line,
                e.text
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every problem of the tree below `src`, one message each.
fn problems(src: &Path) -> Vec<String> {
    let mods = modules(src);
    let edges = imports(&mods);
    let mut found = Vec::new();

    let files: BTreeMap<ModPath, Vec<(ModPath, Edge)>> = edges
        .iter()
        .map(|(m, es)| {
            (
                m.clone(),
                es.iter().map(|e| (e.to.clone(), e.clone())).collect(),
            )
        })
        .collect();
    if let Some(c) = find_circle(&files) {
        found.push(format!(
            "import circle between modules:\n{}",
            describe(&c, |m| show(m))
        ));
    }

    let top = |m: &ModPath| m.first().cloned().unwrap_or_else(|| "crate".into());
    let mut folders: BTreeMap<String, Vec<(String, Edge)>> = BTreeMap::new();
    for (m, es) in &edges {
        for e in es {
            let (from, to) = (top(m), top(&e.to));
            if from != to && from != "crate" {
                folders.entry(from).or_default().push((to, e.clone()));
            }
        }
    }
    if let Some(c) = find_circle(&folders) {
        found.push(format!(
            "import circle between top-level modules:\n{}",
            describe(&c, |m| m.clone())
        ));
    }

    for (from, es) in &folders {
        if WORKFLOWS.contains(&from.as_str()) {
            continue;
        }
        for (to, e) in es {
            if WORKFLOWS.contains(&to.as_str()) {
                found.push(format!(
                    "shared module `{from}` uses workflow `{to}` ({}:{}: {})",
                    e.file.display(),
                    e.line,
                    e.text
                ));
            }
        }
    }
    found
}

#[test]
fn the_core_has_no_import_circles_and_shared_modules_use_no_workflow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src);
    assert!(found.is_empty(), "{}", found.join("\n\n"));
}

#[test]
fn every_workflow_folder_has_the_same_shape() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    for w in WORKFLOWS {
        for part in ["spec", "status", "steps"] {
            let m = vec![w.to_string(), part.to_string()];
            assert!(
                mods.contains_key(&m),
                "functions/core/src/{w}/ has no `{part}` module: every workflow has spec, status, steps"
            );
        }
        let writes_members = *w != "schedule";
        assert_eq!(
            mods.contains_key(&vec![w.to_string(), "member".to_string()]),
            writes_members,
            "functions/core/src/{w}/: `member` is the member objects a workflow writes (a schedule writes none)"
        );
    }
}

/// A tree to check the checker with.
fn tree(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "brfed-layout-{}-{}",
        std::process::id(),
        files.len()
    ));
    let _ = fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().expect("a parent")).expect("a temp dir");
        fs::write(p, text).expect("a temp file");
    }
    dir
}

#[test]
fn the_check_finds_a_circle_through_a_re_export_a_shared_module_using_a_workflow_and_nothing_in_tests()
 {
    let dir = tree(&[
        ("lib.rs", "pub mod backup;\npub mod catalog;\n"),
        ("catalog.rs", "use crate::backup::status::Doc;\n"),
        ("backup/mod.rs", "pub mod status;\npub mod steps;\n"),
        ("backup/status.rs", "pub struct Doc;\n"),
        (
            "backup/steps/mod.rs",
            "mod start;\npub use start::start;\n#[cfg(test)]\nmod tests;\n",
        ),
        (
            "backup/steps/start.rs",
            "use super::Env;\npub fn start() {}\n",
        ),
        ("backup/steps/tests.rs", "use crate::catalog::*;\n"),
    ]);
    let found = problems(&dir);
    fs::remove_dir_all(&dir).expect("the temp tree goes");
    assert!(
        found.iter().any(|f| f.contains("between modules")
            && f.contains("backup::steps -> backup::steps::start")
            && f.contains("backup::steps::start -> backup::steps")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("shared module `catalog` uses workflow `backup`")),
        "{found:#?}"
    );
    assert!(!found.iter().any(|f| f.contains("tests.rs")), "{found:#?}");
}
