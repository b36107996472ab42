//! Acknowledged writes survive a `kill -9` of the server. Eight writers book concurrently
//! against the real binary; once 200 bookings are acknowledged (201 and `Event-Seq`), the
//! process is killed with writes still in flight, started again on the same database, and every
//! acknowledged booking and its event must be there. A write cut off by the kill may or may not
//! have committed: either is fine, since its client was never told it had.
//!
//! A `kill -9` is not a power loss: the OS keeps what the process wrote, so on SQLite this holds
//! with `--sqlite-synchronous normal` as well as `full`. What `full` adds (an fsync of the WAL at
//! each commit) is held by the pragma check in `db::tests`, not by a power cut.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use booking_server::auth::{Auth, Role};
use booking_server::bookings::MAX_LIST_LIMIT;
use booking_server::events::{MAX_REPLAY_LIMIT, ReplayPage};
use booking_server::realtime::protocol::EVENT_SEQ_HEADER;
use serde_json::{Value, json};
use testkit::ServerProcess;

use crate::support::{Backend, booking_body, postgres_url, temp_database};

const SECRET: &str = "durability-secret-of-thirty-two-bytes";
/// Bookings acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 200;
const WRITERS: usize = 8;
/// Most bookings the writers may attempt in all (one hour each from 2030-01-01 00:00): a bound
/// on the loop, well past the 200 needed.
const MOST_ATTEMPTS: u32 = 700;
/// Longest the writing before the kill may take.
const WRITE_WITHIN: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Replay pages read at most (`MAX_REPLAY_LIMIT` events each; far fewer are ever written).
const MOST_PAGES: usize = 10;

/// An acknowledged write: what its client was told.
#[derive(Debug, Clone, Copy)]
struct Acked {
    seq: i64,
    /// None when the kill cut the body after a 201 and its `Event-Seq` header had arrived.
    booking: Option<i64>,
}

/// What the writers saw.
#[derive(Default)]
struct Ledger {
    acked: Vec<Acked>,
    /// Requests that got no answer: cut by the kill, or sent after it.
    cut: u32,
    /// Answers other than 201; none is expected, as every booking has an hour of its own.
    refused: Vec<String>,
}

/// State shared by the writers and the test that kills the server under them.
#[derive(Default)]
struct Writers {
    ledger: Mutex<Ledger>,
    next_hour: AtomicU32,
    in_flight: AtomicU32,
    /// Signalled when the ledger holds [`ACKED_BEFORE_KILL`] acknowledged writes.
    enough: tokio::sync::Notify,
}

/// One writer: books the next free hour until a request goes unanswered (the server is gone),
/// one is refused, [`MOST_ATTEMPTS`] are used up or [`WRITE_WITHIN`] has passed.
async fn write_until_cut(shared: Arc<Writers>, base: String, token: String, room: i64) {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let deadline = Instant::now() + WRITE_WITHIN;
    while Instant::now() < deadline {
        let hour = shared.next_hour.fetch_add(1, Ordering::SeqCst);
        if hour >= MOST_ATTEMPTS {
            return;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let request = http
            .post(format!("{base}/api/bookings"))
            .bearer_auth(&token)
            .json(&booking_body(room, hour, 1));
        let answer = match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let seq = res
                    .headers()
                    .get(EVENT_SEQ_HEADER)
                    .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
                let body: Option<Value> = res.json().await.ok();
                Some((status, seq, body))
            }
            Err(_) => None,
        };
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut ledger = shared.ledger.lock().unwrap();
        match answer {
            Some((201, Some(seq), body)) => {
                let booking = body.and_then(|b| b["id"].as_i64());
                ledger.acked.push(Acked { seq, booking });
                if ledger.acked.len() == ACKED_BEFORE_KILL {
                    shared.enough.notify_one();
                }
            }
            Some((status, seq, body)) => {
                ledger
                    .refused
                    .push(format!("hour {hour}: {status}, seq {seq:?}, {body:?}"));
                return;
            }
            None => {
                ledger.cut += 1;
                return;
            }
        }
    }
}

