//! The HTTP API contract of issue 3, row by row, with its failures.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    register_hands_out_tokens_and_a_strict_cookie,
    register_refuses_bad_input,
    login_refuses_unknown_users_and_wrong_passwords_alike,
    failed_logins_are_rate_limited_per_username,
    failed_logins_sent_at_once_are_rate_limited_too,
    registrations_are_rate_limited_per_address,
    refresh_rotates_the_cookie,
    replay_inside_grace_returns_the_same_successor,
    replay_after_grace_revokes_the_session,
    older_token_revokes_the_session_even_inside_grace,
    an_old_token_revokes_a_session_that_outlived_its_successor,
    garbage_or_missing_cookie_is_refused_and_cleared,
    logout_ends_the_session_and_its_access_token,
    logout_all_ends_every_session,
    ended_sessions_and_old_audit_events_are_deleted,
    sessions_list_and_revoke,
    password_change_keeps_this_session_only,
    a_login_checked_against_a_changed_password_makes_no_session,
    me_and_token_failures,
    admin_endpoints_need_the_admin_role,
    jwks_verifies_tokens_outside_the_server,
    access_tokens_expire,
    sessions_end_when_idle_and_at_their_absolute_age,
    cross_site_requests_are_refused,
    key_rotation_keeps_old_tokens_valid,
    revocations_and_sessions_survive_a_restart,
    old_password_hashes_are_upgraded_at_login,
    audit_records_security_events,
    health_reports_the_database,
    concurrent_refreshes_with_one_cookie_leave_one_session,
    a_session_revoked_while_its_token_is_presented_is_not_extended,
    refreshes_are_rate_limited_per_session,
    client_address_comes_from_trusted_proxies_only,
    revocations_reach_other_instances,
);

async fn register_hands_out_tokens_and_a_strict_cookie(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server
        .post_json("/auth/register", json!({"username": "alice", "password": PASSWORD}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let session = Session::from_response(response).await;
    assert_eq!(session.body["token_type"], "Bearer");
    assert_eq!(session.body["expires_in"], 900);
    let attributes = cookie_attributes(&session.set_cookie);
    for expected in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attributes.iter().any(|a| a == expected), "{expected} in {}", session.set_cookie);
    }
    let max_age = format!("Max-Age={}", server.settings.refresh_idle_ttl);
    assert!(attributes.contains(&max_age), "{max_age} in {}", session.set_cookie);
    assert!(session.set_cookie.starts_with("__Host-"));
    assert_eq!(session.cookie.len(), 43, "256 bits, base64url");

    let header = jwt_header(&session.access);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string());
    let claims = claims(&session.access);
    for claim in ["iss", "aud", "sub", "exp", "iat", "jti", "sid", "role"] {
        assert!(!claims[claim].is_null(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);

    let me = server.get_bearer("/api/me", &session.access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["session_id"], session.sid());
    server.finish().await;
}

async fn register_refuses_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register("alice").await;

    let taken = server.post_json("/auth/register", json!({"username": "ALICE", "password": PASSWORD})).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(taken).await, "username_taken");

    let weak = server.post_json("/auth/register", json!({"username": "bob", "password": "password1"})).await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = weak.json().await.unwrap();
    assert_eq!(body["error"], "weak_password");
    assert!(!body["reasons"].as_array().unwrap().is_empty(), "reasons listed: {body}");

    let malformed = server
        .request(Method::POST, "/auth/register", |r| r.header(CONTENT_TYPE, "application/json").body("{\"username\":"))
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "bad_request");

    let missing = server.post_json("/auth/register", json!({"username": "bob"})).await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    let extra = server
        .post_json("/auth/register", json!({"username": "bob", "password": PASSWORD, "role": "admin"}))
        .await;
    assert_eq!(extra.status(), StatusCode::BAD_REQUEST, "unknown fields are refused, role cannot be chosen");

    for name in ["b", "bob\0", "bob smith", "\u{202e}bob", &"b".repeat(33)] {
        let bad = server.post_json("/auth/register", json!({"username": name, "password": PASSWORD})).await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{name:?}");
        assert_eq!(error_code(bad).await, "invalid_username");
    }

    let form = server
        .request(Method::POST, "/auth/register", |r| {
            r.header(CONTENT_TYPE, "text/plain").body(json!({"username": "bob", "password": PASSWORD}).to_string())
        })
        .await;
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    server.finish().await;
}

