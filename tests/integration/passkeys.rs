//! Passkeys (issue 28) over HTTP, with a software authenticator (1Password's
//! `passkey` crate) playing the browser and its platform authenticator.

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::{webauthn as pkw, Passkey as SoftCredential};
use std::time::Instant;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_passkey_is_added_and_signs_in_without_a_username,
    a_ceremony_is_used_once_and_finishes_on_any_instance,
    foreign_and_removed_credentials_are_refused_alike,
    passkeys_are_listed_renamed_and_removed,
    an_account_is_made_with_a_passkey_and_no_password,
    signing_up_with_a_passkey_checks_what_registration_checks_and_leaves_nothing_half_done,
    a_passkey_only_account_sets_its_first_password_without_a_current_one,
    passkey_changes_are_live_events,
    an_unknown_credential_is_refused_like_a_known_one_in_answer_and_time,
    a_cloned_authenticator_whose_counter_goes_back_is_refused_and_audited,
    a_synced_passkey_keeps_signing_in,
    a_passkey_confirms_it_is_the_user_before_a_sensitive_change,
);

/// The origin the authenticator says it runs on: the development relying
/// party is `localhost` on any port.
const ORIGIN: &str = "http://localhost:3000";

struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = SoftCredential;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, SoftCredential>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck { presence, verification })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A device with one discoverable credential at most.
type Device = Client<Option<SoftCredential>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

/// A synced passkey provider: backup eligible and backed up, no signature
/// counter (the `passkey` crate's defaults).
fn device() -> Device {
    device_holding(None, false)
}

/// A device holding `credential`, counting signatures (a hardware key) if `counter`.
fn device_holding(credential: Option<SoftCredential>, counter: bool) -> Device {
    let mut authenticator = Authenticator::new(Aaguid::new_empty(), credential, AlwaysVerified, RustCryptoBackend);
    authenticator.set_make_credentials_with_signature_counter(counter);
    Client::new(authenticator).allows_insecure_localhost(true)
}

fn origin() -> webauthn_rs::prelude::Url {
    webauthn_rs::prelude::Url::parse(ORIGIN).unwrap()
}

fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(value: &A) -> B {
    serde_json::from_value(serde_json::to_value(value).unwrap()).unwrap()
}

/// Adds a passkey on `device` to the account of `session`; the answer.
async fn add_passkey(server: &Api, session: &Session, device: &mut Device, name: Option<&str>) -> reqwest::Response {
    let start = server.post_bearer("/auth/passkeys/register/start", &session.access, None).await;
    assert_eq!(start.status(), StatusCode::OK);
    let options: Value = start.json().await.unwrap();
    assert_eq!(options["publicKey"]["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["publicKey"]["authenticatorSelection"]["userVerification"], "required");
    let created = device
        .register(&origin(), convert::<_, pkw::CredentialCreationOptions>(&options), DefaultClientData)
        .await
        .expect("the authenticator makes a credential");
    let mut body = json!({ "credential": serde_json::to_value(&created).unwrap() });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    server.post_bearer("/auth/passkeys/register/finish", &session.access, Some(body)).await
}

/// A ceremony begun on `server`: its id and the options.
async fn begin_login(server: &Api) -> (String, Value) {
    let start = server.post_json("/auth/passkeys/login/start", json!({})).await;
    assert_eq!(start.status(), StatusCode::OK);
    let body: Value = start.json().await.unwrap();
    (body["ceremony"].as_str().unwrap().to_string(), body["options"].clone())
}

async fn assert_with(device: &mut Device, options: &Value) -> Value {
    let answer = device
        .authenticate(&origin(), convert::<_, pkw::CredentialRequestOptions>(options), DefaultClientData)
        .await
        .expect("the authenticator answers");
    serde_json::to_value(&answer).unwrap()
}

async fn finish_login(server: &Api, ceremony: &str, credential: &Value) -> reqwest::Response {
    server
        .post_json("/auth/passkeys/login/finish", json!({ "ceremony": ceremony, "credential": credential }))
        .await
}

/// `gatehouse_logins_total` of passkey sign-ins with `outcome`, in this test
/// process (other tests' sign-ins count too, so callers compare with `>=`).
fn passkey_logins(metrics: &metrics_exporter_prometheus::PrometheusHandle, outcome: &str) -> f64 {
    crate::operations::sample(
        &metrics.render(),
        "gatehouse_logins_total",
        &[("method", "passkey"), ("outcome", outcome)],
    )
}

async fn a_passkey_is_added_and_signs_in_without_a_username(backend: Backend) {
    let metrics = gatehouse::metrics::install().unwrap();
    let signed_in_before = passkey_logins(&metrics, "ok");
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let mut laptop = device();
    let added = add_passkey(&server, &alice, &mut laptop, Some("Laptop")).await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["name"], "Laptop");

    server.clock.advance(60);
    let (ceremony, options) = begin_login(&server).await;
    assert_eq!(options["mediation"], "conditional", "the same options serve autofill");
    assert!(options["publicKey"]["allowCredentials"].as_array().is_none_or(Vec::is_empty), "no username needed");
    let credential = assert_with(&mut laptop, &options).await;
    let response = finish_login(&server, &ceremony, &credential).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = Session::from_response(response).await;
    let token = claims(&session.access);
    assert_eq!(token["amr"], json!(["webauthn"]));
    assert_eq!(token["auth_time"], token["iat"]);
    assert_eq!(token["preferred_username"], "alice");
    assert_ne!(session.sid(), alice.sid(), "a session of its own");
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK, "a refresh cookie like any login's");

    let listed: Value = server.get_bearer("/auth/passkeys", &session.access).await.json().await.unwrap();
    assert_eq!(listed[0]["last_used_at"], token["iat"]);
    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"passkey_added") && kinds.contains(&"passkey_login"), "{kinds:?}");
    assert!(passkey_logins(&metrics, "ok") >= signed_in_before + 1.0, "counted in the metrics");
    server.finish().await;
}

