//! The one API client. Every call carries `Authorization: Bearer` from the token
//! store; a 401 runs one refresh shared by every call that failed meanwhile and
//! retries each call once.

use gloo_net::http::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use web_sys::{AbortSignal, RequestCredentials};

use super::session::refresh_or_sign_out;
use crate::app::auth_store::{now_seconds, AccessToken, AuthStore};
use crate::protocol::ErrorBody;

/// A request that takes longer than this is abandoned.
pub(super) const REQUEST_TIMEOUT_MS: u32 = 15_000;

/// Why a call did not give the caller what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error body.
    Refused { status: u16, body: ErrorBody, retry_after: Option<u64> },
    /// The session is over; the client is already on its way to `/login`.
    SignedOut,
    /// No usable answer: network down, timeout, or an answer that was not ours.
    Unavailable,
}

impl ClientError {
    /// The machine-readable code, as the server names it.
    pub fn code(&self) -> &str {
        match self {
            Self::Refused { body, .. } => &body.error,
            Self::SignedOut => "signed_out",
            Self::Unavailable => "unavailable",
        }
    }

    /// The password rule's reasons, when a password was refused.
    pub fn reasons(&self) -> &[String] {
        match self {
            Self::Refused { body, .. } => &body.reasons,
            _ => &[],
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    async fn from_response(response: Response) -> Self {
        let status = response.status();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.parse().ok());
        match response.json::<ErrorBody>().await {
            Ok(body) => Self::Refused { status, body, retry_after },
            Err(_) => Self::Unavailable,
        }
    }
}

/// Sends one request. `token` goes in `Authorization`; the refresh cookie goes
/// along because the request is same-origin.
pub(super) async fn send_once(
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&AccessToken>,
) -> Result<Response, ClientError> {
    let signal = AbortSignal::timeout_with_u32(REQUEST_TIMEOUT_MS);
    let mut builder = RequestBuilder::new(path)
        .method(method)
        .credentials(RequestCredentials::SameOrigin)
        .abort_signal(Some(&signal))
        .header("accept", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", &format!("Bearer {}", token.as_str()));
    }
    let request = match body {
        Some(body) => builder.header("content-type", "application/json").body(body.to_string()),
        None => builder.build(),
    };
    request.map_err(|_| ClientError::Unavailable)?.send().await.map_err(|_| ClientError::Unavailable)
}

/// Reads and drops an answer's body. A body left unread keeps its connection
/// busy until the request's abort timer fires, 15 s later.
pub(super) async fn discard(response: Response) {
    let _ = response.binary().await;
}

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
        let response = send_once(Method::POST, path, Some(&body), None).await?;
        if !response.ok() {
            return Err(ClientError::from_response(response).await);
        }
        response.json().await.map_err(|_| ClientError::Unavailable)
    }

    async fn authorized(&self, method: Method, path: &str, body: Option<&str>) -> Result<Response, ClientError> {
        // A token known to be expired is not worth a round trip: refresh first.
        let token = match self.store.current() {
            Some(token) if token.is_active(now_seconds()) => token,
            stale => refresh_or_sign_out(self.store, stale).await?,
        };
        let response = send_once(method.clone(), path, body, Some(&token)).await?;
        if response.status() != 401 {
            return Self::checked(response).await;
        }
        discard(response).await;
        let token = refresh_or_sign_out(self.store, Some(token)).await?;
        let response = send_once(method, path, body, Some(&token)).await?;
        if response.status() == 401 {
            discard(response).await;
            // A fresh token refused at once: the session is gone.
            super::session::sign_out(self.store, true);
            return Err(ClientError::SignedOut);
        }
        Self::checked(response).await
    }

    async fn checked(response: Response) -> Result<Response, ClientError> {
        if response.ok() {
            Ok(response)
        } else {
            Err(ClientError::from_response(response).await)
        }
    }
}
