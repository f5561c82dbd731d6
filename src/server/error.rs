//! The one place errors become HTTP: every failure is a JSON body
//! `{"error": code, "message": text}` with the right status. Internal detail is
//! logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::auth::{AuthError, WithSources};
use crate::protocol::ErrorBody;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Malformed(String),
    #[error("Send the body as application/json.")]
    UnsupportedMediaType,
    #[error("The request body is too large.")]
    PayloadTooLarge,
    #[error("Cross-site requests are not allowed here.")]
    CrossSite,
    #[error("This needs an access token: send Authorization: Bearer <token>.")]
    MissingToken,
    #[error("Not found.")]
    NotFound,
    #[error("This method is not allowed here.")]
    MethodNotAllowed,
    /// The request's handler panicked (logged where it was caught).
    #[error("Something went wrong on our side.")]
    HandlerFailed,
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        Self::Auth(err.into())
    }
}

/// `WWW-Authenticate` for a refused access token (RFC 6750).
const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer realm="gatehouse", error="invalid_token""#;
const EXPIRED_TOKEN_CHALLENGE: &str =
    r#"Bearer realm="gatehouse", error="invalid_token", error_description="The access token expired""#;

impl ApiError {
    /// The stable error code the API answers with, for callers that answer otherwise (form redirects).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use AuthError as A;
        match self {
            Self::Malformed(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::HandlerFailed => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Auth(err) => match err {
                A::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
                A::UsernameTaken => (StatusCode::CONFLICT, "username_taken"),
                A::InvalidUsername(_) => (StatusCode::BAD_REQUEST, "invalid_username"),
                A::WeakPassword(_) => (StatusCode::UNPROCESSABLE_ENTITY, "weak_password"),
                A::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                A::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
                A::InvalidToken | A::SessionRevoked => (StatusCode::UNAUTHORIZED, "invalid_token"),
                A::RefreshRejected => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
                A::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
                A::InvalidEmail => (StatusCode::BAD_REQUEST, "invalid_email"),
                A::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
                A::InvalidMailToken => (StatusCode::BAD_REQUEST, "invalid_token"),
                A::PasskeyRefused => (StatusCode::BAD_REQUEST, "invalid_passkey"),
                A::PasskeyName => (StatusCode::BAD_REQUEST, "invalid_passkey_name"),
                A::PasskeyTaken => (StatusCode::CONFLICT, "passkey_taken"),
                A::LastSignInMethod => (StatusCode::CONFLICT, "last_sign_in_method"),
                A::PasskeysUnavailable => (StatusCode::NOT_FOUND, "passkeys_unavailable"),
                A::InvalidCode => (StatusCode::UNAUTHORIZED, "invalid_code"),
                A::ReauthRequired => (StatusCode::FORBIDDEN, "reauth_required"),
                A::SecondFactorRequired => (StatusCode::FORBIDDEN, "second_factor_required"),
                A::TotpEnabled => (StatusCode::CONFLICT, "totp_enabled"),
                A::TotpNotEnabled => (StatusCode::CONFLICT, "totp_not_enabled"),
                A::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                A::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                A::BadPage(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                A::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                A::Store(_) | A::Hashing(_) | A::Keys(_) | A::SecondFactor(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Auth(err @ AuthError::Unavailable(_)) => {
                tracing::warn!(error = %WithSources(err), "database unavailable");
                err.to_string()
            }
            Self::Auth(err) if err.is_server_fault() => {
                tracing::error!(error = %WithSources(err), "server fault");
                "Something went wrong on our side.".to_string()
            }
            other => other.to_string(),
        };
        let reasons = match &self {
            Self::Auth(AuthError::WeakPassword(reasons)) => reasons.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: code.to_string(),
            message,
            reasons,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::Auth(AuthError::RateLimited { retry_after }) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::Auth(AuthError::TokenExpired) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(EXPIRED_TOKEN_CHALLENGE));
            }
            Self::Auth(AuthError::InvalidToken | AuthError::SessionRevoked) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(INVALID_TOKEN_CHALLENGE));
            }
            Self::MissingToken => {
                // The contract names `invalid_token` for every refusal, a missing token included.
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(INVALID_TOKEN_CHALLENGE));
            }
            _ => {}
        }
        response
    }
}
