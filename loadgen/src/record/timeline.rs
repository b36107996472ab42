//! The run second by second, for plots (the report's `timeline`, `--report-html`): sampled
//! once a second while the run goes (tabs, actions sent, live receipts, fan-out of the
//! receipts of that second), and completed at the verdict with what is only known then
//! (latency of the actions sent in each second; owed deliveries recovered by replay or lost,
//! of the events of each second).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::latency::{EventTiming, histogram};

/// One second of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Second {
    /// End of the second, in seconds since the generator started its tabs.
    pub t_s: f64,
    pub tabs_connected: u64,
    pub tabs_joined: u64,
    /// Tabs closed by `--stages` so far (they had joined: `tabs_joined - tabs_left` are open).
    #[serde(default)]
    pub tabs_left: u64,
    /// Actions sent in this second.
    pub actions: u64,
    /// Live receipts in this second (duplicates included).
    pub delivered: u64,
    /// Owed deliveries that came by replay after a reconnect, and owed deliveries never
    /// received, of the events sent (or first received) in this second.
    pub recovered: u64,
    pub lost: u64,
    /// Fan-out of the receipts of this second (0 when there were none).
    pub fanout_p50_ms: f64,
    pub fanout_p99_ms: f64,
    /// Latency of the actions sent in this second, to their last receipt.
    pub action_p50_ms: f64,
    pub action_p99_ms: f64,
}

impl Second {
    /// Tabs joined and not closed by `--stages`.
    pub fn tabs_open(&self) -> u64 {
        self.tabs_joined.saturating_sub(self.tabs_left)
    }
}

/// Running totals the sampler takes the differences of.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub tabs_connected: u64,
    pub tabs_joined: u64,
    pub tabs_left: u64,
    pub actions: u64,
    pub deliveries: u64,
}

#[derive(Debug, Default)]
pub struct Timeline {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    zero_us: Option<i64>,
    last: Counters,
    last_fanout: Histogram<u64>,
    seconds: Vec<Second>,
    /// With `--stages`: each stage's end (wall clock µs) and the fan-out of its seconds.
    stages: Vec<(i64, Histogram<u64>)>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            zero_us: None,
            last: Counters::default(),
            last_fanout: histogram(),
            seconds: Vec::new(),
            stages: Vec::new(),
        }
    }
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Timeline {
    /// Time zero (wall clock, µs).
    pub fn start(&self, now_us: i64) {
        self.inner.lock().expect("poisoned").zero_us = Some(now_us);
    }

    /// Time zero, if started.
    pub fn zero_us(&self) -> Option<i64> {
        self.inner.lock().expect("poisoned").zero_us
    }

    /// Records the second that ends now: the counters' growth since the last sample, and the
    /// fan-out of the samples `fanout` (all of the run so far) gained since.
    pub fn sample(&self, now: Counters, fanout: Histogram<u64>, now_us: i64) {
        let mut inner = self.inner.lock().expect("poisoned");
        let Some(zero) = inner.zero_us else { return };
        let mut gained = fanout.clone();
        if gained.subtract(&inner.last_fanout).is_err() {
            gained = histogram();
        }
        let last = inner.last;
        inner.seconds.push(Second {
            t_s: ((now_us - zero).max(0) as f64 / 1e6 * 10.0).round() / 10.0,
            tabs_connected: now.tabs_connected,
            tabs_joined: now.tabs_joined,
            tabs_left: now.tabs_left,
            actions: now.actions.saturating_sub(last.actions),
            delivered: now.deliveries.saturating_sub(last.deliveries),
            fanout_p50_ms: percentile_ms(&gained, 0.5),
            fanout_p99_ms: percentile_ms(&gained, 0.99),
            ..Second::default()
        });
        // A second's receipts count in the stage that holds its middle.
        let middle = now_us - 500_000;
        let last_stage = inner.stages.len().saturating_sub(1);
        let stage = inner.stages.partition_point(|(end, _)| *end <= middle);
        if let Some((_, h)) = inner.stages.get_mut(stage.min(last_stage)) {
            let _ = h.add(&gained);
        }
        inner.last = now;
        inner.last_fanout = fanout;
    }

    /// With `--stages`: the stages' ends (wall clock µs), so each second's fan-out is also
    /// added to its stage's.
    pub fn set_stage_ends(&self, ends_us: impl IntoIterator<Item = i64>) {
        self.inner.lock().expect("poisoned").stages =
            ends_us.into_iter().map(|end| (end, histogram())).collect();
    }

    /// The fan-out of each stage's receipts (see [`Timeline::set_stage_ends`]).
    pub fn stage_fanout(&self) -> Vec<Histogram<u64>> {
        let inner = self.inner.lock().expect("poisoned");
        inner.stages.iter().map(|(_, h)| h.clone()).collect()
    }

    /// The seconds so far, completed with action latency, recoveries and losses (see
    /// [`complete`]).
    pub fn seconds(&self, timings: &HashMap<i64, EventTiming>, outcomes: &Outcomes) -> Vec<Second> {
        let inner = self.inner.lock().expect("poisoned");
        let mut seconds = inner.seconds.clone();
        if let Some(zero) = inner.zero_us {
            complete(&mut seconds, zero, timings, outcomes);
        }
        seconds
    }
}

