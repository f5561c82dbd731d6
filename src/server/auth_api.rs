//! The HTTP API of the auth core: `/auth/*`, `/api/*`, the JWKS. Each handler
//! only translates between HTTP and one [`Auth`](crate::auth::Auth) call.

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use tower_http::set_header::SetResponseHeaderLayer;

use super::error::ApiError;
use super::extract::{Authenticated, Client, JsonBody, ListPage, MaybeAuthenticated, RefreshCookie, SignedIn};
use super::AppState;
use crate::auth::paging::PageRequest;
use crate::auth::{AuthError, LoginOutcome, NewTokens, ReauthProof};
use crate::protocol::{
    CodeBody, Credentials, EmailAddressBody, MailTokenBody, MfaLogin, MfaRequired, Paged, PasskeyLoginFinish,
    PasskeyRegistrationFinish, PasskeyRename, PasskeySignUp, PasswordChange, PasswordResetConfirm, Reauth, Registration,
    SecondFactorStatus, TokenResponse,
};

pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/login/mfa", post(login_second_step))
        .route("/auth/reauth", post(reauth))
        .route(SecondFactorStatus::PATH, get(second_factor))
        .route("/auth/mfa/totp", post(begin_totp).delete(remove_totp))
        .route("/auth/mfa/totp/confirm", post(confirm_totp))
        .route("/auth/mfa/recovery-codes", post(regenerate_recovery_codes))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/sessions", get(sessions))
        .route("/auth/sessions/{id}", delete(revoke_session))
        .route("/auth/password", post(change_password))
        .route("/auth/email", post(ask_for_email))
        .route("/auth/email/verify", post(verify_email))
        .route("/auth/password-reset", post(ask_for_password_reset))
        .route("/auth/password-reset/confirm", post(reset_password))
        .route("/auth/passkeys", get(passkeys))
        .route("/auth/passkeys/{id}", axum::routing::patch(rename_passkey).delete(remove_passkey))
        .route("/auth/passkeys/register/start", post(start_passkey_registration))
        .route("/auth/passkeys/register/finish", post(finish_passkey_registration))
        .route("/auth/passkeys/login/start", post(start_passkey_login))
        .route("/auth/passkeys/login/finish", post(finish_passkey_login))
        .route("/api/me", get(me))
        .route("/api/admin/users", get(admin_users))
        .route("/api/admin/events", get(admin_events))
        .route("/auth/{*rest}", axum::routing::any(not_found))
        .route("/api/{*rest}", axum::routing::any(not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    Router::new()
        .merge(api)
        .route("/.well-known/jwks.json", get(jwks))
}

fn token_response(state: &AppState, status: StatusCode, tokens: &NewTokens) -> Response {
    let body = TokenResponse {
        access_token: tokens.access.token.clone(),
        token_type: "Bearer".to_string(),
        expires_in: tokens.access.expires_in,
        second_factor_required: state.auth.lacks_required_second_factor(&tokens.access.claims),
    };
    (status, [(header::SET_COOKIE, state.cookies.set_for_tokens(tokens, state.auth.now()))], Json(body)).into_response()
}

async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(registration): JsonBody<Registration>,
) -> Result<Response, ApiError> {
    let tokens = state.auth.register(registration, &client).await?;
    Ok(token_response(&state, StatusCode::CREATED, &tokens))
}

async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(credentials): JsonBody<Credentials>,
) -> Result<Response, ApiError> {
    match state.auth.login(credentials, &client).await? {
        LoginOutcome::SignedIn(tokens) => Ok(token_response(&state, StatusCode::OK, &tokens)),
        // No session yet, so no cookie: the second step makes both.
        LoginOutcome::SecondFactor { mfa_token } => Ok(Json(MfaRequired {
            mfa_required: true,
            mfa_token: mfa_token.expose().to_string(),
        })
        .into_response()),
    }
}

async fn login_second_step(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(step): JsonBody<MfaLogin>,
) -> Result<Response, ApiError> {
    let tokens = state.auth.login_second_step(step, &client).await?;
    Ok(token_response(&state, StatusCode::OK, &tokens))
}

