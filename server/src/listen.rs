//! The HTTP connection loop. axum's `serve` sets no timer on hyper, so hyper reads a request's
//! headers with no time limit: a client that sends one header byte now and then holds its
//! connection (and a task) forever. This loop does what that one does (HTTP/1 and HTTP/2,
//! upgrades for WebSocket, graceful shutdown) with hyper's header read timeout on, which also
//! closes a keep-alive connection that sends no new request within it. hyper's timer covers
//! HTTP/1 only: it reads the first bytes (which tell HTTP/1 from HTTP/2) with no timer, and an
//! HTTP/2 connection has no idle limit. So each connection is also watched here: one that has
//! had no request in flight for the header read timeout (none yet: it sent nothing, or only
//! the HTTP/2 preface and settings; or none since its last) is closed. A connection upgraded to
//! a WebSocket is the socket's from then on. With a TLS identity (`--tls-cert`, `--tls-key`)
//! each connection's handshake comes first, within the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_native_tls::TlsAcceptor;

/// How many connections the loop holds at most, and where it counts those it closed at once
/// for being past it.
pub struct Limit {
    pub connections: usize,
    pub refused: metrics::Counter,
}

/// Accepts connections until `stop` turns true, then stops accepting, asks each connection to
/// finish its request in progress and close, and returns once all have. A connection past
/// `limit` is closed as soon as it is accepted.
pub async fn accept_until(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    limit: Limit,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let each = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while connections.try_join_next().is_some() {}
                    if connections.len() >= limit.connections {
                        limit.refused.increment(1);
                        tracing::debug!(%peer, held = connections.len(), "connection refused: at --max-http-connections");
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let (router, stop) = (router.clone(), each.clone());
                    match tls.clone() {
                        None => connections.spawn(serve_one(stream, router, header_timeout, stop)),
                        Some(tls) => connections.spawn(async move {
                            // A client that never finishes its handshake is closed like one
                            // that never sends its headers.
                            match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                                Ok(Ok(stream)) => serve_one(stream, router, header_timeout, stop).await,
                                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }),
                    };
                }
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stopped(&mut stop) => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

async fn serve_one<S>(
    stream: S,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let activity = Arc::new(Activity::new());
    let service = TowerToHyperService::new(Counted {
        router,
        activity: activity.clone(),
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut check = tokio::time::interval((header_timeout / 4).max(Duration::from_millis(20)));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle = loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = stopped(&mut stop) => break false,
            _ = check.tick() => {
                if activity.idle_for().is_some_and(|idle| idle >= header_timeout) {
                    break true;
                }
            }
        }
    };
    conn.as_mut().graceful_shutdown();
    if idle {
        // Nothing is in flight: a second for the goodbye (HTTP/2's GOAWAY), then it is dropped.
        tracing::debug!("closing a connection with no request in flight");
        let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
    } else {
        let _ = conn.await;
    }
}

/// What one connection's requests are doing: how many are being answered, and when the last
/// answer ended (ms since the connection was accepted).
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    last_end_ms: AtomicU64,
}

/// The router, with each request counted in `activity` while it is answered.
#[derive(Clone)]
struct Counted {
    router: Router,
    activity: Arc<Activity>,
}

impl<B> tower::Service<axum::http::Request<B>> for Counted
where
    Router: tower::Service<
            axum::http::Request<B>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
    <Router as tower::Service<axum::http::Request<B>>>::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<axum::http::Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let in_flight = self.activity.begin();
        let answer = self.router.call(request);
        Box::pin(async move {
            let answered = answer.await;
            drop(in_flight);
            answered
        })
    }
}

/// A request being answered; its drop ends it.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// How long the connection has had no request in flight: since it was accepted, or since
    /// its last answer; none while one is being answered.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst));
        Some(self.accepted.elapsed().saturating_sub(since))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // The end is stamped before the count falls, so a check that sees none in flight
        // sees when the last ended.
        a.last_end_ms
            .fetch_max(a.accepted.elapsed().as_millis() as u64, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves once `stop` is true (or its sender is gone). The guard `wait_for` returns is not
/// `Send`: it is dropped here, before the caller's next await.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The TLS acceptor of a PEM certificate chain and its PEM (PKCS#8) key, or why not.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let identity = native_tls::Identity::from_pkcs8(&read(cert)?, &read(key)?).map_err(|e| {
        format!(
            "--tls-cert {} / --tls-key {}: {e}",
            cert.display(),
            key.display()
        )
    })?;
    native_tls::TlsAcceptor::new(identity)
        .map(TlsAcceptor::from)
        .map_err(|e| format!("TLS: {e}"))
}
