//! The two transports driven by hand, one short session at a time: open it, maybe CONNECT with
//! a valid token, send a few hostile frames, then probe whether the session still serves, and
//! note how it ended and every HTTP status. Every wait is bounded.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use booking_server::realtime::protocol::JOIN_ROOM;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::frames::{Hostile, Kind, Phase, Post, SEPARATOR, TEXT_PLAIN, Transport, Wire};
use crate::support::TestApp;

/// The most any one step (a request, a read, a send) may take on a responsive server.
pub const STEP: Duration = Duration::from_secs(5);
/// How long a probe waits for its answer or for the session to end.
const PROBE_WITHIN: Duration = Duration::from_secs(3);
/// The probe's ack id: no hostile frame uses it.
pub const PROBE_ACK: u64 = 424_242;

pub struct Plan {
    pub transport: Transport,
    pub phase: Phase,
    pub frames: Vec<Hostile>,
    /// A valid token.
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ending {
    /// The probe was answered as a healthy session answers it.
    StillOpen,
    /// The server ended the session (close frame, reset, `Session ID unknown`), for some
    /// because a hostile frame was a close packet or a WebSocket close.
    ClosedByServer,
    /// Neither an answer nor a close within the probe's wait: a hung session.
    Silent,
}

#[derive(Default)]
pub struct Outcome {
    /// The kinds of the frames sent, in order.
    pub sent: Vec<Kind>,
    /// Frames not sent because the session had already ended.
    pub unsent: usize,
    pub ending: Option<Ending>,
    /// Each HTTP status with the shape of its body, e.g. `400 (empty)`.
    pub statuses: Vec<String>,
    /// What a healthy server never does: a 5xx, an open or valid CONNECT not answered, a
    /// wrong probe answer, a step that timed out.
    pub problems: Vec<String>,
    /// Requests the server ended without an answer (it hung up mid-body), by frame kind.
    pub cut: Vec<(Kind, String)>,
    /// Acks with `ok: false` that say why, acks that only say `throttled`, and refusals that
    /// say nothing (a problem).
    pub refusals: usize,
    pub throttled: usize,
    pub bare_refusals: Vec<String>,
    /// Probe CONNECTs sent again because an earlier CONNECT was refused meanwhile.
    pub asked_again: usize,
    /// The first packets the server sent that were not the one waited for.
    pub seen: Vec<String>,
    /// For a silent session: what went unanswered, after which frames, and what came instead.
    pub silent: Option<String>,
}

impl Outcome {
    /// Notes what a packet from the server says about refusals.
    fn note(&mut self, packet: &str) {
        if self.seen.len() < 8 {
            self.seen.push(packet.chars().take(120).collect());
        }
        let Some(rest) = packet.strip_prefix("43") else {
            return;
        };
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if rest[..digits] == PROBE_ACK.to_string() {
            return;
        }
        let Ok(serde_json::Value::Array(args)) = serde_json::from_str(&rest[digits..]) else {
            return;
        };
        let ack = args.first().cloned().unwrap_or_default();
        if ack["ok"] != false {
            return;
        }
        if ack["error"].as_str().is_some_and(|e| !e.is_empty()) {
            self.refusals += 1;
        } else if ack["throttled"] == true {
            self.throttled += 1;
        } else {
            self.bare_refusals.push(packet.to_string());
        }
    }
}

fn connect_packet(token: &str) -> String {
    format!("40{{\"token\":\"{token}\"}}")
}

/// What the session is asked once the hostile frames are in, and how a healthy one answers.
fn probe(phase: Phase, token: &str) -> (String, String) {
    match phase {
        // A valid CONNECT: answered with the namespace's CONNECT.
        Phase::BeforeAuth => (connect_packet(token), "40{".to_string()),
        _ => (
            format!("42{PROBE_ACK}[\"{JOIN_ROOM}\",\"bookings\"]"),
            format!("43{PROBE_ACK}["),
        ),
    }
}

/// Notes what a silent session waited for in vain, so that a failure names its frames.
fn went_silent(out: &mut Outcome, waited_for: &str, frames: &[Hostile]) -> Ending {
    let shown: Vec<&str> = frames.iter().map(|f| f.shown.as_str()).collect();
    out.silent = Some(format!(
        "no {waited_for} after {shown:?}; the server sent {:?}",
        out.seen
    ));
    Ending::Silent
}

/// A Socket.IO CONNECT_ERROR packet on the main namespace.
const CONNECT_ERROR: &str = "44{";

/// What a probe does with a session, the same over both transports.
trait Session {
    /// Sends one text packet: `Err` when the session has ended (or a POST got no answer:
    /// `Silent`).
    async fn send_text(&mut self, packet: &str, out: &mut Outcome) -> Result<(), Ending>;
    /// The next packet that starts with one of `wants`, or how the session ended.
    async fn next(
        &mut self,
        wants: &[&str],
        within: Duration,
        out: &mut Outcome,
    ) -> Result<String, Ending>;
}

/// Probes whether the session still serves once its hostile frames are in, and how it ended.
///
/// A hostile frame may itself be a CONNECT (`40garbage`, `40{"token":"x"}`). socketioxide
/// handles each CONNECT in a task of its own and drops one for a namespace the session is
/// already connecting to, so whichever task runs first wins: the valid CONNECT (pipelined, or
/// the probe before auth) can be dropped while the hostile one is refused. Like a client, the
/// probe then sends its CONNECT again on that refusal, at most once per hostile frame; a
/// refusal past that is its own, a problem.
async fn probe_session(session: &mut impl Session, plan: &Plan, out: &mut Outcome) -> Ending {
    let again = plan.frames.len();
    if plan.phase == Phase::Pipelined {
        // The pipelined CONNECT's answer (or the end) before asking anything.
        let connect = connect_packet(&plan.token);
        let wants = ["40{", CONNECT_ERROR];
        match answer(
            session,
            plan,
            out,
            &wants,
            &connect,
            again,
            "CONNECT answer",
        )
        .await
        {
            Ok(refused) if refused.starts_with(CONNECT_ERROR) => {
                check_answer(out, &refused, &plan.frames);
                return Ending::StillOpen;
            }
            Ok(_) => {}
            Err(ending) => return ending,
        }
    }
    let (ask, want) = probe(plan.phase, &plan.token);
    match session.send_text(&ask, out).await {
        Ok(()) => {}
        Err(Ending::Silent) => return went_silent(out, "answer to the probe's POST", &plan.frames),
        Err(ending) => return ending,
    }
    let (wants, again) = match plan.phase {
        Phase::BeforeAuth => (vec![want.as_str(), CONNECT_ERROR], again),
        _ => (vec![want.as_str()], 0),
    };
    match answer(session, plan, out, &wants, &ask, again, "probe answer").await {
        Ok(answer) => {
            check_answer(out, &answer, &plan.frames);
            Ending::StillOpen
        }
        Err(ending) => ending,
    }
}

/// Waits for the answer to `sent` (one of `wants`); on a refusal of the main namespace's
/// CONNECT sends it again, `again` times at most (see [`probe_session`]).
async fn answer(
    session: &mut impl Session,
    plan: &Plan,
    out: &mut Outcome,
    wants: &[&str],
    sent: &str,
    mut again: usize,
    waiting_for: &str,
) -> Result<String, Ending> {
    loop {
        match session.next(wants, PROBE_WITHIN, out).await {
            Ok(refused) if refused.starts_with(CONNECT_ERROR) && again > 0 => {
                out.note(&refused);
                out.asked_again += 1;
                again -= 1;
                session
                    .send_text(sent, out)
                    .await
                    .map_err(|ending| match ending {
                        Ending::Silent => went_silent(out, "answer to a POST", &plan.frames),
                        ending => ending,
                    })?;
            }
            Ok(answer) => return Ok(answer),
            Err(Ending::Silent) => return Err(went_silent(out, waiting_for, &plan.frames)),
            Err(ending) => return Err(ending),
        }
    }
}

/// A probe answer is right if it is a CONNECT, or a join ack that says ok.
fn check_answer(outcome: &mut Outcome, answer: &str, frames: &[Hostile]) {
    if answer.starts_with(CONNECT_ERROR) {
        let shown: Vec<&str> = frames.iter().map(|f| f.shown.as_str()).collect();
        outcome
            .problems
            .push(format!("probe CONNECT refused: {answer} after {shown:?}"));
    }
    if answer.starts_with("43") && !answer.contains("\"ok\":true") {
        let shown: Vec<&str> = frames.iter().map(|f| f.shown.as_str()).collect();
        outcome
            .problems
            .push(format!("probe refused: {answer} after {shown:?}"));
    }
}

/// Runs one session; polling goes through `http`, the flood's own client: the correct clients
/// after it never reuse a connection a hostile request left behind.
pub async fn run(app: &TestApp, http: &reqwest::Client, plan: Plan) -> (Transport, Phase, Outcome) {
    let (transport, phase) = (plan.transport, plan.phase);
    let outcome = match transport {
        Transport::WebSocket => ws_session(app, plan).await,
        Transport::Polling => polling_session(app, http, plan).await,
    };
    (transport, phase, outcome)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads until a text packet starts with one of `wants` (returned), or the session ends.
async fn ws_until(
    ws: &mut Ws,
    wants: &[&str],
    within: Duration,
    out: &mut Outcome,
) -> Result<String, Ending> {
    let deadline = Instant::now() + within;
    loop {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(Ending::Silent),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {
                return Err(Ending::ClosedByServer);
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                if wants.iter().any(|w| t.starts_with(w)) {
                    return Ok(t.to_string());
                }
                out.note(&t);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

async fn ws_session(app: &TestApp, plan: Plan) -> Outcome {
    let mut out = Outcome::default();
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        app.base.replacen("http://", "ws://", 1)
    );
    let mut ws = match timeout(STEP, tokio_tungstenite::connect_async(&url)).await {
        Ok(Ok((ws, res))) => {
            out.statuses.push(res.status().as_u16().to_string());
            ws
        }
        other => {
            out.problems
                .push(format!("WebSocket upgrade failed: {other:?}"));
            out.unsent = plan.frames.len();
            return out;
        }
    };
    if let Err(e) = ws_until(&mut ws, &["0{"], STEP, &mut out).await {
        out.problems
            .push(format!("no Engine.IO open packet: {e:?}"));
        out.unsent = plan.frames.len();
        return out;
    }
    let connect = Message::text(connect_packet(&plan.token));
    if plan.phase != Phase::BeforeAuth {
        let _ = timeout(STEP, ws.send(connect)).await;
    }
    if plan.phase == Phase::AfterAuth
        && let Err(e) = ws_until(&mut ws, &["40{"], STEP, &mut out).await
    {
        out.problems
            .push(format!("a valid CONNECT was not answered: {e:?}"));
        out.unsent = plan.frames.len();
        return out;
    }
    let mut open = true;
    for frame in &plan.frames {
        let Wire::Ws(messages) = &frame.wire else {
            unreachable!("a polling frame in a WebSocket session")
        };
        let mut went = 0;
        for message in messages {
            match timeout(STEP, ws.send(message.clone())).await {
                Ok(Ok(())) => went += 1,
                Ok(Err(_)) => open = false,
                Err(_) => {
                    out.problems
                        .push(format!("send timed out: {}", frame.shown));
                    open = false;
                }
            }
            if !open {
                break;
            }
        }
        // A frame counts as sent when some of it went before the session ended.
        if went > 0 || messages.is_empty() {
            out.sent.push(frame.kind);
        }
        if !open {
            out.unsent = plan.frames.len() - out.sent.len();
            break;
        }
    }
    let ending = if open {
        probe_session(&mut WsSession(&mut ws), &plan, &mut out).await
    } else {
        Ending::ClosedByServer
    };
    out.ending = Some(ending);
    let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
    out
}

/// A WebSocket session's moves for [`probe_session`].
struct WsSession<'a>(&'a mut Ws);

impl Session for WsSession<'_> {
    async fn send_text(&mut self, packet: &str, _: &mut Outcome) -> Result<(), Ending> {
        match timeout(STEP, self.0.send(Message::text(packet.to_string()))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Ending::ClosedByServer),
        }
    }

    async fn next(
        &mut self,
        wants: &[&str],
        within: Duration,
        out: &mut Outcome,
    ) -> Result<String, Ending> {
        ws_until(self.0, wants, within, out).await
    }
}

/// One long-polling session.
pub struct Polling {
    http: reqwest::Client,
    url: String,
    /// Packets a poll brought after the one that was looked for.
    pending: Mutex<VecDeque<String>>,
}

/// What a POST or GET came back with.
enum Reply {
    /// 200 with the packets of the body.
    Packets(Vec<String>),
    /// The session is gone (`Session ID unknown`, or an empty 200 poll).
    Gone,
    /// Another status; the session may still be open.
    Refused,
    /// No HTTP answer: the connection was cut (the error).
    Cut(String),
    /// No answer in time.
    TimedOut,
}

impl Polling {
    async fn open(app: &TestApp, http: &reqwest::Client, out: &mut Outcome) -> Option<Polling> {
        let base = app.url("/socket.io/?EIO=4&transport=polling");
        let req = http.get(&base).timeout(STEP);
        let (status, body) = match req.send().await {
            Ok(res) => (res.status().as_u16(), res.text().await.unwrap_or_default()),
            Err(e) => {
                out.problems.push(format!("polling open failed: {e:?}"));
                return None;
            }
        };
        out.statuses.push(shape(status, &body));
        let sid = body
            .strip_prefix('0')
            .and_then(|open| serde_json::from_str::<serde_json::Value>(open).ok())
            .and_then(|open| open["sid"].as_str().map(str::to_string));
        let Some(sid) = sid.filter(|_| status == 200) else {
            out.problems
                .push(format!("polling open answered {status}: {body}"));
            return None;
        };
        Some(Polling {
            http: http.clone(),
            url: format!("{base}&sid={sid}"),
            pending: Mutex::default(),
        })
    }

