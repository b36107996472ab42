//! A receipt's few fields read by hand: a booking event's stamp ([`EventStamp`]) and an app
//! event's marker, each found in one pass over the EVENT's array, with everything else checked
//! for well-formed JSON and skipped. Neither allocates or builds a visitor.
//!
//! They are fast paths, not second definitions. [`first`] answers a stamp only where it is
//! sure that serde's reading (`Args::nth::<EventStamp>(0)`) gives the same one, and
//! [`marker_at`] a marker only where reading the argument into a `serde_json::Value` and
//! following the path gives the same text. On anything unusual they answer "unsure" and serde
//! decides: an escape in a key or in the text read, a field named twice, a required field
//! missing, a number that is not a plain integer of up to 18 digits where one is read,
//! values nested over 64 deep, or JSON that is not well formed. The skipping is as strict as
//! serde_json's (no trailing commas, no leading zeros, no control characters in strings,
//! valid escapes), and in an argument serde would read into a tree also refuses what the tree
//! refuses (`\u` escapes, which may be lone surrogates, and exponents, which may overflow), so
//! a payload serde refuses is never read here.

use std::borrow::Cow;

use booking_server::realtime::protocol::EventStamp;
use serde_json::Value;

use crate::drive::client::Args;
use crate::judge::truth::at_path;

/// A booking receipt's stamp: argument 0 of the event, read by hand where it can be, by serde
/// where the hand reading is unsure; `None` where the event carries none.
pub fn read<'a>(args: &Args<'a>) -> Option<EventStamp<'a>> {
    match args {
        Args::Array(array) => first(array).or_else(|| args.nth(0)),
        Args::Values(_) => args.nth(0),
    }
}

/// An app receipt's marker text: at `path` (dotted keys and indexes, `$` the argument itself,
/// as `judge::truth::at_path` reads them) of argument `arg`, read by hand where it can be
/// (borrowed from the frame), from the argument's tree where the hand reading is unsure.
pub fn marker_text<'a>(args: &Args<'a>, arg: usize, path: &str) -> Option<Cow<'a, str>> {
    if let Args::Array(array) = args {
        match marker_at(array, arg, path) {
            Marker::Text(text) => return Some(Cow::Borrowed(text)),
            Marker::Absent => return None,
            Marker::Unsure => {}
        }
    }
    let tree = args.nth::<Value>(arg)?;
    Some(Cow::Owned(at_path(&tree, path)?.as_str()?.to_owned()))
}

/// The stamp of argument 0 of an EVENT's array `[name, payload, ...]`: `None` where unsure.
fn first(array: &str) -> Option<EventStamp<'_>> {
    Scan::new(array).event()
}

/// How deep a skipped value may nest before the reader gives up (serde has no such limit).
const MAX_DEPTH: u32 = 64;

/// What the hand reading found at an app's marker path.
#[derive(Debug, PartialEq, Eq)]
enum Marker<'a> {
    /// The text there, as the tree would give it.
    Text(&'a str),
    /// No text there: no such argument or path, or not a string.
    Absent,
    /// Not sure: ask serde.
    Unsure,
}

/// The text at `path` of argument `arg` of an EVENT's array.
fn marker_at<'a>(array: &'a str, arg: usize, path: &str) -> Marker<'a> {
    match Scan::new(array).marker(arg, path) {
        Some(Some(text)) => Marker::Text(text),
        Some(None) => Marker::Absent,
        None => Marker::Unsure,
    }
}

/// How many keys a marker path may have before the reader gives up.
const MAX_PATH: usize = 16;