/// A new access token whose `auth_time` is now; the refresh cookie stays.
async fn reauth(
    State(state): State<AppState>,
    Client(client): Client,
    SignedIn(claims): SignedIn,
    JsonBody(body): JsonBody<Reauth>,
) -> Result<Response, ApiError> {
    let proof = match (body.password, body.code, body.ceremony, body.credential) {
        (Some(password), None, None, None) => ReauthProof::Password(password),
        (None, Some(code), None, None) => ReauthProof::Code(code),
        (None, None, Some(ceremony), Some(credential)) => ReauthProof::Passkey {
            ceremony,
            credential: Box::new(credential),
        },
        _ => {
            return Err(ApiError::Malformed(
                "Send one of: password, code, or a passkey's ceremony and credential.".to_string(),
            ))
        }
    };
    let access = state.auth.reauthenticate(&claims, proof, &client).await?;
    Ok(Json(TokenResponse {
        second_factor_required: state.auth.lacks_required_second_factor(&access.claims),
        access_token: access.token,
        token_type: "Bearer".to_string(),
        expires_in: access.expires_in,
    })
    .into_response())
}

async fn second_factor(State(state): State<AppState>, SignedIn(claims): SignedIn) -> Result<Response, ApiError> {
    Ok(Json(state.auth.second_factor_status(&claims).await?).into_response())
}

async fn begin_totp(State(state): State<AppState>, SignedIn(claims): SignedIn) -> Result<Response, ApiError> {
    Ok(Json(state.auth.begin_totp(&claims).await?).into_response())
}

async fn confirm_totp(
    State(state): State<AppState>,
    Client(client): Client,
    SignedIn(claims): SignedIn,
    JsonBody(body): JsonBody<CodeBody>,
) -> Result<Response, ApiError> {
    Ok(Json(state.auth.confirm_totp(&claims, &body.code, &client).await?).into_response())
}

async fn remove_totp(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.auth.remove_totp(&claims, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    Ok(Json(state.auth.regenerate_recovery_codes(&claims, &client).await?).into_response())
}

async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
) -> Response {
    // Without a cookie there is nothing to clear, and a clearing answer could
    // land after a login that set one meanwhile (a form posted while this
    // refresh was on its way) and wipe that session's cookie.
    let Some(cookie) = cookie else {
        return ApiError::Auth(AuthError::RefreshRejected).into_response();
    };
    match state.auth.refresh(&cookie, &client).await {
        Ok(tokens) => token_response(&state, StatusCode::OK, &tokens),
        // Only a refused token ends the cookie; an outage or a rate limit does not.
        Err(err @ AuthError::RefreshRejected) => with_cleared_cookie(&state, err.into()),
        Err(err) => ApiError::from(err).into_response(),
    }
}

fn with_cleared_cookie(state: &AppState, err: ApiError) -> Response {
    let mut response = err.into_response();
    response.headers_mut().append(header::SET_COOKIE, state.cookies.clear());
    response
}

async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    RefreshCookie(cookie): RefreshCookie,
) -> Result<Response, ApiError> {
    state.auth.logout(cookie.as_deref(), &client).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.cookies.clear())]).into_response())
}

async fn logout_all(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
) -> Result<Response, ApiError> {
    state.auth.logout_all(&claims, &client).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, state.cookies.clear())]).into_response())
}

async fn sessions(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    ListPage(page): ListPage,
) -> Result<Response, ApiError> {
    Ok(list_response(
        "/auth/sessions",
        &page,
        state.auth.sessions(&claims, &page).await?,
    ))
}

