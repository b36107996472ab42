//! The goose side: goose drives the REST actors, and only them (the tabs live outside goose,
//! `life`). Its users are this generator's actors, each acting for its tab, plus one reporter:
//! goose keeps only what its own users record, so the reporter hands it the tabs' Socket.IO
//! records (`record::goose_feed`), and goose's tables, thresholds and reports cover connects,
//! joins, reconnects, replays and receipts as well as the REST requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use goose::prelude::*;

use crate::drive::actions::Actor;
use crate::drive::run::Run;

/// How often the reporter hands goose what the tabs recorded.
const REPORT_EVERY: Duration = Duration::from_millis(250);

fn transaction<F>(name: &str, f: F) -> Transaction
where
    F: for<'r> Fn(&'r mut GooseUser) -> BoxFuture<'r, TransactionResult> + Send + Sync + 'static,
{
    Transaction::new(Arc::new(f)).set_name(name)
}

/// goose's users for this run: [`users`] of them, the actors first, then the reporter.
pub fn users(run: &Run) -> usize {
    run.setup.actors.len() + 1
}

/// The scenario, bound to this run.
pub fn actor_scenario(run: &Arc<Run>) -> Scenario {
    let on_start = run.clone();
    let on_turn = run.clone();
    scenario!("Actor")
        .register_transaction(
            transaction("start", move |user| {
                let run = on_start.clone();
                async move { start(&run, user) }.boxed()
            })
            .set_on_start(),
        )
        .register_transaction(transaction("turn", move |user| {
            let run = on_turn.clone();
            async move { turn(&run, user).await }.boxed()
        }))
}

/// Per-user state kept by goose between turns.
#[derive(Clone)]
enum Role {
    /// Acts for tab `tab`; `host` is where its REST requests go (it follows the tab's
    /// Socket.IO host).
    Actor {
        actor: Option<Box<Actor>>,
        tab: usize,
        host: usize,
    },
    Reporter,
}

fn start(run: &Arc<Run>, user: &mut GooseUser) -> TransactionResult {
    let index = user.weighted_users_index;
    // The REST actors share the loadgen's own client: it trusts what --ca-cert and --insecure
    // say (goose's client builder takes no CA), and one pool serves every user, as goose's
    // shared client would.
    user.client = run.setup.http.clone();
    let role = match run.setup.actors.get(index) {
        Some(&(ordinal, tab)) => {
            let host = run.tabs[tab].host();
            if run.setup.hosts.len() > 1 {
                user.set_base_url(&run.setup.hosts[host])?;
            }
            Role::Actor {
                actor: Some(Box::new(Actor::new(run, ordinal))),
                tab,
                host,
            }
        }
        None => Role::Reporter,
    };
    user.set_session_data(role);
    Ok(())
}

async fn turn(run: &Arc<Run>, user: &mut GooseUser) -> TransactionResult {
    let deadline = Instant::now() + run.setup.config.think_time.max(Duration::from_millis(10));
    let role = user.get_session_data_mut::<Role>().map(|r| match r {
        Role::Actor { actor, tab, .. } => Some((actor.take(), *tab)),
        Role::Reporter => None,
    });
    match role {
        Some(Some((Some(mut actor), tab))) => {
            follow_host(run, user, tab)?;
            actor.turn(run, user, tab, deadline).await;
            if let Some(Role::Actor { actor: slot, .. }) = user.get_session_data_mut::<Role>() {
                *slot = Some(actor);
            }
        }
        Some(None) => report(run, user).await?,
        _ => tokio::time::sleep_until(deadline.into()).await,
    }
    Ok(())
}

/// The reporter's turn: records in goose what the tabs queued, then waits a little.
async fn report(run: &Run, user: &mut GooseUser) -> TransactionResult {
    for r in run.rec.feed.take() {
        user.record_custom_request_duration(
            r.method,
            &r.name,
            r.elapsed,
            r.ok,
            None,
            r.error.as_deref(),
        )
        .await?;
    }
    tokio::time::sleep(REPORT_EVERY).await;
    Ok(())
}

/// After a reconnect moved the actor's tab to another server, its REST requests go there too.
fn follow_host(run: &Run, user: &mut GooseUser, tab: usize) -> Result<(), Box<TransactionError>> {
    let host = run.tabs[tab].host();
    let moved = match user.get_session_data_mut::<Role>() {
        Some(Role::Actor { host: h, .. }) if *h != host => {
            *h = host;
            true
        }
        _ => false,
    };
    if moved {
        user.set_base_url(&run.setup.hosts[host])?;
    }
    Ok(())
}
