//! Registration, login and its limits, password changes, `me` and the admin
//! endpoints.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
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
    registrations_without_a_client_address_share_one_limit,
    password_change_keeps_this_session_only,
    a_login_checked_against_a_changed_password_makes_no_session,
    me_and_token_failures,
    admin_endpoints_need_the_admin_role,
    old_password_hashes_are_upgraded_at_login,
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
    let waits = "the name waits its turn, right password or not";
    assert_eq!(even_right.status(), StatusCode::TOO_MANY_REQUESTS, "{waits}");
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
    // 3 failures allowed, each spent before its password is checked.
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

/// The router served without connection info (embedded in another server)
/// knows no client address: registrations are then limited under one shared
/// key, as logins are, not left unlimited.
async fn registrations_without_a_client_address_share_one_limit(backend: Backend) {
    use gatehouse::auth::{AuthError, ClientInfo};
    use gatehouse::protocol::Registration;

    let server = TestServer::start_with(backend, |s| {
        s.registrations_per_ip = gatehouse::config::RateLimit { count: 2, per_seconds: 3600 };
    })
    .await;
    let nowhere = ClientInfo::default();
    let register = |username: &str| {
        let registration = Registration {
            username: username.to_string(),
            password: PASSWORD.to_string(),
            email: None,
        };
        server.auth.register(registration, &nowhere)
    };
    register("alice").await.unwrap();
    register("bob").await.unwrap();
    let third = register("carol").await;
    assert!(matches!(third, Err(AuthError::RateLimited { .. })), "{third:?}");
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
        email: None,
        email_verified: false,
        amr: "pwd".into(),
        now,
        idle_ttl: 600,
        max_age: 3600,
        user_agent: None,
        ip: None,
        token_hash: format!("hash-of-{id}"),
        password_hash: password_hash.into(),
        max_live: 100,
    };
    let event = |id: &str| AuditRecord {
        id: format!("audit-{id}"),
        at: now,
        kind: "login_ok".into(),
        user_id: Some(before.id.clone()),
        session_id: Some(id.into()),
        ..AuditRecord::default()
    };
    let evicted = |_: &str| AuditRecord::default();
    let stale = store
        .create_session(&new_session("stale", &before.password_hash), &event("stale"), evicted)
        .await
        .unwrap();
    assert_eq!(stale, None, "checked against the old hash: no session");
    let current = store
        .create_session(
            &new_session("current", &after.password_hash),
            &event("current"),
            evicted,
        )
        .await
        .unwrap();
    assert_eq!(current.map(|c| c.session.id), Some("current".to_string()));

    let live: Vec<Value> = server.get_bearer("/auth/sessions", &here.access).await.json().await.unwrap();
    let ids: Vec<&str> = live.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"current") && !ids.contains(&"stale"), "{ids:?}");
    let audited: Vec<_> = store
        .recent_audit(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
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
