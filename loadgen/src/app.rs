//! `loadgen --app FILE`: verify any Socket.IO app an app file describes, with generator-side
//! truth (the app needs no sequence numbers, event log or join watermarks), as a workload of
//! the one engine (`engine`): `plan::app_file` (read and check) -> `plan::app` (seeded tabs,
//! rooms, publishers) -> `drive::app` (connect, join, publish, hear) -> `judge::truth` (the
//! judge over plain records) -> `report::app` (the common [`Report`]), so gates, the JSON, HTML
//! and JUnit reports and `compare` read an app run as a booking one.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::drive::app::AppRun;
use crate::drive::life::Window;
use crate::engine::{Acted, Outcome, Workload};
use crate::error::RunError;
use crate::judge::truth::{AppLog, PublisherMeta};
use crate::plan::app::Csv;
use crate::plan::app_file::AppFile;
use crate::record::latency::now_us;
use crate::record::saturation;
use crate::report::{AppReport, Memory, Report, Throughput};

/// Reads `--app`'s file (and its CSV), or says exactly what is wrong with it.
pub fn load(path: &Path) -> Result<(AppFile, Option<Csv>), String> {
    let file = crate::plan::app_file::load(path).map_err(|e| e.to_string())?;
    let csv = match &file.auth_csv {
        Some(csv) => {
            let at = path.parent().unwrap_or(Path::new(".")).join(csv);
            let text = std::fs::read_to_string(&at)
                .map_err(|e| format!("{}: auth_csv {}: {e}", path.display(), at.display()))?;
            Some(
                Csv::parse(&text)
                    .map_err(|e| format!("{}: auth_csv {}: {e}", path.display(), at.display()))?,
            )
        }
        None => None,
    };
    Ok((file, csv))
}

/// Runs the app run `config.app` asks for.
pub async fn run(config: Config) -> Result<Outcome, RunError> {
    let mut config = config;
    config.apply_stages();
    config.validate().map_err(RunError::Setup)?;
    let path = config.app.clone().expect("an app run has --app");
    let (mut file, csv) = load(&path).map_err(RunError::Setup)?;
    if let Some(ns) = &config.namespace {
        file.target.namespace = ns.clone();
    }
    if let Some(t) = config.transport {
        file.target.transport = t;
    }
    let url = match (config.hosts.first(), &file.target.url) {
        (Some(host), _) => host.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => {
            return Err(RunError::Setup(format!(
                "{}: the app has no `target.url`: give one, or --host",
                path.display()
            )));
        }
    };
    let mut workload = crate::report::Workload::of(&config);
    workload.app = Some(file.name.clone());
    let baseline = crate::engine::baseline(&config, &workload, None)?;
    let seed = config.seed.unwrap_or_else(rand::random::<u64>);
    let shard = config.shard;
    // The shards of a run read each other's markers: they share the nonce, from what they
    // share (the seed, and the start of actions).
    let nonce = if shard.count > 1 {
        let mixed = (seed ^ config.actions_at.unwrap_or(0)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mixed >> 32) as u32
    } else {
        rand::random::<u32>()
    };
    let mut plan = crate::plan::app::plan(
        &file,
        csv.as_ref(),
        config.tabs,
        seed,
        &format!("{nonce:08x}"),
        config.actions_per_sec,
    )
    .map_err(|e| RunError::Setup(format!("{}: {e}", path.display())))?;
    for tab in &mut plan.tabs {
        overlay(&mut tab.headers, &config.headers, true);
        overlay(&mut tab.query, &config.query, false);
    }
    let publishers = file
        .publishers
        .iter()
        .zip(&plan.publishers)
        .enumerate()
        .map(|(i, (p, planned))| PublisherMeta {
            name: p
                .name
                .clone()
                .unwrap_or_else(|| format!("publisher-{}", i + 1)),
            event: p.expect.event.clone(),
            room: p.room.clone(),
            rate: planned.rate,
        })
        .collect();
    let tls = config.tls().map_err(RunError::Setup)?;
    let mut app_run =
        AppRun::new(file, csv, plan, url.clone(), nonce, shard, &tls).map_err(RunError::Setup)?;
    app_run.stages = config.stages.clone();
    app_run.client = config
        .tab_client(app_run.file.target.transport)
        .map_err(|e| RunError::Setup(format!("{}: {e}", path.display())))?;
    let app = AppWorkload {
        run: Arc::new(app_run),
        config,
        path,
        publishers,
        generator: Arc::new(saturation::Watch::default()),
        workload,
        seed,
        url,
        zero_us: now_us(),
        started: std::sync::OnceLock::new(),
        tasks: Mutex::new(Vec::new()),
        lives: std::sync::OnceLock::new(),
    };
    crate::engine::run(Arc::new(app), baseline).await
}