async fn login_refuses_unknown_users_and_wrong_passwords_alike(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register("alice").await;
    let ok = server.login("Alice", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK, "usernames are case-insensitive");
    assert_eq!(ok.headers()[CACHE_CONTROL], "no-store");

    let wrong = server.login("alice", "not the password at all").await;
    let unknown = server.login("nobody", "not the password at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(refresh_set_cookie(wrong.headers()).is_none());
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown, "same body for both");
    assert_eq!(wrong["error"], "invalid_credentials");

    let huge = server.login("alice", &"x".repeat(10_000)).await;
    assert_eq!(huge.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

async fn failed_logins_are_rate_limited_per_username(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.login_failures_per_username = gatehouse::config::RateLimit { count: 3, per_seconds: 60 };
    })
    .await;
    server.register("alice").await;
    for _ in 0..3 {
        assert_eq!(server.login("alice", "wrong password one").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = server.login("alice", "wrong password one").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(error_code(limited).await, "rate_limited");
    let even_right = server.login("alice", PASSWORD).await;
    assert_eq!(even_right.status(), StatusCode::TOO_MANY_REQUESTS, "blocked means blocked");
    server.register("bob").await;
    assert_eq!(server.login("bob", PASSWORD).await.status(), StatusCode::OK, "other names unaffected");
    server.finish().await;
}

/// Failures are only known once hashed; attempts sent together must not all
/// be hashed before the first of them counts. Every hashed failure leaves a
/// `login_failed` audit row, refused ones none.
async fn failed_logins_sent_at_once_are_rate_limited_too(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.login_failures_per_username = gatehouse::config::RateLimit { count: 3, per_seconds: 60 };
        // Hashes slow enough that the attempts are all under way together.
        s.argon2_memory_kib = 16 * 1024;
    })
    .await;
    server.register("alice").await;
    let attempts = (0..40).map(|_| server.login("alice", "wrong password one"));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    assert!(
        statuses.iter().all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let hashed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'login_failed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    // 3 failures allowed, at most 3 attempts under way at once.
    assert!((1..=6).contains(&hashed), "{hashed} of 40 attempts sent at once were hashed: {statuses:?}");
    // The burst spent part of the allowance: a few more failures block the name.
    let mut later = Vec::new();
    for _ in 0..4 {
        later.push(server.login("alice", "wrong password one").await.status());
    }
    assert_eq!(later.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{later:?}");
    server.finish().await;
}

async fn registrations_are_rate_limited_per_address(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.registrations_per_ip = gatehouse::config::RateLimit { count: 2, per_seconds: 3600 };
    })
    .await;
    server.register("alice").await;
    server.register("bob").await;
    let third = server.post_json("/auth/register", json!({"username": "carol", "password": PASSWORD})).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(third.headers().contains_key(RETRY_AFTER));
    server.finish().await;
}

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

