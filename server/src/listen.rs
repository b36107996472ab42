//! The HTTP connection loop. axum's `serve` sets no timer on hyper, so hyper reads a request's
//! headers with no time limit: a client that sends one header byte now and then holds its
//! connection (and a task) forever. This loop does what that one does (HTTP/1 and HTTP/2,
//! upgrades for WebSocket, graceful shutdown) with hyper's header read timeout on, which also
//! closes a keep-alive connection that sends no new request within it. With a TLS identity
//! (`--tls-cert`, `--tls-key`) each connection's handshake comes first, within the same time.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_native_tls::TlsAcceptor;

/// Accepts connections until `stop` turns true, then stops accepting, asks each connection to
/// finish its request in progress and close, and returns once all have.
pub async fn accept_until(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let each = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
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
    let service = TowerToHyperService::new(router);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
            return;
        }
        () = stopped(&mut stop) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
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
