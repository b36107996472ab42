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

use std::path::Path;
use std::process::ExitCode;

pub use booking::faults_from_metrics;
use config::{Command, Config};
pub use engine::Outcome;
pub use error::RunError;
use report::Report;

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

/// The `loadgen` binary: parse flags, run the load test (or `compare`, `merge`), print the
/// summary, write the reports, and exit 0 (every gate passed), 1 (a gate failed; reports
/// still written) or 2 (could not run). It lives here, not in the binary, so that the binary
/// instantiates no generic code of its own: a release build compiles it in seconds.
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let config = Config::parse();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(cli(config)),
        Err(e) => {
            eprintln!("loadgen: could not start the runtime: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn cli(config: Config) -> ExitCode {
    if let Some(Command::Compare(args)) = &config.command {
        return match crate::report::compare::compare_files(args) {
            Ok(compared) => {
                print!("{}", compared.text);
                if let Some(path) = &args.report_html
                    && let Err(e) = std::fs::write(path, &compared.html)
                {
                    eprintln!("loadgen compare: could not write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                if compared.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("loadgen compare: {e}");
                ExitCode::from(2)
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    raise_open_files_limit();
    if let Some(Command::Merge(args)) = &config.command {
        return match crate::merge_files(args) {
            Ok(report) => {
                println!("{}", report.summary());
                let written = write_reports(
                    &report,
                    args.report_json.as_deref(),
                    args.report_html.as_deref(),
                    args.report_junit.as_deref(),
                );
                if let Err(e) = written {
                    eprintln!("loadgen merge: {e}");
                    ExitCode::from(2)
                } else if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("loadgen merge: {e}");
                ExitCode::from(2)
            }
        };
    }
    let report_path = config.report_json.clone();
    let junit_path = config.report_junit.clone();
    let html_path = config.report_html.clone();
    let outcome = match crate::run(config).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("loadgen: could not run: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", outcome.report.summary());
    if outcome.goose_thresholds_failed {
        println!("goose: one or more --threshold rules failed");
    }
    let written = write_reports(
        &outcome.report,
        report_path.as_deref(),
        html_path.as_deref(),
        junit_path.as_deref(),
    );
    if let Err(e) = written {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Writes the JSON, HTML and JUnit forms of `report` that were asked for.
fn write_reports(
    report: &Report,
    json: Option<&Path>,
    html: Option<&Path>,
    junit: Option<&Path>,
) -> Result<(), String> {
    type Render = fn(&Report) -> String;
    let forms: [(Option<&Path>, Render); 3] = [
        (json, |r| {
            serde_json::to_string_pretty(r).expect("reports serialize")
        }),
        (html, crate::report::html::report_page),
        (junit, crate::report::junit::junit),
    ];
    for (path, render) in forms {
        if let Some(path) = path {
            std::fs::write(path, render(report))
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Each tab holds a socket: lift the soft open-files limit as far as the hard one allows.
fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("loadgen: could not raise the open-files limit: {e}");
    }
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
