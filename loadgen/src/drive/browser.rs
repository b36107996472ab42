//! Real browser tabs in a load run (`--browser-tabs N`): headless Chromium opens N pages of the
//! server's own web app among the protocol tabs, each signed in as a user of its own, half on
//! the dashboard and half on a boardroom's calendar. Each page keeps `window.__bookingHarness`
//! (its join acks and every booking event it received, with when the page rendered it); the
//! generator reads it over the Chrome DevTools Protocol and judges the page by the same rules
//! as a protocol tab, with fan-out measured to the render.
//!
//! Chromium is driven directly: started with `--remote-debugging-port=0`, one WebSocket to its
//! browser endpoint, one isolated browser context and one flat session per page.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::drive::run::{LogNames, Run};
use crate::judge::verify::{self, Joined, LogEvent, Verdict};
use crate::plan::{CLASS_BOOKINGS, CLASS_USER};
use crate::record::latency::histogram;
use crate::record::ledger::Ledger;

/// Executables tried, in order, when `--chromium` is not given.
const CANDIDATES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];
/// Flags for a quiet, unthrottled headless browser on a closed network.
const FLAGS: [&str; 14] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    // Pages in the background must keep their timers and sockets as a visible one does.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--remote-debugging-port=0",
];
/// How long Chromium may take to start, and a DevTools call to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long every page may take to load, connect and join its rooms.
const JOIN_TIMEOUT: Duration = Duration::from_secs(45);
/// Rooms a page joins: the room of its view and its user's own room.
const ROOMS_PER_PAGE: usize = 2;

