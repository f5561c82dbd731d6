//! SQLite's one writing connection per instance, and group commit on it.
//!
//! SQLite has one writer at a time anyway. Writing on one connection that
//! nothing else uses spares each write a pool checkout and sqlx's ping on
//! every release (a round trip to the connection's thread), and keeps that
//! connection's page cache, which a write on another connection would
//! invalidate.
//!
//! Each commit waits for the disk (`fsync`, SQLite's default `synchronous =
//! FULL`, kept so that an answered revocation or rotation survives a power
//! cut). One commit per login or refresh would make the disk's flush time
//! the bound on them, with the CPUs half idle; so batches that arrive while
//! the connection is busy are written together, each inside a savepoint of
//! one transaction, and answered after its one commit (group commit, as
//! PostgreSQL does on its own).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::{AnyConnection, ConnectOptions, Executor};
use tokio::sync::{oneshot, Mutex, OwnedMutexGuard};

use super::StoreError;

/// Set on every SQLite connection, the pool's and the writer's.
pub(super) const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000";

/// At most this many batches share one transaction, so a long queue is
/// written in several commits and a transaction that waits for the
/// connection (a password change, say) gets its turn between them.
const MAX_GROUP: usize = 64;

pub(super) struct SqliteWriter {
    pub(super) conn: AnyConnection,
    options: AnyConnectOptions,
    /// A transaction was begun and neither committed nor rolled back.
    pub(super) open: bool,
    /// The connection failed as a connection (its thread gone, an I/O
    /// error): made again before the next write.
    broken: bool,
}

impl SqliteWriter {
    pub(super) async fn connect(options: AnyConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = options.connect().await?;
        conn.execute(SQLITE_CONNECTION_PRAGMAS).await?;
        Ok(Self {
            conn,
            options,
            open: false,
            broken: false,
        })
    }

    /// Ready for a write: made again if broken, and out of any transaction a
    /// dropped writer left open.
    pub(super) async fn ready(&mut self) -> Result<(), sqlx::Error> {
        if self.broken {
            *self = Self::connect(self.options.clone()).await?;
        }
        if self.open {
            // An error here means there was nothing left to roll back (the
            // transaction never began, or its commit went through).
            let _ = self.run("ROLLBACK").await;
            self.open = false;
        }
        Ok(())
    }

    pub(super) async fn run(&mut self, statement: &str) -> Result<(), sqlx::Error> {
        let done = self.conn.execute(statement).await.map(|_| ());
        self.note(&done);
        done
    }

    pub(super) fn note<T>(&mut self, result: &Result<T, sqlx::Error>) {
        if let Err(sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_)) = result {
            self.broken = true;
        }
    }

    /// `sql` with `args`, and the rows it returned.
    async fn fetch(&mut self, sql: &str, args: AnyArguments<'static>) -> Result<Vec<AnyRow>, sqlx::Error> {
        let rows = sqlx::query_with(sql, args).fetch_all(&mut self.conn).await;
        self.note(&rows);
        rows
    }

    /// Writes `group`, answering each batch once its writes are committed
    /// (or with why they are not).
    async fn write_group(&mut self, mut group: Vec<Batch>) {
        if let Err(err) = self.ready().await {
            return fail(group.into_iter().map(|batch| batch.reply).collect(), &err);
        }
        self.open = true;
        if group.len() == 1 {
            if let Some(batch) = group.pop() {
                // Alone: its transaction around it, one round trip.
                let rows = self.fetch(&format!("BEGIN IMMEDIATE; {}; COMMIT", batch.sql), batch.args).await;
                self.open = rows.is_err();
                let _ = batch.reply.send(rows.map_err(StoreError::from));
            }
        } else if let Err(err) = self.run("BEGIN IMMEDIATE").await {
            fail(group.into_iter().map(|batch| batch.reply).collect(), &err);
        } else {
            let mut written = Vec::with_capacity(group.len());
            let mut pending = group.into_iter();
            let mut aborted = None;
            for batch in pending.by_ref() {
                let sql = format!("SAVEPOINT batch; {}; RELEASE batch", batch.sql);
                match self.fetch(&sql, batch.args).await {
                    Ok(rows) => written.push((batch.reply, rows)),
                    Err(err) => {
                        // Its own writes undone; the others' kept.
                        let undone = self.run("ROLLBACK TO batch; RELEASE batch").await;
                        let _ = batch.reply.send(Err(err.into()));
                        if let Err(err) = undone {
                            aborted = Some(err);
                            break;
                        }
                    }
                }
            }
            let committed = match aborted {
                Some(err) => Err(err),
                None => self.run("COMMIT").await,
            };
            match committed {
                Ok(()) => {
                    self.open = false;
                    for (reply, rows) in written {
                        let _ = reply.send(Ok(rows));
                    }
                }
                Err(err) => {
                    let replies = written.into_iter().map(|(reply, _)| reply);
                    fail(replies.chain(pending.map(|batch| batch.reply)).collect(), &err);
                }
            }
        }
        // Whatever failed is rolled back now, so an idle instance does not
        // keep SQLite's write lock from other processes.
        if self.open {
            let _ = self.ready().await;
        }
    }
}

