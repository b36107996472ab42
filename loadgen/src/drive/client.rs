//! The narrow interface every tab talks to its server through, a booking run's and an app
//! run's alike: connect with auth, headers, query and namespace; emit with or without an ack;
//! hear every named event's raw arguments. Tabs see only [`TabClient`]; `drive::connect` opens
//! the one `--client` chose: the loadgen's own (`drive::sio`, WebSocket only, the default
//! there) or rust_socketio (`drive::rust_socketio`), the reference client, which carries
//! long-polling too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use serde_json::value::RawValue;

pub use crate::config::{TabClientKind, Transport};

/// Where and how a tab connects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Base URL (`http://host:port`), the Socket.IO `path` is added to it.
    pub url: String,
    pub path: String,
    pub namespace: String,
    pub transport: Transport,
    /// Which client speaks for the tab (see `Config::tab_client`).
    pub client: TabClientKind,
    pub auth: Option<Value>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// How long the connect (to the namespace CONNECT) and an ack may take.
    pub timeout: Duration,
    /// With `--ca-cert` or `--insecure` (none: the system's roots).
    pub tls: Option<native_tls::TlsConnector>,
}

/// Every named event the tab hears: its name and each argument's JSON as it came (with the
/// own client, borrowed from the frame: a receipt reads what it needs and skips the rest).
pub type OnEvent = Arc<dyn Fn(&str, &[&RawValue]) + Send + Sync>;
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
