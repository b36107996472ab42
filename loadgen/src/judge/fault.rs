//! Fault scenarios (`--scenario`): at `--fault-at` the loadgen runs `--fault-cmd` (stop Redis,
//! kill a node, restart the database...), `--fault-for` later `--heal-cmd`, and measures what
//! the scenario is about: when cross-node fan-out resumed, when every dropped tab was back, when
//! writes succeeded again. The commands are the operator's (`sh -c`); the loadgen only times
//! them and watches the tabs.

use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// What is broken on purpose, and so what the report measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// No fault.
    #[default]
    None,
    /// Redis restarts: servers lose their fan-out link; expect resyncs, then fan-out resumes.
    RedisRestart,
    /// Redis pauses (stops answering): as a restart, but the link hangs instead of failing.
    RedisPause,
    /// A server node dies: its tabs drop, reconnect to a live node, rejoin and replay.
    NodeKill,
    /// The database restarts: REST answers 503 for a while; every acknowledged write must be
    /// in the log at the end.
    DbRestart,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::RedisRestart => "redis-restart",
            Scenario::RedisPause => "redis-pause",
            Scenario::NodeKill => "node-kill",
            Scenario::DbRestart => "db-restart",
        }
    }

    pub fn is_redis(self) -> bool {
        matches!(self, Scenario::RedisRestart | Scenario::RedisPause)
    }

    /// What `recovery_s` of the report measures for this scenario.
    pub fn recovery_measure(self) -> &'static str {
        match self {
            Scenario::None => "",
            Scenario::RedisRestart | Scenario::RedisPause => {
                "heal -> first cross-node live delivery of an event committed after the heal"
            }
            Scenario::NodeKill => "fault -> every dropped tab rejoined and replayed",
            Scenario::DbRestart => "fault -> first successful write after the heal",
        }
    }
}

/// The fault flags as given, checked together.
pub struct FaultFlags<'a> {
    pub scenario: Scenario,
    pub fault_at: Option<Duration>,
    pub fault_for: Duration,
    pub fault_cmd: Option<&'a str>,
    pub heal_cmd: Option<&'a str>,
    pub duration: Duration,
}

impl FaultFlags<'_> {
    /// When the fault starts, counted from the start of actions.
    pub fn fault_at(&self) -> Duration {
        self.fault_at.unwrap_or(self.duration / 3)
    }

    pub fn validate(&self) -> Result<(), String> {
        let name = self.scenario.name();
        if self.scenario == Scenario::None {
            for (flag, set) in [
                ("--fault-cmd", self.fault_cmd.is_some()),
                ("--heal-cmd", self.heal_cmd.is_some()),
                ("--fault-at", self.fault_at.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "{flag} needs a fault --scenario (redis-restart, redis-pause, node-kill or db-restart)"
                    ));
                }
            }
            return Ok(());
        }
        for (flag, cmd, what) in [
            ("--fault-cmd", self.fault_cmd, "starts the fault"),
            ("--heal-cmd", self.heal_cmd, "heals it"),
        ] {
            if cmd.is_none_or(|c| c.trim().is_empty()) {
                return Err(format!(
                    "--scenario {name} needs {flag}: the shell command that {what}"
                ));
            }
        }
        if self.fault_for.is_zero() {
            return Err("--fault-for must be above 0s".into());
        }
        if self.fault_at() + self.fault_for >= self.duration {
            return Err(format!(
                "--fault-at ({:?}) + --fault-for ({:?}) must end inside --duration ({:?}), so the run sees the recovery",
                self.fault_at(),
                self.fault_for,
                self.duration
            ));
        }
        Ok(())
    }
}

/// One fault or heal command as it ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandRun {
    /// "fault" or "heal".
    pub step: String,
    pub command: String,
    /// Seconds after the start of actions it was started.
    pub at_s: f64,
    pub took_s: f64,
    /// Exit code; none when it could not start, timed out or died of a signal.
    pub exit_code: Option<i32>,
    pub ok: bool,
    /// The end of its stdout and stderr, or why it could not run.
    pub output: String,
}

/// How long a fault or heal command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a command's output the report keeps.
const OUTPUT_TAIL: usize = 2_000;

/// Runs `command` with `sh -c`, capturing its output.
pub async fn run_command(step: &str, command: &str, at_s: f64) -> CommandRun {
    let started = Instant::now();
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let (exit_code, output) = match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Err(_) => (None, format!("timed out after {COMMAND_TIMEOUT:?}")),
        Ok(Err(e)) => (None, format!("could not run `sh -c`: {e}")),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let code = out.status.code();
            if code.is_none() {
                text.push_str("\n(killed by a signal)");
            }
            (code, tail(text.trim(), OUTPUT_TAIL))
        }
    };
    CommandRun {
        step: step.to_string(),
        command: command.to_string(),
        at_s,
        took_s: started.elapsed().as_secs_f64(),
        ok: exit_code == Some(0),
        exit_code,
        output,
    }
}

fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Where the fault is in its timeline (for `/metrics` and the recovery watchers).
pub const PHASES: [&str; 4] = ["before", "fault", "healed", "recovered"];