/// The Chromium to run: `explicit`, or the first of [`CANDIDATES`] on the PATH.
pub fn find_chromium(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "--browser-tabs: --chromium {} is not a file",
                path.display()
            ))
        };
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    for name in CANDIDATES {
        for dir in std::env::split_paths(&dirs) {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(format!(
        "--browser-tabs needs Chromium: none of {} is on the PATH (install it, e.g. `apt-get install chromium`, or name it with --chromium)",
        CANDIDATES.join(", ")
    ))
}

/// One page of the web app.
#[derive(Debug, Clone)]
pub struct BrowserTab {
    pub index: usize,
    pub user: String,
    /// The room of its view (`bookings` or `boardroom-<id>`) and its report class.
    pub view: String,
    pub class: usize,
    session: String,
}

/// What a page's `window.__bookingHarness` holds (the web app's README describes it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Harness {
    pub connected: bool,
    pub joins: Vec<HarnessJoin>,
    pub receipts: Vec<HarnessReceipt>,
    pub editing: Vec<Value>,
    pub reconnects: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HarnessJoin {
    pub room: String,
    pub watermark: i64,
    /// The server node that acked the join, when it said.
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HarnessReceipt {
    pub seq: i64,
    #[serde(default)]
    pub replayed: bool,
    /// Server clock, µs since the epoch.
    pub emitted_at: i64,
    /// Page clock (the same machine's), µs since the epoch; none if it never reached the DOM.
    #[serde(default)]
    pub rendered_at: Option<i64>,
}

/// Headless Chromium with the run's pages open; killed when dropped.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    cdp: Cdp,
    pub tabs: Vec<BrowserTab>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.cdp.reader.abort();
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts Chromium and opens `run.setup.config.browser_tabs` pages, spread over the hosts, each
    /// signed in as a user of its own (with `--token`, as that token's user).
    pub async fn open(run: &Run, chromium: &Path) -> Result<Browser, String> {
        let profile = std::env::temp_dir().join(format!(
            "loadgen-chromium-{}-{}",
            std::process::id(),
            run.setup.run_id
        ));
        std::fs::create_dir_all(&profile)
            .map_err(|e| format!("browser profile {}: {e}", profile.display()))?;
        let mut child = Command::new(chromium)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", chromium.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let endpoint = tokio::time::timeout(START_TIMEOUT, devtools_endpoint(stderr))
            .await
            .map_err(|_| {
                format!(
                    "{} did not start within {START_TIMEOUT:?}",
                    chromium.display()
                )
            })?
            .map_err(|e| format!("{}: {e}", chromium.display()))?;
        let cdp = Cdp::connect(&endpoint).await?;
        let mut browser = Browser {
            child,
            profile,
            cdp,
            tabs: Vec::new(),
        };
        for index in 0..run.setup.config.browser_tabs {
            let tab = browser.open_page(run, index).await?;
            browser.tabs.push(tab);
        }
        Ok(browser)
    }

    /// Asks Chromium to close, waits a little for it to exit, then removes its profile.
    pub async fn close(mut self) {
        let _ = self.cdp.call("Browser.close", json!({}), None).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    async fn open_page(&self, run: &Run, index: usize) -> Result<BrowserTab, String> {
        let (user, token) = run.browser_user(index);
        let boardrooms = run.setup.boardroom_ids.len();
        // Even pages on the dashboard; odd ones on the calendars, most popular first.
        let (view, route, class) = if index.is_multiple_of(2) {
            (
                "bookings".to_string(),
                "#/dashboard".to_string(),
                CLASS_BOOKINGS,
            )
        } else {
            let k = (index / 2) % boardrooms;
            let id = run.setup.boardroom_ids[k];
            (
                format!("boardroom-{id}"),
                format!("#/boardrooms/{id}"),
                run.setup.plan.boardroom_class(k),
            )
        };
        let host = &run.setup.hosts[index % run.setup.hosts.len()];
        // The token rides in the fragment, which never reaches a server or its logs.
        let url = format!("{host}/{route}?token={token}");
        let context = self
            .cdp
            .call("Target.createBrowserContext", json!({}), None)
            .await?;
        let target = self
            .cdp
            .call(
                "Target.createTarget",
                json!({ "url": url, "browserContextId": context["browserContextId"] }),
                None,
            )
            .await?;
        let attached = self
            .cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
                None,
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or("Target.attachToTarget gave no sessionId")?
            .to_string();
        Ok(BrowserTab {
            index,
            user,
            view,
            class,
            session,
        })
    }

    /// The harness of one page, as it is now (`None` before the app has set it up).
    pub async fn harness(&self, tab: &BrowserTab) -> Result<Option<Harness>, String> {
        let reply = self
            .cdp
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": "JSON.stringify(window.__bookingHarness ?? null)",
                    "returnByValue": true,
                }),
                Some(&tab.session),
            )
            .await?;
        if let Some(e) = reply.get("exceptionDetails") {
            return Err(format!("page {}: {e}", tab.index));
        }
        let text = reply["result"]["value"].as_str().unwrap_or("null");
        serde_json::from_str(text).map_err(|e| format!("page {}: harness: {e}", tab.index))
    }

    /// Waits until every page is connected and has joined its rooms; `Err` names the pages
    /// that did not in time.
    pub async fn wait_joined(&self) -> Result<(), String> {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let mut waiting = Vec::new();
            for tab in &self.tabs {
                let joined = match self.harness(tab).await? {
                    Some(h) => {
                        h.connected
                            && h.joins.iter().any(|j| j.room == tab.view)
                            && h.joins.len() >= ROOMS_PER_PAGE
                    }
                    None => false,
                };
                if !joined {
                    waiting.push(tab.index);
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "browser tabs {waiting:?} did not connect and join their rooms within {JOIN_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every page's harness, in tab order (an empty one for a page that cannot be read).
    pub async fn snapshots(&self) -> Vec<Harness> {
        let mut all = Vec::with_capacity(self.tabs.len());
        for tab in &self.tabs {
            match self.harness(tab).await {
                Ok(h) => all.push(h.unwrap_or_default()),
                Err(e) => {
                    eprintln!("[browser] page {} could not be read: {e}", tab.index);
                    all.push(Harness::default());
                }
            }
        }
        all
    }
}

/// Reads Chromium's stderr up to `DevTools listening on ws://...`, then keeps draining it.
async fn devtools_endpoint(stderr: tokio::process::ChildStderr) -> Result<String, String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        if let Some(url) = line.split("DevTools listening on ").nth(1) {
            let url = url.trim().to_string();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "chromium", "{line}");
                }
            });
            return Ok(url);
        }
        seen.push(line);
    }
    Err(format!(
        "exited before its DevTools endpoint was up: {}",
        seen.join(" | ")
    ))
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A Chrome DevTools Protocol connection: calls matched to answers by id; events ignored.
struct Cdp {
    next_id: AtomicU64,
    pending: Pending,
    out: tokio::sync::Mutex<SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Cdp {
    async fn connect(url: &str) -> Result<Cdp, String> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(|e| format!("DevTools {url}: {e}"))?;
        let (out, mut incoming) = ws.split();
        let pending: Pending = Arc::default();
        let answers = pending.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(message)) = incoming.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let Some(id) = value.get("id").and_then(Value::as_u64) else {
                    continue;
                };
                let Some(reply) = answers.lock().expect("poisoned").remove(&id) else {
                    continue;
                };
                let answer = match value.get("error") {
                    Some(e) => Err(e.to_string()),
                    None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = reply.send(answer);
            }
            // The browser is gone: fail whatever still waits.
            answers.lock().expect("poisoned").clear();
        });
        Ok(Cdp {
            next_id: AtomicU64::new(1),
            pending,
            out: tokio::sync::Mutex::new(out),
            reader,
        })
    }

    async fn call(
        &self,
        method: &str,
        params: Value,
        session: Option<&str>,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("poisoned").insert(id, tx);
        let sent = self
            .out
            .lock()
            .await
            .send(Message::Text(message.to_string().into()))
            .await;
        if let Err(e) = sent {
            self.pending.lock().expect("poisoned").remove(&id);
            return Err(format!("{method}: {e}"));
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer.map_err(|e| format!("{method}: {e}")),
            Ok(Err(_)) => Err(format!(
                "{method}: the browser closed its DevTools connection"
            )),
            Err(_) => {
                self.pending.lock().expect("poisoned").remove(&id);
                Err(format!("{method}: no answer within {CALL_TIMEOUT:?}"))
            }
        }
    }
}

