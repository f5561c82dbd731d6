//! Liveness (`/healthz`), readiness (`/readyz`), and where this instance is
//! in its shutdown: the two answer different questions. A load balancer asks
//! `/readyz` whether to send traffic here; an orchestrator asks `/healthz`
//! whether the process should be restarted, which draining is no reason for.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;

use super::error::ApiError;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Where an instance is in its life. Only forwards: a shutdown is not undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Serving,
    /// Asked to shut down: still serving, but `/readyz` answers 503 so load
    /// balancers send traffic elsewhere (`shutdown_delay`).
    Draining,
    /// No longer accepting connections; requests in flight finish and live
    /// sockets are closed with 1001 (going away).
    Stopping,
}

/// This instance's [`Stage`], watched by its live sockets.
#[derive(Debug)]
pub struct Lifecycle(watch::Sender<Stage>);

impl Default for Lifecycle {
    fn default() -> Self {
        Self(watch::Sender::new(Stage::Serving))
    }
}

impl Lifecycle {
    pub fn stage(&self) -> Stage {
        *self.0.borrow()
    }

    /// Moves on to `stage`, unless this instance is there or further already.
    pub fn advance(&self, stage: Stage) {
        self.0.send_if_modified(|current| {
            let later = stage > *current;
            if later {
                *current = stage;
            }
            later
        });
    }

    pub fn watch(&self) -> watch::Receiver<Stage> {
        self.0.subscribe()
    }
}

/// Liveness: 200 while the database answers, 503 otherwise; draining or not.
async fn healthz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.auth.store().ping().await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "status": "ok" })),
    ))
}

/// Readiness: 200 `{"status":"ready"}` when this instance should get
/// traffic, else 503 `{"status":"not_ready","failed":CHECK}` naming the
/// first check that failed.
async fn readyz(State(state): State<AppState>) -> Response {
    let (status, body) = match failed_check(&state).await {
        None => (StatusCode::OK, serde_json::json!({ "status": "ready" })),
        Some(failed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not_ready", "failed": failed }),
        ),
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The first readiness check that fails, cheapest first: `draining`,
/// `database` (no answer), `migrations` (not all of this binary's applied:
/// another instance may be migrating), `keys` (no signing key loaded).
async fn failed_check(state: &AppState) -> Option<&'static str> {
    if state.lifecycle.stage() != Stage::Serving {
        return Some("draining");
    }
    let store = state.auth.store();
    if let Err(err) = store.ping().await {
        tracing::warn!(error = %crate::auth::WithSources(&err), "not ready: the database does not answer");
        return Some("database");
    }
    match store.migrations_applied().await {
        Ok(true) => {}
        Ok(false) => return Some("migrations"),
        Err(err) => {
            tracing::warn!(error = %crate::auth::WithSources(&err), "not ready: the migrations could not be read");
            return Some("migrations");
        }
    }
    if !state.auth.has_signing_key() {
        return Some("keys");
    }
    None
}
