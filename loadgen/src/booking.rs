//! The booking workload on the engine (`engine`): tabs of the booking web app's pages
//! against the reference server's contract (or any server of it), goose's REST actors writing
//! bookings, and the server's event log as the source of truth (`judge::verify`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use booking_server::realtime::protocol::BookingEventKind;
use goose::config::GooseConfiguration;
use goose::prelude::*;

use crate::config::Config;
use crate::drive::browser::{Browser, BrowserTab, Harness};
use crate::drive::run::{Judging, LogNames, LogRead, Run};
use crate::drive::tab::Tab;
use crate::engine::{Acted, Outcome, Workload};
use crate::error::RunError;
use crate::judge::fault::Scenario;
use crate::judge::verify::{Joined, LogEvent, PATHS, RoomRef, TabView, Verdict, judge_tab};
use crate::plan::ROOM_CLASSES;
use crate::record::latency::{Percentiles, histogram, now_us};
use crate::record::stats::{Action, Stats, UNAVAILABLE};
use crate::report::{
    Actions, Breakdown, ClientRow, Examples, FaultReport, Gate, GateKind, LatencyReport, Memory,
    Report, Throughput,
};
use crate::{drive, judge, record, report};

/// A booking run on the engine, with what its phases hand each other.
pub struct Booking {
    run: Arc<Run>,
    chromium: Option<std::path::PathBuf>,
    browser: tokio::sync::Mutex<Option<Browser>>,
    /// The timeline's once-a-second sampler, stopped when the run is judged.
    sampler: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The late start of actions, the committed-seq tracker, the fault scenario, and the
    /// tabs' lives: stopped when the action window is over.
    background: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    fault: Mutex<Option<tokio::task::JoinHandle<()>>>,
    lives: std::sync::OnceLock<drive::life::Lives>,
    /// Actions, deliveries and when, at the last progress line.
    progress: Mutex<(u64, u64, Instant)>,
}

