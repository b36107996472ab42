//! Several servers on one PostgreSQL and one Redis: events cross nodes through the Redis
//! adapter, and a Redis outage neither stops a node's own deliveries nor ends cross-node
//! fan-out for good (the link heals and clients are told to replay).

use std::time::Duration;

use booking_server::ServerConfig;
use serde_json::Value;
use testkit::{PrivateRedis, shared_redis_url, wait_until};

use crate::realtime::{Polling, events_in};
use crate::support::{
    Backend, Tab, TempDb, TestApp, metric, postgres_url, spawn_with, temp_database,
};

/// A node named `node` of a cluster on `database` and `redis`; channels under `prefix`.
async fn node(database: &str, redis: &str, prefix: &str, node: &str) -> TestApp {
    node_with(database, redis, prefix, node, |_| {}).await
}

/// [`node`], with `tweak` applied to its configuration.
async fn node_with(
    database: &str,
    redis: &str,
    prefix: &str,
    node: &str,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestApp {
    let mut config = ServerConfig::defaults_for(database);
    config.redis_url = Some(redis.to_string());
    config.redis_prefix = prefix.to_string();
    config.node_id = Some(node.to_string());
    tweak(&mut config);
    spawn_with(config).await
}

/// `node-a` and `node-b` on a fresh PostgreSQL database and `redis`, both links up.
async fn pair(redis: &str) -> (TestApp, TestApp, Option<TempDb>) {
    pair_with(redis, |_| {}).await
}

/// [`pair`], with `tweak` applied to `node-a`'s configuration.
async fn pair_with(
    redis: &str,
    tweak: impl FnOnce(&mut ServerConfig),
) -> (TestApp, TestApp, Option<TempDb>) {
    let (db, guard) = temp_database(Backend::Postgres).await;
    let prefix = unique_prefix();
    let a = node_with(&db, redis, &prefix, "node-a", tweak).await;
    let b = node(&db, redis, &prefix, "node-b").await;
    wait_ready(&a, "up").await;
    wait_ready(&b, "up").await;
    (a, b, guard)
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let res = app.http.get(app.url("/ready")).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn wait_ready(app: &TestApp, adapter: &str) {
    let what = format!("{} reports adapter {adapter}", app.base);
    wait_until(&what, Duration::from_secs(15), || async {
        ready(app).await.1["adapter"] == adapter
    })
    .await;
}

fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn an_event_committed_on_one_node_reaches_tabs_on_the_other() {
    let (Some(_), Some(redis)) = (postgres_url(), shared_redis_url()) else {
        return;
    };
    let (a, b, _guard) = pair(&redis).await;
    let (status, body) = ready(&b).await;
    assert_eq!(
        (status, body["node"].as_str()),
        (200, Some("node-b")),
        "{body}"
    );

    let room = a.boardroom("Shared", 8).await;
    let mut on_a = Tab::connect(&a, &a.token("ann")).await.unwrap();
    let mut on_b = Tab::connect(&b, &b.token("bob")).await.unwrap();
    for (tab, node) in [(&on_a, "node-a"), (&on_b, "node-b")] {
        let ack = tab.join(&format!("boardroom-{room}")).await;
        assert!(ack.ok, "{ack:?}");
        assert_eq!(ack.node.as_deref(), Some(node));
    }

    let booked = a.book(&a.token("ann"), room, 9).await;
    for tab in [&mut on_a, &mut on_b] {
        let (_, event) = tab.next().await;
        assert_eq!(event.body.booking["id"], booked["id"]);
        assert_eq!(event.node.as_deref(), Some("node-a"));
    }
    let booked = b.book(&b.token("bob"), room, 11).await;
    for tab in [&mut on_a, &mut on_b] {
        let (_, event) = tab.next().await;
        assert_eq!(event.body.booking["id"], booked["id"]);
        assert_eq!(event.node.as_deref(), Some("node-b"));
    }
    assert_eq!(metric(&a.metrics().await, "socketio_adapter_up"), 1.0);
    on_a.close().await;
    on_b.close().await;
}

#[tokio::test]
async fn a_redis_outage_keeps_local_delivery_and_ends_in_a_resync() {
    // TEST_REDIS_URL set says this machine has Redis (redis-server included).
    if postgres_url().is_none() || shared_redis_url().is_none() {
        return;
    }
    let mut redis = PrivateRedis::start().await;
    let (a, b, _guard) = pair(&redis.url()).await;
    let mut on_a = Tab::connect(&a, &a.token("ann")).await.unwrap();
    let mut on_b = Tab::connect(&b, &b.token("bob")).await.unwrap();
    for tab in [&on_a, &on_b] {
        assert!(tab.join("bookings").await.ok);
    }
    let room = a.boardroom("Outage", 8).await;
    a.book(&a.token("ann"), room, 8).await;
    on_a.next().await;
    on_b.next().await;

    redis.kill();
    wait_ready(&a, "down").await;
    let (status, body) = ready(&a).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redis link down"),
        "{body}"
    );
    assert_eq!(metric(&a.metrics().await, "socketio_adapter_up"), 0.0);

    // Node A still serves its own tabs; node B cannot hear about it.
    let missed = a.book(&a.token("ann"), room, 10).await;
    let (_, live) = on_a.next().await;
    assert_eq!(live.body.booking["id"], missed["id"]);
    let missed_seq = live.seq;
    assert!(on_b.try_next(Duration::from_millis(500)).await.is_none());
    assert!(
        metric(
            &a.metrics().await,
            "socketio_adapter_publish_failures_total"
        ) >= 1.0
    );

    redis.restart().await;
    wait_ready(&a, "up").await;
    wait_ready(&b, "up").await;
    let resync = on_b.next_resync().await;
    // Node A also owed the cluster a resync for the publish that failed, from just before
    // it; sent once its link was back. It reaches its own tab for sure; node B's tab only if
    // B's link was back by then (if not, B's own recovery resync covers it, as here).
    let mut on_a_resyncs = Vec::new();
    while let Some(more) = on_a.try_next_resync(Duration::from_secs(2)).await {
        on_a_resyncs.push(more);
    }
    assert!(
        on_a_resyncs.iter().any(|r| r.reason == "publish-failed"
            && r.node == "node-a"
            && r.after == missed_seq - 1),
        "{on_a_resyncs:?}"
    );
    assert_eq!(
        metric(
            &a.metrics().await,
            r#"socketio_resyncs_total{reason="publish-failed"}"#
        ),
        1.0
    );
    // Sent by whichever node's link came back, to the sockets of both.
    assert!(
        ["node-a", "node-b"].contains(&resync.node.as_str()),
        "{resync:?}"
    );
    assert!(
        resync.after < missed_seq,
        "{resync:?} must reach back before {missed_seq}"
    );
    let (status, page) = b
        .call(
            "GET",
            &format!("/api/events?after={}&rooms=bookings", resync.after),
            &b.token("bob"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let replayed: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["seq"].as_i64().unwrap())
        .collect();
    assert!(
        replayed.contains(&missed_seq),
        "{replayed:?} lacks {missed_seq}"
    );

    // Fan-out across nodes is back without a restart.
    let after = a.book(&a.token("ann"), room, 12).await;
    let (_, event) = on_b.next().await;
    assert_eq!(event.body.booking["id"], after["id"]);
    assert_eq!(event.node.as_deref(), Some("node-a"));
    for app in [&a, &b] {
        assert!(metric(&app.metrics().await, "socketio_adapter_recoveries_total") >= 1.0);
    }
    on_a.close().await;
    on_b.close().await;
}

#[tokio::test]
async fn a_paused_redis_is_noticed_by_ping_and_the_link_heals() {
    // TEST_REDIS_URL set says this machine has Redis (redis-server included).
    if postgres_url().is_none() || shared_redis_url().is_none() {
        return;
    }
    let redis = PrivateRedis::start().await;
    let (a, b, _guard) = pair(&redis.url()).await;
    let mut on_b = Tab::connect(&b, &b.token("bob")).await.unwrap();
    assert!(on_b.join("bookings").await.ok);
    let room = a.boardroom("Paused", 8).await;

    // SIGSTOP: connections stay open, nothing answers; only the ping can tell.
    testkit::signal(redis.pid(), "STOP");
    wait_ready(&b, "down").await;
    wait_ready(&a, "down").await;
    // A write on node A neither hangs on the frozen link nor reaches node B.
    let started = std::time::Instant::now();
    let missed = a.book(&a.token("ann"), room, 10).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(on_b.try_next(Duration::from_millis(300)).await.is_none());

    testkit::signal(redis.pid(), "CONT");
    wait_ready(&a, "up").await;
    wait_ready(&b, "up").await;
    let resync = on_b.next_resync().await;
    let (_, page) = b
        .call(
            "GET",
            &format!("/api/events?after={}&rooms=bookings", resync.after),
            &b.token("bob"),
            None,
        )
        .await;
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["payload"]["booking"]["id"] == missed["id"]),
        "replay from {} lacks booking {}: {page}",
        resync.after,
        missed["id"]
    );
    let after = a.book(&a.token("ann"), room, 12).await;
    // Whatever the frozen Redis still delivers late comes first; the new booking arrives live.
    let mut got = Vec::new();
    while let Some((_, e)) = on_b.try_next(Duration::from_secs(5)).await {
        got.push(e.body.booking["id"].clone());
        if e.body.booking["id"] == after["id"] {
            break;
        }
    }
    assert!(got.contains(&after["id"]), "{got:?}");
    on_b.close().await;
}

