//! The Socket.IO protocol of the booking server, defined once: event names, room names,
//! acks and payloads. The load generator uses these types; nothing re-types the strings.

use std::borrow::Cow;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize};

/// Client -> server: join a room; acked with [`RoomAck`].
pub const JOIN_ROOM: &str = "join-room";
/// Client -> server: leave a room; acked with [`RoomAck`].
pub const LEAVE_ROOM: &str = "leave-room";
/// Server -> client: this connection may have missed events with `seq > after` (the link to
/// the other servers was down); replay them with `GET /api/events?after=...`. See [`Resync`].
pub const RESYNC: &str = "resync";
/// Server -> client: this socket's token expired; it is disconnected right after. See
/// [`SessionExpired`].
pub const SESSION_EXPIRED: &str = "session-expired";

/// Client -> server, and server -> the other sockets of a boardroom's room: someone is editing
/// a booking there. Volatile: not logged, not replayed, dropped rather than queued. See
/// [`EditingSignal`] and [`Editing`].
pub const EDITING: &str = "editing";

/// The room every booking event goes to.
pub const BOOKINGS_ROOM: &str = "bookings";
const BOARDROOM_PREFIX: &str = "boardroom-";
const USER_PREFIX: &str = "user-";
/// Longest user id (and so `user-<id>` room) accepted.
pub const MAX_USER_ID_LEN: usize = 128;

/// Server -> client booking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BookingEventKind {
    #[serde(rename = "booking-created")]
    Created,
    #[serde(rename = "booking-updated")]
    Updated,
    #[serde(rename = "booking-cancelled")]
    Cancelled,
    #[serde(rename = "booking-deleted")]
    Deleted,
}

impl BookingEventKind {
    pub const ALL: [BookingEventKind; 4] = [
        BookingEventKind::Created,
        BookingEventKind::Updated,
        BookingEventKind::Cancelled,
        BookingEventKind::Deleted,
    ];

    /// The Socket.IO event name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "booking-created",
            Self::Updated => "booking-updated",
            Self::Cancelled => "booking-cancelled",
            Self::Deleted => "booking-deleted",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A room a tab can join.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Room {
    /// `bookings`: every booking event.
    Bookings,
    /// `boardroom-<id>`: the events of one boardroom.
    Boardroom(i64),
    /// `user-<id>`: the events that concern one user; only that user may join.
    User(String),
}

impl Room {
    /// Parses a room name; `Err` says why it is not one.
    pub fn parse(name: &str) -> Result<Room, String> {
        if name == BOOKINGS_ROOM {
            return Ok(Room::Bookings);
        }
        if let Some(text) = name.strip_prefix(BOARDROOM_PREFIX) {
            // Canonical digits only, so one boardroom has one room name.
            return match text.parse::<i64>() {
                Ok(id) if id > 0 && id.to_string() == text => Ok(Room::Boardroom(id)),
                _ => Err(format!(
                    "`{name}` is not a room: boardroom ids are positive integers"
                )),
            };
        }
        if let Some(id) = name.strip_prefix(USER_PREFIX)
            && !id.is_empty()
            && id.len() <= MAX_USER_ID_LEN
        {
            return Ok(Room::User(id.to_string()));
        }
        Err(format!(
            "`{name}` is not a room: expected `bookings`, `boardroom-<id>` or `user-<id>`"
        ))
    }

    pub fn name(&self) -> String {
        match self {
            Room::Bookings => BOOKINGS_ROOM.to_string(),
            Room::Boardroom(id) => format!("{BOARDROOM_PREFIX}{id}"),
            Room::User(id) => format!("{USER_PREFIX}{id}"),
        }
    }

    /// A bounded label for metrics: never one series per room.
    pub fn kind(&self) -> &'static str {
        match self {
            Room::Bookings => "bookings",
            Room::Boardroom(_) => "boardroom",
            Room::User(_) => "user",
        }
    }
}

/// The Socket.IO handshake `auth` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandshakeAuth {
    pub token: String,
}

/// Ack of `join-room` and `leave-room`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomAck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// On a join: the highest committed `seq` read after the socket was in the room. The tab is
    /// owed every event of the room with a greater `seq` for as long as it stays joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Id of the server node that handled the join (its `--node-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A join refused for coming too fast: how long until one would be admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl RoomAck {
    pub fn joined(room: String, watermark: i64) -> Self {
        Self {
            ok: true,
            room: Some(room),
            watermark: Some(watermark),
            error: None,
            node: None,
            retry_after_ms: None,
        }
    }

    pub fn left(room: String) -> Self {
        Self {
            ok: true,
            room: Some(room),
            watermark: None,
            error: None,
            node: None,
            retry_after_ms: None,
        }
    }

    pub fn refused(error: impl Into<String>) -> Self {
        Self {
            ok: false,
            room: None,
            watermark: None,
            error: Some(error.into()),
            node: None,
            retry_after_ms: None,
        }
    }
}

/// What a client sends with [`EDITING`]: the boardroom whose room is told, and the booking
/// being edited (none while a new one is being filled in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EditingSignal {
    pub boardroom_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
}

/// Who is editing, as the other sockets of the boardroom's room receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditingUser {
    pub id: String,
    pub name: String,
}

/// Server -> client [`EDITING`]: shown as "Alice is editing" until `ttl_ms` after it arrived,
/// unless a newer one refreshes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Editing {
    pub user: EditingUser,
    pub boardroom_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<i64>,
    pub ttl_ms: u64,
    /// Server clock, microseconds since the Unix epoch, when it was relayed.
    pub sent_at: i64,
    /// The node that relayed it.
    pub node: String,
}

