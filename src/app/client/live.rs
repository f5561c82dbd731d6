//! The live socket in the browser. It runs while the store holds a session:
//! - closed with 4001 (token) or 1008 (session): refresh first, then reconnect
//!   with the new token; a refused refresh signs out (the shared refresh sends
//!   the user to `/login`). A token known to be bad is never sent again.
//! - dropped by the network, or closed with 1001 by a server shutting down:
//!   reconnect with exponential backoff and jitter (behind a load balancer,
//!   to another instance), refreshing first if the token has expired
//!   meanwhile; a few times, then wait for the user's "Reconnect". Never a
//!   sign-out: the session lives in the database, not in the instance.
//! - a newer token of the same session (refreshed ahead of expiry, or by
//!   another tab) re-authenticates the open socket instead of reconnecting.

use std::time::Duration;

use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, WebSocketError};
use gloo_timers::future::sleep;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::session::refresh_or_sign_out;
use super::transport::ClientError;
use crate::app::auth_store::{now_seconds, AccessToken, AuthStore};
use crate::app::live_feed::{LiveFeed, LiveStatus};
use crate::protocol::live::{ClientMessage, ServerMessage, CLOSE_REVOKED, CLOSE_TOKEN, PATH};

/// Failed attempts in a row before waiting for the user.
const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF_MS: u64 = 500;
const MAX_BACKOFF_MS: u64 = 15_000;
/// How often an open socket looks for a newer token or the end of the session.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// How a connection ended.
enum Ended {
    /// 4001 or 1008: the token or the session is no longer good.
    Refused { was_open: bool },
    /// Anything else: the network, a restart or shutdown (1001), a full server.
    Dropped { was_open: bool },
    /// The session ended in this page (logout).
    SignedOut,
}

pub fn start(store: AuthStore, feed: LiveFeed) {
    spawn_local(run(store, feed));
}

async fn run(store: AuthStore, feed: LiveFeed) {
    let mut failures: u32 = 0;
    loop {
        if store.has_ended() {
            feed.status.set(LiveStatus::Off);
            return;
        }
        let Some(token) = store.current() else {
            feed.status.set(LiveStatus::Off);
            sleep(WATCH_EVERY).await;
            continue;
        };
        let token = if token.is_active(now_seconds()) {
            Ok(token)
        } else {
            refresh_or_sign_out(store, Some(token)).await
        };
        let ended = match token {
            Ok(token) => connect(store, feed, token).await,
            Err(ClientError::SignedOut) => Ended::SignedOut,
            Err(_) => Ended::Dropped { was_open: false },
        };
        match ended {
            Ended::SignedOut => {
                feed.status.set(LiveStatus::Off);
                return;
            }
            Ended::Refused { .. } if store.has_ended() => {
                feed.status.set(LiveStatus::Off);
                return;
            }
            Ended::Refused { was_open } => {
                feed.status.set(LiveStatus::Connecting);
                let stale = store.current();
                match refresh_or_sign_out(store, stale).await {
                    // A socket that worked until its token expired comes back at
                    // once; one refused straight away backs off like a failure,
                    // so a server that keeps refusing is not hammered.
                    Ok(_) if was_open => failures = 0,
                    Ok(_) => failures += 1,
                    Err(ClientError::SignedOut) => {
                        feed.status.set(LiveStatus::Off);
                        return;
                    }
                    Err(_) => failures += 1,
                }
            }
            Ended::Dropped { was_open } => {
                failures = if was_open { 1 } else { failures + 1 };
            }
        }
        if failures == 0 {
            continue;
        }
        if failures >= MAX_ATTEMPTS {
            feed.status.set(LiveStatus::Down);
            let asked = feed.retry.get_untracked();
            while feed.retry.get_untracked() == asked && !store.has_ended() {
                sleep(WATCH_EVERY).await;
            }
            failures = 0;
            continue;
        }
        feed.status.set(LiveStatus::Connecting);
        sleep(backoff(failures)).await;
    }
}

/// Exponential, capped, with full jitter: tabs and devices that lost the same
/// server do not all come back at the same instant.
fn backoff(failures: u32) -> Duration {
    let ceiling = (FIRST_BACKOFF_MS << failures.min(10)).min(MAX_BACKOFF_MS);
    let jittered = (js_sys::Math::random() * ceiling as f64) as u64;
    Duration::from_millis(jittered.max(100))
}

fn socket_url(token: &AccessToken) -> Option<String> {
    let location = window().location();
    let scheme = if location.protocol().ok()? == "https:" { "wss:" } else { "ws:" };
    // The token is base64url and dots: nothing to escape.
    Some(format!("{scheme}//{}{PATH}?access_token={}", location.host().ok()?, token.as_str()))
}

async fn connect(store: AuthStore, feed: LiveFeed, token: AccessToken) -> Ended {
    feed.status.set(LiveStatus::Connecting);
    let Some(socket) = socket_url(&token).and_then(|url| WebSocket::open(&url).ok()) else {
        return Ended::Dropped { was_open: false };
    };
    let (mut sink, mut stream) = socket.split();
    let mut current = token;
    let mut was_open = false;
    loop {
        let next = stream.next().fuse();
        let watch = sleep(WATCH_EVERY).fuse();
        futures::pin_mut!(next, watch);
        futures::select! {
            item = next => match item {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(ServerMessage::Ready { .. }) => {
                        was_open = true;
                        feed.status.set(LiveStatus::Open);
                    }
                    Ok(event) => feed.push(event),
                    Err(_) => {}
                },
                Some(Ok(Message::Bytes(_))) => {}
                Some(Err(WebSocketError::ConnectionClose(event))) => {
                    return if event.code == CLOSE_TOKEN || event.code == CLOSE_REVOKED {
                        Ended::Refused { was_open }
                    } else {
                        Ended::Dropped { was_open }
                    };
                }
                // An error event; the close event follows.
                Some(Err(_)) => {}
                None => return Ended::Dropped { was_open },
            },
            () = watch => {
                if store.has_ended() {
                    // Dropping the socket closes it.
                    return Ended::SignedOut;
                }
                let newer = store
                    .current()
                    .filter(|t| t.claims.sid == current.claims.sid && t.claims.exp > current.claims.exp);
                if let Some(newer) = newer {
                    let reauth = ClientMessage::Reauth { access_token: newer.as_str().to_string() };
                    if let Ok(text) = serde_json::to_string(&reauth) {
                        let _ = sink.send(Message::Text(text)).await;
                    }
                    current = newer;
                }
            },
        }
    }
}
