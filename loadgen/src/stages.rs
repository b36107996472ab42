//! `--stages`: a run shaped in stages, as k6 and Artillery users write them, e.g.
//! `30s:500,2m:5000,30s:5000@50,1m:0`. Each stage ramps the tab count linearly from the last
//! stage's target (0 at first) to its own over its duration; `@RATE` ramps the action rate the
//! same way (from `--actions-per-sec` at first), and a stage without one keeps the last rate.
//!
//! Time zero is the start of actions. Tab `k` of the plan is open while the target count is
//! above `k`: the plan's first tabs open first and close last. A closing tab takes a cutoff,
//! the last committed `seq`, `--settle` before its time, stays in its rooms meanwhile, then
//! leaves them and disconnects; it is owed each room's events up to the cutoff or the leave's
//! ack (the `seq` its server had emitted through), the lower. The count may rise and then
//! fall, not rise again: a tab that closed does not come back.
//!
//! Actions follow the stages' rate whether or not the acting tab's socket is open (its
//! requests go over REST), so the rate is what the stages say. The report has one row per
//! stage: what was sent, delivered and lost in it, and its fan-out and action latency, so a
//! steady state is judged apart from the ramps (`--gate-stage`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::latency::{EventTiming, Percentiles, decode_sum, encode, histogram};
use crate::report::StageReport;
use crate::timeline::Second;

/// One stage: over `duration`, tabs ramp to `tabs`, and the action rate to `rate` (if given).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub tabs: usize,
    pub rate: Option<f64>,
}

/// The stages of a run, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages(pub Vec<Stage>);

impl FromStr for Stages {
    type Err = String;

    fn from_str(text: &str) -> Result<Stages, String> {
        let mut stages = Vec::new();
        for (i, part) in text.split(',').map(str::trim).enumerate() {
            let bad = |why: &str| {
                format!(
                    "stage {} `{part}`: {why} (expected DURATION:TABS or DURATION:TABS@ACTIONS_PER_SEC, e.g. 2m:5000@50)",
                    i + 1
                )
            };
            let (duration, rest) = part.split_once(':').ok_or_else(|| bad("no `:`"))?;
            let duration = booking_server::config::parse_duration(duration.trim())
                .map_err(|e| bad(&e.to_string()))?;
            let (tabs, rate) = match rest.split_once('@') {
                Some((tabs, rate)) => (tabs, Some(rate)),
                None => (rest, None),
            };
            let tabs = tabs
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("the tab count is not a whole number"))?;
            let rate = rate
                .map(|r| r.trim().parse::<f64>())
                .transpose()
                .map_err(|_| bad("the action rate is not a number"))?;
            if rate.is_some_and(|r| !r.is_finite() || r < 0.0) {
                return Err(bad("the action rate must not be negative"));
            }
            stages.push(Stage {
                duration,
                tabs,
                rate,
            });
        }
        let stages = Stages(stages);
        stages.check()?;
        Ok(stages)
    }
}

impl fmt::Display for Stages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}s:{}", s.duration.as_secs_f64(), s.tabs)?;
            if let Some(rate) = s.rate {
                write!(f, "@{rate}")?;
            }
        }
        Ok(())
    }
}

impl Stages {
    fn check(&self) -> Result<(), String> {
        if self.total().is_zero() {
            return Err("the stages last no time at all".into());
        }
        if self.peak_tabs() == 0 {
            return Err("no stage has a tab".into());
        }
        let mut fell = None;
        let mut last = 0;
        for (i, s) in self.0.iter().enumerate() {
            if s.tabs < last {
                fell = fell.or(Some(i));
            } else if s.tabs > last
                && let Some(at) = fell
            {
                return Err(format!(
                    "stage {}: the tab count rises again after it fell in stage {} (a tab that closed does not come back: run the shapes as separate runs)",
                    i + 1,
                    at + 1
                ));
            }
            last = s.tabs;
        }
        Ok(())
    }

    pub fn total(&self) -> Duration {
        self.0.iter().map(|s| s.duration).sum()
    }

