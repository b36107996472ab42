//! Handing committed events to sockets, one socket at a time, so that a delivery this server
//! could not make is known by the socket it missed, and that socket is told to replay.
//!
//! - Local sockets: each gets the event on its own queue. A full queue (a client that stopped
//!   reading, or reads slower than events come) skips that delivery; the socket then owes a
//!   `resync {after}` from just before the first event it missed, sent as soon as its queue
//!   takes one (the heartbeat closes a socket whose queue stays full, and its reconnect
//!   replays).
//! - Other servers: with Redis, the event goes out on a channel of its own ([`Relayed`]), and
//!   each server hands it to its own sockets the same way. A publish that fails (link down, or
//!   Redis not answering in time while pings still pass) leaves a cluster-wide resync owed,
//!   sent as soon as a broadcast goes through.
//!
//! Every owed resync is bounded: one entry per socket, one for the cluster.

use std::collections::HashMap;
use std::sync::Mutex;
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
}

#[derive(Debug, Default)]
struct OwedInner {
    sockets: HashMap<Sid, i64>,
    cluster: Option<i64>,
}

impl Owed {
    /// `socket` missed the event after `after` (keeps the earliest gap).
    pub fn socket(&self, socket: Sid, after: i64) {
        let mut owed = self.inner.lock().expect("poisoned");
        let entry = owed.sockets.entry(socket).or_insert(after);
        *entry = (*entry).min(after);
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

    /// Takes every owed resync; what could not be sent goes back with [`Owed::socket`] or
    /// [`Owed::cluster`].
    pub fn take(&self) -> (Vec<(Sid, i64)>, Option<i64>) {
        let mut owed = self.inner.lock().expect("poisoned");
        (owed.sockets.drain().collect(), owed.cluster.take())
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
    fn a_socket_owes_one_resync_from_its_earliest_gap() {
        let owed = Owed::default();
        let (a, b) = (Sid::new(), Sid::new());
        owed.socket(a, 10);
        owed.socket(a, 7);
        owed.socket(a, 12);
        owed.socket(b, 3);
        owed.cluster(40);
        owed.cluster(35);
        assert!(!owed.is_empty());
        let (mut sockets, cluster) = owed.take();
        sockets.sort_by_key(|(_, after)| *after);
        assert_eq!(sockets, vec![(b, 3), (a, 7)]);
        assert_eq!(cluster, Some(35));
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
