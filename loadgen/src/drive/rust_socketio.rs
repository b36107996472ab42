//! rust_socketio (async) behind the tab interface: the reference client, WebSocket and
//! long-polling (`--client rust_socketio`, and the default for `--transport polling`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::drive::client::{Args, ConnectOptions, OnDrop, OnEvent, TabClient, Transport, encode};

/// The URL rust_socketio is given: base, path and query (it appends `EIO` and `transport`).
fn socket_url(o: &ConnectOptions) -> String {
    // engine.io servers match `PATH/` exactly: `/rt` and `/rt/` are the same path.
    let path = o.path.trim_end_matches('/');
    let mut url = format!("{}{path}/", o.url.trim_end_matches('/'));
    for (i, (k, v)) in o.query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
    }
    url
}

/// Opens a connection through rust_socketio and waits for the namespace CONNECT (or its
/// refusal).
pub async fn connect(
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let mut builder = ClientBuilder::new(socket_url(o))
        .namespace(o.namespace.clone())
        .transport_type(match o.transport {
            Transport::Websocket => TransportType::Websocket,
            Transport::Polling => TransportType::Polling,
        })
        .reconnect(false);
    if let Some(auth) = &o.auth {
        builder = builder.auth(auth.clone());
    }
    for (k, v) in &o.headers {
        builder = builder.opening_header(k.as_str(), v.as_str());
    }
    if let Some(tls) = &o.tls {
        builder = builder.tls_config(tls.clone());
    }
    builder = builder.on_any(move |event, payload, _| {
        // rust_socketio names an event called `message` Event::Message, not Custom.
        let name = match &event {
            Event::Custom(name) => Some(name.as_str()),
            Event::Message => Some("message"),
            _ => None,
        };
        if let Some(name) = name {
            match &payload {
                Payload::Text(values) => on_event(name, &Args::Values(values)),
                // Binary attachments are not looked into: counted as an event of the app's.
                _ => on_event(name, &Args::Values(&[])),
            }
        }
        async {}.boxed()
    });
    let connected = tx.clone();
    builder = builder.on(Event::Connect, move |_, _| {
        let _ = connected.send(Ok(()));
        async {}.boxed()
    });
    let (errors, closed) = (on_drop.clone(), on_drop);
    builder = builder.on(Event::Error, move |payload, _| {
        let why = format!("{payload:?}");
        // Before the CONNECT this is the refusal; after it, a lost connection.
        if tx.send(Err(why.clone())).is_err() {
            errors(why);
        }
        async {}.boxed()
    });
    builder = builder.on(Event::Close, move |_, _| {
        closed("closed by the server".into());
        async {}.boxed()
    });
    let client = tokio::time::timeout(o.timeout, builder.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect failed: {e}"))?;
    let answer = tokio::time::timeout(o.timeout, rx.recv()).await;
    // From now on an error is a lost connection, reported through on_drop.
    rx.close();
    match answer {
        Ok(Some(Ok(()))) => Ok(Arc::new(RustSocketio {
            client,
            timeout: o.timeout,
        })),
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

struct RustSocketio {
    client: Client,
    timeout: Duration,
}

impl TabClient for RustSocketio {
    fn emit<'a>(&'a self, event: &'a str, args: Vec<Value>) -> BoxFuture<'a, Result<(), String>> {
        async move {
            self.client
                .emit(event, Payload::Text(args))
                .await
                .map_err(|e| format!("{event}: {e}"))
        }
        .boxed()
    }

    fn emit_with_ack<'a>(
        &'a self,
        event: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Vec<Value>, String>> {
        async move {
            let (tx, rx) = oneshot::channel();
            let tx = Arc::new(Mutex::new(Some(tx)));
            self.client
                .emit_with_ack(
                    event,
                    Payload::Text(args),
                    self.timeout,
                    move |payload, _| {
                        if let Some(tx) = tx.lock().expect("poisoned").take() {
                            let _ = tx.send(payload);
                        }
                        async {}.boxed()
                    },
                )
                .await
                .map_err(|e| format!("{event}: {e}"))?;
            let payload = tokio::time::timeout(self.timeout, rx)
                .await
                .map_err(|_| format!("no ack for {event} in time"))?
                .map_err(|_| format!("no ack for {event}"))?;
            match payload {
                Payload::Text(values) => Ok(values),
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.client.disconnect()).await;
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_carries_path_and_encoded_query() {
        let o = ConnectOptions {
            url: "http://127.0.0.1:3000/".into(),
            path: "/rt/".into(),
            namespace: "/".into(),
            transport: Transport::Websocket,
            client: crate::drive::client::TabClientKind::RustSocketio,
            auth: None,
            headers: vec![],
            query: vec![
                ("client".into(), "load gen".into()),
                ("v".into(), "1&2".into()),
            ],
            timeout: Duration::from_secs(1),
            tls: None,
        };
        assert_eq!(
            socket_url(&o),
            "http://127.0.0.1:3000/rt/?client=load%20gen&v=1%262"
        );
    }
}
