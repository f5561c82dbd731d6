//! Attacks on access and refresh tokens: forged, edited, misaddressed,
//! expired, revoked, and one kind of token where the other belongs.

use std::time::Duration;

use reqwest::header::{COOKIE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::live::{closed_with, connect};
use crate::support::*;

both_backends!(
    forged_and_misaddressed_tokens_are_refused,
    expired_and_revoked_tokens_are_refused_everywhere,
    an_access_token_is_no_refresh_cookie,
);

/// Tokens signed with the server's own key but wrong in one respect, and tokens
/// forged without it: every one is a 401 `invalid_token` on the API and a 4001
/// `invalid_token` close on the socket, never a pass.
async fn forged_and_misaddressed_tokens_are_refused(backend: Backend) {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use gatehouse::auth::access_token::CLOCK_SKEW;
    use gatehouse::auth::clock::Clock as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let real = claims(&session.access);
    let kid = jwt_header(&session.access)["kid"].as_str().unwrap().to_string();
    let keys = server.auth.store().signing_keys(0).await.unwrap();
    let ours = keys.iter().find(|k| k.kid == kid).unwrap();
    let our_key = EncodingKey::from_ed_der(&STANDARD.decode(&ours.private_key).unwrap());
    let public_key = URL_SAFE_NO_PAD.decode(&ours.public_key).unwrap();

    let header = |alg: Algorithm, typ: Option<&str>, kid: Option<&str>| {
        let mut h = Header::new(alg);
        h.typ = typ.map(str::to_string);
        h.kid = kid.map(str::to_string);
        h
    };
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = real.clone();
        edit(&mut c);
        c
    };
    let sign = |h: &Header, c: &Value| jsonwebtoken::encode(h, c, &our_key).unwrap();
    let good = header(Algorithm::EdDSA, Some("at+jwt"), Some(&kid));

    // The harness signs correctly: the same claims under the right header pass.
    let control = server.get_bearer("/api/me", &sign(&good, &real)).await;
    assert_eq!(control.status(), StatusCode::OK);
    let longest = with(&|c| c["exp"] = json!(c["iat"].as_i64().unwrap() + server.settings.access_ttl + 30));
    let at_the_limit = server.get_bearer("/api/me", &sign(&good, &longest)).await;
    assert_eq!(at_the_limit.status(), StatusCode::OK, "access_ttl and the documented 30 s skew");

    let now = server.clock.now();
    let ttl = server.settings.access_ttl;
    let foreign = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let foreign_key = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        EncodingKey::from_ed_der(foreign.to_pkcs8_der().unwrap().as_bytes())
    };
    let unsigned = |h: Value, c: &Value| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(h.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        )
    };
    let (signed_part, signature) = session.access.rsplit_once('.').unwrap();
    let admin_payload = URL_SAFE_NO_PAD.encode(with(&|c| c["role"] = json!("admin")).to_string());
    let header_part = signed_part.split('.').next().unwrap();
    let mut jwk_header = good.clone();
    jwk_header.jwk = Some(serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": ours.public_key})).unwrap());
    // Key URLs an attacker controls, on a token signed with the attacker's key
    // and on one signed with ours: neither header is honoured.
    let mut jku_header = good.clone();
    jku_header.jku = Some("https://evil.example/jwks.json".to_string());
    let mut x5u_header = good.clone();
    x5u_header.x5u = Some("https://evil.example/cert.pem".to_string());

    let forged: Vec<(&str, String)> = vec![
        ("alg none", unsigned(json!({"alg": "none", "typ": "at+jwt", "kid": kid}), &real)),
        ("signature stripped", format!("{signed_part}.")),
        (
            "HS256 keyed with the public key",
            jsonwebtoken::encode(&header(Algorithm::HS256, Some("at+jwt"), Some(&kid)), &real, &EncodingKey::from_secret(&public_key)).unwrap(),
        ),
        ("typ JWT", sign(&header(Algorithm::EdDSA, Some("JWT"), Some(&kid)), &real)),
        ("no typ", sign(&header(Algorithm::EdDSA, None, Some(&kid)), &real)),
        ("no kid", sign(&header(Algorithm::EdDSA, Some("at+jwt"), None), &real)),
        ("unknown kid", sign(&header(Algorithm::EdDSA, Some("at+jwt"), Some("no-such-key")), &real)),
        ("kid with path characters", sign(&header(Algorithm::EdDSA, Some("at+jwt"), Some("../../etc/passwd")), &real)),
        ("kid with SQL", sign(&header(Algorithm::EdDSA, Some("at+jwt"), Some("x' OR '1'='1")), &real)),
        ("embedded jwk", sign(&jwk_header, &real)),
        ("jku header, foreign key", jsonwebtoken::encode(&jku_header, &real, &foreign_key).unwrap()),
        ("jku header, our key", sign(&jku_header, &real)),
        ("x5u header, foreign key", jsonwebtoken::encode(&x5u_header, &real, &foreign_key).unwrap()),
        ("x5u header, our key", sign(&x5u_header, &real)),
        ("another key under our kid", jsonwebtoken::encode(&good, &real, &foreign_key).unwrap()),
        ("wrong issuer", sign(&good, &with(&|c| c["iss"] = json!("someone-else")))),
        ("wrong audience", sign(&good, &with(&|c| c["aud"] = json!("another-app")))),
        ("issued in the future", sign(&good, &with(&|c| c["iat"] = json!(now + 3600)))),
        ("not yet valid", sign(&good, &with(&|c| c["nbf"] = json!(now + 3600)))),
        (
            "meant to live longer than access_ttl and the skew",
            sign(&good, &with(&|c| c["exp"] = json!(c["iat"].as_i64().unwrap() + ttl + CLOCK_SKEW + 1))),
        ),
        ("no session", sign(&good, &with(&|c| drop(c.as_object_mut().unwrap().remove("sid"))))),
        ("payload edited after signing", format!("{header_part}.{admin_payload}.{signature}")),
        ("bad base64", format!("{header_part}.!!!.{signature}")),
        ("100 KB", format!("{}.{}.{}", header_part, "A".repeat(100_000), signature)),
        ("the refresh token", session.cookie.clone()),
        ("two tokens joined", format!("{}.{}", session.access, session.access)),
    ];
    for (what, token) in forged {
        let refused = server.get_bearer("/api/me", &token).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = refused.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_string();
        assert!(challenge.contains(r#"error="invalid_token""#), "{what}: {challenge}");
        assert_eq!(error_code(refused).await, "invalid_token", "{what}");
        if token.len() < 8 * 1024 {
            let mut socket = connect(&server, Some(&token)).await;
            let closed = closed_with(&mut socket, Duration::from_secs(5)).await;
            assert_eq!(closed, (4001, "invalid_token".to_string()), "{what} on /ws");
        }
    }
    server.finish().await;
}

/// A real token past its expiry, and one of a session that has ended: the API
/// says why in `WWW-Authenticate`, the socket in its close code.
async fn expired_and_revoked_tokens_are_refused_everywhere(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ended = server.register("alice").await;
    let out = server
        .request(Method::POST, "/auth/logout", |r| r.header(COOKIE, format!("{COOKIE_NAME}={}", ended.cookie)))
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let refused = server.get_bearer("/api/me", &ended.access).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a token of a revoked session");
    assert_eq!(error_code(refused).await, "invalid_token");
    let mut socket = connect(&server, Some(&ended.access)).await;
    assert_eq!(closed_with(&mut socket, Duration::from_secs(5)).await, (1008, "session_revoked".to_string()));

    let live = server.login_ok("alice").await;
    server.clock.advance(server.settings.access_ttl);
    let expired = server.get_bearer("/api/me", &live.access).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let challenge = expired.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_string();
    assert!(challenge.contains("expired"), "{challenge}");
    let mut socket = connect(&server, Some(&live.access)).await;
    assert_eq!(closed_with(&mut socket, Duration::from_secs(5)).await, (4001, "token_expired".to_string()));
    server.finish().await;
}

/// An access token presented as the refresh cookie is refused and the cookie
/// cleared; the real refresh token still works afterwards.
async fn an_access_token_is_no_refresh_cookie(backend: Backend) {
    let server = TestServer::start(backend).await;
    let session = server.register("alice").await;
    let refused = server.refresh(&session.access).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let cleared = refresh_set_cookie(refused.headers()).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], json!("invalid_refresh_token"));
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK);
    server.finish().await;
}
