//! Socket.IO on the server's port: handshake auth, `join-room` / `leave-room` with their
//! watermark acks, and the emission of logged booking events to their rooms after commit.

pub mod cluster;
pub mod delivery;
pub mod editing;
pub mod faults;
pub mod life;
pub mod limits;
pub mod protocol;
pub mod turns;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use metrics::Counter;
use rand::Rng;
use serde_json::Value;
use serde_json::value::RawValue;
use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::DisconnectReason;
use socketioxide::{BroadcastError, SocketIo};
use socketioxide_redis::drivers::Driver;
use tracing::Instrument;

use crate::app::{AppState, StartError};
use crate::auth::AuthUser;
use crate::boardrooms;
use crate::config::ServerConfig;
use crate::db::{EmitTurn, now_micros};
use crate::events::{self, LoggedEvent};
use crate::telemetry::metrics::{
    DISCONNECT_REASONS, DISCONNECTS, FAULTS_INJECTED, Limit, ROOM_JOINS, ROOM_LEAVES, ServerMetrics,
};
use crate::telemetry::otel;
use cluster::{ClusterAdapter, ClusterLink, RedisLink};
use delivery::{Outcome, Owed};
use faults::FaultPlan;
use life::SocketLife;
use protocol::{
    EDITING, EditingSignal, HandshakeAuth, JOIN_ROOM, LEAVE_ROOM, RESYNC, Resync, Room, RoomAck,
    SESSION_EXPIRED, SessionExpired,
};

/// A connected socket of this server.
pub type SocketRef = socketioxide::extract::SocketRef<ClusterAdapter>;
type AckSender = socketioxide::extract::AckSender<ClusterAdapter>;

/// How far back a resync reaches before the moment the link was found down: covers the time
/// to notice (a missed ping) and events committed just before that were still being emitted.
const RESYNC_MARGIN: Duration = Duration::from_secs(5);

/// Binary attachments one client message may carry (their total size is capped by
/// `--max-socket-message-bytes`); past it, the connection is closed.
pub const MAX_ATTACHMENTS: usize = 4;

/// Who a resync notice goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResyncScope {
    /// Every socket of the cluster, or this server's when it cannot publish.
    ClusterOrLocal,
    /// Every socket of the cluster, or no one yet.
    Cluster,
    /// This server's sockets.
    Local,
}

/// The Socket.IO side of one server.
pub struct Realtime {
    pub io: SocketIo<ClusterAdapter>,
    pub layer: SocketIoLayer<ClusterAdapter>,
    /// The link to the other servers (a no-op for a single server).
    pub link: ClusterLink,
    /// This server's name in acks, events and `/ready`.
    node: String,
    metrics: Arc<ServerMetrics>,
    /// Highest `seq` whose emission this process has finished; emissions are in `seq` order.
    emitted_through: AtomicI64,
    /// Test-only delivery faults, with their counters (drop, duplicate, misroute, reorder,
    /// delay) and the deliveries `reorder` holds back.
    faults: Option<(FaultPlan, [Counter; 5], faults::HeldBack)>,
    /// The Redis channel booking events travel on between servers.
    events_channel: String,
    /// Resyncs owed to sockets that missed a delivery, and to the cluster.
    owed: Owed,
    /// Places left for sockets (`--max-connections`).
    connections: limits::Connections,
}

