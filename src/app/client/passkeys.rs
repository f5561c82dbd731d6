//! Passkeys in the browser: `navigator.credentials.create()` and `.get()`.
//! The server's options go to the browser's own readers of their JSON form
//! (`PublicKeyCredential.parseCreationOptionsFromJSON` and
//! `parseRequestOptionsFromJSON`) and the credential comes back through its
//! `toJSON()` (WebAuthn Level 3), so the WASM holds no WebAuthn types and no
//! code to convert them: only this, in the chunks of the pages that call it.
//! A browser without those methods counts as one without passkeys; the
//! password form is always there.

use gloo_net::http::Method;
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::api::Api;
use super::session::logged_in;
use super::transport::{json_object, ok_or_refused, send_once, ClientError};
use crate::app::auth_store::{AccessToken, AuthStore};
use crate::protocol::{PasskeySignUp, PasskeyView, TokenResponse};

#[wasm_bindgen]
extern "C" {
    /// A credential as `navigator.credentials` hands it out.
    type Credential;

    #[wasm_bindgen(method, js_name = toJSON)]
    fn to_json(this: &Credential) -> JsValue;

    #[wasm_bindgen(catch, js_namespace = PublicKeyCredential, js_name = parseRequestOptionsFromJSON)]
    fn parse_request_options(options: &JsValue) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(catch, js_namespace = PublicKeyCredential, js_name = parseCreationOptionsFromJSON)]
    fn parse_creation_options(options: &JsValue) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(catch, js_namespace = PublicKeyCredential, js_name = isConditionalMediationAvailable)]
    fn is_conditional_mediation_available() -> Result<js_sys::Promise, JsValue>;
}

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

impl From<ClientError> for PasskeyError {
    fn from(err: ClientError) -> Self {
        Self::Refused(err)
    }
}

/// Whether this browser can use passkeys the way this client asks for them.
pub fn supported() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    Reflect::get(&window, &"PublicKeyCredential".into())
        .ok()
        .filter(|class| class.is_function())
        .is_some_and(|class| Reflect::has(&class, &"parseRequestOptionsFromJSON".into()).unwrap_or(false))
}

fn ensure_supported() -> Result<(), PasskeyError> {
    if supported() {
        Ok(())
    } else {
        Err(PasskeyError::Unsupported)
    }
}

fn credentials() -> Result<web_sys::CredentialsContainer, PasskeyError> {
    ensure_supported()?;
    web_sys::window()
        .map(|window| window.navigator().credentials())
        .ok_or(PasskeyError::Unsupported)
}

/// Whether the browser offers passkeys in a username field's autofill.
pub async fn autofill_available() -> bool {
    if !supported() {
        return false;
    }
    match is_conditional_mediation_available() {
        Ok(promise) => JsFuture::from(promise).await.ok().and_then(|v| v.as_bool()).unwrap_or(false),
        Err(_) => false,
    }
}

fn json_body(members: &[(&str, &JsValue)]) -> Result<String, PasskeyError> {
    json_object(members).ok_or(PasskeyError::Refused(ClientError::Unavailable))
}

fn parse_json(text: &str) -> Result<JsValue, PasskeyError> {
    JSON::parse(text).map_err(|_| PasskeyError::Refused(ClientError::Unavailable))
}

fn member(object: &JsValue, name: &str) -> Result<JsValue, PasskeyError> {
    Reflect::get(object, &name.into())
        .ok()
        .filter(|value| !value.is_undefined() && !value.is_null())
        .ok_or(PasskeyError::Refused(ClientError::Unavailable))
}

/// A POST without an access token: the answer's text.
async fn post_public(path: &str, body: &str) -> Result<String, PasskeyError> {
    let response = ok_or_refused(send_once(Method::POST, path, Some(body), None).await?).await?;
    Ok(response.text().await.map_err(|_| ClientError::Unavailable)?)
}

fn token_response(text: &str) -> Result<TokenResponse, PasskeyError> {
    Ok(serde_json::from_str(text).map_err(|_| ClientError::Unavailable)?)
}

