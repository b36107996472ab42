//! What each socket runs: the handshake's auth and limits, its join, leave and `editing`
//! handlers, its disconnect, and the timer that closes it when its token expires.

use std::time::{Duration, Instant};

use serde_json::Value;
use socketioxide::extract::TryData;
use socketioxide::socket::DisconnectReason;

use super::life::SocketLife;
use super::protocol::{
    EDITING, EditingSignal, HandshakeAuth, JOIN_ROOM, LEAVE_ROOM, Room, RoomAck, SESSION_EXPIRED,
    SessionExpired,
};
use super::{ClusterAdapter, SocketRef, editing, limits, turns};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::boardrooms;
use crate::events;
use crate::telemetry::metrics::{DISCONNECT_REASONS, DISCONNECTS, Limit, ROOM_JOINS, ROOM_LEAVES};

type AckSender = socketioxide::extract::AckSender<ClusterAdapter>;

/// The auth middleware of the `/` namespace: the token, the connection limit, the user's
/// record; on success the socket's handlers are registered (see [`register_handlers`]).
pub(super) async fn authenticate(
    st: &AppState,
    s: &SocketRef,
    auth: Option<HandshakeAuth>,
) -> Result<(), String> {
    let user = auth
        .ok_or_else(|| "missing auth: connect with `auth: { token }`".to_string())
        .and_then(|a| st.auth.verify(&a.token).map_err(|e| e.to_string()));
    let user = match user {
        Ok(user) => user,
        Err(reason) => {
            st.metrics.connects_refused.increment(1);
            tracing::info!(socket = %s.id, %reason, "socket refused");
            return Err(reason);
        }
    };
    take_place(st, s)?;
    let connections = &st.realtime.connections;
    // Admins are not held to it (see `limits`); a socket that took a place carries it.
    let place = (!user.is_admin()).then(|| UserPlace(user.id.clone()));
    let per_user = &st.realtime.user_sockets;
    if let Some(UserPlace(id)) = &place
        && !per_user.take(id)
    {
        connections.give_back();
        st.metrics.connects_refused.increment(1);
        st.metrics.limit_hit(Limit::SocketsPerUser).increment(1);
        tracing::info!(socket = %s.id, user = %id, max = per_user.max(), "socket refused: too many sockets of this user");
        return Err(format!(
            "too many connections for this user: at most {} at once; close a tab first",
            per_user.max()
        ));
    }
    if let Err(e) = st.auth.ensure_user(&st.db, &user).await {
        connections.give_back();
        if let Some(UserPlace(id)) = &place {
            per_user.give_back(id);
        }
        tracing::warn!(socket = %s.id, error = %e, "socket refused: user not registered");
        return Err("could not register the user: try again".to_string());
    }
    if let Some(place) = place {
        s.extensions.insert(place);
    }
    s.extensions.insert(user);
    s.extensions.insert(ConnectedAt(Instant::now()));
    register_handlers(st, s);
    Ok(())
}

/// Takes one of the server's places for sockets (`--max-connections`), given back by
/// [`closed`]; or the refusal a full server answers.
pub(super) fn take_place(st: &AppState, s: &SocketRef) -> Result<(), String> {
    let connections = &st.realtime.connections;
    if connections.take() {
        return Ok(());
    }
    st.metrics.connects_refused.increment(1);
    st.metrics.limit_hit(Limit::Connections).increment(1);
    tracing::warn!(socket = %s.id, max = connections.max(), "socket refused: server full");
    Err(format!(
        "server full: it holds at most {} connections; try again later or another server",
        connections.max()
    ))
}

/// The place a socket holds among its user's (`--max-sockets-per-user`), given back when it
/// disconnects (kept in its extensions).
#[derive(Clone)]
struct UserPlace(String);

/// When a socket was let in (kept in its extensions).
#[derive(Clone, Copy)]
pub(super) struct ConnectedAt(pub(super) Instant);

pub(super) fn connected(st: AppState, s: SocketRef) {
    let user = s.extensions.get::<AuthUser>();
    let Some(life) = s.extensions.get::<SocketLife>().filter(SocketLife::connect) else {
        tracing::debug!(socket = %s.id, "connect handler after the socket was gone: ignored");
        return;
    };
    st.metrics.connects.increment(1);
    st.metrics.sockets_connected.increment(1.0);
    tracing::info!(socket = %s.id, user = user.as_ref().map(|u| u.id.as_str()), "socket connected");
    if let Some(user) = &user {
        close_at_token_expiry(&st, &s, user, life);
    }
}

