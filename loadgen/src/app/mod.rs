//! `loadgen --app FILE`: verify any Socket.IO app an app file describes, with generator-side
//! truth (the app needs no sequence numbers, event log or join watermarks). The pipeline:
//! `file` (read and check) -> `plan` (seeded tabs, rooms, publishers) -> `drive` (connect,
//! join, publish, hear) -> `truth` (the judge over plain records) -> the common [`Report`],
//! so gates, the JSON, HTML and JUnit reports and `compare` read an app run as a booking one.

pub mod client;
pub mod drive;
pub mod file;
pub mod plan;
pub mod template;
pub mod truth;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::Config;
use crate::error::RunError;
use crate::latency::{Percentiles, histogram, now_us};
use crate::report::{
    AppReport, Breakdown, Examples, Gate, Histograms, LatencyReport, Memory, Report, Throughput,
};
use crate::timeline::Second;
use crate::{Outcome, saturation};
use drive::AppRun;
use file::AppFile;
use plan::Csv;
use truth::Judged;

/// Reads `--app`'s file (and its CSV), or says exactly what is wrong with it.
pub fn load(path: &Path) -> Result<(AppFile, Option<Csv>), String> {
    let file = file::load(path).map_err(|e| e.to_string())?;
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
    config.validate().map_err(RunError::Setup)?;
    let path = config.app.clone().expect("an app run has --app");
    let (file, csv) = load(&path).map_err(RunError::Setup)?;
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
    let mut workload = config.workload();
    workload.app = Some(file.name.clone());
    let baseline = match &config.baseline {
        Some(b) => Some(
            crate::compare::Baseline::load(
                b,
                config
                    .max_regression
                    .as_deref()
                    .unwrap_or(crate::compare::DEFAULT_RULES),
                &workload,
                config.allow_different_workload,
                None,
            )
            .map_err(RunError::Setup)?,
        ),
        None => None,
    };
    let seed = config.seed.unwrap_or_else(rand::random::<u64>);
    let nonce = rand::random::<u32>();
    let plan = plan::plan(
        &file,
        csv.as_ref(),
        config.tabs,
        seed,
        &format!("{nonce:08x}"),
        config.actions_per_sec,
    )
    .map_err(|e| RunError::Setup(format!("{}: {e}", path.display())))?;
    let run = Arc::new(AppRun::new(file, csv, plan, url.clone(), nonce));
    let generator = Arc::new(saturation::Watch::default());
    let watcher = {
        let g = generator.clone();
        tokio::spawn(async move { saturation::watch(&g).await })
    };
    let started_us = now_us();
    let progress = (!config.progress_every.is_zero())
        .then(|| tokio::spawn(progress(run.clone(), config.progress_every)));

    open_tabs(&run, config.ramp_up).await;
    let joined = run.tabs_joined.load(Ordering::Relaxed);
    if joined == 0 {
        watcher.abort();
        let errors = run.tab_errors.lock().expect("poisoned");
        return Err(RunError::Setup(format!(
            "no tab could connect and join {url}: {}",
            errors.first().map_or("", String::as_str)
        )));
    }
    // Unacknowledged joins count from `settle` after they were sent: publish after that.
    let in_rooms = run
        .records()
        .iter()
        .flat_map(|r| r.memberships.iter().filter_map(|m| m.in_us))
        .max()
        .unwrap_or(0);
    let wait = (in_rooms - now_us()).max(0) as u64 + 1_000;
    tokio::time::sleep(Duration::from_micros(wait)).await;

    let actions_start = Instant::now();
    let publishing = publish_all(&run, config.duration);
    let mut tasks = Vec::new();
    for handle in publishing {
        if let Ok(mut done) = handle.await {
            tasks.append(&mut done);
        }
    }
    let window_end = Instant::now();
    // A publish still waiting for its answer past the window gets the timeout, no more.
    let _ = tokio::time::timeout(drive::TIMEOUT, futures_util::future::join_all(tasks)).await;
    tokio::time::sleep(config.settle).await;
    watcher.abort();
    if let Some(p) = progress {
        p.abort();
    }
    let records = run.records();
    run.close().await;

    let window = window_end
        .saturating_duration_since(actions_start)
        .as_secs_f64()
        .max(1e-3);
    let publishes = run.publishes.lock().expect("poisoned").clone();
    let judged = truth::judge(&publishes, &records, run.file.publishers.len());
    let samples = generator.samples_since(Some(actions_start));
    let generator = saturation::GeneratorReport {
        cpu_s: saturation::cpu_seconds().unwrap_or(0.0),
        ..saturation::summarize(&samples, config.saturation_limits(), saturation::cores())
    };
    let mut report = report(&run, &path, &publishes, &records, &judged, window);
    report.seed = seed;
    report.generator = generator;
    report.timeline = timeline(&run, &publishes, &records, &judged, started_us);
    report.run = Some(crate::report::RunInfo {
        workload,
        ..config.run_info()
    });
    report.gates = gates(&config, &run.file, &report);
    if let Some(b) = &baseline {
        b.judge(&mut report);
    }
    report.verdict = if report.gates.iter().all(|g| g.passed) {
        "pass"
    } else {
        "fail"
    }
    .to_string();
    Ok(Outcome {
        report,
        goose_thresholds_failed: false,
    })
}

