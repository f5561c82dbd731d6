//! Gatehouse: JWT login for a Leptos full-stack app.
//!
//! Layout (see docs/architecture.md):
//! - [`app`]: UI routes and components, compiled for both server and browser;
//!   its `client` module is the browser's token handling (`hydrate` only).
//! - [`protocol`]: the request and response bodies, claims and rules both
//!   sides share.
//! - [`auth`]: the auth core (passwords, tokens, sessions, rotation, keys), no
//!   HTTP; [`server`]: HTTP handlers thin on top of it; [`store`]: storage and
//!   its migrations; [`mail`]: the outbox worker that sends what the core
//!   queues; [`metrics`]: what they count and time; [`config`]: settings.
//!   All server only (`ssr`).

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// Hydrating a lazy route nests each page's whole view type in async blocks,
// deeper than the compiler's default limit for laying out types.
#![recursion_limit = "256"]

pub mod app;
#[cfg(feature = "ssr")]
pub mod auth;
pub mod protocol;

#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod mail;
#[cfg(feature = "ssr")]
pub mod metrics;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod store;

/// Browser entry point, called by the script cargo-leptos generates.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Lazy: the page's own chunk (see `app::pages`) is awaited before hydrating.
    leptos::mount::hydrate_lazy(app::App);
}
