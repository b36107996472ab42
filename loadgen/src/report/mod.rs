//! The run's outcome: the JSON report (stable keys, schema in `report.schema.json`), the gates
//! that decide the exit code, and the summary a person reads in ten seconds.
//! `html`, `junit`, `stages` (per-stage rows) and `app` (an app run's figures) are its parts;
//! `compare` reads runs against a baseline (regression rules as gates), `merge` judges the
//! shards of one run as one.

pub mod app;
pub mod compare;
pub mod html;
pub mod junit;
pub mod merge;
pub mod stages;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::judge::fault::CommandRun;
use crate::judge::verify::{DeliveryCounts, OwedCounts};
use crate::record::latency::Percentiles;
use crate::record::saturation::GeneratorReport;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// "pass" when every gate passed, else "fail".
    pub verdict: String,
    pub tabs: u64,
    pub tabs_connected: u64,
    pub tabs_joined: u64,
    /// Seconds of the action window.
    pub duration_s: f64,
    pub seed: u64,
    /// What a fair comparison with another run needs: the workload, the loadgen's version,
    /// the machine's cores, the command line. Absent in reports of older loadgens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    pub hosts: Vec<String>,
    pub embedded_server: bool,
    pub actions: Actions,
    pub delivery: DeliveryCounts,
    pub latency_ms: LatencyReport,
    pub throughput: Throughput,
    pub gates: Vec<Gate>,
    pub by_event_type: BTreeMap<String, Breakdown>,
    pub by_room_size: BTreeMap<String, Breakdown>,
    /// Owed deliveries by path: "same-node" (committed on the node the tab was on), "cross-node"
    /// (through the servers' fan-out link), "unknown" (the server did not name its node).
    pub by_node: BTreeMap<String, OwedCounts>,
    /// Deliveries by kind of client: "protocol" (the generator's Socket.IO tabs, fan-out to
    /// receipt) and "browser" (real pages of the web app, `--browser-tabs`, fan-out to render).
    /// `delivery` above is their sum.
    pub by_client: BTreeMap<String, ClientRow>,
    /// Volatile events (not logged, never owed, no loss gate): `editing`.
    pub volatile: Volatile,
    pub reconnects: u64,
    /// Connections the server closed or lost (the loadgen did not close them); each reconnects.
    pub drops: u64,
    /// `resync` events received (a server's link to the others came back).
    pub resyncs: u64,
    pub events_replayed: u64,
    /// Events in the log during the run (all generators), and the `seq` range judged.
    pub events_logged: u64,
    pub seq_range: [i64; 2],
    pub memory: Memory,
    /// The generator's own load: when it was saturated, its latency figures measure its own
    /// backlog, not the server's.
    pub generator: GeneratorReport,
    /// A few lost and unexpected (tab, seq) pairs, to start an investigation.
    pub examples: Examples,
    /// Faults the embedded server injected, by kind (only with --inject-faults).
    pub faults_injected: BTreeMap<String, u64>,
    /// The fault scenario and what it measured (only with --scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultReport>,
    /// The run second by second (from the start of the tabs), for plots.
    #[serde(default)]
    pub timeline: Vec<crate::record::timeline::Second>,
    /// The latency histograms themselves, lossless (`loadgen merge` adds shards' up).
    #[serde(default)]
    pub histograms: Histograms,
    /// One row per stage of `--stages` (none without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
    /// `--app`: what generator-side truth adds (publishes, grey zone, the app's own events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppReport>,
}

/// One stage of a `--stages` run: its target, and what was sent, delivered and lost in it.
/// Counts are by the second they fell in (receipts by their time, lost and recovered by their
/// event's), so a stage's edges are exact to a second.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StageReport {
    /// 1-based, in order.
    pub stage: u64,
    /// Seconds from the start of actions.
    pub from_s: f64,
    pub to_s: f64,
    /// The stage's start on the timeline's clock (`timeline[].t_s`: from the start of the
    /// tabs), for plots.
    #[serde(default)]
    pub timeline_from_s: f64,
    /// Target tab count and action rate at the start and the end of the stage.
    pub tabs_from: u64,
    pub tabs_to: u64,
    pub actions_per_s_from: f64,
    pub actions_per_s_to: f64,
    /// Tabs joined and not closed, as last sampled (once a second) at or before the stage's
    /// end; for the last stage, at the end of the run.
    pub tabs_open_at_end: u64,
    pub actions: u64,
    pub actions_per_s: f64,
    /// Live receipts.
    pub delivered: u64,
    pub deliveries_per_s: f64,
    pub recovered: u64,
    pub lost: u64,
    /// Fan-out of the stage's receipts, and latency of the actions sent in it.
    pub fanout_ms: Percentiles,
    pub action_ms: Percentiles,
    /// The two histograms, HDR V2 base64 (`loadgen merge` adds shards' up).
    pub fanout_histogram: String,
    pub action_histogram: String,
}

