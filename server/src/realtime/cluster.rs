//! The link between server processes. socketioxide's Redis adapter fans broadcasts out to the
//! other servers; it talks to Redis through a [`Driver`], and the drivers it ships neither
//! reconnect nor tell anyone that the link broke. [`ClusterLink`] is our driver: without
//! `--redis-url` it is a no-op (one server, nothing to fan out to); with it, a supervisor task
//! keeps one subscriber and one publisher connection, pings Redis every second, reconnects with
//! backoff, subscribes again to every channel the adapter asked for, and publishes the link's
//! state (up or down, since when, how many times it came up) on a watch channel.
//!
//! While the link is down, publishing fails at once (no waiting on a dead socket) and the
//! caller delivers to its own sockets only; the realtime module tells its clients to replay once
//! the link is back (see `Resync` in the protocol).
//!
//! Order across servers. The adapter publishes an event, then hands it to its own sockets at
//! once, while events of other servers reach those sockets through the subscription, a few
//! hops later. Writes take turns across the cluster (see `db`), so an event of another server
//! with a lower `seq` was published first; but without more, it could still be on its way
//! through this server's subscription when the newer local event is handed out. So a publish
//! on a channel this server listens to returns only once its own copy has come back through
//! the subscription and the adapter has taken it from its queue: Redis keeps one connection's
//! messages in order, so everything published before it has then been handed out here too.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use socketioxide::adapter::Emitter;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// The adapter every server runs: the Redis adapter over [`ClusterLink`].
pub type ClusterAdapter = CustomRedisAdapter<Emitter, ClusterLink>;

/// How often the link is checked, and how long Redis may take to answer anything.
const PING_EVERY: Duration = Duration::from_secs(1);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Reconnect backoff: doubles from the first to the last, with jitter.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(2);

/// The state of the link to the other servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    /// True while subscribed and answering pings (always true for a single server).
    pub up: bool,
    /// When `up` last changed.
    pub since: Instant,
    /// How many times the link came up; above 1 it has recovered from an outage.
    pub ups: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the Redis link is down")]
    Down,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// socketioxide-redis driver: nothing (one server) or a self-healing Redis link.
#[derive(Clone)]
pub enum ClusterLink {
    Single,
    Redis(Arc<RedisLink>),
}

impl ClusterLink {
    /// The adapter constructor for `SocketIoBuilder::with_adapter`. Channel names start with
    /// `prefix`, so several clusters (or tests) can share one Redis.
    pub fn adapter(&self, prefix: &str) -> RedisAdapterCtr<ClusterLink> {
        let config = RedisAdapterConfig::new().with_prefix(prefix.to_string());
        RedisAdapterCtr::new_with_driver(self.clone(), config)
    }

    /// The link's state and its changes; `None` for a single server, which has no link.
    pub fn state(&self) -> Option<watch::Receiver<LinkState>> {
        match self {
            ClusterLink::Single => None,
            ClusterLink::Redis(link) => Some(link.state.subscribe()),
        }
    }

    pub fn is_clustered(&self) -> bool {
        matches!(self, ClusterLink::Redis(_))
    }

    /// Woken each time a message from another server was dropped because a queue here was
    /// full; `None` for a single server.
    pub fn overflows(&self) -> Option<Arc<Notify>> {
        match self {
            ClusterLink::Single => None,
            ClusterLink::Redis(link) => Some(link.shared.overflowed.clone()),
        }
    }

    /// Woken each time an own publish gave up waiting for its copy to be taken here (see
    /// [`RedisLink::publish`]): messages of other servers ahead of it may reach this server's
    /// sockets after it. `None` for a single server.
    pub fn lapses(&self) -> Option<Arc<Notify>> {
        match self {
            ClusterLink::Single => None,
            ClusterLink::Redis(link) => Some(link.shared.lapsed.clone()),
        }
    }
}

