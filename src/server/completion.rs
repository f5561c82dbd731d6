//! Requests run to completion even when the client hangs up. Hyper drops a
//! request's future when its connection closes, which would cut a handler
//! short between a commit and what must follow it: a logout, revocation,
//! password change or detected reuse that committed must still reach this
//! instance's memory, the other instances and the sockets, and a rotation
//! must still be dated by its commit. So each request's handling is a task of
//! its own, which the connection closing does not cancel.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::ApiError;

pub async fn run_to_completion(request: Request, next: Next) -> Response {
    let handling = tokio::spawn(next.run(request).in_current_span());
    match handling.await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "request handler failed");
            ApiError::HandlerFailed.into_response()
        }
    }
}
