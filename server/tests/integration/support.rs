//! Test support: `spawn_app` starts the real server on 127.0.0.1:0 with a database of the
//! requested backend; `Tab` is a real rust_socketio client over WebSocket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use booking_server::auth::Role;
use booking_server::realtime::protocol::{
    BookingEventKind, BookingEventPayload, EDITING, Editing, JOIN_ROOM, LEAVE_ROOM, RESYNC, Resync,
    RoomAck, SESSION_EXPIRED, SessionExpired,
};
use booking_server::{AppState, ServerConfig};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub admin: String,
    /// Dropped to shut the server down.
    shutdown: Option<oneshot::Sender<()>>,
    _db: Option<TempDb>,
}

/// A database created for one test and dropped after it.
pub enum TempDb {
    File(std::path::PathBuf),
    /// Dropped with the guard.
    Postgres {
        _guard: testkit::FreshDatabase,
    },
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let TempDb::File(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where a test's data lives.
pub enum Backend {
    Memory,
    /// A fresh SQLite file (several servers can share it).
    SqliteFile,
    /// A fresh PostgreSQL database on the server at `TEST_DATABASE_URL`.
    Postgres,
}

/// The PostgreSQL server for tests: `TEST_DATABASE_URL`. In CI it is required; elsewhere the
/// PostgreSQL tests are skipped without it.
pub use testkit::shared_postgres_url as postgres_url;

/// Creates a fresh database for one test; returns its URL and the guard that drops it.
pub async fn temp_database(backend: Backend) -> (String, Option<TempDb>) {
    match backend {
        Backend::Memory => ("sqlite::memory:".to_string(), None),
        Backend::SqliteFile => {
            let dir = std::env::temp_dir().join(format!("booking-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("bookings.db").display());
            (url, Some(TempDb::File(dir)))
        }
        Backend::Postgres => {
            let admin_url = postgres_url().expect("checked by the caller");
            let db = testkit::FreshDatabase::create(&admin_url);
            (db.url.clone(), Some(TempDb::Postgres { _guard: db }))
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let (url, db) = temp_database(backend).await;
    let mut app = spawn_with(ServerConfig::defaults_for(&url)).await;
    app._db = db;
    app
}

/// Starts a server with `config` on a free loopback port.
pub async fn spawn_with(config: ServerConfig) -> TestApp {
    let state = AppState::new(config).await.expect("server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let served = state.clone();
    tokio::spawn(async move {
        booking_server::serve(listener, served, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    let admin = state.auth.mint("admin", Role::Admin, Some("Admin"), 3600);
    TestApp {
        base,
        state,
        http: reqwest::Client::new(),
        admin,
        shutdown: Some(tx),
        _db: None,
    }
}

impl TestApp {
    /// Starts the server's shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        self.shutdown.take();
    }

    pub fn token(&self, user: &str) -> String {
        self.state.auth.mint(user, Role::User, None, 3600)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a JSON request as `token`; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a booking like [`TestApp::book`], sending `traceparent`; returns the response.
    pub async fn book_traced(
        &self,
        token: &str,
        boardroom: i64,
        hour: u32,
        traceparent: &str,
    ) -> reqwest::Response {
        let request = self.http.post(self.url("/api/bookings")).bearer_auth(token);
        let request = request
            .header("traceparent", traceparent)
            .json(&booking_body(boardroom, hour, 1));
        request.send().await.expect("request sent")
    }

    /// `GET path` without a token; the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        res.json().await.expect("a JSON body")
    }

    /// The server's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let res = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        res.text().await.unwrap()
    }

    pub async fn boardroom(&self, name: &str, capacity: i64) -> i64 {
        let body = json!({ "name": name, "capacity": capacity, "location": "Floor 3" });
        let (status, room) = self
            .call("POST", "/api/boardrooms", &self.admin, Some(body))
            .await;
        assert_eq!(status, 201, "{room}");
        room["id"].as_i64().unwrap()
    }

    /// Creates a booking of `hour` (hours after a fixed day) and returns its JSON.
    pub async fn book(&self, token: &str, boardroom: i64, hour: u32) -> Value {
        let (status, booking) = self
            .call(
                "POST",
                "/api/bookings",
                token,
                Some(booking_body(boardroom, hour, 1)),
            )
            .await;
        assert_eq!(status, 201, "{booking}");
        booking
    }

    /// Like [`TestApp::book`], but as a well-behaved client: a 429 from the per-user write
    /// limit is retried after the `retryAfterMs` it names (at most 100 times).
    pub async fn book_within_rate(&self, token: &str, boardroom: i64, hour: u32) -> Value {
        for _ in 0..100 {
            let body = Some(booking_body(boardroom, hour, 1));
            let (status, answer) = self.call("POST", "/api/bookings", token, body).await;
            if status != 429 {
                assert_eq!(status, 201, "{answer}");
                return answer;
            }
            let wait = answer["error"]["retryAfterMs"]
                .as_u64()
                .expect("429 names its wait");
            tokio::time::sleep(Duration::from_millis(wait.max(1))).await;
        }
        panic!("still limited after 100 waits");
    }
}

/// A booking request for `hours` hours starting at `hour` o'clock on 2030-01-01 (day rolls on).
/// The value of the series named exactly `series` (name, and labels if any) in a `/metrics`
/// text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

pub fn booking_body(boardroom: i64, hour: u32, hours: u32) -> Value {
    // Hours from 2030-01-01T00:00Z, past January too.
    let at = |h: u32| {
        let t = time::macros::datetime!(2030-01-01 00:00 UTC) + time::Duration::hours(h.into());
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("formats")
    };
    json!({
        "boardroomId": boardroom,
        "title": format!("Meeting at {hour}"),
        "startTime": at(hour),
        "endTime": at(hour + hours),
        "attendees": ["ada", "grace"],
    })
}

/// One simulated browser tab: a Socket.IO client that records the booking events it receives.
pub struct Tab {
    pub client: Client,
    events: mpsc::UnboundedReceiver<(BookingEventKind, BookingEventPayload)>,
    resyncs: mpsc::UnboundedReceiver<Resync>,
    editing: mpsc::UnboundedReceiver<Editing>,
    expired: mpsc::UnboundedReceiver<SessionExpired>,
}

/// Sends every `event` the client receives, parsed, to the returned receiver.
fn forward<T: serde::de::DeserializeOwned + Send + 'static>(
    builder: ClientBuilder,
    event: &'static str,
) -> (ClientBuilder, mpsc::UnboundedReceiver<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let builder = builder.on(event, move |payload, _| {
        if let Payload::Text(values) = payload
            && let Some(v) = values.into_iter().next()
        {
            let parsed = serde_json::from_value(v).unwrap_or_else(|e| panic!("{event}: {e}"));
            let _ = tx.send(parsed);
        }
        async {}.boxed()
    });
    (builder, rx)
}

/// What a refused handshake said.
#[derive(Debug)]
pub struct Refused(pub String);

impl Tab {
    pub async fn connect(app: &TestApp, token: &str) -> Result<Tab, Refused> {
        Self::connect_with(app, json!({ "token": token })).await
    }

    pub async fn connect_with(app: &TestApp, auth: Value) -> Result<Tab, Refused> {
        let (tx, events) = mpsc::unbounded_channel();
        let (status_tx, mut status_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let mut builder = ClientBuilder::new(app.base.clone())
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .auth(auth);
        for kind in BookingEventKind::ALL {
            let tx = tx.clone();
            builder = builder.on(kind.name(), move |payload, _| {
                let tx = tx.clone();
                async move {
                    if let Payload::Text(values) = payload
                        && let Some(v) = values.into_iter().next()
                    {
                        let parsed = serde_json::from_value(v).expect("event payload parses");
                        let _ = tx.send((kind, parsed));
                    }
                }
                .boxed()
            });
        }
        let (builder, resyncs) = forward(builder, RESYNC);
        let (builder, editing) = forward(builder, EDITING);
        let (mut builder, expired) = forward(builder, SESSION_EXPIRED);
        let ok = status_tx.clone();
        builder = builder.on(Event::Connect, move |_, _| {
            let _ = ok.send(Ok(()));
            async {}.boxed()
        });
        builder = builder.on(Event::Error, move |payload, _| {
            let _ = status_tx.send(Err(format!("{payload:?}")));
            async {}.boxed()
        });
        let client = builder
            .connect()
            .await
            .map_err(|e| Refused(e.to_string()))?;
        match tokio::time::timeout(WAIT, status_rx.recv()).await {
            Ok(Some(Ok(()))) => Ok(Tab {
                client,
                events,
                resyncs,
                editing,
                expired,
            }),
            Ok(Some(Err(e))) => Err(Refused(e)),
            _ => Err(Refused("no connect event in time".into())),
        }
    }

    async fn ack<T: serde::de::DeserializeOwned>(&self, event: &str, arg: Value) -> T {
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        self.client
            .emit_with_ack(event, arg, WAIT, move |payload, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(payload);
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        let payload = tokio::time::timeout(WAIT, rx)
            .await
            .expect("ack in time")
            .unwrap();
        match payload {
            // rust_socketio hands an ack's arguments over as one array.
            Payload::Text(values) => {
                let mut value = values[0].clone();
                while let Value::Array(mut inner) = value {
                    value = inner.swap_remove(0);
                }
                serde_json::from_value(value).expect("an ack")
            }
            other => panic!("unexpected ack {other:?}"),
        }
    }

    pub async fn join(&self, room: &str) -> RoomAck {
        self.ack(JOIN_ROOM, json!(room)).await
    }

    pub async fn join_raw(&self, arg: Value) -> RoomAck {
        self.ack(JOIN_ROOM, arg).await
    }

    pub async fn leave(&self, room: &str) -> RoomAck {
        self.ack(LEAVE_ROOM, json!(room)).await
    }

    /// The next event, or a panic after [`WAIT`].
    pub async fn next(&mut self) -> (BookingEventKind, BookingEventPayload) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client alive")
    }

    /// Sends an `editing` signal and returns its ack.
    pub async fn editing(&self, arg: Value) -> Value {
        self.ack(EDITING, arg).await
    }

    /// The next `editing` notice if one arrives within `within`.
    pub async fn next_editing(&mut self, within: Duration) -> Option<Editing> {
        tokio::time::timeout(within, self.editing.recv())
            .await
            .ok()
            .flatten()
    }

    /// The `session-expired` notice, or a panic after [`WAIT`].
    pub async fn next_expired(&mut self) -> SessionExpired {
        tokio::time::timeout(WAIT, self.expired.recv())
            .await
            .expect("a session-expired notice in time")
            .expect("client alive")
    }

    /// The next resync notice, or a panic after [`WAIT`].
    pub async fn next_resync(&mut self) -> Resync {
        tokio::time::timeout(WAIT, self.resyncs.recv())
            .await
            .expect("a resync in time")
            .expect("client alive")
    }

    /// A resync notice if one arrives within `within`.
    pub async fn try_next_resync(&mut self, within: Duration) -> Option<Resync> {
        tokio::time::timeout(within, self.resyncs.recv())
            .await
            .ok()
            .flatten()
    }

    /// An event if one arrives within `within`.
    pub async fn try_next(
        &mut self,
        within: Duration,
    ) -> Option<(BookingEventKind, BookingEventPayload)> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The booking id of the next event.
    pub async fn next_booking(&mut self) -> i64 {
        self.next().await.1.body.booking["id"].as_i64().unwrap()
    }

    pub async fn close(self) {
        let _ = self.client.disconnect().await;
    }
}

/// A small load run against `app`: `tabs` sockets spread over the `bookings` room and three
/// fresh boardrooms' rooms, `bookings` bookings spread over the boardrooms, four writers at a
/// time. Every tab must get exactly the events of its room, in order: none lost, none twice,
/// none extra. Prints and returns (owed, delivered).
pub async fn a_small_load_run_loses_nothing(
    app: &TestApp,
    tabs: usize,
    bookings: u32,
) -> (usize, usize) {
    use futures_util::StreamExt;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut rooms = Vec::new();
    for k in 0..3 {
        rooms.push(app.boardroom(&format!("Load {k} {}", &tag[..8]), 8).await);
    }
    let mut clients = Vec::new();
    for i in 0..tabs {
        let tab = Tab::connect(app, &app.token(&format!("load-{i}")))
            .await
            .expect("a tab connects");
        // Tab i watches `bookings` (i % 4 == 3) or boardroom i % 4.
        let watched = (i % 4 < 3).then(|| rooms[i % 4]);
        let room = watched.map_or("bookings".to_string(), |r| format!("boardroom-{r}"));
        let ack = tab.join(&room).await;
        assert!(ack.ok, "{room}: {ack:?}");
        clients.push((tab, watched));
    }
    let token = app.token("load-writer");
    let made: Vec<(i64, i64)> = futures_util::stream::iter(0..bookings)
        .map(|n| {
            let (room, token) = (rooms[n as usize % 3], token.clone());
            async move {
                let booked = app.book_within_rate(&token, room, n).await;
                (room, booked["id"].as_i64().unwrap())
            }
        })
        .buffered(4)
        .collect()
        .await;
    let (mut owed, mut delivered) = (0, 0);
    for (mut tab, watched) in clients {
        let expected: std::collections::BTreeSet<i64> = made
            .iter()
            .filter(|(room, _)| watched.is_none_or(|w| w == *room))
            .map(|(_, id)| *id)
            .collect();
        owed += expected.len();
        let mut got = std::collections::BTreeSet::new();
        let mut last_seq = 0;
        for _ in 0..expected.len() {
            let (_, event) = tab.next().await;
            assert!(
                event.seq > last_seq,
                "in order: {} after {last_seq}",
                event.seq
            );
            last_seq = event.seq;
            let id = event.body.booking["id"].as_i64().unwrap();
            assert!(got.insert(id), "booking {id} twice");
        }
        assert_eq!(got, expected, "a tab got exactly its room's events");
        assert!(
            tab.try_next(Duration::from_millis(50)).await.is_none(),
            "nothing extra"
        );
        delivered += got.len();
        tab.close().await;
    }
    eprintln!(
        "load run: {tabs} tabs, {bookings} bookings, {owed} owed, {delivered} delivered, {} lost",
        owed - delivered
    );
    (owed, delivered)
}
