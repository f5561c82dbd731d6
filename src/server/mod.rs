//! HTTP: the axum router (`app`), static assets, health and readiness, request
//! ids, metrics. Thin over the auth core and the store; errors become HTTP
//! responses in one place (`error`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{header, HeaderName, HeaderValue, Request};
use axum::{middleware, Router};
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::{shell, App};
use crate::auth::Auth;

mod auth_api;
mod completion;
pub mod cookies;
pub mod error;
pub mod extract;
mod form_pages;
mod forms;
pub mod health;
pub mod listen;
pub mod live;
pub mod metrics;
mod page_guard;
pub mod page_policy;
mod redirect;
pub mod request_id;
pub mod request_screen;

use cookies::CookiePolicy;
use health::Lifecycle;

/// Everything a request handler may need. Cheap to clone: handlers, extractors
/// and middleware each take a copy on every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub leptos: LeptosOptions,
    pub auth: Arc<Auth>,
    pub cookies: CookiePolicy,
    pub sockets: Arc<live::SocketCounts>,
    pub lifecycle: Lifecycle,
}

impl AppState {
    pub fn new(leptos: LeptosOptions, auth: Arc<Auth>) -> Self {
        let cookies = CookiePolicy::new(auth.settings().cookie_secure);
        Self(Arc::new(Shared {
            leptos,
            auth,
            cookies,
            sockets: Arc::default(),
            lifecycle: Lifecycle::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// The whole application as a router; tests call this directly.
pub fn app(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let pages = Router::new()
        .leptos_routes(&state, routes, {
            let leptos = state.leptos.clone();
            move || shell(leptos.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Before anything renders: redirect visitors a page is not for.
        .layer(middleware::from_fn_with_state(state.clone(), page_guard::guard_page))
        // HTML is revalidated on every load; pages that carry user data set
        // `no-store` themselves, which this leaves alone.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));

    let routes = Router::new()
        .merge(health::routes())
        .merge(auth_api::routes())
        .merge(forms::routes())
        .merge(live::routes())
        .nest_service("/pkg", site_pkg_service(&state.leptos))
        .merge(pages);
    let settings = state.auth.settings();
    // Request times by route need the route: a layer on each route, which
    // costs an allocation per request, so only where metrics are collected.
    let metered = !settings.metrics_addr.is_empty();
    let routes = if metered {
        routes.route_layer(middleware::from_fn(metrics::note_route))
    } else {
        routes
    }
    .with_state(state.clone());
    // Browsers that reached this site over HTTPS keep to it, where it is
    // known to be served so (its public URL) and its cookie needs it.
    let strict_transport = (settings.cookie_secure && settings.public_url.starts_with("https://")).then(|| {
        SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        )
    });
    // Wrapped once around the whole router: `Router::layer` would wrap each
    // route in boxed services of its own, cloned and allocated per request.
    let service = ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<Body>| {
                    // The path only: query strings may carry `access_token`.
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        path = %request.uri().path(),
                        request_id = tracing::field::Empty,
                    )
                })
                // Nothing is logged before the request has its id.
                .on_request(()),
        )
        // First inside the span: every line the request logs names its id.
        .layer(middleware::from_fn_with_state(state.clone(), request_id::assign))
        .option_layer(metered.then(|| middleware::from_fn(metrics::time_request)))
        // Inside the trace span, outside everything that acts: a handler
        // that committed is not cut short by the client hanging up.
        .layer(middleware::from_fn(completion::run_to_completion))
        .option_layer(strict_transport)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(middleware::from_fn_with_state(state, request_screen::screen_request))
        // A body that stops arriving fails the request instead of holding it.
        .layer(RequestBodyTimeoutLayer::new(listen::BODY_READ_TIMEOUT))
        .layer(DefaultBodyLimit::max(request_screen::MAX_BODY_BYTES))
        .service(routes);
    Router::new().fallback_service(service)
}

/// `/pkg`: the WASM, JS and CSS bundle, served precompressed (`.br`/`.gz`
/// siblings). Release builds hash file names by content, so WASM and CSS are
/// cached for a year. JavaScript is revalidated (a 304 when unchanged): with
/// `--split`, cargo-leptos rewrites the JS glue to name the chunk loader after
/// hashing it, so its name can stay the same while what it imports changes.
/// Unhashed development builds are always revalidated.
fn site_pkg_service(options: &LeptosOptions) -> Router {
    let dir = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    let hashed = options.hash_files;
    let cache_control = move |response: &axum::response::Response<_>| {
        let javascript = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.contains("javascript"));
        Some(HeaderValue::from_static(if hashed && !javascript {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }))
    };
    Router::new()
        .fallback_service(ServeDir::new(dir).precompressed_br().precompressed_gzip())
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, cache_control))
}