impl Driver for ClusterLink {
    type Error = LinkError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), LinkError> {
        match self {
            ClusterLink::Single => Ok(()),
            ClusterLink::Redis(link) => link.publish(chan, val).await,
        }
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, LinkError> {
        match self {
            ClusterLink::Single => Ok(MessageStream::new_empty()),
            ClusterLink::Redis(link) => Ok(link.subscribe(chan, size)),
        }
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), LinkError> {
        if let ClusterLink::Redis(link) = self {
            link.shared.handlers.lock().expect("poisoned").remove(&chan);
            let _ = link.commands.send(Command::Unsubscribe(chan));
        }
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, LinkError> {
        match self {
            ClusterLink::Single => Ok(1),
            ClusterLink::Redis(link) => link.num_serv(chan).await,
        }
    }
}

enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

/// Where the messages of one channel go: the adapter's queue, and how many were put in it.
struct Handler {
    tx: mpsc::Sender<ChanItem>,
    relayed: Arc<AtomicU64>,
}

/// What the supervisor task shares with the driver's clones.
struct Shared {
    client: redis::Client,
    handlers: Mutex<HashMap<String, Handler>>,
    /// Own publishes waiting for their copy to come back, by hash of the payload: the sender
    /// gets the copy's number in its channel's queue.
    echoes: Mutex<HashMap<u64, oneshot::Sender<u64>>>,
    publisher: Mutex<Option<MultiplexedConnection>>,
    /// Messages from Redis dropped because the adapter's queue was full.
    overflow: metrics::Counter,
    /// Woken on each such drop: this server's sockets may have missed what it carried.
    overflowed: Arc<Notify>,
    /// Own publishes whose copy was not taken within [`ANSWER_WITHIN`].
    lapses: metrics::Counter,
    /// Woken on each: this server's sockets may get older events of others after it.
    lapsed: Arc<Notify>,
}

/// What the link counts: messages dropped on a full queue, and order lapses.
pub struct LinkCounters {
    pub overflow: metrics::Counter,
    pub lapses: metrics::Counter,
}

/// A Redis link that heals itself. Dropping the last clone stops its supervisor.
pub struct RedisLink {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Sender<LinkState>,
}

impl RedisLink {
    /// Starts the supervisor; the link comes up in the background (a server starts even when
    /// Redis is not there yet, and says so on `/ready`).
    pub fn start(url: &str, counters: LinkCounters) -> Result<ClusterLink, LinkError> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared {
            client,
            handlers: Mutex::new(HashMap::new()),
            echoes: Mutex::new(HashMap::new()),
            publisher: Mutex::new(None),
            overflow: counters.overflow,
            overflowed: Arc::new(Notify::new()),
            lapses: counters.lapses,
            lapsed: Arc::new(Notify::new()),
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(LinkState {
            up: false,
            since: Instant::now(),
            ups: 0,
        });
        tokio::spawn(supervise(shared.clone(), rx, state.clone()));
        Ok(ClusterLink::Redis(Arc::new(RedisLink {
            shared,
            commands,
            state,
        })))
    }

    /// Publishes, then waits for the copy to come back and be taken here (see
    /// [`RedisLink::wait_taken`]); when it is not within [`ANSWER_WITHIN`], the order this
    /// server's sockets see may lapse: that is counted and [`ClusterLink::lapses`] woken.
    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), LinkError> {
        let conn = self.shared.publisher.lock().expect("poisoned").clone();
        let mut conn = conn.ok_or(LinkError::Down)?;
        let key = payload_key(&val);
        let listening = self
            .shared
            .handlers
            .lock()
            .expect("poisoned")
            .contains_key(&chan);
        let echo = listening.then(|| {
            let (tx, rx) = oneshot::channel();
            self.shared.echoes.lock().expect("poisoned").insert(key, tx);
            rx
        });
        let publish = redis::cmd("PUBLISH").arg(&chan).arg(val).to_owned();
        let published = within(publish.query_async::<i64>(&mut conn))
            .await
            .map(|_| ());
        if let Some(echo) = echo {
            if published.is_ok() && !self.wait_taken(&chan, echo).await {
                self.shared.lapses.increment(1);
                self.shared.lapsed.notify_one();
                tracing::warn!(
                    chan,
                    within = ?ANSWER_WITHIN,
                    "own publish not taken back in time: this server's sockets may get older events of other servers after it; they will be told to resync"
                );
            }
            self.shared.echoes.lock().expect("poisoned").remove(&key);
        }
        published
    }

    /// Waits (at most [`ANSWER_WITHIN`]) until the copy of an own publish came back and the
    /// adapter took it from its queue; it handles queued messages one by one, so every message
    /// ahead of the copy has been handed to this server's sockets by then. False when that was
    /// not seen in time (the copy did not come back, or is still queued).
    async fn wait_taken(&self, chan: &str, echo: oneshot::Receiver<u64>) -> bool {
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        let Ok(Ok(number)) = tokio::time::timeout_at(deadline, echo).await else {
            return false;
        };
        loop {
            let taken = {
                let handlers = self.shared.handlers.lock().expect("poisoned");
                // Unsubscribed meanwhile: nothing of it reaches the sockets any more.
                let Some(h) = handlers.get(chan) else {
                    return true;
                };
                // Relayed first, queued second: a message relayed in between makes this
                // count low (one more turn), never high.
                let relayed = h.relayed.load(Ordering::Acquire);
                let queued = (h.tx.max_capacity() - h.tx.capacity()) as u64;
                relayed.saturating_sub(queued)
            };
            if taken >= number {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::task::yield_now().await;
        }
    }

    fn subscribe(&self, chan: String, size: usize) -> MessageStream<ChanItem> {
        let (tx, rx) = mpsc::channel(size.max(1));
        let mut handlers = self.shared.handlers.lock().expect("poisoned");
        let relayed = Arc::new(AtomicU64::new(0));
        handlers.insert(chan.clone(), Handler { tx, relayed });
        let _ = self.commands.send(Command::Subscribe(chan));
        MessageStream::new(rx)
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, LinkError> {
        let conn = self.shared.publisher.lock().expect("poisoned").clone();
        let mut conn = conn.ok_or(LinkError::Down)?;
        let query = redis::cmd("PUBSUB").arg("NUMSUB").arg(chan).to_owned();
        let answer = tokio::time::timeout(ANSWER_WITHIN, query.query_async(&mut conn)).await;
        let (_, count): (String, u16) = answer.map_err(|_| LinkError::Timeout(ANSWER_WITHIN))??;
        Ok(count)
    }
}

/// Connects, subscribes, relays messages and pings until the link breaks; then again, with
/// backoff, until every driver clone is gone.
async fn supervise(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<LinkState>,
) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match connect(&shared).await {
            Ok((mut sink, mut stream)) => {
                backoff = BACKOFF_FIRST;
                state.send_modify(|s| {
                    s.up = true;
                    s.since = Instant::now();
                    s.ups += 1;
                });
                tracing::info!("redis link up: fanning out to the other servers");
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let why = loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => relay(&shared, &msg),
                            None => break "connection closed".to_string(),
                        },
                        command = commands.recv() => {
                            let result = match command {
                                Some(Command::Subscribe(chan)) => sink.subscribe(chan).await,
                                Some(Command::Unsubscribe(chan)) => sink.unsubscribe(chan).await,
                                None => return,
                            };
                            if let Err(e) = result {
                                break format!("subscription failed: {e}");
                            }
                        }
                        _ = ping.tick() => {
                            let pong = tokio::time::timeout(
                                ANSWER_WITHIN,
                                sink.ping::<redis::Value>(),
                            ).await;
                            match pong {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => break format!("ping failed: {e}"),
                                Err(_) => break format!("no pong within {ANSWER_WITHIN:?}"),
                            }
                        }
                    }
                };
                *shared.publisher.lock().expect("poisoned") = None;
                state.send_modify(|s| {
                    s.up = false;
                    s.since = Instant::now();
                });
                tracing::error!(reason = %why, "redis link down: delivering to this server's sockets only");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "redis unreachable");
                let jitter = rand::random_range(0.5..1.0);
                let pause = tokio::time::sleep(backoff.mul_f64(jitter));
                tokio::pin!(pause);
                // Keep the subscription list current while waiting; stop when the server is gone.
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        command = commands.recv() => if command.is_none() { return },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_LAST);
            }
        }
    }
}

