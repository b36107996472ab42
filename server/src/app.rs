//! The server assembled: shared state, the router (`app`) and `serve` with graceful shutdown.
//! Nothing global is installed here, so tests run many servers in one process.

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::db::Db;
use crate::error::ApiError;
use crate::realtime::protocol::EVENT_SEQ_HEADER;
use crate::realtime::{self, Realtime};
use crate::telemetry::metrics::{
    DB_POOL, HTTP_DURATION, HTTP_REQUESTS, ROOM_MEMBERS, ROOMS, ServerMetrics,
};
use crate::telemetry::otel;
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
    /// `/ready`'s last database check: `/ready` needs no token, and each check takes a
    /// connection of the pool the writes use. One that passed stands [`MEMO_FOR`].
    pub ready_check: Memo<Result<(), String>>,
    /// `/metrics`' last walk of every room and member (it needs no token either): it stands
    /// [`MEMO_FOR`], so the room gauges are at most that old.
    pub room_walk: Memo<crate::realtime::RoomSizes>,
}

/// The last answer of a costly check that anyone may ask for without a token, shared. An
/// answer that [`Memo::get`]'s `stands` keeps is given again for [`MEMO_FOR`]; while a check is
/// running, the requests that come meanwhile wait for it and take its answer, so a flood costs
/// one check at a time, and one a second while answers stand.
pub struct Memo<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

/// How long an answer that stands is given again.
pub const MEMO_FOR: Duration = Duration::from_secs(1);

impl<T: Clone> Memo<T> {
    /// The answer for a request made now: one that `stands` and is younger than [`MEMO_FOR`],
    /// or one that ended after this was asked, else a new one (`check`).
    pub async fn get<F, Fut>(&self, stands: impl Fn(&T) -> bool, check: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = &*last
            && (*at >= asked || (stands(answer) && at.elapsed() < MEMO_FOR))
        {
            return answer.clone();
        }
        let answer = check().await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// A count of running requests and a wake-up when it drops to zero.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until none is running or `limit` has passed; true when none is.
    pub async fn settled(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// One running write, counted in [`Inner::writes`] until dropped.
struct Running(AppState);

impl Running {
    fn start(state: AppState) -> Self {
        state.writes.count.fetch_add(1, Ordering::AcqRel);
        Running(state)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.writes.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.writes.idle.notify_waiters();
        }
    }
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
        let state = AppState(Arc::new(Inner {
            db,
            auth: Auth::new(&secret),
            metrics,
            realtime,
            config,
            origins,
            generated_secret,
            writes: InFlight::default(),
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
    let cors = cors_layer(&state.origins);
    Router::new()
        .merge(boardrooms::router())
        .merge(bookings::router())
        .merge(events::router())
        .merge(auth::session::router())
        .merge(web::router())
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            writes_run_to_completion,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), http_metrics))
        .layer(state.realtime.layer.clone())
        .layer(cors)
        .layer(middleware::from_fn_with_state(state.clone(), origin_guard))
        .layer(middleware::from_fn(close_after_unread_body))
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

fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            "idempotency-key".parse().expect("valid header name"),
            "traceparent".parse().expect("valid header name"),
        ])
        // A page served from another origin reads which event its own change logged.
        .expose_headers([EVENT_SEQ_HEADER
            .parse::<header::HeaderName>()
            .expect("valid header name")]);
    if origins.is_empty() {
        layer.allow_origin(Any)
    } else {
        layer.allow_origin(AllowOrigin::list(origins.iter().cloned()))
    }
}

/// A request that may change something runs to its end in a task of its own, whatever its
/// client does: hyper drops a handler's future when the client hangs up, and a write cut there
/// could commit without emitting its events, or leave its pooled connection inside a
/// transaction (the next request on it then failed with 500).
///
/// Every REST request is answered within `--request-timeout`: a read past it is cut and
/// answered 503 `timeout`; a write past it is answered the same while it goes on to its end
/// (a retry with the same `Idempotency-Key` gets its outcome). Socket.IO's long-polling holds
/// requests open on purpose and is not timed here.
async fn writes_run_to_completion(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let limit = state.config.request_timeout;
    let timed = !req.uri().path().starts_with("/socket.io");
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if !timed {
            return next.run(req).await;
        }
        return match tokio::time::timeout(limit, next.run(req)).await {
            Ok(response) => response,
            Err(_) => {
                ApiError::Timeout(format!("no answer within {limit:?}: try again")).into_response()
            }
        };
    }
    let span = tracing::Span::current();
    let running = Running::start(state);
    let write = async move {
        let response = next.run(req).await;
        drop(running);
        response
    };
    let task = tokio::spawn(write.instrument(span));
    let finished = if timed {
        match tokio::time::timeout(limit, task).await {
            Ok(finished) => finished,
            Err(_) => {
                return ApiError::Timeout(format!(
                    "not finished within {limit:?}; it goes on to its end: retry with the same \
                     Idempotency-Key to get its outcome"
                ))
                .into_response();
            }
        }
    } else {
        task.await
    };
    match finished {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            ApiError::Internal("the request could not finish".into()).into_response()
        }
    }
}

