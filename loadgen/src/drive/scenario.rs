//! The goose side: one goose user per tab. On start a tab connects and joins its rooms (with
//! `--stages`, its turns open it when its stage comes, and close it: leave, disconnect); then it
//! takes turns: reconnect if churn or a dropped connection asked it to, replay if a server sent
//! a resync, act if it is an actor, and hand goose a sample of what it received. A turn's pause
//! ends early when the tab must reconnect or resync. Socket.IO connects, joins, reconnects and
//! receipts are goose custom requests, so goose's tables, thresholds and reports cover them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use goose::prelude::*;

use crate::drive::actions::Actor;
use crate::drive::reconnect::{SIO, reconnect, resync};
use crate::drive::run::Run;
use crate::drive::tab::Tab;
use crate::judge::verify::{Joined, RoomRef};

fn transaction<F>(name: &str, f: F) -> Transaction
where
    F: for<'r> Fn(&'r mut GooseUser) -> BoxFuture<'r, TransactionResult> + Send + Sync + 'static,
{
    Transaction::new(Arc::new(f)).set_name(name)
}

/// The tab scenario, bound to this run.
pub fn tab_scenario(run: &Arc<Run>) -> Scenario {
    let on_start = run.clone();
    let on_turn = run.clone();
    scenario!("Tab")
        .register_transaction(
            transaction("open tab", move |user| {
                let run = on_start.clone();
                async move { open_tab(&run, user).await }.boxed()
            })
            .set_on_start(),
        )
        .register_transaction(transaction("tab turn", move |user| {
            let run = on_turn.clone();
            async move { turn(&run, user).await }.boxed()
        }))
}

