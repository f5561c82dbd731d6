//! What protected pages show besides the session: pages of lists. The server's page guard
//! loads it from the auth core before the page renders (the page's `preload`,
//! named in its line of the page table, puts it into the request with
//! `insert_preloaded`) and the page reads it from the request; the same value
//! reaches the browser in the hydration data. A page reached by client-side
//! navigation, told to reload, or sent to another page of its list (its URL's
//! cursor), fetches it from the HTTP API through the one API client.
//!
//! A signal and a fetch rather than `Resource` and `<Suspense>`: nothing here
//! waits during the server render, and the WASM carries none of the async
//! rendering machinery, which took 10 to 11 KB of compressed WASM off `/sessions`
//! and `/admin` each.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::protocol::Paged;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LoadError {
    #[error("Your session has ended. Log in again.")]
    SignedOut,
    #[error("This page is for administrators only.")]
    Forbidden,
    #[error("The server could not answer just now. Try again.")]
    Unavailable,
    #[error("That page of the list does not exist. Start again from the first page.")]
    BadPage,
}

/// A page's data: `None` until it has arrived.
pub type PageData<T> = RwSignal<Option<Result<T, LoadError>>>;

/// The page of a list of `T` that the page guard loaded for this page, or, in
/// the browser, from `api_path()`. Runs `api_path` and `reload_on` in an
/// effect and fetches again whenever what they read changes (the page's URL
/// moving to another cursor, say); the value shown stays until the new one
/// arrives.
pub fn page_data<T>(api_path: impl Fn() -> String + 'static, reload_on: impl Fn() + 'static) -> PageData<Paged<T>>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let data = RwSignal::new(SharedValue::new(preloaded::<Paged<T>>).into_inner());
    #[cfg(feature = "hydrate")]
    {
        let store = crate::app::auth_store::AuthStore::from_context();
        let latest = StoredValue::new(0u32);
        Effect::new(move |seen: Option<()>| {
            reload_on();
            let path = api_path();
            // After hydration the server's value is current; a client-side
            // navigation has none yet.
            if seen.is_some() || data.with_untracked(Option::is_none) {
                latest.update_value(|n| *n = n.wrapping_add(1));
                let this = latest.get_value();
                leptos::task::spawn_local(async move {
                    let loaded = browser::load(store, &path).await;
                    // An answer overtaken by a later request is dropped.
                    if latest.get_value() == this {
                        data.set(Some(loaded));
                    }
                });
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (api_path, reload_on);
    data
}

/// What the page guard loaded for this page; on a page reached by
/// client-side navigation, what `api_path` answers, fetched once. The page may
/// set the signal later, or fetch it again with `fetch_into`.
pub fn preloaded_data<T>(api_path: &'static str) -> PageData<T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let data = RwSignal::new(SharedValue::new(preloaded::<T>).into_inner());
    #[cfg(feature = "hydrate")]
    {
        let store = crate::app::auth_store::AuthStore::from_context();
        Effect::new(move |_| {
            if data.with_untracked(Option::is_none) {
                fetch_into(store, data, api_path);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = api_path;
    data
}

/// Fetches `api_path` into `data`, in the background.
#[cfg(feature = "hydrate")]
pub fn fetch_into<T>(store: crate::app::auth_store::AuthStore, data: PageData<T>, api_path: &'static str)
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    leptos::task::spawn_local(async move {
        let found = crate::app::client::Api::new(store).get::<T>(api_path).await;
        data.set(Some(found.map_err(LoadError::from)));
    });
}

/// `path` with `?cursor=` when there is one: the API path of a page of a list.
pub fn with_cursor(path: &str, cursor: Option<String>) -> String {
    match cursor {
        Some(cursor) if !cursor.is_empty() => {
            format!("{path}?cursor={}", utf8_percent_encode(&cursor, NON_ALPHANUMERIC))
        }
        _ => path.to_string(),
    }
}

/// `data` rendered by `render`, with a placeholder until it arrives and the
/// reason when it could not be loaded.
pub fn show<T, V>(data: PageData<T>, loading: &'static str, render: impl Fn(T) -> V + Send + Sync + 'static) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    move || match data.get() {
        None => EitherOf3::A(view! { <p aria-busy="true">{loading}</p> }),
        Some(Ok(value)) => EitherOf3::B(render(value)),
        Some(Err(err)) => EitherOf3::C(view! { <p class="error" role="alert">{err.to_string()}</p> }),
    }
}

/// What the page guard put into this request for `T`; in the browser, nothing
/// (during hydration the server's value is read instead of calling this).
fn preloaded<T: Clone + Send + Sync + 'static>() -> Option<Result<T, LoadError>> {
    #[cfg(feature = "ssr")]
    return use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<server::Preloaded<T>>().map(|p| p.0.clone()));
    #[cfg(not(feature = "ssr"))]
    None
}

#[cfg(feature = "ssr")]
pub use server::{insert_preloaded, requested_page};

#[cfg(feature = "ssr")]
mod server {
    use super::LoadError;
    use crate::auth::paging::PageRequest;
    use crate::auth::AuthError;

    /// A page's data in the request's extensions, by its type.
    #[derive(Clone)]
    pub struct Preloaded<T>(pub Result<T, LoadError>);

    impl From<AuthError> for LoadError {
        fn from(err: AuthError) -> Self {
            match err {
                AuthError::Forbidden => Self::Forbidden,
                AuthError::InvalidToken | AuthError::TokenExpired | AuthError::SessionRevoked => Self::SignedOut,
                AuthError::BadPage(_) => Self::BadPage,
                other => {
                    tracing::error!(error = %crate::auth::WithSources(&other), "loading page data failed");
                    Self::Unavailable
                }
            }
        }
    }

    /// The page of a list that this page's URL asks for with its query
    /// parameter `param` (a cursor; the default number of items). The router
    /// keeps the URL as it arrived in the request's extensions.
    pub fn requested_page(extensions: &http::Extensions, param: &str) -> Result<PageRequest, AuthError> {
        let query = extensions
            .get::<axum::extract::OriginalUri>()
            .and_then(|uri| uri.0.query().map(str::to_string));
        let cursor = crate::server::extract::query_param(query.as_deref(), param).filter(|c| !c.is_empty());
        PageRequest::new(None, cursor)
    }

    /// Puts what a page's `preload` loaded into the request, where
    /// `page_data::<T>` finds it by its type.
    pub fn insert_preloaded<T>(extensions: &mut http::Extensions, loaded: Result<T, AuthError>)
    where
        T: Clone + Send + Sync + 'static,
    {
        extensions.insert(Preloaded(loaded.map_err(LoadError::from)));
    }
}

#[cfg(feature = "hydrate")]
mod browser {
    use serde::de::DeserializeOwned;

    use super::LoadError;
    use crate::app::auth_store::AuthStore;
    use crate::app::client::{Api, ClientError};
    use crate::protocol::Paged;

    impl From<ClientError> for LoadError {
        fn from(err: ClientError) -> Self {
            match err {
                ClientError::SignedOut => Self::SignedOut,
                ClientError::Refused { status: 403, .. } => Self::Forbidden,
                ClientError::Refused { status: 400, .. } => Self::BadPage,
                ClientError::Refused { status: 401, .. } => Self::SignedOut,
                _ => Self::Unavailable,
            }
        }
    }

    pub async fn load<T: DeserializeOwned>(store: AuthStore, path: &str) -> Result<Paged<T>, LoadError> {
        Ok(Api::new(store).get_list(path).await?)
    }
}
