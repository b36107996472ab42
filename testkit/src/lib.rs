//! Real services for multi-node and fault tests, each on a free loopback port of its own so a
//! test may kill, pause or restart it without touching the machine's shared ones:
//! [`PrivateRedis`], [`PrivatePostgres`] and [`ServerProcess`] (the `booking-server` binary).
//! Every wait is bounded; every process is killed when its handle drops.
//!
//! The shared services the rest of the suite uses: [`shared_postgres_url`] and
//! [`shared_redis_url`]. With `CI` set they are required (a missing one fails the test);
//! elsewhere a test without them is skipped with a note.

pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to come up.
pub const START_WITHIN: Duration = Duration::from_secs(30);

/// `present`, after failing the test when it is false in CI (`CI` set: every test must run)
/// or noting that it is skipped elsewhere; `missing` says what is not here and what to do.
pub fn present_or_skip(present: bool, missing: &str) -> bool {
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI requires this test: {missing}"
        );
        eprintln!("skipping a test: {missing}");
    }
    present
}

fn required_or_skip(what: &str, var: &str) -> Option<String> {
    present_or_skip(false, &format!("{var} not set (the {what} tests need it)"));
    None
}

/// Whether Node.js runs here and `dir` (relative to the workspace root) has `package` in its
/// `node_modules`. With `CI` set both are required (a missing one fails the test); elsewhere
/// the caller skips its test with a note.
pub fn node_package_installed(dir: &str, package: &str) -> bool {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let installed = root.join(dir).join("node_modules").join(package).exists()
        && Command::new("node").arg("--version").output().is_ok();
    present_or_skip(
        installed,
        &format!("needs Node.js and `npm ci --prefix {dir}` ({package} is not in node_modules)"),
    )
}

/// The shared PostgreSQL server for tests (`TEST_DATABASE_URL`).
pub fn shared_postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => required_or_skip("PostgreSQL", "TEST_DATABASE_URL"),
    }
}

/// The shared Redis server for tests (`TEST_REDIS_URL`).
pub fn shared_redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => required_or_skip("Redis", "TEST_REDIS_URL"),
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch dir");
    dir
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Waits until `ready` says yes, polling every 50 ms; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !ready().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `redis-server` of the test's own, without persistence.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    /// Where a restart by [`shell_restart`](Self::shell_restart) leaves its pid.
    pid_file: PathBuf,
}

impl PrivateRedis {
    pub async fn start() -> Self {
        let port = free_port();
        let mut redis = Self {
            port,
            child: None,
            pid_file: std::env::temp_dir().join(format!("testkit-redis-{port}.pid")),
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis is running").id()
    }

    /// (Re)starts it on the same port and waits until it accepts connections.
    pub async fn restart(&mut self) {
        kill_child(&mut self.child);
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server)");
        self.child = Some(child);
        let port = self.port;
        wait_until("private redis accepts connections", START_WITHIN, || {
            std::future::ready(port_open(port))
        })
        .await;
    }

