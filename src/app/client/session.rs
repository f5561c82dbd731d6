//! The session as this tab sees it: refreshing the access token, keeping it
//! fresh, following the other tabs, and ending the session.
//!
//! One refresh at a time per tab: every caller that needs a new token while a
//! refresh is running awaits that same refresh. Across tabs a Web Lock
//! serializes refreshes (see `tabs`), and the server's grace window makes a race
//! harmless when the lock is not available.

use std::cell::RefCell;
use std::time::Duration;

use futures::future::{FutureExt as _, LocalBoxFuture, Shared};
use gloo_timers::future::sleep;
use gloo_net::http::Method;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::JsCast as _;

use super::navigation::leave_for_login;
use super::tabs::{self, TabMessage};
use super::transport::{discard, send_once, ClientError};
use crate::app::auth_store::{now_seconds, AccessToken, AuthStore};
use crate::protocol::TokenResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// The server refused the refresh cookie: the session is over.
    Rejected,
    /// No answer, or a transient one (rate limit, outage): try again later.
    Unavailable,
}

type RefreshFuture = Shared<LocalBoxFuture<'static, Result<AccessToken, RefreshError>>>;

thread_local! {
    static IN_FLIGHT: RefCell<Option<RefreshFuture>> = const { RefCell::new(None) };
}

/// A token newer than `stale` that is still active, if the store has one: then
/// someone (this tab or another) already refreshed.
fn fresher_than(store: AuthStore, stale: Option<&AccessToken>) -> Option<AccessToken> {
    let current = store.current()?;
    (current.is_active(now_seconds()) && stale != Some(&current)).then_some(current)
}

/// A new access token for the session behind the refresh cookie. `stale` is the
/// token the caller found wanting (none if the store was empty).
pub async fn refresh(store: AuthStore, stale: Option<AccessToken>) -> Result<AccessToken, RefreshError> {
    if let Some(current) = fresher_than(store, stale.as_ref()) {
        return Ok(current);
    }
    let shared = IN_FLIGHT.with(|slot| {
        slot.borrow_mut()
            .get_or_insert_with(|| run(store, stale).boxed_local().shared())
            .clone()
    });
    let result = shared.clone().await;
    IN_FLIGHT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_some_and(|running| running.ptr_eq(&shared)) {
            *slot = None;
        }
    });
    result
}

async fn run(store: AuthStore, stale: Option<AccessToken>) -> Result<AccessToken, RefreshError> {
    let token = tabs::with_refresh_lock(async move {
        // Another tab may have refreshed while this one waited for the lock.
        if let Some(current) = fresher_than(store, stale.as_ref()) {
            return Ok(current);
        }
        let response = send_once(Method::POST, "/auth/refresh", None, None)
            .await
            .map_err(|_| RefreshError::Unavailable)?;
        match response.status() {
            200 => {
                let body: TokenResponse = response.json().await.map_err(|_| RefreshError::Unavailable)?;
                let token = store.set_token(&body.access_token).ok_or(RefreshError::Unavailable)?;
                tabs::announce(&TabMessage::Token {
                    access_token: body.access_token,
                    username: store.username_untracked(),
                });
                Ok(token)
            }
            status => {
                discard(response).await;
                Err(if status == 401 { RefreshError::Rejected } else { RefreshError::Unavailable })
            }
        }
    })
    .await?;
    // A refresh that started from an empty store: whose session it is, as the
    // token says.
    if store.username_untracked().is_none() && !token.claims.preferred_username.is_empty() {
        store.set_username(token.claims.preferred_username.clone());
    }
    Ok(token)
}

/// [`refresh`], and when the server refuses it, the end of the session here and
/// in every other tab, and a trip to `/login?next=<here>`.
pub async fn refresh_or_sign_out(store: AuthStore, stale: Option<AccessToken>) -> Result<AccessToken, ClientError> {
    // The page is ending the session itself and will leave on its own terms.
    if store.has_ended() {
        return Err(ClientError::SignedOut);
    }
    match refresh(store, stale).await {
        Ok(token) => Ok(token),
        Err(RefreshError::Rejected) => {
            sign_out(store, true);
            Err(ClientError::SignedOut)
        }
        Err(RefreshError::Unavailable) => Err(ClientError::Unavailable),
    }
}

