//! Notices between server instances sharing a PostgreSQL database, through
//! `LISTEN`/`NOTIFY`. SQLite serves one instance, which needs none.

use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreError};
use crate::metrics::DatabaseTimer;

/// PostgreSQL refuses payloads of 8000 bytes or more.
pub const MAX_NOTICE_BYTES: usize = 7900;

impl Store {
    /// Sends `payload` to every listener on `channel`, this instance's included.
    /// Does nothing on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let _timer = DatabaseTimer::start("notify");
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts listening on `channel`, on a connection of its own. `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>, StoreError> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(channel).await?;
        Ok(Some(Listener(listener)))
    }
}

/// A connection waiting for notices.
pub struct Listener(PgListener);

impl Listener {
    /// The next notice's payload. `Ok(None)` after the connection was lost and
    /// made again: notices sent meanwhile are gone, so the caller catches up
    /// from the tables.
    pub async fn recv(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.0.try_recv().await?.map(|notice| notice.payload().to_string()))
    }
}