/// An app run on the engine, with what its phases hand each other.
struct AppWorkload {
    run: Arc<AppRun>,
    config: Config,
    path: std::path::PathBuf,
    publishers: Vec<PublisherMeta>,
    generator: Arc<saturation::Watch>,
    workload: crate::report::Workload,
    seed: u64,
    url: String,
    /// The wall clock (µs) of the start of the tabs.
    zero_us: i64,
    /// When publishing starts, and its wall clock (µs).
    started: std::sync::OnceLock<(Instant, i64)>,
    /// Publish tasks still to wait for.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The tabs' lives (`drive::life`), from the open until the run is judged.
    lives: std::sync::OnceLock<crate::drive::life::Lives>,
}

impl Workload for AppWorkload {
    fn config(&self) -> &Config {
        &self.config
    }

    fn seed(&self) -> u64 {
        self.seed
    }

    fn generator(&self) -> &saturation::Watch {
        &self.generator
    }

    fn own_tabs(&self) -> Vec<usize> {
        (0..self.run.tabs.len())
            .filter(|i| self.run.shard.owns(*i))
            .collect()
    }

    async fn serve_metrics(
        self: &Arc<Self>,
        addr: std::net::SocketAddr,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        let scraped = crate::record::app_metrics::Scraped {
            run: self.run.clone(),
            generator: self.generator.clone(),
            limits: crate::record::saturation::Limits::of(&self.config),
        };
        crate::record::app_metrics::serve(addr, scraped)
            .await
            .map_err(|e| e.to_string())
    }

    /// Without `--stages`: opens the tabs at `--ramp-up` and waits until they are in their
    /// rooms (an unacknowledged join counts from `settle` after it was sent) and for
    /// `--actions-at`. With them: schedules each tab's open and close, and the publishes, from
    /// a time zero just ahead.
    async fn open(self: &Arc<Self>) -> Result<Instant, RunError> {
        let (run, config) = (&self.run, &self.config);
        if let Some(stages) = &config.stages {
            let zero = Instant::now() + config.until_actions_at().max(Duration::from_millis(100));
            let actions_us = now_us() + (zero - Instant::now()).as_micros() as i64;
            let windows = (0..run.tabs.len())
                .filter(|k| run.shard.owns(*k))
                .filter_map(|k| {
                    let (open, close) = stages.window(k)?;
                    let window = Window {
                        open_at: zero + open,
                        close_at: close.map(|c| zero + c),
                    };
                    Some((k, window))
                })
                .collect();
            let _ = self.lives.set(crate::drive::life::spawn(run, windows));
            *self.tasks.lock().expect("poisoned") = staged(run, stages, zero);
            let _ = self.started.set((zero, actions_us));
            return Ok(zero);
        }
        let start = Instant::now();
        let windows: Vec<_> = self
            .own_tabs()
            .into_iter()
            .enumerate()
            .map(|(k, index)| {
                let window = Window {
                    open_at: start + Duration::from_secs_f64(k as f64 / config.ramp_up),
                    close_at: None,
                };
                (index, window)
            })
            .collect();
        let opening = windows.len();
        let lives = self
            .lives
            .get_or_init(|| crate::drive::life::spawn(run, windows));
        lives.first_opens(opening).await;
        if run.tabs_joined.load(Ordering::Relaxed) == 0 {
            let errors = run.tab_errors.lock().expect("poisoned");
            return Err(RunError::Setup(format!(
                "no tab could connect and join {}: {}",
                self.url,
                errors.first().map_or("", String::as_str)
            )));
        }
        // Publish once every join has taken effect, and not before --actions-at (the shards
        // of a run publish together).
        let in_rooms = run
            .records()
            .iter()
            .flat_map(|r| r.memberships.iter().filter_map(|m| m.in_us))
            .max()
            .unwrap_or(0);
        let wait = Duration::from_micros((in_rooms - now_us()).max(0) as u64 + 1_000);
        tokio::time::sleep(wait.max(config.until_actions_at())).await;
        let start = Instant::now();
        let _ = self.started.set((start, now_us()));
        Ok(start)
    }

