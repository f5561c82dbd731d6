//! Every request's id: taken from `X-Request-Id` when a trusted proxy sent
//! it (the id the proxy logs too), otherwise made here; echoed in the
//! response's `X-Request-Id` and recorded in the request's `http` span, so
//! every log line of the request names it.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::request_screen::peer;
use super::AppState;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A longer id from a proxy is not taken: one is made instead.
const MAX_ID_CHARS: usize = 128;

pub async fn assign(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let trusted = &state.auth.settings().trusted_proxies;
    let from_proxy = peer(request.extensions())
        .filter(|peer| trusted.iter().any(|net| net.contains(peer)))
        .and_then(|_| request.headers().get(&X_REQUEST_ID))
        .filter(|id| is_usable(id))
        .cloned();
    let id = from_proxy.unwrap_or_else(generated);
    // Visible ASCII either way: it reads as text.
    tracing::Span::current().record("request_id", id.to_str().unwrap_or_default());
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

/// Short, visible ASCII: safe to log and to echo.
fn is_usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_ID_CHARS && bytes.iter().all(u8::is_ascii_graphic)
}

/// A UUIDv7: ordered by time, so ids sort as their requests came.
fn generated() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ids_are_taken() {
        assert!(is_usable(&HeaderValue::from_static("lb-7f3a9c/42")));
        assert!(!is_usable(&HeaderValue::from_static("")));
        assert!(!is_usable(&HeaderValue::from_static("two words")));
        assert!(!is_usable(
            &HeaderValue::from_str(&"a".repeat(MAX_ID_CHARS + 1)).unwrap()
        ));
        assert!(is_usable(&generated()));
    }
}
