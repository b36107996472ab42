//! Socket.IO behaviour with real rust_socketio clients over WebSocket: who receives what, the
//! payload of each event type, the join watermark, replay after a gap, refusals.
//!
//! "Does not receive" is shown without sleeping: emissions of one server leave in `seq`
//! order and a socket's deliveries are FIFO, so when the next event a tab receives is a later
//! sentinel, the earlier event was never sent to it.

use booking_server::realtime::protocol::{ActorRole, BookingEventKind, EventActor};
use serde_json::json;

use std::time::Duration;

use booking_server::ServerConfig;

use crate::support::{Backend, Tab, booking_body, metric, spawn_app, spawn_with, temp_database};

#[tokio::test]
async fn events_reach_exactly_the_rooms_concerned() {
    let app = spawn_app(Backend::Memory).await;
    let (one, two) = (
        app.boardroom("Ada", 4).await,
        app.boardroom("Turing", 4).await,
    );
    let (alice, bob) = (app.token("alice"), app.token("bob"));
    let mut dashboard = Tab::connect(&app, &bob).await.unwrap();
    assert!(dashboard.join("bookings").await.ok);
    let mut calendar_one = Tab::connect(&app, &bob).await.unwrap();
    assert!(calendar_one.join(&format!("boardroom-{one}")).await.ok);
    let mut calendar_two = Tab::connect(&app, &bob).await.unwrap();
    assert!(calendar_two.join(&format!("boardroom-{two}")).await.ok);
    let mut alice_tab = Tab::connect(&app, &alice).await.unwrap();
    assert!(alice_tab.join("user-alice").await.ok);
    let mut bob_tab = Tab::connect(&app, &bob).await.unwrap();
    assert!(bob_tab.join("user-bob").await.ok);
    let mut idle = Tab::connect(&app, &bob).await.unwrap();

    let in_one = app.book(&alice, one, 9).await["id"].as_i64().unwrap();
    assert_eq!(dashboard.next_booking().await, in_one);
    assert_eq!(calendar_one.next_booking().await, in_one);
    assert_eq!(alice_tab.next_booking().await, in_one);

    // Sentinels: each tab's next event must be the sentinel, not the boardroom-1 booking.
    let in_two = app.book(&bob, two, 9).await["id"].as_i64().unwrap();
    assert_eq!(dashboard.next_booking().await, in_two);
    assert_eq!(
        calendar_two.next_booking().await,
        in_two,
        "boardroom-2 never saw boardroom-1"
    );
    assert_eq!(
        bob_tab.next_booking().await,
        in_two,
        "user-bob never saw alice's booking"
    );
    assert!(idle.join("bookings").await.ok);
    let last = app.book(&alice, one, 11).await["id"].as_i64().unwrap();
    assert_eq!(
        idle.next_booking().await,
        last,
        "a tab without rooms received nothing before"
    );
    assert_eq!(
        calendar_one.next_booking().await,
        last,
        "boardroom-1 never saw boardroom-2"
    );
    assert_eq!(alice_tab.next_booking().await, last);
    for tab in [
        dashboard,
        calendar_one,
        calendar_two,
        alice_tab,
        bob_tab,
        idle,
    ] {
        tab.close().await;
    }
}

#[tokio::test]
async fn each_event_type_carries_its_fields_and_a_move_reaches_both_boardrooms() {
    let app = spawn_app(Backend::Memory).await;
    let (one, two) = (
        app.boardroom("Ada", 4).await,
        app.boardroom("Turing", 4).await,
    );
    let alice = app.token("alice");
    let mut room_one = Tab::connect(&app, &alice).await.unwrap();
    let mut room_two = Tab::connect(&app, &alice).await.unwrap();
    let joined = room_one.join(&format!("boardroom-{one}")).await;
    assert!(room_two.join(&format!("boardroom-{two}")).await.ok);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let res = app.book_traced(&alice, one, 9, parent).await;
    let booking: serde_json::Value = res.json().await.unwrap();
    let id = booking["id"].as_i64().unwrap();
    let (kind, created) = room_one.next().await;
    assert_eq!(kind, BookingEventKind::Created);
    assert_eq!(
        created.body.booking, booking,
        "the payload carries the populated booking"
    );
    assert_eq!(created.body.boardroom_id, one);
    assert!(created.seq > joined.watermark.unwrap());
    assert!(!created.event_id.is_empty());
    let now = booking_server::db::now_micros();
    assert!(created.emitted_at <= now && created.emitted_at > now - 60_000_000);
    let traceparent = created.traceparent.clone().unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{traceparent}"
    );
    assert!(created.body.changes.is_none() && created.body.cancelled_by.is_none());
    let by = |id: &str, name: &str| {
        Some(EventActor {
            id: id.into(),
            name: name.into(),
        })
    };
    assert_eq!(created.body.by, by("alice", "alice"), "who made the change");

    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/bookings/{id}"),
            &alice,
            Some(json!({"boardroomId": two, "attendees": ["ada"]})),
        )
        .await;
    assert_eq!(status, 200);
    for tab in [&mut room_one, &mut room_two] {
        let (kind, moved) = tab.next().await;
        assert_eq!(kind, BookingEventKind::Updated);
        assert_eq!(moved.body.boardroom_id, two);
        assert_eq!(moved.body.previous_boardroom_id, Some(one));
        assert_eq!(moved.body.by, by("alice", "alice"));
        let changes = moved.body.changes.unwrap();
        assert!(changes.boardroom_changed && changes.attendees_changed && !changes.time_changed);
        assert!(moved.seq > created.seq);
    }

    app.call(
        "POST",
        &format!("/api/bookings/{id}/cancel"),
        &app.admin,
        None,
    )
    .await;
    let (kind, cancelled) = room_two.next().await;
    assert_eq!(kind, BookingEventKind::Cancelled);
    assert_eq!(cancelled.body.cancelled_by, Some(ActorRole::Admin));
    assert_eq!(cancelled.body.by, by("admin", "Admin"));
    assert_eq!(cancelled.body.booking["status"], "cancelled");

    app.call("DELETE", &format!("/api/bookings/{id}"), &alice, None)
        .await;
    let (kind, deleted) = room_two.next().await;
    assert_eq!(kind, BookingEventKind::Deleted);
    assert_eq!(deleted.body.deleted_by, Some(ActorRole::User));
    assert_eq!(deleted.body.by, by("alice", "alice"));
    assert_eq!(deleted.body.booking["id"], id);
    room_one.close().await;
    room_two.close().await;
}