/// The index of the second (of `seconds`) that holds the instant `at_us`: the first whose end
/// is at or after it, else the last.
fn second_of(seconds: &[Second], zero_us: i64, at_us: i64) -> usize {
    let t = (at_us - zero_us) as f64 / 1e6;
    seconds
        .partition_point(|s| s.t_s < t)
        .min(seconds.len().saturating_sub(1))
}

/// Owed deliveries recovered and lost, by event `seq`, from the verdict.
#[derive(Debug, Clone, Copy)]
pub struct Outcomes<'a> {
    pub recovered: &'a BTreeMap<i64, u64>,
    pub lost: &'a BTreeMap<i64, u64>,
}

/// Fills in each second's action latency (actions sent in it, to their last receipt),
/// recoveries and losses (owed deliveries of events sent in it; an event this run did not send
/// is placed by its first receipt, else by the nearest earlier event that has a time).
pub fn complete(
    seconds: &mut [Second],
    zero_us: i64,
    timings: &HashMap<i64, EventTiming>,
    outcomes: &Outcomes,
) {
    if seconds.is_empty() {
        return;
    }
    let mut actions: Vec<Histogram<u64>> = seconds.iter().map(|_| histogram()).collect();
    let mut timed: Vec<(i64, i64)> = Vec::with_capacity(timings.len());
    for (seq, t) in timings {
        if let Some(at) = t.sent_us.or(t.first_receipt_us) {
            timed.push((*seq, at));
        }
        if let (Some(sent), Some(last)) = (t.sent_us, t.last_receipt_us) {
            let _ = actions[second_of(seconds, zero_us, sent)].record((last - sent).max(1) as u64);
        }
    }
    for (second, h) in seconds.iter_mut().zip(&actions) {
        second.action_p50_ms = percentile_ms(h, 0.5);
        second.action_p99_ms = percentile_ms(h, 0.99);
    }
    timed.sort_unstable();
    let second_of_seq = |seq: i64| {
        let at = match timed.partition_point(|(s, _)| *s <= seq) {
            0 => timed.first().map(|(_, at)| *at),
            i => Some(timed[i - 1].1),
        };
        at.map_or(seconds.len() - 1, |at| second_of(seconds, zero_us, at))
    };
    let placed: Vec<(usize, u64, bool)> = outcomes
        .recovered
        .iter()
        .map(|(seq, n)| (second_of_seq(*seq), *n, false))
        .chain(
            outcomes
                .lost
                .iter()
                .map(|(seq, n)| (second_of_seq(*seq), *n, true)),
        )
        .collect();
    for (index, n, lost) in placed {
        if lost {
            seconds[index].lost += n;
        } else {
            seconds[index].recovered += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout(values_us: &[u64]) -> Histogram<u64> {
        let mut h = histogram();
        for v in values_us {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn each_second_holds_what_grew_in_it() {
        let timeline = Timeline::default();
        timeline.start(0);
        // Two stages, the first ending 1.2 s in: the second ending at 1 s (middle 0.5 s) is
        // the first stage's, the one ending at 2 s (middle 1.5 s) the second's.
        timeline.set_stage_ends([1_200_000, 5_000_000]);
        let mut total = fanout(&[1_000, 1_000]);
        let c = |actions, deliveries| Counters {
            tabs_connected: 10,
            tabs_joined: 9,
            tabs_left: 0,
            actions,
            deliveries,
        };
        timeline.sample(c(5, 2), total.clone(), 1_000_000);
        total.add(fanout(&[40_000, 40_000, 40_000])).unwrap();
        timeline.sample(c(8, 5), total, 2_000_000);
        let none = BTreeMap::new();
        let outcomes = Outcomes {
            recovered: &none,
            lost: &none,
        };
        let seconds = timeline.seconds(&HashMap::new(), &outcomes);
        assert_eq!(seconds.len(), 2);
        assert_eq!((seconds[0].t_s, seconds[1].t_s), (1.0, 2.0));
        assert_eq!((seconds[0].actions, seconds[1].actions), (5, 3));
        assert_eq!((seconds[0].delivered, seconds[1].delivered), (2, 3));
        assert!((seconds[0].fanout_p99_ms - 1.0).abs() < 0.02);
        // Only the second second's receipts (about 40 ms), not the whole run's.
        assert!(
            (seconds[1].fanout_p50_ms - 40.0).abs() < 1.0,
            "{:?}",
            seconds[1]
        );
        assert_eq!(seconds[1].tabs_joined, 9);
        let stages = timeline.stage_fanout();
        assert_eq!((stages[0].len(), stages[1].len()), (2, 3));
    }

    #[test]
    fn actions_and_losses_land_in_the_second_their_event_was_sent() {
        let mut seconds: Vec<Second> = (1..=3)
            .map(|t| Second {
                t_s: t as f64,
                ..Second::default()
            })
            .collect();
        let timing = |sent: Option<i64>, first: i64, last: i64| EventTiming {
            sent_us: sent,
            first_receipt_us: Some(first),
            last_receipt_us: Some(last),
        };
        let timings = HashMap::from([
            (10, timing(Some(1_500_000), 1_502_000, 1_510_000)),
            (11, timing(Some(2_500_000), 2_501_000, 2_520_000)),
            // Another generator's event: placed by its first receipt.
            (12, timing(None, 2_900_000, 2_950_000)),
        ]);
        let lost = BTreeMap::from([(11, 2), (13, 1)]);
        let recovered = BTreeMap::from([(10, 4)]);
        let outcomes = Outcomes {
            recovered: &recovered,
            lost: &lost,
        };
        complete(&mut seconds, 0, &timings, &outcomes);
        assert_eq!(seconds[0].action_p50_ms, 0.0);
        assert!(
            (seconds[1].action_p50_ms - 10.0).abs() < 0.5,
            "{:?}",
            seconds[1]
        );
        assert!(
            (seconds[2].action_p99_ms - 20.0).abs() < 0.5,
            "{:?}",
            seconds[2]
        );
        // 11 was sent in the third second; 13 has no time and goes with 12 before it.
        assert_eq!(
            seconds.iter().map(|s| s.lost).collect::<Vec<_>>(),
            [0, 0, 3]
        );
        assert_eq!(
            seconds.iter().map(|s| s.recovered).collect::<Vec<_>>(),
            [0, 4, 0]
        );
    }
}
