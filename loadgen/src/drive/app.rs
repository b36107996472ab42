//! Drives an app run: opens each tab's connection (auth, headers, query, namespace), puts it in
//! its rooms (a join emitted with or without an ack, or the server's own on connect), then
//! publishes on the open-model schedule of each publisher, every publish logged before it is
//! sent. What the tabs hear is logged by the receive path below, which reads only the marker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::drive::client::{Args, ConnectOptions, Connection, TabClient};
use crate::drive::connect;
use crate::drive::life::{Back, Lifeline, TabKind};
use crate::drive::stamp;
use crate::judge::truth::{Found, Membership, Publish, TabRecord, at_path, find_marker, marker};
use crate::plan::Shard;
use crate::plan::app::{Csv, Plan, TabVars};
use crate::plan::app_file::{AppFile, Emit, Http, JoinedBy, RoomRequest};
use crate::plan::template::{render, render_value};
use crate::record::latency::{now_us, rfc3339};

/// How long a connect or an ack may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// One tab of an app run.
pub struct AppTab {
    /// Its connection, and which one is current: a drop reported by an older one is ignored.
    conn: Connection,
    /// Set before the generator closes the connection itself: a close then is no drop.
    closing: AtomicBool,
    /// What its life (`life`) keeps: a reconnect asked for, and what wakes it.
    life: Lifeline,
    pub record: Mutex<TabRecord>,
}

/// An expected event: which publisher expects it and where its marker sits.
struct Expected {
    event: String,
    arg: usize,
    marker: String,
}

/// Everything an app run shares between its tabs and publishers.
pub struct AppRun {
    pub file: AppFile,
    pub csv: Option<Csv>,
    pub plan: Plan,
    pub url: String,
    /// This run's marker nonce: markers of other runs are foreign (the shards of one run
    /// share it).
    pub run: u32,
    run_text: String,
    /// This generator's share of the plan's tabs.
    pub shard: Shard,
    pub tabs: Vec<AppTab>,
    pub publishes: Mutex<Vec<Publish>>,
    next_seq: AtomicU64,
    expected: Vec<Expected>,
    pub http: reqwest::Client,
    tls_connector: Option<native_tls::TlsConnector>,
    /// The tabs' Socket.IO client (`--client`, for the file's transport).
    pub client: crate::config::TabClientKind,
    pub receipts: AtomicU64,
    pub foreign: AtomicU64,
    /// Expected events without a marker, and events no publisher expects, by name.
    pub unmarked: Mutex<BTreeMap<String, u64>>,
    pub app_events: Mutex<BTreeMap<String, u64>>,
    pub tab_errors: Mutex<Vec<String>>,
    pub publish_errors: Mutex<Vec<String>>,
    pub tabs_connected: AtomicU64,
    pub tabs_joined: AtomicU64,
    /// Tabs closed by `--stages`.
    pub tabs_left: AtomicU64,
    /// Connections the other side closed or lost, and tabs back after a drop or a cut.
    pub drops: AtomicU64,
    pub reconnects: AtomicU64,
    /// Replay requests answered after reconnects (the app file's `replay`), and the markers of
    /// this run they held.
    pub replays: AtomicU64,
    pub replayed: AtomicU64,
    /// Tickets of emit publishers with no tab open to send them (`--stages`, a tab down).
    pub skipped: AtomicU64,
    /// Emits whose tab was cut or dropped while they went: the app may or may not have taken
    /// them, so they are owed to no one (see [`AppRun::go_down`]).
    pub uncertain: AtomicU64,
    /// `--stages`, when the run is shaped by them.
    pub stages: Option<crate::plan::stages::Stages>,
    /// The verdict's counts, once judged (`/metrics` shows them from then on).
    pub verdict: std::sync::OnceLock<crate::judge::verify::DeliveryCounts>,
    /// Base of `{start}`: publishes of concurrent runs get slots of their own.
    slot_base_s: i64,
}

