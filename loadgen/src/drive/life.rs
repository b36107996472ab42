//! A booking tab's life, outside goose (goose drives the REST actors only, `scenario`): it
//! opens when the ramp reaches it (with `--stages`, when its stage comes), connects and joins
//! its rooms, then takes turns until the action window is over: open or close as its stage
//! says, reconnect if churn or a dropped connection asked it to, replay if a server sent a
//! resync, and hand goose's reporter a sample of what it received. A turn's pause ends early
//! when the tab must reconnect or resync. Connects, joins, reconnects and replays go to goose's
//! report through the run's feed (`record::goose_feed`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::drive::reconnect::{SIO, reconnect, resync};
use crate::drive::run::Run;
use crate::judge::verify::{Joined, RoomRef};

/// Starts the life of every tab of this generator: without `--stages`, tab `k` opens `k /
/// launch_rate` seconds from now. Each task ends once [`Run::stopping`] is set.
pub fn spawn_all(run: &Arc<Run>, launch_rate: f64) -> Vec<tokio::task::JoinHandle<()>> {
    let start = Instant::now();
    (0..run.tabs.len())
        .map(|index| {
            let run = run.clone();
            let open_at = start + Duration::from_secs_f64(index as f64 / launch_rate);
            tokio::spawn(async move { live(&run, index, open_at).await })
        })
        .collect()
}

