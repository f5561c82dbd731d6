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
use super::form_pages;
use super::redirect::redirect;
use super::AppState;
use crate::app::routes::{
    login_url, safe_next, with_next, ACCOUNT, FORGOT_PASSWORD, LOGIN, LOGIN_CODE, REGISTER, RESET_PASSWORD, SESSIONS,
    TWO_FACTOR, VERIFY_EMAIL,
};
use crate::auth::{AuthError, ClientInfo, LoginOutcome, ReauthProof, WithSources};
use crate::protocol::{debug_redacting, AccessClaims, Credentials, MfaLogin, PasswordChange, Registration};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LOGIN, post(login))
        .route(LOGIN_CODE, post(login_code))
        .route("/reauth", post(reauth))
        .route("/two-factor/start", post(begin_totp))
        .route("/two-factor/confirm", post(confirm_totp))
        .route("/two-factor/recovery-codes", post(regenerate_recovery_codes))
        .route("/two-factor/remove", post(remove_totp))
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

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    next: Option<String>,
}
debug_redacting!(CodeForm { next; secret: code });

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
        state.auth.register(registration, client).await.map(|tokens| LoginOutcome::SignedIn(Box::new(tokens)))
    } else {
        let credentials = Credentials {
            username: form.username,
            password: form.password,
        };
        state.auth.login(credentials, client).await
    };
    match started {
        Ok(LoginOutcome::SignedIn(tokens)) => see_other(&next, Some(state.cookies.set_for_tokens(&tokens, state.auth.now()))),
        // The sign-in's second step, on a page of its own; the token waits
        // in a cookie, as a form cannot keep it in memory.
        Ok(LoginOutcome::SecondFactor { mfa_token }) => see_other(
            &with_next(LOGIN_CODE, &next),
            Some(state.cookies.set_second_step(&mfa_token, crate::auth::MFA_TOKEN_SECONDS)),
        ),
        Err(err) => see_other(&with_error_and_next(page, err, &next), None),
    }
}