impl Realtime {
    pub fn new(config: &ServerConfig, metrics: Arc<ServerMetrics>) -> Result<Self, StartError> {
        let cap = config.max_socket_message_bytes;
        let link = match &config.redis_url {
            Some(url) => RedisLink::start(url, metrics.adapter_overflow.clone())
                .map_err(|e| StartError::Config(format!("bad --redis-url `{url}`: {e}")))?,
            None => ClusterLink::Single,
        };
        let node = config.node_id.clone().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().simple().to_string();
            format!("node-{}", &id[..8])
        });
        // socketioxide collects up to 10 MB in 10,000 binary attachments per message by
        // default, before any auth. This protocol uses none: a few small ones at most.
        let parser = socketioxide::ParserConfig::common()
            .max_incoming_binary_buf_size(cap)
            .max_incoming_binaries(MAX_ATTACHMENTS)
            .packet_completion_timeout(Duration::from_secs(5));
        let (layer, io) = SocketIo::builder()
            .with_parser(parser)
            .with_adapter::<ClusterAdapter>(link.adapter(&config.redis_prefix))
            .max_buffer_size(config.socket_queue_size)
            .connect_timeout(config.handshake_timeout)
            .max_payload(cap as u64)
            .ws_max_message_size(cap)
            .ws_max_frame_size(cap)
            .build_layer();
        let faults = config.inject_faults.clone().filter(FaultPlan::is_active).map(|plan| {
            tracing::warn!(%plan, "FAULT INJECTION ON: this server drops, repeats or misroutes deliveries on purpose");
            let counter = |kind: &str| {
                metrics.labelled_counter(FAULTS_INJECTED, &[("kind", kind.to_string())])
            };
            let counters = ["drop", "duplicate", "misroute", "reorder", "delay"].map(counter);
            (plan, counters, faults::HeldBack::default())
        });
        Ok(Self {
            io,
            layer,
            link,
            node,
            metrics,
            emitted_through: AtomicI64::new(0),
            faults,
            events_channel: format!("{}#booking-events", config.redis_prefix),
            owed: Owed::default(),
            connections: limits::Connections::new(config.max_connections),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells sockets that events with `seq > after` may not have reached them, with `reason`
    /// (one of `RESYNC_REASONS`), as far as `scope` says. False when it could not be
    /// published to the other servers (nothing counted then for [`ResyncScope::Cluster`]).
    async fn resync(
        &self,
        after: i64,
        down: Duration,
        reason: &'static str,
        scope: ResyncScope,
    ) -> bool {
        let notice = Resync {
            after,
            node: self.node.clone(),
            reason: reason.into(),
            down_ms: down.as_millis() as u64,
        };
        let sockets = self.io.local().sockets().len();
        let mut published = true;
        let owing = match scope {
            ResyncScope::Local => self.resync_each(&notice, reason),
            ResyncScope::Cluster | ResyncScope::ClusterOrLocal => {
                match self.io.emit(RESYNC, &notice).await {
                    Ok(()) => 0,
                    Err(BroadcastError::Adapter(e)) => {
                        published = false;
                        if scope == ResyncScope::Cluster {
                            tracing::debug!(error = %e, reason, "resync notice not published yet");
                            return false;
                        }
                        tracing::warn!(error = %e, reason, "resync notice not published: sending it to this server's sockets only");
                        self.resync_each(&notice, reason)
                    }
                    Err(BroadcastError::Socket(errors)) => {
                        // Some of this server's sockets did not take it (full queues), and the
                        // broadcast does not say which: each is sent it on its own, so those that
                        // took it get it twice (a second replay, of what they already have).
                        tracing::warn!(
                            failed = errors.len(),
                            reason,
                            "resync notice not taken by every socket here: sending it socket by socket"
                        );
                        self.resync_each(&notice, reason)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, reason, "resync notice not serialized");
                        0
                    }
                }
            }
        };
        if owing > 0 {
            tracing::warn!(
                owing,
                reason,
                "resync notice not taken by full queues: owed to those sockets until they take it"
            );
        }
        self.metrics.resynced(reason).increment(1);
        tracing::warn!(
            after,
            sockets,
            reason,
            ?scope,
            down_ms = notice.down_ms,
            "resync sent: clients replay what they may have missed"
        );
        published
    }

    /// Emits committed events to their rooms, in order: to the other servers first (they hand
    /// them to their sockets), then to this server's sockets, one by one (see `delivery`).
    /// Taking the [`EmitTurn`] proves the caller committed and still holds this process's
    /// write turn.
    pub async fn emit(&self, turn: &EmitTurn, events: &[LoggedEvent]) {
        for event in events {
            let span = tracing::info_span!(
                "socketio.emit",
                otel.kind = "producer",
                event = event.kind.name(),
                seq = event.seq,
                recipients = tracing::field::Empty,
            );
            // With traces on, receivers continue this span; without, the request's context.
            let traceparent = otel::traceparent_of(&span).or_else(|| event.traceparent.clone());
            let emission = async {
                if let Some((plan, [.., delayed], _)) = &self.faults
                    && !plan.delay.is_zero()
                {
                    tokio::time::sleep(plan.delay).await;
                    delayed.increment(1);
                }
                let mut payload = event.payload(now_micros(), false);
                payload.traceparent = traceparent;
                let payload = match serde_json::value::to_raw_value(&payload) {
                    Ok(payload) => payload,
                    Err(e) => {
                        self.metrics.emission_errors.increment(1);
                        tracing::error!(seq = event.seq, error = %e, "emission failed: payload not serialized");
                        return 0;
                    }
                };
                let name = event.kind.name();
                self.publish(event, name, &payload).await;
                // Looked up after the publish (and a fault's delay): a socket that left the
                // room meanwhile has its leave acked with a watermark below this event.
                let targets = self.io.local().to(event.rooms.clone()).sockets();
                tracing::Span::current().record("recipients", targets.len());
                match &self.faults {
                    Some(faults) => {
                        self.hand_out_with_faults(event, &targets, name, &payload, faults);
                    }
                    None => self.hand_out(event.seq, &targets, name, &payload),
                }
                targets.len()
            };
            let recipients = emission.instrument(span).await;
            let took = turn.committed_at.elapsed();
            self.metrics.event_emitted(event.kind).increment(1);
            self.metrics.emission_latency.record(took.as_secs_f64());
            self.metrics.emission_recipients.record(recipients as f64);
            self.metrics.last_seq.set(event.seq as f64);
            self.emitted_through.fetch_max(event.seq, Ordering::Release);
            tracing::info!(
                event = event.kind.name(),
                seq = event.seq,
                recipients,
                micros = took.as_micros() as u64,
                "event emitted"
            );
        }
    }

    /// Sends an event to the other servers. It returns once this server's own copy came back
    /// through the subscription (see `cluster`), so every event of another server published
    /// before it has been handed out here. A failed publish leaves a cluster-wide resync owed.
    async fn publish(&self, event: &LoggedEvent, name: &str, payload: &RawValue) {
        if !self.link.is_clustered() {
            return;
        }
        let relayed = delivery::Relayed {
            node: self.node.clone(),
            seq: event.seq,
            event: name.to_string(),
            rooms: event.rooms.clone(),
            payload: payload.to_owned(),
        };
        let bytes = match serde_json::to_vec(&relayed) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.metrics.emission_errors.increment(1);
                tracing::error!(seq = event.seq, error = %e, "event not relayed: not serialized");
                return;
            }
        };
        if let Err(e) = self.link.publish(self.events_channel.clone(), bytes).await {
            self.metrics.adapter_publish_failures.increment(1);
            self.owed.cluster(event.seq - 1);
            tracing::warn!(seq = event.seq, error = %e, "publish failed: delivering to this server's sockets only; the cluster will be told to resync");
        }
    }

    /// An event another server committed, as it arrived through the link.
    fn take_relayed(&self, bytes: &[u8]) {
        let relayed: delivery::Relayed = match serde_json::from_slice(bytes) {
            Ok(relayed) => relayed,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable event from another server: ignored");
                return;
            }
        };
        if relayed.node == self.node {
            return;
        }
        let targets = self.io.local().to(relayed.rooms).sockets();
        self.hand_out(relayed.seq, &targets, &relayed.event, &relayed.payload);
    }

    /// Hands an event to each socket; a socket whose queue is full owes a resync from just
    /// before it.
    fn hand_out(&self, seq: i64, sockets: &[SocketRef], name: &str, payload: &RawValue) {
        let mut skipped = 0;
        for socket in sockets {
            // A socket still owing a resync gets it first, or nothing (see `Owed`).
            if !self.settle_socket(socket) {
                skipped += 1;
                continue;
            }
            if let Outcome::Full = Outcome::from(socket.emit(name, payload)) {
                skipped += 1;
                self.owed.socket(socket.id, seq - 1, "queue-full");
            }
        }
        if skipped > 0 {
            self.metrics.queue_full_skips.increment(skipped);
            tracing::warn!(
                seq,
                skipped,
                "socket queues full: deliveries skipped; those sockets will be told to resync"
            );
        }
    }

    /// Hands out socket by socket, skipping, repeating, misaddressing or reordering single
    /// deliveries.
    fn hand_out_with_faults(
        &self,
        event: &LoggedEvent,
        targets: &[SocketRef],
        name: &str,
        payload: &RawValue,
        (plan, [dropped, duplicated, misrouted, reordered, _], held): &(
            FaultPlan,
            [Counter; 5],
            faults::HeldBack,
        ),
    ) {
        let mut outsiders: Vec<_> = if plan.misroute > 0.0 {
            let rooms = &event.rooms;
            self.io
                .local()
                .sockets()
                .into_iter()
                .filter(|s| !s.rooms().iter().any(|r| rooms.iter().any(|e| e == r)))
                .collect()
        } else {
            Vec::new()
        };
        let mut rng = rand::rng();
        for socket in targets {
            if rng.random_bool(plan.drop) {
                dropped.increment(1);
                // Named per socket so a test can tell whose deliveries were dropped.
                let user = socket.extensions.get::<AuthUser>().map(|u| u.id);
                tracing::info!(
                    seq = event.seq,
                    socket = %socket.id,
                    user = %user.as_deref().unwrap_or("-"),
                    "fault injected: delivery dropped"
                );
                continue;
            }
            let mut holding = held.lock();
            let previous = holding.remove(&socket.id);
            if previous.is_none() && plan.reorder > 0.0 && rng.random_bool(plan.reorder) {
                holding.insert(
                    socket.id,
                    faults::Held {
                        seq: event.seq,
                        name: name.to_string(),
                        payload: payload.to_owned(),
                    },
                );
                drop(holding);
                release_later(held.clone(), socket.clone(), event.seq, dropped.clone());
                continue;
            }
            let sent = socket.emit(name, payload).is_ok();
            if let Some(h) = previous {
                // The one held back goes right after this one: one delivery out of order.
                match socket.emit(&h.name, &*h.payload) {
                    Ok(()) if sent => reordered.increment(1),
                    Ok(()) => {}
                    Err(_) => dropped.increment(1),
                }
            }
            drop(holding);
            if !sent {
                continue;
            }
            if rng.random_bool(plan.duplicate) && socket.emit(name, payload).is_ok() {
                duplicated.increment(1);
            }
            if !outsiders.is_empty() && rng.random_bool(plan.misroute) {
                // Without replacement: an outsider gets one stray copy per event at most, so
                // each misroute is exactly one unexpected delivery.
                let outsider = outsiders.swap_remove(rng.random_range(0..outsiders.len()));
                if outsider.emit(name, payload).is_ok() {
                    misrouted.increment(1);
                }
            }
        }
    }

    /// Sends `notice` to each of this server's sockets; a socket whose queue is full owes it
    /// (see [`Owed::settle_socket`]: it is handed nothing more until it takes it). Returns how
    /// many owe it.
    fn resync_each(&self, notice: &Resync, reason: &'static str) -> usize {
        let mut owing = 0;
        for socket in self.io.local().sockets() {
            if let Outcome::Full = Outcome::from(socket.emit(RESYNC, notice)) {
                self.owed.socket(socket.id, notice.after, reason);
                owing += 1;
            }
        }
        owing
    }

    /// Sends `socket` the resync it owes, if any (see [`Owed::settle_socket`]); true when it
    /// may be handed a later event.
    fn settle_socket(&self, socket: &SocketRef) -> bool {
        self.owed.settle_socket(socket.id, |after, reason| {
            let notice = Resync {
                after,
                node: self.node.clone(),
                reason: reason.into(),
                down_ms: 0,
            };
            let sent = Outcome::from(socket.emit(RESYNC, &notice));
            if let Outcome::Delivered = sent {
                self.metrics.resynced(reason).increment(1);
                tracing::info!(socket = %socket.id, after, reason, "resync sent to a socket whose queue was full");
            }
            sent
        })
    }

    /// Sends the resyncs owed (see `delivery`); what cannot be sent yet stays owed.
    async fn settle_owed(&self) {
        if self.owed.is_empty() {
            return;
        }
        for sid in self.owed.sockets() {
            match self.io.get_socket(sid) {
                Some(socket) => {
                    self.settle_socket(&socket);
                }
                None => self.owed.forget(sid),
            }
        }
        let cluster = self.owed.take_cluster();
        if let Some(after) = cluster
            && !self
                .resync(
                    after,
                    Duration::ZERO,
                    "publish-failed",
                    ResyncScope::Cluster,
                )
                .await
        {
            self.owed.cluster(after);
        }
    }

    /// Rooms and their members on this server, by size class (small < 10 <= medium < 100 <=
    /// large), as (class, rooms, members).
    pub async fn room_sizes(&self) -> RoomSizes {
        let mut sizes = [("small", 0, 0), ("medium", 0, 0), ("large", 0, 0)];
        let Some(ns) = self.io.of("/").map(|ns| ns.local()) else {
            return sizes;
        };
        let rooms = ns.clone().rooms().await.unwrap_or_default();
        for room in rooms {
            let members = ns.clone().within(room).sockets().len();
            let class = match members {
                0..=9 => 0,
                10..=99 => 1,
                _ => 2,
            };
            sizes[class].1 += 1;
            sizes[class].2 += members;
        }
        sizes
    }

    pub fn emitted_through(&self) -> i64 {
        self.emitted_through.load(Ordering::Acquire)
    }
}

