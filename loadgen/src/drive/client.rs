//! The narrow interface every tab talks to its server through, a booking run's and an app
//! run's alike: connect with auth, headers, query and namespace; emit with or without an ack;
//! hear every named event's raw arguments. Tabs see only [`TabClient`], so a cheaper client
//! can take rust_socketio's place behind it. rust_socketio (async) is the one here: it carries
//! WebSocket and long-polling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use crate::config::Transport;

/// Where and how a tab connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Base URL (`http://host:port`), the Socket.IO `path` is added to it.
    pub url: String,
    pub path: String,
    pub namespace: String,
    pub transport: Transport,
    pub auth: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// How long the connect (to the namespace CONNECT) and an ack may take.
    pub timeout: Duration,
    /// With `--ca-cert` or `--insecure` (none: the system's roots).
    pub tls: Option<native_tls::TlsConnector>,
}

/// Every named event the tab hears: its name and arguments.
pub type OnEvent = Arc<dyn Fn(&str, &[Value]) + Send + Sync>;
/// The connection was closed or lost by the other side, with why.
pub type OnDrop = Arc<dyn Fn(String) + Send + Sync>;

/// One tab's open Socket.IO connection.
pub trait TabClient: Send + Sync {
    /// Sends `event` with `args`, not waiting for anything.
    fn emit<'a>(&'a self, event: &'a str, args: Vec<Value>) -> BoxFuture<'a, Result<(), String>>;
    /// Sends `event` with `args` and waits for the app's ack; returns its arguments.
    fn emit_with_ack<'a>(
        &'a self,
        event: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Vec<Value>, String>>;
    fn disconnect(&self) -> BoxFuture<'_, ()>;
}

/// A tab's current connection, and which one it is: every connect attempt begins a new
/// generation and every close or loss retires it, so a callback of an older connection (one
/// replaced, or closed on purpose) is told apart and ignored. Booking tabs and app tabs hold one.
#[derive(Default)]
pub struct Connection {
    client: tokio::sync::Mutex<Option<Arc<dyn TabClient>>>,
    generation: AtomicU64,
}

impl Connection {
    /// A connect attempt begins: its generation.
    pub fn begin(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The current connection is no longer the tab's (closed, cut or lost).
    pub fn retire(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The generation now: a send that began in it and ends in another was cut mid-way.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }

    /// The attempt got the namespace CONNECT: its client is the tab's from now on.
    pub async fn set(&self, client: Arc<dyn TabClient>) {
        *self.client.lock().await = Some(client);
    }

    /// The open client, to emit on (a clone: the lock is not held while it sends).
    pub async fn get(&self) -> Option<Arc<dyn TabClient>> {
        self.client.lock().await.clone()
    }

    pub async fn take(&self) -> Option<Arc<dyn TabClient>> {
        self.client.lock().await.take()
    }

    pub async fn is_open(&self) -> bool {
        self.client.lock().await.is_some()
    }

    /// Retires the connection and hangs up, if one is open.
    pub async fn close(&self) {
        self.retire();
        if let Some(client) = self.take().await {
            client.disconnect().await;
        }
    }
}

/// The URL rust_socketio is given: base, path and query (it appends `EIO` and `transport`).
fn socket_url(o: &ConnectOptions) -> String {
    // engine.io servers match `PATH/` exactly: `/rt` and `/rt/` are the same path.
    let path = o.path.trim_end_matches('/');
    let mut url = format!("{}{path}/", o.url.trim_end_matches('/'));
    for (i, (k, v)) in o.query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    url
}

/// Percent-encodes a query component.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens a connection and waits for the namespace CONNECT (or its refusal).
pub async fn connect(
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut builder = ClientBuilder::new(socket_url(o))
        .namespace(o.namespace.clone())
        .transport_type(match o.transport {
            Transport::Websocket => TransportType::Websocket,
            Transport::Polling => TransportType::Polling,
        })
        .reconnect(false);
    if let Some(auth) = &o.auth {
        builder = builder.auth(auth.clone());
    }
    for (k, v) in &o.headers {
        builder = builder.opening_header(k.as_str(), v.as_str());
    }
    if let Some(tls) = &o.tls {
        builder = builder.tls_config(tls.clone());
    }
    builder = builder.on_any(move |event, payload, _| {
        // rust_socketio names an event called `message` Event::Message, not Custom.
        let name = match &event {
            Event::Custom(name) => Some(name.as_str()),
            Event::Message => Some("message"),
            _ => None,
        };
        if let Some(name) = name {
            match &payload {
                Payload::Text(values) => on_event(name, values),
                // Binary attachments are not looked into: counted as an event of the app's.
                _ => on_event(name, &[]),
            }
        }
        async {}.boxed()
    });
    let connected = tx.clone();
    builder = builder.on(Event::Connect, move |_, _| {
        let _ = connected.send(Ok(()));
        async {}.boxed()
    });
    let (errors, closed) = (on_drop.clone(), on_drop);
    builder = builder.on(Event::Error, move |payload, _| {
        let why = format!("{payload:?}");
        // Before the CONNECT this is the refusal; after it, a lost connection.
        if tx.send(Err(why.clone())).is_err() {
            errors(why);
        }
        async {}.boxed()
    });
    builder = builder.on(Event::Close, move |_, _| {
        closed("closed by the server".into());
        async {}.boxed()
    });
    let client = tokio::time::timeout(o.timeout, builder.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect failed: {e}"))?;
    let answer = tokio::time::timeout(o.timeout, rx.recv()).await;
    // From now on an error is a lost connection, reported through on_drop.
    rx.close();
    match answer {
        Ok(Some(Ok(()))) => Ok(Arc::new(RustSocketio {
            client,
            timeout: o.timeout,
        })),
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

struct RustSocketio {
    client: Client,
    timeout: Duration,
}

impl TabClient for RustSocketio {
    fn emit<'a>(&'a self, event: &'a str, args: Vec<Value>) -> BoxFuture<'a, Result<(), String>> {
        async move {
            self.client
                .emit(event, Payload::Text(args))
                .await
                .map_err(|e| format!("{event}: {e}"))
        }
        .boxed()
    }

    fn emit_with_ack<'a>(
        &'a self,
        event: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Vec<Value>, String>> {
        async move {
            let (tx, rx) = oneshot::channel();
            let tx = Arc::new(Mutex::new(Some(tx)));
            self.client
                .emit_with_ack(
                    event,
                    Payload::Text(args),
                    self.timeout,
                    move |payload, _| {
                        if let Some(tx) = tx.lock().expect("poisoned").take() {
                            let _ = tx.send(payload);
                        }
                        async {}.boxed()
                    },
                )
                .await
                .map_err(|e| format!("{event}: {e}"))?;
            let payload = tokio::time::timeout(self.timeout, rx)
                .await
                .map_err(|_| format!("no ack for {event} in time"))?
                .map_err(|_| format!("no ack for {event}"))?;
            match payload {
                Payload::Text(values) => Ok(values),
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.client.disconnect()).await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_carries_path_and_encoded_query() {
        let o = ConnectOptions {
            url: "http://127.0.0.1:3000/".into(),
            path: "/rt/".into(),
            namespace: "/".into(),
            transport: Transport::Websocket,
            auth: None,
            headers: vec![],
            query: vec![
                ("client".into(), "load gen".into()),
                ("v".into(), "1&2".into()),
            ],
            timeout: Duration::from_secs(1),
            tls: None,
        };
        assert_eq!(
            socket_url(&o),
            "http://127.0.0.1:3000/rt/?client=load%20gen&v=1%262"
        );
    }
}
