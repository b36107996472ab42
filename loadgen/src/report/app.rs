//! An app run's figures, from its log alone: the judge's counts, latency, the breakdowns by
//! expected event and by room family, and the timeline, written into the common [`Report`].
//! The same code serves a generator's own report and `loadgen merge`, which judges the logs
//! of all the shards of a run together, as one generator would.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::judge::truth::{self, AppLog, Judged};
use crate::judge::verify::DeliveryCounts;
use crate::plan::stages::Stages;
use crate::record::latency::{EventTiming, Percentiles, encode, histogram};
use crate::record::timeline::Second;
use crate::report::stages::StageInputs;
use crate::report::{Breakdown, ClientRow, Examples, Gate, GateKind, Report, StageReport};

/// Judges `log` (tabs indexed over a plan of `plan_tabs`) and writes what follows from it
/// into `r`; `window` is the publishing window in seconds. `partial`: other shards' publishes
/// are not in the log.
pub fn fill(r: &mut Report, log: &AppLog, plan_tabs: usize, window: f64, partial: bool) {
    let records = log.records(plan_tabs);
    let rules = truth::Rules {
        partial,
        replay: log.replay,
    };
    let j = truth::judge(&log.publishes, &records, log.publishers.len(), rules);
    type Rows = BTreeMap<String, (DeliveryCounts, Histogram<u64>)>;
    let (mut by_event, mut by_room): (Rows, Rows) = Default::default();
    for (i, p) in log.publishers.iter().enumerate() {
        for (key, rows) in [(&p.event, &mut by_event), (&p.room, &mut by_room)] {
            let e = rows
                .entry(key.clone())
                .or_insert_with(|| (DeliveryCounts::default(), histogram()));
            e.0.add(&j.by_publisher[i]);
            let _ = e.1.add(&j.fanout_by_publisher[i]);
        }
    }
    let breakdown = |rows: &Rows| {
        rows.iter()
            .map(|(k, (delivery, h))| {
                let b = Breakdown {
                    delivery: *delivery,
                    fanout_ms: Percentiles::of(h),
                };
                (k.clone(), b)
            })
            .collect::<BTreeMap<_, _>>()
    };
    let encoded = |rows: &Rows| {
        rows.iter()
            .map(|(k, (_, h))| (k.clone(), encode(h)))
            .collect::<BTreeMap<_, _>>()
    };
    r.delivery = j.total;
    r.latency_ms.fanout = Percentiles::of(&j.fanout);
    r.latency_ms.action = Percentiles::of(&j.action);
    r.latency_ms.spread = Percentiles::of(&j.spread);
    r.by_event_type = breakdown(&by_event);
    r.by_room_size = breakdown(&by_room);
    r.histograms.fanout = encode(&j.fanout);
    r.histograms.action = encode(&j.action);
    r.histograms.spread = encode(&j.spread);
    r.histograms.schedule_lag = encode(&histogram());
    r.histograms.fanout_by_event_type = encoded(&by_event);
    r.histograms.fanout_by_room_size = encoded(&by_room);
    r.throughput.deliveries_per_s = j.total.delivered as f64 / window.max(1e-3);
    r.by_client = [
        (
            "protocol".to_string(),
            ClientRow {
                tabs: r.tabs,
                tabs_joined: r.tabs_joined,
                delivery: j.total,
                fanout_ms: r.latency_ms.fanout,
                ..ClientRow::default()
            },
        ),
        ("browser".to_string(), ClientRow::default()),
    ]
    .into();
    r.examples = Examples {
        lost: j.lost_examples.clone(),
        unexpected: j.unexpected_examples.clone(),
    };
    r.timeline = timeline(log, &records, &j);
    let stages = r
        .run
        .as_ref()
        .and_then(|info| info.workload.stages.as_deref())
        .and_then(|text| text.parse::<Stages>().ok());
    r.stages = match stages {
        Some(stages) => stage_rows(&stages, log, &records, &j, &r.timeline),
        None => Vec::new(),
    };
    if let Some(a) = &mut r.app {
        a.grey_zone = j.grey;
        a.grey_zone_received = j.grey_received;
        a.missed_while_disconnected = j.missed_disconnected;
        a.receipts_of_failed_publishes = j.of_failed_publishes;
        a.receipts_of_other_shards = j.of_other_generators;
    }
}

