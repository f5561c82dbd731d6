//! Every page of the app, in one table. Each line says a page's path, who may
//! see it, the component that shows it and, for a page showing data, what
//! loads that data on the server before it renders; `page_table!`
//! (`lazy_route.rs`) makes of it the router's routes, the lazy route of each
//! page and the table both guards read (`routes::access_for`).
//!
//! Each page is a route of its own: built with `--split`, a page's code is a
//! WASM chunk of its own, which the server's HTML preloads where that page is
//! shown and the router fetches on the way to it. The module every page loads
//! keeps only the shell, the router and the client.
//!
//! To add a page: its component in a file of its own here, its `mod` line
//! below, and its line in the table.

use leptos::prelude::*;
use leptos_router::components::{Route, Routes};
use leptos_router::{lazy_route, Lazy, LazyRoute, SsrMode, StaticSegment};

use super::protected::Protected;
use super::routes::{Access, Page};
use lazy_route::{page_table, SyncHydrate};

mod lazy_route;

mod account;
mod admin;
mod credentials;
mod dashboard;
mod recovery;
mod sessions;
mod two_factor;

#[cfg(feature = "ssr")]
pub(crate) use two_factor::RecoveryCodeList;

page_table! {
    LOGIN = "/login": GuestOnly => credentials::LoginPage;
    LOGIN_CODE = "/login-code": GuestOnly => credentials::LoginCodePage;
    REGISTER = "/register": GuestOnly => credentials::RegisterPage;
    DASHBOARD = "/": Member => dashboard::DashboardPage;
    SESSIONS = "/sessions": Member => sessions::SessionsPage, preload sessions::preload;
    ACCOUNT = "/account": Member => account::AccountPage, preload two_factor::preload;
    TWO_FACTOR = "/two-factor": Member => two_factor::TwoFactorPage, preload two_factor::preload;
    ADMIN = "/admin": Admin => admin::AdminPage, preload admin::preload;
    FORGOT_PASSWORD = "/forgot-password": Public => recovery::ForgotPasswordPage;
    RESET_PASSWORD = "/reset-password": Public => recovery::ResetPasswordPage;
    VERIFY_EMAIL = "/verify-email": Public => recovery::VerifyEmailPage;
}

/// The router's segment for a page's path: `/sessions` is `sessions`, `/` is
/// the empty segment.
fn segment(path: &'static str) -> StaticSegment<&'static str> {
    StaticSegment(path.trim_start_matches('/'))
}

/// How the server renders a page. Pages that need a session arrive complete
/// (`Async`), readable without JavaScript; the others stream (the default).
fn ssr_mode(access: Access) -> SsrMode {
    match access {
        Access::Member | Access::Admin => SsrMode::Async,
        Access::Public | Access::GuestOnly => SsrMode::default(),
    }
}