    /// SIGKILL: gone at once, every connection reset.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// A shell command that starts it again on the same port as a daemon (for a loadgen
    /// `--heal-cmd` after a `kill -9`); that daemon is killed when this handle drops.
    pub fn shell_restart(&self) -> String {
        format!(
            "redis-server --port {} --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
             --pidfile '{}' --logfile ''",
            self.port,
            self.pid_file.display()
        )
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// A PostgreSQL cluster of the test's own (initdb in a scratch dir, trust auth, one port), run
/// as the `postgres` user when the test runs as root. Database `postgres`, user `postgres`.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PrivatePostgres {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin")))
                    .find(|b| b.join("initdb").exists())
            })
            .expect("PostgreSQL server binaries under /usr/lib/postgresql/<version>/bin");
        let dir = scratch_dir("testkit-pg");
        let pg = Self {
            port: free_port(),
            dir,
            bin,
        };
        chown_to_postgres(&pg.dir);
        let data = pg.data().display().to_string();
        let initdb = ["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"];
        pg.run("initdb", &initdb.map(String::from));
        pg.start_server().await;
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL tool, run as the `postgres` user when this process is root (initdb and
    /// the server refuse to run as root).
    fn tool(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, tool: &str, args: &[String]) {
        let out = self
            .tool(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl` arguments for `action` on this cluster (the tests and the shell commands).
    fn pg_ctl_args(&self, action: &str, extra: &[&str]) -> Vec<String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        let mut args = vec![
            action.to_string(),
            "-D".into(),
            self.data().display().to_string(),
        ];
        args.extend(["-l".into(), log.display().to_string(), "-o".into(), options]);
        args.extend(["-w", "-t", "30"].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    fn pg_ctl(&self, action: &str, extra: &[&str]) {
        self.run("pg_ctl", &self.pg_ctl_args(action, extra));
    }

    async fn start_server(&self) {
        self.pg_ctl("start", &[]);
        let port = self.port;
        wait_until("private postgres accepts connections", START_WITHIN, || {
            std::future::ready(port_open(port))
        })
        .await;
    }

    /// Stops it (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        self.pg_ctl("stop", &["-m", "fast"]);
    }

    /// Starts it again after [`stop`](Self::stop).
    pub async fn start_again(&self) {
        self.start_server().await;
    }

    /// The commands a shell would run to stop and start it (for a loadgen fault scenario).
    pub fn shell_commands(&self) -> (String, String) {
        let line = |action: &str, extra: &[&str]| {
            let mut words = Vec::new();
            if is_root() {
                words.extend(["runuser", "-u", "postgres", "--"].map(String::from));
            }
            words.push(self.bin.join("pg_ctl").display().to_string());
            words.extend(self.pg_ctl_args(action, extra));
            let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            quoted.join(" ")
        };
        (line("stop", &["-m", "fast"]), line("start", &[]))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args([
                "stop",
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn chown_to_postgres(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("run chown");
        assert!(
            status.success(),
            "chown {} to postgres failed",
            dir.display()
        );
    }
}

/// The `booking-server` binary of this build (target/<profile>/booking-server), next to the
/// test binary's own `deps` directory.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join("booking-server");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo test --workspace` or `cargo build -p booking-server`)",
        bin.display()
    );
    bin
}

/// A database of its own on the PostgreSQL server at `admin_url`, dropped with the guard.
pub struct FreshDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl FreshDatabase {
    pub fn create(admin_url: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("testkit_{}_{nanos}", std::process::id());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_string(),
            name,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql")
            .args([self.admin_url.as_str(), "-q", "-c", sql.as_str()])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `booking-server` process on a free port, its output in a log file.
pub struct ServerProcess {
    pub port: u16,
    pub log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts the binary with `env` (e.g. `DATABASE_URL`, `REDIS_URL`, `AUTH_SECRET`) and waits
    /// until `/health` answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let mut server = Self {
            port: free_port(),
            log: scratch_dir("testkit-server").join("server.log"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// (Re)starts it on the same port; output is appended to [`log`](Self::log).
    pub async fn restart(&mut self) {
        kill_child(&mut self.child);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the server log");
        let child = Command::new(server_binary())
            .env("PORT", self.port.to_string())
            .env("BIND", "127.0.0.1")
            .env("LOG_LEVEL", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start booking-server");
        self.child = Some(child);
        let health = format!("{}/health", self.url());
        let http = reqwest::Client::new();
        let log = self.log.clone();
        let deadline = Instant::now() + START_WITHIN;
        loop {
            let up = http
                .get(&health)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "booking-server exited with {status} at start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "booking-server not healthy within {START_WITHIN:?}; log {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, sockets reset.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// A shell command that starts this server again in the background, as it was started
    /// (for a loadgen `--heal-cmd`); the process it starts is killed when this handle drops.
    pub fn shell_restart(&self) -> String {
        let mut line = String::from("env");
        let port = self.port.to_string();
        let fixed = [
            ("PORT", port.as_str()),
            ("BIND", "127.0.0.1"),
            ("LOG_LEVEL", "info"),
        ];
        for (k, v) in fixed
            .into_iter()
            .chain(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            line.push_str(&format!(" {k}='{v}'"));
        }
        format!(
            "{line} '{}' >> '{}' 2>&1 & echo $! > '{}'",
            server_binary().display(),
            self.log.display(),
            self.pid_file().display()
        )
    }

    fn pid_file(&self) -> PathBuf {
        self.log.with_file_name("restarted.pid")
    }

    /// The tail of its log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
