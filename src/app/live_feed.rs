//! What the live socket has told this page: its state and the latest events.
//! Provided as context on both sides; only the browser ever fills it (the
//! socket runs in `client::live`).

use leptos::prelude::*;

use crate::protocol::live::ServerMessage;

/// Events kept for display, newest first.
const KEPT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveStatus {
    /// No session, or not started yet (the server's render).
    Off,
    Connecting,
    Open,
    /// Gave up after several failed attempts: the user may try again.
    Down,
}

impl LiveStatus {
    /// The state's name, as the page's `data-state` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LiveFeed {
    pub status: RwSignal<LiveStatus>,
    pub events: RwSignal<Vec<ServerMessage>>,
    /// Bumped when a session of the user appeared or ended elsewhere.
    pub sessions_changed: RwSignal<u32>,
    /// Bumped by the "Reconnect" button.
    pub retry: RwSignal<u32>,
}

impl LiveFeed {
    pub fn new() -> Self {
        Self {
            status: RwSignal::new(LiveStatus::Off),
            events: RwSignal::new(Vec::new()),
            sessions_changed: RwSignal::new(0),
            retry: RwSignal::new(0),
        }
    }

    pub fn from_context() -> Self {
        use_context::<Self>().unwrap_or_default()
    }

    /// Takes one event the server pushed.
    pub fn push(&self, message: ServerMessage) {
        if matches!(
            message,
            ServerMessage::SessionCreated { .. } | ServerMessage::SessionRevoked { .. }
        ) {
            self.sessions_changed.update(|n| *n += 1);
        }
        self.events.update(|events| {
            events.insert(0, message);
            events.truncate(KEPT);
        });
    }
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self::new()
    }
}