async fn ended_sessions_and_old_audit_events_are_deleted(backend: Backend) {
    const DAY: i64 = 86_400;
    let server = TestServer::start_with(backend, |s| {
        s.ended_session_retention = 30 * DAY;
        s.audit_retention = 50 * DAY;
    })
    .await;
    let kept = server.register("alice").await;
    let ended = server.login_ok("alice").await;
    let logout = server
        .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, format!("{COOKIE_NAME}={}", ended.cookie)))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let count = |sql: &'static str, id: String| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(&pool).await.unwrap() }
    };
    let sessions = |id: String| count("SELECT COUNT(*) FROM sessions WHERE id = $1", id);
    let tokens = |id: String| count("SELECT COUNT(*) FROM refresh_tokens WHERE session_id = $1", id);
    let events = || count("SELECT COUNT(*) FROM audit_events WHERE id <> $1", String::new());
    let audited = events().await;
    assert!(audited >= 3, "register, login, logout: {audited}");

    // A day short of the retention: the logged-out session stays.
    server.clock.advance(29 * DAY);
    server.auth.maintain().await.unwrap();
    assert_eq!(sessions(ended.sid()).await, 1);
    // Past it: the logged-out session goes with its tokens. The other one
    // idled out 7 days after its last refresh, 24 days ago: kept for now.
    server.clock.advance(2 * DAY);
    server.auth.maintain().await.unwrap();
    assert_eq!((sessions(ended.sid()).await, tokens(ended.sid()).await), (0, 0));
    assert_eq!((sessions(kept.sid()).await, tokens(kept.sid()).await), (1, 1));
    assert_eq!(events().await, audited, "audit events are kept 50 days");

    // 30 days after it idled out, the other session goes too; 61 days after
    // they happened, so do the audit events.
    server.clock.advance(30 * DAY);
    server.auth.maintain().await.unwrap();
    assert_eq!((sessions(kept.sid()).await, tokens(kept.sid()).await), (0, 0));
    assert_eq!(events().await, 0);
    assert_eq!(server.refresh(&kept.cookie).await.status(), StatusCode::UNAUTHORIZED);
    pool.close().await;
    server.finish().await;
}

async fn garbage_or_missing_cookie_is_refused_and_cleared(backend: Backend) {
    let server = TestServer::start(backend).await;
    for cookie in ["garbage", "", &"A".repeat(43), "%00%ff", &"x".repeat(5000)] {
        let response = server.refresh(cookie).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{cookie:?}");
        assert!(refresh_set_cookie(response.headers()).is_some_and(|c| c.contains("Max-Age=0")));
    }
    let none = server.request(Method::POST, "/auth/refresh", |r| r).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let get = server.request(Method::GET, "/auth/refresh", |r| r).await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED, "cookie endpoints are POST only");
    server.finish().await;
}

async fn logout_ends_the_session_and_its_access_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let logout = server
        .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie)))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(refresh_set_cookie(logout.headers()).is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::UNAUTHORIZED);
    let me = server.get_bearer("/api/me", &session.access).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED, "revoked at once, not at expiry");
    assert!(me.headers()[WWW_AUTHENTICATE].to_str().unwrap().contains(r#"error="invalid_token""#));
    let again = server.request(Method::POST, "/auth/logout", |r| r).await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT, "already logged out is fine");
    server.finish().await;
}

async fn logout_all_ends_every_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let laptop = server.register("alice").await;
    let phone = server.login_ok("alice").await;
    let other_user = server.register("bob").await;
    let response = server.post_bearer("/auth/logout-all", &phone.access, None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(refresh_set_cookie(response.headers()).is_some_and(|c| c.contains("Max-Age=0")));
    for session in [&laptop, &phone] {
        assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.get_bearer("/api/me", &other_user.access).await.status(), StatusCode::OK);
    let anonymous = server.request(Method::POST, "/auth/logout-all", |r| r).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

async fn sessions_list_and_revoke(backend: Backend) {
    let server = TestServer::start(backend).await;
    let laptop = server.register("alice").await;
    let phone = server
        .request(Method::POST, "/auth/login", |r| {
            r.header("user-agent", "PhoneBrowser/1.0").json(&json!({"username": "alice", "password": PASSWORD}))
        })
        .await;
    let phone = Session::from_response(phone).await;
    let bob = server.register("bob").await;

    let list = server.get_bearer("/auth/sessions", &laptop.access).await;
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()[CACHE_CONTROL], "no-store");
    let list: Vec<Value> = list.json().await.unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop.sid());
    let other = list.iter().find(|s| s["id"] == phone.sid()).expect("phone listed");
    assert_eq!(other["user_agent"], "PhoneBrowser/1.0");
    assert_eq!(other["ip"], "127.0.0.1");
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(other[field].is_i64(), "{field}");
    }

    let path = format!("/auth/sessions/{}", phone.sid());
    let foreign = server.request(Method::DELETE, &path, |r| r.bearer_auth(&bob.access)).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND, "not the caller's");
    let revoke = server.request(Method::DELETE, &path, |r| r.bearer_auth(&laptop.access)).await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.refresh(&phone.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.get_bearer("/api/me", &phone.access).await.status(), StatusCode::UNAUTHORIZED);
    let again = server.request(Method::DELETE, &path, |r| r.bearer_auth(&laptop.access)).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let unknown = server.request(Method::DELETE, "/auth/sessions/nope", |r| r.bearer_auth(&laptop.access)).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let remaining: Vec<Value> = server.get_bearer("/auth/sessions", &laptop.access).await.json().await.unwrap();
    assert_eq!(remaining.len(), 1);
    server.finish().await;
}