/// What a fault scenario broke, when, and how the tabs and servers came back.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FaultReport {
    pub scenario: String,
    /// Seconds after the start of actions the fault command and the heal command started
    /// (none: not reached).
    pub fault_at_s: Option<f64>,
    pub heal_at_s: Option<f64>,
    /// What `recovery_s` measures for this scenario.
    pub recovery_measure: String,
    /// The scenario's recovery time, seconds (none: not observed during the run).
    pub recovery_s: Option<f64>,
    /// When the recovery was observed, counted from the fault and from the heal.
    pub recovery_after_fault_s: Option<f64>,
    pub recovery_after_heal_s: Option<f64>,
    pub drops: u64,
    pub reconnects: u64,
    /// Dropped tabs that never got back (rejoined and replayed) before the run ended.
    pub tabs_not_recovered: u64,
    /// Drop -> rejoined and replayed, per dropped tab.
    pub tab_recovery_ms: Percentiles,
    pub resyncs: u64,
    /// Events the resync replays fetched that the tabs had not received.
    pub resync_recovered: u64,
    /// REST actions answered 503 or not at all (not failures of the verdict in a scenario).
    pub unavailable: u64,
    /// Writes answered 2xx with an `Event-Seq`, and those of them missing from the log.
    pub acked_writes: u64,
    pub acked_writes_missing: u64,
    /// The run's owed deliveries, all of them: lost must be 0 after replay.
    pub delivery: OwedCounts,
    pub commands: Vec<CommandRun>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Actions {
    pub created: u64,
    pub updated: u64,
    pub cancelled: u64,
    pub deleted: u64,
    pub conflicts: u64,
    pub errors: u64,
    /// Answered 503 or not at all: the server was down or said so.
    pub unavailable: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyReport {
    /// Server `emittedAt` -> tab receipt, every live delivery.
    pub fanout: Percentiles,
    /// This run's REST request sent -> last owed tab received, per action.
    pub action: Percentiles,
    /// First -> last tab receipt, per event.
    pub spread: Percentiles,
    /// Action ticket due -> request sent (open-model lag; high when actors fall behind).
    pub schedule_lag: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    pub deliveries_per_s: f64,
    pub actions_per_s: f64,
    pub target_actions_per_s: f64,
}

/// What a gate judges: `loadgen merge` judges a gate again on the merged figures by its kind
/// (and stage), never by its name.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    TabsJoined,
    BrowserTabsJoined,
    Lost,
    Duplicated,
    Unexpected,
    OutOfOrder,
    ActionErrors,
    PublishErrors,
    AckedWritesMissing,
    FanoutP99,
    ActionP99,
    DeliveriesPerS,
    GeneratorSaturated,
    /// Anything else (a baseline rule, a fault scenario's): merge takes every shard's result.
    #[default]
    Other,
}

