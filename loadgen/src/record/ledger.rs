//! What one tab received, kept small: a bitmap of live `seq`s and one of replayed `seq`s
//! above the settled mark, plus duplicate and order counters. No payloads. Also a short
//! history of the live high mark, so a replay can start from a `seq` that is safe with several
//! servers (their events arrive slightly out of `seq` order).
//!
//! On long runs the bitmaps would grow by a bit per event for the whole run; instead the run
//! judges what is settled as it goes (`judge::window`) and the ledger drops those bits
//! ([`Ledger::advance`]). What it keeps of the judged part is the few `seq`s whose verdict a
//! later receipt could still change (lost, recovered, unexpected), and receipts that come for
//! it after all wait in `late` for the next judging, so the verdict is the one the whole
//! bitmap would have given.

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
    /// The run's start: nothing at or below it is owed.
    start: i64,
    /// Bit `i` stands for `seq = base + 1 + i`; `base` starts at `start` and moves up as the
    /// run judges what is settled.
    base: i64,
    live: Vec<u64>,
    replayed: Vec<u64>,
    /// Live receipts at or below `start` (they cannot be owed; kept to judge them unexpected).
    below_base: Vec<i64>,
    /// Receipts of judged `seq`s (above `start`, at or below `base`), waiting to be judged.
    late: Vec<(i64, Late)>,
    /// What the judged part ended as, where a later receipt could change it: ascending.
    pub judged: Judged,
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
    /// Of a `seq` already judged: it waits to be judged again ([`Ledger::take_late`]).
    Late,
}

/// How a receipt of a judged `seq` came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    Live,
    Replayed,
}

/// The `seq`s of a tab's judged part whose verdict a later receipt changes: owed and lost
/// (a live receipt makes it delivered, a replayed one recovered), owed and recovered (a live
/// receipt makes it delivered), and received live though not owed (a second receipt is a
/// duplicate). Each ascending; in a healthy run the first two are empty and the last holds
/// the few receipts at a join's watermark or after a leave.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judged {
    pub lost: Vec<i64>,
    pub recovered: Vec<i64>,
    pub not_owed: Vec<i64>,
}

/// Inserts `seq` in the ascending `set`; false when it was there.
pub fn insert_sorted(set: &mut Vec<i64>, seq: i64) -> bool {
    match set.binary_search(&seq) {
        Ok(_) => false,
        Err(at) => {
            set.insert(at, seq);
            true
        }
    }
}

/// Removes `seq` from the ascending `set`; false when it was not there.
pub fn remove_sorted(set: &mut Vec<i64>, seq: i64) -> bool {
    match set.binary_search(&seq) {
        Ok(at) => {
            set.remove(at);
            true
        }
        Err(_) => false,
    }
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
    pub fn new(start: i64) -> Self {
        Self {
            start,
            base: start,
            last_live: start,
            ..Self::default()
        }
    }

    /// Everything at or below this is judged (the run's start until the first judging).
    pub fn base(&self) -> i64 {
        self.base
    }

    /// Where the ledger can move its base to when everything up to `horizon` is settled: the
    /// highest whole word of bits at or below it (bits go a word at a time).
    pub fn advance_point(&self, horizon: i64) -> i64 {
        if horizon <= self.base {
            return self.base;
        }
        self.base + (horizon - self.base) / 64 * 64
    }

    /// Drops the bits of every `seq` at or below `to` (an [`Ledger::advance_point`], judged by
    /// the caller first); receipts of them from now on are late.
    pub fn advance(&mut self, to: i64) {
        debug_assert_eq!((to - self.base) % 64, 0, "whole words only");
        if to <= self.base {
            return;
        }
        let words = ((to - self.base) / 64) as usize;
        for bits in [&mut self.live, &mut self.replayed] {
            bits.drain(..words.min(bits.len()));
            if bits.capacity() > 2 * bits.len() + 8 {
                bits.shrink_to_fit();
            }
        }
        self.base = to;
    }

    /// The late receipts so far, in arrival order.
    pub fn late(&self) -> &[(i64, Late)] {
        &self.late
    }

    /// The late receipts so far, in arrival order, for judging.
    pub fn take_late(&mut self) -> Vec<(i64, Late)> {
        std::mem::take(&mut self.late)
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
            None if seq > self.start => {
                self.late.push((seq, Late::Live));
                return Receipt::Late;
            }
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
            None if seq > self.start => {
                self.late.push((seq, Late::Replayed));
                false
            }
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

    /// Every distinct `seq` above the base received live, ascending.
    pub fn live_seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.live.iter().enumerate().flat_map(move |(w, word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| self.base + 1 + (w * 64 + b) as i64)
        })
    }

    /// The distinct live receipts at or below the run's start (never owed).
    pub fn before_start(&self) -> &[i64] {
        &self.below_base
    }

    /// Bytes held, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        let sets = &self.judged;
        let seqs = self.below_base.capacity()
            + sets.lost.capacity()
            + sets.recovered.capacity()
            + sets.not_owed.capacity();
        (self.live.capacity() + self.replayed.capacity() + seqs) * 8
            + self.late.capacity() * std::mem::size_of::<(i64, Late)>()
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
        assert_eq!(l.before_start(), [9]);
        assert_eq!(l.live_seqs().count(), 0);
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
