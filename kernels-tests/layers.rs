//! The layer order of `src/lib.rs`, checked against the code: every module of `src/` is in the
//! list, every `crate::` path of a module's code (tests aside) leads to a module of an earlier
//! layer, of its own layer or to a shared one, and no file's imports form a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file's module path (`experiment::sweep`, `data` for data/mod.rs) and its code
/// before its unit tests.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // src/bin holds the command line, a crate of its own above every layer.
                if path != src().join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut name: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if name.last().is_some_and(|n| n == "mod") {
                name.pop();
            }
            let name = name.join("::");
            if name == "lib" || name == "main" {
                continue;
            }
            let code = std::fs::read_to_string(&path).unwrap();
            let code = code.split("#[cfg(test)]").next().unwrap().to_string();
            out.insert(name, code);
        }
    }
    out
}

/// The `crate::...` paths in `code`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':')
            .collect();
        out.push(path.trim_end_matches(':').to_string());
    }
    out
}

/// The layers of lib.rs's doc comment, in order, and the shared modules.
fn documented_layers() -> (Vec<BTreeSet<String>>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let doc: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join(" ");
    let ticked = |s: &str| -> BTreeSet<String> {
        s.split('`').skip(1).step_by(2).map(String::from).collect()
    };
    let (_, list) = doc
        .split_once("each using only those above it:")
        .expect("the layer list");
    let (layers, shared) = list
        .split_once("are shared by all")
        .expect("the shared modules");
    let (layers, shared_names) = layers
        .rsplit_once('.')
        .expect("the list ends with a full stop");
    let layers: Vec<BTreeSet<String>> = layers.split(';').map(ticked).collect();
    let _ = shared;
    (layers, ticked(shared_names))
}

#[test]
fn the_documented_layer_order_holds_and_no_imports_form_a_cycle() {
    let modules = modules();
    let (layers, shared) = documented_layers();
    let layer_of = |m: &str| layers.iter().position(|l| l.contains(m));
    let top = |m: &str| m.split("::").next().unwrap().to_string();

    let mut wrong = Vec::new();
    for m in modules.keys().map(|m| top(m)).collect::<BTreeSet<_>>() {
        if layer_of(&m).is_none() && !shared.contains(&m) {
            wrong.push(format!("module {m} is not in lib.rs's layer list"));
        }
    }
    // The file each path leads to: its longest prefix that is a module.
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|c| modules.contains_key(c))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &modules {
        let edges = graph.entry(m.clone()).or_default();
        for path in crate_paths(code) {
            let Some(target) = resolve(&path) else {
                continue;
            };
            let (from, to) = (top(m), top(&target));
            if from != to && !shared.contains(&to) {
                match (layer_of(&from), layer_of(&to)) {
                    (Some(a), Some(b)) if b > a => wrong.push(format!(
                        "{m} uses crate::{path}, a layer below it in lib.rs's list"
                    )),
                    _ => {}
                }
            }
            // A module's own children (declared in it) are not an import of it by them.
            if target != *m && !m.starts_with(&format!("{target}::")) {
                edges.insert(target);
            }
        }
    }
    // Cycles: a depth-first search from every file.
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    wrong.push(format!("import cycle: {} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        layers.len() >= 6 && modules.len() > 50,
        "the parse found {} layers, {} files",
        layers.len(),
        modules.len()
    );
}