    /// Publishes on each publisher's schedule for the window (with `--stages`, the schedule
    /// set at open runs).
    async fn act(self: &Arc<Self>, start: Instant) -> Result<Acted, RunError> {
        match &self.config.stages {
            Some(stages) => crate::drive::app::until(start + stages.total()).await,
            None => {
                let mut tasks = Vec::new();
                for handle in publish_all(&self.run, self.config.duration) {
                    if let Ok(mut done) = handle.await {
                        tasks.append(&mut done);
                    }
                }
                self.tasks.lock().expect("poisoned").append(&mut tasks);
            }
        }
        Ok(Acted {
            end: Instant::now(),
            goose_thresholds_failed: false,
        })
    }

    /// A publish still waiting for its answer past the window gets the timeout, no more.
    async fn wind_down(self: &Arc<Self>) {
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("poisoned"));
        let _ = tokio::time::timeout(
            crate::drive::app::TIMEOUT,
            futures_util::future::join_all(tasks),
        )
        .await;
    }

    async fn cut(self: &Arc<Self>, tab: usize) {
        self.run.cut(tab).await;
    }

    fn progress(&self) -> String {
        let run = &self.run;
        format!(
            "tabs {}/{} joined {} | publishes {} (errors {}) | deliveries {}",
            run.tabs_connected.load(Ordering::Relaxed),
            run.tabs.len(),
            run.tabs_joined.load(Ordering::Relaxed),
            run.publishes.lock().expect("poisoned").len(),
            run.publish_errors.lock().expect("poisoned").len(),
            run.receipts.load(Ordering::Relaxed),
        )
    }

    async fn report(self: &Arc<Self>, acted: &Acted) -> Result<Report, RunError> {
        let (start, actions_us) = self.started.get().copied().unwrap_or((acted.end, now_us()));
        let window = acted
            .end
            .saturating_duration_since(start)
            .as_secs_f64()
            .max(1e-3);
        let finished = Finished {
            window,
            actions_start: start,
            actions_us,
            zero_us: self.zero_us,
        };
        Ok(finish(self, finished).await)
    }

    /// The tabs were closed when they were judged; after a run that failed part way, they
    /// are closed now, and what was still running of it stopped.
    async fn close(self: &Arc<Self>) {
        for task in std::mem::take(&mut *self.tasks.lock().expect("poisoned")) {
            task.abort();
        }
        if let Some(lives) = self.lives.get() {
            lives.stop(self.run.as_ref(), Duration::ZERO).await;
        }
        self.run.close().await;
    }
}

/// How long the tabs may take to end their lives once the run is judged: a reconnect attempt
/// under way is let finish, one still connecting after it is stopped.
const LIVES_GRACE: Duration = Duration::from_secs(2);

/// When the run's phases were, for the report.
struct Finished {
    /// Seconds of publishing.
    window: f64,
    actions_start: Instant,
    /// The wall clock (µs) of the start of publishing, and of the tabs.
    actions_us: i64,
    zero_us: i64,
}

