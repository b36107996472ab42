//! Database access shared by every domain module: one `AnyPool` over SQLite or PostgreSQL,
//! the migrations for each, and the write path that keeps the event log in `seq` order.
//!
//! All writes of one server process go through [`Db::begin_write`]: a process-wide gate,
//! then a transaction (`BEGIN IMMEDIATE` on SQLite so the write lock is taken up front). The
//! gate is held until the caller has emitted the events of the change, so that this process
//! commits and emits in `seq` order. Overlaps are still refused by the database itself (a
//! trigger on SQLite, an exclusion constraint on PostgreSQL), so several processes sharing
//! one database cannot double book either.
//!
//! Several servers in one cluster (PostgreSQL and Redis) also order their writes among
//! themselves: a write takes a PostgreSQL session advisory lock before BEGIN and gives it back
//! once its events are published ([`EmitTurn::release`]), so events leave the cluster in `seq`
//! order. A server that dies while holding it ends its session, and PostgreSQL lets go.
//!
//! A write is answered only after its COMMIT returns, so what a client was told survives a
//! crash of the server; whether it also survives a power loss on SQLite is
//! [`SqliteSynchronous`]'s choice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How hard SQLite pushes a commit to disk before it returns (`PRAGMA synchronous`; the
/// database is always in WAL mode). Both keep the file consistent; they differ in what a commit
/// that was acknowledged survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SqliteSynchronous {
    /// The WAL is fsynced at every commit: an acknowledged write survives a crash of the
    /// server process and a power loss or OS crash. Costs one fsync per write.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: an acknowledged write survives a crash of the
    /// server process (`kill -9`), but a power loss or OS crash can roll back the last ones.
    Normal,
}

impl SqliteSynchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Serialises this process's writes from BEGIN to the end of their emission.
    write_gate: Arc<Mutex<()>>,
    /// Serialise writes across the servers of a cluster too (PostgreSQL only).
    cluster_order: bool,
    /// Longest wait for the write turn or a connection before giving up (503).
    acquire_timeout: Duration,
    /// An in-memory database lives while one of its connections is open, and the pool closes
    /// a connection whose query was cancelled (a client hung up): this one, outside the pool,
    /// keeps the data until the server ends.
    _keeper: Option<Arc<std::sync::Mutex<sqlx::AnyConnection>>>,
}

/// The advisory lock key of the cluster's write turn ("booking" in ASCII).
pub const CLUSTER_TURN_KEY: i64 = 0x0062_6f6f_6b69_6e67;

/// The cluster-wide write turn: a pooled connection holding the advisory lock. Dropped
/// without [`release`](ClusterTurn::release) (an error path), its connection is closed instead
/// of pooled, which ends the session and so frees the lock.
/// (In a mutex only so that an [`EmitTurn`] can be shared while events are emitted.)
struct ClusterTurn(std::sync::Mutex<Option<PoolConnection<Any>>>);

impl ClusterTurn {
    /// Waits for the turn at most `limit`. Cancelled while waiting, the connection is closed,
    /// not pooled: its lock request would otherwise be granted later to an idle pooled
    /// session, and every server's writes would stall behind it.
    async fn take(pool: &AnyPool, limit: Duration) -> Result<Self, sqlx::Error> {
        let mut waiting = ClusterTurn(std::sync::Mutex::new(Some(pool.acquire().await?)));
        let conn = &mut **waiting.conn();
        // lock_timeout bounds the wait inside PostgreSQL (55P03 past it): the query ends
        // cleanly instead of being cut, and the write gets its 503.
        sqlx::query("SELECT set_config('lock_timeout', $1, false)")
            .bind(format!("{}ms", limit.as_millis().max(1)))
            .execute(&mut *conn)
            .await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(CLUSTER_TURN_KEY)
            .execute(&mut *conn)
            .await?;
        Ok(waiting)
    }

    fn conn(&mut self) -> &mut PoolConnection<Any> {
        self.0
            .get_mut()
            .expect("poisoned")
            .as_mut()
            .expect("a turn being taken has its connection")
    }

