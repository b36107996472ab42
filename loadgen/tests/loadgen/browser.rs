//! Real browser tabs in a load run (`--browser-tabs`): headless Chromium pages of the web app
//! among the protocol tabs, judged by what each page rendered. Needs Chromium (Debian's
//! `chromium`); skipped without it, except in CI where it is required.

use booking_loadgen::drive::browser::find_chromium;

use crate::{as_json, assert_matches_schema, run};

/// True when Chromium is here; without it, CI fails and a laptop skips.
fn chromium_available(test: &str) -> bool {
    let found = find_chromium(None);
    let missing = found
        .as_ref()
        .err()
        .map_or(String::new(), |e| format!("{test} needs Chromium: {e}"));
    testkit::present_or_skip(found.is_ok(), &missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browser_tabs_among_100_protocol_tabs_lose_nothing() {
    if !chromium_available("three_browser_tabs_among_100_protocol_tabs_lose_nothing") {
        return;
    }
    let outcome = run(&[
        "--tabs",
        "100",
        "--browser-tabs",
        "3",
        "--duration",
        "6s",
        "--seed",
        "31",
    ])
    .await;
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    let browser = &r.by_client["browser"];
    let protocol = &r.by_client["protocol"];
    assert_eq!((browser.tabs, browser.tabs_joined), (3, 3));
    assert!(browser.delivery.owed > 0, "{}", r.summary());
    assert_eq!(browser.delivery.delivered, browser.delivery.owed);
    assert_eq!(browser.delivery.lost + browser.delivery.duplicated, 0);
    assert_eq!(
        browser.delivery.unexpected + browser.delivery.out_of_order,
        0
    );
    assert_eq!(browser.not_rendered, 0);
    // Fan-out to render is measured for every rendered delivery, on one clock.
    assert_eq!(browser.fanout_ms.count, browser.delivery.delivered);
    assert!(browser.fanout_ms.p50 > 0.0 && browser.fanout_ms.max < 5_000.0);
    // The total is the sum of the two kinds of client.
    assert_eq!(
        r.delivery.owed,
        protocol.delivery.owed + browser.delivery.owed
    );
    assert_eq!(r.delivery.lost, 0);
    assert!(r.summary().contains("by client"), "{}", r.summary());
    assert_matches_schema(&as_json(r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_tabs_losses_are_counted_exactly() {
    if !chromium_available("the_browser_tabs_losses_are_counted_exactly") {
        return;
    }
    // A server of its own that drops deliveries on purpose and names each drop's user.
    let server = testkit::ServerProcess::start(&[
        ("DATABASE_URL", "sqlite::memory:"),
        ("AUTH_SECRET", "browser-faults-secret-of-thirty-two-bytes"),
        ("INJECT_FAULTS", "drop=0.05"),
        ("LOG_FORMAT", "json"),
    ])
    .await;
    let seed = "4242";
    let outcome = run(&[
        "--host",
        &server.url(),
        "--auth-secret",
        "browser-faults-secret-of-thirty-two-bytes",
        "--tabs",
        "30",
        "--browser-tabs",
        "3",
        "--duration",
        "6s",
        "--seed",
        seed,
    ])
    .await;
    let r = &outcome.report;
    let log = std::fs::read_to_string(&server.log).unwrap();
    let drops: Vec<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "fault injected: delivery dropped")
        .map(|l| l["fields"]["user"].as_str().unwrap_or_default().to_string())
        .collect();
    // Browser pages sign in as `lg<run id>-b<page>`; the run id is the seed mod 100000.
    let browser_user = format!("lg{seed}-b");
    let browser_drops = drops
        .iter()
        .filter(|u| u.starts_with(&browser_user))
        .count() as u64;
    let browser = &r.by_client["browser"];
    assert!(
        browser_drops > 0,
        "the pages had drops to count: {}",
        r.summary()
    );
    assert_eq!(
        browser.delivery.lost,
        browser_drops,
        "every delivery dropped to a page is lost in the browser row: {}",
        r.summary()
    );
    assert_eq!(r.delivery.lost, drops.len() as u64, "{}", r.summary());
    assert_eq!(
        r.by_client["protocol"].delivery.lost,
        drops.len() as u64 - browser_drops
    );
    assert!(!outcome.passed());
    let lost_gate = r.gates.iter().find(|g| g.name == "lost").unwrap();
    assert!(!lost_gate.passed);
}

#[test]
fn browser_tabs_without_chromium_exit_2_with_a_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--browser-tabs", "1", "--chromium", "/nonexistent/chromium"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--chromium /nonexistent/chromium is not a file"),
        "{stderr}"
    );
}

/// `--report-html` opens in headless Chromium with nothing fetched: the DOM Chromium built
/// holds the verdict, five plots with a line per series, and the tables; a screenshot of it
/// is a real PNG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_chromium() {
    if !chromium_available("the_html_report_renders_in_chromium") {
        return;
    }
    let chromium = find_chromium(None).unwrap();
    let outcome = run(&[
        "--tabs",
        "30",
        "--duration",
        "4s",
        "--churn",
        "2",
        "--seed",
        "3",
    ])
    .await;
    assert!(outcome.passed(), "{}", outcome.report.summary());
    assert!(
        outcome.report.timeline.len() >= 4,
        "{:?}",
        outcome.report.timeline
    );
    let dir = std::env::temp_dir().join(format!("loadgen-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(
        &page,
        booking_loadgen::report::html::report_page(&outcome.report),
    )
    .unwrap();
    let url = format!("file://{}", page.display());
    let chrome = |extra: &[&str]| {
        std::process::Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = chrome(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("<span class=\"verdict pass\">PASS</span>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<svg").count(), 5, "{dom}");
    assert_eq!(dom.matches("<polyline").count(), 10);
    assert!(dom.contains("By event type") && dom.contains("booking-created"));
    let shot = dir.join("report.png");
    let out = chrome(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1100,1600",
        "--hide-scrollbars",
    ]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
