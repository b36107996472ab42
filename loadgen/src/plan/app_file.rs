//! The app file (`loadgen --app FILE`): what a user writes to describe their Socket.IO app so
//! the generator can verify it with no change to the app. YAML, read with `serde-saphyr` (a
//! maintained, panic-free parser whose errors carry line and column; `serde_yaml` is
//! deprecated upstream), field paths from `serde_path_to_error`, and every rule that serde
//! cannot express checked here, so a broken file is refused before a tab connects with
//! `FILE:LINE:COLUMN: FIELD: what is wrong`. The JSON schema of the same shape is
//! `loadgen/app.schema.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::plan::template::Template;

/// An app file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    /// A name for reports.
    pub name: String,
    #[serde(default)]
    pub target: Target,
    /// The CONNECT auth payload of each tab, every string a template (`{tab}`, `{csv.COLUMN}`).
    #[serde(default)]
    pub auth: Option<Value>,
    /// A CSV file (relative to the app file) with one row per tab, cycled when there are
    /// fewer rows than tabs; its columns are `{csv.COLUMN}` in every template.
    #[serde(default)]
    pub auth_csv: Option<PathBuf>,
    /// HTTP headers of each tab's handshake (and of HTTP publishes), templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters of each tab's handshake, templates.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// How a tab joins a room it joins itself.
    #[serde(default = "default_join")]
    pub join: RoomRequest,
    /// How a closing tab (`--stages`) leaves the rooms it joined itself.
    #[serde(default = "default_leave")]
    pub leave: RoomRequest,
    /// For joins without an ack: how long after the join was sent the tab counts as in the
    /// room (and, joined by the server, after the CONNECT).
    #[serde(default = "default_settle", with = "duration_text")]
    pub settle: Duration,
    pub rooms: Vec<RoomFamily>,
    pub publishers: Vec<Publisher>,
    /// How a tab gets back what it missed while its connection was down, if the app can say:
    /// after it reconnects and rejoins, the tab asks this for each of its rooms. With a replay,
    /// what a tab misses while down is owed: recovered when the replay has it, else lost.
    #[serde(default)]
    pub replay: Option<Replay>,
    /// Gates of this app; flags of the same name override them.
    #[serde(default)]
    pub gates: Gates,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Base URL of the app; `--host` overrides it.
    #[serde(default)]
    pub url: Option<String>,
    /// The Socket.IO path on the server.
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default)]
    pub transport: Transport,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            url: None,
            path: default_path(),
            namespace: default_namespace(),
            transport: Transport::default(),
        }
    }
}

pub use crate::config::Transport;

/// A join or a leave: the event a tab emits, its arguments, and whether the app acks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomRequest {
    /// The event (default `join`, and `leave` for a leave).
    #[serde(default)]
    pub event: String,
    /// Its arguments, templates (`{room}`, `{n}`, the tab's variables).
    #[serde(default = "default_join_args")]
    pub args: Vec<Value>,
    /// Whether the app acknowledges it; without, it takes effect `settle` after it was sent.
    #[serde(default)]
    pub ack: bool,
}

fn default_join() -> RoomRequest {
    RoomRequest {
        event: "join".into(),
        args: default_join_args(),
        ack: false,
    }
}

fn default_leave() -> RoomRequest {
    RoomRequest {
        event: "leave".into(),
        ..default_join()
    }
}

/// A set of rooms with one name template: `boardroom-{n}` over `n` = 1..=count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomFamily {
    pub name: String,
    /// How many rooms (`{n}` runs 1..=count).
    #[serde(default = "one")]
    pub count: u64,
    /// How many of them each member tab joins (drawn by the seed).
    #[serde(default = "one")]
    pub per_tab: u64,
    /// Share of tabs that join rooms of this family.
    #[serde(default = "all")]
    pub share: f64,
    /// Who puts a tab in the room: the tab (with `join`) or the server, on connect.
    #[serde(default)]
    pub joined_by: JoinedBy,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum JoinedBy {
    #[default]
    Tab,
    Server,
}

