//! The live socket of issue 5, with a real WebSocket client: close codes and
//! reasons, expiry, revocation, reauth, several instances, and logs.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::both_backends;
use crate::support::*;

both_backends!(
    token_problems_close_with_4001_and_a_reason,
    revoked_sessions_close_with_1008,
    cross_site_origins_are_refused_before_the_upgrade,
    revocation_closes_open_sockets_within_a_second,
    sockets_close_when_their_token_expires,
    reauth_keeps_a_socket_open_past_the_first_token,
    events_reach_the_users_other_sockets,
    sockets_per_user_are_capped,
    oversized_and_malformed_messages_end_the_socket,
);

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn connect(server: &Api, token: Option<&str>) -> Socket {
    connect_from(server, token, Some(&server.base)).await.expect("upgrade")
}

pub async fn connect_from(server: &Api, token: Option<&str>, origin: Option<&str>) -> Result<Socket, WsError> {
    let ws_base = server.base.replacen("http://", "ws://", 1);
    let url = match token {
        Some(token) => format!("{ws_base}/ws?access_token={token}"),
        None => format!("{ws_base}/ws"),
    };
    let mut request = url.into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

/// The next JSON message, skipping pings.
pub async fn next_json(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(text.as_str()).unwrap(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Waits for the server's close frame: its code and reason.
pub async fn closed_with(socket: &mut Socket, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return (u16::from(frame.code), frame.reason.to_string()),
            Ok(Some(Ok(Message::Close(None)))) => panic!("closed without a code"),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame within {within:?}: {other:?}"),
        }
    }
}

/// Nothing but pings arrives for `quiet`: the socket is still open.
async fn stays_open(socket: &mut Socket, quiet: Duration) {
    match tokio::time::timeout(quiet, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    {
        Err(_) => {}
        Ok(other) => panic!("the socket should have stayed open, got {other:?}"),
    }
}

async fn token_problems_close_with_4001_and_a_reason(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;

    let mut ok = connect(&server, Some(&session.access)).await;
    let ready = next_json(&mut ok).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["session_id"], session.sid().as_str());

    let tampered = format!("{}x", &session.access[..session.access.len() - 1]);
    for (token, reason) in [
        (None, "invalid_token"),
        (Some("garbage"), "invalid_token"),
        (Some(tampered.as_str()), "invalid_token"),
        (Some(session.cookie.as_str()), "invalid_token"),
    ] {
        let mut socket = connect(&server, token).await;
        assert_eq!(closed_with(&mut socket, Duration::from_secs(5)).await, (4001, reason.to_string()), "{token:?}");
    }

    server.clock.advance(server.settings.access_ttl + 1);
    let mut expired = connect(&server, Some(&session.access)).await;
    assert_eq!(closed_with(&mut expired, Duration::from_secs(5)).await, (4001, "token_expired".to_string()));
    server.finish().await;
}

async fn revoked_sessions_close_with_1008(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let out = server.post_bearer("/auth/logout-all", &session.access, None).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let mut socket = connect(&server, Some(&session.access)).await;
    assert_eq!(closed_with(&mut socket, Duration::from_secs(5)).await, (1008, "session_revoked".to_string()));
    server.finish().await;
}

async fn cross_site_origins_are_refused_before_the_upgrade(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    match connect_from(&server, Some(&session.access), Some("https://evil.example")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("a cross-site socket was accepted"),
    }
    // Clients that are not browsers send no Origin and are judged by the token alone.
    let mut socket = connect_from(&server, Some(&session.access), None).await.expect("no Origin");
    assert_eq!(next_json(&mut socket).await["type"], "ready");
    server.finish().await;
}

async fn revocation_closes_open_sockets_within_a_second(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.register("alice").await;
    let other = server.register("bob").await;

    // Each way a session ends by itself, with a socket open on it.
    for way in ["logout", "logout-all", "refresh reuse"] {
        let session = server.login_ok("alice").await;
        let mut socket = connect(&server, Some(&session.access)).await;
        next_json(&mut socket).await;
        let started = Instant::now();
        match way {
            "logout" => {
                let cookie = format!("{COOKIE_NAME}={}", session.cookie);
                let r = server.request(Method::POST, "/auth/logout", |r| r.header("cookie", cookie)).await;
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            }
            "logout-all" => {
                let r = server.post_bearer("/auth/logout-all", &session.access, None).await;
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
            }
            _ => {
                assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK);
                server.clock.advance(server.settings.refresh_grace + 1);
                assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::UNAUTHORIZED);
            }
        }
        let closed = closed_with(&mut socket, Duration::from_secs(1)).await;
        assert_eq!(closed, (1008, "session_revoked".to_string()), "{way}");
        assert!(started.elapsed() < Duration::from_secs(1), "{way}: {:?}", started.elapsed());
    }

    // Revoking one session from another, and a password change, close the others' sockets.
    let phone = server.login_ok("alice").await;
    let mut phone_socket = connect(&server, Some(&phone.access)).await;
    next_json(&mut phone_socket).await;
    let fresh = server.login_ok("alice").await;
    let path = format!("/auth/sessions/{}", phone.sid());
    let r = server
        .request(Method::DELETE, &path, |r| r.bearer_auth(&fresh.access).header("origin", server.base.clone()))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut phone_socket, Duration::from_secs(1)).await.0, 1008);

    let mut laptop_socket = connect(&server, Some(&fresh.access)).await;
    next_json(&mut laptop_socket).await;
    let keeper = server.login_ok("alice").await;
    let mut keeper_socket = connect(&server, Some(&keeper.access)).await;
    next_json(&mut keeper_socket).await;
    let change = json!({"current_password": PASSWORD, "new_password": "a whole new passphrase 93"});
    let r = server.post_bearer("/auth/password", &keeper.access, Some(change)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut laptop_socket, Duration::from_secs(1)).await.0, 1008);
    // The session that changed it stays open and hears what happened.
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(next_json(&mut keeper_socket).await["type"].as_str().unwrap().to_string());
        if heard.last().map(String::as_str) == Some("password_changed") {
            break;
        }
    }
    assert!(heard.contains(&"password_changed".to_string()), "{heard:?}");

    // Another user's socket heard none of it and is still open.
    let mut bob = connect(&server, Some(&other.access)).await;
    next_json(&mut bob).await;
    stays_open(&mut bob, Duration::from_millis(300)).await;
    server.finish().await;
}

