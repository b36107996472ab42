//! `booking-server`: parse config, set up logging, open the database, serve until SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use booking_server::auth::{Role, mint_with_secret};
use booking_server::config::{Cli, Command, connections_within};
use booking_server::{AppState, serve, telemetry};
use clap::Parser;

/// Open files the server needs besides its connections: the database pool, Redis, the
/// listener, the logs.
const FILES_BESIDES_CONNECTIONS: u64 = 64;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::MintToken(args)) = &cli.command {
        if let Err(why) = booking_server::config::check_secret(&args.auth_secret) {
            eprintln!("error: {why}");
            std::process::exit(2);
        }
        let token = mint_with_secret(
            &args.auth_secret,
            &args.sub,
            args.role,
            args.name.as_deref(),
            args.ttl_secs,
        );
        println!("{token}");
        return Ok(());
    }
    let mut config = cli.server;
    if let Some(Command::Conformance(args)) = &cli.command {
        booking_server::realtime::conformance::profile(&mut config);
        config.port = args.port;
        config.bind.clone_from(&args.bind);
    }
    let traces =
        telemetry::otel::provider_from_env("booking-server").map_err(anyhow::Error::msg)?;
    telemetry::init_logging(&config.log_level, config.log_format, traces.as_ref());
    if traces.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    // Each socket is a file: lift the soft limit as far as the hard one allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open-files limit");
            let fits = connections_within(config.max_connections, limit);
            if fits < config.max_connections {
                tracing::warn!(
                    max_connections = config.max_connections,
                    open_files = limit,
                    "--max-connections is above what the open-files limit allows: at most {fits} Socket.IO connections, then \"server full\""
                );
                config.max_connections = fits;
            }
            // Past the limit, accept fails for every connection: stop short of it, leaving
            // the files the pool, Redis, the listener and the logs need.
            let room = usize::try_from(limit.saturating_sub(FILES_BESIDES_CONNECTIONS))
                .unwrap_or(usize::MAX);
            if config.http_connections() > room {
                tracing::warn!(
                    max_http_connections = config.http_connections(),
                    open_files = limit,
                    "TCP connections past the open-files limit: at most {room}"
                );
                config.max_http_connections = room.max(1);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
    let addr = format!("{}:{}", config.bind, config.port);
    let state = AppState::new(config)
        .await
        .context("starting the booking server")?;
    if state.origins.is_empty() {
        tracing::warn!("no --cors-origin/CORS_ORIGIN set: browsers from any origin may connect");
    }
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    if state.config.conformance {
        tracing::info!(
            addr = %local,
            namespaces = ?booking_server::realtime::conformance::NAMESPACES,
            "conformance mode: serving the Socket.IO protocol test-suite's handlers (no bookings)"
        );
    } else {
        tracing::info!(addr = %local, "booking server listening");
        announce_web_app(&state, local);
    }
    serve(listener, state, shutdown_signal()).await?;
    if let Some(traces) = traces {
        let _ = traces.shutdown();
    }
    tracing::info!("booking server stopped");
    Ok(())
}

/// Tells the person who started the server where the web app is and how to sign in.
fn announce_web_app(state: &AppState, addr: std::net::SocketAddr) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let scheme = if state.config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{host}/");
    if state.config.dev_login {
        tracing::warn!("--dev-login is on: anyone who reaches this server can sign in as anyone");
    }
    if state.generated_secret {
        // A credential never goes into the log (logs are collected and kept): it is shown on a
        // terminal only, and good only while this process (and its secret) lives.
        if std::io::stdout().is_terminal() {
            let token = state
                .auth
                .mint("admin", Role::Admin, Some("Admin"), 7 * 24 * 3600);
            tracing::warn!(
                "no --auth-secret/AUTH_SECRET set: generated one for this run; its admin token \
                 is printed below, on the terminal only"
            );
            println!("admin token (good while this server runs): {token}");
            if booking_server::web::is_built() {
                println!("web app: {url}#token={token}  (signed in as Admin)");
            }
        } else {
            tracing::warn!(
                "no --auth-secret/AUTH_SECRET set: generated one for this run; no admin token is \
                 shown, since stdout is not a terminal and logs are kept: set --auth-secret (32 \
                 bytes or more) and mint tokens with `booking-server mint-token`"
            );
        }
    }
    if booking_server::web::is_built() {
        let how = if state.config.dev_login {
            "sign in with any name"
        } else {
            "sign in with a token, or restart with --dev-login to sign in by name"
        };
        println!("web app: {url}  ({how})");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
