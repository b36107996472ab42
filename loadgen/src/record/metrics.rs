//! The loadgen's own `/metrics` (`--metrics-addr`), so Prometheus scrapes load and server side
//! by side during a run. Rendered from the run's counters and histograms at each scrape; the
//! delivery outcomes are live counts during the run and the verdict's counts once judged.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use booking_server::realtime::protocol::BookingEventKind;
use hdrhistogram::Histogram;

use crate::drive::run::Run;
use crate::judge::fault::PHASES;
use crate::judge::verify::{DeliveryCounts, PATHS};
use crate::record::latency::histogram;
use crate::record::stats::{ACTION_RESULTS, Action, Stats};

pub const TABS_CONNECTED: &str = "loadgen_tabs_connected";
pub const TABS_JOINED: &str = "loadgen_tabs_joined";
pub const ROOM_JOINS: &str = "loadgen_room_joins_total";
pub const ACTIONS: &str = "loadgen_actions_total";
pub const DELIVERIES: &str = "loadgen_deliveries_total";
pub const FANOUT: &str = "loadgen_fanout_latency_seconds";
pub const ACTION_LATENCY: &str = "loadgen_action_latency_seconds";
pub const RECONNECTS: &str = "loadgen_reconnects_total";
pub const REPLAYED: &str = "loadgen_events_replayed_total";
pub const LIVE_BY_PATH: &str = "loadgen_live_deliveries_by_path_total";
pub const DROPS: &str = "loadgen_tab_drops_total";
pub const TABS_DOWN: &str = "loadgen_tabs_down";
pub const RESYNCS: &str = "loadgen_resyncs_total";
pub const FAULT_PHASE: &str = "loadgen_fault_phase";
pub const VOLATILE: &str = "loadgen_volatile_total";
pub const VOLATILE_LATENCY: &str = "loadgen_volatile_latency_seconds";
pub const GENERATOR_CPU: &str = "loadgen_generator_cpu_share";
pub const GENERATOR_LAG: &str = "loadgen_generator_scheduling_lag_seconds";
pub const GENERATOR_SATURATED: &str = "loadgen_generator_saturated_seconds_total";

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub(crate) fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) fn histogram_lines(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>) {
    let sep = if labels.is_empty() { "" } else { "," };
    for bound in BUCKETS {
        let count = h.count_between(0, (bound * 1e6) as u64);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.len());
    let sum = h.mean() * h.len() as f64 / 1e6;
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {}", h.len());
}

/// Tabs connected now, and tabs in all their rooms and open (`--stages` closes tabs).
pub(crate) fn tabs_lines(out: &mut String, connected: u64, open: u64) {
    head(
        out,
        TABS_CONNECTED,
        "gauge",
        "Tabs with an open Socket.IO connection",
    );
    let _ = writeln!(out, "{TABS_CONNECTED} {connected}");
    head(
        out,
        TABS_JOINED,
        "gauge",
        "Tabs that joined all their rooms and are open (--stages closes tabs)",
    );
    let _ = writeln!(out, "{TABS_JOINED} {open}");
}

/// `loadgen_deliveries_total` by outcome: live counts while the run goes (what is lost or
/// recovered is known once judged), then the verdict's.
pub fn delivery_lines(out: &mut String, c: &DeliveryCounts) {
    head(
        out,
        DELIVERIES,
        "counter",
        "Deliveries by outcome: live counts, then the verdict's",
    );
    for (outcome, n) in [
        ("delivered", c.delivered),
        ("recovered", c.recovered),
        ("lost", c.lost),
        ("duplicated", c.duplicated),
        ("unexpected", c.unexpected),
        ("out_of_order", c.out_of_order),
    ] {
        let _ = writeln!(out, "{DELIVERIES}{{outcome=\"{outcome}\"}} {n}");
    }
}

