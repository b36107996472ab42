//! `loadgen merge`: the reports of the n shards of one run (`--shard i/n`, same seed and
//! workload) judged as one run. Counts add up, latency histograms merge losslessly (HDR V2 in
//! each report), the shards must cover the plan exactly once, and the gates are judged again on
//! the merged figures.

use std::collections::BTreeMap;

use crate::config::MergeArgs;
use crate::plan::Shard;
use crate::record::latency::{Percentiles, decode_sum, encode};
use crate::record::timeline::Second;
use crate::report::{Breakdown, Gate, GateKind, Report, Workload};

/// `loadgen merge`: reads the shards' reports and merges them; `refine` may replace figures
/// the reports' own kind of run judges better from them (an app run's logs), before the gates
/// are judged again.
pub fn merge_files(
    args: &MergeArgs,
    refine: impl FnOnce(&[Report], &mut Report) -> Result<(), String>,
) -> Result<Report, String> {
    let reports = args
        .reports
        .iter()
        .map(|path| crate::report::compare::read_report(path))
        .collect::<Result<Vec<_>, _>>()?;
    merge_with(&reports, refine)
}

/// [`merge_with`], counts and histograms alone.
pub fn merge(reports: &[Report]) -> Result<Report, String> {
    merge_with(reports, |_, _| Ok(()))
}

/// Checks that `reports` are the shards of one run, each once: same seed and workload, shards
/// `0/n` to `n-1/n`.
pub fn check_cover(reports: &[Report]) -> Result<usize, String> {
    let first = reports.first().ok_or("no reports to merge")?;
    let run = |r: &Report| {
        r.run
            .clone()
            .ok_or("a report has no run record (written by an older loadgen)")
    };
    let first_run = run(first)?;
    let n = first_run.shard.count;
    let mut seen = vec![false; n];
    for r in reports {
        let info = run(r)?;
        if r.seed != first.seed {
            return Err(format!(
                "the reports ran different seeds ({} and {}): not shards of one run",
                first.seed, r.seed
            ));
        }
        let differences = Workload::differences(&first_run.workload, &info.workload);
        if !differences.is_empty() {
            return Err(format!(
                "the reports ran different workloads ({}): not shards of one run",
                differences.join("; ")
            ));
        }
        if info.shard.count != n {
            return Err(format!(
                "shard {} among shards of {n}: not shards of one run",
                info.shard
            ));
        }
        if std::mem::replace(&mut seen[info.shard.index], true) {
            return Err(format!("shard {} is there twice", info.shard));
        }
    }
    let missing: Vec<String> = (0..n)
        .filter(|i| !seen[*i])
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard(s) {} missing: the plan is not covered",
            missing.join(", ")
        ));
    }
    Ok(n)
}

