//! What goose's report shows of the tabs. Tabs are not goose users (goose drives the REST
//! actors only), and goose keeps only what its own users record, so a tab's connects, joins,
//! reconnects, replays and receipt samples queue here, and one reporter user hands them to
//! goose (`drive::scenario`). The queue is bounded: past [`MAX_PENDING`] records waiting (goose
//! not running yet, or already done), new ones are counted and dropped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Records waiting for the reporter at most.
pub const MAX_PENDING: usize = 200_000;

/// One Socket.IO (or replay) request as goose's report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// goose's method column: `SIO`, or `GET` for a replay read.
    pub method: &'static str,
    pub name: String,
    pub elapsed: Duration,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct GooseFeed {
    pending: Mutex<Vec<Record>>,
    /// Records dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl GooseFeed {
    /// Queues one record for goose's report.
    pub fn record(
        &self,
        method: &'static str,
        name: impl Into<String>,
        elapsed: Duration,
        ok: bool,
        error: Option<&str>,
    ) {
        let mut pending = self.pending.lock().expect("poisoned");
        if pending.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(Record {
            method,
            name: name.into(),
            elapsed,
            ok,
            error: error.map(str::to_string),
        });
    }

    /// Everything queued so far, oldest first; the queue is empty after.
    pub fn take(&self) -> Vec<Record> {
        std::mem::take(&mut *self.pending.lock().expect("poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_out_in_order_once_and_a_full_queue_counts_what_it_drops() {
        let feed = GooseFeed::default();
        feed.record("SIO", "connect", Duration::from_millis(3), true, None);
        feed.record(
            "SIO",
            "join bookings",
            Duration::from_millis(1),
            false,
            Some("no"),
        );
        let taken = feed.take();
        assert_eq!(
            taken.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["connect", "join bookings"]
        );
        assert_eq!(taken[1].error.as_deref(), Some("no"));
        assert!(!taken[1].ok);
        assert!(feed.take().is_empty(), "taken once");
        for _ in 0..MAX_PENDING + 5 {
            feed.record("SIO", "receive booking-created", Duration::ZERO, true, None);
        }
        assert_eq!(feed.dropped.load(Ordering::Relaxed), 5);
        assert_eq!(feed.take().len(), MAX_PENDING);
    }
}
