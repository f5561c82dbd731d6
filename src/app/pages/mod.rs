//! One module per page, and each page a route of its own: built with
//! `--split`, a page's code is a WASM chunk of its own, which the server's HTML
//! preloads where that page is shown and the router fetches on the way to it.
//! The module every page loads keeps only the shell, the router and the client.
//! Protected pages are wrapped in `guard::Protected` here.

use leptos::prelude::*;
use leptos_router::{lazy_route, LazyRoute};

use super::guard::Protected;
use super::routes::Access;

mod account;
mod admin;
mod credentials;
mod dashboard;
mod sessions;

pub struct Login;

#[lazy_route]
impl LazyRoute for Login {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <credentials::LoginPage/> }.into_any()
    }
}

pub struct Register;

#[lazy_route]
impl LazyRoute for Register {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <credentials::RegisterPage/> }.into_any()
    }
}

pub struct Dashboard;

#[lazy_route]
impl LazyRoute for Dashboard {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <Protected access=Access::Member><dashboard::DashboardPage/></Protected> }
            .into_any()
    }
}

pub struct Sessions;

#[lazy_route]
impl LazyRoute for Sessions {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <Protected access=Access::Member><sessions::SessionsPage/></Protected> }.into_any()
    }
}

pub struct Account;

#[lazy_route]
impl LazyRoute for Account {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <Protected access=Access::Member><account::AccountPage/></Protected> }.into_any()
    }
}

pub struct Admin;

#[lazy_route]
impl LazyRoute for Admin {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <Protected access=Access::Admin><admin::AdminPage/></Protected> }.into_any()
    }
}
