//! Runs against several real `booking-server` processes sharing PostgreSQL and Redis, and the
//! fault scenarios on them: Redis restarted and paused, one of two servers killed, PostgreSQL
//! restarted. Every fault hits a Redis or PostgreSQL of the test's own (or a server process
//! it started), never the machine's shared services. Each run is a few seconds, bounded by
//! `RUN_LIMIT`.

use std::time::Duration;

use booking_loadgen::Outcome;
use booking_loadgen::report::Report;
use testkit::{
    FreshDatabase, PrivatePostgres, PrivateRedis, ServerProcess, shared_postgres_url,
    shared_redis_url,
};

use crate::{as_json, assert_matches_schema, run};

const SECRET: &str = "cluster-test-secret-of-thirty-two-bytes";

/// Two servers, `node-a` and `node-b`, on `database` and `redis`, channels under a fresh prefix.
async fn two_nodes(database: &str, redis: &str) -> [ServerProcess; 2] {
    let prefix = format!(
        "loadgen-test-{}-{}",
        std::process::id(),
        testkit::free_port()
    );
    let start = |node: &'static str| {
        let env = [
            ("DATABASE_URL", database),
            ("REDIS_URL", redis),
            ("REDIS_PREFIX", prefix.as_str()),
            ("AUTH_SECRET", SECRET),
            ("NODE_ID", node),
        ];
        async move { ServerProcess::start(&env).await }
    };
    let a = start("node-a").await;
    let b = start("node-b").await;
    for node in [&a, &b] {
        wait_adapter_up(node).await;
    }
    [a, b]
}

async fn wait_adapter_up(node: &ServerProcess) {
    let http = reqwest::Client::new();
    let url = format!("{}/ready", node.url());
    testkit::wait_until(
        "the server's Redis link is up",
        Duration::from_secs(20),
        || async {
            let res = http.get(&url).send().await;
            match res {
                Ok(r) if r.status().is_success() => r
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|v| v["adapter"] == "up"),
                _ => false,
            }
        },
    )
    .await;
}

async fn run_on(nodes: &[&ServerProcess], extra: &[&str]) -> Outcome {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let mut args: Vec<&str> = Vec::new();
    for url in &urls {
        args.extend(["--host", url.as_str()]);
    }
    args.extend(["--auth-secret", SECRET, "--tabs", "40", "--boardrooms", "6"]);
    args.extend_from_slice(extra);
    run(&args).await
}

