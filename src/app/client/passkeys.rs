//! Passkeys in the browser: `navigator.credentials.create()` and `.get()`
//! through web-sys, with webauthn-rs-proto's conversions between the server's
//! JSON and the browser's credential objects. Only the login, registration
//! and account pages call these, so the code lands in their chunks, not in
//! the module every page loads.

use gloo_net::http::Method;
use wasm_bindgen::JsCast as _;
use wasm_bindgen_futures::JsFuture;
use webauthn_rs_proto::{CreationChallengeResponse, PublicKeyCredential, PublicKeyCredentialExt, RegisterPublicKeyCredential};

use super::api::Api;
use super::session::logged_in;
use super::transport::{ok_or_refused, send_once, ClientError};
use crate::app::auth_store::{AccessToken, AuthStore};
use crate::protocol::{
    PasskeyLoginFinish, PasskeyLoginStart, PasskeyRegistrationFinish, PasskeySignUp, PasskeySignUpStart, PasskeyView,
    Reauth, TokenResponse,
};

/// Why a passkey ceremony did not end in a sign-in or a new passkey.
#[derive(Debug, Clone)]
pub enum PasskeyError {
    /// The person closed the browser's dialog, or the request was set aside
    /// (an autofill request when the button is pressed).
    Cancelled,
    /// This browser has no passkeys.
    Unsupported,
    /// The server refused.
    Refused(ClientError),
}

fn credentials() -> Result<web_sys::CredentialsContainer, PasskeyError> {
    let window = web_sys::window().ok_or(PasskeyError::Unsupported)?;
    let supported = js_sys::Reflect::has(&window, &"PublicKeyCredential".into()).unwrap_or(false);
    if !supported {
        return Err(PasskeyError::Unsupported);
    }
    Ok(window.navigator().credentials())
}

/// Whether the browser offers passkeys in a username field's autofill.
pub async fn autofill_available() -> bool {
    if credentials().is_err() {
        return false;
    }
    match PublicKeyCredentialExt::is_conditional_mediation_available() {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|v| v.as_bool()).unwrap_or(false),
        Err(_) => false,
    }
}

async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(path: &str, body: &B) -> Result<T, PasskeyError> {
    let body = serde_json::to_string(body).map_err(|_| PasskeyError::Refused(ClientError::Unavailable))?;
    let response = send_once(Method::POST, path, Some(&body), None).await.map_err(PasskeyError::Refused)?;
    let response = ok_or_refused(response).await.map_err(PasskeyError::Refused)?;
    response.json().await.map_err(|_| PasskeyError::Refused(ClientError::Unavailable))
}

/// Signs in with a passkey: through the browser's dialog, or, with
/// `autofill`, when the person picks a passkey from the username field's
/// suggestions (until `abort` fires). On success the store holds the token.
pub async fn sign_in(store: AuthStore, autofill: bool, abort: Option<web_sys::AbortSignal>) -> Result<(), PasskeyError> {
    let container = credentials()?;
    let started: PasskeyLoginStart = post_json("/auth/passkeys/login/start", &serde_json::json!({})).await?;
    let mut options = started.options;
    if !autofill {
        options.mediation = None;
    }
    let options: web_sys::CredentialRequestOptions = options.into();
    if let Some(signal) = &abort {
        options.set_signal(signal);
    }
    let finish = PasskeyLoginFinish {
        ceremony: started.ceremony,
        credential: assert(&container, &options).await?,
    };
    let tokens: TokenResponse = post_json("/auth/passkeys/login/finish", &finish).await?;
    let username = AccessToken::parse(&tokens.access_token)
        .map(|token| token.claims.preferred_username)
        .unwrap_or_default();
    logged_in(store, &tokens.access_token, username);
    Ok(())
}

/// Asks the browser to make a credential with `options`.
/// The browser's answer to a sign-in ceremony's `options`.
async fn assert(
    container: &web_sys::CredentialsContainer,
    options: &web_sys::CredentialRequestOptions,
) -> Result<PublicKeyCredential, PasskeyError> {
    let promise = container.get_with_options(options).map_err(|_| PasskeyError::Cancelled)?;
    let credential: web_sys::PublicKeyCredential = JsFuture::from(promise)
        .await
        .map_err(|_| PasskeyError::Cancelled)?
        .dyn_into()
        .map_err(|_| PasskeyError::Cancelled)?;
    Ok(PublicKeyCredential::from(credential))
}

/// Confirms it is the user, with one of their passkeys, for the re-auth
/// step (`client::reauth`): the browser's dialog, then `POST /auth/reauth`.
pub async fn reauth(store: AuthStore) -> Result<(), PasskeyError> {
    let container = credentials()?;
    let started: PasskeyLoginStart = post_json("/auth/passkeys/login/start", &serde_json::json!({})).await?;
    let mut options = started.options;
    options.mediation = None;
    let options: web_sys::CredentialRequestOptions = options.into();
    let proof = Reauth {
        ceremony: Some(started.ceremony),
        credential: Some(assert(&container, &options).await?),
        ..Reauth::default()
    };
    super::reauth::submit(store, proof).await.map_err(PasskeyError::Refused)
}

async fn create(
    container: &web_sys::CredentialsContainer,
    options: CreationChallengeResponse,
) -> Result<RegisterPublicKeyCredential, PasskeyError> {
    let options: web_sys::CredentialCreationOptions = options.into();
    let promise = container.create_with_options(&options).map_err(|_| PasskeyError::Cancelled)?;
    let credential: web_sys::PublicKeyCredential = JsFuture::from(promise)
        .await
        .map_err(|_| PasskeyError::Cancelled)?
        .dyn_into()
        .map_err(|_| PasskeyError::Cancelled)?;
    Ok(RegisterPublicKeyCredential::from(credential))
}

/// Signs up with a passkey instead of a password: an account named
/// `username` (and, if given, an address to verify) is made with the passkey
/// the browser's dialog makes. On success the store holds the token.
pub async fn sign_up(
    store: AuthStore,
    username: String,
    email: Option<String>,
) -> Result<(), PasskeyError> {
    let container = credentials()?;
    let body = PasskeySignUp {
        username: username.clone(),
        email,
    };
    let started: PasskeySignUpStart = post_json("/auth/passkeys/register/start", &body).await?;
    let finish = PasskeyRegistrationFinish {
        credential: create(&container, started.options).await?,
        name: None,
        ceremony: Some(started.ceremony),
    };
    let tokens: TokenResponse = post_json("/auth/passkeys/register/finish", &finish).await?;
    logged_in(store, &tokens.access_token, username);
    Ok(())
}

/// Adds a passkey to the signed-in account through the browser's dialog.
pub async fn add(store: AuthStore, name: Option<String>) -> Result<PasskeyView, PasskeyError> {
    let container = credentials()?;
    let api = Api::new(store);
    let options: CreationChallengeResponse = api
        .post("/auth/passkeys/register/start", &serde_json::json!({}))
        .await
        .map_err(PasskeyError::Refused)?;
    let finish = PasskeyRegistrationFinish {
        credential: create(&container, options).await?,
        name,
        ceremony: None,
    };
    api.post("/auth/passkeys/register/finish", &finish).await.map_err(PasskeyError::Refused)
}
