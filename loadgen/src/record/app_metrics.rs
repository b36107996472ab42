//! `--metrics-addr` for an app run: the loadgen's own `/metrics` under the names the
//! dashboards read (tabs, publishes as actions, deliveries by outcome, fan-out by event,
//! publish latency, the generator's load), rendered from the run's records at each scrape.
//! Live counts during the run; once judged, the verdict's.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;

use crate::drive::app::AppRun;
use crate::judge::verify::DeliveryCounts;
use crate::record::latency::histogram;
use crate::record::metrics::{
    ACTION_LATENCY, ACTIONS, FANOUT, delivery_lines, generator_load, head, histogram_lines,
    tabs_lines, with_label,
};
use crate::record::saturation::Watch;

/// What a scrape reads: the run, and the generator's samples.
#[derive(Clone)]
pub struct Scraped {
    pub run: Arc<AppRun>,
    pub generator: Arc<Watch>,
    pub limits: crate::record::saturation::Limits,
}

/// The Prometheus text exposition of the run now.
pub fn render(s: &Scraped) -> String {
    let run = &s.run;
    let mut out = String::new();
    // Tabs down now (dropped or cut, not back yet) are neither connected nor in their rooms.
    let down = run
        .tabs
        .iter()
        .filter(|t| {
            let record = t.record.lock().expect("poisoned");
            record.down.last().is_some_and(|(_, back)| back.is_none())
        })
        .count() as u64;
    let gone = run.tabs_left.load(Ordering::Relaxed) + down;
    tabs_lines(
        &mut out,
        run.tabs_connected
            .load(Ordering::Relaxed)
            .saturating_sub(gone),
        run.tabs_joined.load(Ordering::Relaxed).saturating_sub(gone),
    );

    // Publish sent time by seq, and the publishes' outcomes.
    let (sent, ok, failed) = {
        let log = run.publishes.lock().expect("poisoned");
        let sent: std::collections::HashMap<u64, (i64, usize)> = log
            .iter()
            .map(|p| (p.seq, (p.sent_us, p.publisher)))
            .collect();
        let ok = log.iter().filter(|p| p.ok).count();
        (sent, ok, log.len() - ok)
    };
    head(&mut out, ACTIONS, "counter", "Publishes, by result");
    let _ = writeln!(out, "{ACTIONS}{{action=\"publish\",result=\"ok\"}} {ok}");
    let _ = writeln!(
        out,
        "{ACTIONS}{{action=\"publish\",result=\"error\"}} {failed}"
    );

    let events: Vec<&str> = run
        .file
        .publishers
        .iter()
        .map(|p| p.expect.event.as_str())
        .collect();
    let mut fanout: Vec<Histogram<u64>> = events.iter().map(|_| histogram()).collect();
    let mut last: std::collections::HashMap<u64, i64> = std::collections::HashMap::new();
    for tab in &run.tabs {
        let record = tab.record.lock().expect("poisoned");
        for &(seq, at) in &record.receipts {
            if let Some(&(sent_us, p)) = sent.get(&seq) {
                let _ = fanout[p].record((at - sent_us).max(1) as u64);
                let l = last.entry(seq).or_insert(at);
                *l = (*l).max(at);
            }
        }
    }
    let live = || DeliveryCounts {
        delivered: run.receipts.load(Ordering::Relaxed),
        ..DeliveryCounts::default()
    };
    delivery_lines(&mut out, &run.verdict.get().copied().unwrap_or_else(live));
    head(
        &mut out,
        FANOUT,
        "histogram",
        "Publish sent to tab receipt, seconds, by event",
    );
    let mut by_event: std::collections::BTreeMap<&str, Histogram<u64>> = Default::default();
    for (h, event) in fanout.iter().zip(&events) {
        let _ = by_event.entry(event).or_insert_with(histogram).add(h);
    }
    for (event, h) in &by_event {
        histogram_lines(&mut out, FANOUT, &format!("event=\"{event}\""), h);
    }
    head(
        &mut out,
        ACTION_LATENCY,
        "histogram",
        "Publish sent to its last receipt, seconds",
    );
    let mut action = histogram();
    for (seq, l) in &last {
        if let Some(&(sent_us, _)) = sent.get(seq) {
            let _ = action.record((l - sent_us).max(1) as u64);
        }
    }
    histogram_lines(&mut out, ACTION_LATENCY, "", &action);
    let samples = s.generator.samples_since(None);
    let saturated = crate::record::saturation::summarize(
        &samples,
        s.limits,
        crate::record::saturation::cores(),
    );
    let last = s.generator.last().unwrap_or_default();
    generator_load(&mut out, last, saturated.saturated_s);
    if run.shard.count > 1 {
        out = with_label(&out, "shard", &run.shard.to_string());
    }
    out
}

/// Serves `/metrics` on `addr` until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    scraped: Scraped,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    crate::record::metrics::serve_text(addr, move || render(&scraped)).await
}