/// The socket's event handlers. Registered by the auth middleware, before socketioxide sends
/// CONNECT: it sends CONNECT and then runs the connect handler in a task of its own, so a
/// `join-room` sent as soon as the client sees CONNECT could be dispatched before handlers
/// registered there, and dropped without an ack (seen under load: a tab's rejoin waited for
/// an ack that never came and lost the rest of the run's events).
fn register_handlers(st: &AppState, s: &SocketRef) {
    let st = st.clone();
    // Shared by the connect handler (through the extensions) and the disconnect handler.
    let life = SocketLife::default();
    s.extensions.insert(life.clone());
    // This socket's line for room changes (see `turns`), shared by its join and leave.
    let room_turns = turns::RoomTurns::default();
    let (st_join, join_turns) = (st.clone(), room_turns.clone());
    let join_rate = limits::JoinRate::new(st.config.max_joins_per_second, Instant::now());
    s.on(
        JOIN_ROOM,
        move |s: SocketRef, TryData(arg): TryData<Value>, ack: AckSender| {
            let st = st_join.clone();
            // Taken here, in packet order; awaited in the task.
            let ticket = join_turns.ticket();
            let admitted = join_rate.admit(Instant::now());
            let per_second = join_rate.per_second();
            async move {
                ticket.turn().await;
                let reply = match admitted {
                    Ok(()) => join(&st, &s, arg.ok()).await,
                    Err(wait) => {
                        st.metrics.limit_hit(Limit::JoinsPerSecond).increment(1);
                        tracing::info!(socket = %s.id, "join refused: too many joins a second");
                        RoomAck {
                            retry_after_ms: Some(wait.as_millis().max(1) as u64),
                            ..RoomAck::refused(format!(
                                "too many joins: at most {per_second} a second per socket"
                            ))
                        }
                    }
                };
                if !reply.ok {
                    st.metrics.room_joins_refused.increment(1);
                }
                let _ = ack.send(&reply);
            }
        },
    );
    let st_leave = st.clone();
    s.on(
        LEAVE_ROOM,
        move |s: SocketRef, TryData(arg): TryData<Value>, ack: AckSender| {
            let st = st_leave.clone();
            let ticket = room_turns.ticket();
            async move {
                ticket.turn().await;
                let reply = leave(&st, &s, arg.ok());
                let _ = ack.send(&reply);
            }
        },
    );
    let (st_editing, throttle) = (st.clone(), editing::Throttle::new(editing::EDITING_MIN_GAP));
    s.on(
        EDITING,
        move |s: SocketRef, TryData(arg): TryData<EditingSignal>, ack: AckSender| {
            let (st, throttle) = (st_editing.clone(), throttle.clone());
            async move {
                let reply = editing::relay(&st, &s, &throttle, arg.ok()).await;
                let _ = ack.send(&reply);
            }
        },
    );
    s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| {
        closed(&st, &s, reason, &life);
        std::future::ready(())
    });
}

/// A socket's disconnect: its places go back (taken by the auth middleware, whether or not the
/// connection completed) and, if it was counted in, it is counted out.
pub(super) fn closed(st: &AppState, s: &SocketRef, reason: DisconnectReason, life: &SocketLife) {
    st.realtime.connections.give_back();
    if let Some(UserPlace(id)) = s.extensions.get::<UserPlace>() {
        st.realtime.user_sockets.give_back(&id);
    }
    if !life.end() {
        tracing::info!(socket = %s.id, "socket closed before its connection completed");
        return;
    }
    st.metrics.sockets_connected.decrement(1.0);
    let label = disconnect_label(reason);
    st.metrics
        .labelled_counter(DISCONNECTS, &[("reason", label.to_string())])
        .increment(1);
    tracing::info!(socket = %s.id, reason = label, "socket disconnected");
}

/// A socket lives no longer than its token: once the token is past its expiry (and the leeway
/// a token check allows), the socket is sent `session-expired` and disconnected, and a
/// reconnect with that token is refused. The timer ends with the socket.
fn close_at_token_expiry(st: &AppState, s: &SocketRef, user: &AuthUser, life: SocketLife) {
    // Token checks count whole seconds and accept `exp + leeway` itself: the next second is
    // the first in which a reconnect with this token is refused.
    let refused_from = user.expires_at.saturating_add(st.auth.leeway_secs() + 1);
    let end = std::time::UNIX_EPOCH + Duration::from_secs(refused_from);
    let wait = end
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let (s, expired) = (s.clone(), st.metrics.sessions_expired.clone());
    let notice = SessionExpired {
        expired_at: user.expires_at,
    };
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                expired.increment(1);
                tracing::info!(socket = %s.id, "token expired: socket disconnected");
                let _ = s.emit(SESSION_EXPIRED, &notice);
                let _ = s.disconnect();
            }
            () = life.gone() => {}
        }
    });
}

