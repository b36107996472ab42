//! The loadgen's own Socket.IO client for tabs: Engine.IO v4 over a WebSocket only
//! (`/socket.io/?EIO=4&transport=websocket`), Socket.IO v5 packets (CONNECT with auth and
//! CONNECT_ERROR, EVENT, ACK with this socket's ack ids, DISCONNECT), the heartbeat (the
//! server's `2` answered `3`, and a session that hears no ping within `pingInterval +
//! pingTimeout` is lost), and binary frames (attachments) skipped unread.
//!
//! One task per connection owns the WebSocket: it reads each frame, hands an EVENT to the
//! tab's callback from the frame's own text, and writes what the tab sends. A receipt takes
//! no lock, no timer and no task hop. rust_socketio (`drive::rust_socketio`) stays as the
//! reference client, and for long-polling.

pub mod packet;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::drive::client::{Args, ConnectOptions, OnDrop, OnEvent, TabClient, encode};
use packet::{Engine, Kind};

/// A tab's read buffer: events are small, and a bigger frame still grows it.
const READ_BUFFER_BYTES: usize = 4096;

/// The WebSocket URL of `o`: `ws(s)://host:port/<path>/?<query>&EIO=4&transport=websocket`.
fn socket_url(o: &ConnectOptions) -> Result<String, String> {
    let base = o.url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        return Err(format!(
            "{}: a tab's URL must start with http://, https://, ws:// or wss://",
            o.url
        ));
    };
    let path = o.path.trim_end_matches('/');
    let mut url = format!("{base}{path}/?");
    for (k, v) in &o.query {
        url.push_str(&encode(k));
        url.push('=');
        url.push_str(&encode(v));
        url.push('&');
    }
    url.push_str("EIO=4&transport=websocket");
    Ok(url)
}

/// What the tab asks its connection's task to write. It goes boxed: the channel keeps a
/// block of 32 slots for each connection whether or not anything is sent, so a slot of 8
/// bytes, not 32, saves 768 bytes a tab (writes are rare: joins, leaves, `editing`).
enum Out {
    /// A text frame, and who waits for it to be written.
    Text(String, oneshot::Sender<Result<(), String>>),
    /// DISCONNECT, then close the WebSocket; no `on_drop`.
    Hangup(oneshot::Sender<()>),
}

/// Acks this socket waits for, by id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// Opens a connection and waits for the namespace CONNECT (or its refusal), within
/// `o.timeout`.
pub async fn connect(
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String> {
    tokio::time::timeout(o.timeout, open(o, on_event, on_drop))
        .await
        .map_err(|_| "connect timed out".to_string())?
}

async fn open(
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String> {
    let url = socket_url(o)?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("connect failed: {url}: {e}"))?;
    for (k, v) in &o.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("connect failed: header {k}: {e}"))?;
        let value =
            HeaderValue::from_str(v).map_err(|e| format!("connect failed: header {k}: {e}"))?;
        request.headers_mut().append(name, value);
    }
    let uri = request.uri().clone();
    let host = uri.host().unwrap_or_default().to_string();
    let secure = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    // A bracketed IPv6 literal is connected to without its brackets.
    let address = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = TcpStream::connect((address.as_str(), port))
        .await
        .map_err(|e| format!("connect failed: {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    if secure {
        let tls = match &o.tls {
            Some(tls) => tls.clone(),
            None => native_tls::TlsConnector::new().map_err(|e| format!("TLS: {e}"))?,
        };
        let stream = tokio_native_tls::TlsConnector::from(tls)
            .connect(&address, tcp)
            .await
            .map_err(|e| format!("connect failed: TLS with {host}: {e}"))?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(upgrade_failed)?;
        handshake(ws, o, on_event, on_drop).await
    } else {
        let (ws, _) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
            .await
            .map_err(upgrade_failed)?;
        handshake(ws, o, on_event, on_drop).await
    }
}

/// Why the WebSocket upgrade failed; a refusal says its status and what the server said (a
/// full server's "server full: ...", say).
fn upgrade_failed(e: tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let body: String = body.trim().chars().take(300).collect();
            format!("connect failed: HTTP {}: {body}", response.status())
        }
        e => format!("connect failed: {e}"),
    }
}