    async fn release(self) {
        let conn = self.0.lock().ok().and_then(|mut c| c.take());
        if let Some(mut conn) = conn {
            let unlocked = sqlx::query(
                "SELECT pg_advisory_unlock($1), set_config('lock_timeout', '0', false)",
            )
            .bind(CLUSTER_TURN_KEY)
            .execute(&mut *conn)
            .await;
            if let Err(e) = unlocked {
                tracing::warn!(error = %e, "cluster write turn not released: closing its session");
                drop(conn.detach());
            }
        }
    }
}

impl Drop for ClusterTurn {
    fn drop(&mut self) {
        if let Some(conn) = self.0.lock().ok().and_then(|mut c| c.take()) {
            drop(conn.detach());
        }
    }
}

/// A write transaction holding the process write gate.
pub struct WriteTx {
    pub tx: Transaction<'static, Any>,
    gate: OwnedMutexGuard<()>,
    cluster: Option<ClusterTurn>,
    began_at: Instant,
    /// Open from BEGIN to COMMIT (or rollback, when the transaction is dropped).
    _span: tracing::Span,
}

/// Held after commit while the change's events are emitted; dropping it lets the next write in.
pub struct EmitTurn {
    _gate: OwnedMutexGuard<()>,
    cluster: Option<ClusterTurn>,
    /// When the transaction committed: the start of emission latency.
    pub committed_at: Instant,
    /// How long the transaction took, BEGIN to COMMIT.
    pub took: Duration,
}

impl WriteTx {
    pub async fn commit(self) -> Result<EmitTurn, sqlx::Error> {
        self.tx.commit().await?;
        Ok(EmitTurn {
            _gate: self.gate,
            cluster: self.cluster,
            committed_at: Instant::now(),
            took: self.began_at.elapsed(),
        })
    }
}

impl EmitTurn {
    /// Ends the turn once the change's events are out, letting the next write in.
    pub async fn release(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.release().await;
        }
    }
}

/// True for an in-memory SQLite URL (`sqlite::memory:`, `mode=memory`).
fn is_in_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

/// Normalises a database URL: a SQLite file is created when missing; an in-memory database
/// gets a name of its own, shared by every connection of this server. (Through sqlx's `Any`
/// driver, each new connection to `sqlite::memory:` opened a new, empty database: after a
/// cancelled query closed the pool's connection, every request failed with "no such table".)
fn normalise_url(url: &str) -> String {
    if is_in_memory(url) && url.contains(":memory:") {
        let name = uuid::Uuid::new_v4().simple().to_string();
        return format!("sqlite:file:booking-{name}?mode=memory&cache=shared");
    }
    let is_sqlite_file = url.starts_with("sqlite:") && !is_in_memory(url);
    if is_sqlite_file && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

impl Db {
    /// Opens a pool on `url`; `synchronous` applies to SQLite only (PostgreSQL's own
    /// `synchronous_commit` is the database administrator's).
    pub async fn connect(
        url: &str,
        pool_size: u32,
        acquire_timeout: Duration,
        synchronous: SqliteSynchronous,
    ) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let url = normalise_url(url);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(sqlx::Error::Configuration(
                format!("unsupported database URL `{url}`: use sqlite:... or postgres://...")
                    .into(),
            ));
        };
        let options: AnyConnectOptions = url.parse()?;
        let in_memory = is_in_memory(&url);
        let mut pool = AnyPoolOptions::new()
            .max_connections(if in_memory { 1 } else { pool_size.max(1) })
            .acquire_timeout(acquire_timeout);
        if in_memory {
            // The in-memory database lives as long as its last connection: keep one forever.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            let pragmas = format!(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                 PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
                synchronous.pragma_value()
            );
            pool = pool.after_connect(move |conn, _| {
                let pragmas = pragmas.clone();
                Box::pin(async move {
                    conn.execute(pragmas.as_str()).await?;
                    Ok(())
                })
            });
        }
        let keeper = match in_memory {
            true => Some(Arc::new(std::sync::Mutex::new(
                <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?,
            ))),
            false => None,
        };
        let pool = pool.connect_with(options).await?;
        Ok(Self {
            _keeper: keeper,
            pool,
            backend,
            write_gate: Arc::new(Mutex::new(())),
            cluster_order: false,
            acquire_timeout,
        })
    }

    /// Orders writes across the servers of a cluster (PostgreSQL only; no-op on SQLite, whose
    /// file lock already admits one writer at a time on one machine).
    pub fn order_across_cluster(&mut self) {
        self.cluster_order = self.backend == Backend::Postgres;
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        }
    }

    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        // Bounded like a pool checkout: while the database is away, writes queued behind the
        // one waiting for a connection get their 503 as soon, instead of one by one.
        let gate = tokio::time::timeout(self.acquire_timeout, self.write_gate.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        let began_at = Instant::now();
        let span = tracing::info_span!("db.transaction", db.system = ?self.backend);
        let cluster = match self.cluster_order {
            true => Some(ClusterTurn::take(&self.pool, self.acquire_timeout).await?),
            false => None,
        };
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            gate,
            cluster,
            began_at,
            _span: span,
        })
    }

    /// (idle, busy) connections of the pool now.
    pub fn pool_use(&self) -> (usize, usize) {
        let idle = self.pool.num_idle();
        (idle, (self.pool.size() as usize).saturating_sub(idle))
    }

    /// Whether the database answers a trivial query (readiness).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Current time in microseconds since the Unix epoch: the unit of every stored instant.
