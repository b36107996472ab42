//! Command-line and environment configuration of the booking server.
//!
//! Every flag can also come from the environment, and every default runs on a laptop with
//! nothing installed: an SQLite file in the working directory, a generated auth secret.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Reference boardroom booking server: REST API, Socket.IO rooms and an event log with replay.
#[derive(Debug, Parser)]
#[command(name = "booking-server", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub server: ServerConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a bearer token signed with the server's secret (for scripts and load tests).
    MintToken(MintTokenArgs),
    /// Serve what the Socket.IO protocol test-suite (`socketio/socket.io-protocol`,
    /// `test-suite/`) expects: namespaces `/` and `/custom` that echo, ping every 300 ms, through
    /// this server's listener, limits and middlewares; the other server flags apply. No
    /// bookings: nothing is stored.
    Conformance(ConformanceArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ConformanceArgs {
    /// TCP port; the suite connects to 3000.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
}

#[derive(Debug, Clone, Args)]
pub struct MintTokenArgs {
    /// User id the token speaks for (its `sub` claim).
    #[arg(long)]
    pub sub: String,
    /// Role of the user.
    #[arg(long, value_enum, default_value_t = crate::auth::Role::User)]
    pub role: crate::auth::Role,
    /// Display name stored when the server first sees this user.
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime of the token in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub ttl_secs: u64,
    /// HS256 secret, at least 32 bytes; must match the server's `--auth-secret`.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How the server listens, stores and authenticates.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// TCP port for the REST API, Socket.IO and /metrics.
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    pub bind: String,
    /// `sqlite://bookings.db`, `sqlite::memory:` or `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://bookings.db?mode=rwc"
    )]
    pub database_url: String,
    /// Allowed browser origins, comma-separated, for CORS and Socket.IO. Empty: any origin.
    #[arg(long, env = "CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// HS256 secret for bearer tokens, at least 32 bytes (e.g. `openssl rand -hex 32`). Unset:
    /// a random one is generated and an admin token logged.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `booking_server=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Packets each socket may have queued before a broadcast skips it (counted on /metrics).
    #[arg(long, env = "SOCKET_QUEUE_SIZE", default_value_t = 1024)]
    pub socket_queue_size: usize,
    /// Largest Socket.IO message accepted from a client, in bytes (both transports).
    #[arg(long, env = "MAX_SOCKET_MESSAGE_BYTES", default_value_t = 16 * 1024)]
    pub max_socket_message_bytes: usize,
    /// Socket.IO connections this server holds at most; past it, handshakes are refused with
    /// "server full" (counted in `socketio_limits_hit_total{limit="connections"}`).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,
    /// TCP connections this server holds at most, of any kind (REST, polling, WebSocket, TLS
    /// handshakes, connections that have sent nothing yet); past it, a new connection is closed
    /// at once (counted in `socketio_limits_hit_total{limit="http-connections"}`). 0:
    /// `--max-connections` plus 1,024 for REST and polling.
    #[arg(long, env = "MAX_HTTP_CONNECTIONS", default_value_t = 0)]
    pub max_http_connections: usize,
    /// Sockets one user (one token's `sub`) may hold on this server at once; past it, the
    /// handshake is refused until one closes (admins are not held to it). A person's tabs and
    /// devices rarely need a dozen.
    #[arg(long, env = "MAX_SOCKETS_PER_USER", default_value_t = 100, value_parser = at_least_one)]
    pub max_sockets_per_user: usize,
    /// REST writes (POST, PATCH, DELETE) one user may make per second on this server, up to this
    /// many at once, then at this rate; past it, 429 with `Retry-After` (admins are not held to
    /// it). Each write holds the write turn while it commits.
    #[arg(long, env = "MAX_WRITES_PER_USER", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_writes_per_user: u32,
    /// Rooms one socket may be in at once; a join past it is refused until the socket leaves
    /// one. A page of the web app needs three.
    #[arg(long, env = "MAX_ROOMS_PER_SOCKET", default_value_t = 50)]
    pub max_rooms_per_socket: usize,
    /// Joins one socket may make per second (up to this many at once, then at this rate); a
    /// join over it is refused with `retryAfterMs`. Each join costs one or two queries.
    #[arg(long, env = "MAX_JOINS_PER_SECOND", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_joins_per_second: u32,
    /// How long a new Engine.IO session may take to complete its Socket.IO handshake (send
    /// CONNECT with its token) before it is closed, e.g. `10s`.
    #[arg(long, env = "HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: std::time::Duration,
    /// How often the server pings each Engine.IO session, e.g. `25s`.
    #[arg(long, env = "PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: std::time::Duration,
    /// How long a session may take to answer a ping before it is closed, e.g. `20s`.
    #[arg(long, env = "PING_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub ping_timeout: std::time::Duration,
    /// How long a REST request may take before it is answered 503 `timeout`; a write goes on
    /// to its end all the same (retry with the same `Idempotency-Key` for its outcome), e.g.
    /// `30s`. Socket.IO long-polling is not timed by it.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: std::time::Duration,
    /// Serve HTTPS (and WebSocket over TLS) with this PEM certificate chain; needs --tls-key.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM (PKCS#8) private key of --tls-cert.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// How long a client may take to send a request's headers, and how long a connection
    /// (HTTP/1 or HTTP/2) may go with no request in flight, before it is closed, e.g. `10s`.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub header_read_timeout: std::time::Duration,
    /// On SIGTERM: how long in-flight writes get to commit and emit before the sockets are
    /// closed, and then how long the remaining requests and sockets get before the server
    /// exits anyway, e.g. `10s`.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: std::time::Duration,
    /// How long events and idempotency keys are kept, e.g. `7d`, `12h`; `forever` keeps them
    /// all. A replay from before the oldest event kept is answered 410 with `oldestSeq`: the
    /// client reloads rather than replays. The newest event is always kept.
    #[arg(long, env = "EVENT_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub event_retention: Retention,
    /// Largest REST request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Local development: `POST /api/auth/dev-login` signs anyone in by name, as a user or an
    /// admin, with no secret (the web app shows a sign-in form). Never on a shared server.
    #[arg(long, env = "DEV_LOGIN")]
    pub dev_login: bool,
    /// TEST ONLY: inject delivery faults, e.g. `drop=0.02,duplicate=0.01,misroute=0.01,reorder=0.01,delay=5ms`
    /// (and `relay-delay=400ms`: events relayed from other servers taken one per that long).
    #[arg(long, env = "INJECT_FAULTS")]
    pub inject_faults: Option<crate::realtime::faults::FaultPlan>,
    /// Redis for several servers behind one load balancer, e.g. `redis://127.0.0.1:6379`: events
    /// committed on one server reach the sockets of all. Unset: a single server.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Events from other servers that may wait to be handed to this server's sockets; past
    /// it they are dropped (`socketio_adapter_overflow_total`) and this server's sockets are
    /// sent `resync`.
    #[arg(long, env = "RELAY_QUEUE_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub relay_queue_size: u64,
    /// Prefix of the Redis channels, so several clusters can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "socket.io")]
    pub redis_prefix: String,
    /// Name of this server in logs, acks, events and /ready. Unset: `node-` and 8 random hex.
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// What an acknowledged write survives on an SQLite file. `full`: the WAL is fsynced at
    /// every commit, so a write answered 2xx survives a process crash and a power loss or OS
    /// crash, at one fsync per write. `normal`: fsynced only at checkpoints, so it survives a
    /// process crash (`kill -9`) only; a power loss can roll back the last writes (the file
    /// stays consistent). Ignored on PostgreSQL (its `synchronous_commit` decides there).
    #[arg(long, env = "SQLITE_SYNCHRONOUS", value_enum, default_value_t = crate::db::SqliteSynchronous::Full)]
    pub sqlite_synchronous: crate::db::SqliteSynchronous,
    /// Threads of the runtime REST writes run on, apart from the one serving the sockets, so
    /// that a heavy fan-out does not hold a write (and the writes queued behind its turn) off
    /// the CPU; 0 runs them on the shared runtime.
    #[arg(long, env = "WRITE_THREADS", default_value_t = 1)]
    pub write_threads: usize,
    /// Size of the database connection pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 8)]
    pub db_pool_size: u32,
    /// How long a request waits for a database connection before it is answered 503 (while
    /// the database restarts, say), e.g. `2s`, `500ms`.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub db_acquire_timeout: std::time::Duration,
    /// Set by `booking-server conformance` (see `realtime::conformance`): the protocol
    /// test-suite's namespaces instead of the booking one.
    #[arg(skip)]
    pub conformance: bool,
}

