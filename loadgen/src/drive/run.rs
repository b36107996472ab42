//! One booking run, shared by its tabs, actors and reporters, in three parts: its `Setup`
//! (fixed once it starts: config, hosts, tokens, plan, boardrooms, the starting `seq`, the
//! clients; the embedded server when no host is given), its tabs, and its `Recorders` (what
//! it counts and times as it goes, each behind its own atomics or lock); besides, the
//! committed `seq` lately read and the log read so far (`judge::window`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use booking_server::auth::{Role, mint_with_secret};
use booking_server::realtime::protocol::{BookingEventKind, Room};
use serde_json::{Value, json};

use crate::config::Config;
use crate::drive::embedded;
use crate::drive::tab::Tab;
use crate::error::RunError;
use crate::judge::fault::FaultTracker;
use crate::judge::verify::{LogEvent, RoomRef};
use crate::plan::{CLASS_BOOKINGS, CLASS_USER, Page, Plan};
use crate::record::latency::{Latency, kind_index};
use crate::record::stats::Stats;

/// How long before the first ticket goose is started: it launches every actor user within a
/// tenth of a second (`lib::goose_attack`).
pub const ACTORS_LEAD: Duration = Duration::from_millis(500);

/// One run, shared by its tabs, actors and reporters: what it was set up with (fixed once it
/// starts), its tabs, what it records as it goes, and the little state of its own.
pub struct Run {
    pub setup: Setup,
    pub tabs: Vec<Tab>,
    pub rec: Recorders,
    /// When every tab had joined its rooms: actions are scheduled from here.
    pub actions_started: OnceLock<Instant>,
    /// The highest committed `seq` lately read from the log ([`Run::read_last_seq`]; with
    /// `--stages`, a quarter of a second fresh, see [`Run::track_committed`]).
    pub committed: AtomicI64,
    /// Keeps the embedded server running for the run.
    server: Mutex<Option<embedded::Embedded>>,
    /// The log read so far and the verdict on what is settled (`judge::window`).
    pub judging: tokio::sync::Mutex<Judging>,
}

/// What a run is set up with: nothing here changes once it starts.
pub struct Setup {
    pub config: Config,
    pub seed: u64,
    /// Short id of this run, in user and boardroom names so concurrent runs do not collide.
    pub run_id: u64,
    pub hosts: Vec<String>,
    pub embedded: bool,
    pub admin_token: String,
    /// The servers' secret, when known (tabs get users of their own).
    secret: Option<String>,
    /// The user of `--token`, when every tab shares it.
    shared_user: Option<String>,
    pub plan: Plan,
    /// Boardroom id of each plan boardroom index.
    pub boardroom_ids: Vec<i64>,
    /// The highest `seq` before the run: every watermark is at or above it.
    pub start_seq: i64,
    /// This generator's actors: (ordinal among all the plan's actors, tab index here).
    pub actors: Vec<(usize, usize)>,
    /// Actors of the whole plan (all shards): tickets and hours are dealt among them.
    pub actor_count: usize,
    pub http: reqwest::Client,
    /// The tabs' TLS connector, with `--ca-cert` or `--insecure` (none: the system's roots).
    pub tls_connector: Option<native_tls::TlsConnector>,
    /// The tabs' Socket.IO client (`--client`).
    pub tab_client: crate::config::TabClientKind,
}

/// What a run records as it goes, each recorder with its own lock or atomics.
pub struct Recorders {
    pub stats: Stats,
    pub latency: Latency,
    /// The volatile `editing` signals: sent, expected, received, latency.
    pub volatile: crate::drive::volatile::VolatileStats,
    /// (ticket due -> request sent) lag of actions, µs.
    schedule_lag: Mutex<hdrhistogram::Histogram<u64>>,
    /// Receive spans, when traces are on.
    pub traces: Option<crate::record::traces::ReceiveSpans>,
    /// The fault scenario's timeline (`--scenario`).
    pub fault: FaultTracker,
    /// How long each dropped tab took to rejoin and replay.
    recoveries: Mutex<Vec<Duration>>,
    /// `seq`s of this run's writes answered 2xx: each must be in the log at the end.
    acked: Mutex<Vec<i64>>,
    /// Once-a-second samples of the generator's own CPU, scheduling lag and receive backlog.
    pub generator: crate::record::saturation::Watch,
    /// The run second by second.
    pub timeline: crate::record::timeline::Timeline,
    /// The tabs' Socket.IO records waiting for goose's reporter user.
    pub feed: crate::record::goose_feed::GooseFeed,
}

