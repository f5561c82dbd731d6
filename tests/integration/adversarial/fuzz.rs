//! Fuzzing with proptest: access-token verification, refresh cookies, and the
//! bodies of every endpoint that reads one. The suite runs a short pass;
//! `make soak` runs a long one (`GATEHOUSE_FUZZ_CASES`). A failure prints the
//! smallest input proptest could shrink it to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(request_bodies_never_fail_the_server);

fn cases(short: u32) -> u32 {
    std::env::var("GATEHOUSE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(short)
}

/// Runs `test` on `cases` inputs drawn from `strategy`, on this test's runtime
/// (proptest is synchronous; the server and its client are not).
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    if let Err(failure) = tokio::task::block_in_place(|| runner.run(&strategy, test)) {
        panic!("{failure}");
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}

/// A one-character edit of a token: replace, insert or delete at a position.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let alphabet = prop::sample::select("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>());
    prop_oneof![
        (any::<usize>(), alphabet.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), alphabet).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(token: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::Replace(i, c) => {
            let i = at(i, chars.len());
            chars[i] = c;
        }
        Edit::Insert(i, c) => {
            let i = at(i, chars.len() + 1);
            chars.insert(i, c);
        }
        Edit::Delete(i) => {
            let i = at(i, chars.len());
            chars.remove(i);
        }
        Edit::Truncate(i) => chars.truncate(at(i, chars.len())),
    }
    chars.into_iter().collect()
}

/// JWT headers an attacker might try, and payloads of any shape.
fn forged_token() -> impl Strategy<Value = String> {
    let alg = prop::sample::select(vec!["EdDSA", "none", "None", "HS256", "RS256", "ES256", "", "eddsa"]);
    let typ = prop::option::of(prop::sample::select(vec!["at+jwt", "JWT", "application/at+jwt", ""]));
    let kid = prop::option::of(".{0,40}");
    let extra = prop::option::of(prop::sample::select(vec!["jku", "x5u", "jwk", "crit", "b64"]));
    let payload = prop::collection::btree_map(
        prop::sample::select(vec!["sub", "sid", "exp", "iat", "nbf", "iss", "aud", "role", "jti"]),
        prop_oneof![any::<i64>().prop_map(Value::from), ".{0,20}".prop_map(Value::from), Just(Value::Null)],
        0..9,
    );
    let signature = prop::collection::vec(any::<u8>(), 0..80);
    (alg, typ, kid, extra, payload, signature).prop_map(|(alg, typ, kid, extra, payload, signature)| {
        let mut header = json!({"alg": alg});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        if let Some(extra) = extra {
            header[extra] = json!("https://evil.example/key");
        }
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_string(&payload).unwrap_or_default()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    })
}

/// Any edit of a real token, any string, and any forged token is refused by
/// the verifier, which never panics; the real token still passes after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_verification_refuses_every_edit_and_forgery() {
    let server = TestServer::start(Backend::Sqlite).await;
    let session = server.register("alice").await;
    let auth = server.auth.clone();
    let real = session.access.clone();

    check(cases(2000), edit(), |edit| {
        let edited = apply(&real, &edit);
        if edited != real {
            let verdict = block_on(auth.authenticate(&edited));
            prop_assert!(verdict.is_err(), "{edit:?} passed: {edited}");
        }
        Ok(())
    });
    check(cases(1000), ".{0,600}", |text: String| {
        prop_assert!(block_on(auth.authenticate(&text)).is_err());
        Ok(())
    });
    check(cases(1000), forged_token(), |token| {
        prop_assert!(block_on(auth.authenticate(&token)).is_err(), "{token}");
        Ok(())
    });
    check(cases(200), "[!#-+\\--:<-\\[\\]-~]{0,64}", |cookie: String| {
        let response = block_on(server.refresh(&cookie));
        prop_assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "refresh cookie {}", cookie);
        Ok(())
    });
    assert!(auth.authenticate(&real).await.is_ok());
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK);
    server.finish().await;
}

/// A request the fuzzer builds: where it goes, how its body is labelled, and
/// the body: raw bytes, or JSON with the endpoint's fields and others.
#[derive(Debug, Clone)]
struct FuzzRequest {
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        "[\\x00-\\x1f\u{202e}\u{feff}a-z]{0,300}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn fuzz_request() -> impl Strategy<Value = FuzzRequest> {
    let path = prop::sample::select(vec!["/auth/register", "/auth/login", "/auth/password", "/login", "/register", "/account/password"]);
    let content_type = prop::option::of(prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json\u{0}",
        "",
    ]));
    let fields = prop::sample::select(vec!["username", "password", "current_password", "new_password", "next", "role", "__proto__"]);
    let json_body = prop::collection::btree_map(fields, json_value(), 0..5)
        .prop_map(|m| serde_json::to_vec(&m).unwrap_or_default());
    let form_body = prop::collection::vec((".{0,12}", ".{0,40}"), 0..5).prop_map(|pairs| {
        pairs
            .iter()
            .map(|(k, v)| {
                let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
                format!("{}={}", enc(k), enc(v))
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    });
    let raw_body = prop::collection::vec(any::<u8>(), 0..2048);
    let body = prop_oneof![json_body, form_body, raw_body];
    (path, content_type, body).prop_map(|(path, content_type, body)| FuzzRequest { path, content_type, body })
}

/// Fuzzed bodies on every endpoint that reads one: the answer is always one
/// the endpoint documents (a JSON error for the API, a redirect for forms),
/// never a 5xx; afterwards the account, its session and its password are intact.
async fn request_bodies_never_fail_the_server(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.login_failures_per_ip.count = 1_000_000;
        s.login_failures_per_username.count = 1_000_000;
        s.login_failures_per_username_and_ip.count = 1_000_000;
        s.registrations_per_ip.count = 1_000_000;
    })
    .await;
    let session = server.register("alice").await;
    let api: &Api = &server;

    check(cases(64), fuzz_request(), |request| {
        let response = block_on(api.request(Method::POST, request.path, |r| {
            let r = r
                .bearer_auth(&session.access)
                .header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie))
                .header(ORIGIN, api.base.clone())
                .body(request.body.clone());
            match request.content_type.and_then(|t| reqwest::header::HeaderValue::from_str(t).ok()) {
                Some(t) => r.header(CONTENT_TYPE, t),
                None => r,
            }
        }));
        let status = response.status();
        prop_assert!(!status.is_server_error(), "{request:?}: {status}");
        if request.path.starts_with("/auth/") {
            prop_assert!(status.is_success() || status.is_client_error(), "{request:?}: {status}");
            if status.is_client_error() {
                let body: Value = block_on(response.json()).map_err(|e| TestCaseError::fail(format!("{request:?}: {e}")))?;
                prop_assert!(body["error"].is_string() && body["message"].is_string(), "{request:?}: {body}");
            }
        } else {
            prop_assert_eq!(status, StatusCode::SEE_OTHER, "{:?}", request);
        }
        Ok(())
    });

    assert_eq!(server.login("alice", PASSWORD).await.status(), StatusCode::OK, "the password is unchanged");
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK, "the session is intact");
    server.finish().await;
}