/// Rooms and their members on a server by size class: (class, rooms, members).
pub type RoomSizes = [(&'static str, usize, usize); 3];

/// Registers the `/` namespace: auth middleware, connect, join, leave, disconnect; with Redis,
/// the adapter's channels are subscribed in the background (the link may be down at start).
pub async fn register(state: &AppState) -> Result<(), StartError> {
    let st = state.clone();
    let authenticate = move |s: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        let st = st.clone();
        async move {
            let user = auth
                .map_err(|_| "missing auth: connect with `auth: { token }`".to_string())
                .and_then(|a| st.auth.verify(&a.token).map_err(|e| e.to_string()));
            let user = match user {
                Ok(user) => user,
                Err(reason) => {
                    st.metrics.connects_refused.increment(1);
                    tracing::info!(socket = %s.id, %reason, "socket refused");
                    return Err(reason);
                }
            };
            let connections = &st.realtime.connections;
            if !connections.take() {
                st.metrics.connects_refused.increment(1);
                st.metrics.limit_hit(Limit::Connections).increment(1);
                tracing::warn!(socket = %s.id, max = connections.max(), "socket refused: server full");
                return Err(format!(
                    "server full: it holds at most {} connections; try again later or another server",
                    connections.max()
                ));
            }
            if let Err(e) = st.auth.ensure_user(&st.db, &user).await {
                connections.give_back();
                tracing::warn!(socket = %s.id, error = %e, "socket refused: user not registered");
                return Err("could not register the user: try again".to_string());
            }
            s.extensions.insert(user);
            s.extensions.insert(ConnectedAt(Instant::now()));
            register_handlers(&st, &s);
            Ok(())
        }
    };
    let st = state.clone();
    // Handlers are registered by the middleware (see `register_handlers`); this only counts
    // and logs the connection and starts its token's clock.
    let on_connect = move |s: SocketRef| {
        connected(st.clone(), s);
        std::future::ready(())
    };
    state
        .realtime
        .io
        .ns("/", on_connect.with(authenticate))
        .await
        .map_err(|e| StartError::Config(format!("socket.io adapter: {e}")))?;
    let start_seq = events::last_seq(&state.db.pool).await?;
    receive_relayed(state).await?;
    settle_owed(state);
    watch_link(state, start_seq);
    Ok(())
}

/// Hands the events other servers commit to this server's sockets, in the order they arrive.
/// Each is handed out before the next is taken from the queue, which is what lets a publish
/// wait for its own copy to know that everything before it was handed out here.
async fn receive_relayed(state: &AppState) -> Result<(), StartError> {
    let realtime = &state.realtime;
    if !realtime.link.is_clustered() {
        return Ok(());
    }
    let mut relayed = realtime
        .link
        .subscribe(
            realtime.events_channel.clone(),
            state.config.relay_queue_size as usize,
        )
        .await
        .map_err(|e| StartError::Config(format!("redis subscription: {e}")))?;
    let weak = state.downgrade();
    tokio::spawn(async move {
        while let Some((_, bytes)) = relayed.next().await {
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            st.realtime.take_relayed(&bytes);
        }
    });
    Ok(())
}

/// Sends owed resyncs every [`delivery::RETRY_EVERY`] until they go through.
fn settle_owed(state: &AppState) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(delivery::RETRY_EVERY);
        loop {
            tick.tick().await;
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            st.realtime.settle_owed().await;
        }
    });
}