/// A server that starts into a healthy cluster, with no socket and no event of its own yet, has
/// nothing anyone missed: it sends no resync (each start once made every tab replay).
#[tokio::test]
async fn a_server_joining_a_healthy_cluster_sends_no_resync() {
    let (Some(_), Some(redis)) = (postgres_url(), shared_redis_url()) else {
        return;
    };
    let (db, _guard) = temp_database(Backend::Postgres).await;
    let prefix = unique_prefix();
    let a = node(&db, &redis, &prefix, "node-a").await;
    wait_ready(&a, "up").await;
    let room = a.boardroom("Steady", 8).await;
    let mut on_a = Tab::connect(&a, &a.token("ann")).await.unwrap();
    assert!(on_a.join(&format!("boardroom-{room}")).await.ok);

    let c = node(&db, &redis, &prefix, "node-c").await;
    wait_ready(&c, "up").await;
    // The link works both ways: an event of the new server reaches the old one's tab.
    let booked = c.book(&c.token("cy"), room, 9).await;
    let (_, event) = on_a.next().await;
    assert_eq!(event.body.booking["id"], booked["id"]);
    let resyncs = r#"socketio_resyncs_total{reason="adapter-recovered"}"#;
    for app in [&a, &c] {
        assert_eq!(metric(&app.metrics().await, resyncs), 0.0, "{}", app.base);
    }
    assert!(
        on_a.try_next_resync(Duration::from_millis(300))
            .await
            .is_none(),
        "no tab is told to replay"
    );
    on_a.close().await;
}

