//! Database access shared by every domain module: one `AnyPool` over SQLite or PostgreSQL,
//! the migrations for each, and the write path that keeps the event log in `seq` order.
//!
//! All writes of one server process go through [`Db::begin_write`]: a process-wide gate,
//! then a transaction (`BEGIN IMMEDIATE` on SQLite so the write lock is taken up front). The
//! gate is held until the caller has emitted the events of the change, so that this process
//! commits and emits in `seq` order. Overlaps are still refused by the database itself (a
//! trigger on SQLite, an exclusion constraint on PostgreSQL), so several processes sharing
//! one database cannot double book either.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Serialises this process's writes from BEGIN to the end of their emission.
    write_gate: Arc<Mutex<()>>,
}

/// A write transaction holding the process write gate.
pub struct WriteTx {
    pub tx: Transaction<'static, Any>,
    gate: OwnedMutexGuard<()>,
    began_at: Instant,
    /// Open from BEGIN to COMMIT (or rollback, when the transaction is dropped).
    _span: tracing::Span,
}

/// Held after commit while the change's events are emitted; dropping it lets the next write in.
pub struct EmitTurn {
    _gate: OwnedMutexGuard<()>,
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
            committed_at: Instant::now(),
            took: self.began_at.elapsed(),
        })
    }
}

/// Normalises a database URL: a SQLite file is created when missing.
fn normalise_url(url: &str) -> String {
    let is_sqlite_file = url.starts_with("sqlite:") && !url.contains(":memory:");
    if is_sqlite_file && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

impl Db {
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, sqlx::Error> {
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
        let in_memory = url.contains(":memory:");
        let mut pool = AnyPoolOptions::new()
            .max_connections(if in_memory { 1 } else { pool_size.max(1) })
            .acquire_timeout(Duration::from_secs(5));
        if in_memory {
            // The in-memory database lives as long as its last connection: keep one forever.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self {
            pool,
            backend,
            write_gate: Arc::new(Mutex::new(())),
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        }
    }

    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        let gate = self.write_gate.clone().lock_owned().await;
        let began_at = Instant::now();
        let span = tracing::info_span!("db.transaction", db.system = ?self.backend);
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            gate,
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
    use super::normalise_url;

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
        assert_eq!(normalise_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(normalise_url("postgres://h/db"), "postgres://h/db");
    }
}
