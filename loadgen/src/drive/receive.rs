//! A booking tab's Socket.IO connection and the receive path: `connect` opens it through the
//! tab client (`client`) with one callback for all named events, and `booking_event` is what every live receipt
//! costs the generator: read the payload's stamp (`seq`, `emittedAt`, `boardroomId`, `node`),
//! mark the tab's ledger, count, and time it. Everything else a tab does is in `tab`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use booking_server::realtime::protocol::{BookingEventKind, EDITING, RESYNC};
use serde::Deserialize;
use serde_json::json;

use crate::drive::client::{Args, ConnectOptions};
use crate::drive::{connect, stamp};

use crate::drive::run::Run;
use crate::drive::tab::SOCKET_TIMEOUT;
use crate::judge::verify::{PATH_CROSS, path};
use crate::plan::{CLASS_BOOKINGS, CLASS_USER, Page};
use crate::record::latency::{kind_index, now_us};

/// Opens the Socket.IO connection through the tab client and waits for the namespace
/// CONNECT (an emit sent before it is lost, see DESIGN.md).
pub async fn connect(run: &Arc<Run>, index: usize) -> Result<(), String> {
    let tab = &run.tabs[index];
    let generation = tab.next_generation();
    let c = &run.setup.config;
    let options = ConnectOptions {
        url: run.setup.hosts[tab.host()].clone(),
        path: "/socket.io".into(),
        namespace: c.namespace.clone().unwrap_or_else(|| "/".into()),
        transport: c.transport.unwrap_or_default(),
        client: run.setup.tab_client,
        auth: Some(json!({ "token": tab.token })),
        headers: c.headers.clone(),
        query: c.query.clone(),
        timeout: SOCKET_TIMEOUT,
        tls: run.setup.tls_connector.clone(),
    };
    let (received, failed) = (run.clone(), run.clone());
    let client = connect::open(
        &options,
        Arc::new(move |name, args| on_named_event(&received, index, generation, name, args)),
        // A lost transport (node killed, connection reset) or a Socket.IO disconnect.
        Arc::new(move |why| {
            failed.tabs[index].on_drop(&failed.rec.stats, generation, &why);
        }),
    )
    .await?;
    tab.connected_with(client).await;
    Ok(())
}

/// Routes a named Socket.IO event of tab `index` (connection `generation`) to its handler;
/// names the tab does not listen for are ignored.
fn on_named_event(run: &Run, index: usize, generation: u64, name: &str, args: &Args<'_>) {
    if let Some(kind) = BookingEventKind::from_name(name) {
        booking_event(run, index, kind, args);
    } else if name == EDITING {
        /// What a receipt reads of an `editing` notice.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Sent {
            sent_at: Option<i64>,
        }
        if let Some(sent) = args.nth::<Sent>(0) {
            run.rec.volatile.received(sent.sent_at, now_us());
        }
    } else if name == RESYNC {
        run.tabs[index].on_resync(&run.rec.stats, generation, args.nth(0));
    }
}

/// A live booking event reached tab `index`: the hot path, run in the tab's Socket.IO
/// callback for every receipt, so it only reads the stamp and counts.
pub fn booking_event(run: &Run, index: usize, kind: BookingEventKind, args: &Args<'_>) {
    let now = now_us();
    // A payload without a stamp is not recorded: the event it should have been counts lost.
    let Some(stamp) = stamp::read(args) else {
        tracing::warn!(
            tab = index,
            "received an event without seq/boardroomId/emittedAt"
        );
        return;
    };
    let tab = &run.tabs[index];
    let (receipt, in_order) = {
        let mut ledger = tab.ledger.lock().expect("poisoned");
        let in_order = stamp.seq >= ledger.last_live();
        (ledger.record_live_at(stamp.seq, now), in_order)
    };
    let event_node = stamp.node.as_deref();
    let path = tab.with_node(|tab_node| path(event_node, tab_node));
    run.rec.stats.live_by_path[path].fetch_add(1, Ordering::Relaxed);
    if path == PATH_CROSS {
        run.rec
            .fault
            .cross_node_delivery(stamp.seq, stamp.emitted_at);
    }
    let nth = run.rec.stats.deliveries.fetch_add(1, Ordering::Relaxed);
    if let Some(traces) = &run.rec.traces
        && nth.is_multiple_of(traces.every)
        && let Some(traceparent) = stamp.traceparent.as_deref()
    {
        traces.receipt(traceparent, index, stamp.seq, stamp.emitted_at, now);
    }
    if receipt == crate::record::ledger::Receipt::Duplicate {
        run.rec.stats.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    if !in_order {
        run.rec.stats.out_of_order.fetch_add(1, Ordering::Relaxed);
    }
    let class = match tab.plan.page {
        Page::Dashboard => CLASS_BOOKINGS,
        Page::Calendar(k) => {
            let id = run.setup.boardroom_ids[k];
            if stamp.boardroom_id == id || stamp.previous_boardroom_id == Some(id) {
                run.setup.plan.boardroom_class(k)
            } else {
                CLASS_USER
            }
        }
    };
    run.rec.latency.receipt(
        index,
        kind_index(kind),
        class,
        stamp.seq,
        stamp.emitted_at,
        now,
    );
    let mut samples = tab.samples.lock().expect("poisoned");
    if samples.len() < run.setup.config.goose_samples_per_turn {
        samples.push((kind, (now - stamp.emitted_at).max(0) as u64));
    }
}
