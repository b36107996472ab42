//! What one tab received, kept small: a bitmap of live `seq`s and one of replayed `seq`s
//! above the run's starting `seq`, plus duplicate and order counters. No payloads.

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

    /// Marks `seq` as fetched by replay (counts only if it never came live).
    pub fn record_replayed(&mut self, seq: i64) {
        if let Some(i) = self.index(seq) {
            set(&mut self.replayed, i);
        }
    }

    pub fn got_live(&self, seq: i64) -> bool {
        self.index(seq).is_some_and(|i| bit(&self.live, i))
    }

    pub fn got_replayed(&self, seq: i64) -> bool {
        self.index(seq).is_some_and(|i| bit(&self.replayed, i))
    }

    /// The highest `seq` received live (the run's base if none): where a replay starts.
    pub fn last_live(&self) -> i64 {
        self.last_live
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
    }
}