    /// A correct client's session, connected with `token`; panics on any failure.
    pub async fn connect(app: &TestApp, token: &str) -> Polling {
        let mut out = Outcome::default();
        let session = Polling::open(app, &app.http, &mut out).await;
        let session = session.unwrap_or_else(|| panic!("{:?}", out.problems));
        session.ask(&connect_packet(token), "40{").await;
        session
    }

    /// Sends `packet`; the next packet that starts with `want`, or a panic after [`STEP`].
    pub async fn ask(&self, packet: &str, want: &str) -> String {
        let mut out = Outcome::default();
        match self.post_text(packet, &mut out).await {
            Reply::Packets(_) => {}
            _ => panic!("POST {packet} refused: {:?}", out.statuses),
        }
        self.next_packet(want).await
    }

    /// The next packet that starts with `want`, or a panic after [`STEP`].
    pub async fn next_packet(&self, want: &str) -> String {
        let mut out = Outcome::default();
        let packet = self.until(&[want], STEP, &mut out).await;
        packet.unwrap_or_else(|e| panic!("no {want} within {STEP:?}: {e:?} {:?}", out.statuses))
    }

    async fn post(&self, post: &Post, out: &mut Outcome) -> Reply {
        let req = self.http.post(&self.url).timeout(STEP);
        let req = req
            .header("content-type", post.content_type)
            .body(post.body.clone());
        self.answer(req, "POST", out).await
    }