/// Runs the booking workload with receive spans going to `traces` (a test's in-memory
/// exporter, say).
pub async fn run(
    config: Config,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Result<Outcome, RunError> {
    let mut config = config;
    config.apply_stages();
    config.validate().map_err(RunError::Setup)?;
    let baseline = crate::engine::baseline(
        &config,
        &crate::report::Workload::of(&config),
        config.gate_stage,
    )?;
    if let Ok((open_files, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
        enough_open_files(&config, open_files).map_err(RunError::Setup)?;
    }
    let chromium = match config.browser_tabs {
        0 => None,
        _ => Some(
            drive::browser::find_chromium(config.chromium.as_deref()).map_err(RunError::Setup)?,
        ),
    };
    let every = config.trace_every;
    let mut run = Run::setup(config).await?;
    run.rec.traces = traces.map(|p| record::traces::ReceiveSpans::new(p, every));
    let booking = Booking {
        run: Arc::new(run),
        chromium,
        browser: tokio::sync::Mutex::new(None),
        sampler: Mutex::new(None),
        background: Mutex::new(Vec::new()),
        fault: Mutex::new(None),
        lives: std::sync::OnceLock::new(),
        progress: Mutex::new((0, 0, Instant::now())),
    };
    crate::engine::run(Arc::new(booking), baseline).await
}

impl Workload for Booking {
    fn config(&self) -> &Config {
        &self.run.setup.config
    }

    fn seed(&self) -> u64 {
        self.run.setup.seed
    }

    fn generator(&self) -> &record::saturation::Watch {
        &self.run.rec.generator
    }

    fn own_tabs(&self) -> Vec<usize> {
        (0..self.run.tabs.len()).collect()
    }

    async fn serve_metrics(
        self: &Arc<Self>,
        addr: std::net::SocketAddr,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        record::metrics::serve(addr, self.run.clone())
            .await
            .map_err(|e| e.to_string())
    }

    /// Opens the browser pages (joined before anything else), then the protocol tabs at the
    /// ramp's rate (with `--stages`, all launched at once, each opening when its stage says),
    /// and the fault scenario; actions start once every tab joined.
    async fn open(self: &Arc<Self>) -> Result<Instant, RunError> {
        let run = &self.run;
        if let Some(chromium) = &self.chromium {
            let browser = open_browser_tabs(run, chromium).await?;
            *self.browser.lock().await = Some(browser);
        }
        let ramp = match &run.setup.config.stages {
            // Every life starts at once; if some tabs never join, act 1 s + 15 s after.
            Some(_) => Duration::from_secs(1),
            None => Duration::from_secs_f64(run.tabs.len() as f64 / run.setup.config.ramp_up),
        };
        if let Some(stages) = &run.setup.config.stages {
            run.start_actions();
            let zero = wall_us(run.actions_start().await);
            run.rec.timeline.set_stage_ends(
                stages
                    .bounds()
                    .into_iter()
                    .map(|(_, end)| zero + end.as_micros() as i64),
            );
        }
        let sampler = {
            let run = run.clone();
            tokio::spawn(async move { sample_timeline(&run).await })
        };
        *self.sampler.lock().expect("poisoned") = Some(sampler);
        *self.background.lock().expect("poisoned") = spawn_background(run, ramp);
        *self.fault.lock().expect("poisoned") = (run.setup.config.scenario != Scenario::None)
            .then(|| tokio::spawn(drive::fault::run_fault(run.clone())));
        // The tabs live outside goose; goose starts with the actions and drives the REST
        // actors.
        let start = Instant::now();
        let windows = (0..run.tabs.len())
            .map(|index| {
                let window = match run.stage_window(index) {
                    Some((open_at, close_at)) => drive::life::Window { open_at, close_at },
                    None => drive::life::Window {
                        open_at: start
                            + Duration::from_secs_f64(index as f64 / run.setup.config.ramp_up),
                        close_at: None,
                    },
                };
                (index, window)
            })
            .collect();
        let _ = self.lives.set(drive::life::spawn(run, windows));
        Ok(run.actions_start().await)
    }

    /// goose's actors act for the window.
    async fn act(self: &Arc<Self>, _start: Instant) -> Result<Acted, RunError> {
        let goose_result = goose_attack(&self.run).await;
        let end = Instant::now();
        let goose_thresholds_failed = match goose_result {
            Ok(()) => false,
            Err(GooseError::ThresholdsFailed { .. }) => true,
            Err(e) => return Err(RunError::Goose(goose_reason(&e))),
        };
        Ok(Acted {
            end,
            goose_thresholds_failed,
        })
    }

    /// The tabs end their lives, and a fault still healing is let finish.
    async fn wind_down(self: &Arc<Self>) {
        let run = &self.run;
        if let Some(lives) = self.lives.get() {
            lives.stop(run.as_ref(), TURN_GRACE).await;
        }
        for task in std::mem::take(&mut *self.background.lock().expect("poisoned")) {
            task.abort();
        }
        let fault = self.fault.lock().expect("poisoned").take();
        if let Some(fault) = fault {
            // Never leave the system broken: let a heal command still running finish.
            let healed = async {
                while !run.rec.fault.heal_done() && !fault.is_finished() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(150), healed).await;
            fault.abort();
        }
    }

    /// Churn and storms drop a protocol tab: it reconnects, rejoins and replays on its turn,
    /// woken now.
    async fn cut(self: &Arc<Self>, tab: usize) {
        self.run.tabs[tab].life.cut();
    }

    fn progress(&self) -> String {
        progress_line(&self.run, &mut self.progress.lock().expect("poisoned"))
    }

    /// Reads the event log and judges every tab (and browser page) against it.
    async fn report(self: &Arc<Self>, acted: &Acted) -> Result<Report, RunError> {
        let run = &self.run;
        if let Some(sampler) = self.sampler.lock().expect("poisoned").take() {
            sampler.abort();
        }
        run.rec.timeline.sample(
            timeline_counters(run),
            run.rec.latency.fanout().total(),
            now_us(),
        );
        let browser = self.browser.lock().await.take();
        let pages = match &browser {
            Some(b) => Some((&b.tabs[..], b.snapshots().await)),
            None => None,
        };
        let report = verify_and_report(run, acted.end, pages).await;
        if let Some(browser) = browser {
            browser.close().await;
        }
        if let Some(traces) = &run.rec.traces {
            let _ = traces.provider.force_flush();
        }
        report
    }

    /// Hangs up the tabs and stops the embedded server; after a run that failed part way,
    /// also what was still running of it.
    async fn close(self: &Arc<Self>) {
        if let Some(lives) = self.lives.get() {
            lives.stop(self.run.as_ref(), Duration::ZERO).await;
        }
        let sampler = self.sampler.lock().expect("poisoned").take();
        let fault = self.fault.lock().expect("poisoned").take();
        let background = std::mem::take(&mut *self.background.lock().expect("poisoned"));
        for task in background.into_iter().chain(sampler).chain(fault) {
            task.abort();
        }
        for tab in &self.run.tabs {
            tab.disconnect().await;
        }
        if let Some(server) = self.run.take_server() {
            server.stop().await;
        }
    }
}

/// Open files a run needs: a socket per tab (and the embedded server's end of it), REST
/// connections, the log read, some spare.
fn open_files_needed(config: &Config) -> u64 {
    // This generator's share of the tabs (`--shard`).
    let shard = config.shard;
    let tabs = (config.tabs.saturating_sub(shard.index)).div_ceil(shard.count) as u64;
    let sockets = if config.hosts.is_empty() {
        2 * tabs
    } else {
        tabs
    };
    sockets + tabs / 20 + 256
}

/// Refuses a run that would run out of open files part way (connects failing with EMFILE,
/// REST actions hanging) with what to do instead.
fn enough_open_files(config: &Config, open_files: u64) -> Result<(), String> {
    let needed = open_files_needed(config);
    if needed <= open_files {
        return Ok(());
    }
    let server = if config.hosts.is_empty() {
        " (the embedded server's sockets count too: a --host runs it apart)"
    } else {
        ""
    };
    let share = if config.shard.count > 1 {
        format!(" (shard {})", config.shard)
    } else {
        String::new()
    };
    Err(format!(
        "--tabs {}{share} needs about {needed} open files and this process may open {open_files}{server}: raise `ulimit -n`, lower --tabs, or split the tabs over several generator processes (--shard)",
        config.tabs
    ))
}

/// Starts Chromium with the run's pages and waits until each has joined its rooms, so the
/// pages are owed the whole action window, like the protocol tabs.
async fn open_browser_tabs(run: &Run, chromium: &std::path::Path) -> Result<Browser, RunError> {
    let started = Instant::now();
    let browser = Browser::open(run, chromium)
        .await
        .map_err(|e| RunError::Setup(format!("--browser-tabs: {e}")))?;
    browser
        .wait_joined()
        .await
        .map_err(|e| RunError::Setup(format!("--browser-tabs: {e}")))?;
    eprintln!(
        "[browser] {} pages of the web app open and joined in {:.1} s ({})",
        browser.tabs.len(),
        started.elapsed().as_secs_f64(),
        chromium.display()
    );
    Ok(browser)
}

/// The wall clock (µs) of `at`.
fn wall_us(at: Instant) -> i64 {
    let now = Instant::now();
    match at.checked_duration_since(now) {
        Some(ahead) => now_us() + ahead.as_micros() as i64,
        None => now_us() - now.duration_since(at).as_micros() as i64,
    }
}

/// How long the tabs may take to finish their last turn once the action window is over.
const TURN_GRACE: Duration = Duration::from_secs(20);

/// goose, for the action window: its users are the actors and the reporter
/// (`drive::scenario`), all launched within a tenth of a second, before the first ticket
/// ([`drive::run::ACTORS_LEAD`]).
async fn goose_attack(run: &Arc<Run>) -> Result<(), GooseError> {
    let users = drive::scenario::users(run);
    let mut goose = GooseConfiguration::default();
    goose.host = Some(run.setup.hosts[0].clone());
    goose.users = Some(users);
    goose.increase_rate = Some(format!("{}", users * 10));
    // The actions' window, and their think time and a little more, from now.
    let end = run.end_at().unwrap_or_else(Instant::now);
    let run_time = end.saturating_duration_since(Instant::now());
    goose.run_time = Some(format!("{}s", run_time.as_secs_f64().ceil().max(1.0)));
    // What the tabs recorded before goose started (connects and joins of the ramp) is handed
    // to goose as soon as the reporter starts: keep it.
    goose.no_reset_metrics = true;
    goose.report_file = run.setup.config.report_file.clone();
    goose.threshold = run.setup.config.thresholds.clone();
    goose.baseline_file = run.setup.config.goose_baseline_file.clone();
    goose.no_print_metrics = !run.setup.config.goose_metrics;
    goose.quiet = 1;
    goose.no_telnet = true;
    // Each user's client is replaced by the loadgen's own when it starts (scenario::start).
    let client = goose::client::GooseClientBuilder::new()
        .accept_invalid_certs(run.setup.config.insecure)
        .without_cookies()
        .timeout(Duration::from_secs(30));
    tracing::info!(users, ?run_time, "starting goose");
    GooseAttack::initialize_with_config(goose)?
        .register_scenario(drive::scenario::actor_scenario(run))
        .set_client_builder_without_cookies(client)?
        .execute()
        .await
        .map(|_| ())
}

/// goose's error with its detail: its own message for a bad option names neither the option
/// nor what is wrong with it.
fn goose_reason(e: &GooseError) -> String {
    match e {
        GooseError::InvalidOption {
            option,
            value,
            detail,
        } => format!("{e}: {option} `{value}`: {detail}"),
        e => e.to_string(),
    }
}

/// Samples the timeline once a second from now on.
async fn sample_timeline(run: &Run) {
    run.rec.timeline.start(now_us());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let fanout = run.rec.latency.fanout().total();
        run.rec
            .timeline
            .sample(timeline_counters(run), fanout, now_us());
    }
}

fn timeline_counters(run: &Run) -> record::timeline::Counters {
    let s = &run.rec.stats;
    record::timeline::Counters {
        tabs_connected: Stats::get(&s.tabs_connected),
        tabs_joined: Stats::get(&s.tabs_joined),
        tabs_left: Stats::get(&s.tabs_left),
        actions: s.actions(),
        deliveries: Stats::get(&s.deliveries),
    }
}

/// The start of actions when joins lag, and the committed `seq` closing tabs take their
/// cutoffs from (`--stages`).
fn spawn_background(run: &Arc<Run>, ramp: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let r = run.clone();
    tasks.push(tokio::spawn(async move {
        // If some tabs never join, act anyway once the ramp is well over.
        tokio::time::sleep(ramp + Duration::from_secs(15)).await;
        if r.start_actions() {
            tracing::warn!("not every tab joined: actions start without them");
        }
    }));
    if run.setup.config.stages.is_some() {
        let r = run.clone();
        tasks.push(tokio::spawn(async move { r.track_committed().await }));
    }
    if !run.setup.config.ledger_window.is_zero() {
        let r = run.clone();
        tasks.push(tokio::spawn(async move { judge_as_it_goes(&r).await }));
    }
    tasks
}

/// A progress line of a booking run: tabs, actions and deliveries with their rates since the
/// last line, fan-out, reconnects, and the generator's load.
fn progress_line(run: &Run, last: &mut (u64, u64, Instant)) -> String {
    let s = &run.rec.stats;
    let (actions, deliveries) = (s.actions(), Stats::get(&s.deliveries));
    let secs = last.2.elapsed().as_secs_f64().max(1e-3);
    let fanout = Percentiles::of(&run.rec.latency.fanout().total());
    let generator = run.rec.generator.last().map_or(String::new(), |g| {
        let mark = if crate::record::saturation::Limits::of(&run.setup.config)
            .check(&g)
            .any()
        {
            " SATURATED"
        } else {
            ""
        };
        format!(
            " | generator cpu {:.0}% lag {:.0} ms{mark}",
            g.cpu_share * 100.0,
            g.lag_ms
        )
    });
    let closed = match Stats::get(&s.tabs_left) {
        0 => String::new(),
        n => format!(" closed {n}"),
    };
    let line = format!(
        "tabs {}/{} joined {}{closed} | actions {} ({:.1}/s) | deliveries {} ({:.0}/s) | fan-out p99 {:.2} ms | reconnects {} | down {}{generator}",
        Stats::get(&s.tabs_connected),
        run.tabs.len(),
        Stats::get(&s.tabs_joined),
        actions,
        (actions - last.0) as f64 / secs,
        deliveries,
        (deliveries - last.1) as f64 / secs,
        fanout.p99,
        Stats::get(&s.reconnects),
        s.tabs_down.load(Ordering::Relaxed),
    );
    *last = (actions, deliveries, Instant::now());
    line
}

/// What tab `tab` is judged by besides its ledger: its rooms (user rooms interned by `names`)
/// and the nodes it was on.
fn judged_by(tab: &Tab, names: &mut LogNames) -> (Vec<Joined>, Vec<(i64, Option<u32>)>) {
    let nodes = tab
        .node_segments()
        .into_iter()
        .map(|(from, node)| (from, node.map(|n| names.node(&n))))
        .collect();
    let joined = tab
        .joined
        .lock()
        .expect("poisoned")
        .iter()
        .map(|(name, j)| match j.room {
            RoomRef::User(_) => Joined {
                room: names.room(name).unwrap_or(j.room),
                ..*j
            },
            _ => *j,
        })
        .collect();
    (joined, nodes)
}

/// Every [`judge::window::pass_every`] of the run, judges each steady tab up to the horizon
/// (what was committed `--ledger-window` ago) and drops those bits of its ledger, so long
/// runs keep a window's worth a tab (`judge::window`). A read that fails skips the pass.
async fn judge_as_it_goes(run: &Run) {
    let every = judge::window::pass_every(run.setup.config.ledger_window);
    loop {
        tokio::time::sleep(every).await;
        let mut judging = run.judging.lock().await;
        if let Some(end) = run.read_last_seq().await {
            judging.horizon.read(Instant::now(), end);
        }
        let Some(horizon) = judging.horizon.at(Instant::now()) else {
            continue;
        };
        if horizon > judging.log.through
            && let Err(e) = run.read_log_after(&mut judging.log, Some(horizon), 0).await
        {
            tracing::warn!(error = %e, "reading the event log to judge as the run goes failed");
            continue;
        }
        let Judging { log, settled, .. } = &mut *judging;
        let horizon = log.through;
        let mut tabs = 0;
        for tab in run.tabs.iter().filter(|t| t.steady()) {
            let (joined, nodes) = judged_by(tab, &mut log.names);
            let view = TabView {
                tab: tab.index,
                joined: &joined,
                nodes: &nodes,
                events: &log.events,
            };
            let mut ledger = tab.ledger.lock().expect("poisoned");
            judge::window::settle_tab(&view, &mut ledger, horizon, settled);
            tabs += 1;
        }
        tracing::debug!(
            horizon,
            tabs,
            owed = settled.total.owed,
            "judged as the run goes"
        );
    }
}

async fn verify_and_report(
    run: &Arc<Run>,
    window_end: Instant,
    pages: Option<(&[BrowserTab], Vec<Harness>)>,
) -> Result<Report, RunError> {
    let mut judging = run.judging.lock().await;
    let log_end = run.read_log(&mut judging.log).await?;
    let Judging { log, settled, .. } = &mut *judging;
    let LogRead { events, names, .. } = log;
    let (events, users) = (&events[..], names);
    let judged_during_run = settled.total.owed;
    let mut verdict = std::mem::take(settled);
    let mut ledger_bytes = 0;
    for tab in &run.tabs {
        let (joined, nodes) = judged_by(tab, users);
        let view = TabView {
            tab: tab.index,
            joined: &joined,
            nodes: &nodes,
            events,
        };
        let ledger = tab.ledger.lock().expect("poisoned");
        ledger_bytes += ledger.heap_bytes() as u64;
        judge_tab(&view, &ledger, log_end, &mut verdict);
    }

    let protocol = verdict.total;
    let browser = pages.map(|(tabs, pages)| {
        let first = run.tabs.len();
        drive::browser::judge(
            tabs,
            &pages,
            run.setup.start_seq,
            first,
            events,
            log_end,
            users,
        )
    });
    if let Some(b) = &browser {
        verdict.merge(&b.verdict);
    }

    let started = run.actions_started.get().copied().unwrap_or(window_end);
    let window = window_end
        .saturating_duration_since(started)
        .min(run.setup.config.duration)
        .as_secs_f64()
        .max(1e-3);
    let fanout = run.rec.latency.fanout();
    let fanout_total = fanout.total();
    let (mut action, mut spread) = (histogram(), histogram());
    let timings = run.rec.latency.timings();
    for timing in timings.values() {
        if let (Some(first), Some(last)) = (timing.first_receipt_us, timing.last_receipt_us) {
            let _ = spread.record((last - first).max(1) as u64);
            if let Some(sent) = timing.sent_us {
                let _ = action.record((last - sent).max(1) as u64);
            }
        }
    }
    let s = &run.rec.stats;
    let all = |result: usize| {
        Action::ALL
            .iter()
            .map(|a| s.action_count(*a, result))
            .sum::<u64>()
    };
    let actions = Actions {
        created: s.action_count(Action::Create, 0),
        updated: s.action_count(Action::Update, 0),
        cancelled: s.action_count(Action::Cancel, 0),
        deleted: s.action_count(Action::Delete, 0),
        // Deliberate conflicts refused as they should be, and 409s nobody planned.
        conflicts: s.action_count(Action::Conflict, 0) + all(1),
        errors: all(2),
        unavailable: all(UNAVAILABLE),
    };
    let acked = run.rec.acked_seqs();
    let acked_missing = missing_from_log(&acked, events);
    let _ = s.verdict.set(verdict.total);
    let latency = LatencyReport {
        fanout: Percentiles::of(&fanout_total),
        action: Percentiles::of(&action),
        spread: Percentiles::of(&spread),
        schedule_lag: Percentiles::of(&run.rec.schedule_lags()),
    };
    let throughput = Throughput {
        deliveries_per_s: verdict.total.delivered as f64 / window,
        actions_per_s: s.actions() as f64 / window,
        // With --stages: what they offer over their total time.
        target_actions_per_s: run
            .setup
            .config
            .stages
            .as_ref()
            .map_or(run.setup.config.actions_per_sec, |s| {
                s.offered(run.setup.config.actions_per_sec) / s.total().as_secs_f64()
            }),
    };
    let fault = fault_report(run, &verdict, &actions, acked.len() as u64, acked_missing);
    let generator = record::saturation::GeneratorReport {
        cpu_s: record::saturation::cpu_seconds().unwrap_or(0.0),
        ..run.generator_report()
    };
    let seconds = run.rec.timeline.seconds(
        &timings,
        &record::timeline::Outcomes {
            recovered: &verdict.recovered_by_seq,
            lost: &verdict.lost_by_seq,
        },
    );
    let stages = match (&run.setup.config.stages, run.actions_started.get()) {
        (Some(stages), Some(zero)) => stages.reports(report::stages::StageInputs {
            base_rate: run.setup.config.actions_per_sec,
            zero_us: wall_us(*zero),
            timeline_zero_us: run.rec.timeline.zero_us().unwrap_or_default(),
            seconds: &seconds,
            fanout: run.rec.timeline.stage_fanout(),
            timings: &timings,
        }),
        _ => Vec::new(),
    };
    let judged_stage = run
        .setup
        .config
        .gate_stage
        .and_then(|n| stages.get(n.saturating_sub(1)));
    let mut gates = gates(
        run,
        &verdict,
        &latency,
        &throughput,
        &actions,
        &generator,
        judged_stage,
    );
    if let Some(b) = &browser {
        gates.insert(
            1,
            Gate::of(
                GateKind::BrowserTabsJoined,
                run.setup.config.browser_tabs as f64,
                b.joined as f64,
                None,
            ),
        );
    }
    let by_client = by_client(run, protocol, &latency, browser);
    gates.push(Gate::of(
        GateKind::AckedWritesMissing,
        0.0,
        acked_missing as f64,
        None,
    ));
    if let Some(f) = &fault {
        gates.extend(fault_gates(run.setup.config.scenario, f));
    }
    let by_event_type = BookingEventKind::ALL
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let b = Breakdown {
                delivery: verdict.by_kind[k],
                fanout_ms: Percentiles::of(&fanout.by_kind(k)),
            };
            (kind.name().to_string(), b)
        })
        .collect();
    let by_room_size = ROOM_CLASSES
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let b = Breakdown {
                delivery: verdict.by_class[c],
                fanout_ms: Percentiles::of(&fanout.by_class(c)),
            };
            (class.to_string(), b)
        })
        .collect();
    let histograms = report::Histograms {
        fanout: record::latency::encode(&fanout_total),
        action: record::latency::encode(&action),
        spread: record::latency::encode(&spread),
        schedule_lag: record::latency::encode(&run.rec.schedule_lags()),
        fanout_by_event_type: BookingEventKind::ALL
            .iter()
            .enumerate()
            .map(|(k, kind)| {
                (
                    kind.name().to_string(),
                    record::latency::encode(&fanout.by_kind(k)),
                )
            })
            .collect(),
        fanout_by_room_size: ROOM_CLASSES
            .iter()
            .enumerate()
            .map(|(c, class)| {
                (
                    class.to_string(),
                    record::latency::encode(&fanout.by_class(c)),
                )
            })
            .collect(),
    };
    let rss = report::rss_bytes();
    let faults_injected = run
        .embedded_metrics()
        .map(|metrics| faults_from_metrics(&metrics))
        .unwrap_or_default();
    let report = Report {
        verdict: String::new(),
        tabs: run.tabs.len() as u64,
        tabs_connected: Stats::get(&s.tabs_connected),
        tabs_joined: Stats::get(&s.tabs_joined),
        duration_s: window,
        seed: run.setup.seed,
        run: Some(crate::report::RunInfo::of(&run.setup.config)),
        hosts: run.setup.hosts.clone(),
        embedded_server: run.setup.embedded,
        actions,
        delivery: verdict.total,
        latency_ms: latency,
        throughput,
        gates,
        by_event_type,
        by_room_size,
        by_node: PATHS
            .iter()
            .zip(verdict.by_path)
            .map(|(path, counts)| (path.to_string(), counts.into()))
            .collect(),
        by_client,
        volatile: report::Volatile {
            editing: run.rec.volatile.report(),
        },
        reconnects: Stats::get(&s.reconnects),
        drops: Stats::get(&s.drops),
        resyncs: Stats::get(&s.resyncs),
        events_replayed: Stats::get(&s.replayed),
        events_logged: events.len() as u64,
        seq_range: [run.setup.start_seq, log_end],
        memory: Memory {
            rss_bytes: rss,
            rss_per_tab_bytes: rss / run.tabs.len().max(1) as u64,
            ledger_bytes,
            judged_during_run,
        },
        generator,
        examples: Examples {
            lost: verdict.lost_examples,
            unexpected: verdict.unexpected_examples,
        },
        faults_injected,
        fault,
        timeline: seconds,
        histograms,
        stages,
        app: None,
    };
    Ok(report)
}

