//! The `loadgen` binary: the quick-start smoke run, and its exit codes (0 pass, 1 a gate
//! failed with reports written, 2 could not run with a one-line reason).

use std::process::Command;

use crate::assert_matches_schema;

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

fn temp_report(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loadgen-{name}-{}.json", std::process::id()))
}

#[test]
fn a_smoke_run_of_100_tabs_passes_and_writes_its_reports() {
    let report = temp_report("smoke");
    let goose_report =
        std::env::temp_dir().join(format!("loadgen-goose-{}.html", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "--tabs",
            "100",
            "--duration",
            "8s",
            "--seed",
            "31",
            "--progress-every",
            "2s",
        ])
        .arg("--report-json")
        .arg(&report)
        .arg("--report-file")
        .arg(&goose_report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{warnings:#?}");
    assert!(stdout.contains("== loadgen: PASS =="), "{stdout}");
    assert!(
        stderr.contains("tabs 100/100 joined 100"),
        "progress lines: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_matches_schema(&json);
    assert_eq!(json["verdict"], "pass");
    assert_eq!(json["tabs"], 100);
    let html = std::fs::read_to_string(&goose_report).expect("goose wrote its HTML report");
    for row in [
        "connect",
        "join boardroom",
        "receive booking-created",
        "create booking",
    ] {
        assert!(html.contains(row), "goose report lacks `{row}`");
    }
    let _ = std::fs::remove_file(report);
    let _ = std::fs::remove_file(goose_report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_generator_processes_verify_their_own_tabs_on_one_server() {
    let host = crate::fresh_server("shared-secret-at-least-thirty-two-bytes").await;
    let generator = |seed: &str, name: &str| {
        let report = temp_report(name);
        let child = tokio::process::Command::new(BIN)
            .args([
                "--host",
                &host,
                "--auth-secret",
                "shared-secret-at-least-thirty-two-bytes",
                "--tabs",
                "25",
            ])
            .args(["--duration", "4s", "--progress-every", "0s", "--seed", seed])
            .arg("--report-json")
            .arg(&report)
            .output();
        (child, report)
    };
    let (a, report_a) = generator("21", "gen-a");
    let (b, report_b) = generator("22", "gen-b");
    let (a, b) = tokio::join!(a, b);
    for (out, report) in [(a.unwrap(), report_a), (b.unwrap(), report_b)] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(json["delivery"]["lost"], 0);
        assert_eq!(json["embedded_server"], false);
        let a = &json["actions"];
        let own_events: u64 = ["created", "updated", "cancelled", "deleted"]
            .iter()
            .map(|k| a[*k].as_u64().unwrap())
            .sum();
        // The runs overlap: each judged the other's events too, from the same log.
        assert!(
            json["events_logged"].as_u64().unwrap() > own_events,
            "{json}"
        );
        let _ = std::fs::remove_file(report);
    }
}

#[test]
fn a_failed_gate_exits_1_and_still_writes_the_report() {
    let report = temp_report("gate");
    let out = Command::new(BIN)
        .args([
            "--tabs",
            "20",
            "--duration",
            "3s",
            "--seed",
            "32",
            "--progress-every",
            "0s",
        ])
        .args(["--inject-faults", "drop=0.2"])
        .arg("--report-json")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("gate FAIL  lost"), "{stdout}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_matches_schema(&json);
    let _ = std::fs::remove_file(report);
}

#[test]
fn a_run_that_cannot_happen_exits_2_with_one_line() {
    for (args, reason) in [
        (vec!["--tabs", "0"], "--tabs"),
        (
            vec!["--host", "http://127.0.0.1:1", "--auth-secret", "s"],
            "unreachable",
        ),
        (vec!["--duration", "soon"], "soon"),
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

/// A baseline run, then the same workload with a 20 ms delay injected before every emission
/// (under the write turn, so each action waits for it): the baseline's action-latency rule
/// fails the second run (exit 1, a JUnit failure naming it),
/// and `loadgen compare` shows it too; a different workload is refused (exit 2).
#[test]
fn a_baseline_gate_catches_an_injected_delay_and_compare_shows_it() {
    let base = temp_report("baseline");
    let slow = temp_report("delayed");
    let other = temp_report("other-workload");
    let junit = std::env::temp_dir().join(format!("loadgen-gates-{}.xml", std::process::id()));
    let workload = [
        "--tabs",
        "40",
        "--duration",
        "5s",
        "--actions-per-sec",
        "10",
        "--seed",
        "5",
        "--progress-every",
        "0s",
        "--settle",
        "1s",
    ];
    let run = |extra: &[&str], report: &std::path::Path| {
        Command::new(BIN)
            .args(workload)
            .args(extra)
            .arg("--report-json")
            .arg(report)
            .output()
            .unwrap()
    };
    let first = run(&[], &base);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let base_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    assert_matches_schema(&base_json);
    assert_eq!(base_json["run"]["workload"]["tabs"], 40);
    assert!(base_json["run"]["cores"].as_u64().unwrap() >= 1);

    let base_arg = base.to_str().unwrap();
    let junit_arg = junit.to_str().unwrap();
    let second = run(
        &[
            "--inject-faults",
            "delay=20ms",
            "--baseline",
            base_arg,
            "--max-regression",
            "action_p50=50%,lost=0%",
            "--report-junit",
            junit_arg,
        ],
        &slow,
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(second.status.code(), Some(1), "{stdout}");
    let fanout_line = stdout
        .lines()
        .find(|l| l.contains("action p50 ms vs baseline (+50%)"))
        .unwrap_or_else(|| panic!("no regression gate in: {stdout}"));
    assert!(fanout_line.starts_with("gate FAIL"), "{fanout_line}");
    assert!(fanout_line.contains(" baseline "), "{fanout_line}");
    let lost_line = stdout
        .lines()
        .find(|l| l.contains("lost vs baseline"))
        .unwrap();
    assert!(lost_line.starts_with("gate ok"), "{lost_line}");
    let slow_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&slow).unwrap()).unwrap();
    assert_matches_schema(&slow_json);
    let gate = slow_json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "action p50 ms vs baseline (+50%)")
        .unwrap();
    assert_eq!(gate["passed"], false);
    assert_eq!(gate["baseline"], base_json["latency_ms"]["action"]["p50"]);
    assert!(gate["change_pct"].as_f64().unwrap() > 50.0, "{gate}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failed: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .filter_map(|n| n.parent()?.attribute("name"))
        .collect();
    assert_eq!(failed, ["action p50 ms vs baseline (+50%)"], "{xml}");

    let compare = |args: &[&str]| {
        Command::new(BIN)
            .arg("compare")
            .args([base_arg, slow.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let html = std::env::temp_dir().join(format!("loadgen-compare-{}.html", std::process::id()));
    let table = compare(&[
        "--max-regression",
        "action_p50=50%",
        "--format",
        "markdown",
        "--report-html",
        html.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(1), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("| action p50 ms (rule 50%) |"))
        .unwrap();
    assert!(row.ends_with("FAIL |"), "{row}");
    assert!(
        text.contains("a rule failed: 0 of 1 rule checks passed"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("A RULE FAILED"), "{page}");
    // Fan-out and action p99, one line per run each.
    assert_eq!(page.matches(": p99</title>").count(), 4, "{page}");
    let lenient = compare(&["--max-regression", "lost=0%"]);
    assert_eq!(
        lenient.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&lenient.stdout)
    );

    let third = run(&["--boardrooms", "4"], &other);
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    let refused = Command::new(BIN)
        .args(["compare", base_arg, other.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("different workload") && stderr.contains("boardrooms: 10 vs 4"),
        "{stderr}"
    );
    let refused_run = run(&["--boardrooms", "4", "--baseline", base_arg], &other);
    let stderr = String::from_utf8_lossy(&refused_run.stderr);
    assert_eq!(refused_run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("boardrooms: 10 vs 4"), "{stderr}");
    for path in [&base, &slow, &other, &junit, &html] {
        let _ = std::fs::remove_file(path);
    }
}

/// `--goose-baseline-file` reaches goose: goose checks the file before the attack, so a
/// missing one stops the run with goose's reason (exit 2).
#[test]
fn the_goose_baseline_file_reaches_goose() {
    let missing =
        std::env::temp_dir().join(format!("no-goose-baseline-{}.json", std::process::id()));
    let out = Command::new(BIN)
        .args(["--tabs", "2", "--duration", "1s", "--progress-every", "0s"])
        .arg("--goose-baseline-file")
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("loadgen: could not run"), "{stderr}");
    assert!(stderr.contains(&*missing.to_string_lossy()), "{stderr}");
}
