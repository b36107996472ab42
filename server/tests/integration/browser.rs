//! The web app in real browsers: runs its end-to-end tests (`web/e2e`, playwright-core driving
//! Chromium) against the `booking-server` binary of this build, so `cargo test` covers them.
//! Needs Node.js, `npm ci --prefix web` and Chromium; skipped without them, required in CI.

use std::path::Path;
use std::time::Duration;

/// The whole e2e suite's bound; each of its tests has its own, shorter one.
const SUITE_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn the_web_app_passes_its_browser_tests() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let installed = web.join("node_modules/playwright-core").is_dir();
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .any(|p| Path::new(p).is_file());
    let why = format!(
        "the browser tests need `npm ci --prefix web` (installed: {installed}) and Chromium (found: {chromium})"
    );
    if !testkit::present_or_skip(installed && chromium, &why) {
        return;
    }
    let run = tokio::process::Command::new("npm")
        .args(["run", "--silent", "e2e"])
        .current_dir(&web)
        .env("BOOKING_SERVER_BIN", env!("CARGO_BIN_EXE_booking-server"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SUITE_LIMIT, run)
        .await
        .expect("the browser tests end in time")
        .expect("npm runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The figures (action to render, reconnect time) show with `--nocapture`.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "the runner ran tests and none failed:\n{stdout}"
    );
}
