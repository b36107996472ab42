//! The one engine every run goes through, the booking workload's and an app file's alike:
//! watch the generator, serve `--metrics-addr`, print progress, open the tabs, cut them
//! (`--churn`, `--storm-at`), act for the window, settle, judge and report, hold the report to
//! its baseline, decide the verdict, and close. A [`Workload`] brings what differs: how its
//! tabs are opened and cut, how it acts (goose's REST actors, or an app file's publishers),
//! and its judge (the server's event log, or the generator's own records).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::error::RunError;
use crate::record::saturation;
use crate::report::Report;
use crate::report::compare::Baseline;

/// What a run produced: its report, and whether goose's own thresholds failed.
pub struct Outcome {
    pub report: Report,
    pub goose_thresholds_failed: bool,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.report.passed() && !self.goose_thresholds_failed
    }
}

/// What the action window ended with.
pub struct Acted {
    /// When the last action was due to be over (before waiting for answers still out).
    pub end: Instant,
    /// goose's own `--threshold` rules failed (a booking run).
    pub goose_thresholds_failed: bool,
}

/// One kind of run on the engine.
pub trait Workload: Send + Sync + 'static {
    fn config(&self) -> &Config;
    /// The seed of the run (churn picks its tabs from it).
    fn seed(&self) -> u64;
    /// The generator's own samples (CPU, scheduling lag), watched from the start.
    fn generator(&self) -> &saturation::Watch;
    /// This generator's tabs, by index, for churn and storms to pick from.
    fn own_tabs(&self) -> Vec<usize>;
    /// Serves `--metrics-addr` until the engine stops it.
    fn serve_metrics(
        self: &Arc<Self>,
        addr: std::net::SocketAddr,
    ) -> impl Future<Output = Result<tokio::task::JoinHandle<()>, String>> + Send;
    /// Opens the tabs (at `--ramp-up`, or as `--stages` say) and returns the instant the
    /// actions start at (it may lie ahead: `--actions-at`).
    fn open(self: &Arc<Self>) -> impl Future<Output = Result<Instant, RunError>> + Send;
    /// Acts from `start` until the window is over.
    fn act(
        self: &Arc<Self>,
        start: Instant,
    ) -> impl Future<Output = Result<Acted, RunError>> + Send;
    /// After the window (churn and storms have stopped): lets what is still out finish (the
    /// answers to the last actions, a fault's heal) and stops the tabs' turns.
    fn wind_down(self: &Arc<Self>) -> impl Future<Output = ()> + Send;
    /// Cuts tab `tab`'s connection as a lost network would; it reconnects by itself.
    fn cut(self: &Arc<Self>, tab: usize) -> impl Future<Output = ()> + Send;
    /// One progress line (after the engine's elapsed seconds).
    fn progress(&self) -> String;
    /// After the settle: judges the run and writes its report, gates included (the engine
    /// holds it to the baseline and decides the verdict).
    fn report(
        self: &Arc<Self>,
        acted: &Acted,
    ) -> impl Future<Output = Result<Report, RunError>> + Send;
    /// Hangs up what is left (tabs, the embedded server) once the report is written.
    fn close(self: &Arc<Self>) -> impl Future<Output = ()> + Send;
}

/// `--baseline`, read before anything runs: a missing or unreadable baseline, or one of another
/// workload, stops the run at setup.
pub fn baseline(
    config: &Config,
    workload: &crate::report::Workload,
    stage: Option<usize>,
) -> Result<Option<Baseline>, RunError> {
    let Some(path) = &config.baseline else {
        return Ok(None);
    };
    let rules = config
        .max_regression
        .as_deref()
        .unwrap_or(crate::config::DEFAULT_RULES);
    Baseline::load(
        path,
        rules,
        workload,
        config.allow_different_workload,
        stage,
    )
    .map(Some)
    .map_err(RunError::Setup)
}

/// Tasks the engine started, stopped when it is done with them (or returns early).
#[derive(Default)]
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.0.push(task);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs `w` from start to verdict.
pub async fn run<W: Workload>(w: Arc<W>, baseline: Option<Baseline>) -> Result<Outcome, RunError> {
    let config = w.config();
    let mut watching = Tasks::default();
    {
        let w = w.clone();
        watching.push(tokio::spawn(async move {
            saturation::watch(w.generator()).await;
        }));
    }
    // `--metrics-addr`, served from now until the report has lingered.
    let mut serving = Tasks::default();
    if let Some(addr) = config.metrics_addr {
        let server = w
            .serve_metrics(addr)
            .await
            .map_err(|e| RunError::Setup(format!("--metrics-addr {addr}: {e}")))?;
        serving.push(server);
    }
    if !config.progress_every.is_zero() {
        let (w, every) = (w.clone(), config.progress_every);
        watching.push(tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(every).await;
                eprintln!(
                    "[{:>4.0}s] {}",
                    started.elapsed().as_secs_f64(),
                    w.progress()
                );
            }
        }));
    }
    let judged = async {
        let start = w.open().await?;
        let cutting = cuts(&w, start);
        let acted = w.act(start).await;
        drop(cutting);
        let acted = acted?;
        w.wind_down().await;
        tokio::time::sleep(config.settle).await;
        drop(watching);
        let mut report = w.report(&acted).await?;
        match &baseline {
            Some(b) => b.judge(&mut report),
            None => report.decide(),
        }
        Ok::<_, RunError>((report, acted))
    }
    .await;
    if judged.is_ok() && !serving.0.is_empty() {
        tokio::time::sleep(config.metrics_linger).await;
    }
    drop(serving);
    // Hung up whatever happened: a run that failed part way leaves no tab or server behind.
    w.close().await;
    let (report, acted) = judged?;
    Ok(Outcome {
        report,
        goose_thresholds_failed: acted.goose_thresholds_failed,
    })
}

/// `--churn N` (cut N random tabs of this generator a second) and `--storm-at T` (cut every
/// one at once, T after the actions start): each cut tab reconnects and rejoins by itself.
fn cuts<W: Workload>(w: &Arc<W>, start: Instant) -> Tasks {
    let config = w.config();
    let own = w.own_tabs();
    let mut tasks = Tasks::default();
    if own.is_empty() {
        return tasks;
    }
    if let Some(rate) = config.churn {
        let (w, own) = (w.clone(), own.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(w.seed() ^ 0xc4);
        tasks.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(1.0 / rate);
            tokio::time::sleep_until(start.into()).await;
            loop {
                tokio::time::sleep(every).await;
                let tab = own[rng.random_range(0..own.len())];
                w.cut(tab).await;
            }
        }));
    }
    if let Some(at) = config.storm_at {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((start + at).into()).await;
            tracing::warn!("storm: every tab drops now");
            eprintln!("[storm] every tab drops and reconnects");
            for tab in own {
                w.cut(tab).await;
            }
        }));
    }
    tasks
}
