//! The generator against a server it did not write: the Node.js peer on the official
//! `socket.io` package (examples/node-server). Needs Node.js and
//! `npm ci --prefix examples/node-server`; required in CI.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{as_json, assert_matches_schema, run};

const SECRET: &str = "node-peer-secret-of-thirty-two-bytes";

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/node-server")
}

/// The peer on a free port, and its base URL; `None` (outside CI) when it cannot run here.
async fn start_peer() -> Option<(Child, String)> {
    if !testkit::node_package_installed("examples/node-server", "socket.io") {
        return None;
    }
    let mut child = Command::new("node")
        .arg(peer_dir().join("server.mjs"))
        .env("AUTH_SECRET", SECRET)
        .env("PORT", "0")
        .env("NODE_ID", "node-peer")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.ok()? {
            if let Some(rest) = line.strip_prefix("listening on ") {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("the peer says where it listens within 20 s")
    .expect("a `listening on` line");
    Some((child, listening))
}

/// Every owed event reaches the tabs of the Node server too, through churn and a storm of
/// reconnects (replayed from its `/api/events`), with no action errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_peer_server_passes_the_same_verification() {
    let Some((mut peer, host)) = start_peer().await else {
        return;
    };
    let outcome = run(&[
        "--host",
        &host,
        "--auth-secret",
        SECRET,
        "--tabs",
        "60",
        "--duration",
        "5s",
        "--seed",
        "23",
        "--churn",
        "4",
        "--storm-at",
        "3s",
    ])
    .await;
    let _ = peer.kill().await;
    let r = &outcome.report;
    assert!(outcome.passed(), "{}", r.summary());
    assert_eq!(
        (r.tabs_joined, r.actions.errors),
        (60, 0),
        "{}",
        r.summary()
    );
    assert!(r.delivery.owed > 500, "{}", r.summary());
    assert_eq!(
        r.delivery.delivered + r.delivery.recovered,
        r.delivery.owed,
        "{}",
        r.summary()
    );
    assert!(
        r.reconnects >= 60 && r.delivery.recovered > 0,
        "the storm made every tab replay from the peer's log: {}",
        r.summary()
    );
    let same_node = &r.by_node["same-node"];
    assert_eq!(
        same_node.owed, r.delivery.owed,
        "events name the peer's node"
    );
    assert_matches_schema(&as_json(r));
}
