//! The hostile frames: for each kind, what a careless or malicious Socket.IO client sends, and
//! its encoding for each transport (WebSocket messages, or long-polling POST bodies whose
//! packets are joined by the record separator, binary ones as `b<base64>`).

use booking_server::realtime::MAX_ATTACHMENTS;
use booking_server::realtime::protocol::{EDITING, JOIN_ROOM, LEAVE_ROOM};
use rand::Rng;
use rand::rngs::StdRng;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// The server's default `--max-socket-message-bytes`: per WebSocket message, per polling POST
/// and for the attachments of one binary event together.
pub const CAP: usize = 16 * 1024;

/// Engine.IO v4 packet separator in a polling body.
pub const SEPARATOR: char = '\u{1e}';

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    WebSocket,
    Polling,
}

/// When the hostile frames come, relative to the session's Socket.IO CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// No CONNECT yet.
    BeforeAuth,
    /// Right behind a valid CONNECT, without waiting for its answer.
    Pipelined,
    /// After the server answered a valid CONNECT.
    AfterAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    EngineType,
    SocketType,
    BadJson,
    BadAckId,
    Namespace,
    WrongArgs,
    BinaryFlood,
    Oversize,
    ControlChars,
    Empty,
    RandomBytes,
    BinaryFrame,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::EngineType,
        Kind::SocketType,
        Kind::BadJson,
        Kind::BadAckId,
        Kind::Namespace,
        Kind::WrongArgs,
        Kind::BinaryFlood,
        Kind::Oversize,
        Kind::ControlChars,
        Kind::Empty,
        Kind::RandomBytes,
        Kind::BinaryFrame,
    ];
}