/// Reads the OPEN, sends the CONNECT and reads its answer, then hands the WebSocket to the
/// connection's task.
async fn handshake<S>(
    mut ws: WebSocketStream<S>,
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let opened: packet::Open = loop {
        match next_text(&mut ws).await? {
            Some(text) => match packet::engine(&text) {
                Ok(Engine::Open(json)) => {
                    break serde_json::from_str(json).map_err(|e| {
                        format!("connect failed: an OPEN without its session: {e}")
                    })?;
                }
                Ok(_) => {}
                Err(e) => return Err(format!("connect failed: {e}")),
            },
            None => continue,
        }
    };
    send(&mut ws, packet::connect(&o.namespace, o.auth.as_ref())).await?;
    loop {
        let Some(text) = next_text(&mut ws).await? else {
            continue;
        };
        match packet::engine(&text).map_err(|e| format!("connect failed: {e}"))? {
            Engine::Ping(data) => send(&mut ws, format!("3{data}")).await?,
            Engine::Close => return Err("connect failed: the server closed the session".into()),
            Engine::Message(data) => {
                let p = packet::socket(data).map_err(|e| format!("connect failed: {e}"))?;
                if p.namespace != o.namespace {
                    continue;
                }
                match p.kind {
                    Kind::Connect => break,
                    Kind::ConnectError => {
                        let _ = ws.close(None).await;
                        return Err(format!("refused: {}", refusal(p.data)));
                    }
                    Kind::Disconnect => {
                        return Err("connect failed: disconnected by the server".into());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Pending::default();
    // The server pings every `pingInterval`; one missing `pingTimeout` after that is a loss.
    let silence = Duration::from_millis(opened.ping_interval + opened.ping_timeout);
    let task = Connection {
        namespace: o.namespace.clone(),
        pending: pending.clone(),
        on_event,
        on_drop,
    };
    tokio::spawn(task.run(ws, rx, silence));
    Ok(Arc::new(OwnClient {
        namespace: o.namespace.clone(),
        tx,
        pending,
        next_ack: AtomicU64::new(0),
        timeout: o.timeout,
    }))
}

/// The message of a CONNECT_ERROR's data (`{"message": ...}`), or the data as it came.
fn refusal(data: &str) -> String {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| data.to_string())
}

/// The next text frame (`None` for other frames), or why the connection ended.
async fn next_text<S>(ws: &mut WebSocketStream<S>) -> Result<Option<Utf8Bytes>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match ws.next().await {
        Some(Ok(Message::Text(text))) => Ok(Some(text)),
        Some(Ok(Message::Close(_))) | None => {
            Err("connect failed: the server closed the connection".into())
        }
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("connect failed: {e}")),
    }
}

async fn send<S>(ws: &mut WebSocketStream<S>, text: String) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| format!("connect failed: {e}"))
}

/// One connection's task: what it needs to read and dispatch frames.
struct Connection {
    namespace: String,
    pending: Pending,
    on_event: OnEvent,
    on_drop: OnDrop,
}

/// How a connection's task ended.
enum End {
    /// Lost or closed by the server: the tab is told why.
    Lost(String),
    /// Hung up by the tab.
    HungUp,
}

