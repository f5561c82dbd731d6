//! `POST /auth/refresh`: rotation, replays within the grace window, reuse,
//! races, limits and the lifetimes a session and its tokens have.

use reqwest::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::support::*;

both_backends!(
    refresh_rotates_the_cookie,
    replay_inside_grace_returns_the_same_successor,
    replay_after_grace_revokes_the_session,
    older_token_revokes_the_session_even_inside_grace,
    a_detected_reuse_clears_the_cookie_even_when_it_cannot_be_recorded,
    an_old_token_revokes_a_session_that_outlived_its_successor,
    garbage_or_missing_cookie_is_refused_and_cleared,
    access_tokens_expire,
    sessions_end_when_idle_and_at_their_absolute_age,
    access_tokens_never_outlive_their_session,
    concurrent_refreshes_with_one_cookie_leave_one_session,
    a_session_revoked_while_its_token_is_presented_is_not_extended,
    refreshes_are_rate_limited_per_session,
    access_tokens_say_how_and_when_the_user_logged_in,
);

async fn refresh_rotates_the_cookie(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    server.clock.advance(60);
    let response = server.refresh(&first.cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let second = Session::from_response(response).await;
    assert_ne!(second.cookie, first.cookie, "rotated");
    assert_ne!(second.access, first.access);
    assert_eq!(second.sid(), first.sid(), "same session");
    let third = Session::from_response(server.refresh(&second.cookie).await).await;
    assert_eq!(third.sid(), first.sid());
    assert_eq!(server.get_bearer("/api/me", &third.access).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn replay_inside_grace_returns_the_same_successor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    let successor = Session::from_response(server.refresh(&first.cookie).await).await;
    server.clock.advance(5);
    let replay = server.refresh(&first.cookie).await;
    assert_eq!(replay.status(), StatusCode::OK, "a race, not theft");
    let replay = Session::from_response(replay).await;
    assert_eq!(replay.cookie, successor.cookie, "the same successor");
    assert_eq!(replay.sid(), first.sid(), "no new session");
    let sessions: Value = server.get_bearer("/auth/sessions", &replay.access).await.json().await.unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1);
    // The successor still works: the race did no harm.
    assert_eq!(server.refresh(&successor.cookie).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn replay_after_grace_revokes_the_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    let successor = Session::from_response(server.refresh(&first.cookie).await).await;
    server.clock.advance(server.settings.refresh_grace + 1);
    let theft = server.refresh(&first.cookie).await;
    assert_eq!(theft.status(), StatusCode::UNAUTHORIZED);
    let cleared = refresh_set_cookie(theft.headers()).expect("cookie cleared");
    assert!(cookie_attributes(&cleared).contains(&"Max-Age=0".to_string()));
    assert_eq!(error_code(theft).await, "invalid_refresh_token");
    // The whole session is gone: the legitimate successor and its access token too.
    assert_eq!(server.refresh(&successor.cookie).await.status(), StatusCode::UNAUTHORIZED);
    let me = server.get_bearer("/api/me", &successor.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

/// A token presented after its rotation is dead, whatever else fails: when
/// the audit event cannot be written the session is revoked without it, and
/// the answer refuses the token and clears its cookie.
async fn a_detected_reuse_clears_the_cookie_even_when_it_cannot_be_recorded(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    let successor = Session::from_response(server.refresh(&first.cookie).await).await;
    server.clock.advance(server.settings.refresh_grace + 1);

    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let refuse = match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER refuse_reuse BEFORE INSERT ON audit_events WHEN NEW.kind = 'refresh_reuse'
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        }
        Backend::Postgres => "ALTER TABLE audit_events ADD CONSTRAINT refuse_reuse CHECK (kind <> 'refresh_reuse')",
    };
    sqlx::query(refuse).execute(&pool).await.unwrap();
    let theft = server.refresh(&first.cookie).await;
    assert_eq!(theft.status(), StatusCode::UNAUTHORIZED, "refused, not a server error");
    let cleared = refresh_set_cookie(theft.headers()).expect("cookie cleared");
    assert!(cookie_attributes(&cleared).contains(&"Max-Age=0".to_string()));
    assert_eq!(error_code(theft).await, "invalid_refresh_token");
    // Revoked all the same: the successor and its access token are refused.
    assert_eq!(server.get_bearer("/api/me", &successor.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.refresh(&successor.cookie).await.status(), StatusCode::UNAUTHORIZED);
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'refresh_reuse'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(recorded, 0, "the audit event was indeed refused");
    pool.close().await;
    server.finish().await;
}

async fn older_token_revokes_the_session_even_inside_grace(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    let second = Session::from_response(server.refresh(&first.cookie).await).await;
    let third = Session::from_response(server.refresh(&second.cookie).await).await;
    // `first` was rotated a moment ago, but its successor has moved on: theft.
    assert_eq!(server.refresh(&first.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.refresh(&third.cookie).await.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

/// A session's idle expiry is its newest token's: an old token whose
/// successor has itself idled past its expiry still finds the session live
/// through a later token, and is theft.
async fn an_old_token_revokes_a_session_that_outlived_its_successor(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.refresh_idle_ttl = 600;
        s.access_ttl = 60;
    })
    .await;
    let first = server.register("alice").await;
    server.clock.advance(100);
    let second = Session::from_response(server.refresh(&first.cookie).await).await;
    server.clock.advance(500);
    let third = Session::from_response(server.refresh(&second.cookie).await).await;
    // `second` was issued 700 s ago, past its 600 s of idle time; the session
    // lives on through `third`, issued 200 s ago.
    server.clock.advance(200);
    assert_eq!(server.refresh(&first.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.refresh(&third.cookie).await.status(), StatusCode::UNAUTHORIZED, "the session was revoked");
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let reasons: Vec<String> = sqlx::query_scalar("SELECT revoked_reason FROM sessions").fetch_all(&pool).await.unwrap();
    pool.close().await;
    assert_eq!(reasons, ["refresh_reuse"]);
    server.finish().await;
}

async fn garbage_or_missing_cookie_is_refused_and_cleared(backend: Backend) {
    let server = TestServer::start(backend).await;
    for cookie in ["garbage", "", &"A".repeat(43), "%00%ff", &"x".repeat(5000)] {
        let response = server.refresh(cookie).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie:?}");
        assert!(refresh_set_cookie(response.headers()).is_some_and(|c| c.contains("Max-Age=0")), "{cookie:?}");
    }
    let none = server.request(Method::POST, "/auth/refresh", |r| r).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    // Nothing to clear: a clearing answer could wipe a cookie a login set meanwhile.
    assert!(refresh_set_cookie(none.headers()).is_none());
    let get = server.request(Method::GET, "/auth/refresh", |r| r).await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED, "cookie endpoints are POST only");
    server.finish().await;
}

async fn access_tokens_expire(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.access_ttl = 60).await;
    let session = server.register("alice").await;
    assert_eq!(session.body["expires_in"], 60);
    server.clock.advance(59);
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    server.clock.advance(1);
    let expired = server.get_bearer("/api/me", &session.access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(expired.headers()[WWW_AUTHENTICATE].to_str().unwrap().contains(r#"error="invalid_token""#));
    assert_eq!(error_code(expired).await, "token_expired");
    let refreshed = Session::from_response(server.refresh(&session.cookie).await).await;
    assert_eq!(server.get_bearer("/api/me", &refreshed.access).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn sessions_end_when_idle_and_at_their_absolute_age(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.access_ttl = 60;
        s.refresh_idle_ttl = 600;
        s.session_max_age = 1000;
    })
    .await;
    let idle = server.register("alice").await;
    server.clock.advance(601);
    assert_eq!(server.refresh(&idle.cookie).await.status(), StatusCode::UNAUTHORIZED, "idle too long");

    let mut active = server.login_ok("alice").await;
    for _ in 0..3 {
        server.clock.advance(300);
        let response = server.refresh(&active.cookie).await;
        assert_eq!(response.status(), StatusCode::OK);
        active = Session::from_response(response).await;
        let max_age: i64 = cookie_attributes(&active.set_cookie)
            .iter()
            .find_map(|a| a.strip_prefix("Max-Age=").map(|v| v.parse().unwrap()))
            .unwrap();
        assert!(max_age <= 600, "cookie lives no longer than the session: {max_age}");
    }
    server.clock.advance(101);
    assert_eq!(server.refresh(&active.cookie).await.status(), StatusCode::UNAUTHORIZED, "absolute lifetime over");
    server.finish().await;
}

async fn concurrent_refreshes_with_one_cookie_leave_one_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let requests = (0..50).map(|_| server.refresh(&session.cookie));
    let responses = futures_util::future::join_all(requests).await;
    let mut cookies = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK, "a race inside the grace window is answered idempotently");
        cookies.insert(Session::from_response(response).await.cookie);
    }
    assert_eq!(cookies.len(), 1, "every racer got the same successor");
    let successor = cookies.into_iter().next().unwrap();
    let next = Session::from_response(server.refresh(&successor).await).await;
    let live: Vec<Value> = server.get_bearer("/auth/sessions", &next.access).await.json().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], session.sid());
    server.finish().await;
}

