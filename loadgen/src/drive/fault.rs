//! Drives a fault scenario through a run (`--scenario`): waits for `--fault-at`, runs the
//! fault command, `--fault-for` later the heal command, then watches the tabs and writes until
//! the recovery the scenario measures is seen. The scenario's types and its tracker are in
//! `fault`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::drive::run::Run;
use crate::judge::fault::{CommandRun, Scenario, run_command};
use crate::record::latency::now_us;
use crate::record::stats::Stats;

/// The fault timeline of a run: wait for `--fault-at`, break, wait `--fault-for`, heal, then
/// watch for the recovery. Prints `[fault]` lines as it goes.
pub async fn run_fault(run: Arc<Run>) {
    let c = &run.setup.config;
    let flags = c.fault_flags();
    let scenario = c.scenario;
    let name = scenario.name();
    let started = run.actions_start().await;
    let since = |at: Instant| at.saturating_duration_since(started).as_secs_f64();
    let tracker = &run.rec.fault;
    tokio::time::sleep_until((started + flags.fault_at()).into()).await;
    let fault_at = Instant::now();
    let _ = tracker.fault_at.set(fault_at);
    tracker.phase.store(1, Ordering::Relaxed);
    let cmd = c.fault_cmd.clone().unwrap_or_default();
    eprintln!(
        "[fault] {name}: fault starts at {:.1}s: {cmd}",
        since(fault_at)
    );
    let result = run_command("fault", &cmd, since(fault_at)).await;
    report_command(&result);
    tracker.commands.lock().expect("poisoned").push(result);

    tokio::time::sleep_until((fault_at + c.fault_for).into()).await;
    // Bounded: with the database down the read can only wait, and the heal must not.
    let heal_seq = tokio::time::timeout(Duration::from_millis(500), run.read_last_seq())
        .await
        .ok()
        .flatten();
    let heal_at = Instant::now();
    tracker.heal_us.store(now_us(), Ordering::Relaxed);
    if let Some(seq) = heal_seq {
        tracker.heal_seq.store(seq, Ordering::Relaxed);
    }
    let _ = tracker.heal_at.set(heal_at);
    tracker.phase.store(2, Ordering::Relaxed);
    let cmd = c.heal_cmd.clone().unwrap_or_default();
    eprintln!(
        "[fault] {name}: healing at {:.1}s (tabs dropped so far {}): {cmd}",
        since(heal_at),
        Stats::get(&run.rec.stats.drops)
    );
    let result = run_command("heal", &cmd, since(heal_at)).await;
    report_command(&result);
    tracker.commands.lock().expect("poisoned").push(result);

    // Watch until the scenario's recovery shows (the task is aborted when the run ends).
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let down = run.rec.stats.tabs_down.load(Ordering::Relaxed);
        if scenario == Scenario::NodeKill && down > 0 {
            continue;
        }
        if let Some(at) = tracker.recovered_at(scenario) {
            tracker.phase.store(3, Ordering::Relaxed);
            let what = if scenario.is_redis() {
                "fan-out resumed"
            } else if scenario == Scenario::NodeKill {
                "every dropped tab rejoined and replayed"
            } else {
                "writes succeed again"
            };
            eprintln!(
                "[fault] {name}: {what} {:.1}s after the heal ({:.1}s after the fault); drops {}, resyncs {}, unavailable {}",
                at.saturating_duration_since(heal_at).as_secs_f64(),
                at.saturating_duration_since(fault_at).as_secs_f64(),
                Stats::get(&run.rec.stats.drops),
                Stats::get(&run.rec.stats.resyncs),
                run.rec.stats.unavailable(),
            );
            return;
        }
    }
}

fn report_command(result: &CommandRun) {
    if result.ok {
        eprintln!(
            "[fault] {} command done in {:.1}s",
            result.step, result.took_s
        );
    } else {
        eprintln!(
            "[fault] {} command FAILED (exit {:?}) after {:.1}s: {}",
            result.step, result.exit_code, result.took_s, result.output
        );
    }
}
