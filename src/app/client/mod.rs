//! The browser half of token handling (compiled only with `hydrate`): the API
//! client, the shared refresh, and the cooperation between tabs.

mod api;
mod live;
mod navigation;
mod session;
mod tabs;
mod transport;

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::JsCast as _;

pub use api::Api;
pub use transport::ClientError;
pub use session::{log_out, logged_in, refresh, refresh_or_sign_out, sign_out};

use super::auth_store::{now_seconds, AuthStore};
use super::live_feed::LiveFeed;

/// Starts the background work of the token store: listening to other tabs,
/// refreshing ahead of expiry, refreshing when a hidden tab comes back with an
/// expired token, and the live socket.
pub fn start(store: AuthStore, feed: LiveFeed) {
    session::follow_other_tabs(store);
    live::start(store, feed);

    Effect::new(move |previous: Option<Option<TimeoutHandle>>| {
        if let Some(Some(handle)) = previous {
            handle.clear();
        }
        let token = store.token()?;
        let delay = (token.refresh_due_at() - now_seconds()).max(0);
        let delay = Duration::from_secs(u64::try_from(delay).unwrap_or(0));
        set_timeout_with_handle(
            move || spawn_local(async move {
                let _ = refresh_or_sign_out(store, Some(token)).await;
            }),
            delay,
        )
        .ok()
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
