//! Command line of `loadgen`: every flag also from the environment, defaults that run a real
//! load test on a laptop with nothing installed (an embedded server on a free loopback port).

use std::path::PathBuf;
use std::time::Duration;

use booking_server::realtime::faults::FaultPlan;
use clap::Parser;

use crate::judge::fault::{FaultFlags, Scenario};

/// The Engine.IO transport of each tab.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// A WebSocket from the start (no polling handshake first).
    #[default]
    Websocket,
    /// HTTP long-polling only.
    Polling,
}

/// The Socket.IO client every tab speaks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TabClientKind {
    /// The loadgen's own (`sio`): WebSocket only, and cheap per receipt.
    Own,
    /// rust_socketio, the reference client: WebSocket and long-polling.
    #[value(name = "rust_socketio", alias = "rust-socketio")]
    RustSocketio,
}

/// Simulated browser tabs that book boardrooms over REST and verify, for every Socket.IO
/// subscriber, that each booking event it was owed arrived: none lost, duplicated, leaked or
/// out of order, and how fast.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Config {
    /// Without a subcommand, `loadgen` runs a load test.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Booking server base URL; repeat (or comma-separate) to spread tabs over several servers.
    /// None: an embedded server (SQLite in memory) on a free loopback port.
    #[arg(long = "host", env = "LOADGEN_HOST", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// The servers' HS256 secret, to mint one user per tab (and an admin to create boardrooms).
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// An admin bearer token to use for every tab when the secret is not known.
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Verify the Socket.IO app this app file describes (its target, rooms, publishers and
    /// expected events) instead of the booking workload, with generator-side truth: what is
    /// owed is what the generator published. `--host` overrides the file's URL.
    #[arg(long, env = "LOADGEN_APP")]
    pub app: Option<PathBuf>,
    /// The Socket.IO namespace every tab connects to (default `/`; with --app, the file's).
    #[arg(long, env = "LOADGEN_NAMESPACE")]
    pub namespace: Option<String>,
    /// The Engine.IO transport of every tab (default websocket; with --app, the file's).
    #[arg(long, env = "LOADGEN_TRANSPORT", value_enum)]
    pub transport: Option<Transport>,
    /// The tabs' Socket.IO client: `own` (the loadgen's, WebSocket only) or `rust_socketio`
    /// (the reference client). Default: own over a WebSocket, rust_socketio for long-polling.
    #[arg(long, env = "LOADGEN_CLIENT", value_enum)]
    pub client: Option<TabClientKind>,
    /// A header every tab's handshake carries, `Name: value`; repeatable (with --app, over
    /// the file's of the same name).
    #[arg(long = "header", env = "LOADGEN_HEADER", value_delimiter = '\n', value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// A query parameter of every tab's handshake, `name=value`; repeatable (with --app, over
    /// the file's of the same name).
    #[arg(long = "query", env = "LOADGEN_QUERY", value_delimiter = '\n', value_parser = parse_query)]
    pub query: Vec<(String, String)>,
    /// Trust this PEM CA certificate (as well as the system's) for https:// and wss:// servers:
    /// the tabs' Socket.IO connections and the loadgen's own HTTP requests.
    #[arg(long, env = "LOADGEN_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate (self-signed, another name): for test servers only.
    #[arg(long, env = "LOADGEN_INSECURE")]
    pub insecure: bool,
    /// Simulated browser tabs (one Socket.IO connection and one task each; goose drives only
    /// the REST actors).
    #[arg(long, env = "LOADGEN_TABS", default_value_t = 100)]
    pub tabs: usize,
    /// Real headless Chromium pages of the web app, opened among the protocol tabs and judged
    /// by the same rules from what each page rendered (needs Chromium; see `--chromium`).
    #[arg(long, env = "LOADGEN_BROWSER_TABS", default_value_t = 0)]
    pub browser_tabs: usize,
    /// The Chromium (or Chrome) executable for `--browser-tabs`. None: `chromium`,
    /// `chromium-browser`, `google-chrome` or `google-chrome-stable` on the PATH.
    #[arg(long, env = "CHROMIUM")]
    pub chromium: Option<PathBuf>,
    /// How long REST actions run once every tab has joined its rooms (e.g. 30s, 2m).
    #[arg(long, env = "LOADGEN_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Run one share of the tabs: `i/n` (0-based) takes every n-th tab of the `--tabs` of the
    /// whole run, from the i-th, with its users and actors. n generators given the same seed
    /// and flags and shards 0/n to n-1/n run the plan once; `loadgen merge` judges them as one.
    #[arg(long, env = "LOADGEN_SHARD", default_value = "0/1")]
    pub shard: crate::plan::Shard,
    /// Start actions at this wall-clock time, in Unix seconds (once the tabs have joined, and
    /// not before): the shards of a run, given the same time, act together.
    #[arg(long, env = "LOADGEN_ACTIONS_AT")]
    pub actions_at: Option<u64>,
    /// Shape the run in stages instead of --tabs/--duration/--ramp-up, e.g.
    /// `30s:500,2m:5000,30s:5000@50,1m:0`: each stage ramps the tab count linearly to its
    /// target over its duration, and with `@N` the action rate too (from --actions-per-sec;
    /// without, the rate stays). Actions run from the start; closing tabs leave their rooms.
    /// The report has per-stage figures.
    #[arg(
        long,
        env = "LOADGEN_STAGES",
        conflicts_with_all = ["tabs", "duration", "ramp_up"]
    )]
    pub stages: Option<crate::plan::stages::Stages>,
    /// Judge the latency and throughput gates (`--gate-fanout-p99-ms`, `--gate-action-p99-ms`,
    /// `--gate-min-deliveries-per-sec`) on this stage of --stages (1-based: the steady state,
    /// say) instead of the whole run, and the --max-regression rules on this stage of both
    /// runs for the figures that have per-stage values. Delivery gates always judge the whole
    /// run.
    #[arg(long, env = "LOADGEN_GATE_STAGE")]
    pub gate_stage: Option<usize>,
    /// Tabs started per second.
    #[arg(long, env = "LOADGEN_RAMP_UP", default_value_t = 100.0)]
    pub ramp_up: f64,
    /// Boardrooms to create and spread calendar tabs over (popularity is skewed).
    #[arg(long, env = "LOADGEN_BOARDROOMS", default_value_t = 10)]
    pub boardrooms: usize,
    /// REST actions per second, scheduled as an open model: a slow server cannot hide latency.
    #[arg(long, env = "LOADGEN_ACTIONS_PER_SEC", default_value_t = 20.0)]
    pub actions_per_sec: f64,
    /// Share of tabs that also act (create, update, cancel, delete); at most two acting tabs
    /// per action per second.
    #[arg(long, env = "LOADGEN_ACTOR_SHARE", default_value_t = 0.1)]
    pub actor_share: f64,
    /// Share of tabs showing the dashboard (room `bookings`); the rest show one boardroom.
    #[arg(long, env = "LOADGEN_DASHBOARD_SHARE", default_value_t = 0.2)]
    pub dashboard_share: f64,
    /// Share of creates that deliberately overlap an existing booking and must get 409.
    #[arg(long, env = "LOADGEN_CONFLICT_SHARE", default_value_t = 0.05)]
    pub conflict_share: f64,
    /// Seed of every random choice (rooms, actions); a random one is picked and reported if unset.
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,
    /// Wait after the last action before the verdict, for deliveries in flight.
    #[arg(long, env = "LOADGEN_SETTLE", default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Booking runs: a tab's receipts of events committed longer ago than this are judged
    /// while the run goes and their bits dropped, so a tab's ledger stays a window's worth on
    /// runs of any length; the verdict is the same. 0 keeps every bit to the end.
    #[arg(long, env = "LOADGEN_LEDGER_WINDOW", default_value = "30s", value_parser = parse_duration)]
    pub ledger_window: Duration,
    /// Pause of each tab between its turns (reconnect checks, goose records).
    #[arg(long, env = "LOADGEN_THINK_TIME", default_value = "1s", value_parser = parse_duration)]
    pub think_time: Duration,
    /// Write the JSON report here (schema: loadgen/report.schema.json).
    #[arg(long, env = "LOADGEN_REPORT_JSON")]
    pub report_json: Option<PathBuf>,
    /// goose report file(s): .html, .htm, .md or .json; repeatable.
    #[arg(
        long = "report-file",
        env = "LOADGEN_REPORT_FILE",
        value_delimiter = ','
    )]
    pub report_file: Vec<String>,
    /// Write one self-contained HTML page here: verdict, gates, plots over time, breakdowns.
    #[arg(long, env = "LOADGEN_REPORT_HTML")]
    pub report_html: Option<PathBuf>,
    /// Write the gates as JUnit XML here (one test case per gate), for CI systems to show.
    #[arg(long, env = "LOADGEN_REPORT_JUNIT")]
    pub report_junit: Option<PathBuf>,
    /// A JSON report of an earlier run of the same workload: each `--max-regression` rule
    /// becomes a gate against it.
    #[arg(long, env = "LOADGEN_BASELINE")]
    pub baseline: Option<PathBuf>,
    /// Regression allowed against `--baseline`, per figure, e.g.
    /// `fanout_p99=20%,action_p99=20%,deliveries_per_s=10%` (the default with --baseline).
    /// Figures: see `loadgen compare --help`.
    #[arg(long, env = "LOADGEN_MAX_REGRESSION")]
    pub max_regression: Option<String>,
    /// Compare with a `--baseline` of another workload anyway (the differences are printed).
    #[arg(long, env = "LOADGEN_ALLOW_DIFFERENT_WORKLOAD")]
    pub allow_different_workload: bool,
    /// goose's own baseline: an earlier goose JSON report (`--report-file x.json`) its
    /// request tables are compared with.
    #[arg(long, env = "LOADGEN_GOOSE_BASELINE_FILE")]
    pub goose_baseline_file: Option<String>,
    /// goose pass/fail rule(s) over its requests, e.g. "p95<500ms"; repeatable.
    #[arg(long = "threshold")]
    pub thresholds: Vec<String>,
    /// Gate: fan-out latency p99 (server emit -> tab receive) at most this, in ms.
    #[arg(long, env = "LOADGEN_GATE_FANOUT_P99_MS")]
    pub gate_fanout_p99_ms: Option<f64>,
    /// Gate: action latency p99 (REST request sent -> last owed tab received) at most this, in ms.
    #[arg(long, env = "LOADGEN_GATE_ACTION_P99_MS")]
    pub gate_action_p99_ms: Option<f64>,
    /// Gate: at least this many verified deliveries per second.
    #[arg(long, env = "LOADGEN_GATE_MIN_DELIVERIES_PER_SEC")]
    pub gate_min_deliveries_per_sec: Option<f64>,
    /// Gate: seconds the generator itself may be saturated (see `--saturation-*`). Unset: a
    /// saturated generator is reported and its latency gates marked unreliable, not failed.
    #[arg(long, env = "LOADGEN_GATE_SATURATED_SECS")]
    pub gate_saturated_secs: Option<u64>,
    /// A second counts as saturated when the generator used at least this share of the cores
    /// it may run on (its own CPU; with the embedded server, the server's too).
    #[arg(long, env = "LOADGEN_SATURATION_CPU", default_value_t = 0.9)]
    pub saturation_cpu: f64,
    /// ... or when a 10 ms timer on its runtime fired this many ms late.
    #[arg(long, env = "LOADGEN_SATURATION_LAG_MS", default_value_t = 50.0)]
    pub saturation_lag_ms: f64,
    /// ... or when its sockets held this many KiB received and not yet read.
    #[arg(long, env = "LOADGEN_SATURATION_BACKLOG_KIB", default_value_t = 4096)]
    pub saturation_backlog_kib: u64,
    /// Gate: lost deliveries allowed.
    #[arg(long, env = "LOADGEN_ALLOW_LOST", default_value_t = 0)]
    pub allow_lost: u64,
    /// Gate: duplicated deliveries allowed.
    #[arg(long, env = "LOADGEN_ALLOW_DUPLICATED", default_value_t = 0)]
    pub allow_duplicated: u64,
    /// Gate: unexpected deliveries (a room the tab never joined) allowed.
    #[arg(long, env = "LOADGEN_ALLOW_UNEXPECTED", default_value_t = 0)]
    pub allow_unexpected: u64,
    /// Gate: out-of-order deliveries allowed.
    #[arg(long, env = "LOADGEN_ALLOW_OUT_OF_ORDER", default_value_t = 0)]
    pub allow_out_of_order: u64,
    /// Gate: failed REST actions (other than the deliberate 409s) allowed.
    #[arg(long, env = "LOADGEN_ALLOW_ACTION_ERRORS", default_value_t = 0)]
    pub allow_action_errors: u64,
    /// Tabs dropped and reconnected per second (each replays what it missed and rejoins).
    #[arg(long, env = "LOADGEN_CHURN")]
    pub churn: Option<f64>,
    /// Drop every tab at once this long after actions start (e.g. 20s).
    #[arg(long, env = "LOADGEN_STORM_AT", value_parser = parse_duration)]
    pub storm_at: Option<Duration>,
    /// Fault scenario to run and measure: none, redis-restart, redis-pause, node-kill or
    /// db-restart. Needs --fault-cmd and --heal-cmd; the name decides what the report measures.
    #[arg(long, env = "LOADGEN_SCENARIO", value_enum, default_value_t = Scenario::None)]
    pub scenario: Scenario,
    /// When the fault starts, counted from the start of actions (default: a third of --duration).
    #[arg(long, env = "LOADGEN_FAULT_AT", value_parser = parse_duration)]
    pub fault_at: Option<Duration>,
    /// How long after --fault-cmd started --heal-cmd runs.
    #[arg(long, env = "LOADGEN_FAULT_FOR", default_value = "5s", value_parser = parse_duration)]
    pub fault_for: Duration,
    /// Shell command (run with `sh -c`) that starts the fault, e.g. `docker compose kill server-2`.
    #[arg(long, env = "LOADGEN_FAULT_CMD")]
    pub fault_cmd: Option<String>,
    /// Shell command (run with `sh -c`) that heals the fault, e.g. `docker compose start server-2`.
    #[arg(long, env = "LOADGEN_HEAL_CMD")]
    pub heal_cmd: Option<String>,
    /// TEST ONLY, embedded server: inject delivery faults, e.g. `drop=0.02,duplicate=0.01`.
    #[arg(long, env = "LOADGEN_INJECT_FAULTS")]
    pub inject_faults: Option<FaultPlan>,
    /// Print a progress line this often (0s: never).
    #[arg(long, env = "LOADGEN_PROGRESS_EVERY", default_value = "5s", value_parser = parse_duration)]
    pub progress_every: Duration,
    /// Received events per tab turn also recorded in goose (all are verified regardless).
    #[arg(long, env = "LOADGEN_GOOSE_SAMPLES", default_value_t = 4)]
    pub goose_samples_per_turn: usize,
    /// Serve the loadgen's own Prometheus metrics on this address, e.g. 127.0.0.1:9100.
    #[arg(long, env = "LOADGEN_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving metrics this long after the verdict, so a scrape sees the final counts.
    #[arg(long, env = "LOADGEN_METRICS_LINGER", default_value = "0s", value_parser = parse_duration)]
    pub metrics_linger: Duration,
    /// With traces on (OTEL_EXPORTER_OTLP_ENDPOINT), one live receipt in this many becomes a
    /// `socketio.receive` span under the server's emission span.
    #[arg(long, env = "LOADGEN_TRACE_EVERY", default_value_t = 100)]
    pub trace_every: u64,
    /// Also print goose's own request tables at the end.
    #[arg(long, env = "LOADGEN_GOOSE_METRICS")]
    pub goose_metrics: bool,
    /// Log filter for the loadgen and the embedded server.
    #[arg(long, env = "LOG_LEVEL", default_value = "warn")]
    pub log_level: String,
}

