//! The per-stage rows of a `--stages` run's report (the shape and schedule are
//! `plan::stages`): what each stage sent, delivered and lost, its fan-out and action latency,
//! and the rows of a sharded run's shards merged.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use crate::plan::stages::Stages;
use crate::record::latency::{EventTiming, Percentiles, decode_sum, encode, histogram};
use crate::record::timeline::Second;
use crate::report::StageReport;

/// The index of the row that holds `at` (seconds from time zero), clamped to the first and the
/// last.
fn index_at(rows: &[StageReport], at: f64) -> usize {
    rows.iter()
        .position(|r| at < r.to_s)
        .unwrap_or(rows.len().saturating_sub(1))
}

/// What the per-stage rows are made of.
pub struct StageInputs<'a> {
    pub base_rate: f64,
    /// Time zero (the start of actions) and the timeline's zero, wall clock µs.
    pub zero_us: i64,
    pub timeline_zero_us: i64,
    /// The completed timeline.
    pub seconds: &'a [Second],
    /// Fan-out of the receipts of each stage (see `Timeline::stage_fanout`).
    pub fanout: Vec<Histogram<u64>>,
    pub timings: &'a HashMap<i64, EventTiming>,
}

impl Stages {
    /// One row per stage: counts from the seconds that fall in it (a second belongs to the
    /// stage that holds its middle; those before the first stage count in it, those after the
    /// last, the settle, in the last), fan-out of its receipts, latency of the actions sent in
    /// it.
    pub fn reports(&self, input: StageInputs) -> Vec<StageReport> {
        let offset_s = (input.zero_us - input.timeline_zero_us) as f64 / 1e6;
        let mut rows: Vec<StageReport> = self
            .bounds()
            .into_iter()
            .zip(self.targets(input.base_rate))
            .enumerate()
            .map(|(i, ((start, end), ((t0, r0), (t1, r1))))| StageReport {
                stage: i as u64 + 1,
                from_s: start.as_secs_f64(),
                to_s: end.as_secs_f64(),
                timeline_from_s: start.as_secs_f64() + offset_s,
                tabs_from: t0 as u64,
                tabs_to: t1 as u64,
                actions_per_s_from: r0,
                actions_per_s_to: r1,
                ..StageReport::default()
            })
            .collect();
        for second in input.seconds {
            let end = second.t_s - offset_s;
            let open = second.tabs_open();
            let i = index_at(&rows, end - 0.5);
            let row = &mut rows[i];
            row.actions += second.actions;
            row.delivered += second.delivered;
            row.recovered += second.recovered;
            row.lost += second.lost;
            // Open tabs as last sampled at or before each stage's end (the seconds come in
            // order); the last stage's are read at the end of the run, below.
            for row in rows.iter_mut().filter(|r| end <= r.to_s) {
                row.tabs_open_at_end = open;
            }
        }
        if let (Some(row), Some(last)) = (rows.last_mut(), input.seconds.last()) {
            row.tabs_open_at_end = last.tabs_open();
        }
        let mut action: Vec<Histogram<u64>> = rows.iter().map(|_| histogram()).collect();
        for timing in input.timings.values() {
            if let (Some(sent), Some(last)) = (timing.sent_us, timing.last_receipt_us) {
                let i = index_at(&rows, (sent - input.zero_us) as f64 / 1e6);
                let _ = action[i].record((last - sent).max(1) as u64);
            }
        }
        for ((row, fanout), action) in rows.iter_mut().zip(input.fanout).zip(action) {
            row.set_histograms(&fanout, &action);
        }
        rows
    }
}

impl StageReport {
    /// Sets the stage's latency figures and their serialized histograms, and its rate.
    fn set_histograms(&mut self, fanout: &Histogram<u64>, action: &Histogram<u64>) {
        self.fanout_ms = Percentiles::of(fanout);
        self.action_ms = Percentiles::of(action);
        self.fanout_histogram = encode(fanout);
        self.action_histogram = encode(action);
        self.deliveries_per_s = self.delivered as f64 / (self.to_s - self.from_s).max(1e-3);
        self.actions_per_s = self.actions as f64 / (self.to_s - self.from_s).max(1e-3);
    }
}

