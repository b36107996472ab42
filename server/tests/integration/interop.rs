//! Interoperability with the official JavaScript `socket.io-client` (interop/client.mjs):
//! it connects over WebSocket and over long-polling, joins rooms and receives the events this
//! test produces. Needs Node.js and `npm ci --prefix interop`; required in CI.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::{Backend, TestApp, WAIT, spawn_app};

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// Whether node and socket.io-client are installed; in CI they must be.
fn node_client_available() -> bool {
    testkit::node_package_installed("interop", "socket.io-client")
}

struct JsTab {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl JsTab {
    fn start(app: &TestApp, token: &str, rooms: &str, transport: &str, events: usize) -> JsTab {
        let mut child = Command::new("node")
            .arg(interop_dir().join("client.mjs"))
            .args(["--url", &app.base, "--token", token, "--rooms", rooms])
            .args(["--transport", transport, "--events", &events.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        JsTab { child, lines }
    }

    async fn line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a line from the JS client in time")
            .unwrap()
            .expect("the JS client is still running");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    /// Reads lines until one of `kind`, returning the lines before it too.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            let done = line["kind"] == kind;
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    async fn exit_code(mut self) -> i32 {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        status.code().unwrap_or(-1)
    }
}

async fn js_client_receives_each_event_once(transport: &str) {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let alice = app.token("alice");
    let rooms = format!("bookings,boardroom-{room},user-alice");
    let mut js = JsTab::start(&app, &alice, &rooms, transport, 3);
    let setup = js.until("ready").await;
    let joined: Vec<_> = setup.iter().filter(|l| l["kind"] == "joined").collect();
    assert_eq!(joined.len(), 3, "{setup:?}");
    assert!(
        joined.iter().all(|l| l["ack"]["watermark"] == 0),
        "{setup:?}"
    );
    let connected = &setup[0];
    assert_eq!(connected["kind"], "connected");

    let id = app.book(&alice, room, 9).await["id"].as_i64().unwrap();
    app.call(
        "PATCH",
        &format!("/api/bookings/{id}"),
        &alice,
        Some(serde_json::json!({"title": "Moved"})),
    )
    .await;
    app.call("POST", &format!("/api/bookings/{id}/cancel"), &alice, None)
        .await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(js.line().await);
    }
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["booking-created", "booking-updated", "booking-cancelled"]
    );
    let seqs: Vec<_> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        [1, 2, 3],
        "once each, in order, though the tab is in three of its rooms"
    );
    assert!(events.iter().all(|e| e["bookingId"] == id));
    assert_eq!(js.exit_code().await, 0);
}

#[tokio::test]
async fn official_js_client_over_websocket() {
    if node_client_available() {
        js_client_receives_each_event_once("websocket").await;
    }
}

#[tokio::test]
async fn official_js_client_over_polling() {
    if node_client_available() {
        js_client_receives_each_event_once("polling").await;
    }
}

#[tokio::test]
async fn official_js_client_is_refused_a_bad_token_and_a_foreign_room() {
    if !node_client_available() {
        return;
    }
    let app = spawn_app(Backend::Memory).await;
    let mut js = JsTab::start(&app, "forged", "bookings", "websocket", 1);
    let refused = js.until("refused").await;
    let message = refused.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("invalid bearer token"), "{message}");
    assert_eq!(js.exit_code().await, 1);

    let mut js = JsTab::start(&app, &app.token("alice"), "user-bob", "websocket", 1);
    let setup = js.until("ready").await;
    let refusal = setup
        .iter()
        .find(|l| l["kind"] == "join-refused")
        .expect("refused");
    assert!(
        refusal["ack"]["error"]
            .as_str()
            .unwrap()
            .contains("may not join"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_leave_then_a_join_from_the_js_client_keeps_the_socket_in_the_room() {
    // The official client often puts both packets in one read, where the server's handler
    // tasks used to run out of order: 27 of 60 rounds missed the next event before the fix.
    // The binary's own runtime shows it; a server inside the test's runtime did not.
    if !node_client_available() {
        return;
    }
    let secret = "leave-join-secret-of-thirty-two-bytes";
    let server = testkit::ServerProcess::start(&[
        ("DATABASE_URL", "sqlite::memory:"),
        ("AUTH_SECRET", secret),
        // 60 rounds as fast as the client goes: well past the default 20 joins a second.
        ("MAX_JOINS_PER_SECOND", "10000"),
    ])
    .await;
    let mint =
        |sub: &str, role| booking_server::auth::mint_with_secret(secret, sub, role, None, 600);
    let admin = mint("admin", booking_server::auth::Role::Admin);
    let zed = mint("zed", booking_server::auth::Role::User);
    let http = reqwest::Client::new();
    let room: Value = http
        .post(format!("{}/api/boardrooms", server.url()))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "name": "Ada", "capacity": 4 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = Command::new("node")
        .arg(interop_dir().join("leave-join.mjs"))
        .args([
            "--url",
            &server.url(),
            "--token",
            &zed,
            "--room",
            "user-zed",
        ])
        .args(["--boardroom", &room["id"].to_string(), "--rounds", "60"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the JS client ends in time")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["rounds"], 60);
    assert_eq!(result["missed"], 0, "{result}");
}
