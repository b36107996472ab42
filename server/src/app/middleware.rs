//! The layers every request passes: writes that run to their end and the request timeout,
//! the Socket.IO origin guard, the close after an unread polling body, HTTP metrics and
//! CORS, and the JSON answers for unknown routes and methods.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Notify;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::AppState;
use crate::error::ApiError;
use crate::realtime::protocol::EVENT_SEQ_HEADER;
use crate::telemetry::metrics::{HTTP_DURATION, HTTP_REQUESTS};
use crate::telemetry::otel;
use crate::web;

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

/// The runtime REST writes run on, apart from the one that serves the sockets: under a
/// heavy fan-out, thousands of socket tasks are ready at once on the shared runtime, and a
/// write woken by its database reply waited behind them while it held the write turn; the
/// writes behind it timed out waiting (503, seen at 3,000 tabs and 60 actions/s). Here the
/// kernel shares the CPU between its threads and the shared runtime's instead.
/// `--write-threads 0`: none (writes run on the shared runtime).
pub struct WriteRuntime(Option<tokio::runtime::Runtime>);

impl WriteRuntime {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        if threads == 0 {
            return Ok(Self(None));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("booking-writes")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    pub fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for WriteRuntime {
    fn drop(&mut self) {
        // Dropped from inside the shared runtime (the last handle on the state may be a task's):
        // a blocking shutdown would panic there.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

pub(super) fn cors_layer(origins: &[HeaderValue]) -> CorsLayer {
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
pub(super) async fn writes_run_to_completion(
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
    let write_runtime = state.write_runtime.handle();
    let running = Running::start(state);
    let write = async move {
        let response = next.run(req).await;
        drop(running);
        response
    };
    // A REST write runs on the write runtime (`--write-threads`), so that it does not queue
    // behind the fan-out to thousands of sockets on the shared one; Socket.IO polling stays.
    let task = match (&write_runtime, timed) {
        (Some(runtime), true) => runtime.spawn(write.instrument(span)),
        _ => tokio::spawn(write.instrument(span)),
    };
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
pub(super) async fn close_after_unread_body(req: Request, next: Next) -> Response {
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
pub(super) async fn origin_guard(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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

pub(super) async fn http_metrics(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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

pub(super) async fn not_found(req: Request) -> Response {
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

pub(super) async fn method_not_allowed(req: Request) -> Response {
    let message = format!("{} is not allowed on {}", req.method(), req.uri().path());
    let body = json!({ "error": { "code": "method_not_allowed", "message": message } });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