impl Connection {
    async fn run<S>(
        self,
        mut ws: WebSocketStream<S>,
        mut rx: mpsc::UnboundedReceiver<Box<Out>>,
        silence: Duration,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let quiet = tokio::time::sleep(silence);
        tokio::pin!(quiet);
        let end = loop {
            tokio::select! {
                // Frames first: a receipt polls nothing else while more are ready (tokio's
                // budget still hands the thread on after a long burst).
                biased;
                frame = ws.next() => match frame {
                    Some(Ok(Message::Text(text))) => match self.text(&text) {
                        Ok(Some(reply)) => {
                            quiet.as_mut().reset(tokio::time::Instant::now() + silence);
                            if let Err(e) = ws.send(Message::Text(reply.into())).await {
                                break End::Lost(format!("transport error: {e}"));
                            }
                        }
                        Ok(None) => {}
                        Err(why) => break End::Lost(why),
                    },
                    Some(Ok(Message::Close(_))) | None => {
                        break End::Lost("closed by the server".into());
                    }
                    // Binary frames (a binary packet's attachments) are skipped unread;
                    // tungstenite answers WebSocket pings itself.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break End::Lost(format!("transport error: {e}")),
                },
                out = rx.recv() => match out.map(|out| *out) {
                    Some(Out::Text(text, done)) => {
                        let sent = ws.send(Message::Text(text.into())).await;
                        let failed = sent.as_ref().err().map(|e| format!("transport error: {e}"));
                        let _ = done.send(sent.map_err(|e| e.to_string()));
                        if let Some(why) = failed {
                            break End::Lost(why);
                        }
                    }
                    Some(Out::Hangup(done)) => {
                        let _ = ws.send(Message::Text(packet::disconnect(&self.namespace).into())).await;
                        let _ = ws.close(None).await;
                        let _ = done.send(());
                        break End::HungUp;
                    }
                    // Every handle is gone: nobody can hear this connection any more.
                    None => break End::HungUp,
                },
                () = &mut quiet => {
                    break End::Lost(format!("ping timeout: no ping from the server in {} ms", silence.as_millis()));
                }
            }
        };
        // Acks still awaited will not come: their waiters are told by the closed channel.
        self.pending.lock().expect("poisoned").clear();
        if let End::Lost(why) = end {
            (self.on_drop)(why);
        }
    }

    /// Reads a text frame: the reply to write (a ping's pong), nothing, or why the session
    /// ended.
    fn text(&self, text: &str) -> Result<Option<String>, String> {
        let packet = match packet::engine(text) {
            Ok(Engine::Message(data)) => data,
            Ok(Engine::Ping(data)) => return Ok(Some(format!("3{data}"))),
            Ok(Engine::Close) => return Err("closed by the server".into()),
            Ok(_) => return Ok(None),
            Err(e) => return Err(format!("protocol error: {e}")),
        };
        let p = packet::socket(packet).map_err(|e| format!("protocol error: {e}"))?;
        if p.namespace != self.namespace {
            return Ok(None);
        }
        match p.kind {
            Kind::Event | Kind::BinaryEvent => {
                let name =
                    packet::event_name(p.data).map_err(|e| format!("protocol error: {e}"))?;
                (self.on_event)(&name, &Args::Array(p.data));
                // An event asking for an ack is not answered: tabs ack nothing.
            }
            Kind::Ack | Kind::BinaryAck => {
                let waiter = p
                    .ack_id
                    .and_then(|id| self.pending.lock().expect("poisoned").remove(&id));
                if let Some(waiter) = waiter {
                    let args = serde_json::from_str::<Vec<Value>>(p.data).unwrap_or_default();
                    let _ = waiter.send(args);
                }
            }
            Kind::Disconnect => return Err("disconnected by the server".into()),
            Kind::Connect | Kind::ConnectError => {}
        }
        Ok(None)
    }
}

/// A tab's handle on its connection's task.
struct OwnClient {
    namespace: String,
    tx: mpsc::UnboundedSender<Box<Out>>,
    pending: Pending,
    next_ack: AtomicU64,
    timeout: Duration,
}

impl OwnClient {
    /// Writes `text` and waits until it is written.
    async fn write(&self, event: &str, text: String) -> Result<(), String> {
        let (done, written) = oneshot::channel();
        self.tx
            .send(Box::new(Out::Text(text, done)))
            .map_err(|_| format!("{event}: the connection is closed"))?;
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{event}: {e}")),
            Err(_) => Err(format!("{event}: the connection is closed")),
        }
    }
}

