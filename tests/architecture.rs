//! The layers of docs/ARCHITECTURE.md, checked on the source: each module
//! of `pipeline/` imports only from its own layer and the layers below, and
//! no modules import each other in a circle (a module and its folder's
//! `mod.rs` aside). Test code (`#[cfg(test)]` onwards) is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first: the folder or top-level file of each.
const LAYERS: &[&str] = &[
    "core",
    "engine",
    "mvne",
    "reference",
    "documents",
    "settings",
    "account",
    "stages",
    "tools",
    "cli",
    "app",
];

/// Every module of the library (`core::lake`, `stages`, `app`) and its
/// source without test code or comments.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let code = source.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            found.insert(parts.join("::"), code);
        }
    }
    found
}

/// The modules a source names through `crate::…` paths, `use` groups
/// included (`use crate::core::{lake, month::Month}`).
fn imports(code: &str, modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(':').to_string();
        if rest[end..].starts_with('{') {
            // A group: each name in it, one level deep, after the prefix.
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for name in rest[end + 1..close].split(',') {
                let name = name.trim().split([' ', ':']).next().unwrap_or_default();
                paths.push(format!("{path}::{name}"));
            }
        }
        paths.push(path);
    }
    let mut targets = BTreeSet::new();
    for path in paths {
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        for k in (1..=segments.len()).rev() {
            let candidate = segments[..k].join("::");
            if modules.contains_key(&candidate) {
                targets.insert(candidate);
                break;
            }
        }
    }
    targets
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("{module}: not in a layer of docs/ARCHITECTURE.md"))
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline");
    let modules = modules(&root);
    modules
        .iter()
        .map(|(name, code)| {
            let targets = imports(code, &modules)
                .into_iter()
                .filter(|t| {
                    t != name
                        && !name.starts_with(&format!("{t}::"))
                        && !t.starts_with(&format!("{name}::"))
                })
                .collect();
            (name.clone(), targets)
        })
        .collect()
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut upward = Vec::new();
    for (module, targets) in edges() {
        for target in targets {
            if layer(&target) > layer(&module) {
                upward.push(format!("{module} -> {target}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports up a layer: {upward:#?}");
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let edges = edges();
    // A module is in a circle when it reaches itself.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = edges[start].iter().collect();
        while let Some(next) = todo.pop() {
            if next == start {
                circles.push(start.clone());
                break;
            }
            if seen.insert(next) {
                todo.extend(edges[next].iter());
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules in an import circle: {circles:?}"
    );
    assert!(edges.len() > 40, "only {} modules found", edges.len());
}