/// One long-polling POST.
pub struct Post {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// One hostile frame as it goes on the wire.
pub enum Wire {
    /// WebSocket messages, sent one after the other.
    Ws(Vec<Message>),
    /// Long-polling POSTs, sent one after the other.
    Posts(Vec<Post>),
}

pub struct Hostile {
    pub kind: Kind,
    pub wire: Wire,
    /// A short description for failure messages.
    pub shown: String,
}

/// A packet of a hostile frame before it is encoded for a transport.
enum Pkt {
    Text(String),
    Bin(Vec<u8>),
    /// Polling only: what follows goes in the next POST (WebSocket: nothing).
    NextPost,
    /// WebSocket only: a raw message or frame.
    Ws(Message),
    /// Polling only: a raw body with its content type.
    Post(Vec<u8>, &'static str),
}

pub const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

/// A hostile frame of `kind` for `transport`; `token` is a valid one (some frames misuse it).
pub fn hostile(rng: &mut StdRng, kind: Kind, transport: Transport, token: &str) -> Hostile {
    let ws = transport == Transport::WebSocket;
    let pkts = match kind {
        Kind::EngineType => vec![text(engine_type(rng))],
        Kind::SocketType => vec![text(socket_type(rng))],
        Kind::BadJson => vec![text(bad_json(rng))],
        Kind::BadAckId => bad_ack(rng),
        Kind::Namespace => namespace(rng, token),
        Kind::WrongArgs => vec![text(wrong_args(rng))],
        Kind::BinaryFlood => binary_flood(rng),
        Kind::Oversize => oversize(rng),
        Kind::ControlChars => vec![text(control_chars(rng))],
        Kind::Empty => empty(rng, ws),
        Kind::RandomBytes => random_bytes(rng, ws),
        Kind::BinaryFrame => binary_frame(rng, ws),
    };
    let shown = show(&pkts);
    let wire = if ws {
        ws_wire(pkts)
    } else {
        polling_wire(pkts)
    };
    Hostile { kind, wire, shown }
}

fn text(s: impl Into<String>) -> Pkt {
    Pkt::Text(s.into())
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, from: &[&'a T]) -> &'a T {
    from[rng.random_range(0..from.len())]
}

fn event(rng: &mut StdRng) -> &'static str {
    pick(rng, &[JOIN_ROOM, LEAVE_ROOM, EDITING])
}

/// An ack id, or none. Never the probe's (see `wire::PROBE_ACK`), which is larger.
fn ack(rng: &mut StdRng) -> String {
    if rng.random_bool(0.5) {
        rng.random_range(1..1000).to_string()
    } else {
        String::new()
    }
}

fn placeholders(n: usize) -> String {
    let each: Vec<String> = (0..n)
        .map(|i| format!("{{\"_placeholder\":true,\"num\":{i}}}"))
        .collect();
    each.join(",")
}

fn bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rng.fill(&mut buf[..]);
    buf
}

fn engine_type(rng: &mut StdRng) -> String {
    let bad = [
        "7",
        "8",
        "9{}",
        "a",
        "x42[\"join-room\",\"bookings\"]",
        "/",
        " 42[]",
        "5",
        "6",
        "0",
        "0{\"sid\":\"AAAAAAAAAAAAAAAA\"}",
        "2probe",
        "3probe",
        "2",
        "3",
        "1",
        "b",
        "4",
        "-1",
        "99999999999999999999",
    ];
    pick(rng, &bad).to_string()
}

fn socket_type(rng: &mut StdRng) -> String {
    let bad = [
        "47",
        "48[]",
        "49",
        "4a",
        "4-",
        "4/",
        "44{\"message\":\"nope\"}",
        "44",
        "41",
        "41/admin,",
        "43",
        "43[]",
        "46",
        "45",
        "4 2[]",
        "40garbage",
        "42",
        "4242",
        "47[\"join-room\",\"bookings\"]",
        "4\u{0}[]",
    ];
    pick(rng, &bad).to_string()
}

fn bad_json(rng: &mut StdRng) -> String {
    let (e, a) = (event(rng), ack(rng));
    let depth = pick(rng, &[&200usize, &5_000]);
    match rng.random_range(0..18) {
        0 => format!("42{a}[\"{e}\""),
        1 => format!("42{a}["),
        2 => format!("42{a}]"),
        3 => format!("42{a}{{"),
        4 => format!("42{a}[\"{e}\",]"),
        5 => format!("42{a}[\"{e}\",{{\"room\":}}]"),
        6 => format!("42{a}[\"{e}\" \"bookings\"]"),
        7 => format!("42{a}[\"{e}\",1e99999]"),
        8 => format!("42{a}[\"{e}\",\"\\ud800\"]"),
        9 => format!("42{a}[\"{e}\",NaN]"),
        10 => format!("42{a}['{e}','bookings']"),
        11 => format!(
            "42{a}[\"{e}\",{}{}]",
            "[".repeat(*depth),
            "]".repeat(*depth)
        ),
        12 => format!("42{a}[\"{e}\",{}1", "{\"a\":".repeat(*depth)),
        13 => "40{\"token\":".to_string(),
        14 => "40{\"token\":\"x\"".to_string(),
        15 => format!("42{a}[\"{e}\",\"\\u00\"]"),
        16 => format!("42{a}[\"{e}\",{{\"boardroomId\":1,}}]"),
        _ => format!("42{a}[\"{e}\"]]]]"),
    }
}

fn bad_ack(rng: &mut StdRng) -> Vec<Pkt> {
    let id = pick(
        rng,
        &[
            "-1",
            "99999999999999999999999",
            "9223372036854775807",
            "9223372036854775808",
            "abc",
            " 1",
            "1.5",
            "0x10",
            "1e3",
            "007",
            "\u{663}",
            "-0",
            "+1",
        ],
    );
    match rng.random_range(0..5) {
        0 => vec![text(format!("42{id}[\"{JOIN_ROOM}\",\"bookings\"]"))],
        1 => vec![text(format!("42{id}[\"{EDITING}\",{{\"boardroomId\":1}}]"))],
        2 => vec![text(format!("43{id}[{{\"ok\":true}}]"))],
        3 => vec![text(format!("43{id}"))],
        _ => vec![
            text(format!("451-{id}[\"{JOIN_ROOM}\",{}]", placeholders(1))),
            Pkt::Bin(vec![1, 2, 3]),
        ],
    }
}

fn namespace(rng: &mut StdRng, token: &str) -> Vec<Pkt> {
    let long = format!("/{}", "a".repeat(3_000));
    let ns = pick(
        rng,
        &[
            "/admin",
            "//",
            "/\u{0}",
            "/é",
            "/..",
            "/%2e%2e",
            "/booking s",
            "/socket.io",
            "admin",
            "/admin?x=1",
            long.as_str(),
        ],
    )
    .to_string();
    match rng.random_range(0..8) {
        0 => vec![text(format!("40{ns},{{\"token\":\"{token}\"}}"))],
        1 => vec![text(format!("40{ns},"))],
        2 => vec![text(format!("42{ns},[\"{JOIN_ROOM}\",\"bookings\"]"))],
        3 => vec![text(format!("42{ns},7[\"{JOIN_ROOM}\",\"bookings\"]"))],
        4 => vec![text(format!("41{ns},"))],
        5 => vec![text(format!("43{ns},7[]"))],
        6 => vec![text(format!("40{ns}"))],
        _ => vec![
            text(format!("451-{ns},[\"{EDITING}\",{}]", placeholders(1))),
            Pkt::Bin(vec![0; 8]),
        ],
    }
}

fn wrong_args(rng: &mut StdRng) -> String {
    let (e, a) = (event(rng), ack(rng));
    let args = [
        "123",
        "null",
        "true",
        "[]",
        "[\"bookings\"]",
        "{\"room\":5}",
        "{\"room\":null}",
        "{}",
        "\"boardroom-0\"",
        "\"boardroom-99999999\"",
        "\"boardroom-9223372036854775807\"",
        "\"boardroom-1e3\"",
        "\"user-someone-else\"",
        "\"\"",
        "\"lobby\"",
        "-9223372036854775808",
        "1e308",
        "{\"boardroomId\":\"1\"}",
        "{\"boardroomId\":-1}",
        "{\"boardroomId\":0}",
        "{\"boardroomId\":9223372036854775807}",
        "{\"boardroomId\":1,\"bookingId\":\"x\"}",
        "{\"boardroomId\":1.5}",
        "{\"room\":\"bookings\",\"extra\":[1,2,3]}",
    ];
    let (arg, arg2) = (pick(rng, &args), pick(rng, &args));
    let other = pick(
        rng,
        &[
            "booking-created",
            "resync",
            "session-expired",
            "__proto__",
            "constructor",
            "",
            &"x".repeat(500),
        ],
    )
    .to_string();
    match rng.random_range(0..6) {
        0 | 1 => format!("42{a}[\"{e}\",{arg}]"),
        2 => format!("42{a}[\"{e}\"]"),
        3 => format!("42{a}[\"{e}\",{arg},{arg2}]"),
        4 => format!("42{a}[\"{other}\",{arg}]"),
        _ => format!("42{a}[{arg}]"),
    }
}

fn binary_flood(rng: &mut StdRng) -> Vec<Pkt> {
    let (e, a) = (event(rng), ack(rng));
    let header = |n: usize, shown: usize| format!("45{n}-{a}[\"{e}\",{}]", placeholders(shown));
    match rng.random_range(0..10) {
        // More attachments than the server takes.
        0 | 1 => {
            let n = *pick(rng, &[&(MAX_ATTACHMENTS + 1), &50, &1_000, &100_000]);
            let sent = n.min(64);
            let mut pkts = vec![text(header(n, n.min(50)))];
            pkts.extend((0..sent).map(|_| Pkt::Bin(vec![7; 16])));
            pkts
        }
        // Within the count, past the total size (one attachment per POST: each body fits).
        2 => vec![
            text(header(2, 2)),
            Pkt::Bin(bytes(rng, 10 * 1024)),
            Pkt::NextPost,
            Pkt::Bin(bytes(rng, 10 * 1024)),
        ],
        // The most the server takes: MAX_ATTACHMENTS attachments of CAP bytes together.
        3 => {
            let each = CAP / MAX_ATTACHMENTS;
            let mut pkts = vec![text(header(MAX_ATTACHMENTS, MAX_ATTACHMENTS))];
            for _ in 0..MAX_ATTACHMENTS {
                pkts.push(Pkt::Bin(bytes(rng, each)));
                pkts.push(Pkt::NextPost);
            }
            pkts
        }
        // Announced, never completed.
        4 => vec![text(header(3, 3)), Pkt::Bin(vec![1])],
        // Counts that are not counts.
        5 => {
            let count = pick(rng, &["184467440737095516160", "-1", "a", "", "4 "]);
            vec![text(format!("45{count}-[\"{e}\",{}]", placeholders(1)))]
        }
        // A placeholder that points nowhere, or is not one.
        6 => {
            let ph = pick(
                rng,
                &[
                    "{\"_placeholder\":true,\"num\":9}",
                    "{\"_placeholder\":true,\"num\":-1}",
                    "{\"_placeholder\":\"yes\",\"num\":\"0\"}",
                    "{\"_placeholder\":true}",
                ],
            );
            vec![text(format!("451-{a}[\"{e}\",{ph}]")), Pkt::Bin(vec![1, 2])]
        }
        // A binary ack for nothing.
        7 => vec![
            text(format!(
                "461-{}[{}]",
                rng.random_range(1..1000),
                placeholders(1)
            )),
            Pkt::Bin(vec![3; 4]),
        ],
        // Many small, complete binary events in a row.
        _ => {
            let mut pkts = Vec::new();
            for i in 0..rng.random_range(10..40) {
                pkts.push(text(format!("451-[\"{EDITING}\",{}]", placeholders(1))));
                pkts.push(Pkt::Bin(bytes(rng, 512)));
                if i % 8 == 7 {
                    pkts.push(Pkt::NextPost);
                }
            }
            pkts
        }
    }
}

fn oversize(rng: &mut StdRng) -> Vec<Pkt> {
    let size = *pick(
        rng,
        &[&(CAP + 1), &(17 * 1024), &(64 * 1024), &(1024 * 1024)],
    );
    let pad = |prefix: &str, suffix: &str| {
        let fill = size.saturating_sub(prefix.len() + suffix.len());
        format!("{prefix}{}{suffix}", "x".repeat(fill))
    };
    match rng.random_range(0..5) {
        0 => vec![text(pad("42[\"join-room\",\"", "\"]"))],
        1 => vec![text(pad("40{\"token\":\"", "\"}"))],
        2 => vec![Pkt::Bin(vec![0x42; size])],
        // Just under the cap: accepted by the transport, refused by the handler.
        3 => vec![text(format!(
            "42[\"{JOIN_ROOM}\",\"{}\"]",
            "y".repeat(CAP - 200)
        ))],
        // Many small packets that add up past the cap (one POST; many WebSocket messages).
        _ => (0..(CAP / 20)).map(|_| text("42[\"x\",1,2,3,4]")).collect(),
    }
}

fn control_chars(rng: &mut StdRng) -> String {
    let e = event(rng);
    match rng.random_range(0..18) {
        0 => format!("42[\"{e}\",\"\\u0000\"]"),
        1 => format!("42[\"{e}\",\"bookings\\u0000\"]"),
        2 => format!("42[\"{e}\",\"user-\\u0000\"]"),
        3 => "42[\"\\u0000\"]".to_string(),
        4 => format!("42[\"{e}\",\"{}\"]", "😀".repeat(2_000)),
        5 => "4\u{0}2[]".to_string(),
        6 => format!("42[\"{e}\",\"\u{1}\u{2}\u{1b}[31m\"]"),
        7 => format!("\u{feff}42[\"{e}\",\"bookings\"]"),
        8 => "4２[]".to_string(),
        9 => "٤٢[]".to_string(),
        10 => format!("42[\"{e}\",\"boardroom-\u{661}\"]"),
        11 => format!("42[\"{e}\",\"a\u{1e}b\"]"),
        12 => format!("42[\"{e}\",\"\u{202e}sgnikoob\"]"),
        13 => format!("42[\"{EDITING}\",{{\"boardroomId\":1,\"bookingId\":\"\u{0}\"}}]"),
        14 => "40{\"token\":\"\u{0}\"}".to_string(),
        15 => "\u{0}".to_string(),
        16 => "\r\n42[]\r\n".to_string(),
        _ => format!("42[\"{e}\",\"bo\u{301}okings\"]"),
    }
}

fn empty(rng: &mut StdRng, ws: bool) -> Vec<Pkt> {
    let choice = rng.random_range(0..12);
    match choice {
        10 if ws => vec![Pkt::Bin(Vec::new())],
        10 => vec![Pkt::Post(Vec::new(), "application/octet-stream")],
        11 if ws => vec![Pkt::Ws(Message::Frame(Frame::message(
            Vec::new(),
            OpCode::Data(Data::Text),
            true,
        )))],
        11 => vec![Pkt::Post(Vec::new(), TEXT_PLAIN)],
        _ => {
            let s = [
                "",
                "4",
                "42",
                "42[]",
                "40",
                "43",
                "2",
                "\u{1e}",
                "\u{1e}\u{1e}\u{1e}",
                "4\u{1e}\u{1e}2",
            ][choice];
            vec![text(s)]
        }
    }
}

fn random_bytes(rng: &mut StdRng, ws: bool) -> Vec<Pkt> {
    let len = rng.random_range(1..2_048);
    let chars = |rng: &mut StdRng| -> String {
        (0..rng.random_range(1..512))
            .map(|_| rng.random::<char>())
            .collect()
    };
    match (rng.random_range(0..3), ws) {
        (0, _) => vec![text(chars(rng))],
        (1, true) => vec![Pkt::Bin(bytes(rng, len))],
        (_, true) => vec![Pkt::Ws(Message::Frame(Frame::message(
            bytes(rng, len),
            OpCode::Data(Data::Text),
            true,
        )))],
        (_, false) => {
            let ct = pick(
                rng,
                &[
                    TEXT_PLAIN,
                    "application/octet-stream",
                    "application/json",
                    "multipart/form-data",
                ],
            );
            vec![Pkt::Post(bytes(rng, len), ct)]
        }
    }
}

fn binary_frame(rng: &mut StdRng, ws: bool) -> Vec<Pkt> {
    let packet = format!("42[\"{JOIN_ROOM}\",\"bookings\"]").into_bytes();
    if !ws {
        return match rng.random_range(0..7) {
            0 => vec![text(format!("b{}", base64(&bytes(rng, 64))))],
            1 => vec![text("bAAAA")],
            2 => vec![text("b!!!!")],
            3 => vec![text("b")],
            4 => vec![text(format!("b{}", base64(&packet)))],
            5 => vec![Pkt::Post(packet, "application/octet-stream")],
            _ => vec![Pkt::Post(vec![4, 1, 2, 3], "application/octet-stream")],
        };
    }
    let raw = |header: FrameHeader, payload: Vec<u8>| {
        Pkt::Ws(Message::Frame(Frame::from_payload(header, payload.into())))
    };
    match rng.random_range(0..12) {
        0 => vec![Pkt::Bin(packet)],
        1 => vec![Pkt::Bin(vec![b'4'])],
        2 => vec![Pkt::Bin([vec![4], packet].concat())],
        // Text that is not UTF-8.
        3 => vec![Pkt::Ws(Message::Frame(Frame::message(
            vec![b'4', b'2', 0xff, 0xfe, b'[', b']'],
            OpCode::Data(Data::Text),
            true,
        )))],
        4 => vec![Pkt::Ws(Message::Frame(Frame::message(
            packet,
            OpCode::Data(Data::Reserved(3)),
            true,
        )))],
        // A continuation of nothing.
        5 => vec![Pkt::Ws(Message::Frame(Frame::message(
            packet,
            OpCode::Data(Data::Continue),
            true,
        )))],
        // A fragment, then another message before the rest.
        6 => vec![
            Pkt::Ws(Message::Frame(Frame::message(
                b"42[\"join-".to_vec(),
                OpCode::Data(Data::Text),
                false,
            ))),
            Pkt::Bin(vec![1, 2, 3]),
        ],
        7 => vec![Pkt::Ws(Message::Ping(bytes(rng, 125).into()))],
        8 => vec![Pkt::Ws(Message::Frame(Frame::ping(bytes(rng, 200))))],
        9 => {
            let code = *pick(rng, &[&1002u16, &4000, &999, &1005]);
            vec![Pkt::Ws(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "\u{0}bye".into(),
            })))]
        }
        10 => {
            let header = FrameHeader {
                opcode: OpCode::Control(Control::Reserved(0xb)),
                ..FrameHeader::default()
            };
            vec![raw(header, vec![1, 2, 3])]
        }
        _ => {
            // A compressed frame nobody negotiated.
            let header = FrameHeader {
                rsv1: true,
                opcode: OpCode::Data(Data::Text),
                ..FrameHeader::default()
            };
            vec![raw(header, b"42[]".to_vec())]
        }
    }
}

