//! Volatile events: the `editing` signal ("Alice is editing"), which the server relays to the
//! other sockets of a boardroom's room without logging it. Nothing is owed, so there is no loss
//! gate by default: the report gives the delivery ratio (received over the calendar tabs that
//! should have heard it) and the latency from the server's `sentAt` to receipt, apart from the
//! logged events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::{Page, Plan};
use crate::record::latency::{Percentiles, histogram};

/// Least time between two signals of one tab: the server relays at most one a second per
/// socket, so a tab waits a little longer and every signal it sends is relayed. (The tab keeps
/// it with the server's own `Throttle`.)
pub const SIGNAL_GAP: Duration = Duration::from_millis(1100);

/// Counts of the run's `editing` signals.
#[derive(Default)]
pub struct VolatileStats {
    sent: AtomicU64,
    expected: AtomicU64,
    received: AtomicU64,
    latency: Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

/// The report's `volatile.editing`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolatileReport {
    /// Signals the actors sent (each before an update of a booking).
    pub sent: u64,
    /// Receipts they should have made: the other calendar tabs of the boardroom, per signal.
    pub expected: u64,
    pub received: u64,
    /// received / expected (1 when nothing was expected).
    pub ratio: f64,
    /// Server `sentAt` to receipt.
    pub latency_ms: Percentiles,
}

impl VolatileStats {
    /// A signal about plan boardroom `k` went out from a tab on `page`: the calendar tabs of
    /// `k` (the plan's audience), but the sender, should hear it.
    pub fn sent(&self, plan: &Plan, k: usize, page: Page) {
        let own = u64::from(page == Page::Calendar(k));
        let others = (plan.audience.get(k).copied().unwrap_or(0) as u64).saturating_sub(own);
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.expected.fetch_add(others, Ordering::Relaxed);
    }

    /// An `editing` notice arrived at `now_us` (wall clock), sent at `sent_at` (its `sentAt`).
    pub fn received(&self, sent_at: Option<i64>, now_us: i64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Some(sent_at) = sent_at {
            let mut latency = self.latency.lock().expect("poisoned");
            let _ = latency
                .get_or_insert_with(histogram)
                .record((now_us - sent_at).max(1) as u64);
        }
    }

    /// (sent, expected, received) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.expected.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    /// Receipt latencies so far, µs (empty before the first).
    pub fn latency(&self) -> hdrhistogram::Histogram<u64> {
        self.latency
            .lock()
            .expect("poisoned")
            .clone()
            .unwrap_or_else(histogram)
    }

    pub fn report(&self) -> VolatileReport {
        let sent = self.sent.load(Ordering::Relaxed);
        let expected = self.expected.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        VolatileReport {
            sent,
            expected,
            received,
            ratio: if expected == 0 {
                1.0
            } else {
                received as f64 / expected as f64
            },
            latency_ms: self
                .latency
                .lock()
                .expect("poisoned")
                .as_ref()
                .map(Percentiles::of)
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_owed_to_the_other_calendar_tabs_of_its_boardroom() {
        let plan = Plan {
            audience: vec![2, 1],
            ..Plan::draw(1, 1, 2, 1, 0.5, (0.0, 1))
        };
        let stats = VolatileStats::default();
        stats.sent(&plan, 0, Page::Calendar(0));
        stats.sent(&plan, 0, Page::Dashboard);
        stats.received(Some(1_000), 3_000);
        stats.received(Some(1_000), 2_000);
        let r = stats.report();
        assert_eq!((r.sent, r.expected, r.received), (2, 3, 2));
        assert!((r.ratio - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.latency_ms.count, 2);
    }
}