/// Closes the tabs, judges, and writes the report with its gates.
async fn finish(w: &AppWorkload, at: Finished) -> Report {
    let (run, config) = (&w.run, &w.config);
    let shard = run.shard;
    // The tabs' lives end (a reconnect still trying gives up) before their records are read.
    if let Some(lives) = w.lives.get() {
        lives.stop(run.as_ref(), LIVES_GRACE).await;
    }
    let records = run.records();
    run.close().await;
    let log = AppLog {
        publishers: w.publishers.clone(),
        publishes: run.publishes.lock().expect("poisoned").clone(),
        tabs: records
            .into_iter()
            .enumerate()
            .filter(|(i, _)| shard.owns(*i))
            .collect(),
        zero_us: at.zero_us,
        actions_us: at.actions_us,
        replay: run.file.replay.is_some(),
    };
    let mut report = base_report(run, &w.path, &log, at.window);
    report.seed = w.seed;
    report.run = Some(crate::report::RunInfo {
        workload: w.workload.clone(),
        ..crate::report::RunInfo::of(config)
    });
    crate::report::app::fill(
        &mut report,
        &log,
        run.tabs.len(),
        at.window,
        shard.count > 1,
    );
    let _ = run.verdict.set(report.delivery);
    let samples = w.generator.samples_since(Some(at.actions_start));
    report.generator = saturation::GeneratorReport {
        cpu_s: saturation::cpu_seconds().unwrap_or(0.0),
        ..saturation::summarize(
            &samples,
            crate::record::saturation::Limits::of(config),
            saturation::cores(),
        )
    };
    report.gates = crate::report::app::gates(config, &run.file.gates, &report);
    if shard.count > 1
        && let Some(app) = &mut report.app
    {
        app.log = Some(log);
    }
    report
}

