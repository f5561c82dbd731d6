//! Recovery and verification by mail (issue 27), against a real SMTP server
//! on loopback (`mailin-embedded`), reading the mails that arrived.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{CACHE_CONTROL, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::live::{closed_with, connect};
use crate::pages::get_page;
use crate::support::*;

both_backends!(
    a_forgotten_password_is_reset_by_mail_and_every_session_ends,
    mailed_links_work_once_only_while_fresh_and_only_the_newest,
    an_address_counts_once_verified_and_a_change_tells_the_old_one,
    asking_for_a_reset_tells_nothing_about_the_address,
    mail_waits_for_a_server_that_is_down_and_goes_out_once,
);

/// A mail as the SMTP server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Received {
    /// The token in the mail's link to `page`.
    pub fn token(&self, page: &str) -> String {
        let start = self.text.find(&format!("{page}?token=")).unwrap_or_else(|| panic!("no {page} link in {self:?}"));
        self.text[start..]
            .split_once("token=")
            .map(|(_, rest)| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect())
            .unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for Inbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> mailin_embedded::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let message = mail_parser::MessageParser::default().parse(&self.data).expect("a mail");
        self.received.lock().unwrap().push(Received {
            to: self.to.clone(),
            subject: message.subject().unwrap_or_default().to_string(),
            text: message.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            html: message.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        });
        mailin_embedded::response::OK
    }
}