/// A room name from the event's argument: `"boardroom-1"` or `{ "room": "boardroom-1" }`.
fn room_arg(arg: Option<Value>) -> Result<Room, String> {
    let name = match &arg {
        Some(Value::String(name)) => Some(name.as_str()),
        Some(Value::Object(map)) => map.get("room").and_then(Value::as_str),
        _ => None,
    };
    let name = name.ok_or("expected a room name, or an object with `room`")?;
    Room::parse(name)
}

async fn join(st: &AppState, s: &SocketRef, arg: Option<Value>) -> RoomAck {
    let Some(user) = s.extensions.get::<AuthUser>() else {
        return RoomAck::refused("not authenticated");
    };
    let room = match room_arg(arg) {
        Ok(room) => room,
        Err(e) => return RoomAck::refused(e),
    };
    match &room {
        Room::User(id) if *id != user.id => {
            return RoomAck::refused(format!("you may not join `{}`", room.name()));
        }
        Room::Boardroom(id) => match boardrooms::find(&st.db.pool, *id).await {
            Ok(Some(_)) => {}
            Ok(None) => return RoomAck::refused(format!("unknown boardroom {id}")),
            Err(e) => return refused_unavailable(s, &e),
        },
        _ => {}
    }
    let name = room.name();
    let rooms = s.rooms();
    let max = st.config.max_rooms_per_socket;
    if rooms.len() >= max && !rooms.iter().any(|r| *r == name) {
        st.metrics.limit_hit(Limit::RoomsPerSocket).increment(1);
        return RoomAck::refused(format!(
            "room limit reached: a socket may be in at most {max} rooms; leave one first"
        ));
    }
    // Join first, then read the watermark: every event committed after the read is emitted
    // while the socket is already in the room.
    s.join(name.clone());
    let watermark = match events::last_seq(&st.db.pool).await {
        Ok(seq) => seq,
        Err(e) => {
            s.leave(name);
            return refused_unavailable(s, &e);
        }
    };
    st.metrics
        .labelled_counter(ROOM_JOINS, &[("room_kind", room.kind().to_string())])
        .increment(1);
    tracing::info!(socket = %s.id, user = %user.id, room = %name, watermark, "room joined");
    RoomAck {
        node: Some(st.realtime.node().to_string()),
        ..RoomAck::joined(name, watermark)
    }
}

/// A join the database could not serve: the client is told to retry, the log gets the cause
/// (raw database errors name tables, hosts and users: not for clients).
fn refused_unavailable(s: &SocketRef, error: &sqlx::Error) -> RoomAck {
    tracing::warn!(socket = %s.id, %error, "join refused: database unavailable");
    RoomAck::refused("database unavailable: try again")
}

fn leave(st: &AppState, s: &SocketRef, arg: Option<Value>) -> RoomAck {
    let room = match room_arg(arg) {
        Ok(room) => room,
        Err(e) => return RoomAck::refused(e),
    };
    let name = room.name();
    if !s.rooms().iter().any(|r| *r == name) {
        return RoomAck::refused(format!("not in room `{name}`"));
    }
    // Every event this server emitted up to this seq was handed to the socket before it
    // left. In a cluster an older event of another server may still be on its way through
    // Redis (README, "Limits"): a client that needs the exact set takes its own cutoff.
    let through = st.realtime.emitted_through();
    s.leave(name.clone());
    st.metrics
        .labelled_counter(ROOM_LEAVES, &[("room_kind", room.kind().to_string())])
        .increment(1);
    tracing::info!(socket = %s.id, room = %name, through, "room left");
    RoomAck {
        watermark: Some(through),
        node: Some(st.realtime.node().to_string()),
        ..RoomAck::left(name)
    }
}

fn disconnect_label(reason: DisconnectReason) -> &'static str {
    let i = match reason {
        DisconnectReason::TransportClose => 0,
        DisconnectReason::MultipleHttpPollingError => 1,
        DisconnectReason::PacketParsingError => 2,
        DisconnectReason::TransportError => 3,
        DisconnectReason::HeartbeatTimeout => 4,
        DisconnectReason::ClientNSDisconnect => 5,
        DisconnectReason::ServerNSDisconnect => 6,
        DisconnectReason::ClosingServer => 7,
    };
    DISCONNECT_REASONS[i]
}