async fn password_change_keeps_this_session_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let here = server.register("alice").await;
    let elsewhere = server.login_ok("alice").await;
    let new_password = "a brand new passphrase 77";

    let wrong = server
        .post_bearer("/auth/password", &here.access, Some(json!({"current_password": "nope", "new_password": new_password})))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(wrong).await, "wrong_password");
    let weak = server
        .post_bearer("/auth/password", &here.access, Some(json!({"current_password": PASSWORD, "new_password": "alice123"})))
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let ok = server
        .post_bearer("/auth/password", &here.access, Some(json!({"current_password": PASSWORD, "new_password": new_password})))
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);

    assert_eq!(server.get_bearer("/api/me", &here.access).await.status(), StatusCode::OK, "this session kept");
    assert_eq!(server.refresh(&here.cookie).await.status(), StatusCode::OK);
    assert_eq!(server.get_bearer("/api/me", &elsewhere.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.refresh(&elsewhere.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.login("alice", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.login("alice", new_password).await.status(), StatusCode::OK);
    server.finish().await;
}

/// A login whose hash check raced a password change: the change revoked every
/// other session, so the login must not add one checked against the old hash.
async fn a_login_checked_against_a_changed_password_makes_no_session(backend: Backend) {
    use gatehouse::store::{AuditRecord, NewSession};
    let server = TestServer::start(backend).await;
    let here = server.register("alice").await;
    let store = server.auth.store();
    let before = store.user_by_name_key("alice").await.unwrap().unwrap();
    let new_password = "a brand new passphrase 77";
    let changed = server
        .post_bearer("/auth/password", &here.access, Some(json!({"current_password": PASSWORD, "new_password": new_password})))
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let after = store.user_by_name_key("alice").await.unwrap().unwrap();

    let now = server.auth.now();
    let new_session = |id: &str, password_hash: &str| NewSession {
        id: id.into(),
        user_id: before.id.clone(),
        username: before.username.clone(),
        role: before.role.clone(),
        now,
        idle_ttl: 600,
        max_age: 3600,
        user_agent: None,
        ip: None,
        token_hash: format!("hash-of-{id}"),
        password_hash: password_hash.into(),
    };
    let event = |id: &str| AuditRecord {
        id: format!("audit-{id}"),
        at: now,
        kind: "login_ok".into(),
        user_id: Some(before.id.clone()),
        session_id: Some(id.into()),
        ..AuditRecord::default()
    };
    let stale = store.create_session(&new_session("stale", &before.password_hash), &event("stale")).await.unwrap();
    assert_eq!(stale, None, "checked against the old hash: no session");
    let current = store.create_session(&new_session("current", &after.password_hash), &event("current")).await.unwrap();
    assert_eq!(current.map(|s| s.id), Some("current".to_string()));

    let live: Vec<Value> = server.get_bearer("/auth/sessions", &here.access).await.json().await.unwrap();
    let ids: Vec<&str> = live.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"current") && !ids.contains(&"stale"), "{ids:?}");
    let audited: Vec<_> = store.recent_audit(100).await.unwrap().into_iter().map(|e| e.id).collect();
    assert!(audited.contains(&"audit-current".to_string()), "{audited:?}");
    assert!(!audited.contains(&"audit-stale".to_string()), "nothing written for the refused session: {audited:?}");
    server.finish().await;
}