/// A real SMTP server on a loopback port, for the life of the test process.
pub struct MailServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl MailServer {
    pub fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind SMTP"))
    }

    fn start_on(listener: TcpListener) -> Self {
        let addr = listener.local_addr().expect("SMTP address");
        let inbox = Inbox::default();
        let received = inbox.received.clone();
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(inbox);
            server.with_name("mail.test").with_tcp_listener(listener);
            let _ = server.serve();
        });
        Self { addr, received }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` mails have arrived (at most ten seconds).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count || Instant::now() > until {
                assert_eq!(received.len(), count, "mails: {received:#?}");
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest mail to `address` (waiting until `count` have arrived in all).
    pub async fn last_to(&self, address: &str, count: usize) -> Received {
        let received = self.wait_for(count).await;
        received
            .into_iter()
            .rev()
            .find(|mail| mail.to.iter().any(|to| to.eq_ignore_ascii_case(address)))
            .unwrap_or_else(|| panic!("no mail to {address}"))
    }
}

async fn server_with_mail(backend: Backend, mail: &MailServer) -> TestServer {
    let url = mail.url();
    TestServer::start_with(backend, |s| s.smtp_url = url).await
}

/// Registers `username` with `email` and verifies it through the mailed link;
/// the session, with a token that says so.
async fn with_verified_address(server: &TestServer, mail: &MailServer, username: &str, email: &str, mails_before: usize) -> Session {
    let response = server
        .post_json("/auth/register", json!({"username": username, "password": PASSWORD, "email": email}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let session = Session::from_response(response).await;
    assert_eq!(claims(&session.access)["email"], email);
    assert_eq!(claims(&session.access)["email_verified"], false);
    let letter = mail.last_to(email, mails_before + 1).await;
    // Links name the site's own URL (the public URL where one is set: see `cli::reset_link…`).
    assert!(letter.text.contains(&format!("{}/verify-email?token=", server.auth.site_url())), "{letter:?}");
    let verified = verify(server, &letter.token("/verify-email")).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    let refreshed = server.refresh(&session.cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    Session::from_response(refreshed).await
}

async fn verify(server: &TestServer, token: &str) -> reqwest::Response {
    server.post_json("/auth/email/verify", json!({ "token": token })).await
}

async fn ask_for_reset(server: &TestServer, email: &str) -> reqwest::Response {
    server.post_json("/auth/password-reset", json!({ "email": email })).await
}

async fn reset(server: &TestServer, token: &str, password: &str) -> reqwest::Response {
    server
        .post_json("/auth/password-reset/confirm", json!({"token": token, "new_password": password}))
        .await
}

const NEW_PASSWORD: &str = "saffron-quarry-lantern-58";

/// What a mail scanner does: fetch the link, and again.
async fn scan(server: &TestServer, page: &str, token: &str) {
    for _ in 0..2 {
        let page = get_page(server, &format!("{page}?token={token}"), None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.unwrap();
        assert!(body.contains(token), "the page offers the link's token to the form");
    }
}

async fn a_forgotten_password_is_reset_by_mail_and_every_session_ends(backend: Backend) {
    let mail = MailServer::start();
    let server = server_with_mail(backend, &mail).await;
    let ada = with_verified_address(&server, &mail, "ada", "Ada@Example.test", 0).await;
    let me: Value = server.get_bearer("/api/me", &ada.access).await.json().await.unwrap();
    assert_eq!((me["email"].as_str(), me["email_verified"].as_bool()), (Some("Ada@Example.test"), Some(true)));
    let phone = server.login_ok("ada").await;
    let mut socket = connect(&server, Some(&phone.access)).await;

    // Any case of the address will do.
    let asked = ask_for_reset(&server, "  ada@EXAMPLE.test ").await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let letter = mail.last_to("Ada@Example.test", 2).await;
    assert_eq!(letter.subject, "Reset your Gatehouse password");
    assert!(letter.text.contains("If it was not you") && letter.text.contains("UTC"), "{}", letter.text);
    assert!(letter.html.contains(&format!("<a href=\"{}/reset-password?token=", server.auth.site_url())), "{}", letter.html);
    let token = letter.token("/reset-password");
    scan(&server, "/reset-password", &token).await;

    let weak = reset(&server, &token, "password").await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(weak).await, "weak_password");
    let done = reset(&server, &token, NEW_PASSWORD).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT, "a weak password left the token usable");

    for session in [&ada, &phone] {
        assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::UNAUTHORIZED);
    }
    let (code, _) = closed_with(&mut socket, Duration::from_secs(5)).await;
    assert!(code == 4001 || code == 1008, "the socket closed with {code}");
    assert_eq!(server.login("ada", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.login("ada", NEW_PASSWORD).await.status(), StatusCode::OK);
    let again = reset(&server, &token, "another-fine-password-77").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(again).await, "invalid_token");

    let events = server.auth.store().recent_audit(None, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["email_change_asked", "email_verified", "password_reset_asked", "password_reset"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    server.finish().await;
}

async fn mailed_links_work_once_only_while_fresh_and_only_the_newest(backend: Backend) {
    let mail = MailServer::start();
    let server = server_with_mail(backend, &mail).await;
    let ada = with_verified_address(&server, &mail, "ada", "ada@example.test", 0).await;

    // A newer link voids the older one.
    assert_eq!(ask_for_reset(&server, "ada@example.test").await.status(), StatusCode::ACCEPTED);
    let first = mail.last_to("ada@example.test", 2).await.token("/reset-password");
    assert_eq!(ask_for_reset(&server, "ada@example.test").await.status(), StatusCode::ACCEPTED);
    let second = mail.last_to("ada@example.test", 3).await.token("/reset-password");
    assert_ne!(first, second);
    assert_eq!(error_code(reset(&server, &first, NEW_PASSWORD).await).await, "invalid_token");

    // A password change voids it too.
    let change = server
        .post_bearer(
            "/auth/password",
            &ada.access,
            Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(change.status(), StatusCode::NO_CONTENT);
    assert_eq!(error_code(reset(&server, &second, "yet-another-password-93").await).await, "invalid_token");

    // Past its 30 minutes a link is refused.
    assert_eq!(ask_for_reset(&server, "ada@example.test").await.status(), StatusCode::ACCEPTED);
    let third = mail.last_to("ada@example.test", 4).await.token("/reset-password");
    server.clock.advance(30 * 60);
    assert_eq!(error_code(reset(&server, &third, "yet-another-password-93").await).await, "invalid_token");

    // Garbage never reaches the database as anything but a miss.
    for token in ["", "x", &"A".repeat(43), &"A".repeat(5000), "' OR 1=1 --"] {
        let refused = reset(&server, token, "yet-another-password-93").await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{token:?}");
        assert_eq!(error_code(refused).await, "invalid_token");
        assert_eq!(error_code(verify(&server, token).await).await, "invalid_token");
    }
    server.finish().await;
}

async fn an_address_counts_once_verified_and_a_change_tells_the_old_one(backend: Backend) {
    let mail = MailServer::start();
    let server = server_with_mail(backend, &mail).await;
    let ada = with_verified_address(&server, &mail, "ada", "ada@example.test", 0).await;
    let bob = server.register("bob").await;

    let ask = |session: &Session, email: Value| {
        let (server, access) = (&server, session.access.clone());
        async move { server.post_bearer("/auth/email", &access, Some(json!({ "email": email }))).await }
    };
    for bad in [json!("not an address"), json!("a@"), json!(format!("{}@example.test", "a".repeat(250))), json!("Ada <a@example.test>")] {
        let refused = ask(&bob, bad.clone()).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(refused).await, "invalid_email");
    }
    let taken = ask(&bob, json!("ADA@example.TEST")).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(taken).await, "email_taken");
    let unauthenticated = server.post_json("/auth/email", json!({"email": "x@example.test"})).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    // Ada moves to a new address: the old one hears of it and stays until the new one is verified.
    let asked = ask(&ada, json!("ada@new.example.test")).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let received = mail.wait_for(3).await;
    let notice = received.iter().find(|m| m.to == ["ada@example.test"] && m.subject.contains("about to change"));
    assert!(notice.is_some_and(|m| m.text.contains("ada@new.example.test")), "{received:#?}");
    let to_new = mail.last_to("ada@new.example.test", 3).await;
    assert_eq!(ask_for_reset(&server, "ada@example.test").await.status(), StatusCode::ACCEPTED);
    let reset_letter = mail.last_to("ada@example.test", 4).await;
    assert!(reset_letter.subject.contains("Reset"), "the old address still recovers the account");
    // An unverified address recovers nothing.
    assert_eq!(ask_for_reset(&server, "ada@new.example.test").await.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mail.received().len(), 4);

    scan(&server, "/verify-email", &to_new.token("/verify-email")).await;
    assert_eq!(verify(&server, &to_new.token("/verify-email")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(error_code(verify(&server, &to_new.token("/verify-email")).await).await, "invalid_token");
    // The change voided the reset link mailed to the old address.
    assert_eq!(error_code(reset(&server, &reset_letter.token("/reset-password"), NEW_PASSWORD).await).await, "invalid_token");
    let refreshed = Session::from_response(server.refresh(&ada.cookie).await).await;
    let me: Value = server.get_bearer("/api/me", &refreshed.access).await.json().await.unwrap();
    assert_eq!((me["email"].as_str(), me["email_verified"].as_bool()), (Some("ada@new.example.test"), Some(true)));
    // The old address is free for Bob now.
    assert_eq!(ask(&bob, json!("ada@example.test")).await.status(), StatusCode::ACCEPTED);

    // A verification link for an address no longer asked for is void.
    let first = mail.last_to("ada@example.test", 5).await.token("/verify-email");
    assert_eq!(ask(&bob, json!("bob@example.test")).await.status(), StatusCode::ACCEPTED);
    mail.wait_for(6).await;
    assert_eq!(error_code(verify(&server, &first).await).await, "invalid_token");

    // Verification mails per account are limited.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(ask(&bob, json!(format!("bob{i}@example.test"))).await.status());
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    server.finish().await;
}

async fn asking_for_a_reset_tells_nothing_about_the_address(backend: Backend) {
    let mail = MailServer::start();
    let url = mail.url();
    let server = TestServer::start_with(backend, |s| {
        s.smtp_url = url;
        s.password_resets_per_email = gatehouse::config::RateLimit { count: 1000, per_seconds: 60 };
        s.password_resets_per_ip = gatehouse::config::RateLimit { count: 1000, per_seconds: 60 };
    })
    .await;
    with_verified_address(&server, &mail, "ada", "ada@example.test", 0).await;
    let answer = |email: &'static str| {
        let server = &server;
        async move {
            let started = Instant::now();
            let response = ask_for_reset(server, email).await;
            let took = started.elapsed();
            let status = response.status();
            let cache = response.headers().get(CACHE_CONTROL).cloned();
            (status, cache, response.bytes().await.unwrap(), took)
        }
    };
    let known = answer("ada@example.test").await;
    let unknown = answer("nobody@example.test").await;
    assert_eq!((known.0, &known.1, &known.2), (unknown.0, &unknown.1, &unknown.2), "same status, headers and body");
    assert_eq!(known.0, StatusCode::ACCEPTED);

    // Timing: medians of interleaved rounds, within noise of each other.
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..25 {
        known_times.push(answer("ada@example.test").await.3);
        unknown_times.push(answer("nobody@example.test").await.3);
    }
    known_times.sort();
    unknown_times.sort();
    let (known_median, unknown_median) = (known_times[12], unknown_times[12]);
    let gap = known_median.abs_diff(unknown_median);
    assert!(
        gap < Duration::from_millis(5) || gap < known_median.min(unknown_median) / 2,
        "known {known_median:?}, unknown {unknown_median:?}"
    );

    // The limits count an address whether or not it has an account.
    let limited = TestServer::start_with(backend, |s| {
        s.password_resets_per_email = gatehouse::config::RateLimit { count: 2, per_seconds: 3600 };
    })
    .await;
    for email in ["ada@example.test", "nobody@example.test"] {
        let statuses = [
            ask_for_reset(&limited, email).await.status(),
            ask_for_reset(&limited, email).await.status(),
            ask_for_reset(&limited, email).await.status(),
        ];
        assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS]);
    }
    let malformed = ask_for_reset(&limited, "no at sign").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    limited.finish().await;
    server.finish().await;
}

async fn mail_waits_for_a_server_that_is_down_and_goes_out_once(backend: Backend) {
    // A port with nothing listening yet.
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = reserved.local_addr().unwrap().port();
    drop(reserved);
    let server = TestServer::start_with(backend, |s| s.smtp_url = format!("smtp://127.0.0.1:{port}")).await;
    let started = Instant::now();
    let response = server
        .post_json("/auth/register", json!({"username": "ada", "password": PASSWORD, "email": "ada@example.test"}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "a mail server that is down does not fail the request");
    assert!(started.elapsed() < Duration::from_secs(2), "nor slow it: {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mail = MailServer::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    // The retry comes due on the server's clock.
    server.clock.advance(10);
    let received = mail.wait_for(1).await;
    assert_eq!(received[0].to, ["ada@example.test"]);
    server.clock.advance(600);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mail.received().len(), 1, "sent once");
    server.finish().await;
}

/// Two instances over one PostgreSQL database, each with its outbox worker:
/// every mail goes out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_send_each_mail_once() {
    let mail = MailServer::start();
    let url = mail.url();
    let first = TestServer::start_with(Backend::Postgres, |s| s.smtp_url = url).await;
    let second = first.sibling(|_| {}).await;
    for i in 0..20 {
        let server = if i % 2 == 0 { &first } else { &second };
        let response = server
            .post_json(
                "/auth/register",
                json!({"username": format!("user{i}"), "password": PASSWORD, "email": format!("user{i}@example.test")}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let received = mail.wait_for(20).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut recipients: Vec<String> = mail.received().iter().flat_map(|m| m.to.clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!((received.len(), recipients.len(), mail.received().len()), (20, 20, 20));
    second.stop();
    first.finish().await;
}

/// Without JavaScript: the forms post, the pages announce, the token travels
/// in the form, and a reset ends on the login page.
#[tokio::test]
async fn recovery_works_with_plain_forms() {
    let mail = MailServer::start();
    let server = server_with_mail(Backend::Sqlite, &mail).await;
    let ada = with_verified_address(&server, &mail, "ada", "ada@example.test", 0).await;
    let form = |path: &'static str, fields: Vec<(&'static str, String)>| {
        let server = &server;
        async move {
            server
                .request(Method::POST, path, |r| r.form(&fields).header("origin", server.url("")))
                .await
        }
    };
    let asked = form("/forgot-password", vec![("email", "ada@example.test".into())]).await;
    assert_eq!(asked.status(), StatusCode::SEE_OTHER);
    assert_eq!(crate::pages::location(&asked), "/forgot-password?notice=reset_mailed");
    let token = mail.last_to("ada@example.test", 2).await.token("/reset-password");
    let weak = form("/reset-password", vec![("token", token.clone()), ("new_password", "password".into())]).await;
    assert_eq!(crate::pages::location(&weak), format!("/reset-password?token={token}&error=weak_password"));
    let done = form("/reset-password", vec![("token", format!(" {token} ")), ("new_password", NEW_PASSWORD.into())]).await;
    assert_eq!(crate::pages::location(&done), "/login?notice=password_reset");
    let used = form("/reset-password", vec![("token", token), ("new_password", NEW_PASSWORD.into())]).await;
    assert_eq!(crate::pages::location(&used), "/reset-password?error=invalid_token");
    let login = get_page(&server, "/login?notice=password_reset", None).await;
    assert!(login.text().await.unwrap().contains("Log in with the new password"));
    assert_eq!(server.refresh(&ada.cookie).await.status(), StatusCode::UNAUTHORIZED);

    // The account page's form asks for a new address with the cookie.
    let bob = server.register("bob").await;
    let asked = server
        .request(Method::POST, "/account/email", |r| {
            r.form(&[("email", "bob@example.test")])
                .header("origin", server.url(""))
                .header(COOKIE, format!("{COOKIE_NAME}={}", bob.cookie))
        })
        .await;
    assert_eq!(crate::pages::location(&asked), "/account?notice=verification_mailed");
    let token = mail.last_to("bob@example.test", 3).await.token("/verify-email");
    let verified = form("/verify-email", vec![("token", token)]).await;
    assert_eq!(crate::pages::location(&verified), "/verify-email?notice=email_verified");
    server.finish().await;
}