/// Tells every tab its life is over (at the end of the action window) and waits up to
/// `grace` for each to finish the turn it is in (a reconnect gives up at the run's end);
/// what is still running then is stopped.
pub async fn stop_all(run: &Run, lives: Vec<tokio::task::JoinHandle<()>>, grace: Duration) {
    run.stopping.store(true, Ordering::SeqCst);
    for tab in &run.tabs {
        tab.wake.notify_one();
    }
    let deadline = Instant::now() + grace;
    for life in lives {
        let abort = life.abort_handle();
        if tokio::time::timeout_at(deadline.into(), life)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn live(run: &Arc<Run>, index: usize, open_at: Instant) {
    let mut staged = run.stage_window(index).map(|(open_at, close_at)| Staged {
        open_at,
        close_at,
        cutoff: None,
        phase: Phase::Waiting,
    });
    if staged.is_none() {
        tokio::time::sleep_until(open_at.into()).await;
        if run.stopping.load(Ordering::SeqCst) {
            return;
        }
        connect_and_join(run, index).await;
    }
    while !run.stopping.load(Ordering::SeqCst) {
        turn(run, index, &mut staged).await;
    }
}

#[derive(Clone, Copy)]
struct Staged {
    open_at: Instant,
    close_at: Option<Instant>,
    /// Read `--settle` before the close: the tab is owed nothing committed after it (see
    /// [`cutoff_due`]).
    cutoff: Option<i64>,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    /// Opened; `true` when it joined all its rooms (and so counts in `tabs_joined`).
    Open(bool),
    Closed,
}

impl Staged {
    /// The next time the tab opens, takes its cutoff or closes, if any.
    fn next_change(&self, grace: Duration) -> Option<Instant> {
        match (self.phase, self.cutoff) {
            (Phase::Waiting, _) => Some(self.open_at),
            (Phase::Open(_), None) => self.close_at.map(|at| cutoff_due(at, grace)),
            (Phase::Open(_), Some(_)) => self.close_at,
            (Phase::Closed, _) => None,
        }
    }
}

/// When a tab closing at `close` takes its cutoff: the last committed `seq`, `grace`
/// (`--settle`) before it leaves. It stays in its rooms meanwhile, so every event up to the
/// cutoff has had the settle to reach it, on this server or through another one's link (a
/// leave's ack alone covers what its own server emitted, not what another's is still
/// sending).
fn cutoff_due(close: Instant, grace: Duration) -> Instant {
    close.checked_sub(grace).unwrap_or(close)
}

/// Connects tab `index` and joins its rooms, recording both in goose. True when it joined all
/// of them.
async fn connect_and_join(run: &Arc<Run>, index: usize) -> bool {
    let tab = &run.tabs[index];
    let started = Instant::now();
    let connected = crate::drive::receive::connect(run, index).await;
    let error = connected.as_ref().err().map(String::as_str);
    run.feed
        .record(SIO, "connect", started.elapsed(), connected.is_ok(), error);
    if let Err(e) = connected {
        tracing::warn!(tab = index, error = %e, "tab could not connect");
        return false;
    }
    run.stats.tabs_connected.fetch_add(1, Ordering::Relaxed);
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
        run.stats.joins[kind][usize::from(!ok)].fetch_add(1, Ordering::Relaxed);
        run.feed
            .record(SIO, label, started.elapsed(), ok, error.as_deref());
        match ack {
            Ok(a) if a.ok => {
                let watermark = a.watermark.unwrap_or(run.start_seq);
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
        let joined = run.stats.tabs_joined.fetch_add(1, Ordering::Relaxed) + 1;
        if joined as usize == run.tabs.len() {
            run.start_actions();
        }
    }
    all_joined
}

/// `--stages` closes tab `index`: it leaves its rooms (each owed up to `cutoff` or its leave's
/// ack, the lower) and disconnects.
async fn close_tab(run: &Arc<Run>, index: usize, joined: bool, cutoff: i64) {
    let tab = &run.tabs[index];
    let started = Instant::now();
    let failed = tab.leave_all(cutoff).await;
    tab.disconnect().await;
    if joined {
        run.stats.tabs_left.fetch_add(1, Ordering::Relaxed);
    }
    let error = (!failed.is_empty()).then(|| format!("could not leave {}", failed.join(", ")));
    run.feed.record(
        SIO,
        "leave rooms",
        started.elapsed(),
        failed.is_empty(),
        error.as_deref(),
    );
}

/// With `--stages`: opens or closes the tab when its time has come; returns when its turn
/// should end at the latest (its next change).
async fn stage_change(
    run: &Arc<Run>,
    index: usize,
    staged: &mut Option<Staged>,
) -> Option<Instant> {
    let staged = staged.as_mut()?;
    let now = Instant::now();
    let grace = run.config.settle;
    match (staged.phase, staged.close_at, staged.cutoff) {
        (Phase::Waiting, ..) if now >= staged.open_at => {
            staged.phase = Phase::Open(connect_and_join(run, index).await);
        }
        (Phase::Open(_), Some(close), None) if now >= cutoff_due(close, grace) => {
            staged.cutoff = Some(run.committed.load(Ordering::Relaxed));
        }
        (Phase::Open(joined), Some(close), Some(cutoff)) if now >= close => {
            close_tab(run, index, joined, cutoff).await;
            staged.phase = Phase::Closed;
        }
        _ => {}
    }
    staged.next_change(grace)
}

async fn turn(run: &Arc<Run>, index: usize, staged: &mut Option<Staged>) {
    let tab = &run.tabs[index];
    let mut deadline = Instant::now() + run.config.think_time.max(Duration::from_millis(10));
    if let Some(change) = stage_change(run, index, staged).await {
        deadline = deadline.min(change.max(Instant::now()));
    }
    // A staged tab not open (waiting for its stage, or closed) has nothing to reconnect.
    let open = staged
        .as_ref()
        .is_none_or(|s| matches!(s.phase, Phase::Open(_)));
    if tab.reconnect.swap(false, Ordering::Relaxed) && open {
        reconnect(run, index).await;
    }
    if let Some(after) = tab.take_resync() {
        resync(run, tab, after).await;
    }
    let samples: Vec<_> = std::mem::take(&mut *tab.samples.lock().expect("poisoned"));
    for (kind, fanout_us) in samples {
        run.feed.record(
            SIO,
            format!("receive {}", kind.name()),
            Duration::from_micros(fanout_us),
            true,
            None,
        );
    }
    tab.pause_until(deadline).await;
}