#[tokio::test]
async fn join_watermark_opens_and_leave_closes_what_a_tab_is_owed() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let name = format!("boardroom-{room}");
    let alice = app.token("alice");
    for hour in 0..3 {
        app.book(&alice, room, hour).await;
    }
    let mut tab = Tab::connect(&app, &alice).await.unwrap();
    let ack = tab.join(&name).await;
    assert_eq!(ack.room.as_deref(), Some(name.as_str()));
    assert_eq!(ack.watermark, Some(3), "the highest committed seq");
    app.book(&alice, room, 5).await;
    let (_, event) = tab.next().await;
    assert_eq!(
        event.seq, 4,
        "first owed event: watermark + 1, nothing older replayed live"
    );
    let left = tab.leave(&name).await;
    assert!(left.ok);
    assert_eq!(
        left.watermark,
        Some(4),
        "events through seq 4 were sent before leaving"
    );
    app.book(&alice, room, 7).await;
    assert!(tab.join("bookings").await.ok);
    app.book(&alice, room, 9).await;
    let (_, event) = tab.next().await;
    assert_eq!(event.seq, 6, "seq 5 went to a room the tab had left");
    let again = tab.leave(&name).await;
    assert!(!again.ok && again.error.unwrap().contains("not in room"));
    tab.close().await;
}

