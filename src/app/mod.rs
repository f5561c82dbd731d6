//! UI: the document shell, the router, the pages, and the browser's token
//! handling.
//!
//! - `pages`: one module per page, and the page table: each page's path, who
//!   may see it and what it shows, which the router and both guards read;
//! - `routes`: who may see which page (`access_for`, from the page table) and
//!   the paths between pages (`safe_next`, `login_url`);
//! - `auth_store`: the in-memory access token and its claims;
//! - `protected`: the client-side guards, `Protected` around each page that
//!   needs a session and `leave_when_logged_in` for guest-only pages;
//! - `data`: what protected pages show, loaded before they render and fetched
//!   on client-side navigation;
//! - `live_feed`: what the live socket said, for the pages to show;
//! - `client` (browser only): the API client, the shared refresh, tab
//!   cooperation, the live socket.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Title};
use leptos_router::components::Router;

pub mod auth_store;
#[cfg(feature = "hydrate")]
pub mod client;
mod components;
/// How the pages write a time; mails write it the same way.
#[cfg(feature = "ssr")]
pub use components::time_text;
mod data;
pub mod live_feed;
mod pages;
#[cfg(feature = "ssr")]
pub use pages::preload;
#[cfg(feature = "ssr")]
pub(crate) use components::error_message;
#[cfg(feature = "ssr")]
pub(crate) use pages::RecoveryCodeList;
mod protected;
pub mod routes;

use auth_store::AuthStore;
use live_feed::LiveFeed;

use crate::protocol::PageAuth;

/// The HTML document the server renders around the app.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    use leptos_meta::{HashedStylesheet, MetaTags};
    #[cfg(feature = "ssr")]
    crate::server::page_policy::set_for_this_page();
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
            {pages::page_routes(NotFound)}
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
