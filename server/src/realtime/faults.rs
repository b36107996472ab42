//! Test-only fault injection on emission (`--inject-faults`), to prove that a verifier catches
//! every kind of delivery fault. Off by default; when on, the server logs it loudly and counts
//! each injected fault on `/metrics` (`booking_faults_injected_total{kind}`).
//!
//! Kinds, each a probability per single delivery (one event to one socket) except `delay`:
//! - `drop`: the delivery is skipped (the tab loses the event);
//! - `duplicate`: the delivery is sent twice;
//! - `misroute`: a copy also goes to one socket outside the event's rooms, if there is one
//!   (each outside socket at most once per event);
//! - `reorder`: the delivery is held back and sent right after the next one to that socket
//!   (each such pair is exactly one delivery out of order, and counted as one); with no next
//!   one within [`HOLD_AT_MOST`], it is sent alone, late but in order, and not counted;
//! - `delay`: every emission waits this long first (order is kept);
//! - `relay-delay`: events relayed from the other servers are taken from this server's queue
//!   at most one per this long (a slow subscriber: the queue backs up, and a publish of this
//!   server's own waits behind it; see `socketio_adapter_order_lapses_total`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use socketioxide::socket::Sid;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub drop: f64,
    pub duplicate: f64,
    pub misroute: f64,
    pub reorder: f64,
    pub delay: Duration,
    pub relay_delay: Duration,
}

impl FaultPlan {
    pub fn is_active(&self) -> bool {
        self.drop > 0.0
            || self.duplicate > 0.0
            || self.misroute > 0.0
            || self.reorder > 0.0
            || !self.delay.is_zero()
            || !self.relay_delay.is_zero()
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drop={},duplicate={},misroute={},reorder={},delay={}us,relay-delay={}us",
            self.drop,
            self.duplicate,
            self.misroute,
            self.reorder,
            self.delay.as_micros(),
            self.relay_delay.as_micros()
        )
    }
}

/// Parses `5ms`, `250us`, `1s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, ""), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 5ms"))?;
    let micros = match unit {
        "us" => value,
        "ms" => value * 1e3,
        "s" => value * 1e6,
        _ => return Err(format!("`{text}`: a delay needs a unit: us, ms or s")),
    };
    if !(0.0..=10e6).contains(&micros) {
        return Err(format!("`{text}`: a delay must be between 0 and 10s"));
    }
    Ok(Duration::from_micros(micros as u64))
}

impl FromStr for FaultPlan {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let mut plan = FaultPlan::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected kind=value"))?;
            let probability = || -> Result<f64, String> {
                match value.parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                    _ => Err(format!("`{part}`: a probability between 0 and 1")),
                }
            };
            match key {
                "drop" => plan.drop = probability()?,
                "duplicate" => plan.duplicate = probability()?,
                "misroute" => plan.misroute = probability()?,
                "reorder" => plan.reorder = probability()?,
                "delay" => plan.delay = parse_duration(value)?,
                "relay-delay" => plan.relay_delay = parse_duration(value)?,
                _ => {
                    return Err(format!(
                        "unknown fault `{key}`: use drop, duplicate, misroute, reorder, delay \
                         or relay-delay"
                    ));
                }
            }
        }
        Ok(plan)
    }
}

/// How long `reorder` holds a delivery back at most, waiting for the next one to its socket.
pub const HOLD_AT_MOST: Duration = Duration::from_millis(100);

/// A delivery `reorder` holds back: its `seq`, event name and payload.
pub struct Held {
    pub seq: i64,
    pub name: String,
    pub payload: Box<RawValue>,
}

/// The deliveries `reorder` holds back, one per socket at most. Every emission of a server
/// with faults on goes out under its lock, so a held one released by its timer cannot pass, or
/// be passed by, the next one unseen.
#[derive(Default, Clone)]
pub struct HeldBack(Arc<Mutex<HashMap<Sid, Held>>>);

impl HeldBack {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Held>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let plan: FaultPlan = "drop=0.02, duplicate=0.01,misroute=0.5,reorder=0.25,delay=5ms"
            .parse()
            .unwrap();
        assert_eq!(plan.reorder, 0.25);
        assert!("reorder=0.1".parse::<FaultPlan>().unwrap().is_active());
        assert_eq!(plan.drop, 0.02);
        assert_eq!(plan.duplicate, 0.01);
        assert_eq!(plan.misroute, 0.5);
        assert_eq!(plan.delay, Duration::from_millis(5));
        assert!(plan.is_active());
        assert!(!"".parse::<FaultPlan>().unwrap().is_active());
        assert_eq!(
            "delay=250us".parse::<FaultPlan>().unwrap().delay,
            Duration::from_micros(250)
        );
        let slow_relay: FaultPlan = "relay-delay=300ms".parse().unwrap();
        assert_eq!(slow_relay.relay_delay, Duration::from_millis(300));
        assert!(slow_relay.is_active());
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for bad in [
            "drop=2",
            "drop",
            "lose=0.1",
            "delay=5",
            "delay=fast",
            "duplicate=-1",
            "reorder=1.5",
            "delay=1h",
            "relay-delay=1",
        ] {
            assert!(bad.parse::<FaultPlan>().is_err(), "{bad}");
        }
    }
}