impl GateKind {
    /// The gate's name in summaries and reports.
    pub fn name(self) -> &'static str {
        match self {
            GateKind::TabsJoined => "tabs joined",
            GateKind::BrowserTabsJoined => "browser tabs joined",
            GateKind::Lost => "lost",
            GateKind::Duplicated => "duplicated",
            GateKind::Unexpected => "unexpected",
            GateKind::OutOfOrder => "out of order",
            GateKind::ActionErrors => "action errors",
            GateKind::PublishErrors => "publish errors",
            GateKind::AckedWritesMissing => "acked writes not in log",
            GateKind::FanoutP99 => "fan-out p99 ms",
            GateKind::ActionP99 => "action p99 ms",
            GateKind::DeliveriesPerS => "deliveries per s",
            GateKind::GeneratorSaturated => "generator saturated s",
            GateKind::Other => "",
        }
    }

    /// Whether the figure must be at least the limit (else at most).
    fn at_least(self) -> bool {
        matches!(
            self,
            GateKind::TabsJoined | GateKind::BrowserTabsJoined | GateKind::DeliveriesPerS
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gate {
    pub name: String,
    /// What it judges, and for `--gate-stage` the stage (1-based).
    #[serde(default)]
    pub kind: GateKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u64>,
    pub limit: f64,
    pub observed: f64,
    pub passed: bool,
    /// The figure was taken while the generator was saturated: it may measure the generator.
    #[serde(default)]
    pub unreliable: bool,
    /// For a regression rule (`--baseline`): the baseline's value, and this run's change from
    /// it in percent (none when the baseline's value is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_pct: Option<f64>,
}

impl Gate {
    /// Marks the gate's figure as taken while the generator was saturated.
    pub fn unreliable_if(mut self, saturated: bool) -> Gate {
        self.unreliable = saturated;
        self
    }

    /// "observed 12.3 limit 10", and for a regression rule " baseline 8.2 (+50.0%)".
    pub fn figures(&self) -> String {
        let mut text = format!(
            "observed {} limit {}",
            short(self.observed),
            short(self.limit)
        );
        if let Some(base) = self.baseline {
            let _ = write!(text, " baseline {}", short(base));
            if let Some(change) = self.change_pct {
                let _ = write!(text, " ({change:+.1}%)");
            }
        }
        text
    }

    /// A gate of `kind` (on stage `stage` of `--stages`, if given), named after it.
    pub fn of(kind: GateKind, limit: f64, observed: f64, stage: Option<u64>) -> Gate {
        let name = match stage {
            Some(n) => format!("{} (stage {n})", kind.name()),
            None => kind.name().to_string(),
        };
        let gate = if kind.at_least() {
            Gate::at_least(&name, limit, observed)
        } else {
            Gate::at_most(&name, limit, observed)
        };
        Gate {
            kind,
            stage,
            ..gate
        }
    }

    pub fn at_most(name: &str, limit: f64, observed: f64) -> Gate {
        Gate {
            name: name.to_string(),
            kind: GateKind::Other,
            stage: None,
            limit,
            observed,
            passed: observed <= limit,
            unreliable: false,
            baseline: None,
            change_pct: None,
        }
    }

    pub fn at_least(name: &str, limit: f64, observed: f64) -> Gate {
        Gate {
            name: name.to_string(),
            kind: GateKind::Other,
            stage: None,
            limit,
            observed,
            passed: observed >= limit,
            unreliable: false,
            baseline: None,
            change_pct: None,
        }
    }
}

/// What a run may have at most of each delivery fault, and of errors of what it did (booking
/// actions or app publishes).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allowed {
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub out_of_order: u64,
    pub errors: u64,
}

/// The delivery gates, for any kind of run and either source of truth: every tab joined, and
/// lost, duplicated, unexpected and out-of-order deliveries and `errors` (of `errors_kind`:
/// action errors of a booking run, publish errors of an app run) within what is allowed.
pub fn delivery_gates(
    allowed: Allowed,
    (tabs, joined): (u64, u64),
    d: &DeliveryCounts,
    (errors_kind, errors): (GateKind, u64),
) -> Vec<Gate> {
    [
        (GateKind::TabsJoined, tabs, joined),
        (GateKind::Lost, allowed.lost, d.lost),
        (GateKind::Duplicated, allowed.duplicated, d.duplicated),
        (GateKind::Unexpected, allowed.unexpected, d.unexpected),
        (GateKind::OutOfOrder, allowed.out_of_order, d.out_of_order),
        (errors_kind, allowed.errors, errors),
    ]
    .into_iter()
    .map(|(kind, limit, observed)| Gate::of(kind, limit as f64, observed as f64, None))
    .collect()
}

/// Limits of the timed gates: fan-out p99 and action p99 (ms, at most), deliveries per
/// second (at least), and seconds the generator may be saturated.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimedLimits {
    pub fanout_p99_ms: Option<f64>,
    pub action_p99_ms: Option<f64>,
    pub min_deliveries_per_sec: Option<f64>,
    pub saturated_s: Option<u64>,
}

/// The timed gates, for any kind of run: latency and throughput of the whole run, or of one
/// stage (`--gate-stage`), marked unreliable when the generator was saturated; and the
/// saturation gate itself.
pub fn timed_gates(
    limits: TimedLimits,
    stage: Option<&StageReport>,
    l: &LatencyReport,
    t: &Throughput,
    generator: &GeneratorReport,
) -> Vec<Gate> {
    let (fanout_p99, action_p99, per_s, of) = match stage {
        Some(s) => (
            s.fanout_ms.p99,
            s.action_ms.p99,
            s.deliveries_per_s,
            Some(s.stage),
        ),
        None => (l.fanout.p99, l.action.p99, t.deliveries_per_s, None),
    };
    // Latency and throughput are read on the generator's clock: a saturated generator adds
    // its own backlog to them.
    let saturated = generator.saturated();
    let timed = [
        (limits.fanout_p99_ms, GateKind::FanoutP99, fanout_p99),
        (limits.action_p99_ms, GateKind::ActionP99, action_p99),
        (
            limits.min_deliveries_per_sec,
            GateKind::DeliveriesPerS,
            per_s,
        ),
    ];
    let mut gates: Vec<Gate> = timed
        .into_iter()
        .filter_map(|(limit, kind, observed)| {
            Some(Gate::of(kind, limit?, observed, of).unreliable_if(saturated))
        })
        .collect();
    if let Some(limit) = limits.saturated_s {
        gates.push(Gate::of(
            GateKind::GeneratorSaturated,
            limit as f64,
            generator.saturated_s as f64,
            None,
        ));
    }
    gates
}

/// `text` for XML and HTML, in text and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no way to write other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A figure with at most three decimals and no trailing zeros.
pub fn short(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0" } else { s }.to_string()
}

