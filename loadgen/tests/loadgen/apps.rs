//! Apps the generator has never seen, verified from their app files with generator-side
//! truth: the seed's booking backend (`examples/seed-server`: no seq, no log, no join ack) and a
//! chat (`examples/chat-server`: join acks, a room except its sender, a user's own room the
//! server joins). Each app drops a share of its deliveries with `DROP` and counts them on
//! `GET /stats`: the loss the generator finds must be exactly the loss the app made. Needs
//! Node.js and `npm ci` in both folders; required in CI.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use booking_loadgen::report::Report;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{as_json, assert_matches_schema, failed_gates, run};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}"))
}

fn app_file(name: &str) -> String {
    example(name).join("app.yaml").display().to_string()
}

/// The example app `name` on a free port with `DROP=drop`, and its base URL; `None` (outside
/// CI) when it cannot run here.
async fn start(name: &str, drop: &str) -> Option<(Child, String)> {
    if !testkit::node_package_installed(&format!("examples/{name}"), "socket.io") {
        return None;
    }
    let mut child = Command::new("node")
        .arg(example(name).join("server.mjs"))
        .arg("0")
        .env("DROP", drop)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.ok()? {
            if let Some(rest) = line.strip_prefix("listening on ") {
                return Some(rest.trim().to_string());
            }
        }
        None
    })
    .await
    .expect("the app says where it listens within 20 s")
    .expect("a `listening on` line");
    Some((child, url))
}

/// The app's own count of (delivered, dropped) deliveries.
async fn stats(url: &str) -> (u64, u64) {
    let v: serde_json::Value = reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        v["delivered"].as_u64().unwrap(),
        v["dropped"].as_u64().unwrap(),
    )
}

async fn run_app(name: &str, url: &str, seed: &str) -> Report {
    run(&[
        "--app",
        &app_file(name),
        "--host",
        url,
        "--tabs",
        "40",
        "--duration",
        "4s",
        "--seed",
        seed,
    ])
    .await
    .report
}

/// With nothing dropped: the run passes, every owed delivery arrived, and the generator
/// counted exactly the deliveries the app made.
async fn passes_with_nothing_lost(name: &str) -> Option<Report> {
    let (mut app, url) = start(name, "0").await?;
    let r = run_app(name, &url, "5").await;
    let (delivered, dropped) = stats(&url).await;
    let _ = app.kill().await;
    assert!(r.passed(), "{}", r.summary());
    assert_eq!(
        (r.tabs_joined, r.delivery.lost, dropped),
        (40, 0, 0),
        "{}",
        r.summary()
    );
    assert!(r.delivery.owed > 100, "{}", r.summary());
    assert_eq!(r.delivery.delivered, r.delivery.owed);
    assert_eq!(r.delivery.delivered, delivered, "{}", r.summary());
    let a = r.app.as_ref().expect("an app section");
    assert_eq!((a.truth.as_str(), a.publish_errors), ("generator", 0));
    assert!(a.publishes >= 30, "{}", r.summary());
    assert_matches_schema(&as_json(&r));
    Some(r)
}

