//! The client side of the WebSocket protocol (RFC 6455), as much of it as a tab needs: the
//! upgrade, frames read in place, fragmented messages joined, the server's pings and close
//! answered, and masked frames written.
//!
//! A read takes what the socket holds into a scratch buffer that the connections of one
//! thread share, and hands each whole message to the caller there, borrowed. A connection
//! keeps only the start of a frame that a read cut short (rarely any), so an idle tab holds
//! no read buffer at all, and a receipt copies nothing.

use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// What one read takes from a socket at most: the size of each thread's scratch buffer.
const SCRATCH_BYTES: usize = 64 * 1024;
/// The largest message a tab takes, in one frame or put together from fragments.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// The largest upgrade response head.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How much of a refused upgrade's body is read.
const MAX_REFUSAL_BYTES: usize = 64 * 1024;
/// RFC 6455 §1.3: appended to the key, hashed, to prove the server speaks WebSocket.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

thread_local! {
    /// This thread's scratch buffer; taken for the length of one read and put back.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A whole message, borrowed from the buffer it was read into.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// What a reader wants after a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// The next one.
    Go,
    /// Write this text frame back, then the next one.
    Reply(String),
    /// Nothing more this read: the rest waits for the next.
    Stop,
}

/// A frame a read asks to be written back, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A text frame the reader asked for ([`Flow::Reply`]).
    Text(String),
    /// The answer to the server's ping: its payload.
    Pong(Vec<u8>),
    /// The answer to the server's close: its status code, if it gave one.
    Close(Vec<u8>),
}

/// What a read found besides the messages it handed on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub replies: Vec<Reply>,
    /// The server closed the connection (a close frame or the end of the stream).
    pub closed: bool,
}

/// A connection's reading state between reads.
#[derive(Debug, Default)]
pub struct Frames {
    /// Bytes a read left: the start of a frame cut short, or (after a stop) whole frames.
    partial: Vec<u8>,
    /// `partial` may hold whole frames: hand them on before reading again.
    unread: bool,
    /// A fragmented message being put together: whether it is text, and its bytes so far.
    joining: Option<(bool, Vec<u8>)>,
    /// The server closed the connection: nothing more is read or handed on.
    closed: bool,
}

impl Frames {
    /// The state after an upgrade that read `leftover` past the response head.
    pub fn after(leftover: Vec<u8>) -> Frames {
        Frames {
            unread: !leftover.is_empty(),
            partial: leftover,
            joining: None,
            closed: false,
        }
    }

    /// Reads what `r` holds (waiting until it holds something) and hands each whole message
    /// to `on`, in order. Errors are the connection's end: `transport error: ...` or
    /// `protocol error: ...`.
    pub async fn read<R, F>(&mut self, r: &mut R, mut on: F) -> Result<Read, String>
    where
        R: AsyncRead + Unpin,
        F: FnMut(Message<'_>) -> Result<Flow, String>,
    {
        poll_fn(|cx| self.poll_read(cx, r, &mut on)).await
    }

    /// [`Frames::read`] as a poll: `Pending` once `r` holds nothing more.
    pub fn poll_read<R, F>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        on: &mut F,
    ) -> Poll<Result<Read, String>>
    where
        R: AsyncRead + Unpin,
        F: FnMut(Message<'_>) -> Result<Flow, String>,
    {
        let mut out = Read::default();
        if self.closed {
            out.closed = true;
            return Poll::Ready(Ok(out));
        }
        if self.unread {
            return Poll::Ready(self.kept(on, &mut out).map(|()| out));
        }
        let mut scratch = SCRATCH.with(Cell::take);
        if scratch.len() < SCRATCH_BYTES {
            scratch.resize(SCRATCH_BYTES, 0);
        }
        let mut buf = ReadBuf::new(&mut scratch);
        let polled = Pin::new(&mut *r).poll_read(cx, &mut buf);
        let n = buf.filled().len();
        let result = match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(format!("transport error: {e}"))),
            Poll::Ready(Ok(())) if n == 0 => {
                self.closed = true;
                out.closed = true;
                Poll::Ready(Ok(out))
            }
            Poll::Ready(Ok(())) => {
                Poll::Ready(self.take(&scratch[..n], on, &mut out).map(|()| out))
            }
        };
        SCRATCH.with(|s| s.set(scratch));
        result
    }

    /// Hands on the whole messages of `chunk`, just read, and keeps what is left of it.
    fn take<F>(&mut self, chunk: &[u8], on: &mut F, out: &mut Read) -> Result<(), String>
    where
        F: FnMut(Message<'_>) -> Result<Flow, String>,
    {
        if self.closed {
            out.closed = true;
            return Ok(());
        }
        if !self.partial.is_empty() {
            self.partial.extend_from_slice(chunk);
            return self.kept(on, out);
        }
        let (used, stopped) = frames(chunk, &mut self.joining, on, out)?;
        self.partial.extend_from_slice(&chunk[used..]);
        self.unread = stopped && !self.partial.is_empty();
        self.closed = out.closed;
        Ok(())
    }

    /// Hands on the whole messages kept in `partial`.
    fn kept<F>(&mut self, on: &mut F, out: &mut Read) -> Result<(), String>
    where
        F: FnMut(Message<'_>) -> Result<Flow, String>,
    {
        let partial = std::mem::take(&mut self.partial);
        let taken = frames(&partial, &mut self.joining, on, out);
        self.partial = partial;
        let (used, stopped) = taken?;
        self.partial.drain(..used);
        if self.partial.is_empty() {
            // Frames cut short are rare: an idle tab keeps no buffer.
            self.partial = Vec::new();
        }
        self.unread = stopped && !self.partial.is_empty();
        self.closed = out.closed;
        Ok(())
    }
}

/// A frame's head: where its payload lies in the buffer.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    fin: bool,
    opcode: u8,
    start: usize,
    len: usize,
}