/// Latency histograms (µs) in HDR histogram's V2 serialized form, base64.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histograms {
    pub fanout: String,
    pub action: String,
    pub spread: String,
    pub schedule_lag: String,
    /// Fan-out by event type and by room class, as `by_event_type` and `by_room_size`.
    pub fanout_by_event_type: BTreeMap<String, String>,
    pub fanout_by_room_size: BTreeMap<String, String>,
}

/// What a run asked for. Two runs compare fairly only when their workloads are equal.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Workload {
    pub tabs: u64,
    pub browser_tabs: u64,
    pub duration_s: f64,
    pub ramp_up_per_s: f64,
    pub boardrooms: u64,
    pub actions_per_s: f64,
    pub actor_share: f64,
    pub dashboard_share: f64,
    pub conflict_share: f64,
    pub think_time_s: f64,
    pub churn_per_s: Option<f64>,
    pub storm_at_s: Option<f64>,
    pub scenario: String,
    /// Servers the tabs were spread over (1 for the embedded server).
    pub servers: u64,
    /// `--stages`, normalized (then `tabs` is the peak and `duration_s` the total).
    #[serde(default)]
    pub stages: Option<String>,
    /// `--app`: the app file's name (absent for the booking workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

impl Workload {
    /// Each field that differs, as `field: a vs b`.
    pub fn differences(a: &Workload, b: &Workload) -> Vec<String> {
        let fields = |w: &Workload| match serde_json::to_value(w) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let (fa, fb) = (fields(a), fields(b));
        fa.iter()
            .filter(|(key, va)| fb.get(*key) != Some(*va))
            .map(|(key, va)| {
                let vb = fb.get(key).unwrap_or(&serde_json::Value::Null);
                format!("{key}: {va} vs {vb}")
            })
            .collect()
    }
}

/// The run besides its figures: what a fair comparison with another run needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// The loadgen's version.
    pub version: String,
    /// Cores of the machine the generator ran on.
    pub cores: u64,
    /// `linux-x86_64`, say.
    pub platform: String,
    /// The command line, with secrets replaced by `***`.
    pub command_line: Vec<String>,
    pub workload: Workload,
    /// The share of the plan's tabs this generator ran (`--shard`); `0/1` for the whole.
    #[serde(default)]
    pub shard: crate::plan::Shard,
}

impl Workload {
    /// What the run of `c` asks for (compared with a baseline's).
    pub fn of(c: &crate::config::Config) -> Self {
        Self {
            tabs: c.tabs as u64,
            browser_tabs: c.browser_tabs as u64,
            duration_s: c.duration.as_secs_f64(),
            ramp_up_per_s: c.ramp_up,
            boardrooms: c.boardrooms as u64,
            actions_per_s: c.actions_per_sec,
            actor_share: c.actor_share,
            dashboard_share: c.dashboard_share,
            conflict_share: c.conflict_share,
            think_time_s: c.think_time.as_secs_f64(),
            churn_per_s: c.churn,
            storm_at_s: c.storm_at.map(|d| d.as_secs_f64()),
            scenario: clap::ValueEnum::to_possible_value(&c.scenario)
                .map_or_else(String::new, |v| v.get_name().to_string()),
            servers: c.hosts.len().max(1) as u64,
            stages: c.stages.as_ref().map(ToString::to_string),
            app: None,
        }
    }
}

impl RunInfo {
    /// What a fair comparison with another run needs to know of the run of `c`.
    pub fn of(c: &crate::config::Config) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            command_line: redacted(std::env::args()),
            workload: Workload::of(c),
            shard: c.shard,
        }
    }
}