/// The browser's answer to `options`, a ceremony's `{publicKey, mediation?}`
/// as the server sent it, through `navigator.credentials.get()` or, with
/// `creating`, `.create()`; `signal` sets the request aside.
async fn ceremony(
    options: &JsValue,
    creating: bool,
    mediation: Option<&JsValue>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<JsValue, PasskeyError> {
    let container = credentials()?;
    let public_key = member(options, "publicKey")?;
    let parsed = if creating {
        parse_creation_options(&public_key)
    } else {
        parse_request_options(&public_key)
    };
    let request = Object::new();
    let set = |name: &str, value: &JsValue| Reflect::set(&request, &name.into(), value).map(drop);
    parsed
        .and_then(|public_key| set("publicKey", &public_key))
        .and_then(|()| mediation.map_or(Ok(()), |mediation| set("mediation", mediation)))
        .and_then(|()| signal.map_or(Ok(()), |signal| set("signal", signal.as_ref())))
        .map_err(|_| PasskeyError::Refused(ClientError::Unavailable))?;
    let promise = if creating {
        container.create_with_options(request.unchecked_ref())
    } else {
        container.get_with_options(request.unchecked_ref())
    };
    let credential = JsFuture::from(promise.map_err(|_| PasskeyError::Cancelled)?)
        .await
        .map_err(|_| PasskeyError::Cancelled)?;
    if credential.is_null() || credential.is_undefined() {
        return Err(PasskeyError::Cancelled);
    }
    Ok(credential.unchecked_into::<Credential>().to_json())
}

/// Begins a sign-in ceremony: its id, and the browser's answer to it.
async fn assert(autofill: bool, signal: Option<&web_sys::AbortSignal>) -> Result<(JsValue, JsValue), PasskeyError> {
    ensure_supported()?;
    let started = parse_json(&post_public("/auth/passkeys/login/start", "{}").await?)?;
    let options = member(&started, "options")?;
    // The server asks for conditional mediation; the button wants the dialog.
    let mediation = autofill.then(|| Reflect::get(&options, &"mediation".into()).ok()).flatten();
    let credential = ceremony(&options, false, mediation.as_ref(), signal).await?;
    Ok((member(&started, "ceremony")?, credential))
}

/// Signs in with a passkey: through the browser's dialog, or, with
/// `autofill`, when the person picks a passkey from the username field's
/// suggestions (until `abort` fires). On success the store holds the token.
pub async fn sign_in(store: AuthStore, autofill: bool, abort: Option<web_sys::AbortSignal>) -> Result<(), PasskeyError> {
    let (ceremony, credential) = assert(autofill, abort.as_ref()).await?;
    let body = json_body(&[("ceremony", &ceremony), ("credential", &credential)])?;
    let tokens = token_response(&post_public("/auth/passkeys/login/finish", &body).await?)?;
    let username = AccessToken::parse(&tokens.access_token)
        .map(|token| token.claims.preferred_username)
        .unwrap_or_default();
    logged_in(store, &tokens.access_token, username);
    Ok(())
}

/// Confirms it is the user, with one of their passkeys, for the re-auth
/// step (`client::reauth`): the browser's dialog, then `POST /auth/reauth`.
pub async fn reauth(store: AuthStore) -> Result<(), PasskeyError> {
    let (ceremony, credential) = assert(false, None).await?;
    let body = json_body(&[("ceremony", &ceremony), ("credential", &credential)])?;
    Ok(super::reauth::submit(store, &body).await?)
}

/// Signs up with a passkey instead of a password: an account named
/// `username` (and, if given, an address to verify) is made with the passkey
/// the browser's dialog makes. On success the store holds the token.
pub async fn sign_up(store: AuthStore, username: String, email: Option<String>) -> Result<(), PasskeyError> {
    ensure_supported()?;
    let body = serde_json::to_string(&PasskeySignUp {
        username: username.clone(),
        email,
    })
    .map_err(|_| ClientError::Unavailable)?;
    let started = parse_json(&post_public("/auth/passkeys/register/start", &body).await?)?;
    let credential = ceremony(&member(&started, "options")?, true, None, None).await?;
    let body = json_body(&[("credential", &credential), ("ceremony", &member(&started, "ceremony")?)])?;
    let tokens = token_response(&post_public("/auth/passkeys/register/finish", &body).await?)?;
    logged_in(store, &tokens.access_token, username);
    Ok(())
}

/// Adds a passkey to the signed-in account through the browser's dialog.
pub async fn add(store: AuthStore, name: Option<String>) -> Result<PasskeyView, PasskeyError> {
    ensure_supported()?;
    let api = Api::new(store);
    let options = parse_json(&api.post_text("/auth/passkeys/register/start", "{}").await?)?;
    let credential = ceremony(&options, true, None, None).await?;
    let name = name.map_or(JsValue::NULL, |name| JsValue::from_str(&name));
    let body = json_body(&[("credential", &credential), ("name", &name)])?;
    Ok(serde_json::from_str(&api.post_text("/auth/passkeys/register/finish", &body).await?)
        .map_err(|_| ClientError::Unavailable)?)
}
