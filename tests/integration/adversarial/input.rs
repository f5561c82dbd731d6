//! Bad input: odd bytes and Unicode in every field, bodies over the limit, a
//! 10 MB password, too many or too large headers, and clients that never
//! finish or never start.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::both_backends;
use crate::live::{closed_with, connect};
use crate::support::*;

both_backends!(
    oversized_and_misdirected_requests,
    odd_bytes_in_names_and_ids_are_refused_cleanly,
    odd_values_in_every_field_are_refused_cleanly,
);

/// Text that has broken servers: NUL and other control characters, bidi
/// overrides, a byte-order mark, noncharacters, combining marks, emoji, and
/// long runs of 4-byte characters.
const ODD_TEXT: &[&str] = &[
    "a\u{0}b",
    "\u{0}",
    "\u{7f}\u{1b}[31m",
    "a\u{85}b\u{2028}c",
    "\u{202e}ecila",
    "\u{feff}alice",
    "\u{fffe}\u{ffff}",
    "e\u{301}\u{301}\u{301}\u{301}",
    "\u{1f600}\u{1f469}\u{200d}\u{1f4bb}",
    "' OR '1'='1",
    "%00%ff",
];

/// One request over a fresh connection, written byte for byte; returns the
/// status line and what followed, or "" if the server closed without answering.
async fn raw_exchange(server: &TestServer, bytes: &[u8]) -> String {
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // The server may answer and close before reading all of it: that is the point.
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server neither answered nor closed");
    String::from_utf8_lossy(&answer).to_string()
}