async fn a_ceremony_is_used_once_and_finishes_on_any_instance(backend: Backend) {
    let server = TestServer::start(backend).await;
    let other = server.sibling(|_| {}).await;
    let alice = server.register("alice").await;
    let mut laptop = device();
    assert_eq!(add_passkey(&server, &alice, &mut laptop, None).await.status(), StatusCode::CREATED);

    // Begun on one instance, finished on the other.
    let (ceremony, options) = begin_login(&server).await;
    let credential = assert_with(&mut laptop, &options).await;
    assert_eq!(finish_login(&other, &ceremony, &credential).await.status(), StatusCode::OK);
    // The same answer again: the ceremony is gone.
    let replay = finish_login(&server, &ceremony, &credential).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(replay).await, "invalid_credentials");
    // An old answer for a new ceremony: its challenge is not this one's.
    let (fresh, _) = begin_login(&other).await;
    assert_eq!(finish_login(&server, &fresh, &credential).await.status(), StatusCode::UNAUTHORIZED);
    // A ceremony past its five minutes.
    let (late, options) = begin_login(&server).await;
    let credential = assert_with(&mut laptop, &options).await;
    server.clock.advance(301);
    assert_eq!(finish_login(&server, &late, &credential).await.status(), StatusCode::UNAUTHORIZED);
    other.stop();
    server.finish().await;
}

async fn foreign_and_removed_credentials_are_refused_alike(backend: Backend) {
    let metrics = gatehouse::metrics::install().unwrap();
    let refused_before = passkey_logins(&metrics, "invalid_credentials");
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let mut laptop = device();
    let added: Value = add_passkey(&server, &alice, &mut laptop, None).await.json().await.unwrap();

    // A credential this server never registered (made for another account elsewhere).
    let elsewhere = TestServer::start(backend).await;
    let mallory = elsewhere.register("mallory").await;
    let mut stranger = device();
    assert_eq!(add_passkey(&elsewhere, &mallory, &mut stranger, None).await.status(), StatusCode::CREATED);
    let (ceremony, options) = begin_login(&server).await;
    let foreign = assert_with(&mut stranger, &options).await;
    let refused = finish_login(&server, &ceremony, &foreign).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let foreign_body = refused.text().await.unwrap();

    // A known credential whose signature does not hold.
    let (ceremony, options) = begin_login(&server).await;
    let mut tampered = assert_with(&mut laptop, &options).await;
    tampered["response"]["signature"] = json!("AAAA");
    let refused = finish_login(&server, &ceremony, &tampered).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.text().await.unwrap(), foreign_body, "the same body whether or not the credential is known");

    // Removed: refused like a stranger's.
    let removed = server
        .request(Method::DELETE, &format!("/auth/passkeys/{}", added["id"].as_str().unwrap()), |r| {
            r.bearer_auth(&alice.access).header("origin", server.url(""))
        })
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let (ceremony, options) = begin_login(&server).await;
    let credential = assert_with(&mut laptop, &options).await;
    assert_eq!(finish_login(&server, &ceremony, &credential).await.status(), StatusCode::UNAUTHORIZED);
    assert!(
        passkey_logins(&metrics, "invalid_credentials") >= refused_before + 3.0,
        "each refusal counted"
    );

    // Garbage bodies are answered in the error format, never 500.
    for body in [json!({}), json!({"ceremony": "x", "credential": {}}), json!({"ceremony": ceremony, "credential": "AAAA"})] {
        let status = server.post_json("/auth/passkeys/login/finish", body.clone()).await.status();
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{body}: {status}");
    }
    elsewhere.finish().await;
    server.finish().await;
}