/// `GET url` as `token`: the JSON of a 200.
async fn get<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str, token: &str) -> T {
    let res = http.get(url).bearer_auth(token).send().await;
    let res = res.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status(), 200, "GET {url}");
    res.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Reads the whole event log: booking id by `seq`.
async fn logged_events(http: &reqwest::Client, base: &str, admin: &str) -> HashMap<i64, i64> {
    let mut events = HashMap::new();
    let mut after = 0;
    for _ in 0..MOST_PAGES {
        let url = format!("{base}/api/events?after={after}&limit={MAX_REPLAY_LIMIT}");
        let page: ReplayPage = get(http, &url, admin).await;
        for e in &page.events {
            let booking = e.payload.body.booking["id"].as_i64().expect("a booking id");
            events.insert(e.payload.seq, booking);
        }
        if !page.has_more {
            return events;
        }
        after = page.next_after;
    }
    panic!("the event log did not end within {MOST_PAGES} pages");
}

/// The ids of every booking of `room`.
async fn booked(http: &reqwest::Client, base: &str, admin: &str, room: i64) -> HashSet<i64> {
    let url = format!("{base}/api/bookings?boardroomId={room}&limit={MAX_LIST_LIMIT}");
    let rows: Vec<Value> = get(http, &url, admin).await;
    assert!(
        (rows.len() as i64) < MAX_LIST_LIMIT,
        "the list may be cut at its limit"
    );
    rows.iter()
        .map(|b| b["id"].as_i64().expect("an id"))
        .collect()
}

/// What the writers were told before the kill, and how the kill found them.
struct Killed {
    acked: Vec<Acked>,
    /// Requests sent and not yet answered just before the kill.
    in_flight: u32,
    /// Requests that never got an answer.
    cut: u32,
    /// From the first write to the kill.
    writing: Duration,
}

/// Starts [`WRITERS`] writers on `room` and kills the server, without stopping them, as soon
/// as [`ACKED_BEFORE_KILL`] writes are acknowledged.
async fn write_then_kill(server: &mut ServerProcess, auth: &Auth, room: i64) -> Killed {
    let shared = Arc::new(Writers::default());
    let writing_from = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let token = auth.mint(&format!("writer-{i}"), Role::User, None, 3600);
            tokio::spawn(write_until_cut(shared.clone(), server.url(), token, room))
        })
        .collect();
    tokio::time::timeout(WRITE_WITHIN, shared.enough.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{ACKED_BEFORE_KILL} writes not acknowledged within {WRITE_WITHIN:?}:\n{}",
                server.log_tail(20)
            )
        });
    let in_flight = shared.in_flight.load(Ordering::SeqCst);
    server.kill();
    let writing = writing_from.elapsed();
    for writer in writers {
        tokio::time::timeout(REQUEST_TIMEOUT * 2, writer)
            .await
            .expect("every writer stops once the server is gone")
            .unwrap();
    }
    let ledger = shared.ledger.lock().unwrap();
    assert!(ledger.refused.is_empty(), "refused: {:?}", ledger.refused);
    Killed {
        acked: ledger.acked.clone(),
        in_flight,
        cut: ledger.cut,
        writing,
    }
}

/// The acknowledged writes that the restarted server does not have.
#[derive(Debug, Default)]
struct Missing {
    /// `seq`s told in an `Event-Seq` header and absent from the event log.
    events: Vec<i64>,
    /// Booking ids told in a 201 body (or named by a told event) and absent from the list.
    bookings: Vec<i64>,
    /// Told events that are another booking's.
    misattributed: Vec<String>,
}

