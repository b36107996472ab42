//! The loadgen's modules import each other in layers, never in a circle: a module's file may
//! name `crate::<other>` only where `<other>` does not lead back to it. A folder module
//! (`app/`) counts as one, all its files together. lib.rs, the root that declares them all,
//! is left out (nothing may import from it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Module name -> the loadgen modules its file refers to as `crate::<name>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        } else if path.is_dir() {
            let mut text = String::new();
            for file in std::fs::read_dir(&path).unwrap() {
                text += &std::fs::read_to_string(file.unwrap().path()).unwrap();
            }
            files.insert(name, text);
        }
    }
    let modules: BTreeSet<String> = files.keys().cloned().collect();
    files
        .iter()
        .map(|(name, text)| {
            let mut used = BTreeSet::new();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                used.insert(rest[..end].to_string());
            }
            // `use crate::{a, b::C}` names several at once.
            for (i, _) in text.match_indices("use crate::{") {
                let rest = &text[i + "use crate::{".len()..];
                let group = &rest[..rest.find("};").unwrap_or(rest.len())];
                for part in group.split(',') {
                    let head = part.trim().split("::").next().unwrap_or("").trim();
                    used.insert(head.to_string());
                }
            }
            let used = used
                .into_iter()
                .filter(|m| modules.contains(m) && m != name)
                .collect();
            (name.clone(), used)
        })
        .collect()
}

/// A circle of imports, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_a_circle_and_only_a_circle() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let layered = graph(&[("tab", "ledger"), ("run", "tab"), ("run", "ledger")]);
    assert_eq!(find_cycle(&layered), None);
    let circle = graph(&[("run", "tab"), ("tab", "ledger"), ("ledger", "run")]);
    let found = find_cycle(&circle).expect("a circle");
    assert_eq!(found.first(), found.last());
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn loadgen_modules_import_each_other_without_circles() {
    let graph = imports();
    assert!(
        graph.len() > 10 && graph["run"].contains("tab") && graph["app"].contains("report"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("loadgen/src imports in a circle: {}", cycle.join(" -> "));
    }
}
