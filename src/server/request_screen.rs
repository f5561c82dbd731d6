//! Request screening, in front of every route: cross-site request refusal
//! (CSRF) and the body size limit, answered in the app's error format.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every request passes before routing, in one middleware (each layer
/// costs allocations per request): bodies declared larger than
/// [`MAX_BODY_BYTES`] are refused with 413 before they are read (bodies without
/// a length are cut by `DefaultBodyLimit` as they are read), and
/// state-changing requests from another site with 403.
///
/// Cross-site means what the browser says: `Origin` must be this server or an
/// allowed origin; without `Origin`, `Sec-Fetch-Site` must say same-origin (or
/// none: typed by the user). Requests with neither header do not come from a
/// browser and carry no ambient risk.
pub async fn screen_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && is_cross_site(request.headers(), &state.auth.settings().allowed_origins) {
        return ApiError::CrossSite.into_response();
    }
    next.run(request).await
}

pub fn is_cross_site(headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let same_host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host));
        let allowed = allowed_origins.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        return !(same_host || allowed);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => false,
    }
}