/// A rotation reads the session before it claims the token; a revocation
/// landing in between must leave everything as the revocation left it.
async fn a_session_revoked_while_its_token_is_presented_is_not_extended(backend: Backend) {
    use gatehouse::auth::clock::Clock;
    use gatehouse::auth::refresh_token::RefreshToken;
    use gatehouse::auth::rotation::{decide, RotationRules, Verdict};
    use gatehouse::store::Successor;

    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let presented = RefreshToken::parse(&session.cookie).unwrap();
    let next = RefreshToken::generate();
    let successor = Successor {
        hash: next.hash(),
        sealed: presented.seal(&next),
    };
    let store = server.auth.store();
    let found = store.presented_token(&presented.hash()).await.unwrap().unwrap();
    let before = found.session.clone();
    server.clock.advance(60);
    let now = server.clock.now();
    let rules = RotationRules { now, grace: 10 };
    assert_eq!(decide(&found.token, &found.session, rules), Verdict::Rotate, "current when read");
    // Revoked between the read and the claim.
    assert!(store.revoke_session(&before.id, "logout", now).await.unwrap());
    let claimed = store.claim(found, &successor, now, now + 3600).await.unwrap();
    assert_eq!(claimed, None, "a rotation of a just-revoked session must not win its claim");
    // into_parts: a presented token keeps its pooled connection until then,
    // and closing the store at the end waits for every connection.
    let (ended, state) = store.presented_token(&presented.hash()).await.unwrap().unwrap().into_parts();
    assert_eq!(decide(&state, &ended, rules), Verdict::Ended, "it ends");
    assert_eq!(ended.revoked_at, Some(now));
    assert_eq!((ended.last_used_at, ended.idle_expires_at), (before.last_used_at, before.idle_expires_at), "not extended");
    assert!(store.presented_token(&successor.hash).await.unwrap().is_none(), "no successor stored");
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let rotated_at: Option<i64> = sqlx::query_scalar("SELECT rotated_at FROM refresh_tokens WHERE hash = $1")
        .bind(presented.hash())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rotated_at, None, "the token was not claimed");
    pool.close().await;
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