/// Every field of every JSON and form endpoint, and the socket's token, given
/// odd text: always a 4xx with the documented JSON error (or a page redirect
/// for forms), never a 5xx; and nothing stored is harmed.
async fn odd_values_in_every_field_are_refused_cleanly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    for odd in ODD_TEXT {
        let long = odd.repeat(300);
        for value in [odd.to_string(), long] {
            // A field that is refused must be refused cleanly; an odd password
            // that zxcvbn happens to rate strong may make an account, once.
            let bodies = [
                ("/auth/register", json!({"username": value, "password": PASSWORD}), false),
                ("/auth/register", json!({"username": "bob", "password": value}), true),
                ("/auth/login", json!({"username": value, "password": PASSWORD}), false),
                ("/auth/login", json!({"username": "alice", "password": value}), false),
            ];
            for (path, body, may_pass) in bodies {
                let response = server.post_json(path, body.clone()).await;
                let status = response.status();
                if may_pass && status == StatusCode::CREATED {
                    continue;
                }
                assert!(status.is_client_error(), "{path} {body}: {status}");
                assert!(!error_code(response).await.is_empty());
            }
            for body in [
                json!({"current_password": value, "new_password": "another horse battery staple 43"}),
                json!({"current_password": "not the password", "new_password": value}),
            ] {
                let response = server.post_bearer("/auth/password", &session.access, Some(body.clone())).await;
                let status = response.status();
                assert!(status.is_client_error(), "/auth/password {body}: {status}");
                assert!(!error_code(response).await.is_empty());
            }
            for (path, field) in [("/login", "username"), ("/login", "password"), ("/register", "username"), ("/register", "password")] {
                let form: Vec<(&str, &str)> = match field {
                    "username" => vec![("username", &value), ("password", PASSWORD)],
                    _ => vec![("username", "carol"), ("password", &value)],
                };
                let response = server.request(Method::POST, path, |r| r.header(ORIGIN, server.base.clone()).form(&form)).await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path} {field}");
                let location = response.headers()["location"].to_str().unwrap().to_string();
                let may_pass = path == "/register" && field == "password";
                assert!(may_pass || location.contains("error="), "{path} {field}: refused, {location}");
            }
            let encoded: String = percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string();
            let revoke = server
                .request(Method::DELETE, &format!("/auth/sessions/{encoded}"), |r| {
                    r.bearer_auth(&session.access).header(ORIGIN, server.base.clone())
                })
                .await;
            assert_eq!(revoke.status(), StatusCode::NOT_FOUND, "session id {value:?}");
            let refresh = server
                .request(Method::POST, "/auth/refresh", |r| r.header(COOKIE, format!("{COOKIE_NAME}={encoded}")))
                .await;
            assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
            let mut socket = connect(&server, Some(&encoded)).await;
            assert_eq!(closed_with(&mut socket, Duration::from_secs(5)).await.0, 4001);
        }
    }
    // JSON that no string can hold: lone surrogates and bytes that are not UTF-8.
    for raw in [
        &br#"{"username":"\ud800","password":"x"}"#[..],
        &b"{\"username\":\"\xc0\xaf\",\"password\":\"x\"}"[..],
        &b"{\"username\":\"alice\",\"password\":\"\xff\xfe\"}"[..],
    ] {
        for path in ["/auth/login", "/auth/register"] {
            let response = server
                .request(Method::POST, path, |r| r.header(CONTENT_TYPE, "application/json").body(raw.to_vec()))
                .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {}", String::from_utf8_lossy(raw));
            assert_eq!(error_code(response).await, "bad_request");
        }
    }
    // Nothing was created, changed or lost on the way.
    assert_eq!(server.login("alice", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    let sessions: Vec<Value> = server.get_bearer("/auth/sessions", &session.access).await.json().await.unwrap();
    assert_eq!(sessions.len(), 2, "the registration's session and the last login");
    let admin = server.create_admin("root").await;
    let users: Vec<Value> = server.get_bearer("/api/admin/users", &admin.access).await.json().await.unwrap();
    let names: Vec<&str> = users.iter().filter_map(|u| u["username"].as_str()).collect();
    assert!(names.contains(&"alice") && names.contains(&"root"), "{names:?}");
    assert!(names.iter().all(|n| ["alice", "root", "bob", "carol"].contains(n)), "no account under an odd name: {names:?}");
    server.finish().await;
}

/// A 10 MB password is refused before any of it is hashed, or even read. To
/// show "before hashing", the server hashes one password at a time and a slow
/// hash is under way: a request that needed the hasher would queue behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_password_is_refused_before_any_hashing() {
    let server = TestServer::start_with(Backend::Sqlite, |s| {
        s.hash_concurrency = 1;
        s.argon2_memory_kib = 1024;
        s.argon2_iterations = 2000;
    })
    .await;
    let slow = tokio::spawn({
        let http = server.http.clone();
        let url = server.url("/auth/login");
        async move {
            let response = http.post(url).json(&json!({"username": "nobody", "password": PASSWORD})).send().await;
            (response.map(|r| r.status()), Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let ten_mb = "p".repeat(10 * 1024 * 1024);
    for path in ["/auth/login", "/auth/register"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            ten_mb.len() + 40
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(b"{\"username\":\"alice\",\"password\":\"");
        request.extend_from_slice(&ten_mb.as_bytes()[..64 * 1024]);
        let answer = raw_exchange(&server, &request).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large") || answer.contains("content-length"), "{answer}");
    }
    // Within the body limit but over the password limit: refused by length.
    let long = "p".repeat(300);
    let login = server.login("alice", &long).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    let register = server.post_json("/auth/register", json!({"username": "alice", "password": long})).await;
    assert_eq!(register.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let answered = Instant::now();
    let (status, slow_done) = slow.await.unwrap();
    assert_eq!(status.unwrap(), StatusCode::UNAUTHORIZED);
    assert!(answered < slow_done, "every refusal came while the slow hash still held the hasher");
    server.finish().await;
}

/// Too many headers, one huge header, bytes no header may hold: 431 or 400
/// from the HTTP layer, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_and_malformed_headers_are_refused() {
    let server = TestServer::start(Backend::Sqlite).await;
    let many: String = (0..500).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let huge = format!("X-Huge: {}\r\n", "h".repeat(1024 * 1024));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("500 headers", format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(), "HTTP/1.1 431"),
        ("a 1 MB header", format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{huge}\r\n").into_bytes(), "HTTP/1.1 431"),
        ("NUL in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("NUL in the path", b"GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("a space in a header name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), "HTTP/1.1 400"),
    ];
    for (what, request, expected) in cases {
        let answer = raw_exchange(&server, &request).await;
        assert!(answer.starts_with(expected), "{what}: {answer:?}");
    }
    let mut cookie_storm = b"GET /api/me HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..90 {
        cookie_storm.extend_from_slice(format!("Cookie: c{i}={}\r\n", "v".repeat(100)).as_bytes());
    }
    cookie_storm.extend_from_slice(b"Authorization: Bearer x\r\nAuthorization: Bearer y\r\n\r\n");
    let answer = raw_exchange(&server, &cookie_storm).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "many cookies and two credentials: {answer}");
    assert_eq!(server.request(Method::GET, "/healthz", |r| r).await.status(), StatusCode::OK);
    server.finish().await;
}

async fn oversized_and_misdirected_requests(backend: Backend) {
    let server = TestServer::start(backend).await;
    let big = json!({"username": "alice", "password": "x".repeat(20_000)});
    let response = server.post_json("/auth/register", big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");
    let chunked = server
        .request(Method::POST, "/auth/login", |r| {
            let chunks = futures_chunks(40, 1024);
            r.header(CONTENT_TYPE, "application/json").body(reqwest::Body::wrap_stream(chunks))
        })
        .await;
    assert_eq!(chunked.status(), StatusCode::PAYLOAD_TOO_LARGE, "bodies without a length are cut too");
    server.finish().await;
}

/// `count` chunks of `size` bytes, sent without a Content-Length.
fn futures_chunks(
    count: usize,
    size: usize,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter((0..count).map(move |_| Ok(vec![b' '; size])))
}

/// NUL and other bytes PostgreSQL refuses in text never reach a query: they are
/// an unknown user or a session that does not exist, not a 500.
async fn odd_bytes_in_names_and_ids_are_refused_cleanly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    for name in ["ali\u{0}ce", "\u{0}", "al\u{202e}ice", "ａｌｉｃｅ"] {
        let refused = server.login(name, PASSWORD).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{name:?}");
        assert_eq!(error_code(refused).await, "invalid_credentials");
    }
    let long_password = "p\u{0}".repeat(200);
    let refused = server.login("ali\u{0}ce", &long_password).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    for id in ["%00", "not-a-session", "%C3%A9", "00000000-0000-0000-0000-000000000000"] {
        let path = format!("/auth/sessions/{id}");
        let missing = server
            .request(Method::DELETE, &path, |r| r.bearer_auth(&session.access).header(ORIGIN, server.base.clone()))
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{id}");
        assert_eq!(error_code(missing).await, "not_found", "{id}");
    }
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    server.finish().await;
}

/// A client that opens a connection and never finishes its headers, or its
/// body, is dropped or answered; it holds nothing and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped() {
    let server = TestServer::start(Backend::Sqlite).await;
    let addr = server.base.trim_start_matches("http://").to_string();

    // Before the connection exists: the server's deadline starts when it
    // accepts, so a clock started after the connect could read short of it.
    let started = Instant::now();
    let mut headers_never_end = tokio::net::TcpStream::connect(&addr).await.unwrap();
    headers_never_end.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut body_never_ends = tokio::net::TcpStream::connect(&addr).await.unwrap();
    body_never_ends
        .write_all(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        .await
        .unwrap();

    // Meanwhile everyone else is served.
    let health = server.request(Method::GET, "/healthz", |r| r).await;
    assert_eq!(health.status(), StatusCode::OK);

    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), headers_never_end.read_to_end(&mut buffer)).await;
    assert!(read.is_ok(), "the connection was dropped");
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT, "not before the deadline: {:?}", started.elapsed());

    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(20), body_never_ends.read(&mut answer)).await;
    let n = read.expect("answered within the body deadline").unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    server.finish().await;
}

