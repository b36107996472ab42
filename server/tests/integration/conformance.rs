//! `booking-server conformance` against the cases of the Socket.IO protocol test-suite
//! (`socketio/socket.io-protocol`, `test-suite/`): the same requests and frames, the same
//! expected answers, on this server's own listener, limits and middlewares. Engine.IO first
//! (handshake, heartbeat, close, upgrade over both transports), then Socket.IO (connect,
//! disconnect, messages with and without acks and binary attachments, malformed packets).
//! Every wait is bounded.

use std::time::Duration;

use booking_server::ServerConfig;
use booking_server::realtime::conformance::{self, MAX_PAYLOAD, PING_INTERVAL, PING_TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{TestApp, metric, spawn_with};

/// The most one read may wait for on a responsive server.
const STEP: Duration = Duration::from_secs(5);

async fn conformance_app(tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    conformance::profile(&mut config);
    tweak(&mut config);
    spawn_with(config).await
}

/// What one read off a WebSocket gave.
#[derive(Debug, PartialEq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, the end of the stream or a reset.
    Closed,
}

struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    async fn open(app: &TestApp, query: &str) -> Ws {
        let url = format!("{}/socket.io/?{query}", app.base.replace("http", "ws"));
        let (ws, _) = timeout(STEP, tokio_tungstenite::connect_async(&url))
            .await
            .expect("upgrade in time")
            .expect("upgrade accepted");
        Ws(ws)
    }

    /// A WebSocket session past its Engine.IO handshake; returns it with the handshake.
    async fn engine(app: &TestApp) -> (Ws, Value) {
        let mut ws = Ws::open(app, "EIO=4&transport=websocket").await;
        let open = ws.text().await;
        let handshake = open.strip_prefix('0').expect("an OPEN packet");
        (ws, serde_json::from_str(handshake).expect("JSON handshake"))
    }

    /// A session connected to the main namespace, its CONNECT and `auth` packets read.
    async fn socketio(app: &TestApp) -> Ws {
        let (mut ws, _) = Ws::engine(app).await;
        ws.send("40").await;
        let Frame::Text(connect) = ws.packet().await else {
            panic!("no CONNECT answer");
        };
        check_connect(&connect, "40");
        assert_eq!(ws.packet().await, Frame::Text(r#"42["auth",{}]"#.into()));
        ws
    }

    async fn send(&mut self, text: &str) {
        self.0.send(Message::text(text)).await.expect("sent");
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        self.0
            .send(Message::binary(bytes.to_vec()))
            .await
            .expect("sent");
    }

    async fn next(&mut self) -> Frame {
        loop {
            match timeout(STEP, self.0.next()).await.expect("a frame in time") {
                Some(Ok(Message::Text(t))) => return Frame::Text(t.to_string()),
                Some(Ok(Message::Binary(b))) => return Frame::Binary(b.to_vec()),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Frame::Closed,
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn text(&mut self) -> String {
        match self.next().await {
            Frame::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame that is not a ping; pings on the way are answered (the server waits
    /// only 200 ms for a pong).
    async fn packet(&mut self) -> Frame {
        loop {
            match self.next().await {
                Frame::Text(t) if t == "2" => self.send("3").await,
                other => return other,
            }
        }
    }

    /// The next text packet that is not a ping (answered on the way).
    async fn reply(&mut self) -> String {
        match self.packet().await {
            Frame::Text(t) => t,
            other => panic!("expected a text packet, got {other:?}"),
        }
    }

    /// True when the server closes the session within `within`, whatever it sends first.
    async fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.0.next()).await {
                Err(_) => return false,
                Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

fn polling(app: &TestApp, query: &str) -> String {
    app.url(&format!("/socket.io/?{query}"))
}

/// Opens a long-polling session; returns its sid.
async fn polling_session(app: &TestApp) -> String {
    crate::realtime::Polling::open(app).await.sid().to_string()
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

/// The handshake has exactly the keys and values the suite checks.
fn check_handshake(handshake: &Value, upgrades: Value) {
    let mut keys: Vec<&str> = handshake
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(handshake["sid"].is_string());
    assert_eq!(handshake["upgrades"], upgrades);
    assert_eq!(handshake["pingInterval"], PING_INTERVAL.as_millis() as u64);
    assert_eq!(handshake["pingTimeout"], PING_TIMEOUT.as_millis() as u64);
    assert_eq!(handshake["maxPayload"], MAX_PAYLOAD);
    assert_eq!(
        (PING_INTERVAL.as_millis(), PING_TIMEOUT.as_millis()),
        (300, 200)
    );
    assert_eq!(MAX_PAYLOAD, 1_000_000);
}

/// The namespace's CONNECT answer carries only the socket's sid.
fn check_connect(packet: &str, prefix: &str) {
    let body = packet
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{packet}` should start with `{prefix}`"));
    let handshake: Value = serde_json::from_str(body).expect("JSON");
    let keys: Vec<&String> = handshake.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["sid"]);
    assert!(handshake["sid"].is_string());
}

#[tokio::test]
async fn engine_io_handshake_over_both_transports_and_bad_requests() {
    let app = conformance_app(|_| {}).await;
    let res = app
        .http
        .get(polling(&app, "EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.starts_with('0'), "{body}");
    check_handshake(
        &serde_json::from_str(&body[1..]).unwrap(),
        serde_json::json!(["websocket"]),
    );
    let (_ws, handshake) = Ws::engine(&app).await;
    check_handshake(&handshake, serde_json::json!([]));

    for query in [
        "transport=polling",
        "EIO=abc&transport=polling",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        let status = status_of(app.http.get(polling(&app, query))).await;
        assert_eq!(status, 400, "GET ?{query}");
    }
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let status = status_of(
            app.http
                .request(method.clone(), polling(&app, "EIO=4&transport=polling")),
        )
        .await;
        assert_eq!(status, 400, "{method} without a session");
    }
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        let url = format!("{}/socket.io/?{query}", app.base.replace("http", "ws"));
        let upgrade = timeout(STEP, tokio_tungstenite::connect_async(&url))
            .await
            .expect("answered in time");
        assert!(upgrade.is_err(), "the upgrade with ?{query} is refused");
    }
}

#[tokio::test]
async fn engine_io_heartbeat_and_ping_timeout_over_both_transports() {
    let app = conformance_app(|_| {}).await;
    let sid = polling_session(&app).await;
    let session = polling(&app, &format!("EIO=4&transport=polling&sid={sid}"));
    for _ in 0..3 {
        let res = timeout(STEP, app.http.get(&session).send())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "2");
        assert_eq!(status_of(app.http.post(&session).body("3")).await, 200);
    }

    let sid = polling_session(&app).await;
    // The suite waits exactly this long; a margin keeps a busy machine from racing the close.
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(150)).await;
    let session = polling(&app, &format!("EIO=4&transport=polling&sid={sid}"));
    assert_eq!(
        status_of(app.http.get(&session)).await,
        400,
        "a session that never answered a ping is gone"
    );

    let (mut ws, _) = Ws::engine(&app).await;
    for _ in 0..3 {
        assert_eq!(ws.text().await, "2");
        ws.send("3").await;
    }
    let (mut silent, _) = Ws::engine(&app).await;
    assert!(
        silent.closes_within(Duration::from_secs(2)).await,
        "a WebSocket session that never answers a ping is closed"
    );
}

/// A known deviation, socketioxide's: its Engine.IO layer (engineioxide 0.17.9) sends the first
/// ping as the session opens, where the protocol and the suite expect it a `pingInterval`
/// later (its heartbeat's first `interval.tick()` completes at once). The suite does not
/// answer pings in its Socket.IO cases, so 4 to 8 of its 32 cases fail on it, run to run;
/// with that one line changed in a local build of engineioxide, all 32 pass. This test pins the
/// deviation: once a socketioxide release fixes it, it fails, and the pongs these tests send
/// early (and the note in the README) can go.
#[tokio::test]
async fn known_deviation_the_first_ping_comes_as_the_session_opens() {
    let app = conformance_app(|_| {}).await;
    let (mut ws, _) = Ws::engine(&app).await;
    let opened = tokio::time::Instant::now();
    assert_eq!(ws.text().await, "2");
    assert!(
        opened.elapsed() < PING_INTERVAL / 2,
        "the first ping came {:?} after the open: the deviation is gone",
        opened.elapsed()
    );
    let sid = polling_session(&app).await;
    let session = polling(&app, &format!("EIO=4&transport=polling&sid={sid}"));
    let started = tokio::time::Instant::now();
    let first = app.http.get(&session).send().await.unwrap();
    assert_eq!(first.text().await.unwrap(), "2");
    assert!(started.elapsed() < PING_INTERVAL / 2);
}

#[tokio::test]
async fn engine_io_close_over_both_transports() {
    let app = conformance_app(|_| {}).await;
    let sid = polling_session(&app).await;
    let session = polling(&app, &format!("EIO=4&transport=polling&sid={sid}"));
    // The first ping is already waiting (see the known deviation above): taken and answered,
    // so that the poll below waits as the suite's does.
    assert_eq!(
        app.http
            .get(&session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2"
    );
    assert_eq!(status_of(app.http.post(&session).body("3")).await, 200);
    let (poll, close) = tokio::join!(
        app.http.get(&session).send(),
        app.http.post(&session).body("1").send()
    );
    let poll = poll.unwrap();
    assert_eq!(poll.status(), 200);
    assert_eq!(close.unwrap().status(), 200);
    assert_eq!(
        poll.text().await.unwrap(),
        "6",
        "the waiting poll gets NOOP"
    );
    assert_eq!(status_of(app.http.get(&session)).await, 400);

    let (mut ws, _) = Ws::engine(&app).await;
    ws.send("1").await;
    assert!(ws.closes_within(STEP).await, "CLOSE ends the WebSocket");
}

#[tokio::test]
async fn engine_io_upgrade_from_polling_then_the_old_ways_in_are_refused() {
    let app = conformance_app(|_| {}).await;
    let sid = polling_session(&app).await;
    let mut ws = Ws::open(&app, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send("2probe").await;
    assert_eq!(ws.text().await, "3probe");
    ws.send("5").await;
    assert_eq!(
        ws.text().await,
        "2",
        "once upgraded, the pings come over the WebSocket"
    );

    let sid = polling_session(&app).await;
    let mut ws = Ws::open(&app, &format!("EIO=4&transport=websocket&sid={sid}")).await;
    ws.send("2probe").await;
    ws.send("5").await;
    assert_eq!(ws.text().await, "3probe");
    let session = polling(&app, &format!("EIO=4&transport=polling&sid={sid}"));
    assert_eq!(
        status_of(app.http.get(&session)).await,
        400,
        "polling with an upgraded sid"
    );
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        app.base.replace("http", "ws")
    );
    match timeout(STEP, tokio_tungstenite::connect_async(&url))
        .await
        .expect("answered in time")
    {
        Err(_) => {}
        Ok((second, _)) => assert!(
            Ws(second).closes_within(STEP).await,
            "a second WebSocket with an upgraded sid is closed"
        ),
    }
}

#[tokio::test]
async fn socket_io_connect_to_known_namespaces_with_and_without_a_payload() {
    let app = conformance_app(|_| {}).await;
    for (connect, prefix, auth) in [
        ("40", "40", r#"42["auth",{}]"#),
        (
            r#"40{"token":"123"}"#,
            "40",
            r#"42["auth",{"token":"123"}]"#,
        ),
        ("40/custom,", "40/custom,", r#"42/custom,["auth",{}]"#),
        (
            r#"40/custom,{"token":"abc"}"#,
            "40/custom,",
            r#"42/custom,["auth",{"token":"abc"}]"#,
        ),
    ] {
        let (mut ws, _) = Ws::engine(&app).await;
        ws.send(connect).await;
        check_connect(&ws.reply().await, prefix);
        assert_eq!(ws.reply().await, auth, "after {connect}");
    }
}

#[tokio::test]
async fn socket_io_unknown_namespace_bad_handshake_and_no_handshake() {
    let app = conformance_app(|_| {}).await;
    let (mut ws, _) = Ws::engine(&app).await;
    ws.send("40/random").await;
    assert_eq!(
        ws.reply().await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );

    let (mut ws, _) = Ws::engine(&app).await;
    ws.send("4abc").await;
    assert!(ws.closes_within(STEP).await, "an invalid CONNECT closes");

    let (mut ws, _) = Ws::engine(&app).await;
    // Pings are answered: only the missing CONNECT may close it, within the suite's 2 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let closed = loop {
        match tokio::time::timeout_at(deadline, ws.0.next()).await {
            Err(_) => break false,
            Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2" => ws.send("3").await,
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => break true,
            Ok(Some(Ok(_))) => {}
        }
    };
    assert!(closed, "a session with no CONNECT is closed within 2 s");
}

#[tokio::test]
async fn socket_io_disconnect_from_main_and_from_a_custom_namespace() {
    let app = conformance_app(|_| {}).await;
    let mut ws = Ws::socketio(&app).await;
    ws.send("41").await;
    assert_eq!(
        ws.next().await,
        Frame::Text("2".into()),
        "the Engine.IO session outlives its namespace: a ping and nothing else"
    );

    let mut ws = Ws::socketio(&app).await;
    assert_eq!(ws.text().await, "2");
    ws.send("3").await;
    ws.send("40/custom").await;
    check_connect(&ws.reply().await, "40/custom,");
    assert_eq!(ws.reply().await, r#"42/custom,["auth",{}]"#);
    ws.send("41/custom").await;
    ws.send(r#"42["message","message to main namespace"]"#)
        .await;
    assert_eq!(
        ws.packet().await,
        Frame::Text(r#"42["message-back","message to main namespace"]"#.into())
    );
}

#[tokio::test]
async fn socket_io_messages_and_acks_with_and_without_binary_attachments() {
    let app = conformance_app(|_| {}).await;
    let mut ws = Ws::socketio(&app).await;
    ws.send(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        ws.packet().await,
        Frame::Text(r#"42["message-back",1,"2",{"3":[true]}]"#.into())
    );

    binary_round_trip(
        &mut ws,
        r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;

    ws.send(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#)
        .await;
    assert_eq!(
        ws.packet().await,
        Frame::Text(r#"43456[1,"2",{"3":[false]}]"#.into())
    );

    binary_round_trip(
        &mut ws,
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    )
    .await;
}

/// Sends `packet` with the attachments [1, 2, 3] and [4, 5, 6]; the answer is `answer` with
/// the same attachments, in order.
async fn binary_round_trip(ws: &mut Ws, packet: &str, answer: &str) {
    ws.send(packet).await;
    ws.send_binary(&[1, 2, 3]).await;
    ws.send_binary(&[4, 5, 6]).await;
    assert_eq!(ws.packet().await, Frame::Text(answer.into()));
    assert_eq!(ws.packet().await, Frame::Binary(vec![1, 2, 3]));
    assert_eq!(ws.packet().await, Frame::Binary(vec![4, 5, 6]));
}

#[tokio::test]
async fn socket_io_malformed_packets_close_the_connection() {
    let app = conformance_app(|_| {}).await;
    for packet in [
        "4abc",
        "42{}",
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
    ] {
        let mut ws = Ws::socketio(&app).await;
        ws.send(packet).await;
        assert!(
            ws.closes_within(STEP).await,
            "`{packet}` closes the session"
        );
    }
}

/// The mode is served through the server's own limits: with `--max-connections 1` a second
/// socket is refused as a full server refuses it, and counted.
#[tokio::test]
async fn conformance_mode_keeps_the_servers_connection_limit() {
    let app = conformance_app(|c| c.max_connections = 1).await;
    let _first = Ws::socketio(&app).await;
    let (mut second, _) = Ws::engine(&app).await;
    second.send("40/custom,").await;
    let refused = second.reply().await;
    assert!(
        refused.starts_with(r#"44/custom,{"message":"server full"#),
        "{refused}"
    );
    let metrics = app.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"socketio_limits_hit_total{limit="connections"}"#
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "socketio_sockets_connected"), 1.0);
}
