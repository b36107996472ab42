//! A booking tab's part of the one tab life (`life`): it connects and joins its rooms, each
//! join's ack giving the watermark it is owed events from; `--settle` before a staged close it
//! takes the last committed `seq` as its cutoff, and at the close leaves its rooms; a
//! reconnect replays from a safe `seq` before the drop up to the rejoin watermark, moving to
//! the next host after a failed attempt; and each turn replays what a resync asked for and
//! hands goose's reporter a sample of what it received. Connects, joins, reconnects and
//! replays go to goose's report through the run's feed (`record::goose_feed`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::drive::life::{Back, Lifeline, TabKind};
use crate::drive::reconnect::{SIO, rejoin, resync};
use crate::drive::run::Run;
use crate::drive::tab::Hold;
use crate::judge::verify::{Joined, RoomRef};
use crate::record::latency::now_us;

impl TabKind for Run {
    /// Where the replay after a reconnect starts.
    type Resume = i64;
    /// The cutoff: the tab is owed nothing committed after it.
    type Closing = i64;

    fn lifeline(&self, index: usize) -> &Lifeline {
        &self.tabs[index].life
    }

    fn turn_every(&self) -> Option<Duration> {
        Some(self.setup.config.think_time.max(Duration::from_millis(10)))
    }

    /// A closing tab stays in its rooms `--settle` after its cutoff, so every event up to the
    /// cutoff has had the settle to reach it, on this server or through another one's link (a
    /// leave's ack alone covers what its own server emitted, not what another's is still
    /// sending).
    fn close_lead(&self) -> Duration {
        self.setup.config.settle
    }

    fn give_up_at(&self) -> Option<Instant> {
        self.end_at()
    }

    async fn open(self: &Arc<Self>, index: usize) -> bool {
        let joined = connect_and_join(self, index).await;
        // What the tab is owed is known now (a room it could not join stays unjoined).
        self.tabs[index].release(Hold::Opening);
        joined
    }

    fn closing(&self, index: usize) -> i64 {
        self.tabs[index].hold(Hold::Closing);
        self.committed.load(Ordering::Relaxed)
    }

    /// Leaves every room (each owed up to the cutoff or its leave's ack, the lower) and
    /// disconnects.
    async fn close(self: &Arc<Self>, index: usize, joined: bool, cutoff: i64) {
        let tab = &self.tabs[index];
        let started = Instant::now();
        let failed = tab.leave_all(cutoff).await;
        tab.disconnect().await;
        if joined {
            self.rec.stats.tabs_left.fetch_add(1, Ordering::Relaxed);
        }
        // Where its rooms end is known now: what is left of it can be judged.
        tab.release(Hold::Closing);
        let error = (!failed.is_empty()).then(|| format!("could not leave {}", failed.join(", ")));
        self.rec.feed.record(
            SIO,
            "leave rooms",
            started.elapsed(),
            failed.is_empty(),
            error.as_deref(),
        );
    }

    /// After churn or a storm the tab drops the connection itself; after an unexpected drop it
    /// is already gone. The replay will start a safe while before the drop (see `Ledger`).
    async fn down(self: &Arc<Self>, index: usize, dropped: Option<Instant>) -> i64 {
        let tab = &self.tabs[index];
        tab.hold(Hold::Reconnecting);
        tab.disconnect().await;
        let since = dropped.map_or(Duration::ZERO, |at| at.elapsed());
        let drop_us = now_us() - since.as_micros() as i64;
        let floor = tab.first_watermark().unwrap_or(self.setup.start_seq);
        self.rec.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        let ledger = tab.ledger.lock().expect("poisoned");
        ledger.replay_start(drop_us, floor)
    }

    async fn attempt(self: &Arc<Self>, index: usize, replay_from: &i64) -> Result<(), String> {
        rejoin(self, &self.tabs[index], *replay_from).await
    }

