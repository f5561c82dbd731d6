//! Faults: the database going away, and the server killed with SIGKILL in the
//! middle of refresh rotations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::process::ServerProcess;
use crate::support::*;

both_backends!(killed_during_refreshes_restarts_with_every_session_whole);

const CLIENTS: usize = 16;
const KILLS: usize = 3;

/// One browser: the cookie and access token from the last answer it read.
#[derive(Clone)]
struct Browser {
    username: String,
    session: Session,
}

/// Refreshes until the connection fails, keeping what each answer hands out,
/// exactly as a browser would. Any answer but 200 is a failure.
async fn refresh_until_cut(api: Arc<Api>, mut browser: Browser, stop: Arc<AtomicBool>) -> Result<(Browser, usize), String> {
    let mut rotations = 0;
    while !stop.load(Ordering::Relaxed) {
        let sent = api
            .http
            .post(api.url("/auth/refresh"))
            .header("cookie", format!("{COOKIE_NAME}={}", browser.session.cookie))
            .send()
            .await;
        let Ok(response) = sent else { break };
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("{}: refresh answered {status}", browser.username));
        }
        let Some(set_cookie) = refresh_set_cookie(response.headers()) else {
            return Err(format!("{}: 200 without a cookie", browser.username));
        };
        // The body may be cut by the kill: then this answer was never read.
        let Ok(body) = response.json::<Value>().await else { break };
        let Some(access) = body["access_token"].as_str() else {
            return Err(format!("{}: no access token in {body}", browser.username));
        };
        browser.session = Session {
            access: access.to_string(),
            cookie: cookie_value(&set_cookie),
            set_cookie,
            body,
        };
        rotations += 1;
    }
    Ok((browser, rotations))
}

/// Sixteen browsers refresh as fast as they can; the server is killed with
/// SIGKILL mid-rotation, three times. After each restart every browser's last
/// cookie still works, whether the server had rotated it or not (the answer it
/// never read is handed out again as a replay within the grace window), its
/// session is the only one it has, and its last access token is still valid.
async fn killed_during_refreshes_restarts_with_every_session_whole(backend: Backend) {
    let (database_url, postgres_db) = create_database(backend).await;
    // The grace window must outlast a restart for an answer lost in the kill to
    // be handed out again; the default of 10 s would do on a quiet machine.
    let env = [
        ("GATEHOUSE_REFRESH_GRACE", "60"),
        ("GATEHOUSE_REFRESHES_PER_SESSION", "1000000/minute"),
        ("GATEHOUSE_REGISTRATIONS_PER_IP", "1000/minute"),
    ];
    let mut server = ServerProcess::start(&database_url, &env).await;
    let mut browsers = Vec::new();
    for i in 0..CLIENTS {
        let username = format!("user{i}");
        let session = server.register(&username).await;
        browsers.push(Browser { username, session });
    }

    for round in 0..KILLS {
        let api = Arc::new(Api::new(server.base.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let running: Vec<_> = browsers
            .iter()
            .cloned()
            .map(|b| tokio::spawn(refresh_until_cut(api.clone(), b, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(1500 + 400 * round as u64)).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        browsers.clear();
        let mut rotations = 0;
        for task in running {
            let (browser, done) = task.await.unwrap().unwrap_or_else(|e| panic!("round {round}: {e}"));
            browsers.push(browser);
            rotations += done;
        }
        println!("round {round}: {rotations} rotations before the kill");
        assert!(rotations > CLIENTS, "round {round}: the server was under refresh load when killed");

        server = ServerProcess::start(&database_url, &env).await;
        for browser in &mut browsers {
            let who = &browser.username;
            let me = server.get_bearer("/api/me", &browser.session.access).await;
            assert_eq!(me.status(), StatusCode::OK, "round {round}, {who}: the last access token outlives the restart");
            let refreshed = server.refresh(&browser.session.cookie).await;
            assert_eq!(refreshed.status(), StatusCode::OK, "round {round}, {who}: the last cookie still refreshes");
            browser.session = Session::from_response(refreshed).await;
            let again = server.refresh(&browser.session.cookie).await;
            assert_eq!(again.status(), StatusCode::OK, "round {round}, {who}: and so does the one it gave");
            browser.session = Session::from_response(again).await;
            let sessions: Vec<Value> = server.get_bearer("/auth/sessions", &browser.session.access).await.json().await.unwrap();
            assert_eq!(sessions.len(), 1, "round {round}, {who}: one session, neither lost nor doubled");
        }
    }
    server.kill();
    if backend == Backend::Sqlite {
        use sqlx::Connection as _;
        let mut db = sqlx::SqliteConnection::connect(&database_url).await.unwrap();
        let check: (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(&mut db).await.unwrap();
        assert_eq!(check.0, "ok");
    }
    drop_database(&database_url, postgres_db.as_deref()).await;
}

/// The database goes away under a running server: every request that needs it
/// is a 503 with the JSON error (never a 500, never a hang), the browser keeps
/// its refresh cookie, tokens already verified still work, and when the
/// database returns the server recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_and_passes_by_itself() {
    let server = TestServer::start(Backend::Postgres).await;
    let session = server.register("alice").await;
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);
    let name = server.postgres_database().unwrap().to_string();
    let mut admin = postgres_admin().await;
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).execute(&mut admin).await.unwrap();
    sqlx::query(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        .execute(&mut admin)
        .await
        .unwrap();

    let started = Instant::now();
    let health = server.request(Method::GET, "/healthz", |r| r).await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(health).await, "unavailable");
    let login = server.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(login).await, "unavailable");
    let refresh = server.refresh(&session.cookie).await;
    assert_eq!(refresh.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refresh_set_cookie(refresh.headers()).is_none(), "an outage does not log anyone out");
    let sessions = server.get_bearer("/auth/sessions", &session.access).await;
    assert_eq!(sessions.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(30), "answered, not hung: {:?}", started.elapsed());
    // A token already verified needs no database.
    assert_eq!(server.get_bearer("/api/me", &session.access).await.status(), StatusCode::OK);

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).execute(&mut admin).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.request(Method::GET, "/healthz", |r| r).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the server did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refreshed = server.refresh(&session.cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK, "the session outlived the outage");
    assert_eq!(server.login("alice", PASSWORD).await.status(), StatusCode::OK);
    server.finish().await;
}
