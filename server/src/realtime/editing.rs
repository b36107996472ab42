//! "Who is editing": a client says it is editing a booking of a boardroom, and the other
//! sockets of that boardroom's room are told at once. The signal is volatile (not logged, not
//! replayed, dropped rather than queued behind a full socket) and throttled per socket, so a
//! typing user costs the server at most one relay a second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::SocketRef;
use super::protocol::{EDITING, Editing, EditingAck, EditingSignal, EditingUser, Room};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::now_micros;
use crate::telemetry::metrics::EDITING_SIGNALS;

/// How long a page shows "Alice is editing" after the last signal.
pub const EDITING_TTL: Duration = Duration::from_secs(5);
/// Least time between two relayed signals of one socket; sooner ones are dropped.
pub const EDITING_MIN_GAP: Duration = Duration::from_secs(1);

/// At most one event per `gap`: one is admitted, sooner ones after it are refused. Clones
/// share the state (a socket's handlers keep one each; the load generator uses it too).
#[derive(Debug, Clone)]
pub struct Throttle {
    gap: Duration,
    last: Arc<Mutex<Option<Instant>>>,
}

impl Throttle {
    pub fn new(gap: Duration) -> Self {
        Self {
            gap,
            last: Arc::default(),
        }
    }

    /// True when an event at `now` may go, and notes it.
    pub fn admit(&self, now: Instant) -> bool {
        let mut last = self.last.lock().expect("poisoned");
        if last.is_some_and(|at| now.duration_since(at) < self.gap) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Handles one `editing` signal of socket `s`, throttled by the socket's `throttle` (of
/// [`EDITING_MIN_GAP`]); the ack says what became of it.
pub async fn relay(
    st: &AppState,
    s: &SocketRef,
    throttle: &Throttle,
    signal: Option<EditingSignal>,
) -> EditingAck {
    let refused = |error: String| {
        count(st, "refused");
        EditingAck {
            ok: false,
            throttled: false,
            error: Some(error),
        }
    };
    let Some(user) = s.extensions.get::<AuthUser>() else {
        return refused("not authenticated".into());
    };
    let Some(signal) = signal else {
        return refused("expected {boardroomId, bookingId?}".into());
    };
    if signal.boardroom_id <= 0 {
        return refused("boardroomId must be a positive integer".into());
    }
    if !throttle.admit(Instant::now()) {
        count(st, "throttled");
        return EditingAck {
            ok: false,
            throttled: true,
            error: None,
        };
    }
    let notice = Editing {
        user: EditingUser {
            name: user.name.clone().unwrap_or_else(|| user.id.clone()),
            id: user.id,
        },
        boardroom_id: signal.boardroom_id,
        booking_id: signal.booking_id,
        ttl_ms: EDITING_TTL.as_millis() as u64,
        sent_at: now_micros(),
        node: st.realtime.node().to_string(),
    };
    let room = Room::Boardroom(signal.boardroom_id).name();
    match s.to(room).volatile().emit(EDITING, &notice).await {
        Ok(()) => count(st, "relayed"),
        // Volatile: a socket whose queue is full just misses it.
        Err(e) => {
            tracing::debug!(error = %e, "editing signal not relayed to every socket");
            count(st, "partial");
        }
    }
    EditingAck {
        ok: true,
        throttled: false,
        error: None,
    }
}

/// Every `result` label of `socketio_editing_signals_total`.
pub const RESULTS: [&str; 4] = ["relayed", "partial", "throttled", "refused"];

fn count(st: &AppState, result: &'static str) {
    st.metrics
        .labelled_counter(EDITING_SIGNALS, &[("result", result.to_string())])
        .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_relayed_at_most_once_a_gap() {
        let throttle = Throttle::new(EDITING_MIN_GAP);
        let t0 = Instant::now();
        assert!(throttle.admit(t0));
        assert!(!throttle.admit(t0 + EDITING_MIN_GAP / 2));
        assert!(throttle.admit(t0 + EDITING_MIN_GAP));
        // A copy shares the state: each handler of a socket keeps one.
        assert!(!throttle.clone().admit(t0 + EDITING_MIN_GAP));
    }
}
