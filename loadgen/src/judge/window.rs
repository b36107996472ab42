//! Judging a long run as it goes, so that a tab's ledger holds the recent part of the run
//! and not all of it. Every so often the run reads the log and takes a horizon: the end of
//! the log as it was read `--ledger-window` ago, so every event at or below it was committed
//! at least that long ago, and every commit that took a lower `seq` has landed. Each tab in a
//! steady state (joined, not closing) is then judged up to the horizon and its ledger drops
//! those bits ([`settle_tab`]). Receipts that still come for what was judged (a very late
//! delivery, a replay after a long outage, a duplicate) wait in the ledger and are judged at
//! the next pass, so the verdict is the one the whole run's bitmaps would have given; what
//! this costs is a `seq` kept for each judged pair a later receipt could change.
//!
//! The bound: a tab keeps two bits for each event committed in the last window and pass
//! (`(window + pass) x events/s / 4` bytes, the pass at most 10 s), plus 8 bytes for each of its judged lost,
//! recovered and not-owed receipts, whatever the run's length.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::judge::verify::{TabView, Verdict, judge_late, judge_span};
use crate::record::ledger::Ledger;

/// How often a run with a ledger window of `window` judges what is settled: every 10 s, or
/// every window when it is shorter (a quarter of a second at least).
pub fn pass_every(window: Duration) -> Duration {
    window.clamp(Duration::from_millis(250), Duration::from_secs(10))
}

/// Judges tab `view`'s late receipts and its `seq`s up to `horizon` (rounded down to the
/// ledger's words) into `v`, and drops their bits from `ledger`.
pub fn settle_tab(view: &TabView, ledger: &mut Ledger, horizon: i64, v: &mut Verdict) {
    let late = ledger.take_late();
    let mut judged = std::mem::take(&mut ledger.judged);
    judge_late(view, &late, &mut judged, v);
    let to = ledger.advance_point(horizon);
    if to > ledger.base() {
        // What it notes lies above the base, so `judged` stays ascending.
        judge_span(view, ledger, (ledger.base(), to), v, Some(&mut judged));
        ledger.advance(to);
    }
    ledger.judged = judged;
}

/// The ends of the log as read, each with when: the horizon is the newest end read at least
/// `lag` ago.
#[derive(Debug)]
pub struct Horizon {
    lag: Duration,
    reads: VecDeque<(Instant, i64)>,
}

impl Horizon {
    pub fn new(lag: Duration) -> Self {
        Self {
            lag,
            reads: VecDeque::new(),
        }
    }

    /// The log's end read at `at` was `end`.
    pub fn read(&mut self, at: Instant, end: i64) {
        self.reads.push_back((at, end));
    }

    /// The horizon at `now`, if a read is old enough; older reads than the one it comes from
    /// are forgotten.
    pub fn at(&mut self, now: Instant) -> Option<i64> {
        let old_enough = |at: &Instant| now.saturating_duration_since(*at) >= self.lag;
        while self.reads.len() >= 2 && old_enough(&self.reads[1].0) {
            self.reads.pop_front();
        }
        let (at, end) = self.reads.front()?;
        old_enough(at).then_some(*end)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::judge::verify::{Joined, LogEvent, RoomRef, judge_tab};
    use crate::record::ledger::Late;

    #[test]
    fn the_horizon_is_the_newest_end_read_a_window_ago() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut h = Horizon::new(s(30));
        assert_eq!(h.at(t0), None);
        h.read(t0, 100);
        h.read(t0 + s(10), 200);
        h.read(t0 + s(20), 300);
        assert_eq!(h.at(t0 + s(29)), None, "nothing read 30 s ago yet");
        assert_eq!(h.at(t0 + s(30)), Some(100));
        assert_eq!(h.at(t0 + s(45)), Some(200));
        assert_eq!(h.reads.len(), 2, "the read of 0 s is forgotten");
        assert_eq!(h.at(t0 + s(90)), Some(300));
    }

    /// A random log of `n` events after `start`, in three boardrooms (and all in bookings),
    /// with gaps in `seq` as rolled-back commits leave them.
    fn random_log(rng: &mut StdRng, start: i64, n: usize) -> Vec<LogEvent> {
        let mut seq = start;
        (0..n)
            .map(|_| {
                seq += if rng.random_bool(0.05) { 2 } else { 1 };
                let room = RoomRef::Boardroom(rng.random_range(0..3));
                LogEvent {
                    seq,
                    kind: rng.random_range(0..4),
                    rooms: vec![RoomRef::Bookings, room],
                    node: Some(rng.random_range(0..2)),
                }
            })
            .collect()
    }

    fn compare(whole: &Verdict, windowed: &Verdict, case: u64) {
        assert_eq!(whole.total, windowed.total, "case {case}: totals");
        assert_eq!(whole.by_kind, windowed.by_kind, "case {case}: by kind");
        assert_eq!(whole.by_class, windowed.by_class, "case {case}: by class");
        assert_eq!(whole.by_path, windowed.by_path, "case {case}: by path");
        assert_eq!(whole.lost_by_seq, windowed.lost_by_seq, "case {case}");
        assert_eq!(
            whole.recovered_by_seq, windowed.recovered_by_seq,
            "case {case}"
        );
    }