    async fn post_text(&self, text: &str, out: &mut Outcome) -> Reply {
        let post = Post {
            body: text.as_bytes().to_vec(),
            content_type: TEXT_PLAIN,
        };
        self.post(&post, out).await
    }

    async fn get(&self, within: Duration, out: &mut Outcome) -> Reply {
        let req = self.http.get(&self.url).timeout(within);
        self.answer(req, "GET", out).await
    }

    async fn answer(&self, req: reqwest::RequestBuilder, method: &str, out: &mut Outcome) -> Reply {
        let res = match req.send().await {
            Ok(res) => res,
            Err(e) if e.is_timeout() => return Reply::TimedOut,
            Err(e) => return Reply::Cut(format!("{e:?}")),
        };
        let status = res.status().as_u16();
        let body = match res.text().await {
            Ok(body) => body,
            Err(e) if e.is_timeout() => return Reply::TimedOut,
            Err(e) => return Reply::Cut(format!("{e:?}")),
        };
        out.statuses.push(shape(status, &body));
        if status >= 500 {
            out.problems
                .push(format!("{method} answered {status}: {body}"));
        }
        match status {
            200 if method == "GET" && body.is_empty() => Reply::Gone,
            200 => Reply::Packets(body.split(SEPARATOR).map(str::to_string).collect()),
            _ if body.contains("Session ID unknown") => Reply::Gone,
            _ => Reply::Refused,
        }
    }

