//! UI: the document shell, the router, the pages, and the browser's token
//! handling.
//!
//! - `routes`: which page needs what (one table for the server's and the
//!   client's guards);
//! - `auth_store`: the in-memory access token and its claims;
//! - `guard`: the client-side guards; `pages`: one module per page;
//! - `data`: what protected pages show, loaded before they render and fetched
//!   on client-side navigation;
//! - `live_feed`: what the live socket said, for the pages to show;
//! - `client` (browser only): the API client, the shared refresh, tab
//!   cooperation, the live socket.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{Lazy, SsrMode, StaticSegment};

pub mod auth_store;
#[cfg(feature = "hydrate")]
pub mod client;
mod components;
mod data;
#[cfg(feature = "ssr")]
pub use data::preload;
mod guard;
pub mod live_feed;
mod pages;
pub mod routes;

use auth_store::AuthStore;
use live_feed::LiveFeed;

use crate::protocol::PageAuth;

/// The HTML document the server renders around the app.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos_meta::{HashedStylesheet, MetaTags};
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The session the server's page guard found, if any. Read from the request on
/// the server; in the browser it arrives with the hydration data instead.
fn page_auth() -> Option<PageAuth> {
    #[cfg(feature = "ssr")]
    return use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<crate::auth::PageSession>().map(|s| s.hydration.clone()));
    #[cfg(not(feature = "ssr"))]
    None
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let initial = SharedValue::new(page_auth);
    let store = AuthStore::new(initial.into_inner());
    provide_context(store);
    let feed = LiveFeed::new();
    provide_context(feed);
    #[cfg(feature = "hydrate")]
    {
        client::start(store, feed);
        // Lets tests (and curious people) see that the WASM client is running.
        Effect::new(|_| {
            let _ = document().body().map(|body| body.set_attribute("data-hydrated", "true"));
        });
    }

    view! {
        <Title text="Gatehouse"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=StaticSegment("login") view={Lazy::<pages::Login>::new()}/>
                <Route path=StaticSegment("register") view={Lazy::<pages::Register>::new()}/>
                // Async: protected pages arrive complete, readable without JavaScript.
                <Route path=StaticSegment("") ssr=SsrMode::Async view={Lazy::<pages::Dashboard>::new()}/>
                <Route path=StaticSegment("sessions") ssr=SsrMode::Async view={Lazy::<pages::Sessions>::new()}/>
                <Route path=StaticSegment("account") ssr=SsrMode::Async view={Lazy::<pages::Account>::new()}/>
                <Route path=StaticSegment("admin") ssr=SsrMode::Async view={Lazy::<pages::Admin>::new()}/>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found · Gatehouse"/>
        <main class="narrow">
            <section class="card">
                <h1>"Page not found"</h1>
                <p><a href=routes::DASHBOARD>"Back to the start page"</a></p>
            </section>
        </main>
    }
}
