//! What handlers read from a request: the caller's access token, address and
//! user agent, the refresh cookie, JSON bodies answered in the app's error
//! format, which page of a list, and query parameters.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum_extra::extract::CookieJar;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::paging::PageRequest;
use crate::auth::{AuthError, ClientInfo};
use crate::protocol::AccessClaims;

/// A request carrying a valid access token of a live session whose user
/// meets the second-factor policy (`require_second_factor`): otherwise 403
/// `second_factor_required`.
pub struct Authenticated(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let SignedIn(claims) = SignedIn::from_request_parts(parts, state).await?;
        if state.auth.lacks_required_second_factor(&claims) {
            return Err(AuthError::SecondFactorRequired.into());
        }
        Ok(Self(claims))
    }
}

/// A request carrying a valid access token of a live session, policy or
/// not: for what such a user may do before setting up a second factor (who
/// am I, the setup itself, re-authenticating).
pub struct SignedIn(pub Arc<AccessClaims>);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::MissingToken)?
            .to_str()
            .map_err(|_| ApiError::Auth(AuthError::InvalidToken))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::MissingToken)?;
        let claims = state.auth.authenticate(token.trim()).await?;
        Ok(Self(claims))
    }
}

/// The caller's access token where the request carries one, which must then
/// be valid as for [`Authenticated`]; `None` without an `Authorization` header.
pub struct MaybeAuthenticated(pub Option<Arc<AccessClaims>>);

impl FromRequestParts<AppState> for MaybeAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Self(None));
        }
        let Authenticated(claims) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Self(Some(claims)))
    }
}

/// The caller's address and user agent. The address is the socket's peer,
/// unless that peer is a trusted proxy: then the nearest untrusted address in
/// `X-Forwarded-For`.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = peer.map(|peer| client_ip(peer, parts, &state.auth.settings().trusted_proxies));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self(ClientInfo {
            ip: ip.map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}

fn client_ip(peer: IpAddr, parts: &Parts, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .flat_map(|v| v.split(','))
        .collect();
    // From the nearest hop outwards: each entry was written by the proxy to
    // its right. The first untrusted address is the client; an entry that is
    // not an address ends the walk, and the last trusted hop stands in for a
    // client it cannot name (anything further left could be the client's own
    // invention).
    let mut nearest = peer;
    for item in forwarded.into_iter().rev() {
        let Ok(ip) = item.trim().parse::<IpAddr>() else {
            return nearest;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// The refresh token from its cookie, if any.
pub struct RefreshCookie(pub Option<String>);

impl FromRequestParts<AppState> for RefreshCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let name = state.cookies.name();
        let jar = CookieJar::from_headers(&parts.headers);
        if let Some(cookie) = jar.get(name) {
            return Ok(Self(Some(cookie.value().to_string())));
        }
        // Sent but unreadable (a value that does not decode): a cookie all the
        // same, refused like any garbage, and cleared where that is the answer.
        let sent = parts
            .headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .any(|pair| pair.trim_start().strip_prefix(name).is_some_and(|rest| rest.starts_with('=')));
        Ok(Self(sent.then(String::new)))
    }
}

/// `axum::Json`, with failures in the app's error format.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Malformed(format!(
                "The JSON does not have the expected fields: {}",
                e.body_text().trim_start_matches("Failed to deserialize the JSON body into the target type: ")
            ))),
            Err(other) => Err(ApiError::Malformed(format!("The body is not valid JSON: {}", other.body_text()))),
        }
    }
}

/// Which page of a list: `?limit=&cursor=`, both optional (an empty cursor is
/// none). A limit that is not a number in range, or a cursor the list did not
/// give out, is 400 `bad_request`.
pub struct ListPage(pub PageRequest);

impl FromRequestParts<AppState> for ListPage {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(page_request(parts.uri.query())?))
    }
}

/// The page of a list that `query` asks for.
pub fn page_request(query: Option<&str>) -> Result<PageRequest, AuthError> {
    // Out of `u32`'s range is out of the page's range too.
    let limit = query_param(query, "limit").map(|limit| limit.parse::<u32>().unwrap_or(0));
    let cursor = query_param(query, "cursor").filter(|cursor| !cursor.is_empty());
    PageRequest::new(limit, cursor)
}

/// One query parameter, percent-decoded (`+` is a space): the page guard's
/// `next` and the live socket's `access_token`.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode_str(&value.replace('+', " ")).decode_utf8_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param(Some("a=1&next=%2Fsessions%3Fx%3D1"), "next").as_deref(), Some("/sessions?x=1"));
        assert_eq!(query_param(Some("next="), "next").as_deref(), Some(""));
        assert_eq!(query_param(Some("other=1"), "next"), None);
        assert_eq!(query_param(None, "next"), None);
    }
}
