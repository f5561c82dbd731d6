//! The rest of the HTTP API contract: signing keys and JWKS, cross-site
//! refusal, health, client addresses behind proxies.

use reqwest::header::{COOKIE, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    jwks_verifies_tokens_outside_the_server,
    cross_site_requests_are_refused,
    the_origin_check_compares_the_scheme,
    key_rotation_keeps_old_tokens_valid,
    signing_keys_are_encrypted_at_rest,
    keys_stored_in_the_clear_are_encrypted_once_a_key_is_set,
    health_reports_the_database,
    client_address_comes_from_trusted_proxies_only,
);

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

/// `Origin: http://host` on an HTTPS deployment is another site: known from
/// the public URL, or from a trusted proxy's `X-Forwarded-Proto`.
async fn the_origin_check_compares_the_scheme(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.public_url = "https://login.example".into()).await;
    let alice = server.register("alice").await;
    let logout = |origin: &'static str| {
        let cookie = format!("{COOKIE_NAME}={}", alice.cookie);
        let server = &server;
        async move {
            server
                .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, cookie).header(ORIGIN, origin))
                .await
        }
    };
    for origin in ["http://login.example", "https://login.example:8443", "https://other.example"] {
        let refused = logout(origin).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{origin}");
        assert_eq!(error_code(refused).await, "cross_site_request");
    }
    assert_eq!(logout("https://login.example").await.status(), StatusCode::NO_CONTENT);

    let proxied = server
        .sibling(|s| {
            s.public_url = String::new();
            s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await;
    let host = proxied.base.trim_start_matches("http://").to_string();
    let bob = proxied.register("bob").await;
    let through_proxy = |origin: String| {
        let cookie = format!("{COOKIE_NAME}={}", bob.cookie);
        let proxied = &proxied;
        async move {
            proxied
                .request(Method::POST, "/auth/refresh", |r| {
                    r.header(COOKIE, cookie).header(ORIGIN, origin).header("x-forwarded-proto", "https")
                })
                .await
        }
    };
    assert_eq!(through_proxy(format!("http://{host}")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(through_proxy(format!("https://{host}")).await.status(), StatusCode::OK);
    proxied.stop();
    server.finish().await;
}

async fn key_rotation_keeps_old_tokens_valid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let before = server.register("alice").await;
    let old_kid = jwt_header(&before.access)["kid"].clone();
    gatehouse::auth::keys::KeyRing::rotate(server.auth.store(), None, server.auth.now()).await.unwrap();
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

/// A key file for the key that encrypts signing keys: 32 bytes of `byte`.
fn key_encryption_key_file(byte: u8) -> String {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("gatehouse-kek-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap();
    path.display().to_string()
}

async fn stored_private_keys(server: &TestServer) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let keys = sqlx::query_scalar("SELECT private_key FROM signing_keys").fetch_all(&pool).await.unwrap();
    pool.close().await;
    keys
}

/// The start-up error of an instance with `tweak`ed settings, with its causes.
async fn start_error(server: &TestServer, tweak: impl FnOnce(&mut gatehouse::config::Settings)) -> String {
    let mut settings = server.settings.clone();
    tweak(&mut settings);
    let store = gatehouse::store::Store::open(&settings.database_url).await.unwrap();
    let started = gatehouse::auth::Auth::new(settings, store.clone(), server.clock.clone()).await;
    store.close().await;
    match started {
        Ok(_) => panic!("the instance started"),
        Err(err) => gatehouse::auth::WithSources(&err).to_string(),
    }
}

async fn signing_keys_are_encrypted_at_rest(backend: Backend) {
    use gatehouse::auth::key_encryption::KeyEncryptionKey;
    let key_file = key_encryption_key_file(7);
    let server = TestServer::start_with(backend, |s| s.key_encryption_key_file = key_file.clone()).await;
    let alice = server.register("alice").await;
    let stored = stored_private_keys(&server).await;
    assert_eq!(stored.len(), 1);
    assert!(stored.iter().all(|k| k.starts_with("xchacha20poly1305:")), "{stored:?}");

    // Rotation encrypts the new key; old and new tokens verify on another instance.
    let key = KeyEncryptionKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    gatehouse::auth::keys::KeyRing::rotate(server.auth.store(), Some(&key), server.auth.now()).await.unwrap();
    server.auth.maintain().await.unwrap();
    let after = server.login_ok("alice").await;
    assert_ne!(jwt_header(&after.access)["kid"], jwt_header(&alice.access)["kid"]);
    assert!(stored_private_keys(&server).await.iter().all(|k| k.starts_with("xchacha20poly1305:")));
    let other = server.sibling(|_| {}).await;
    for token in [&alice.access, &after.access] {
        assert_eq!(other.get_bearer("/api/me", token).await.status(), StatusCode::OK);
    }
    assert_eq!(other.login("alice", PASSWORD).await.status(), StatusCode::OK, "it signs too");
    other.stop();

    let wrong = start_error(&server, |s| s.key_encryption_key_file = key_encryption_key_file(8)).await;
    assert!(wrong.contains("cannot be decrypted"), "{wrong}");
    let without = start_error(&server, |s| s.key_encryption_key_file = String::new()).await;
    assert!(without.contains("is encrypted: set GATEHOUSE_KEY_ENCRYPTION_KEY"), "{without}");
    let malformed = start_error(&server, |s| s.key_encryption_key_file = "/nonexistent/key".into()).await;
    assert!(malformed.contains("/nonexistent/key"), "{malformed}");
    server.finish().await;
}

/// Keys stored before a key encryption key was set are encrypted at the next
/// start, and the sessions and tokens of before carry on.
async fn keys_stored_in_the_clear_are_encrypted_once_a_key_is_set(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    assert!(!stored_private_keys(&server).await[0].starts_with("xchacha20poly1305:"));
    let key_file = key_encryption_key_file(9);
    let encrypted = server.sibling(|s| s.key_encryption_key_file = key_file).await;
    assert!(stored_private_keys(&server).await.iter().all(|k| k.starts_with("xchacha20poly1305:")));
    assert_eq!(encrypted.get_bearer("/api/me", &alice.access).await.status(), StatusCode::OK);
    assert_eq!(encrypted.refresh(&alice.cookie).await.status(), StatusCode::OK);
    encrypted.stop();
    server.finish().await;
}
