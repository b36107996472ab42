//! The one life every tab of every workload leads, a booking tab and an app file's alike, so
//! both open, close and come back the same way. A tab opens when the ramp reaches it (with
//! `--stages`, when its stage comes), then takes turns until its life ends: with `--stages`
//! it closes when its stage says; when churn or a storm cut it, or the other side lost its
//! connection, it reconnects with socket.io-client's backoff until it is back or the run
//! ends. A turn's pause ends early when the tab is woken.
//!
//! What differs is the tab's [`TabKind`]: how it connects and joins, what it takes before a
//! staged close and how it leaves, and how one reconnect attempt rejoins and recovers what it
//! missed (a booking tab replays the server's log; an app tab asks the app's replay, if any).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// socket.io-client's defaults: `reconnectionDelay` 1 s, doubling, `reconnectionDelayMax` 5 s,
/// `randomizationFactor` 0.5.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_FACTOR: f64 = 2.0;
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const BACKOFF_JITTER: f64 = 0.5;

/// The pause before reconnect attempt `attempt` (0 first), `unit` a random number in [0, 1):
/// the base delay doubles per attempt, is moved by up to ±50%, and never exceeds the maximum.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let base = BACKOFF_START.as_secs_f64() * BACKOFF_FACTOR.powi(attempt.min(16) as i32);
    let jittered = base * (1.0 + BACKOFF_JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0));
    Duration::from_secs_f64(jittered.min(BACKOFF_MAX.as_secs_f64()))
}

/// The pause before reconnect attempt `attempt` (0 first): after a connection the other side
/// dropped, and after a failed attempt, the backoff; the first attempt after the generator cut
/// it itself (churn, a storm), a short jitter, so a storm still reconnects at once.
pub fn pause(attempt: u32, unexpected: bool) -> Duration {
    if unexpected || attempt > 0 {
        backoff(attempt, rand::random::<f64>())
    } else {
        Duration::from_millis(rand::random::<u64>() % 250)
    }
}

/// What the lifecycle keeps of each tab, whatever its kind: whether it must reconnect, since
/// when the other side lost it, and what wakes its turn.
#[derive(Default)]
pub struct Lifeline {
    reconnect: AtomicBool,
    dropped_at: Mutex<Option<Instant>>,
    wake: Notify,
}

impl Lifeline {
    /// The generator cut the connection (churn, a storm): reconnect on the next turn, now.
    pub fn cut(&self) {
        self.reconnect.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The other side closed or lost the connection: reconnect, with the backoff.
    pub fn lost(&self) {
        self.dropped_at
            .lock()
            .expect("poisoned")
            .get_or_insert_with(Instant::now);
        self.reconnect.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Ends the tab's pause early (its kind has work for the turn, or the run is stopping).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A reconnect asked for: `Some(dropped)`, with when the other side lost the connection
    /// (`None`: the generator cut it).
    fn take_down(&self) -> Option<Option<Instant>> {
        if !self.reconnect.swap(false, Ordering::Relaxed) {
            return None;
        }
        Some(self.dropped_at.lock().expect("poisoned").take())
    }

    /// Waits until `at` (`None`: until woken); false when woken earlier.
    async fn pause_until(&self, at: Option<Instant>) -> bool {
        match at {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at.into()) => true,
                () = self.wake.notified() => false,
            },
            None => {
                self.wake.notified().await;
                false
            }
        }
    }
}

/// How one reconnect ended.
pub struct Back {
    /// When the connection went (the drop the other side made, or the cut).
    pub started: Instant,
    /// The other side dropped it (not a cut of the generator's).
    pub unexpected: bool,
    /// Back, or why it gave up.
    pub result: Result<(), String>,
}

