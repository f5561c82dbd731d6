//! The one way the server redirects a browser: the page guard (302) and the
//! form posts (303) both answer with it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `status` to `location`, never cached: where a visitor is sent depends on
/// their session. A location that cannot be a header value goes to `/`.
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (
        status,
        [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
    )
        .into_response()
}
