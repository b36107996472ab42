//! `loadgen`: parse flags, run the load test, print the summary, write the report, and exit
//! 0 (every gate passed), 1 (a gate failed; reports still written) or 2 (could not run).

use std::path::Path;
use std::process::ExitCode;

use booking_loadgen::config::{Command, Config};
use booking_loadgen::report::Report;
use clap::Parser;

/// Every receipt allocates and frees what rust_socketio parses it into, on two worker threads:
/// glibc's malloc spent about a fifth of the generator's CPU on that (its arena locks included),
/// mimalloc's thread-local heaps much less (see the README's benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Some(Command::Compare(args)) = &config.command {
        return match booking_loadgen::report::compare::compare_files(args) {
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
        return match booking_loadgen::merge_files(args) {
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
    let outcome = match booking_loadgen::run(config).await {
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
        (html, booking_loadgen::report::html::report_page),
        (junit, booking_loadgen::report::junit::junit),
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
