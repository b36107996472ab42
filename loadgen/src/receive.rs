//! A tab's Socket.IO connection and the receive path: `connect` opens it (rust_socketio, async,
//! WebSocket) with one callback for all named events, and `booking_event` is what every live receipt
//! costs the generator: read the payload's stamp (`seq`, `emittedAt`, `boardroomId`, `node`),
//! mark the tab's ledger, count, and time it. Everything else a tab does is in `tab`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use booking_server::realtime::protocol::{BookingEventKind, EDITING, EventStamp, RESYNC};
use futures_util::FutureExt;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload, TransportType};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::latency::{kind_index, now_us};
use crate::plan::{CLASS_BOOKINGS, CLASS_USER, Page};
use crate::run::Run;
use crate::tab::SOCKET_TIMEOUT;
use crate::verify::{PATH_CROSS, path};

/// Opens the Socket.IO connection and waits for the namespace CONNECT (an emit sent
/// before it is lost, see DESIGN.md).
pub async fn connect(run: &Arc<Run>, index: usize) -> Result<(), String> {
    let tab = &run.tabs[index];
    let generation = tab.next_generation();
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let c = &run.config;
    let mut url = run.hosts[tab.host()].clone();
    for (i, (k, v)) in c.query.iter().enumerate() {
        if i == 0 {
            url = format!("{}/?", url.trim_end_matches('/'));
        } else {
            url.push('&');
        }
        url.push_str(&crate::app::client::encode(k));
        url.push('=');
        url.push_str(&crate::app::client::encode(v));
    }
    let mut builder = ClientBuilder::new(url)
        .namespace(c.namespace.as_deref().unwrap_or("/"))
        .transport_type(match c.transport.unwrap_or_default() {
            crate::config::Transport::Websocket => TransportType::Websocket,
            crate::config::Transport::Polling => TransportType::Polling,
        })
        .reconnect(false)
        .auth(json!({ "token": tab.token }));
    for (k, v) in &c.headers {
        builder = builder.opening_header(k.as_str(), v.as_str());
    }
    if let Some(tls) = &run.tls_connector {
        builder = builder.tls_config(tls.clone());
    }
    // One `on_any` callback for every named event: rust_socketio hands it the payload by
    // value, where an `on` callback gets a deep copy of it (and `on_any` is not called for
    // an event that has its own `on`). Connect, Error and Close reach only `on` callbacks.
    let received = run.clone();
    builder = builder.on_any(move |event, payload, _| {
        if let Event::Custom(name) = &event {
            on_named_event(&received, index, generation, name, payload);
        }
        async {}.boxed()
    });
    let connected = tx.clone();
    builder = builder.on(Event::Connect, move |_, _| {
        let _ = connected.send(Ok(()));
        async {}.boxed()
    });
    // rust_socketio reports a lost transport (node killed, connection reset) as an error,
    // and fires Close only when the server sends a Socket.IO disconnect.
    let failed = run.clone();
    builder = builder.on(Event::Error, move |payload, _| {
        let tab = &failed.tabs[index];
        if !tab.on_drop(&failed.stats, generation, &format!("{payload:?}")) {
            let _ = tx.send(Err(format!("{payload:?}")));
        }
        async {}.boxed()
    });
    let closed = run.clone();
    builder = builder.on(Event::Close, move |_, _| {
        closed.tabs[index].on_drop(&closed.stats, generation, "closed by the server");
        async {}.boxed()
    });
    let client = tokio::time::timeout(SOCKET_TIMEOUT, builder.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect failed: {e}"))?;
    match tokio::time::timeout(SOCKET_TIMEOUT, rx.recv()).await {
        Ok(Some(Ok(()))) => {
            tab.connected_with(client).await;
            Ok(())
        }
        Ok(Some(Err(e))) => {
            let _ = client.disconnect().await;
            Err(format!("refused: {e}"))
        }
        _ => {
            let _ = client.disconnect().await;
            Err("no CONNECT from the server in time".into())
        }
    }
}

/// Routes a named Socket.IO event of tab `index` (connection `generation`) to its handler;
/// names the tab does not listen for are ignored.
fn on_named_event(run: &Run, index: usize, generation: u64, name: &str, payload: Payload) {
    if let Some(kind) = BookingEventKind::from_name(name) {
        if let Payload::Text(values) = &payload
            && let Some(value) = values.first()
        {
            booking_event(run, index, kind, value);
        }
    } else if name == EDITING {
        if let Payload::Text(values) = &payload
            && let Some(value) = values.first()
        {
            run.volatile.received(value, now_us());
        }
    } else if name == RESYNC {
        run.tabs[index].on_resync(&run.stats, generation, payload);
    }
}

/// A live booking event reached tab `index`: the hot path, run in the tab's Socket.IO
/// callback for every receipt, so it only reads the stamp and counts.
pub fn booking_event(run: &Run, index: usize, kind: BookingEventKind, value: &Value) {
    let now = now_us();
    // A payload without a stamp is not recorded: the event it should have been counts lost.
    let Some(stamp) = stamp_of(value) else {
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
    let event_node = value.get("node").and_then(Value::as_str);
    let path = tab.with_node(|tab_node| path(event_node, tab_node));
    run.stats.live_by_path[path].fetch_add(1, Ordering::Relaxed);
    if path == PATH_CROSS {
        run.fault.cross_node_delivery(stamp.seq, stamp.emitted_at);
    }
    let nth = run.stats.deliveries.fetch_add(1, Ordering::Relaxed);
    if let Some(traces) = &run.traces
        && nth.is_multiple_of(traces.every)
        && let Some(traceparent) = value.get("traceparent").and_then(Value::as_str)
    {
        traces.receipt(traceparent, index, stamp.seq, stamp.emitted_at, now);
    }
    if receipt == crate::ledger::Receipt::Duplicate {
        run.stats.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    if !in_order {
        run.stats.out_of_order.fetch_add(1, Ordering::Relaxed);
    }
    let class = match tab.plan.page {
        Page::Dashboard => CLASS_BOOKINGS,
        Page::Calendar(k) => {
            let id = run.boardroom_ids[k];
            if stamp.boardroom_id == id || stamp.previous_boardroom_id == Some(id) {
                run.plan.boardroom_class(k)
            } else {
                CLASS_USER
            }
        }
    };
    run.latency.receipt(
        index,
        kind_index(kind),
        class,
        stamp.seq,
        stamp.emitted_at,
        now,
    );
    let mut samples = tab.samples.lock().expect("poisoned");
    if samples.len() < run.config.goose_samples_per_turn {
        samples.push((kind, (now - stamp.emitted_at).max(0) as u64));
    }
}

/// The stamp of a received event, or `None` when it is not one of ours.
pub fn stamp_of(value: &Value) -> Option<EventStamp> {
    EventStamp::deserialize(value).ok()
}