/// The Prometheus text exposition of the run now.
pub fn render(run: &Run) -> String {
    let s = &run.rec.stats;
    let mut out = String::new();
    let connected = run
        .tabs
        .iter()
        .filter(|t| t.connected.load(Ordering::Relaxed))
        .count();
    let open = Stats::get(&s.tabs_joined).saturating_sub(Stats::get(&s.tabs_left));
    tabs_lines(&mut out, connected as u64, open);
    head(
        &mut out,
        ROOM_JOINS,
        "counter",
        "Room joins, by room kind and result",
    );
    for (k, kind) in ["bookings", "boardroom", "user"].iter().enumerate() {
        for (r, result) in ["ok", "refused"].iter().enumerate() {
            let n = Stats::get(&s.joins[k][r]);
            let _ = writeln!(
                out,
                "{ROOM_JOINS}{{room_kind=\"{kind}\",result=\"{result}\"}} {n}"
            );
        }
    }
    head(
        &mut out,
        ACTIONS,
        "counter",
        "REST actions, by action and result (ok, conflict, error)",
    );
    for action in Action::ALL {
        for (r, result) in ACTION_RESULTS.iter().enumerate() {
            let n = s.action_count(action, r);
            let _ = writeln!(
                out,
                "{ACTIONS}{{action=\"{}\",result=\"{result}\"}} {n}",
                action.label()
            );
        }
    }
    let live = || {
        let duplicated = Stats::get(&s.duplicates);
        DeliveryCounts {
            delivered: Stats::get(&s.deliveries) - duplicated,
            duplicated,
            out_of_order: Stats::get(&s.out_of_order),
            ..DeliveryCounts::default()
        }
    };
    delivery_lines(&mut out, &s.verdict.get().copied().unwrap_or_else(live));
    head(
        &mut out,
        FANOUT,
        "histogram",
        "Server emit to tab receipt, seconds, by event",
    );
    let grid = run.rec.latency.fanout();
    for (k, kind) in BookingEventKind::ALL.iter().enumerate() {
        histogram_lines(
            &mut out,
            FANOUT,
            &format!("event=\"{}\"", kind.name()),
            &grid.by_kind(k),
        );
    }
    head(
        &mut out,
        ACTION_LATENCY,
        "histogram",
        "REST request sent to last owed tab received, seconds",
    );
    let mut action = histogram();
    for t in run.rec.latency.timings().values() {
        if let (Some(sent), Some(last)) = (t.sent_us, t.last_receipt_us) {
            let _ = action.record((last - sent).max(1) as u64);
        }
    }
    histogram_lines(&mut out, ACTION_LATENCY, "", &action);
    head(
        &mut out,
        RECONNECTS,
        "counter",
        "Tab reconnects (churn, storm, dropped connections)",
    );
    let _ = writeln!(out, "{RECONNECTS} {}", Stats::get(&s.reconnects));
    head(
        &mut out,
        REPLAYED,
        "counter",
        "Events fetched by replay after reconnects",
    );
    let _ = writeln!(out, "{REPLAYED} {}", Stats::get(&s.replayed));
    head(
        &mut out,
        LIVE_BY_PATH,
        "counter",
        "Live receipts by path: same-node, cross-node (through the servers' link), unknown",
    );
    for (path, n) in PATHS.iter().zip(&s.live_by_path) {
        let _ = writeln!(out, "{LIVE_BY_PATH}{{path=\"{path}\"}} {}", Stats::get(n));
    }
    head(
        &mut out,
        DROPS,
        "counter",
        "Tab connections the server closed or lost",
    );
    let _ = writeln!(out, "{DROPS} {}", Stats::get(&s.drops));
    head(
        &mut out,
        TABS_DOWN,
        "gauge",
        "Dropped tabs not yet rejoined and replayed",
    );
    let _ = writeln!(out, "{TABS_DOWN} {}", s.tabs_down.load(Ordering::Relaxed));
    generator_lines(&mut out, run);
    head(
        &mut out,
        RESYNCS,
        "counter",
        "Resync events received from servers",
    );
    let _ = writeln!(out, "{RESYNCS} {}", Stats::get(&s.resyncs));
    head(
        &mut out,
        FAULT_PHASE,
        "gauge",
        "Fault scenario phase (1 for the current one): before, fault, healed, recovered",
    );
    let now = run.rec.fault.phase.load(Ordering::Relaxed) as usize;
    for (i, phase) in PHASES.iter().enumerate() {
        let _ = writeln!(
            out,
            "{FAULT_PHASE}{{phase=\"{phase}\"}} {}",
            u8::from(i == now)
        );
    }
    head(
        &mut out,
        VOLATILE,
        "counter",
        "Volatile `editing` signals (not logged, never owed): sent by actors, receipts expected (the boardroom's other calendar tabs), received",
    );
    let (sent, expected, received) = run.rec.volatile.counts();
    for (outcome, n) in [
        ("sent", sent),
        ("expected", expected),
        ("received", received),
    ] {
        let _ = writeln!(
            out,
            "{VOLATILE}{{event=\"editing\",outcome=\"{outcome}\"}} {n}"
        );
    }
    head(
        &mut out,
        VOLATILE_LATENCY,
        "histogram",
        "Volatile `editing` signals: server sentAt to tab receipt, seconds",
    );
    histogram_lines(
        &mut out,
        VOLATILE_LATENCY,
        "event=\"editing\"",
        &run.rec.volatile.latency(),
    );
    if run.setup.config.shard.count > 1 {
        out = with_label(&out, "shard", &run.setup.config.shard.to_string());
    }
    out
}

