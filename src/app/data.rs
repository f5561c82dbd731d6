//! What protected pages load. During server rendering it comes straight from
//! the auth core, for the session the page guard found; in the browser, from
//! the HTTP API through the one API client. Either way the page gets the same
//! values, and the server's arrive in the hydration data.

use serde::{Deserialize, Serialize};

use crate::protocol::{AuditEventView, SessionView, UserView};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LoadError {
    #[error("Your session has ended. Log in again.")]
    SignedOut,
    #[error("This page is for administrators only.")]
    Forbidden,
    #[error("The server could not answer just now. Try again.")]
    Unavailable,
}

pub async fn sessions() -> Result<Vec<SessionView>, LoadError> {
    #[cfg(feature = "ssr")]
    return server::load(|auth, claims| async move { auth.sessions(&claims).await }).await;
    #[cfg(feature = "hydrate")]
    return browser::load("/auth/sessions").await;
}

pub async fn admin_users() -> Result<Vec<UserView>, LoadError> {
    #[cfg(feature = "ssr")]
    return server::load(|auth, claims| async move { auth.admin_users(&claims).await }).await;
    #[cfg(feature = "hydrate")]
    return browser::load("/api/admin/users").await;
}

pub async fn admin_events() -> Result<Vec<AuditEventView>, LoadError> {
    #[cfg(feature = "ssr")]
    return server::load(|auth, claims| async move { auth.admin_events(&claims).await }).await;
    #[cfg(feature = "hydrate")]
    return browser::load("/api/admin/events").await;
}

#[cfg(feature = "ssr")]
mod server {
    use std::future::Future;
    use std::sync::Arc;

    use leptos::prelude::use_context;

    use super::LoadError;
    use crate::auth::{Auth, AuthError, PageSession};
    use crate::protocol::AccessClaims;

    impl From<AuthError> for LoadError {
        fn from(err: AuthError) -> Self {
            match err {
                AuthError::Forbidden => Self::Forbidden,
                AuthError::InvalidToken | AuthError::TokenExpired | AuthError::SessionRevoked => Self::SignedOut,
                other => {
                    tracing::error!(error = %other, "loading page data failed");
                    Self::Unavailable
                }
            }
        }
    }

    /// Runs `call` for the session the page guard put into the request.
    pub async fn load<T, F, Fut>(call: F) -> Result<T, LoadError>
    where
        F: FnOnce(Arc<Auth>, AccessClaims) -> Fut,
        Fut: Future<Output = Result<T, AuthError>>,
    {
        let auth = use_context::<Arc<Auth>>().ok_or(LoadError::Unavailable)?;
        let session = use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<PageSession>().cloned())
            .ok_or(LoadError::SignedOut)?;
        Ok(call(auth, session.claims).await?)
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

    pub async fn load<T: DeserializeOwned>(path: &str) -> Result<T, LoadError> {
        let api = Api::new(AuthStore::from_context());
        Ok(send_wrapper::SendWrapper::new(api.get(path)).await?)
    }
}