impl TabClient for OwnClient {
    fn emit<'a>(&'a self, event: &'a str, args: Vec<Value>) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let text = packet::event(&self.namespace, None, event, &args);
            self.write(event, text).await
        }
        .boxed()
    }

    fn emit_with_ack<'a>(
        &'a self,
        event: &'a str,
        args: Vec<Value>,
    ) -> BoxFuture<'a, Result<Vec<Value>, String>> {
        async move {
            let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            self.pending.lock().expect("poisoned").insert(id, tx);
            let text = packet::event(&self.namespace, Some(id), event, &args);
            if let Err(e) = self.write(event, text).await {
                self.pending.lock().expect("poisoned").remove(&id);
                return Err(e);
            }
            let answer = tokio::time::timeout(self.timeout, rx).await;
            self.pending.lock().expect("poisoned").remove(&id);
            match answer {
                Ok(Ok(args)) => Ok(args),
                Ok(Err(_)) => Err(format!("no ack for {event}: the connection is closed")),
                Err(_) => Err(format!("no ack for {event} in time")),
            }
        }
        .boxed()
    }

    fn disconnect(&self) -> BoxFuture<'_, ()> {
        async move {
            let (done, closed) = oneshot::channel();
            if self.tx.send(Box::new(Out::Hangup(done))).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(5), closed).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::client::Transport;

    fn options(url: &str, path: &str, query: &[(&str, &str)]) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            path: path.into(),
            namespace: "/".into(),
            transport: Transport::Websocket,
            client: crate::config::TabClientKind::Own,
            auth: None,
            headers: vec![],
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout: Duration::from_secs(1),
            tls: None,
        }
    }

    type Heard = Arc<Mutex<Vec<(String, Vec<String>)>>>;

    /// A scripted server on a loopback port: OPEN with a 150 ms heartbeat, the CONNECT
    /// answered for `/chat`, then `script` (frames sent as they are, or `None` to wait for
    /// the client's next frame and keep it); what it read is returned when the client is gone.
    async fn scripted(
        script: Vec<Option<Message>>,
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let mut read = Vec::new();
            let open = r#"0{"sid":"s1","upgrades":[],"pingInterval":150,"pingTimeout":100,"maxPayload":1000000}"#;
            ws.send(Message::text(open)).await.unwrap();
            for step in script {
                match step {
                    Some(frame) => ws.send(frame).await.unwrap(),
                    None => match ws.next().await {
                        Some(Ok(Message::Text(t))) => read.push(t.to_string()),
                        other => panic!("the client sent {other:?}"),
                    },
                }
            }
            // Then silence: the client must call the session lost within its ping timeout.
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Text(t) = frame {
                    read.push(t.to_string());
                }
            }
            read
        });
        (url, server)
    }

    fn chat(url: &str) -> ConnectOptions {
        let mut o = options(url, "/socket.io", &[]);
        o.namespace = "/chat".into();
        o.auth = Some(serde_json::json!({"token": "t"}));
        o
    }

    #[tokio::test]
    async fn a_session_reads_events_skips_attachments_answers_pings_and_acks_and_notices_silence() {
        let text = |t: &str| Some(Message::text(t));
        let (url, server) = scripted(vec![
            None, // the CONNECT
            text(r#"40/chat,{"sid":"c1"}"#),
            text(r#"42/chat,["first",{"seq":1}]"#),
            text(r#"42["elsewhere",{"seq":99}]"#),
            text(r#"451-/chat,["with-binary",{"_placeholder":true,"num":0},2]"#),
            Some(Message::binary(vec![1u8, 2, 3])),
            text("2"),
            None, // the pong
            text(r#"42/chat,7["asks-an-ack"]"#),
            None, // the emit with an ack
            text(r#"43/chat,0["ok",{"n":1}]"#),
            None, // the emit without one
        ])
        .await;
        let heard: Heard = Heard::default();
        let (dropped, mut why) = mpsc::unbounded_channel();
        let h = heard.clone();
        let client = connect(
            &chat(&url),
            Arc::new(move |name, args: &Args<'_>| {
                let args = (0..)
                    .map_while(|n| args.nth::<&serde_json::value::RawValue>(n))
                    .map(|a| a.get().to_string())
                    .collect();
                h.lock().unwrap().push((name.into(), args))
            }),
            Arc::new(move |w| {
                let _ = dropped.send(w);
            }),
        )
        .await
        .unwrap();
        let answer = client
            .emit_with_ack("join", vec![serde_json::json!({"room": "r"})])
            .await
            .unwrap();
        assert_eq!(
            answer,
            [serde_json::json!("ok"), serde_json::json!({"n": 1})]
        );
        client
            .emit("say", vec![serde_json::json!("hi")])
            .await
            .unwrap();
        let why = tokio::time::timeout(Duration::from_secs(5), why.recv())
            .await
            .expect("the silence is noticed")
            .unwrap();
        assert!(why.starts_with("ping timeout"), "{why}");
        drop(client);
        let read = server.await.unwrap();
        // The pong and the tab's first emit race each other; the tab's emits keep their order.
        let pong = read.iter().position(|t| t == "3");
        let mut emits = read.clone();
        emits.retain(|t| t != "3");
        assert!(pong.is_some_and(|at| at > 0), "{read:?}");
        assert_eq!(
            emits,
            [
                r#"40/chat,{"token":"t"}"#,
                r#"42/chat,0["join",{"room":"r"}]"#,
                r#"42/chat,["say","hi"]"#,
            ]
        );
        let heard = heard.lock().unwrap().clone();
        let expected: Vec<(String, Vec<String>)> = vec![
            ("first".into(), vec![r#"{"seq":1}"#.into()]),
            (
                "with-binary".into(),
                vec![r#"{"_placeholder":true,"num":0}"#.into(), "2".into()],
            ),
            ("asks-an-ack".into(), vec![]),
        ];
        assert_eq!(heard, expected, "another namespace's event is not heard");
    }

    #[tokio::test]
    async fn a_refused_connect_says_why_and_a_server_disconnect_is_a_drop() {
        let (url, server) = scripted(vec![
            None,
            Some(Message::text(r#"44/chat,{"message":"Not authorized"}"#)),
        ])
        .await;
        let nothing: OnEvent = Arc::new(|_, _| {});
        let never: OnDrop = Arc::new(|w| panic!("a refusal is not a drop: {w}"));
        let refused = connect(&chat(&url), nothing.clone(), never)
            .await
            .err()
            .unwrap();
        assert_eq!(refused, "refused: Not authorized");
        server.await.unwrap();

        let (url, server) = scripted(vec![
            None,
            Some(Message::text(r#"40/chat,{"sid":"c1"}"#)),
            Some(Message::text("41/chat,")),
        ])
        .await;
        let (dropped, mut why) = mpsc::unbounded_channel();
        let _client = connect(
            &chat(&url),
            nothing,
            Arc::new(move |w| {
                let _ = dropped.send(w);
            }),
        )
        .await
        .unwrap();
        let why = tokio::time::timeout(Duration::from_secs(5), why.recv())
            .await
            .unwrap();
        assert_eq!(why.as_deref(), Some("disconnected by the server"));
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_upgrade_says_the_status_and_the_servers_words() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = tcp.read(&mut request).await.unwrap();
            let body = r#"{"code":1,"message":"server full: it holds at most 2 connections"}"#;
            let response = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(response.as_bytes()).await.unwrap();
        });
        let why = connect(&chat(&url), Arc::new(|_, _| {}), Arc::new(|_| {}))
            .await
            .err()
            .unwrap();
        assert!(
            why.contains("HTTP 403") && why.contains("server full: it holds at most 2"),
            "{why}"
        );
        server.await.unwrap();
    }

    #[test]
    fn the_websocket_url_carries_the_path_the_query_and_the_engine_io_version() {
        assert_eq!(
            socket_url(&options("http://127.0.0.1:3000/", "/socket.io", &[])).unwrap(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url(&options(
                "https://example.test",
                "/rt/",
                &[("client", "load gen")]
            ))
            .unwrap(),
            "wss://example.test/rt/?client=load%20gen&EIO=4&transport=websocket"
        );
        let bad = socket_url(&options("ftp://x", "/socket.io", &[])).unwrap_err();
        assert!(bad.contains("must start with http://"), "{bad}");
    }
}