/// The values of `--auth-secret` and `--token` replaced by `***`.
pub fn redacted(args: impl IntoIterator<Item = String>) -> Vec<String> {
    const SECRET: [&str; 2] = ["--auth-secret", "--token"];
    let mut out = Vec::new();
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
        } else if let Some((flag, _)) = arg.split_once('=')
            && SECRET.contains(&flag)
        {
            out.push(format!("{flag}=***"));
        } else {
            hide_next = SECRET.contains(&arg.as_str());
            out.push(arg);
        }
    }
    out
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Breakdown {
    pub delivery: DeliveryCounts,
    pub fanout_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Volatile {
    pub editing: crate::drive::volatile::VolatileReport,
}

/// One kind of client's share of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientRow {
    pub tabs: u64,
    pub tabs_joined: u64,
    pub delivery: DeliveryCounts,
    /// Protocol tabs: `emittedAt` to receipt. Browser tabs: `emittedAt` to the page's render.
    pub fanout_ms: Percentiles,
    /// Browser tabs: live receipts that never reached the page's DOM (lost where owed).
    pub not_rendered: u64,
    /// Browser tabs: `editing` notices received (volatile, never owed).
    pub editing_received: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    /// Resident set of the whole process (with the embedded server, when there is one).
    pub rss_bytes: u64,
    pub rss_per_tab_bytes: u64,
    /// Bytes of the delivery ledgers, all tabs, at the end.
    pub ledger_bytes: u64,
    /// Owed pairs judged while the run went, their bits dropped (`--ledger-window`).
    #[serde(default)]
    pub judged_during_run: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Examples {
    pub lost: Vec<(usize, i64)>,
    pub unexpected: Vec<(usize, i64)>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// Sets the verdict from the gates: the one place it is decided ("pass" when every gate
    /// passed). Whoever adds or judges gates again (a baseline, `loadgen merge`) calls it.
    pub fn decide(&mut self) {
        self.verdict = if self.gates.iter().all(|g| g.passed) {
            "pass"
        } else {
            "fail"
        }
        .to_string();
    }

    /// The summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let d = &self.delivery;
        let servers = if self.embedded_server {
            "the embedded server".to_string()
        } else {
            format!("{} server(s)", self.hosts.len())
        };
        let _ = writeln!(out, "\n== loadgen: {} ==", self.verdict.to_uppercase());
        let _ = writeln!(
            out,
            "tabs       {} ({} connected, {} joined) on {servers}, {:.1} s of actions, seed {}",
            self.tabs, self.tabs_connected, self.tabs_joined, self.duration_s, self.seed
        );
        if let Some(app) = &self.app {
            app.summary(&mut out, &self.throughput);
        } else {
            self.actions_summary(&mut out);
        }
        let _ = writeln!(
            out,
            "delivery   owed {}  delivered {}  recovered {}  lost {}  duplicated {}  unexpected {}  out-of-order {}   {:.0}/s",
            d.owed,
            d.delivered,
            d.recovered,
            d.lost,
            d.duplicated,
            d.unexpected,
            d.out_of_order,
            self.throughput.deliveries_per_s
        );
        self.latency_summary(&mut out);
        if let Some(app) = &self.app {
            app.truth_summary(&mut out);
            for hint in app.hints(&self.by_event_type) {
                let _ = writeln!(out, "hint       {hint}");
            }
        }
        self.breakdown_summary(&mut out);
        out
    }

    fn actions_summary(&self, out: &mut String) {
        let a = &self.actions;
        let _ = writeln!(
            out,
            "actions    created {}  updated {}  cancelled {}  deleted {}  conflicts {}  errors {}  unavailable {}   {:.1}/s (target {:.1}/s)",
            a.created,
            a.updated,
            a.cancelled,
            a.deleted,
            a.conflicts,
            a.errors,
            a.unavailable,
            self.throughput.actions_per_s,
            self.throughput.target_actions_per_s
        );
    }

    fn latency_summary(&self, out: &mut String) {
        let l = &self.latency_ms;
        let p = |name: &str, p: &Percentiles| {
            format!(
                "{name} p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
                p.p50, p.p95, p.p99, p.max
            )
        };
        let _ = writeln!(out, "latency ms {}", p("fan-out", &l.fanout));
        let _ = writeln!(out, "           {}", p("action ", &l.action));
        let _ = writeln!(out, "           {}", p("spread ", &l.spread));
    }

    fn breakdown_summary(&self, out: &mut String) {
        for (i, st) in self.stages.iter().enumerate() {
            let head = if i == 0 { "stages" } else { "" };
            let _ = writeln!(
                out,
                "{head:<10} {} {:>5.0}-{:<5.0}s tabs {:>5}->{:<5} (open {:>5})  actions {:>6} ({:.1}/s)  delivered {:>8} ({:.0}/s)  lost {:>5}  fan-out p99 {:.2}  action p99 {:.2} ms",
                st.stage,
                st.from_s,
                st.to_s,
                st.tabs_from,
                st.tabs_to,
                st.tabs_open_at_end,
                st.actions,
                st.actions_per_s,
                st.delivered,
                st.deliveries_per_s,
                st.lost,
                st.fanout_ms.p99,
                st.action_ms.p99
            );
        }
        for (title, rows) in [
            ("by event", &self.by_event_type),
            ("by room", &self.by_room_size),
        ] {
            for (i, (name, b)) in rows.iter().filter(|(_, b)| b.delivery.owed > 0).enumerate() {
                let head = if i == 0 { title } else { "" };
                let _ = writeln!(
                    out,
                    "{head:<10} {name:<18} owed {:>8}  lost {:>5}  fan-out p99 {:.2} ms",
                    b.delivery.owed, b.delivery.lost, b.fanout_ms.p99
                );
            }
        }
        let known = self.by_node.iter().filter(|(k, _)| *k != "unknown");
        if known.clone().any(|(_, c)| c.owed > 0) {
            for (i, (path, c)) in self.by_node.iter().filter(|(_, c)| c.owed > 0).enumerate() {
                let head = if i == 0 { "by node" } else { "" };
                let _ = writeln!(
                    out,
                    "{head:<10} {path:<18} owed {:>8}  delivered {:>8}  recovered {:>6}  lost {:>5}",
                    c.owed, c.delivered, c.recovered, c.lost
                );
            }
        }
        if self.by_client.get("browser").is_some_and(|b| b.tabs > 0) {
            for (i, (kind, c)) in self.by_client.iter().enumerate() {
                let head = if i == 0 { "by client" } else { "" };
                let to = if kind == "browser" {
                    "render"
                } else {
                    "receipt"
                };
                let _ = writeln!(
                    out,
                    "{head:<10} {kind:<8} tabs {:>5}  owed {:>8}  delivered {:>8}  recovered {:>6}  lost {:>5}  dup {:>3}  fan-out to {to} p50 {:.2}  p99 {:.2} ms",
                    c.tabs,
                    c.delivery.owed,
                    c.delivery.delivered,
                    c.delivery.recovered,
                    c.delivery.lost,
                    c.delivery.duplicated,
                    c.fanout_ms.p50,
                    c.fanout_ms.p99
                );
            }
        }
        let e = &self.volatile.editing;
        if e.sent > 0 {
            let _ = writeln!(
                out,
                "volatile   editing sent {}  expected {}  received {}  ratio {:.3}  latency p50 {:.2}  p99 {:.2} ms  (not logged, not gated)",
                e.sent, e.expected, e.received, e.ratio, e.latency_ms.p50, e.latency_ms.p99
            );
        }
        if self.reconnects > 0 || self.resyncs > 0 {
            let _ = writeln!(
                out,
                "reconnects {}  (dropped by the server {}, resyncs {}, events replayed {})",
                self.reconnects, self.drops, self.resyncs, self.events_replayed
            );
        }
        if let Some(f) = &self.fault {
            f.summary(out);
        }
        self.generator_summary(out);
        let width = self
            .gates
            .iter()
            .map(|g| g.name.len())
            .max()
            .unwrap_or(0)
            .max(28);
        for gate in &self.gates {
            let mark = if gate.passed { "ok  " } else { "FAIL" };
            let caveat = if gate.unreliable {
                "  (unreliable: the generator was saturated)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "gate {mark}  {:<width$} {}{caveat}",
                gate.name,
                gate.figures()
            );
        }
        if !self.examples.lost.is_empty() {
            let _ = writeln!(out, "lost (tab, seq), first ones: {:?}", self.examples.lost);
        }
        if !self.examples.unexpected.is_empty() {
            let _ = writeln!(
                out,
                "unexpected (tab, seq), first ones: {:?}",
                self.examples.unexpected
            );
        }
    }
}

