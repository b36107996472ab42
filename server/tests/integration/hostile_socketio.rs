//! Hostile input over Socket.IO, generated: thousands of malformed Engine.IO and Socket.IO
//! frames over raw WebSocket and HTTP long-polling, sent before a CONNECT, right behind one
//! and after one, in many short sessions (many hostile frames rightly end their session). No
//! panic on the server's threads, no 5xx, every session either still answers or was closed
//! (none hangs), no socket is left behind, memory stays bounded, and right after the flood a
//! correct client still gets every event. The counts are printed.

mod frames;
mod wire;

use std::collections::BTreeMap;
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use booking_server::realtime::protocol::{BookingEventKind, JOIN_ROOM};
use booking_server::telemetry::metrics::{CONNECTS, DISCONNECTS, SOCKETS_CONNECTED};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::support::{Backend, Tab, TestApp, a_small_load_run_loses_nothing, spawn_app};
use frames::{Kind, Phase, Transport};
use wire::{Ending, Outcome, Plan};

/// Hostile frames planned; some are never sent because an earlier one closed their session.
const FRAMES_PLANNED: usize = 3_200;
/// Hostile frames that must reach the server.
const FRAMES_SENT_AT_LEAST: usize = 2_000;
/// Sessions at a time.
const CONCURRENT: usize = 12;
/// The whole flood, on a debug build.
const FLOOD_WITHIN: Duration = Duration::from_secs(40);
/// Growth of this process's resident memory (the server runs in it) the flood may cause.
const RSS_GROWTH_MAX_MIB: u64 = 200;
/// Events the correct clients are sent after the flood, each of which must arrive.
const EVENTS_AFTER: u32 = 3;
/// The name of this test's runtime threads, where the server runs.
const THREADS: &str = "hostile-sio-server";

/// Panics on this test's runtime threads, as they happen: tokio catches a task's panic, so a
/// server whose handler panicked would go on serving and nothing else would tell.
fn server_panics() -> &'static Mutex<Vec<String>> {
    static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().map(str::to_string);
            if name.is_some_and(|n| n.starts_with(THREADS)) {
                let mut panics = PANICS.lock().unwrap_or_else(PoisonError::into_inner);
                panics.push(info.to_string());
            }
            previous(info);
        }));
    });
    &PANICS
}

fn assert_no_server_panic() {
    let panics = server_panics()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    assert!(
        panics.is_empty(),
        "{} panics on the server's threads:\n{}",
        panics.len(),
        panics.join("\n")
    );
}