impl Recorders {
    fn new() -> Self {
        Self {
            stats: Stats::default(),
            latency: Latency::new(),
            volatile: Default::default(),
            schedule_lag: Mutex::new(crate::record::latency::histogram()),
            traces: None,
            fault: FaultTracker::new(),
            recoveries: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            generator: Default::default(),
            timeline: Default::default(),
            feed: Default::default(),
        }
    }

    /// An action was sent `lag_us` after its ticket was due.
    pub fn schedule_lag(&self, lag_us: u64) {
        let _ = self
            .schedule_lag
            .lock()
            .expect("poisoned")
            .record(lag_us.max(1));
    }

    pub fn schedule_lags(&self) -> hdrhistogram::Histogram<u64> {
        self.schedule_lag.lock().expect("poisoned").clone()
    }

    /// A write was answered 2xx with event `seq`.
    pub fn acked(&self, seq: i64) {
        self.acked.lock().expect("poisoned").push(seq);
    }

    pub fn acked_seqs(&self) -> Vec<i64> {
        self.acked.lock().expect("poisoned").clone()
    }

    pub fn recoveries(&self) -> Vec<Duration> {
        self.recoveries.lock().expect("poisoned").clone()
    }

    /// A dropped tab's reconnect, started at `dropped`, ended (`ok`: rejoined and replayed).
    pub fn recovered(&self, dropped: Instant, ok: bool) {
        if !ok {
            self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.recoveries
            .lock()
            .expect("poisoned")
            .push(dropped.elapsed());
        let down = self.stats.tabs_down.fetch_sub(1, Ordering::Relaxed) - 1;
        if down <= 0 && self.fault.fault_at.get().is_some() {
            *self.fault.all_recovered.lock().expect("poisoned") = Some(Instant::now());
        }
    }
}

/// A run's judging as it goes: the log read so far, where it is settled, and the verdict on
/// what every tab was judged of up to there.
pub struct Judging {
    pub log: LogRead,
    pub horizon: crate::judge::window::Horizon,
    pub settled: crate::judge::verify::Verdict,
}

impl Run {
    /// Starts or reaches the servers, mints tokens, creates boardrooms, reads the start `seq`.
    pub async fn setup(config: Config) -> Result<Run, RunError> {
        let seed = config.seed.unwrap_or_else(rand::random::<u64>);
        let run_id = seed % 100_000;
        let tls = config.tls().map_err(RunError::Setup)?;
        let http = tls
            .http(reqwest::Client::builder().timeout(Duration::from_secs(30)))
            .map_err(RunError::Setup)?
            .build()
            .map_err(|e| RunError::Setup(format!("http client: {e}")))?;
        let tls_connector = tls.connector().map_err(RunError::Setup)?;
        let tab_client = config
            .tab_client(config.transport.unwrap_or_default())
            .map_err(RunError::Setup)?;
        let (hosts, secret, server) = if config.hosts.is_empty() {
            let server = embedded::Embedded::start(config.inject_faults.clone()).await?;
            (
                vec![server.base.clone()],
                Some(server.secret.clone()),
                Some(server),
            )
        } else {
            let hosts = config
                .hosts
                .iter()
                .map(|h| h.trim_end_matches('/').to_string())
                .collect();
            (hosts, config.auth_secret.clone(), None)
        };
        let embedded = server.is_some();
        let day = 24 * 3600;
        let admin_token = match (&secret, &config.token) {
            (_, Some(token)) => token.clone(),
            (Some(secret), None) => mint_with_secret(
                secret,
                &format!("lg{run_id}-admin"),
                Role::Admin,
                Some("loadgen admin"),
                day,
            ),
            (None, None) => return Err(RunError::Setup("no --auth-secret or --token".into())),
        };
        let plan = Plan::draw(
            seed,
            config.tabs,
            config.boardrooms,
            hosts.len(),
            config.dashboard_share,
            (config.actor_share, config.max_actors()),
        );
        for host in &hosts {
            let ready = http.get(format!("{host}/ready")).send().await;
            match ready {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    return Err(RunError::Setup(format!(
                        "{host}/ready answered {}",
                        r.status()
                    )));
                }
                Err(e) => return Err(RunError::Setup(format!("{host} is unreachable: {e}"))),
            }
        }
        let start_seq = last_seq(&http, &hosts[0], &admin_token, 0).await?;
        let boardroom_ids =
            create_boardrooms(&http, &hosts[0], &admin_token, run_id, config.boardrooms).await?;
        let shared_user = config.token.as_deref().map(token_subject).transpose()?;
        // A shard runs the plan's tabs it owns; each keeps its plan index `i` in its user's
        // name, so the shards of a run have the users one generator would.
        let shard = config.shard;
        let owned: Vec<usize> = (0..plan.tabs.len()).filter(|t| shard.owns(*t)).collect();
        let tabs = owned
            .iter()
            .enumerate()
            .map(|(local, &i)| {
                let tab_plan = &plan.tabs[i];
                let (user, token) = match (&shared_user, &secret) {
                    (Some(user), _) => (user.clone(), admin_token.clone()),
                    (None, Some(secret)) => {
                        let user = format!("lg{run_id}-{i}");
                        let token = mint_with_secret(
                            secret,
                            &user,
                            Role::User,
                            Some(&format!("Tab {i}")),
                            day,
                        );
                        (user, token)
                    }
                    (None, None) => unreachable!("checked above"),
                };
                Tab::new(local, tab_plan.clone(), user, token, start_seq)
            })
            .collect();
        // Every actor of the plan, in plan order (its ordinal decides its tickets and hours);
        // this generator's tabs act for those it owns.
        let all_actors: Vec<usize> = (0..plan.tabs.len())
            .filter(|t| plan.tabs[*t].actor)
            .collect();
        let actor_count = all_actors.len();
        let actors = all_actors
            .iter()
            .enumerate()
            .filter_map(|(ordinal, t)| {
                let local = owned.binary_search(t).ok()?;
                Some((ordinal, local))
            })
            .collect();
        let ledger_window = config.ledger_window;
        Ok(Run {
            setup: Setup {
                tls_connector,
                tab_client,
                seed,
                run_id,
                hosts,
                embedded,
                admin_token,
                secret,
                shared_user,
                plan,
                boardroom_ids,
                start_seq,
                actors,
                actor_count,
                http,
                config,
            },
            tabs,
            rec: Recorders::new(),
            actions_started: OnceLock::new(),
            committed: AtomicI64::new(start_seq),
            server: Mutex::new(server),
            judging: tokio::sync::Mutex::new(Judging {
                log: LogRead {
                    events: Vec::new(),
                    names: LogNames::default(),
                    through: start_seq,
                },
                horizon: crate::judge::window::Horizon::new(ledger_window),
                settled: Default::default(),
            }),
        })
    }

