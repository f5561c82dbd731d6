//! A second factor (authenticator-app codes, recovery codes) and step-up
//! (a recent sign-in before sensitive changes), over HTTP, with the server's
//! clock under the test's control.

use gatehouse::auth::clock::Clock as _;
use gatehouse::auth::totp::{TotpSecret, STEP_SECONDS};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::pages::post_form;
use crate::support::{claims, error_code, refresh_set_cookie, Backend, Session, TestServer, PASSWORD};

/// An account with a confirmed app: its secret, its recovery codes, and the
/// session that set it up.
struct WithApp {
    secret: TotpSecret,
    recovery_codes: Vec<String>,
    session: Session,
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

/// The code the app shows now, by the server's clock.
fn code_now(server: &TestServer, secret: &TotpSecret) -> String {
    secret.code_at(server.clock.now()).expect("a code")
}

/// Moves the clock to the start of the next time step, so the next code is new.
fn next_step(server: &TestServer) {
    let now = server.clock.now();
    server.clock.advance(STEP_SECONDS - now.rem_euclid(STEP_SECONDS));
}

async fn set_up_app(server: &TestServer, username: &str) -> WithApp {
    let session = server.register(username).await;
    let setup = server.post_bearer("/auth/mfa/totp", &session.access, None).await;
    assert_eq!(setup.status(), StatusCode::OK);
    let setup = json_of(setup).await;
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).expect("base32 secret");
    let confirmed = server
        .post_bearer("/auth/mfa/totp/confirm", &session.access, Some(json!({"code": code_now(server, &secret)})))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes = json_of(confirmed).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    WithApp {
        secret,
        recovery_codes: codes,
        session,
    }
}

/// A password login that must stop at the second step: its `mfa_token`.
async fn first_step(server: &TestServer, username: &str) -> String {
    let response = server.login(username, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(refresh_set_cookie(response.headers()).is_none(), "no cookie before the second step");
    let body = json_of(response).await;
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none(), "no access token before the second step: {body}");
    body["mfa_token"].as_str().expect("mfa_token").to_string()
}

async fn second_step(server: &TestServer, mfa_token: &str, code: &str) -> reqwest::Response {
    server
        .post_json("/auth/login/mfa", json!({"mfa_token": mfa_token, "code": code}))
        .await
}

async fn second_factor_status(server: &TestServer, access: &str) -> Value {
    let response = server.get_bearer("/auth/mfa", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await
}

async fn setting_up_an_app_then_signing_in_with_its_code(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let setup = json_of(server.post_bearer("/auth/mfa/totp", &alice.access, None).await).await;
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Gatehouse:alice?"), "{uri}");
    assert!(uri.contains(setup["secret"].as_str().unwrap()));
    assert!(setup["qr_svg"].as_str().unwrap().starts_with("<svg"));
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();

    // Unconfirmed, it is asked for nowhere.
    let status = second_factor_status(&server, &alice.access).await;
    assert_eq!((&status["totp"], &status["setup"]["secret"]), (&json!(false), &setup["secret"]), "the setup waits: {status}");
    assert_eq!(server.login("alice", PASSWORD).await.status(), StatusCode::OK);

    let wrong = server
        .post_bearer("/auth/mfa/totp/confirm", &alice.access, Some(json!({"code": "000000"})))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(wrong).await, "invalid_code");
    let confirmed = server
        .post_bearer("/auth/mfa/totp/confirm", &alice.access, Some(json!({"code": code_now(&server, &secret)})))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes = json_of(confirmed).await["recovery_codes"].as_array().unwrap().len();
    assert_eq!(codes, 10);
    assert_eq!(second_factor_status(&server, &alice.access).await, json!({"totp": true, "recovery_codes_left": 10}), "no setup waits once confirmed");
    let again = server.post_bearer("/auth/mfa/totp", &alice.access, None).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "totp_enabled");

    let mfa_token = first_step(&server, "alice").await;
    // The code that confirmed the setup was spent there.
    let replayed = second_step(&server, &mfa_token, &code_now(&server, &secret)).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(replayed).await, "invalid_code");
    next_step(&server);
    let signed_in = second_step(&server, &mfa_token, &code_now(&server, &secret)).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let session = Session::from_response(signed_in).await;
    assert_eq!(claims(&session.access)["amr"], json!(["pwd", "otp"]));
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    // The token is spent with the sign-in.
    next_step(&server);
    let reused = second_step(&server, &mfa_token, &code_now(&server, &secret)).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