/// Tabs that publish, how often, how, and what event each publish must cause.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// A name for reports (default `publisher-N`).
    #[serde(default)]
    pub name: Option<String>,
    /// Share of tabs that publish (at least one tab).
    #[serde(default = "default_publisher_share")]
    pub share: f64,
    /// Publishes per second, all of this publisher's tabs together (open model). Without:
    /// `--actions-per-sec`.
    #[serde(default)]
    pub rate: Option<f64>,
    /// The room family a publish goes to (its `name`); a publishing tab picks a room of it
    /// that it joined, or any room of it when it joined none.
    pub room: String,
    #[serde(default)]
    pub emit: Option<Emit>,
    #[serde(default)]
    pub http: Option<Http>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emit {
    pub event: String,
    /// Arguments, templates; one of them must hold `{marker}`.
    pub args: Vec<Value>,
    /// Wait for the app's ack (a publish without one counts as failed).
    #[serde(default)]
    pub ack: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path (and query) under the target URL, a template.
    pub path: String,
    /// JSON body, a template that must hold `{marker}`.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The app's replay: an HTTP request per room whose JSON answer lists what the room had.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(default = "default_replay_method")]
    pub method: String,
    /// Path (and query) under the target URL, a template: the tab's variables, `{room}`, `{n}`,
    /// and `{since_ms}` / `{since}` (milliseconds since the Unix epoch / RFC 3339): a second
    /// before the tab noticed its connection drop.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Dotted path to the list of items in the answer (`$`: the answer is the list).
    #[serde(default = "default_dollar")]
    pub items: String,
    /// Dotted path to the marker in each item (`$`: anywhere in the item).
    #[serde(default = "default_dollar")]
    pub marker: String,
}

fn default_replay_method() -> String {
    "GET".into()
}
fn default_dollar() -> String {
    "$".into()
}

/// The event a publish must cause, where its marker is, and who must receive it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub event: String,
    /// Which of the event's arguments holds the marker (0: the first).
    #[serde(default)]
    pub arg: usize,
    /// Dotted path to the marker in that argument, e.g. `booking.title` (array indexes as
    /// numbers: `items.0.text`), or `$` when the argument is the text itself; the marker may
    /// sit inside a longer string.
    pub marker: String,
    #[serde(default)]
    pub audience: Audience,
    /// The rooms the event goes to, templates (`{room}`, `{n}`); default the publish's room.
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
}

pub use crate::judge::truth::Audience;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    pub fanout_p99_ms: Option<f64>,
    pub action_p99_ms: Option<f64>,
    pub min_deliveries_per_sec: Option<f64>,
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
    pub unexpected: Option<u64>,
    pub out_of_order: Option<u64>,
    pub publish_errors: Option<u64>,
}

fn default_settle() -> Duration {
    Duration::from_millis(500)
}
fn default_path() -> String {
    "/socket.io/".into()
}
fn default_namespace() -> String {
    "/".into()
}
fn default_join_args() -> Vec<Value> {
    vec![Value::String("{room}".into())]
}
fn default_method() -> String {
    "POST".into()
}
fn default_publisher_share() -> f64 {
    0.1
}
fn one() -> u64 {
    1
}
fn all() -> f64 {
    1.0
}

/// `500ms`, `2s`, `1m` in the file, as on the command line.
mod duration_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::config::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Why an app file was refused: `FILE:LINE:COLUMN: FIELD: reason` (line and column when the
/// parser knows them).
#[derive(Debug, Clone, PartialEq)]
pub struct FileError(pub String);

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads and checks the app file at `path`.
pub fn load(path: &Path) -> Result<AppFile, FileError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| FileError(format!("{}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// Parses and checks app-file text; `name` is the file's name in errors.
pub fn parse(text: &str, name: &str) -> Result<AppFile, FileError> {
    let mut field = None;
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, AppFile>(de).map_err(|e| {
            field = Some(e.path().to_string());
            e.into_inner()
        })
    });
    let file = match parsed {
        Ok(file) => file,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            let field = match field.as_deref() {
                None | Some(".") | Some("") => String::new(),
                Some(f) => format!(" {f}:"),
            };
            return Err(FileError(format!(
                "{name}{at}:{field} {}",
                first_line(&e.to_string())
            )));
        }
    };
    let mut file = file;
    for (r, event) in [(&mut file.join, "join"), (&mut file.leave, "leave")] {
        if r.event.is_empty() {
            r.event = event.into();
        }
    }
    check(&file).map_err(|(field, why)| {
        let at = line_of(text, &field)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        FileError(format!("{name}{at}: {field}: {why}"))
    })?;
    Ok(file)
}