    /// The same receipts, judged once at the end with every bit kept and judged as they come
    /// with the ledger advancing past random horizons, give the same verdict: late live
    /// receipts, replays of judged `seq`s, duplicates and receipts of rooms never joined
    /// included.
    #[test]
    fn judging_as_the_run_goes_gives_the_verdict_of_judging_at_the_end() {
        // Late receipts judged, live and replayed, and owed pairs judged as the run went.
        let (mut late_live, mut late_replayed, mut judged_early) = (0, 0, 0);
        for case in 0..300u64 {
            let mut rng = StdRng::seed_from_u64(case);
            let start = 1_000;
            let n = rng.random_range(1..600);
            let events = random_log(&mut rng, start, n);
            let log_end = events.last().unwrap().seq;
            let watermark = start + rng.random_range(0..20);
            let joined = vec![
                Joined {
                    room: RoomRef::Boardroom(rng.random_range(0..3)),
                    watermark,
                    until: if rng.random_bool(0.3) {
                        log_end - rng.random_range(0..100)
                    } else {
                        i64::MAX
                    },
                    class: 3,
                },
                Joined {
                    room: RoomRef::User(1),
                    watermark,
                    until: i64::MAX,
                    class: 4,
                },
            ];
            let nodes = [(start, Some(1)), (start + 300, Some(0))];
            let view = TabView {
                tab: 7,
                joined: &joined,
                nodes: &nodes,
                events: &events,
            };
            let (mut whole, mut windowed) = (Ledger::new(start), Ledger::new(start));
            let mut settled = Verdict::default();
            let (p_lose, p_dup) = (rng.random_range(0.0..0.3), rng.random_range(0.0..0.1));
            let mut behind: Vec<i64> = Vec::new();
            for e in &events {
                // Most events come live in order; some are held back and come late, twice,
                // or by replay; the rest are lost. Every seq of the log reaches the tab
                // (the rooms it did not join included), so some receipts are unexpected.
                let seq = e.seq;
                let r: f64 = rng.random();
                if r < p_lose {
                    if rng.random_bool(0.5) {
                        behind.push(seq);
                    }
                } else {
                    for l in [&mut whole, &mut windowed] {
                        l.record_live(seq);
                    }
                    if r < p_lose + p_dup {
                        behind.push(seq);
                    }
                }
                if rng.random_bool(0.05) && !behind.is_empty() {
                    let late = behind.swap_remove(rng.random_range(0..behind.len()));
                    let replay = rng.random_bool(0.5);
                    for l in [&mut whole, &mut windowed] {
                        if replay {
                            l.record_replayed(late);
                        } else {
                            l.record_live(late);
                        }
                    }
                }
                if rng.random_bool(0.03) {
                    for (_, how) in windowed.late() {
                        match how {
                            Late::Live => late_live += 1,
                            Late::Replayed => late_replayed += 1,
                        }
                    }
                    let horizon = seq - rng.random_range(0..150);
                    settle_tab(&view, &mut windowed, horizon, &mut settled);
                }
            }
            for late in behind.into_iter().filter(|_| rng.random_bool(0.5)) {
                for l in [&mut whole, &mut windowed] {
                    l.record_replayed(late);
                    l.record_live(late);
                }
            }
            judged_early += settled.total.owed;
            let mut all = Verdict::default();
            judge_tab(&view, &whole, log_end, &mut all);
            judge_tab(&view, &windowed, log_end, &mut settled);
            compare(&all, &settled, case);
        }
        assert!(
            late_live > 100 && late_replayed > 100 && judged_early > 10_000,
            "the cases exercise late receipts: {late_live} live, {late_replayed} replayed, \
             {judged_early} pairs judged early"
        );
    }

    #[test]
    fn a_settled_ledger_holds_the_window_not_the_run() {
        let start = 0;
        let events: Vec<LogEvent> = (1..=100_000)
            .map(|seq| LogEvent {
                seq,
                kind: 0,
                rooms: vec![RoomRef::Bookings],
                node: None,
            })
            .collect();
        let joined = [Joined {
            room: RoomRef::Bookings,
            watermark: 0,
            until: i64::MAX,
            class: 0,
        }];
        let view = TabView {
            tab: 0,
            joined: &joined,
            nodes: &[],
            events: &events,
        };
        let mut ledger = Ledger::new(start);
        let mut v = Verdict::default();
        let mut most = 0;
        for seq in 1..=100_000 {
            ledger.record_live(seq);
            // A pass every 1,000 events, judging up to 3,000 behind.
            if seq % 1_000 == 0 {
                settle_tab(&view, &mut ledger, seq - 3_000, &mut v);
                most = most.max(ledger.heap_bytes());
            }
        }
        judge_tab(&view, &ledger, 100_000, &mut v);
        assert_eq!((v.total.owed, v.total.delivered), (100_000, 100_000));
        // Whole: 100,000 bits = 12.5 KB; the window: about 4,000 bits = 500 bytes.
        assert!(most < 1_200, "{most} bytes");
    }
}
