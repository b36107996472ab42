//! The server's Prometheus metrics: names defined once, each with a description, registered on
//! a recorder owned by one server (no global recorder), so several servers can run in one
//! process and each `/metrics` shows only its own.
//!
//! Labels are bounded: event type, room kind, disconnect reason, route template, status.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::realtime::protocol::BookingEventKind;

pub const SOCKETS_CONNECTED: &str = "socketio_sockets_connected";
pub const CONNECTS: &str = "socketio_connects_total";
pub const CONNECTS_REFUSED: &str = "socketio_connects_refused_total";
pub const DISCONNECTS: &str = "socketio_disconnects_total";
pub const ROOM_JOINS: &str = "socketio_room_joins_total";
pub const ROOM_JOINS_REFUSED: &str = "socketio_room_joins_refused_total";
pub const ROOM_LEAVES: &str = "socketio_room_leaves_total";
pub const QUEUE_FULL_SKIPS: &str = "socketio_queue_full_skips_total";
pub const EVENTS_EMITTED: &str = "booking_events_emitted_total";
pub const EMISSION_LATENCY: &str = "booking_emission_latency_seconds";
pub const EMISSION_RECIPIENTS: &str = "booking_emission_recipients";
pub const EMISSION_ERRORS: &str = "booking_emission_errors_total";
pub const LAST_SEQ: &str = "booking_event_log_last_seq";
pub const CONFLICTS: &str = "booking_conflicts_total";
pub const REPLAY_REQUESTS: &str = "booking_replay_requests_total";
pub const EVENTS_REPLAYED: &str = "booking_events_replayed_total";
pub const FAULTS_INJECTED: &str = "booking_faults_injected_total";
pub const ROOMS: &str = "socketio_rooms";
pub const ROOM_MEMBERS: &str = "socketio_room_members";
pub const DB_TRANSACTION: &str = "booking_db_transaction_duration_seconds";
pub const DB_POOL: &str = "booking_db_pool_connections";
pub const BUILD_INFO: &str = "booking_build_info";
pub const ADAPTER_UP: &str = "socketio_adapter_up";
pub const ADAPTER_RECOVERIES: &str = "socketio_adapter_recoveries_total";
pub const ADAPTER_PUBLISH_FAILURES: &str = "socketio_adapter_publish_failures_total";
pub const ADAPTER_OVERFLOW: &str = "socketio_adapter_overflow_total";
pub const ADAPTER_ORDER_LAPSES: &str = "socketio_adapter_order_lapses_total";
pub const UNANNOUNCED: &str = "booking_events_unannounced_total";
pub const RESYNCS: &str = "socketio_resyncs_total";
pub const SESSIONS_EXPIRED: &str = "socketio_sessions_expired_total";
pub const READY_DB_CHECKS: &str = "booking_ready_database_checks_total";
pub const ROOM_WALKS: &str = "booking_metrics_room_walks_total";
pub const LIMITS_HIT: &str = "socketio_limits_hit_total";
pub const EDITING_SIGNALS: &str = "socketio_editing_signals_total";
pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";