/// serde-saphyr renders a snippet under its message, and starts it with the location we
/// already give: the message is the rest of its first line.
fn first_line(text: &str) -> &str {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(text);
    let bare = line.strip_prefix("error: ").unwrap_or(line);
    match bare.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((at, rest)) if at.contains(" column ") => rest,
        _ => bare,
    }
}

/// The line of the file where `field` (a dotted path, `publishers[0].expect.marker`) is
/// written, found by walking the keys in order: good enough to point at a value the parser
/// accepted but the rules refuse.
fn line_of(text: &str, field: &str) -> Option<usize> {
    let keys: Vec<&str> = field
        .split(['.', '['])
        .map(|k| k.trim_end_matches(']'))
        .filter(|k| !k.is_empty() && k.parse::<usize>().is_err())
        .collect();
    let mut from = 0;
    let mut found = None;
    for key in keys {
        // The key on a line of its own, or inside a flow mapping (`{ event: x, args: [] }`),
        // where the next key may be on the same line.
        let (i, _) = text.lines().enumerate().skip(from).find(|(_, line)| {
            let l = line.trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{key}:"))
                || [
                    format!("{{{key}:"),
                    format!("{{ {key}:"),
                    format!(", {key}:"),
                ]
                .iter()
                .any(|k| l.contains(k.as_str()))
        })?;
        found = Some(i + 1);
        from = i;
    }
    found
}

type Refusal = (String, String);

fn refuse(field: impl Into<String>, why: impl Into<String>) -> Refusal {
    (field.into(), why.into())
}

/// The rules serde cannot express.
fn check(file: &AppFile) -> Result<(), Refusal> {
    if file.name.trim().is_empty() {
        return Err(refuse("name", "must not be empty"));
    }
    if let Some(url) = &file.target.url {
        check_url(url).map_err(|why| refuse("target.url", why))?;
    }
    if !file.target.path.starts_with('/') {
        return Err(refuse("target.path", "must start with `/`"));
    }
    if !file.target.namespace.starts_with('/') {
        return Err(refuse("target.namespace", "must start with `/`"));
    }
    let tab_vars = crate::plan::template::TAB_VARS;
    let csv = file.auth_csv.is_some();
    if let Some(auth) = &file.auth {
        Template::check_value(auth, tab_vars, csv).map_err(|why| refuse("auth", why))?;
    }
    for (k, v) in file.headers.iter().chain(&file.query) {
        Template::check(v, tab_vars, csv).map_err(|why| refuse(format!("headers.{k}"), why))?;
    }
    for (name, r) in [("join", &file.join), ("leave", &file.leave)] {
        for a in &r.args {
            Template::check_value(a, crate::plan::template::ROOM_VARS, csv)
                .map_err(|why| refuse(format!("{name}.args"), why))?;
        }
    }
    if file.rooms.is_empty() {
        return Err(refuse("rooms", "name at least one room"));
    }
    for (i, r) in file.rooms.iter().enumerate() {
        let f = |k: &str| format!("rooms[{i}].{k}");
        Template::check(&r.name, crate::plan::template::FAMILY_VARS, csv)
            .map_err(|why| refuse(f("name"), why))?;
        if r.count == 0 {
            return Err(refuse(f("count"), "must be at least 1"));
        }
        if r.per_tab == 0 || r.per_tab > r.count {
            return Err(refuse(
                f("per_tab"),
                format!("must be between 1 and count ({})", r.count),
            ));
        }
        if r.count > 1 && !r.name.contains("{n}") {
            return Err(refuse(
                f("name"),
                "a family of several rooms needs `{n}` in its name",
            ));
        }
        share(r.share).map_err(|why| refuse(f("share"), why))?;
        if file.rooms[..i].iter().any(|o| o.name == r.name) {
            return Err(refuse(f("name"), format!("`{}` is named twice", r.name)));
        }
    }
    if file.publishers.is_empty() {
        return Err(refuse("publishers", "name at least one publisher"));
    }
    for (i, p) in file.publishers.iter().enumerate() {
        check_publisher(file, p, i, csv)?;
    }
    if let Some(r) = &file.replay {
        check_replay(r, csv)?;
    }
    Ok(())
}