/// Ack of [`EDITING`] when the client asks for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditingAck {
    pub ok: bool,
    /// True when the signal came sooner than the per-socket limit allows and was not relayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throttled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What changed in a `booking-updated` event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub boardroom_changed: bool,
    pub time_changed: bool,
    pub attendees_changed: bool,
}

/// Which role cancelled or deleted a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorRole {
    Admin,
    User,
}

/// The body of a booking event as stored in the event log (without delivery fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody {
    /// The populated booking after the change (before it, for a delete).
    pub booking: serde_json::Value,
    pub boardroom_id: i64,
    /// Set when an update moved the booking: the boardroom it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_boardroom_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_by: Option<ActorRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<ActorRole>,
    /// Who made the change (absent in logs written before it was recorded), so a page can say
    /// "Alice moved Standup" and keep quiet about its own user's changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<EventActor>,
}

/// The user who made a change, as events name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventActor {
    pub id: String,
    pub name: String,
}

/// A booking event as a client receives it, live or by replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookingEventPayload {
    #[serde(flatten)]
    pub body: EventBody,
    /// Position in the global event log.
    pub seq: i64,
    pub event_id: String,
    /// Server clock, microseconds since the Unix epoch, when it was emitted (for a replayed
    /// event: when it was committed).
    pub emitted_at: i64,
    /// W3C trace context of the change that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Present and true when the event came from `GET /api/events`, not a live emission.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Id of the server node that committed the change (absent in logs written before nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The few fields a verifier needs from an event, parsed without the booking body (which is
/// skipped unread), its strings borrowed from the payload when they have no escapes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventStamp<'a> {
    pub seq: i64,
    pub boardroom_id: i64,
    #[serde(default)]
    pub previous_boardroom_id: Option<i64>,
    pub emitted_at: i64,
    #[serde(default)]
    pub replayed: bool,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub node: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub traceparent: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the input when it has no escapes. serde's own
/// `Option<Cow<str>>` always copies (its `borrow` reaches only a bare `Cow`), which cost a
/// receipt two allocations.
fn borrowed_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_string())))
        }
    }
    d.deserialize_option(Text)
}

/// Response header of a booking change: the `seq` of the event it logged, so a client can
/// match the events it receives to the request that caused them.
pub const EVENT_SEQ_HEADER: &str = "event-seq";

/// Payload of [`SESSION_EXPIRED`]: sign in again (a reconnect with the same token is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionExpired {
    /// The token's `exp`, seconds since the Unix epoch.
    pub expired_at: u64,
}

/// Payload of [`RESYNC`]: events after `after` may not have reached this socket; a client
/// closes the gap by replaying its rooms from `after` (and ignores what it already has, by
/// `seq`). Sent to every socket of the cluster when a server's link to the others comes back
/// after an outage (`adapter-recovered`) or once a publish that failed can be made up for
/// (`publish-failed`); to one server's sockets when a message from another server was dropped
/// there (`adapter-overflow`) or its own publish was not taken back in time, so older events of
/// others may reach its sockets after it (`order-lapse`) or a committed event was never handed
/// out there (`unannounced`); to one socket whose queue was full when an event came
/// (`queue-full`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resync {
    /// Every event with a higher `seq` may have been missed on this connection.
    pub after: i64,
    /// The node that sent it.
    pub node: String,
    /// Why: `adapter-recovered`, `publish-failed`, `adapter-overflow`, `order-lapse`,
    /// `unannounced` or `queue-full`.
    pub reason: String,
    /// How long the link was down, in milliseconds (0 unless `adapter-recovered`).
    pub down_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_borrows_its_strings_unless_they_are_escaped() {
        let text = r#"{"seq":3,"boardroomId":1,"emittedAt":9,"node":"n-1","traceparent":"00-ab\u002dcd","booking":{"title":"x"}}"#;
        let stamp: EventStamp<'_> = serde_json::from_str(text).unwrap();
        assert!(
            matches!(stamp.node, Some(Cow::Borrowed("n-1"))),
            "{stamp:?}"
        );
        assert!(
            matches!(stamp.traceparent.as_ref(), Some(Cow::Owned(t)) if t == "00-ab-cd"),
            "{stamp:?}"
        );
        let bare: EventStamp<'_> =
            serde_json::from_str(r#"{"seq":3,"boardroomId":1,"emittedAt":9,"node":null}"#).unwrap();
        assert_eq!((bare.node, bare.traceparent), (None, None));
        let wrong = serde_json::from_str::<EventStamp<'_>>(
            r#"{"seq":3,"boardroomId":1,"emittedAt":9,"node":7}"#,
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn room_names_round_trip() {
        for name in ["bookings", "boardroom-7", "user-alice"] {
            assert_eq!(Room::parse(name).unwrap().name(), name);
        }
        assert_eq!(Room::parse("boardroom-7").unwrap(), Room::Boardroom(7));
    }

    #[test]
    fn bad_room_names_are_refused_with_a_reason() {
        for name in [
            "",
            "boardroom-",
            "boardroom-x",
            "boardroom-0",
            "boardroom--3",
            "boardroom-007",
            "user-",
            "lobby",
        ] {
            let err = Room::parse(name).unwrap_err();
            assert!(err.contains("is not a room"), "{name}: {err}");
        }
        assert!(Room::parse(&format!("user-{}", "x".repeat(MAX_USER_ID_LEN + 1))).is_err());
    }

    #[test]
    fn event_kinds_have_their_wire_names() {
        for kind in BookingEventKind::ALL {
            assert_eq!(BookingEventKind::from_name(kind.name()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
