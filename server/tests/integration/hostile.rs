//! Hostile input, generated: thousands of malformed REST requests (bodies, types, unicode with
//! NUL and control characters, huge numbers, headers, query strings, methods) against a real
//! server. None may get a 5xx or a panic; every refusal is a JSON error with a code; the
//! server still serves correctly afterwards.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::support::{Backend, a_small_load_run_loses_nothing, spawn_app};

const REQUESTS: usize = 2_000;

/// Strings a careless or hostile client sends.
fn nasty_string(rng: &mut StdRng) -> Value {
    let pick = [
        json!(""),
        json!(" "),
        json!("\u{0}"),
        json!("a\u{0}b"),
        json!("\u{7}\u{1b}[31m"),
        json!("line\nbreak"),
        json!("\u{202e}evil"),
        json!("😀".repeat(300)),
        json!("x".repeat(10_000)),
        json!("2030-13-45T99:99:99Z"),
        json!("2030-01-01T09:00:00+99:00"),
        json!("-999999-01-01T00:00:00Z"),
        json!("boardroom-1"),
        json!("user-\u{0}"),
        json!("'; DROP TABLE bookings; --"),
        json!("%00%ff"),
    ];
    pick[rng.random_range(0..pick.len())].clone()
}

fn nasty_value(rng: &mut StdRng) -> Value {
    match rng.random_range(0..10) {
        0 => json!(null),
        1 => json!(true),
        2 => json!(i64::MAX),
        3 => json!(i64::MIN),
        4 => json!(1e308),
        5 => json!(-1),
        6 => json!([nasty_string(rng), 1, null]),
        7 => json!({ "nested": { "deep": [nasty_string(rng)] } }),
        8 => json!(0),
        _ => nasty_string(rng),
    }
}

/// A booking-shaped body with some fields replaced, dropped or added.
fn nasty_body(rng: &mut StdRng, room: i64) -> String {
    let mut body = json!({
        "boardroomId": room,
        "title": "Standup",
        "startTime": "2030-01-01T09:00:00Z",
        "endTime": "2030-01-01T10:00:00Z",
        "attendees": ["ada"],
        "name": "Room",
        "capacity": 4,
    });
    for _ in 0..rng.random_range(1..4) {
        let keys = [
            "boardroomId",
            "title",
            "startTime",
            "endTime",
            "attendees",
            "name",
            "capacity",
            "location",
            "role",
        ];
        let key = keys[rng.random_range(0..keys.len())];
        match rng.random_range(0..3) {
            0 => body[key] = nasty_value(rng),
            1 => {
                body.as_object_mut().unwrap().remove(key);
            }
            _ => body["extra"] = nasty_value(rng),
        }
    }
    match rng.random_range(0..8) {
        0 => "{".to_string(),
        1 => "[]".to_string(),
        2 => String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x7b]).into_owned(),
        3 => format!("{body}garbage"),
        _ => body.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_requests_get_clear_4xx_errors_and_nothing_breaks() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let alice = app.token("alice");
    let booking = app.book(&alice, room, 9).await["id"].as_i64().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    // Mostly the methods the routes take, so most requests reach a handler.
    let methods = [
        "GET", "GET", "POST", "POST", "POST", "POST", "PATCH", "PATCH", "DELETE", "PUT", "OPTIONS",
        "HEAD", "BREW",
    ];
    let paths = [
        "/api/bookings".to_string(),
        format!("/api/bookings/{booking}"),
        format!("/api/bookings/{booking}/cancel"),
        "/api/bookings/-1".to_string(),
        "/api/bookings/99999999999999999999".to_string(),
        "/api/bookings/%00".to_string(),
        "/api/boardrooms".to_string(),
        format!("/api/boardrooms/{room}"),
        "/api/events".to_string(),
        "/api/auth/dev-login".to_string(),
        "/api/me".to_string(),
        "/api/../etc/passwd".to_string(),
        "/assets/../../Cargo.toml".to_string(),
    ];
    let queries = [
        "",
        "?limit=0",
        "?limit=-5",
        "?limit=99999999999999999999",
        "?after=-1",
        "?after=abc",
        "?rooms=user-bob,bookings",
        "?rooms=%00",
        "?rooms=boardroom-0",
        "?from=yesterday&to=2030-01-01T00:00:00Z",
        "?status=maybe",
        "?owner=",
        "?boardroomId=1e9",
        "?unknown=1",
    ];
    let (mut by_status, mut fives) = (std::collections::BTreeMap::new(), Vec::new());
    for i in 0..REQUESTS {
        let method = methods[rng.random_range(0..methods.len())];
        let path = &paths[rng.random_range(0..paths.len())];
        let query = queries[rng.random_range(0..queries.len())];
        let url = format!("{}{path}{query}", app.base);
        let mut req = app.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        req = match rng.random_range(0..6) {
            0 => req,
            1 => req.header("authorization", "Bearer not-a-token"),
            2 => req.header("authorization", "Basic YWxpY2U6cHc="),
            3 => req.bearer_auth(&app.admin),
            _ => req.bearer_auth(&alice),
        };
        req = match rng.random_range(0..5) {
            0 => req.header("content-type", "text/plain"),
            1 => req.header("content-type", "application/json; charset=latin1"),
            2 => req.header("idempotency-key", "k".repeat(rng.random_range(0..400))),
            _ => req.header("content-type", "application/json"),
        };
        if method != "GET" && method != "HEAD" {
            req = req.body(nasty_body(&mut rng, room));
        }
        let res = req.send().await.expect("the server answers");
        let status = res.status().as_u16();
        *by_status.entry(status).or_insert(0u32) += 1;
        let text = res.text().await.unwrap_or_default();
        if status >= 500 {
            fives.push(format!("#{i} {method} {path}{query} -> {status} {text}"));
            continue;
        }
        if (400..500).contains(&status) && method != "HEAD" {
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("#{i} {method} {path}{query}: not JSON: {text}"));
            assert!(
                body["error"]["code"].is_string() && body["error"]["message"].is_string(),
                "#{i} {method} {path}{query}: {body}"
            );
        }
    }
    eprintln!("hostile REST: {REQUESTS} requests, by status {by_status:?}");
    assert!(
        fives.is_empty(),
        "{} answers were 5xx:\n{}",
        fives.len(),
        fives.join("\n")
    );
    // Still serving, and the first booking is as it was or changed only by valid requests.
    let after = app.book(&alice, room, 20).await;
    assert!(after["id"].as_i64().unwrap() > booking);
    let (status, _) = app.call("GET", "/api/events?after=0", &alice, None).await;
    assert_eq!(status, 200);
    let (owed, delivered) = a_small_load_run_loses_nothing(&app, 40, 60).await;
    assert_eq!(owed, delivered);
}