fn check_replay(r: &Replay, csv: bool) -> Result<(), Refusal> {
    if !["GET", "POST"].contains(&r.method.as_str()) {
        return Err(refuse("replay.method", "must be GET or POST"));
    }
    if !r.path.starts_with('/') {
        return Err(refuse("replay.path", "must start with `/`"));
    }
    let vars = crate::plan::template::REPLAY_VARS;
    Template::check(&r.path, vars, csv).map_err(|why| refuse("replay.path", why))?;
    for (k, v) in &r.headers {
        Template::check(v, vars, csv).map_err(|why| refuse(format!("replay.headers.{k}"), why))?;
    }
    for (field, path) in [("replay.items", &r.items), ("replay.marker", &r.marker)] {
        if path != "$" && (path.is_empty() || path.split('.').any(str::is_empty)) {
            return Err(refuse(field, "a dotted path, e.g. `messages`, or `$`"));
        }
    }
    Ok(())
}

fn check_publisher(file: &AppFile, p: &Publisher, i: usize, csv: bool) -> Result<(), Refusal> {
    let f = |k: &str| format!("publishers[{i}].{k}");
    share(p.share).map_err(|why| refuse(f("share"), why))?;
    if p.share == 0.0 {
        return Err(refuse(f("share"), "must be above 0"));
    }
    if let Some(rate) = p.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(refuse(f("rate"), "must be above 0 (publishes per second)"));
    }
    if !file.rooms.iter().any(|r| r.name == p.room) {
        let names: Vec<_> = file.rooms.iter().map(|r| r.name.as_str()).collect();
        return Err(refuse(
            f("room"),
            format!("`{}` is not a room's name; the rooms are {names:?}", p.room),
        ));
    }
    let vars = crate::plan::template::PUBLISH_VARS;
    let marked = match (&p.emit, &p.http) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(refuse(f("emit"), "give exactly one of `emit` and `http`"));
        }
        (Some(e), None) => {
            if e.event.is_empty() {
                return Err(refuse(f("emit.event"), "must not be empty"));
            }
            let mut marked = false;
            for a in &e.args {
                Template::check_value(a, vars, csv).map_err(|why| refuse(f("emit.args"), why))?;
                marked |= Template::value_mentions(a, "marker");
            }
            marked
        }
        (None, Some(h)) => {
            const METHODS: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];
            if !METHODS.contains(&h.method.as_str()) {
                return Err(refuse(
                    f("http.method"),
                    format!("must be one of {METHODS:?}"),
                ));
            }
            if !h.path.starts_with('/') {
                return Err(refuse(f("http.path"), "must start with `/`"));
            }
            Template::check(&h.path, vars, csv).map_err(|why| refuse(f("http.path"), why))?;
            for (k, v) in &h.headers {
                Template::check(v, vars, csv)
                    .map_err(|why| refuse(f(&format!("http.headers.{k}")), why))?;
            }
            let body = h.body.as_ref();
            if let Some(b) = body {
                Template::check_value(b, vars, csv).map_err(|why| refuse(f("http.body"), why))?;
            }
            body.is_some_and(|b| Template::value_mentions(b, "marker"))
                || h.path.contains("{marker}")
        }
    };
    if !marked {
        return Err(refuse(
            f(if p.emit.is_some() {
                "emit.args"
            } else {
                "http.body"
            }),
            "must hold `{marker}` somewhere, in a field the app relays to `expect.marker`",
        ));
    }
    if p.expect.event.is_empty() {
        return Err(refuse(f("expect.event"), "must not be empty"));
    }
    if p.expect.marker != "$"
        && (p.expect.marker.is_empty() || p.expect.marker.split('.').any(str::is_empty))
    {
        return Err(refuse(
            f("expect.marker"),
            "a dotted path to the marker in the event's argument, e.g. `booking.title`, or `$` for the argument itself",
        ));
    }
    for r in p.expect.rooms.iter().flatten() {
        Template::check(r, vars, csv).map_err(|why| refuse(f("expect.rooms"), why))?;
    }
    Ok(())
}