/// What a kind of tab does at each point of the life [`spawn`] runs for it. Every method
/// takes the tab's index; the kind keeps each tab's state, a [`Lifeline`] among it.
pub trait TabKind: Send + Sync + 'static {
    /// What going down hands each reconnect attempt (a booking tab: where its replay starts).
    type Resume: Send + Sync;
    /// What a staged tab takes [`TabKind::close_lead`] before it closes (a booking tab: the
    /// last committed `seq`, its cutoff).
    type Closing: Send;

    fn lifeline(&self, index: usize) -> &Lifeline;
    /// How long a turn lasts with nothing asked of the tab (`None`, the default: until it is
    /// woken).
    fn turn_every(&self) -> Option<Duration> {
        None
    }
    /// How long before a staged close [`TabKind::closing`] is taken (none by default).
    fn close_lead(&self) -> Duration {
        Duration::ZERO
    }
    /// When a reconnect still trying gives up (`None`, the default: when the lives stop; a
    /// reconnect under way when they stop goes on until then).
    fn give_up_at(&self) -> Option<Instant> {
        None
    }

    /// Connects the tab and joins its rooms, the first time; true when it joined them all.
    fn open(self: &Arc<Self>, index: usize) -> impl Future<Output = bool> + Send;
    fn closing(&self, index: usize) -> Self::Closing;
    /// `--stages` closes the tab: it leaves its rooms and hangs up (`joined`: its open
    /// joined them all).
    fn close(
        self: &Arc<Self>,
        index: usize,
        joined: bool,
        closing: Self::Closing,
    ) -> impl Future<Output = ()> + Send;
    /// A reconnect begins: what is left of the connection goes (`dropped`: when the other
    /// side lost it; `None` after a cut).
    fn down(
        self: &Arc<Self>,
        index: usize,
        dropped: Option<Instant>,
    ) -> impl Future<Output = Self::Resume> + Send;
    /// One attempt: connect, rejoin, recover what was missed.
    fn attempt(
        self: &Arc<Self>,
        index: usize,
        resume: &Self::Resume,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// After a failed attempt: lets its connection go (a booking tab moves to the next host).
    fn failed(self: &Arc<Self>, index: usize) -> impl Future<Output = ()> + Send;
    /// The reconnect is over.
    fn back(self: &Arc<Self>, index: usize, back: Back) -> impl Future<Output = ()> + Send;
    /// The turn's own work, after any close or reconnect.
    fn turn(self: &Arc<Self>, index: usize) -> impl Future<Output = ()> + Send;
}

/// When a tab opens, and (`--stages`) closes.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub open_at: Instant,
    pub close_at: Option<Instant>,
}

/// What every life shares: whether they must stop, and how many tabs tried their first open.
#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    opened: AtomicUsize,
    opens: Notify,
}

/// The lives of one generator's tabs.
pub struct Lives {
    shared: Arc<Shared>,
    /// (tab index, its life), until stopped.
    tasks: Mutex<Vec<(usize, tokio::task::JoinHandle<()>)>>,
}

/// Starts the life of each tab in `windows` (tab index, window). Each ends once the lives are
/// stopped ([`Lives::stop`]).
pub fn spawn<K: TabKind>(kind: &Arc<K>, windows: Vec<(usize, Window)>) -> Lives {
    let shared = Arc::new(Shared::default());
    let tasks = windows
        .into_iter()
        .map(|(index, window)| {
            let (kind, shared) = (kind.clone(), shared.clone());
            let life = tokio::spawn(async move { live(&kind, &shared, index, window).await });
            (index, life)
        })
        .collect();
    Lives {
        shared,
        tasks: Mutex::new(tasks),
    }
}

impl Lives {
    /// Waits until `n` tabs have tried their first open (each joined, or failed to).
    pub async fn first_opens(&self, n: usize) {
        loop {
            let opened = self.shared.opens.notified();
            if self.shared.opened.load(Ordering::SeqCst) >= n {
                return;
            }
            opened.await;
        }
    }