/// The head of the frame `buf` starts with, once the whole frame is there.
fn head(buf: &[u8]) -> Result<Option<Head>, String> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("protocol error: a frame with reserved bits set".into());
    }
    if b1 & 0x80 != 0 {
        return Err("protocol error: a masked frame from the server".into());
    }
    let (len, start) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut len = [0u8; 8];
                len.copy_from_slice(bytes);
                (u64::from_be_bytes(len), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0f;
    if opcode >= CLOSE && (!fin || len > 125) {
        return Err("protocol error: a fragmented or oversized control frame".into());
    }
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(format!(
            "protocol error: a frame of {len} bytes (at most {MAX_MESSAGE_BYTES})"
        ));
    }
    let len = len as usize;
    if buf.len() < start + len {
        return Ok(None);
    }
    Ok(Some(Head {
        fin,
        opcode,
        start,
        len,
    }))
}

/// Hands on the whole messages at the start of `buf`: how many bytes were used, and whether
/// `on` (or the server's close) stopped it.
fn frames<F>(
    buf: &[u8],
    joining: &mut Option<(bool, Vec<u8>)>,
    on: &mut F,
    out: &mut Read,
) -> Result<(usize, bool), String>
where
    F: FnMut(Message<'_>) -> Result<Flow, String>,
{
    let mut used = 0;
    while let Some(h) = head(&buf[used..])? {
        let payload = &buf[used + h.start..used + h.start + h.len];
        used += h.start + h.len;
        let flow = match h.opcode {
            TEXT | BINARY if joining.is_some() => {
                return Err("protocol error: a new message inside a fragmented one".into());
            }
            TEXT | BINARY if h.fin => hand_on(h.opcode == TEXT, payload, on)?,
            TEXT | BINARY => {
                *joining = Some((h.opcode == TEXT, payload.to_vec()));
                Flow::Go
            }
            CONTINUATION => {
                let Some((_, bytes)) = joining.as_mut() else {
                    return Err("protocol error: a continuation outside a message".into());
                };
                if bytes.len() + payload.len() > MAX_MESSAGE_BYTES {
                    return Err(format!(
                        "protocol error: a message of over {MAX_MESSAGE_BYTES} bytes"
                    ));
                }
                bytes.extend_from_slice(payload);
                match joining.take() {
                    Some((text, bytes)) if h.fin => hand_on(text, &bytes, on)?,
                    still => {
                        *joining = still;
                        Flow::Go
                    }
                }
            }
            CLOSE => {
                out.replies
                    .push(Reply::Close(payload.get(..2).unwrap_or_default().to_vec()));
                out.closed = true;
                return Ok((used, true));
            }
            PING => {
                out.replies.push(Reply::Pong(payload.to_vec()));
                Flow::Go
            }
            PONG => Flow::Go,
            other => return Err(format!("protocol error: a frame of unknown opcode {other}")),
        };
        match flow {
            Flow::Go => {}
            Flow::Reply(text) => out.replies.push(Reply::Text(text)),
            Flow::Stop => return Ok((used, true)),
        }
    }
    Ok((used, false))
}

fn hand_on<F>(text: bool, payload: &[u8], on: &mut F) -> Result<Flow, String>
where
    F: FnMut(Message<'_>) -> Result<Flow, String>,
{
    if !text {
        return on(Message::Binary(payload));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| "protocol error: a text message that is not UTF-8".to_string())?;
    on(Message::Text(text))
}

/// A client frame: FIN set, `opcode`, the payload masked with `mask`.
fn encode(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// The writing side of a connection.
pub struct Writer<W> {
    w: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(w: W) -> Writer<W> {
        Writer { w }
    }

    pub async fn text(&mut self, text: &str) -> std::io::Result<()> {
        self.frame(TEXT, text.as_bytes()).await
    }

    pub async fn reply(&mut self, reply: &Reply) -> std::io::Result<()> {
        match reply {
            Reply::Text(text) => self.frame(TEXT, text.as_bytes()).await,
            Reply::Pong(payload) => self.frame(PONG, payload).await,
            Reply::Close(code) => self.frame(CLOSE, code).await,
        }
    }

    /// A close frame (1000, normal closure), then the end of this side of the stream.
    pub async fn close(&mut self) -> std::io::Result<()> {
        self.frame(CLOSE, &1000u16.to_be_bytes()).await?;
        self.w.shutdown().await
    }

    async fn frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        self.w
            .write_all(&encode(opcode, payload, rand::random()))
            .await?;
        self.w.flush().await
    }
}

/// The `Sec-WebSocket-Accept` a server answers `key` with.
fn accept_of(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Why `name: value` may not go in a request head as it is (http's own rules for a header
/// name and value, as before the own framing), if it may not.
fn header_problem(name: &str, value: &str) -> Option<String> {
    use reqwest::header::{HeaderName, HeaderValue};
    let name_ok = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string());
    let value_ok = HeaderValue::from_str(value).map_err(|e| e.to_string());
    name_ok.and(value_ok).err()
}

/// Upgrades `s` to a WebSocket: `GET resource` with `Host: host` and `headers`. Returns what
/// was read past the response head (the first frames), or why the upgrade failed
/// (`connect failed: ...`; a refusal says its status and what the server said).
pub async fn upgrade<S>(
    s: &mut S,
    host: &str,
    resource: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut request = format!(
        "GET {resource} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        if let Some(problem) = header_problem(name, value) {
            return Err(format!("connect failed: header {name}: {problem}"));
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let failed = |e: std::io::Error| format!("connect failed: {e}");
    s.write_all(request.as_bytes()).await.map_err(failed)?;
    s.flush().await.map_err(failed)?;

    let mut read = Vec::with_capacity(1024);
    loop {
        if read.len() >= MAX_HEAD_BYTES {
            return Err("connect failed: the upgrade's response head is too long".into());
        }
        read.reserve(1024);
        if s.read_buf(&mut read).await.map_err(failed)? == 0 {
            return Err(
                "connect failed: the server closed the connection during the upgrade".into(),
            );
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        let len = match response.parse(&read) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(format!("connect failed: not an HTTP response: {e}")),
        };
        let code = response.code.unwrap_or_default();
        let field = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if code != 101 {
            let reason = response.reason.unwrap_or_default().to_string();
            let length = field("content-length").and_then(|l| l.parse::<usize>().ok());
            let mut body = read.split_off(len);
            let want = length.unwrap_or(0).min(MAX_REFUSAL_BYTES);
            while body.len() < want {
                body.reserve(want - body.len());
                if s.read_buf(&mut body).await.unwrap_or(0) == 0 {
                    break;
                }
            }
            let body = String::from_utf8_lossy(&body);
            let body: String = body.trim().chars().take(300).collect();
            return Err(format!("connect failed: HTTP {code} {reason}: {body}"));
        }
        if !field("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return Err("connect failed: a 101 answer that does not upgrade to websocket".into());
        }
        if field("sec-websocket-accept").as_deref() != Some(accept_of(&key).as_str()) {
            return Err("connect failed: a 101 answer with the wrong Sec-WebSocket-Accept".into());
        }
        return Ok(read.split_off(len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked.
    fn server(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => frame.push(n as u8),
            n if n <= 65535 => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    /// What `on` heard, as owned strings (`b:<len>` for a binary message).
    fn heard(m: Message<'_>) -> String {
        match m {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => format!("b:{}", b.len()),
        }
    }

    /// Feeds `stream` to a `Frames` in pieces of `step` bytes; what it heard and replied.
    fn feed(stream: &[u8], step: usize) -> Result<(Vec<String>, Read), String> {
        let mut frames = Frames::default();
        let mut got = Vec::new();
        let mut all = Read::default();
        for piece in stream.chunks(step) {
            let mut out = Read::default();
            frames.take(
                piece,
                &mut |m: Message<'_>| {
                    got.push(heard(m));
                    Ok(Flow::Go)
                },
                &mut out,
            )?;
            all.replies.extend(out.replies);
            all.closed |= out.closed;
        }
        assert!(
            frames.partial.is_empty() || all.closed,
            "whole frames leave nothing behind"
        );
        Ok((got, all))
    }

    #[test]
    fn rfc_6455_examples_are_read_whatever_the_reads_cut() {
        // RFC 6455 §5.7: "Hello" unmasked, and fragmented as "Hel" + "lo".
        let mut stream = vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        stream.extend([0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        // An unmasked ping, "Hello", between the fragments of a third message.
        stream.extend(server(false, TEXT, b"42[\"a\","));
        stream.extend([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        stream.extend(server(true, CONTINUATION, b"1]"));
        // 256 bytes of binary (16-bit length), and 65,536 (64-bit length).
        stream.extend(server(true, BINARY, &[7; 256]));
        stream.extend(server(true, BINARY, &[7; 65536]));
        stream.extend(server(true, PONG, b""));
        stream.extend(server(true, TEXT, "\u{e9}t\u{e9}".as_bytes()));
        for step in [1, 2, 3, 7, 100, 70_000] {
            let (got, read) = feed(&stream, step).unwrap();
            assert_eq!(
                got,
                [
                    "Hello",
                    "Hello",
                    r#"42["a",1]"#,
                    "b:256",
                    "b:65536",
                    "\u{e9}t\u{e9}"
                ],
                "in pieces of {step}"
            );
            assert_eq!(read.replies, [Reply::Pong(b"Hello".to_vec())]);
            assert!(!read.closed);
        }
    }

    #[test]
    fn a_close_is_answered_with_its_code_and_ends_the_reading() {
        let mut stream = server(true, TEXT, b"2");
        stream.extend(server(true, CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']));
        stream.extend(server(true, TEXT, b"never"));
        let (got, read) = feed(&stream, 4).unwrap();
        assert_eq!(got, ["2"]);
        assert_eq!(read.replies, [Reply::Close(vec![0x03, 0xe8])]);
        assert!(read.closed);
    }

    #[test]
    fn frames_the_protocol_forbids_end_the_connection_with_the_reason() {
        let masked = vec![0x81, 0x81, 1, 2, 3, 4, b'x' ^ 1];
        let reserved = vec![0xc1, 0x01, b'x'];
        let long_ping = server(true, PING, &[0; 126]);
        let split_ping = server(false, PING, b"");
        let stray = server(true, CONTINUATION, b"x");
        let mut nested = server(false, TEXT, b"a");
        nested.extend(server(true, TEXT, b"b"));
        let bad_utf8 = server(true, TEXT, &[0xff, 0xfe]);
        let unknown = server(true, 0x3, b"");
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(MAX_MESSAGE_BYTES as u64 + 1).to_be_bytes());
        for (stream, why) in [
            (masked, "masked"),
            (reserved, "reserved bits"),
            (long_ping, "control frame"),
            (split_ping, "control frame"),
            (stray, "continuation outside"),
            (nested, "inside a fragmented"),
            (bad_utf8, "not UTF-8"),
            (unknown, "unknown opcode 3"),
            (huge, "at most"),
        ] {
            let e = feed(&stream, 1).unwrap_err();
            assert!(e.starts_with("protocol error: ") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn a_stop_keeps_the_rest_for_the_next_read() {
        let mut stream = server(true, TEXT, b"one");
        stream.extend(server(true, TEXT, b"two"));
        stream.extend(server(true, TEXT, b"thr"));
        let mut frames = Frames::default();
        let mut out = Read::default();
        let got = std::cell::RefCell::new(Vec::new());
        let mut first = |m: Message<'_>| {
            got.borrow_mut().push(heard(m));
            Ok(Flow::Stop)
        };
        frames
            .take(&stream[..stream.len() - 1], &mut first, &mut out)
            .unwrap();
        assert_eq!(*got.borrow(), ["one"]);
        assert!(frames.unread);
        frames.kept(&mut first, &mut out).unwrap();
        assert_eq!(*got.borrow(), ["one", "two"]);
        // What is left is the start of a frame: nothing to hand on until the rest comes.
        frames.kept(&mut first, &mut out).unwrap();
        assert_eq!(*got.borrow(), ["one", "two"]);
        assert!(!frames.unread);
        frames
            .take(&stream[stream.len() - 1..], &mut first, &mut out)
            .unwrap();
        assert_eq!(*got.borrow(), ["one", "two", "thr"]);
        assert!(frames.partial.is_empty() && !frames.unread);
    }

    #[test]
    fn client_frames_are_masked_with_the_length_in_the_form_their_size_needs() {
        // RFC 6455 §5.7: a masked "Hello" with the key 37 fa 21 3d.
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        assert_eq!(
            encode(TEXT, b"Hello", mask),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        let medium = encode(BINARY, &[0; 300], mask);
        assert_eq!(&medium[..4], &[0x82, 0xfe, 0x01, 0x2c]);
        assert_eq!(medium.len(), 4 + 4 + 300);
        let big = encode(BINARY, &[0; 70_000], mask);
        assert_eq!(&big[..2], &[0x82, 0xff]);
        assert_eq!(&big[2..10], &70_000u64.to_be_bytes());
        // Unmasked again, it is the payload.
        let unmasked: Vec<u8> = big[14..]
            .iter()
            .zip(mask.iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        assert_eq!(unmasked, vec![0; 70_000]);
    }

    #[test]
    fn the_accept_key_is_the_rfcs_and_bad_headers_are_refused() {
        // RFC 6455 §1.3's example.
        assert_eq!(
            accept_of("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(header_problem("x-token", "abc def"), None);
        assert!(header_problem("x token", "v").is_some());
        assert!(header_problem("", "v").is_some());
        assert!(header_problem("x-a", "v\r\nInjected: 1").is_some());
    }

    #[tokio::test]
    async fn an_upgrade_checks_the_answer_and_keeps_the_frames_that_came_with_it() {
        use tokio::io::duplex;
        // A server whose 101 comes in one write with the first frame.
        let (mut client, mut far) = duplex(4096);
        let far_end = tokio::spawn(async move {
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                far.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_string();
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept_of(&key)
            )
            .into_bytes();
            answer.extend(server(true, TEXT, b"0{}"));
            far.write_all(&answer).await.unwrap();
            head
        });
        let headers = [("x-run".to_string(), "7".to_string())];
        let leftover = upgrade(&mut client, "h:1", "/socket.io/?EIO=4", &headers)
            .await
            .unwrap();
        let head = far_end.await.unwrap();
        assert!(
            head.starts_with("GET /socket.io/?EIO=4 HTTP/1.1\r\nHost: h:1\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-run: 7\r\n"), "{head}");
        assert_eq!(leftover, server(true, TEXT, b"0{}"));

        // One whose accept key is wrong.
        let (mut client, mut far) = duplex(4096);
        tokio::spawn(async move {
            let mut head = [0u8; 512];
            let _ = far.read(&mut head).await;
            let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: nope\r\n\r\n";
            far.write_all(answer.as_bytes()).await.unwrap();
            far
        });
        let e = upgrade(&mut client, "h", "/", &[]).await.unwrap_err();
        assert!(e.contains("wrong Sec-WebSocket-Accept"), "{e}");
    }
}