/// Clients that connect and send nothing, or only the start of an HTTP/2
/// preface, are dropped at the header deadline like any slow client, and two
/// thousand of them keep nobody else waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_dropped_at_the_header_deadline() {
    const SILENT: usize = 2_000;
    // Both ends of every connection are in this process.
    rlimit::increase_nofile_limit(2 * SILENT as u64 + 1_024).unwrap();
    let server = TestServer::start(Backend::Sqlite).await;
    let addr = server.base.trim_start_matches("http://").to_string();

    let started = Instant::now();
    let mut silent = Vec::with_capacity(SILENT);
    for n in 0..SILENT {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if n % 2 == 1 {
            stream.write_all(b"PRI * HTTP/2").await.unwrap();
        }
        silent.push(stream);
    }

    let asked = Instant::now();
    let health = server.request(Method::GET, "/healthz", |r| r).await;
    assert_eq!(health.status(), StatusCode::OK);
    let waited = asked.elapsed();
    assert!(waited < Duration::from_secs(1), "a request behind {SILENT} silent connections waited {waited:?}");

    let give_up = HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let closed = futures_util::future::join_all(silent.iter_mut().map(|stream| async move {
        let mut buffer = [0u8; 256];
        loop {
            match tokio::time::timeout(give_up, stream.read(&mut buffer)).await {
                Err(_) => return false,
                // Whatever the server says first, it must end with the connection.
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }))
    .await;
    let still_open = closed.iter().filter(|closed| !**closed).count();
    assert_eq!(still_open, 0, "connections the server never dropped, of {SILENT}");
    let took = started.elapsed();
    assert!(took >= HEADER_READ_TIMEOUT, "dropped before the deadline: {took:?}");
    server.finish().await;
}