async fn me_and_token_failures(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let me = server.get_bearer("/api/me", &session.access).await;
    assert_eq!(me.headers()[CACHE_CONTROL], "no-store");
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["role"], "user");
    assert!(me["id"].is_string());

    let missing = server.request(Method::GET, "/api/me", |r| r).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(missing.headers().contains_key(WWW_AUTHENTICATE));
    for token in ["garbage", "a.b.c", &session.access[..session.access.len() - 3]] {
        let bad = server.get_bearer("/api/me", token).await;
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert!(bad.headers()[WWW_AUTHENTICATE].to_str().unwrap().contains(r#"error="invalid_token""#));
        assert_eq!(error_code(bad).await, "invalid_token");
    }
    let refresh_as_access = server.get_bearer("/api/me", &session.cookie).await;
    assert_eq!(refresh_as_access.status(), StatusCode::UNAUTHORIZED);
    let access_as_refresh = server.refresh(&session.access).await;
    assert_eq!(access_as_refresh.status(), StatusCode::UNAUTHORIZED);
    let unknown_api = server.get_bearer("/api/nothing-here", &session.access).await;
    assert_eq!(unknown_api.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown_api).await, "not_found");
    server.finish().await;
}

async fn admin_endpoints_need_the_admin_role(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("alice").await;
    let admin = server.create_admin("root-admin").await;
    for path in ["/api/admin/users", "/api/admin/events"] {
        let forbidden = server.get_bearer(path, &user.access).await;
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(error_code(forbidden).await, "forbidden");
        let anonymous = server.request(Method::GET, path, |r| r).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        let ok = server.get_bearer(path, &admin.access).await;
        assert_eq!(ok.status(), StatusCode::OK, "{path}");
    }
    let users: Vec<Value> = server.get_bearer("/api/admin/users", &admin.access).await.json().await.unwrap();
    let names: Vec<_> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "root-admin"]);
    assert!(users.iter().all(|u| u.get("password_hash").is_none()));
    server.finish().await;
}

async fn jwks_verifies_tokens_outside_the_server(backend: Backend) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let jwks = server.request(Method::GET, "/.well-known/jwks.json", |r| r).await;
    assert_eq!(jwks.status(), StatusCode::OK);
    let jwks: Value = jwks.json().await.unwrap();
    let kid = jwt_header(&session.access)["kid"].clone();
    let jwk = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("kid published");
    assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()), (Some("OKP"), Some("Ed25519"), Some("EdDSA")));
    assert!(jwk.get("d").is_none(), "no private part");

    let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&x).unwrap();
    let (signed, signature) = session.access.rsplit_once('.').unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    assert!(key.verify(signed.as_bytes(), &signature).is_ok(), "verifies with the published key");
    let tampered = signed.replacen('.', ".e", 1);
    assert!(key.verify(tampered.as_bytes(), &signature).is_err());
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

async fn cross_site_requests_are_refused(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.allowed_origins = vec!["https://app.example".into()]).await;
    let session = server.register("alice").await;
    let cookie = format!("{COOKIE_NAME}={}", session.cookie);
    let evil = server
        .request(Method::POST, "/auth/refresh", |r| r.header(COOKIE, &cookie).header(ORIGIN, "https://evil.example"))
        .await;
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(evil).await, "cross_site_request");
    let null_origin = server
        .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, &cookie).header(ORIGIN, "null"))
        .await;
    assert_eq!(null_origin.status(), StatusCode::FORBIDDEN);
    let fetch_meta = server
        .request(Method::POST, "/auth/refresh", |r| r.header(COOKIE, &cookie).header("sec-fetch-site", "cross-site"))
        .await;
    assert_eq!(fetch_meta.status(), StatusCode::FORBIDDEN);
    // Every path, not only the API and the forms: a page URL or one that does
    // not exist is refused before routing.
    for path in ["/", "/sessions", "/no-such-page"] {
        let elsewhere = server
            .request(Method::POST, path, |r| r.header(COOKIE, &cookie).header(ORIGIN, "https://evil.example"))
            .await;
        assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(error_code(elsewhere).await, "cross_site_request", "{path}");
    }
    let login_csrf = server
        .request(Method::POST, "/auth/login", |r| {
            r.header(ORIGIN, "https://evil.example").json(&json!({"username": "alice", "password": PASSWORD}))
        })
        .await;
    assert_eq!(login_csrf.status(), StatusCode::FORBIDDEN);
    // The session survived the attempts.
    let same_origin = server
        .request(Method::POST, "/auth/refresh", |r| r.header(COOKIE, &cookie).header(ORIGIN, server.base.clone()))
        .await;
    assert_eq!(same_origin.status(), StatusCode::OK);
    let session = Session::from_response(same_origin).await;
    let allowed = server
        .request(Method::POST, "/auth/refresh", |r| {
            r.header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie)).header(ORIGIN, "https://app.example")
        })
        .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    server.finish().await;
}