    /// Tells every life it is over and waits up to `grace` for each to finish the turn it is
    /// in (a reconnect gives up at the kind's give-up time, or at once without one); what is
    /// still running then is stopped.
    /// A second call finds nothing left to stop.
    pub async fn stop<K: TabKind>(&self, kind: &K, grace: Duration) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("poisoned"));
        for (index, _) in &tasks {
            kind.lifeline(*index).wake();
        }
        let deadline = Instant::now() + grace;
        for (_, life) in tasks {
            let abort = life.abort_handle();
            if tokio::time::timeout_at(deadline.into(), life)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opened; `true` when it joined all its rooms.
    Open(bool),
    Closed,
}

async fn live<K: TabKind>(kind: &Arc<K>, shared: &Shared, index: usize, window: Window) {
    let life = kind.lifeline(index);
    // Before it opens there is nothing to cut or reconnect: a storm then is ignored.
    while Instant::now() < window.open_at {
        if shared.stopping() {
            return;
        }
        life.pause_until(Some(window.open_at)).await;
        life.take_down();
    }
    if shared.stopping() {
        return;
    }
    life.take_down();
    // The kind's futures (a connect, a replay's requests) are boxed: inline, the largest of
    // them would size every tab's idle life at several KiB.
    let mut phase = Phase::Open(Box::pin(kind.open(index)).await);
    shared.opened.fetch_add(1, Ordering::SeqCst);
    shared.opens.notify_waiters();
    let lead_at = window
        .close_at
        .map(|close| close.checked_sub(kind.close_lead()).unwrap_or(close));
    let mut closing = None;
    while !shared.stopping() {
        let turn_end = kind.turn_every().map(|every| Instant::now() + every);
        if let (Phase::Open(joined), Some(close), Some(lead)) = (phase, window.close_at, lead_at) {
            let now = Instant::now();
            if closing.is_none() && now >= lead {
                closing = Some(kind.closing(index));
            }
            if now >= close
                && let Some(taken) = closing.take()
            {
                Box::pin(kind.close(index, joined, taken)).await;
                phase = Phase::Closed;
            }
        }
        // A closed tab has nothing to reconnect.
        if let Some(dropped) = life.take_down()
            && matches!(phase, Phase::Open(_))
        {
            Box::pin(reconnect(kind, shared, index, dropped)).await;
        }
        Box::pin(kind.turn(index)).await;
        let change = match phase {
            Phase::Open(_) if closing.is_none() => lead_at,
            Phase::Open(_) => window.close_at,
            Phase::Closed => None,
        };
        let until = match (turn_end, change) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // The stop's wake may have been taken by a reconnect's pause.
        if shared.stopping() {
            break;
        }
        life.pause_until(until.map(|u| u.max(Instant::now()))).await;
    }
}

