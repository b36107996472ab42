//! The `booking-server` binary: `mint-token`, startup with a generated secret, and a clean
//! exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_booking-server");

#[test]
fn mint_token_prints_a_token_the_server_accepts() {
    let out = Command::new(BIN)
        .args([
            "mint-token",
            "--sub",
            "dana",
            "--role",
            "admin",
            "--auth-secret",
            "s3-secret-of-at-least-thirty-two-bytes",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let user = booking_server::auth::Auth::new("s3-secret-of-at-least-thirty-two-bytes")
        .verify(token.trim())
        .unwrap();
    assert_eq!(user.id, "dana");
    assert!(user.is_admin());
}

/// A secret too short to stand up to guessing is refused by the server and by `mint-token`,
/// with its length (never its value) and how to make one; before, `--auth-secret x` served.
#[test]
fn a_short_auth_secret_is_refused_by_the_server_and_mint_token() {
    let short = "x-31-bytes-is-one-byte-too-few!";
    assert_eq!(short.len(), 31);
    let mut server = Command::new(BIN)
        .args(["--port", "0", "--database-url", "sqlite::memory:"])
        .args(["--auth-secret", short])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A server that took the secret serves on: give it 10 s to refuse, then stop it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = server.kill();
    let serve = server.wait_with_output().unwrap();
    let mint = Command::new(BIN)
        .args(["mint-token", "--sub", "dana", "--auth-secret", short])
        .output()
        .unwrap();
    for (what, out) in [("the server", serve), ("mint-token", mint)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what} took a 31-byte secret: {out:?}"
        );
        assert!(
            stderr.contains("is 31 bytes") && stderr.contains("at least 32"),
            "{what}: {stderr}"
        );
        assert!(
            !stderr.contains(short),
            "{what} printed the secret: {stderr}"
        );
    }
}

#[tokio::test]
async fn serves_until_sigterm_then_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("booking-bin-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = tokio::process::Command::new(BIN)
        .env_remove("AUTH_SECRET")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", "sqlite::memory:")
        .env("LOG_FORMAT", "json")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(res) = reqwest::get(format!("{base}/ready")).await {
            assert_eq!(res.status(), 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("booking server listening"), "{logs}");
    // Its stdout is a pipe, as under a log collector: the generated secret's admin token is
    // not in it (it was, in the WARN record, before).
    assert!(
        logs.contains("no admin token is shown") && !logs.contains("token\":"),
        "a generated secret's admin token stays out of the log: {logs}"
    );
    assert!(!logs.contains("#token=") && !logs.contains("eyJ"), "{logs}");
    assert!(logs.contains("booking server stopped"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a terminal (`script` gives the server one), a generated secret's admin token is shown,
/// outside the log records, and it works: it creates a boardroom.
#[tokio::test]
async fn on_a_terminal_a_generated_secret_shows_an_admin_token_that_works() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new("script")
        .args(["-qfec", BIN, "/dev/null"])
        .env_remove("AUTH_SECRET")
        .env("PORT", port.to_string())
        .env("DATABASE_URL", "sqlite::memory:")
        .env("LOG_FORMAT", "json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (bsdutils) runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let shown = "admin token (good while this server runs): ";
    let token = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find(shown) {
                return line[at + shown.len()..].trim().to_string();
            }
            assert!(
                !line.contains("token\":"),
                "a token in a log record: {line}"
            );
        }
        panic!("the server ended without showing a token");
    })
    .await
    .expect("a token shown in time");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let res = loop {
        match http
            .post(format!("{base}/api/boardrooms"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "name": "Shown", "capacity": 4 }))
            .send()
            .await
        {
            Ok(res) => break res,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(20), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    let _ = child.kill().await;
}
