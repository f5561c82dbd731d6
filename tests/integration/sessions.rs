//! Sessions as their owner sees them: logout, logout everywhere, listing and
//! revoking, revocation across restarts and instances, the audit trail and
//! retention.

use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, COOKIE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    ended_sessions_and_old_audit_events_are_deleted,
    logout_ends_the_session_and_its_access_token,
    logout_all_ends_every_session,
    sessions_list_and_revoke,
    revocations_and_sessions_survive_a_restart,
    audit_records_security_events,
    revocations_reach_other_instances,
    sessions_beyond_the_cap_end_the_least_recently_used,
    logins_at_once_never_leave_more_sessions_than_the_cap,
    logout_all_of_ten_thousand_sessions_lets_other_writes_through,
);

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

/// The ids of the caller's live sessions, as `GET /auth/sessions` lists them.
async fn live_ids(server: &TestServer, access: &str) -> Vec<String> {
    let list = server.get_bearer("/auth/sessions?limit=500", access).await;
    assert_eq!(list.status(), StatusCode::OK);
    let list: Vec<Value> = list.json().await.unwrap();
    list.iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// With room for three, a fourth login ends the session used longest ago
/// (not the oldest), at once and with an audit event; the other three live on.
async fn sessions_beyond_the_cap_end_the_least_recently_used(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.max_sessions_per_user = 3).await;
    let admin = server.create_admin("auditor").await;
    let oldest = server.register("alice").await;
    server.clock.advance(10);
    let idle = server.login_ok("alice").await;
    server.clock.advance(10);
    let recent = server.login_ok("alice").await;
    server.clock.advance(10);
    // The oldest session is used again: now `idle` is the least recently used.
    let oldest = Session::from_response(server.refresh(&oldest.cookie).await).await;
    server.clock.advance(10);
    let mut live = live_ids(&server, &recent.access).await;
    live.sort();
    let mut expected = vec![oldest.sid(), idle.sid(), recent.sid()];
    expected.sort();
    assert_eq!(live, expected, "three fit");

    let newest = server.login_ok("alice").await;
    assert_eq!(
        server.get_bearer("/api/me", &idle.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "refused at once"
    );
    assert_eq!(server.refresh(&idle.cookie).await.status(), StatusCode::UNAUTHORIZED);
    for kept in [&oldest, &recent, &newest] {
        assert_eq!(
            server.get_bearer("/api/me", &kept.access).await.status(),
            StatusCode::OK
        );
    }
    let live = live_ids(&server, &newest.access).await;
    assert_eq!(live.len(), 3);
    assert!(!live.contains(&idle.sid()), "{live:?}");

    let events: Vec<Value> = server
        .get_bearer("/api/admin/events", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let evicted: Vec<_> = events.iter().filter(|e| e["kind"] == "session_evicted").collect();
    assert_eq!(evicted.len(), 1, "{events:?}");
    assert_eq!(evicted[0]["session_id"], idle.sid());
    assert_eq!(evicted[0]["username"], "alice");
    assert!(evicted[0]["detail"].as_str().unwrap().contains(&newest.sid()));
    // A registration counts like a login; other users are not touched.
    let bob = server.register("bob").await;
    assert_eq!(server.get_bearer("/api/me", &bob.access).await.status(), StatusCode::OK);
    assert_eq!(live_ids(&server, &newest.access).await.len(), 3);
    server.finish().await;
}

/// Logins of one user at the same moment, on two instances, still leave at
/// most the cap live: each counts what the others committed.
async fn logins_at_once_never_leave_more_sessions_than_the_cap(backend: Backend) {
    const CAP: usize = 3;
    let server = TestServer::start_with(backend, |s| s.max_sessions_per_user = CAP as i64).await;
    let other = server.sibling(|_| {}).await;
    let first = server.register("alice").await;
    // A second later: the first session is the least recently used, not
    // tied with the others (a tie ends whichever id sorts first).
    server.clock.advance(1);
    let logins = (0..12).map(|i| {
        let api = if i % 2 == 0 { &server.api } else { &other.api };
        api.login("alice", PASSWORD)
    });
    for response in futures_util::future::join_all(logins).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let newest = server.login_ok("alice").await;
    assert_eq!(live_ids(&server, &newest.access).await.len(), CAP);
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let unrevoked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE u.username_key = 'alice' AND s.revoked_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unrevoked, CAP as i64);
    pool.close().await;
    assert_eq!(server.refresh(&first.cookie).await.status(), StatusCode::UNAUTHORIZED);
    other.stop();
    server.finish().await;
}

/// Logging out everywhere with 10,000 sessions revokes them in short
/// transactions: another user's refreshes, sent all along, each answer
/// promptly, some while part of the sessions are revoked and part not yet.
async fn logout_all_of_ten_thousand_sessions_lets_other_writes_through(backend: Backend) {
    const BULK: i64 = 10_000;
    let server = TestServer::start_with(backend, |s| s.max_sessions_per_user = 10_000).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    insert_sessions(&server, "alice", "22222222-2222-4222-8222-", BULK, 60).await;
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let revoked = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE u.username_key = 'alice' AND s.revoked_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(revoked().await, 0);

    let started = Instant::now();
    let logout_all = server.post_bearer("/auth/logout-all", &alice.access, None);
    let others = async {
        let mut cookie = bob.cookie.clone();
        let (mut slowest, mut writes, mut midway) = (Duration::ZERO, 0, 0);
        // Until the logout's last chunk is seen committed, and a moment longer.
        loop {
            let sent = Instant::now();
            let refreshed = server.refresh(&cookie).await;
            slowest = slowest.max(sent.elapsed());
            assert_eq!(refreshed.status(), StatusCode::OK);
            cookie = Session::from_response(refreshed).await.cookie;
            writes += 1;
            let done = revoked().await;
            if done > 0 && done < BULK + 1 {
                midway += 1;
            }
            if done == BULK + 1 || started.elapsed() > Duration::from_secs(60) {
                return (slowest, writes, midway);
            }
        }
    };
    let (response, (slowest, writes, midway)) = tokio::join!(logout_all, others);
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    eprintln!("{backend:?}: logout-all of {BULK} sessions took {took:?}; {writes} refreshes of another user meanwhile, slowest {slowest:?}, {midway} with the logout part done");
    assert_eq!(revoked().await, BULK + 1, "every session of alice ends");
    assert!(midway > 0, "other writes went through between the logout's chunks");
    assert!(
        slowest < Duration::from_millis(500),
        "another user's refresh waited {slowest:?}"
    );
    assert_eq!(
        server.get_bearer("/api/me", &alice.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    pool.close().await;
    server.finish().await;
}