/// With `DROP=0.05`: the run fails on the lost gate alone, and lost equals what the app
/// dropped, exactly.
async fn loses_what_the_app_dropped(name: &str) {
    let Some((mut app, url)) = start(name, "0.05").await else {
        return;
    };
    let r = run_app(name, &url, "6").await;
    let (delivered, dropped) = stats(&url).await;
    let _ = app.kill().await;
    assert!(dropped > 0, "the app dropped nothing: {}", r.summary());
    assert_eq!(failed_gates(&r), ["lost"], "{}", r.summary());
    assert_eq!(r.delivery.lost, dropped, "{}", r.summary());
    assert_eq!(r.delivery.delivered, delivered, "{}", r.summary());
    assert_eq!(r.delivery.owed, delivered + dropped);
    assert_eq!(r.examples.lost.len().min(10), r.examples.lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_backend_passes_from_its_app_file_with_nothing_lost() {
    let Some(r) = passes_with_nothing_lost("seed-server").await else {
        return;
    };
    // Each create reaches the dashboard room and its boardroom's, once per tab.
    assert_eq!(
        r.by_event_type.keys().collect::<Vec<_>>(),
        ["booking-created"]
    );
    assert_eq!(r.delivery.duplicated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_backend_loses_exactly_what_it_dropped() {
    loses_what_the_app_dropped("seed-server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_app_passes_from_its_app_file_with_nothing_lost() {
    let Some(r) = passes_with_nothing_lost("chat-server").await else {
        return;
    };
    // Messages to rooms (the sender excluded) and whispers to a user's own room were both owed;
    // the app's own `presence` notices were counted, not owed.
    for event in ["message", "whisper"] {
        assert!(r.by_event_type[event].delivery.owed > 0, "{}", r.summary());
    }
    let a = r.app.as_ref().unwrap();
    assert!(
        a.app_events.get("presence").is_some_and(|n| *n > 0),
        "{a:?}"
    );
    assert_eq!(r.delivery.unexpected, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_app_loses_exactly_what_it_dropped() {
    loses_what_the_app_dropped("chat-server").await;
}

/// The shipped app files match the shipped schema, and the schema refuses what the reader does.
#[test]
fn the_example_app_files_match_the_app_file_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../app.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    for name in ["seed-server", "chat-server"] {
        let text = std::fs::read_to_string(app_file(name)).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        booking_loadgen::app::load(std::path::Path::new(&app_file(name))).unwrap();
        let mut broken = value.clone();
        broken["publishers"][0]["expect"]["audience"] = "everyone".into();
        assert!(
            !validator.is_valid(&broken),
            "{name}: the schema took a bad audience"
        );
        let mut both = value.clone();
        both["publishers"][0]["http"] = serde_json::json!({"path": "/x"});
        both["publishers"][0]["emit"] = serde_json::json!({"event": "x", "args": []});
        assert!(
            !validator.is_valid(&both),
            "{name}: the schema took emit and http"
        );
    }
}

/// An app that acks `{ok: false, error}` refused: a publish it refused is a publish error
/// with the app's reason, not a delivery owed and lost; a join it refused is a tab error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_app_refuses_in_an_ack_is_an_error_with_its_reason() {
    let Some((mut app, url)) = start("chat-server", "0").await else {
        return;
    };
    let text = std::fs::read_to_string(app_file("chat-server")).unwrap();
    let dir = testkit::scratch_dir("app-refusals");
    let write = |name: &str, from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        let path = dir.join(name);
        std::fs::write(&path, text.replace(from, to)).unwrap();
        path.display().to_string()
    };
    // `txt` for `text`: the chat acks each message {ok: false, error: "text must be a string"}.
    let bad_publish = write(
        "publish.yaml",
        "text: \"hello {marker}\"",
        "txt: \"hello {marker}\"",
    );
    // A join whose argument is an object: the chat acks {ok: false, error: "room must be ..."}.
    let bad_join = write(
        "join.yaml",
        "join: { event: join, ack: true }",
        "join: { event: join, args: [{ room: \"{room}\" }], ack: true }",
    );
    let flags = |file: &str| {
        vec![
            "--app".to_string(),
            file.to_string(),
            "--host".into(),
            url.clone(),
            "--tabs".into(),
            "12".into(),
            "--duration".into(),
            "3s".into(),
            "--seed".into(),
            "3".into(),
        ]
    };
    let r = run(&flags(&bad_publish)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>())
    .await
    .report;
    let a = r.app.as_ref().unwrap();
    assert!(!r.passed(), "{}", r.summary());
    assert!(a.publish_errors > 0, "{}", r.summary());
    assert!(
        a.publish_error_examples
            .iter()
            .all(|e| e.contains("refused: text must be a string")),
        "{:?}",
        a.publish_error_examples
    );
    // The refused messages are owed to nobody; whispers (no ack) still are, and arrive.
    assert!(
        crate::failed_gates(&r).contains(&"publish errors"),
        "{}",
        r.summary()
    );
    assert_eq!(r.delivery.lost, 0, "{}", r.summary());
    // No tab could join: the run stops as one that cannot happen (exit 2), saying why.
    let args = flags(&bad_join);
    let refused = booking_loadgen::run(crate::config(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .await;
    let _ = app.kill().await;
    let Err(booking_loadgen::RunError::Setup(why)) = refused else {
        panic!("a run no tab could join must not pass or fail as a run");
    };
    assert!(
        why.contains("join room-1: refused: room must be a non-empty string"),
        "{why}"
    );
}

/// A broken app file stops the binary before any tab connects: exit 2, the file, line and field.
#[test]
fn a_broken_app_file_exits_2_naming_the_line_and_the_field() {
    let text = std::fs::read_to_string(app_file("chat-server"))
        .unwrap()
        .replace("audience: room-except-sender", "audience: everybody");
    let path = std::env::temp_dir().join(format!("loadgen-broken-{}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--app")
        .arg(&path)
        .args(["--host", "http://127.0.0.1:9", "--progress-every", "0s"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(
        line.contains(&format!("{}:16:", path.display()))
            && line.contains("publishers[0].expect.audience")
            && line.contains("`everybody`"),
        "{stderr}"
    );
}

/// `--transport polling` carries an app run too, and `--namespace` reaches the wire: a
/// namespace the app does not serve is refused by it, and the run cannot happen (exit 2's
/// reason names the refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_and_namespace_flags_reach_the_app() {
    let Some((mut app, url)) = start("chat-server", "0").await else {
        return;
    };
    let file = app_file("chat-server");
    let polling = run(&[
        "--app",
        &file,
        "--host",
        &url,
        "--tabs",
        "12",
        "--duration",
        "3s",
        "--seed",
        "3",
        "--transport",
        "polling",
        "--query",
        "client=loadgen",
        "--header",
        "X-Load-Test: 1",
    ])
    .await
    .report;
    assert!(polling.passed(), "{}", polling.summary());
    assert!(polling.delivery.owed > 0, "{}", polling.summary());
    let refused = tokio::time::timeout(
        crate::RUN_LIMIT,
        booking_loadgen::run(crate::config(&[
            "--app",
            &file,
            "--host",
            &url,
            "--tabs",
            "3",
            "--namespace",
            "/nope",
        ])),
    )
    .await
    .expect("the run ends in time");
    let _ = app.kill().await;
    let Err(e) = refused else {
        panic!("a namespace the app does not serve was joined");
    };
    assert!(e.to_string().contains("no tab could connect"), "{e}");
}

/// Two shard generators of one plan, merged, owe and deliver exactly what one generator of the
/// same plan does: each shard judged only its own publishes to its own tabs, and the merge
/// judged their logs together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_of_an_app_run_merge_to_one_generators_verdict() {
    let Some((mut one_app, one_url)) = start("chat-server", "0").await else {
        return;
    };
    let file = app_file("chat-server");
    let args = |url: &str, extra: &[&str]| {
        let mut a: Vec<String> = [
            "--app",
            &file,
            "--host",
            url,
            "--tabs",
            "30",
            "--duration",
            "3s",
            "--seed",
            "21",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    fn refs(a: &[String]) -> Vec<&str> {
        a.iter().map(String::as_str).collect()
    }
    let one = run(&refs(&args(&one_url, &[]))).await.report;
    let _ = one_app.kill().await;
    let (mut app, url) = start("chat-server", "0").await.unwrap();
    let at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 6)
    .to_string();
    let shard = |i: &'static str| args(&url, &["--shard", i, "--actions-at", &at]);
    let (a, b) = (shard("0/2"), shard("1/2"));
    let (a, b) = (refs(&a), refs(&b));
    let (s0, s1) = tokio::join!(run(&a), run(&b));
    let _ = app.kill().await;
    let shards = [s0.report, s1.report];
    for s in &shards {
        assert!(s.passed(), "{}", s.summary());
        let a = s.app.as_ref().unwrap();
        assert!(
            a.log.is_some() && a.receipts_of_other_shards > 0,
            "{}",
            s.summary()
        );
        assert!(s.delivery.owed < one.delivery.owed, "{}", s.summary());
    }
    let merged = booking_loadgen::merge_reports(&shards).unwrap();
    assert!(merged.passed(), "{}", merged.summary());
    let (m, o) = (&merged.delivery, &one.delivery);
    assert_eq!(
        (m.owed, m.delivered, m.lost, m.unexpected, m.duplicated),
        (o.owed, o.delivered, 0, 0, 0),
        "merged:\n{}\none generator:\n{}",
        merged.summary(),
        one.summary()
    );
    let (ma, oa) = (merged.app.as_ref().unwrap(), one.app.as_ref().unwrap());
    assert_eq!((ma.publishes, ma.grey_zone), (oa.publishes, 0));
    assert_eq!(merged.tabs, 30);
    assert_matches_schema(&as_json(&merged));
}

/// `--stages` shapes an app run: tabs open as their stage's target passes them and close by
/// leaving their rooms; the publish rate ramps; one row per stage. Every delivery the app made
/// is accounted for: owed and delivered, or in a join's or a leave's grey zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_open_and_close_an_apps_tabs_and_account_for_every_delivery() {
    let Some((mut app, url)) = start("chat-server", "0").await else {
        return;
    };
    let r = run(&[
        "--app",
        &app_file("chat-server"),
        "--host",
        &url,
        "--stages",
        "3s:24,3s:24@40,3s:0",
        "--seed",
        "9",
    ])
    .await
    .report;
    let (delivered, _) = stats(&url).await;
    let _ = app.kill().await;
    assert!(r.passed(), "{}", r.summary());
    assert_eq!(r.stages.len(), 3, "{}", r.summary());
    assert_eq!(r.stages[2].tabs_open_at_end, 0, "{}", r.summary());
    assert_eq!(r.timeline.last().map(|s| s.tabs_left), Some(24));
    assert!(
        r.stages[1].delivered > 0 && r.delivery.owed > 0,
        "{}",
        r.summary()
    );
    let a = r.app.as_ref().unwrap();
    assert_eq!(
        r.delivery.delivered + a.grey_zone_received,
        delivered,
        "{}",
        r.summary()
    );
    assert_matches_schema(&as_json(&r));
}

/// The notes app on a free port (over TLS with `tls`), and its base URL.
async fn start_notes(tls: Option<&testkit::tls::TlsFiles>) -> Option<(Child, String)> {
    if !testkit::node_package_installed("examples/chat-server", "socket.io") {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/apps");
    let mut command = Command::new("node");
    command
        .arg(dir.join("notes-server.mjs"))
        .arg("0")
        .env("SOCKET_IO_FROM", example("chat-server"))
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = tls {
        command.env("TLS_CERT", &t.cert).env("TLS_KEY", &t.key);
    }
    let mut app = command.spawn().expect("node starts");
    let mut lines = BufReader::new(app.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the app starts")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("listening on ")
        .unwrap()
        .trim()
        .to_string();
    Some((app, url))
}

fn notes_file() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps/notes.yaml")
        .display()
        .to_string()
}

/// An app over TLS (wss:// and https://, a certificate of the test's own CA): verified with
/// `--ca-cert`, refused without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_over_tls_is_verified_with_its_ca_and_refused_without() {
    let dir = testkit::scratch_dir("app-tls");
    let tls = testkit::tls::tls_files(&dir);
    let Some((mut app, url)) = start_notes(Some(&tls)).await else {
        return;
    };
    assert!(url.starts_with("https://"), "{url}");
    let file = notes_file();
    let ca = tls.ca_cert.display().to_string();
    let base = [
        "--app", &file, "--host", &url, "--tabs", "12", "--seed", "4",
    ];
    let r = run(&[&base[..], &["--duration", "3s", "--ca-cert", &ca]].concat())
        .await
        .report;
    assert!(r.passed(), "{}", r.summary());
    assert!(
        r.by_event_type["note"].delivery.delivered > 0,
        "{}",
        r.summary()
    );
    let untrusted =
        tokio::time::timeout(crate::RUN_LIMIT, booking_loadgen::run(crate::config(&base)))
            .await
            .expect("the run ends in time");
    let _ = app.kill().await;
    let e = untrusted
        .err()
        .expect("an untrusted certificate was accepted");
    assert!(e.to_string().contains("no tab could connect"), "{e}");
}

/// A third app, written for no example (tests/apps/notes-server.mjs): its own path and
/// namespace, auth from a CSV, a header and a query the app insists on, joins by an acked
/// `subscribe` with an object, HTTP publishes to a templated path, a marker in an array, and a
/// bare-string broadcast to every other socket. Its ~25-line file gets the full verdict; a
/// shout is owed to exactly every other tab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_the_examples_do_not_cover_is_verified_from_a_short_file() {
    let Some((mut app, url)) = start_notes(None).await else {
        return;
    };
    let file = notes_file();
    let base = [
        "--app", &file, "--host", &url, "--tabs", "30", "--seed", "3",
    ];
    let r = run(&[&base[..], &["--duration", "4s"]].concat())
        .await
        .report;
    assert!(r.passed(), "{}", r.summary());
    assert!(r.by_event_type["note"].delivery.owed > 0, "{}", r.summary());
    // 4 s at 4 shouts a second, each owed to the 29 other tabs.
    assert_eq!(
        r.by_event_type["shouted"].delivery.owed,
        16 * 29,
        "{}",
        r.summary()
    );
    assert_eq!(r.delivery.delivered, r.delivery.owed);
    // Without the header the app insists on, no tab gets in: the run cannot happen.
    let refused = tokio::time::timeout(
        crate::RUN_LIMIT,
        booking_loadgen::run(crate::config(
            &[&base[..], &["--header", "x-team: red"]].concat(),
        )),
    )
    .await
    .expect("the run ends in time");
    let _ = app.kill().await;
    let e = refused.err().expect("the app refused every tab");
    assert!(e.to_string().contains("x-team header"), "{e}");
}

/// `--metrics-addr` serves an app run under the names the dashboards read: live deliveries
/// and fan-out by event during the run, the verdict's counts once judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_run_serves_its_metrics_under_the_dashboards_names() {
    let Some((mut app, url)) = start("chat-server", "0").await else {
        return;
    };
    let addr = format!("127.0.0.1:{}", testkit::free_port());
    let file = app_file("chat-server");
    let args = [
        "--app",
        &file,
        "--host",
        &url,
        "--tabs",
        "20",
        "--duration",
        "4s",
        "--seed",
        "8",
        "--metrics-addr",
        &addr,
        "--metrics-linger",
        "4s",
    ];
    let run = tokio::spawn(booking_loadgen::run(crate::config(&args)));
    let scrape = || async {
        match reqwest::get(format!("http://{addr}/metrics")).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    let delivered = "loadgen_deliveries_total{outcome=\"delivered\"}";
    let mut live = None;
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = scrape().await;
        if value(&text, delivered).is_some_and(|n| n > 0.0) {
            live = Some(text);
            break;
        }
    }
    let live = live.expect("live deliveries on /metrics during the run");
    for name in [
        "loadgen_tabs_joined 20",
        "loadgen_fanout_latency_seconds_count{event=\"message\"}",
        "loadgen_actions_total{action=\"publish\",result=\"ok\"}",
        "loadgen_generator_cpu_share",
    ] {
        assert!(live.contains(name), "no `{name}` in:\n{live}");
    }
    // Judged: the verdict's delivered count, while the run lingers.
    let mut judged = None;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = scrape().await;
        if value(&text, "loadgen_tabs_joined").is_some() && value(&text, delivered).is_some() {
            judged = Some(text);
        }
        if run.is_finished() {
            break;
        }
    }
    let report = run.await.unwrap().unwrap().report;
    let _ = app.kill().await;
    assert!(report.passed(), "{}", report.summary());
    let last = judged.expect("metrics while the run lingered");
    assert_eq!(
        value(&last, delivered),
        Some(report.delivery.delivered as f64)
    );
}

/// `--churn` and `--storm-at` cut tabs' connections: each reconnects with backoff and rejoins,
/// what it is owed while down is counted apart, and once back in its rooms it is owed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_tabs_reconnect_rejoin_and_replay_what_they_missed_or_count_it_apart() {
    let Some((mut app, url)) = start("chat-server", "0").await else {
        return;
    };
    // The chat app's file names its replay; the same file without it is an app with none.
    let with_replay = app_file("chat-server");
    let text = std::fs::read_to_string(&with_replay).unwrap();
    assert!(text.contains("\nreplay:"), "the example names its replay");
    let dir = testkit::scratch_dir("app-no-replay");
    let without = dir.join("app.yaml");
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("replay:")).collect();
    std::fs::write(&without, kept.join("\n")).unwrap();
    let cut = |file: String| {
        let url = url.clone();
        async move {
            run(&[
                "--app",
                &file,
                "--host",
                &url,
                "--tabs",
                "24",
                "--duration",
                "6s",
                "--seed",
                "12",
                "--churn",
                "3",
                "--storm-at",
                "2s",
            ])
            .await
            .report
        }
    };
    let replayed = cut(with_replay).await;
    let apart = cut(without.display().to_string()).await;
    let _ = app.kill().await;
    for r in [&replayed, &apart] {
        assert!(r.passed(), "{}", r.summary());
        // The storm alone cut all 24; each came back.
        assert!(r.reconnects >= 24, "{}", r.summary());
        assert!(
            r.delivery.owed > 0 && r.delivery.lost == 0,
            "{}",
            r.summary()
        );
    }
    // With the replay, what the cut tabs missed is owed and was recovered from it.
    let a = replayed.app.as_ref().unwrap();
    assert!(
        a.replays >= 24 && replayed.events_replayed > 0,
        "{}",
        replayed.summary()
    );
    assert_eq!(a.missed_while_disconnected, 0, "{}", replayed.summary());
    assert!(replayed.delivery.recovered > 0, "{}", replayed.summary());
    // Without one, it is counted apart: neither owed nor lost.
    let a = apart.app.as_ref().unwrap();
    assert!(a.missed_while_disconnected > 0, "{}", apart.summary());
    assert_eq!((a.replays, apart.delivery.recovered), (0, 0));
}