async fn passkeys_are_listed_renamed_and_removed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let mut laptop = device();
    let added: Value = add_passkey(&server, &alice, &mut laptop, None).await.json().await.unwrap();
    assert!(added["name"].as_str().unwrap().starts_with("Passkey added "), "{added}");
    let id = added["id"].as_str().unwrap().to_string();
    // An answer given once does not add a passkey twice: a new ceremony has a
    // new challenge. Nor is a registration nobody began finished.
    let start = server.post_bearer("/auth/passkeys/register/start", &alice.access, None).await;
    let options: Value = start.json().await.unwrap();
    assert!(
        options["publicKey"]["excludeCredentials"][0]["id"].as_str().is_some_and(|id| !id.is_empty()),
        "the browser is told which credential the account has already"
    );
    let mut phone = device();
    let created = phone
        .register(&origin(), convert::<_, pkw::CredentialCreationOptions>(&options), DefaultClientData)
        .await
        .unwrap();
    let finish = |access: String, credential: Value| {
        let server = &server;
        async move {
            server
                .post_bearer("/auth/passkeys/register/finish", &access, Some(json!({ "credential": credential })))
                .await
        }
    };
    let created = serde_json::to_value(&created).unwrap();
    assert_eq!(finish(alice.access.clone(), created.clone()).await.status(), StatusCode::CREATED);
    let replayed = finish(alice.access.clone(), created.clone()).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(replayed).await, "invalid_passkey");
    assert_eq!(finish(bob.access.clone(), created).await.status(), StatusCode::BAD_REQUEST, "nothing begun for Bob");
    let listed: Value = server.get_bearer("/auth/passkeys", &alice.access).await.json().await.unwrap();
    let second = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .find(|other| *other != id)
        .unwrap()
        .to_string();
    let removed = server
        .request(Method::DELETE, &format!("/auth/passkeys/{second}"), |r| {
            r.bearer_auth(&alice.access).header("origin", server.url(""))
        })
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);

    let patch = |session: &Session, id: &str, name: Value| {
        let (server, access, id) = (&server, session.access.clone(), id.to_string());
        async move {
            server
                .request(Method::PATCH, &format!("/auth/passkeys/{id}"), |r| {
                    r.bearer_auth(access).header("origin", server.url("")).json(&json!({ "name": name }))
                })
                .await
        }
    };
    let renamed = patch(&alice, &id, json!("  Work laptop ")).await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(renamed.json::<Value>().await.unwrap()["name"], "Work laptop");
    assert_eq!(patch(&alice, &id, json!("   ")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(patch(&bob, &id, json!("Mine now")).await.status(), StatusCode::NOT_FOUND, "not Bob's");

    let listed: Value = server.get_bearer("/auth/passkeys", &alice.access).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "Work laptop");
    let bobs: Value = server.get_bearer("/auth/passkeys", &bob.access).await.json().await.unwrap();
    assert_eq!(bobs, json!([]));

    let delete = |session: &Session| {
        let (server, access, id) = (&server, session.access.clone(), id.clone());
        async move {
            server
                .request(Method::DELETE, &format!("/auth/passkeys/{id}"), |r| {
                    r.bearer_auth(access).header("origin", server.url(""))
                })
                .await
                .status()
        }
    };
    assert_eq!(delete(&bob).await, StatusCode::NOT_FOUND);
    assert_eq!(delete(&alice).await, StatusCode::NO_CONTENT, "Alice keeps her password");
    assert_eq!(delete(&alice).await, StatusCode::NOT_FOUND);
    let unauthenticated = server.request(Method::GET, "/auth/passkeys", |r| r).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    server.finish().await;
}

