//! Fault scenarios: the commands are timed and reported, a failing one fails the run with its
//! output, and a server killed under the tabs (a real `booking-server` process, SIGKILL) loses
//! nothing once the tabs have reconnected, rejoined and replayed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{as_json, assert_matches_schema, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_restart_scenario_times_its_commands_and_checks_acknowledged_writes() {
    let args = [
        "--tabs",
        "20",
        "--duration",
        "4s",
        "--seed",
        "21",
        "--scenario",
        "db-restart",
        "--fault-at",
        "1s",
        "--fault-for",
        "1s",
        "--fault-cmd",
        "echo database stopped",
        "--heal-cmd",
        "echo database started",
    ];
    let outcome = run(&args).await;
    let r = &outcome.report;
    let f = r.fault.as_ref().expect("a fault section");
    assert_eq!(f.scenario, "db-restart");
    assert_eq!(f.commands.len(), 2, "{:?}", f.commands);
    assert!(f.commands.iter().all(|c| c.ok), "{:?}", f.commands);
    assert_eq!(f.commands[0].output, "database stopped");
    let (fault_at, heal_at) = (f.fault_at_s.unwrap(), f.heal_at_s.unwrap());
    assert!((0.9..1.6).contains(&fault_at), "{fault_at}");
    assert!(heal_at - fault_at >= 0.99, "{fault_at} {heal_at}");
    let recovery = f.recovery_s.expect("a write succeeded after the heal");
    assert!((1.0..3.0).contains(&recovery), "{recovery}");
    assert!(f.acked_writes > 10, "{}", r.summary());
    assert_eq!(f.acked_writes_missing, 0);
    assert_eq!(f.delivery.lost, 0);
    assert_eq!(f.delivery.owed, r.delivery.owed);
    assert_eq!(
        r.by_node["same-node"].owed,
        r.delivery.owed,
        "one node: every event is same-node: {}",
        r.summary()
    );
    assert!(
        r.summary().contains("fault      db-restart"),
        "{}",
        r.summary()
    );
    assert!(outcome.passed(), "{}", r.summary());
    assert_matches_schema(&as_json(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_heal_command_fails_the_run_with_its_output() {
    let args = [
        "--tabs",
        "10",
        "--duration",
        "3s",
        "--seed",
        "22",
        "--scenario",
        "redis-pause",
        "--fault-at",
        "500ms",
        "--fault-for",
        "500ms",
        "--fault-cmd",
        "true",
        "--heal-cmd",
        "echo redis-cli: not found >&2; exit 127",
    ];
    let outcome = run(&args).await;
    let r = &outcome.report;
    let f = r.fault.as_ref().unwrap();
    let heal = &f.commands[1];
    assert!(!heal.ok && heal.exit_code == Some(127), "{heal:?}");
    assert!(heal.output.contains("redis-cli: not found"), "{heal:?}");
    let gate = r
        .gates
        .iter()
        .find(|g| g.name == "fault commands failed")
        .unwrap();
    assert!(!gate.passed, "{gate:?}");
    assert!(
        f.recovery_s.is_none(),
        "one node: no cross-node delivery can show fan-out resumed"
    );
    assert!(!outcome.passed());
    assert!(
        r.summary().contains("heal command FAILED"),
        "{}",
        r.summary()
    );
    assert_matches_schema(&as_json(r));
}

/// The `booking-server` binary next to this test's, if the workspace built it.
fn server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("booking-server");
    bin.exists().then_some(bin)
}

/// Kills the server process a test started, however the test ends.
struct Killer(PathBuf);

impl Drop for Killer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid.trim()])
                .status();
        }
    }
}

fn write_start_script(dir: &Path, bin: &Path, port: u16, secret: &str) -> PathBuf {
    let script = dir.join("start.sh");
    let db = dir.join("bookings.db");
    std::fs::write(
        &script,
        format!(
            "cd '{dir}' && nohup '{bin}' --port {port} --database-url 'sqlite://{db}?mode=rwc' \
             --auth-secret '{secret}' --node-id node-a --log-level warn >> server.log 2>&1 &\n\
             echo $! > '{dir}/pid'\n",
            dir = dir.display(),
            bin = bin.display(),
            db = db.display(),
        ),
    )
    .unwrap();
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_of_a_killed_server_reconnect_rejoin_and_replay() {
    let Some(bin) = server_binary() else {
        eprintln!("skipped: no booking-server binary built next to the tests");
        return;
    };
    let dir = std::env::temp_dir().join(format!("loadgen-node-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = "node-kill-test-secret";
    let start = write_start_script(&dir, &bin, port, secret);
    let _killer = Killer(dir.join("pid"));
    let started = std::process::Command::new("sh")
        .arg(&start)
        .status()
        .unwrap();
    assert!(started.success());
    let host = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{host}/ready")).send().await {
            ready = r.status().is_success();
            if ready {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not come up: see {}", dir.display());
    let fault_cmd = format!("kill -9 $(cat '{}/pid')", dir.display());
    let heal_cmd = format!("sh '{}'", start.display());
    let args = [
        "--host",
        &host,
        "--auth-secret",
        secret,
        "--tabs",
        "20",
        "--duration",
        "9s",
        "--seed",
        "23",
        "--scenario",
        "node-kill",
        "--fault-at",
        "2s",
        "--fault-for",
        "1s",
        "--fault-cmd",
        &fault_cmd,
        "--heal-cmd",
        &heal_cmd,
    ];
    let outcome = run(&args).await;
    let r = &outcome.report;
    let f = r.fault.as_ref().unwrap();
    assert!(f.commands.iter().all(|c| c.ok), "{:?}", f.commands);
    assert_eq!(f.drops, 20, "every tab was dropped: {}", r.summary());
    assert_eq!(f.tabs_not_recovered, 0, "{}", r.summary());
    let recovery = f.recovery_s.expect("every dropped tab got back");
    assert!((1.0..9.0).contains(&recovery), "{}", r.summary());
    assert_eq!(f.tab_recovery_ms.count, 20);
    assert_eq!(r.actions.errors, 0, "{}", r.summary());
    assert_eq!(f.acked_writes_missing, 0);
    assert_eq!(r.delivery.lost, 0, "{}", r.summary());
    assert!(
        r.by_node["same-node"].owed == r.delivery.owed,
        "one node that names itself: {}",
        r.summary()
    );
    assert!(outcome.passed(), "{}", r.summary());
    assert_matches_schema(&as_json(r));
    println!("{}", r.summary());
    let _ = std::fs::remove_dir_all(&dir);
}
