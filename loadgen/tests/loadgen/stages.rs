//! Runs shaped by `--stages`: tabs open and close on schedule, actions follow the stages'
//! rate, and each stage is reported (and can be gated) on its own.

use booking_loadgen::config::{CompareArgs, Format};
use booking_loadgen::report::compare::{Baseline, DEFAULT_RULES, compare_files};

use crate::{as_json, assert_matches_schema, failed_gates, gate, run};

/// 3 s ramping to 30 tabs at 20 actions/s, 4 s held while the rate ramps to 30/s, 3 s closing
/// every tab at 30/s: 60 + 100 + 90 actions offered.
const STAGES: &str = "3s:30,4s:30@30,3s:0";
const OFFERED: u64 = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_run_opens_and_closes_its_tabs_on_schedule_and_loses_nothing() {
    let outcome = run(&["--stages", STAGES, "--seed", "21"]).await;
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    assert_eq!((r.tabs, r.tabs_connected, r.tabs_joined), (30, 30, 30));
    assert!(r.delivery.owed > 500, "{}", r.summary());
    assert_eq!(r.delivery.delivered, r.delivery.owed);
    let a = &r.actions;
    let sent = a.created + a.updated + a.cancelled + a.deleted + a.conflicts + a.errors;
    assert_eq!(sent, OFFERED, "the open model sends what the stages offer");
    assert_eq!(r.stages.len(), 3);
    let per_stage: u64 = r.stages.iter().map(|s| s.actions).sum();
    assert_eq!(per_stage, sent, "every action is in one stage");
    // Within a second of the edges: 60, 100 and 90.
    for (stage, offered) in r.stages.iter().zip([60.0, 100.0, 90.0]) {
        assert!(
            (stage.actions as f64 - offered).abs() <= 30.0,
            "{stage:?} offered {offered}"
        );
    }
    let delivered: u64 = r.stages.iter().map(|s| s.delivered).sum();
    let received: u64 = r.timeline.iter().map(|s| s.delivered).sum();
    assert_eq!(delivered, received, "every receipt is in one stage");
    assert_eq!(r.stages[1].tabs_open_at_end, 30, "{:?}", r.stages[1]);
    assert_eq!(r.stages[2].tabs_open_at_end, 0, "every tab closed");
    assert!(r.stages[1].fanout_ms.count > 0 && r.stages[1].action_ms.count > 0);
    // The tabs opened over the first stage, not at once, and all closed at the end.
    let first = &r.timeline[0];
    assert!(first.tabs_connected < 25, "{first:?}");
    let last = r.timeline.last().unwrap();
    assert_eq!((last.tabs_joined, last.tabs_left), (30, 30));
    assert_eq!(last.tabs_connected, 30, "each tab connected once");
    let workload = &r.run.as_ref().unwrap().workload;
    assert_eq!(workload.stages.as_deref(), Some("3s:30,4s:30@30,3s:0"));
    assert_eq!((workload.tabs, workload.duration_s), (30, 10.0));
    assert!(r.summary().contains("stages     1"), "{}", r.summary());
    assert_matches_schema(&as_json(r));

    // The report as its own baseline, its rules judged on stage 2 of both, as
    // `--baseline ... --gate-stage 2` does; and `compare --stage 2` of it with itself.
    let path = std::env::temp_dir().join(format!("loadgen-staged-{}.json", std::process::id()));
    std::fs::write(&path, as_json(r).to_string()).unwrap();
    let baseline = Baseline::load(&path, DEFAULT_RULES, workload, false, Some(2)).unwrap();
    let mut again = r.clone();
    baseline.judge(&mut again);
    let ruled: Vec<_> = again
        .gates
        .iter()
        .filter(|g| g.baseline.is_some())
        .collect();
    assert_eq!(ruled.len(), 3, "{ruled:?}");
    for g in &ruled {
        assert!(
            g.passed && g.name.contains(" (stage 2) vs baseline"),
            "{g:?}"
        );
    }
    let steady = &r.stages[1];
    let rate = gate(&again, "deliveries/s (stage 2) vs baseline (-10%)");
    assert_eq!(rate.baseline, Some(steady.deliveries_per_s));
    let p99 = gate(&again, "fan-out p99 ms (stage 2) vs baseline (+20%)");
    assert_eq!(p99.observed, steady.fanout_ms.p99);
    let compared = compare_files(&CompareArgs {
        reports: vec![path.clone(), path.clone()],
        max_regression: DEFAULT_RULES.into(),
        format: Format::Text,
        allow_different_workload: false,
        report_html: None,
        stage: Some(2),
    })
    .unwrap();
    assert!(compared.passed, "{}", compared.text);
    assert!(
        compared
            .text
            .contains("fan-out p99 ms (stage 2) (rule 20%)"),
        "{}",
        compared.text
    );
    std::fs::remove_file(&path).unwrap();
}

/// Closing tabs must neither hide a loss (an event dropped before a tab left is owed) nor
/// invent one: with deliveries dropped by the server, lost equals dropped exactly. For the
/// count to be exact every drop must be of an owed pair, so the tabs open before actions
/// start (a join racing an event may get it without being owed it) and actions stop three
/// seconds before they close (`--settle` 1 s and a slow read of the log more, so each cutoff
/// is past every event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_tabs_neither_hide_nor_invent_losses_and_a_stage_is_gated_alone() {
    let outcome = run(&[
        "--stages",
        "2s:30,1s:30,0s:30@30,4s:30,0s:30@0,3s:30,3s:0",
        "--actions-per-sec",
        "0",
        "--seed",
        "22",
        "--inject-faults",
        "drop=0.03",
        "--gate-stage",
        "4",
        "--gate-fanout-p99-ms",
        "60000",
        "--gate-min-deliveries-per-sec",
        "1000000",
    ])
    .await;
    let r = &outcome.report;
    let dropped = r.faults_injected.get("drop").copied().unwrap_or(0);
    assert!(dropped > 0, "{:?}", r.faults_injected);
    assert_eq!(r.delivery.lost, dropped, "{}", r.summary());
    let lost: u64 = r.stages.iter().map(|s| s.lost).sum();
    assert_eq!(lost, dropped, "every loss is in one stage");
    let actions: Vec<u64> = r.stages.iter().map(|s| s.actions).collect();
    assert_eq!(actions.iter().sum::<u64>(), 120, "30/s for 4 s");
    assert_eq!(actions[2], 0, "a stage of no time holds nothing");
    assert_eq!(r.stages[6].tabs_open_at_end, 0);
    let fanout = gate(r, "fan-out p99 ms (stage 4)");
    assert!(fanout.passed);
    assert_eq!(fanout.observed, r.stages[3].fanout_ms.p99);
    let rate = gate(r, "deliveries per s (stage 4)");
    assert!(!rate.passed);
    assert_eq!(rate.observed, r.stages[3].deliveries_per_s);
    assert_eq!(failed_gates(r), ["lost", "deliveries per s (stage 4)"]);
}