/// `--stages`: each of this generator's tabs opens when its stage's target passes it and, when
/// the target falls back below it, leaves its rooms and closes (their lives do, see `open`);
/// publishes follow the stages' rate, ramped (time zero is the start of publishing). Returns
/// the tasks to wait for.
fn staged(
    run: &Arc<AppRun>,
    stages: &crate::plan::stages::Stages,
    zero: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let windows: Vec<_> = (0..run.tabs.len()).map(|k| stages.window(k)).collect();
    // Publishes, dealt to the publishers by their rates (smooth weighted round robin), each to
    // a tab of its publisher the plan has open by then (emits need a connection; a tab counts
    // as open 2 s after its stage opened it, and until it closes).
    let rates: Vec<f64> = run.plan.publishers.iter().map(|p| p.rate).collect();
    let total: f64 = rates.iter().sum();
    let mut credit = vec![0.0; rates.len()];
    let mut dealt = vec![0usize; rates.len()];
    let mut schedule = Vec::new();
    for n in 0u64.. {
        let Some(at) = stages.ticket_at(n, total) else {
            break;
        };
        for (c, r) in credit.iter_mut().zip(&rates) {
            *c += r;
        }
        let p = (0..rates.len())
            .max_by(|a, b| credit[*a].total_cmp(&credit[*b]).then(b.cmp(a)))
            .unwrap_or(0);
        credit[p] -= total;
        let ticket = dealt[p];
        dealt[p] += 1;
        let tabs = &run.plan.publishers[p].tabs;
        let needs_socket = run.file.publishers[p].emit.is_some();
        let open = |t: usize| match windows[t] {
            _ if !needs_socket => true,
            Some((o, c)) => o + Duration::from_secs(2) <= at && c.is_none_or(|c| at < c),
            None => false,
        };
        let chosen = (0..tabs.len())
            .map(|j| tabs[(ticket + j) % tabs.len()])
            .find(|t| open(*t));
        match chosen {
            Some(tab) => schedule.push((at, p, tab, ticket)),
            None => {
                run.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let runner = run.clone();
    tasks.push(tokio::spawn(async move {
        let mut sent = Vec::new();
        for (at, p, tab, ticket) in schedule {
            if !runner.shard.owns(tab) {
                continue;
            }
            crate::drive::app::until(zero + at).await;
            let run = runner.clone();
            sent.push(tokio::spawn(
                async move { run.publish(p, tab, ticket).await },
            ));
        }
        futures_util::future::join_all(sent).await;
    }));
    tasks
}

/// `pairs` with each of `over` in place of the pair of the same name (for headers, in any
/// case), or added.
fn overlay(pairs: &mut Vec<(String, String)>, over: &[(String, String)], any_case: bool) {
    for (k, v) in over {
        pairs.retain(|(name, _)| {
            if any_case {
                !name.eq_ignore_ascii_case(k)
            } else {
                name != k
            }
        });
        pairs.push((k.clone(), v.clone()));
    }
}

/// One scheduler per publisher: each ticket, at its time, becomes a publish task of its own
/// (open model: a slow app shows up as latency, not as fewer publishes). Each scheduler
/// returns its publish tasks.
fn publish_all(
    run: &Arc<AppRun>,
    window: Duration,
) -> Vec<tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>>> {
    let start = Instant::now();
    (0..run.plan.publishers.len())
        .map(|p| {
            let run = run.clone();
            tokio::spawn(async move {
                let tickets: Vec<_> = run.plan.publishers[p].tickets(window).collect();
                let mut tasks = Vec::with_capacity(tickets.len());
                for (ticket, (at, tab)) in tickets.into_iter().enumerate() {
                    // Every shard walks the whole schedule and sends its own tabs' tickets.
                    if !run.shard.owns(tab) {
                        continue;
                    }
                    crate::drive::app::until(start + at).await;
                    let run = run.clone();
                    tasks.push(tokio::spawn(async move {
                        run.publish(p, tab, ticket).await;
                    }));
                }
                tasks
            })
        })
        .collect()
}

/// What the generator counted itself, before the judge: tabs, publishes, the app's own
/// events, errors.
fn base_report(run: &AppRun, path: &Path, log: &AppLog, window: f64) -> Report {
    let f = &run.file;
    let errors = run.publish_errors.lock().expect("poisoned").clone();
    let tab_errors = run.tab_errors.lock().expect("poisoned").clone();
    // What the schedule offers a second, this shard's share: with --stages, their average.
    let rate: f64 = log.publishers.iter().map(|p| p.rate).sum();
    let target = match &run.stages {
        Some(s) => s.offered(rate) / s.total().as_secs_f64(),
        None => rate,
    } / run.shard.count as f64;
    let rss = crate::report::rss_bytes();
    let tabs = log.tabs.len() as u64;
    let ledger_bytes = log
        .tabs
        .iter()
        .map(|(_, r)| r.receipts.capacity() * 16 + r.memberships.capacity() * 64)
        .sum::<usize>() as u64;
    Report {
        tabs,
        tabs_connected: run.tabs_connected.load(Ordering::Relaxed),
        tabs_joined: run.tabs_joined.load(Ordering::Relaxed),
        reconnects: run.reconnects.load(Ordering::Relaxed),
        drops: run.drops.load(Ordering::Relaxed),
        // What the app's replay (the file's `replay`) gave back after reconnects.
        events_replayed: run.replayed.load(Ordering::Relaxed),
        duration_s: window,
        hosts: vec![run.url.clone()],
        actions: crate::report::Actions {
            errors: errors.len() as u64,
            ..Default::default()
        },
        throughput: Throughput {
            actions_per_s: log.publishes.len() as f64 / window,
            target_actions_per_s: target,
            ..Throughput::default()
        },
        memory: Memory {
            rss_bytes: rss,
            rss_per_tab_bytes: rss / tabs.max(1),
            ledger_bytes,
            judged_during_run: 0,
        },
        app: Some(AppReport {
            name: f.name.clone(),
            file: path.display().to_string(),
            truth: "generator".into(),
            publishes: log.publishes.len() as u64,
            publish_errors: errors.len() as u64,
            publish_error_examples: errors.iter().take(3).cloned().collect(),
            publishes_skipped: run.skipped.load(Ordering::Relaxed),
            publishes_uncertain: run.uncertain.load(Ordering::Relaxed),
            replays: run.replays.load(Ordering::Relaxed),
            foreign_markers: run.foreign.load(Ordering::Relaxed),
            unmarked: run.unmarked.lock().expect("poisoned").clone(),
            app_events: run.app_events.lock().expect("poisoned").clone(),
            tab_errors: tab_errors.len() as u64,
            tab_error_examples: tab_errors.iter().take(3).cloned().collect(),
            ..AppReport::default()
        }),
        ..Report::default()
    }
}