/// A transaction's writes, waiting for the writing connection.
pub(super) struct Batch {
    /// The statements, without `BEGIN` or `COMMIT`: the writer adds them.
    sql: &'static str,
    args: AnyArguments<'static>,
    reply: Reply,
}

/// Where a batch's rows, or why it was not written, go.
type Reply = oneshot::Sender<Result<Vec<AnyRow>, StoreError>>;

/// Every batch of a transaction that could not begin or commit, or whose
/// savepoint could not be undone, is told so. They share one error, which each answer carries as text: as an outage,
/// since what stops SQLite from beginning or committing is a lock held too
/// long by another process or a disk that failed.
fn fail(replies: Vec<Reply>, err: &sqlx::Error) {
    tracing::warn!(error = %err, batches = replies.len(), "SQLite group commit failed");
    for reply in replies {
        let _ = reply.send(Err(StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(
            err.to_string(),
        )))));
    }
}

/// The writing connection and the batches waiting for it.
pub(super) struct SqliteWrites {
    connection: Arc<Mutex<SqliteWriter>>,
    waiting: SyncMutex<Vec<Batch>>,
    /// A task that will take the waiting batches is on its way.
    drainer_scheduled: AtomicBool,
}

impl SqliteWrites {
    pub(super) fn new(writer: SqliteWriter) -> Arc<Self> {
        Arc::new(Self {
            connection: Arc::new(Mutex::new(writer)),
            waiting: SyncMutex::new(Vec::new()),
            drainer_scheduled: AtomicBool::new(false),
        })
    }

    /// The writing connection, this instance's turn to write, ready.
    pub(super) async fn turn(&self) -> Result<OwnedMutexGuard<SqliteWriter>, sqlx::Error> {
        let mut writer = self.connection.clone().lock_owned().await;
        writer.ready().await?;
        Ok(writer)
    }

    /// Writes `sql` (statements without their `BEGIN` and `COMMIT`) with
    /// `args` as one transaction, possibly committed together with others,
    /// and returns its rows once committed. A task of its own does the
    /// writing, so a caller that goes away never leaves a group half written.
    pub(super) async fn write(self: &Arc<Self>, sql: &'static str, args: AnyArguments<'static>) -> Result<Vec<AnyRow>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.waiting().push(Batch { sql, args, reply });
        self.schedule_drainer();
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?
    }

    /// Returns once every batch handed in so far has been committed (or
    /// answered with why not) and no transaction holds the connection:
    /// for a shutdown, after the requests that wrote have finished.
    pub(super) async fn settle(self: &Arc<Self>) {
        loop {
            let mut writer = self.connection.clone().lock_owned().await;
            if self.waiting().is_empty() {
                // A transaction whose request was cut short is rolled back.
                let _ = writer.ready().await;
                return;
            }
            drop(writer);
            // The drainer writes them; looked at again shortly.
            self.schedule_drainer();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Batch>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schedule_drainer(self: &Arc<Self>) {
        if !self.drainer_scheduled.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().drain());
        }
    }

    /// Takes the connection, then every batch waiting by then (up to
    /// [`MAX_GROUP`]), and writes them as one group. Batches that arrive
    /// meanwhile schedule the next drainer, which waits for this one.
    async fn drain(self: Arc<Self>) {
        let mut writer = self.connection.clone().lock_owned().await;
        self.drainer_scheduled.store(false, Ordering::Release);
        let group: Vec<Batch> = {
            let mut waiting = self.waiting();
            let take = waiting.len().min(MAX_GROUP);
            waiting.drain(..take).collect()
        };
        if !group.is_empty() {
            writer.write_group(group).await;
        }
        drop(writer);
        if !self.waiting().is_empty() {
            self.schedule_drainer();
        }
    }
}

/// The writing connection held by a transaction.
pub(super) struct WriterTurn(pub(super) OwnedMutexGuard<SqliteWriter>);

impl Deref for WriterTurn {
    type Target = SqliteWriter;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for WriterTurn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for WriterTurn {
    /// A transaction dropped before its commit (an error, or a client that
    /// hung up) is rolled back by the writer's next user; a task does it now,
    /// so an idle instance does not keep SQLite's write lock from other
    /// processes meanwhile.
    fn drop(&mut self) {
        if self.0.open {
            let writer = OwnedMutexGuard::mutex(&self.0).clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = writer.lock_owned().await.ready().await;
                });
            }
        }
    }
}