#[tokio::test]
async fn a_tab_replays_what_it_missed_while_disconnected() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let name = format!("boardroom-{room}");
    let alice = app.token("alice");
    let mut tab = Tab::connect(&app, &alice).await.unwrap();
    tab.join(&name).await;
    app.book(&alice, room, 1).await;
    let last_seen = tab.next().await.1.seq;
    tab.close().await;
    let missed: Vec<i64> = [
        app.book(&alice, room, 3).await["id"].as_i64().unwrap(),
        app.book(&alice, room, 5).await["id"].as_i64().unwrap(),
    ]
    .to_vec();
    let mut back = Tab::connect(&app, &alice).await.unwrap();
    let ack = back.join(&name).await;
    let (status, page) = app
        .call(
            "GET",
            &format!("/api/events?after={last_seen}&rooms={name}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let replayed: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["booking"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed, missed, "the gap, in order");
    let last_replayed = page["nextAfter"].as_i64().unwrap();
    assert_eq!(
        last_replayed,
        ack.watermark.unwrap(),
        "replay up to the watermark closes the gap"
    );
    let next = app.book(&alice, room, 7).await["id"].as_i64().unwrap();
    assert_eq!(back.next_booking().await, next);
    back.close().await;
}

#[tokio::test]
async fn handshakes_and_joins_are_refused_with_reasons() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let err = Tab::connect_with(&app, json!({}))
        .await
        .err()
        .expect("no token, no socket");
    assert!(err.0.contains("missing auth"), "{err:?}");
    let err = Tab::connect(&app, "forged")
        .await
        .err()
        .expect("bad token, no socket");
    assert!(err.0.contains("invalid bearer token"), "{err:?}");
    let other = booking_server::auth::mint_with_secret(
        "other",
        "eve",
        booking_server::auth::Role::Admin,
        None,
        60,
    );
    assert!(
        Tab::connect(&app, &other).await.is_err(),
        "token of another secret"
    );

    let tab = Tab::connect(&app, &app.token("alice")).await.unwrap();
    for (room_arg, needle) in [
        (json!("user-bob"), "may not join"),
        (json!("boardroom-999"), "unknown boardroom"),
        (json!("lobby"), "is not a room"),
        (json!(42), "expected a room name"),
        (json!({"room": "boardroom-x"}), "is not a room"),
    ] {
        let ack = tab.join_raw(room_arg.clone()).await;
        assert!(!ack.ok, "{room_arg}");
        let error = ack.error.unwrap();
        assert!(error.contains(needle), "{room_arg}: {error}");
    }
    assert!(
        tab.join_raw(json!({"room": format!("boardroom-{room}")}))
            .await
            .ok
    );
    assert!(tab.join("user-alice").await.ok);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("socketio_connects_refused_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("socketio_room_joins_refused_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("socketio_room_joins_total{room_kind=\"user\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("socketio_sockets_connected 1"),
        "{metrics}"
    );
    tab.close().await;
}

#[tokio::test]
async fn socket_io_origins_outside_the_allowlist_are_refused() {
    let (url, _guard) = temp_database(Backend::Memory).await;
    let mut config = ServerConfig::defaults_for(&url);
    config.cors_origin = vec!["http://allowed.test".into()];
    let app = spawn_with(config).await;
    let poll = app.url("/socket.io/?EIO=4&transport=polling");
    let res = app
        .http
        .get(&poll)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(&poll)
        .header("origin", "http://allowed.test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://allowed.test"
    );
    let res = app.http.get(&poll).send().await.unwrap();
    assert_eq!(res.status(), 200, "no Origin: a non-browser client");
    // The WebSocket upgrade is held to the same list.
    assert_eq!(
        upgrade_status(&app.base, Some("http://evil.test")).await,
        403
    );
    assert_eq!(
        upgrade_status(&app.base, Some("http://allowed.test")).await,
        101
    );
    assert_eq!(upgrade_status(&app.base, None).await, 101);
}

/// The status line of a raw WebSocket upgrade of `/socket.io/`, with this `Origin`.
async fn upgrade_status(base: &str, origin: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).await.unwrap();
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line}"))
}

