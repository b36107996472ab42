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
    let mut server = booking_server::ServerConfig::defaults_for("sqlite::memory:");
    server.auth_secret = Some("shared-secret".into());
    let state = booking_server::AppState::new(server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(booking_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let generator = |seed: &str, name: &str| {
        let report = temp_report(name);
        let child = tokio::process::Command::new(BIN)
            .args([
                "--host",
                &host,
                "--auth-secret",
                "shared-secret",
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
