//! The live socket, `GET /ws?access_token=<jwt>`: session events pushed to the
//! user's open sockets, and every socket closed the moment its token or session
//! stops being valid.
//!
//! Browsers cannot read the status of a refused upgrade, so token problems are
//! answered after the upgrade, with close codes the client acts on (see
//! [`crate::protocol::live`]). Only a cross-site `Origin` is refused before it
//! (403): that is no client of ours.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::extract::query_param;
use super::request_screen::{is_cross_site, peer};
use super::AppState;
use crate::auth::events::{LiveUpdate, SessionEvent};
use crate::auth::AuthError;
use super::health::Stage;
use crate::protocol::live::{
    ClientMessage, ServerMessage, CLOSE_GOING_AWAY, CLOSE_REVOKED, CLOSE_TOKEN, CLOSE_TOO_MANY, MAX_MESSAGE_BYTES,
    PATH, REASON_EXPIRED, REASON_GOING_AWAY, REASON_INVALID, REASON_REVOKED, REASON_TOO_MANY,
};
use crate::protocol::AccessClaims;

/// Sockets one user may hold open at once (tabs and devices together).
pub const MAX_SOCKETS_PER_USER: usize = 16;
/// How often expiry and revocation are checked besides the pushed events.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket that has not been heard from (not even a pong) this long is dropped.
const IDLE_AFTER: Duration = Duration::from_secs(60);
/// The closing handshake gets this long before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// A client gets this long to take each frame. One that has stopped reading
/// is dropped: waiting on it would hold its slot and stall every check,
/// its own close included.
const SEND_WAIT: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(upgrade))
}

/// How many sockets each user has open on this instance.
#[derive(Debug, Default)]
pub struct SocketCounts(Mutex<HashMap<String, usize>>);

impl SocketCounts {
    fn claim(self: &Arc<Self>, user_id: &str) -> Option<SocketSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(user_id.to_string()).or_default();
        if *count >= MAX_SOCKETS_PER_USER {
            return None;
        }
        *count += 1;
        crate::metrics::socket_opened();
        Some(SocketSlot {
            counts: self.clone(),
            user_id: user_id.to_string(),
        })
    }

    /// Open sockets on this instance (the closing included, until closed).
    pub fn total(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

/// One open socket, counted until dropped.
struct SocketSlot {
    counts: Arc<SocketCounts>,
    user_id: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        crate::metrics::socket_closed();
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

async fn upgrade(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    // Cross-site WebSocket hijacking: another site's page may open a socket
    // here, but its browser says where it comes from.
    if is_cross_site(&headers, peer(&extensions), state.auth.settings()) {
        return ApiError::CrossSite.into_response();
    }
    let token = query_param(query.as_deref(), "access_token");
    // Clients send at most a small `reauth`: a read buffer of that size, not
    // the library's 128 KiB, keeps a thousand sockets in a few MiB.
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(MAX_MESSAGE_BYTES)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(socket, state, token))
}

/// Why a socket is being closed: code and reason.
type Closing = (u16, &'static str);

const GOING_AWAY: Closing = (CLOSE_GOING_AWAY, REASON_GOING_AWAY);

fn closing_for(err: &AuthError) -> Closing {
    match err {
        AuthError::TokenExpired => (CLOSE_TOKEN, REASON_EXPIRED),
        AuthError::SessionRevoked => (CLOSE_REVOKED, REASON_REVOKED),
        err if err.is_server_fault() => {
            (axum::extract::ws::close_code::AGAIN, "unavailable")
        }
        _ => (CLOSE_TOKEN, REASON_INVALID),
    }
}

async fn serve_socket(mut socket: WebSocket, state: AppState, token: Option<String>) {
    // Subscribed before the token is checked: no revocation can fall between.
    let mut updates = state.auth.subscribe();
    let mut lifecycle = state.lifecycle.watch();
    let mut claims = match token.as_deref() {
        Some(token) => match state.auth.authenticate(token).await {
            Ok(claims) => claims,
            Err(err) => return close(socket, closing_for(&err)).await,
        },
        None => return close(socket, (CLOSE_TOKEN, REASON_INVALID)).await,
    };
    drop(token);
    let Some(_slot) = state.sockets.claim(&claims.sub) else {
        return close(socket, (CLOSE_TOO_MANY, REASON_TOO_MANY)).await;
    };
    if *lifecycle.borrow_and_update() == Stage::Stopping {
        return close(socket, GOING_AWAY).await;
    }
    if !send(&mut socket, &ready(&claims)).await {
        return;
    }

    let mut checks = tokio::time::interval(CHECK_EVERY);
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        let outcome = tokio::select! {
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => reauthenticate(&state, &mut claims, text.as_str()).await,
                    Some(Ok(Message::Binary(_))) => Step::Close((CLOSE_TOKEN, REASON_INVALID)),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Continue,
                    // Closed by the client (answered by the library), an
                    // oversized message, or a broken connection.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                }
            }
            update = updates.recv() => match update {
                Ok(LiveUpdate::Event(event)) => forward(&claims, &event),
                // Events were missed or notices lost: the revocation set knows.
                Ok(LiveUpdate::Resync) | Err(RecvError::Lagged(_)) => still_valid(&state, &claims),
                Err(RecvError::Closed) => return,
            },
            // The instance is shutting down: the client reconnects, to
            // another instance behind the same load balancer.
            changed = lifecycle.changed() => match changed {
                Ok(()) if *lifecycle.borrow() != Stage::Stopping => Step::Continue,
                _ => Step::Close(GOING_AWAY),
            },
            _ = checks.tick() => {
                if last_heard.elapsed() > IDLE_AFTER {
                    return;
                }
                if last_ping.elapsed() >= PING_EVERY {
                    last_ping = Instant::now();
                    if !deliver(&mut socket, Message::Ping(Default::default())).await {
                        return;
                    }
                }
                still_valid(&state, &claims)
            }
        };
        match outcome {
            Step::Continue => {}
            Step::Send(messages) => {
                for message in &messages {
                    if !send(&mut socket, message).await {
                        return;
                    }
                }
            }
            Step::Close(closing) => return close(socket, closing).await,
        }
    }
}

