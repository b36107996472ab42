//! The server assembled: shared state, the router (`app`) and `serve` with graceful shutdown;
//! the layers every request passes are in `middleware`, the tokenless endpoints in `health`.
//! Nothing global is installed here, so tests run many servers in one process.

mod health;
mod middleware;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderValue;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use health::{MEMO_FOR, Memo};
pub use middleware::{InFlight, WriteRuntime};

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::db::Db;
use crate::realtime::{self, Realtime};
use crate::telemetry::metrics::ServerMetrics;
use crate::{auth, boardrooms, bookings, events, web};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Everything a request or a socket handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    pub auth: Auth,
    pub metrics: Arc<ServerMetrics>,
    pub realtime: Realtime,
    pub config: ServerConfig,
    /// Browser origins allowed; empty: any.
    pub origins: Vec<HeaderValue>,
    /// True when no secret was configured and one was generated for this process.
    pub generated_secret: bool,
    /// Writes running now: shutdown lets them commit and emit before it closes the sockets.
    pub writes: InFlight,
    /// Where REST writes run (`--write-threads`).
    pub write_runtime: WriteRuntime,
    /// Each user's REST writes a second (`--max-writes-per-user`).
    pub write_rates: crate::realtime::limits::WriteRates,
    /// `/ready`'s last database check: `/ready` needs no token, and each check takes a
    /// connection of the pool the writes use. One that passed stands [`MEMO_FOR`].
    pub ready_check: Memo<Result<(), String>>,
    /// `/metrics`' last walk of every room and member (it needs no token either): it stands
    /// [`MEMO_FOR`], so the room gauges are at most that old.
    pub room_walk: Memo<crate::realtime::RoomSizes>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// A handle that does not keep the server alive (for its background tasks).
    pub fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    pub fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(AppState)
    }

    /// Opens and migrates the database and sets up Socket.IO.
    pub async fn new(config: ServerConfig) -> Result<Self, StartError> {
        let origins = config
            .cors_origin
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| {
                HeaderValue::from_str(o)
                    .map_err(|_| StartError::Config(format!("bad origin `{o}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // A bad secret is refused before the database is touched.
        if let Some(s) = config.auth_secret.as_deref().filter(|s| !s.is_empty()) {
            crate::config::check_secret(s).map_err(StartError::Config)?;
        }
        let mut db = Db::connect(
            &config.database_url,
            config.db_pool_size,
            config.db_acquire_timeout,
            config.sqlite_synchronous,
        )
        .await?;
        if config.redis_url.is_some() {
            db.order_across_cluster();
        }
        db.migrate().await?;
        let (secret, generated_secret) = match &config.auth_secret {
            Some(s) if !s.is_empty() => (s.clone(), false),
            // 244 random bits, as 64 hex digits.
            _ => (
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
                true,
            ),
        };
        let metrics = Arc::new(ServerMetrics::new());
        let last_seq = events::last_seq(&db.pool).await?;
        metrics.last_seq.set(last_seq as f64);
        let realtime = Realtime::new(&config, metrics.clone())?;
        let write_rates = crate::realtime::limits::WriteRates::new(config.max_writes_per_user);
        let write_runtime = WriteRuntime::start(config.write_threads)
            .map_err(|e| StartError::Config(format!("cannot start the write runtime: {e}")))?;
        let state = AppState(Arc::new(Inner {
            db,
            auth: Auth::new(&secret),
            metrics,
            realtime,
            config,
            origins,
            generated_secret,
            writes: InFlight::default(),
            write_runtime,
            write_rates,
            ready_check: Memo::default(),
            room_walk: Memo::default(),
        }));
        realtime::register(&state).await?;
        events::keep_pruning(&state);
        tracing::info!(
            node = state.realtime.node(),
            redis = state.realtime.link.is_clustered(),
            "server state ready"
        );
        Ok(state)
    }
}

/// The whole HTTP surface: REST API, Socket.IO (`/socket.io/`), health and metrics.
pub fn app(state: AppState) -> Router {
    let cors = middleware::cors_layer(&state.origins);
    Router::new()
        .merge(boardrooms::router())
        .merge(bookings::router())
        .merge(events::router())
        .merge(auth::session::router())
        .merge(web::router())
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(from_fn_with_state(
            state.clone(),
            middleware::writes_run_to_completion,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), middleware::http_metrics))
        .layer(state.realtime.layer.clone())
        .layer(cors)
        .layer(from_fn_with_state(state.clone(), middleware::origin_guard))
        .layer(axum::middleware::from_fn(
            middleware::close_after_unread_body,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops in order: no new connections; in-flight writes
/// commit and emit to the sockets still open (for up to `--shutdown-timeout`); the sockets
/// close; the remaining requests finish. Past the timeout again, it returns with whatever is
/// still open.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, stopped) = watch::channel(false);
    let tls = match (&state.config.tls_cert, &state.config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::listen::tls_acceptor(cert, key).map_err(std::io::Error::other)?)
        }
        _ => None,
    };
    let limit = crate::listen::Limit {
        connections: state.config.http_connections(),
        refused: state
            .metrics
            .limit_hit(crate::telemetry::metrics::Limit::HttpConnections)
            .clone(),
    };
    let server = crate::listen::accept_until(
        listener,
        app(state.clone()),
        state.config.header_read_timeout,
        tls,
        limit,
        stopped,
    );
    let limit = state.config.shutdown_timeout;
    // Holds the sender until it ends, and the server stops waiting once it has.
    let drain = async move {
        shutdown.await;
        let _ = stopping.send(true);
        tracing::info!(
            writes = state.writes.count(),
            "shutting down: no new connections; in-flight writes finish and emit before the sockets close"
        );
        if !state.writes.settled(limit).await {
            tracing::warn!(
                writes = state.writes.count(),
                ?limit,
                "shutdown: writes still running at the deadline; closing the sockets anyway"
            );
        }
        if tokio::time::timeout(limit, state.realtime.io.close())
            .await
            .is_err()
        {
            tracing::warn!(?limit, "shutdown: sockets still closing at the deadline");
        }
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        () = server => Ok(()),
        () = drain => {
            tracing::warn!(?limit, "shutdown: requests still open past the deadline; stopping anyway");
            Ok(())
        }
    }
}