/// A cursor over the array's bytes. Every method answers `None` for "unsure".
struct Scan<'a> {
    text: &'a str,
    at: usize,
    /// Inside an argument serde reads into a tree: refuse what the tree refuses too.
    strict: bool,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Scan {
            text,
            at: 0,
            strict: false,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after JSON whitespace (what serde_json counts as whitespace).
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(self.at) {
            self.at += 1;
        }
        bytes.get(self.at).copied()
    }

    /// After a member of a container: a comma (`false`, another follows) or `close` (`true`,
    /// the container ended), taken.
    fn next_or(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(false)
            }
            byte if byte == close => {
                self.at += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// Takes `byte` after whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The whole event: `[name, stamp-object, ...]`, then nothing but whitespace.
    fn event(&mut self) -> Option<EventStamp<'a>> {
        self.eat(b'[')?;
        self.value()?;
        self.eat(b',')?;
        let stamp = self.stamp()?;
        self.end_of_event()?;
        Some(stamp)
    }

    /// The arguments left, skipped, the array's end, and nothing but whitespace after it.
    fn end_of_event(&mut self) -> Option<()> {
        while !self.next_or(b']')? {
            self.value()?;
        }
        self.peek().is_none().then_some(())
    }

    /// The whole event, with the text at `path` of argument `arg`: `Some(None)` where it holds
    /// none.
    fn marker(&mut self, arg: usize, path: &str) -> Option<Option<&'a str>> {
        let mut keys = [""; MAX_PATH];
        let mut depth = 0;
        if path != "$" {
            for key in path.split('.') {
                *keys.get_mut(depth)? = key;
                depth += 1;
            }
        }
        self.eat(b'[')?;
        // The name and the arguments before `arg`.
        for _ in 0..=arg {
            self.value()?;
            if self.next_or(b']')? {
                return self.peek().is_none().then_some(None);
            }
        }
        self.strict = true;
        let found = self.follow(&keys[..depth])?;
        self.strict = false;
        self.end_of_event()?;
        Some(found)
    }

    /// Reads a value, following `keys` into it: the text at their end, if there is one.
    fn follow(&mut self, keys: &[&str]) -> Option<Option<&'a str>> {
        let Some((key, rest)) = keys.split_first() else {
            return match self.peek()? {
                b'"' => self.plain_string().map(Some),
                _ => self.value().map(|()| None),
            };
        };
        match self.peek()? {
            b'{' => {
                self.at += 1;
                let mut found = None;
                if self.peek()? == b'}' {
                    self.at += 1;
                    return Some(None);
                }
                loop {
                    if self.plain_key()? == *key {
                        // A key named twice: the tree keeps the last one.
                        once(&mut found, self.follow(rest)?)?;
                    } else {
                        self.value()?;
                    }
                    if self.next_or(b'}')? {
                        return Some(found.flatten());
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let wanted = key.parse::<usize>().ok();
                let mut found = None;
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(None);
                }
                for index in 0.. {
                    if Some(index) == wanted {
                        found = self.follow(rest)?;
                    } else {
                        self.value()?;
                    }
                    if self.next_or(b']')? {
                        break;
                    }
                }
                Some(found)
            }
            // A key into a string, a number or a literal finds nothing.
            _ => self.value().map(|()| None),
        }
    }

    /// The payload object: the stamp's fields read, the others skipped.
    fn stamp(&mut self) -> Option<EventStamp<'a>> {
        self.eat(b'{')?;
        let mut seq = None;
        let mut boardroom_id = None;
        let mut previous_boardroom_id = None;
        let mut emitted_at = None;
        let mut replayed = None;
        let mut node = None;
        let mut traceparent = None;
        if self.peek()? == b'}' {
            return None; // no fields: required ones are missing
        }
        loop {
            match self.plain_key()?.as_bytes() {
                b"seq" => once(&mut seq, self.integer()?)?,
                b"boardroomId" => once(&mut boardroom_id, self.integer()?)?,
                b"previousBoardroomId" => {
                    let value = if self.null() {
                        None
                    } else {
                        Some(self.integer()?)
                    };
                    once(&mut previous_boardroom_id, value)?
                }
                b"emittedAt" => once(&mut emitted_at, self.integer()?)?,
                b"replayed" => once(&mut replayed, self.boolean()?)?,
                b"node" => once(&mut node, self.text()?)?,
                b"traceparent" => once(&mut traceparent, self.text()?)?,
                _ => self.value()?,
            }
            if self.next_or(b'}')? {
                break;
            }
        }
        Some(EventStamp {
            seq: seq?,
            boardroom_id: boardroom_id?,
            previous_boardroom_id: previous_boardroom_id.flatten(),
            emitted_at: emitted_at?,
            replayed: replayed.unwrap_or(false),
            node: node.flatten().map(Cow::Borrowed),
            traceparent: traceparent.flatten().map(Cow::Borrowed),
        })
    }

    /// A string's contents after its opening quote, up to and past its closing one, and
    /// whether it holds an escape. Refuses control characters and invalid escapes.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        let bytes = self.bytes();
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at = plain_until(bytes, self.at);
            match *bytes.get(self.at)? {
                b'"' => {
                    let text = &self.text[start..self.at];
                    self.at += 1;
                    return Some((text, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *bytes.get(self.at + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                        b'u' if !self.strict => {
                            let hex = bytes.get(self.at + 2..self.at + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// A string without escapes, its opening quote after whitespace: one with escapes is
    /// serde's to read (it unescapes it into a copy, and matches a key unescaped).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        match self.string()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    /// An object's key without escapes, and its colon.
    fn plain_key(&mut self) -> Option<&'a str> {
        let key = self.plain_string()?;
        self.eat(b':')?;
        Some(key)
    }

    /// `null` after whitespace, taken if it is there.
    fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.word(b"null").is_some()
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.word(b"true").map(|()| true),
            b'f' => self.word(b"false").map(|()| false),
            _ => None,
        }
    }

    /// A string without escapes, or `null`.
    fn text(&mut self) -> Option<Option<&'a str>> {
        if self.null() {
            return Some(None);
        }
        self.plain_string().map(Some)
    }

    /// A plain integer of at most 18 digits, so it cannot overflow (no fraction, no exponent
    /// and no `-0`: serde_json reads those as floats, which an `i64` refuses).
    fn integer(&mut self) -> Option<i64> {
        self.peek()?;
        let bytes = self.bytes();
        let negative = bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(&digit @ b'0'..=b'9') = bytes.get(self.at) {
            if self.at - start == 18 {
                return None;
            }
            value = value * 10 + i64::from(digit - b'0');
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && bytes[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = bytes.get(self.at) {
            return None;
        }
        match (negative, value) {
            (true, 0) => None, // serde_json reads `-0` as a float
            (true, _) => Some(-value),
            (false, _) => Some(value),
        }
    }

    /// Skips any JSON value, checked as serde_json checks what it ignores.
    fn value(&mut self) -> Option<()> {
        // Open containers, innermost in the lowest bit: 1 an object, 0 an array.
        let mut open: u64 = 0;
        let mut depth = 0u32;
        loop {
            // A value begins.
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.word(b"true")?,
                b'f' => self.word(b"false")?,
                b'n' => self.word(b"null")?,
                open_byte @ (b'[' | b'{') => {
                    self.at += 1;
                    let object = open_byte == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.at += 1;
                    } else {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                        open = (open << 1) | u64::from(object);
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                }
                _ => return None,
            }
            // A value ended: close what it ends, or go on to the next.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = open & 1 == 1;
                if !self.next_or(if object { b'}' } else { b']' })? {
                    if object {
                        self.key()?;
                    }
                    break;
                }
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// An object's key and its colon.
    fn key(&mut self) -> Option<()> {
        self.eat(b'"')?;
        self.string()?;
        self.eat(b':')
    }

    /// Takes `word` if it starts at the cursor.
    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.bytes()[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// A JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let digits = |at: &mut usize| {
            let start = *at;
            while let Some(b'0'..=b'9') = bytes.get(*at) {
                *at += 1;
            }
            *at - start
        };
        let mut at = self.at;
        if bytes[at] == b'-' {
            at += 1;
        }
        let lead = at;
        let whole = digits(&mut at);
        if whole == 0 || (whole > 1 && bytes[lead] == b'0') || (self.strict && whole > 300) {
            return None;
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            if self.strict {
                return None; // the tree refuses what overflows a float
            }
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return None;
            }
        }
        self.at = at;
        Some(())
    }
}

/// Where the first quote, backslash or control character at or after `at` is (or the end):
/// eight bytes at a time, each word tested for the three at once.
fn plain_until(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // A byte of `w` is flagged (its high bit set) where `w` has a zero byte; bytes above the
    // first zero may be flagged falsely, so only the lowest flag is trusted.
    let zero_in = |w: u64| w.wrapping_sub(ONES) & !w;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let found = (control
            | zero_in(word ^ (ONES * u64::from(b'"')))
            | zero_in(word ^ (ONES * u64::from(b'\\'))))
            & HIGH;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&byte) = bytes.get(at) {
        if matches!(byte, b'"' | b'\\' | 0..=0x1f) {
            break;
        }
        at += 1;
    }
    at
}

/// Sets a field read for the first time; a field named twice is serde's error.
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// serde's reading, the definition.
    fn serde(array: &str) -> Option<EventStamp<'_>> {
        Args::Array(array).nth::<EventStamp>(0)
    }

    fn same(a: &EventStamp<'_>, b: &EventStamp<'_>) -> bool {
        a.seq == b.seq
            && a.boardroom_id == b.boardroom_id
            && a.previous_boardroom_id == b.previous_boardroom_id
            && a.emitted_at == b.emitted_at
            && a.replayed == b.replayed
            && a.node == b.node
            && a.traceparent == b.traceparent
    }

    /// Where the hand reading answers, serde answers the same; returns whether it answered.
    fn agrees(array: &str) -> bool {
        match first(array) {
            Some(hand) => {
                let Some(by_serde) = serde(array) else {
                    panic!("a stamp serde refuses: {array}");
                };
                assert!(
                    same(&hand, &by_serde),
                    "{hand:?} != {by_serde:?} in {array}"
                );
                assert!(matches!(hand.node, None | Some(Cow::Borrowed(_))));
                true
            }
            None => false,
        }
    }

    #[test]
    fn a_servers_payload_is_read_by_hand_as_serde_reads_it() {
        let payload = serde_json::json!({
            "booking": {"id": 7, "title": "Stand-up \"daily\" \u{e9}", "attendees": [1, 2, 3],
                "start": "2026-12-07T09:00:00Z", "notes": null, "price": -1.5e-3, "ok": true},
            "boardroomId": 3, "previousBoardroomId": 2, "changes": {"timeChanged": false},
            "seq": 41, "eventId": "e-41", "emittedAt": 1796684255000000_i64,
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "node": "node-a",
        });
        let array =
            serde_json::to_string(&serde_json::json!(["booking-updated", payload])).unwrap();
        let Some(stamp) = first(&array) else {
            panic!("unsure of {array}");
        };
        assert!(agrees(&array));
        assert_eq!((stamp.seq, stamp.boardroom_id), (41, 3));
        assert_eq!(stamp.previous_boardroom_id, Some(2));
        assert_eq!(stamp.node.as_deref(), Some("node-a"));
        // Whitespace anywhere JSON allows it, a replayed flag, nulls and more arguments.
        let spaced = " [ \"booking-created\" ,\n{ \"seq\" : -7 , \"boardroomId\":1,\t\"emittedAt\":\r0,\
            \"replayed\" : true, \"node\": null, \"previousBoardroomId\": null } , [ ] , { } ] ";
        let Some(stamp) = first(spaced) else {
            panic!("unsure of {spaced}");
        };
        assert!(agrees(spaced));
        assert!(stamp.replayed && stamp.node.is_none() && stamp.previous_boardroom_id.is_none());
    }

    #[test]
    fn what_serde_refuses_or_reads_otherwise_is_left_to_serde() {
        for array in [
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1},]"#,
            r#"["e",{"seq":01,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":1.0,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":1e2,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":-0,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":1,"seq":2,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":1,"boardroomId":1}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":[1,2}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":"a	b"}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":"\q"}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":"\u12g4"}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":nul}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":-}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"x":1.}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1}] x"#,
            r#"["e",{"s\u0065q":1,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",{"seq":1,"boardroomId":1,"emittedAt":1,"node":"a\nb"}]"#,
            r#"["e",{"seq":1234567890123456789,"boardroomId":1,"emittedAt":1}]"#,
            r#"["e",[1,1,null,1]]"#,
            r#"["e"]"#,
            r#"{"seq":1}"#,
        ] {
            assert!(!agrees(array), "answered by hand: {array}");
        }
        // Escaped keys and escaped node names are serde's, and `read` has serde read them.
        let escaped = r#"["e",{"s\u0065q":1,"boardroomId":1,"emittedAt":1,"node":"a\nb"}]"#;
        let stamp = read(&Args::Array(escaped)).expect("serde reads it");
        assert_eq!((stamp.seq, stamp.node.as_deref()), (1, Some("a\nb")));
        assert!(
            read(&Args::Array(
                r#"["e",{"seq":1.0,"boardroomId":1,"emittedAt":1}]"#
            ))
            .is_none()
        );
    }

    /// Random JSON of the kinds payloads hold, escapes and odd numbers included.
    fn random_value(rng: &mut StdRng, depth: u32, out: &mut String) {
        let pick = if depth > 3 {
            rng.random_range(0..5)
        } else {
            rng.random_range(0..7)
        };
        match pick {
            0 => out.push_str(["null", "true", "false"][rng.random_range(0..3)]),
            1 => out.push_str(
                [
                    "0",
                    "-0",
                    "7",
                    "-12",
                    "3.25",
                    "1e9",
                    "-2.5E-3",
                    "12345678901234567890",
                    "1e400",
                ][rng.random_range(0..9)],
            ),
            2..=4 => {
                out.push('"');
                for _ in 0..rng.random_range(0..6) {
                    out.push_str(
                        [
                            "a", "Zz", " ", "\\\"", "\\\\", "\\n", "\\u00e9", "\u{e9}", "/", "\\/",
                            "\\ud800",
                        ][rng.random_range(0..11)],
                    );
                }
                out.push('"');
            }
            5 => {
                out.push('[');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_value(rng, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..rng.random_range(0..4) {
                    if i > 0 {
                        out.push(',');
                    }
                    random_value_key(rng, out);
                    random_value(rng, depth + 1, out);
                }
                out.push('}');
            }
        }
    }

    fn random_value_key(rng: &mut StdRng, out: &mut String) {
        let key = ["\"a\"", "\"booking\"", "\"id\"", "\"k\\u0065y\"", "\"\""];
        out.push_str(key[rng.random_range(0..key.len())]);
        out.push(':');
    }

    /// A random event array: the stamp's fields in any order, some missing, some twice, some
    /// of the wrong kind, among other fields, with whitespace sprinkled in.
    fn random_event(rng: &mut StdRng) -> String {
        let mut fields: Vec<String> = Vec::new();
        let int = |rng: &mut StdRng| {
            [
                "1",
                "-5",
                "0",
                "1796684255000000",
                "01",
                "2.0",
                "1e3",
                "null",
                "\"3\"",
                "-0",
            ][if rng.random_bool(0.8) {
                rng.random_range(0..4)
            } else {
                rng.random_range(0..10)
            }]
            .to_string()
        };
        for (name, required) in [("seq", true), ("boardroomId", true), ("emittedAt", true)] {
            if !required || rng.random_bool(0.95) {
                fields.push(format!("\"{name}\":{}", int(rng)));
            }
        }
        if rng.random_bool(0.5) {
            fields.push(format!("\"previousBoardroomId\":{}", int(rng)));
        }
        if rng.random_bool(0.3) {
            let flag = ["true", "false", "null", "1"][rng.random_range(0..4)];
            fields.push(format!("\"replayed\":{flag}"));
        }
        for name in ["node", "traceparent"] {
            if rng.random_bool(0.5) {
                let text =
                    ["null", "\"node-a\"", "\"\"", "\"a\\u0062\"", "7"][rng.random_range(0..5)];
                fields.push(format!("\"{name}\":{text}"));
            }
        }
        if rng.random_bool(0.05) {
            fields.push("\"seq\":9".into());
        }
        for _ in 0..rng.random_range(0..4) {
            let mut other = String::new();
            random_value_key(rng, &mut other);
            random_value(rng, 0, &mut other);
            fields.push(other);
        }
        // Shuffle the fields.
        for i in (1..fields.len()).rev() {
            fields.swap(i, rng.random_range(0..=i));
        }
        let mut name = String::new();
        random_value(rng, 2, &mut name);
        let mut array = format!("[{name},{{{}}}", fields.join(","));
        for _ in 0..rng.random_range(0..3) {
            array.push(',');
            random_value(rng, 0, &mut array);
        }
        array.push(']');
        // Whitespace between tokens: after structural bytes outside strings.
        let mut spaced = String::with_capacity(array.len() * 2);
        let mut in_string = false;
        let mut escape = false;
        for c in array.chars() {
            spaced.push(c);
            if in_string {
                if escape {
                    escape = false;
                } else if c == '\\' {
                    escape = true;
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            if c == '"' {
                in_string = true;
            } else if matches!(c, ',' | ':' | '[' | '{') && rng.random_bool(0.1) {
                spaced.push([' ', '\n', '\t', '\r'][rng.random_range(0..4)]);
            }
        }
        spaced
    }

    /// One byte of JSON's alphabet removed, added or replaced, anywhere.
    fn mutate(rng: &mut StdRng, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        let alphabet = [
            '"', '\\', ',', ':', '[', ']', '{', '}', '0', '1', '-', '.', 'e', 'n', ' ', '\u{1}',
        ];
        for _ in 0..rng.random_range(1..3) {
            let at = rng.random_range(0..chars.len());
            match rng.random_range(0..3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                _ => chars[at] = alphabet[rng.random_range(0..alphabet.len())],
            }
            if chars.is_empty() {
                break;
            }
        }
        chars.into_iter().collect()
    }

    #[test]
    fn random_and_broken_events_get_a_stamp_by_hand_only_where_serde_gives_the_same() {
        let mut rng = StdRng::seed_from_u64(18);
        let (mut events, mut by_hand, mut by_serde, mut broken_by_hand) = (0, 0, 0, 0);
        for _ in 0..20_000 {
            let event = random_event(&mut rng);
            events += 1;
            by_hand += usize::from(agrees(&event));
            by_serde += usize::from(serde(&event).is_some());
            let broken = mutate(&mut rng, &event);
            broken_by_hand += usize::from(agrees(&broken));
        }
        // The test means something only if both readings answer often: most events are well
        // formed, and hand reading must take most of what serde takes.
        assert!(by_serde > events / 3, "serde read {by_serde} of {events}");
        assert!(
            by_hand > by_serde / 2,
            "by hand {by_hand} of serde's {by_serde}"
        );
        assert!(broken_by_hand > 0, "no mutated event was read by hand");
    }

    /// The tree's reading of a marker, the definition.
    fn by_tree(array: &str, arg: usize, path: &str) -> Option<String> {
        let value = Args::Array(array).nth::<Value>(arg)?;
        at_path(&value, path)?.as_str().map(str::to_owned)
    }

    /// Where the hand reading of a marker answers, the tree answers the same.
    fn marker_agrees(array: &str, arg: usize, path: &str) -> bool {
        let tree = by_tree(array, arg, path);
        match marker_at(array, arg, path) {
            Marker::Text(text) => {
                assert_eq!(tree.as_deref(), Some(text), "{array} at {arg} {path}");
                true
            }
            Marker::Absent => {
                assert_eq!(tree, None, "{array} at {arg} {path}");
                true
            }
            Marker::Unsure => false,
        }
    }

    #[test]
    fn an_apps_marker_is_read_by_hand_as_the_tree_gives_it() {
        let chat = r#"["chat message", {"room": "r1", "text": "hi lgm-0000abcd-12", "n": [1, {"t": "x"}]}, 2]"#;
        assert_eq!(
            marker_at(chat, 0, "text"),
            Marker::Text("hi lgm-0000abcd-12")
        );
        assert_eq!(marker_at(chat, 0, "n.1.t"), Marker::Text("x"));
        assert_eq!(marker_at(chat, 0, "n.0"), Marker::Absent);
        assert_eq!(marker_at(chat, 0, "n.7"), Marker::Absent);
        assert_eq!(marker_at(chat, 0, "room.x"), Marker::Absent);
        assert_eq!(marker_at(chat, 1, "$"), Marker::Absent);
        assert_eq!(marker_at(chat, 2, "$"), Marker::Absent);
        assert_eq!(
            marker_at(r#"["m", "lgm-1"]"#, 0, "$"),
            Marker::Text("lgm-1")
        );
        for (arg, path) in [(0, "text"), (0, "n.1.t"), (0, "n.7"), (2, "$")] {
            assert!(marker_agrees(chat, arg, path));
        }
        // What the tree refuses in the argument it reads, or reads otherwise, is its to say.
        for array in [
            r#"["m", {"text": "a\nb"}]"#,
            r#"["m", {"text": "a", "text": "b"}]"#,
            r#"["m", {"t\u0065xt": "a"}]"#,
            r#"["m", {"text": "a", "big": 1e400}]"#,
            r#"["m", {"text": "a", "odd": "\ud800"}]"#,
            r#"["m", {"text": "a",}]"#,
        ] {
            assert!(
                !marker_agrees(array, 0, "text"),
                "answered by hand: {array}"
            );
        }
        // `marker_text` has the tree read those.
        let escaped = Args::Array(r#"["m", {"text": "a\nb", "big": 1e400}]"#);
        assert_eq!(marker_text(&escaped, 0, "text"), None);
        let escaped = Args::Array(r#"["m", {"text": "a\nb"}]"#);
        assert_eq!(marker_text(&escaped, 0, "text").as_deref(), Some("a\nb"));
        assert!(matches!(
            marker_text(&Args::Array(chat), 0, "text"),
            Some(Cow::Borrowed(_))
        ));
        // What it only skips may hold them.
        let other = r#"["m", {"text": "a"}, {"big": 1e400, "odd": "\ud800"}]"#;
        assert_eq!(marker_at(other, 0, "text"), Marker::Text("a"));
        assert!(marker_agrees(other, 0, "text"));
    }

    /// A random argument shaped like an app's payload: objects and lists under the keys the
    /// paths ask for, mostly strings at their ends, other values among them.
    fn random_document(rng: &mut StdRng, depth: u32, out: &mut String) {
        let list = rng.random_bool(0.2);
        out.push(if list { '[' } else { '{' });
        for i in 0..rng.random_range(1..4) {
            if i > 0 {
                out.push(',');
            }
            if !list {
                let key = ["\"a\"", "\"booking\"", "\"id\"", "\"0\"", "\"1\""];
                out.push_str(key[rng.random_range(0..key.len())]);
                out.push(':');
            }
            match rng.random_range(0..10) {
                0..=4 => {
                    let text = ["\"lgm-0000abcd-7\"", "\"Standup lgm-1\"", "\"\"", "\"x y\""];
                    out.push_str(text[rng.random_range(0..text.len())]);
                }
                5 => random_value(rng, 9, out), // deep enough for a scalar
                6..=7 if depth < 3 => random_document(rng, depth + 1, out),
                _ => random_value(rng, depth + 1, out),
            }
        }
        out.push(if list { ']' } else { '}' });
    }

    #[test]
    fn random_and_broken_events_give_a_marker_by_hand_only_where_the_tree_gives_the_same() {
        let mut rng = StdRng::seed_from_u64(181);
        let paths = [
            "$",
            "a",
            "booking",
            "booking.id",
            "0",
            "a.0",
            "id",
            "a.a",
            "1.a",
            "+0",
            "",
        ];
        let (mut asked, mut by_hand, mut texts, mut broken_by_hand) = (0, 0, 0, 0);
        let mut tree_texts = 0;
        for _ in 0..20_000 {
            let mut array = String::from("[");
            random_value(&mut rng, 3, &mut array);
            for _ in 0..rng.random_range(0..4) {
                array.push(',');
                if rng.random_bool(0.7) {
                    random_document(&mut rng, 0, &mut array);
                } else {
                    random_value(&mut rng, 0, &mut array);
                }
            }
            array.push(']');
            let arg = rng.random_range(0..2);
            let path = paths[rng.random_range(0..paths.len())];
            asked += 1;
            by_hand += usize::from(marker_agrees(&array, arg, path));
            texts += usize::from(matches!(marker_at(&array, arg, path), Marker::Text(_)));
            tree_texts += usize::from(by_tree(&array, arg, path).is_some());
            let broken = mutate(&mut rng, &array);
            broken_by_hand += usize::from(marker_agrees(&broken, arg, path));
        }
        assert!(by_hand > asked / 2, "by hand {by_hand} of {asked}");
        // Hundreds of texts found both ways, most of the tree's found by hand too.
        assert!(
            tree_texts > asked / 50,
            "the tree found {tree_texts} texts of {asked}"
        );
        assert!(
            texts > tree_texts / 2,
            "{texts} texts by hand of the tree's {tree_texts}"
        );
        assert!(broken_by_hand > 0, "no mutated event was read by hand");
    }
}