/// How long the event log keeps events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Forever,
    For(std::time::Duration),
}

/// `forever` or a duration (see [`parse_duration`]) above zero.
pub fn parse_retention(text: &str) -> Result<Retention, String> {
    if text.trim() == "forever" {
        return Ok(Retention::Forever);
    }
    match parse_duration(text)? {
        d if d.is_zero() => {
            Err("a retention of 0 would keep nothing: use `forever` or a duration like 7d".into())
        }
        d => Ok(Retention::For(d)),
    }
}

/// Parses `30s`, `2m`, `500ms`, `1h`, `7d`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let mut total = std::time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(|| format!("`{text}`: a duration needs a unit (ms, s, m, h, d)"))?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 30s"))?;
        let seconds = match unit {
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            "d" => value * 86400.0,
            _ => {
                return Err(format!(
                    "`{text}`: unknown unit `{unit}` (use ms, s, m, h, d)"
                ));
            }
        };
        total += std::time::Duration::from_secs_f64(seconds);
        rest = tail;
    }
    Ok(total)
}

impl ServerConfig {
    /// The binary's defaults (flags unset; the environment still applies) on `database_url`,
    /// port 0 and a fixed secret: for tests and embedders (the load generator's embedded
    /// server), which override what they need.
    pub fn defaults_for(database_url: &str) -> Self {
        let mut cfg = Cli::parse_from(["booking-server"]).server;
        cfg.database_url = database_url.to_string();
        cfg.port = 0;
        cfg.auth_secret = Some("test-secret-at-least-thirty-two-bytes".to_string());
        cfg.redis_url = None;
        cfg
    }
}

