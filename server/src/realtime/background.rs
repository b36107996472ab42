//! The tasks each server runs beside its sockets: events relayed from the other servers
//! handed out in arrival order, owed resyncs retried, and the link to the other servers
//! followed (its gauge, and the resyncs an outage or an overflow calls for).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use socketioxide_redis::drivers::Driver;

use super::sockets::ConnectedAt;
use super::{ResyncScope, delivery};
use crate::app::{AppState, StartError};
use crate::events;

/// How far back a resync reaches before the moment the link was found down: covers the time
/// to notice (a missed ping) and events committed just before that were still being emitted.
const RESYNC_MARGIN: Duration = Duration::from_secs(5);

/// Hands the events other servers commit to this server's sockets, in the order they arrive.
/// Each is handed out before the next is taken from the queue, which is what lets a publish
/// wait for its own copy to know that everything before it was handed out here.
pub(super) async fn receive_relayed(state: &AppState) -> Result<(), StartError> {
    let realtime = &state.realtime;
    if !realtime.link.is_clustered() {
        return Ok(());
    }
    let mut relayed = realtime
        .link
        .subscribe(
            realtime.events_channel.clone(),
            state.config.relay_queue_size as usize,
        )
        .await
        .map_err(|e| StartError::Config(format!("redis subscription: {e}")))?;
    // `relay-delay` (test-only): a pause after each, while the queue backs up.
    let pace = realtime.faults.as_ref().and_then(|(plan, [.., paced], _)| {
        (!plan.relay_delay.is_zero()).then(|| (plan.relay_delay, paced.clone()))
    });
    let weak = state.downgrade();
    tokio::spawn(async move {
        while let Some((_, bytes)) = relayed.next().await {
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            st.realtime.take_relayed(&bytes);
            drop(st);
            if let Some((pause, paced)) = &pace {
                paced.increment(1);
                tokio::time::sleep(*pause).await;
            }
        }
    });
    Ok(())
}

/// Sends owed resyncs every [`delivery::RETRY_EVERY`] until they go through.
pub(super) fn settle_owed(state: &AppState) {
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(delivery::RETRY_EVERY);
        loop {
            tick.tick().await;
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            st.realtime.settle_owed().await;
        }
    });
}

/// Follows the link to the other servers: the `socketio_adapter_up` gauge, logs, and resync
/// notices. When the link comes back, every socket of the cluster is told to replay from the
/// log's watermark as it was [`RESYNC_MARGIN`] before the outage was noticed (sampled every
/// second). When the link comes up for the first time, that is needed only if this server
/// already had sockets, which missed what the others published, or emitted events, which the
/// others' sockets missed; a server starting into a healthy cluster disturbs no one. When a
/// message from another server was dropped here (a full queue), or an own publish was not seen
/// taken back in time (so older events of others may reach the sockets after it), this server's
/// sockets are told to replay from the same watermark.
pub(super) fn watch_link(state: &AppState, start_seq: i64) {
    let Some(mut link) = state.realtime.link.state() else {
        state.metrics.adapter_up.set(1.0);
        return;
    };
    let (overflows, lapses) = (
        state.realtime.link.overflows(),
        state.realtime.link.lapses(),
    );
    // The link may be up already: look at its state as it is now, then at each change.
    link.mark_changed();
    let weak = state.downgrade();
    tokio::spawn(async move {
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        // The watermark a resync starts from: as it was a margin before now.
        let watermark_before = |samples: &VecDeque<(Instant, i64)>| {
            let cutoff = Instant::now().checked_sub(RESYNC_MARGIN);
            samples
                .iter()
                .rev()
                .find(|(at, _)| cutoff.is_some_and(|c| *at <= c))
                .or(samples.front())
                .map_or(start_seq, |(_, seq)| *seq)
        };
        // Where the next resync starts, while an outage is open.
        let mut gap_from = Some(start_seq);
        let mut down_at = Some(Instant::now());
        let mut seen_ups = 0;
        let mut was_up = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let woken = async |notify: &Option<Arc<tokio::sync::Notify>>| match notify {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        };
        // What went wrong here only: a dropped message, or a lapse of order.
        let local_trouble = async || {
            tokio::select! {
                () = woken(&overflows) => "adapter-overflow",
                () = woken(&lapses) => "order-lapse",
            }
        };
        loop {
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = *link.borrow_and_update();
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    st.metrics.adapter_up.set(if now.up { 1.0 } else { 0.0 });
                    // A flap between two looks still counts as an outage.
                    let went_down = !now.up || (was_up && now.ups > seen_ups);
                    if went_down {
                        let before = watermark_before(&samples);
                        gap_from = Some(gap_from.map_or(before, |g| g.min(before)));
                        down_at.get_or_insert_with(Instant::now);
                    }
                    if now.up && now.ups > seen_ups {
                        let first = seen_ups == 0;
                        if !first {
                            st.metrics.adapter_recoveries.increment(1);
                        }
                        let down = down_at.take().map_or(Duration::ZERO, |d| d.elapsed());
                        if let Some(after) = gap_from.take() {
                            // A socket that connected once the link was up missed nothing.
                            let missed_something = !first
                                || st.realtime.emitted_through() > start_seq
                                || st.realtime.io.local().sockets().iter().any(|s| {
                                    s.extensions
                                        .get::<ConnectedAt>()
                                        .is_some_and(|at| at.0 < now.since)
                                });
                            if missed_something {
                                st.realtime.resync(after, down, "adapter-recovered", ResyncScope::ClusterOrLocal).await;
                            } else {
                                tracing::info!("redis link up at start: no socket or event yet, no resync needed");
                            }
                        }
                    }
                    seen_ups = now.ups;
                    was_up = now.up;
                }
                reason = local_trouble() => {
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    let after = watermark_before(&samples);
                    st.realtime.resync(after, Duration::ZERO, reason, ResyncScope::Local).await;
                    drop(st);
                    // At most one a second while they go on (each replays every tab); the next
                    // one reaches back past this pause.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ = tick.tick() => {
                    let Some(st) = AppState::upgrade(&weak) else { return };
                    if let Ok(seq) = events::last_seq(&st.db.pool).await {
                        samples.push_back((Instant::now(), seq));
                        if samples.len() > 30 {
                            samples.pop_front();
                        }
                    }
                }
            }
        }
    });
}