/// The by-client rows: the generator's protocol tabs, and the browser pages when there are.
fn by_client(
    run: &Run,
    protocol: judge::verify::DeliveryCounts,
    latency: &LatencyReport,
    browser: Option<drive::browser::BrowserVerdict>,
) -> BTreeMap<String, ClientRow> {
    let mut rows = BTreeMap::new();
    rows.insert(
        "protocol".to_string(),
        ClientRow {
            tabs: run.tabs.len() as u64,
            tabs_joined: Stats::get(&run.rec.stats.tabs_joined),
            delivery: protocol,
            fanout_ms: latency.fanout,
            ..ClientRow::default()
        },
    );
    let b = browser.unwrap_or_default();
    rows.insert(
        "browser".to_string(),
        ClientRow {
            tabs: run.setup.config.browser_tabs as u64,
            tabs_joined: b.joined,
            delivery: b.verdict.total,
            fanout_ms: b.fanout.as_ref().map(Percentiles::of).unwrap_or_default(),
            not_rendered: b.not_rendered,
            editing_received: b.editing,
        },
    );
    rows
}

/// `seq`s of acknowledged writes that are not in the log (`events` ascending by `seq`).
fn missing_from_log(acked: &[i64], events: &[LogEvent]) -> u64 {
    acked
        .iter()
        .filter(|seq| events.binary_search_by_key(*seq, |e| e.seq).is_err())
        .count() as u64
}