/// The run second by second from the start of the tabs: tabs connected and joined, publishes
/// sent, receipts, lost (by the publish's second), fan-out and publish latency percentiles.
fn timeline(log: &AppLog, records: &[truth::TabRecord], j: &Judged) -> Vec<Second> {
    let zero = log.zero_us;
    let sec = |us: i64| ((us - zero).max(0) / 1_000_000) as usize;
    let sent: HashMap<u64, i64> = log.publishes.iter().map(|p| (p.seq, p.sent_us)).collect();
    let last = records
        .iter()
        .flat_map(|r| r.receipts.iter().map(|&(_, at)| at))
        .chain(log.publishes.iter().map(|p| p.sent_us))
        .max()
        .unwrap_or(zero);
    let n = sec(last) + 1;
    let mut rows: Vec<(Second, Histogram<u64>, Histogram<u64>)> = (0..n)
        .map(|i| {
            let s = Second {
                t_s: (i + 1) as f64,
                ..Second::default()
            };
            (s, histogram(), histogram())
        })
        .collect();
    let row = |us: i64| sec(us).min(n - 1);
    for r in records {
        if let Some(at) = r.connected_us {
            rows[row(at)].0.tabs_connected += 1;
        }
        if let Some(at) = r.joined_us {
            rows[row(at)].0.tabs_joined += 1;
        }
        if let Some(at) = r.left_us {
            rows[row(at)].0.tabs_left += 1;
        }
        for &(seq, at) in &r.receipts {
            let i = row(at);
            rows[i].0.delivered += 1;
            if let Some(s) = sent.get(&seq) {
                let _ = rows[i].1.record((at - s).max(1) as u64);
            }
        }
    }
    for p in &log.publishes {
        let i = row(p.sent_us);
        rows[i].0.actions += 1;
        if let Some(l) = j.last_receipt.get(&p.seq) {
            let _ = rows[i].2.record((l - p.sent_us).max(1) as u64);
        }
    }
    for &at in &j.lost_at_us {
        rows[row(at)].0.lost += 1;
    }
    // Tabs are counted in the second they connected or joined: the timeline shows totals.
    let (mut connected, mut joined, mut left) = (0, 0, 0);
    rows.into_iter()
        .map(|(mut s, fanout, action)| {
            connected += s.tabs_connected;
            joined += s.tabs_joined;
            left += s.tabs_left;
            (s.tabs_connected, s.tabs_joined, s.tabs_left) = (connected, joined, left);
            let (f, a) = (Percentiles::of(&fanout), Percentiles::of(&action));
            (s.fanout_p50_ms, s.fanout_p99_ms) = (f.p50, f.p99);
            (s.action_p50_ms, s.action_p99_ms) = (a.p50, a.p99);
            s
        })
        .collect()
}

/// One row per stage of `--stages`: what `Stages::reports` makes of the timeline, with the
/// fan-out of each stage's receipts and the latency of the publishes sent in it.
fn stage_rows(
    stages: &Stages,
    log: &AppLog,
    records: &[truth::TabRecord],
    j: &Judged,
    seconds: &[Second],
) -> Vec<StageReport> {
    let bounds = stages.bounds();
    let stage_of = |us: i64| {
        let t = Duration::from_micros((us - log.actions_us).max(0) as u64);
        bounds
            .iter()
            .position(|(_, end)| t < *end)
            .unwrap_or(bounds.len().saturating_sub(1))
    };
    let sent: HashMap<u64, i64> = log.publishes.iter().map(|p| (p.seq, p.sent_us)).collect();
    let mut fanout: Vec<Histogram<u64>> = bounds.iter().map(|_| histogram()).collect();
    for r in records {
        for &(seq, at) in &r.receipts {
            if let Some(s) = sent.get(&seq) {
                let _ = fanout[stage_of(at)].record((at - s).max(1) as u64);
            }
        }
    }
    let timings: HashMap<i64, EventTiming> = log
        .publishes
        .iter()
        .map(|p| {
            let timing = EventTiming {
                first_receipt_us: None,
                last_receipt_us: j.last_receipt.get(&p.seq).copied(),
                sent_us: Some(p.sent_us),
            };
            (p.seq as i64, timing)
        })
        .collect();
    let base_rate = log.publishers.iter().map(|p| p.rate).sum();
    stages.reports(StageInputs {
        base_rate,
        zero_us: log.actions_us,
        timeline_zero_us: log.zero_us,
        seconds,
        fanout,
        timings: &timings,
    })
}

