//! One plan run by several generators (`--shard i/n`) and judged as one (`loadgen merge`).

use std::process::Output;

use crate::{assert_matches_schema, fresh_server};

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");
const SECRET: &str = "shard-secret-at-least-thirty-two-bytes";

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn merge(reports: &[&std::path::PathBuf], out: Option<&std::path::Path>) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("merge").args(reports);
    if let Some(out) = out {
        cmd.arg("--report-json").arg(out);
    }
    cmd.output().unwrap()
}

/// A fresh scratch directory for one test's reports.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `--actions-at` this many seconds from now (time for every process to set up).
fn seconds_from_now(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now + secs).to_string()
}

/// A generator process ended with exit 0, or the test fails with what it printed.
fn assert_passed(out: std::io::Result<Output>) {
    let out = out.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same plan (seed, 60 tabs, 10 actions/s for 6 s) run by one generator against one fresh
/// server and by three shard processes against another, all acting from the same wall-clock
/// second: the merged report owes, delivers and loses exactly what the one generator did, its
/// latency histograms hold every shard's samples, and its percentiles lie within the shards'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_merged_judge_the_plan_as_one_generator_does() {
    let (single_host, sharded_host) = (fresh_server(SECRET).await, fresh_server(SECRET).await);
    let dir = scratch("shards");
    let at = seconds_from_now(10);
    let generator = |host: &str, shard: &str, report: &std::path::Path| {
        tokio::process::Command::new(BIN)
            .args(["--host", host, "--auth-secret", SECRET, "--shard", shard])
            .args([
                "--tabs",
                "60",
                "--duration",
                "6s",
                "--actions-per-sec",
                "10",
            ])
            .args([
                "--seed",
                "41",
                "--actions-at",
                &at,
                "--progress-every",
                "0s",
            ])
            .arg("--report-json")
            .arg(report)
            .output()
    };
    let single = dir.join("single.json");
    let shards: Vec<_> = (0..3)
        .map(|i| dir.join(format!("shard-{i}.json")))
        .collect();
    let (one, s0, s1, s2) = tokio::join!(
        generator(&single_host, "0/1", &single),
        generator(&sharded_host, "0/3", &shards[0]),
        generator(&sharded_host, "1/3", &shards[1]),
        generator(&sharded_host, "2/3", &shards[2]),
    );
    for out in [one, s0, s1, s2] {
        assert_passed(out);
    }
    let parts: Vec<_> = shards.iter().map(|p| json(p)).collect();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["tabs"], 20);
        assert_eq!(part["run"]["shard"]["index"], i);
        assert_eq!(part["run"]["shard"]["count"], 3);
    }

    let merged = dir.join("merged.json");
    let out = merge(&[&shards[2], &shards[0], &shards[1]], Some(&merged));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("== loadgen: PASS =="), "{stdout}");
    let (m, one) = (json(&merged), json(&single));
    assert_matches_schema(&m);
    eprintln!(
        "merged of 3 shards: {}\none generator:      {}",
        m["delivery"], one["delivery"]
    );
    assert_eq!(m["tabs"], 60);
    assert_eq!(m["tabs_joined"], 60);
    for key in [
        "owed",
        "delivered",
        "recovered",
        "lost",
        "duplicated",
        "unexpected",
    ] {
        assert_eq!(
            m["delivery"][key], one["delivery"][key],
            "{key}: merged {} vs one generator {}",
            m["delivery"], one["delivery"]
        );
    }
    assert!(
        m["delivery"]["owed"].as_u64().unwrap() > 1000,
        "{}",
        m["delivery"]
    );
    for key in ["created", "updated", "cancelled", "deleted", "conflicts"] {
        assert_eq!(m["actions"][key], one["actions"][key], "{key}");
    }
    // Every shard's samples are in the merged histograms, and the merged percentiles lie
    // within the shards' (HDR precision: 2 significant digits, 1%).
    let fanout =
        |r: &serde_json::Value, key: &str| r["latency_ms"]["fanout"][key].as_f64().unwrap();
    let counts: f64 = parts.iter().map(|p| fanout(p, "count")).sum();
    assert_eq!(fanout(&m, "count"), counts);
    for key in ["p50", "p99"] {
        let lowest = parts
            .iter()
            .map(|p| fanout(p, key))
            .fold(f64::MAX, f64::min);
        let highest = parts.iter().map(|p| fanout(p, key)).fold(0.0, f64::max);
        let got = fanout(&m, key);
        assert!(
            got >= lowest * 0.99 && got <= highest * 1.01,
            "{key}: merged {got} outside the shards' {lowest}..{highest}"
        );
    }

    // The shards must cover the plan once.
    let missing = merge(&[&shards[0], &shards[1]], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("shard(s) 2/3 missing"));
    let twice = merge(&[&shards[0], &shards[1], &shards[1]], None);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("shard 1/3 is there twice"));
    let stranger = merge(&[&shards[0], &shards[1], &single], None);
    assert_eq!(stranger.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A staged run split over two shard processes acting from the same second: each opens and
/// closes its own tabs at the plan's times, together they send what the stages offer, and the
/// merge adds their stage rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_staged_shards_merge_their_stages() {
    let host = fresh_server(SECRET).await;
    let dir = scratch("staged");
    let at = seconds_from_now(8);
    let shard = |shard: &str, report: &std::path::Path| {
        tokio::process::Command::new(BIN)
            .args(["--host", &host, "--auth-secret", SECRET, "--shard", shard])
            // 20 at 20 actions/s, a ramp to 40/s, 40/s while every tab closes: 60 + 90 + 120.
            .args(["--stages", "3s:20,3s:20@40,3s:0", "--seed", "43"])
            .args(["--actions-at", &at, "--progress-every", "0s"])
            .arg("--report-json")
            .arg(report)
            .output()
    };
    let reports: Vec<_> = (0..2)
        .map(|i| dir.join(format!("staged-{i}.json")))
        .collect();
    let (a, b) = tokio::join!(shard("0/2", &reports[0]), shard("1/2", &reports[1]));
    for out in [a, b] {
        assert_passed(out);
    }
    let merged = dir.join("staged-merged.json");
    let out = merge(&[&reports[0], &reports[1]], Some(&merged));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (m, parts) = (
        json(&merged),
        reports.iter().map(|p| json(p)).collect::<Vec<_>>(),
    );
    assert_matches_schema(&m);
    assert_eq!(
        (m["tabs"].as_u64(), m["tabs_joined"].as_u64()),
        (Some(20), Some(20))
    );
    assert_eq!(m["delivery"]["lost"], 0);
    assert_eq!(m["delivery"]["owed"], m["delivery"]["delivered"]);
    let stages = m["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    let sum = |r: &serde_json::Value, key: &str| -> u64 {
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[key].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        sum(&m, "actions"),
        270,
        "the stages' offer, dealt over both"
    );
    for key in ["actions", "delivered", "lost"] {
        assert_eq!(
            sum(&m, key),
            parts.iter().map(|p| sum(p, key)).sum::<u64>(),
            "{key}"
        );
    }
    assert_eq!(stages[1]["tabs_open_at_end"], 20, "{}", stages[1]);
    assert_eq!(stages[2]["tabs_open_at_end"], 0);
    for part in &parts {
        let rows = part["stages"].as_array().unwrap();
        assert_eq!(rows[1]["tabs_open_at_end"], 10, "each shard holds half");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
