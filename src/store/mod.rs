//! Storage: one pool over SQLite or PostgreSQL (sqlx's `Any` driver), plus on
//! SQLite one connection that every write goes through (`writer`), with the migrations
//! in `migrations/` embedded and applied at start. The SQL is written
//! once, in the subset both databases share (`$n` placeholders, TEXT and BIGINT).

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyQueryResult, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Execute, Executor};
use tokio::sync::OwnedMutexGuard;

mod audit;
mod keys;
mod limits;
mod mail;
mod notify;
mod passkeys;
mod refresh_tokens;
mod second_factor;
mod sessions;
mod users;
mod writer;

pub use audit::AuditRecord;
pub use keys::KeyRecord;
pub use limits::Rate;
pub use mail::{EmailState, MailPurpose, NewMailToken, OutboxMail, PasswordReset, Verified};
pub use notify::{Listener, MAX_NOTICE_BYTES};
pub use passkeys::{CeremonyKind, PasskeyRecord, Removal};
pub use refresh_tokens::{PresentedToken, Successor, TokenState};
pub use second_factor::{MfaChallenge, TotpRecord};
pub use sessions::{CreatedSession, NewSession, SessionRecord};
pub use users::UserRecord;
use writer::{SqliteWriter, SqliteWrites, WriterTurn, SQLITE_CONNECTION_PRAGMAS};

use crate::metrics::DatabaseTimer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("already exists")]
    Conflict,
    #[error("cannot create the database directory {path}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}

impl From<sqlx::Error> for StoreError {
    /// A database that cannot be reached is an outage (503, and it passes by
    /// itself), not a fault in the data or the SQL (500).
    fn from(err: sqlx::Error) -> Self {
        let outage = match &err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| is_outage_code(&code)),
            _ => false,
        };
        if outage {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

/// PostgreSQL's SQLSTATEs for a server that cannot serve us right now:
/// connection exceptions (08), shutdowns and restarts (57P01-57P03), too many
/// connections (53300), and a database closed to connections (55000, as
/// `ALLOW_CONNECTIONS false` answers).
fn is_outage_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55000")
}

/// A write transaction. On SQLite it runs on this instance's writing
/// connection, held (and with it this instance's turn to write) until the
/// transaction is committed or dropped; on PostgreSQL on a pooled connection.
pub(crate) struct WriteTransaction(Open);

enum Open {
    Pooled(sqlx::Transaction<'static, Any>),
    Writer(WriterTurn),
}

impl WriteTransaction {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self.0 {
            Open::Pooled(tx) => tx.commit().await,
            Open::Writer(mut turn) => {
                let committed = turn.run("COMMIT").await;
                turn.open = committed.is_err();
                committed
            }
        }
    }
}

