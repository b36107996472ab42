//! The loadgen's modules import each other in layers, never in a circle: a module's file may
//! name `crate::<path>` only where that module does not lead back to it. Each file is a module,
//! named by its path (`drive::run`, `plan` for `plan/mod.rs`, whose declarations import
//! nothing); lib.rs, the root that declares them all, is left out (nothing may import from it). `src` is laid out by stage: plan, drive, record, judge, report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, as (module path, text).
fn files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let name = if prefix.is_empty() {
            stem.clone()
        } else {
            format!("{prefix}::{stem}")
        };
        if path.is_dir() {
            files(&path, &name, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            if stem == "mod" {
                out.insert(prefix.to_string(), text);
            } else if !(prefix.is_empty() && (stem == "lib" || stem == "main")) {
                out.insert(name, text);
            }
        }
    }
}

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The longest module of `modules` that `path` (`a::b::Item`) names.
fn module_of(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// Module path -> the loadgen modules its file refers to as `crate::<path>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut all = BTreeMap::new();
    files(&src(), "", &mut all);
    let modules: BTreeSet<String> = all.keys().cloned().collect();
    let path_at = |rest: &str| {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        rest[..end].trim_end_matches(':').to_string()
    };
    all.iter()
        .map(|(name, text)| {
            let mut used = BTreeSet::new();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                used.extend(module_of(&path_at(rest), &modules));
                // `use crate::a::{b, c::D}` names several at once.
                let head = path_at(rest);
                if let Some(group) = rest[head.len()..].strip_prefix("::{") {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for part in group.split(',') {
                        let full = format!("{head}::{}", part.trim());
                        used.extend(module_of(&full, &modules));
                    }
                }
            }
            used.remove(name);
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
        graph.len() > 30
            && graph["drive::run"].contains("drive::tab")
            && graph["drive::receive"].contains("drive::client")
            && graph["app"].contains("report::app"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("loadgen/src imports in a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn src_is_laid_out_by_stage() {
    let stages = ["plan", "drive", "record", "judge", "report"];
    let mut top: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    top.sort();
    let mut expected: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
    // The roots: the library, the engine every run goes through and its two workloads (the
    // booking one, an app file's), the binary, the command line and the setup error.
    expected.extend(
        [
            "app.rs",
            "booking.rs",
            "config.rs",
            "engine.rs",
            "error.rs",
            "lib.rs",
            "main.rs",
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(
        top, expected,
        "loadgen/src holds the stage folders and the roots only"
    );
}

#[test]
fn the_command_line_imports_no_later_stage() {
    // config is read by every stage; it may name the plan (`--stages`, `--shard`) and the
    // fault scenarios' flags, never what drives, records, judges or reports a run.
    let graph = imports();
    let allowed = ["plan", "plan::stages", "judge::fault"];
    let later: Vec<&String> = graph["config"]
        .iter()
        .filter(|m| !allowed.contains(&m.as_str()))
        .collect();
    assert!(later.is_empty(), "config imports {later:?}");
}

#[test]
fn both_workloads_run_on_the_one_engine_and_it_knows_neither() {
    // One engine sequences every run (watch, open, cut, act, settle, judge, decide, close);
    // the booking workload and an app file's bring their tabs, actions and judge to it. The
    // engine names no workload, and the pieces only the engine runs (churn and storms, the
    // verdict) appear in neither workload.
    let graph = imports();
    for workload in ["booking", "app"] {
        assert!(
            graph[workload].contains("engine"),
            "{workload} does not run on the engine"
        );
        assert!(
            !graph["engine"].contains(workload),
            "the engine names the {workload} workload"
        );
    }
    for (name, text) in [
        (
            "booking.rs",
            std::fs::read_to_string(src().join("booking.rs")).unwrap(),
        ),
        (
            "app.rs",
            std::fs::read_to_string(src().join("app.rs")).unwrap(),
        ),
    ] {
        for engine_only in ["config.churn", "config.storm_at", ".decide()", "b.judge("] {
            assert!(
                !text.contains(engine_only),
                "{name} does the engine's `{engine_only}` itself"
            );
        }
    }
}

#[test]
fn both_kinds_of_tab_lead_the_one_life_and_it_knows_neither() {
    // A booking tab and an app tab open, close and come back through `drive::life`: each
    // brings its kind (how it joins, leaves, rejoins and recovers), and neither keeps a
    // reconnect loop of its own.
    let graph = imports();
    let mut all = BTreeMap::new();
    files(&src(), "", &mut all);
    for kind in [
        "drive::run",
        "drive::tab",
        "drive::booking_life",
        "drive::app",
    ] {
        assert!(
            !graph["drive::life"].contains(kind),
            "the life names the {kind} tab"
        );
    }
    for (module, kind) in [
        ("drive::booking_life", "impl TabKind for Run"),
        ("drive::app", "impl TabKind for AppRun"),
    ] {
        assert!(graph[module].contains("drive::life"), "{module}");
        assert!(all[module].contains(kind), "{module} has no `{kind}`");
    }
    for (module, text) in &all {
        if module == "drive::life" {
            continue;
        }
        for loop_of_its_own in ["attempt += 1", "for attempt in", "fn backoff"] {
            assert!(
                !text.contains(loop_of_its_own),
                "{module} reconnects by itself (`{loop_of_its_own}`)"
            );
        }
    }
}
