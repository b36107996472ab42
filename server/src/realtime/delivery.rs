//! Handing committed events to sockets, one socket at a time, so that a delivery this server
//! could not make is known by the socket it missed, and that socket is told to replay.
//!
//! - Local sockets: each gets the event on its own queue. A full queue (a client that stopped
//!   reading, or reads slower than events come) skips that delivery; the socket then owes a
//!   `resync {after}` from just before the first event it missed, sent as soon as its queue
//!   takes one, and before any later event: until it goes, the socket is handed nothing more
//!   (the replay covers it), so a client that saw no `seq` past the gap replays it however it
//!   comes back (the heartbeat closes a socket whose queue stays full, and its reconnect
//!   replays from what it saw). A broadcast resync a full queue did not take is owed the same
//!   way.
//! - Other servers: with Redis, the event goes out on a channel of its own ([`Relayed`]), and
//!   each server hands it to its own sockets the same way. A publish that fails (link down, or
//!   Redis not answering in time while pings still pass) leaves a cluster-wide resync owed,
//!   sent as soon as a broadcast goes through.
//!
//! Every owed resync is bounded: one entry per socket, one for the cluster.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};

/// How often owed resyncs are tried again while a queue stays full or the link fails.
pub const RETRY_EVERY: Duration = Duration::from_millis(100);

/// One booking event as it travels between servers: who committed it, and what to hand to
/// which rooms' sockets.
#[derive(Debug, Serialize, Deserialize)]
pub struct Relayed {
    pub node: String,
    pub seq: i64,
    pub event: String,
    pub rooms: Vec<String>,
    pub payload: Box<RawValue>,
}

/// Resyncs this server still has to send.
#[derive(Debug, Default)]
pub struct Owed {
    inner: Mutex<OwedInner>,
    /// How many sockets owe one: the hand-out path looks no further while it is 0.
    sockets_owing: AtomicUsize,
}

#[derive(Debug, Default)]
struct OwedInner {
    /// Per socket: where its replay starts, and why (the reason of that earliest gap).
    sockets: HashMap<Sid, (i64, &'static str)>,
    cluster: Option<i64>,
}

impl Owed {
    /// `socket` missed the event after `after`, or a resync notice from `after` for `reason`
    /// (keeps the earliest gap, and its reason).
    pub fn socket(&self, socket: Sid, after: i64, reason: &'static str) {
        let mut owed = self.inner.lock().expect("poisoned");
        let entry = owed.sockets.entry(socket).or_insert((after, reason));
        if after < entry.0 {
            *entry = (after, reason);
        }
        self.sockets_owing
            .store(owed.sockets.len(), Ordering::Relaxed);
    }

    /// The other servers' sockets may have missed every event after `after`.
    pub fn cluster(&self, after: i64) {
        let mut owed = self.inner.lock().expect("poisoned");
        owed.cluster = Some(owed.cluster.map_or(after, |a| a.min(after)));
    }

    pub fn is_empty(&self) -> bool {
        let owed = self.inner.lock().expect("poisoned");
        owed.sockets.is_empty() && owed.cluster.is_none()
    }

