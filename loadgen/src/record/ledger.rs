//! What one tab received, kept small: a bitmap of live `seq`s and one of replayed `seq`s
//! above the run's starting `seq`, plus duplicate and order counters. No payloads. Also a short
//! history of the live high mark, so a replay can start from a `seq` that is safe with several
//! servers (their events arrive slightly out of `seq` order).

use std::collections::VecDeque;

/// A replay starts from the live high mark as it was at least this long before the drop: an
/// event of another node with a lower `seq` may still have been in flight when a higher one
/// arrived, but not for this long.
pub const SAFE_LAG_US: i64 = 3_000_000;
/// The history keeps at most one sample per this period.
const SAMPLE_EVERY_US: i64 = 250_000;

/// Receipts of one tab.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Bit `i` stands for `seq = base + 1 + i`.
    base: i64,
    live: Vec<u64>,
    replayed: Vec<u64>,
    /// Live receipts at or below `base` (they cannot be owed; kept to judge them unexpected).
    below_base: Vec<i64>,
    pub live_count: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    last_live: i64,
    history: LiveHistory,
}

/// Samples of a tab's live high mark over time: (wall clock µs, highest `seq` received live).
/// Keeps the newest sample older than [`SAFE_LAG_US`] and every newer one (a dozen at most).
#[derive(Debug, Default)]
pub struct LiveHistory {
    marks: VecDeque<(i64, i64)>,
}

impl LiveHistory {
    /// Notes that at `now_us` the live high mark was `last_live`.
    pub fn note(&mut self, now_us: i64, last_live: i64) {
        match self.marks.back_mut() {
            Some(back) if now_us - back.0 < SAMPLE_EVERY_US => back.1 = back.1.max(last_live),
            _ => self.marks.push_back((now_us, last_live)),
        }
        let cut = now_us - SAFE_LAG_US - SAMPLE_EVERY_US;
        while self.marks.len() >= 2 && self.marks[1].0 <= cut {
            self.marks.pop_front();
        }
    }

    /// The live high mark as it was [`SAFE_LAG_US`] before `at_us`, if it was sampled then.
    /// A sample merges receipts of up to [`SAMPLE_EVERY_US`] after its time, so it only
    /// counts when the whole period lies before the cut.
    pub fn safe_start(&self, at_us: i64) -> Option<i64> {
        let cut = at_us - SAFE_LAG_US - SAMPLE_EVERY_US;
        self.marks
            .iter()
            .rev()
            .find(|(t, _)| *t <= cut)
            .map(|(_, seq)| *seq)
    }
}

/// What a live receipt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    First,
    Duplicate,
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set(bits: &mut Vec<u64>, i: usize) -> bool {
    if bits.len() <= i / 64 {
        bits.resize(i / 64 + 1, 0);
    }
    let was = bits[i / 64] & (1 << (i % 64)) != 0;
    bits[i / 64] |= 1 << (i % 64);
    !was
}

impl Ledger {
    pub fn new(base: i64) -> Self {
        Self {
            base,
            last_live: base,
            ..Self::default()
        }
    }

    fn index(&self, seq: i64) -> Option<usize> {
        (seq > self.base).then(|| (seq - self.base - 1) as usize)
    }

    /// A live receipt at `now_us` (wall clock): recorded, and the high mark's history noted.
    pub fn record_live_at(&mut self, seq: i64, now_us: i64) -> Receipt {
        let receipt = self.record_live(seq);
        self.history.note(now_us, self.last_live);
        receipt
    }

    pub fn record_live(&mut self, seq: i64) -> Receipt {
        self.live_count += 1;
        if seq < self.last_live {
            self.out_of_order += 1;
        }
        self.last_live = self.last_live.max(seq);
        let first = match self.index(seq) {
            Some(i) => set(&mut self.live, i),
            None if self.below_base.contains(&seq) => false,
            None => {
                self.below_base.push(seq);
                true
            }
        };
        if first {
            Receipt::First
        } else {
            self.duplicates += 1;
            Receipt::Duplicate
        }
    }

    /// Marks `seq` as fetched by replay (counts only if it never came live); true when it
    /// closed a gap: neither received live nor replayed before.
    pub fn record_replayed(&mut self, seq: i64) -> bool {
        match self.index(seq) {
            Some(i) => set(&mut self.replayed, i) && !bit(&self.live, i),
            None => false,
        }
    }

