//! The loadgen's own Socket.IO client for tabs: Engine.IO v4 over a WebSocket only
//! (`/socket.io/?EIO=4&transport=websocket`), Socket.IO v5 packets (CONNECT with auth and
//! CONNECT_ERROR, EVENT, ACK with this socket's ack ids, DISCONNECT), the heartbeat (the
//! server's `2` answered `3`, and a session that hears no ping within `pingInterval +
//! pingTimeout` is lost), and binary frames (attachments) skipped unread.
//!
//! One task per connection reads its socket (`ws`: frames read in place from a scratch
//! buffer each thread shares) and hands an EVENT to the tab's callback from the frame's own
//! bytes; the tab writes its emits itself, under the connection's write lock. A receipt takes
//! no lock, no allocation and no task hop. rust_socketio (`drive::rust_socketio`) stays as
//! the reference client, and for long-polling.

pub mod packet;
pub mod ws;

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::drive::client::{Args, ConnectOptions, OnDrop, OnEvent, TabClient, encode};
use packet::{Engine, Kind};
use ws::{Flow, Frames, Message, Writer};

/// Where a tab's WebSocket goes.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    secure: bool,
    /// The host to connect to and to name in TLS (an IPv6 literal without its brackets).
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// The path and query the upgrade asks for.
    resource: String,
}

/// Where `o` connects: `ws(s)://host:port/<path>/?<query>&EIO=4&transport=websocket`.
fn target(o: &ConnectOptions) -> Result<Target, String> {
    let base = o.url.trim_end_matches('/');
    let (secure, rest) = if let Some(rest) = base.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = base.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = base.strip_prefix("wss://") {
        (true, rest)
    } else if let Some(rest) = base.strip_prefix("ws://") {
        (false, rest)
    } else {
        return Err(format!(
            "{}: a tab's URL must start with http://, https://, ws:// or wss://",
            o.url
        ));
    };
    let (authority, prefix) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{}: a tab's URL needs a host (and no user)", o.url));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse()
                .map_err(|_| format!("{}: {port} is not a port", o.url))?;
            (host, port)
        }
        _ => (authority, if secure { 443 } else { 80 }),
    };
    let path = o.path.trim_end_matches('/');
    let mut resource = format!("{prefix}{path}/?");
    if !resource.starts_with('/') {
        resource.insert(0, '/');
    }
    for (k, v) in &o.query {
        resource.push_str(&encode(k));
        resource.push('=');
        resource.push_str(&encode(v));
        resource.push('&');
    }
    resource.push_str("EIO=4&transport=websocket");
    Ok(Target {
        secure,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        authority: authority.to_string(),
        resource,
    })
}

/// Acks this socket waits for, by id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<Value>>>>>;

/// A connection's writing side, shared by the tab (its emits) and the reading task (pongs);
/// `None` once the connection is over.
type Shared<W> = Arc<tokio::sync::Mutex<Option<Writer<W>>>>;

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
    let t = target(o)?;
    let mut tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("connect failed: {}: {e}", t.authority))?;
    let _ = tcp.set_nodelay(true);
    if t.secure {
        let tls = match &o.tls {
            Some(tls) => tls.clone(),
            None => native_tls::TlsConnector::new().map_err(|e| format!("TLS: {e}"))?,
        };
        let mut stream = tokio_native_tls::TlsConnector::from(tls)
            .connect(&t.host, tcp)
            .await
            .map_err(|e| format!("connect failed: TLS with {}: {e}", t.host))?;
        let leftover = ws::upgrade(&mut stream, &t.authority, &t.resource, &o.headers).await?;
        let (r, w) = tokio::io::split(stream);
        handshake(r, w, Frames::after(leftover), o, on_event, on_drop).await
    } else {
        let leftover = ws::upgrade(&mut tcp, &t.authority, &t.resource, &o.headers).await?;
        let (r, w) = tcp.into_split();
        handshake(r, w, Frames::after(leftover), o, on_event, on_drop).await
    }
}