/// How long a committed event may go unannounced here before it counts as never announced:
/// well past the time from a commit to its hand-out, relay included.
pub const ANNOUNCE_GRACE: Duration = Duration::from_secs(5);

/// Looks, once a second, at the events committed at least [`ANNOUNCE_GRACE`] ago that this
/// server should have handed out (all of them with Redis; its own without, as no other
/// server's reach its sockets then), and finds those it never did: a COMMIT whose reply was
/// lost (the write failed for its client, and emitted nothing), a server killed between its
/// commit and its publish, a `publish-failed` resync owed in the memory of a server that died,
/// a relayed event dropped. Each is counted (`booking_events_unannounced_total`) and this
/// server's sockets are sent `resync` (`unannounced`) from just before the first.
pub(super) fn watch_announced(state: &AppState, start_seq: i64) {
    let weak = state.downgrade();
    let only_node =
        (!state.realtime.link.is_clustered()).then(|| state.realtime.node().to_string());
    let link = state.realtime.link.state();
    tokio::spawn(async move {
        let mut samples: VecDeque<(Instant, i64)> = VecDeque::new();
        let mut checked = start_seq;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(st) = AppState::upgrade(&weak) else {
                return;
            };
            let Ok(last) = events::last_seq(&st.db.pool).await else {
                continue;
            };
            samples.push_back((Instant::now(), last));
            // The log's end as it was a grace ago: what was committed by then.
            let mut upto = None;
            while let Some(&(at, seq)) = samples.front()
                && at.elapsed() >= ANNOUNCE_GRACE
            {
                upto = Some(seq);
                samples.pop_front();
            }
            let Some(upto) = upto.filter(|u| *u > checked) else {
                continue;
            };
            // While the link is down, the others' events cannot arrive: the resync its recovery
            // sends (`adapter-recovered`) covers that stretch.
            if link.as_ref().is_some_and(|link| !link.borrow().up) {
                st.realtime.never_announced(&[], upto);
                checked = upto;
                continue;
            }
            let committed = match events::seqs_between(
                &st.db.pool,
                checked,
                upto,
                only_node.as_deref(),
            )
            .await
            {
                Ok(committed) => committed,
                Err(e) => {
                    tracing::debug!(error = %e, "announce check: log not read; next second");
                    continue;
                }
            };
            let missing = st.realtime.never_announced(&committed, upto);
            checked = upto;
            if let Some(first) = missing.first() {
                st.metrics.unannounced.increment(missing.len() as u64);
                tracing::warn!(
                    count = missing.len(),
                    first,
                    "committed events never handed out here: sockets told to resync"
                );
                st.realtime
                    .resync(first - 1, Duration::ZERO, "unannounced", ResyncScope::Local)
                    .await;
            }
        }
    });
}