impl Report {
    fn generator_summary(&self, out: &mut String) {
        let g = &self.generator;
        let _ = writeln!(
            out,
            "generator  cpu mean {:.0}% max {:.0}% of {} core(s)  scheduling lag max {:.1} ms  receive backlog max {} KiB  rss {:.1} KiB/tab",
            g.cpu_share_mean * 100.0,
            g.cpu_share_max * 100.0,
            g.cores,
            g.lag_ms_max,
            g.backlog_bytes_max / 1024,
            self.memory.rss_per_tab_bytes as f64 / 1024.0
        );
        let delivered = self.delivery.delivered.max(1) as f64;
        let _ = writeln!(
            out,
            "           cpu per verified delivery {:.1} µs while acting ({:.2} s), {:.1} µs over the whole run ({:.2} s, connects and the final log read included){}",
            g.window_cpu_s * 1e6 / delivered,
            g.window_cpu_s,
            g.cpu_s * 1e6 / delivered,
            g.cpu_s,
            if self.embedded_server {
                "; the embedded server's CPU is in these figures too"
            } else {
                ""
            },
        );
        if g.saturated() {
            let _ = writeln!(
                out,
                "           SATURATED for {} s of {} s ({}): latency figures are not trustworthy",
                g.saturated_s,
                g.sampled_s,
                g.reasons()
            );
        }
    }
}

impl FaultReport {
    fn summary(&self, out: &mut String) {
        let secs = |s: Option<f64>| s.map_or("-".to_string(), |s| format!("{s:.1}s"));
        let _ = writeln!(
            out,
            "fault      {}: fault at {}, heal at {}; recovery {} ({})",
            self.scenario,
            secs(self.fault_at_s),
            secs(self.heal_at_s),
            self.recovery_s
                .map_or("NOT OBSERVED".to_string(), |s| format!("{s:.2}s")),
            self.recovery_measure
        );
        let r = &self.tab_recovery_ms;
        let _ = writeln!(
            out,
            "           drops {}  reconnects {}  not recovered {}  tab recovery p50 {:.0} ms max {:.0} ms  resyncs {} (recovered {})  unavailable {}",
            self.drops,
            self.reconnects,
            self.tabs_not_recovered,
            r.p50,
            r.max,
            self.resyncs,
            self.resync_recovered,
            self.unavailable
        );
        let d = &self.delivery;
        let _ = writeln!(
            out,
            "           owed {}  delivered {}  recovered {}  lost {}   acknowledged writes {} (missing from the log {})",
            d.owed, d.delivered, d.recovered, d.lost, self.acked_writes, self.acked_writes_missing
        );
        for c in self.commands.iter().filter(|c| !c.ok) {
            let _ = writeln!(
                out,
                "           {} command FAILED (exit {:?}): {}\n             {}",
                c.step,
                c.exit_code,
                c.command,
                c.output.replace('\n', "\n             ")
            );
        }
    }
}