fn share(v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err("must be between 0 and 1".into())
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name: chat
auth: { name: "tab-{tab}" }
join: { event: join, ack: true }
rooms:
  - { name: "room-{n}", count: 5, per_tab: 2 }
publishers:
  - room: "room-{n}"
    emit:
      event: message
      args: [{ room: "{room}", text: "{marker}" }]
    expect:
      event: message
      marker: text
      audience: room-except-sender
"#;

    fn refused(text: &str) -> String {
        parse(text, "app.yaml").unwrap_err().0
    }

    #[test]
    fn a_small_file_reads_with_its_defaults() {
        assert!(parse(GOOD, "app.yaml").unwrap().replay.is_none());
        let with = format!("{GOOD}replay: {{ path: \"/h?room={{room}}&since={{since}}\" }}\n");
        let r = parse(&with, "app.yaml").unwrap().replay.unwrap();
        assert_eq!(
            (r.method.as_str(), r.items.as_str(), r.marker.as_str()),
            ("GET", "$", "$")
        );
        let f = parse(GOOD, "app.yaml").unwrap();
        assert_eq!(f.target.path, "/socket.io/");
        assert_eq!(f.target.namespace, "/");
        assert_eq!(f.target.transport, Transport::Websocket);
        assert_eq!(f.settle, Duration::from_millis(500));
        assert!(f.join.ack);
        assert_eq!(f.rooms[0].joined_by, JoinedBy::Tab);
        assert_eq!(f.publishers[0].share, 0.1);
        assert_eq!(f.publishers[0].expect.audience, Audience::RoomExceptSender);
    }

    #[test]
    fn parse_errors_name_the_file_the_line_and_the_field() {
        let e = refused(&GOOD.replace("audience: room-except-sender", "audience: everyone"));
        assert!(
            e.starts_with("app.yaml:15:") && e.contains("publishers[0].expect.audience"),
            "{e}"
        );
        assert!(e.contains("unknown variant `everyone`"), "{e}");
        let e = refused(&GOOD.replace("    emit:", "    emitt:"));
        assert!(
            e.starts_with("app.yaml:9:") && e.contains("unknown field `emitt`"),
            "{e}"
        );
        let e = refused(&GOOD.replace("count: 5", "count: many"));
        assert!(
            e.starts_with("app.yaml:6:") && e.contains("rooms[0].count"),
            "{e}"
        );
        let e = refused("name: x\nrooms: []\n");
        assert!(e.contains("publishers"), "{e}");
    }

    #[test]
    fn rules_beyond_types_are_refused_with_the_field_and_its_line() {
        let e = refused(&GOOD.replace("text: \"{marker}\"", "text: hi"));
        assert!(
            e.starts_with("app.yaml:11: publishers[0].emit.args: must hold `{marker}`"),
            "{e}"
        );
        let e = refused(&GOOD.replace("room: \"room-{n}\"\n    emit", "room: lobby\n    emit"));
        assert!(
            e.contains("publishers[0].room: `lobby` is not a room's name"),
            "{e}"
        );
        let e = refused(&GOOD.replace("per_tab: 2", "per_tab: 9"));
        assert!(
            e.starts_with("app.yaml:6: rooms[0].per_tab: must be between 1 and count (5)"),
            "{e}"
        );
        let e = refused(&GOOD.replace("tab-{tab}", "tab-{tabb}"));
        assert!(e.contains("auth: unknown placeholder `{tabb}`"), "{e}");
        let e = refused(&GOOD.replace("name: chat", "name: chat\ntarget: { url: \"ws://x\" }"));
        assert!(
            e.contains("target.url: must start with http:// or https://"),
            "{e}"
        );
        let e = refused(&GOOD.replace("marker: text", "marker: \"a..b\""));
        assert!(e.contains("publishers[0].expect.marker"), "{e}");
        let replay = |r: &str| refused(&format!("{GOOD}replay: {r}\n"));
        let e = replay("{ path: \"/history?room={room}&since={since_ms}&x={marker}\" }");
        assert!(
            e.starts_with("app.yaml:16: replay.path: unknown placeholder `{marker}`"),
            "{e}"
        );
        let e = replay("{ path: \"/h\", items: \"a..b\" }");
        assert!(e.contains("replay.items: a dotted path"), "{e}");
        let e = replay("{ path: \"/h\", method: DELETE }");
        assert!(e.contains("replay.method: must be GET or POST"), "{e}");
        let e = refused(&GOOD.replace("name: \"room-{n}\", count: 5", "name: room, count: 5"));
        assert!(
            e.contains("rooms[0].name: a family of several rooms needs `{n}`"),
            "{e}"
        );
    }
}