enum Step {
    Continue,
    Send(Vec<ServerMessage>),
    Close(Closing),
}

fn ready(claims: &AccessClaims) -> ServerMessage {
    ServerMessage::Ready {
        session_id: claims.sid.clone(),
        expires_at: claims.exp,
    }
}

/// No socket outlives its token or its session.
fn still_valid(state: &AppState, claims: &AccessClaims) -> Step {
    if state.auth.is_revoked(&claims.sid) {
        Step::Close((CLOSE_REVOKED, REASON_REVOKED))
    } else if claims.exp <= state.auth.now() {
        Step::Close((CLOSE_TOKEN, REASON_EXPIRED))
    } else {
        Step::Continue
    }
}

/// A `reauth` with a newer token of the same session moves the socket's expiry.
async fn reauthenticate(state: &AppState, claims: &mut Arc<AccessClaims>, text: &str) -> Step {
    let Ok(ClientMessage::Reauth { access_token }) = serde_json::from_str::<ClientMessage>(text) else {
        return Step::Close((CLOSE_TOKEN, REASON_INVALID));
    };
    match state.auth.authenticate(&access_token).await {
        Ok(newer) if newer.sid == claims.sid && newer.sub == claims.sub => {
            if newer.exp > claims.exp {
                *claims = newer;
            }
            Step::Send(vec![ready(claims)])
        }
        Ok(_) => Step::Close((CLOSE_TOKEN, REASON_INVALID)),
        Err(err) => Step::Close(closing_for(&err)),
    }
}

/// What this socket's user hears of an event; the end of its own session closes it.
fn forward(claims: &AccessClaims, event: &SessionEvent) -> Step {
    if event.user_id() != claims.sub {
        return Step::Continue;
    }
    match event {
        SessionEvent::SessionsRevoked { session_ids, .. } if session_ids.contains(&claims.sid) => {
            Step::Close((CLOSE_REVOKED, REASON_REVOKED))
        }
        SessionEvent::SessionsRevoked {
            session_ids,
            reason,
            at,
            ..
        } => Step::Send(
            session_ids
                .iter()
                .map(|session_id| ServerMessage::SessionRevoked {
                    session_id: session_id.clone(),
                    reason: reason.clone(),
                    at: *at,
                })
                .collect(),
        ),
        SessionEvent::SessionCreated {
            session_id,
            user_agent,
            ip,
            at,
            ..
        } if *session_id != claims.sid => Step::Send(vec![ServerMessage::SessionCreated {
            session_id: session_id.clone(),
            user_agent: user_agent.clone(),
            ip: ip.clone(),
            at: *at,
        }]),
        SessionEvent::SessionCreated { .. } => Step::Continue,
        SessionEvent::PasswordChanged { at, .. } => Step::Send(vec![ServerMessage::PasswordChanged { at: *at }]),
        SessionEvent::AccountChanged { change, at, .. } => Step::Send(vec![ServerMessage::AccountChanged {
            change: change.clone(),
            at: *at,
        }]),
        SessionEvent::Passkey {
            passkey_id,
            name,
            change,
            at,
            ..
        } => Step::Send(vec![ServerMessage::Passkey {
            passkey_id: passkey_id.clone(),
            name: name.clone(),
            change: *change,
            at: *at,
        }]),
    }
}

/// Whether `message` was sent.
async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    match serde_json::to_string(message) {
        Ok(text) => deliver(socket, Message::Text(text.into())).await,
        Err(_) => false,
    }
}

/// Whether `frame` was taken by the client within [`SEND_WAIT`].
async fn deliver(socket: &mut WebSocket, frame: Message) -> bool {
    matches!(tokio::time::timeout(SEND_WAIT, socket.send(frame)).await, Ok(Ok(())))
}

/// Sends the close frame, then waits briefly for the client's answer so the
/// close is clean (the browser then reports the code).
async fn close(mut socket: WebSocket, (code, reason): Closing) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if deliver(&mut socket, Message::Close(Some(frame))).await {
        let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
    }
}