/// `/login-code` posted: the second step of a sign-in begun at `/login`.
async fn login_code(State(state): State<AppState>, Client(client): Client, request: Request) -> Response {
    let mfa_token = axum_extra::extract::CookieJar::from_headers(request.headers())
        .get(state.cookies.second_step_name())
        .map(|cookie| cookie.value().to_string());
    let Some(form) = read_form::<CodeForm>(&state, request).await else {
        return see_other(&with_code(LOGIN_CODE, "error", "bad_request"), None);
    };
    let next = safe_next(form.next.as_deref());
    // Without the cookie the sign-in has expired (or never began): start over.
    let Some(mfa_token) = mfa_token.filter(|token| !token.is_empty()) else {
        return see_other(&with_error_and_next(LOGIN, AuthError::InvalidCode, &next), None);
    };
    let step = MfaLogin {
        mfa_token,
        code: form.code,
    };
    match state.auth.login_second_step(step, &client).await {
        Ok(tokens) => {
            let mut response = see_other(&next, Some(state.cookies.set_for_tokens(&tokens, state.auth.now())));
            response.headers_mut().append(header::SET_COOKIE, state.cookies.clear_second_step());
            response
        }
        Err(err) => see_other(&with_error_and_next(LOGIN_CODE, err, &next), None),
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
    request: Request,
) -> Response {
    let posted = match session_form::<NoFields>(&state, cookie.as_deref(), &client, request, SESSIONS).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.logout_all(&posted.claims, &client).await {
        Ok(()) => see_other(LOGIN, Some(state.cookies.clear())),
        Err(err) => posted.refused(&state, "/logout-all", SESSIONS, err),
    }
}

async fn revoke_session(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let Posted {
        claims, renewed, form, ..
    } = match session_form::<RevokeForm>(&state, cookie.as_deref(), &client, request, SESSIONS).await {
        Ok(posted) => posted,
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
    let posted = match session_form::<PasswordForm>(&state, cookie.as_deref(), &client, request, ACCOUNT).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    let change = PasswordChange {
        current_password: posted.form.current_password.clone(),
        new_password: posted.form.new_password.clone(),
    };
    match state.auth.change_password(&posted.claims, change, &client).await {
        Ok(()) => see_other(&with_code(ACCOUNT, "notice", "password_changed"), posted.renewed),
        Err(err) => posted.refused(&state, "/account/password", ACCOUNT, err),
    }
}

async fn ask_for_email(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let posted = match session_form::<EmailForm>(&state, cookie.as_deref(), &client, request, ACCOUNT).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.ask_for_email(&posted.claims, &posted.form.email, &client).await {
        Ok(()) => see_other(&with_code(ACCOUNT, "notice", "verification_mailed"), posted.renewed),
        Err(err) => posted.refused(&state, "/account/email", ACCOUNT, err),
    }
}

#[derive(Deserialize)]
struct CodeOnlyForm {
    code: String,
}
debug_redacting!(CodeOnlyForm { ; secret: code });

async fn begin_totp(State(state): State<AppState>, Client(client): Client, RefreshCookie(cookie): RefreshCookie, request: Request) -> Response {
    let posted = match session_form::<NoFields>(&state, cookie.as_deref(), &client, request, TWO_FACTOR).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.begin_totp(&posted.claims).await {
        // The page shows the setup under way.
        Ok(_) => see_other(TWO_FACTOR, posted.renewed),
        Err(err) => posted.refused(&state, "/two-factor/start", TWO_FACTOR, err),
    }
}

/// Answered with the recovery codes themselves: they are shown this once.
async fn confirm_totp(State(state): State<AppState>, Client(client): Client, RefreshCookie(cookie): RefreshCookie, request: Request) -> Response {
    let posted = match session_form::<CodeOnlyForm>(&state, cookie.as_deref(), &client, request, TWO_FACTOR).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.confirm_totp(&posted.claims, &posted.form.code, &client).await {
        Ok(codes) => with_cookie(form_pages::recovery_codes(&state, codes.recovery_codes), posted.renewed),
        Err(err) => see_other(&with_error(TWO_FACTOR, err), posted.renewed),
    }
}

async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
    request: Request,
) -> Response {
    let posted = match session_form::<NoFields>(&state, cookie.as_deref(), &client, request, TWO_FACTOR).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.regenerate_recovery_codes(&posted.claims, &client).await {
        Ok(codes) => with_cookie(form_pages::recovery_codes(&state, codes.recovery_codes), posted.renewed),
        Err(err) => posted.refused(&state, "/two-factor/recovery-codes", TWO_FACTOR, err),
    }
}

async fn remove_totp(State(state): State<AppState>, Client(client): Client, RefreshCookie(cookie): RefreshCookie, request: Request) -> Response {
    let posted = match session_form::<NoFields>(&state, cookie.as_deref(), &client, request, TWO_FACTOR).await {
        Ok(posted) => posted,
        Err(response) => return response,
    };
    match state.auth.remove_totp(&posted.claims, &client).await {
        Ok(()) => see_other(&with_code(TWO_FACTOR, "notice", "totp_removed"), posted.renewed),
        Err(err) => posted.refused(&state, "/two-factor/remove", TWO_FACTOR, err),
    }
}

/// The re-auth step posted: the password or a code, the form it interrupted
/// (`then`, and its fields as `form.<name>`). Once the sign-in is recent
/// again, that form is posted on, here, with the session's cookie, and its
/// answer is this answer. A wrong password or code shows the step again.
async fn reauth(State(state): State<AppState>, Client(client): Client, RefreshCookie(cookie): RefreshCookie, request: Request) -> Response {
    let headers = request.headers().clone();
    let extensions = request.extensions().clone();
    let Ok(body) = axum::body::Bytes::from_request(request, &state).await else {
        return see_other(&with_code(ACCOUNT, "error", "bad_request"), None);
    };
    let Ok(posted) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return see_other(&with_code(ACCOUNT, "error", "bad_request"), None);
    };
    let field = |name: &str| posted.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let then = field("then").unwrap_or_default();
    let Some(page) = form_pages::page_of_sensitive(&then) else {
        return see_other(&with_code(ACCOUNT, "error", "bad_request"), None);
    };
    let carried: Vec<(String, String)> = posted
        .iter()
        .filter_map(|(key, value)| key.strip_prefix("form.").map(|name| (name.to_string(), value.clone())))
        .collect();
    let (claims, renewed) = match cookie_claims(&state, cookie.as_deref(), &client, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let proof = match (field("password").filter(|p| !p.is_empty()), field("code").filter(|c| !c.trim().is_empty())) {
        (Some(password), _) => ReauthProof::Password(password),
        (None, Some(code)) => ReauthProof::Code(code),
        (None, None) => {
            return with_cookie(form_pages::reauth(&state, &then, carried, Some("Type your password or a code.")), renewed)
        }
    };
    match state.auth.reauthenticate(&claims, proof, &client).await {
        Ok(_) => {}
        Err(err @ (AuthError::InvalidCredentials | AuthError::InvalidCode | AuthError::RateLimited { .. })) => {
            let said = crate::app::error_message(ApiError::from(err).code());
            return with_cookie(form_pages::reauth(&state, &then, carried, Some(said)), renewed);
        }
        Err(err) => return see_other(&with_error(page, err), renewed),
    }
    // The interrupted form, posted on with the cookie as it now is.
    let cookie_now = renewed
        .as_ref()
        .and_then(|set| set.to_str().ok())
        .and_then(|set| set.split(';').next())
        .map(str::to_string)
        .or_else(|| headers.get(header::COOKIE).and_then(|c| c.to_str().ok()).map(str::to_string));
    let Ok(form) = serde_urlencoded::to_string(&carried) else {
        return see_other(&with_code(page, "error", "bad_request"), renewed);
    };
    let mut builder = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri(then.as_str())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie_now {
        builder = builder.header(header::COOKIE, cookie);
    }
    for name in [header::USER_AGENT, header::ORIGIN] {
        if let Some(value) = headers.get(&name) {
            builder = builder.header(name, value);
        }
    }
    let Ok(mut inner) = builder.body(axum::body::Body::from(form)) else {
        return see_other(&with_code(page, "error", "bad_request"), renewed);
    };
    *inner.extensions_mut() = extensions;
    let answered = tower::ServiceExt::oneshot(routes().with_state(state.clone()), inner).await;
    let response = match answered {
        Ok(response) => response,
        Err(never) => match never {},
    };
    with_cookie(response, renewed)
}

/// `response` setting the renewed refresh cookie too, if there is one.
fn with_cookie(mut response: Response, renewed: Option<HeaderValue>) -> Response {
    if let Some(renewed) = renewed {
        response.headers_mut().append(header::SET_COOKIE, renewed);
    }
    response
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

/// A form a logged-in user posted: their session's claims, the cookie
/// renewed if presenting it rotated it, the form, and its fields as posted.
struct Posted<T> {
    claims: AccessClaims,
    renewed: Option<HeaderValue>,
    form: T,
    fields: Vec<(String, String)>,
}

impl<T> Posted<T> {
    /// The answer to a refused sensitive form posted to `action` from
    /// `page`: the re-auth step carrying the form when a recent sign-in is
    /// wanting, else back to the page with the error.
    fn refused(self, state: &AppState, action: &str, page: &str, err: AuthError) -> Response {
        let response = match err {
            AuthError::ReauthRequired => form_pages::reauth(state, action, self.fields, None),
            err => see_other(&with_error(page, err), None),
        };
        with_cookie(response, self.renewed)
    }
}

/// A form with nothing in it but the session.
#[derive(Debug, Deserialize)]
struct NoFields {}

/// The session behind the cookie and the form a logged-in user posted from
/// `page`; otherwise the redirect to answer: to log in, to the second-factor
/// setup, or back with `bad_request`.
async fn session_form<T: DeserializeOwned>(
    state: &AppState,
    cookie: Option<&str>,
    client: &ClientInfo,
    request: Request,
    page: &str,
) -> Result<Posted<T>, Response> {
    let (claims, renewed) = cookie_claims(state, cookie, client, page).await?;
    let bad_request = || see_other(&with_code(page, "error", "bad_request"), renewed.clone());
    let body = axum::body::Bytes::from_request(request, state).await.map_err(|_| bad_request())?;
    let form = serde_urlencoded::from_bytes::<T>(&body).map_err(|_| bad_request())?;
    let fields = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).map_err(|_| bad_request())?;
    Ok(Posted {
        claims,
        renewed,
        form,
        fields,
    })
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
        // The second-factor policy: nothing but its setup until there is one.
        Some(session) if page != TWO_FACTOR && state.auth.lacks_required_second_factor(&session.claims) => {
            Err(see_other(TWO_FACTOR, set_cookie))
        }
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