async fn a_code_is_accepted_once_with_a_step_of_skew(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = set_up_app(&server, "alice").await;
    next_step(&server);
    let now = server.clock.now();
    // An app whose clock runs a step ahead.
    let ahead = alice.secret.code_at(now + STEP_SECONDS).unwrap();
    let ok = second_step(&server, &first_step(&server, "alice").await, &ahead).await;
    assert_eq!(ok.status(), StatusCode::OK, "one step of skew is accepted");
    // The same code again, still within its window, on a new sign-in.
    let replay = second_step(&server, &first_step(&server, "alice").await, &ahead).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED, "a code is accepted once");
    // An older step than the one used is refused too, though within the window.
    let current = alice.secret.code_at(now).unwrap();
    let older = second_step(&server, &first_step(&server, "alice").await, &current).await;
    assert_eq!(older.status(), StatusCode::UNAUTHORIZED, "no step before the last one used");
    // Two steps off is too far.
    server.clock.advance(2 * STEP_SECONDS);
    let far_behind = alice.secret.code_at(server.clock.now() - 2 * STEP_SECONDS).unwrap();
    let refused = second_step(&server, &first_step(&server, "alice").await, &far_behind).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let late_ok = second_step(&server, &first_step(&server, "alice").await, &code_now(&server, &alice.secret)).await;
    assert_eq!(late_ok.status(), StatusCode::OK);
    server.finish().await;
}

async fn recovery_codes_work_once_and_new_ones_void_the_old(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = set_up_app(&server, "alice").await;
    // Typed as people type: upper case, spaces for dashes.
    let typed = alice.recovery_codes[0].to_uppercase().replace('-', " ");
    let signed_in = second_step(&server, &first_step(&server, "alice").await, &typed).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let session = Session::from_response(signed_in).await;
    assert_eq!(claims(&session.access)["amr"], json!(["pwd", "recovery"]));
    assert_eq!(second_factor_status(&server, &session.access).await["recovery_codes_left"], 9);
    let again = second_step(&server, &first_step(&server, "alice").await, &alice.recovery_codes[0]).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a recovery code works once");

    let renewed = server.post_bearer("/auth/mfa/recovery-codes", &session.access, None).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let new_codes = json_of(renewed).await["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(new_codes.len(), 10);
    let old = second_step(&server, &first_step(&server, "alice").await, &alice.recovery_codes[1]).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "new codes void the old ones");
    let new = second_step(&server, &first_step(&server, "alice").await, new_codes[0].as_str().unwrap()).await;
    assert_eq!(new.status(), StatusCode::OK);
    assert_eq!(second_factor_status(&server, &session.access).await["recovery_codes_left"], 9);
    server.finish().await;
}

async fn a_second_step_is_used_once_within_five_minutes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = set_up_app(&server, "alice").await;
    next_step(&server);

    let late = first_step(&server, "alice").await;
    server.clock.advance(301);
    let refused = second_step(&server, &late, &code_now(&server, &alice.secret)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "five minutes at most");
    assert_eq!(error_code(refused).await, "invalid_code");

    // Five wrong codes end the sign-in, even for the right code after them.
    let token = first_step(&server, "alice").await;
    for _ in 0..5 {
        assert_eq!(second_step(&server, &token, "000000").await.status(), StatusCode::UNAUTHORIZED);
    }
    next_step(&server);
    let after = second_step(&server, &token, &code_now(&server, &alice.secret)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    let unknown = second_step(&server, "not-a-token", "123456").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let bad_body = server.post_json("/auth/login/mfa", json!({"mfa_token": "x"})).await;
    assert_eq!(bad_body.status(), StatusCode::BAD_REQUEST);
    server.finish().await;
}