async fn sockets_close_when_their_token_expires(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let mut socket = connect(&server, Some(&session.access)).await;
    next_json(&mut socket).await;
    server.clock.advance(server.settings.access_ttl - 5);
    stays_open(&mut socket, Duration::from_millis(1500)).await;
    server.clock.advance(6);
    assert_eq!(closed_with(&mut socket, Duration::from_secs(3)).await, (4001, "token_expired".to_string()));
    server.finish().await;
}

async fn reauth_keeps_a_socket_open_past_the_first_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let mut socket = connect(&server, Some(&session.access)).await;
    let first_expiry = next_json(&mut socket).await["expires_at"].as_i64().unwrap();

    server.clock.advance(60);
    let refreshed = server.refresh(&session.cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let newer = Session::from_response(refreshed).await;
    let reauth = json!({"type": "reauth", "access_token": newer.access}).to_string();
    socket.send(Message::Text(reauth.into())).await.unwrap();
    let ready = next_json(&mut socket).await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["expires_at"].as_i64().unwrap(), first_expiry + 60);

    server.clock.advance(server.settings.access_ttl - 30);
    stays_open(&mut socket, Duration::from_millis(1500)).await;
    server.clock.advance(31);
    assert_eq!(closed_with(&mut socket, Duration::from_secs(3)).await, (4001, "token_expired".to_string()));

    // A token of another session is no reauth of this one.
    let other = server.login_ok("alice").await;
    let mut socket = connect(&server, Some(&other.access)).await;
    next_json(&mut socket).await;
    let intruder = server.login_ok("alice").await;
    let reauth = json!({"type": "reauth", "access_token": intruder.access}).to_string();
    socket.send(Message::Text(reauth.into())).await.unwrap();
    assert_eq!(closed_with(&mut socket, Duration::from_secs(3)).await, (4001, "invalid_token".to_string()));
    server.finish().await;
}

async fn events_reach_the_users_other_sockets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let laptop = server.register("alice").await;
    let mut socket = connect(&server, Some(&laptop.access)).await;
    next_json(&mut socket).await;

    let phone = server
        .request(Method::POST, "/auth/login", |r| {
            r.header("user-agent", "PhoneBrowser/1.0").json(&json!({"username": "alice", "password": PASSWORD}))
        })
        .await;
    let phone = Session::from_response(phone).await;
    let created = next_json(&mut socket).await;
    assert_eq!(created["type"], "session_created");
    assert_eq!(created["session_id"], phone.sid().as_str());
    assert_eq!(created["user_agent"], "PhoneBrowser/1.0");
    assert_eq!(created["ip"], "127.0.0.1");

    let path = format!("/auth/sessions/{}", phone.sid());
    let r = server
        .request(Method::DELETE, &path, |r| r.bearer_auth(&laptop.access).header("origin", server.base.clone()))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let revoked = next_json(&mut socket).await;
    assert_eq!(revoked["type"], "session_revoked");
    assert_eq!(revoked["session_id"], phone.sid().as_str());
    assert_eq!(revoked["reason"], "revoked_by_user");
    server.finish().await;
}