    /// The embedded server, to stop it (none when the run reached hosts of its own).
    pub fn take_server(&self) -> Option<embedded::Embedded> {
        self.server.lock().expect("poisoned").take()
    }

    /// The embedded server's metrics page, if the run has one.
    pub fn embedded_metrics(&self) -> Option<String> {
        let server = self.server.lock().expect("poisoned");
        server.as_ref().map(embedded::Embedded::metrics)
    }

    /// User and token of browser page `index`: a user of its own when the secret is known,
    /// else the shared `--token`'s.
    pub fn browser_user(&self, index: usize) -> (String, String) {
        match (&self.setup.shared_user, &self.setup.secret) {
            (None, Some(secret)) => {
                let user = format!("lg{}-b{index}", self.setup.run_id);
                let name = format!("Browser {index}");
                let token = mint_with_secret(secret, &user, Role::User, Some(&name), 24 * 3600);
                (user, token)
            }
            (shared, _) => (
                shared.clone().unwrap_or_else(|| "admin".into()),
                self.setup.admin_token.clone(),
            ),
        }
    }

    /// The rooms a tab's page joins, with their report class: its page room, then its own.
    pub fn rooms_of(&self, tab: &Tab) -> Vec<(Room, usize)> {
        let page = match tab.plan.page {
            Page::Dashboard => (Room::Bookings, CLASS_BOOKINGS),
            Page::Calendar(k) => (
                Room::Boardroom(self.setup.boardroom_ids[k]),
                self.setup.plan.boardroom_class(k),
            ),
        };
        vec![page, (Room::User(tab.user.clone()), CLASS_USER)]
    }

    /// Starts actions: [`ACTORS_LEAD`] from now (goose launches its actor users meanwhile), or
    /// at `--actions-at` when that is later (the instant set lies ahead; tickets are due from
    /// it). Only the first call counts.
    pub fn start_actions(&self) -> bool {
        let at = Instant::now() + self.setup.config.until_actions_at().max(ACTORS_LEAD);
        self.actions_started.set(at).is_ok()
    }

