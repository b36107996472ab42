//! What one client may take of a server: connections per server, rooms per socket and joins
//! per socket per second, each set by a flag (see `config`) and counted in
//! `socketio_limits_hit_total{limit}` when hit. A join costs one or two queries, so without a
//! rate one socket could keep the whole database pool busy.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections of one server: taken in the handshake, before the socket exists, and given
/// back when it disconnects, so the limit holds however many handshakes run at once.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    open: AtomicUsize,
}

impl Connections {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: AtomicUsize::new(0),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place, or says there is none left.
    pub fn take(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Gives back a place taken with [`Connections::take`].
    pub fn give_back(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                open.checked_sub(1)
            });
    }
}

/// Joins of one socket: up to `per_second` at once, then one every `1 / per_second` seconds.
/// Clones share the state.
#[derive(Debug, Clone)]
pub struct JoinRate {
    per_second: u32,
    state: Arc<Mutex<(f64, Instant)>>,
}

impl JoinRate {
    pub fn new(per_second: u32, now: Instant) -> Self {
        Self {
            per_second,
            state: Arc::new(Mutex::new((f64::from(per_second), now))),
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Admits a join at `now`, or says how long until the next one would be.
    pub fn admit(&self, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.per_second);
        let mut state = self.state.lock().expect("poisoned");
        let (tokens, at) = *state;
        let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(rate);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(Duration::from_secs_f64(
                (1.0 - tokens) / rate.max(f64::MIN_POSITIVE),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stop_at_the_limit_and_free_a_place_on_give_back() {
        let c = Connections::new(2);
        assert!(c.take() && c.take());
        assert!(!c.take(), "the third is refused");
        c.give_back();
        assert!(c.take(), "a place came free");
        c.give_back();
        c.give_back();
        c.give_back();
        c.give_back();
        assert!(c.take() && c.take() && !c.take(), "no underflow");
    }

    #[test]
    fn joins_burst_to_the_rate_then_follow_it() {
        let t0 = Instant::now();
        let rate = JoinRate::new(4, t0);
        for _ in 0..4 {
            assert_eq!(rate.admit(t0), Ok(()));
        }
        let wait = rate.admit(t0).unwrap_err();
        assert!(
            (wait.as_secs_f64() - 0.25).abs() < 1e-9,
            "one more in 250 ms: {wait:?}"
        );
        assert!(rate.admit(t0 + Duration::from_millis(200)).is_err());
        assert_eq!(rate.admit(t0 + Duration::from_millis(260)), Ok(()));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..4 {
            assert_eq!(rate.admit(later), Ok(()));
        }
        assert!(rate.admit(later).is_err());
    }
}