/// The fault section of the report, with a scenario.
fn fault_report(
    run: &Run,
    verdict: &Verdict,
    actions: &Actions,
    acked_writes: u64,
    acked_writes_missing: u64,
) -> Option<FaultReport> {
    let scenario = run.setup.config.scenario;
    if scenario == Scenario::None {
        return None;
    }
    let t = &run.rec.fault;
    let started = run.actions_started.get().copied();
    let since = |at: Option<Instant>| Some(at?.saturating_duration_since(started?).as_secs_f64());
    let (fault_at, heal_at) = (t.fault_at.get().copied(), t.heal_at.get().copied());
    let recovered = t.recovered_at(scenario);
    let after =
        |from: Option<Instant>| Some(recovered?.saturating_duration_since(from?).as_secs_f64());
    let (after_fault, after_heal) = (after(fault_at), after(heal_at));
    let mut recovery_ms = histogram();
    for d in run.rec.recoveries().iter() {
        let _ = recovery_ms.record((d.as_micros() as u64).max(1));
    }
    let s = &run.rec.stats;
    Some(FaultReport {
        scenario: scenario.name().to_string(),
        fault_at_s: since(fault_at),
        heal_at_s: since(heal_at),
        recovery_measure: scenario.recovery_measure().to_string(),
        recovery_s: match scenario {
            Scenario::RedisRestart | Scenario::RedisPause => after_heal,
            _ => after_fault,
        },
        recovery_after_fault_s: after_fault,
        recovery_after_heal_s: after_heal,
        drops: Stats::get(&s.drops),
        reconnects: Stats::get(&s.reconnects),
        tabs_not_recovered: s.tabs_down.load(Ordering::Relaxed).max(0) as u64,
        tab_recovery_ms: Percentiles::of(&recovery_ms),
        resyncs: Stats::get(&s.resyncs),
        resync_recovered: Stats::get(&s.resync_recovered),
        unavailable: actions.unavailable,
        acked_writes,
        acked_writes_missing,
        delivery: verdict.total.into(),
        commands: t.commands.lock().expect("poisoned").clone(),
    })
}

