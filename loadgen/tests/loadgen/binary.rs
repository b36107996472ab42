//! The `loadgen` binary: the quick-start smoke run, and its exit codes (0 pass, 1 a gate
//! failed with reports written, 2 could not run with a one-line reason).

use std::process::Command;

use crate::assert_matches_schema;

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

fn temp_report(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("loadgen-{name}-{}.json", std::process::id()))
}

#[test]
fn a_smoke_run_of_100_tabs_passes_and_writes_its_report() {
    let report = temp_report("smoke");
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
    let _ = std::fs::remove_file(report);
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