    /// With `--stages`: when tab `local` of this generator opens and closes (`None` for the
    /// close: it stays open to the end). A tab beyond every stage's count opens at the end.
    pub fn stage_window(&self, local: usize) -> Option<(Instant, Option<Instant>)> {
        let stages = self.setup.config.stages.as_ref()?;
        let zero = *self.actions_started.get()?;
        Some(
            match stages.window(self.setup.config.shard.plan_index(local)) {
                Some((open, close)) => (zero + open, close.map(|c| zero + c)),
                None => (zero + stages.total(), None),
            },
        )
    }

    /// Keeps [`Run::committed`] a quarter of a second fresh, for the cutoffs of closing
    /// tabs: one read of the log for the whole generator, not one per tab.
    pub async fn track_committed(&self) {
        loop {
            self.read_last_seq().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until actions have a start instant and returns it (it may lie ahead, see
    /// [`Run::start_actions`]).
    pub async fn actions_start(&self) -> Instant {
        loop {
            match self.actions_started.get() {
                Some(at) => return *at,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// When goose's run ends (about): a tab still reconnecting then gives up.
    pub fn end_at(&self) -> Option<Instant> {
        let c = &self.setup.config;
        let started = *self.actions_started.get()?;
        Some(started + c.duration + c.think_time + Duration::from_secs(2))
    }

    /// The generator's samples since actions started, judged by the run's limits.
    pub fn generator_report(&self) -> crate::record::saturation::GeneratorReport {
        crate::record::saturation::summarize(
            &self
                .rec
                .generator
                .samples_since(self.actions_started.get().copied()),
            crate::record::saturation::Limits::of(&self.setup.config),
            crate::record::saturation::cores(),
        )
    }

    pub fn past_end(&self) -> bool {
        self.end_at().is_some_and(|end| Instant::now() >= end)
    }

    /// One page of the log from the first host that answers, trying `hosts[*first]` first
    /// (and remembering which one answered).
    async fn read_page_any(
        &self,
        first: &mut usize,
        after: i64,
        limit: usize,
    ) -> Result<LogPage, PageError> {
        let mut last = None;
        for k in 0..self.setup.hosts.len() {
            let i = (*first + k) % self.setup.hosts.len();
            match read_page(
                &self.setup.http,
                &self.setup.hosts[i],
                &self.setup.admin_token,
                after,
                None,
                limit,
            )
            .await
            {
                Ok(page) => {
                    *first = i;
                    return Ok(page);
                }
                // The hosts share one log: another would say the same.
                Err(gone @ PageError::Gone { .. }) => return Err(gone),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PageError::Failed("no host".into())))
    }

    /// The highest committed `seq` now, from any host, if one answers within a moment; it
    /// raises [`Run::committed`], which the next read starts from.
    pub async fn read_last_seq(&self) -> Option<i64> {
        let from = self.committed.load(Ordering::Relaxed);
        let read = async {
            for host in &self.setup.hosts {
                if let Ok(seq) =
                    last_seq(&self.setup.http, host, &self.setup.admin_token, from).await
                {
                    return Some(seq);
                }
            }
            None
        };
        let seq = tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .ok()
            .flatten()?;
        self.committed.fetch_max(seq, Ordering::Relaxed);
        Some(seq)
    }

    /// Reads the event log after what `log` holds to its end, as the verifier needs it, from
    /// the first host that answers (a node may have been killed; the database may still be
    /// coming back, so a failed read is retried for a while). Returns the last `seq` judged:
    /// what was read, not events committed after the last page.
    pub async fn read_log(&self, log: &mut LogRead) -> Result<i64, RunError> {
        self.read_log_after(log, None, LOG_READ_RETRIES).await?;
        Ok(log.through)
    }

    /// Reads the log after `log.through` into `log`, up to `upto` (`None`: to its end),
    /// retrying a failed page `retries` times a second apart. Its events and `through` change
    /// only if the read succeeds (names met on the way stay interned, which is harmless).
    pub async fn read_log_after(
        &self,
        log: &mut LogRead,
        upto: Option<i64>,
        retries: u32,
    ) -> Result<(), RunError> {
        let mut fresh = Vec::new();
        let mut after = log.through;
        let mut log_end = log.through;
        let mut host = 0;
        let mut tries = 0;
        loop {
            let page = match self.read_page_any(&mut host, after, 5000).await {
                Ok(page) => page,
                Err(PageError::Gone { oldest_seq }) => {
                    let refused = self.rec.stats.replays_gone.load(Ordering::Relaxed);
                    let tabs = match refused {
                        0 => String::new(),
                        n => format!("; {n} tab replays were refused the same way"),
                    };
                    return Err(RunError::Setup(format!(
                        "the run cannot be judged: the server's retention removed events it \
                         made (the log keeps seq {oldest_seq} on, the run is judged from seq \
                         {}, answered 410){tabs}; give the server an --event-retention \
                         longer than the run and its settle",
                        after + 1
                    )));
                }
                Err(e) if tries < retries => {
                    tries += 1;
                    tracing::warn!(error = %e, "reading the event log failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            log_end = log_end.max(page.last_seq);
            for e in &page.events {
                let kind = BookingEventKind::from_name(&e.event).map_or(0, kind_index);
                let rooms = e.rooms.iter().filter_map(|r| log.names.room(r)).collect();
                let node = e.payload.node.as_deref().map(|n| log.names.node(n));
                fresh.push(LogEvent {
                    seq: e.payload.seq,
                    kind,
                    rooms,
                    node,
                });
            }
            after = page.next_after;
            if !page.has_more || upto.is_some_and(|u| after >= u) {
                break;
            }
        }
        // Judge only what was read: events committed after the last page are not in `fresh`.
        let through = fresh
            .last()
            .map_or(log.through, |e| e.seq)
            .max(after)
            .min(log_end)
            .min(upto.unwrap_or(i64::MAX))
            .max(log.through);
        fresh.retain(|e| e.seq <= through);
        log.events.append(&mut fresh);
        log.through = through;
        Ok(())
    }
}

/// The event log as the verdict reads it, from the run's start on, with its users and nodes
/// interned.
pub struct LogRead {
    pub events: Vec<LogEvent>,
    pub names: LogNames,
    /// Every event at or below this `seq` has been read into `events`.
    pub through: i64,
}

/// Reads of the event log at the end are retried this many times, a second apart.
const LOG_READ_RETRIES: u32 = 15;

/// Interns user ids and node ids so the verifier compares numbers.
#[derive(Default)]
pub struct LogNames {
    users: std::collections::HashMap<String, u32>,
    nodes: std::collections::HashMap<String, u32>,
}

impl LogNames {
    pub fn id(&mut self, user: &str) -> u32 {
        let next = self.users.len() as u32;
        *self.users.entry(user.to_string()).or_insert(next)
    }

    pub fn node(&mut self, node: &str) -> u32 {
        let next = self.nodes.len() as u32;
        *self.nodes.entry(node.to_string()).or_insert(next)
    }

    pub fn room(&mut self, name: &str) -> Option<RoomRef> {
        Some(match Room::parse(name).ok()? {
            Room::Bookings => RoomRef::Bookings,
            Room::Boardroom(id) => RoomRef::Boardroom(id),
            Room::User(user) => RoomRef::User(self.id(&user)),
        })
    }
}

/// Why a page of the event log was not read.
#[derive(Debug)]
pub enum PageError {
    /// 410: the server's retention removed events after the `after` asked for; it keeps those
    /// from `oldest_seq` on. Asking again changes nothing.
    Gone {
        oldest_seq: i64,
    },
    Failed(String),
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::Gone { oldest_seq } => write!(
                f,
                "410 gone: the server's retention removed the events before seq {oldest_seq}"
            ),
            PageError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<PageError> for RunError {
    fn from(e: PageError) -> Self {
        RunError::Setup(format!("reading the event log: {e}"))
    }
}

/// A page of the event log as the judge reads it: what an event's verdict needs (its name,
/// rooms, `seq` and node), the booking in it skipped unread. A page of the final read holds
/// up to 5,000 events; parsed whole, their bookings took megabytes at the run's end.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub events: Vec<LoggedEvent>,
    pub next_after: i64,
    pub has_more: bool,
    pub last_seq: i64,
}

#[derive(Debug, serde::Deserialize)]
pub struct LoggedEvent {
    pub event: String,
    pub rooms: Vec<String>,
    pub payload: LoggedStamp,
}

#[derive(Debug, serde::Deserialize)]
pub struct LoggedStamp {
    pub seq: i64,
    #[serde(default)]
    pub node: Option<String>,
}

/// A page of `GET /api/events` after `after`, read as `P`: a `booking_server::events::ReplayPage` where the events
/// are replayed to a tab, a [`LogPage`] where they are judged.
pub async fn read_page<P: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    host: &str,
    token: &str,
    after: i64,
    rooms: Option<&str>,
    limit: usize,
) -> Result<P, PageError> {
    let mut url = format!("{host}/api/events?after={after}&limit={limit}");
    if let Some(rooms) = rooms {
        url.push_str(&format!("&rooms={rooms}"));
    }
    let res = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| PageError::Failed(e.to_string()))?;
    let status = res.status();
    if status == reqwest::StatusCode::GONE {
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if let Some(oldest_seq) = body["error"]["oldestSeq"].as_i64() {
            return Err(PageError::Gone { oldest_seq });
        }
        return Err(PageError::Failed(format!(
            "{status} without oldestSeq: {body}"
        )));
    }
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(PageError::Failed(format!("{status} {body}")));
    }
    res.json()
        .await
        .map_err(|e| PageError::Failed(format!("event log page: {e}")))
}

/// The highest committed `seq` on `host`, read from `from` (a `seq` known to be committed, so
/// that a read repeated during a run does not fall behind retention each time). A server whose
/// retention removed the events after `from` answers 410; the read is made again from its
/// oldest kept event.
pub async fn last_seq(
    http: &reqwest::Client,
    host: &str,
    token: &str,
    from: i64,
) -> Result<i64, PageError> {
    let mut after = from;
    // Retention may move on between two reads: a few tries, each from its new horizon.
    for _ in 0..3 {
        match read_page::<LogPage>(http, host, token, after, None, 1).await {
            Ok(page) => return Ok(page.last_seq),
            Err(PageError::Gone { oldest_seq }) => after = oldest_seq - 1,
            Err(e) => return Err(e),
        }
    }
    Err(PageError::Failed(
        "retention kept removing events while the last seq was read".into(),
    ))
}

async fn create_boardrooms(
    http: &reqwest::Client,
    host: &str,
    admin: &str,
    run_id: u64,
    count: usize,
) -> Result<Vec<i64>, RunError> {
    let mut ids = Vec::with_capacity(count);
    for k in 0..count {
        let body = json!({ "name": format!("lg{run_id}-room-{k}"), "capacity": 50, "location": "loadgen" });
        let res = http
            .post(format!("{host}/api/boardrooms"))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .map_err(|e| RunError::Setup(format!("creating boardrooms: {e}")))?;
        let status = res.status();
        let value: Value = res.json().await.unwrap_or(Value::Null);
        match status.as_u16() {
            201 => ids.push(value["id"].as_i64().unwrap_or_default()),
            409 => {
                // A run with the same seed made it before: reuse it.
                let list: Vec<Value> = http
                    .get(format!("{host}/api/boardrooms"))
                    .bearer_auth(admin)
                    .send()
                    .await
                    .map_err(|e| RunError::Setup(format!("listing boardrooms: {e}")))?
                    .json()
                    .await
                    .map_err(|e| RunError::Setup(format!("listing boardrooms: {e}")))?;
                let id = list
                    .iter()
                    .find(|b| b["name"] == body["name"])
                    .and_then(|b| b["id"].as_i64());
                ids.push(id.ok_or_else(|| RunError::Setup("boardroom vanished".into()))?);
            }
            403 => return Err(RunError::Setup(
                "creating boardrooms needs an admin token (--token of an admin, or --auth-secret)"
                    .into(),
            )),
            _ => {
                return Err(RunError::Setup(format!(
                    "creating boardrooms: {status} {value}"
                )));
            }
        }
    }
    Ok(ids)
}

/// The `sub` of a JWT, read without checking it (the server checks it).
fn token_subject(token: &str) -> Result<String, RunError> {
    let bad = || RunError::Setup("--token is not a JWT with a `sub`".into());
    let payload = token.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64url(payload).ok_or_else(bad)?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    claims["sub"].as_str().map(str::to_string).ok_or_else(bad)
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_subject_is_read() {
        let token = mint_with_secret("s", "carol", Role::Admin, None, 60);
        assert_eq!(token_subject(&token).unwrap(), "carol");
        assert!(token_subject("nope").is_err());
    }

    #[test]
    fn rooms_intern_users() {
        let mut users = LogNames::default();
        assert_eq!(users.node("n1"), users.node("n1"));
        assert_ne!(users.node("n1"), users.node("n2"));
        assert_eq!(users.room("bookings"), Some(RoomRef::Bookings));
        assert_eq!(users.room("boardroom-3"), Some(RoomRef::Boardroom(3)));
        let a = users.room("user-a");
        assert_eq!(users.room("user-a"), a);
        assert_ne!(users.room("user-b"), a);
        assert_eq!(users.room("lobby"), None);
    }
}
