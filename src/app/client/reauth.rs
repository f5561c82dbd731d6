//! The re-auth step: a sensitive change refused with `reauth_required` waits
//! here while the dialog (`components::ReauthDialog`) asks for the password
//! or a code; every change refused meanwhile waits for the same answer.

use std::cell::RefCell;

use futures::channel::oneshot;
use gloo_net::http::Method;

use wasm_bindgen::JsValue;

use super::transport::{json_object, ok_or_refused, send_once, ClientError};
use crate::app::auth_store::AuthStore;
use crate::protocol::TokenResponse;

thread_local! {
    static WAITING: RefCell<Vec<oneshot::Sender<bool>>> = const { RefCell::new(Vec::new()) };
}

/// Opens the dialog and waits: true once the session's sign-in is recent
/// again (the store then holds a token that says so), false if the person
/// dismissed the dialog.
pub async fn confirmed(store: AuthStore) -> bool {
    let (sender, receiver) = oneshot::channel();
    WAITING.with(|waiting| waiting.borrow_mut().push(sender));
    store.set_reauth_asked(true);
    receiver.await.unwrap_or(false)
}

/// Sends what the person typed in the dialog: the password, or, with
/// `is_code`, a code from the app or a recovery code.
pub async fn submit_typed(store: AuthStore, typed: &str, is_code: bool) -> Result<(), ClientError> {
    let member = if is_code { "code" } else { "password" };
    let proof = json_object(&[(member, &JsValue::from_str(typed))]).ok_or(ClientError::Unavailable)?;
    submit(store, &proof).await
}

/// Sends the proof (a `Reauth` body: the password, a code, or a passkey's
/// answer); on success stores the new token and lets the waiting changes go
/// on. A refusal leaves the dialog open.
pub async fn submit(store: AuthStore, proof: &str) -> Result<(), ClientError> {
    let token = store.current();
    // Sent as it is: a wrong password is a 401 that no refresh would change.
    let response = ok_or_refused(send_once(Method::POST, "/auth/reauth", Some(proof), token.as_ref()).await?).await?;
    let answer: TokenResponse = response.json().await.map_err(|_| ClientError::Unavailable)?;
    store.set_token(&answer.access_token);
    finish(store, true);
    Ok(())
}

/// Closes the dialog and answers every waiting change.
pub fn finish(store: AuthStore, confirmed: bool) {
    store.set_reauth_asked(false);
    let waiting = WAITING.with(|waiting| std::mem::take(&mut *waiting.borrow_mut()));
    for sender in waiting {
        let _ = sender.send(confirmed);
    }
}