    pub fn peak_tabs(&self) -> usize {
        self.0.iter().map(|s| s.tabs).max().unwrap_or(0)
    }

    /// The highest action rate of any stage, starting from `base` (`--actions-per-sec`).
    pub fn peak_rate(&self, base: f64) -> f64 {
        self.0.iter().filter_map(|s| s.rate).fold(base, f64::max)
    }

    /// Actions the stages offer in all, starting from `base` actions per second.
    pub fn offered(&self, base_rate: f64) -> f64 {
        self.0
            .iter()
            .zip(self.targets(base_rate))
            .map(|(s, ((_, r0), (_, r1)))| (r0 + r1) / 2.0 * s.duration.as_secs_f64())
            .sum()
    }

    /// Each stage's (start, end) from time zero.
    pub fn bounds(&self) -> Vec<(Duration, Duration)> {
        let mut at = Duration::ZERO;
        self.0
            .iter()
            .map(|s| {
                let start = at;
                at += s.duration;
                (start, at)
            })
            .collect()
    }

    /// Each stage's (tabs, actions per second) at its start and at its end.
    fn targets(&self, base_rate: f64) -> Vec<((usize, f64), (usize, f64))> {
        let (mut tabs, mut rate) = (0, base_rate);
        self.0
            .iter()
            .map(|s| {
                let from = (tabs, rate);
                tabs = s.tabs;
                rate = s.rate.unwrap_or(rate);
                (from, (tabs, rate))
            })
            .collect()
    }

    /// When plan tab `k` opens and when it closes, from time zero (`None`: it stays open to
    /// the end); `None` when no stage has more than `k` tabs.
    pub fn window(&self, k: usize) -> Option<(Duration, Option<Duration>)> {
        let mut up = None;
        let stages = self
            .bounds()
            .into_iter()
            .zip(&self.0)
            .zip(self.targets(0.0));
        for (((start, _), stage), ((a, _), (b, _))) in stages {
            let at = |share: f64| start + stage.duration.mul_f64(share);
            if up.is_none() && a <= k && k < b {
                up = Some(at((k - a) as f64 / (b - a) as f64));
            }
            if let Some(up) = up
                && b <= k
                && k < a
            {
                return Some((up, Some(at((a - k) as f64 / (a - b) as f64))));
            }
        }
        up.map(|up| (up, None))
    }

