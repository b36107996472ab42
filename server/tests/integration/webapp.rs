//! What the web app relies on: its page and assets served from the binary, the public
//! config, `/api/me`, the dev login (off by default), and the volatile `editing` relay.

use std::time::Duration;

use booking_server::ServerConfig;
use booking_server::realtime::editing::EDITING_MIN_GAP;
use serde_json::{Value, json};

use crate::support::{Backend, Tab, spawn_app, spawn_with};

#[tokio::test]
async fn the_web_app_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app(Backend::Memory).await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"],
        "text/html; charset=utf-8",
        "the page is HTML"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");
    // Every script and stylesheet the page names is served, with its type.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(!assets.is_empty(), "the page names its assets: {html}");
    for asset in assets {
        let res = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        let kind = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            kind.starts_with("text/javascript") || kind.starts_with("text/css"),
            "{asset}: {kind}"
        );
        assert!(
            res.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    // The API keeps its JSON 404s; unknown files are 404 too.
    for path in ["/assets/nope.js", "/api/nope", "/nope.txt"] {
        let (status, body) = app.call("GET", path, &app.admin, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
}

#[tokio::test]
async fn dev_login_is_off_unless_the_flag_says_so() {
    let app = spawn_app(Backend::Memory).await;
    let config = app.get_json("/api/config").await;
    assert_eq!(config["devLogin"], false);
    let res = app
        .http
        .post(app.url("/api/auth/dev-login"))
        .json(&json!({ "name": "Mallory", "role": "admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--dev-login"),
        "{body}"
    );
}

#[tokio::test]
async fn dev_login_signs_in_by_name_and_the_token_works_everywhere() {
    let mut config = ServerConfig::defaults_for("sqlite::memory:");
    config.dev_login = true;
    let app = spawn_with(config).await;
    let config = app.get_json("/api/config").await;
    assert_eq!(config["devLogin"], true);
    let login = |body: Value| {
        let req = app.http.post(app.url("/api/auth/dev-login")).json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, session) = login(json!({ "name": " Alice Smith " })).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(
        session["user"],
        json!({ "id": "alice-smith", "name": "Alice Smith", "role": "user" })
    );
    let token = session["token"].as_str().unwrap();
    let (status, me) = app.call("GET", "/api/me", token, None).await;
    assert_eq!((status, &me["id"]), (200, &json!("alice-smith")));
    // The user exists with the name given, so bookings show it as the owner.
    let room = app.boardroom("Ada", 4).await;
    let booking = app.book(token, room, 9).await;
    assert_eq!(booking["owner"]["name"], "Alice Smith", "{booking}");
    let tab = Tab::connect(&app, token)
        .await
        .expect("the socket accepts it");
    assert!(tab.join("user-alice-smith").await.ok);
    tab.close().await;

    let (status, admin) = login(json!({ "name": "Root", "role": "admin" })).await;
    assert_eq!((status, &admin["user"]["role"]), (200, &json!("admin")));
    for bad in [
        json!({ "name": "" }),
        json!({ "name": "!!!" }),
        json!({ "name": "a\u{0}b" }),
        json!({ "name": "x".repeat(65) }),
    ] {
        let (status, body) = login(bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = login(json!({ "name": "Eve", "role": "root" })).await;
    assert!((400..500).contains(&status), "{body}");
    let (status, _) = app.call("GET", "/api/me", "not-a-token", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn editing_reaches_the_other_tabs_of_the_boardroom_only_and_is_throttled() {
    let app = spawn_app(Backend::Memory).await;
    let (one, two) = (
        app.boardroom("Ada", 4).await,
        app.boardroom("Turing", 4).await,
    );
    let alice = app.state.auth.mint(
        "alice",
        booking_server::auth::Role::User,
        Some("Alice"),
        3600,
    );
    let bob = app.token("bob");
    let mut editor = Tab::connect(&app, &alice).await.unwrap();
    assert!(editor.join(&format!("boardroom-{one}")).await.ok);
    let mut watcher = Tab::connect(&app, &bob).await.unwrap();
    assert!(watcher.join(&format!("boardroom-{one}")).await.ok);
    let mut elsewhere = Tab::connect(&app, &bob).await.unwrap();
    assert!(elsewhere.join(&format!("boardroom-{two}")).await.ok);

    let ack = editor
        .editing(json!({ "boardroomId": one, "bookingId": 42 }))
        .await;
    assert_eq!(ack, json!({ "ok": true }));
    let seen = watcher
        .next_editing(Duration::from_secs(5))
        .await
        .expect("the other tab of the room is told");
    assert_eq!(
        (seen.user.id.as_str(), seen.user.name.as_str()),
        ("alice", "Alice")
    );
    assert_eq!((seen.boardroom_id, seen.booking_id), (one, Some(42)));
    assert!(seen.ttl_ms > 0 && seen.sent_at > 0);

    // A second signal within the gap is dropped and says so.
    let ack = editor.editing(json!({ "boardroomId": one })).await;
    assert_eq!(ack, json!({ "ok": false, "throttled": true }));
    tokio::time::sleep(EDITING_MIN_GAP).await;
    let ack = editor.editing(json!({ "boardroomId": one })).await;
    assert_eq!(ack["ok"], true);
    let seen = watcher.next_editing(Duration::from_secs(5)).await.unwrap();
    assert_eq!(seen.booking_id, None);

    let bad = editor.editing(json!({ "boardroomId": "one" })).await;
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("boardroomId"),
        "{bad}"
    );

    // Neither the sender nor another boardroom's tab heard anything; nothing was logged.
    let quiet = Duration::from_millis(300);
    assert!(editor.next_editing(quiet).await.is_none());
    assert!(elsewhere.next_editing(quiet).await.is_none());
    let (_, log) = app.call("GET", "/api/events?after=0", &bob, None).await;
    assert_eq!(log["events"], json!([]));
    let metrics = app.metrics().await;
    for line in [
        "socketio_editing_signals_total{result=\"relayed\"} 2",
        "socketio_editing_signals_total{result=\"throttled\"} 1",
        "socketio_editing_signals_total{result=\"refused\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    for tab in [editor, watcher, elsewhere] {
        tab.close().await;
    }
}

#[tokio::test]
async fn a_page_on_another_origin_can_read_event_seq() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let res = app
        .http
        .post(app.url("/api/bookings"))
        .bearer_auth(app.token("alice"))
        .header("origin", "http://localhost:5173")
        .json(&crate::support::booking_body(room, 9, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().contains_key("event-seq"));
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("event-seq"), "{exposed}");
}