    /// Polls until a packet starts with one of `wants` (returned), or the session ends.
    async fn until(
        &self,
        wants: &[&str],
        within: Duration,
        out: &mut Outcome,
    ) -> Result<String, Ending> {
        let deadline = Instant::now() + within;
        let mut pending = std::mem::take(&mut *self.pending.lock().unwrap());
        // A poll that times out may still hold the session's poll lock on the server, and a
        // second concurrent poll closes the session: poll again only after an answer.
        loop {
            while let Some(packet) = pending.pop_front() {
                if wants.iter().any(|w| packet.starts_with(w)) {
                    *self.pending.lock().unwrap() = pending;
                    return Ok(packet);
                }
                if packet == "1" {
                    return Err(Ending::ClosedByServer);
                }
                out.note(&packet);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Ending::Silent);
            }
            match self.get(left, out).await {
                Reply::Packets(packets) => pending.extend(packets),
                Reply::Gone | Reply::Cut(_) | Reply::Refused => return Err(Ending::ClosedByServer),
                Reply::TimedOut => return Err(Ending::Silent),
            }
        }
    }
}

/// A status and the shape of its body: `200`, `400 (empty)`, `400 (JSON: Session ID unknown)`.
fn shape(status: u16, body: &str) -> String {
    if status == 200 || status == 101 {
        return status.to_string();
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        _ if body.is_empty() => format!("{status} (empty)"),
        Ok(json) => format!(
            "{status} (JSON: {})",
            json["message"].as_str().unwrap_or("?")
        ),
        Err(_) => format!("{status} (text)"),
    }
}