/// The warnings and errors each server logged, for failure messages.
fn logs(nodes: &[&ServerProcess]) -> String {
    nodes
        .iter()
        .map(|n| {
            let text = n.log_tail(100_000);
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let tail = notable[notable.len().saturating_sub(20)..].join("\n");
            format!("--- {} warnings and errors (last 20)\n{tail}", n.url())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Events crossed nodes, and every owed one ended delivered or recovered, in order.
fn assert_clean_across_nodes(r: &Report, nodes: &[&ServerProcess]) {
    let cross = r.by_node.get("cross-node").copied().unwrap_or_default();
    let same = r.by_node.get("same-node").copied().unwrap_or_default();
    assert!(
        cross.owed > 50 && same.owed > 50,
        "{}\n{}",
        r.summary(),
        logs(nodes)
    );
    let d = &r.delivery;
    assert_eq!(
        (d.lost, d.duplicated, d.unexpected, d.out_of_order),
        (0, 0, 0, 0),
        "{}\n{}",
        r.summary(),
        logs(nodes)
    );
    assert_eq!(d.delivered + d.recovered, d.owed);
    assert_eq!(
        cross.owed + same.owed,
        d.owed,
        "nothing is of unknown origin"
    );
    assert_matches_schema(&as_json(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_redis_deliver_across_nodes_in_order() {
    let (Some(pg), Some(redis)) = (shared_postgres_url(), shared_redis_url()) else {
        return;
    };
    let db = FreshDatabase::create(&pg);
    let [a, b] = two_nodes(&db.url, &redis).await;
    let outcome = run_on(&[&a, &b], &["--duration", "5s", "--seed", "31"]).await;
    let r = &outcome.report;
    assert!(outcome.passed(), "{}\n{}", r.summary(), logs(&[&a, &b]));
    assert_clean_across_nodes(r, &[&a, &b]);
    assert_eq!(
        r.by_node["cross-node"].delivered,
        r.by_node["cross-node"].owed
    );
}

/// A fault scenario's common expectations: the commands ran, recovery was seen, nothing lost.
fn assert_recovered(outcome: &Outcome, nodes: &[&ServerProcess]) {
    let r = &outcome.report;
    let f = r.fault.as_ref().expect("a fault section");
    assert!(
        f.commands.iter().all(|c| c.ok),
        "{:?}\n{}",
        f.commands,
        r.summary()
    );
    assert!(
        f.recovery_s.is_some(),
        "recovery observed: {}\n{}",
        r.summary(),
        logs(nodes)
    );
    assert_eq!(f.acked_writes_missing, 0, "{}", r.summary());
    assert!(outcome.passed(), "{}\n{}", r.summary(), logs(nodes));
    assert_clean_across_nodes(r, nodes);
}

const FAULT_TIMELINE: [&str; 6] = ["--duration", "12s", "--fault-at", "3s", "--fault-for", "3s"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_loses_nothing_once_tabs_resync() {
    // TEST_REDIS_URL set says this machine has Redis (redis-server included).
    let (Some(pg), Some(_)) = (shared_postgres_url(), shared_redis_url()) else {
        return;
    };
    let redis = PrivateRedis::start().await;
    let db = FreshDatabase::create(&pg);
    let [a, b] = two_nodes(&db.url, &redis.url()).await;
    let kill = format!("kill -9 {}", redis.pid());
    let restart = redis.shell_restart();
    let mut args = vec!["--seed", "32", "--scenario", "redis-restart"];
    args.extend(FAULT_TIMELINE);
    args.extend(["--fault-cmd", &kill, "--heal-cmd", &restart]);
    let outcome = run_on(&[&a, &b], &args).await;
    assert_recovered(&outcome, &[&a, &b]);
    let f = outcome.report.fault.as_ref().unwrap();
    assert!(f.resyncs > 0, "{}", outcome.report.summary());
    assert!(
        f.delivery.recovered > 0,
        "events of the outage came back by replay: {}",
        outcome.report.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_mid_run_loses_nothing_once_tabs_resync() {
    // TEST_REDIS_URL set says this machine has Redis (redis-server included).
    let (Some(pg), Some(_)) = (shared_postgres_url(), shared_redis_url()) else {
        return;
    };
    let redis = PrivateRedis::start().await;
    let db = FreshDatabase::create(&pg);
    let [a, b] = two_nodes(&db.url, &redis.url()).await;
    let stop = format!("kill -STOP {}", redis.pid());
    let cont = format!("kill -CONT {}", redis.pid());
    let mut args = vec!["--seed", "33", "--scenario", "redis-pause"];
    args.extend(FAULT_TIMELINE);
    args.extend(["--fault-cmd", &stop, "--heal-cmd", &cont]);
    let outcome = run_on(&[&a, &b], &args).await;
    assert_recovered(&outcome, &[&a, &b]);
    assert!(outcome.report.resyncs > 0, "{}", outcome.report.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_servers_killed_its_tabs_move_and_it_rejoins_the_cluster() {
    let (Some(pg), Some(redis)) = (shared_postgres_url(), shared_redis_url()) else {
        return;
    };
    let db = FreshDatabase::create(&pg);
    let [a, b] = two_nodes(&db.url, &redis).await;
    let kill = format!("kill -9 {}", b.pid());
    let restart = b.shell_restart();
    let mut args = vec!["--seed", "34", "--scenario", "node-kill"];
    args.extend(FAULT_TIMELINE);
    args.extend(["--fault-cmd", &kill, "--heal-cmd", &restart]);
    let outcome = run_on(&[&a, &b], &args).await;
    assert_recovered(&outcome, &[&a, &b]);
    let f = outcome.report.fault.as_ref().unwrap();
    assert!(
        f.drops >= 10 && f.tabs_not_recovered == 0,
        "half the tabs were on the killed node: {}",
        outcome.report.summary()
    );
    // The restarted node is back in the cluster: a second run spreads over both again.
    wait_adapter_up(&b).await;
    let again = run_on(&[&a, &b], &["--duration", "3s", "--seed", "35"]).await;
    assert!(again.passed(), "{}", again.report.summary());
    assert_clean_across_nodes(&again.report, &[&a, &b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_answers_503_and_loses_no_acknowledged_write() {
    let Some(redis) = shared_redis_url() else {
        return;
    };
    if shared_postgres_url().is_none() {
        return;
    }
    let pg = PrivatePostgres::start().await;
    let [a, b] = two_nodes(&pg.url(), &redis).await;
    let (stop, start) = pg.shell_commands();
    // Down longer than the servers wait for a connection (--db-acquire-timeout, 2 s).
    let mut args = vec!["--seed", "36", "--scenario", "db-restart"];
    args.extend(["--duration", "12s", "--fault-at", "3s", "--fault-for", "5s"]);
    args.extend(["--fault-cmd", &stop, "--heal-cmd", &start]);
    let outcome = run_on(&[&a, &b], &args).await;
    assert_recovered(&outcome, &[&a, &b]);
    let f = outcome.report.fault.as_ref().unwrap();
    assert!(
        f.unavailable > 0 && f.acked_writes > 20,
        "{}",
        outcome.report.summary()
    );
    for node in [&a, &b] {
        assert!(
            !node.log_tail(10_000).contains("panicked"),
            "{}",
            node.log_tail(50)
        );
    }
}
