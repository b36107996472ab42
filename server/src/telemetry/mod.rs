//! Telemetry: Prometheus metrics owned per server, W3C trace context, and log setup for the
//! binary (the library installs nothing global).

pub mod metrics;
pub mod otel;
pub mod trace;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// Installs the global tracing subscriber (logs, and spans to OpenTelemetry when `traces` is
/// given); called by binaries, never by `app`.
pub fn init_logging(filter: &str, format: LogFormat, traces: Option<&SdkTracerProvider>) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        // Colours only on a terminal: a log file or a collector gets plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    let spans =
        traces.map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("booking-server")));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
}
