//! Fault scenarios: the commands are timed and reported, a failing one fails the run with its
//! output, and a server killed under the tabs (a real `booking-server` process, SIGKILL) loses
//! nothing once the tabs have reconnected, rejoined and replayed.

use crate::{as_json, assert_matches_schema, run};

/// The scenario's bookkeeping with commands that break nothing: when each ran, its output,
/// the recovery measure, the acknowledged-writes check. The real restart (a PostgreSQL of the
/// test's own, stopped and started mid-run) is
/// `cluster::a_postgres_restart_mid_run_answers_503_and_loses_no_acknowledged_write`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_times_its_commands_and_checks_acknowledged_writes() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_of_a_killed_server_reconnect_rejoin_and_replay() {
    let dir = testkit::scratch_dir("loadgen-node-kill");
    let database = format!("sqlite://{}?mode=rwc", dir.join("bookings.db").display());
    let secret = "node-kill-test-secret-of-thirty-two-bytes";
    let server = testkit::ServerProcess::start(&[
        ("DATABASE_URL", database.as_str()),
        ("AUTH_SECRET", secret),
        ("NODE_ID", "node-a"),
    ])
    .await;
    let host = server.url();
    let fault_cmd = format!("kill -9 {}", server.pid());
    let heal_cmd = server.shell_restart();
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
    let _ = std::fs::remove_dir_all(&dir);
}
