//! Telemetry: Prometheus metrics owned per server, W3C trace context, and log setup for the
//! binary (the library installs nothing global).

pub mod metrics;
pub mod trace;

use crate::config::LogFormat;

/// Installs the global tracing subscriber; called by binaries, never by `app`.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