/// Begins signing up with a passkey as `username`, without an access token.
async fn begin_sign_up(server: &Api, body: Value) -> reqwest::Response {
    server.post_json("/auth/passkeys/register/start", body).await
}

/// The browser's part of a sign-up begun with `started`: the credential made.
async fn create_with(device: &mut Device, started: &Value) -> Value {
    let options = &started["options"];
    assert_eq!(options["publicKey"]["authenticatorSelection"]["residentKey"], "required");
    let created = device
        .register(&origin(), convert::<_, pkw::CredentialCreationOptions>(options), DefaultClientData)
        .await
        .expect("the authenticator makes a credential");
    serde_json::to_value(&created).unwrap()
}

async fn finish_sign_up(server: &Api, ceremony: &str, credential: &Value) -> reqwest::Response {
    server
        .post_json("/auth/passkeys/register/finish", json!({ "ceremony": ceremony, "credential": credential, "name": "Phone" }))
        .await
}

/// Signs up as `username` with a passkey on `device`: the answer of the finish.
async fn sign_up(server: &Api, device: &mut Device, username: &str) -> reqwest::Response {
    let started = begin_sign_up(server, json!({ "username": username })).await;
    assert_eq!(started.status(), StatusCode::OK, "sign-up of {username} begun");
    let started: Value = started.json().await.unwrap();
    let credential = create_with(device, &started).await;
    finish_sign_up(server, started["ceremony"].as_str().unwrap(), &credential).await
}

async fn sign_in(server: &Api, device: &mut Device) -> reqwest::Response {
    let (ceremony, options) = begin_login(server).await;
    let credential = assert_with(device, &options).await;
    finish_login(server, &ceremony, &credential).await
}

async fn delete_passkey(server: &Api, session: &Session, id: &str) -> reqwest::Response {
    server
        .request(Method::DELETE, &format!("/auth/passkeys/{id}"), |r| {
            r.bearer_auth(&session.access).header("origin", server.url(""))
        })
        .await
}

async fn an_account_is_made_with_a_passkey_and_no_password(backend: Backend) {
    let server = TestServer::start(backend).await;
    let other = server.sibling(|_| {}).await;
    let mut phone = device();
    let started = begin_sign_up(&server, json!({ "username": "Carol", "email": "carol@example.test" })).await;
    assert_eq!(started.status(), StatusCode::OK);
    assert_eq!(started.headers()["cache-control"], "no-store");
    let started: Value = started.json().await.unwrap();
    let ceremony = started["ceremony"].as_str().unwrap().to_string();
    assert_eq!(started["options"]["publicKey"]["user"]["name"], "Carol");
    assert!(server.auth.store().user_by_name_key("carol").await.unwrap().is_none(), "no account before the ceremony ends");

    // Begun on one instance, finished on the other.
    let credential = create_with(&mut phone, &started).await;
    let finished = finish_sign_up(&other, &ceremony, &credential).await;
    assert_eq!(finished.status(), StatusCode::CREATED);
    let carol = Session::from_response(finished).await;
    assert_eq!(carol.body["token_type"], "Bearer");
    assert!(cookie_attributes(&carol.set_cookie).iter().any(|a| a == "HttpOnly"), "{}", carol.set_cookie);
    let token = claims(&carol.access);
    assert_eq!(token["amr"], json!(["webauthn"]));
    assert_eq!(token["preferred_username"], "Carol");
    assert_eq!(token["email"], "carol@example.test", "the address waits for verification, as at registration");
    assert_eq!(token["email_verified"], false);
    let me: Value = server.get_bearer("/api/me", &carol.access).await.json().await.unwrap();
    assert_eq!(me["username"], "Carol");
    let listed: Value = server.get_bearer("/auth/passkeys", &carol.access).await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "Phone");
    assert_eq!(server.refresh(&carol.cookie).await.status(), StatusCode::OK);
    // The same answer again: the ceremony is gone.
    let replayed = finish_sign_up(&server, &ceremony, &credential).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(replayed).await, "invalid_passkey");

    // No password opens the account, and the answer is a wrong password's.
    let unknown = server.login("nobody", PASSWORD).await;
    let (status, unknown_body) = (unknown.status(), unknown.text().await.unwrap());
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for password in ["", " ", PASSWORD] {
        let refused = server.login("carol", password).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{password:?}");
        assert_eq!(refused.text().await.unwrap(), unknown_body);
    }
    // Nor does the form without JavaScript.
    let form = server
        .request(Method::POST, "/login", |r| {
            r.header("origin", server.url("")).form(&[("username", "carol"), ("password", ""), ("next", "/")])
        })
        .await;
    assert_eq!(form.status(), StatusCode::SEE_OTHER);
    assert!(form.headers()["location"].to_str().unwrap().contains("error=invalid_credentials"));

    // The passkey signs in; it is the account's only way to, so it stays.
    let signed_in = sign_in(&server, &mut phone).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let again = Session::from_response(signed_in).await;
    assert_eq!(claims(&again.access)["sub"], token["sub"]);
    let id = listed[0]["id"].as_str().unwrap();
    let refused = delete_passkey(&server, &again, id).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(refused).await, "last_sign_in_method");
    assert_eq!(sign_in(&server, &mut phone).await.status(), StatusCode::OK, "still there");

    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["register", "passkey_added", "passkey_login", "email_change_asked"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    other.stop();
    server.finish().await;
}

