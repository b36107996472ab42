//! Is the generator itself the bottleneck? Latency is measured on the generator's clock, at
//! the moment its code sees a receipt: when the generator runs out of CPU, its runtime wakes
//! tasks late or its sockets pile up unread bytes, and every latency figure grows with the
//! generator's backlog, not the server's. A watcher samples three signals once a second:
//! - the process's CPU time as a share of the cores it may use (`/proc/self/stat`);
//! - scheduling lag: how late a 10 ms timer on the run's runtime fires (the worst per second);
//! - receive backlog: bytes the kernel holds for the generator's own TCP sockets, unread
//!   (`rx_queue` of `/proc/net/tcp{,6}` rows whose inode is one of this process's sockets),
//!   read every fifth second since it is the costly one.
//!
//! A second in which any signal crosses its limit is a saturated second. The report says how
//! many there were, the latency gates are marked unreliable, and `--gate-saturated-secs` can
//! fail the run.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a sample is taken.
pub const PERIOD: Duration = Duration::from_secs(1);
/// The scheduling-lag probe's timer.
const PROBE: Duration = Duration::from_millis(10);
/// The receive backlog is read every this many samples (and carried between): walking the
/// kernel's TCP table and this process's file descriptors cost about 5% of the generator's CPU
/// at 3,000 tabs when done every second.
const BACKLOG_EVERY: usize = 5;
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 a second on every Linux ABI.
const TICKS_PER_SEC: f64 = 100.0;

/// When a second counts as saturated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Share of the usable cores (0-1).
    pub cpu_share: f64,
    /// Worst timer lateness in the second, ms.
    pub lag_ms: f64,
    /// Unread bytes in the generator's sockets.
    pub backlog_bytes: u64,
}

impl Limits {
    /// `--saturation-cpu`, `--saturation-lag-ms` and `--saturation-backlog-kib`.
    pub fn of(c: &crate::config::Config) -> Self {
        Self {
            cpu_share: c.saturation_cpu,
            lag_ms: c.saturation_lag_ms,
            backlog_bytes: c.saturation_backlog_kib.saturating_mul(1024),
        }
    }
}

/// One second of the generator's life.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub cpu_share: f64,
    /// CPU seconds the process used in the second.
    pub cpu_s: f64,
    pub lag_ms: f64,
    pub backlog_bytes: u64,
}

/// Which limits a sample crossed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossed {
    pub cpu: bool,
    pub lag: bool,
    pub backlog: bool,
}

impl Crossed {
    pub fn any(self) -> bool {
        self.cpu || self.lag || self.backlog
    }
}

impl Limits {
    pub fn check(&self, s: &Sample) -> Crossed {
        Crossed {
            cpu: s.cpu_share >= self.cpu_share,
            lag: s.lag_ms >= self.lag_ms,
            backlog: s.backlog_bytes >= self.backlog_bytes,
        }
    }
}

/// What the report says about the generator.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GeneratorReport {
    /// Seconds sampled, from the start of actions to the end of the settle (latency is only
    /// measured then; the progress line shows saturation while tabs connect too).
    pub sampled_s: u64,
    /// Seconds in which at least one signal crossed its limit.
    pub saturated_s: u64,
    /// Saturated seconds by signal (a second can count under several).
    pub saturated_by_cpu_s: u64,
    pub saturated_by_lag_s: u64,
    pub saturated_by_backlog_s: u64,
    /// Cores the generator may use (its CPU share is of these).
    pub cores: u64,
    /// CPU seconds the process used from its start to the verdict (with the embedded server,
    /// the server's too).
    pub cpu_s: f64,
    /// CPU seconds over the sampled seconds only (the start of actions to the end of the
    /// settle): the steady state, without the connects before it or the log read after.
    #[serde(default)]
    pub window_cpu_s: f64,
    pub cpu_share_mean: f64,
    pub cpu_share_max: f64,
    pub lag_ms_max: f64,
    pub backlog_bytes_max: u64,
    /// The limits the samples were judged by.
    pub limit_cpu_share: f64,
    pub limit_lag_ms: f64,
    pub limit_backlog_bytes: u64,
}

impl GeneratorReport {
    pub fn saturated(&self) -> bool {
        self.saturated_s > 0
    }

