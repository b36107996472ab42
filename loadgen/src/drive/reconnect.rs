//! How a booking tab gets back what it missed: one reconnect attempt (the life, `life`, makes
//! them with the backoff, after churn, a storm, or a connection the server dropped) rejoins
//! its rooms and replays the gap from the event log; and a resync, when a server says its
//! link to the others was down, replays from where it says.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use booking_server::events::ReplayPage;

use crate::drive::run::{PageError, Run, read_page};
use crate::drive::tab::Tab;

/// Method name goose shows for Socket.IO records.
pub const SIO: &str = "SIO";

/// One attempt: connect to the tab's host, join its rooms, replay the gap.
pub async fn rejoin(run: &Arc<Run>, tab: &Tab, replay_from: i64) -> Result<(), String> {
    crate::drive::receive::connect(run, tab.index).await?;
    let (mut lowest, mut highest, mut node) = (i64::MAX, run.setup.start_seq, None);
    for name in tab.room_names() {
        let ack = tab.join(&name).await?;
        if !ack.ok {
            return Err(ack.error.unwrap_or_else(|| format!("join {name} refused")));
        }
        let watermark = ack.watermark.unwrap_or(run.setup.start_seq);
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
    let host = &run.setup.hosts[tab.host()];
    let mut recovered = 0;
    while until.is_none_or(|u| after < u) {
        let started = Instant::now();
        let page =
            read_page::<ReplayPage>(&run.setup.http, host, &tab.token, after, Some(&rooms), 1000)
                .await;
        run.rec.feed.record(
            "GET",
            "replay /api/events",
            started.elapsed(),
            page.is_ok(),
            None,
        );
        let page = match page {
            Ok(page) => page,
            // Retention removed what the tab missed: asking again changes nothing. The tab
            // goes on live (the web app reloads); the run's own log read says it cannot judge.
            Err(PageError::Gone { oldest_seq }) => {
                run.rec.stats.replays_gone.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    tab = tab.index,
                    after,
                    oldest_seq,
                    "replay refused (410): retention removed what the tab missed"
                );
                break;
            }
            Err(e) => return Err(e.to_string()),
        };
        {
            let mut ledger = tab.ledger.lock().expect("poisoned");
            for event in &page.events {
                recovered += u64::from(ledger.record_replayed(event.payload.seq));
            }
        }
        run.rec
            .stats
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
            run.rec
                .stats
                .resync_recovered
                .fetch_add(recovered, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(tab = tab.index, error = %e, "resync replay failed; retrying");
            tab.request_resync(after);
        }
    }
}
