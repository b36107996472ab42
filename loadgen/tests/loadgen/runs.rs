//! Whole runs through the library: clean, faulty, churned, and two generators on one server.

use crate::{
    RUN_LIMIT, as_json, assert_matches_schema, config, failed_gates, gate, run, serve_own,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_delivers_every_owed_event() {
    let outcome = run(&[
        "--tabs",
        "40",
        "--duration",
        "4s",
        "--seed",
        "11",
        "--conflict-share",
        "0.5",
    ])
    .await;
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    assert_eq!((r.tabs, r.tabs_connected, r.tabs_joined), (40, 40, 40));
    assert!(r.delivery.owed > 100, "{}", r.summary());
    assert_eq!(r.delivery.delivered, r.delivery.owed);
    assert_eq!(
        (
            r.delivery.lost,
            r.delivery.duplicated,
            r.delivery.unexpected
        ),
        (0, 0, 0)
    );
    assert!(
        r.actions.created > 0 && r.actions.conflicts > 0,
        "{:?}",
        r.actions
    );
    assert_eq!(r.actions.errors, 0);
    assert!(r.latency_ms.fanout.count >= r.delivery.delivered);
    assert!(r.latency_ms.action.count > 0 && r.latency_ms.action.p50 > 0.0);
    let by_type: u64 = r.by_event_type.values().map(|b| b.delivery.owed).sum();
    assert_eq!(by_type, r.delivery.owed, "the breakdown adds up");
    let by_room: u64 = r.by_room_size.values().map(|b| b.delivery.owed).sum();
    assert_eq!(by_room, r.delivery.owed);
    assert!(r.faults_injected.is_empty());
    // Updates are preceded by `editing` signals that the boardroom's other calendar tabs hear.
    let e = &r.volatile.editing;
    assert!(e.sent > 0 && e.expected > 0, "{e:?}");
    assert!(
        e.received <= e.expected,
        "no tab hears a signal twice: {e:?}"
    );
    assert!(
        e.ratio >= 0.95,
        "volatile, yet nearly all arrive on a calm run: {e:?}"
    );
    assert_eq!(e.latency_ms.count, e.received);
    let g = &r.generator;
    assert!(g.sampled_s >= 4 && g.cores >= 1, "{g:?}");
    assert!(
        g.cpu_share_max > 0.0 && g.cpu_share_max >= g.cpu_share_mean,
        "{g:?}"
    );
    assert!(
        r.gates.iter().all(|g| !g.unreliable),
        "no latency gate was asked for"
    );
    assert_matches_schema(&as_json(r));
}

/// With a scheduling-lag limit of 0 ms every second counts as saturated: the report says so,
/// the latency gate is marked unreliable, and `--gate-saturated-secs` fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_generator_says_so_and_can_fail_its_gate() {
    let outcome = run(&[
        "--tabs",
        "20",
        "--duration",
        "3s",
        "--seed",
        "16",
        "--saturation-lag-ms",
        "0",
        "--gate-saturated-secs",
        "0",
        "--gate-fanout-p99-ms",
        "60000",
    ])
    .await;
    let r = &outcome.report;
    let g = &r.generator;
    assert!(g.sampled_s >= 3, "{g:?}");
    assert_eq!(
        (g.saturated_s, g.saturated_by_lag_s),
        (g.sampled_s, g.sampled_s)
    );
    assert!(!outcome.passed(), "{}", r.summary());
    assert_eq!(r.delivery.lost, 0, "{}", r.summary());
    let fanout = gate(r, "fan-out p99 ms");
    assert!(fanout.passed && fanout.unreliable, "{fanout:?}");
    let saturated = gate(r, "generator saturated s");
    assert!(!saturated.passed && saturated.observed == g.saturated_s as f64);
    let summary = r.summary();
    assert!(
        summary.contains(&format!("SATURATED for {} s", g.saturated_s))
            && summary.contains("latency figures are not trustworthy")
            && summary.contains("(unreliable: the generator was saturated)"),
        "{summary}"
    );
    assert_matches_schema(&as_json(r));
}

