//! `booking-server conformance`: the namespaces and handlers that the Socket.IO protocol
//! test-suite (the `test-suite/` folder of `socketio/socket.io-protocol`) expects, served by
//! this server's own listener, limits and middlewares, so that a run of the suite shows they
//! keep to the protocol.
//!
//! - `/` and `/custom` let any client in (up to `--max-connections` sockets) and send it `auth`
//!   with its handshake payload, `{}` without one; any other namespace is refused with
//!   `Invalid namespace`;
//! - `message` comes back as `message-back` with its arguments as sent, binary attachments in
//!   their places;
//! - `message-with-ack` is acknowledged with its arguments.
//!
//! [`profile`] sets the Engine.IO timings and sizes the suite checks.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeTuple, Serializer};
use serde_json::Value;
use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use super::life::SocketLife;
use super::{ClusterAdapter, SocketRef, sockets};
use crate::app::{AppState, StartError};
use crate::config::ServerConfig;

type AckSender = socketioxide::extract::AckSender<ClusterAdapter>;

/// The namespaces the suite connects to.
pub const NAMESPACES: [&str; 2] = ["/", "/custom"];
/// The suite's Engine.IO settings: its heartbeat tests wait for them.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);
pub const PING_TIMEOUT: Duration = Duration::from_millis(200);
/// The `maxPayload` the suite expects in the handshake.
pub const MAX_PAYLOAD: usize = 1_000_000;
/// A session that sends no CONNECT is closed within a test's 2 s.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long after its CONNECT a socket is sent `auth`. Sent at once, both packets went out in
/// one write, and the suite's WebSocket client (`ws` 8.5, as its lock file pins) dispatched
/// them in one go, before the test had its listener for the second: it missed `auth` (6 of
/// the suite's cases, seen). A client of the protocol may take them in one read; this gap
/// only lets the suite see them one at a time.
pub const AUTH_AFTER: Duration = Duration::from_millis(5);

/// The server's configuration turned into the suite's: its timings and sizes, an in-memory
/// database (nothing is kept), and the conformance handlers in place of the booking ones.
/// Every other setting (limits, timeouts, TLS) stays as given.
pub fn profile(config: &mut ServerConfig) {
    config.conformance = true;
    config.ping_interval = PING_INTERVAL;
    config.ping_timeout = PING_TIMEOUT;
    config.max_socket_message_bytes = MAX_PAYLOAD;
    config.handshake_timeout = HANDSHAKE_TIMEOUT;
    config.database_url = "sqlite::memory:".to_string();
}

/// Registers the suite's namespaces.
pub async fn register(state: &AppState) -> Result<(), StartError> {
    for path in NAMESPACES {
        let st = state.clone();
        let admit = move |s: SocketRef, TryData(auth): TryData<Value>| {
            let st = st.clone();
            async move { admit(&st, &s, auth.ok()) }
        };
        let st = state.clone();
        let on_connect = move |s: SocketRef| {
            sockets::connected(st.clone(), s.clone());
            let payload = s
                .extensions
                .get::<Handshake>()
                .map(|h| h.0)
                .unwrap_or_default();
            async move {
                tokio::time::sleep(AUTH_AFTER).await;
                let _ = s.emit("auth", &payload);
            }
        };
        state
            .realtime
            .io
            .ns(path, on_connect.with(admit))
            .await
            .map_err(|e| StartError::Config(format!("socket.io adapter: {e}")))?;
    }
    Ok(())
}

/// The handshake payload a socket connected with (kept in its extensions).
#[derive(Clone)]
struct Handshake(Value);

/// The connect middleware: a place under `--max-connections`, then the socket's handlers
/// (registered before CONNECT is sent, as the booking namespace does).
fn admit(st: &AppState, s: &SocketRef, auth: Option<Value>) -> Result<(), String> {
    sockets::take_place(st, s)?;
    let life = SocketLife::default();
    s.extensions.insert(life.clone());
    let payload = auth
        .filter(|v| !v.is_null())
        .unwrap_or_else(|| Value::Object(Default::default()));
    s.extensions.insert(Handshake(payload));
    s.on("message", |s: SocketRef, TryData(args): TryData<Args>| {
        if let Ok(args) = args {
            let _ = s.emit("message-back", &args);
        }
        std::future::ready(())
    });
    s.on(
        "message-with-ack",
        |TryData(args): TryData<Args>, ack: AckSender| {
            if let Ok(args) = args {
                let _ = ack.send(&args);
            }
            std::future::ready(())
        },
    );
    let st = st.clone();
    s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
        sockets::closed(&st, &s, reason, &life);
        std::future::ready(())
    });
    Ok(())
}

/// A message's arguments as the client sent them. Tuple-like to the Socket.IO parser, so that
/// it takes every argument after the event name and sends each back as one argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Args(pub Vec<Arg>);

/// One argument: JSON, with binary attachments where the client placed them (the parser reads
/// a `{"_placeholder":true,"num":N}` as bytes, and writes bytes back as a placeholder).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
    Binary(Vec<u8>),
    List(Vec<Arg>),
    /// Keys in the order sent.
    Object(Vec<(String, Arg)>),
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message's arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        // Any length: the length is only a hint to self-describing formats.
        deserializer.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Arg::Null => serializer.serialize_unit(),
            Arg::Bool(b) => serializer.serialize_bool(*b),
            Arg::Number(n) => n.serialize(serializer),
            Arg::Text(t) => serializer.serialize_str(t),
            Arg::Binary(bytes) => serializer.serialize_bytes(bytes),
            Arg::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Arg::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ArgVisitor)
    }
}

struct ArgVisitor;

impl<'de> Visitor<'de> for ArgVisitor {
    type Value = Arg;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON or a binary attachment")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Arg, E> {
        Ok(Arg::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Arg, E> {
        Ok(Arg::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Arg, E> {
        Ok(Arg::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Arg, E> {
        Ok(Arg::Number(n.into()))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Arg, E> {
        Ok(Arg::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Arg, E> {
        serde_json::Number::from_f64(n)
            .map(Arg::Number)
            .ok_or_else(|| E::custom("not a JSON number"))
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Arg, E> {
        Ok(Arg::Text(text.to_string()))
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<Arg, E> {
        Ok(Arg::Text(text))
    }
    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Arg, E> {
        Ok(Arg::Binary(bytes.to_vec()))
    }
    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Arg, E> {
        Ok(Arg::Binary(bytes))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Arg, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Arg::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Arg, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Arg::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_back_as_written_in_order() {
        let text = r#"[1,"2",{"3":[true],"a":null,"b":-1.5}]"#;
        let args: Args = serde_json::from_str(text).unwrap();
        assert_eq!(args.0.len(), 3);
        assert_eq!(serde_json::to_string(&args).unwrap(), text);
        let Arg::Object(entries) = &args.0[2] else {
            panic!("expected an object: {args:?}");
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["3", "a", "b"]);
    }
}
