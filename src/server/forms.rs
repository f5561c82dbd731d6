//! Form posts for browsers without JavaScript. Each takes
//! `application/x-www-form-urlencoded`, does what the JSON API does, and
//! answers 303 to the page to show next, with `?error=<code>` or
//! `?notice=<code>` for the page to announce. The actions of a logged-in user
//! are authenticated by the refresh cookie, which only same-site requests carry
//! (and `request_screen::screen_request`, in front of every route, checks `Origin`
//! besides). With JavaScript the pages call the JSON API instead and never
//! reload.

use axum::extract::{FromRequest as _, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Client, RefreshCookie};
use super::redirect::redirect;
use super::AppState;
use crate::app::routes::{
    login_url, safe_next, ACCOUNT, FORGOT_PASSWORD, LOGIN, REGISTER, RESET_PASSWORD, SESSIONS, VERIFY_EMAIL,
};
use crate::auth::{AuthError, ClientInfo, WithSources};
use crate::protocol::{debug_redacting, AccessClaims, Credentials, PasswordChange, Registration};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LOGIN, post(login))
        .route(REGISTER, post(register))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/sessions/revoke", post(revoke_session))
        .route("/account/password", post(change_password))
        .route("/account/email", post(ask_for_email))
        .route(FORGOT_PASSWORD, post(ask_for_password_reset))
        .route(RESET_PASSWORD, post(reset_password))
        .route(VERIFY_EMAIL, post(verify_email))
}

#[derive(Deserialize)]
struct CredentialsForm {
    username: String,
    password: String,
    /// Registration only, optional.
    email: Option<String>,
    next: Option<String>,
}
debug_redacting!(CredentialsForm { username, email, next; secret: password });

#[derive(Debug, Deserialize)]
struct EmailForm {
    email: String,
}

#[derive(Deserialize)]
struct MailTokenForm {
    token: String,
}
debug_redacting!(MailTokenForm { ; secret: token });

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    new_password: String,
}
debug_redacting!(ResetForm { ; secret: token, new_password });

#[derive(Debug, Deserialize)]
struct RevokeForm {
    session_id: String,
    /// The page of the sessions list the form was on, to come back to.
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct PasswordForm {
    current_password: String,
    new_password: String,
}
debug_redacting!(PasswordForm { ; secret: current_password, new_password });

async fn login(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    credentials_form(&state, &client, request, LOGIN).await
}

async fn register(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    credentials_form(&state, &client, request, REGISTER).await
}

/// `/login` and `/register` posted: the same form, the same answers.
async fn credentials_form(state: &AppState, client: &ClientInfo, request: Request, page: &'static str) -> Response {
    let Some(form) = read_form::<CredentialsForm>(state, request).await else {
        return see_other(&with_code(page, "error", "bad_request"), None);
    };
    let next = safe_next(form.next.as_deref());
    let started = if page == REGISTER {
        let registration = Registration {
            username: form.username,
            password: form.password,
            email: form.email,
        };
        state.auth.register(registration, client).await
    } else {
        let credentials = Credentials {
            username: form.username,
            password: form.password,
        };
        state.auth.login(credentials, client).await
    };
    match started {
        Ok(tokens) => see_other(&next, Some(state.cookies.set_for_tokens(&tokens, state.auth.now()))),
        Err(err) => see_other(&with_error_and_next(page, err, &next), None),
    }
}

async fn logout(State(state): State<AppState>, Client(client): Client, RefreshCookie(cookie): RefreshCookie) -> Response {
    match state.auth.logout(cookie.as_deref(), &client).await {
        Ok(()) => see_other(LOGIN, Some(state.cookies.clear())),
        // The session is still live: keep the cookie, so the person can try
        // again, rather than look logged out while it is not.
        Err(err) => {
            tracing::warn!(error = %WithSources(&err), "logout form failed");
            see_other(&with_error(SESSIONS, err), None)
        }
    }
}

async fn logout_all(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
) -> Response {
    let claims = match cookie_claims(&state, cookie.as_deref(), &client, SESSIONS).await {
        Ok((claims, _)) => claims,
        Err(response) => return response,
    };
    match state.auth.logout_all(&claims, &client).await {
        Ok(()) => see_other(LOGIN, Some(state.cookies.clear())),
        Err(err) => see_other(&with_error(SESSIONS, err), None),
    }
}

async fn revoke_session(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let (claims, renewed, form) =
        match session_form::<RevokeForm>(&state, cookie.as_deref(), &client, request, SESSIONS).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let back = match form.cursor.as_deref() {
        Some(cursor) if !cursor.is_empty() => {
            format!("{SESSIONS}?cursor={}", utf8_percent_encode(cursor, NON_ALPHANUMERIC))
        }
        _ => SESSIONS.to_string(),
    };
    match state.auth.revoke_session(&claims, &form.session_id, &client).await {
        Ok(()) => see_other(&with_code(&back, "notice", "session_revoked"), renewed),
        Err(err) => see_other(&with_error(&back, err), renewed),
    }
}

async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let (claims, renewed, form) =
        match session_form::<PasswordForm>(&state, cookie.as_deref(), &client, request, ACCOUNT).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let change = PasswordChange {
        current_password: form.current_password,
        new_password: form.new_password,
    };
    match state.auth.change_password(&claims, change, &client).await {
        Ok(()) => see_other(&with_code(ACCOUNT, "notice", "password_changed"), renewed),
        Err(err) => see_other(&with_error(ACCOUNT, err), renewed),
    }
}