/// The fault's timeline as it happens, written by the runner, tabs and actors.
#[derive(Default)]
pub struct FaultTracker {
    /// Index into [`PHASES`].
    pub phase: AtomicU8,
    pub fault_at: OnceLock<Instant>,
    pub heal_at: OnceLock<Instant>,
    /// Events with a higher `seq` were committed after the heal (`i64::MAX` until then).
    pub heal_seq: AtomicI64,
    /// Wall clock µs of the heal, used when the log could not be read at that moment.
    pub heal_us: AtomicI64,
    /// First cross-node live delivery of an event committed after the heal.
    pub fanout_resumed: OnceLock<Instant>,
    /// First write answered 2xx after the heal.
    pub write_after_heal: OnceLock<Instant>,
    /// When no dropped tab was left waiting to recover, last.
    pub all_recovered: Mutex<Option<Instant>>,
    pub commands: Mutex<Vec<CommandRun>>,
}

impl FaultTracker {
    pub fn new() -> Self {
        Self {
            heal_seq: AtomicI64::new(i64::MAX),
            ..Self::default()
        }
    }

    fn healed(&self) -> bool {
        self.heal_at.get().is_some()
    }

    /// A live receipt of `seq` (emitted at `emitted_us`) crossed nodes: fan-out resumed if it
    /// was committed after the heal. Cheap when there is nothing to learn.
    pub fn cross_node_delivery(&self, seq: i64, emitted_us: i64) {
        if self.fanout_resumed.get().is_some() || !self.healed() {
            return;
        }
        let heal_seq = self.heal_seq.load(Ordering::Relaxed);
        let after_heal = if heal_seq == i64::MAX {
            emitted_us >= self.heal_us.load(Ordering::Relaxed)
        } else {
            seq > heal_seq
        };
        if after_heal {
            let _ = self.fanout_resumed.set(Instant::now());
        }
    }

    /// A write was acknowledged with 2xx.
    pub fn write_ok(&self) {
        if self.healed() && self.write_after_heal.get().is_none() {
            let _ = self.write_after_heal.set(Instant::now());
        }
    }

    /// Whether the heal command has finished (or there is nothing to wait for).
    pub fn heal_done(&self) -> bool {
        self.commands.lock().expect("poisoned").len() >= 2
    }

    /// When the scenario's recovery was observed.
    pub fn recovered_at(&self, scenario: Scenario) -> Option<Instant> {
        match scenario {
            Scenario::None => None,
            Scenario::RedisRestart | Scenario::RedisPause => self.fanout_resumed.get().copied(),
            Scenario::NodeKill => *self.all_recovered.lock().expect("poisoned"),
            Scenario::DbRestart => self.write_after_heal.get().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(
        scenario: Scenario,
        fault: Option<&'static str>,
        heal: Option<&'static str>,
    ) -> FaultFlags<'static> {
        FaultFlags {
            scenario,
            fault_at: None,
            fault_for: Duration::from_secs(5),
            fault_cmd: fault,
            heal_cmd: heal,
            duration: Duration::from_secs(30),
        }
    }

    #[test]
    fn scenarios_need_both_commands_and_a_fault_inside_the_run() {
        assert!(flags(Scenario::None, None, None).validate().is_ok());
        let e = flags(Scenario::NodeKill, None, Some("x"))
            .validate()
            .unwrap_err();
        assert!(e.contains("--fault-cmd") && e.contains("node-kill"), "{e}");
        let e = flags(Scenario::DbRestart, Some("x"), Some(" "))
            .validate()
            .unwrap_err();
        assert!(e.contains("--heal-cmd"), "{e}");
        assert!(
            flags(Scenario::RedisPause, Some("a"), Some("b"))
                .validate()
                .is_ok()
        );
        let e = flags(Scenario::None, Some("a"), None)
            .validate()
            .unwrap_err();
        assert!(e.contains("--scenario"), "{e}");
        let mut late = flags(Scenario::RedisRestart, Some("a"), Some("b"));
        late.fault_at = Some(Duration::from_secs(25));
        assert!(late.validate().unwrap_err().contains("--fault-for"));
        late.fault_at = None;
        assert_eq!(
            late.fault_at(),
            Duration::from_secs(10),
            "a third of the run"
        );
        late.fault_for = Duration::ZERO;
        assert!(late.validate().unwrap_err().contains("--fault-for"));
    }

    #[tokio::test]
    async fn commands_report_their_exit_and_output() {
        let ok = run_command("fault", "echo stopped", 1.0).await;
        assert!(
            ok.ok && ok.exit_code == Some(0) && ok.output == "stopped",
            "{ok:?}"
        );
        let bad = run_command("heal", "echo nope >&2; exit 3", 2.0).await;
        assert!(!bad.ok && bad.exit_code == Some(3) && bad.output.contains("nope"));
        assert_eq!(tail("abcdef", 3), "...def");
    }

    #[test]
    fn fanout_resumes_only_with_an_event_committed_after_the_heal() {
        let t = FaultTracker::new();
        t.cross_node_delivery(50, 0);
        assert!(t.fanout_resumed.get().is_none(), "not healed yet");
        let _ = t.heal_at.set(Instant::now());
        t.heal_seq.store(100, Ordering::Relaxed);
        t.cross_node_delivery(100, i64::MAX);
        assert!(
            t.fanout_resumed.get().is_none(),
            "committed before the heal"
        );
        t.cross_node_delivery(101, 0);
        assert!(t.recovered_at(Scenario::RedisRestart).is_some());
        assert!(t.recovered_at(Scenario::DbRestart).is_none());
        t.write_ok();
        assert!(t.recovered_at(Scenario::DbRestart).is_some());
    }
}