/// More events from other servers than this server's relay queue holds arrive at once: those
/// past it are dropped and counted, and this server's sockets are sent `resync`
/// (`adapter-overflow`), so what was dropped is replayed rather than silently missed.
#[tokio::test]
async fn a_relay_queue_overflow_ends_in_a_resync_of_this_servers_sockets() {
    let (Some(_), Some(redis)) = (postgres_url(), shared_redis_url()) else {
        return;
    };
    let (db, _guard) = temp_database(Backend::Postgres).await;
    let prefix = unique_prefix();
    let a = node_with(&db, &redis, &prefix, "node-a", |c| c.relay_queue_size = 2).await;
    wait_ready(&a, "up").await;
    let mut tab = Tab::connect(&a, &a.token("ann")).await.unwrap();
    assert!(tab.join("bookings").await.ok);

    // Another "server" publishes 300 events at once (to a room no one is in).
    overflow_the_relay(&redis, &prefix).await;

    let resync = tab.next_resync().await;
    assert_eq!(resync.reason, "adapter-overflow", "{resync:?}");
    // (The tab connected once the link was up: no start-up resync comes before this one.)
    assert_eq!(resync.node, "node-a");
    let metrics = a.metrics().await;
    assert!(metric(&metrics, "socketio_adapter_overflow_total") >= 1.0);
    assert_eq!(
        metric(
            &metrics,
            r#"socketio_resyncs_total{reason="adapter-overflow"}"#
        ),
        1.0,
        "one resync for the burst (at most one a second)"
    );
    tab.close().await;
}

