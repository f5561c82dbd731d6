//! The browser half of token handling (compiled only with `hydrate`): the API
//! client, the shared refresh, the cooperation between tabs and the live socket.
//!
//! Layered from the bottom up; each module uses only those above it in this list:
//! - `transport`: one request, with the bearer token when given one; no refresh,
//!   no retry. `ClientError`.
//! - `tabs`: the other tabs of this browser: a BroadcastChannel for new tokens
//!   and logouts, a Web Lock around refreshes.
//! - `navigation`: leaving the page for `/login`.
//! - `session`: the session as this tab sees it: the one refresh shared by
//!   every caller, sign-out, login and logout, following the other tabs,
//!   refreshing ahead of expiry.
//! - `api`: the client pages call: bearer token, refresh on a 401, one retry.
//! - `live`: the live socket, refreshed and reconnected through `session`.
//! - `passkeys`: signing in with a passkey and adding one (WebAuthn).
//! - `reauth`: the re-auth step a sensitive change may ask for.

mod api;
mod live;
mod navigation;
pub mod passkeys;
pub mod reauth;
mod session;
mod tabs;
mod transport;

pub use api::Api;
pub use session::{log_out, logged_in, refresh, refresh_or_sign_out, sign_out};
pub use transport::ClientError;

use super::auth_store::AuthStore;
use super::live_feed::LiveFeed;

/// Starts the background work of the token store: listening to other tabs,
/// refreshing ahead of expiry, refreshing when a hidden tab comes back with an
/// expired token, and the live socket.
pub fn start(store: AuthStore, feed: LiveFeed) {
    session::follow_other_tabs(store);
    live::start(store, feed);
    session::keep_fresh(store);
}