pub fn now_micros() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

#[cfg(test)]
mod tests {
    use super::{Db, SqliteSynchronous, normalise_url};
    use std::time::Duration;

    async fn in_memory() -> Db {
        let sync = SqliteSynchronous::default();
        let db = Db::connect("sqlite::memory:", 8, Duration::from_secs(2), sync).await;
        db.unwrap()
    }

    #[tokio::test]
    async fn an_in_memory_database_outlives_the_pools_connection() {
        let db = in_memory().await;
        db.migrate().await.unwrap();
        // What a cancelled query does: the pool's connection is closed, a new one opened.
        let conn = db.pool.acquire().await.unwrap();
        sqlx::Connection::close(conn.detach()).await.unwrap();
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&db.pool)
            .await
            .expect("the tables are still there");
        assert_eq!(users, 0);
        let other = in_memory().await;
        let tables: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'users'")
                .fetch_one(&other.pool)
                .await
                .unwrap();
        assert_eq!(tables, 0, "another server's in-memory database is its own");
    }

    #[tokio::test]
    async fn every_sqlite_connection_runs_in_wal_with_the_chosen_synchronous() {
        let dir = std::env::temp_dir().join(format!("booking-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        // PRAGMA synchronous reads back as a number: 1 NORMAL, 2 FULL.
        for (mode, expected) in [(SqliteSynchronous::Full, 2), (SqliteSynchronous::Normal, 1)] {
            let url = format!("sqlite://{}", dir.join(format!("{mode:?}.db")).display());
            let db = Db::connect(&url, 3, Duration::from_secs(2), mode)
                .await
                .unwrap();
            // Three connections held at once: each was opened, and set up, on its own.
            let mut held = Vec::new();
            for _ in 0..3 {
                let mut conn = db.pool.acquire().await.unwrap();
                let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(
                    (synchronous, journal.as_str()),
                    (expected, "wal"),
                    "{mode:?}"
                );
                held.push(conn);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sqlite_files_are_created_when_missing() {
        assert_eq!(normalise_url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(
            normalise_url("sqlite://a.db?x=1"),
            "sqlite://a.db?x=1&mode=rwc"
        );
        assert_eq!(
            normalise_url("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        let memory = normalise_url("sqlite::memory:");
        assert!(
            memory.starts_with("sqlite:file:booking-")
                && memory.ends_with("?mode=memory&cache=shared"),
            "{memory}"
        );
        assert_ne!(
            memory,
            normalise_url("sqlite::memory:"),
            "each server its own"
        );
        assert_eq!(normalise_url("postgres://h/db"), "postgres://h/db");
    }
}