/// Ends the session in this tab and every other: the store is emptied and the
/// page replaced by the login page. `keep_place` adds `next=<here>` so logging
/// in again comes back.
pub fn sign_out(store: AuthStore, keep_place: bool) {
    store.end();
    tabs::announce(&TabMessage::LoggedOut);
    leave_for_login(keep_place);
}

/// After a login or registration in this tab: the store takes the token and
/// every other tab may continue with it.
pub fn logged_in(store: AuthStore, access_token: &str, username: String) {
    if store.set_token(access_token).is_some() {
        store.set_username(username.clone());
        tabs::announce(&TabMessage::Token {
            access_token: access_token.to_string(),
            username: Some(username),
        });
    }
}

/// The logout button: ends the session on the server (which clears the
/// cookie), then here and in every other tab.
pub async fn log_out(store: AuthStore) {
    // Whatever the server answers, this browser is done with the session; the
    // live socket's close (1008) must not start a refresh meanwhile.
    store.begin_ending();
    let _ = send_once(Method::POST, "/auth/logout", None, None).await;
    sign_out(store, false);
}

/// Follows the other tabs for the life of the page: their new tokens are
/// adopted, and their sign-out is this tab's too.
pub(super) fn follow_other_tabs(store: AuthStore) {
    tabs::listen(move |message| match message {
        TabMessage::Token { access_token, username } => store.adopt_token(&access_token, username),
        TabMessage::LoggedOut => {
            store.end();
            leave_for_login(true);
        }
    });
}

/// Waits between a scheduled refresh that got no answer and its next try.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// A scheduled refresh whose answer did not arrive (a network drop, a time
/// out, an outage) is tried again after 1, 2, 4 … seconds, at most a minute
/// apart, rather than left until the token has expired: a retry inside the
/// server's grace window is handed the very answer that was lost. Stops once
/// a token newer than `stale` is in the store (from here or another tab) or
/// the session ended.
async fn refresh_with_backoff(store: AuthStore, stale: AccessToken) {
    let mut wait = FIRST_RETRY;
    while let Err(ClientError::Unavailable) = refresh_or_sign_out(store, Some(stale.clone())).await {
        if store.has_ended() {
            return;
        }
        sleep(wait).await;
        wait = (wait * 2).min(LAST_RETRY);
    }
}

/// Refreshes ahead of each token's expiry, and at once when a hidden tab comes
/// back holding an expired token: browsers throttle or freeze a hidden tab's
/// timers, so the one set ahead of expiry may not have fired.
pub(super) fn keep_fresh(store: AuthStore) {
    Effect::new(move |previous: Option<Option<TimeoutHandle>>| {
        if let Some(Some(handle)) = previous {
            handle.clear();
        }
        let token = store.token()?;
        let delay = (token.refresh_due_at() - now_seconds()).max(0);
        let delay = Duration::from_secs(u64::try_from(delay).unwrap_or(0));
        set_timeout_with_handle(move || spawn_local(refresh_with_backoff(store, token)), delay).ok()
    });

    let on_visible = Closure::<dyn Fn()>::new(move || {
        let visible = document().visibility_state() == web_sys::VisibilityState::Visible;
        let expired = store.current().filter(|t| !t.is_active(now_seconds()));
        if let (true, Some(stale)) = (visible, expired) {
            spawn_local(async move {
                let _ = refresh_or_sign_out(store, Some(stale)).await;
            });
        }
    });
    let _ = document().add_event_listener_with_callback("visibilitychange", on_visible.as_ref().unchecked_ref());
    // Lives as long as the page.
    on_visible.forget();
}
