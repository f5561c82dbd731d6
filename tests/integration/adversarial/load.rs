//! A bounded mixed load on the real binary: browsers log in, call the API,
//! refresh, load a protected page, hold a live socket, fail a login now and
//! then, and log out, for a minute (`GATEHOUSE_SOAK_SECONDS`). No answer may be
//! a 5xx or anything but what that step documents, and the server's resident
//! memory must level off. `make soak` runs it for ten minutes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::header::{COOKIE, ORIGIN};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::live::{connect, next_json};
use crate::process::ServerProcess;
use crate::support::*;

both_backends!(mixed_load_has_no_5xx_and_memory_levels_off);

const ACCOUNTS: usize = 8;
const BROWSERS: usize = 12;

fn soak_duration() -> Duration {
    let seconds = std::env::var("GATEHOUSE_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(seconds)
}

/// Answers seen, by step and status; unexpected ones kept apart.
#[derive(Default)]
struct Tally {
    seen: BTreeMap<(&'static str, u16), u64>,
    unexpected: Vec<String>,
}

impl Tally {
    fn record(&mut self, step: &'static str, status: StatusCode, expected: StatusCode) {
        *self.seen.entry((step, status.as_u16())).or_default() += 1;
        if status != expected {
            self.unexpected.push(format!("{step}: {status}, expected {expected}"));
        }
    }
}

/// One browser's loop: a whole visit, from login to logout, again and again.
async fn browse(api: Arc<Api>, username: String, until: Instant, tally: Arc<Mutex<Tally>>) {
    let record = |step, status, expected| tally.lock().unwrap().record(step, status, expected);
    let mut visit = 0u64;
    while Instant::now() < until {
        visit += 1;
        if visit.is_multiple_of(5) {
            let wrong = api.login(&username, "not the password at all").await;
            record("login (wrong password)", wrong.status(), StatusCode::UNAUTHORIZED);
        }
        let login = api.login(&username, PASSWORD).await;
        record("login", login.status(), StatusCode::OK);
        if login.status() != StatusCode::OK {
            continue;
        }
        let mut session = Session::from_response(login).await;

        let mut socket = connect(&api, Some(&session.access)).await;
        let ready = next_json(&mut socket).await;
        assert_eq!(ready["type"], "ready");

        for _ in 0..5 {
            let me = api.get_bearer("/api/me", &session.access).await;
            record("GET /api/me", me.status(), StatusCode::OK);
        }
        let refreshed = api.refresh(&session.cookie).await;
        record("refresh", refreshed.status(), StatusCode::OK);
        if refreshed.status() == StatusCode::OK {
            session = Session::from_response(refreshed).await;
        }
        let reauth = json!({"type": "reauth", "access_token": session.access}).to_string();
        socket.send(Message::text(reauth)).await.unwrap();
        let page = api.http.get(api.url("/")).header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie)).send().await.unwrap();
        record("GET / (protected page)", page.status(), StatusCode::OK);
        let _ = page.bytes().await;
        let sessions = api.get_bearer("/auth/sessions", &session.access).await;
        record("GET /auth/sessions", sessions.status(), StatusCode::OK);

        let out = api
            .http
            .post(api.url("/auth/logout"))
            .header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie))
            .header(ORIGIN, api.base.clone())
            .send()
            .await
            .unwrap();
        record("logout", out.status(), StatusCode::NO_CONTENT);
        // The logout closes this socket with 1008; a browser would now be gone.
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
        let _ = socket.close(None).await;
    }
}

async fn mixed_load_has_no_5xx_and_memory_levels_off(backend: Backend) {
    let (database_url, postgres_db) = create_database(backend).await;
    let env = [
        // Short-lived tokens, so the run sees them expire and be forgotten.
        ("GATEHOUSE_ACCESS_TTL", "15"),
        ("GATEHOUSE_LOGIN_FAILURES_PER_USERNAME", "1000000/minute"),
        ("GATEHOUSE_LOGIN_FAILURES_PER_USERNAME_AND_IP", "1000000/minute"),
        ("GATEHOUSE_LOGIN_FAILURES_PER_IP", "1000000/minute"),
        ("GATEHOUSE_REGISTRATIONS_PER_IP", "1000/minute"),
    ];
    let server = ServerProcess::start(&database_url, &env).await;
    for i in 0..ACCOUNTS {
        server.register(&format!("user{i}")).await;
    }
    let duration = soak_duration();
    let started = Instant::now();
    let until = started + duration;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let api = Arc::new(Api::new(server.base.clone()));
    let browsers: Vec<_> = (0..BROWSERS)
        .map(|i| tokio::spawn(browse(api.clone(), format!("user{}", i % ACCOUNTS), until, tally.clone())))
        .collect();

    let mut samples = Vec::new();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        samples.push((started.elapsed().as_secs(), server.resident_kib()));
    }
    for browser in browsers {
        browser.await.unwrap();
    }
    let health = server.http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server is still well: {}", server.log_tail());

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let total: u64 = tally.seen.values().sum();
    println!("{backend:?}: {total} requests in {:.0} s", started.elapsed().as_secs_f64());
    for ((step, status), count) in &tally.seen {
        println!("  {step:<26} {status}  {count}");
    }
    println!("  resident memory (s, MiB): {:?}", samples.iter().map(|(s, kib)| (s, kib / 1024)).collect::<Vec<_>>());
    let errors: Vec<_> = tally.seen.keys().filter(|(_, status)| *status >= 500).collect();
    assert!(errors.is_empty(), "5xx answers: {errors:?}\n{}", server.log_tail());
    assert!(tally.unexpected.is_empty(), "unexpected answers: {:?}", &tally.unexpected[..tally.unexpected.len().min(20)]);
    assert!(total > 1000, "the run did work: {total} requests");

    // Levelling off: the median of the last third of the run is within 10%
    // (and a few MiB) of the middle third's. Medians, because the allocator
    // grows in steps (a new arena for a new blocking thread) that are not leaks.
    let third = samples.len() / 3;
    let median = |part: &[(u64, u64)]| {
        let mut kib: Vec<u64> = part.iter().map(|(_, kib)| *kib).collect();
        kib.sort_unstable();
        kib.get(kib.len() / 2).copied().unwrap_or(0)
    };
    let middle = median(&samples[third..2 * third]);
    let last = median(&samples[2 * third..]);
    println!("  median resident memory: middle third {} MiB, last third {} MiB", middle / 1024, last / 1024);
    assert!(
        last <= middle + middle / 10 + 4096,
        "memory still growing: middle third {} MiB, last third {} MiB",
        middle / 1024,
        last / 1024
    );
    server.kill();
    drop_database(&database_url, postgres_db.as_deref()).await;
}
