//! The run's counters, read by the progress line, `/metrics` and the report: tabs, receipts by
//! path, reconnects and resyncs, joins, and REST actions by kind and result. All monotonic
//! atomics, so the receive path and the actors count without locks.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::judge::verify::PATHS;

/// What an actor does; `Conflict` is a create that must be refused with 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Conflict,
    Update,
    Cancel,
    Delete,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Create,
        Action::Conflict,
        Action::Update,
        Action::Cancel,
        Action::Delete,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Conflict => "conflict",
            Action::Update => "update",
            Action::Cancel => "cancel",
            Action::Delete => "delete",
        }
    }
}

/// How an action ended: the expected answer, a 409 nobody planned, anything else, or no
/// answer / 503 (the server was down or said so: counted apart, a fault scenario expects it).
pub const ACTION_RESULTS: [&str; 4] = ["ok", "conflict", "error", "unavailable"];
/// Index of "unavailable" in [`ACTION_RESULTS`].
pub const UNAVAILABLE: usize = 3;

/// Counters the progress line and the report read; all monotonic.
#[derive(Default)]
pub struct Stats {
    pub tabs_connected: AtomicU64,
    pub tabs_joined: AtomicU64,
    /// Tabs that had joined and were closed by `--stages`.
    pub tabs_left: AtomicU64,
    pub deliveries: AtomicU64,
    pub reconnects: AtomicU64,
    pub replayed: AtomicU64,
    /// Tab replays the server refused with 410 (its retention removed what they asked for).
    pub replays_gone: AtomicU64,
    /// Connections the server closed or lost (the loadgen did not close them).
    pub drops: AtomicU64,
    /// Tabs dropped and not yet back (rejoined and replayed).
    pub tabs_down: AtomicI64,
    /// Tabs that gave up reconnecting when the run ended.
    pub gave_up: AtomicU64,
    /// `resync` events received, and the events their replays recovered.
    pub resyncs: AtomicU64,
    pub resync_recovered: AtomicU64,
    /// Live receipts by path (`verify::PATHS`), as they arrive.
    pub live_by_path: [AtomicU64; PATHS.len()],
    /// Live receipts that repeated one already received, and that came out of `seq` order.
    pub duplicates: AtomicU64,
    pub out_of_order: AtomicU64,
    /// Room joins by room kind (bookings, boardroom, user) and result (ok, refused).
    pub joins: [[AtomicU64; 2]; 3],
    /// Actions by `Action` and result (`ACTION_RESULTS`).
    pub actions: [[AtomicU64; ACTION_RESULTS.len()]; 5],
    /// The verdict's counts, once the run is judged (for /metrics after the run).
    pub verdict: OnceLock<crate::judge::verify::DeliveryCounts>,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn actions(&self) -> u64 {
        self.actions.iter().flatten().map(Self::get).sum()
    }

    /// Counts an action's answer; true when it was the expected one. No answer at all and 503
    /// are "unavailable": the server was down or said so (a fault scenario expects them).
    pub fn action(&self, action: Action, status: Option<u16>, expected: u16) -> bool {
        let result = match status {
            Some(s) if s == expected => 0,
            Some(409) => 1,
            None | Some(503) => UNAVAILABLE,
            _ => 2,
        };
        self.actions[action as usize][result].fetch_add(1, Ordering::Relaxed);
        result == 0
    }

    /// Actions answered "unavailable", all kinds.
    pub fn unavailable(&self) -> u64 {
        self.actions
            .iter()
            .map(|a| Self::get(&a[UNAVAILABLE]))
            .sum()
    }

    /// A tab's connection dropped.
    pub fn dropped(&self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
        self.tabs_down.fetch_add(1, Ordering::Relaxed);
    }

    /// Actions of one kind with one result (indexes into `ACTION_RESULTS`).
    pub fn action_count(&self, action: Action, result: usize) -> u64 {
        Self::get(&self.actions[action as usize][result])
    }
}
