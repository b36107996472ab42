//! Handing out: committed events to their rooms (to the other servers first, then to this
//! server's sockets one by one), events relayed from the other servers, and resync notices,
//! with what a full queue missed kept owed (see `delivery`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use metrics::Counter;
use rand::Rng;
use serde_json::value::RawValue;
use socketioxide::BroadcastError;
use socketioxide_redis::drivers::Driver;
use tracing::Instrument;

use super::delivery::{self, Outcome};
use super::faults::{self, FaultPlan};
use super::protocol::{RESYNC, Resync};
use super::{Realtime, ResyncScope, SocketRef};
use crate::auth::AuthUser;
use crate::db::{EmitTurn, now_micros};
use crate::events::LoggedEvent;
use crate::telemetry::otel;

impl Realtime {
    /// Tells sockets that events with `seq > after` may not have reached them, with `reason`
    /// (one of `RESYNC_REASONS`), as far as `scope` says. False when it could not be
    /// published to the other servers (nothing counted then for [`ResyncScope::Cluster`]).
    pub(super) async fn resync(
        &self,
        after: i64,
        down: Duration,
        reason: &'static str,
        scope: ResyncScope,
    ) -> bool {
        let notice = Resync {
            after,
            node: self.node.clone(),
            reason: reason.into(),
            down_ms: down.as_millis() as u64,
        };
        let sockets = self.io.local().sockets().len();
        let mut published = true;
        let owing = match scope {
            ResyncScope::Local => self.resync_each(&notice, reason),
            ResyncScope::Cluster | ResyncScope::ClusterOrLocal => {
                match self.io.emit(RESYNC, &notice).await {
                    Ok(()) => 0,
                    Err(BroadcastError::Adapter(e)) => {
                        published = false;
                        if scope == ResyncScope::Cluster {
                            tracing::debug!(error = %e, reason, "resync notice not published yet");
                            return false;
                        }
                        tracing::warn!(error = %e, reason, "resync notice not published: sending it to this server's sockets only");
                        self.resync_each(&notice, reason)
                    }
                    Err(BroadcastError::Socket(errors)) => {
                        // Some of this server's sockets did not take it (full queues), and the
                        // broadcast does not say which: each is sent it on its own, so those that
                        // took it get it twice (a second replay, of what they already have).
                        tracing::warn!(
                            failed = errors.len(),
                            reason,
                            "resync notice not taken by every socket here: sending it socket by socket"
                        );
                        self.resync_each(&notice, reason)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, reason, "resync notice not serialized");
                        0
                    }
                }
            }
        };
        if owing > 0 {
            tracing::warn!(
                owing,
                reason,
                "resync notice not taken by full queues: owed to those sockets until they take it"
            );
        }
        self.metrics.resynced(reason).increment(1);
        tracing::warn!(
            after,
            sockets,
            reason,
            ?scope,
            down_ms = notice.down_ms,
            "resync sent: clients replay what they may have missed"
        );
        published
    }

    /// Emits committed events to their rooms, in order: to the other servers first (they hand
    /// them to their sockets), then to this server's sockets, one by one (see `delivery`).
    /// Taking the [`EmitTurn`] proves the caller committed and still holds this process's
    /// write turn.
    pub async fn emit(&self, turn: &EmitTurn, events: &[LoggedEvent]) {
        for event in events {
            let span = tracing::info_span!(
                "socketio.emit",
                otel.kind = "producer",
                event = event.kind.name(),
                seq = event.seq,
                recipients = tracing::field::Empty,
            );
            // With traces on, receivers continue this span; without, the request's context.
            let traceparent = otel::traceparent_of(&span).or_else(|| event.traceparent.clone());
            let emission = async {
                if let Some((plan, [.., delayed, _], _)) = &self.faults
                    && !plan.delay.is_zero()
                {
                    tokio::time::sleep(plan.delay).await;
                    delayed.increment(1);
                }
                let mut payload = event.payload(now_micros(), false);
                payload.traceparent = traceparent;
                let payload = match serde_json::value::to_raw_value(&payload) {
                    Ok(payload) => payload,
                    Err(e) => {
                        self.metrics.emission_errors.increment(1);
                        tracing::error!(seq = event.seq, error = %e, "emission failed: payload not serialized");
                        return 0;
                    }
                };
                let name = event.kind.name();
                self.publish(event, name, &payload).await;
                // Looked up after the publish (and a fault's delay): a socket that left the
                // room meanwhile has its leave acked with a watermark below this event.
                let targets = self.io.local().to(event.rooms.clone()).sockets();
                tracing::Span::current().record("recipients", targets.len());
                match &self.faults {
                    Some(faults) => {
                        self.hand_out_with_faults(event, &targets, name, &payload, faults);
                    }
                    None => self.hand_out(event.seq, &targets, name, &payload),
                }
                targets.len()
            };
            let recipients = emission.instrument(span).await;
            let took = turn.committed_at.elapsed();
            self.metrics.event_emitted(event.kind).increment(1);
            self.metrics.emission_latency.record(took.as_secs_f64());
            self.metrics.emission_recipients.record(recipients as f64);
            self.metrics.last_seq.set(event.seq as f64);
            self.emitted_through.fetch_max(event.seq, Ordering::Release);
            self.announced(event.seq);
            tracing::info!(
                event = event.kind.name(),
                seq = event.seq,
                recipients,
                micros = took.as_micros() as u64,
                "event emitted"
            );
        }
    }

    /// Sends an event to the other servers. It returns once this server's own copy came back
    /// through the subscription (see `cluster`), so every event of another server published
    /// before it has been handed out here. A failed publish leaves a cluster-wide resync owed.
    async fn publish(&self, event: &LoggedEvent, name: &str, payload: &RawValue) {
        if !self.link.is_clustered() {
            return;
        }
        let relayed = delivery::Relayed {
            node: self.node.clone(),
            seq: event.seq,
            event: name.to_string(),
            rooms: event.rooms.clone(),
            payload: payload.to_owned(),
        };
        let bytes = match serde_json::to_vec(&relayed) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.metrics.emission_errors.increment(1);
                tracing::error!(seq = event.seq, error = %e, "event not relayed: not serialized");
                return;
            }
        };
        if let Err(e) = self.link.publish(self.events_channel.clone(), bytes).await {
            self.metrics.adapter_publish_failures.increment(1);
            self.owed.cluster(event.seq - 1);
            tracing::warn!(seq = event.seq, error = %e, "publish failed: delivering to this server's sockets only; the cluster will be told to resync");
        }
    }

    /// An event another server committed, as it arrived through the link.
    pub(super) fn take_relayed(&self, bytes: &[u8]) {
        let relayed: delivery::Relayed = match serde_json::from_slice(bytes) {
            Ok(relayed) => relayed,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable event from another server: ignored");
                return;
            }
        };
        if relayed.node == self.node {
            return;
        }
        let targets = self.io.local().to(relayed.rooms).sockets();
        self.hand_out(relayed.seq, &targets, &relayed.event, &relayed.payload);
        self.announced(relayed.seq);
    }

    /// Hands an event to each socket; a socket whose queue is full owes a resync from just
    /// before it.
    fn hand_out(&self, seq: i64, sockets: &[SocketRef], name: &str, payload: &RawValue) {
        let mut skipped = 0;
        for socket in sockets {
            // A socket still owing a resync gets it first, or nothing (see `Owed`).
            if !self.settle_socket(socket) {
                skipped += 1;
                continue;
            }
            if let Outcome::Full = Outcome::from(socket.emit(name, payload)) {
                skipped += 1;
                self.owed.socket(socket.id, seq - 1, "queue-full");
            }
        }
        if skipped > 0 {
            self.metrics.queue_full_skips.increment(skipped);
            tracing::warn!(
                seq,
                skipped,
                "socket queues full: deliveries skipped; those sockets will be told to resync"
            );
        }
    }

    /// Hands out socket by socket, skipping, repeating, misaddressing or reordering single
    /// deliveries.
    fn hand_out_with_faults(
        &self,
        event: &LoggedEvent,
        targets: &[SocketRef],
        name: &str,
        payload: &RawValue,
        (plan, [dropped, duplicated, misrouted, reordered, ..], held): &(
            FaultPlan,
            [Counter; 6],
            faults::HeldBack,
        ),
    ) {
        let mut outsiders: Vec<_> = if plan.misroute > 0.0 {
            let rooms = &event.rooms;
            self.io
                .local()
                .sockets()
                .into_iter()
                .filter(|s| !s.rooms().iter().any(|r| rooms.iter().any(|e| e == r)))
                .collect()
        } else {
            Vec::new()
        };
        let mut rng = rand::rng();
        for socket in targets {
            if rng.random_bool(plan.drop) {
                dropped.increment(1);
                // Named per socket so a test can tell whose deliveries were dropped.
                let user = socket.extensions.get::<AuthUser>().map(|u| u.id);
                tracing::info!(
                    seq = event.seq,
                    socket = %socket.id,
                    user = %user.as_deref().unwrap_or("-"),
                    "fault injected: delivery dropped"
                );
                continue;
            }
            let mut holding = held.lock();
            let previous = holding.remove(&socket.id);
            if previous.is_none() && plan.reorder > 0.0 && rng.random_bool(plan.reorder) {
                holding.insert(
                    socket.id,
                    faults::Held {
                        seq: event.seq,
                        name: name.to_string(),
                        payload: payload.to_owned(),
                    },
                );
                drop(holding);
                release_later(held.clone(), socket.clone(), event.seq, dropped.clone());
                continue;
            }
            let sent = socket.emit(name, payload).is_ok();
            if let Some(h) = previous {
                // The one held back goes right after this one: one delivery out of order.
                match socket.emit(&h.name, &*h.payload) {
                    Ok(()) if sent => reordered.increment(1),
                    Ok(()) => {}
                    Err(_) => dropped.increment(1),
                }
            }
            drop(holding);
            if !sent {
                continue;
            }
            if rng.random_bool(plan.duplicate) && socket.emit(name, payload).is_ok() {
                duplicated.increment(1);
            }
            if !outsiders.is_empty() && rng.random_bool(plan.misroute) {
                // Without replacement: an outsider gets one stray copy per event at most, so
                // each misroute is exactly one unexpected delivery.
                let outsider = outsiders.swap_remove(rng.random_range(0..outsiders.len()));
                if outsider.emit(name, payload).is_ok() {
                    misrouted.increment(1);
                }
            }
        }
    }

    /// Sends `notice` to each of this server's sockets; a socket whose queue is full owes it
    /// (see [`Owed::settle_socket`]: it is handed nothing more until it takes it). Returns how
    /// many owe it.
    fn resync_each(&self, notice: &Resync, reason: &'static str) -> usize {
        let mut owing = 0;
        for socket in self.io.local().sockets() {
            if let Outcome::Full = Outcome::from(socket.emit(RESYNC, notice)) {
                self.owed.socket(socket.id, notice.after, reason);
                owing += 1;
            }
        }
        owing
    }

    /// Sends `socket` the resync it owes, if any (see [`Owed::settle_socket`]); true when it
    /// may be handed a later event.
    fn settle_socket(&self, socket: &SocketRef) -> bool {
        self.owed.settle_socket(socket.id, |after, reason| {
            let notice = Resync {
                after,
                node: self.node.clone(),
                reason: reason.into(),
                down_ms: 0,
            };
            let sent = Outcome::from(socket.emit(RESYNC, &notice));
            if let Outcome::Delivered = sent {
                self.metrics.resynced(reason).increment(1);
                tracing::info!(socket = %socket.id, after, reason, "resync sent to a socket whose queue was full");
            }
            sent
        })
    }

    /// Notes that `seq` was handed out here (see `background::watch_announced`).
    fn announced(&self, seq: i64) {
        self.announced.lock().expect("poisoned").insert(seq);
    }

    /// Of `committed` (ascending), those never handed out here; forgets every seq up to
    /// `through`, which has been looked at for good.
    pub(super) fn never_announced(&self, committed: &[i64], through: i64) -> Vec<i64> {
        let mut announced = self.announced.lock().expect("poisoned");
        let missing = committed
            .iter()
            .filter(|seq| !announced.contains(seq))
            .copied()
            .collect();
        *announced = announced.split_off(&(through + 1));
        missing
    }

    /// Sends the resyncs owed (see `delivery`); what cannot be sent yet stays owed.
    pub(super) async fn settle_owed(&self) {
        if self.owed.is_empty() {
            return;
        }
        for sid in self.owed.sockets() {
            match self.io.get_socket(sid) {
                Some(socket) => {
                    self.settle_socket(&socket);
                }
                None => self.owed.forget(sid),
            }
        }
        let cluster = self.owed.take_cluster();
        if let Some(after) = cluster
            && !self
                .resync(
                    after,
                    Duration::ZERO,
                    "publish-failed",
                    ResyncScope::Cluster,
                )
                .await
        {
            self.owed.cluster(after);
        }
    }
}

/// `reorder`: a held-back delivery with no next one to its socket within
/// [`faults::HOLD_AT_MOST`] goes alone, late but in order (a socket gone by then has lost it,
/// counted as a drop).
fn release_later(held: faults::HeldBack, socket: SocketRef, seq: i64, dropped: Counter) {
    tokio::spawn(async move {
        tokio::time::sleep(faults::HOLD_AT_MOST).await;
        let mut holding = held.lock();
        if holding.get(&socket.id).is_some_and(|h| h.seq == seq)
            && let Some(h) = holding.remove(&socket.id)
            && socket.emit(&h.name, &*h.payload).is_err()
        {
            dropped.increment(1);
        }
    });
}
