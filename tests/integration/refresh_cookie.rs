//! The refresh cookie everywhere it is accepted (page loads, form posts,
//! logout, refresh) by the same rotation rules; a rotation whose answer was
//! lost; and security changes that take effect when the client hangs up.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::{AnyConnection, Connection, Executor};
use tokio::io::AsyncWriteExt;

use crate::both_backends;
use crate::pages::{get_page, location, post_form};
use crate::support::*;

both_backends!(
    a_rotated_cookie_on_a_page_load_revokes_the_session,
    a_rotated_cookie_on_a_form_post_revokes_the_session,
    a_rotated_cookie_at_logout_is_recorded_as_reuse,
    page_loads_keep_an_active_session_alive,
    a_page_load_hands_a_lost_rotation_its_successor,
    page_loads_and_form_posts_count_against_refreshes_per_session,
    a_refresh_whose_answer_was_lost_is_answered_again,
    the_grace_window_counts_from_the_commit,
    a_logout_takes_effect_when_the_client_hangs_up,
);

/// Whether the answer clears the refresh cookie.
fn clears_cookie(response: &reqwest::Response) -> bool {
    refresh_set_cookie(response.headers()).is_some_and(|c| cookie_attributes(&c).contains(&"Max-Age=0".to_string()))
}

async fn audit_kinds(server: &TestServer) -> Vec<String> {
    let events = server.auth.store().recent_audit(None, 100).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// A cookie rotated away and its successor: `first` was rotated into `second`
/// longer ago than the grace window.
async fn rotated_past_grace(server: &TestServer) -> (Session, Session) {
    let first = server.register("alice").await;
    let second = Session::from_response(server.refresh(&first.cookie).await).await;
    server.clock.advance(server.settings.refresh_grace + 1);
    (first, second)
}

async fn a_rotated_cookie_on_a_page_load_revokes_the_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second) = rotated_past_grace(&server).await;
    let theft = get_page(&server, "/sessions", Some(&first.cookie)).await;
    assert_eq!(theft.status(), StatusCode::FOUND);
    assert_eq!(location(&theft), "/login?next=%2Fsessions");
    assert!(clears_cookie(&theft), "the stolen cookie is cleared");
    // The whole session is gone, the legitimate successor included.
    assert_eq!(server.refresh(&second.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.get_bearer("/api/me", &second.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(audit_kinds(&server).await.contains(&"refresh_reuse".to_string()));
    server.finish().await;
}

async fn a_rotated_cookie_on_a_form_post_revokes_the_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second) = rotated_past_grace(&server).await;
    let form = [
        ("current_password", PASSWORD),
        ("new_password", "another fine passphrase 9"),
    ];
    let theft = post_form(&server, "/account/password", &form, Some(&first.cookie)).await;
    assert_eq!(theft.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&theft), "/login?next=%2Faccount");
    assert!(clears_cookie(&theft));
    assert_eq!(server.refresh(&second.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.login("alice", PASSWORD).await.status(),
        StatusCode::OK,
        "the password was not changed"
    );
    assert!(audit_kinds(&server).await.contains(&"refresh_reuse".to_string()));
    server.finish().await;
}

async fn a_rotated_cookie_at_logout_is_recorded_as_reuse(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (first, second) = rotated_past_grace(&server).await;
    let logout = server
        .request(Method::POST, "/auth/logout", |r| {
            r.header(COOKIE, format!("{COOKIE_NAME}={}", first.cookie))
        })
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert!(clears_cookie(&logout));
    assert_eq!(
        server.get_bearer("/api/me", &second.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let kinds = audit_kinds(&server).await;
    assert!(kinds.contains(&"refresh_reuse".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"logout".to_string()), "theft, not a logout: {kinds:?}");
    server.finish().await;
}

/// A person without JavaScript browses for three idle lifetimes and stays
/// logged in: each page load past half the idle life renews the cookie.
async fn page_loads_keep_an_active_session_alive(backend: Backend) {
    let server = TestServer::start(backend).await;
    let idle = server.settings.refresh_idle_ttl;
    let mut cookie = server.register("alice").await.cookie;
    let fresh = get_page(&server, "/sessions", Some(&cookie)).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    assert!(
        refresh_set_cookie(fresh.headers()).is_none(),
        "a young cookie is not rotated on every load"
    );
    for _ in 0..6 {
        server.clock.advance(idle / 2 + 1);
        let page = get_page(&server, "/sessions", Some(&cookie)).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[CACHE_CONTROL], "no-store");
        let renewed = refresh_set_cookie(page.headers()).expect("an aging cookie is rotated");
        let attributes = cookie_attributes(&renewed);
        for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(attributes.contains(&attribute.to_string()), "{attribute} in {renewed}");
        }
        let next = cookie_value(&renewed);
        assert_ne!(next, cookie);
        cookie = next;
    }
    assert_eq!(
        server.refresh(&cookie).await.status(),
        StatusCode::OK,
        "alive after three idle lifetimes"
    );
    server.finish().await;
}