/// A fresh subscriber connection subscribed to every channel the adapter listens on, and a
/// fresh publisher, both within [`ANSWER_WITHIN`] per step.
async fn connect(
    shared: &Shared,
) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), LinkError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(ANSWER_WITHIN))
        .set_response_timeout(Some(ANSWER_WITHIN));
    let publisher = within(
        shared
            .client
            .get_multiplexed_async_connection_with_config(&config),
    )
    .await?;
    let pubsub = within(shared.client.get_async_pubsub()).await?;
    let (mut sink, stream) = pubsub.split();
    let channels: Vec<String> = {
        let handlers = shared.handlers.lock().expect("poisoned");
        handlers.keys().cloned().collect()
    };
    if !channels.is_empty() {
        within(sink.subscribe(channels)).await?;
    }
    *shared.publisher.lock().expect("poisoned") = Some(publisher);
    Ok((sink, stream))
}

/// `what`, given [`ANSWER_WITHIN`] to finish.
async fn within<T>(what: impl Future<Output = redis::RedisResult<T>>) -> Result<T, LinkError> {
    match tokio::time::timeout(ANSWER_WITHIN, what).await {
        Ok(result) => result.map_err(LinkError::from),
        Err(_) => Err(LinkError::Timeout(ANSWER_WITHIN)),
    }
}

/// Identifies an own publish when its copy comes back.
fn payload_key(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

fn relay(shared: &Shared, msg: &redis::Msg) {
    let chan = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    let handlers = shared.handlers.lock().expect("poisoned");
    let Some(h) = handlers.get(chan) else {
        return;
    };
    if h.tx.try_send((chan.to_string(), payload.to_vec())).is_err() {
        shared.overflow.increment(1);
        shared.overflowed.notify_one();
        tracing::warn!(
            chan,
            "adapter queue full: a message from another server was dropped"
        );
        return;
    }
    let number = h.relayed.fetch_add(1, Ordering::AcqRel) + 1;
    let mut echoes = shared.echoes.lock().expect("poisoned");
    if !echoes.is_empty()
        && let Some(waiting) = echoes.remove(&payload_key(payload))
    {
        let _ = waiting.send(number);
    }
}
