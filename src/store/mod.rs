//! Storage: one pool over SQLite or PostgreSQL (sqlx's `Any` driver), with the
//! migrations in `migrations/` embedded and applied at start. The SQL is written
//! once, in the subset both databases share (`$n` placeholders, TEXT and BIGINT).

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor};

mod audit;
mod keys;
mod notify;
mod sessions;
mod users;

pub use audit::AuditRecord;
pub use keys::KeyRecord;
pub use notify::{Listener, MAX_NOTICE_BYTES};
pub use sessions::{NewSession, PageLookup, Rotation, RotationRules, SessionRecord, Successor};
pub use users::UserRecord;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("already exists")]
    Conflict,
    #[error("cannot create the database directory {path}: {source}")]
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

/// A write transaction, holding this instance's turn to write on SQLite until
/// it is committed, rolled back or dropped.
pub(crate) struct WriteTransaction {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTransaction {
    type Target = sqlx::Transaction<'static, sqlx::Any>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
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
    /// SQLite only: whose turn it is to write (see `begin_write`).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
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
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000")
                            .await?;
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
            write_turn: (backend == Backend::Sqlite).then(Arc::default),
            listen_url,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite, which has one writer at
    /// a time, this instance's writers first queue in memory for their turn:
    /// waiting on SQLite's busy timeout instead means sleeping in steps of up to
    /// 100 ms, hundreds of milliseconds at the tail under concurrent refreshes.
    /// The transaction then takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// another process's writer is still waited for, never a failed upgrade.
    pub(crate) async fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_on(None).await
    }

    /// As [`Store::begin_write`], on `held` if given (a connection the caller
    /// has just read with) instead of one acquired from the pool.
    pub(crate) async fn begin_write_on(&self, held: Option<PoolConnection<Any>>) -> Result<WriteTransaction, StoreError> {
        let turn = self.write_turn().await;
        // sqlx 0.8 leaves the connection inside its transaction when `begin`
        // is cancelled between sending BEGIN and returning (a client hanging up
        // mid-request): on SQLite that connection then keeps the write lock.
        // A task of its own always finishes the begin; if its caller is gone,
        // the transaction it returns is dropped there, which rolls it back.
        let (pool, backend) = (self.pool.clone(), self.backend);
        let begun = tokio::spawn(async move {
            let conn = match held {
                Some(conn) => conn,
                None => pool.acquire().await?,
            };
            let statement = (backend == Backend::Sqlite).then_some(Cow::Borrowed("BEGIN IMMEDIATE"));
            sqlx::Transaction::begin(conn, statement).await
        })
        .await
        .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        Ok(WriteTransaction {
            tx: begun.map_err(StoreError::Unavailable)?,
            _turn: turn,
        })
    }

    /// This instance's turn to write on SQLite (see `begin_write`), taken by
    /// a single write outside a transaction too: without it, that write would
    /// meet the lock in SQLite's busy handler, and a transaction holding the
    /// turn could sleep there behind it.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        }
    }

    /// A connection from the pool, for reads that take one of their own
    /// (on PostgreSQL, `rotate_refresh_token` goes on to write on it).
    pub(crate) async fn acquire(&self) -> Result<PoolConnection<Any>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
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
}