/// Merges the shards' reports into the report of the whole run.
pub fn merge_with(
    reports: &[Report],
    refine: impl FnOnce(&[Report], &mut Report) -> Result<(), String>,
) -> Result<Report, String> {
    check_cover(reports)?;
    let first = &reports[0];
    let mut out = first.clone();
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    let max = |f: fn(&Report) -> f64| reports.iter().map(f).fold(0.0, f64::max);
    let most = |f: fn(&Report) -> u64| reports.iter().map(f).max().unwrap_or(0);

    out.tabs = sum(|r| r.tabs);
    out.tabs_connected = sum(|r| r.tabs_connected);
    out.tabs_joined = sum(|r| r.tabs_joined);
    out.duration_s = max(|r| r.duration_s);
    if let Some(run) = &mut out.run {
        run.shard = Shard::default();
    }

    out.actions = Default::default();
    out.delivery = Default::default();
    out.by_node = BTreeMap::new();
    out.by_client = BTreeMap::new();
    for r in reports {
        let a = &r.actions;
        out.actions.created += a.created;
        out.actions.updated += a.updated;
        out.actions.cancelled += a.cancelled;
        out.actions.deleted += a.deleted;
        out.actions.conflicts += a.conflicts;
        out.actions.errors += a.errors;
        out.actions.unavailable += a.unavailable;
        out.delivery.add(&r.delivery);
        for (path, c) in &r.by_node {
            out.by_node.entry(path.clone()).or_default().add(c);
        }
        for (kind, c) in &r.by_client {
            let m = out.by_client.entry(kind.clone()).or_default();
            m.tabs += c.tabs;
            m.tabs_joined += c.tabs_joined;
            m.delivery.add(&c.delivery);
            m.not_rendered += c.not_rendered;
            m.editing_received += c.editing_received;
        }
    }

    let h = |f: fn(&Report) -> &String| decode_sum(reports.iter().map(|r| f(r).as_str()));
    let fanout = h(|r| &r.histograms.fanout)?;
    let action = h(|r| &r.histograms.action)?;
    let spread = h(|r| &r.histograms.spread)?;
    let schedule_lag = h(|r| &r.histograms.schedule_lag)?;
    out.latency_ms.fanout = Percentiles::of(&fanout);
    out.latency_ms.action = Percentiles::of(&action);
    out.latency_ms.spread = Percentiles::of(&spread);
    out.latency_ms.schedule_lag = Percentiles::of(&schedule_lag);
    if let Some(protocol) = out.by_client.get_mut("protocol") {
        protocol.fanout_ms = out.latency_ms.fanout;
    }
    out.histograms.fanout = encode(&fanout);
    out.histograms.action = encode(&action);
    out.histograms.spread = encode(&spread);
    out.histograms.schedule_lag = encode(&schedule_lag);
    merge_rows(
        &mut out.by_event_type,
        &mut out.histograms.fanout_by_event_type,
        reports,
        |r| &r.by_event_type,
        |r| &r.histograms.fanout_by_event_type,
    )?;
    merge_rows(
        &mut out.by_room_size,
        &mut out.histograms.fanout_by_room_size,
        reports,
        |r| &r.by_room_size,
        |r| &r.histograms.fanout_by_room_size,
    )?;

    out.throughput.deliveries_per_s = reports.iter().map(|r| r.throughput.deliveries_per_s).sum();
    out.throughput.actions_per_s = reports.iter().map(|r| r.throughput.actions_per_s).sum();

    let v = &mut out.volatile.editing;
    v.sent = sum(|r| r.volatile.editing.sent);
    v.expected = sum(|r| r.volatile.editing.expected);
    v.received = sum(|r| r.volatile.editing.received);
    v.ratio = if v.expected == 0 {
        1.0
    } else {
        v.received as f64 / v.expected as f64
    };
    // Volatile latency is not kept as a histogram: the slowest shard's figures stand.
    v.latency_ms.p50 = max(|r| r.volatile.editing.latency_ms.p50);
    v.latency_ms.p95 = max(|r| r.volatile.editing.latency_ms.p95);
    v.latency_ms.p99 = max(|r| r.volatile.editing.latency_ms.p99);
    v.latency_ms.max = max(|r| r.volatile.editing.latency_ms.max);
    v.latency_ms.count = sum(|r| r.volatile.editing.latency_ms.count);

    out.reconnects = sum(|r| r.reconnects);
    out.drops = sum(|r| r.drops);
    out.resyncs = sum(|r| r.resyncs);
    out.events_replayed = sum(|r| r.events_replayed);
    // Each shard read the whole log.
    out.events_logged = reports.iter().map(|r| r.events_logged).max().unwrap_or(0);
    out.seq_range = [
        reports.iter().map(|r| r.seq_range[0]).min().unwrap_or(0),
        reports.iter().map(|r| r.seq_range[1]).max().unwrap_or(0),
    ];
    out.memory.rss_bytes = sum(|r| r.memory.rss_bytes);
    out.memory.ledger_bytes = sum(|r| r.memory.ledger_bytes);
    out.memory.judged_during_run = sum(|r| r.memory.judged_during_run);
    out.memory.rss_per_tab_bytes = out.memory.rss_bytes / out.tabs.max(1);

    let g = &mut out.generator;
    g.sampled_s = most(|r| r.generator.sampled_s);
    g.saturated_s = most(|r| r.generator.saturated_s);
    g.saturated_by_cpu_s = most(|r| r.generator.saturated_by_cpu_s);
    g.saturated_by_lag_s = most(|r| r.generator.saturated_by_lag_s);
    g.saturated_by_backlog_s = most(|r| r.generator.saturated_by_backlog_s);
    g.cpu_s = reports.iter().map(|r| r.generator.cpu_s).sum();
    g.window_cpu_s = reports.iter().map(|r| r.generator.window_cpu_s).sum();
    g.cpu_share_mean = reports
        .iter()
        .map(|r| r.generator.cpu_share_mean)
        .sum::<f64>()
        / reports.len() as f64;
    g.cpu_share_max = max(|r| r.generator.cpu_share_max);
    g.lag_ms_max = max(|r| r.generator.lag_ms_max);
    g.backlog_bytes_max = most(|r| r.generator.backlog_bytes_max);

    out.examples = Default::default();
    for r in reports {
        let shard = r.run.as_ref().map(|i| i.shard).unwrap_or_default();
        for (mine, theirs) in [
            (&mut out.examples.lost, &r.examples.lost),
            (&mut out.examples.unexpected, &r.examples.unexpected),
        ] {
            for (tab, seq) in theirs {
                if mine.len() < 10 {
                    mine.push((shard.plan_index(*tab), *seq));
                }
            }
        }
    }
    out.faults_injected = BTreeMap::new();
    for r in reports {
        for (kind, n) in &r.faults_injected {
            *out.faults_injected.entry(kind.clone()).or_default() += n;
        }
    }
    out.timeline = merge_timelines(reports);
    let stages: Vec<_> = reports.iter().map(|r| r.stages.as_slice()).collect();
    out.stages = crate::report::stages::merge(&stages)?;

    refine(reports, &mut out)?;
    out.gates = first
        .gates
        .iter()
        .enumerate()
        .map(|(i, gate)| rejudge(gate, i, reports, &out))
        .collect();
    out.decide();
    Ok(out)
}