/// A rotation whose answer never arrived: within the grace window the old
/// cookie on a page load is handed the same successor.
async fn a_page_load_hands_a_lost_rotation_its_successor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("alice").await;
    let lost = Session::from_response(server.refresh(&first.cookie).await).await;
    let page = get_page(&server, "/sessions", Some(&first.cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let handed = refresh_set_cookie(page.headers()).expect("the successor is set");
    assert_eq!(cookie_value(&handed), lost.cookie);
    assert_eq!(server.refresh(&lost.cookie).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn page_loads_and_form_posts_count_against_refreshes_per_session(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.refreshes_per_session = gatehouse::config::RateLimit {
            count: 3,
            per_seconds: 3600,
        };
    })
    .await;
    let alice = server.register("alice").await;
    for _ in 0..3 {
        // A second apart: the same second's loads share one lookup.
        server.clock.advance(1);
        assert_eq!(
            get_page(&server, "/sessions", Some(&alice.cookie)).await.status(),
            StatusCode::OK
        );
    }
    server.clock.advance(1);
    let page = get_page(&server, "/sessions", Some(&alice.cookie)).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    let form = post_form(&server, "/sessions/revoke", &[("session_id", "x")], Some(&alice.cookie)).await;
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&form),
        "/sessions?error=rate_limited",
        "a limited form post does not act"
    );
    assert_eq!(
        server.refresh(&alice.cookie).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    server.finish().await;
}

/// Sends `request` on a fresh connection and hangs up without reading the answer.
async fn send_and_hang_up(server: &TestServer, request: String) {
    let addr = server.url("").trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    // Long enough for the server to have read it and begun.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
}

fn cookie_post(path: &str, cookie: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {COOKIE_NAME}={cookie}\r\nContent-Length: 0\r\n\r\n")
}

/// Holds the database's write lock (SQLite) or the session tables' (PostgreSQL)
/// until released, so a write can be caught waiting.
struct WriteBlock(AnyConnection);

impl WriteBlock {
    async fn hold(server: &TestServer) -> Self {
        let mut conn = AnyConnection::connect(&server.settings.database_url).await.unwrap();
        let hold = if server.settings.database_url.starts_with("sqlite") {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN; LOCK TABLE sessions, refresh_tokens IN EXCLUSIVE MODE"
        };
        conn.execute(hold).await.unwrap();
        Self(conn)
    }

    async fn release(mut self) {
        self.0.execute("COMMIT").await.unwrap();
    }
}

async fn a_refresh_whose_answer_was_lost_is_answered_again(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    send_and_hang_up(&server, cookie_post("/auth/refresh", &alice.cookie)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = server.refresh(&alice.cookie).await;
    assert_eq!(again.status(), StatusCode::OK, "a lost answer is not theft");
    let next = Session::from_response(again).await;
    let sessions: Vec<Value> = server
        .get_bearer("/auth/sessions", &next.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1, "one session");
    assert_eq!(
        server.refresh(&next.cookie).await.status(),
        StatusCode::OK,
        "and it goes on"
    );
    server.finish().await;
}

/// The rotation waited for the database longer than the grace window; its
/// answer was lost; the retry comes within the window of the commit.
async fn the_grace_window_counts_from_the_commit(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let block = WriteBlock::hold(&server).await;
    send_and_hang_up(&server, cookie_post("/auth/refresh", &alice.cookie)).await;
    server.clock.advance(server.settings.refresh_grace + 5);
    // Time for the server to see the connection closed while the write waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    block.release().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.clock.advance(2);
    let retry = server.refresh(&alice.cookie).await;
    assert_eq!(retry.status(), StatusCode::OK, "within the grace window of the commit");
    let next = Session::from_response(retry).await;
    assert_eq!(server.refresh(&next.cookie).await.status(), StatusCode::OK);
    server.finish().await;
}

/// A logout that committed after the client hung up still revokes the access
/// tokens in memory at once, not at the next upkeep.
async fn a_logout_takes_effect_when_the_client_hangs_up(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let block = WriteBlock::hold(&server).await;
    send_and_hang_up(&server, cookie_post("/auth/logout", &alice.cookie)).await;
    // Time for the server to see the connection closed while the write waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    block.release().await;
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = server.get_bearer("/api/me", &alice.access).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the access token is refused once the logout committed"
    );
    server.finish().await;
}
