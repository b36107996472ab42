//! The Engine.IO v4 and Socket.IO v5 packets a tab reads and writes over a WebSocket, as
//! borrowed slices of the frame's text: decoding copies nothing, so a receipt can read its
//! stamp straight from the frame.
//!
//! Over a WebSocket each text frame is one Engine.IO packet, a type digit and its data; a
//! binary frame is a binary message (a Socket.IO attachment). A Socket.IO packet is the data
//! of an Engine.IO message (`4`): `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`,
//! the namespace left out when it is `/`.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;

/// An Engine.IO packet of a text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Engine<'a> {
    /// `0`: the session's parameters (JSON).
    Open(&'a str),
    /// `1`
    Close,
    /// `2`, with its data (a probe's `probe`).
    Ping(&'a str),
    /// `3`
    Pong(&'a str),
    /// `4`: a Socket.IO packet.
    Message(&'a str),
    /// `5`
    Upgrade,
    /// `6`
    Noop,
}

/// The Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// A Socket.IO packet, its JSON left as text.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub kind: Kind,
    /// Binary attachments that follow it (binary packets only).
    pub attachments: usize,
    pub namespace: &'a str,
    pub ack_id: Option<u64>,
    /// The JSON data as sent; empty when there is none.
    pub data: &'a str,
}

/// Why a frame is not a packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The Engine.IO packet of a text frame.
pub fn engine(frame: &str) -> Result<Engine<'_>, Malformed> {
    let mut chars = frame.char_indices();
    let Some((_, kind)) = chars.next() else {
        return Err(Malformed("an empty Engine.IO packet"));
    };
    let data = &frame[kind.len_utf8()..];
    Ok(match kind {
        '0' => Engine::Open(data),
        '1' => Engine::Close,
        '2' => Engine::Ping(data),
        '3' => Engine::Pong(data),
        '4' => Engine::Message(data),
        '5' => Engine::Upgrade,
        '6' => Engine::Noop,
        _ => return Err(Malformed("an unknown Engine.IO packet type")),
    })
}

/// The Socket.IO packet of an Engine.IO message's data.
pub fn socket(data: &str) -> Result<Packet<'_>, Malformed> {
    let bytes = data.as_bytes();
    let kind = match bytes.first() {
        Some(b'0') => Kind::Connect,
        Some(b'1') => Kind::Disconnect,
        Some(b'2') => Kind::Event,
        Some(b'3') => Kind::Ack,
        Some(b'4') => Kind::ConnectError,
        Some(b'5') => Kind::BinaryEvent,
        Some(b'6') => Kind::BinaryAck,
        Some(_) => return Err(Malformed("an unknown Socket.IO packet type")),
        None => return Err(Malformed("an empty Socket.IO packet")),
    };
    let mut at = 1;
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let digits = digits_at(bytes, at);
        if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
            return Err(Malformed("a binary packet without its attachment count"));
        }
        attachments = data[at..at + digits]
            .parse()
            .map_err(|_| Malformed("an attachment count out of range"))?;
        at += digits + 1;
    }
    let mut namespace = "/";
    if bytes.get(at) == Some(&b'/') {
        // The namespace runs to the first comma, or to the end of a packet with no data.
        let end = data[at..].find(',').map_or(data.len(), |i| at + i);
        namespace = &data[at..end];
        at = (end + 1).min(data.len());
    }
    let digits = digits_at(bytes, at);
    let mut ack_id = None;
    if digits > 0 {
        ack_id = Some(
            data[at..at + digits]
                .parse()
                .map_err(|_| Malformed("an ack id out of range"))?,
        );
        at += digits;
    }
    let data = &data[at..];
    if matches!(kind, Kind::Ack | Kind::BinaryAck) && ack_id.is_none() {
        return Err(Malformed("an ack without its id"));
    }
    Ok(Packet {
        kind,
        attachments,
        namespace,
        ack_id,
        data,
    })
}

fn digits_at(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
}

/// The namespace part of a packet the client writes: nothing for `/`.
fn namespace_prefix(out: &mut String, namespace: &str) {
    if namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
}

/// The Engine.IO message of a CONNECT to `namespace`, with the auth payload if any.
pub fn connect(namespace: &str, auth: Option<&Value>) -> String {
    let mut out = String::from("40");
    namespace_prefix(&mut out, namespace);
    if let Some(auth) = auth {
        out.push_str(&auth.to_string());
    }
    out
}

/// The Engine.IO message of a DISCONNECT from `namespace`.
pub fn disconnect(namespace: &str) -> String {
    let mut out = String::from("41");
    namespace_prefix(&mut out, namespace);
    out
}

/// The Engine.IO message of an EVENT `event` with `args`, asking for ack `ack_id` if any.
pub fn event(namespace: &str, ack_id: Option<u64>, event: &str, args: &[Value]) -> String {
    let mut out = String::from("42");
    namespace_prefix(&mut out, namespace);
    if let Some(id) = ack_id {
        let _ = write!(out, "{id}");
    }
    out.push('[');
    out.push_str(&Value::from(event).to_string());
    for arg in args {
        out.push(',');
        out.push_str(&arg.to_string());
    }
    out.push(']');
    out
}

/// The session parameters of an Engine.IO OPEN that a client needs.
#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    pub sid: String,
    pub ping_interval: u64,
    pub ping_timeout: u64,
    #[serde(default)]
    pub max_payload: Option<u64>,
}

/// The name of an EVENT, borrowed when it has no escapes.
#[derive(serde::Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

