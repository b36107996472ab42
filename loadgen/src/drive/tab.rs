//! One simulated browser tab's state: the rooms it joined with their watermarks, the server
//! nodes it was on, the ledger of what it received, and its Socket.IO client once `receive`
//! has connected it. A connection the server closes or loses is noticed here and handed to the
//! tab's turn to reconnect (the client's own reconnect is off: it would not rejoin or
//! replay).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use booking_server::realtime::editing::Throttle;
use booking_server::realtime::protocol::{
    BookingEventKind, EDITING, EditingSignal, JOIN_ROOM, LEAVE_ROOM, Resync, RoomAck,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::drive::client::{Connection, TabClient};
use crate::drive::life::Lifeline;

use crate::judge::verify::Joined;
use crate::plan::TabPlan;
use crate::record::ledger::Ledger;
use crate::record::stats::Stats;

/// How long a connect or an ack may take before the tab counts it as failed.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Tab {
    pub index: usize,
    pub plan: TabPlan,
    pub user: String,
    pub token: String,
    pub ledger: Mutex<Ledger>,
    /// Rooms joined, with the watermark of the first join (kept across reconnects).
    pub joined: Mutex<Vec<(String, Joined)>>,
    /// What its life (`life`) keeps: a reconnect asked for, and what wakes its turn.
    pub life: Lifeline,
    pub connected: AtomicBool,
    /// A resync asked for: replay from this `seq` on the next turn (the lowest if several).
    resync_after: Mutex<Option<i64>>,
    /// Index of the host the tab talks to now: its plan's at first, the next one after each
    /// failed reconnect attempt.
    host: AtomicUsize,
    /// Its connection and which one is current (callbacks of one already replaced or closed on
    /// purpose are ignored).
    conn: Connection,
    /// The nodes the tab was on: from each connection's lowest join watermark on, (seq, node).
    nodes: Mutex<Vec<(i64, Option<String>)>>,
    /// Receipts waiting to be recorded in goose: (event kind, fan-out µs).
    pub samples: Mutex<Vec<(BookingEventKind, u64)>>,
    /// When this tab last sent an `editing` signal.
    editing: Throttle,
    /// Why the run may not judge this tab's receipts as it goes now ([`Hold`] bits).
    holds: AtomicU8,
}

/// Why the run must not judge a tab's receipts as it goes (`judge::window`): while its first
/// joins are under way, what it is owed is not known yet; while it closes, nor is where its
/// rooms end; while it recovers (reconnects or replays a resync), receipts of old `seq`s are
/// on their way, which judging now would only make late.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Hold {
    Opening = 1,
    Closing = 2,
    Reconnecting = 4,
    Resyncing = 8,
}

impl Tab {
    pub fn new(index: usize, plan: TabPlan, user: String, token: String, base_seq: i64) -> Self {
        let host = plan.host;
        Self {
            index,
            plan,
            user,
            token,
            ledger: Mutex::new(Ledger::new(base_seq)),
            joined: Mutex::new(Vec::new()),
            life: Lifeline::default(),
            connected: AtomicBool::new(false),
            resync_after: Mutex::new(None),
            host: AtomicUsize::new(host),
            conn: Connection::default(),
            nodes: Mutex::new(Vec::new()),
            samples: Mutex::new(Vec::new()),
            editing: Throttle::new(crate::drive::volatile::SIGNAL_GAP),
            holds: AtomicU8::new(Hold::Opening as u8),
        }
    }

    pub fn hold(&self, why: Hold) {
        self.holds.fetch_or(why as u8, Ordering::SeqCst);
    }

    pub fn release(&self, why: Hold) {
        self.holds.fetch_and(!(why as u8), Ordering::SeqCst);
    }

    /// Nothing holds the tab: the run may judge what of it is settled.
    pub fn steady(&self) -> bool {
        self.holds.load(Ordering::SeqCst) == 0
    }

    /// Says "I am editing booking `booking`" (of boardroom `boardroom_id`) to the other tabs of
    /// its room, as a page does while its user types; at most once per [`SIGNAL_GAP`]. True
    /// when the signal went out.
    ///
    /// [`SIGNAL_GAP`]: crate::drive::volatile::SIGNAL_GAP
    pub async fn signal_editing(&self, boardroom_id: i64, booking: i64) -> bool {
        if !self.editing.admit(Instant::now()) {
            return false;
        }
        let signal = EditingSignal {
            boardroom_id,
            booking_id: Some(booking),
        };
        let Some(client) = self.conn.get().await else {
            return false;
        };
        let Ok(arg) = serde_json::to_value(signal) else {
            return false;
        };
        client.emit(EDITING, vec![arg]).await.is_ok()
    }

    /// Starts a new connection: returns its generation (callbacks of older ones are ignored).
    pub fn next_generation(&self) -> u64 {
        self.conn.begin()
    }

    /// The connection got the namespace CONNECT: it is the tab's from now on.
    pub async fn connected_with(&self, client: Arc<dyn TabClient>) {
        self.connected.store(true, Ordering::Relaxed);
        self.conn.set(client).await;
    }

    /// Joins `room`; returns the ack.
    pub async fn join(&self, room: &str) -> Result<RoomAck, String> {
        self.room_request(JOIN_ROOM, room).await
    }

