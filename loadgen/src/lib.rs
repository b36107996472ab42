//! `booking-loadgen`: simulated browser tabs against the booking server or any Socket.IO app an
//! app file describes, and the verifier that proves every subscriber got every event it was
//! owed. `run` is the whole load test, on the one engine (`engine`) with the booking workload
//! (`booking`) or an app file's (`app`); the binary is a thin wrapper that maps its outcome to
//! an exit code.

pub mod app;
pub mod booking;
pub mod config;
pub mod drive;
pub mod engine;
pub mod error;
pub mod judge;
pub mod plan;
pub mod record;
pub mod report;

pub use booking::faults_from_metrics;
use config::Config;
pub use engine::Outcome;
pub use error::RunError;

/// `loadgen merge` of any run's shards: an app run's shards are judged again from their logs.
pub fn merge_reports(reports: &[report::Report]) -> Result<report::Report, String> {
    report::merge::merge_with(reports, refine_merged)
}

/// `loadgen merge` of the report files `args` names (see [`merge_reports`]).
pub fn merge_files(args: &config::MergeArgs) -> Result<report::Report, String> {
    report::merge::merge_files(args, refine_merged)
}

fn refine_merged(reports: &[report::Report], out: &mut report::Report) -> Result<(), String> {
    match reports.first().and_then(|r| r.app.as_ref()) {
        Some(_) => report::app::merge(reports, out),
        None => Ok(()),
    }
}

/// Runs one load test: set up, ramp tabs, act, settle, verify, report. Receive spans are
/// exported when the standard `OTEL_*` variables ask for it.
pub async fn run(config: Config) -> Result<Outcome, RunError> {
    if let Some(rules) = &config.max_regression {
        report::compare::parse_rules(rules)
            .map_err(|e| RunError::Setup(format!("--max-regression: {e}")))?;
    }
    if config.app.is_some() {
        return app::run(config).await;
    }
    let traces = booking_server::telemetry::otel::provider_from_env("booking-loadgen")
        .map_err(RunError::Setup)?;
    let outcome = run_with_traces(config, traces.clone()).await;
    if let Some(traces) = traces {
        let _ = traces.shutdown();
    }
    outcome
}

/// [`run`] of the booking workload with receive spans going to `traces` (a test's in-memory
/// exporter, say).
pub async fn run_with_traces(
    config: Config,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Result<Outcome, RunError> {
    booking::run(config, traces).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[tokio::test]
    async fn unknown_regression_rules_are_refused_before_anything_runs() {
        for extra in [&[][..], &["--app", "no-such-app.yaml"][..]] {
            let mut args = vec!["loadgen", "--baseline", "b.json"];
            args.extend_from_slice(&["--max-regression", "p99=10%"]);
            args.extend_from_slice(extra);
            let Err(RunError::Setup(why)) = run(Config::try_parse_from(args).unwrap()).await else {
                panic!("a bad rule must stop the run at setup");
            };
            assert!(why.contains("unknown figure `p99`"), "{why}");
        }
    }
}