async fn signing_up_with_a_passkey_checks_what_registration_checks_and_leaves_nothing_half_done(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let start = |body: Value| begin_sign_up(&server, body);
    let refused = start(json!({ "username": "ALICE" })).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(refused).await, "username_taken");
    let refused = start(json!({ "username": "a" })).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "invalid_username");
    let refused = start(json!({ "username": "dave", "email": "no at sign" })).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "invalid_email");
    for body in [json!({}), json!({ "username": "dave", "password": PASSWORD }), json!("dave")] {
        let status = start(body.clone()).await.status();
        assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY, "{body}: {status}");
    }
    // Neither a token nor a body: refused as unauthenticated, as before sign-ups.
    let bare = server.request(Method::POST, "/auth/passkeys/register/start", |r| r.header("origin", server.url(""))).await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(bare).await, "missing_token");
    let mut stray = device();
    let stray_credential = {
        let started: Value = start(json!({ "username": "stray" })).await.json().await.unwrap();
        create_with(&mut stray, &started).await
    };
    let no_ceremony = server
        .post_json("/auth/passkeys/register/finish", json!({ "credential": stray_credential }))
        .await;
    assert_eq!(no_ceremony.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(no_ceremony).await, "missing_token");
    // Another's ceremony of adding a passkey is not a sign-up's.
    let begun = server.post_bearer("/auth/passkeys/register/start", &alice.access, None).await;
    let options: Value = begun.json().await.unwrap();
    let mut theirs = device();
    let created = theirs
        .register(&origin(), convert::<_, pkw::CredentialCreationOptions>(&options), DefaultClientData)
        .await
        .unwrap();
    let hijack = finish_sign_up(&server, &format!("register:{}", alice.sid()), &serde_json::to_value(&created).unwrap()).await;
    assert_eq!(hijack.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(hijack).await, "invalid_passkey");

    // Abandoned: nothing is left, and the name is free for anyone.
    let started: Value = start(json!({ "username": "dave" })).await.json().await.unwrap();
    let mut daves = device();
    let late_credential = create_with(&mut daves, &started).await;
    assert!(server.auth.store().user_by_name_key("dave").await.unwrap().is_none());
    let second: Value = start(json!({ "username": "Dave" })).await.json().await.unwrap();
    server.register("dave").await;
    // Finishing now: the name was taken meanwhile.
    let taken = finish_sign_up(&server, started["ceremony"].as_str().unwrap(), &late_credential).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(taken).await, "username_taken");
    assert!(server.auth.store().passkey_by_credential(late_credential["id"].as_str().unwrap()).await.unwrap().is_none());
    // An expired one.
    let mut late = device();
    let credential = create_with(&mut late, &second).await;
    let fresh: Value = start(json!({ "username": "erin" })).await.json().await.unwrap();
    let mut erins = device();
    let erins_credential = create_with(&mut erins, &fresh).await;
    server.clock.advance(301);
    let expired = finish_sign_up(&server, second["ceremony"].as_str().unwrap(), &credential).await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    let expired = finish_sign_up(&server, fresh["ceremony"].as_str().unwrap(), &erins_credential).await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    assert!(server.auth.store().user_by_name_key("erin").await.unwrap().is_none());
    // The dialog answered for another ceremony: its challenge is not this one's.
    let mismatched: Value = start(json!({ "username": "frank" })).await.json().await.unwrap();
    let refused = finish_sign_up(&server, mismatched["ceremony"].as_str().unwrap(), &stray_credential).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "invalid_passkey");

    // Registration's rate limit: each sign-up begun spends one.
    let limited = TestServer::start_with(backend, |s| {
        s.registrations_per_ip = gatehouse::config::RateLimit { count: 2, per_seconds: 3600 };
    })
    .await;
    let statuses = [
        begin_sign_up(&limited, json!({ "username": "gina" })).await.status(),
        limited
            .post_json("/auth/register", json!({ "username": "hank", "password": PASSWORD }))
            .await
            .status(),
        begin_sign_up(&limited, json!({ "username": "ivan" })).await.status(),
    ];
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS]);
    limited.finish().await;
    server.finish().await;
}