async fn ask_for_email(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let (claims, renewed, form) =
        match session_form::<EmailForm>(&state, cookie.as_deref(), &client, request, ACCOUNT).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    match state.auth.ask_for_email(&claims, &form.email, &client).await {
        Ok(()) => see_other(&with_code(ACCOUNT, "notice", "verification_mailed"), renewed),
        Err(err) => see_other(&with_error(ACCOUNT, err), renewed),
    }
}

async fn ask_for_password_reset(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    let Some(form) = read_form::<EmailForm>(&state, request).await else {
        return see_other(&with_code(FORGOT_PASSWORD, "error", "bad_request"), None);
    };
    match state.auth.ask_for_password_reset(&form.email, &client).await {
        Ok(()) => see_other(&with_code(FORGOT_PASSWORD, "notice", "reset_mailed"), None),
        Err(err) => see_other(&with_error(FORGOT_PASSWORD, err), None),
    }
}

/// What a token keeps unescaped in a URL: base64url stays as it is, anything
/// else typed is escaped.
const URL_SAFE: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// Back to the form with the token on a refusal the person can fix (a weak
/// password), without it when the token itself was refused.
async fn reset_password(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    let Some(form) = read_form::<ResetForm>(&state, request).await else {
        return see_other(&with_code(RESET_PASSWORD, "error", "bad_request"), None);
    };
    let token = form.token.trim().to_string();
    match state.auth.reset_password(&token, form.new_password, &client).await {
        Ok(()) => see_other(&with_code(LOGIN, "notice", "password_reset"), None),
        Err(err @ AuthError::WeakPassword(_)) => {
            let again = format!("{RESET_PASSWORD}?token={}", utf8_percent_encode(&token, URL_SAFE));
            see_other(&with_error(&again, err), None)
        }
        Err(err) => see_other(&with_error(RESET_PASSWORD, err), None),
    }
}

async fn verify_email(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    let Some(form) = read_form::<MailTokenForm>(&state, request).await else {
        return see_other(&with_code(VERIFY_EMAIL, "error", "bad_request"), None);
    };
    match state.auth.verify_email(&form.token, &client).await {
        Ok(()) => see_other(&with_code(VERIFY_EMAIL, "notice", "email_verified"), None),
        Err(err) => see_other(&with_error(VERIFY_EMAIL, err), None),
    }
}

/// The session behind the cookie (with the cookie renewed, if it was) and the
/// form a logged-in user posted from `page`; otherwise the redirect to
/// answer: to log in, or back with `bad_request`.
async fn session_form<T: DeserializeOwned>(
    state: &AppState,
    cookie: Option<&str>,
    client: &ClientInfo,
    request: Request,
    page: &str,
) -> Result<(AccessClaims, Option<HeaderValue>, T), Response> {
    let (claims, renewed) = cookie_claims(state, cookie, client, page).await?;
    let form = read_form::<T>(state, request)
        .await
        .ok_or_else(|| see_other(&with_code(page, "error", "bad_request"), renewed.clone()))?;
    Ok((claims, renewed, form))
}

/// The claims of the session behind the refresh cookie, if it is live, and
/// the cookie renewed if presenting it rotated it; otherwise the redirect to
/// log in from `page`, clearing a cookie that was already rotated (its
/// session is revoked as stolen), or back to `page` with `rate_limited`.
async fn cookie_claims(
    state: &AppState,
    cookie: Option<&str>,
    client: &ClientInfo,
    page: &str,
) -> Result<(AccessClaims, Option<HeaderValue>), Response> {
    let found = match state.auth.form_session(cookie, client).await {
        Ok(found) => found,
        Err(err @ AuthError::RateLimited { .. }) => return Err(see_other(&with_error(page, err), None)),
        Err(err) => {
            tracing::warn!(error = %WithSources(&err), "form could not look up its session");
            return Err(see_other(&login_url(page), None));
        }
    };
    let set_cookie = state.cookies.for_change(&found.cookie, state.auth.now());
    match found.session {
        Some(session) => Ok((session.claims, set_cookie)),
        None => Err(see_other(&login_url(page), set_cookie)),
    }
}

async fn read_form<T: DeserializeOwned>(state: &AppState, request: Request) -> Option<T> {
    Form::<T>::from_request(request, state).await.ok().map(|Form(form)| form)
}

/// `page` (which may have a query already) with `kind=code` added to its query.
fn with_code(page: &str, kind: &str, code: &str) -> String {
    let separator = if page.contains('?') { '&' } else { '?' };
    format!("{page}{separator}{kind}={code}")
}

/// The page again with the API's error code, which the page turns into a sentence.
fn with_error(page: &str, err: AuthError) -> String {
    with_code(page, "error", ApiError::from(err).code())
}

fn with_error_and_next(page: &str, err: AuthError, next: &str) -> String {
    format!("{}&next={}", with_error(page, err), utf8_percent_encode(next, NON_ALPHANUMERIC))
}

/// 303 to `location`, setting or clearing the refresh cookie with it if given.
fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = redirect(StatusCode::SEE_OTHER, location);
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