/// Every metric: name, kind, unit, description. Dashboards may use only these names.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        SOCKETS_CONNECTED,
        "gauge",
        "Socket.IO sockets connected to this server now",
    ),
    (
        CONNECTS,
        "counter",
        "Socket.IO sockets that connected (token accepted)",
    ),
    (
        CONNECTS_REFUSED,
        "counter",
        "Socket.IO handshakes refused (missing or invalid token)",
    ),
    (DISCONNECTS, "counter", "Socket.IO disconnects, by reason"),
    (
        ROOM_JOINS,
        "counter",
        "Room joins acknowledged, by room kind",
    ),
    (
        ROOM_JOINS_REFUSED,
        "counter",
        "Room joins refused (bad name, unknown boardroom, not allowed)",
    ),
    (
        ROOM_LEAVES,
        "counter",
        "Room leaves acknowledged, by room kind",
    ),
    (
        QUEUE_FULL_SKIPS,
        "counter",
        "Deliveries skipped because the socket's outgoing queue was full",
    ),
    (
        EVENTS_EMITTED,
        "counter",
        "Booking events emitted, by event type",
    ),
    (
        EMISSION_LATENCY,
        "histogram",
        "Time from database commit to emission done, seconds",
    ),
    (
        EMISSION_RECIPIENTS,
        "histogram",
        "Local sockets addressed by one emission",
    ),
    (
        EMISSION_ERRORS,
        "counter",
        "Emissions that failed in the adapter or serializer",
    ),
    (
        LAST_SEQ,
        "gauge",
        "Highest event log seq committed by this server",
    ),
    (
        CONFLICTS,
        "counter",
        "Booking writes refused because of an overlap (HTTP 409)",
    ),
    (
        REPLAY_REQUESTS,
        "counter",
        "Requests to GET /api/events (replay)",
    ),
    (
        EVENTS_REPLAYED,
        "counter",
        "Events returned by replay requests",
    ),
    (
        ROOMS,
        "gauge",
        "Rooms with members on this server, by size class",
    ),
    (
        ROOM_MEMBERS,
        "gauge",
        "Sockets in rooms on this server, by room size class",
    ),
    (
        DB_TRANSACTION,
        "histogram",
        "Write transaction time, BEGIN to COMMIT, seconds",
    ),
    (
        DB_POOL,
        "gauge",
        "Database pool connections, by state (idle, busy)",
    ),
    (
        BUILD_INFO,
        "gauge",
        "Always 1; the version label says which build runs",
    ),
    (
        FAULTS_INJECTED,
        "counter",
        "Test-only delivery faults injected, by kind (--inject-faults)",
    ),
    (
        ADAPTER_UP,
        "gauge",
        "1 while the Redis link to the other servers is up (always 1 for a single server)",
    ),
    (
        ADAPTER_RECOVERIES,
        "counter",
        "Times the Redis link came back after an outage",
    ),
    (
        ADAPTER_PUBLISH_FAILURES,
        "counter",
        "Events delivered to this server's sockets only: publishing to the others failed",
    ),
    (
        ADAPTER_OVERFLOW,
        "counter",
        "Messages from other servers dropped because the adapter's queue was full",
    ),
    (
        UNANNOUNCED,
        "counter",
        "Committed events never handed out here within the grace (a lost COMMIT reply, a crash \
         between commit and publish, a relay dropped): this server's sockets are told to resync",
    ),
    (
        ADAPTER_ORDER_LAPSES,
        "counter",
        "Own publishes whose copy was not taken here within 1 s: events of other servers \
         committed before them may reach this server's sockets after them",
    ),
    (
        RESYNCS,
        "counter",
        "Resync notices sent: to every socket after the link came back or a publish failed, \
         to this server's sockets after its adapter queue overflowed, to one socket after its \
         queue was full; by reason",
    ),
    (
        LIMITS_HIT,
        "counter",
        "Connections, joins and room memberships refused at a configured limit, by limit",
    ),
    (
        SESSIONS_EXPIRED,
        "counter",
        "Sockets disconnected because their token expired",
    ),
    (
        READY_DB_CHECKS,
        "counter",
        "Database checks made for /ready (one a second at most while it is up, however often it is asked)",
    ),
    (
        ROOM_WALKS,
        "counter",
        "Walks of every room and member made for /metrics (one a second at most, however often it is scraped)",
    ),
    (
        EDITING_SIGNALS,
        "counter",
        "Volatile `editing` signals from clients, by result (relayed, partial, throttled, refused)",
    ),
    (
        HTTP_REQUESTS,
        "counter",
        "HTTP requests, by method, matched route and status",
    ),
    (
        HTTP_DURATION,
        "histogram",
        "HTTP request duration, seconds, by method and matched route",
    ),
];

/// Every `reason` label of `socketio_resyncs_total`, as sent in the notice.
pub const RESYNC_REASONS: [&str; 6] = [
    "adapter-recovered",
    "publish-failed",
    "adapter-overflow",
    "queue-full",
    "order-lapse",
    "unannounced",
];

