//! The page guard: runs before a page renders. It finds the session behind the
//! refresh cookie (rotating it in the answer once the session is aging, and
//! clearing it when it was already rotated: see `Auth::page_session`), redirects with a real HTTP redirect
//! where the page is not for this visitor, and hands the session, with a freshly
//! minted access token, and what the page shows (`app::preload`), to the
//! render through the request's extensions. Who may see which page comes from
//! the one page table, `app::routes`, which the client's guard reads too.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{query_param, Client, RefreshCookie};
use super::redirect::redirect;
use super::AppState;
use crate::app::routes::{access_for, login_url, safe_next, Access};

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