/// What a fault scenario must show besides no lost deliveries: its commands ran, its recovery
/// was observed, and (node-kill) every dropped tab got back.
fn fault_gates(scenario: Scenario, f: &FaultReport) -> Vec<Gate> {
    let failed = f.commands.iter().filter(|c| !c.ok).count();
    let mut gates = vec![
        Gate::at_most("fault commands failed", 0.0, failed as f64),
        Gate::at_least(
            "fault recovery observed",
            1.0,
            f64::from(u8::from(f.recovery_s.is_some())),
        ),
    ];
    if scenario == Scenario::NodeKill {
        gates.push(Gate::at_most(
            "dropped tabs not recovered",
            0.0,
            f.tabs_not_recovered as f64,
        ));
    }
    gates
}

fn gates(
    run: &Run,
    v: &Verdict,
    l: &LatencyReport,
    t: &Throughput,
    a: &Actions,
    generator: &record::saturation::GeneratorReport,
    stage: Option<&report::StageReport>,
) -> Vec<Gate> {
    let c = &run.setup.config;
    let allowed = report::Allowed {
        lost: c.allow_lost,
        duplicated: c.allow_duplicated,
        unexpected: c.allow_unexpected,
        out_of_order: c.allow_out_of_order,
        errors: c.allow_action_errors,
    };
    // In a fault scenario the server being down is the point: "unavailable" is reported in the
    // fault section instead.
    let unavailable = match c.scenario {
        Scenario::None => a.unavailable,
        _ => 0,
    };
    let mut gates = report::delivery_gates(
        allowed,
        (
            run.tabs.len() as u64,
            Stats::get(&run.rec.stats.tabs_joined),
        ),
        &v.total,
        (GateKind::ActionErrors, a.errors + unavailable),
    );
    // `--gate-stage`: latency and throughput of that stage alone.
    let limits = report::TimedLimits {
        fanout_p99_ms: c.gate_fanout_p99_ms,
        action_p99_ms: c.gate_action_p99_ms,
        min_deliveries_per_sec: c.gate_min_deliveries_per_sec,
        saturated_s: c.gate_saturated_secs,
    };
    gates.extend(report::timed_gates(limits, stage, l, t, generator));
    gates
}