    async fn failed(self: &Arc<Self>, index: usize) {
        let tab = &self.tabs[index];
        tab.disconnect().await;
        tab.next_host(self.setup.hosts.len());
    }

    async fn back(self: &Arc<Self>, index: usize, back: Back) {
        self.tabs[index].release(Hold::Reconnecting);
        if back.unexpected {
            self.rec.recovered(back.started, back.result.is_ok());
        }
        let error = back.result.as_ref().err().map(String::as_str);
        self.rec.feed.record(
            SIO,
            if back.unexpected {
                "recover"
            } else {
                "reconnect"
            },
            back.started.elapsed(),
            back.result.is_ok(),
            error,
        );
        if let Err(e) = &back.result {
            tracing::warn!(tab = index, error = %e, "tab could not reconnect");
        }
    }

    async fn turn(self: &Arc<Self>, index: usize) {
        let tab = &self.tabs[index];
        if let Some(after) = tab.take_resync() {
            resync(self, tab, after).await;
            tab.resynced();
        }
        let samples: Vec<_> = std::mem::take(&mut *tab.samples.lock().expect("poisoned"));
        for (kind, fanout_us) in samples {
            self.rec.feed.record(
                SIO,
                format!("receive {}", kind.name()),
                Duration::from_micros(fanout_us),
                true,
                None,
            );
        }
    }
}

/// Connects tab `index` and joins its rooms, recording both in goose. True when it joined all
/// of them.
async fn connect_and_join(run: &Arc<Run>, index: usize) -> bool {
    let tab = &run.tabs[index];
    let started = Instant::now();
    let connected = crate::drive::receive::connect(run, index).await;
    let error = connected.as_ref().err().map(String::as_str);
    run.rec
        .feed
        .record(SIO, "connect", started.elapsed(), connected.is_ok(), error);
    if let Err(e) = connected {
        tracing::warn!(tab = index, error = %e, "tab could not connect");
        return false;
    }
    run.rec.stats.tabs_connected.fetch_add(1, Ordering::Relaxed);
    let mut all_joined = true;
    let (mut lowest, mut node) = (i64::MAX, None);
    for (room, class) in run.rooms_of(tab) {
        let started = Instant::now();
        let name = room.name();
        let ack = tab.join(&name).await;
        let ok = matches!(&ack, Ok(a) if a.ok);
        let error = match &ack {
            Ok(a) => a.error.clone(),
            Err(e) => Some(e.clone()),
        };
        let label = format!("join {}", room.kind());
        let kind = match room.kind() {
            "bookings" => 0,
            "boardroom" => 1,
            _ => 2,
        };
        run.rec.stats.joins[kind][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        run.rec
            .feed
            .record(SIO, label, started.elapsed(), ok, error.as_deref());
        match ack {
            Ok(a) if a.ok => {
                let watermark = a.watermark.unwrap_or(run.setup.start_seq);
                lowest = lowest.min(watermark);
                node = node.or(a.node);
                let room = match room {
                    booking_server::realtime::protocol::Room::Bookings => RoomRef::Bookings,
                    booking_server::realtime::protocol::Room::Boardroom(id) => {
                        RoomRef::Boardroom(id)
                    }
                    // Interned when the log is read; stored by name until then.
                    booking_server::realtime::protocol::Room::User(_) => RoomRef::User(u32::MAX),
                };
                tab.joined.lock().expect("poisoned").push((
                    name,
                    Joined {
                        room,
                        watermark,
                        until: i64::MAX,
                        class,
                    },
                ));
            }
            _ => {
                all_joined = false;
                tracing::warn!(tab = index, room = %name, ?error, "tab could not join");
            }
        }
    }
    if lowest != i64::MAX {
        tab.on_node(lowest, node);
    }
    if all_joined {
        let joined = run.rec.stats.tabs_joined.fetch_add(1, Ordering::Relaxed) + 1;
        if joined as usize == run.tabs.len() {
            run.start_actions();
        }
    }
    all_joined
}