/// Reads the OPEN, sends the CONNECT and reads its answer, then hands the reading side to
/// the connection's task.
async fn handshake<R, W>(
    mut r: R,
    w: W,
    mut frames: Frames,
    o: &ConnectOptions,
    on_event: OnEvent,
    on_drop: OnDrop,
) -> Result<Arc<dyn TabClient>, String>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut w = Writer::new(w);
    let opened: packet::Open = loop {
        let text = next_text(&mut frames, &mut r, &mut w).await?;
        match packet::engine(&text) {
            Ok(Engine::Open(json)) => {
                break serde_json::from_str(json)
                    .map_err(|e| format!("connect failed: an OPEN without its session: {e}"))?;
            }
            Ok(_) => {}
            Err(e) => return Err(format!("connect failed: {e}")),
        }
    };
    send(&mut w, &packet::connect(&o.namespace, o.auth.as_ref())).await?;
    loop {
        let text = next_text(&mut frames, &mut r, &mut w).await?;
        match packet::engine(&text).map_err(|e| format!("connect failed: {e}"))? {
            Engine::Ping(data) => send(&mut w, &format!("3{data}")).await?,
            Engine::Close => return Err("connect failed: the server closed the session".into()),
            Engine::Message(data) => {
                let p = packet::socket(data).map_err(|e| format!("connect failed: {e}"))?;
                if p.namespace != o.namespace {
                    continue;
                }
                match p.kind {
                    Kind::Connect => break,
                    Kind::ConnectError => {
                        let _ = w.close().await;
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
    let writer: Shared<W> = Arc::new(tokio::sync::Mutex::new(Some(w)));
    let pending = Pending::default();
    // The server pings every `pingInterval`; one missing `pingTimeout` after that is a loss.
    let silence = Duration::from_millis(opened.ping_interval + opened.ping_timeout);
    let task = Connection {
        namespace: o.namespace.clone(),
        pending: pending.clone(),
        writer: writer.clone(),
        on_event,
        on_drop,
    };
    let reader = tokio::spawn(task.run(r, frames, silence)).abort_handle();
    Ok(Arc::new(OwnClient {
        namespace: o.namespace.clone(),
        writer,
        pending,
        next_ack: AtomicU64::new(0),
        timeout: o.timeout,
        reader,
    }))
}

/// The message of a CONNECT_ERROR's data (`{"message": ...}`), or the data as it came.
fn refusal(data: &str) -> String {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| data.to_string())
}

/// The next text message, copied (binary ones are skipped, the server's pings answered), or
/// why the connection ended.
async fn next_text<R, W>(
    frames: &mut Frames,
    r: &mut R,
    w: &mut Writer<W>,
) -> Result<String, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let mut text = None;
        let read = frames
            .read(r, |m| {
                Ok(match m {
                    Message::Text(t) => {
                        text = Some(t.to_string());
                        Flow::Stop
                    }
                    Message::Binary(_) => Flow::Go,
                })
            })
            .await
            .map_err(|e| format!("connect failed: {e}"))?;
        for reply in &read.replies {
            w.reply(reply)
                .await
                .map_err(|e| format!("connect failed: {e}"))?;
        }
        if let Some(text) = text {
            return Ok(text);
        }
        if read.closed {
            return Err("connect failed: the server closed the connection".into());
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut Writer<W>, text: &str) -> Result<(), String> {
    w.text(text)
        .await
        .map_err(|e| format!("connect failed: {e}"))
}

/// One connection's task: what it needs to read and dispatch frames.
struct Connection<W> {
    namespace: String,
    pending: Pending,
    writer: Shared<W>,
    on_event: OnEvent,
    on_drop: OnDrop,
}

impl<W: AsyncWrite + Unpin + Send + 'static> Connection<W> {
    async fn run<R>(self, mut r: R, mut frames: Frames, silence: Duration)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let quiet = tokio::time::sleep(silence);
        tokio::pin!(quiet);
        // Whether the timer has this task's waker for its deadline: it is polled once a
        // deadline, then only looked at, so a wake for a frame does not touch the timer wheel.
        let mut armed = false;
        let why = loop {
            let step = poll_fn(|cx| {
                // Frames first: a burst is read before the timer is looked at.
                if let Poll::Ready(read) = frames.poll_read(cx, &mut r, &mut |m| self.message(m)) {
                    return Poll::Ready(Some(read));
                }
                let silent = if armed {
                    quiet.is_elapsed()
                } else {
                    armed = true;
                    quiet.as_mut().poll(cx).is_ready()
                };
                if silent {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            })
            .await;
            let read = match step {
                Some(Ok(read)) => read,
                Some(Err(why)) => break why,
                None => {
                    break format!(
                        "ping timeout: no ping from the server in {} ms",
                        silence.as_millis()
                    );
                }
            };
            // A text reply is the Engine.IO pong: the server's ping came.
            if read.replies.iter().any(|r| matches!(r, ws::Reply::Text(_))) {
                quiet.as_mut().reset(tokio::time::Instant::now() + silence);
                armed = false;
            }
            if !read.replies.is_empty() {
                let mut writer = self.writer.lock().await;
                let Some(w) = writer.as_mut() else {
                    return; // hung up by the tab
                };
                let mut failed = None;
                for reply in &read.replies {
                    if let Err(e) = w.reply(reply).await {
                        failed = Some(format!("transport error: {e}"));
                        break;
                    }
                }
                if let Some(why) = failed.filter(|_| !read.closed) {
                    break why;
                }
            }
            if read.closed {
                break "closed by the server".to_string();
            }
        };
        // The connection is over: the tab's emits fail from now on, and acks still awaited
        // will not come (their waiters are told by the closed channel).
        if self.writer.lock().await.take().is_none() {
            return; // hung up by the tab meanwhile
        }
        self.pending.lock().expect("poisoned").clear();
        (self.on_drop)(why);
    }

    /// Reads a text message: the reply to write (a ping's pong), nothing, or why the session
    /// ended. Binary messages (a binary packet's attachments) are skipped unread.
    fn message(&self, m: Message<'_>) -> Result<Flow, String> {
        let Message::Text(text) = m else {
            return Ok(Flow::Go);
        };
        let packet = match packet::engine(text) {
            Ok(Engine::Message(data)) => data,
            Ok(Engine::Ping(data)) => return Ok(Flow::Reply(format!("3{data}"))),
            Ok(Engine::Close) => return Err("closed by the server".into()),
            Ok(_) => return Ok(Flow::Go),
            Err(e) => return Err(format!("protocol error: {e}")),
        };
        let p = packet::socket(packet).map_err(|e| format!("protocol error: {e}"))?;
        if p.namespace != self.namespace {
            return Ok(Flow::Go);
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
        Ok(Flow::Go)
    }
}

/// A tab's handle on its connection.
struct OwnClient<W> {
    namespace: String,
    writer: Shared<W>,
    pending: Pending,
    next_ack: AtomicU64,
    timeout: Duration,
    /// The reading task: stopped when the tab hangs up or lets go.
    reader: tokio::task::AbortHandle,
}

impl<W> Drop for OwnClient<W> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<W: AsyncWrite + Unpin + Send> OwnClient<W> {
    /// Writes `text` as one frame.
    async fn write(&self, event: &str, text: &str) -> Result<(), String> {
        let mut writer = self.writer.lock().await;
        let Some(w) = writer.as_mut() else {
            return Err(format!("{event}: the connection is closed"));
        };
        w.text(text)
            .await
            .map_err(|e| format!("{event}: transport error: {e}"))
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> TabClient for OwnClient<W> {
    fn emit<'a>(&'a self, event: &'a str, args: Vec<Value>) -> BoxFuture<'a, Result<(), String>> {
        async move {
            let text = packet::event(&self.namespace, None, event, &args);
            self.write(event, &text).await
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
            if let Err(e) = self.write(event, &text).await {
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

    /// DISCONNECT, then a close frame and the end of the stream; no `on_drop`.
    fn disconnect(&self) -> BoxFuture<'_, ()> {
        async move {
            let hangup = async {
                let mut writer = self.writer.lock().await;
                if let Some(mut w) = writer.take() {
                    let _ = w.text(&packet::disconnect(&self.namespace)).await;
                    let _ = w.close().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), hangup).await;
            self.reader.abort();
            self.pending.lock().expect("poisoned").clear();
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::client::Transport;
    use futures_util::{SinkExt, StreamExt};
    use tokio::sync::mpsc;
    use tokio_tungstenite::tungstenite::Message;

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
    fn the_websocket_target_carries_the_path_the_query_and_the_engine_io_version() {
        let t = target(&options("http://127.0.0.1:3000/", "/socket.io", &[])).unwrap();
        assert_eq!(
            t,
            Target {
                secure: false,
                host: "127.0.0.1".into(),
                port: 3000,
                authority: "127.0.0.1:3000".into(),
                resource: "/socket.io/?EIO=4&transport=websocket".into(),
            }
        );
        let t = target(&options(
            "https://example.test/app",
            "/rt/",
            &[("client", "load gen")],
        ))
        .unwrap();
        assert!(t.secure);
        assert_eq!((t.host.as_str(), t.port), ("example.test", 443));
        assert_eq!(
            t.resource,
            "/app/rt/?client=load%20gen&EIO=4&transport=websocket"
        );
        let t = target(&options("ws://[::1]:4000", "/socket.io", &[])).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 4000));
        assert_eq!(t.authority, "[::1]:4000");
        let t = target(&options("wss://[::1]", "/socket.io", &[])).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        let bad = target(&options("ftp://x", "/socket.io", &[])).unwrap_err();
        assert!(bad.contains("must start with http://"), "{bad}");
        let bad = target(&options("http://x:http", "/socket.io", &[])).unwrap_err();
        assert!(bad.contains("not a port"), "{bad}");
    }
}
