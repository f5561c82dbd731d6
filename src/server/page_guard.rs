//! The page guard: runs before a page renders. It finds the session behind the
//! refresh cookie (rotating it in the answer once the session is aging, and
//! clearing it when it was already rotated: see `Auth::page_session`), redirects with a real HTTP redirect
//! where the page is not for this visitor, and hands the session, with a freshly
//! minted access token, and what the page shows (`app::preload`), to the
//! render through the request's extensions. Who may see which page comes from
//! the one page table, `app::routes`, which the client's guard reads too.
//!
//! A link from another site arrives without the `SameSite=Strict` cookie, so a
//! logged-in person would be sent to `/login` and see its form until the
//! browser's silent refresh took them back. Such a landing is answered with an
//! empty page that navigates to the same address again: that navigation starts
//! on this site, so the browser sends the cookie. The cookie stays `Strict`: a
//! request another site starts still carries none. A visitor without a session
//! pays one extra round trip on those landings, and only on pages whose answer
//! depends on the session.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{query_param, Client, RefreshCookie};
use super::redirect::redirect;
use super::AppState;
use crate::app::routes::{access_for, login_url, safe_next, Access, TWO_FACTOR};

pub async fn guard_page(
    State(state): State<AppState>,
    RefreshCookie(cookie): RefreshCookie,
    Client(client): Client,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let access = access_for(&path);
    if access == Access::Public {
        // Nothing on a public page depends on who asks: no lookup, no token.
        return next.run(request).await;
    }
    if cookie.is_none() && is_cross_site_navigation(&request) {
        return renavigate();
    }
    let found = match state.auth.page_session(cookie.as_deref(), &client).await {
        Ok(found) => found,
        // Fail closed: without knowing who asks, show nothing.
        Err(err) => return ApiError::from(err).into_response(),
    };
    let set_cookie = state.cookies.for_change(&found.cookie, state.auth.now());
    let session = found.session;
    let mut response = match (access, &session) {
        (Access::Member | Access::Admin, None) => {
            let here = request.uri().path_and_query().map_or(path.as_str(), |pq| pq.as_str());
            redirect(StatusCode::FOUND, &login_url(here))
        }
        // The second-factor policy: such a user sees the setup and nothing else.
        (Access::Member | Access::Admin, Some(found))
            if path != TWO_FACTOR && state.auth.lacks_required_second_factor(&found.claims) =>
        {
            redirect(StatusCode::FOUND, TWO_FACTOR)
        }
        (Access::GuestOnly, Some(_)) => {
            let next = query_param(request.uri().query(), "next");
            redirect(StatusCode::FOUND, &safe_next(next.as_deref()))
        }
        _ => {
            let carries_token = session.is_some();
            if let Some(session) = session {
                crate::app::preload(&state.auth, &path, &session.claims, request.extensions_mut()).await;
                request.extensions_mut().insert(session);
            }
            let mut response = next.run(request).await;
            if carries_token {
                // The page holds the user's data and an access token: never cache it.
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            response
        }
    };
    if let Some(set_cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, set_cookie);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A top-level navigation that another site started, by the browser's own
/// `Sec-Fetch-*` headers (browsers without them keep the redirect to `/login`).
/// The re-navigation itself is same-origin, so this cannot loop.
fn is_cross_site_navigation(request: &Request) -> bool {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    *request.method() == Method::GET
        && header("sec-fetch-site") == Some("cross-site")
        && header("sec-fetch-mode") == Some("navigate")
        && header("sec-fetch-dest").is_none_or(|dest| dest == "document")
}

/// An empty page that loads its own address again, without a script (so no
/// nonce and the strictest policy) and without content to flash.
fn renavigate() -> Response {
    const PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta http-equiv=\"refresh\" content=\"0\"><title>Gatehouse</title></head><body></body></html>";
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
            ),
        ],
        PAGE,
    )
        .into_response()
}