impl Missing {
    /// Checks each of `acked` against the event log (`seq` to booking) and the bookings.
    fn of(acked: &[Acked], events: &HashMap<i64, i64>, bookings: &HashSet<i64>) -> Self {
        let mut missing = Missing::default();
        for a in acked {
            let logged = events.get(&a.seq).copied();
            if logged.is_none() {
                missing.events.push(a.seq);
            }
            if let (Some(told), Some(logged)) = (a.booking, logged)
                && told != logged
            {
                let what = format!("event {} is of booking {logged}, not {told}", a.seq);
                missing.misattributed.push(what);
            }
            if let Some(id) = a.booking.or(logged)
                && !bookings.contains(&id)
            {
                missing.bookings.push(id);
            }
        }
        missing
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.bookings.is_empty() && self.misattributed.is_empty()
    }
}

/// Books concurrently on `database_url` (plus `env`), kills the server once
/// [`ACKED_BEFORE_KILL`] writes are acknowledged, restarts it, and checks that every one of
/// them is still there.
async fn acknowledged_writes_survive_kill_9(what: &str, database_url: &str, env: &[(&str, &str)]) {
    let started = Instant::now();
    let mut settings = vec![("DATABASE_URL", database_url), ("AUTH_SECRET", SECRET)];
    settings.extend_from_slice(env);
    let mut server = ServerProcess::start(&settings).await;
    let base = server.url();
    let auth = Auth::new(SECRET);
    let admin = auth.mint("admin", Role::Admin, Some("Admin"), 3600);
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let res = http
        .post(format!("{base}/api/boardrooms"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Durable", "capacity": 8 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let room = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();

    let killed = write_then_kill(&mut server, &auth, room).await;
    let acked = &killed.acked;
    assert!(acked.len() >= ACKED_BEFORE_KILL, "{} acked", acked.len());
    assert!(
        killed.in_flight > 0,
        "the kill must come with writes in flight"
    );

    server.restart().await;
    let events = logged_events(&http, &base, &admin).await;
    let bookings = booked(&http, &base, &admin, room).await;
    let missing = Missing::of(acked, &events, &bookings);
    let told: HashSet<i64> = acked.iter().map(|a| a.seq).collect();
    let unacked = events.keys().filter(|seq| !told.contains(seq)).count();
    println!(
        "durability on {what}: acked {}, in flight at kill {}, cut {}, missing bookings {} \
         events {}, committed {} bookings / {} events ({unacked} committed unacked); \
         killed {:.1?} after the first write ({:.0} acked/s), checked {:.1?} after start",
        acked.len(),
        killed.in_flight,
        killed.cut,
        missing.bookings.len(),
        missing.events.len(),
        bookings.len(),
        events.len(),
        killed.writing,
        acked.len() as f64 / killed.writing.as_secs_f64(),
        started.elapsed()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(
        bookings.len(),
        events.len(),
        "each committed booking has its created event, and no event is without its booking"
    );

    // The restarted server writes on, after every `seq` it handed out before the kill.
    let token = auth.mint("after-restart", Role::User, None, 3600);
    let res = http
        .post(format!("{base}/api/bookings"))
        .bearer_auth(&token)
        .json(&booking_body(room, MOST_ATTEMPTS + 1, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", server.log_tail(20));
    let seq: i64 = res.headers()[EVENT_SEQ_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let highest = acked.iter().map(|a| a.seq).max().unwrap();
    assert!(
        seq > highest,
        "seq {seq} after the restart, {highest} before"
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_on_sqlite_synchronous_full() {
    let (url, _guard) = temp_database(Backend::SqliteFile).await;
    acknowledged_writes_survive_kill_9("SQLite (full)", &url, &[("SQLITE_SYNCHRONOUS", "full")])
        .await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_on_sqlite_synchronous_normal() {
    let (url, _guard) = temp_database(Backend::SqliteFile).await;
    acknowledged_writes_survive_kill_9(
        "SQLite (normal)",
        &url,
        &[("SQLITE_SYNCHRONOUS", "normal")],
    )
    .await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_on_postgres() {
    if postgres_url().is_none() {
        return;
    }
    let (url, _guard) = temp_database(Backend::Postgres).await;
    acknowledged_writes_survive_kill_9("PostgreSQL", &url, &[]).await;
}