/// A Socket.IO polling POST refused at a bad packet, past `--max-socket-message-bytes` or
/// after a close packet is answered before its body was read to the end. The connection
/// cannot carry another request then, and hyper drops it without saying so when the rest of
/// the body does not come in one read: the client pools the dead connection and its next
/// request, maybe another session's, fails with a reset. Such an answer says
/// `connection: close`, so hyper closes cleanly and the client opens a new connection.
async fn close_after_unread_body(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/socket.io") || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let ended = Arc::new(AtomicBool::new(false));
    let seen = ended.clone();
    let body = body
        .into_data_stream()
        .chain(futures_util::stream::poll_fn(move |_| {
            seen.store(true, Ordering::Release);
            Poll::Ready(None)
        }));
    let req = Request::from_parts(parts, Body::from_stream(body));
    let mut response = next.run(req).await;
    if !ended.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Socket.IO upgrades and polling from a browser origin outside the allowlist are refused.
/// Requests without an `Origin` (non-browser clients) pass.
async fn origin_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.origins.is_empty()
        && req.uri().path().starts_with("/socket.io")
        && let Some(origin) = req.headers().get(header::ORIGIN)
        && !state.origins.contains(origin)
    {
        let shown = origin.to_str().unwrap_or("?").to_string();
        return ApiError::Forbidden(format!("origin `{shown}` is not allowed")).into_response();
    }
    next.run(req).await
}

async fn http_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method()).to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(otel::remote_parent(req.headers()));
    let response = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .labelled_counter(
            HTTP_REQUESTS,
            &[
                ("method", method.clone()),
                ("route", route.clone()),
                ("status", status),
            ],
        )
        .increment(1);
    state
        .metrics
        .labelled_histogram(HTTP_DURATION, &[("method", method), ("route", route)])
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a metric label: the standard ones by name, anything a client made up as
/// `other`, so no request can add a series (40 made-up methods once added 800).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 when this server can do its whole job: the database answers and, with Redis, the link
/// to the other servers is up; 503 otherwise, saying which part is missing.
async fn ready(State(state): State<AppState>) -> Response {
    let database = state
        .ready_check
        .get(Result::is_ok, || async {
            state.metrics.ready_db_checks.increment(1);
            state.db.ping().await.map_err(|e| e.to_string())
        })
        .await;
    let link = state.realtime.link.state().map(|l| *l.borrow());
    let adapter = match link {
        None => "local",
        Some(l) if l.up => "up",
        Some(_) => "down",
    };
    let node = state.realtime.node();
    let body = |status: &str| {
        json!({
            "status": status,
            "node": node,
            "database": if database.is_ok() { "up" } else { "down" },
            "adapter": adapter,
        })
    };
    if database.is_ok() && adapter != "down" {
        return Json(body("ready")).into_response();
    }
    let mut reasons = Vec::new();
    if let Err(e) = &database {
        // The cause goes to the log: this endpoint needs no token.
        tracing::warn!(error = %e, "readiness: database unavailable");
        reasons.push("database unavailable".to_string());
    }
    if let Some(l) = link.filter(|l| !l.up) {
        reasons.push(format!(
            "redis link down for {:.1} s: events reach this server's sockets only",
            l.since.elapsed().as_secs_f64()
        ));
    }
    let mut body = body("unavailable");
    body["error"] = json!({ "code": "unavailable", "message": reasons.join("; ") });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let sizes = state
        .room_walk
        .get(
            |_| true,
            || async {
                m.room_walks.increment(1);
                state.realtime.room_sizes().await
            },
        )
        .await;
    for (class, rooms, members) in sizes {
        m.labelled_gauge(ROOMS, &[("size_class", class.to_string())])
            .set(rooms as f64);
        m.labelled_gauge(ROOM_MEMBERS, &[("size_class", class.to_string())])
            .set(members as f64);
    }
    let (idle, busy) = state.db.pool_use();
    m.labelled_gauge(DB_POOL, &[("state", "idle".to_string())])
        .set(idle as f64);
    m.labelled_gauge(DB_POOL, &[("state", "busy".to_string())])
        .set(busy as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD)
        && let Some(file) = web::top_level_file(req.uri())
    {
        return file;
    }
    ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let message = format!("{} is not allowed on {}", req.method(), req.uri().path());
    let body = json!({ "error": { "code": "method_not_allowed", "message": message } });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
