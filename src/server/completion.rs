//! Requests run to completion even when the client hangs up. Hyper drops a
//! request's future when its connection closes, which would cut a handler
//! short between a commit and what must follow it: a logout, revocation,
//! password change or detected reuse that committed must still reach this
//! instance's memory, the other instances and the sockets, and a rotation
//! must still be dated by its commit. So each request's handling is a task of
//! its own, which the connection closing does not cancel.
//!
//! Reads that can commit nothing (`GET` and `HEAD` of the JSON API, the
//! JWKS, health, readiness and the bundle) run in place: a task each is most of what
//! `GET /api/me` costs beyond its answer. Pages are not among them: a page
//! load may rotate the refresh cookie.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::ApiError;

pub async fn run_to_completion(request: Request, next: Next) -> Response {
    if commits_nothing(&request) {
        return next.run(request).await;
    }
    let handling = tokio::spawn(next.run(request).in_current_span());
    match handling.await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "request handler failed");
            ApiError::HandlerFailed.into_response()
        }
    }
}

fn commits_nothing(request: &Request) -> bool {
    let path = request.uri().path();
    matches!(*request.method(), Method::GET | Method::HEAD)
        && (["/api/", "/auth/", "/.well-known/", "/pkg/"].iter().any(|prefix| path.starts_with(prefix))
            || path == "/healthz"
            || path == "/readyz")
}