async fn wrong_codes_count_against_the_login_limits(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.login_failures_per_username_and_ip.count = 4;
    })
    .await;
    let _alice = set_up_app(&server, "alice").await;
    let token = first_step(&server, "alice").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(second_step(&server, &token, "000000").await.status());
    }
    assert_eq!(&statuses[..4], &[StatusCode::UNAUTHORIZED; 4]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "wrong codes run into the limit wrong passwords do");
    let password = server.login("alice", PASSWORD).await;
    assert_eq!(password.status(), StatusCode::TOO_MANY_REQUESTS, "and so does the password");
    server.finish().await;
}

async fn sensitive_changes_need_a_recent_sign_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let change = json!({"current_password": PASSWORD, "new_password": "a much longer new passphrase 7"});
    server.clock.advance(server.settings.reauth_window + 1);
    for (method, path, body) in [
        (Method::POST, "/auth/password", Some(change.clone())),
        (Method::POST, "/auth/email", Some(json!({"email": "alice@example.com"}))),
        (Method::POST, "/auth/mfa/totp", None),
        (Method::POST, "/auth/logout-all", None),
    ] {
        let response = server
            .request(method, path, |r| {
                let r = r.bearer_auth(&alice.access).header("origin", server.url(""));
                match &body {
                    Some(body) => r.json(body),
                    None => r,
                }
            })
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(error_code(response).await, "reauth_required", "{path}");
    }
    // Not a sensitive change: still fine.
    assert_eq!(server.get_bearer("/auth/sessions", &alice.access).await.status(), StatusCode::OK);

    let wrong = server.post_bearer("/auth/reauth", &alice.access, Some(json!({"password": "wrong"}))).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(wrong).await, "invalid_credentials");
    for body in [json!({}), json!({"password": PASSWORD, "code": "123456"})] {
        let malformed = server.post_bearer("/auth/reauth", &alice.access, Some(body)).await;
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    }
    let reauth = server.post_bearer("/auth/reauth", &alice.access, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(reauth.status(), StatusCode::OK);
    assert!(reauth.headers().get(SET_COOKIE).is_none(), "the refresh cookie stays");
    let fresh = json_of(reauth).await["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&fresh)["auth_time"], server.clock.now());
    assert_eq!(claims(&fresh)["sid"], alice.sid(), "the same session");
    let changed = server.post_bearer("/auth/password", &fresh, Some(change)).await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);

    // A refresh carries the recent sign-in on; it does not make one.
    let refreshed = Session::from_response(server.refresh(&alice.cookie).await).await;
    assert_eq!(claims(&refreshed.access)["auth_time"], claims(&fresh)["auth_time"]);
    server.clock.advance(server.settings.reauth_window + 1);
    let refreshed = Session::from_response(server.refresh(&refreshed.cookie).await).await;
    let stale = server.post_bearer("/auth/logout-all", &refreshed.access, None).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    server.finish().await;
}

async fn an_app_code_re_authenticates_and_step_up_guards_the_second_factor(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = set_up_app(&server, "alice").await;
    server.clock.advance(server.settings.reauth_window + 1);
    let stale = server
        .request(Method::DELETE, "/auth/mfa/totp", |r| r.bearer_auth(&alice.session.access).header("origin", server.url("")))
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauth_required");
    let regenerate = server.post_bearer("/auth/mfa/recovery-codes", &alice.session.access, None).await;
    assert_eq!(error_code(regenerate).await, "reauth_required");

    let wrong = server.post_bearer("/auth/reauth", &alice.session.access, Some(json!({"code": "000000"}))).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(wrong).await, "invalid_code");
    let reauth = server
        .post_bearer("/auth/reauth", &alice.session.access, Some(json!({"code": code_now(&server, &alice.secret)})))
        .await;
    assert_eq!(reauth.status(), StatusCode::OK);
    let fresh = json_of(reauth).await["access_token"].as_str().unwrap().to_string();
    let removed = server
        .request(Method::DELETE, "/auth/mfa/totp", |r| r.bearer_auth(&fresh).header("origin", server.url("")))
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(second_factor_status(&server, &fresh).await["totp"], false);
    // Signing in is one step again.
    assert!(server.login("alice", PASSWORD).await.headers().get(SET_COOKIE).is_some());
    server.finish().await;
}