async fn key_rotation_keeps_old_tokens_valid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let before = server.register("alice").await;
    let old_kid = jwt_header(&before.access)["kid"].clone();
    gatehouse::auth::keys::KeyRing::rotate(server.auth.store(), server.auth.now()).await.unwrap();
    server.auth.maintain().await.unwrap();
    let after = server.login_ok("alice").await;
    let new_kid = jwt_header(&after.access)["kid"].clone();
    assert_ne!(old_kid, new_kid, "new tokens use the new key");
    assert_eq!(server.get_bearer("/api/me", &before.access).await.status(), StatusCode::OK);
    assert_eq!(server.get_bearer("/api/me", &after.access).await.status(), StatusCode::OK);
    let jwks: Value = server.request(Method::GET, "/.well-known/jwks.json", |r| r).await.json().await.unwrap();
    let kids: Vec<_> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    let published = || async {
        server.auth.maintain().await.unwrap();
        let jwks: Value = server.request(Method::GET, "/.well-known/jwks.json", |r| r).await.json().await.unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect::<Vec<_>>()
    };
    // Another instance may have signed with the old key until its next reload:
    // the key stays a little longer than the token lifetime.
    server.clock.advance(server.settings.access_ttl + 1);
    assert!(published().await.contains(&old_kid));
    // Then, with every token it signed expired, it is no longer published.
    server.clock.advance(120);
    assert_eq!(published().await, vec![new_kid]);
    server.finish().await;
}

