//! Request screening, in front of every route: cross-site request refusal
//! (CSRF) and the body size limit, answered in the app's error format.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Extensions, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::config::Settings;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What every request passes before routing, in one middleware (each layer
/// costs allocations per request): bodies declared larger than
/// [`MAX_BODY_BYTES`] are refused with 413 before they are read (bodies without
/// a length are cut by `DefaultBodyLimit` as they are read), and
/// state-changing requests from another site with 403.
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
    if changes_state && is_cross_site(request.headers(), peer(request.extensions()), state.auth.settings()) {
        return ApiError::CrossSite.into_response();
    }
    next.run(request).await
}

/// The connection's peer address, where the server recorded it.
pub fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// Cross-site means what the browser says: `Origin` must be this server's own
/// origin or an allowed one; without `Origin`, `Sec-Fetch-Site` must say
/// same-origin (or none: typed by the user). Requests with neither header do
/// not come from a browser and carry no ambient risk.
///
/// The own origin compares scheme, host and port: the public URL where one is
/// configured; otherwise the request's `Host`, with the scheme a trusted
/// proxy's `X-Forwarded-Proto` names (either scheme where none does: the
/// server cannot tell which one the browser used).
pub fn is_cross_site(headers: &HeaderMap, peer: Option<IpAddr>, settings: &Settings) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return true;
        };
        let allowed = settings
            .allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin));
        return !(allowed || is_own_origin(origin, headers, peer, settings));
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => false,
    }
}

fn is_own_origin(origin: &str, headers: &HeaderMap, peer: Option<IpAddr>, settings: &Settings) -> bool {
    if !settings.public_url.is_empty() {
        return settings.public_url.trim_end_matches('/').eq_ignore_ascii_case(origin);
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let from_trusted_proxy = peer.is_some_and(|peer| settings.trusted_proxies.iter().any(|net| net.contains(&peer)));
    let forwarded_scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|_| from_trusted_proxy)
        .map(str::trim);
    let scheme_matches = match forwarded_scheme {
        Some(forwarded) => scheme.eq_ignore_ascii_case(forwarded),
        None => scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"),
    };
    scheme_matches && !host.is_empty() && rest.eq_ignore_ascii_case(host)
}