async fn refreshes_are_rate_limited_per_session(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.refreshes_per_session = gatehouse::config::RateLimit { count: 2, per_seconds: 3600 };
    })
    .await;
    let mut session = server.register("alice").await;
    for _ in 0..2 {
        session = Session::from_response(server.refresh(&session.cookie).await).await;
    }
    let limited = server.refresh(&session.cookie).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key(RETRY_AFTER));
    assert!(refresh_set_cookie(limited.headers()).is_none(), "a rate limit does not end the session");
    let other = server.login_ok("alice").await;
    assert_eq!(server.refresh(&other.cookie).await.status(), StatusCode::OK, "other sessions unaffected");
    server.finish().await;
}

/// However a token is handed out, its `exp` is at most its session's end, so
/// no access token outlives the session it speaks for.
async fn access_tokens_never_outlive_their_session(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.access_ttl = 600;
        s.refresh_idle_ttl = 3600;
        s.session_max_age = 1000;
    })
    .await;
    let session = server.register("alice").await;
    let created = claims(&session.access)["iat"].as_i64().unwrap();
    assert_eq!(session.body["expires_in"], 600, "a full lifetime while the session has longer");
    server.clock.advance(700);
    let response = server.refresh(&session.cookie).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed = Session::from_response(response).await;
    assert_eq!(refreshed.body["expires_in"], 300, "cut at the session's absolute end");
    assert_eq!(claims(&refreshed.access)["exp"].as_i64().unwrap(), created + 1000);
    assert_eq!(server.get_bearer("/api/me", &refreshed.access).await.status(), StatusCode::OK);
    server.clock.advance(300);
    let expired = server.get_bearer("/api/me", &refreshed.access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED, "gone with its session");
    assert_eq!(error_code(expired).await, "token_expired");
    server.finish().await;
}

/// `amr` and `auth_time` are the session's login: a refresh or a page load
/// later hands out tokens that still say when the password was given.
async fn access_tokens_say_how_and_when_the_user_logged_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    let registered = server.register("alice").await;
    let registered_at = claims(&registered.access)["iat"].as_i64().unwrap();
    assert_eq!(claims(&registered.access)["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims(&registered.access)["auth_time"].as_i64(), Some(registered_at));
    server.clock.advance(120);
    let logged_in = server.login_ok("alice").await;
    assert_eq!(claims(&logged_in.access)["auth_time"].as_i64(), Some(registered_at + 120));
    server.clock.advance(200);
    let refreshed = Session::from_response(server.refresh(&logged_in.cookie).await).await;
    let refreshed_claims = claims(&refreshed.access);
    assert_eq!(refreshed_claims["iat"].as_i64(), Some(registered_at + 320));
    assert_eq!(refreshed_claims["auth_time"].as_i64(), Some(registered_at + 120), "the login's, not the refresh's");
    assert_eq!(refreshed_claims["amr"], serde_json::json!(["pwd"]));
    let page = crate::pages::get_page(&server, "/", Some(&refreshed.cookie)).await;
    let body = page.text().await.unwrap();
    let (token, _) = crate::pages::page_token(&body);
    assert_eq!(claims(token)["auth_time"].as_i64(), Some(registered_at + 120));
    server.finish().await;
}