/// Resident set size of this process, from /proc (0 where there is none).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_gates_hold_each_count_to_its_allowance_and_every_tab_to_joining() {
        let d = DeliveryCounts {
            owed: 100,
            delivered: 97,
            lost: 3,
            duplicated: 1,
            ..DeliveryCounts::default()
        };
        let allowed = Allowed {
            lost: 3,
            errors: 1,
            ..Allowed::default()
        };
        let gates = delivery_gates(allowed, (10, 9), &d, (GateKind::PublishErrors, 2));
        let seen: Vec<(GateKind, f64, f64, bool)> = gates
            .iter()
            .map(|g| (g.kind, g.limit, g.observed, g.passed))
            .collect();
        assert_eq!(
            seen,
            [
                (GateKind::TabsJoined, 10.0, 9.0, false),
                (GateKind::Lost, 3.0, 3.0, true),
                (GateKind::Duplicated, 0.0, 1.0, false),
                (GateKind::Unexpected, 0.0, 0.0, true),
                (GateKind::OutOfOrder, 0.0, 0.0, true),
                (GateKind::PublishErrors, 1.0, 2.0, false),
            ]
        );
    }

    #[test]
    fn an_expected_event_of_which_nothing_arrived_gets_a_hint() {
        let lost = |owed: u64, delivered: u64| Breakdown {
            delivery: DeliveryCounts {
                owed,
                delivered,
                lost: owed - delivered,
                ..DeliveryCounts::default()
            },
            ..Breakdown::default()
        };
        let by_event: BTreeMap<String, Breakdown> = [
            ("message".to_string(), lost(40, 0)),
            ("whisper".to_string(), lost(10, 10)),
        ]
        .into();
        let mut a = AppReport {
            app_events: [("chat message".to_string(), 40)].into(),
            ..AppReport::default()
        };
        let hints = a.hints(&by_event);
        assert_eq!(hints.len(), 1, "{hints:?}");
        assert!(
            hints[0].contains("the app sent `chat message` 40"),
            "{hints:?}"
        );
        a.unmarked.insert("message".into(), 40);
        assert!(a.hints(&by_event)[0].contains("never with this run's marker"));
        a.unmarked.clear();
        a.app_events.clear();
        assert!(a.hints(&by_event)[0].contains("nor any other event"));
        let fine: BTreeMap<String, Breakdown> = [("message".to_string(), lost(40, 39))].into();
        assert!(
            a.hints(&fine).is_empty(),
            "a partial loss is the verdict's, not a hint's"
        );
    }

    #[test]
    fn gates_compare_the_right_way() {
        assert!(Gate::at_most("lost", 0.0, 0.0).passed);
        assert!(!Gate::at_most("lost", 0.0, 1.0).passed);
        assert!(Gate::at_least("deliveries/s", 100.0, 150.0).passed);
        assert!(!Gate::at_least("deliveries/s", 100.0, 50.0).passed);
    }

    #[test]
    fn secrets_are_kept_out_of_the_recorded_command_line() {
        let args = [
            "loadgen",
            "--auth-secret",
            "s3cret",
            "--token=abc",
            "--tabs",
            "5",
        ]
        .map(String::from);
        assert_eq!(
            redacted(args),
            [
                "loadgen",
                "--auth-secret",
                "***",
                "--token=***",
                "--tabs",
                "5"
            ]
        );
    }

    #[test]
    fn short_figures_drop_trailing_zeros() {
        assert_eq!(short(200.0), "200");
        assert_eq!(short(37.679999999), "37.68");
        assert_eq!(short(-0.0001), "0");
    }

    #[test]
    fn rss_is_read_on_linux() {
        assert!(rss_bytes() > 0);
    }
}

