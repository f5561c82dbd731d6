//! One request to the server, as it is: `Authorization: Bearer` when given a
//! token, no refresh and no retry. Everything above it builds on this.

use gloo_net::http::{Method, RequestBuilder, Response};
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::JsValue;
use web_sys::{AbortSignal, RequestCredentials};

use crate::app::auth_store::AccessToken;
use crate::protocol::ErrorBody;

/// A request that takes longer than this is abandoned.
const REQUEST_TIMEOUT_MS: u32 = 15_000;

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

/// The answer if it is a success, else the server's refusal read from its body.
pub(super) async fn ok_or_refused(response: Response) -> Result<Response, ClientError> {
    if response.ok() {
        Ok(response)
    } else {
        Err(ClientError::from_response(response).await)
    }
}

/// A JSON object with these members, as text, written by the browser's
/// `JSON.stringify`: a request body without serde's code for its type.
pub(super) fn json_object(members: &[(&str, &JsValue)]) -> Option<String> {
    let object = Object::new();
    for (name, value) in members {
        Reflect::set(&object, &(*name).into(), value).ok()?;
    }
    JSON::stringify(&object).ok()?.as_string()
}

/// Reads and drops an answer's body. A body left unread keeps its connection
/// busy until the request's abort timer fires, 15 s later.
pub(super) async fn discard(response: Response) {
    let _ = response.binary().await;
}