    pub fn got_live(&self, seq: i64) -> bool {
        self.index(seq).is_some_and(|i| bit(&self.live, i))
    }

    pub fn got_replayed(&self, seq: i64) -> bool {
        self.index(seq).is_some_and(|i| bit(&self.replayed, i))
    }

    /// The highest `seq` received live (the run's base if none).
    pub fn last_live(&self) -> i64 {
        self.last_live
    }

    /// Where a replay for a drop at `at_us` starts: the live high mark a safe while before it,
    /// or `floor` (the tab's first join watermark) when nothing was received that early.
    /// Replaying too much is harmless: an event counts as recovered only if it never came live.
    pub fn replay_start(&self, at_us: i64, floor: i64) -> i64 {
        self.history.safe_start(at_us).unwrap_or(floor).max(floor)
    }

    /// Every distinct `seq` received live, ascending.
    pub fn live_seqs(&self) -> impl Iterator<Item = i64> + '_ {
        let above = self.live.iter().enumerate().flat_map(move |(w, word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| self.base + 1 + (w * 64 + b) as i64)
        });
        self.below_base.iter().copied().chain(above)
    }

    /// Bytes held, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        (self.live.capacity() + self.replayed.capacity()) * 8 + self.below_base.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_receipts_count_duplicates_and_disorder() {
        let mut l = Ledger::new(100);
        assert_eq!(l.record_live(101), Receipt::First);
        assert_eq!(l.record_live(105), Receipt::First);
        assert_eq!(l.record_live(103), Receipt::First);
        assert_eq!(l.record_live(105), Receipt::Duplicate);
        assert_eq!(
            (l.duplicates, l.out_of_order, l.live_count),
            (1, 1, 4),
            "a repeat is a duplicate, not disorder"
        );
        assert!(l.got_live(103) && !l.got_live(102));
        assert_eq!(l.live_seqs().collect::<Vec<_>>(), vec![101, 103, 105]);
        assert_eq!(l.last_live(), 105);
    }

    #[test]
    fn replay_marks_only_what_it_fetched_and_the_base_is_exclusive() {
        let mut l = Ledger::new(10);
        l.record_replayed(12);
        assert!(l.got_replayed(12) && !l.got_live(12) && !l.got_replayed(11));
        assert_eq!(l.last_live(), 10, "replay does not move the live high mark");
        assert_eq!(l.record_live(9), Receipt::First);
        assert_eq!(l.record_live(9), Receipt::Duplicate);
        assert!(!l.got_live(9), "at or below the base nothing is owed");
        assert_eq!(l.live_seqs().collect::<Vec<_>>(), vec![9]);
        l.record_live(200);
        assert!(l.got_live(200) && l.heap_bytes() >= 24);
        assert!(
            !l.record_replayed(200),
            "came live: replay recovers nothing"
        );
        assert!(l.record_replayed(201) && !l.record_replayed(201));
    }

    const S: i64 = 1_000_000;

    #[test]
    fn a_replay_starts_from_the_high_mark_of_a_safe_while_ago() {
        let mut l = Ledger::new(10);
        assert_eq!(
            l.replay_start(100 * S, 12),
            12,
            "nothing received: from the join"
        );
        l.record_live_at(20, 100 * S);
        l.record_live_at(30, 102 * S);
        l.record_live_at(40, 104 * S);
        // At 104 s, only the sample of 100 s is more than 3 s old.
        assert_eq!(l.replay_start(104 * S, 12), 20);
        assert_eq!(l.replay_start(106 * S, 12), 30);
        assert_eq!(
            l.replay_start(120 * S, 12),
            40,
            "quiet for long: the last mark"
        );
        assert_eq!(
            l.replay_start(102 * S, 12),
            12,
            "too recent to trust any sample"
        );
        assert!(l.replay_start(104 * S, 12) <= l.last_live());
    }

    #[test]
    fn the_history_stays_short_and_keeps_one_old_sample() {
        let mut h = LiveHistory::default();
        for i in 0..1_000 {
            h.note(i * 100_000, i);
        }
        assert!(h.marks.len() <= 16, "{}", h.marks.len());
        let now = 999 * 100_000;
        let start = h.safe_start(now).expect("an old enough sample is kept");
        assert!((955..=970).contains(&start), "about 3.25 s before: {start}");
    }
}