    /// Leaves every room the tab joined (`--stages` closes it): each left room is owed up to
    /// `cutoff` or its leave's ack, the lower. Returns the rooms whose leave failed (they stay
    /// owed to the end).
    pub async fn leave_all(&self, cutoff: i64) -> Vec<String> {
        let mut failed = Vec::new();
        for room in self.room_names() {
            let ack = self.room_request(LEAVE_ROOM, &room).await;
            match ack {
                Ok(RoomAck {
                    ok: true,
                    watermark: Some(through),
                    ..
                }) => {
                    let mut joined = self.joined.lock().expect("poisoned");
                    for (_, j) in joined.iter_mut().filter(|(name, _)| *name == room) {
                        j.until = through.min(cutoff);
                    }
                }
                other => {
                    tracing::warn!(tab = self.index, %room, ?other, "tab could not leave");
                    failed.push(room);
                }
            }
        }
        failed
    }

    /// Sends `event` (join or leave) for `room`; returns the ack.
    async fn room_request(&self, event: &str, room: &str) -> Result<RoomAck, String> {
        let client = self.conn.get().await.ok_or("not connected")?;
        let args = client
            .emit_with_ack(event, vec![json!(room)])
            .await
            .map_err(|e| format!("{room}: {e}"))?;
        parse_ack(args)
    }

    /// Closes the connection (churn, storm, end of run, or what is left of a dropped one).
    pub async fn disconnect(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.conn.close().await;
    }

    /// The connection `generation` failed or was closed by the server. Returns false when it
    /// is not the tab's open connection (connecting, replaced, or closed on purpose).
    pub fn on_drop(&self, stats: &Stats, generation: u64, why: &str) -> bool {
        if !self.conn.is_current(generation) || !self.connected.swap(false, Ordering::SeqCst) {
            return false;
        }
        tracing::info!(tab = self.index, why, "connection dropped");
        stats.dropped();
        self.life.lost();
        true
    }

    pub fn on_resync(&self, stats: &Stats, generation: u64, resync: Option<Resync>) {
        if !self.conn.is_current(generation) {
            return;
        }
        let Some(resync) = resync else {
            tracing::warn!(tab = self.index, "a resync without a readable payload");
            return;
        };
        stats.resyncs.fetch_add(1, Ordering::Relaxed);
        tracing::info!(tab = self.index, after = resync.after, node = %resync.node, "resync");
        self.request_resync(resync.after);
    }

    /// Asks the tab's next turn to replay from `after`.
    pub fn request_resync(&self, after: i64) {
        let mut pending = self.resync_after.lock().expect("poisoned");
        *pending = Some(pending.map_or(after, |p| p.min(after)));
        self.hold(Hold::Resyncing);
        self.life.wake();
    }

    pub fn take_resync(&self) -> Option<i64> {
        self.resync_after.lock().expect("poisoned").take()
    }

    /// The resync replay taken is done: the hold goes unless another was asked for meanwhile.
    pub fn resynced(&self) {
        let pending = self.resync_after.lock().expect("poisoned");
        if pending.is_none() {
            self.release(Hold::Resyncing);
        }
    }

    /// Index into the run's hosts of the server the tab talks to now.
    pub fn host(&self) -> usize {
        self.host.load(Ordering::Relaxed)
    }

    /// Moves the tab to the next of `hosts` servers (after a failed reconnect attempt).
    pub fn next_host(&self, hosts: usize) {
        let next = (self.host() + 1) % hosts.max(1);
        self.host.store(next, Ordering::Relaxed);
    }

    /// The tab's joins from `from_seq` on were handled by `node`.
    pub fn on_node(&self, from_seq: i64, node: Option<String>) {
        self.nodes.lock().expect("poisoned").push((from_seq, node));
    }

    /// Runs `f` with the node the tab is on now (`None`: unknown).
    pub fn with_node<T>(&self, f: impl FnOnce(Option<&str>) -> T) -> T {
        let nodes = self.nodes.lock().expect("poisoned");
        f(nodes.last().and_then(|(_, n)| n.as_deref()))
    }

    /// The node segments so far, for the verdict.
    pub fn node_segments(&self) -> Vec<(i64, Option<String>)> {
        self.nodes.lock().expect("poisoned").clone()
    }

    /// The lowest watermark of the tab's joins: from there on it is owed events.
    pub fn first_watermark(&self) -> Option<i64> {
        let joined = self.joined.lock().expect("poisoned");
        joined.iter().map(|(_, j)| j.watermark).min()
    }

    /// Room names this tab joined.
    pub fn room_names(&self) -> Vec<String> {
        let joined = self.joined.lock().expect("poisoned");
        joined.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// An ack's arguments may come wrapped in an array (rust_socketio hands them over so).
fn parse_ack(values: Vec<Value>) -> Result<RoomAck, String> {
    let mut value = values.into_iter().next().unwrap_or(Value::Null);
    while let Value::Array(mut inner) = value {
        if inner.is_empty() {
            return Err("empty ack".into());
        }
        value = inner.swap_remove(0);
    }
    RoomAck::deserialize(&value).map_err(|e| format!("bad ack {value}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_wrapped_or_not() {
        let ack = json!({"ok": true, "room": "bookings", "watermark": 4});
        for payload in [vec![ack.clone()], vec![json!([ack.clone()])]] {
            let parsed = parse_ack(payload).unwrap();
            assert_eq!(parsed.watermark, Some(4));
        }
        assert!(parse_ack(vec![json!([])]).is_err());
        assert!(parse_ack(vec![json!({"room": 1})]).is_err());
    }
}
