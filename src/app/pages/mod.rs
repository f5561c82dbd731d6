//! One module per page, and each page a route of its own: built with
//! `--split`, a page's code is a WASM chunk of its own, which the server's HTML
//! preloads where that page is shown and the router fetches on the way to it.
//! The module every page loads keeps only the shell, the router and the client.
//! Protected pages are wrapped in `guard::Protected` here, and every page's
//! view in `SyncHydrate`.

use leptos::prelude::*;
use leptos::tachys::html::attribute::any_attribute::AnyAttribute;
use leptos::tachys::html::attribute::Attribute;
use leptos::tachys::hydration::Cursor;
use leptos::tachys::ssr::StreamBuilder;
use leptos::tachys::view::add_attr::AddAnyAttr;
use leptos::tachys::view::{Position, PositionState, Render, RenderHtml};
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
        SyncHydrate(view! { <credentials::LoginPage/> }).into_any()
    }
}

pub struct Register;

#[lazy_route]
impl LazyRoute for Register {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        SyncHydrate(view! { <credentials::RegisterPage/> }).into_any()
    }
}

pub struct Dashboard;

#[lazy_route]
impl LazyRoute for Dashboard {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        SyncHydrate(view! { <Protected access=Access::Member><dashboard::DashboardPage/></Protected> }).into_any()
    }
}

pub struct Sessions;

#[lazy_route]
impl LazyRoute for Sessions {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        SyncHydrate(view! { <Protected access=Access::Member><sessions::SessionsPage/></Protected> }).into_any()
    }
}

pub struct Account;

#[lazy_route]
impl LazyRoute for Account {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        SyncHydrate(view! { <Protected access=Access::Member><account::AccountPage/></Protected> }).into_any()
    }
}

pub struct Admin;

#[lazy_route]
impl LazyRoute for Admin {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        SyncHydrate(view! { <Protected access=Access::Admin><admin::AdminPage/></Protected> }).into_any()
    }
}

/// A page's view, hydrated in one synchronous pass.
///
/// A lazy route's view is erased into an `AnyView`, which keeps a pointer to
/// the view's async hydration, so the WASM would carry an async copy of each
/// page's whole view tree. The router never uses it: it loads the page's
/// chunk first and then hydrates synchronously. Here async hydration is the
/// trait's default, the synchronous one, so no async copy is compiled; the
/// rest passes through. This took 9 to 19 KB of compressed WASM off each
/// page's own chunks (BENCHMARKS.md, entry 18).
pub struct SyncHydrate<V>(V);

impl<V: Render> Render for SyncHydrate<V> {
    type State = V::State;

    fn build(self) -> Self::State {
        self.0.build()
    }

    fn rebuild(self, state: &mut Self::State) {
        self.0.rebuild(state);
    }
}

impl<V: AddAnyAttr> AddAnyAttr for SyncHydrate<V> {
    type Output<A: Attribute> = SyncHydrate<V::Output<A>>;

    fn add_any_attr<A: Attribute>(self, attr: A) -> Self::Output<A>
    where
        Self::Output<A>: RenderHtml,
    {
        SyncHydrate(self.0.add_any_attr(attr))
    }
}

impl<V: RenderHtml> RenderHtml for SyncHydrate<V> {
    type AsyncOutput = V::AsyncOutput;
    type Owned = SyncHydrate<V::Owned>;

    const MIN_LENGTH: usize = V::MIN_LENGTH;
    const EXISTS: bool = V::EXISTS;

    fn dry_resolve(&mut self) {
        self.0.dry_resolve();
    }

    async fn resolve(self) -> Self::AsyncOutput {
        self.0.resolve().await
    }

    fn html_len(&self) -> usize {
        self.0.html_len()
    }

    fn to_html_with_buf(
        self,
        buf: &mut String,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0.to_html_with_buf(buf, position, escape, mark_branches, extra_attrs);
    }

    fn to_html_async_with_buf<const OUT_OF_ORDER: bool>(
        self,
        buf: &mut StreamBuilder,
        position: &mut Position,
        escape: bool,
        mark_branches: bool,
        extra_attrs: Vec<AnyAttribute>,
    ) {
        self.0.to_html_async_with_buf::<OUT_OF_ORDER>(buf, position, escape, mark_branches, extra_attrs);
    }

    fn hydrate<const FROM_SERVER: bool>(self, cursor: &Cursor, position: &PositionState) -> Self::State {
        self.0.hydrate::<FROM_SERVER>(cursor, position)
    }

    fn into_owned(self) -> Self::Owned {
        SyncHydrate(self.0.into_owned())
    }
}
