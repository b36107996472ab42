//! Loadgen tests: real runs against real servers (embedded, or started here), checked for what
//! the verifier must see, including faults injected on purpose; the binary's exit codes; the
//! JSON report against its schema.

mod apps;
mod binary;
mod browser;
mod cluster;
mod faults;
mod k8s;
mod layout;
mod observability;
mod peer;
mod runs;
mod shards;
mod stages;
mod workflow;

use std::time::Duration;

use booking_loadgen::config::Config;
use booking_loadgen::report::Report;
use clap::Parser;

/// A config as the command line would give it, quiet and short.
pub fn config(args: &[&str]) -> Config {
    let mut all = vec!["loadgen", "--progress-every", "0s", "--settle", "1s"];
    all.extend_from_slice(args);
    Config::try_parse_from(all).expect("valid flags")
}

/// Checks a report against `report.schema.json`.
pub fn assert_matches_schema(report: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../report.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match its schema: {errors:#?}"
    );
}

pub fn as_json(report: &Report) -> serde_json::Value {
    serde_json::to_value(report).unwrap()
}

/// The report's gate called `name`, or a panic with the summary.
pub fn gate<'a>(r: &'a Report, name: &str) -> &'a booking_loadgen::report::Gate {
    r.gates
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no gate `{name}`: {}", r.summary()))
}

/// The names of the gates that failed, in report order.
pub fn failed_gates(r: &Report) -> Vec<&str> {
    r.gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| g.name.as_str())
        .collect()
}

/// A booking server of the test's own (SQLite in memory) with this token secret: its base URL.
pub async fn fresh_server(secret: &str) -> String {
    serve_own(secret, |_| {}).await
}

/// [`fresh_server`], with `tweak` applied to its configuration (`https://` when it has a
/// certificate).
pub async fn serve_own(
    secret: &str,
    tweak: impl FnOnce(&mut booking_server::ServerConfig),
) -> String {
    let mut server = booking_server::ServerConfig::defaults_for("sqlite::memory:");
    server.auth_secret = Some(secret.into());
    tweak(&mut server);
    let scheme = if server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let state = booking_server::AppState::new(server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("{scheme}://{}", listener.local_addr().unwrap());
    tokio::spawn(booking_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    host
}

pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A whole run through the library with these flags, bounded by [`RUN_LIMIT`].
pub async fn run(args: &[&str]) -> booking_loadgen::Outcome {
    tokio::time::timeout(RUN_LIMIT, booking_loadgen::run(config(args)))
        .await
        .expect("the run ends in time")
        .expect("the run happens")
}