type Rows = BTreeMap<String, Breakdown>;

/// One breakdown (by event type or by room) added up, its fan-out from the merged histograms.
fn merge_rows(
    rows: &mut Rows,
    encoded: &mut BTreeMap<String, String>,
    reports: &[Report],
    rows_of: fn(&Report) -> &Rows,
    histograms_of: fn(&Report) -> &BTreeMap<String, String>,
) -> Result<(), String> {
    for (name, row) in rows.iter_mut() {
        row.delivery = Default::default();
        for r in reports {
            if let Some(theirs) = rows_of(r).get(name) {
                row.delivery.add(&theirs.delivery);
            }
        }
        let h = decode_sum(
            reports
                .iter()
                .map(|r| histograms_of(r).get(name).map_or("", String::as_str)),
        )?;
        row.fanout_ms = Percentiles::of(&h);
        encoded.insert(name.clone(), encode(&h));
    }
    Ok(())
}

/// Second by second, added up by position (each shard's seconds count from its own start):
/// counts add, each percentile is the highest of the shards'.
fn merge_timelines(reports: &[Report]) -> Vec<Second> {
    let len = reports.iter().map(|r| r.timeline.len()).max().unwrap_or(0);
    (0..len)
        .map(|i| {
            let mut s = Second::default();
            for r in reports {
                let Some(t) = r.timeline.get(i) else { continue };
                s.t_s = s.t_s.max(t.t_s);
                s.tabs_connected += t.tabs_connected;
                s.tabs_joined += t.tabs_joined;
                s.tabs_left += t.tabs_left;
                s.actions += t.actions;
                s.delivered += t.delivered;
                s.recovered += t.recovered;
                s.lost += t.lost;
                s.fanout_p50_ms = s.fanout_p50_ms.max(t.fanout_p50_ms);
                s.fanout_p99_ms = s.fanout_p99_ms.max(t.fanout_p99_ms);
                s.action_p50_ms = s.action_p50_ms.max(t.action_p50_ms);
                s.action_p99_ms = s.action_p99_ms.max(t.action_p99_ms);
            }
            s
        })
        .collect()
}