async fn revocations_and_sessions_survive_a_restart(backend: Backend) {
    let server = TestServer::start(backend).await;
    let kept = server.register("alice").await;
    let revoked = server.login_ok("alice").await;
    let path = format!("/auth/sessions/{}", revoked.sid());
    assert_eq!(
        server.request(Method::DELETE, &path, |r| r.bearer_auth(&kept.access)).await.status(),
        StatusCode::NO_CONTENT
    );
    let restarted = server.sibling(|_| {}).await;
    assert_eq!(restarted.get_bearer("/api/me", &kept.access).await.status(), StatusCode::OK, "same keys");
    assert_eq!(restarted.get_bearer("/api/me", &revoked.access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(restarted.refresh(&kept.cookie).await.status(), StatusCode::OK);
    restarted.stop();
    server.finish().await;
}

async fn old_password_hashes_are_upgraded_at_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register("alice").await;
    let stronger = server.sibling(|s| s.argon2_memory_kib = 2048).await;
    assert_eq!(stronger.login("alice", PASSWORD).await.status(), StatusCode::OK);
    let user = stronger.auth.store().user_by_name_key("alice").await.unwrap().unwrap();
    assert!(user.password_hash.contains("m=2048,t=1,p=1"), "{}", user.password_hash);
    assert_eq!(stronger.login("alice", PASSWORD).await.status(), StatusCode::OK);
    stronger.stop();
    server.finish().await;
}

async fn audit_records_security_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.create_admin("auditor").await;
    let alice = server.register("alice").await;
    server.login("alice", "definitely wrong").await;
    let second = server.login_ok("alice").await;
    let rotated = Session::from_response(server.refresh(&alice.cookie).await).await;
    server.clock.advance(server.settings.refresh_grace + 1);
    server.refresh(&alice.cookie).await;
    server
        .post_bearer("/auth/password", &second.access, Some(json!({"current_password": PASSWORD, "new_password": "another fine passphrase 9"})))
        .await;
    server.post_bearer("/auth/logout-all", &second.access, None).await;
    drop(rotated);

    let events: Vec<Value> = server.get_bearer("/api/admin/events", &admin.access).await.json().await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    for kind in ["register", "login_ok", "login_failed", "refresh_reuse", "password_changed", "logout_all"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let reuse = events.iter().find(|e| e["kind"] == "refresh_reuse").unwrap();
    assert_eq!(reuse["username"], "alice");
    assert_eq!(reuse["session_id"], alice.sid());
    assert_eq!(reuse["ip"], "127.0.0.1");
    assert!(reuse["at"].is_i64());
    server.finish().await;
}

async fn health_reports_the_database(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ok = server.request(Method::GET, "/healthz", |r| r).await;
    assert_eq!(ok.status(), StatusCode::OK);
    server.auth.store().close().await;
    let down = server.request(Method::GET, "/healthz", |r| r).await;
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(down).await, "unavailable");
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
    let reread = store.presented_token(&presented.hash()).await.unwrap().unwrap();
    assert_eq!(decide(&reread.token, &reread.session, rules), Verdict::Ended, "it ends");
    let ended = reread.session;
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

async fn client_address_comes_from_trusted_proxies_only(backend: Backend) {
    let untrusting = TestServer::start(backend).await;
    async fn login(server: &TestServer) -> reqwest::Response {
        server
            .request(Method::POST, "/auth/login", |r| {
                r.header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
                    .json(&json!({"username": "alice", "password": PASSWORD}))
            })
            .await
    }
    untrusting.register("alice").await;
    let session = Session::from_response(login(&untrusting).await).await;
    let list: Vec<Value> = untrusting.get_bearer("/auth/sessions", &session.access).await.json().await.unwrap();
    assert!(list.iter().all(|s| s["ip"] == "127.0.0.1"), "forwarded headers ignored: {list:?}");

    let trusting = untrusting
        .sibling(|s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap(), "198.51.100.0/24".parse().unwrap()])
        .await;
    let session = Session::from_response(login(&trusting).await).await;
    let list: Vec<Value> = trusting.get_bearer("/auth/sessions", &session.access).await.json().await.unwrap();
    let current = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["ip"], "203.0.113.9", "nearest untrusted address");

    // An entry that is no address ends the walk: what stands left of it (here a
    // spoofed address) is not believed; the nearest trusted hop stands in.
    let spoofed = trusting
        .request(Method::POST, "/auth/login", |r| {
            r.header("x-forwarded-for", "203.0.113.66, not-an-address, 198.51.100.7")
                .json(&json!({"username": "alice", "password": PASSWORD}))
        })
        .await;
    let session = Session::from_response(spoofed).await;
    let list: Vec<Value> = trusting.get_bearer("/auth/sessions", &session.access).await.json().await.unwrap();
    let current = list.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["ip"], "198.51.100.7", "the spoofed address is not believed");
    trusting.stop();
    untrusting.finish().await;
}

/// Instances sharing a database learn of each other's revocations at their
/// next upkeep, without a database read per request.
async fn revocations_reach_other_instances(backend: Backend) {
    let a = TestServer::start(backend).await;
    let b = a.sibling(|_| {}).await;
    let session = a.register("alice").await;
    assert_eq!(b.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);

    let out = a.post_bearer("/auth/logout-all", &session.access, None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(a.get_bearer("/api/me", &session.access).await.status(), StatusCode::UNAUTHORIZED);
    b.auth.maintain().await.unwrap();
    let refused = b.get_bearer("/api/me", &session.access).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await, "invalid_token");
    b.stop();
    a.finish().await;
}