#[test]
fn thousands_of_malformed_socket_io_frames_end_sessions_cleanly_and_nothing_breaks() {
    server_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(THREADS)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(flood_then_check());
    assert_no_server_panic();
    eprintln!(
        "hostile Socket.IO: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Sessions of one to three hostile frames each, alternating transports and phases.
fn plan_sessions(rng: &mut StdRng, token: &str) -> Vec<Plan> {
    let transports = [Transport::WebSocket, Transport::Polling];
    let phases = [Phase::BeforeAuth, Phase::Pipelined, Phase::AfterAuth];
    let (mut plans, mut planned) = (Vec::new(), 0);
    while planned < FRAMES_PLANNED {
        let i = plans.len();
        let (transport, phase) = (transports[i % 2], phases[(i / 2) % 3]);
        let frames: Vec<_> = (0..rng.random_range(1..=3))
            .map(|_| {
                let kind = Kind::ALL[rng.random_range(0..Kind::ALL.len())];
                frames::hostile(rng, kind, transport, token)
            })
            .collect();
        planned += frames.len();
        plans.push(Plan {
            transport,
            phase,
            frames,
            token: token.to_string(),
        });
    }
    plans
}

/// What the flood did, added up over its sessions.
#[derive(Default)]
struct Tally {
    sent: BTreeMap<(Kind, Transport, Phase), usize>,
    unsent: usize,
    endings: BTreeMap<(Transport, Phase, Ending), usize>,
    statuses: BTreeMap<(Transport, String), usize>,
    problems: Vec<String>,
    cut: Vec<(Kind, String)>,
    refusals: usize,
    throttled: usize,
    bare_refusals: Vec<String>,
    silent: Vec<String>,
    asked_again: usize,
}

impl Tally {
    fn add(&mut self, transport: Transport, phase: Phase, outcome: Outcome) {
        for kind in outcome.sent {
            *self.sent.entry((kind, transport, phase)).or_default() += 1;
        }
        self.unsent += outcome.unsent;
        if let Some(ending) = outcome.ending {
            *self.endings.entry((transport, phase, ending)).or_default() += 1;
        }
        for status in outcome.statuses {
            *self.statuses.entry((transport, status)).or_default() += 1;
        }
        self.problems.extend(outcome.problems);
        self.cut.extend(outcome.cut);
        self.refusals += outcome.refusals;
        self.throttled += outcome.throttled;
        self.bare_refusals.extend(outcome.bare_refusals);
        self.asked_again += outcome.asked_again;
        if let Some(silent) = outcome.silent {
            self.silent
                .push(format!("{transport:?} {phase:?}: {silent}"));
        }
    }

    fn total_sent(&self) -> usize {
        self.sent.values().sum()
    }

    fn print(&self) {
        eprintln!(
            "hostile Socket.IO: {} frames sent, {} not sent (their session had ended)",
            self.total_sent(),
            self.unsent
        );
        eprintln!(
            "frames sent by kind: websocket before/pipelined/after | polling before/pipelined/after"
        );
        for kind in Kind::ALL {
            let n = |t, p| self.sent.get(&(kind, t, p)).copied().unwrap_or(0);
            let row = |t| {
                let [a, b, c] =
                    [Phase::BeforeAuth, Phase::Pipelined, Phase::AfterAuth].map(|p| n(t, p));
                format!("{a:>4} {b:>4} {c:>4}")
            };
            eprintln!(
                "  {:<13} {} | {}",
                format!("{kind:?}"),
                row(Transport::WebSocket),
                row(Transport::Polling)
            );
        }
        eprintln!("sessions by ending: {:?}", self.endings);
        eprintln!("HTTP statuses: {:?}", self.statuses);
        eprintln!(
            "acks refused with a reason: {}, throttled: {}; requests cut by the server: {}",
            self.refusals,
            self.throttled,
            self.cut.len()
        );
        eprintln!(
            "probe CONNECTs sent again after an earlier CONNECT was refused: {}",
            self.asked_again
        );
    }
}

/// Asks `/ready` every 100 ms until `stop`: the slowest answer, and each one that was not a
/// 200 within [`wire::STEP`].
async fn watch_ready(
    http: reqwest::Client,
    url: String,
    mut stop: watch::Receiver<bool>,
) -> (Duration, usize, Vec<String>) {
    let (mut slowest, mut asked, mut failed) = (Duration::ZERO, 0, Vec::new());
    while !*stop.borrow() {
        let started = Instant::now();
        match http.get(&url).timeout(wire::STEP).send().await {
            Ok(res) if res.status() == 200 => {}
            Ok(res) => failed.push(format!("status {}", res.status())),
            Err(e) => failed.push(e.to_string()),
        }
        slowest = slowest.max(started.elapsed());
        asked += 1;
        let _ = tokio::time::timeout(Duration::from_millis(100), stop.changed()).await;
    }
    (slowest, asked, failed)
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The sum of every series of metric `name` in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !rest.starts_with(['{', ' ']) {
                return None;
            }
            line.rsplit(' ').next()?.parse::<f64>().ok()
        })
        .sum()
}

async fn flood_then_check() {
    let app = spawn_app(Backend::Memory).await;
    let room = app.boardroom("Ada", 4).await;
    let token = app.token("mallory");
    let mut rng = StdRng::seed_from_u64(0x5eed_50c7);
    let plans = plan_sessions(&mut rng, &token);
    let sessions = plans.len();
    // After planning: the frames themselves (some of a MiB) are the test's memory, not the
    // server's.
    let rss_before = rss_kib();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let http = reqwest::Client::new();

    let (stop, stopped) = watch::channel(false);
    let ready = tokio::spawn(watch_ready(app.http.clone(), app.url("/ready"), stopped));
    let flood_started = Instant::now();
    let outcomes: Vec<_> = tokio::time::timeout(
        FLOOD_WITHIN,
        futures_util::stream::iter(plans)
            .map(|plan| wire::run(&app, &http, plan))
            .buffer_unordered(CONCURRENT)
            .collect(),
    )
    .await
    .unwrap_or_else(|_| panic!("the flood did not end within {FLOOD_WITHIN:?}"));
    let flood_took = flood_started.elapsed();
    stop.send(true).unwrap();
    let (slowest, asked, not_ready) = ready.await.unwrap();
    drop(http);

    let mut tally = Tally::default();
    for (transport, phase, outcome) in outcomes {
        tally.add(transport, phase, outcome);
    }
    tally.print();
    assert_no_server_panic();
    eprintln!(
        "{sessions} sessions in {:.1} s; /ready asked {asked} times meanwhile, slowest {} ms",
        flood_took.as_secs_f64(),
        slowest.as_millis()
    );

    assert!(
        tally.problems.is_empty(),
        "{} problems:\n{}",
        tally.problems.len(),
        tally.problems.join("\n")
    );
    assert!(
        not_ready.is_empty(),
        "/ready failed during the flood: {not_ready:?}"
    );
    assert!(
        tally.total_sent() >= FRAMES_SENT_AT_LEAST,
        "only {} frames sent",
        tally.total_sent()
    );
    for kind in Kind::ALL {
        for transport in [Transport::WebSocket, Transport::Polling] {
            for phase in [Phase::BeforeAuth, Phase::Pipelined, Phase::AfterAuth] {
                assert!(
                    tally.sent.contains_key(&(kind, transport, phase)),
                    "no {kind:?} frame sent over {transport:?} {phase:?}"
                );
            }
        }
    }
    let silent: usize = tally
        .endings
        .iter()
        .filter(|((_, _, ending), _)| *ending == Ending::Silent)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        silent,
        0,
        "sessions neither answered nor closed: {:?}\n{}",
        tally.endings,
        tally.silent.join("\n")
    );
    for (transport, status) in tally.statuses.keys() {
        let code = status.split(' ').next().unwrap_or_default();
        assert!(
            matches!(code, "101" | "200" | "400" | "413"),
            "{transport:?} answered {status}"
        );
    }
    assert!(
        tally.cut.iter().all(|(kind, _)| *kind == Kind::Oversize),
        "only an oversized body may be cut short: {:?}",
        tally.cut
    );
    assert!(
        tally.bare_refusals.is_empty(),
        "acks refused without a reason: {:?}",
        tally.bare_refusals
    );
    assert!(
        tally.refusals > 0,
        "no refusal was acked: the frames never reached a handler"
    );

    nothing_left_behind(&app, tasks_before).await;
    let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    eprintln!("resident memory grew by {growth_mib} MiB over the flood");
    assert!(
        growth_mib < RSS_GROWTH_MAX_MIB,
        "resident memory grew by {growth_mib} MiB"
    );

    a_websocket_client_gets_every_event(&app, room).await;
    a_polling_client_gets_every_event(&app, room).await;
    let (owed, delivered) = a_small_load_run_loses_nothing(&app, 40, 60).await;
    assert_eq!(owed, delivered);
}