/// The app-run section of the report: what generator-side truth adds to the common figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppReport {
    pub name: String,
    pub file: String,
    /// "generator": owed deliveries were decided from the generator's own publishes.
    pub truth: String,
    pub publishes: u64,
    /// Publishes the app refused or did not acknowledge (by reason, a few examples).
    pub publish_errors: u64,
    pub publish_error_examples: Vec<String>,
    /// `--stages`: publishes of emit publishers not sent, none of their tabs being open then.
    #[serde(default)]
    pub publishes_skipped: u64,
    /// Emits whose tab was cut or dropped while they went (unacked ones within `settle` of it,
    /// acked ones that got no answer): the app may or may not have taken them, so they are
    /// owed to no one, and what arrived of them counts with the receipts of failed publishes.
    #[serde(default)]
    pub publishes_uncertain: u64,
    /// (tab, publish) pairs whose join was in flight when the publish was sent: neither
    /// owed nor unexpected; and how many arrived anyway.
    pub grey_zone: u64,
    pub grey_zone_received: u64,
    /// Owed pairs a tab missed while its connection was down (not lost: the app file names no
    /// replay; with one, such pairs are owed, recovered or lost).
    pub missed_while_disconnected: u64,
    /// The app file's `replay`: requests answered after reconnects (the markers of this run
    /// they held are the report's `events_replayed`; recovered are those of them a tab was owed
    /// and had not received).
    #[serde(default)]
    pub replays: u64,
    /// Receipts of publishes the app refused.
    pub receipts_of_failed_publishes: u64,
    /// A shard's receipts of other shards' publishes: `loadgen merge` judges them.
    #[serde(default)]
    pub receipts_of_other_shards: u64,
    /// Markers of other runs, and expected events that carried no marker.
    pub foreign_markers: u64,
    pub unmarked: BTreeMap<String, u64>,
    /// Events the app sent by itself (names no publisher expects): counted, never owed.
    pub app_events: BTreeMap<String, u64>,
    /// Tabs whose connect or joins failed, with a few reasons.
    pub tab_errors: u64,
    pub tab_error_examples: Vec<String>,
    /// With `--shard`: the generator's whole log, for `loadgen merge` to judge all shards as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<crate::judge::truth::AppLog>,
}

impl AppReport {
    /// The summary's line in place of the booking actions: what was published.
    pub fn summary(&self, out: &mut String, t: &Throughput) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "app        {} ({}): publishes {}  errors {}  skipped {}  uncertain {}   {:.1}/s (target {:.1}/s)  truth: {}",
            self.name,
            self.file,
            self.publishes,
            self.publish_errors,
            self.publishes_skipped,
            self.publishes_uncertain,
            t.actions_per_s,
            t.target_actions_per_s,
            self.truth
        );
    }

    /// What a file that does not yet fit its app most likely has wrong, from an expected event
    /// of which nothing owed arrived (`by_event`: the report's breakdown by expected event).
    pub fn hints(&self, by_event: &BTreeMap<String, Breakdown>) -> Vec<String> {
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("`{k}` {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut hints = Vec::new();
        for (event, b) in by_event {
            let d = &b.delivery;
            if d.owed == 0 || d.delivered + d.recovered > 0 {
                continue;
            }
            hints.push(match self.unmarked.get(event) {
                Some(n) => format!(
                    "`{event}` arrived {n} times, never with this run's marker where `expect.marker` points: check that path, and `expect.arg` (which argument holds it)"
                ),
                None if !self.app_events.is_empty() => format!(
                    "no `{event}` arrived at all; the app sent {}: is `expect.event` the name it emits?",
                    list(&self.app_events)
                ),
                None => format!(
                    "no `{event}` arrived at all, nor any other event: does the app relay the publish to the rooms the tabs joined (the join's event and arguments)?"
                ),
            });
        }
        hints
    }

    /// What generator-side truth set apart: the grey zone, what disconnected tabs missed,
    /// events the app sent by itself.
    pub fn truth_summary(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "truth      grey zone {} (received {})  missed while disconnected {}  of refused publishes {}  foreign markers {}",
            self.grey_zone,
            self.grey_zone_received,
            self.missed_while_disconnected,
            self.receipts_of_failed_publishes,
            self.foreign_markers
        );
        if self.replays > 0 {
            let _ = writeln!(out, "           replays after reconnects {}", self.replays);
        }
        if self.receipts_of_other_shards > 0 {
            let _ = writeln!(
                out,
                "           receipts of other shards' publishes {} (judged by `loadgen merge`)",
                self.receipts_of_other_shards
            );
        }
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.app_events.is_empty() {
            let _ = writeln!(
                out,
                "           app's own events (counted, not owed): {}",
                list(&self.app_events)
            );
        }
        if !self.unmarked.is_empty() {
            let _ = writeln!(
                out,
                "           expected events without a marker: {}",
                list(&self.unmarked)
            );
        }
        for (what, n, examples) in [
            ("tab errors", self.tab_errors, &self.tab_error_examples),
            (
                "publish errors",
                self.publish_errors,
                &self.publish_error_examples,
            ),
        ] {
            if n > 0 {
                let _ = writeln!(
                    out,
                    "           {what} {n}, first: {}",
                    examples.join(" | ")
                );
            }
        }
    }
}