/// How the loadgen's clients verify TLS servers: `--ca-cert` read once, `--insecure`.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
}

impl Tls {
    /// The TLS connector of the tabs' Socket.IO clients: none without `--ca-cert` or
    /// `--insecure` (the client's own, with the system's roots).
    pub fn connector(&self) -> Result<Option<native_tls::TlsConnector>, String> {
        if self.ca_pem.is_none() && !self.insecure {
            return Ok(None);
        }
        let mut b = native_tls::TlsConnector::builder();
        if let Some(pem) = &self.ca_pem {
            b.add_root_certificate(
                native_tls::Certificate::from_pem(pem).map_err(|e| format!("--ca-cert: {e}"))?,
            );
        }
        b.danger_accept_invalid_certs(self.insecure)
            .danger_accept_invalid_hostnames(self.insecure);
        b.build().map(Some).map_err(|e| format!("TLS: {e}"))
    }

    /// `builder` trusting what this trusts.
    pub fn http(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let mut builder = builder.danger_accept_invalid_certs(self.insecure);
        if let Some(pem) = &self.ca_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(pem).map_err(|e| format!("--ca-cert: {e}"))?,
            );
        }
        Ok(builder)
    }
}

impl Config {
    /// `--ca-cert` and `--insecure`, the certificate read and checked.
    pub fn tls(&self) -> Result<Tls, String> {
        let ca_pem = match &self.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
                native_tls::Certificate::from_pem(&pem).map_err(|e| {
                    format!("--ca-cert {}: not a PEM certificate: {e}", path.display())
                })?;
                Some(pem)
            }
            None => None,
        };
        Ok(Tls {
            ca_pem,
            insecure: self.insecure,
        })
    }

    /// How long from now until `--actions-at` (zero when unset or past).
    pub fn until_actions_at(&self) -> Duration {
        self.actions_at.map_or(Duration::ZERO, |at| {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Duration::from_secs(at).saturating_sub(wall)
        })
    }

    /// Acting tabs at most: two per action per second (at the highest rate of --stages), so
    /// each acts often enough to update, cancel and delete what it booked.
    pub fn max_actors(&self) -> usize {
        let rate = self
            .stages
            .as_ref()
            .map_or(self.actions_per_sec, |s| s.peak_rate(self.actions_per_sec));
        ((rate * 2.0).ceil() as usize).max(1)
    }

    /// With --stages: the tab count is their peak and the action window their total.
    pub fn apply_stages(&mut self) {
        if let Some(stages) = &self.stages {
            self.tabs = stages.peak_tabs();
            self.duration = stages.total();
        }
    }

    /// The tabs' client for `transport` (the transport in effect: the flag's, or an app
    /// file's): `--client`, or by default the loadgen's own over a WebSocket and
    /// rust_socketio for long-polling, which the own client does not speak.
    pub fn tab_client(&self, transport: Transport) -> Result<TabClientKind, String> {
        match (self.client, transport) {
            (Some(TabClientKind::Own), Transport::Polling) => Err(
                "--client own speaks WebSocket only: long-polling needs --client rust_socketio (or no --client)"
                    .into(),
            ),
            (Some(client), _) => Ok(client),
            (None, Transport::Websocket) => Ok(TabClientKind::Own),
            (None, Transport::Polling) => Ok(TabClientKind::RustSocketio),
        }
    }

    /// Checks what clap cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        self.tab_client(self.transport.unwrap_or_default())?;
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("--{name} must be between 0 and 1"))
            }
        };
        share("actor-share", self.actor_share)?;
        share("dashboard-share", self.dashboard_share)?;
        share("conflict-share", self.conflict_share)?;
        share("saturation-cpu", self.saturation_cpu)?;
        if self.saturation_lag_ms.is_nan() || self.saturation_lag_ms < 0.0 {
            return Err("--saturation-lag-ms must not be negative".into());
        }
        if self.tabs == 0 {
            return Err("--tabs must be at least 1".into());
        }
        if self.shard.count > self.tabs {
            return Err(format!(
                "--shard {}: more shards than --tabs {} (each shard needs a tab)",
                self.shard, self.tabs
            ));
        }
        if self.shard.count > 1 && self.browser_tabs > 0 {
            return Err(
                "--browser-tabs with --shard: open browser tabs from one unsharded generator"
                    .into(),
            );
        }
        if let Some(n) = self.gate_stage {
            let stages = self.stages.as_ref().map_or(0, |s| s.0.len());
            if stages == 0 {
                return Err("--gate-stage needs --stages".into());
            }
            if n == 0 || n > stages {
                return Err(format!(
                    "--gate-stage {n}: the stages are numbered 1 to {stages}"
                ));
            }
        }
        if self.stages.is_some() {
            let with = [
                ("--churn", self.churn.is_some()),
                ("--storm-at", self.storm_at.is_some()),
                ("--scenario", self.scenario != Scenario::None),
                ("--browser-tabs", self.browser_tabs > 0),
            ];
            if let Some((flag, _)) = with.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "--stages with {flag}: a staged run opens and closes its tabs itself; run {flag} without --stages"
                ));
            }
        }
        if let Some(ns) = &self.namespace
            && !ns.starts_with('/')
        {
            return Err(format!("--namespace `{ns}` must start with `/`"));
        }
        if self.boardrooms == 0 {
            return Err("--boardrooms must be at least 1".into());
        }
        if self.ramp_up <= 0.0 {
            return Err("--ramp-up must be above 0 tabs per second".into());
        }
        if self.actions_per_sec < 0.0 {
            return Err("--actions-per-sec must not be negative".into());
        }
        if self.churn.is_some_and(|c| c <= 0.0) {
            return Err("--churn must be above 0 tabs per second".into());
        }
        if self.app.is_some() {
            return self.validate_app();
        }
        if !self.hosts.is_empty() && self.auth_secret.is_none() && self.token.is_none() {
            return Err("a remote --host needs --auth-secret or --token".into());
        }
        if !self.hosts.is_empty() && self.inject_faults.is_some() {
            return Err("--inject-faults applies to the embedded server only: start a remote server with --inject-faults itself".into());
        }
        if self.max_regression.is_some() && self.baseline.is_none() {
            return Err("--max-regression needs --baseline (the run to compare with)".into());
        }
        self.fault_flags().validate()?;
        for host in &self.hosts {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                return Err(format!(
                    "--host `{host}` must be an http:// or https:// URL"
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// `--app`: the booking workload's own flags do not apply, and what an app run cannot do
    /// yet is refused by name.
    fn validate_app(&self) -> Result<(), String> {
        let not_yet = [
            ("--browser-tabs", self.browser_tabs > 0),
            ("--scenario", self.scenario != Scenario::None),
            ("--inject-faults", self.inject_faults.is_some()),
            ("--auth-secret", self.auth_secret.is_some()),
            ("--token", self.token.is_some()),
            ("--report-file", !self.report_file.is_empty()),
            ("--threshold", !self.thresholds.is_empty()),
            ("--goose-baseline-file", self.goose_baseline_file.is_some()),
            ("--goose-metrics", self.goose_metrics),
        ];
        if let Some((flag, _)) = not_yet.iter().find(|(_, set)| *set) {
            return Err(format!(
                "--app with {flag}: an app run does not take {flag} yet (its tabs are not goose users, and auth comes from the app file's `auth`)"
            ));
        }
        if self.hosts.len() > 1 {
            return Err("--app takes one --host".into());
        }
        if self.shard.count > 1 && self.seed.is_none() {
            return Err(
                "--app with --shard needs --seed: the shards of a run plan it with the same seed"
                    .into(),
            );
        }
        for host in &self.hosts {
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                return Err(format!(
                    "--host `{host}` must be an http:// or https:// URL"
                ));
            }
        }
        if self.actions_per_sec <= 0.0 {
            return Err("--actions-per-sec must be above 0 publishes per second".into());
        }
        if self.max_regression.is_some() && self.baseline.is_none() {
            return Err("--max-regression needs --baseline (the run to compare with)".into());
        }
        Ok(())
    }

    /// The fault scenario's flags, together.
    pub fn fault_flags(&self) -> FaultFlags<'_> {
        FaultFlags {
            scenario: self.scenario,
            fault_at: self.fault_at,
            fault_for: self.fault_for,
            fault_cmd: self.fault_cmd.as_deref(),
            heal_cmd: self.heal_cmd.as_deref(),
            duration: self.duration,
        }
    }
}
pub use booking_server::config::parse_duration;

