//! What one client may take of a server: connections per server, sockets per user, rooms per
//! socket, joins per socket per second and writes per user per second, each set by a flag (see
//! `config`) and counted in `socketio_limits_hit_total{limit}` when hit. A join costs one or
//! two queries and a write holds the write turn, so without a rate one token could keep the
//! whole database pool busy. Admins (operators, and the load generator's shared `--token`) are
//! not held to the per-user limits.

use std::collections::HashMap;
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

/// Sockets of each user on this server: taken in the handshake, given back at disconnect. A
/// user with none open has no entry.
#[derive(Debug)]
pub struct UserSockets {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl UserSockets {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place for `user`, or says the user holds the most already.
    pub fn take(&self, user: &str) -> bool {
        let mut open = self.open.lock().expect("poisoned");
        let held = open.entry(user.to_string()).or_default();
        if *held >= self.max {
            return false;
        }
        *held += 1;
        true
    }

    /// Gives back a place taken with [`UserSockets::take`].
    pub fn give_back(&self, user: &str) {
        let mut open = self.open.lock().expect("poisoned");
        if let Some(held) = open.get_mut(user) {
            *held -= 1;
            if *held == 0 {
                open.remove(user);
            }
        }
    }
}

/// Takes one from a bucket of `rate` tokens refilled at `rate` a second, as it stands at
/// `now`, or says how long until one is there.
fn take_token(bucket: &mut (f64, Instant), rate: f64, now: Instant) -> Result<(), Duration> {
    let (tokens, at) = *bucket;
    let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(rate);
    if tokens >= 1.0 {
        *bucket = (tokens - 1.0, now);
        Ok(())
    } else {
        *bucket = (tokens, now);
        Err(Duration::from_secs_f64(
            (1.0 - tokens) / rate.max(f64::MIN_POSITIVE),
        ))
    }
}

/// Writes of each user: up to `per_second` at once, then at that rate. Buckets that have
/// filled up again are dropped once there are more than [`WriteRates::KEPT`], so the map holds
/// the users writing now, not every user seen.
#[derive(Debug)]
pub struct WriteRates {
    per_second: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl WriteRates {
    const KEPT: usize = 4096;

    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Admits a write of `user` at `now`, or says how long until the next would be.
    pub fn admit(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.per_second);
        let mut buckets = self.buckets.lock().expect("poisoned");
        if buckets.len() >= Self::KEPT && !buckets.contains_key(user) {
            let full = |(tokens, at): &(f64, Instant)| {
                tokens + now.saturating_duration_since(*at).as_secs_f64() * rate >= rate
            };
            buckets.retain(|_, bucket| !full(bucket));
        }
        let bucket = buckets
            .entry(user.to_string())
            .or_insert_with(|| (rate, now));
        take_token(bucket, rate, now)
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
        let mut state = self.state.lock().expect("poisoned");
        take_token(&mut state, f64::from(self.per_second), now)
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
    fn each_user_holds_at_most_its_sockets_and_a_given_back_one_frees_a_place() {
        let sockets = UserSockets::new(2);
        assert!(sockets.take("ann") && sockets.take("ann"));
        assert!(!sockets.take("ann"), "a third of ann's is refused");
        assert!(sockets.take("bob"), "another user is not held by ann's");
        sockets.give_back("ann");
        assert!(sockets.take("ann"));
        for _ in 0..4 {
            sockets.give_back("bob");
        }
        assert!(
            sockets.open.lock().unwrap().get("bob").is_none(),
            "no entry left"
        );
        assert!(sockets.take("bob") && sockets.take("bob") && !sockets.take("bob"));
    }

    #[test]
    fn writes_of_a_user_burst_to_the_rate_and_idle_users_are_forgotten() {
        let t0 = Instant::now();
        let rates = WriteRates::new(3);
        for _ in 0..3 {
            assert_eq!(rates.admit("ann", t0), Ok(()));
        }
        let wait = rates.admit("ann", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0 / 3.0).abs() < 1e-9, "{wait:?}");
        assert_eq!(rates.admit("bob", t0), Ok(()), "per user");
        assert_eq!(rates.admit("ann", t0 + Duration::from_millis(340)), Ok(()));
        // Past KEPT users, those whose bucket filled again are dropped.
        for i in 0..WriteRates::KEPT {
            rates.admit(&format!("u{i}"), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(10);
        rates.admit("new", later).unwrap();
        assert!(
            rates.buckets.lock().unwrap().len() <= 2,
            "the idle were forgotten"
        );
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