/// What `--max-http-connections` 0 leaves besides the Socket.IO connections: REST and polling.
pub const REST_HEADROOM: usize = 1_024;

impl ServerConfig {
    /// The TCP connections the server holds at most (see `--max-http-connections`).
    pub fn http_connections(&self) -> usize {
        match self.max_http_connections {
            0 => self.max_connections.saturating_add(REST_HEADROOM),
            n => n,
        }
    }
}

/// Open files kept back from Socket.IO connections: REST connections, the database pool,
/// Redis, the listener, logs. A twentieth of the limit, at least 256.
fn reserved_files(open_files: u64) -> u64 {
    (open_files / 20).max(256)
}

/// The Socket.IO connections a process that may open `open_files` files can hold: `wanted`, or
/// fewer when the limit would run out first. Past the limit `accept` fails (EMFILE) for every
/// connection, REST included, so "server full" must come before it.
pub fn connections_within(wanted: usize, open_files: u64) -> usize {
    let room = open_files.saturating_sub(reserved_files(open_files));
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The shortest `--auth-secret` taken: an HS256 key must have at least as many bits as the
/// hash (RFC 7518, 3.2), and a short one can be found by trying.
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuses an HS256 secret shorter than [`MIN_SECRET_BYTES`], saying how long it is (never what
/// it is) and how to make a good one.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() >= MIN_SECRET_BYTES {
        return Ok(());
    }
    Err(format!(
        "--auth-secret/AUTH_SECRET is {} bytes: an HS256 secret needs at least {MIN_SECRET_BYTES} (256 bits); make one with `openssl rand -hex 32`",
        secret.len()
    ))
}

/// A count of 1 or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}`: a whole number of 1 or more")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_stop_short_of_the_open_files_limit() {
        assert_eq!(connections_within(50_000, 1_048_576), 50_000);
        assert_eq!(connections_within(50_000, 20_000), 19_000);
        assert_eq!(connections_within(50_000, 1_024), 768);
        assert_eq!(connections_within(100, 1_024), 100);
        assert_eq!(connections_within(50_000, 100), 0);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_retention("forever").unwrap(), Retention::Forever);
        assert_eq!(
            parse_retention("12h").unwrap(),
            Retention::For(Duration::from_secs(43200))
        );
        assert_eq!(
            Cli::parse_from(["booking-server"]).server.event_retention,
            Retention::For(Duration::from_secs(7 * 86400)),
            "the default parses"
        );
        assert!(parse_retention("0s").is_err());
        for bad in ["", "30", "3x", "s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