/// `Name: value`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not `Name: value`"))?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("`{name}` is not a header name"));
    }
    let value = value.trim();
    if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return Err(format!("the value of `{name}` has a control character"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `name=value`.
fn parse_query(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not `name=value`"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has no name"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// What `loadgen` does besides running a load test.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Compares JSON reports side by side with the first (the baseline); exits 1 when a
    /// `--max-regression` rule fails, 2 when the runs cannot be compared.
    Compare(CompareArgs),
    /// Judges the reports of the n shards of one run (`--shard i/n`) as one run: adds the
    /// counts, merges the latency histograms, checks the shards cover the plan once, and
    /// judges the gates again. Exits 0 (pass), 1 (a gate failed), 2 (cannot merge).
    Merge(MergeArgs),
}

/// The regression rules `loadgen compare` and `--baseline` judge by when none are given.
pub const DEFAULT_RULES: &str = "fanout_p99=20%,action_p99=20%,deliveries_per_s=10%";

/// `loadgen compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// JSON reports (`--report-json`); the first is the baseline.
    #[arg(required = true, num_args = 2..)]
    pub reports: Vec<PathBuf>,
    /// Regression allowed per figure, e.g. `fanout_p99=20%,deliveries_per_s=10%`. Figures:
    /// deliveries_per_s, actions_per_s, fanout_p50, fanout_p95, fanout_p99, action_p50,
    /// action_p99, owed, lost, duplicated, unexpected, out_of_order, action_errors,
    /// generator_saturated_s, generator_cpu_us_per_delivery.
    #[arg(long, default_value = DEFAULT_RULES)]
    pub max_regression: String,
    /// Table format: text, or markdown for a pull-request comment.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Compare runs of different workloads anyway (the differences are printed).
    #[arg(long)]
    pub allow_different_workload: bool,
    /// Also write the comparison as one self-contained HTML page, the runs' plots overlaid.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// Read the figures that have per-stage values (deliveries/s, actions/s, fan-out and
    /// action percentiles, lost) within this stage of staged runs (1-based: the steady state,
    /// say), and judge their rules there; the other figures stay whole-run.
    #[arg(long)]
    pub stage: Option<usize>,
}

/// Output format of `loadgen compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
}