/// Brings tab `index` back: lets what is left of its connection go, then tries, with the
/// backoff, until an attempt works or the run ends.
async fn reconnect<K: TabKind>(
    kind: &Arc<K>,
    shared: &Shared,
    index: usize,
    dropped: Option<Instant>,
) {
    let life = kind.lifeline(index);
    let unexpected = dropped.is_some();
    let started = dropped.unwrap_or_else(Instant::now);
    let resume = kind.down(index, dropped).await;
    // The run is over for a reconnect at the kind's give-up time, or without one when the
    // lives stop (a booking tab still tries after the window, to replay what it missed).
    let over = || match kind.give_up_at() {
        Some(at) => Instant::now() >= at,
        None => shared.stopping(),
    };
    let mut attempt = 0;
    let result = loop {
        // A wake for other work does not end the pause early.
        let until = Instant::now() + pause(attempt, unexpected);
        while Instant::now() < until && !over() {
            life.pause_until(Some(until)).await;
        }
        if over() {
            break Err("gave up: the run ended".to_string());
        }
        match kind.attempt(index, &resume).await {
            Ok(()) => break Ok(()),
            Err(e) => {
                tracing::debug!(tab = index, attempt, error = %e, "reconnect attempt failed");
                kind.failed(index).await;
                attempt += 1;
            }
        }
    };
    kind.back(
        index,
        Back {
            started,
            unexpected,
            result,
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
        let s = |d: Duration| d.as_secs_f64();
        assert_eq!(s(backoff(0, 0.5)), 1.0);
        assert_eq!(s(backoff(0, 0.0)), 0.5);
        assert!((s(backoff(0, 0.999_999)) - 1.5).abs() < 1e-3);
        assert_eq!(s(backoff(1, 0.5)), 2.0);
        assert_eq!(s(backoff(2, 0.0)), 2.0);
        assert_eq!(s(backoff(2, 0.9)), 5.0, "4 s + 40% is capped at 5 s");
        for attempt in 0..100 {
            for unit in [0.0, 0.25, 0.5, 0.75, 0.999, 7.0, -1.0] {
                let d = s(backoff(attempt, unit));
                let base = 2f64.powi(attempt.min(16) as i32);
                assert!(
                    d <= 5.0 && d >= (base * 0.5).min(5.0),
                    "{attempt} {unit}: {d}"
                );
            }
        }
    }

    /// A kind that writes down what the life asked of it, in order; its attempts fail until
    /// `fail_attempts` have.
    #[derive(Default)]
    struct Diary {
        lines: Vec<Lifeline>,
        said: Mutex<Vec<String>>,
        fail_attempts: AtomicU32,
    }

    impl Diary {
        fn new(tabs: usize, fail_attempts: u32) -> Arc<Self> {
            Arc::new(Self {
                lines: (0..tabs).map(|_| Lifeline::default()).collect(),
                said: Mutex::new(Vec::new()),
                fail_attempts: AtomicU32::new(fail_attempts),
            })
        }
        fn say(&self, what: String) {
            self.said.lock().unwrap().push(what);
        }
        fn said(&self) -> Vec<String> {
            self.said.lock().unwrap().clone()
        }
    }

    impl TabKind for Diary {
        type Resume = String;
        type Closing = u32;
        fn lifeline(&self, index: usize) -> &Lifeline {
            &self.lines[index]
        }
        fn close_lead(&self) -> Duration {
            Duration::from_millis(20)
        }
        async fn open(self: &Arc<Self>, index: usize) -> bool {
            self.say(format!("open {index}"));
            true
        }
        fn closing(&self, index: usize) -> u32 {
            self.say(format!("closing {index}"));
            7
        }
        async fn close(self: &Arc<Self>, index: usize, joined: bool, closing: u32) {
            self.say(format!("close {index} {joined} {closing}"));
        }
        async fn down(self: &Arc<Self>, index: usize, dropped: Option<Instant>) -> String {
            self.say(format!("down {index} lost={}", dropped.is_some()));
            format!("resume {index}")
        }
        async fn attempt(self: &Arc<Self>, index: usize, resume: &String) -> Result<(), String> {
            self.say(format!("attempt {index} {resume}"));
            let left = self.fail_attempts.load(Ordering::SeqCst);
            if left > 0 {
                self.fail_attempts.store(left - 1, Ordering::SeqCst);
                return Err("refused".into());
            }
            Ok(())
        }
        async fn failed(self: &Arc<Self>, index: usize) {
            self.say(format!("failed {index}"));
        }
        async fn back(self: &Arc<Self>, index: usize, back: Back) {
            let ok = back.result.is_ok();
            self.say(format!("back {index} ok={ok} lost={}", back.unexpected));
        }
        async fn turn(self: &Arc<Self>, _index: usize) {}
    }

    /// A kind each of whose futures holds 16 KiB across an await, as a connect or a replay's
    /// requests hold their state.
    struct Heavy(Lifeline);

    async fn heavy() -> usize {
        let state = [7u8; 16 * 1024];
        tokio::task::yield_now().await;
        state.iter().map(|b| usize::from(*b)).sum()
    }

    impl TabKind for Heavy {
        type Resume = ();
        type Closing = ();
        fn lifeline(&self, _index: usize) -> &Lifeline {
            &self.0
        }
        async fn open(self: &Arc<Self>, _index: usize) -> bool {
            heavy().await > 0
        }
        fn closing(&self, _index: usize) {}
        async fn close(self: &Arc<Self>, _index: usize, _joined: bool, _closing: ()) {
            heavy().await;
        }
        async fn down(self: &Arc<Self>, _index: usize, _dropped: Option<Instant>) {
            heavy().await;
        }
        async fn attempt(self: &Arc<Self>, _index: usize, _resume: &()) -> Result<(), String> {
            heavy().await;
            Ok(())
        }
        async fn failed(self: &Arc<Self>, _index: usize) {
            heavy().await;
        }
        async fn back(self: &Arc<Self>, _index: usize, _back: Back) {
            heavy().await;
        }
        async fn turn(self: &Arc<Self>, _index: usize) {
            heavy().await;
        }
    }

    /// Every tab's life is a task for the whole run, mostly pausing: the kind's futures go
    /// boxed, so what they hold for a moment is not the size of every idle life (a booking
    /// tab's was 9,464 bytes).
    #[test]
    fn a_life_is_small_whatever_its_kind_holds_for_a_moment() {
        let kind = Arc::new(Heavy(Lifeline::default()));
        let shared = Shared::default();
        let window = Window {
            open_at: Instant::now(),
            close_at: None,
        };
        let life = live(&kind, &shared, 0, window);
        let size = std::mem::size_of_val(&life);
        assert!(size < 2048, "a life of {size} bytes");
    }

    async fn until_said(diary: &Diary, line: &str) {
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !diary.said().iter().any(|l| l == line) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "never said {line:?}: {:?}", diary.said());
    }

    #[tokio::test]
    async fn a_staged_tab_opens_takes_its_closing_then_closes_and_a_cut_brings_it_back() {
        let diary = Diary::new(1, 0);
        let now = Instant::now();
        let window = Window {
            open_at: now + Duration::from_millis(30),
            close_at: Some(now + Duration::from_millis(600)),
        };
        let lives = spawn(&diary, vec![(0, window)]);
        // Cut before it opens: ignored.
        diary.lines[0].cut();
        lives.first_opens(1).await;
        assert_eq!(diary.said(), ["open 0"]);
        diary.lines[0].cut();
        until_said(&diary, "back 0 ok=true lost=false").await;
        until_said(&diary, "close 0 true 7").await;
        // Closed: a lost connection now is not reconnected.
        diary.lines[0].lost();
        tokio::time::sleep(Duration::from_millis(50)).await;
        lives.stop(diary.as_ref(), Duration::from_secs(1)).await;
        assert_eq!(
            diary.said(),
            [
                "open 0",
                "down 0 lost=false",
                "attempt 0 resume 0",
                "back 0 ok=true lost=false",
                "closing 0",
                "close 0 true 7",
            ]
        );
        assert!(Instant::now() >= window.close_at.unwrap());
    }

    #[tokio::test]
    async fn a_lost_tab_retries_with_the_backoff_and_stopping_gives_up() {
        let diary = Diary::new(2, u32::MAX);
        let now = Instant::now();
        let window = Window {
            open_at: now,
            close_at: None,
        };
        let lives = spawn(&diary, vec![(0, window), (1, window)]);
        lives.first_opens(2).await;
        diary.lines[1].lost();
        // The first attempt after a drop waits the backoff (0.5 s at least).
        let started = Instant::now();
        until_said(&diary, "attempt 1 resume 1").await;
        assert!(started.elapsed() >= Duration::from_millis(450));
        until_said(&diary, "failed 1").await;
        lives.stop(diary.as_ref(), Duration::from_secs(5)).await;
        let said = diary.said();
        assert_eq!(
            said.last().unwrap(),
            "back 1 ok=false lost=true",
            "{said:?}"
        );
        assert!(said.contains(&"down 1 lost=true".to_string()));
        assert!(
            !said.iter().any(|l| l.starts_with("down 0")),
            "tab 0 was left alone: {said:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "stopping ended the backoff's pause: {:?} {said:?}",
            started.elapsed()
        );
    }
}