#[tokio::test]
async fn emission_metrics_count_what_was_sent() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let alice = app.token("alice");
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let tab = Tab::connect(&app, &alice).await.unwrap();
        tab.join("bookings").await;
        tabs.push(tab);
    }
    let id = app.book(&alice, room, 9).await["id"].as_i64().unwrap();
    app.call("POST", &format!("/api/bookings/{id}/cancel"), &alice, None)
        .await;
    for tab in &mut tabs {
        tab.next().await;
        tab.next().await;
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("booking_events_emitted_total{event=\"booking-created\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("booking_events_emitted_total{event=\"booking-cancelled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("booking_emission_latency_seconds_count 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("booking_emission_recipients_sum 6"),
        "3 tabs twice: {metrics}"
    );
    assert!(
        metrics.contains("booking_event_log_last_seq 2"),
        "{metrics}"
    );
    for line in [
        "booking_db_transaction_duration_seconds_count 2",
        "socketio_room_members{size_class=\"small\"} 3",
        "socketio_rooms{size_class=\"small\"} 1",
        &format!(
            "booking_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // The in-memory database's one pooled connection, idle or (when a background task such
    // as the retention prune holds it at the scrape) busy.
    let pool = |state: &str| {
        let prefix = format!("booking_db_pool_connections{{state=\"{state}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str())?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no pool gauge for {state} in {metrics}"))
    };
    assert_eq!(pool("idle") + pool("busy"), 1.0, "{metrics}");
    for tab in tabs {
        tab.close().await;
    }
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_that_socket_only() {
    let app = spawn_app(Backend::Memory).await;
    let alice = app.token("alice");
    let keeper = Tab::connect(&app, &alice).await.unwrap();
    let tab = Tab::connect(&app, &alice).await.unwrap();
    let huge = "x".repeat(100_000);
    let _ = tab.client.emit("join-room", json!(huge)).await;
    let started = std::time::Instant::now();
    loop {
        let metrics = app.metrics().await;
        if metrics.contains("socketio_sockets_connected 1\n") {
            assert!(
                metrics.contains("socketio_disconnects_total{reason="),
                "{metrics}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "socket not closed: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        keeper.join("bookings").await.ok,
        "the other socket is unaffected"
    );
    keeper.close().await;
}

#[tokio::test]
async fn a_socket_is_disconnected_when_its_token_expires() {
    use booking_server::auth::{Claims, Role};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let app = spawn_app(Backend::Memory).await;
    // A token near the end of its leeway: accepted now, refused from the third second on
    // (`exp + leeway + 1`). The margin of two whole seconds lets the connect and the join below
    // finish before it expires even on a loaded CI machine: with one second, a join that crossed
    // the next second boundary was disconnected before its ack.
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: "eve".into(),
        role: Role::User,
        name: None,
        exp: now + 2 - app.state.auth.leeway_secs(),
    };
    let key = EncodingKey::from_secret(b"test-secret-at-least-thirty-two-bytes");
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    let mut expiring = Tab::connect(&app, &token).await.expect("within its leeway");
    assert!(expiring.join("user-eve").await.ok);
    let staying = Tab::connect(&app, &app.token("fred")).await.unwrap();

    let notice = expiring.next_expired().await;
    assert_eq!(notice.expired_at, claims.exp);
    testkit::wait_until(
        "the expired socket is gone",
        Duration::from_secs(5),
        || async { app.state.realtime.io.sockets().len() == 1 },
    )
    .await;
    assert!(
        app.metrics()
            .await
            .contains("socketio_sessions_expired_total 1")
    );
    let again = Tab::connect(&app, &token).await;
    assert!(again.is_err(), "the expired token cannot reconnect");
    assert!(
        staying.join("bookings").await.ok,
        "other sockets are untouched"
    );
    staying.close().await;
}

/// Engine.IO long-polling by hand: open a session, post packets, read what comes back.
pub(crate) struct Polling<'a> {
    app: &'a crate::support::TestApp,
    url: String,
}

impl<'a> Polling<'a> {
    pub(crate) async fn open(app: &'a crate::support::TestApp) -> Polling<'a> {
        let base = app.url("/socket.io/?EIO=4&transport=polling");
        let open = app
            .http
            .get(&base)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let handshake: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
        let sid = handshake["sid"].as_str().unwrap();
        Polling {
            app,
            url: format!("{base}&sid={sid}"),
        }
    }

    /// The session's id.
    pub(crate) fn sid(&self) -> &str {
        self.url.rsplit_once("sid=").map_or("", |(_, sid)| sid)
    }

    /// A session connected with `token` and in `room`: the session, and the join's ack.
    pub(crate) async fn joined(
        app: &'a crate::support::TestApp,
        token: &str,
        room: &str,
    ) -> (Polling<'a>, Vec<String>) {
        let session = Polling::open(app).await;
        session
            .post(&[format!("40{{\"token\":\"{token}\"}}")])
            .await;
        session.poll_for("40").await;
        session
            .post(&[format!("420[\"join-room\",\"{room}\"]")])
            .await;
        let (_, ack) = session.poll_for("430").await;
        (session, ack)
    }

    /// Posts packets (joined with the record separator); the status.
    pub(crate) async fn post(&self, packets: &[String]) -> u16 {
        let body = packets.join("\u{1e}");
        let res = self.app.http.post(&self.url).body(body).send().await;
        res.map_or(0, |r| r.status().as_u16())
    }

    /// Polls (at most 3 times, pings skipped) until a packet starts with `prefix`: the last
    /// status and every packet seen.
    pub(crate) async fn poll_for(&self, prefix: &str) -> (u16, Vec<String>) {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (status, packets) = self.poll().await;
            seen.extend(packets);
            if status != 200 || seen.iter().any(|p| p.starts_with(prefix)) {
                return (status, seen);
            }
        }
        (200, seen)
    }

    /// One poll: the status and the packets the server had for this session.
    pub(crate) async fn poll(&self) -> (u16, Vec<String>) {
        self.poll_within(Duration::from_secs(5))
            .await
            .expect("a poll answered in time")
    }

    /// One poll, if the server answers within `within` (it holds a poll open while it has
    /// nothing to send).
    pub(crate) async fn poll_within(&self, within: Duration) -> Option<(u16, Vec<String>)> {
        let res = self.app.http.get(&self.url).timeout(within).send().await;
        let res = res.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((status, text.split('\u{1e}').map(str::to_string).collect()))
    }
}

/// A client that stops reading fills its socket's queue, and the deliveries past it are
/// skipped. None is lost: the socket is sent `resync` from just before the first it missed, as
/// soon as its queue takes one, and a replay from there finds every event it did not get.
#[tokio::test]
async fn a_socket_whose_queue_filled_is_told_to_resync_and_loses_nothing() {
    const QUEUE: usize = 16;
    const BOOKINGS: u32 = 60;
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.socket_queue_size = QUEUE;
    let app = spawn_with(config).await;
    let room = app.boardroom("Slow reader", 4).await;
    let token = app.token("slow");
    let (slow, ack) = Polling::joined(&app, &token, &format!("boardroom-{room}")).await;
    assert!(
        ack.iter().any(|p| p.starts_with("430[{\"ok\":true")),
        "{ack:?}"
    );

    // The client stops reading while the bookings are made.
    let mut committed = Vec::new();
    for hour in 0..BOOKINGS {
        let res = app
            .http
            .post(app.url("/api/bookings"))
            .bearer_auth(&app.admin)
            .json(&booking_body(room, hour, 1))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let seq: i64 = res.headers()["event-seq"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        committed.push(seq);
    }
    let skips = metric(&app.metrics().await, "socketio_queue_full_skips_total");
    assert!(skips >= 1.0, "the queue filled: {skips} skips");

    // It reads again: events, then the resync.
    let mut live = std::collections::BTreeSet::new();
    let mut resync: Option<serde_json::Value> = None;
    for _ in 0..40 {
        let Some((status, packets)) = slow.poll_within(Duration::from_millis(500)).await else {
            if resync.is_some() {
                break;
            }
            continue;
        };
        assert_eq!(status, 200, "the session is still open");
        for packet in packets {
            let Some(body) = packet.strip_prefix("42") else {
                continue;
            };
            let [name, data]: [serde_json::Value; 2] = serde_json::from_str(body).unwrap();
            match name.as_str() {
                Some("booking-created") => {
                    live.insert(data["seq"].as_i64().unwrap());
                }
                Some("resync") => resync = Some(data),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
    let resync = resync.expect("a resync after the queue drained");
    assert_eq!(resync["reason"], "queue-full");
    let after = resync["after"].as_i64().unwrap();
    let missed: Vec<i64> = committed
        .iter()
        .copied()
        .filter(|s| !live.contains(s))
        .collect();
    assert!(!missed.is_empty(), "the client missed deliveries");
    assert!(
        missed.iter().all(|s| *s > after),
        "the resync reaches back before every missed event: after {after}, missed {missed:?}"
    );
    let (status, page) = app
        .call(
            "GET",
            &format!("/api/events?after={after}&rooms=boardroom-{room}&limit=500"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["hasMore"], false, "one page holds the replay");
    let replayed: std::collections::BTreeSet<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payload"]["seq"].as_i64().unwrap())
        .collect();
    let lost: Vec<i64> = missed
        .iter()
        .copied()
        .filter(|s| !replayed.contains(s))
        .collect();
    assert!(lost.is_empty(), "lost after the replay: {lost:?}");
    let resyncs = metric(
        &app.metrics().await,
        "socketio_resyncs_total{reason=\"queue-full\"}",
    );
    assert_eq!(resyncs, 1.0, "one resync for the one stuck socket");
    eprintln!(
        "queue {QUEUE}: {} committed, {} delivered live, {} skipped, resync after {after}, {} replayed",
        committed.len(),
        live.len(),
        missed.len(),
        replayed.len()
    );
}

/// The events (name, payload) in `packets`, in order.
pub(crate) fn events_in(packets: &[String]) -> Vec<(String, serde_json::Value)> {
    packets
        .iter()
        .filter_map(|p| p.strip_prefix("42"))
        .map(|body| {
            let [name, data]: [serde_json::Value; 2] = serde_json::from_str(body).unwrap();
            (name.as_str().unwrap().to_string(), data)
        })
        .collect()
}

/// A socket that missed a delivery for a full queue is handed no later event before its
/// resync: a client that replays from the highest `seq` it saw (as the web app does after a
/// reconnect), or whose socket closes before the resync comes, still replays the gap. Here the
/// client reads again and new bookings come at once, before the retry tick: the resync must
/// come first, and no event past its `after` before it.
#[tokio::test]
async fn a_socket_that_missed_a_delivery_gets_its_resync_before_any_later_event() {
    const QUEUE: usize = 16;
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.socket_queue_size = QUEUE;
    let app = spawn_with(config).await;
    let room = app.boardroom("Gap first", 4).await;
    let token = app.token("slow");
    let (slow, _) = Polling::joined(&app, &token, &format!("boardroom-{room}")).await;
    for hour in 0..(2 * QUEUE as u32) {
        app.book(&app.admin, room, hour).await;
    }
    assert!(metric(&app.metrics().await, "socketio_queue_full_skips_total") >= 1.0);

    // It reads what its queue holds; three more bookings follow at once.
    let (status, drained) = slow.poll().await;
    assert_eq!(status, 200);
    for hour in 100..103 {
        app.book(&app.admin, room, hour).await;
    }
    let mut seen = events_in(&drained);
    for _ in 0..20 {
        match slow.poll_within(Duration::from_millis(500)).await {
            Some((200, packets)) => seen.extend(events_in(&packets)),
            Some((status, _)) => panic!("the session closed: {status}"),
            None if seen.iter().any(|(n, _)| n == "resync") => break,
            None => {}
        }
    }
    let at = seen
        .iter()
        .position(|(name, _)| name == "resync")
        .unwrap_or_else(|| panic!("no resync in {seen:?}"));
    let after = seen[at].1["after"].as_i64().unwrap();
    let before: Vec<i64> = seen[..at]
        .iter()
        .map(|(_, data)| data["seq"].as_i64().unwrap())
        .collect();
    assert!(
        before.iter().all(|seq| *seq <= after),
        "events past the gap (after {after}) reached the socket before its resync: {before:?}"
    );
    let later = seen[at + 1..]
        .iter()
        .filter(|(name, _)| name == "booking-created")
        .count();
    assert_eq!(
        later, 3,
        "the three bookings made after it read again follow the resync"
    );
}

#[tokio::test]
async fn a_polling_post_refused_before_its_body_ended_announces_the_connection_closed() {
    // A POST refused before the server read its whole body leaves the connection unusable,
    // and hyper drops it silently: a client pools it and its next request, maybe another
    // session's, fails with a reset (seen in the hostile suite). The answer must say
    // `connection: close`. Two ways: a body past the cap, and a bad first packet whose rest
    // has not arrived yet.
    let app = spawn_app(Backend::Memory).await;
    let oversized = vec![b'4'; 1024 * 1024];
    let head = post_head(&app, &oversized, None).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let bad_then_more = b"7\x1e42[\"join-room\",\"bookings\"]".to_vec();
    let head = post_head(&app, &bad_then_more, Some(10_000)).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    // A body read to its end keeps the connection.
    let head = post_head(&app, b"3\x1e3", None).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}

/// Posts `body` to a new polling session over a raw connection, announcing `length` bytes
/// (`body`'s own length if none; the rest is never sent); the answer's head, lowercased.
async fn post_head(app: &crate::support::TestApp, body: &[u8], length: Option<usize>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let session = Polling::open(app).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let path = session.url.trim_start_matches(&app.base).to_string();
    let (mut read, mut write) = tokio::net::TcpStream::connect(&addr)
        .await
        .unwrap()
        .into_split();
    let len = length.unwrap_or(body.len());
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(body);
    let writer = tokio::spawn(async move {
        // The server stops reading part way: a failed write is expected.
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read_head)
        .await
        .expect("an answer in time");
    drop(writer);
    String::from_utf8_lossy(&answer).to_lowercase()
}

/// A binary event announcing `n` attachments, then the attachments (base64 in polling).
fn binary_flood(n: usize) -> Vec<String> {
    let placeholders: Vec<String> = (0..n)
        .map(|i| format!("{{\"_placeholder\":true,\"num\":{i}}}"))
        .collect();
    let mut packets = vec![format!("45{n}-[\"x\",[{}]]", placeholders.join(","))];
    packets.extend((0..n).map(|_| "bAAAA".to_string()));
    packets
}

#[tokio::test]
async fn a_flood_of_binary_attachments_closes_the_session() {
    let app = spawn_app(Backend::Memory).await;
    let token = app.token("mallory");
    // A well-behaved session first: connect, join, and the ack comes back.
    let fine = Polling::open(&app).await;
    assert_eq!(
        fine.post(&[format!("40{{\"token\":\"{token}\"}}")]).await,
        200
    );
    let (status, connected) = fine.poll_for("40").await;
    assert!(
        status == 200 && connected.iter().any(|p| p.starts_with("40")),
        "{connected:?}"
    );
    assert_eq!(
        fine.post(&["420[\"join-room\",\"bookings\"]".into()]).await,
        200
    );
    let (_, ack) = fine.poll_for("430").await;
    assert!(
        ack.iter().any(|p| p.starts_with("430[{\"ok\":true")),
        "{ack:?}"
    );

    // (Before auth, any binary packet already ends the session without a CONNECT: tried with 2
    // attachments and with 100, so that case shows nothing about the limit and is left out.)

    // Within the limit, attachments are fine.
    let small = Polling::open(&app).await;
    small.post(&[format!("40{{\"token\":\"{token}\"}}")]).await;
    small.poll_for("40").await;
    small.post(&binary_flood(2)).await;
    small
        .post(&["421[\"join-room\",\"bookings\"]".into()])
        .await;
    let (_, answer) = small.poll_for("431").await;
    assert!(answer.iter().any(|p| p.starts_with("431[")), "{answer:?}");

    // After auth, past the limit.
    let after = Polling::open(&app).await;
    after.post(&[format!("40{{\"token\":\"{token}\"}}")]).await;
    after.poll_for("40").await;
    after.post(&binary_flood(100)).await;
    after
        .post(&["421[\"join-room\",\"bookings\"]".into()])
        .await;
    let (status, answer) = after.poll_for("431").await;
    assert!(
        status != 200 || !answer.iter().any(|p| p.starts_with("431[")),
        "the session was closed, no ack: {status} {answer:?}"
    );
}

/// Each limit has a flag, a clear refusal and a metric: connections per server, rooms per
/// socket, joins per socket per second.
#[tokio::test]
async fn connections_rooms_and_join_rates_are_limited_with_clear_answers() {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.max_connections = 2;
    config.max_rooms_per_socket = 3;
    config.max_joins_per_second = 5;
    let app = spawn_with(config).await;
    let rooms = [app.boardroom("One", 4).await, app.boardroom("Two", 4).await];
    let limit_hits = |metrics: &str, limit: &str| {
        metric(
            metrics,
            &format!("socketio_limits_hit_total{{limit=\"{limit}\"}}"),
        )
    };

    // Connections: the third is refused while two are open; a place frees when one leaves.
    let first = Tab::connect(&app, &app.token("ann")).await.unwrap();
    let second = Tab::connect(&app, &app.token("bob")).await.unwrap();
    let refused = Tab::connect(&app, &app.token("cat"))
        .await
        .err()
        .expect("a third connection is refused");
    assert!(refused.0.contains("server full"), "{refused:?}");
    first.close().await;
    let started = std::time::Instant::now();
    while metric(&app.metrics().await, "socketio_sockets_connected") > 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the first socket's disconnect was never seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let third = Tab::connect(&app, &app.token("cat"))
        .await
        .expect("the closed socket's place came free");

    // Rooms: three at most; joining one it is already in is fine, a fourth is refused.
    for room in [
        "bookings".to_string(),
        "user-bob".to_string(),
        format!("boardroom-{}", rooms[0]),
    ] {
        assert!(second.join(&room).await.ok, "{room}");
    }
    assert!(second.join("bookings").await.ok, "already in it");
    let over = second.join(&format!("boardroom-{}", rooms[1])).await;
    assert!(!over.ok);
    assert!(
        over.error.as_deref().unwrap().contains("at most 3 rooms"),
        "{over:?}"
    );
    assert!(second.leave("bookings").await.ok);
    // That socket made five joins: wait for the next one its rate allows.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        second.join(&format!("boardroom-{}", rooms[1])).await.ok,
        "a room freed by a leave can be taken"
    );

    // Joins: five at once, then refused with the wait, then admitted after it.
    for _ in 0..5 {
        assert!(third.join("bookings").await.ok);
    }
    let fast = third.join("bookings").await;
    assert!(!fast.ok);
    assert!(
        fast.error
            .as_deref()
            .unwrap()
            .contains("at most 5 a second"),
        "{fast:?}"
    );
    let wait = fast.retry_after_ms.expect("the refusal says when to retry");
    assert!((1..=200).contains(&wait), "{wait} ms");
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert!(third.join("bookings").await.ok, "admitted after the wait");

    let metrics = app.metrics().await;
    assert_eq!(limit_hits(&metrics, "connections"), 1.0);
    assert_eq!(limit_hits(&metrics, "rooms-per-socket"), 1.0);
    assert_eq!(limit_hits(&metrics, "joins-per-second"), 1.0);
    second.close().await;
    third.close().await;
}

/// One user's token cannot take the server: it holds at most `--max-sockets-per-user` sockets
/// (the next handshake is refused until one closes) and makes at most `--max-writes-per-user`
/// writes a second (then 429 `too_many_requests` with `Retry-After` and `retryAfterMs`); other
/// users and admins are not held by it. Before, neither was limited.
#[tokio::test]
async fn one_users_sockets_and_writes_are_limited_and_others_are_not_held_by_them() {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.max_sockets_per_user = 2;
    config.max_writes_per_user = 3;
    let app = spawn_with(config).await;
    let room = app.boardroom("Limited", 4).await;
    let ann = app.token("ann");

    let first = Tab::connect(&app, &ann).await.unwrap();
    let second = Tab::connect(&app, &ann).await.unwrap();
    let refused = Tab::connect(&app, &ann)
        .await
        .err()
        .expect("ann's third socket is refused");
    assert!(
        refused
            .0
            .contains("too many connections for this user: at most 2"),
        "{refused:?}"
    );
    let bob = Tab::connect(&app, &app.token("bob"))
        .await
        .expect("bob is not held by ann");
    let admins: Vec<Tab> =
        futures_util::future::join_all((0..3).map(|_| Tab::connect(&app, &app.admin)))
            .await
            .into_iter()
            .map(|t| t.expect("admins are not held to it"))
            .collect();
    first.close().await;
    testkit::wait_until(
        "ann's closed socket gives its place back",
        Duration::from_secs(5),
        || async {
            Tab::connect(&app, &ann)
                .await
                .map(|t| tokio::spawn(t.close()))
                .is_ok()
        },
    )
    .await;

    let post = |token: &str, hour: u32| {
        app.http
            .post(app.url("/api/bookings"))
            .bearer_auth(token)
            .json(&booking_body(room, hour, 1))
            .send()
    };
    for hour in 0..3 {
        assert_eq!(post(&ann, hour).await.unwrap().status(), 201);
    }
    let over = post(&ann, 3).await.unwrap();
    assert_eq!(over.status(), 429);
    let retry_after: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1, "whole seconds, rounded up");
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    let wait = body["error"]["retryAfterMs"].as_u64().unwrap();
    assert!((1..=334).contains(&wait), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 a second")
    );
    // Reads are not writes; another user and an admin still write.
    let (status, _) = app.call("GET", "/api/bookings", &ann, None).await;
    assert_eq!(status, 200);
    assert_eq!(post(&app.token("bob"), 4).await.unwrap().status(), 201);
    for hour in 5..10 {
        assert_eq!(post(&app.admin, hour).await.unwrap().status(), 201);
    }
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(
        post(&ann, 3).await.unwrap().status(),
        201,
        "admitted after the wait"
    );

    let metrics = app.metrics().await;
    let hits = |limit: &str| {
        metric(
            &metrics,
            &format!("socketio_limits_hit_total{{limit=\"{limit}\"}}"),
        )
    };
    assert!(hits("sockets-per-user") >= 1.0);
    assert_eq!(hits("writes-per-user"), 1.0);
    for tab in [second, bob].into_iter().chain(admins) {
        tab.close().await;
    }
}

/// An event in the log that this server never handed out (what a COMMIT whose reply was lost,
/// or a server killed between its commit and its publish, leaves behind; here a row written to
/// the log directly) is found within a few seconds: counted in
/// `booking_events_unannounced_total`, and the sockets are sent `resync` (`unannounced`) from
/// just before it. Events that were emitted are not flagged. Before, nothing noticed.
#[tokio::test]
async fn a_committed_event_never_announced_ends_in_a_resync() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Quiet", 4).await;
    let mut tab = Tab::connect(&app, &app.token("ann")).await.unwrap();
    assert!(tab.join("bookings").await.ok);
    app.book(&app.admin, room, 9).await;
    tab.next().await;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO events (event_id, name, booking_id, body, created_us, node) \
         VALUES ('never-announced', 'booking-created', 0, '{}', 1, $1) RETURNING seq",
    )
    .bind(app.state.realtime.node())
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    let resync = tokio::time::timeout(Duration::from_secs(12), tab.next_resync())
        .await
        .expect("a resync within the grace and a look");
    assert_eq!(resync.reason, "unannounced", "{resync:?}");
    assert_eq!(resync.after, seq - 1, "{resync:?}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric(&metrics, "booking_events_unannounced_total"),
        1.0,
        "the emitted one is not"
    );
    assert_eq!(
        metric(&metrics, r#"socketio_resyncs_total{reason="unannounced"}"#),
        1.0
    );
    tab.close().await;
}

/// SIGTERM while a write is running: the server takes no new connection, the write commits and
/// its event reaches the sockets still open, and only then are the sockets closed.
#[tokio::test]
async fn shutdown_lets_in_flight_writes_emit_before_closing_the_sockets() {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    // Each emission waits this long first: the write is in flight when shutdown begins.
    config.inject_faults = Some("delay=800ms".parse().unwrap());
    config.shutdown_timeout = Duration::from_secs(5);
    let mut app = spawn_with(config).await;
    let room = app.boardroom("Closing time", 4).await;
    let token = app.token("late");
    let mut tab = Tab::connect(&app, &token).await.unwrap();
    assert!(tab.join(&format!("boardroom-{room}")).await.ok);

    let write = {
        let (http, url, admin) = (
            app.http.clone(),
            app.url("/api/bookings"),
            app.admin.clone(),
        );
        tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(admin)
                .json(&booking_body(room, 9, 1))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap();
            (status, body["id"].as_i64())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = reqwest::Client::new()
        .get(app.url("/health"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(
        fresh.is_err(),
        "no new connection during shutdown: {fresh:?}"
    );

    let (status, id) = write.await.unwrap();
    assert_eq!(status, 201, "the write in flight finished");
    let (kind, payload) = tab.next().await;
    assert_eq!(kind.name(), "booking-created");
    assert_eq!(
        payload.body.booking["id"].as_i64(),
        id,
        "its event reached the open socket"
    );
}

/// An Engine.IO session that never sends its Socket.IO CONNECT (with the token) is closed after
/// `--handshake-timeout`; one that sends it in time is served.
#[tokio::test]
async fn a_session_that_never_connects_is_closed_after_the_handshake_timeout() {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.handshake_timeout = Duration::from_millis(500);
    let app = spawn_with(config).await;
    let idle = Polling::open(&app).await;
    let fine = Polling::open(&app).await;
    let token = app.token("prompt");
    assert_eq!(
        fine.post(&[format!("40{{\"token\":\"{token}\"}}")]).await,
        200
    );
    let (_, connected) = fine.poll_for("40").await;
    assert!(
        connected.iter().any(|p| p.starts_with("40")),
        "{connected:?}"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, packets) = idle
        .poll_within(Duration::from_secs(3))
        .await
        .expect("a closed session is answered at once, not held open");
    assert!(
        status == 400 || packets.iter().any(|p| p == "1"),
        "the idle session is gone: {status} {packets:?}"
    );
    assert_eq!(
        fine.post(&["420[\"join-room\",\"bookings\"]".into()]).await,
        200,
        "the connected session outlives the timeout"
    );
    let (_, ack) = fine.poll_for("430").await;
    assert!(
        ack.iter().any(|p| p.starts_with("430[{\"ok\":true")),
        "{ack:?}"
    );
}