async fn a_passkey_only_account_sets_its_first_password_without_a_current_one(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut phone = device();
    let carol = Session::from_response(sign_up(&server, &mut phone, "carol").await).await;
    let other = Session::from_response(sign_in(&server, &mut phone).await).await;
    let change = |body: Value| server.post_bearer("/auth/password", &carol.access, Some(body));
    let weak = change(json!({ "new_password": "carol" })).await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(weak).await, "weak_password");
    // Whatever comes as the current password is not looked at: there is none.
    assert_eq!(change(json!({ "current_password": "", "new_password": PASSWORD })).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.login("carol", PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(server.refresh(&other.cookie).await.status(), StatusCode::UNAUTHORIZED, "the other sessions end, as at any change");
    // Now there is one, and changing it needs it.
    let again = change(json!({ "new_password": "another horse battery staple 43" })).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(again).await, "wrong_password");
    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "password_changed" && e.detail.as_deref().is_some_and(|d| d.starts_with("first password set"))),
        "{events:?}"
    );
    // With a password, the passkey is no longer the last way in.
    let listed: Value = server.get_bearer("/auth/passkeys", &carol.access).await.json().await.unwrap();
    let removed = delete_passkey(&server, &carol, listed[0]["id"].as_str().unwrap()).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    server.finish().await;
}

async fn passkey_changes_are_live_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    let mut socket = crate::live::connect(&server, Some(&alice.access)).await;
    assert_eq!(crate::live::next_json(&mut socket).await["type"], "ready");
    let mut laptop = device();
    let added: Value = add_passkey(&server, &alice, &mut laptop, Some("Laptop")).await.json().await.unwrap();
    let id = added["id"].as_str().unwrap();
    let event = crate::live::next_json(&mut socket).await;
    assert_eq!(
        (&event["type"], &event["change"], &event["passkey_id"], &event["name"]),
        (&json!("passkey"), &json!("added"), &json!(id), &json!("Laptop"))
    );
    assert!(event["at"].is_i64());

    // A sign-in with it: the new session, then the passkey's use.
    assert_eq!(sign_in(&server, &mut laptop).await.status(), StatusCode::OK);
    let mut seen = [crate::live::next_json(&mut socket).await, crate::live::next_json(&mut socket).await];
    seen.sort_by_key(|e| e["type"].as_str().unwrap().to_string());
    assert_eq!(seen[0]["type"], "passkey");
    assert_eq!(seen[0]["change"], "used");
    assert_eq!(seen[1]["type"], "session_created");

    let renamed = server
        .request(Method::PATCH, &format!("/auth/passkeys/{id}"), |r| {
            r.bearer_auth(&alice.access).header("origin", server.url("")).json(&json!({ "name": "Work" }))
        })
        .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    let event = crate::live::next_json(&mut socket).await;
    assert_eq!((&event["change"], &event["name"]), (&json!("renamed"), &json!("Work")));
    assert_eq!(delete_passkey(&server, &alice, id).await.status(), StatusCode::NO_CONTENT);
    let event = crate::live::next_json(&mut socket).await;
    assert_eq!((&event["change"], &event["name"]), (&json!("removed"), &json!("Work")));

    // Someone else's passkeys are not this socket's business.
    let bob = server.register("bob").await;
    assert_eq!(add_passkey(&server, &bob, &mut device(), None).await.status(), StatusCode::CREATED);
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), crate::live::next_json(&mut socket)).await;
    assert!(quiet.is_err(), "heard {quiet:?}");
    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["passkey_added", "passkey_login", "passkey_renamed", "passkey_removed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    server.finish().await;
}