/// The stage rows of the shards of one run as one (`loadgen merge`): counts add up, histograms
/// merge, percentiles and rates are computed again.
pub fn merge(shards: &[&[StageReport]]) -> Result<Vec<StageReport>, String> {
    let Some((first, rest)) = shards.split_first() else {
        return Ok(Vec::new());
    };
    let same = |a: &StageReport, b: &StageReport| {
        (a.from_s, a.to_s, a.tabs_to, a.actions_per_s_to)
            == (b.from_s, b.to_s, b.tabs_to, b.actions_per_s_to)
    };
    let differ = |other: &[StageReport]| {
        other.len() != first.len() || first.iter().zip(other).any(|(a, b)| !same(a, b))
    };
    if rest.iter().any(|other| differ(other)) {
        return Err("the reports were run with different --stages".into());
    }
    first
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let rows = || shards.iter().map(move |s| &s[i]);
            let sum = |f: fn(&StageReport) -> u64| rows().map(f).sum::<u64>();
            let histogram = |f: fn(&StageReport) -> &String| {
                decode_sum(rows().map(|r| f(r).as_str()))
                    .map_err(|e| format!("stage {}: {e}", row.stage))
            };
            let mut merged = StageReport {
                actions: sum(|r| r.actions),
                delivered: sum(|r| r.delivered),
                recovered: sum(|r| r.recovered),
                lost: sum(|r| r.lost),
                tabs_open_at_end: sum(|r| r.tabs_open_at_end),
                ..row.clone()
            };
            merged.set_histograms(
                &histogram(|r| &r.fanout_histogram)?,
                &histogram(|r| &r.action_histogram)?,
            );
            Ok(merged)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_gather_their_seconds_and_receipts() {
        let s: Stages = "2s:4,2s:4,1s:0".parse().unwrap();
        // Time zero 0.5 s after the timeline's; one second each, ending at 1..6 s.
        let seconds: Vec<Second> = (1..=6)
            .map(|t| Second {
                t_s: t as f64,
                actions: 10,
                delivered: 100 * t,
                lost: u64::from(t == 4),
                tabs_joined: 4,
                tabs_left: if t >= 6 { 4 } else { 0 },
                ..Second::default()
            })
            .collect();
        let mut fanout = vec![histogram(), histogram(), histogram()];
        let _ = fanout[1].record(7000);
        let mut timings = HashMap::new();
        timings.insert(
            1,
            EventTiming {
                first_receipt_us: Some(3_600_000),
                last_receipt_us: Some(3_604_000),
                sent_us: Some(3_600_000),
            },
        );
        let rows = s.reports(StageInputs {
            base_rate: 10.0,
            zero_us: 1_500_000,
            timeline_zero_us: 1_000_000,
            seconds: &seconds,
            fanout,
            timings: &timings,
        });
        // Seconds' middles from zero: 0, 1 | 2, 3 | 4, 5 (the settle counts in the last).
        assert_eq!(
            rows.iter().map(|r| r.delivered).collect::<Vec<_>>(),
            [300, 700, 1100]
        );
        assert_eq!(rows[1].lost, 1);
        assert_eq!(rows[1].deliveries_per_s, 350.0);
        assert_eq!(rows[1].tabs_open_at_end, 4);
        assert_eq!(rows[2].tabs_open_at_end, 0);
        assert!(
            (rows[1].fanout_ms.p99 - 7.0).abs() < 0.1,
            "within HDR precision"
        );
        assert_eq!(rows[1].action_ms.count, 1, "sent 2.1 s after zero");
        assert_eq!(rows[0].action_ms.count, 0);
        assert_eq!((rows[2].tabs_from, rows[2].tabs_to), (4, 0));
        assert_eq!(
            rows[1].timeline_from_s, 2.5,
            "2 s after zero, 0.5 s into the timeline"
        );
        let merged = merge(&[&rows, &rows]).unwrap();
        assert_eq!(merged[1].delivered, 1400);
        assert_eq!(merged[1].fanout_ms.count, 2);
        assert_eq!(merged[1].fanout_ms.p99, rows[1].fanout_ms.p99);
        let other: Stages = "2s:4,2s:5,1s:0".parse().unwrap();
        let wrong = other.reports(StageInputs {
            base_rate: 10.0,
            zero_us: 0,
            timeline_zero_us: 0,
            seconds: &[],
            fanout: vec![histogram(), histogram(), histogram()],
            timings: &HashMap::new(),
        });
        assert!(merge(&[&rows, &wrong]).unwrap_err().contains("--stages"));
        assert_eq!(merge(&[&rows]).unwrap(), rows, "one shard merges to itself");
    }
}