/// A server slow to take what the others relay (the test-only `relay-delay` fault: one a
/// 600 ms) publishes an event of its own behind four of another server's: its copy is not taken
/// back within the second a publish waits, so its own socket gets it before older events of the
/// other server. That lapse of order is counted (`socketio_adapter_order_lapses_total`) and
/// this server's sockets are sent `resync` (`order-lapse`); before, it was a debug log only.
#[tokio::test]
async fn a_publish_not_taken_back_in_time_is_counted_and_resyncs_this_servers_sockets() {
    let (Some(_), Some(redis)) = (postgres_url(), shared_redis_url()) else {
        return;
    };
    let slow = |c: &mut ServerConfig| {
        c.inject_faults = Some("relay-delay=600ms".parse().expect("a fault plan"));
    };
    let (a, b, _guard) = pair_with(&redis, slow).await;
    let room = b.boardroom("Slow relay", 8).await;
    let mut tab = Tab::connect(&a, &a.token("ann")).await.unwrap();
    assert!(tab.join("bookings").await.ok);

    // All four at once, so they are in node-a's queue together however slow this machine is.
    let bob = b.token("bob");
    futures_util::future::join_all((8..12).map(|hour| b.book(&bob, room, hour))).await;
    let own = a.book(&a.token("ann"), room, 14).await;
    let mut seqs = Vec::new();
    for _ in 0..5 {
        let (_, event) = tab.next().await;
        seqs.push((event.seq, event.body.booking["id"] == own["id"]));
    }
    let (own_seq, _) = *seqs.iter().find(|(_, own)| *own).expect("its own event");
    let own_at = seqs.iter().position(|(_, own)| *own).unwrap();
    assert!(
        seqs[own_at + 1..].iter().any(|(seq, _)| *seq < own_seq),
        "the lapse is real: older events of node-b came after node-a's own ({seqs:?})"
    );
    let resync = tab.next_resync().await;
    assert_eq!(resync.reason, "order-lapse", "{resync:?}");
    assert_eq!(resync.node, "node-a");
    assert!(
        resync.after < own_seq,
        "{resync:?} reaches back before the lapse"
    );
    let metrics = a.metrics().await;
    assert!(metric(&metrics, "socketio_adapter_order_lapses_total") >= 1.0);
    assert!(metric(&metrics, r#"socketio_resyncs_total{reason="order-lapse"}"#) >= 1.0);
    assert!(
        metric(
            &metrics,
            r#"booking_faults_injected_total{kind="relay-delay"}"#
        ) >= 4.0
    );
    let on_b = b.metrics().await;
    assert_eq!(metric(&on_b, "socketio_adapter_order_lapses_total"), 0.0);
    tab.close().await;
}

/// Publishes, as another "server" of the cluster under `prefix`, 300 events at once to a room
/// no one is in: more than a small relay queue holds.
async fn overflow_the_relay(redis: &str, prefix: &str) {
    let mut conn = redis::Client::open(redis)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut burst = redis::pipe();
    for seq in 1..=300 {
        let relayed = serde_json::json!({
            "node": "node-x", "seq": seq, "event": "noise", "rooms": ["nobody"], "payload": {},
        });
        burst
            .cmd("PUBLISH")
            .arg(format!("{prefix}#booking-events"))
            .arg(relayed.to_string())
            .ignore();
    }
    burst.query_async::<()>(&mut conn).await.unwrap();
}

/// A broadcast resync that a full queue did not take is owed to that socket, and sent once it
/// reads again; before, it was only logged, and the socket never heard of the gap. Here a
/// client stops reading, events from another "server" fill its queue, and a relay overflow
/// then tells this server's sockets to resync: the slow client must get that notice.
#[tokio::test]
async fn a_broadcast_resync_a_full_queue_missed_is_owed_and_sent_once_it_reads() {
    let (Some(_), Some(redis)) = (postgres_url(), shared_redis_url()) else {
        return;
    };
    let (db, _guard) = temp_database(Backend::Postgres).await;
    let prefix = unique_prefix();
    let a = node_with(&db, &redis, &prefix, "node-a", |c| {
        c.relay_queue_size = 2;
        c.socket_queue_size = 16;
    })
    .await;
    wait_ready(&a, "up").await;
    let token = a.token("slow");
    let (slow, _) = Polling::joined(&a, &token, "bookings").await;

    let mut conn = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let channel = format!("{prefix}#booking-events");
    // Another server's events to `bookings`, paced for the relay queue: they fill the slow
    // socket's queue (16) and the rest are skipped.
    for seq in 1001..=1040 {
        let relayed = serde_json::json!({
            "node": "node-x", "seq": seq, "event": "booking-created", "rooms": ["bookings"],
            "payload": {"seq": seq},
        });
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(relayed.to_string())
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metric(&a.metrics().await, "socketio_queue_full_skips_total") >= 1.0);
    // Then a burst the relay queue cannot hold: a resync of this server's sockets.
    overflow_the_relay(&redis, &prefix).await;
    let overflow = r#"socketio_resyncs_total{reason="adapter-overflow"}"#;
    wait_until("the overflow's resync", Duration::from_secs(10), || async {
        metric(&a.metrics().await, overflow) >= 1.0
    })
    .await;

    // It reads again: the overflow's notice comes, from where the log stood before the gap.
    let mut resyncs = Vec::new();
    for _ in 0..20 {
        match slow.poll_within(Duration::from_millis(500)).await {
            Some((200, packets)) => resyncs.extend(
                events_in(&packets)
                    .into_iter()
                    .filter(|(name, _)| name == "resync")
                    .map(|(_, data)| data),
            ),
            Some((status, _)) => panic!("the session closed: {status}"),
            None if !resyncs.is_empty() => break,
            None => {}
        }
    }
    assert!(
        resyncs.iter().any(|r| r["reason"] == "adapter-overflow"),
        "the slow socket never heard of the overflow: {resyncs:?}"
    );
    assert!(
        resyncs.iter().all(|r| r["after"].as_i64().unwrap() < 1001),
        "{resyncs:?}"
    );
}