/// Gate `i` of the first shard judged again on the merged report: the gates every run has
/// (tabs joined, delivery, errors, latency, throughput, saturation) from the merged figures;
/// any other (a fault's, a baseline rule's) passes only if it passed in every shard.
fn rejudge(gate: &Gate, i: usize, reports: &[Report], m: &Report) -> Gate {
    let limit_sum = || {
        reports
            .iter()
            .filter_map(|r| r.gates.get(i))
            .map(|g| g.limit)
            .sum::<f64>()
    };
    let saturated = m.generator.saturated();
    let summed = || {
        reports
            .iter()
            .filter_map(|r| r.gates.get(i))
            .map(|g| g.observed)
            .sum::<f64>()
    };
    let same = |g: Gate| Gate {
        name: gate.name.clone(),
        kind: gate.kind,
        stage: gate.stage,
        ..g
    };
    let at_most = |observed: f64| Some(same(Gate::at_most("", gate.limit, observed)));
    let (d, l) = (&m.delivery, &m.latency_ms);
    // Latency and throughput over the whole run, or, for a `--gate-stage` gate, on the
    // merged row of its stage (a stage the merged run lacks: every shard's result stands).
    let figures = match gate.stage {
        None => Some((l.fanout.p99, l.action.p99, m.throughput.deliveries_per_s)),
        Some(n) => n
            .checked_sub(1)
            .and_then(|i| m.stages.get(usize::try_from(i).ok()?))
            .map(|s| (s.fanout_ms.p99, s.action_ms.p99, s.deliveries_per_s)),
    };
    let judged = figures.and_then(|(fanout_p99, action_p99, per_s)| match gate.kind {
        GateKind::TabsJoined => Some(same(Gate::at_least("", limit_sum(), m.tabs_joined as f64))),
        GateKind::Lost => at_most(d.lost as f64),
        GateKind::Duplicated => at_most(d.duplicated as f64),
        GateKind::Unexpected => at_most(d.unexpected as f64),
        GateKind::OutOfOrder => at_most(d.out_of_order as f64),
        GateKind::ActionErrors | GateKind::PublishErrors | GateKind::AckedWritesMissing => {
            at_most(summed())
        }
        GateKind::FanoutP99 => at_most(fanout_p99).map(|g| g.unreliable_if(saturated)),
        GateKind::ActionP99 => at_most(action_p99).map(|g| g.unreliable_if(saturated)),
        GateKind::DeliveriesPerS => {
            Some(same(Gate::at_least("", gate.limit, per_s)).unreliable_if(saturated))
        }
        GateKind::GeneratorSaturated => at_most(m.generator.saturated_s as f64),
        GateKind::BrowserTabsJoined | GateKind::Other => None,
    });
    judged.unwrap_or_else(|| {
        let all = reports.iter().filter_map(|r| r.gates.get(i));
        Gate {
            name: format!("{} (every shard)", gate.name),
            observed: all.clone().map(|g| g.observed).fold(f64::MIN, f64::max),
            passed: all.clone().all(|g| g.passed),
            unreliable: all.clone().any(|g| g.unreliable),
            ..gate.clone()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tabs_map_back_to_the_plan() {
        let shard = Shard { index: 1, count: 3 };
        let plan: Vec<usize> = (0..4).map(|local| shard.plan_index(local)).collect();
        assert_eq!(plan, [1, 4, 7, 10]);
        assert!(plan.iter().all(|t| shard.owns(*t)));
    }

    #[test]
    fn a_stage_gate_is_judged_again_on_the_merged_stage() {
        let stage = |per_s: f64, p99: f64| crate::report::StageReport {
            stage: 2,
            deliveries_per_s: per_s,
            fanout_ms: Percentiles {
                p99,
                ..Percentiles::default()
            },
            ..Default::default()
        };
        let shard = |per_s: f64| Report {
            stages: vec![stage(0.0, 0.0), stage(per_s, 3.0)],
            gates: vec![Gate::of(GateKind::DeliveriesPerS, 150.0, per_s, Some(2))],
            ..Report::default()
        };
        let shards = [shard(100.0), shard(100.0)];
        let merged = Report {
            stages: vec![stage(0.0, 0.0), stage(200.0, 3.0)],
            ..Report::default()
        };
        let g = rejudge(&shards[0].gates[0], 0, &shards, &merged);
        assert_eq!(g.name, "deliveries per s (stage 2)");
        assert!(
            g.passed && g.observed == 200.0,
            "{g:?}: each shard failed, the run did not"
        );
        let fanout = Gate::of(GateKind::FanoutP99, 2.0, 3.0, Some(2));
        assert!(!rejudge(&fanout, 0, &shards, &merged).passed);
        // A stage the merged report does not have falls back to "every shard".
        let lost = Gate::of(GateKind::FanoutP99, 2.0, 1.0, Some(7));
        assert!(
            rejudge(&lost, 0, &shards, &merged)
                .name
                .ends_with("(every shard)")
        );
    }

    #[test]
    fn reports_without_a_run_record_or_shards_do_not_merge() {
        assert!(merge(&[]).is_err());
        let old = Report::default();
        assert!(check_cover(&[old]).unwrap_err().contains("older loadgen"));
    }
}