/// Every hostile session is gone from the server: no socket in the namespace, the connected
/// gauge back to 0, as many disconnects as connects; and `/ready` says ready.
async fn nothing_left_behind(app: &TestApp, tasks_before: usize) {
    let within = Duration::from_secs(10);
    let deadline = Instant::now() + within;
    loop {
        let metrics = app.metrics().await;
        let sockets: Vec<String> = app
            .state
            .realtime
            .io
            .sockets()
            .iter()
            .map(|s| format!("{} connected={} rooms={:?}", s.id, s.connected(), s.rooms()))
            .collect();
        let gauge = metric_sum(&metrics, SOCKETS_CONNECTED);
        let (connects, disconnects) = (
            metric_sum(&metrics, CONNECTS),
            metric_sum(&metrics, DISCONNECTS),
        );
        if sockets.is_empty() && gauge == 0.0 && connects == disconnects {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {within:?}: {} sockets left {sockets:?}, gauge {gauge}, {connects} connects, \
             {disconnects} disconnects",
            sockets.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = app.metrics().await;
    let connects = metric_sum(&metrics, CONNECTS);
    assert!(
        connects > 0.0,
        "no hostile session ever connected: {metrics}"
    );
    let reasons: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with(DISCONNECTS))
        .collect();
    eprintln!("server: {connects} sockets connected and disconnected: {reasons:?}");
    // Not asserted: socketioxide keeps a session that never completed a CONNECT (and its
    // connect-timeout task) for its 45 s connect timeout, even once the session is closed.
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    eprintln!("tokio tasks alive: {tasks_before} before the flood, {tasks} after it");
    let ready = app.get_json("/ready").await;
    assert_eq!(ready["status"], "ready", "{ready}");
}

async fn a_websocket_client_gets_every_event(app: &TestApp, room: i64) {
    let token = app.token("ada");
    let mut tab = Tab::connect(app, &token)
        .await
        .expect("a correct client connects after the flood");
    let ack = tab.join(&format!("boardroom-{room}")).await;
    assert!(ack.ok, "{ack:?}");
    let mut booked = Vec::new();
    for hour in 0..EVENTS_AFTER {
        booked.push(
            app.book(&token, room, 8 + hour).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let mut received = Vec::new();
    for _ in 0..EVENTS_AFTER {
        let (kind, payload) = tab.next().await;
        assert_eq!(kind, BookingEventKind::Created);
        received.push(payload.body.booking["id"].as_i64().unwrap());
    }
    assert_eq!(received, booked, "every event, in order");
    assert!(
        tab.try_next(Duration::from_millis(300)).await.is_none(),
        "no event twice"
    );
    tab.close().await;
}

async fn a_polling_client_gets_every_event(app: &TestApp, room: i64) {
    let token = app.token("grace");
    let session = wire::Polling::connect(app, &token).await;
    let join = format!("421[\"{JOIN_ROOM}\",\"boardroom-{room}\"]");
    let ack = session.ask(&join, "431[").await;
    assert!(ack.contains("\"ok\":true"), "{ack}");
    for hour in 0..EVENTS_AFTER {
        let id = app.book(&token, room, 12 + hour).await["id"]
            .as_i64()
            .unwrap();
        let event = session.next_packet("42[\"booking-created\"").await;
        let payload: serde_json::Value = serde_json::from_str(&event[2..]).unwrap();
        assert_eq!(payload[1]["booking"]["id"], id, "{event}");
    }
}