    /// The report line's reason list, e.g. "cpu >= 90%: 10 s, lag >= 20 ms: 12 s".
    pub fn reasons(&self) -> String {
        let mut parts = Vec::new();
        if self.saturated_by_cpu_s > 0 {
            parts.push(format!(
                "cpu >= {:.0}%: {} s",
                self.limit_cpu_share * 100.0,
                self.saturated_by_cpu_s
            ));
        }
        if self.saturated_by_lag_s > 0 {
            parts.push(format!(
                "scheduling lag >= {:.0} ms: {} s",
                self.limit_lag_ms, self.saturated_by_lag_s
            ));
        }
        if self.saturated_by_backlog_s > 0 {
            parts.push(format!(
                "receive backlog >= {} KiB: {} s",
                self.limit_backlog_bytes / 1024,
                self.saturated_by_backlog_s
            ));
        }
        parts.join(", ")
    }
}

/// Judges `samples` against `limits`.
pub fn summarize(samples: &[Sample], limits: Limits, cores: usize) -> GeneratorReport {
    let mut r = GeneratorReport {
        sampled_s: samples.len() as u64,
        cores: cores as u64,
        limit_cpu_share: limits.cpu_share,
        limit_lag_ms: limits.lag_ms,
        limit_backlog_bytes: limits.backlog_bytes,
        ..GeneratorReport::default()
    };
    let mut cpu_sum = 0.0;
    for s in samples {
        let crossed = limits.check(s);
        r.saturated_s += u64::from(crossed.any());
        r.saturated_by_cpu_s += u64::from(crossed.cpu);
        r.saturated_by_lag_s += u64::from(crossed.lag);
        r.saturated_by_backlog_s += u64::from(crossed.backlog);
        cpu_sum += s.cpu_share;
        r.window_cpu_s += s.cpu_s;
        r.cpu_share_max = r.cpu_share_max.max(s.cpu_share);
        r.lag_ms_max = r.lag_ms_max.max(s.lag_ms);
        r.backlog_bytes_max = r.backlog_bytes_max.max(s.backlog_bytes);
    }
    if !samples.is_empty() {
        r.cpu_share_mean = cpu_sum / samples.len() as f64;
    }
    r
}

/// The samples of a run, taken by [`watch`], each with when it was taken.
#[derive(Default)]
pub struct Watch {
    samples: Mutex<Vec<(Instant, Sample)>>,
}

impl Watch {
    /// The samples taken at or after `from` (all of them when `None`). Latency is only measured
    /// once actions start, so a generator busy connecting tabs before then falsifies nothing.
    pub fn samples_since(&self, from: Option<Instant>) -> Vec<Sample> {
        let samples = self.samples.lock().expect("poisoned");
        samples
            .iter()
            .filter(|(at, _)| from.is_none_or(|from| *at >= from))
            .map(|(_, s)| *s)
            .collect()
    }

    /// The newest sample, for the progress line and `/metrics`.
    pub fn last(&self) -> Option<Sample> {
        self.samples
            .lock()
            .expect("poisoned")
            .last()
            .map(|(_, s)| *s)
    }
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Samples into `watch` every [`PERIOD`] until aborted. Runs on the run's runtime, so the lag
/// probe measures the runtime the tabs' callbacks run on.
pub async fn watch(watch: &Watch) {
    let cores = cores() as f64;
    let mut cpu = cpu_seconds();
    let mut at = Instant::now();
    let mut backlog = 0;
    for n in 0usize.. {
        // The lag probe fills the period: the worst lateness of its timer.
        let mut lag = Duration::ZERO;
        while at.elapsed() < PERIOD {
            let asked = Instant::now();
            tokio::time::sleep(PROBE).await;
            lag = lag.max(asked.elapsed().saturating_sub(PROBE));
        }
        let now = Instant::now();
        let cpu_now = cpu_seconds();
        let wall = now.duration_since(at).as_secs_f64().max(1e-3);
        let used = match (cpu, cpu_now) {
            (Some(before), Some(after)) => (after - before).max(0.0),
            _ => 0.0,
        };
        let sample = Sample {
            cpu_share: used / wall / cores,
            cpu_s: used,
            lag_ms: lag.as_secs_f64() * 1e3,
            backlog_bytes: if n.is_multiple_of(BACKLOG_EVERY) {
                backlog = receive_backlog().unwrap_or(0);
                backlog
            } else {
                backlog
            },
        };
        watch.samples.lock().expect("poisoned").push((now, sample));
        (cpu, at) = (cpu_now, now);
    }
}

/// User plus system CPU seconds of this process, all threads.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / TICKS_PER_SEC)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Unread bytes in this process's TCP sockets.
fn receive_backlog() -> Option<u64> {
    let ours = socket_inodes()?;
    let mut total = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            total += backlog_of(&text, &ours);
        }
    }
    Some(total)
}