/// An EVENT's name, read from the start of its array (`["name", ...]`) and nothing after it:
/// the arguments are left for the handler to read as it needs (see `client::Args`).
pub fn event_name(data: &str) -> Result<Cow<'_, str>, Malformed> {
    let rest = data
        .trim_start()
        .strip_prefix('[')
        .ok_or(Malformed("an EVENT whose data is not an array"))?;
    let mut de = serde_json::Deserializer::from_str(rest);
    let Name(name) = serde::Deserialize::deserialize(&mut de)
        .map_err(|_| Malformed("an EVENT that does not start with its name"))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The examples are those of the Engine.IO v4 and Socket.IO v5 protocol specifications.

    #[test]
    fn engine_io_packets_of_the_specification() {
        assert_eq!(
            engine(
                r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
            ),
            Ok(Engine::Open(
                r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
            ))
        );
        assert_eq!(engine("1"), Ok(Engine::Close));
        assert_eq!(engine("2"), Ok(Engine::Ping("")));
        assert_eq!(engine("2probe"), Ok(Engine::Ping("probe")));
        assert_eq!(engine("3"), Ok(Engine::Pong("")));
        assert_eq!(engine("4hello"), Ok(Engine::Message("hello")));
        assert_eq!(engine("4€"), Ok(Engine::Message("€")));
        assert_eq!(engine("5"), Ok(Engine::Upgrade));
        assert_eq!(engine("6"), Ok(Engine::Noop));
        assert!(engine("").is_err());
        assert!(engine("7").is_err());
        assert!(engine("€").is_err());
        let open: Open = serde_json::from_str(
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(open.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!(
            (open.ping_interval, open.ping_timeout, open.max_payload),
            (25000, 20000, Some(1000000))
        );
    }

    fn packet(
        kind: Kind,
        attachments: usize,
        namespace: &'static str,
        ack_id: Option<u64>,
        data: &'static str,
    ) -> Packet<'static> {
        Packet {
            kind,
            attachments,
            namespace,
            ack_id,
            data,
        }
    }

    #[test]
    fn socket_io_packets_of_the_specification() {
        use Kind::*;
        let cases = [
            ("0", packet(Connect, 0, "/", None, "")),
            (
                r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
                packet(
                    Connect,
                    0,
                    "/admin",
                    None,
                    r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
                ),
            ),
            (
                r#"4{"message":"Not authorized"}"#,
                packet(
                    ConnectError,
                    0,
                    "/",
                    None,
                    r#"{"message":"Not authorized"}"#,
                ),
            ),
            ("1/admin,", packet(Disconnect, 0, "/admin", None, "")),
            ("1", packet(Disconnect, 0, "/", None, "")),
            (r#"2["foo"]"#, packet(Event, 0, "/", None, r#"["foo"]"#)),
            (
                r#"2/admin,["bar"]"#,
                packet(Event, 0, "/admin", None, r#"["bar"]"#),
            ),
            (
                r#"212["foo"]"#,
                packet(Event, 0, "/", Some(12), r#"["foo"]"#),
            ),
            (
                r#"3/admin,13["bar"]"#,
                packet(Ack, 0, "/admin", Some(13), r#"["bar"]"#),
            ),
            (
                r#"51-["baz",{"_placeholder":true,"num":0}]"#,
                packet(
                    BinaryEvent,
                    1,
                    "/",
                    None,
                    r#"["baz",{"_placeholder":true,"num":0}]"#,
                ),
            ),
            (
                r#"61-/admin,15[{"_placeholder":true,"num":0}]"#,
                packet(
                    BinaryAck,
                    1,
                    "/admin",
                    Some(15),
                    r#"[{"_placeholder":true,"num":0}]"#,
                ),
            ),
            ("1/admin", packet(Disconnect, 0, "/admin", None, "")),
        ];
        for (text, expected) in cases {
            assert_eq!(socket(text), Ok(expected), "{text}");
        }
        for bad in [
            "",
            "9",
            "5[\"a\"]",
            "5x-[]",
            "3[1]",
            "299999999999999999999[]",
        ] {
            assert!(socket(bad).is_err(), "{bad} is not a packet");
        }
    }

    #[test]
    fn what_the_client_writes_matches_the_specification() {
        assert_eq!(connect("/", None), "40");
        assert_eq!(
            connect("/admin", Some(&json!({"token": "123"}))),
            r#"40/admin,{"token":"123"}"#
        );
        assert_eq!(disconnect("/"), "41");
        assert_eq!(disconnect("/admin"), "41/admin,");
        assert_eq!(event("/", None, "foo", &[]), r#"42["foo"]"#);
        assert_eq!(
            event("/admin", Some(13), "bar", &[json!(1), json!({"a": "b"})]),
            r#"42/admin,13["bar",1,{"a":"b"}]"#
        );
        assert_eq!(
            event("/", Some(12), "quo\"te", &[json!("x")]),
            r#"4212["quo\"te","x"]"#
        );
    }

    #[test]
    fn an_events_name_is_read_without_copying_it_or_reading_on() {
        let name = event_name(r#"["booking-created",{"seq":7},[1,2]]"#).unwrap();
        assert!(matches!(name, Cow::Borrowed("booking-created")));
        assert_eq!(event_name(r#" [ "a\"b" ]"#).unwrap(), "a\"b");
        // What follows the name is not looked at here.
        assert_eq!(event_name(r#"["m",{"#).unwrap(), "m");
        for bad in ["[]", "[1]", "{}", "", "\"m\""] {
            assert!(event_name(bad).is_err(), "{bad}");
        }
    }
}