/// `text` (Prometheus exposition) with `name="value"` added to every sample, so the shards of
/// one run are told apart (and summed across) on a dashboard.
pub fn with_label(text: &str, name: &str, value: &str) -> String {
    let label = format!("{name}=\"{value}\"");
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some(open) = line.find('{') {
            let close = line[open..].find('}').map_or(open + 1, |c| open + c);
            let sep = if close == open + 1 { "" } else { "," };
            out.push_str(&line[..=open]);
            out.push_str(&label);
            out.push_str(sep);
            out.push_str(&line[open + 1..]);
        } else if let Some(space) = line.find(' ') {
            let _ = write!(out, "{}{{{label}}}{}", &line[..space], &line[space..]);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Serves `/metrics` on `addr`, rendered by `render` at each scrape, until the task is
/// aborted. The booking run's and an app run's metrics both go through it.
pub async fn serve_text<F>(
    addr: SocketAddr,
    render: F,
) -> std::io::Result<tokio::task::JoinHandle<()>>
where
    F: Fn() -> String + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render(),
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "loadgen metrics server failed");
        }
    }))
}

/// Serves the booking run's `/metrics` on `addr` until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    run: Arc<Run>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    serve_text(addr, move || render(&run)).await
}

/// The generator's own load (see `saturation`): its last second, and its saturated seconds.
fn generator_lines(out: &mut String, run: &Run) {
    let last = run.rec.generator.last().unwrap_or_default();
    generator_load(out, last, run.generator_report().saturated_s);
}

/// The generator's last sampled second, and the seconds it was saturated so far.
pub(crate) fn generator_load(
    out: &mut String,
    last: crate::record::saturation::Sample,
    saturated: u64,
) {
    head(
        out,
        GENERATOR_CPU,
        "gauge",
        "The generator's CPU in its last second, as a share of the cores it may use",
    );
    let _ = writeln!(out, "{GENERATOR_CPU} {}", last.cpu_share);
    head(
        out,
        GENERATOR_LAG,
        "gauge",
        "How late a 10 ms timer on the generator's runtime fired, worst of its last second",
    );
    let _ = writeln!(out, "{GENERATOR_LAG} {}", last.lag_ms / 1e3);
    head(
        out,
        GENERATOR_SATURATED,
        "counter",
        "Seconds in which the generator was saturated: its latency figures then measure itself",
    );
    let _ = writeln!(out, "{GENERATOR_SATURATED} {saturated}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_goes_on_every_sample_and_no_comment() {
        let text = "# HELP a x\n# TYPE a gauge\na 3\nb{kind=\"x\"} 4\nc{} 5\n";
        assert_eq!(
            with_label(text, "shard", "1/3"),
            "# HELP a x\n# TYPE a gauge\na{shard=\"1/3\"} 3\nb{shard=\"1/3\",kind=\"x\"} 4\nc{shard=\"1/3\"} 5\n"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let mut h = histogram();
        for us in [300, 700, 2_000, 40_000] {
            h.record(us).unwrap();
        }
        let mut out = String::new();
        histogram_lines(&mut out, "x_seconds", "event=\"e\"", &h);
        assert!(
            out.contains("x_seconds_bucket{event=\"e\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{event=\"e\",le=\"0.0025\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{event=\"e\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{event=\"e\"} 4\n"), "{out}");
        let mut plain = String::new();
        histogram_lines(&mut plain, "y_seconds", "", &h);
        assert!(
            plain.contains("y_seconds_bucket{le=\"+Inf\"} 4\n")
                && plain.contains("y_seconds_count 4\n"),
            "{plain}"
        );
    }
}
