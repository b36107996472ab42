//! `--report-html` and `loadgen compare --report-html`: one self-contained page (inline CSS
//! and SVG, no script, nothing fetched) with the verdict and gates, plots over time of tabs,
//! actions/s, deliveries/s by outcome and fan-out and action p50/p99, and the by-event,
//! by-room and by-node tables; with several runs, the plots overlay them and the comparison
//! table leads.

use std::fmt::Write as _;

use crate::record::timeline::Second;
use crate::report::{Report, escape, short};

const PALETTE: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];
const DASHES: [&str; 3] = ["", "6 4", "2 3"];

const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #111; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600; }
.pass { background: #15803d; } .fail { background: #b91c1c; }
.muted { color: #555; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f6f6; }
td.bad { color: #b91c1c; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 10px; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.figure b { display: block; font-size: 18px; }
.chart { margin: 10px 0 18px; }
.legend span { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 18px; height: 0; border-top: 3px solid; vertical-align: middle; margin-right: 4px; }
.note { background: #fff7ed; border-left: 4px solid #ea580c; padding: 6px 10px; }
code { font-size: 12px; word-break: break-all; }
";

/// One line of a plot: whose and what, and its points (seconds, value).
struct Series {
    label: String,
    color: &'static str,
    dash: &'static str,
    points: Vec<(f64, f64)>,
}

/// The page for one run.
pub fn report_page(report: &Report) -> String {
    page(&[("this run".to_string(), report)], None)
}

/// The page for several runs, the first the baseline, with their comparison: the table's
/// cells (header first) and whether every rule held.
pub fn compare_page(runs: &[(String, &Report)], table: &[Vec<String>], passed: bool) -> String {
    page(runs, Some((table, passed)))
}

fn page(runs: &[(String, &Report)], comparison: Option<(&[Vec<String>], bool)>) -> String {
    let mut out = String::new();
    let title = if runs.len() == 1 {
        "loadgen report".to_string()
    } else {
        format!(
            "loadgen: {}",
            runs.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        )
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    match comparison {
        None => {
            let (_, r) = &runs[0];
            let _ = writeln!(
                out,
                "<h1>loadgen report <span class=\"verdict {}\">{}</span></h1>",
                if r.passed() { "pass" } else { "fail" },
                escape(&r.verdict.to_uppercase())
            );
            let _ = writeln!(out, "<p class=\"muted\">{}</p>", escape(&describe(r)));
            headline(&mut out, r);
            if r.generator.saturated() {
                let _ = writeln!(
                    out,
                    "<p class=\"note\">The generator was saturated for {} s of {} s: its latency figures may be its own backlog, not the server's.</p>",
                    r.generator.saturated_s, r.generator.sampled_s
                );
            }
            gates(&mut out, r);
            if let Some(a) = &r.app {
                app_section(&mut out, a, r.events_replayed);
            }
        }
        Some((table, passed)) => {
            let _ = writeln!(
                out,
                "<h1>{} <span class=\"verdict {}\">{}</span></h1>",
                escape(&title),
                if passed { "pass" } else { "fail" },
                if passed {
                    "EVERY RULE HELD"
                } else {
                    "A RULE FAILED"
                }
            );
            for (name, r) in runs {
                let _ = writeln!(
                    out,
                    "<p class=\"muted\"><b>{}</b>: {}, verdict {}</p>",
                    escape(name),
                    escape(&describe(r)),
                    escape(&r.verdict)
                );
            }
            let _ = writeln!(out, "<h2>Comparison with {}</h2>", escape(&runs[0].0));
            comparison_table(&mut out, table);
        }
    }
    charts(&mut out, runs);
    for (name, r) in runs {
        if runs.len() > 1 {
            let _ = writeln!(out, "<h2>{}: breakdowns</h2>", escape(name));
        } else {
            let _ = writeln!(out, "<h2>Breakdowns</h2>");
        }
        breakdowns(&mut out, r);
        if let Some(run) = &r.run {
            let _ = writeln!(
                out,
                "<p class=\"muted\">loadgen {} on {} cores ({}): <code>{}</code></p>",
                escape(&run.version),
                run.cores,
                escape(&run.platform),
                escape(&run.command_line.join(" "))
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn describe(r: &Report) -> String {
    if let Some(a) = &r.app {
        return format!(
            "{} tabs against the app `{}` ({}), {:.0} s of publishes at {} publishes/s, seed {}",
            r.tabs,
            a.name,
            a.file,
            r.duration_s,
            short(r.throughput.target_actions_per_s),
            r.seed
        );
    }
    let servers = if r.embedded_server {
        "the embedded server".to_string()
    } else {
        format!("{} server(s)", r.hosts.len())
    };
    format!(
        "{} tabs on {servers}, {:.0} s of actions at {} actions/s, seed {}",
        r.tabs,
        r.duration_s,
        short(r.throughput.target_actions_per_s),
        r.seed
    )
}

fn headline(out: &mut String, r: &Report) {
    let d = &r.delivery;
    let l = &r.latency_ms;
    let figures = [
        ("owed", d.owed.to_string(), false),
        ("delivered", d.delivered.to_string(), false),
        ("recovered", d.recovered.to_string(), false),
        ("lost", d.lost.to_string(), d.lost > 0),
        ("duplicated", d.duplicated.to_string(), d.duplicated > 0),
        ("unexpected", d.unexpected.to_string(), d.unexpected > 0),
        (
            "out of order",
            d.out_of_order.to_string(),
            d.out_of_order > 0,
        ),
        (
            "deliveries/s",
            format!("{:.0}", r.throughput.deliveries_per_s),
            false,
        ),
        (
            "fan-out p50 / p99",
            format!("{} / {} ms", short(l.fanout.p50), short(l.fanout.p99)),
            false,
        ),
        (
            "action p50 / p99",
            format!("{} / {} ms", short(l.action.p50), short(l.action.p99)),
            false,
        ),
    ];
    out.push_str("<div class=\"figures\">\n");
    for (name, value, bad) in figures {
        let _ = writeln!(
            out,
            "<div class=\"figure\">{}<b{}>{}</b></div>",
            escape(name),
            if bad { " style=\"color:#b91c1c\"" } else { "" },
            escape(&value)
        );
    }
    out.push_str("</div>\n");
}

fn gates(out: &mut String, r: &Report) {
    out.push_str("<h2>Gates</h2>\n<table><tr><th>gate</th><th>observed</th><th>limit</th><th>baseline</th><th>change</th><th>result</th></tr>\n");
    for g in &r.gates {
        let result = match (g.passed, g.unreliable) {
            (true, false) => "ok",
            (true, true) => "ok (unreliable: generator saturated)",
            (false, false) => "FAIL",
            (false, true) => "FAIL (unreliable: generator saturated)",
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
            escape(&g.name),
            short(g.observed),
            short(g.limit),
            g.baseline.map_or(String::new(), short),
            g.change_pct.map_or(String::new(), |c| format!("{c:+.1}%")),
            if g.passed { "" } else { " class=\"bad\"" },
            result
        );
    }
    out.push_str("</table>\n");
}

fn comparison_table(out: &mut String, table: &[Vec<String>]) {
    let mut rows = table.iter();
    out.push_str("<table>\n");
    if let Some(head) = rows.next() {
        out.push_str("<tr>");
        for cell in head {
            let _ = write!(out, "<th>{}</th>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let bad = if cell.contains("FAIL") {
                " class=\"bad\""
            } else {
                ""
            };
            let _ = write!(out, "<td{bad}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

/// The plots: one per figure, every run's series in it.
fn charts(out: &mut String, runs: &[(String, &Report)]) {
    type Pick = fn(&Second) -> f64;
    /// Title, unit, and the series: name and how to read it from a second.
    type Plot = (&'static str, &'static str, &'static [(&'static str, Pick)]);
    let plots: [Plot; 5] = [
        (
            "Tabs",
            "tabs",
            &[
                // Tabs closed by --stages no longer count.
                ("connected", |s| {
                    s.tabs_connected.saturating_sub(s.tabs_left) as f64
                }),
                ("joined", |s| s.tabs_open() as f64),
            ],
        ),
        (
            "Actions per second",
            "actions/s",
            &[("sent", |s| s.actions as f64)],
        ),
        (
            "Deliveries per second, by outcome",
            "deliveries/s",
            &[
                ("delivered live", |s| s.delivered as f64),
                ("recovered by replay (by event time)", |s| {
                    s.recovered as f64
                }),
                ("lost (by event time)", |s| s.lost as f64),
            ],
        ),
        (
            "Fan-out latency (server emit, or an app run's publish, to tab receipt), receipts of each second",
            "ms",
            &[("p50", |s| s.fanout_p50_ms), ("p99", |s| s.fanout_p99_ms)],
        ),
        (
            "Action latency (request or publish sent to last receipt), actions sent in each second",
            "ms",
            &[("p50", |s| s.action_p50_ms), ("p99", |s| s.action_p99_ms)],
        ),
    ];
    out.push_str("<h2>Over time</h2>\n");
    // Runs of --stages: each stage's start, marked on every plot. Compared runs share their
    // stages (the same workload) but not to the second their timeline's clock: the marks are
    // the first run's.
    let marks: Vec<(f64, String)> = match runs {
        [(_, first), rest @ ..]
            if rest
                .iter()
                .all(|(_, r)| r.stages.len() == first.stages.len()) =>
        {
            first
                .stages
                .iter()
                .map(|s| (s.timeline_from_s, format!("stage {}", s.stage)))
                .collect()
        }
        _ => Vec::new(),
    };
    if runs.iter().all(|(_, r)| r.timeline.is_empty()) {
        out.push_str("<p class=\"muted\">These reports have no timeline (written by an older loadgen).</p>\n");
        return;
    }
    for (title, unit, metrics) in plots {
        let mut series = Vec::new();
        for (r, (name, report)) in runs.iter().enumerate() {
            for (m, (metric, pick)) in metrics.iter().enumerate() {
                let (color, dash, label) = if runs.len() == 1 {
                    (PALETTE[m % PALETTE.len()], "", metric.to_string())
                } else {
                    (
                        PALETTE[r % PALETTE.len()],
                        DASHES[m % DASHES.len()],
                        format!("{name}: {metric}"),
                    )
                };
                series.push(Series {
                    label,
                    color,
                    dash,
                    points: report.timeline.iter().map(|s| (s.t_s, pick(s))).collect(),
                });
            }
        }
        chart(out, title, unit, &series, &marks);
    }
}

/// A step of 1, 2 or 5 times a power of ten that divides `max` into about five.
fn nice_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let rough = max / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    if step < 1.0 && max >= 1.0 { 1.0 } else { step }
}

/// One plot of `series`, with a labelled vertical line at each of `marks` (time, label).
fn chart(out: &mut String, title: &str, unit: &str, series: &[Series], marks: &[(f64, String)]) {
    const W: f64 = 960.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 30.0;
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_top = points.map(|p| p.1).fold(0.0, f64::max);
    let y_step = nice_step(y_top);
    let y_max = ((y_top / y_step).ceil() * y_step).max(y_step);
    let x_step = nice_step(x_max);
    let x = |t: f64| LEFT + t / x_max * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / y_max) * (H - TOP - BOTTOM);
    let _ = writeln!(
        out,
        "<div class=\"chart\"><b>{}</b> <span class=\"muted\">({})</span>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(unit),
        escape(title)
    );
    let mut v = 0.0;
    while v <= y_max + y_step / 2.0 {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            y = y(v)
        );
        v += y_step;
    }
    let mut t = 0.0;
    while t <= x_max + x_step / 2.0 {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{}s</text>",
            x(t),
            H - 10.0,
            short(t)
        );
        t += x_step;
    }
    for (t, label) in marks.iter().filter(|(t, _)| *t >= 0.0 && *t <= x_max) {
        let _ = writeln!(
            out,
            "<line class=\"mark\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"3 3\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"10\" fill=\"#777\">{}</text>",
            H - BOTTOM,
            x(*t) + 3.0,
            TOP + 10.0,
            escape(label),
            x = x(*t)
        );
    }
    for s in series {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let dash = if s.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", s.dash)
        };
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}</title></polyline>",
            s.color,
            path.join(" "),
            escape(&s.label)
        );
    }
    out.push_str("</svg>\n<div class=\"legend\">");
    for s in series {
        let style = if s.dash.is_empty() { "solid" } else { "dashed" };
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"border-top-color:{};border-top-style:{style}\"></i>{}</span>",
            s.color,
            escape(&s.label)
        );
    }
    out.push_str("</div></div>\n");
}

/// What generator-side truth sets apart in an app run (see the summary's `truth` line).
fn app_section(out: &mut String, a: &crate::report::AppReport, replayed: u64) {
    let _ = writeln!(
        out,
        "<h2>The app: {}</h2>\n<p class=\"muted\">Owed deliveries are the generator's own publishes, each with a marker; truth: {}.</p>",
        escape(&a.name),
        escape(&a.truth)
    );
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let examples = |n: u64, e: &[String]| {
        if e.is_empty() {
            n.to_string()
        } else {
            format!("{n} (e.g. {})", e.join("; "))
        }
    };
    let rows = [
        ("publishes", a.publishes.to_string(), false),
        (
            "publish errors",
            examples(a.publish_errors, &a.publish_error_examples),
            a.publish_errors > 0,
        ),
        (
            "publishes skipped (no tab open)",
            a.publishes_skipped.to_string(),
            false,
        ),
        (
            "publishes uncertain (their tab went while they were sent)",
            a.publishes_uncertain.to_string(),
            false,
        ),
        (
            "grey zone (received anyway)",
            format!("{} ({})", a.grey_zone, a.grey_zone_received),
            false,
        ),
        (
            "missed while disconnected (no replay to check)",
            a.missed_while_disconnected.to_string(),
            false,
        ),
        (
            "replays after reconnects (markers in them)",
            format!("{} ({replayed})", a.replays),
            false,
        ),
        (
            "receipts of refused publishes",
            a.receipts_of_failed_publishes.to_string(),
            false,
        ),
        ("foreign markers", a.foreign_markers.to_string(), false),
        ("expected events without a marker", list(&a.unmarked), false),
        (
            "the app's own events (never owed)",
            list(&a.app_events),
            false,
        ),
        (
            "tab errors",
            examples(a.tab_errors, &a.tab_error_examples),
            a.tab_errors > 0,
        ),
    ];
    out.push_str("<table>\n");
    for (name, value, bad) in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td{}>{}</td></tr>",
            escape(name),
            if bad { " class=\"bad\"" } else { "" },
            escape(&value)
        );
    }
    out.push_str("</table>\n");
}

fn breakdowns(out: &mut String, r: &Report) {
    if !r.stages.is_empty() {
        out.push_str("<h3>By stage (from the start of actions)</h3>\n<table><tr><th>stage</th><th>from s</th><th>to s</th><th>tabs</th><th>open at end</th><th>actions/s target</th><th>actions/s</th><th>delivered</th><th>deliveries/s</th><th>recovered</th><th>lost</th><th>fan-out p50 ms</th><th>fan-out p99 ms</th><th>action p50 ms</th><th>action p99 ms</th></tr>\n");
        for st in &r.stages {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} &rarr; {}</td><td>{}</td><td>{} &rarr; {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                st.stage,
                short(st.from_s),
                short(st.to_s),
                st.tabs_from,
                st.tabs_to,
                st.tabs_open_at_end,
                short(st.actions_per_s_from),
                short(st.actions_per_s_to),
                short(st.actions_per_s),
                st.delivered,
                short(st.deliveries_per_s),
                st.recovered,
                if st.lost > 0 { " class=\"bad\"" } else { "" },
                st.lost,
                short(st.fanout_ms.p50),
                short(st.fanout_ms.p99),
                short(st.action_ms.p50),
                short(st.action_ms.p99)
            );
        }
        out.push_str("</table>\n");
    }
    let head = "<tr><th></th><th>owed</th><th>delivered</th><th>recovered</th><th>lost</th><th>duplicated</th><th>unexpected</th><th>fan-out p50 ms</th><th>fan-out p99 ms</th></tr>";
    let titles = if r.app.is_some() {
        ["By expected event", "By room family"]
    } else {
        ["By event type", "By room"]
    };
    for (title, rows) in titles.into_iter().zip([&r.by_event_type, &r.by_room_size]) {
        let _ = writeln!(out, "<h3>{title}</h3>\n<table>{head}");
        for (name, b) in rows {
            let d = &b.delivery;
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                d.owed,
                d.delivered,
                d.recovered,
                if d.lost > 0 { " class=\"bad\"" } else { "" },
                d.lost,
                d.duplicated,
                d.unexpected,
                short(b.fanout_ms.p50),
                short(b.fanout_ms.p99)
            );
        }
        out.push_str("</table>\n");
    }
    if r.app.is_some() {
        // One generator and an app of any shape: no server nodes to tell paths by.
        return;
    }
    out.push_str("<h3>By node (the path an event took to the tab)</h3>\n<table><tr><th></th><th>owed</th><th>delivered</th><th>recovered</th><th>lost</th></tr>\n");
    for (path, c) in &r.by_node {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td></tr>",
            escape(path),
            c.owed,
            c.delivered,
            c.recovered,
            if c.lost > 0 { " class=\"bad\"" } else { "" },
            c.lost
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Gate;

    fn report() -> Report {
        let mut r = Report {
            verdict: "fail".into(),
            tabs: 40,
            seed: 5,
            ..Report::default()
        };
        r.gates.push(Gate::at_most("lost", 0.0, 3.0));
        r.gates
            .push(Gate::at_most("<script>alert(1)</script>", 1.0, 0.0));
        r.by_event_type
            .insert("booking-created".into(), Default::default());
        r.timeline = (1..=10)
            .map(|t| Second {
                t_s: t as f64,
                tabs_connected: 40,
                tabs_joined: 40,
                actions: 10,
                delivered: 300 + t,
                lost: u64::from(t == 4) * 3,
                fanout_p50_ms: 2.0,
                fanout_p99_ms: 9.5,
                ..Second::default()
            })
            .collect();
        r
    }

    #[test]
    fn an_app_run_shows_what_its_truth_sets_apart() {
        let mut r = report();
        r.app = Some(crate::report::AppReport {
            name: "chat".into(),
            file: "examples/chat-server/app.yaml".into(),
            truth: "generator".into(),
            publishes: 750,
            publish_errors: 2,
            publish_error_examples: vec!["message: refused: <text>".into()],
            missed_while_disconnected: 4,
            app_events: [("presence".to_string(), 31)].into(),
            ..Default::default()
        });
        let page = report_page(&r);
        for needle in [
            "The app: chat",
            "against the app `chat`",
            "<td>publishes</td><td>750</td>",
            "<td class=\"bad\">2 (e.g. message: refused: &lt;text&gt;)</td>",
            "<td>4</td>",
            "presence 31",
            "By expected event",
        ] {
            assert!(page.contains(needle), "no `{needle}`");
        }
        assert!(!page.contains("By node"), "an app run has no nodes");
        assert!(!report_page(&report()).contains("The app:"));
    }

    #[test]
    fn the_page_is_self_contained_and_holds_verdict_gates_plots_and_tables() {
        let page = report_page(&report());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<span class=\"verdict fail\">FAIL</span>"));
        for needle in [
            "<td>lost</td><td>3</td><td>0</td>",
            "By event type",
            "booking-created",
            "By node",
        ] {
            assert!(page.contains(needle), "no `{needle}`");
        }
        assert_eq!(page.matches("<svg").count(), 5);
        // Tabs 2 lines, actions 1, deliveries 3, fan-out 2, action 2.
        assert_eq!(page.matches("<polyline").count(), 10);
        for outside in ["src=", "href=", "url(", "@import", "<script"] {
            assert!(
                !page.contains(outside),
                "`{outside}` in a self-contained page"
            );
        }
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("By stage"), "no --stages, no stage table");
        let mut staged = report();
        staged.stages.push(crate::report::StageReport {
            stage: 2,
            tabs_from: 500,
            tabs_to: 5000,
            lost: 4,
            ..Default::default()
        });
        staged.stages[0].timeline_from_s = 1.5;
        let page = report_page(&staged);
        assert!(page.contains("By stage"));
        // Each plot marks where the stage starts.
        assert_eq!(page.matches("class=\"mark\"").count(), 5);
        assert!(page.contains(">stage 2</text>"));
        assert!(page.contains("<td>2</td><td>0</td><td>0</td><td>500 &rarr; 5000</td>"));
        assert!(page.contains("<td class=\"bad\">4</td>"));
    }

    #[test]
    fn compared_runs_are_overlaid_in_every_plot() {
        let (a, b) = (report(), report());
        let runs = [("base".to_string(), &a), ("new".to_string(), &b)];
        let table = vec![
            vec!["figure".to_string(), "base".into(), "new".into()],
            vec![
                "fan-out p99 ms (rule 20%)".into(),
                "9".into(),
                "12 (+33.3%) FAIL".into(),
            ],
        ];
        let page = compare_page(&runs, &table, false);
        assert!(page.contains("A RULE FAILED"));
        assert!(page.contains("<td class=\"bad\">12 (+33.3%) FAIL</td>"));
        assert_eq!(page.matches("<polyline").count(), 20);
        assert!(page.contains("<title>new: p99</title>"));
        assert!(!page.contains("class=\"mark\""), "no stages, no marks");
        // Staged runs: the first run's stage starts are marked on every plot, once.
        let mut staged = report();
        staged.stages.push(crate::report::StageReport {
            stage: 1,
            timeline_from_s: 2.0,
            ..Default::default()
        });
        let both = [("base".to_string(), &staged), ("new".to_string(), &staged)];
        let page = compare_page(&both, &table, false);
        assert_eq!(page.matches("class=\"mark\"").count(), 5);
        let mixed = [("base".to_string(), &staged), ("new".to_string(), &a)];
        let page = compare_page(&mixed, &table, false);
        assert!(!page.contains("class=\"mark\""), "runs of other stages");
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(3000.0), 1000.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert!((nice_step(0.3) - 0.1).abs() < 1e-12);
    }
}
