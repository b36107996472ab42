//! `loadgen`: parse flags, run the load test, print the summary, write the report, and exit
//! 0 (every gate passed), 1 (a gate failed; reports still written) or 2 (could not run).

use std::process::ExitCode;

use booking_loadgen::config::Config;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    raise_open_files_limit();
    let report_path = config.report_json.clone();
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
    if let Some(path) = report_path {
        let json = serde_json::to_string_pretty(&outcome.report).expect("reports serialize");
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("loadgen: could not write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Each tab holds a socket; lift the soft open-files limit to the hard one for big runs.
fn raise_open_files_limit() {
    #[cfg(target_os = "linux")]
    {
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            let hard = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4))
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(hard) = hard {
                let _ = std::process::Command::new("sh")
                    .args(["-c", &format!("ulimit -n {hard}")])
                    .status();
            }
        }
    }
}