async fn the_policy_sends_users_without_a_second_factor_to_set_one_up(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.require_second_factor = "everyone".to_string()).await;
    let alice = server.register("alice").await;
    assert_eq!(server.get_bearer("/api/me", &alice.access).await.status(), StatusCode::OK);
    let held = server.get_bearer("/auth/sessions", &alice.access).await;
    assert_eq!(held.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(held).await, "second_factor_required");
    // The page guard sends pages to the setup.
    let page = server
        .request(Method::GET, "/sessions", |r| r.header(COOKIE, format!("{}={}", crate::support::COOKIE_NAME, alice.cookie)))
        .await;
    assert_eq!(page.status(), StatusCode::FOUND);
    assert_eq!(page.headers()["location"], "/two-factor");

    let setup = json_of(server.post_bearer("/auth/mfa/totp", &alice.access, None).await).await;
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let confirmed = server
        .post_bearer("/auth/mfa/totp/confirm", &alice.access, Some(json!({"code": code_now(&server, &secret)})))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    // This session proved the app: its next token says so.
    let refreshed = Session::from_response(server.refresh(&alice.cookie).await).await;
    assert_eq!(claims(&refreshed.access)["amr"], json!(["pwd", "otp"]));
    assert_eq!(server.get_bearer("/auth/sessions", &refreshed.access).await.status(), StatusCode::OK);

    let admins_only = server.sibling(|s| s.require_second_factor = "admins".to_string()).await;
    let bob = admins_only.register("bob").await;
    assert_eq!(admins_only.get_bearer("/auth/sessions", &bob.access).await.status(), StatusCode::OK);
    let root = admins_only.create_admin("root").await;
    assert_eq!(admins_only.get_bearer("/auth/sessions", &root.access).await.status(), StatusCode::FORBIDDEN);
    admins_only.stop();
    server.finish().await;
}

async fn without_javascript_the_second_step_has_a_page_of_its_own(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = set_up_app(&server, "alice").await;
    next_step(&server);
    let posted = post_form(&server, "/login", &[("username", "alice"), ("password", PASSWORD), ("next", "/sessions")], None).await;
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    assert_eq!(posted.headers()["location"], "/login-code?next=%2Fsessions");
    assert!(refresh_set_cookie(posted.headers()).is_none(), "no session before the code");
    let step_cookie = posted
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-gatehouse_mfa="))
        .expect("the second step's cookie")
        .to_string();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=300"] {
        assert!(step_cookie.split("; ").any(|a| a == attribute), "{attribute} in {step_cookie}");
    }
    let pair = step_cookie.split(';').next().unwrap().to_string();
    let page = server.request(Method::GET, "/login-code?next=%2Fsessions", |r| r).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("one-time-code"));

    let code_form = |code: String| {
        let pair = pair.clone();
        let server = &server;
        async move {
            server
                .request(Method::POST, "/login-code", |r| {
                    r.form(&[("code", code.as_str()), ("next", "/sessions")])
                        .header("origin", server.url(""))
                        .header(COOKIE, pair)
                })
                .await
        }
    };
    let wrong = code_form("000000".to_string()).await;
    assert_eq!(wrong.status(), StatusCode::SEE_OTHER);
    assert_eq!(wrong.headers()["location"], "/login-code?error=invalid_code&next=%2Fsessions");
    let right = code_form(code_now(&server, &alice.secret)).await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()["location"], "/sessions");
    assert!(refresh_set_cookie(right.headers()).is_some(), "signed in");
    server.finish().await;
}

both_backends!(
    setting_up_an_app_then_signing_in_with_its_code,
    a_code_is_accepted_once_with_a_step_of_skew,
    recovery_codes_work_once_and_new_ones_void_the_old,
    a_second_step_is_used_once_within_five_minutes,
    wrong_codes_count_against_the_login_limits,
    sensitive_changes_need_a_recent_sign_in,
    an_app_code_re_authenticates_and_step_up_guards_the_second_factor,
    the_policy_sends_users_without_a_second_factor_to_set_one_up,
    without_javascript_the_second_step_has_a_page_of_its_own,
);