/// Per-user state kept by goose between turns.
#[derive(Clone)]
struct TabSession {
    actor: Option<Actor>,
    /// The host goose sends this tab's REST requests to (follows the tab's Socket.IO host).
    host: usize,
    /// With `--stages`: when the tab opens and closes, and where it is.
    staged: Option<Staged>,
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

async fn open_tab(run: &Arc<Run>, user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    let Some(tab) = run.tabs.get(index) else {
        return Ok(());
    };
    if run.hosts.len() > 1 {
        user.set_base_url(&run.hosts[tab.plan.host])?;
    }
    // The REST actors share the loadgen's own client: it trusts what --ca-cert and --insecure
    // say (goose's client builder takes no CA), and one pool serves every user, as goose's
    // shared client would.
    user.client = run.http.clone();
    let actor = run
        .actors
        .iter()
        .find(|(_, tab)| *tab == index)
        .map(|(ordinal, _)| Actor::new(run, *ordinal));
    let staged = run.stage_window(index).map(|(open_at, close_at)| Staged {
        open_at,
        close_at,
        cutoff: None,
        phase: Phase::Waiting,
    });
    user.set_session_data(TabSession {
        actor,
        host: tab.host(),
        staged,
    });
    if staged.is_some() {
        // Its turns open it when its stage comes.
        return Ok(());
    }
    connect_and_join(run, user, index).await.map(|_| ())
}

/// Connects tab `index` and joins its rooms, recording both in goose. True when it joined all
/// of them.
async fn connect_and_join(
    run: &Arc<Run>,
    user: &mut GooseUser,
    index: usize,
) -> Result<bool, Box<TransactionError>> {
    let tab = &run.tabs[index];
    let started = Instant::now();
    let connected = crate::drive::receive::connect(run, index).await;
    let error = connected.as_ref().err().map(String::as_str);
    user.record_custom_request_duration(
        SIO,
        "connect",
        started.elapsed(),
        connected.is_ok(),
        None,
        error,
    )
    .await?;
    if let Err(e) = connected {
        tracing::warn!(tab = index, error = %e, "tab could not connect");
        return Ok(false);
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
        user.record_custom_request_duration(
            SIO,
            &label,
            started.elapsed(),
            ok,
            None,
            error.as_deref(),
        )
        .await?;
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
    Ok(all_joined)
}

/// `--stages` closes tab `index`: it leaves its rooms (each owed up to `cutoff` or its leave's
/// ack, the lower) and disconnects.
async fn close_tab(
    run: &Arc<Run>,
    user: &mut GooseUser,
    index: usize,
    joined: bool,
    cutoff: i64,
) -> TransactionResult {
    let tab = &run.tabs[index];
    let started = Instant::now();
    let failed = tab.leave_all(cutoff).await;
    tab.disconnect().await;
    if joined {
        run.stats.tabs_left.fetch_add(1, Ordering::Relaxed);
    }
    let error = (!failed.is_empty()).then(|| format!("could not leave {}", failed.join(", ")));
    user.record_custom_request_duration(
        SIO,
        "leave rooms",
        started.elapsed(),
        failed.is_empty(),
        None,
        error.as_deref(),
    )
    .await?;
    Ok(())
}

/// With `--stages`: opens or closes the tab when its time has come; returns when its turn
/// should end at the latest (its next change).
async fn stage_change(
    run: &Arc<Run>,
    user: &mut GooseUser,
    index: usize,
) -> Result<Option<Instant>, Box<TransactionError>> {
    let Some(mut staged) = user.get_session_data::<TabSession>().and_then(|s| s.staged) else {
        return Ok(None);
    };
    let now = Instant::now();
    let grace = run.config.settle;
    match (staged.phase, staged.close_at, staged.cutoff) {
        (Phase::Waiting, ..) if now >= staged.open_at => {
            staged.phase = Phase::Open(connect_and_join(run, user, index).await?);
        }
        (Phase::Open(_), Some(close), None) if now >= cutoff_due(close, grace) => {
            staged.cutoff = Some(run.committed.load(Ordering::Relaxed));
        }
        (Phase::Open(joined), Some(close), Some(cutoff)) if now >= close => {
            close_tab(run, user, index, joined, cutoff).await?;
            staged.phase = Phase::Closed;
        }
        _ => {}
    }
    if let Some(session) = user.get_session_data_mut::<TabSession>() {
        session.staged = Some(staged);
    }
    Ok(staged.next_change(grace))
}

async fn turn(run: &Arc<Run>, user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    let Some(tab) = run.tabs.get(index) else {
        return Ok(());
    };
    let mut deadline = Instant::now() + run.config.think_time.max(Duration::from_millis(10));
    if let Some(change) = stage_change(run, user, index).await? {
        deadline = deadline.min(change.max(Instant::now()));
    }
    if tab.reconnect.swap(false, Ordering::Relaxed) {
        reconnect(run, user, index).await?;
    }
    if let Some(after) = tab.take_resync() {
        resync(run, user, tab, after).await;
    }
    follow_host(run, user, tab)?;
    let samples: Vec<_> = std::mem::take(&mut *tab.samples.lock().expect("poisoned"));
    for (kind, fanout_us) in samples {
        let name = format!("receive {}", kind.name());
        user.record_custom_request_duration(
            SIO,
            &name,
            Duration::from_micros(fanout_us),
            true,
            None,
            None,
        )
        .await?;
    }
    let actor = user
        .get_session_data_mut::<TabSession>()
        .and_then(|s| s.actor.take());
    match actor {
        Some(mut actor) => {
            actor.turn(run, user, index, deadline).await;
            if let Some(session) = user.get_session_data_mut::<TabSession>() {
                session.actor = Some(actor);
            }
        }
        None => {
            tab.pause_until(deadline).await;
        }
    }
    Ok(())
}

/// After a reconnect moved the tab to another server, its REST requests go there too.
fn follow_host(run: &Run, user: &mut GooseUser, tab: &Tab) -> Result<(), Box<TransactionError>> {
    let host = tab.host();
    let moved = user
        .get_session_data_mut::<TabSession>()
        .filter(|s| s.host != host)
        .map(|s| s.host = host)
        .is_some();
    if moved {
        user.set_base_url(&run.hosts[host])?;
    }
    Ok(())
}