impl Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &Self::Target {
        match &self.0 {
            Open::Pooled(tx) => tx,
            Open::Writer(WriterTurn(writer)) => &writer.conn,
        }
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match &mut self.0 {
            Open::Pooled(tx) => tx,
            Open::Writer(WriterTurn(writer)) => &mut writer.conn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the connection every write goes through, one at a time
    /// (see `begin_write` and `write_batch`).
    writer: Option<Arc<SqliteWrites>>,
    /// PostgreSQL only: where a listener for other instances' notices connects.
    /// Kept out of `Debug`: it may hold a password.
    listen_url: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database named by `url`, creating an SQLite file (and its
    /// directory) on first use, and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, prepare_sqlite(url)?)
        } else {
            (Backend::Postgres, url.to_string())
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace);
        if backend == Backend::Sqlite {
            // WAL is a property of the file: set it once, before the pool opens
            // several connections that would compete for the switch.
            let mut conn = options.connect().await.map_err(StoreError::Unavailable)?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.close().await?;
        }
        let writer = match backend {
            Backend::Sqlite => Some(SqliteWrites::new(
                SqliteWriter::connect(options.clone()).await.map_err(StoreError::Unavailable)?,
            )),
            Backend::Postgres => None,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(3))
            // A SQLite connection is a file on a thread of sqlx's own: nothing
            // breaks it between uses, and a ping before every acquire would be
            // one more round trip to that thread per query. A PostgreSQL
            // connection can drop with the server, and is checked.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::Unavailable)?;
        let listen_url = (backend == Backend::Postgres).then(|| url.clone());
        let store = Self {
            pool,
            backend,
            writer,
            listen_url,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Whether every migration this binary knows has been applied
    /// successfully (readiness: another instance may be migrating).
    pub async fn migrations_applied(&self) -> Result<bool, StoreError> {
        let _timer = DatabaseTimer::start("migrations_applied");
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await?;
        Ok(MIGRATOR.iter().all(|migration| applied.contains(&migration.version)))
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("ping");
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite, which has one writer at
    /// a time, this instance's writers first queue in memory for the writing
    /// connection: waiting on SQLite's busy timeout instead means sleeping in
    /// steps of up to 100 ms, hundreds of milliseconds at the tail under
    /// concurrent refreshes. The transaction then takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so another process's writer is still waited for,
    /// never a failed upgrade.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        if let Some(writer) = self.writer().await? {
            // Marked open before BEGIN is sent: if this is cancelled or fails,
            // the rollback that follows finds out whether it began.
            let mut turn = WriterTurn(writer);
            turn.open = true;
            turn.run("BEGIN IMMEDIATE").await.map_err(StoreError::Unavailable)?;
            return Ok(WriteTransaction(Open::Writer(turn)));
        }
        // sqlx 0.8 leaves the connection inside its transaction when `begin`
        // is cancelled between sending BEGIN and returning (a client hanging up
        // mid-request), and that connection goes back to the pool so. A task
        // of its own always finishes the begin; if its caller is gone, the
        // transaction it returns is dropped there, which rolls it back.
        let pool = self.pool.clone();
        let begun = tokio::spawn(async move {
            let conn = pool.acquire().await?;
            sqlx::Transaction::begin(conn, None).await
        })
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        Ok(WriteTransaction(Open::Pooled(begun.map_err(StoreError::Unavailable)?)))
    }

    /// One write outside a transaction: on SQLite on the writing connection
    /// (without it, the write would meet the lock in SQLite's busy handler,
    /// and a transaction could sleep there behind it), on PostgreSQL on the
    /// pool.
    pub(crate) async fn write<'q>(&self, query: Query<'q, Any, AnyArguments<'q>>) -> Result<AnyQueryResult, StoreError> {
        let Some(mut writer) = self.writer().await? else {
            return Ok(query.execute(&self.pool).await?);
        };
        let done = query.execute(&mut writer.conn).await;
        writer.note(&done);
        Ok(done?)
    }

    /// `query`, the writes of one transaction, and the rows it returned: on
    /// SQLite statements without their `BEGIN` and `COMMIT`, which the
    /// writing connection adds, committing them together with other batches
    /// that wait meanwhile (see `writer`); on PostgreSQL one statement, its
    /// own transaction. Answered once committed. What it wrote is told by its
    /// rows, never by a count: sqlx counts a SQLite `BEGIN` as changing what
    /// the statement before it changed. Its parameters are owned (`'static`),
    /// since another task may write it.
    pub(crate) async fn write_batch(&self, mut query: Query<'static, Any, AnyArguments<'static>>) -> Result<Vec<AnyRow>, StoreError> {
        let Some(writes) = &self.writer else {
            return Ok(query.fetch_all(&self.pool).await?);
        };
        let sql = query.sql();
        let args = query
            .take_arguments()
            .map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?
            .unwrap_or_default();
        writes.write(sql, args).await
    }

    /// SQLite's writing connection, this instance's turn to write, ready for
    /// a write; `None` on PostgreSQL.
    async fn writer(&self) -> Result<Option<OwnedMutexGuard<SqliteWriter>>, StoreError> {
        let Some(writes) = &self.writer else {
            return Ok(None);
        };
        Ok(Some(writes.turn().await.map_err(StoreError::Unavailable)?))
    }