impl AppRun {
    pub fn new(
        file: AppFile,
        csv: Option<Csv>,
        plan: Plan,
        url: String,
        run: u32,
        shard: Shard,
        tls: &crate::config::Tls,
    ) -> Result<Self, String> {
        let tabs = plan
            .tabs
            .iter()
            .map(|_| AppTab {
                conn: Connection::default(),
                closing: AtomicBool::new(false),
                life: Lifeline::default(),
                record: Mutex::new(TabRecord::default()),
            })
            .collect();
        let expected = file
            .publishers
            .iter()
            .map(|p| Expected {
                event: p.expect.event.clone(),
                arg: p.expect.arg,
                marker: p.expect.marker.clone(),
            })
            .collect();
        // 2030-01-01 plus up to ~11 years of days, by the run nonce; a publish's slot is its
        // seq's minute from there.
        let slot_base_s = 1_893_456_000 + i64::from(run % 4096) * 86_400;
        let http = tls
            .http(reqwest::Client::builder().timeout(Duration::from_secs(30)))?
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let tls_connector = tls.connector()?;
        Ok(Self {
            tls_connector,
            client: crate::config::TabClientKind::Own,
            file,
            csv,
            plan,
            url,
            run,
            run_text: format!("{run:08x}"),
            shard,
            tabs,
            publishes: Mutex::new(Vec::new()),
            next_seq: AtomicU64::new(1),
            expected,
            http,
            receipts: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            unmarked: Mutex::new(BTreeMap::new()),
            app_events: Mutex::new(BTreeMap::new()),
            tab_errors: Mutex::new(Vec::new()),
            publish_errors: Mutex::new(Vec::new()),
            tabs_connected: AtomicU64::new(0),
            tabs_joined: AtomicU64::new(0),
            tabs_left: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            uncertain: AtomicU64::new(0),
            stages: None,
            verdict: std::sync::OnceLock::new(),
            slot_base_s,
        })
    }