/// `loadgen merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The shards' JSON reports (`--report-json` of each `--shard i/n` generator).
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the merged report as one self-contained HTML page here.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// Write the merged gates as JUnit XML here.
    #[arg(long)]
    pub report_junit: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::{parse_header, parse_query};

    #[test]
    fn headers_and_query_pairs_are_parsed_or_refused_with_why() {
        assert_eq!(
            parse_header("X-Load-Test:  1 ").unwrap(),
            ("X-Load-Test".into(), "1".into())
        );
        assert!(
            parse_header("no colon")
                .unwrap_err()
                .contains("Name: value")
        );
        assert!(
            parse_header("bad name: 1")
                .unwrap_err()
                .contains("not a header name")
        );
        assert!(parse_header("X: a\u{7}b").unwrap_err().contains("control"));
        assert_eq!(parse_query("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_query("=x").unwrap_err().contains("no name"));
    }

    use super::*;

    #[test]
    fn bad_combinations_are_refused_with_the_flag_named() {
        let parse = |args: &[&str]| {
            let mut all = vec!["loadgen"];
            all.extend_from_slice(args);
            Config::try_parse_from(all).unwrap().validate()
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--tabs", "0"]).unwrap_err().contains("--tabs"));
        assert!(
            parse(&["--max-regression", "fanout_p99=10%"])
                .unwrap_err()
                .contains("needs --baseline")
        );
        assert!(
            parse(&["--actor-share", "2"])
                .unwrap_err()
                .contains("--actor-share")
        );
        assert!(
            parse(&["--host", "http://x:1"])
                .unwrap_err()
                .contains("--auth-secret")
        );
        assert!(
            parse(&["--host", "x:1", "--token", "t"])
                .unwrap_err()
                .contains("http://")
        );
        let faults = [
            "--host",
            "http://x:1",
            "--token",
            "t",
            "--inject-faults",
            "drop=0.1",
        ];
        assert!(parse(&faults).unwrap_err().contains("embedded"));
        let kill = ["--scenario", "node-kill", "--fault-cmd", "kill 1"];
        assert!(parse(&kill).unwrap_err().contains("--heal-cmd"));
        let kill = [&kill[..], &["--heal-cmd", "start 1", "--fault-at", "20s"]].concat();
        assert!(parse(&kill).is_ok());
        assert!(
            parse(&["--heal-cmd", "x"])
                .unwrap_err()
                .contains("--scenario")
        );
        let staged = ["--stages", "10s:50,20s:50@40,10s:0"];
        assert!(parse(&staged).is_ok());
        assert!(
            Config::try_parse_from(["loadgen", "--stages", "10s:5", "--tabs", "9"]).is_err(),
            "--stages sets the tab count"
        );
        assert!(
            Config::try_parse_from(["loadgen", "--stages", "10s:5,10s:2,10s:3"])
                .unwrap_err()
                .to_string()
                .contains("rises again")
        );
        let with = |extra: &[&str]| parse(&[&staged[..], extra].concat());
        assert!(with(&["--churn", "2"]).unwrap_err().contains("--churn"));
        assert!(with(&["--gate-stage", "2"]).is_ok());
        assert!(with(&["--gate-stage", "4"]).unwrap_err().contains("1 to 3"));
        assert!(
            parse(&["--gate-stage", "1"])
                .unwrap_err()
                .contains("needs --stages")
        );
        let mut config = Config::try_parse_from(["loadgen", staged[0], staged[1]]).unwrap();
        config.apply_stages();
        assert_eq!((config.tabs, config.duration.as_secs()), (50, 40));
        assert_eq!(
            config.max_actors(),
            80,
            "two per action per second at the peak"
        );
        assert_eq!(
            config.stages.as_ref().map(ToString::to_string).as_deref(),
            Some("10s:50,20s:50@40,10s:0")
        );
        let unknown = Config::try_parse_from(["loadgen", "--scenario", "meteor"]);
        assert!(unknown.is_err(), "scenario names are checked by clap");
    }

    #[test]
    fn compare_is_a_subcommand_with_the_default_rules() {
        let config = Config::try_parse_from(["loadgen", "compare", "a.json", "b.json"]).unwrap();
        let Some(Command::Compare(args)) = config.command else {
            panic!("no compare subcommand");
        };
        assert_eq!(args.reports.len(), 2);
        assert_eq!(args.max_regression, DEFAULT_RULES);
        assert!(Config::try_parse_from(["loadgen", "compare", "a.json"]).is_err());
        assert!(Config::try_parse_from(["loadgen", "--tabs", "5", "compare", "a", "b"]).is_err());
    }
}