    /// When action ticket `n` (0-based, of the whole plan) is due, from time zero: when the
    /// stages' rate, ramping linearly, has offered `n + 0.5` actions. `None` past the end.
    pub fn ticket_at(&self, n: u64, base_rate: f64) -> Option<Duration> {
        let mut left = n as f64 + 0.5;
        let stages = self
            .bounds()
            .into_iter()
            .zip(&self.0)
            .zip(self.targets(base_rate));
        for (((start, _), stage), ((_, r0), (_, r1))) in stages {
            let d = stage.duration.as_secs_f64();
            let offered = (r0 + r1) / 2.0 * d;
            if offered > 0.0 && left <= offered {
                // r0 t + (r1 - r0) t^2 / 2d = left, in the form that stays exact as r1 -> r0.
                let a = (r1 - r0) / (2.0 * d);
                let t = 2.0 * left / (r0 + (r0 * r0 + 4.0 * a * left).max(0.0).sqrt());
                return Some(start + Duration::from_secs_f64(t.clamp(0.0, d)));
            }
            left -= offered;
        }
        None
    }
}

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

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn stages_parse_and_bad_ones_say_why() {
        let s: Stages = "30s:500, 2m:5000,30s:5000@50,1m:0".parse().unwrap();
        assert_eq!(s.0.len(), 4);
        assert_eq!(s.total(), secs(240.0));
        assert_eq!(s.peak_tabs(), 5000);
        assert_eq!(s.0[2].rate, Some(50.0));
        assert_eq!(s.peak_rate(20.0), 50.0);
        assert_eq!(s.to_string(), "30s:500,120s:5000,30s:5000@50,60s:0");
        assert_eq!(s.to_string().parse::<Stages>().unwrap(), s);
        for (bad, why) in [
            ("30s", "no `:`"),
            ("30x:5", "stage 1 `30x:5`"),
            ("30s:five", "not a whole number"),
            ("30s:5@fast", "not a number"),
            ("30s:5@-1", "must not be negative"),
            ("0s:5", "no time"),
            ("10s:0", "no stage has a tab"),
            ("10s:5,10s:2,10s:4", "stage 3: the tab count rises again"),
        ] {
            let e = bad.parse::<Stages>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tabs_open_in_plan_order_and_close_in_reverse() {
        let s: Stages = "10s:10,10s:10,5s:0".parse().unwrap();
        // Rising 0 -> 10 over 10 s: tab k opens at k seconds.
        assert_eq!(s.window(0), Some((secs(0.0), Some(secs(25.0)))));
        assert_eq!(s.window(3).unwrap().0, secs(3.0));
        // Falling 10 -> 0 over 5 s from 20 s: tab 9 closes first, at 20.5 s; tab 0 at the end.
        assert_eq!(s.window(9), Some((secs(9.0), Some(secs(20.5)))));
        assert_eq!(s.window(10), None);
        let held: Stages = "0s:4,10s:4".parse().unwrap();
        assert_eq!(
            held.window(3),
            Some((secs(0.0), None)),
            "a jump opens at once"
        );
        // At every instant the open tabs are as many as the target count (within one).
        let shape: Stages = "7s:13,3s:20,9s:6".parse().unwrap();
        for tenth in 0..190 {
            let t = secs(tenth as f64 / 10.0 + 0.05);
            let open = (0..30)
                .filter_map(|k| shape.window(k))
                .filter(|(up, down)| *up <= t && down.is_none_or(|d| t < d))
                .count() as f64;
            let target = target_at(&shape, t.as_secs_f64());
            assert!(
                (open - target).abs() <= 1.0,
                "t {t:?}: {open} open, {target}"
            );
        }
    }

    fn target_at(s: &Stages, t: f64) -> f64 {
        let mut from = 0.0;
        for ((start, end), stage) in s.bounds().into_iter().zip(&s.0) {
            let (a, b) = (start.as_secs_f64(), end.as_secs_f64());
            if t < b {
                return from + (stage.tabs as f64 - from) * (t - a) / (b - a);
            }
            from = stage.tabs as f64;
        }
        from
    }

    #[test]
    fn tickets_follow_the_ramped_rate() {
        // 10/s flat for 10 s, then a ramp to 30/s over 10 s (200 actions), then 30/s for 10 s.
        let s: Stages = "10s:5,10s:5@30,10s:5".parse().unwrap();
        let due = |n| s.ticket_at(n, 10.0).map(|d| d.as_secs_f64());
        assert!((due(0).unwrap() - 0.05).abs() < 1e-9);
        assert!((due(99).unwrap() - 9.95).abs() < 1e-9);
        // Offered by t in the ramp: 10 t + t^2 (t from 10 s); 100 of them at t = 8.54 s.
        let t = due(199).unwrap() - 10.0;
        assert!((10.0 * t + t * t - 99.5).abs() < 1e-6, "{t}");
        assert!((due(300).unwrap() - 20.0).abs() < 0.04);
        assert_eq!(due(600), None, "600 actions offered in all");
        let count = (0..1000).take_while(|n| due(*n).is_some()).count();
        assert_eq!(count, 600);
        assert_eq!(s.offered(10.0), 600.0);
        // Tickets are due in order.
        let times: Vec<f64> = (0..600).map(|n| due(n).unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        // A ramp down to nothing offers its triangle and no more.
        let down: Stages = "10s:1@0".parse().unwrap();
        let count = (0..100)
            .take_while(|n| down.ticket_at(*n, 4.0).is_some())
            .count();
        assert_eq!(count, 20);
        assert_eq!("10s:1@0".parse::<Stages>().unwrap().ticket_at(0, 0.0), None);
    }

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