async fn sockets_per_user_are_capped(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let mut open = Vec::new();
    for _ in 0..gatehouse::server::live::MAX_SOCKETS_PER_USER {
        let mut socket = connect(&server, Some(&session.access)).await;
        next_json(&mut socket).await;
        open.push(socket);
    }
    let mut one_more = connect(&server, Some(&session.access)).await;
    assert_eq!(closed_with(&mut one_more, Duration::from_secs(5)).await, (1013, "too_many_sockets".to_string()));
    // Closing one frees its place.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&server, Some(&session.access)).await;
        match tokio::time::timeout(Duration::from_secs(5), again.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("no place freed: {other:?}"),
        }
    }
    server.finish().await;
}

async fn oversized_and_malformed_messages_end_the_socket(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;

    let mut socket = connect(&server, Some(&session.access)).await;
    next_json(&mut socket).await;
    socket.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(closed_with(&mut socket, Duration::from_secs(3)).await.0, 4001);

    let mut socket = connect(&server, Some(&session.access)).await;
    next_json(&mut socket).await;
    let _ = socket.send(Message::Text("x".repeat(100_000).into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized message ends the socket");
    // The server is unharmed.
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    server.finish().await;
}

/// Two instances over one PostgreSQL database: a logout everywhere through A
/// closes B's socket at once, and B refuses the access token too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_crosses_instances_through_postgres() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = a.sibling(|_| {}).await;
    let session = a.register("alice").await;
    let other = a.login_ok("alice").await;
    let mut on_b = connect(&b, Some(&session.access)).await;
    next_json(&mut on_b).await;

    // B hears of a login through A. The notices of the sessions made before
    // the socket opened may still be on their way to B: they come first then.
    let third = a.login_ok("alice").await;
    let earlier = [session.sid(), other.sid()];
    let mut heard = next_json(&mut on_b).await;
    while earlier.iter().any(|sid| heard["session_id"] == sid.as_str()) {
        heard = next_json(&mut on_b).await;
    }
    assert_eq!(heard["session_id"], third.sid().as_str());

    let started = Instant::now();
    let r = a.post_bearer("/auth/logout-all", &other.access, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(closed_with(&mut on_b, Duration::from_secs(1)).await, (1008, "session_revoked".to_string()));
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(b.get_bearer("/api/me", &session.access).await.status(), StatusCode::UNAUTHORIZED);

    // A new session keeps working through either instance.
    let fresh = a.login_ok("alice").await;
    let via_b = b.refresh(&fresh.cookie).await;
    assert_eq!(via_b.status(), StatusCode::OK);
    let rotated = Session::from_response(via_b).await;
    let via_a = a.refresh(&rotated.cookie).await;
    assert_eq!(via_a.status(), StatusCode::OK);
    let latest = Session::from_response(via_a).await;
    assert_eq!(b.get_bearer("/api/me", &latest.access).await.status(), StatusCode::OK);
    b.stop();
    a.finish().await;
}

/// Everything the server logs while a socket comes and goes, at every level.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let logs = logs.clone();
            move || LogWriter(logs.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_writer(writer)
            .with_ansi(false)
            .finish();
        // Another test binary setup may have set one already; then nothing is captured and the test says so.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_never_reaches_the_logs() {
    let logs = captured_logs();
    let server = TestServer::start(Backend::Sqlite).await;
    let session = server.register("alice").await;
    let mut socket = connect(&server, Some(&session.access)).await;
    next_json(&mut socket).await;
    let reauth = json!({"type": "reauth", "access_token": session.access}).to_string();
    socket.send(Message::Text(reauth.into())).await.unwrap();
    next_json(&mut socket).await;
    let mut bad = connect(&server, Some(&format!("{}x", session.access))).await;
    closed_with(&mut bad, Duration::from_secs(5)).await;
    server.post_bearer("/auth/logout-all", &session.access, None).await;
    closed_with(&mut socket, Duration::from_secs(5)).await;
    server.finish().await;

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(text.contains("/ws"), "the socket's requests were logged: {} bytes", text.len());
    let signature = session.access.rsplit('.').next().unwrap();
    assert!(!text.contains(signature), "an access token reached the logs");
    assert!(!text.contains(&session.cookie), "a refresh token reached the logs");
}