/// Follows the link to the other servers: the `socketio_adapter_up` gauge, logs, and resync
/// notices. When the link comes back, every socket of the cluster is told to replay from the
/// log's watermark as it was [`RESYNC_MARGIN`] before the outage was noticed (sampled every
/// second). When the link comes up for the first time, that is needed only if this server
/// already had sockets, which missed what the others published, or emitted events, which the
/// others' sockets missed; a server starting into a healthy cluster disturbs no one. When a
/// message from another server was dropped here (a full queue), this server's sockets are told
/// to replay from the same watermark.
fn watch_link(state: &AppState, start_seq: i64) {
    let Some(mut link) = state.realtime.link.state() else {
        state.metrics.adapter_up.set(1.0);
        return;
    };
    let overflows = state.realtime.link.overflows();
    // The link may be up already: look at its state as it is now, then at each change.
    link.mark_changed();
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        // The watermark a resync starts from: as it was a margin before now.
        let watermark_before = |samples: &VecDeque<(Instant, i64)>| {
            let cutoff = Instant::now().checked_sub(RESYNC_MARGIN);
            samples
                .iter()
                .rev()
                .find(|(at, _)| cutoff.is_some_and(|c| *at <= c))
                .or(samples.front())
                .map_or(start_seq, |(_, seq)| *seq)
        };
        // Where the next resync starts, while an outage is open.
        let mut gap_from = Some(start_seq);
        let mut down_at = Some(Instant::now());
        let mut seen_ups = 0;
        let mut was_up = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let overflowed = async |overflows: &Option<Arc<tokio::sync::Notify>>| match overflows {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        };
        loop {
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *link.borrow_and_update();
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    st.metrics.adapter_up.set(if now.up { 1.0 } else { 0.0 });
                    // A flap between two looks still counts as an outage.
                    let went_down = !now.up || (was_up && now.ups > seen_ups);
                    if went_down {
                        let before = watermark_before(&samples);
                        gap_from = Some(gap_from.map_or(before, |g| g.min(before)));
                        down_at.get_or_insert_with(Instant::now);
                    }
                    if now.up && now.ups > seen_ups {
                        let first = seen_ups == 0;
                        if !first {
                            st.metrics.adapter_recoveries.increment(1);
                        }
                        let down = down_at.take().map_or(Duration::ZERO, |d| d.elapsed());
                        if let Some(after) = gap_from.take() {
                            // A socket that connected once the link was up missed nothing.
                            let missed_something = !first
                                || st.realtime.emitted_through() > start_seq
                                || st.realtime.io.local().sockets().iter().any(|s| {
                                    s.extensions
                                        .get::<ConnectedAt>()
                                        .is_some_and(|at| at.0 < now.since)
                                });
                            if missed_something {
                                st.realtime.resync(after, down, "adapter-recovered", ResyncScope::ClusterOrLocal).await;
                            } else {
                                tracing::info!("redis link up at start: no socket or event yet, no resync needed");
                            }
                        }
                    }
                    seen_ups = now.ups;
                    was_up = now.up;
                }
                () = overflowed(&overflows) => {
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    let after = watermark_before(&samples);
                    st.realtime.resync(after, Duration::ZERO, "adapter-overflow", ResyncScope::Local).await;
                    drop(st);
                    // At most one a second while overflows go on (each replays every tab); the
                    // next one reaches back past this pause.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ = tick.tick() => {
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    if let Ok(seq) = events::last_seq(&st.db.pool).await {
                        samples.push_back((Instant::now(), seq));
                        if samples.len() > 30 {
                            samples.pop_front();
                        }
                    }
                }
            }
        }
    });
}

/// When a socket was let in (kept in its extensions).
#[derive(Clone, Copy)]
struct ConnectedAt(Instant);

fn connected(st: AppState, s: SocketRef) {
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
        let st = st.clone();
        // The place was taken by the auth middleware, whether or not the connection completed.
        st.realtime.connections.give_back();
        let counted_in = life.end();
        async move {
            if !counted_in {
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
    });
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

/// `reorder`: a held-back delivery with no next one to its socket within
/// [`faults::HOLD_AT_MOST`] goes alone, late but in order (a socket gone by then has lost it,
/// counted as a drop).
fn release_later(held: faults::HeldBack, socket: SocketRef, seq: i64, dropped: Counter) {
    tokio::spawn(async move {
        tokio::time::sleep(faults::HOLD_AT_MOST).await;
        let mut holding = held.lock();
        if holding.get(&socket.id).is_some_and(|h| h.seq == seq)
            && let Some(h) = holding.remove(&socket.id)
            && socket.emit(&h.name, &*h.payload).is_err()
        {
            dropped.increment(1);
        }
    });
}
