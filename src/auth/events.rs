//! What happens to sessions, told to whoever listens: the live sockets of this
//! instance, and every other instance sharing the PostgreSQL database (through
//! `LISTEN`/`NOTIFY`), whose in-memory set of revoked sessions stays in sync
//! this way. A notice lost while an instance was disconnected is caught up from
//! the tables when it reconnects, and by the periodic upkeep besides.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{Auth, WithSources};

/// The PostgreSQL channel instances tell each other on.
pub const CHANNEL: &str = "gatehouse_session_events";
/// Events a slow socket may fall behind by before it must catch up from the
/// revocation set instead.
const LOCAL_BACKLOG: usize = 1024;
/// Session ids per notice, well inside PostgreSQL's payload limit.
const IDS_PER_NOTICE: usize = 100;
const RELAY_RETRY_MAX: Duration = Duration::from_secs(30);

/// Something that happened to a user's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A login or registration started a session.
    SessionCreated {
        user_id: String,
        session_id: String,
        user_agent: Option<String>,
        ip: Option<String>,
        at: i64,
    },
    /// Sessions ended: logout, logout everywhere, revoked by the user, password
    /// change or refresh-token reuse (`reason`).
    SessionsRevoked {
        user_id: String,
        session_ids: Vec<String>,
        reason: String,
        at: i64,
    },
    /// The password changed; `session_id` is the session that changed it.
    PasswordChanged { user_id: String, session_id: String, at: i64 },
    /// Something else that protects the account changed (`change`: e.g.
    /// `totp_enabled`, `recovery_code_used`).
    AccountChanged { user_id: String, change: String, at: i64 },
    /// A passkey was added, used to sign in, renamed or removed (`change`).
    Passkey {
        user_id: String,
        passkey_id: String,
        name: String,
        change: PasskeyChange,
        at: i64,
    },
}

pub use crate::protocol::live::PasskeyChange;

impl SessionEvent {
    pub fn user_id(&self) -> &str {
        match self {
            Self::SessionCreated { user_id, .. }
            | Self::SessionsRevoked { user_id, .. }
            | Self::PasswordChanged { user_id, .. }
            | Self::AccountChanged { user_id, .. }
            | Self::Passkey { user_id, .. } => user_id,
        }
    }
}

/// What the sockets of this instance hear.
#[derive(Debug, Clone)]
pub enum LiveUpdate {
    Event(Arc<SessionEvent>),
    /// Notices may have been missed: every socket checks its session again.
    Resync,
}

/// How an event travels between instances: who sent it, so the sender does not
/// apply it twice.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    origin: String,
    event: SessionEvent,
}

/// The local fan-out to sockets, and this instance's name among its peers.
#[derive(Debug)]
pub struct EventBus {
    instance: String,
    local: broadcast::Sender<LiveUpdate>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self {
            instance: uuid::Uuid::new_v4().to_string(),
            local: broadcast::channel(LOCAL_BACKLOG).0,
        }
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<LiveUpdate> {
        self.local.subscribe()
    }

    pub(super) fn deliver_locally(&self, update: LiveUpdate) {
        // No receiver (no open socket) is not an error.
        let _ = self.local.send(update);
    }

    /// The notices that carry `event` to other instances: revocations of many
    /// sessions are split so each payload stays small.
    fn notices(&self, event: &SessionEvent) -> Vec<String> {
        let parts = match event {
            SessionEvent::SessionsRevoked {
                user_id,
                session_ids,
                reason,
                at,
            } if session_ids.len() > IDS_PER_NOTICE => session_ids
                .chunks(IDS_PER_NOTICE)
                .map(|ids| SessionEvent::SessionsRevoked {
                    user_id: user_id.clone(),
                    session_ids: ids.to_vec(),
                    reason: reason.clone(),
                    at: *at,
                })
                .collect(),
            other => vec![other.clone()],
        };
        parts
            .into_iter()
            .filter_map(|event| {
                serde_json::to_string(&Notice {
                    origin: self.instance.clone(),
                    event,
                })
                .ok()
            })
            .filter(|payload| payload.len() <= crate::store::MAX_NOTICE_BYTES)
            .collect()
    }
}