/// 40 tabs for 4 s (seed 12) on an embedded server injecting `faults`.
async fn faulty_run(faults: &str) -> booking_loadgen::Outcome {
    let args = ["--tabs", "40", "--duration", "4s", "--seed", "12"];
    run(&[&args[..], &["--inject-faults", faults]].concat()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_caught_exactly() {
    let outcome = faulty_run("drop=0.03,duplicate=0.02,misroute=0.02").await;
    let r = &outcome.report;
    let injected = |kind: &str| r.faults_injected.get(kind).copied().unwrap_or(0);
    assert!(
        injected("drop") > 0 && injected("duplicate") > 0 && injected("misroute") > 0,
        "{:?}",
        r.faults_injected
    );
    assert_eq!(
        r.delivery.lost,
        injected("drop"),
        "every dropped delivery is lost: {}",
        r.summary()
    );
    assert_eq!(
        r.delivery.duplicated,
        injected("duplicate"),
        "{}",
        r.summary()
    );
    assert_eq!(
        r.delivery.unexpected,
        injected("misroute"),
        "{}",
        r.summary()
    );
    assert_eq!(r.delivery.delivered + r.delivery.lost, r.delivery.owed);
    assert!(!outcome.passed());
    assert_eq!(failed_gates(r), ["lost", "duplicated", "unexpected"]);
    assert!(!r.examples.lost.is_empty() && !r.examples.unexpected.is_empty());
    assert_matches_schema(&as_json(r));
}

/// `reorder` holds a delivery back and sends it right after the next one to that socket: the
/// verifier's out-of-order count equals what the server counted, exactly, and nothing is lost,
/// repeated or misaddressed.
#[tokio::test]
async fn reordered_deliveries_are_caught_exactly() {
    let outcome = faulty_run("reorder=0.05").await;
    let r = &outcome.report;
    let reordered = r.faults_injected.get("reorder").copied().unwrap_or(0);
    assert!(reordered > 0, "{:?}", r.faults_injected);
    assert_eq!(r.delivery.out_of_order, reordered, "{}", r.summary());
    assert_eq!(
        (
            r.delivery.lost,
            r.delivery.duplicated,
            r.delivery.unexpected
        ),
        (0, 0, 0),
        "{}",
        r.summary()
    );
    assert_eq!(failed_gates(r), ["out of order"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_server_fails_the_action_latency_gate() {
    let args = [
        "--tabs",
        "20",
        "--duration",
        "3s",
        "--seed",
        "13",
        "--inject-faults",
        "delay=40ms",
        "--gate-action-p99-ms",
        "30",
    ];
    let outcome = run(&args).await;
    let r = &outcome.report;
    assert_eq!(r.delivery.lost, 0);
    assert!(
        r.latency_ms.action.p50 >= 40.0,
        "every action waits 40 ms: {:?}",
        r.latency_ms.action
    );
    let action = gate(r, "action p99 ms");
    assert!(!action.passed && action.observed >= 40.0, "{action:?}");
    assert!(!outcome.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_and_a_storm_lose_nothing_after_replay() {
    let args = [
        "--tabs",
        "30",
        "--duration",
        "6s",
        "--seed",
        "14",
        "--churn",
        "4",
        "--storm-at",
        "2s",
        "--dashboard-share",
        "0.5",
        // Judged as it goes: what the storm's tabs replay was partly judged already.
        "--ledger-window",
        "250ms",
    ];
    let outcome = run(&args).await;
    let r = &outcome.report;
    assert!(r.memory.judged_during_run > 0, "{}", r.summary());
    assert!(
        r.reconnects >= 30,
        "the storm reconnects every tab: {}",
        r.summary()
    );
    assert_eq!(r.delivery.lost, 0, "{}", r.summary());
    assert!(
        r.delivery.recovered > 0,
        "gaps were closed by replay: {}",
        r.summary()
    );
    assert_eq!(r.delivery.delivered + r.delivery.recovered, r.delivery.owed);
    assert!(outcome.passed(), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_during_the_run_and_end_with_the_verdict() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "--tabs",
        "20",
        "--duration",
        "3s",
        "--seed",
        "15",
        "--metrics-addr",
        &addr,
        "--metrics-linger",
        "3s",
    ];
    let config = config(&args);
    let run = tokio::spawn(booking_loadgen::run(config));
    let url = format!("http://{addr}/metrics");
    let (mut peak_tabs, mut last) = (0u64, String::new());
    while !run.is_finished() {
        if let Ok(res) = reqwest::get(&url).await {
            last = res.text().await.unwrap();
            let tabs = last
                .lines()
                .find_map(|l| l.strip_prefix("loadgen_tabs_connected "))
                .and_then(|v| v.parse().ok());
            peak_tabs = peak_tabs.max(tabs.unwrap_or(0));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let outcome = run.await.unwrap().unwrap();
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    assert_eq!(peak_tabs, 20, "tabs seen connected while the run went on");
    for line in [
        format!(
            "loadgen_deliveries_total{{outcome=\"delivered\"}} {}",
            r.delivery.delivered
        ),
        format!(
            "loadgen_deliveries_total{{outcome=\"lost\"}} {}",
            r.delivery.lost
        ),
        format!(
            "loadgen_actions_total{{action=\"create\",result=\"ok\"}} {}",
            r.actions.created
        ),
        format!(
            "loadgen_action_latency_seconds_count {}",
            r.latency_ms.action.count
        ),
        "loadgen_tabs_joined 20".to_string(),
    ] {
        assert!(
            last.contains(&line),
            "the last scrape has `{line}`:\n{last}"
        );
    }
    let fanout: u64 = last
        .lines()
        .filter(|l| l.starts_with("loadgen_fanout_latency_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(fanout, r.latency_ms.fanout.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_receipt_can_be_a_span_under_the_event_that_caused_it() {
    use opentelemetry::trace::SpanId;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let args = [
        "--tabs",
        "15",
        "--duration",
        "2s",
        "--seed",
        "16",
        "--trace-every",
        "1",
        "--actions-per-sec",
        "5",
    ];
    let outcome = tokio::time::timeout(
        RUN_LIMIT,
        // A clone: the provider must outlive the run, since its last drop shuts the
        // in-memory exporter down, which forgets every span (seen as a rare 0 spans).
        booking_loadgen::run_with_traces(config(&args), Some(provider.clone())),
    )
    .await
    .unwrap()
    .unwrap();
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    let spans = exporter.get_finished_spans().unwrap();
    drop(provider);
    let receives: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "socketio.receive")
        .collect();
    assert_eq!(
        receives.len() as u64,
        r.latency_ms.fanout.count,
        "one span per live receipt"
    );
    let mut by_event = std::collections::HashMap::new();
    for span in &receives {
        assert_ne!(
            span.parent_span_id,
            SpanId::INVALID,
            "each receipt continues its event's trace"
        );
        assert!(span.end_time >= span.start_time);
        let seq = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "seq")
            .unwrap()
            .value
            .to_string();
        let key = (span.span_context.trace_id(), span.parent_span_id);
        let seen = by_event.entry(key).or_insert((seq.clone(), 0));
        assert_eq!(seen.0, seq, "one parent span, one event");
        seen.1 += 1;
    }
    assert!(
        by_event.values().any(|(_, n)| *n >= 2),
        "an event reaching several tabs is one trace"
    );
}

/// The booking workload over long-polling, with a header and a query parameter on every
/// handshake, and a namespace the server does not serve refused at the first connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_tabs_take_the_transport_header_query_and_namespace_flags() {
    let polling = run(&[
        "--tabs",
        "12",
        "--duration",
        "3s",
        "--seed",
        "13",
        "--transport",
        "polling",
        "--header",
        "X-Load-Test: 1",
        "--query",
        "client=loadgen",
    ])
    .await;
    let r = &polling.report;
    assert!(polling.passed(), "{}", r.summary());
    assert!(
        r.delivery.owed > 0 && r.tabs_joined == 12,
        "{}",
        r.summary()
    );
    let other = tokio::time::timeout(
        RUN_LIMIT,
        booking_loadgen::run(config(&[
            "--tabs",
            "2",
            "--duration",
            "1s",
            "--namespace",
            "/nope",
        ])),
    )
    .await
    .expect("the run ends in time");
    match other {
        Ok(o) => assert!(
            !o.passed() && o.report.tabs_joined == 0,
            "{}",
            o.report.summary()
        ),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The reference server over TLS (`--tls-cert`, `--tls-key`, a certificate of the test's own
/// CA): the booking workload runs over wss:// and https:// with nothing lost, and a generator
/// that trusts neither the CA nor anything cannot even set up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_booking_workload_runs_over_tls() {
    let dir = testkit::scratch_dir("booking-tls");
    let tls = testkit::tls::tls_files(&dir);
    let host = serve_own("tls-secret-at-least-thirty-two-bytes", |server| {
        server.tls_cert = Some(tls.cert.clone());
        server.tls_key = Some(tls.key.clone());
    })
    .await;
    let ca = tls.ca_cert.display().to_string();
    let base = [
        "--host",
        &host,
        "--auth-secret",
        "tls-secret-at-least-thirty-two-bytes",
        "--tabs",
        "12",
        "--seed",
        "5",
    ];
    // The CA alone: the tabs' Socket.IO clients, the setup's requests and goose's REST actors
    // all trust it.
    let flags = ["--duration", "3s", "--ca-cert", &ca];
    let over_tls = run(&[&base[..], &flags].concat()).await;
    let r = &over_tls.report;
    assert!(over_tls.passed(), "{}", r.summary());
    assert!(
        r.delivery.owed > 0 && r.actions.created > 0 && r.actions.errors == 0,
        "{}",
        r.summary()
    );
    let untrusted = tokio::time::timeout(RUN_LIMIT, booking_loadgen::run(config(&base)))
        .await
        .expect("the run ends in time");
    let e = untrusted
        .err()
        .expect("an untrusted certificate was accepted");
    assert!(!e.to_string().is_empty());
}

fn borrowed(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A booking server of the test's own whose `--event-retention` is `keep`: its base URL.
async fn server_keeping(secret: &str, keep: std::time::Duration) -> String {
    serve_own(secret, |server| {
        server.event_retention = booking_server::config::Retention::For(keep);
    })
    .await
}

/// A server whose retention removed old events answers 410 to a read of its log from the
/// start: a run against it reads from the oldest kept event and is verified as any other.
/// When retention removes events of the run itself, the run says at once that it cannot be
/// judged, and why (exit 2), instead of retrying a read that cannot succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_retention_is_verified_and_one_that_prunes_the_run_says_so() {
    let secret = "retention-secret-of-at-least-thirty-two-bytes";
    let args = |host: &str, duration: &str| -> Vec<String> {
        [
            "--host",
            host,
            "--auth-secret",
            secret,
            "--tabs",
            "20",
            "--duration",
            duration,
            "--seed",
            "21",
        ]
        .map(String::from)
        .to_vec()
    };

    // Events older than 10 s go: two made now are gone (but the newest) 11 s later.
    let host = server_keeping(secret, std::time::Duration::from_secs(10)).await;
    let token = booking_server::auth::mint_with_secret(
        secret,
        "reader",
        booking_server::auth::Role::Admin,
        None,
        60,
    );
    let http = reqwest::Client::new();
    let room = http
        .post(format!("{host}/api/boardrooms"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Kept a while", "capacity": 4, "location": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(room.status(), 201);
    let room: serde_json::Value = room.json().await.unwrap();
    for day in [10, 11] {
        let booked = http
            .post(format!("{host}/api/bookings"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "boardroomId": room["id"],
                "title": "Before the run",
                "startTime": format!("2031-01-{day}T09:00:00Z"),
                "endTime": format!("2031-01-{day}T10:00:00Z"),
                "attendees": [],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(booked.status(), 201);
    }
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let from_start = http
        .get(format!("{host}/api/events?after=0&limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(from_start.status(), 410, "the first event was pruned");
    let second = run(&borrowed(&args(&host, "1s"))).await;
    let d = &second.report.delivery;
    assert!(second.passed(), "{:?}", failed_gates(&second.report));
    assert!(d.owed > 0 && d.lost == 0, "{d:?}");

    // Events older than 1 s go while a 4 s run makes them: it cannot be judged.
    let host = server_keeping(secret, std::time::Duration::from_secs(1)).await;
    let refused = tokio::time::timeout(
        RUN_LIMIT,
        booking_loadgen::run(config(&borrowed(&args(&host, "4s")))),
    )
    .await
    .expect("the run ends in time");
    let why = match refused {
        Ok(outcome) => panic!("judged: {:?}", outcome.report.delivery),
        Err(e) => e.to_string(),
    };
    assert!(
        why.contains("retention") && why.contains("410") && why.contains("--event-retention"),
        "{why}"
    );
}

/// The loadgen's own client (the default over a WebSocket) and rust_socketio, the reference
/// client, verify one seed alike: the same actions, owed, delivered and lost. The own client
/// speaks no long-polling, and says so before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_seed_through_either_client_is_owed_and_delivered_the_same() {
    let args = ["--tabs", "40", "--duration", "4s", "--seed", "11"];
    let reports = passing_runs(&args, "--client", &["own", "rust_socketio"]).await;
    let counts: Vec<_> = reports
        .iter()
        .map(|r| {
            assert!(r.delivery.owed > 100, "{}", r.summary());
            let a = &r.actions;
            (
                (a.created, a.updated, a.cancelled, a.deleted),
                (r.delivery.owed, r.delivery.delivered, r.delivery.lost),
            )
        })
        .collect();
    assert_eq!(counts[0], counts[1], "own, then rust_socketio");

    let polling = booking_loadgen::run(config(&[
        "--tabs",
        "2",
        "--duration",
        "1s",
        "--client",
        "own",
        "--transport",
        "polling",
    ]))
    .await;
    match polling {
        Err(booking_loadgen::RunError::Setup(why)) => {
            assert!(why.contains("--client own speaks WebSocket only"), "{why}");
        }
        Err(e) => panic!("--client own with polling must be refused at setup, not: {e}"),
        Ok(o) => panic!(
            "--client own with polling must be refused at setup, yet it ran: {}",
            o.report.summary()
        ),
    }
}

/// Judging as the run goes (`--ledger-window`) drops what is settled from the tabs' ledgers
/// and changes no count: one seed, every bit kept to the end or a quarter of a second's
/// worth, is owed, delivered and lost the same (the churn test runs with a window too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judging_as_the_run_goes_changes_no_count() {
    let args = ["--tabs", "40", "--duration", "5s", "--seed", "11"];
    let [whole, windowed] = &passing_runs(&args, "--ledger-window", &["0s", "250ms"]).await[..]
    else {
        unreachable!("two runs")
    };
    let counts = |r: &booking_loadgen::report::Report| {
        let d = &r.delivery;
        ((d.owed, d.delivered, d.lost), d.unexpected + d.duplicated)
    };
    assert_eq!(
        counts(whole),
        counts(windowed),
        "every bit kept, then a window"
    );
    assert_eq!(whole.memory.judged_during_run, 0);
    let judged = windowed.memory.judged_during_run;
    assert!(
        judged * 2 > windowed.delivery.owed,
        "most pairs are judged as the run goes: {judged} of {}",
        windowed.delivery.owed
    );
}

/// One run of `args` with each of `values` for `flag`, each of which must pass: the reports,
/// in order.
async fn passing_runs(
    args: &[&str],
    flag: &str,
    values: &[&str],
) -> Vec<booking_loadgen::report::Report> {
    let mut reports = Vec::new();
    for value in values {
        let mut with = args.to_vec();
        with.extend([flag, *value]);
        let outcome = run(&with).await;
        assert!(
            outcome.passed(),
            "{flag} {value}: {}",
            outcome.report.summary()
        );
        reports.push(outcome.report);
    }
    reports
}
