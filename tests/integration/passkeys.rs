//! Passkeys (issue 28) over HTTP, with a software authenticator (1Password's
//! `passkey` crate) playing the browser and its platform authenticator.

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::{webauthn as pkw, Passkey as SoftCredential};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::support::*;

both_backends!(
    a_passkey_is_added_and_signs_in_without_a_username,
    a_ceremony_is_used_once_and_finishes_on_any_instance,
    foreign_and_removed_credentials_are_refused_alike,
    passkeys_are_listed_renamed_and_removed,
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

fn device() -> Device {
    Client::new(Authenticator::new(Aaguid::new_empty(), None, AlwaysVerified, RustCryptoBackend))
        .allows_insecure_localhost(true)
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

async fn a_passkey_is_added_and_signs_in_without_a_username(backend: Backend) {
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