impl Auth {
    /// Session events as they happen, on this instance and the others.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveUpdate> {
        self.events.subscribe()
    }

    /// Tells this instance's sockets at once, then the other instances.
    /// Revocations are already in the database and in this instance's memory:
    /// a notice that cannot be sent only delays the others until their upkeep.
    pub(super) async fn publish(&self, event: SessionEvent) {
        for payload in self.events.notices(&event) {
            if let Err(err) = self.store.notify(CHANNEL, &payload).await {
                tracing::warn!(error = %WithSources(&err), "could not tell other instances about a session event");
            }
        }
        self.events.deliver_locally(LiveUpdate::Event(Arc::new(event)));
    }

    /// A notice from another instance: revocations join the in-memory set
    /// before the local sockets hear of them.
    fn receive_notice(&self, payload: &str) {
        let Ok(notice) = serde_json::from_str::<Notice>(payload) else {
            tracing::warn!("ignored a malformed session notice");
            return;
        };
        if notice.origin == self.events.instance {
            return;
        }
        if let SessionEvent::SessionsRevoked { session_ids, at, .. } = &notice.event {
            for session_id in session_ids {
                self.revoked.insert(session_id, *at);
            }
        }
        self.events.deliver_locally(LiveUpdate::Event(Arc::new(notice.event)));
    }

    /// After notices may have been missed: revocations from the tables, and
    /// every socket checks its session again.
    async fn catch_up(&self) {
        if let Err(err) = self.load_revocations(self.now()).await {
            tracing::warn!(error = %WithSources(&err), "could not catch up on revocations");
        }
        self.events.deliver_locally(LiveUpdate::Resync);
    }
}

/// Hears of revocations made by other processes for as long as `auth` lives.
/// On PostgreSQL, other instances' notices, reconnecting with backoff when the
/// database goes away. On SQLite the other process is the command line
/// (`gatehouse user set-role`), which no notice reaches: the revocations are
/// read every [`SQLITE_POLL`] instead (one indexed read).
pub fn spawn_relay(auth: &Arc<Auth>) -> tokio::task::JoinHandle<()> {
    let auth = Arc::downgrade(auth);
    match auth.upgrade().map(|a| a.store().backend()) {
        Some(crate::store::Backend::Postgres) => tokio::spawn(relay(auth)),
        _ => tokio::spawn(poll_revocations(auth)),
    }
}

/// How often an instance on SQLite reads the revocations made elsewhere:
/// twice a second, so a change made from the command line takes effect
/// within one.
const SQLITE_POLL: Duration = Duration::from_millis(500);

async fn poll_revocations(auth: Weak<Auth>) {
    let mut every = tokio::time::interval(SQLITE_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(auth) = auth.upgrade() else {
            return;
        };
        match auth.read_new_revocations().await {
            Ok(true) => auth.events.deliver_locally(LiveUpdate::Resync),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %WithSources(&err), "could not read new revocations"),
        }
    }
}

async fn relay(auth: Weak<Auth>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let Some(store) = auth.upgrade().map(|a| a.store().clone()) else {
            return;
        };
        match store.listen(CHANNEL).await {
            Ok(Some(mut listener)) => {
                retry = Duration::from_secs(1);
                // Whatever was sent before this listener existed is in the tables.
                match auth.upgrade() {
                    Some(auth) => auth.catch_up().await,
                    None => return,
                }
                loop {
                    let received = listener.recv().await;
                    let Some(auth) = auth.upgrade() else {
                        return;
                    };
                    match received {
                        Ok(Some(payload)) => auth.receive_notice(&payload),
                        Ok(None) => auth.catch_up().await,
                        Err(err) => {
                            tracing::warn!(error = %WithSources(&err), "lost the connection for session notices");
                            break;
                        }
                    }
                }
            }
            Ok(None) => return,
            Err(err) => tracing::warn!(error = %WithSources(&err), "cannot listen for session notices"),
        }
        if store.is_closed() {
            return;
        }
        drop(store);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RELAY_RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_revocations_are_split_into_small_notices() {
        let bus = EventBus::default();
        let event = SessionEvent::SessionsRevoked {
            user_id: "u".into(),
            session_ids: (0..250).map(|i| format!("{i:036}")).collect(),
            reason: "logout_all".into(),
            at: 1,
        };
        let notices = bus.notices(&event);
        assert_eq!(notices.len(), 3);
        let ids: usize = notices
            .iter()
            .map(|n| match serde_json::from_str::<Notice>(n).unwrap().event {
                SessionEvent::SessionsRevoked { session_ids, .. } => session_ids.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(ids, 250);
        assert!(notices.iter().all(|n| n.len() <= crate::store::MAX_NOTICE_BYTES));
    }
}