/// Opens the tabs at `ramp_up` per second and waits for each to connect and join (or fail).
async fn open_tabs(run: &Arc<AppRun>, ramp_up: f64) {
    let start = Instant::now();
    let opening: Vec<_> = (0..run.tabs.len())
        .map(|i| {
            let run = run.clone();
            let at = start + Duration::from_secs_f64(i as f64 / ramp_up);
            tokio::spawn(async move {
                drive::until(at).await;
                run.open_tab(i).await
            })
        })
        .collect();
    for o in opening {
        let _ = o.await;
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
                    drive::until(start + at).await;
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

async fn progress(run: Arc<AppRun>, every: Duration) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        eprintln!(
            "[{:>4.0}s] tabs {}/{} joined {} | publishes {} (errors {}) | deliveries {}",
            started.elapsed().as_secs_f64(),
            run.tabs_connected.load(Ordering::Relaxed),
            run.tabs.len(),
            run.tabs_joined.load(Ordering::Relaxed),
            run.publishes.lock().expect("poisoned").len(),
            run.publish_errors.lock().expect("poisoned").len(),
            run.receipts.load(Ordering::Relaxed),
        );
    }
}

fn report(
    run: &AppRun,
    path: &Path,
    publishes: &[truth::Publish],
    records: &[truth::TabRecord],
    j: &Judged,
    window: f64,
) -> Report {
    let f = &run.file;
    let errors = run.publish_errors.lock().expect("poisoned").clone();
    let tab_errors = run.tab_errors.lock().expect("poisoned").clone();
    let mut by_event: BTreeMap<String, (crate::verify::DeliveryCounts, Histogram<u64>)> =
        BTreeMap::new();
    let mut by_room: BTreeMap<String, (crate::verify::DeliveryCounts, Histogram<u64>)> =
        BTreeMap::new();
    for (i, p) in f.publishers.iter().enumerate() {
        for (key, map) in [(&p.expect.event, &mut by_event), (&p.room, &mut by_room)] {
            let e = map
                .entry(key.clone())
                .or_insert_with(|| (Default::default(), histogram()));
            truth::add(&mut e.0, &j.by_publisher[i]);
            let _ = e.1.add(&j.fanout_by_publisher[i]);
        }
    }
    let breakdown = |map: BTreeMap<String, (crate::verify::DeliveryCounts, Histogram<u64>)>| {
        map.into_iter()
            .map(|(k, (delivery, h))| {
                (
                    k,
                    Breakdown {
                        delivery,
                        fanout_ms: Percentiles::of(&h),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let histograms = Histograms {
        fanout: crate::latency::encode(&j.fanout),
        action: crate::latency::encode(&j.action),
        spread: crate::latency::encode(&j.spread),
        schedule_lag: crate::latency::encode(&histogram()),
        fanout_by_event_type: by_event
            .iter()
            .map(|(k, (_, h))| (k.clone(), crate::latency::encode(h)))
            .collect(),
        fanout_by_room_size: by_room
            .iter()
            .map(|(k, (_, h))| (k.clone(), crate::latency::encode(h)))
            .collect(),
    };
    let target: f64 = run.plan.publishers.iter().map(|p| p.rate).sum();
    let rss = crate::report::rss_bytes();
    let tabs = run.tabs.len() as u64;
    let ledger_bytes = records
        .iter()
        .map(|r| r.receipts.capacity() * 16 + r.memberships.capacity() * 64)
        .sum::<usize>() as u64;
    Report {
        verdict: String::new(),
        tabs,
        tabs_connected: run.tabs_connected.load(Ordering::Relaxed),
        tabs_joined: run.tabs_joined.load(Ordering::Relaxed),
        duration_s: window,
        hosts: vec![run.url.clone()],
        embedded_server: false,
        actions: crate::report::Actions {
            errors: errors.len() as u64,
            ..Default::default()
        },
        delivery: j.total,
        latency_ms: LatencyReport {
            fanout: Percentiles::of(&j.fanout),
            action: Percentiles::of(&j.action),
            spread: Percentiles::of(&j.spread),
            schedule_lag: Percentiles::default(),
        },
        throughput: Throughput {
            deliveries_per_s: j.total.delivered as f64 / window,
            actions_per_s: publishes.len() as f64 / window,
            target_actions_per_s: target,
        },
        by_event_type: breakdown(by_event),
        by_room_size: breakdown(by_room),
        memory: Memory {
            rss_bytes: rss,
            rss_per_tab_bytes: rss / tabs.max(1),
            ledger_bytes,
        },
        examples: Examples {
            lost: j.lost_examples.clone(),
            unexpected: j.unexpected_examples.clone(),
        },
        by_client: [
            (
                "protocol".to_string(),
                crate::report::ClientRow {
                    tabs,
                    tabs_joined: run.tabs_joined.load(Ordering::Relaxed),
                    delivery: j.total,
                    fanout_ms: Percentiles::of(&j.fanout),
                    ..Default::default()
                },
            ),
            ("browser".to_string(), crate::report::ClientRow::default()),
        ]
        .into(),
        histograms,
        app: Some(AppReport {
            name: f.name.clone(),
            file: path.display().to_string(),
            truth: "generator".into(),
            publishes: publishes.len() as u64,
            publish_errors: errors.len() as u64,
            publish_error_examples: errors.iter().take(3).cloned().collect(),
            grey_zone: j.grey,
            grey_zone_received: j.grey_received,
            missed_while_disconnected: j.missed_disconnected,
            receipts_of_failed_publishes: j.of_failed_publishes,
            foreign_markers: run.foreign.load(Ordering::Relaxed),
            unmarked: run.unmarked.lock().expect("poisoned").clone(),
            app_events: run.app_events.lock().expect("poisoned").clone(),
            tab_errors: tab_errors.len() as u64,
            tab_error_examples: tab_errors.iter().take(3).cloned().collect(),
        }),
        ..Report::default()
    }
}

/// The run second by second from the first connect: tabs, publishes sent, receipts, lost (by
/// the publish's second), and fan-out and publish latency percentiles.
fn timeline(
    run: &AppRun,
    publishes: &[truth::Publish],
    records: &[truth::TabRecord],
    j: &Judged,
    zero_us: i64,
) -> Vec<Second> {
    let sec = |us: i64| ((us - zero_us).max(0) / 1_000_000) as usize;
    let sent: std::collections::HashMap<u64, i64> =
        publishes.iter().map(|p| (p.seq, p.sent_us)).collect();
    let last = records
        .iter()
        .flat_map(|r| r.receipts.iter().map(|&(_, at)| at))
        .chain(publishes.iter().map(|p| p.sent_us))
        .max()
        .unwrap_or(zero_us);
    let n = sec(last) + 1;
    let mut rows: Vec<(Second, Histogram<u64>, Histogram<u64>)> = (0..n)
        .map(|i| {
            (
                Second {
                    t_s: (i + 1) as f64,
                    ..Second::default()
                },
                histogram(),
                histogram(),
            )
        })
        .collect();
    for tab in &run.tabs {
        if let Some(at) = *tab.connected_us.lock().expect("poisoned") {
            for row in rows.iter_mut().skip(sec(at)) {
                row.0.tabs_connected += 1;
            }
        }
        if let Some(at) = *tab.joined_us.lock().expect("poisoned") {
            for row in rows.iter_mut().skip(sec(at)) {
                row.0.tabs_joined += 1;
            }
        }
    }
    for p in publishes {
        let row = &mut rows[sec(p.sent_us).min(n - 1)];
        row.0.actions += 1;
        if let Some(l) = j.last_receipt.get(&p.seq) {
            let _ = row.2.record((l - p.sent_us).max(1) as u64);
        }
    }
    for r in records {
        for &(seq, at) in &r.receipts {
            let row = &mut rows[sec(at).min(n - 1)];
            row.0.delivered += 1;
            if let Some(s) = sent.get(&seq) {
                let _ = row.1.record((at - s).max(1) as u64);
            }
        }
    }
    for &at in &j.lost_at_us {
        rows[sec(at).min(n - 1)].0.lost += 1;
    }
    rows.into_iter()
        .map(|(mut s, fanout, action)| {
            let (f, a) = (Percentiles::of(&fanout), Percentiles::of(&action));
            (s.fanout_p50_ms, s.fanout_p99_ms) = (f.p50, f.p99);
            (s.action_p50_ms, s.action_p99_ms) = (a.p50, a.p99);
            s
        })
        .collect()
}

/// The gates of an app run: the file's, with flags of the same name replacing them.
fn gates(c: &Config, f: &AppFile, r: &Report) -> Vec<Gate> {
    let g = &f.gates;
    // `--allow-*` default to 0: a value above it replaces the file's.
    let allow =
        |flag: u64, file: Option<u64>| if flag > 0 { flag } else { file.unwrap_or(0) } as f64;
    let d = &r.delivery;
    let saturated = r.generator.saturated();
    let mut gates = vec![
        Gate::at_least("tabs joined", r.tabs as f64, r.tabs_joined as f64),
        Gate::at_most("lost", allow(c.allow_lost, g.lost), d.lost as f64),
        Gate::at_most(
            "duplicated",
            allow(c.allow_duplicated, g.duplicated),
            d.duplicated as f64,
        ),
        Gate::at_most(
            "unexpected",
            allow(c.allow_unexpected, g.unexpected),
            d.unexpected as f64,
        ),
        Gate::at_most(
            "out of order",
            allow(c.allow_out_of_order, g.out_of_order),
            d.out_of_order as f64,
        ),
        Gate::at_most(
            "publish errors",
            allow(c.allow_action_errors, g.publish_errors),
            r.actions.errors as f64,
        ),
    ];
    if let Some(limit) = c.gate_fanout_p99_ms.or(g.fanout_p99_ms) {
        gates.push(
            Gate::at_most("fan-out p99 ms", limit, r.latency_ms.fanout.p99)
                .unreliable_if(saturated),
        );
    }
    if let Some(limit) = c.gate_action_p99_ms.or(g.action_p99_ms) {
        gates.push(
            Gate::at_most("action p99 ms", limit, r.latency_ms.action.p99).unreliable_if(saturated),
        );
    }
    if let Some(limit) = c.gate_min_deliveries_per_sec.or(g.min_deliveries_per_sec) {
        gates.push(
            Gate::at_least("deliveries per s", limit, r.throughput.deliveries_per_s)
                .unreliable_if(saturated),
        );
    }
    if let Some(limit) = c.gate_saturated_secs {
        gates.push(Gate::at_most(
            "generator saturated s",
            limit as f64,
            r.generator.saturated_s as f64,
        ));
    }
    gates
}