fn ws_wire(pkts: Vec<Pkt>) -> Wire {
    let messages = pkts
        .into_iter()
        .filter_map(|p| match p {
            Pkt::Text(s) => Some(Message::text(s)),
            Pkt::Bin(b) => Some(Message::binary(b)),
            Pkt::Ws(m) => Some(m),
            Pkt::NextPost => None,
            Pkt::Post(..) => unreachable!("polling-only packet in a WebSocket frame"),
        })
        .collect();
    Wire::Ws(messages)
}

fn polling_wire(pkts: Vec<Pkt>) -> Wire {
    let mut posts = Vec::new();
    let mut body: Option<Vec<String>> = None;
    let flush = |body: &mut Option<Vec<String>>, posts: &mut Vec<Post>| {
        if let Some(parts) = body.take() {
            let joined = parts.join(&SEPARATOR.to_string());
            posts.push(Post {
                body: joined.into_bytes(),
                content_type: TEXT_PLAIN,
            });
        }
    };
    for pkt in pkts {
        match pkt {
            Pkt::Text(s) => body.get_or_insert_with(Vec::new).push(s),
            Pkt::Bin(b) => body
                .get_or_insert_with(Vec::new)
                .push(format!("b{}", base64(&b))),
            Pkt::NextPost => flush(&mut body, &mut posts),
            Pkt::Post(bytes, content_type) => {
                flush(&mut body, &mut posts);
                posts.push(Post {
                    body: bytes,
                    content_type,
                });
            }
            Pkt::Ws(_) => unreachable!("WebSocket-only packet in a polling frame"),
        }
    }
    flush(&mut body, &mut posts);
    Wire::Posts(posts)
}

/// The frame's first packet, shortened, for messages.
fn show(pkts: &[Pkt]) -> String {
    let first = match pkts.first() {
        Some(Pkt::Text(s)) => format!("{:?}", s.chars().take(60).collect::<String>()),
        Some(Pkt::Bin(b)) => format!("binary {} bytes", b.len()),
        Some(Pkt::Ws(m)) => format!(
            "ws {:?}",
            format!("{m:?}").chars().take(60).collect::<String>()
        ),
        Some(Pkt::Post(b, ct)) => format!("POST {} bytes of {ct}", b.len()),
        Some(Pkt::NextPost) | None => "nothing".to_string(),
    };
    format!("{first} (+{} more)", pkts.len().saturating_sub(1))
}

/// Standard base64 with padding (Engine.IO's encoding of binary packets in polling).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_the_standard_alphabet() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
}
