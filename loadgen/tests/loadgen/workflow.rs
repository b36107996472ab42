//! The CI workflow in docs/ci/loadtest.yml is meant to be copied: its loadgen command lines
//! must parse with this build's flags, the environment variables it sets must be the ones
//! those flags read, and the baseline artifact it downloads must be the one it uploads.

use booking_loadgen::config::{Command, Config};
use clap::{CommandFactory, Parser};
use serde_yaml::Value;

const WORKFLOW: &str = include_str!("../../../docs/ci/loadtest.yml");

/// The shell words of the command line in `script` that starts with `start`, with its
/// backslash continuations joined, quotes removed and `$NAME` replaced from `vars`.
fn command_line(script: &str, start: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let line = joined
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no `{start}` line in: {script}"));
    let line = line.split(" | ").next().unwrap();
    line.split_whitespace()
        .map(|word| {
            let mut word = word.trim_matches('"').to_string();
            for (name, value) in vars {
                word = word.replace(&format!("${name}"), value);
            }
            assert!(!word.contains('$'), "unexpanded `{word}` in `{line}`");
            word
        })
        .collect()
}

fn steps(workflow: &Value) -> Vec<&Value> {
    workflow["jobs"]["loadtest"]["steps"]
        .as_sequence()
        .expect("a loadtest job with steps")
        .iter()
        .collect()
}

fn step<'a>(steps: &[&'a Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no step `{name}`"))
}

fn env_of(flag: &str) -> String {
    Config::command()
        .get_arguments()
        .find(|a| a.get_long() == Some(flag))
        .and_then(|a| a.get_env())
        .and_then(|e| e.to_str())
        .unwrap_or_else(|| panic!("--{flag} reads no environment variable"))
        .to_string()
}

#[test]
fn the_documented_workflow_runs_this_builds_loadgen_as_documented() {
    let workflow: Value = serde_yaml::from_str(WORKFLOW).expect("valid YAML");
    let steps = steps(&workflow);
    let env = &workflow["jobs"]["loadtest"]["env"];
    let rules = env["RULES"].as_str().expect("RULES in the job's env");
    let secret = env["AUTH_SECRET"].as_str().unwrap();
    let vars = [("AUTH_SECRET", secret), ("RULES", rules)];

    let run = step(&steps, "Load test")["run"].as_str().unwrap();
    let args = command_line(run, "./target/release/loadgen", &vars);
    let config = Config::try_parse_from(&args).expect("the load test's flags parse");
    config.validate().expect("the load test's flags are valid");
    assert!(config.command.is_none());
    assert!(config.report_json.is_some() && config.report_junit.is_some());
    assert!(config.gate_fanout_p99_ms.is_some());

    // The baseline reaches the load test through the environment, rules with it.
    let fetch = step(&steps, "Fetch the baseline (the last passing run on main)")["run"]
        .as_str()
        .unwrap();
    for flag in ["baseline", "max-regression"] {
        let var = env_of(flag);
        assert!(
            fetch.contains(&format!("echo \"{var}=")),
            "`{var}` not set by: {fetch}"
        );
    }
    let with_baseline = Config::try_parse_from(args.iter().cloned().chain([
        "--baseline".into(),
        "b.json".into(),
        "--max-regression".into(),
        rules.into(),
    ]))
    .unwrap();
    with_baseline.validate().expect("the rules parse");

    let compare = step(&steps, "Compare with the baseline")["run"]
        .as_str()
        .unwrap();
    let baseline_var = env_of("baseline");
    let args = command_line(
        compare,
        "./target/release/loadgen compare",
        &[(baseline_var.as_str(), "baseline/report.json"), vars[1]],
    );
    let config = Config::try_parse_from(&args).expect("the compare flags parse");
    let Some(Command::Compare(compare)) = config.command else {
        panic!("not a compare command: {args:?}");
    };
    booking_loadgen::report::compare::parse_rules(&compare.max_regression).unwrap();

    // The artifact a later run downloads is the one a passing run on main uploads.
    let keep = step(&steps, "Keep this run as the next baseline");
    let name = keep["with"]["name"].as_str().unwrap();
    assert!(fetch.contains(&format!("--name {name}")), "{fetch}");
    assert_eq!(keep["with"]["path"].as_str(), Some("reports/report.json"));
}
