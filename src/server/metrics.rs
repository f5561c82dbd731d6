//! The Prometheus endpoint, on a listener of its own (`metrics_addr`), and
//! the HTTP side of what is measured: each request's time by route template.
//! The metrics themselves are named in [`crate::metrics`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::{Auth, WithSources};

/// How often histograms are folded and the live sessions counted.
const UPKEEP_EVERY: Duration = Duration::from_secs(15);

/// `GET /metrics`, the Prometheus text format.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(handle)
}

async fn scrape(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        handle.render(),
    )
}

/// The recorder's upkeep, and the live sessions gauge: one count of the
/// whole table every [`UPKEEP_EVERY`], whatever the scrapes.
pub fn spawn_upkeep(handle: PrometheusHandle, auth: Arc<Auth>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
            match auth.store().count_live_sessions(auth.now()).await {
                Ok(count) => crate::metrics::live_sessions(count),
                Err(err) => tracing::warn!(error = %WithSources(&err), "live sessions could not be counted"),
            }
        }
    })
}

/// The route a request matched, handed from [`note_route`] (inside the
/// router) to [`time_request`] (around it) in the response's extensions.
#[derive(Clone)]
struct Route(MatchedPath);

/// On every route: passes the matched route template out.
pub async fn note_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Around the whole app: each request's time, by route template (`fallback`
/// for the pages' and files' fallback), method and status. Never the path:
/// that could carry anything.
pub async fn time_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| "fallback".to_string(), |Route(route)| route.as_str().to_string());
    crate::metrics::request(route, method, response.status().as_u16(), started.elapsed());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
