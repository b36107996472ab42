//! The dashboards, rules and compose file held to the truth: every metric they name exists on
//! a live `/metrics`; a real Prometheus (Debian's `prometheus`, required in CI) scrapes a real
//! short load run and returns data for every dashboard query and recording rule; `promtool`
//! accepts the config and rules; the compose commands are ones the binaries accept.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use serde_json::Value;

use crate::config;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `expr` of the dashboards, with the panel title, Grafana variables filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map.get("title").and_then(Value::as_str).unwrap_or(title);
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((title.to_string(), expr.to_string()));
                }
                map.values().for_each(|v| walk(v, title, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, title, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for file in ["realtime-server.json", "load-test.json"] {
        let text = std::fs::read_to_string(repo().join("dashboards").join(file)).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        let panels = dashboard["panels"].clone();
        walk(&panels, file, &mut out);
    }
    out.into_iter()
        .map(|(title, expr)| {
            let expr = expr
                .replace("$__rate_interval", "30s")
                .replace("$__interval", "5s")
                .replace("$job", ".+")
                .replace("$instance", ".+");
            (title, expr)
        })
        .collect()
}

/// (record name, expr) of the recording rules, and the alert exprs.
fn rules() -> (Vec<(String, String)>, Vec<String>) {
    let load = |file: &str| -> serde_yaml::Value {
        serde_yaml::from_str(
            &std::fs::read_to_string(repo().join("deploy/rules").join(file)).unwrap(),
        )
        .unwrap()
    };
    let rules_of = |doc: &serde_yaml::Value| -> Vec<serde_yaml::Value> {
        doc["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
            .collect()
    };
    let recording = rules_of(&load("recording.yml"))
        .iter()
        .map(|r| {
            (
                r["record"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let alerts = rules_of(&load("alerts.yml"))
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_string())
        .collect();
    (recording, alerts)
}

/// Metric names a PromQL expression reads (ours only: server, HTTP, loadgen).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        let is_ours = ["socketio_", "booking_", "http_", "loadgen_"]
            .iter()
            .any(|p| word.starts_with(p));
        if is_ours && !word.contains(':') {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(&word);
            names.push(base.to_string());
        }
        word.clear();
    }
    names
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus_installed() -> bool {
    let found = Command::new("prometheus").arg("--version").output().is_ok()
        && Command::new("promtool").arg("--version").output().is_ok();
    testkit::present_or_skip(
        found,
        "needs prometheus and promtool (Debian's prometheus package)",
    )
}

fn write_prometheus_config(dir: &Path, server: &str, loadgen: &str) -> PathBuf {
    let rules = repo().join("deploy/rules");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n  - {}\n\
         scrape_configs:\n  - job_name: booking-server\n    static_configs:\n      - targets: ['{server}']\n\
         \x20 - job_name: loadgen\n    static_configs:\n      - targets: ['{loadgen}']\n",
        rules.join("recording.yml").display(),
        rules.join("alerts.yml").display(),
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Result<usize, String> {
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let res = http
        .get(format!("{prometheus}/api/v1/query?query={encoded}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("{body}"));
    }
    Ok(body["data"]["result"].as_array().map_or(0, Vec::len))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_returns_data_for_every_panel_and_recording_rule() {
    if !prometheus_installed() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("loadgen-prom-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let promtool = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(["recording.yml", "alerts.yml"].map(|f| repo().join("deploy/rules").join(f)))
        .output()
        .unwrap();
    assert!(
        promtool.status.success(),
        "{}",
        String::from_utf8_lossy(&promtool.stdout)
    );
    let deploy_config = Command::new("promtool")
        .args(["check", "config"])
        .arg(repo().join("deploy/prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        deploy_config.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deploy_config.stdout),
        String::from_utf8_lossy(&deploy_config.stderr)
    );

    // A real server (with fault injection on, so its fault counters exist) and a loadgen
    // run serving its own metrics.
    let mut server = booking_server::ServerConfig::defaults_for("sqlite::memory:");
    server.auth_secret = Some("prom-secret-at-least-thirty-two-bytes".into());
    server.inject_faults = Some("delay=1ms".parse().unwrap());
    let state = booking_server::AppState::new(server).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(booking_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let loadgen_addr = format!("127.0.0.1:{}", free_port());
    let prom_config = write_prometheus_config(&dir, &server_addr, &loadgen_addr);
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&prom_config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let prom_port = free_port();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let host = format!("http://{server_addr}");
    let args = [
        "--host",
        &host,
        "--auth-secret",
        "prom-secret-at-least-thirty-two-bytes",
        "--tabs",
        "30",
        "--duration",
        "20s",
        "--seed",
        "41",
        "--metrics-addr",
        &loadgen_addr,
        "--churn",
        "1",
        "--metrics-linger",
        "25s",
    ];
    let run = tokio::spawn(booking_loadgen::run(config(&args)));

    let http = reqwest::Client::new();
    let prometheus = format!("http://127.0.0.1:{prom_port}");
    let (recording, alerts) = rules();
    let mut wanted: Vec<(String, String)> = dashboard_queries();
    wanted.extend(
        recording
            .iter()
            .map(|(name, _)| (format!("recording rule {name}"), name.clone())),
    );
    // Give Prometheus 15 s of scrapes, then ask until every query has data or time is up;
    // the loadgen keeps serving its metrics (--metrics-linger) while it is asked.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let scrape = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let server_metrics = scrape(format!("{host}/metrics")).await;
    let loadgen_metrics = scrape(format!("http://{loadgen_addr}/metrics")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut missing = wanted.clone();
    while !missing.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for (title, expr) in missing {
            match query(&http, &prometheus, &expr).await {
                Ok(n) if n > 0 => {}
                Ok(_) => still.push((title, expr)),
                Err(e) => panic!("`{title}`: Prometheus refused `{expr}`: {e}"),
            }
        }
        missing = still;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for expr in &alerts {
        query(&http, &prometheus, expr)
            .await
            .unwrap_or_else(|e| panic!("alert `{expr}`: {e}"));
    }
    let outcome = run.await.unwrap().expect("the run happens");
    assert!(
        missing.is_empty(),
        "no data in Prometheus for: {missing:#?}"
    );
    // Every name the dashboards and rules read is on a live /metrics.
    let mut exprs: Vec<&str> = wanted.iter().map(|(_, e)| e.as_str()).collect();
    exprs.extend(recording.iter().map(|(_, e)| e.as_str()));
    exprs.extend(alerts.iter().map(String::as_str));
    for name in exprs.iter().flat_map(|e| metric_names(e)) {
        let typed = format!("# TYPE {name} ");
        assert!(
            server_metrics.contains(&typed) || loadgen_metrics.contains(&typed),
            "`{name}` is used by a dashboard or rule but no /metrics has it"
        );
    }
    assert!(outcome.passed(), "{}", outcome.report.summary());
    eprintln!(
        "Prometheus answered {} panel queries and recording rules",
        wanted.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        "sum by (le) (rate(booking_emission_latency_seconds_bucket{job=~\".+\"}[1m])) / job:loadgen_x:p99",
    );
    assert_eq!(names, ["booking_emission_latency_seconds"]);
}

/// How docker-compose.yml takes the token secret: required, with what to do when it is unset.
const COMPOSE_SECRET: &str =
    "${AUTH_SECRET:?set AUTH_SECRET to at least 32 random bytes (openssl rand -hex 32)}";

#[test]
fn the_compose_stack_runs_commands_the_binaries_accept() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    compose.apply_merge().expect("merge keys resolve");
    let services = compose["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "redis",
        "server-1",
        "server-2",
        "prometheus",
        "otel-collector",
        "jaeger",
        "grafana",
        "loadgen",
    ] {
        assert!(services.contains_key(name), "service {name}");
    }
    // No secret is shipped: the servers and the loadgen take AUTH_SECRET, which must be set.
    assert_eq!(
        text.matches(COMPOSE_SECRET).count(),
        2,
        "the servers' and the loadgen's"
    );
    assert!(!text.contains("dev-secret"));
    // The loadgen's command parses as loadgen flags (with a secret filled in).
    let command: Vec<String> = compose["services"]["loadgen"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap()
                .replace(COMPOSE_SECRET, "a-secret-of-at-least-thirty-two-bytes")
        })
        .collect();
    let mut argv = vec!["loadgen".to_string()];
    argv.extend(command);
    let parsed = booking_loadgen::config::Config::try_parse_from(&argv)
        .expect("compose loadgen flags parse");
    parsed.validate().expect("compose loadgen flags are valid");
    assert!(
        parsed.metrics_addr.is_some(),
        "Prometheus scrapes the loadgen"
    );
    // Every server variable is one the server reads.
    let server = booking_server::config::Cli::command();
    let mut known: Vec<String> = server
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().to_string())
        .collect();
    // Read by the OpenTelemetry exporter (telemetry::otel), not by clap.
    known.extend(["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"].map(String::from));
    for service in ["server-1", "server-2"] {
        let env = compose["services"][service]["environment"]
            .as_mapping()
            .expect("server environment");
        for key in env.keys() {
            let key = key.as_str().unwrap();
            assert!(
                known.iter().any(|k| k == key),
                "{service} sets {key}, which the server does not read"
            );
        }
    }
    // The images build: the Dockerfile copies every workspace member (or the workspace
    // manifest does not load) and has the stage each service builds.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("workspace members");
    for member in members.trim_matches(['[', ']']).split(',') {
        let member = member.trim().trim_matches('"');
        assert!(
            dockerfile.contains(&format!("COPY {member} ./{member}")),
            "the Dockerfile does not copy workspace member {member}"
        );
    }
    for service in ["server-1", "server-2", "loadgen"] {
        let target = compose["services"][service]["build"]["target"]
            .as_str()
            .unwrap_or_else(|| panic!("{service} builds a target of the Dockerfile"));
        assert!(
            dockerfile.contains(&format!(" AS {target}\n")),
            "{service} builds stage {target}, which the Dockerfile lacks"
        );
    }
    // Prometheus scrapes the services compose defines, and loads the rules the tests check.
    let prom: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let targets: Vec<String> = prom["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|j| {
            j["static_configs"][0]["targets"]
                .as_sequence()
                .unwrap()
                .clone()
        })
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    for target in &targets {
        let host = target.split(':').next().unwrap();
        assert!(
            services.contains_key(host),
            "Prometheus scrapes {target}, not a compose service"
        );
    }
    // The collector forwards the OTLP it receives to the Jaeger service.
    let collector = std::fs::read_to_string(repo().join("deploy/otel-collector.yml")).unwrap();
    let collector: serde_yaml::Value = serde_yaml::from_str(&collector).unwrap();
    let jaeger = collector["exporters"]["otlp/jaeger"]["endpoint"]
        .as_str()
        .unwrap();
    assert!(
        services.contains_key(jaeger.split(':').next().unwrap()),
        "{jaeger}"
    );
    assert_eq!(
        collector["service"]["pipelines"]["traces"]["exporters"][0],
        "otlp/jaeger"
    );
    for file in [
        "dashboards/provisioning/datasources/prometheus.yml",
        "dashboards/provisioning/dashboards/dashboards.yml",
    ] {
        let _: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(repo().join(file)).unwrap()).unwrap();
    }
}