async fn an_unknown_credential_is_refused_like_a_known_one_in_answer_and_time(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.passkey_ceremonies_per_ip = gatehouse::config::RateLimit { count: 1000, per_seconds: 60 };
    })
    .await;
    let alice = server.register("alice").await;
    let mut laptop = device();
    assert_eq!(add_passkey(&server, &alice, &mut laptop, None).await.status(), StatusCode::CREATED);
    let (_, options) = begin_login(&server).await;
    let alices = assert_with(&mut laptop, &options).await;
    // Mallory's authenticator, registered elsewhere, signs every attempt.
    // Named as itself its credential is unknown here; named as Alice's (her
    // credential id and user handle) it is known, and its signature fails.
    let elsewhere = TestServer::start(backend).await;
    let stranger = elsewhere.register("mallory").await;
    let mut mallorys = device();
    assert_eq!(add_passkey(&elsewhere, &stranger, &mut mallorys, None).await.status(), StatusCode::CREATED);
    elsewhere.finish().await;
    let mut attempt = async |known: bool| {
        let (ceremony, options) = begin_login(&server).await;
        let mut credential = assert_with(&mut mallorys, &options).await;
        if known {
            credential["id"] = alices["id"].clone();
            credential["rawId"] = alices["rawId"].clone();
            credential["response"]["userHandle"] = alices["response"]["userHandle"].clone();
        }
        let started = Instant::now();
        let response = finish_login(&server, &ceremony, &credential).await;
        let took = started.elapsed();
        let status = response.status();
        let mut headers = response.headers().clone();
        // Each answer has its own time and request id.
        headers.remove("date");
        assert!(headers.remove("x-request-id").is_some());
        (status, headers, response.bytes().await.unwrap(), took)
    };
    let known = attempt(true).await;
    let unknown = attempt(false).await;
    assert_eq!(known.0, StatusCode::UNAUTHORIZED);
    assert_eq!((known.0, &known.1, &known.2), (unknown.0, &unknown.1, &unknown.2), "same status, headers and body");
    let body: Value = serde_json::from_slice(&known.2).unwrap();
    assert_eq!(body["error"], "invalid_credentials");

    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..25 {
        known_times.push(attempt(true).await.3);
        unknown_times.push(attempt(false).await.3);
    }
    known_times.sort();
    unknown_times.sort();
    let (known_median, unknown_median) = (known_times[12], unknown_times[12]);
    // Without the stand-in check, an unknown credential answered in about
    // half a known one's time here: far outside this.
    let gap = known_median.abs_diff(unknown_median);
    assert!(gap < known_median.min(unknown_median) / 4, "known {known_median:?}, unknown {unknown_median:?}");
    server.finish().await;
}

async fn a_cloned_authenticator_whose_counter_goes_back_is_refused_and_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    // A hardware key: it counts its signatures.
    let mut key = device_holding(None, true);
    assert_eq!(add_passkey(&server, &alice, &mut key, Some("Key")).await.status(), StatusCode::CREATED);
    let mut clone = device_holding(key.authenticator().store().clone(), true);

    assert_eq!(sign_in(&server, &mut key).await.status(), StatusCode::OK, "counter 1");
    assert_eq!(sign_in(&server, &mut key).await.status(), StatusCode::OK, "counter 2");
    // The copy's counter says 1, then 2: behind the 2 the server has seen.
    for _ in 0..2 {
        let (ceremony, options) = begin_login(&server).await;
        let credential = assert_with(&mut clone, &options).await;
        let refused = finish_login(&server, &ceremony, &credential).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let replayed = finish_login(&server, &ceremony, &credential).await;
        assert_eq!(refused.text().await.unwrap(), replayed.text().await.unwrap(), "refused like any failed assertion");
    }
    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    let cloned: Vec<_> = events.iter().filter(|e| e.kind == "passkey_possibly_cloned").collect();
    assert_eq!(cloned.len(), 2, "{events:?}");
    assert_eq!(cloned[0].username.as_deref(), Some("alice"));
    assert!(cloned[0].detail.as_deref().is_some_and(|d| d.contains("Key")), "{:?}", cloned[0].detail);
    // The key itself goes on (counter 3), and its refused copy made no session.
    assert_eq!(sign_in(&server, &mut key).await.status(), StatusCode::OK);
    let sessions: Value = server.get_bearer("/auth/sessions", &alice.access).await.json().await.unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 4, "registration and three sign-ins of the key");
    server.finish().await;
}

