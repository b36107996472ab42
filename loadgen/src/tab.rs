//! One simulated browser tab: its Socket.IO connection (rust_socketio, async, WebSocket), the
//! rooms it joined with their watermarks, and the ledger of what it received.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booking_server::realtime::protocol::{BookingEventKind, EventStamp, JOIN_ROOM, RoomAck};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::ledger::Ledger;
use crate::plan::TabPlan;
use crate::run::Run;
use crate::verify::Joined;

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
    /// Set by churn or a storm: the tab reconnects on its next turn.
    pub reconnect: AtomicBool,
    pub connected: AtomicBool,
    client: tokio::sync::Mutex<Option<Client>>,
    /// Receipts waiting to be recorded in goose: (event kind, fan-out µs).
    pub samples: Mutex<Vec<(BookingEventKind, u64)>>,
}

impl Tab {
    pub fn new(index: usize, plan: TabPlan, user: String, token: String, base_seq: i64) -> Self {
        Self {
            index,
            plan,
            user,
            token,
            ledger: Mutex::new(Ledger::new(base_seq)),
            joined: Mutex::new(Vec::new()),
            reconnect: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            client: tokio::sync::Mutex::new(None),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// Opens the Socket.IO connection and waits for the namespace CONNECT (an emit sent
    /// before it is lost, see DESIGN.md).
    pub async fn connect(run: &Arc<Run>, index: usize) -> Result<(), String> {
        let tab = &run.tabs[index];
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
        let mut builder = ClientBuilder::new(run.hosts[tab.plan.host].clone())
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .auth(json!({ "token": tab.token }));
        for kind in BookingEventKind::ALL {
            let run = run.clone();
            builder = builder.on(kind.name(), move |payload, _| {
                if let Payload::Text(values) = payload
                    && let Some(value) = values.first()
                {
                    run.on_event(index, kind, value);
                }
                async {}.boxed()
            });
        }
        let connected = tx.clone();
        builder = builder.on(Event::Connect, move |_, _| {
            let _ = connected.send(Ok(()));
            async {}.boxed()
        });
        builder = builder.on(Event::Error, move |payload, _| {
            let _ = tx.send(Err(format!("{payload:?}")));
            async {}.boxed()
        });
        let closed = run.clone();
        builder = builder.on(Event::Close, move |_, _| {
            closed.tabs[index].connected.store(false, Ordering::Relaxed);
            async {}.boxed()
        });
        let client = tokio::time::timeout(SOCKET_TIMEOUT, builder.connect())
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect failed: {e}"))?;
        match tokio::time::timeout(SOCKET_TIMEOUT, rx.recv()).await {
            Ok(Some(Ok(()))) => {
                tab.connected.store(true, Ordering::Relaxed);
                *tab.client.lock().await = Some(client);
                Ok(())
            }
            Ok(Some(Err(e))) => {
                let _ = client.disconnect().await;
                Err(format!("refused: {e}"))
            }
            _ => {
                let _ = client.disconnect().await;
                Err("no CONNECT from the server in time".into())
            }
        }
    }

    /// Joins `room`; returns the ack.
    pub async fn join(&self, room: &str) -> Result<RoomAck, String> {
        let client = self.client.lock().await.clone().ok_or("not connected")?;
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        client
            .emit_with_ack(JOIN_ROOM, json!(room), SOCKET_TIMEOUT, move |payload, _| {
                if let Some(tx) = tx.lock().expect("poisoned").take() {
                    let _ = tx.send(payload);
                }
                async {}.boxed()
            })
            .await
            .map_err(|e| format!("join emit failed: {e}"))?;
        let payload = tokio::time::timeout(SOCKET_TIMEOUT, rx)
            .await
            .map_err(|_| format!("no ack for joining {room} in time"))?
            .map_err(|_| "ack dropped".to_string())?;
        parse_ack(payload)
    }

    /// Closes the connection (churn, storm, end of run).
    pub async fn disconnect(&self) {
        let client = self.client.lock().await.take();
        self.connected.store(false, Ordering::Relaxed);
        if let Some(client) = client {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.disconnect()).await;
        }
    }

    /// Room names this tab joined.
    pub fn room_names(&self) -> Vec<String> {
        let joined = self.joined.lock().expect("poisoned");
        joined.iter().map(|(name, _)| name.clone()).collect()
    }
}

/// rust_socketio hands an ack's arguments over wrapped in an array.
fn parse_ack(payload: Payload) -> Result<RoomAck, String> {
    let Payload::Text(values) = payload else {
        return Err("binary ack".into());
    };
    let mut value = values.into_iter().next().unwrap_or(Value::Null);
    while let Value::Array(mut inner) = value {
        if inner.is_empty() {
            return Err("empty ack".into());
        }
        value = inner.swap_remove(0);
    }
    RoomAck::deserialize(&value).map_err(|e| format!("bad ack {value}: {e}"))
}

/// The stamp of a received event, or `None` when it is not one of ours.
pub fn stamp_of(value: &Value) -> Option<EventStamp> {
    EventStamp::deserialize(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_wrapped_or_not() {
        let ack = json!({"ok": true, "room": "bookings", "watermark": 4});
        for payload in [vec![ack.clone()], vec![json!([ack.clone()])]] {
            let parsed = parse_ack(Payload::Text(payload)).unwrap();
            assert_eq!(parsed.watermark, Some(4));
        }
        assert!(parse_ack(Payload::Text(vec![json!([])])).is_err());
        assert!(parse_ack(Payload::Text(vec![json!({"room": 1})])).is_err());
    }
}