async fn polling_session(app: &TestApp, http: &reqwest::Client, plan: Plan) -> Outcome {
    let mut out = Outcome::default();
    let Some(session) = Polling::open(app, http, &mut out).await else {
        out.unsent = plan.frames.len();
        return out;
    };
    let connect = connect_packet(&plan.token);
    let mut open = true;
    match plan.phase {
        Phase::BeforeAuth => {}
        Phase::Pipelined => {
            // Answered once parsed, before the CONNECT is handled: the frames race it.
            let _ = session.post_text(&connect, &mut out).await;
        }
        Phase::AfterAuth => {
            let _ = session.post_text(&connect, &mut out).await;
            if let Err(e) = session.until(&["40{"], STEP, &mut out).await {
                out.problems
                    .push(format!("a valid CONNECT was not answered: {e:?}"));
                out.unsent = plan.frames.len();
                return out;
            }
        }
    }
    for frame in &plan.frames {
        let Wire::Posts(posts) = &frame.wire else {
            unreachable!("a WebSocket frame in a polling session")
        };
        for post in posts {
            match session.post(post, &mut out).await {
                Reply::Packets(_) | Reply::Refused => {}
                Reply::Gone => open = false,
                Reply::Cut(error) => {
                    out.cut
                        .push((frame.kind, format!("{}: {error}", frame.shown)));
                    open = false;
                }
                Reply::TimedOut => {
                    out.problems
                        .push(format!("POST timed out: {}", frame.shown));
                    open = false;
                }
            }
            if !open {
                break;
            }
        }
        out.sent.push(frame.kind);
        if !open {
            out.unsent = plan.frames.len() - out.sent.len();
            break;
        }
    }
    let ending = if open {
        probe_session(&mut &session, &plan, &mut out).await
    } else {
        Ending::ClosedByServer
    };
    out.ending = Some(ending);
    if ending != Ending::ClosedByServer {
        let _ = session.post_text("1", &mut out).await;
    }
    out
}

impl Session for &Polling {
    async fn send_text(&mut self, packet: &str, out: &mut Outcome) -> Result<(), Ending> {
        match self.post_text(packet, out).await {
            Reply::Packets(_) | Reply::Refused => Ok(()),
            Reply::Gone | Reply::Cut(_) => Err(Ending::ClosedByServer),
            Reply::TimedOut => Err(Ending::Silent),
        }
    }

    async fn next(
        &mut self,
        wants: &[&str],
        within: Duration,
        out: &mut Outcome,
    ) -> Result<String, Ending> {
        self.until(wants, within, out).await
    }
}