/// Every `limit` label of `socketio_limits_hit_total`.
pub const LIMITS: [&str; 6] = [
    "connections",
    "rooms-per-socket",
    "joins-per-second",
    "http-connections",
    "sockets-per-user",
    "writes-per-user",
];

/// A configured limit, as counted in `socketio_limits_hit_total` (in [`LIMITS`] order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Connections = 0,
    RoomsPerSocket = 1,
    JoinsPerSecond = 2,
    /// TCP connections, of any kind (`--max-http-connections`): closed at accept.
    HttpConnections = 3,
    /// Sockets of one user on this server (`--max-sockets-per-user`).
    SocketsPerUser = 4,
    /// Writes of one user per second (`--max-writes-per-user`).
    WritesPerUser = 5,
}

/// Every `reason` label of `socketio_disconnects_total`.
pub const DISCONNECT_REASONS: [&str; 8] = [
    "transport_close",
    "multiple_polling",
    "packet_parsing_error",
    "transport_error",
    "heartbeat_timeout",
    "client_disconnect",
    "server_disconnect",
    "server_closing",
];

static METADATA: Metadata<'static> =
    Metadata::new("booking_server", Level::INFO, Some("booking_server"));

const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];
const RECIPIENT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

pub struct ServerMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    pub sockets_connected: Gauge,
    pub connects: Counter,
    pub connects_refused: Counter,
    pub room_joins_refused: Counter,
    pub queue_full_skips: Counter,
    pub emission_latency: Histogram,
    pub emission_recipients: Histogram,
    pub emission_errors: Counter,
    pub last_seq: Gauge,
    pub conflicts: Counter,
    pub replay_requests: Counter,
    pub events_replayed: Counter,
    pub db_transaction: Histogram,
    pub adapter_up: Gauge,
    pub adapter_recoveries: Counter,
    pub adapter_publish_failures: Counter,
    pub adapter_overflow: Counter,
    pub adapter_order_lapses: Counter,
    pub unannounced: Counter,
    resyncs: [Counter; 6],
    limits_hit: [Counter; 6],
    pub sessions_expired: Counter,
    pub ready_db_checks: Counter,
    pub room_walks: Counter,
    events_emitted: [Counter; 4],
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(EMISSION_RECIPIENTS.into()),
                    RECIPIENT_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        for (name, kind, help) in CATALOGUE {
            let name = KeyName::from_const_str(name);
            let unit = name.as_str().ends_with("_seconds").then_some(Unit::Seconds);
            match *kind {
                "counter" => recorder.describe_counter(name, unit, (*help).into()),
                "gauge" => recorder.describe_gauge(name, unit, (*help).into()),
                _ => recorder.describe_histogram(name, unit, (*help).into()),
            }
        }
        let handle = recorder.handle();
        recorder
            .register_gauge(
                &Key::from_parts(
                    BUILD_INFO,
                    vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
                ),
                &METADATA,
            )
            .set(1.0);
        let counter =
            |name: &'static str| recorder.register_counter(&Key::from_static_name(name), &METADATA);
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
        let histogram = |name: &'static str| {
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        // Registered at start, so every series exists (at 0) before the first increment.
        let labelled = |name: &'static str, label: &'static str, value: &'static str| {
            let counter = recorder.register_counter(
                &Key::from_parts(name, vec![Label::new(label, value)]),
                &METADATA,
            );
            counter.increment(0);
            counter
        };
        let events_emitted = BookingEventKind::ALL.map(|kind| {
            recorder.register_counter(
                &Key::from_parts(EVENTS_EMITTED, vec![Label::new("event", kind.name())]),
                &METADATA,
            )
        });
        // Series of bounded labels exist from the start, so rates and dashboards read 0, not
        // "no data", before the first join, leave or disconnect.
        for kind in ["bookings", "boardroom", "user"] {
            for name in [ROOM_JOINS, ROOM_LEAVES] {
                let key = Key::from_parts(name, vec![Label::new("room_kind", kind)]);
                recorder.register_counter(&key, &METADATA).increment(0);
            }
        }
        for result in crate::realtime::editing::RESULTS {
            let key = Key::from_parts(EDITING_SIGNALS, vec![Label::new("result", result)]);
            recorder.register_counter(&key, &METADATA).increment(0);
        }
        for reason in DISCONNECT_REASONS {
            let key = Key::from_parts(DISCONNECTS, vec![Label::new("reason", reason)]);
            recorder.register_counter(&key, &METADATA).increment(0);
        }
        Self {
            sockets_connected: gauge(SOCKETS_CONNECTED),
            connects: counter(CONNECTS),
            connects_refused: counter(CONNECTS_REFUSED),
            room_joins_refused: counter(ROOM_JOINS_REFUSED),
            queue_full_skips: counter(QUEUE_FULL_SKIPS),
            emission_latency: histogram(EMISSION_LATENCY),
            emission_recipients: histogram(EMISSION_RECIPIENTS),
            emission_errors: counter(EMISSION_ERRORS),
            last_seq: gauge(LAST_SEQ),
            conflicts: counter(CONFLICTS),
            replay_requests: counter(REPLAY_REQUESTS),
            events_replayed: counter(EVENTS_REPLAYED),
            db_transaction: histogram(DB_TRANSACTION),
            adapter_up: gauge(ADAPTER_UP),
            adapter_recoveries: counter(ADAPTER_RECOVERIES),
            adapter_publish_failures: counter(ADAPTER_PUBLISH_FAILURES),
            adapter_overflow: counter(ADAPTER_OVERFLOW),
            adapter_order_lapses: counter(ADAPTER_ORDER_LAPSES),
            unannounced: counter(UNANNOUNCED),
            resyncs: RESYNC_REASONS.map(|r| labelled(RESYNCS, "reason", r)),
            limits_hit: LIMITS.map(|l| labelled(LIMITS_HIT, "limit", l)),
            sessions_expired: counter(SESSIONS_EXPIRED),
            ready_db_checks: counter(READY_DB_CHECKS),
            room_walks: counter(ROOM_WALKS),
            events_emitted,
            recorder,
            handle,
        }
    }

    /// The Prometheus text exposition of this server's metrics.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// `socketio_resyncs_total` for one of [`RESYNC_REASONS`] (an unknown one counts as the
    /// first).
    pub fn resynced(&self, reason: &str) -> &Counter {
        let i = RESYNC_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        &self.resyncs[i]
    }

    /// `socketio_limits_hit_total` for one of [`LIMITS`].
    pub fn limit_hit(&self, limit: Limit) -> &Counter {
        &self.limits_hit[limit as usize]
    }

    pub fn event_emitted(&self, kind: BookingEventKind) -> &Counter {
        let i = BookingEventKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        &self.events_emitted[i]
    }

    /// A counter with labels; the values must come from bounded sets.
    pub fn labelled_counter(
        &self,
        name: &'static str,
        labels: &[(&'static str, String)],
    ) -> Counter {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    /// A gauge with labels; the values must come from bounded sets.
    pub fn labelled_gauge(&self, name: &'static str, labels: &[(&'static str, String)]) -> Gauge {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// A histogram with labels; the values must come from bounded sets.
    pub fn labelled_histogram(
        &self,
        name: &'static str,
        labels: &[(&'static str, String)],
    ) -> Histogram {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_servers_keep_their_metrics_apart() {
        let a = ServerMetrics::new();
        let b = ServerMetrics::new();
        a.connects.increment(3);
        assert!(a.render().contains("socketio_connects_total 3"));
        assert!(!b.render().contains("socketio_connects_total 3"));
    }

    #[test]
    fn every_catalogued_name_follows_conventions() {
        for (name, kind, help) in CATALOGUE {
            assert!(!help.is_empty());
            assert_eq!(*kind == "counter", name.ends_with("_total"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
