//! Socket.IO on the server's port: handshake auth, `join-room` / `leave-room` with their
//! watermark acks, and the emission of logged booking events to their rooms after commit.
//! This file holds the server's Socket.IO side and its setup; `emit` hands events and resyncs
//! to sockets, `sockets` is what each socket runs, `background` the tasks beside them.

mod background;
pub mod cluster;
pub mod conformance;
pub mod delivery;
pub mod editing;
mod emit;
pub mod faults;
pub mod life;
pub mod limits;
pub mod protocol;
mod sockets;
pub mod turns;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use metrics::Counter;
use socketioxide::SocketIo;
use socketioxide::extract::TryData;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;

use crate::app::{AppState, StartError};
use crate::config::ServerConfig;
use crate::events;
use crate::telemetry::metrics::{FAULTS_INJECTED, ServerMetrics};
use cluster::{ClusterAdapter, ClusterLink, LinkCounters, RedisLink};
use delivery::Owed;
use faults::FaultPlan;
use protocol::HandshakeAuth;

/// A connected socket of this server.
pub type SocketRef = socketioxide::extract::SocketRef<ClusterAdapter>;

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
    /// delay, relay-delay) and the deliveries `reorder` holds back.
    faults: Option<(FaultPlan, [Counter; 6], faults::HeldBack)>,
    /// The Redis channel booking events travel on between servers.
    events_channel: String,
    /// Resyncs owed to sockets that missed a delivery, and to the cluster.
    owed: Owed,
    /// Places left for sockets (`--max-connections`).
    connections: limits::Connections,
    /// Each user's sockets (`--max-sockets-per-user`).
    user_sockets: limits::UserSockets,
    /// The seqs handed out here lately, emitted or relayed (see `background::watch_announced`).
    announced: std::sync::Mutex<std::collections::BTreeSet<i64>>,
}

impl Realtime {
    pub fn new(config: &ServerConfig, metrics: Arc<ServerMetrics>) -> Result<Self, StartError> {
        let cap = config.max_socket_message_bytes;
        let link = match &config.redis_url {
            Some(url) => RedisLink::start(
                url,
                LinkCounters {
                    overflow: metrics.adapter_overflow.clone(),
                    lapses: metrics.adapter_order_lapses.clone(),
                },
            )
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
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            .max_payload(cap as u64)
            .ws_max_message_size(cap)
            .ws_max_frame_size(cap)
            .build_layer();
        let faults = config.inject_faults.clone().filter(FaultPlan::is_active).map(|plan| {
            tracing::warn!(%plan, "FAULT INJECTION ON: this server drops, repeats or misroutes deliveries on purpose");
            let counter = |kind: &str| {
                metrics.labelled_counter(FAULTS_INJECTED, &[("kind", kind.to_string())])
            };
            let counters = ["drop", "duplicate", "misroute", "reorder", "delay", "relay-delay"]
                .map(counter);
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
            user_sockets: limits::UserSockets::new(config.max_sockets_per_user),
            announced: Default::default(),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
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
    if state.config.conformance {
        return conformance::register(state).await;
    }
    let st = state.clone();
    let authenticate = move |s: SocketRef, TryData(auth): TryData<HandshakeAuth>| {
        let st = st.clone();
        async move { sockets::authenticate(&st, &s, auth.ok()).await }
    };
    let st = state.clone();
    // Handlers are registered by the middleware (see `sockets::authenticate`); this only
    // counts and logs the connection and starts its token's clock.
    let on_connect = move |s: SocketRef| {
        sockets::connected(st.clone(), s);
        std::future::ready(())
    };
    state
        .realtime
        .io
        .ns("/", on_connect.with(authenticate))
        .await
        .map_err(|e| StartError::Config(format!("socket.io adapter: {e}")))?;
    let start_seq = events::last_seq(&state.db.pool).await?;
    background::receive_relayed(state).await?;
    background::settle_owed(state);
    background::watch_link(state, start_seq);
    background::watch_announced(state, start_seq);
    Ok(())
}