/// `booking_faults_injected_total{kind=...}` values from a metrics page.
pub fn faults_from_metrics(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("booking_faults_injected_total{kind=\"")?;
            let (kind, value) = rest.split_once("\"}")?;
            Some((kind.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_run_that_would_run_out_of_open_files_is_refused_up_front() {
        let config = |args: &[&str]| {
            let mut all = vec!["loadgen"];
            all.extend_from_slice(args);
            Config::try_parse_from(all).unwrap()
        };
        let remote = |extra: &[&str]| {
            let host = [
                "--host",
                "http://127.0.0.1:1",
                "--token",
                "t",
                "--tabs",
                "20000",
            ];
            config(&[&host[..], extra].concat())
        };
        let remote_all = remote(&[]);
        assert_eq!(open_files_needed(&remote_all), 20_000 + 1_000 + 256);
        let refused = enough_open_files(&remote_all, 20_000).unwrap_err();
        assert!(
            refused.contains("--tabs 20000 needs about 21256 open files"),
            "{refused}"
        );
        assert!(enough_open_files(&remote_all, 65_536).is_ok());
        let embedded = config(&["--tabs", "1000"]);
        assert!(
            enough_open_files(&embedded, 2_000)
                .unwrap_err()
                .contains("embedded server")
        );
        assert!(enough_open_files(&embedded, 4_096).is_ok());
        // A shard needs files for its share of the tabs only.
        let shard = remote(&["--shard", "1/3"]);
        assert_eq!(open_files_needed(&shard), 6_667 + 333 + 256);
        assert!(enough_open_files(&shard, 20_000).is_ok());
        assert!(
            enough_open_files(&shard, 4_096)
                .unwrap_err()
                .contains("--tabs 20000 (shard 1/3) needs about 7256")
        );
    }
}
