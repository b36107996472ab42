//! How a tab gets back what it missed: reconnect (after churn, a storm, or a connection the
//! server dropped), rejoin its rooms and replay the gap from the event log; and resync, when a
//! server says its link to the others was down. A dropped tab retries like socket.io-client:
//! exponential backoff with jitter, and each failed attempt moves it to the next host, so the
//! tabs of a dead node land on a live one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::drive::run::{Run, read_page};
use crate::drive::tab::Tab;
use crate::record::latency::now_us;

/// Method name goose shows for Socket.IO records.
pub const SIO: &str = "SIO";

/// socket.io-client's defaults: `reconnectionDelay` 1 s, doubling, `reconnectionDelayMax` 5 s,
/// `randomizationFactor` 0.5.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_FACTOR: f64 = 2.0;
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_JITTER: f64 = 0.5;

/// The pause before reconnect attempt `attempt` (0 first), `unit` a random number in [0, 1):
/// the base delay doubles per attempt, is moved by up to ±50%, and never exceeds the maximum.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let base = BACKOFF_START.as_secs_f64() * BACKOFF_FACTOR.powi(attempt.min(16) as i32);
    let jittered = base * (1.0 + BACKOFF_JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0));
    Duration::from_secs_f64(jittered.min(BACKOFF_MAX.as_secs_f64()))
}

/// The pause before reconnect attempt `attempt` (0 first) of any tab, a booking run's or an app
/// run's: after a connection the other side dropped, and after a failed attempt, the backoff;
/// the first attempt after the loadgen cut it itself (churn, a storm), a short jitter, so a
/// storm still reconnects at once.
pub fn pause(attempt: u32, unexpected: bool) -> Duration {
    if unexpected || attempt > 0 {
        backoff(attempt, rand::random::<f64>())
    } else {
        Duration::from_millis(rand::random::<u64>() % 250)
    }
}

/// Reconnects tab `index`: after churn or a storm it drops the connection itself; after an
/// unexpected drop the connection is already gone. Then: connect, rejoin every room, replay
/// from a safe `seq` up to the rejoin watermark. Retries until it works or the run ends.
pub async fn reconnect(run: &Arc<Run>, index: usize) {
    let tab = &run.tabs[index];
    let dropped_at = tab.dropped_at.lock().expect("poisoned").take();
    let unexpected = dropped_at.is_some();
    let started = dropped_at.unwrap_or_else(Instant::now);
    tab.disconnect().await;
    // Where the replay starts: as of the drop, a safe while before it (see `Ledger`).
    let drop_us = now_us() - started.elapsed().as_micros() as i64;
    let floor = tab.first_watermark().unwrap_or(run.start_seq);
    let replay_from = tab
        .ledger
        .lock()
        .expect("poisoned")
        .replay_start(drop_us, floor);
    run.stats.reconnects.fetch_add(1, Ordering::Relaxed);
    let mut attempt = 0;
    let result = loop {
        tokio::time::sleep(pause(attempt, unexpected)).await;
        if run.past_end() {
            break Err("gave up: the run ended".to_string());
        }
        match rejoin(run, tab, replay_from).await {
            Ok(()) => break Ok(()),
            Err(e) => {
                tracing::debug!(tab = index, attempt, error = %e, "reconnect attempt failed");
                tab.disconnect().await;
                tab.next_host(run.hosts.len());
                attempt += 1;
            }
        }
    };
    if unexpected {
        run.recovered(started, result.is_ok());
    }
    let error = result.as_ref().err().map(String::as_str);
    run.feed.record(
        SIO,
        if unexpected { "recover" } else { "reconnect" },
        started.elapsed(),
        result.is_ok(),
        error,
    );
    if let Err(e) = result {
        tracing::warn!(tab = index, error = %e, "tab could not reconnect");
    }
}

/// One attempt: connect to the tab's host, join its rooms, replay the gap.
async fn rejoin(run: &Arc<Run>, tab: &Tab, replay_from: i64) -> Result<(), String> {
    crate::drive::receive::connect(run, tab.index).await?;
    let (mut lowest, mut highest, mut node) = (i64::MAX, run.start_seq, None);
    for name in tab.room_names() {
        let ack = tab.join(&name).await?;
        if !ack.ok {
            return Err(ack.error.unwrap_or_else(|| format!("join {name} refused")));
        }
        let watermark = ack.watermark.unwrap_or(run.start_seq);
        lowest = lowest.min(watermark);
        highest = highest.max(watermark);
        node = node.or(ack.node);
    }
    if lowest != i64::MAX {
        tab.on_node(lowest, node);
    }
    replay(run, tab, replay_from, Some(highest)).await?;
    Ok(())
}

/// Replays the tab's rooms after `after` through its current host, up to `until` (the rejoin
/// watermark: from there on the live connection delivers) or, with `None`, to the log's end.
/// Returns how many events it recovered (fetched and never received before).
pub async fn replay(
    run: &Run,
    tab: &Tab,
    mut after: i64,
    until: Option<i64>,
) -> Result<u64, String> {
    let rooms = tab.room_names().join(",");
    let host = &run.hosts[tab.host()];
    let mut recovered = 0;
    while until.is_none_or(|u| after < u) {
        let started = Instant::now();
        let page = read_page(&run.http, host, &tab.token, after, Some(&rooms), 1000).await;
        run.feed.record(
            "GET",
            "replay /api/events",
            started.elapsed(),
            page.is_ok(),
            None,
        );
        let page = page.map_err(|e| e.to_string())?;
        {
            let mut ledger = tab.ledger.lock().expect("poisoned");
            for event in &page.events {
                recovered += u64::from(ledger.record_replayed(event.payload.seq));
            }
        }
        run.stats
            .replayed
            .fetch_add(page.events.len() as u64, Ordering::Relaxed);
        if !page.has_more || page.next_after <= after {
            break;
        }
        after = page.next_after;
    }
    Ok(recovered)
}

/// A server said this tab's connection may have missed events after `after`: replay its rooms
/// from there, as a client following the protocol would (not from an earlier, safer `seq`: if
/// the server's `after` is too high, the verdict should show it). A failed replay is retried on
/// the tab's next turn.
pub async fn resync(run: &Arc<Run>, tab: &Tab, after: i64) {
    match replay(run, tab, after, None).await {
        Ok(recovered) => {
            run.stats
                .resync_recovered
                .fetch_add(recovered, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(tab = tab.index, error = %e, "resync replay failed; retrying");
            tab.request_resync(after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let s = |d: Duration| d.as_secs_f64();
        assert_eq!(s(backoff(0, 0.5)), 1.0);
        assert_eq!(s(backoff(0, 0.0)), 0.5);
        assert!((s(backoff(0, 0.999_999)) - 1.5).abs() < 1e-3);
        assert_eq!(s(backoff(1, 0.5)), 2.0);
        assert_eq!(s(backoff(2, 0.0)), 2.0);
        assert_eq!(s(backoff(2, 0.9)), 5.0, "4 s + 40% is capped at 5 s");
        for attempt in 0..100 {
            for unit in [0.0, 0.25, 0.5, 0.75, 0.999, 7.0, -1.0] {
                let d = s(backoff(attempt, unit));
                let base = 2f64.powi(attempt.min(16) as i32);
                assert!(
                    d <= 5.0 && d >= (base * 0.5).min(5.0),
                    "{attempt} {unit}: {d}"
                );
            }
        }
    }
}