/// Inodes of the sockets among this process's open files.
fn socket_inodes() -> Option<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path())
            && let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    Some(inodes)
}

/// Sum of `rx_queue` over the rows of a `/proc/net/tcp` table whose inode is in `ours`.
/// A row: `sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode ...`.
fn backlog_of(table: &str, ours: &HashSet<u64>) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let inode: u64 = fields.get(9)?.parse().ok()?;
            if !ours.contains(&inode) {
                return None;
            }
            let (_, rx) = fields.get(4)?.split_once(':')?;
            u64::from_str_radix(rx, 16).ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        cpu_share: 0.9,
        lag_ms: 20.0,
        backlog_bytes: 1 << 20,
    };

    fn sample(cpu_share: f64, lag_ms: f64, backlog_bytes: u64) -> Sample {
        Sample {
            cpu_share,
            // Two cores.
            cpu_s: cpu_share * 2.0,
            lag_ms,
            backlog_bytes,
        }
    }

    #[test]
    fn a_second_is_saturated_when_any_signal_crosses_its_limit() {
        let samples = [
            sample(0.5, 2.0, 0),
            sample(0.95, 2.0, 0),
            sample(0.95, 40.0, 0),
            sample(0.3, 1.0, 2 << 20),
            sample(0.89, 19.9, (1 << 20) - 1),
        ];
        let r = summarize(&samples, LIMITS, 2);
        assert_eq!(r.sampled_s, 5);
        assert_eq!(r.saturated_s, 3);
        assert_eq!(
            (
                r.saturated_by_cpu_s,
                r.saturated_by_lag_s,
                r.saturated_by_backlog_s
            ),
            (2, 1, 1)
        );
        assert_eq!((r.cpu_share_max, r.lag_ms_max), (0.95, 40.0));
        assert_eq!(r.backlog_bytes_max, 2 << 20);
        assert!((r.cpu_share_mean - 0.718).abs() < 1e-9);
        assert!((r.window_cpu_s - 0.718 * 5.0 * 2.0).abs() < 1e-9);
        assert_eq!(
            r.reasons(),
            "cpu >= 90%: 2 s, scheduling lag >= 20 ms: 1 s, receive backlog >= 1024 KiB: 1 s"
        );
        let calm = summarize(&samples[..1], LIMITS, 2);
        assert!(!calm.saturated() && calm.reasons().is_empty());
    }

    #[test]
    fn only_samples_from_the_start_of_actions_count() {
        let watch = Watch::default();
        let connecting = Instant::now();
        let acting = connecting + Duration::from_secs(1);
        let busy = sample(1.0, 300.0, 0);
        let calm = sample(0.2, 1.0, 0);
        watch.samples.lock().unwrap().push((connecting, busy));
        watch.samples.lock().unwrap().push((acting, calm));
        assert_eq!(watch.samples_since(None), [busy, calm]);
        assert_eq!(watch.samples_since(Some(acting)), [calm]);
        assert_eq!(watch.last(), Some(calm));
        assert!(!summarize(&watch.samples_since(Some(acting)), LIMITS, 2).saturated());
    }

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis must not shift the fields.
        let stat = "4242 (load gen) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 3";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&own).is_some());
    }

    #[test]
    fn backlog_counts_only_our_sockets() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 0100007F:C350 01 00000000:00000400 00:00000000 00000000     0        0 111 1 0000000000000000 20 4 30 10 -1
   1: 0100007F:1F91 0100007F:C351 01 00000000:00000010 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F92 0100007F:C352 01 00000000:00001000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 -1";
        let ours = HashSet::from([111, 222]);
        assert_eq!(backlog_of(table, &ours), 0x400 + 0x10);
        assert_eq!(backlog_of(table, &HashSet::new()), 0);
    }

    #[tokio::test]
    async fn this_process_is_sampled() {
        assert!(cpu_seconds().is_some());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!socket_inodes().unwrap().is_empty());
        assert!(receive_backlog().is_some());
    }
}
