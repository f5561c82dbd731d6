//! The API client pages use. Every call carries `Authorization: Bearer` from
//! the token store; a 401 for the token runs one refresh shared by every call
//! that failed meanwhile and retries each call once. A sensitive change
//! refused with `reauth_required` opens the re-auth dialog and, once the
//! person has confirmed it is them, is sent again: nothing is typed twice.

use gloo_net::http::{Method, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::session::{refresh_or_sign_out, sign_out};
use super::transport::{discard, ok_or_refused, send_once, ClientError};
use crate::app::auth_store::{now_seconds, AuthStore};
use crate::protocol::{next_cursor, Paged};

/// The API client, `Copy` like the store it reads.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    store: AuthStore,
}

impl Api {
    pub fn new(store: AuthStore) -> Self {
        Self { store }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let response = self.authorized(Method::GET, path, None).await?;
        response.json().await.map_err(|_| ClientError::Unavailable)
    }

    /// A page of a list: the body's items, and the next page's cursor from `Link`.
    pub async fn get_list<T: DeserializeOwned>(&self, path: &str) -> Result<Paged<T>, ClientError> {
        let response = self.authorized(Method::GET, path, None).await?;
        let next_cursor = response.headers().get("link").as_deref().and_then(next_cursor);
        let items = response.json().await.map_err(|_| ClientError::Unavailable)?;
        Ok(Paged { items, next_cursor })
    }

    /// A call whose success has no body (204).
    pub async fn send<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<(), ClientError> {
        let body = body
            .map(serde_json::to_string)
            .transpose()
            .map_err(|_| ClientError::Unavailable)?;
        self.authorized(method, path, body.as_deref()).await.map(drop)
    }

    /// A call without an access token (login, register), answered with `T`.
    pub async fn post_public<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let body = serde_json::to_string(body).map_err(|_| ClientError::Unavailable)?;
        let response = ok_or_refused(send_once(Method::POST, path, Some(&body), None).await?).await?;
        response.json().await.map_err(|_| ClientError::Unavailable)
    }

    /// A POST answered with `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let body = serde_json::to_string(body).map_err(|_| ClientError::Unavailable)?;
        let response = self.authorized(Method::POST, path, Some(&body)).await?;
        response.json().await.map_err(|_| ClientError::Unavailable)
    }

    /// A POST of JSON text answered with JSON, both as text: for bodies only
    /// the browser reads (a passkey's options and credential).
    pub async fn post_text(&self, path: &str, body: &str) -> Result<String, ClientError> {
        let response = self.authorized(Method::POST, path, Some(body)).await?;
        response.text().await.map_err(|_| ClientError::Unavailable)
    }

    /// A call without an access token whose success has no body (202, 204).
    pub async fn send_public<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        let body = serde_json::to_string(body).map_err(|_| ClientError::Unavailable)?;
        let response = ok_or_refused(send_once(Method::POST, path, Some(&body), None).await?).await?;
        discard(response).await;
        Ok(())
    }

    async fn authorized(&self, method: Method, path: &str, body: Option<&str>) -> Result<Response, ClientError> {
        match self.refreshing(method.clone(), path, body).await {
            // The second-factor policy: its setup page, by the server's guard.
            Err(refused) if refused.code() == "second_factor_required" => {
                let _ = leptos::prelude::window().location().assign(crate::app::routes::TWO_FACTOR);
                Err(refused)
            }
            Err(refused) if refused.code() == "reauth_required" => {
                if super::reauth::confirmed(self.store).await {
                    self.refreshing(method, path, body).await
                } else {
                    Err(refused)
                }
            }
            other => other,
        }
    }

    async fn refreshing(&self, method: Method, path: &str, body: Option<&str>) -> Result<Response, ClientError> {
        // A token known to be expired is not worth a round trip: refresh first.
        let token = match self.store.current() {
            Some(token) if token.is_active(now_seconds()) => token,
            stale => refresh_or_sign_out(self.store, stale).await?,
        };
        let response = send_once(method.clone(), path, body, Some(&token)).await?;
        // Only a refused token says `WWW-Authenticate` (RFC 6750); a wrong
        // current password is a 401 that no refresh would change.
        if response.status() != 401 || response.headers().get("www-authenticate").is_none() {
            return ok_or_refused(response).await;
        }
        discard(response).await;
        let token = refresh_or_sign_out(self.store, Some(token)).await?;
        let response = send_once(method, path, body, Some(&token)).await?;
        if response.status() == 401 {
            discard(response).await;
            // A fresh token refused at once: the session is gone.
            sign_out(self.store, true);
            return Err(ClientError::SignedOut);
        }
        ok_or_refused(response).await
    }
}