async fn a_synced_passkey_keeps_signing_in(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice").await;
    // Backup eligible and backed up, counter always 0: on every device the
    // provider syncs it to, so a copy signing in is no clone.
    let mut phone = device();
    assert_eq!(add_passkey(&server, &alice, &mut phone, None).await.status(), StatusCode::CREATED);
    let mut tablet = device_holding(phone.authenticator().store().clone(), false);
    for _ in 0..2 {
        assert_eq!(sign_in(&server, &mut phone).await.status(), StatusCode::OK);
        assert_eq!(sign_in(&server, &mut tablet).await.status(), StatusCode::OK);
    }
    let stored = server.auth.store().passkeys_of(claims(&alice.access)["sub"].as_str().unwrap()).await.unwrap();
    let credential: Value = serde_json::from_str(&stored[0].credential).unwrap();
    assert_eq!(credential["cred"]["counter"], 0);
    assert_eq!(credential["cred"]["backup_eligible"], true);
    assert_eq!(credential["cred"]["backup_state"], true);
    let events = server.auth.store().recent_audit(None, 50).await.unwrap();
    assert!(events.iter().all(|e| e.kind != "passkey_possibly_cloned"));
    server.finish().await;
}

/// Re-authenticates `session` with an answer of `device` to a sign-in ceremony.
async fn reauth_with(server: &Api, session: &Session, device: &mut Device) -> reqwest::Response {
    let (ceremony, options) = begin_login(server).await;
    let credential = assert_with(device, &options).await;
    server
        .post_bearer("/auth/reauth", &session.access, Some(json!({ "ceremony": ceremony, "credential": credential })))
        .await
}

async fn a_passkey_confirms_it_is_the_user_before_a_sensitive_change(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut key = device();
    let signed_up = sign_up(&server, &mut key, "nopass").await;
    assert_eq!(signed_up.status(), StatusCode::CREATED);
    let nopass = Session::from_response(signed_up).await;
    let bob = server.register("bob").await;
    let mut bobs_key = device();
    assert_eq!(add_passkey(&server, &bob, &mut bobs_key, None).await.status(), StatusCode::CREATED);

    server.clock.advance(server.settings.reauth_window + 1);
    let mut second = device();
    let stale = server.post_bearer("/auth/passkeys/register/start", &nopass.access, None).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauth_required");
    // A password-less account cannot confirm with a password.
    let password = server.post_bearer("/auth/reauth", &nopass.access, Some(json!({"password": PASSWORD}))).await;
    assert_eq!(password.status(), StatusCode::UNAUTHORIZED);
    // Another user's passkey proves nothing about this one.
    let foreign = reauth_with(&server, &nopass, &mut bobs_key).await;
    assert_eq!(foreign.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(foreign).await, "invalid_credentials");

    let confirmed = reauth_with(&server, &nopass, &mut key).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let fresh: Value = confirmed.json().await.unwrap();
    let fresh = Session {
        access: fresh["access_token"].as_str().unwrap().to_string(),
        ..nopass.clone()
    };
    assert_eq!(claims(&fresh.access)["amr"], json!(["webauthn"]));
    assert_eq!(claims(&fresh.access)["auth_time"], json!(gatehouse::auth::clock::Clock::now(server.clock.as_ref())));
    assert_eq!(add_passkey(&server, &fresh, &mut second, Some("Second")).await.status(), StatusCode::CREATED);
    server.finish().await;
}