    /// A connection from the pool, for reads that take one of their own
    /// (on PostgreSQL, a rotation's claim goes on to write on it).
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the database: on SQLite once the writing connection has
    /// committed the batches it holds.
    pub async fn close(&self) {
        if let Some(writes) = &self.writer {
            writes.settle().await;
        }
        self.pool.close().await;
    }

    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// Makes sure the SQLite file's directory exists and asks for the file to be
/// created if missing (`mode=rwc`), unless the URL already says otherwise.
fn prepare_sqlite(url: &str) -> Result<String, StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
        }
    }
    Ok(if query.contains("mode=") {
        url.to_string()
    } else if query.is_empty() {
        format!("sqlite://{path}?mode=rwc")
    } else {
        format!("sqlite://{path}?{query}&mode=rwc")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join("gatehouse-store-url-test");
        let file = dir.join("db.sqlite");
        let url = format!("sqlite://{}", file.display());
        let prepared = prepare_sqlite(&url).unwrap();
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(dir.is_dir());
        assert_eq!(prepare_sqlite("sqlite://x.db?mode=ro").unwrap(), "sqlite://x.db?mode=ro");
    }

    /// A write transaction dropped before its commit (a client that hung up)
    /// writes nothing and soon lets another process's writer in, with no
    /// further write from this instance to roll it back.
    #[tokio::test]
    async fn a_dropped_write_transaction_is_rolled_back_at_once() {
        let dir = std::env::temp_dir().join(format!("gatehouse-dropped-write-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}", dir.join("db.sqlite").display());
        let store = Store::open(&url).await.unwrap();
        let insert = "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ('k', 'p', 'q', 1)";
        {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query(insert).execute(&mut *tx).await.unwrap();
        }
        let mut other = AnyConnectOptions::from_str(&url).unwrap().connect().await.unwrap();
        other.execute("PRAGMA busy_timeout = 2000").await.unwrap();
        other.execute("BEGIN IMMEDIATE").await.unwrap();
        other.execute("ROLLBACK").await.unwrap();
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&mut other).await.unwrap();
        assert_eq!(kept, 0);
        store.write(sqlx::query(insert)).await.unwrap();
        let written: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&mut other).await.unwrap();
        assert_eq!(written, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Batches that queue while the writing connection is busy are committed
    /// together, yet each keeps its own outcome: the one that fails leaves
    /// none of its rows, every other is answered with its rows and kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_committed_together_keep_their_own_outcomes() {
        let dir = std::env::temp_dir().join(format!("gatehouse-group-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&format!("sqlite://{}", dir.join("db.sqlite").display())).await.unwrap();
        const TWO_KEYS: &str = "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, 'p', 'q', 1);
             INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($2, 'p', 'q', 1) RETURNING kid";
        let busy = store.begin_write().await.unwrap();
        let batches: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                // Batch 7 inserts its first key twice.
                let second = if i == 7 { format!("{i}a") } else { format!("{i}b") };
                tokio::spawn(async move {
                    store.write_batch(sqlx::query(TWO_KEYS).bind(format!("{i}a")).bind(second)).await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        busy.commit().await.unwrap();
        for (i, batch) in batches.into_iter().enumerate() {
            match batch.await.unwrap() {
                Ok(rows) if i != 7 => assert_eq!(rows.len(), 1, "batch {i}"),
                Err(StoreError::Database(_)) if i == 7 => {}
                other => panic!("batch {i}: {:?}", other.map(|rows| rows.len())),
            }
        }
        let kids: Vec<String> = sqlx::query_scalar("SELECT kid FROM signing_keys").fetch_all(&store.pool).await.unwrap();
        assert_eq!(kids.len(), 38);
        assert!(!kids.iter().any(|kid| kid.starts_with('7')));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
