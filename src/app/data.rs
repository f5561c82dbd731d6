//! What protected pages show besides the session. The server's page guard
//! loads it from the auth core before the page renders (the page's `preload`,
//! named in its line of the page table, puts it into the request with
//! `insert_preloaded`) and the page reads it from the request; the same value
//! reaches the browser in the hydration data. A page reached by client-side
//! navigation, or told to reload, fetches it from the HTTP API through the one
//! API client.
//!
//! A signal and a fetch rather than `Resource` and `<Suspense>`: nothing here
//! waits during the server render, and the WASM carries none of the async
//! rendering machinery, which took 10 to 11 KB of compressed WASM off `/sessions`
//! and `/admin` each.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LoadError {
    #[error("Your session has ended. Log in again.")]
    SignedOut,
    #[error("This page is for administrators only.")]
    Forbidden,
    #[error("The server could not answer just now. Try again.")]
    Unavailable,
}

/// A page's data: `None` until it has arrived.
pub type PageData<T> = RwSignal<Option<Result<T, LoadError>>>;

/// The data of type `T` that the page guard loaded for this page, or, in the
/// browser, from `api_path`. Runs `reload_on` in an effect and fetches again
/// whenever what it reads changes; the value shown stays until the new one
/// arrives.
pub fn page_data<T>(api_path: &'static str, reload_on: impl Fn() + 'static) -> PageData<T>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let data = RwSignal::new(SharedValue::new(preloaded::<T>).into_inner());
    #[cfg(feature = "hydrate")]
    {
        let store = crate::app::auth_store::AuthStore::from_context();
        let latest = StoredValue::new(0u32);
        Effect::new(move |seen: Option<()>| {
            reload_on();
            // After hydration the server's value is current; a client-side
            // navigation has none yet.
            if seen.is_some() || data.with_untracked(Option::is_none) {
                latest.update_value(|n| *n = n.wrapping_add(1));
                let this = latest.get_value();
                leptos::task::spawn_local(async move {
                    let loaded = browser::load(store, api_path).await;
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
pub use server::insert_preloaded;

#[cfg(feature = "ssr")]
mod server {
    use super::LoadError;
    use crate::auth::AuthError;

    /// A page's data in the request's extensions, by its type.
    #[derive(Clone)]
    pub struct Preloaded<T>(pub Result<T, LoadError>);

    impl From<AuthError> for LoadError {
        fn from(err: AuthError) -> Self {
            match err {
                AuthError::Forbidden => Self::Forbidden,
                AuthError::InvalidToken | AuthError::TokenExpired | AuthError::SessionRevoked => Self::SignedOut,
                other => {
                    tracing::error!(error = %crate::auth::WithSources(&other), "loading page data failed");
                    Self::Unavailable
                }
            }
        }
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

    impl From<ClientError> for LoadError {
        fn from(err: ClientError) -> Self {
            match err {
                ClientError::SignedOut => Self::SignedOut,
                ClientError::Refused { status: 403, .. } => Self::Forbidden,
                ClientError::Refused { status: 401, .. } => Self::SignedOut,
                _ => Self::Unavailable,
            }
        }
    }

    pub async fn load<T: DeserializeOwned>(store: AuthStore, path: &str) -> Result<T, LoadError> {
        Ok(Api::new(store).get(path).await?)
    }
}