    /// Before `socket` is handed a later event: if it owes a resync, `send` sends it first
    /// (`send` gets its `after`), under the lock, so that no other hand-out reaches the socket
    /// in between. True when the socket may be handed the event: it owed nothing, or its
    /// resync went out. While its queue stays full it keeps owing, and the events meanwhile
    /// are not handed to it (the resync's replay covers them), so no later `seq` reaches a
    /// socket before its resync does: a client that replays from the highest `seq` it saw,
    /// or reconnects before the resync, still replays the gap.
    pub fn settle_socket(
        &self,
        socket: Sid,
        send: impl FnOnce(i64, &'static str) -> Outcome,
    ) -> bool {
        if self.sockets_owing.load(Ordering::Relaxed) == 0 {
            return true;
        }
        let mut owed = self.inner.lock().expect("poisoned");
        let Some(&(after, reason)) = owed.sockets.get(&socket) else {
            return true;
        };
        let settled = match send(after, reason) {
            Outcome::Delivered => true,
            Outcome::Full => return false,
            Outcome::Closed => false,
        };
        owed.sockets.remove(&socket);
        self.sockets_owing
            .store(owed.sockets.len(), Ordering::Relaxed);
        settled
    }

    /// The sockets that owe a resync now.
    pub fn sockets(&self) -> Vec<Sid> {
        let owed = self.inner.lock().expect("poisoned");
        owed.sockets.keys().copied().collect()
    }

    /// A socket that went away owes nothing (its reconnect replays).
    pub fn forget(&self, socket: Sid) {
        let mut owed = self.inner.lock().expect("poisoned");
        owed.sockets.remove(&socket);
        self.sockets_owing
            .store(owed.sockets.len(), Ordering::Relaxed);
    }

    /// Takes the cluster's owed resync; one that cannot be sent goes back with
    /// [`Owed::cluster`].
    pub fn take_cluster(&self) -> Option<i64> {
        self.inner.lock().expect("poisoned").cluster.take()
    }
}

/// What one socket's `emit` says about the delivery.
pub enum Outcome {
    Delivered,
    /// The socket's queue was full: the event did not reach it.
    Full,
    /// The socket is gone: its reconnect replays.
    Closed,
}

impl From<Result<(), SendError>> for Outcome {
    fn from(result: Result<(), SendError>) -> Self {
        match result {
            Ok(()) => Outcome::Delivered,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Outcome::Full,
            Err(SendError::Socket(SocketError::Closed)) => Outcome::Closed,
            // Payloads here are plain JSON: a serializer error is a bug, and that socket did
            // not get the event: it replays like one whose queue was full.
            Err(SendError::Serialize(e)) => {
                tracing::error!(error = %e, "event not serialized for a socket");
                Outcome::Full
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_owes_one_resync_from_its_earliest_gap_and_settles_it_before_later_events() {
        let owed = Owed::default();
        let (a, b, c) = (Sid::new(), Sid::new(), Sid::new());
        assert!(owed.settle_socket(a, |_, _| unreachable!("nothing owed")));
        owed.socket(a, 10, "queue-full");
        owed.socket(a, 7, "adapter-overflow");
        owed.socket(a, 12, "queue-full");
        owed.socket(b, 3, "queue-full");
        owed.cluster(40);
        owed.cluster(35);
        assert!(!owed.is_empty());
        let mut sockets = owed.sockets();
        sockets.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(sockets, expected);
        assert!(owed.settle_socket(c, |_, _| unreachable!("c owes nothing")));
        // a's queue is still full: it keeps owing from 7, and is not handed the event.
        let mut asked = Vec::new();
        assert!(!owed.settle_socket(a, |after, reason| {
            asked.push((after, reason));
            Outcome::Full
        }));
        // Now it takes the resync: the event may follow it.
        assert!(owed.settle_socket(a, |after, reason| {
            asked.push((after, reason));
            Outcome::Delivered
        }));
        assert_eq!(asked, [(7, "adapter-overflow"), (7, "adapter-overflow")]);
        assert!(owed.settle_socket(a, |_, _| unreachable!("settled")));
        // b went away: nothing owed, and no event for it either.
        assert!(!owed.settle_socket(b, |_, _| Outcome::Closed));
        assert_eq!(owed.sockets(), []);
        assert_eq!(owed.take_cluster(), Some(35));
        assert!(owed.is_empty());
        owed.socket(c, 1, "queue-full");
        owed.forget(c);
        assert!(owed.is_empty());
    }

    #[test]
    fn a_relayed_event_keeps_its_payload_byte_for_byte() {
        let payload = RawValue::from_string(r#"{"seq":5,"title":"a\u0000b"}"#.into()).unwrap();
        let relayed = Relayed {
            node: "n1".into(),
            seq: 5,
            event: "booking-created".into(),
            rooms: vec!["bookings".into(), "boardroom-1".into()],
            payload,
        };
        let bytes = serde_json::to_vec(&relayed).unwrap();
        let back: Relayed = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.payload.get(), relayed.payload.get());
        assert_eq!((back.seq, back.rooms), (5, relayed.rooms));
    }
}