/// `loadgen merge` of an app run's shards: their logs judged together replace the figures
/// each shard could only judge in part (its publishes to its own tabs); counts of what each
/// shard saw alone (publishes, errors, the app's own events) add up.
pub fn merge(reports: &[Report], out: &mut Report) -> Result<(), String> {
    let mut log = AppLog {
        zero_us: i64::MAX,
        ..AppLog::default()
    };
    let mut app = out.app.clone().unwrap_or_default();
    let (mut publishes, mut errors, mut foreign, mut tab_errors) = (0, 0, 0, 0);
    let (mut replays, mut skipped, mut uncertain) = (0, 0, 0);
    let (mut unmarked, mut app_events) = (BTreeMap::new(), BTreeMap::new());
    for r in reports {
        let a = r
            .app
            .as_ref()
            .ok_or("a report of an app run's shards is not an app run")?;
        let l = a.log.as_ref().ok_or(
            "an app run's shard report carries its log (`app.log`), and this one has none: run the shards with --shard i/n",
        )?;
        if log.publishers.is_empty() {
            log.publishers = l.publishers.clone();
        } else if log.publishers != l.publishers {
            return Err("the shards' app files name different publishers".into());
        }
        log.publishes.extend(l.publishes.iter().cloned());
        log.tabs.extend(l.tabs.iter().cloned());
        log.zero_us = log.zero_us.min(l.zero_us);
        log.actions_us = log.actions_us.max(l.actions_us);
        log.replay |= l.replay;
        publishes += a.publishes;
        replays += a.replays;
        skipped += a.publishes_skipped;
        uncertain += a.publishes_uncertain;
        errors += a.publish_errors;
        foreign += a.foreign_markers;
        tab_errors += a.tab_errors;
        for (mine, theirs) in [
            (&mut unmarked, &a.unmarked),
            (&mut app_events, &a.app_events),
        ] {
            for (k, v) in theirs {
                *mine.entry(k.clone()).or_insert(0) += v;
            }
        }
    }
    app.publishes = publishes;
    app.publish_errors = errors;
    app.foreign_markers = foreign;
    app.tab_errors = tab_errors;
    app.replays = replays;
    app.publishes_skipped = skipped;
    app.publishes_uncertain = uncertain;
    app.unmarked = unmarked;
    app.app_events = app_events;
    app.log = None;
    out.app = Some(app);
    let tabs = out.tabs as usize;
    fill(out, &log, tabs, out.duration_s, false);
    Ok(())
}

/// The gates of an app run: the file's, with flags of the same name replacing them.
pub fn gates(c: &crate::config::Config, g: &crate::plan::app_file::Gates, r: &Report) -> Vec<Gate> {
    // `--allow-*` default to 0: a value above it replaces the file's.
    let allow = |flag: u64, file: Option<u64>| if flag > 0 { flag } else { file.unwrap_or(0) };
    let allowed = crate::report::Allowed {
        lost: allow(c.allow_lost, g.lost),
        duplicated: allow(c.allow_duplicated, g.duplicated),
        unexpected: allow(c.allow_unexpected, g.unexpected),
        out_of_order: allow(c.allow_out_of_order, g.out_of_order),
        errors: allow(c.allow_action_errors, g.publish_errors),
    };
    let mut gates = crate::report::delivery_gates(
        allowed,
        (r.tabs, r.tabs_joined),
        &r.delivery,
        (GateKind::PublishErrors, r.actions.errors),
    );
    // `--gate-stage`: latency and throughput of that stage alone.
    let stage = c.gate_stage.and_then(|n| r.stages.get(n.saturating_sub(1)));
    let limits = crate::report::TimedLimits {
        fanout_p99_ms: c.gate_fanout_p99_ms.or(g.fanout_p99_ms),
        action_p99_ms: c.gate_action_p99_ms.or(g.action_p99_ms),
        min_deliveries_per_sec: c.gate_min_deliveries_per_sec.or(g.min_deliveries_per_sec),
        saturated_s: c.gate_saturated_secs,
    };
    gates.extend(crate::report::timed_gates(
        limits,
        stage,
        &r.latency_ms,
        &r.throughput,
        &r.generator,
    ));
    gates
}