    fn vars(&self, index: usize) -> TabVars<'_> {
        TabVars {
            index,
            run: &self.run_text,
            csv: self.csv.as_ref(),
            csv_row: self.plan.tabs[index].csv_row,
        }
    }

    fn tab_error(&self, index: usize, why: String) {
        let mut errors = self.tab_errors.lock().expect("poisoned");
        errors.push(format!("tab {index}: {why}"));
    }

    /// The receive path: an event reached tab `index`. Only the marker is read.
    fn heard(&self, index: usize, event: &str, args: &Args<'_>) {
        let now = now_us();
        let mut expected = false;
        // Only the marker is read, by hand from the frame where it can be (`drive::stamp`).
        for e in self.expected.iter().filter(|e| e.event == event) {
            expected = true;
            let Some(text) = stamp::marker_text(args, e.arg, &e.marker) else {
                continue;
            };
            match find_marker(&text, self.run) {
                Found::Ours(seq) => {
                    self.receipts.fetch_add(1, Ordering::Relaxed);
                    let tab = &self.tabs[index];
                    tab.record
                        .lock()
                        .expect("poisoned")
                        .receipts
                        .push((seq, now));
                    return;
                }
                Found::Foreign => {
                    self.foreign.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Found::None => {}
            }
        }
        let counts = if expected {
            &self.unmarked
        } else {
            &self.app_events
        };
        // The name is copied once, at its first receipt, not per receipt.
        let mut counts = counts.lock().expect("poisoned");
        match counts.get_mut(event) {
            Some(n) => *n += 1,
            None => {
                counts.insert(event.to_string(), 1);
            }
        }
    }

    /// Connects tab `index` and puts it in its rooms; false when it could not.
    pub async fn open_tab(self: &Arc<Self>, index: usize) -> bool {
        let plan = &self.plan.tabs[index];
        let t = &self.file.target;
        let options = ConnectOptions {
            url: self.url.clone(),
            path: t.path.clone(),
            namespace: t.namespace.clone(),
            transport: t.transport,
            client: self.client,
            auth: plan.auth.clone(),
            headers: plan.headers.clone(),
            query: plan.query.clone(),
            timeout: TIMEOUT,
            tls: self.tls_connector.clone(),
        };
        let heard = self.clone();
        let dropped = self.clone();
        let connecting_us = now_us();
        let generation = self.tabs[index].conn.begin();
        let connected = connect::open(
            &options,
            Arc::new(move |event, args| heard.heard(index, event, args)),
            Arc::new(move |why| dropped.dropped(index, generation, &why)),
        )
        .await;
        let client = match connected {
            Ok(c) => c,
            Err(why) => {
                self.tab_error(index, why);
                return false;
            }
        };
        let tab = &self.tabs[index];
        let connected_us = now_us();
        let first = {
            let mut record = tab.record.lock().expect("poisoned");
            if let Some((_, back)) = record.down.last_mut()
                && back.is_none()
            {
                *back = Some(connected_us);
            }
            let first = record.connected_us.is_none();
            record.connected_us.get_or_insert(connected_us);
            first
        };
        if first {
            self.tabs_connected.fetch_add(1, Ordering::Relaxed);
        }
        let settle = self.file.settle.as_micros() as i64;
        let mut ok = true;
        for room in &plan.rooms {
            let membership = match room.joined_by {
                // The server put the tab in on connect: in the room from the CONNECT on, give or
                // take the settle an app may take to do it.
                JoinedBy::Server => Membership {
                    room: room.name.clone(),
                    join_sent_us: connecting_us,
                    in_us: Some(connected_us + settle),
                    leave_sent_us: None,
                    out_us: None,
                    dropped: false,
                },
                JoinedBy::Tab => {
                    let (sent, answer) = self
                        .room_request(index, client.as_ref(), &self.file.join, room)
                        .await;
                    if let Err(why) = &answer {
                        self.tab_error(index, format!("join {}: {why}", room.name));
                        ok = false;
                    }
                    Membership {
                        room: room.name.clone(),
                        join_sent_us: sent,
                        in_us: answer.ok(),
                        leave_sent_us: None,
                        out_us: None,
                        dropped: false,
                    }
                }
            };
            tab.record
                .lock()
                .expect("poisoned")
                .memberships
                .push(membership);
        }
        tab.conn.set(client).await;
        if ok {
            let mut record = tab.record.lock().expect("poisoned");
            if record.joined_us.is_none() {
                let last = record.memberships.iter().filter_map(|m| m.in_us).max();
                record.joined_us = Some(last.unwrap_or(connected_us));
                self.tabs_joined.fetch_add(1, Ordering::Relaxed);
            }
        }
        ok
    }

    /// Sends a join or a leave of `room` for tab `index`: when it was sent, and when it took
    /// effect (the ack, or `settle` after the send without one).
    async fn room_request(
        &self,
        index: usize,
        client: &dyn TabClient,
        request: &RoomRequest,
        room: &crate::plan::app::RoomPick,
    ) -> (i64, Result<i64, String>) {
        let vars = self.vars(index);
        let get = |k: &str| match k {
            "n" => Some(room.n.to_string()),
            "room" => Some(room.name.clone()),
            k => vars.get(k),
        };
        let sent = now_us();
        let args = match request
            .args
            .iter()
            .map(|a| render_value(a, &get))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(a) => a,
            Err(why) => return (sent, Err(format!("args: {why}"))),
        };
        let settle = self.file.settle.as_micros() as i64;
        let answer = if request.ack {
            let acked = client.emit_with_ack(&request.event, args).await;
            let at = now_us();
            acked.and_then(|ack| refusal(&ack).map_or(Ok(at), Err))
        } else {
            client
                .emit(&request.event, args)
                .await
                .map(|_| sent + settle)
        };
        (sent, answer)
    }

    /// Closes tab `index` as a page that goes away does (`--stages`): leaves each room it
    /// joined itself, then disconnects; the rooms the server joined it to end with the
    /// connection.
    pub async fn close_tab(&self, index: usize) {
        let tab = &self.tabs[index];
        tab.closing.store(true, Ordering::Relaxed);
        let Some(client) = tab.conn.take().await else {
            return;
        };
        let settle = self.file.settle.as_micros() as i64;
        // From now on the tab is going away: what is published to the rooms the server put it
        // in is grey until it is gone (no leave of its own tells when the app let it go).
        let closing = now_us();
        let rooms = &self.plan.tabs[index].rooms;
        {
            let mut record = tab.record.lock().expect("poisoned");
            for m in record.memberships.iter_mut().filter(|m| {
                m.leave_sent_us.is_none()
                    && rooms
                        .iter()
                        .any(|r| r.name == m.room && r.joined_by == JoinedBy::Server)
            }) {
                m.leave_sent_us = Some(closing);
            }
        }
        for room in rooms {
            if room.joined_by == JoinedBy::Server {
                continue;
            }
            let (sent, answer) = self
                .room_request(index, client.as_ref(), &self.file.leave, room)
                .await;
            if let Err(why) = &answer {
                self.tab_error(index, format!("leave {}: {why}", room.name));
            }
            let mut record = tab.record.lock().expect("poisoned");
            for m in record
                .memberships
                .iter_mut()
                .filter(|m| m.room == room.name)
            {
                m.leave_sent_us = Some(sent);
                // A leave that failed may not have taken: out of the room at the disconnect.
                m.out_us = answer.as_ref().ok().copied();
            }
        }
        // An acked leave is a barrier: what the app sent the tab before it arrived first. Without
        // one (a leave with no ack, a room the server joined), the tab stays `settle` longer, so
        // what was owed before it began to go and is still in flight arrives before it hangs up.
        let unfenced = rooms
            .iter()
            .any(|r| r.joined_by == JoinedBy::Server || !self.file.leave.ack);
        if unfenced {
            tokio::time::sleep(self.file.settle).await;
        }
        let gone = now_us();
        client.disconnect().await;
        let mut record = tab.record.lock().expect("poisoned");
        for m in record.memberships.iter_mut() {
            m.leave_sent_us.get_or_insert(gone);
            if m.out_us.is_none() {
                m.out_us = Some(if unfenced { gone } else { gone + settle });
            }
        }
        record.left_us = Some(gone);
        drop(record);
        self.tabs_left.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether tab `index` has an open connection now.
    pub async fn is_open(&self, index: usize) -> bool {
        self.tabs[index].conn.is_open().await
    }

    /// Connection `generation` of tab `index` was closed or lost by the other side: the tab
    /// is out of its rooms from now on, and its life reconnects it.
    fn dropped(&self, index: usize, generation: u64, why: &str) {
        let tab = &self.tabs[index];
        if tab.closing.load(Ordering::Relaxed) || !tab.conn.is_current(generation) {
            return;
        }
        tracing::info!(tab = index, why, "connection dropped");
        self.drops.fetch_add(1, Ordering::Relaxed);
        self.go_down(index);
        tab.life.lost();
    }

    /// The tab's connection is gone (dropped, or cut by churn): its memberships end, as a
    /// drop, and it is down until it reconnects. Both are dated `settle` before now: what was
    /// sent to it in that time may still have been on its way when the connection went, so it
    /// is missed while disconnected, not lost (with a replay, it is owed as any missed one).
    /// For the same reason, the emits this tab sent without an ack in that time, and those
    /// still waiting for theirs, are uncertain: the app may never have read them.
    fn go_down(&self, index: usize) {
        let tab = &self.tabs[index];
        tab.conn.retire();
        let now = now_us();
        let since = now - self.file.settle.as_micros() as i64;
        {
            let mut record = tab.record.lock().expect("poisoned");
            let down_from = record
                .down
                .last()
                .and_then(|&(_, back)| back)
                .map_or(since, |back| since.max(back));
            record.down.push((down_from, None));
            for m in record
                .memberships
                .iter_mut()
                .filter(|m| m.leave_sent_us.is_none())
            {
                m.leave_sent_us = Some(since.max(m.in_us.unwrap_or(m.join_sent_us)));
                m.out_us = Some(now);
                m.dropped = true;
            }
        }
        let mut publishes = self.publishes.lock().expect("poisoned");
        for p in publishes.iter_mut().rev() {
            if p.sent_us < since {
                break;
            }
            let unacked = self.file.publishers[p.publisher]
                .emit
                .as_ref()
                .is_some_and(|e| !e.ack);
            if p.tab == index && p.ok && unacked {
                p.ok = false;
                self.uncertain.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Cuts tab `index`'s connection as a lost network would (`--churn`, `--storm-at`), then
    /// lets its life reconnect it; false when it was not open.
    pub async fn cut(&self, index: usize) -> bool {
        let tab = &self.tabs[index];
        let Some(client) = tab.conn.take().await else {
            return false;
        };
        self.go_down(index);
        client.disconnect().await;
        tab.life.cut();
        true
    }

    /// Sends ticket `ticket` of publisher `publisher` from tab `index`.
    pub async fn publish(self: &Arc<Self>, publisher: usize, index: usize, ticket: usize) {
        let p = &self.file.publishers[publisher];
        // An emit needs the tab's connection: a tab down (dropped, cut, not yet back) skips
        // its ticket, counted, as a page offline would not send.
        if p.emit.is_some() && !self.is_open(index).await {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let family = self
            .file
            .rooms
            .iter()
            .position(|r| r.name == p.room)
            .expect("checked when the file was read");
        let own: Vec<_> = self.plan.tabs[index]
            .rooms
            .iter()
            .filter(|r| r.family == family)
            .collect();
        let (n, room) = match own.get(ticket % own.len().max(1)) {
            Some(r) => (r.n, r.name.clone()),
            None => {
                let count = self.file.rooms[family].count;
                let n = (ticket as u64).wrapping_mul(2_654_435_761) % count + 1;
                let vars = self.vars(index);
                let name = render(&p.room, &|k| match k {
                    "n" => Some(n.to_string()),
                    k => vars.get(k),
                })
                .unwrap_or_default();
                (n, name)
            }
        };
        // Unique among the shards of the run too.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed) * self.shard.count as u64
            + self.shard.index as u64;
        let mark = marker(self.run, seq);
        let start = self.slot_base_s + seq as i64 * 60;
        let peer = peer_of(index, ticket, self.tabs.len());
        let vars = self.vars(index);
        let get = |k: &str| match k {
            "n" => Some(n.to_string()),
            "room" => Some(room.clone()),
            "marker" => Some(mark.clone()),
            "seq" => Some(seq.to_string()),
            "peer" => Some(peer.to_string()),
            "start" => Some(crate::record::latency::rfc3339(start)),
            "end" => Some(crate::record::latency::rfc3339(start + 60)),
            k => vars.get(k),
        };
        let rooms = match &p.expect.rooms {
            Some(list) => list.iter().map(|r| render(r, &get)).collect(),
            None => Ok(vec![room.clone()]),
        };
        let rooms = match rooms {
            Ok(r) => r,
            Err(why) => {
                self.publish_error(format!("expect.rooms: {why}"));
                return;
            }
        };
        let sent_us = now_us();
        let at = {
            let mut log = self.publishes.lock().expect("poisoned");
            log.push(Publish {
                seq,
                publisher,
                tab: index,
                room: room.clone(),
                rooms,
                audience: p.expect.audience,
                sent_us,
                answered_us: None,
                ok: true,
            });
            log.len() - 1
        };
        let generation = self.tabs[index].conn.generation();
        let result = match (&p.emit, &p.http) {
            (Some(emit), _) => self.emit(index, emit, &get).await,
            (None, Some(http)) => self.request(http, &get).await,
            (None, None) => Err("neither emit nor http".into()),
        };
        // An emit without an ack is in the app's hands `settle` after it went out at most.
        let answered = match &p.emit {
            Some(emit) if !emit.ack => now_us() + self.file.settle.as_micros() as i64,
            _ => now_us(),
        };
        self.publishes.lock().expect("poisoned")[at].answered_us = Some(answered);
        if let Err(why) = result {
            let mut log = self.publishes.lock().expect("poisoned");
            if p.emit.is_some() && !self.tabs[index].conn.is_current(generation) {
                // Its connection went while it was sent: uncertain, not an error of the app's
                // (an unacked one was counted when the tab went down).
                if std::mem::replace(&mut log[at].ok, false) {
                    self.uncertain.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                log[at].ok = false;
                drop(log);
                self.publish_error(why);
            }
        }
    }

    fn publish_error(&self, why: String) {
        self.publish_errors.lock().expect("poisoned").push(why);
    }

    async fn emit(
        &self,
        index: usize,
        emit: &Emit,
        get: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), String> {
        let args = emit
            .args
            .iter()
            .map(|a| render_value(a, get))
            .collect::<Result<Vec<_>, _>>()?;
        let client = self.tabs[index]
            .conn
            .get()
            .await
            .ok_or("the publishing tab is not connected")?;
        if emit.ack {
            let ack = client.emit_with_ack(&emit.event, args).await?;
            refusal(&ack).map_or(Ok(()), Err)
        } else {
            client.emit(&emit.event, args).await
        }
    }

    async fn request(
        &self,
        http: &Http,
        get: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), String> {
        let body = http.body.as_ref();
        self.call(&http.method, &http.path, &http.headers, body, get)
            .await
            .map(|_| ())
    }

    /// One HTTP request of the app file's (a publish or a replay), its templates rendered
    /// with `get`: the answer's body when it is a success, else why not.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: Option<&Value>,
        get: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<String, String> {
        let path = render(path, get)?;
        let verb =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?;
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = self.http.request(verb, &url);
        for (k, v) in self.file.headers.iter().chain(headers) {
            request = request.header(k, render(v, get)?);
        }
        if let Some(body) = body {
            request = request.json(&render_value(body, get)?);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(text)
        } else {
            let text: String = text.chars().take(200).collect();
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    /// After a reconnect, asks the app's replay (if the file names one) for each room tab
    /// `index` is in again, and records the markers of this run it finds.
    async fn replay(&self, index: usize) {
        let Some(replay) = &self.file.replay else {
            return;
        };
        let tab = &self.tabs[index];
        let (since_us, rooms) = {
            let record = tab.record.lock().expect("poisoned");
            // A second before the drop was noticed: a drop is noticed late.
            let since = record.down.last().map_or(0, |&(from, _)| from) - 1_000_000;
            let rooms: Vec<String> = record
                .memberships
                .iter()
                .filter(|m| m.leave_sent_us.is_none())
                .map(|m| m.room.clone())
                .collect();
            (since, rooms)
        };
        let vars = self.vars(index);
        for room in rooms {
            let n = self.plan.tabs[index]
                .rooms
                .iter()
                .find(|r| r.name == room)
                .map(|r| r.n.to_string());
            let get = |k: &str| match k {
                "room" => Some(room.clone()),
                "n" => n.clone(),
                "since_ms" => Some(since_us.div_euclid(1000).to_string()),
                "since" => Some(rfc3339(since_us.div_euclid(1_000_000))),
                k => vars.get(k),
            };
            let answer = self
                .call(&replay.method, &replay.path, &replay.headers, None, &get)
                .await
                .and_then(|text| {
                    serde_json::from_str::<Value>(&text).map_err(|e| format!("not JSON: {e}"))
                });
            let found =
                answer.and_then(|v| self.replayed_markers(&v, &replay.items, &replay.marker));
            match found {
                Ok(seqs) => {
                    self.replays.fetch_add(1, Ordering::Relaxed);
                    self.replayed
                        .fetch_add(seqs.len() as u64, Ordering::Relaxed);
                    tab.record.lock().expect("poisoned").replayed.extend(seqs);
                }
                Err(why) => self.tab_error(index, format!("replay of {room}: {why}")),
            }
        }
    }

    /// This run's markers in a replay's answer: the list at `items`, each item's marker at
    /// `marker` (`$`: anywhere in the item).
    fn replayed_markers(
        &self,
        answer: &Value,
        items: &str,
        marker: &str,
    ) -> Result<Vec<u64>, String> {
        let list = at_path(answer, items)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no list at `{items}` in the answer"))?;
        let mut seqs = Vec::new();
        for item in list {
            let found = match at_path(item, marker) {
                Some(Value::String(text)) => find_marker(text, self.run),
                Some(other) => find_marker(&other.to_string(), self.run),
                None => Found::None,
            };
            if let Found::Ours(seq) = found {
                seqs.push(seq);
            }
        }
        Ok(seqs)
    }

    /// Closes every tab's connection.
    pub async fn close(&self) {
        for tab in &self.tabs {
            tab.closing.store(true, Ordering::Relaxed);
            tab.conn.close().await;
        }
    }

    /// Each tab's record, by plan index (other shards' tabs are empty).
    pub fn records(&self) -> Vec<TabRecord> {
        self.tabs
            .iter()
            .map(|t| t.record.lock().expect("poisoned").clone())
            .collect()
    }
}

/// An app tab's part of the one tab life (`life`): it opens by connecting and joining as its
/// plan says, closes by leaving the rooms it joined itself, and comes back after a cut or a
/// drop by opening again and asking the app's replay, if the file names one. It takes the
/// life's defaults: no turns between its changes, no lead before a close (the settle of a
/// close is its own, see [`AppRun::close_tab`]), and a reconnect tries until the lives stop.
impl TabKind for AppRun {
    type Resume = ();
    type Closing = ();

    fn lifeline(&self, index: usize) -> &Lifeline {
        &self.tabs[index].life
    }

    async fn open(self: &Arc<Self>, index: usize) -> bool {
        self.open_tab(index).await
    }

    fn closing(&self, _index: usize) {}

    /// A tab whose open failed is left as it is.
    async fn close(self: &Arc<Self>, index: usize, joined: bool, (): ()) {
        if joined {
            self.close_tab(index).await;
        }
    }

    /// The cut or the drop already took it out of its rooms ([`AppRun::go_down`]).
    async fn down(self: &Arc<Self>, index: usize, _dropped: Option<Instant>) {
        let _ = self.tabs[index].conn.take().await;
    }

    async fn attempt(self: &Arc<Self>, index: usize, (): &()) -> Result<(), String> {
        if self.open_tab(index).await {
            Ok(())
        } else {
            Err("could not connect and join (see the tab errors)".into())
        }
    }

    /// A connection whose joins failed is hung up before the next attempt.
    async fn failed(self: &Arc<Self>, index: usize) {
        self.tabs[index].conn.close().await;
    }

    async fn back(self: &Arc<Self>, index: usize, back: Back) {
        if back.result.is_ok() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            self.replay(index).await;
        }
    }

    async fn turn(self: &Arc<Self>, _index: usize) {}
}

/// Whether an ack's arguments say no: a first argument that is `false`, or an object with
/// `ok: false`, or with an `error` that is not null (and no `ok: true`), as apps commonly
/// answer `{ok: false, error: "..."}` or `{error: "..."}`. Returns why, for the report.
pub fn refusal(ack: &[Value]) -> Option<String> {
    // rust_socketio may hand the arguments over wrapped in an array.
    let first = match ack.first() {
        Some(Value::Array(inner)) if ack.len() == 1 => inner.first(),
        other => other,
    };
    match first? {
        Value::Bool(false) => Some("acked false".into()),
        Value::Object(o) => {
            let ok = o.get("ok").and_then(Value::as_bool);
            let error = o.get("error").filter(|e| !e.is_null());
            match (ok, error) {
                (Some(true), _) | (None, None) => None,
                (_, Some(Value::String(why))) => Some(format!("refused: {why}")),
                (_, Some(why)) => Some(format!("refused: {why}")),
                (Some(false), None) => Some(format!("refused: {}", Value::Object(o.clone()))),
            }
        }
        _ => None,
    }
}

/// Another tab than `index` (of `tabs`), spread over the others by `ticket`.
fn peer_of(index: usize, ticket: usize, tabs: usize) -> usize {
    if tabs < 2 {
        return index;
    }
    (index + 1 + ticket.wrapping_mul(7_919) % (tabs - 1)) % tabs
}

/// Waits until `at`.
pub async fn until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_that_says_no_is_a_refusal_and_any_other_is_not() {
        use serde_json::json;
        let no = |v: Value| refusal(&[v]);
        assert_eq!(
            no(json!({"ok": false, "error": "room must be a string"})).as_deref(),
            Some("refused: room must be a string")
        );
        assert_eq!(
            no(json!({"error": {"code": 4}})).as_deref(),
            Some("refused: {\"code\":4}")
        );
        assert!(no(json!({"ok": false})).unwrap().contains("\"ok\":false"));
        assert_eq!(no(json!(false)).as_deref(), Some("acked false"));
        assert_eq!(
            refusal(&[json!([{"ok": false, "error": "x"}])]).as_deref(),
            Some("refused: x"),
            "wrapped in an array"
        );
        for fine in [
            json!({"ok": true}),
            json!({"ok": true, "error": null}),
            json!({"error": null, "room": "r"}),
            json!({"ok": true, "error": "a warning"}),
            json!("joined"),
            json!(true),
            json!(null),
            json!(7),
        ] {
            assert_eq!(refusal(std::slice::from_ref(&fine)), None, "{fine}");
        }
        assert_eq!(refusal(&[]), None, "an ack with no arguments");
    }

    #[test]
    fn a_peer_is_never_the_publisher() {
        for ticket in 0..50 {
            for index in 0..5 {
                let peer = peer_of(index, ticket, 5);
                assert!(peer != index && peer < 5);
            }
        }
        assert_eq!(peer_of(0, 3, 1), 0);
    }

    /// A tab going down: what was sent to it within `settle` before is missed while
    /// disconnected, not lost; its own unacked emits of that time are uncertain, and nothing
    /// older, acked, or of another tab is touched.
    #[test]
    fn a_tab_going_down_dates_its_drop_settle_back_and_its_last_unacked_emits_uncertain() {
        use crate::judge::truth::{Audience, Rules, judge};
        let text = include_str!("../../../examples/chat-server/app.yaml");
        let file = crate::plan::app_file::parse(text, "app.yaml").unwrap();
        let settle = file.settle.as_micros() as i64;
        let plan = crate::plan::app::plan(&file, None, 3, 1, "run", 10.0).unwrap();
        let tls = crate::config::Tls {
            ca_pem: None,
            insecure: false,
        };
        let url = "http://127.0.0.1:1".to_string();
        let run = AppRun::new(file, None, plan, url, 1, Shard::default(), &tls).unwrap();
        let publisher = |name: &str| {
            let of = |p: &crate::plan::app_file::Publisher| p.name.as_deref() == Some(name);
            run.file.publishers.iter().position(of).unwrap()
        };
        let (message, whisper) = (publisher("message"), publisher("whisper"));
        assert!(run.file.publishers[message].emit.as_ref().unwrap().ack);
        assert!(!run.file.publishers[whisper].emit.as_ref().unwrap().ack);
        let now = now_us();
        for t in 0..3 {
            run.tabs[t]
                .record
                .lock()
                .unwrap()
                .memberships
                .push(Membership {
                    room: "user:tab-0".into(),
                    join_sent_us: now - 60_000_000,
                    in_us: Some(now - 59_000_000),
                    leave_sent_us: None,
                    out_us: None,
                    dropped: false,
                });
        }
        let publish = |seq, publisher, tab, sent_us| Publish {
            seq,
            publisher,
            tab,
            room: "user:tab-0".into(),
            rooms: vec!["user:tab-0".into()],
            audience: Audience::Room,
            sent_us,
            answered_us: None,
            ok: true,
        };
        let recent = now - settle / 2;
        *run.publishes.lock().unwrap() = vec![
            publish(1, whisper, 0, now - 3 * settle),
            publish(2, whisper, 0, recent),
            publish(3, message, 0, recent),
            publish(4, whisper, 1, recent),
        ];
        run.go_down(0);
        let ok: Vec<bool> = run.publishes.lock().unwrap().iter().map(|p| p.ok).collect();
        assert_eq!(
            ok,
            [true, false, true, true],
            "only tab 0's recent unacked emit"
        );
        assert_eq!(run.uncertain.load(Ordering::Relaxed), 1);
        let record = run.tabs[0].record.lock().unwrap().clone();
        let m = &record.memberships[0];
        assert!(m.dropped);
        let left = m.leave_sent_us.unwrap();
        assert!(left <= recent && left >= now - settle, "{left} vs {now}");
        assert_eq!(record.down.len(), 1);
        assert!(record.down[0].0 <= recent);
        // Judged (nothing was received): the old whisper was owed to all three and is lost; of
        // the recent acked message and tab 1's whisper, tab 0 missed what was on its way to it
        // as it went (no replay: counted apart), tabs 1 and 2 lost them.
        let publishes = run.publishes.lock().unwrap().clone();
        let tabs: Vec<_> = (0..3)
            .map(|t| run.tabs[t].record.lock().unwrap().clone())
            .collect();
        let j = judge(
            &publishes,
            &tabs,
            run.file.publishers.len(),
            Rules::default(),
        );
        assert_eq!(j.missed_disconnected, 2, "tab 0's share of #3 and #4");
        assert_eq!(
            j.total.lost,
            3 + 2 + 2,
            "#1 to everyone, #3 and #4 to tabs 1 and 2"
        );
    }
}