/// The browser tabs' share of the verdict.
#[derive(Debug, Default)]
pub struct BrowserVerdict {
    pub verdict: Verdict,
    /// Server `emittedAt` -> page rendered, µs, every live receipt rendered.
    pub fanout: Option<hdrhistogram::Histogram<u64>>,
    /// Live receipts the page never rendered (counted lost where owed).
    pub not_rendered: u64,
    /// Pages that joined both their rooms.
    pub joined: u64,
    pub reconnects: u64,
    /// `editing` notices the pages received (volatile: never owed).
    pub editing: u64,
}

/// Judges each page by what it rendered, with the rules of [`verify::judge_tab`]. Tab numbers
/// in examples follow the protocol tabs (`first_index + page`).
pub fn judge(
    tabs: &[BrowserTab],
    pages: &[Harness],
    start_seq: i64,
    first_index: usize,
    events: &[LogEvent],
    log_end: i64,
    names: &mut LogNames,
) -> BrowserVerdict {
    let mut out = BrowserVerdict::default();
    let mut fanout = histogram();
    for (tab, page) in tabs.iter().zip(pages) {
        let mut ledger = Ledger::new(start_seq);
        for r in &page.receipts {
            if r.replayed {
                ledger.record_replayed(r.seq);
                continue;
            }
            let Some(rendered) = r.rendered_at else {
                out.not_rendered += 1;
                continue;
            };
            if ledger.record_live(r.seq) == crate::record::ledger::Receipt::First {
                let _ = fanout.record((rendered - r.emitted_at).max(1) as u64);
            }
        }
        let mut joined: Vec<Joined> = Vec::new();
        // The node the page was on, from each join whose node changed (as a protocol tab's).
        let mut nodes: Vec<(i64, Option<u32>)> = Vec::new();
        for j in &page.joins {
            let node = j.node.as_deref().map(|n| names.node(n));
            if nodes.last().is_none_or(|(_, last)| *last != node) {
                nodes.push((j.watermark, node));
            }
            let Some(room) = names.room(&j.room) else {
                continue;
            };
            if joined.iter().any(|k| k.room == room) {
                continue; // a rejoin after a reconnect: owed from the first join on
            }
            let class = if j.room == tab.view {
                tab.class
            } else {
                CLASS_USER
            };
            joined.push(Joined {
                room,
                watermark: j.watermark,
                until: i64::MAX,
                class,
            });
        }
        if joined.len() >= ROOMS_PER_PAGE {
            out.joined += 1;
        }
        out.reconnects += page.reconnects;
        out.editing += page.editing.len() as u64;
        let view = verify::TabView {
            tab: first_index + tab.index,
            joined: &joined,
            nodes: &nodes,
            events,
        };
        verify::judge_tab(&view, &ledger, log_end, &mut out.verdict);
    }
    out.fanout = Some(fanout);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::verify::RoomRef;

    fn receipt(seq: i64, rendered: Option<i64>, replayed: bool) -> HarnessReceipt {
        HarnessReceipt {
            seq,
            replayed,
            emitted_at: 1_000,
            rendered_at: rendered,
        }
    }

    /// An event committed on node 0 (the first node name interned: the page's `n1`).
    fn event(seq: i64, rooms: &[RoomRef]) -> LogEvent {
        LogEvent {
            seq,
            kind: 0,
            rooms: rooms.to_vec(),
            node: Some(0),
        }
    }

    #[test]
    fn a_page_is_judged_by_what_it_rendered() {
        let tab = BrowserTab {
            index: 0,
            user: "u".into(),
            view: "bookings".into(),
            class: CLASS_BOOKINGS,
            session: String::new(),
        };
        let page = Harness {
            connected: true,
            joins: vec![
                HarnessJoin {
                    room: "bookings".into(),
                    watermark: 10,
                    node: Some("n1".into()),
                },
                HarnessJoin {
                    room: "user-u".into(),
                    watermark: 10,
                    node: Some("n1".into()),
                },
                // After a reconnect: the first watermark still decides what is owed.
                HarnessJoin {
                    room: "bookings".into(),
                    watermark: 13,
                    node: Some("n1".into()),
                },
            ],
            receipts: vec![
                receipt(11, Some(3_000), false),
                receipt(11, Some(3_500), false),
                receipt(12, None, false),
                receipt(14, None, true),
            ],
            editing: vec![json!({})],
            reconnects: 1,
        };
        let events: Vec<_> = (11..=15).map(|s| event(s, &[RoomRef::Bookings])).collect();
        let mut names = LogNames::default();
        let v = judge(&[tab], &[page], 10, 100, &events, 15, &mut names);
        let t = v.verdict.total;
        assert_eq!(
            (t.owed, t.delivered, t.recovered, t.lost, t.duplicated),
            (5, 1, 1, 3, 1),
            "11 live, 14 replayed, 12 never rendered, 13 and 15 missing"
        );
        assert_eq!(v.not_rendered, 1);
        assert_eq!((v.joined, v.reconnects, v.editing), (1, 1, 1));
        assert_eq!(v.verdict.lost_examples[0], (100, 12));
        let same = v.verdict.by_path[verify::PATH_SAME];
        assert_eq!(same.owed, 5, "the page said which node it was on");
        let fanout = v.fanout.unwrap();
        assert_eq!(fanout.len(), 1, "only the first receipt of 11 is timed");
        assert!(fanout.equivalent(fanout.max(), 2_000), "{}", fanout.max());
    }

    #[test]
    fn a_missing_chromium_is_named() {
        let err = find_chromium(Some(Path::new("/nonexistent/chromium"))).unwrap_err();
        assert!(err.contains("--chromium /nonexistent/chromium"), "{err}");
    }
}