/// A page of a list: its items as the body (the JSON array clients read before
/// lists paged), and where the next page is in `Link` (RFC 8288).
fn list_response<T: serde::Serialize>(path: &str, page: &PageRequest, paged: Paged<T>) -> Response {
    let mut response = Json(paged.items).into_response();
    // A cursor is base64url: nothing in it needs escaping in a URL.
    let link = paged
        .next_cursor
        .map(|cursor| format!(r#"<{path}?limit={}&cursor={cursor}>; rel="next""#, page.limit()))
        .and_then(|link| HeaderValue::from_str(&link).ok());
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

async fn revoke_session(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_session(&claims, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    JsonBody(change): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state.auth.change_password(&claims, change, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ask_for_email(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    JsonBody(body): JsonBody<EmailAddressBody>,
) -> Result<StatusCode, ApiError> {
    state.auth.ask_for_email(&claims, &body.email, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<MailTokenBody>,
) -> Result<StatusCode, ApiError> {
    state.auth.verify_email(&body.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 202 whether or not the address has an account: see `auth::recovery`.
async fn ask_for_password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<EmailAddressBody>,
) -> Result<StatusCode, ApiError> {
    state.auth.ask_for_password_reset(&body.email, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasswordResetConfirm>,
) -> Result<StatusCode, ApiError> {
    state.auth.reset_password(&body.token, body.new_password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn passkeys(State(state): State<AppState>, Authenticated(claims): Authenticated) -> Result<Response, ApiError> {
    Ok(Json(state.auth.passkeys(&claims).await?).into_response())
}

async fn rename_passkey(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PasskeyRename>,
) -> Result<Response, ApiError> {
    Ok(Json(state.auth.rename_passkey(&claims, &id, &body.name, &client).await?).into_response())
}

async fn remove_passkey(
    State(state): State<AppState>,
    Client(client): Client,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.remove_passkey(&claims, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// With an access token, adding a passkey to the caller's account; without
/// one, a JSON body `{username, email?}` signs up with a passkey instead of a
/// password (a request with neither is refused as unauthenticated).
async fn start_passkey_registration(
    State(state): State<AppState>,
    Client(client): Client,
    MaybeAuthenticated(claims): MaybeAuthenticated,
    request: Request,
) -> Result<Response, ApiError> {
    if let Some(claims) = claims {
        return Ok(Json(state.auth.start_passkey_registration(&claims).await?).into_response());
    }
    if !request.headers().contains_key(header::CONTENT_TYPE) {
        return Err(ApiError::MissingToken);
    }
    let JsonBody(sign_up) = JsonBody::<PasskeySignUp>::from_request(request, &state).await?;
    Ok(Json(state.auth.start_passkey_sign_up(sign_up, &client).await?).into_response())
}

/// With an access token, 201 and the passkey added; without one, the end of a
/// sign-up (its `ceremony` named): 201 and a registration's token body and
/// refresh cookie.
async fn finish_passkey_registration(
    State(state): State<AppState>,
    Client(client): Client,
    MaybeAuthenticated(claims): MaybeAuthenticated,
    JsonBody(body): JsonBody<PasskeyRegistrationFinish>,
) -> Result<Response, ApiError> {
    let name = body.name.as_deref();
    match (claims, &body.ceremony) {
        (Some(claims), _) => {
            let added = state
                .auth
                .finish_passkey_registration(&claims, &body.credential, name, &client)
                .await?;
            Ok((StatusCode::CREATED, Json(added)).into_response())
        }
        (None, Some(ceremony)) => {
            let tokens = state
                .auth
                .finish_passkey_sign_up(ceremony, &body.credential, name, &client)
                .await?;
            Ok(token_response(&state, StatusCode::CREATED, &tokens))
        }
        (None, None) => Err(ApiError::MissingToken),
    }
}

async fn start_passkey_login(State(state): State<AppState>, Client(client): Client) -> Result<Response, ApiError> {
    Ok(Json(state.auth.start_passkey_login(&client).await?).into_response())
}

async fn finish_passkey_login(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(body): JsonBody<PasskeyLoginFinish>,
) -> Result<Response, ApiError> {
    let tokens = state.auth.finish_passkey_login(&body.ceremony, &body.credential, &client).await?;
    Ok(token_response(&state, StatusCode::OK, &tokens))
}

async fn me(State(state): State<AppState>, SignedIn(claims): SignedIn) -> Result<Response, ApiError> {
    Ok(Json(state.auth.me(&claims).await?).into_response())
}

async fn admin_users(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    ListPage(page): ListPage,
) -> Result<Response, ApiError> {
    Ok(list_response(
        "/api/admin/users",
        &page,
        state.auth.admin_users(&claims, &page).await?,
    ))
}

async fn admin_events(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    ListPage(page): ListPage,
) -> Result<Response, ApiError> {
    Ok(list_response(
        "/api/admin/events",
        &page,
        state.auth.admin_events(&claims, &page).await?,
    ))
}

async fn jwks(State(state): State<AppState>) -> Response {
    // Short caching: a rotated key must reach verifiers before its tokens do.
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(state.auth.jwks())).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
