//! Operations (issue 30): metrics on their own port, request ids and JSON
//! logs, readiness, and draining on SIGTERM. What a process does when it is
//! signalled is tested on the real binary; the rest also in process.

use std::time::Duration;

use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::live::{closed_with, connect, next_json};
use crate::process::{free_port, ServerProcess};
use crate::support::*;

both_backends!(readiness_names_the_check_that_failed,);

const X_REQUEST_ID: &str = "x-request-id";

/// The sum of the samples of `name` whose labels include `labels`, as the
/// Prometheus text format writes them; 0 where there are none.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(key, value)| rest.contains(&format!("{key}=\"{value}\"")));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

async fn scrape(api: &Api, url: &str) -> String {
    let response = api.http.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_logins_refreshes_and_limits_on_a_port_of_their_own() {
    let (database_url, _) = create_database(Backend::Sqlite).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let server = ServerProcess::start(
        &database_url,
        &[
            ("GATEHOUSE_METRICS_ADDR", &metrics_addr),
            ("GATEHOUSE_REGISTRATIONS_PER_IP", "1/hour"),
        ],
    )
    .await;
    server.register("metered-alice").await;
    let refused = server
        .post_json(
            "/auth/register",
            json!({"username": "metered-bob", "password": PASSWORD}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    let before = scrape(&server, &metrics_url).await;
    let session = server.login_ok("metered-alice").await;
    assert_eq!(
        server.login("metered-alice", "not the password at all").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let rotated = server.refresh(&session.cookie).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated = Session::from_response(rotated).await;
    // The same cookie again at once: a race within the grace window.
    assert_eq!(server.refresh(&session.cookie).await.status(), StatusCode::OK);
    assert_eq!(
        server.refresh("not-a-refresh-token").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let after = scrape(&server, &metrics_url).await;

    let moved = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(moved("gatehouse_logins_total", &[("outcome", "ok")]), 1.0, "{after}");
    assert_eq!(
        moved("gatehouse_logins_total", &[("outcome", "invalid_credentials")]),
        1.0
    );
    assert_eq!(moved("gatehouse_refreshes_total", &[("verdict", "rotated")]), 1.0);
    assert_eq!(moved("gatehouse_refreshes_total", &[("verdict", "replayed")]), 1.0);
    assert_eq!(moved("gatehouse_refreshes_total", &[("verdict", "refused")]), 1.0);
    assert_eq!(
        sample(
            &after,
            "gatehouse_rate_limited_total",
            &[("limit", "registrations_per_ip")]
        ),
        1.0
    );
    let login_requests = [("route", "/auth/login"), ("method", "POST")];
    assert_eq!(
        moved("gatehouse_http_request_duration_seconds_count", &login_requests),
        2.0
    );
    assert!(moved("gatehouse_database_seconds_count", &[("kind", "presented_token")]) >= 2.0);
    assert!(moved("gatehouse_password_hash_wait_seconds_count", &[]) >= 2.0);
    for gauge in ["gatehouse_password_hash_queue_depth", "gatehouse_live_sessions"] {
        assert!(
            after.lines().any(|line| line.starts_with(gauge)),
            "{gauge} missing:\n{after}"
        );
    }
    for secret in ["metered-alice", &session.cookie, &rotated.cookie, PASSWORD] {
        assert!(!after.contains(secret), "{secret} is in the metrics");
    }

    // Not on the public port.
    let public = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_ne!(public.status(), StatusCode::OK);
    assert!(!public.text().await.unwrap().contains("gatehouse_logins_total"));
    drop(server);
    drop_database(&database_url, None).await;
}

/// Route labels are the router's templates, never what a client asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_times_are_labelled_by_route_template() {
    let handle = gatehouse::metrics::install().unwrap();
    let server = TestServer::start_with(Backend::Sqlite, |s| s.metrics_addr = "127.0.0.1:1".into()).await;
    let session = server.register("routed-dave").await;
    let me = server.get_bearer("/api/me", &session.access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let missing = server
        .http
        .get(server.url(&format!("/no-such-page-{unique}")))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    server
        .http
        .get(server.url(&format!("/pkg/{unique}.js")))
        .send()
        .await
        .unwrap();

    let text = handle.render();
    let me_label = [("route", "/api/me"), ("method", "GET"), ("status", "200")];
    assert!(
        sample(&text, "gatehouse_http_request_duration_seconds_count", &me_label) >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "gatehouse_http_request_duration_seconds_count",
            &[("route", "fallback"), ("status", "404")]
        ) >= 1.0
    );
    assert!(!text.contains(&unique), "a requested path became a label");
    server.finish().await;
}

async fn readiness_names_the_check_that_failed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.headers()["cache-control"], "no-store");
    assert_eq!(ready.json::<Value>().await.unwrap(), json!({"status": "ready"}));

    // A migration this binary knows is not applied (another instance is
    // migrating, say): not ready, yet alive.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&server.settings.database_url)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE _sqlx_migrations SET success = false WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let unmigrated = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(unmigrated.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unmigrated.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "failed": "migrations"})
    );
    sqlx::query("UPDATE _sqlx_migrations SET success = true")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(
        server.http.get(server.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );

    server
        .state
        .lifecycle
        .advance(gatehouse::server::health::Stage::Draining);
    let draining = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        draining.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "failed": "draining"})
    );
    assert_eq!(
        server.http.get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    server.finish().await;

    let server = TestServer::start(backend).await;
    server.auth.store().close().await;
    let unreachable = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(unreachable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unreachable.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "failed": "database"})
    );
    assert_eq!(
        server.http.get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sockets_are_told_to_go_away_when_the_instance_stops() {
    let server = TestServer::start(Backend::Sqlite).await;
    let session = server.register("socket-erin").await;
    let mut socket = connect(&server, Some(&session.access)).await;
    assert_eq!(next_json(&mut socket).await["type"], "ready");
    server
        .state
        .lifecycle
        .advance(gatehouse::server::health::Stage::Draining);
    assert_eq!(
        next_json_or_quiet(&mut socket).await,
        None,
        "draining alone keeps sockets open"
    );
    server
        .state
        .lifecycle
        .advance(gatehouse::server::health::Stage::Stopping);
    assert_eq!(
        closed_with(&mut socket, Duration::from_secs(5)).await,
        (1001, "going_away".to_string())
    );
    let mut late = connect(&server, Some(&session.access)).await;
    assert_eq!(
        closed_with(&mut late, Duration::from_secs(5)).await,
        (1001, "going_away".to_string())
    );
    server.finish().await;
}

/// The next message within a second and a half, if any (pings aside).
async fn next_json_or_quiet(socket: &mut crate::live::Socket) -> Option<String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let waited = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return format!("{other:?}"),
            }
        }
    });
    waited.await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_made_here_unless_a_trusted_proxy_sent_one() {
    let direct = TestServer::start(Backend::Sqlite).await;
    let id_of = |response: &reqwest::Response| response.headers()[X_REQUEST_ID].to_str().unwrap().to_string();
    let chosen = direct
        .request(Method::GET, "/healthz", |r| {
            r.header(X_REQUEST_ID, "chosen-by-the-client")
        })
        .await;
    let made = id_of(&chosen);
    assert_ne!(made, "chosen-by-the-client");
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
    let other = id_of(&direct.request(Method::GET, "/healthz", |r| r).await);
    assert_ne!(other, made, "each request has its own");
    direct.finish().await;

    let proxied = TestServer::start_with(Backend::Sqlite, |s| {
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]
    })
    .await;
    let echoed = proxied
        .request(Method::GET, "/healthz", |r| r.header(X_REQUEST_ID, "lb-4f2a/17"))
        .await;
    assert_eq!(id_of(&echoed), "lb-4f2a/17");
    for unusable in ["two words", &"x".repeat(129)] {
        let replaced = proxied
            .request(Method::GET, "/healthz", |r| r.header(X_REQUEST_ID, unusable))
            .await;
        assert!(
            uuid::Uuid::parse_str(&id_of(&replaced)).is_ok(),
            "{unusable:?} was taken"
        );
    }
    // Errors carry it too.
    let refused = proxied
        .request(Method::GET, "/api/me", |r| r.header(X_REQUEST_ID, "lb-err-1"))
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(id_of(&refused), "lb-err-1");
    proxied.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_requests_id_and_no_secret() {
    let (database_url, _) = create_database(Backend::Sqlite).await;
    let mut server = ServerProcess::start(
        &database_url,
        &[
            ("GATEHOUSE_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,gatehouse=debug,tower_http=debug"),
            ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    server.register("logged-carol").await;
    let login = server
        .request(Method::POST, "/auth/login", |r| {
            r.header(X_REQUEST_ID, "lb-login-7f3a")
                .json(&json!({"username": "logged-carol", "password": PASSWORD}))
        })
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()[X_REQUEST_ID], "lb-login-7f3a");
    let session = Session::from_response(login).await;
    let refresh = server
        .request(Method::POST, "/auth/refresh", |r| {
            r.header(X_REQUEST_ID, "lb-refresh-9c2e")
                .header(COOKIE, format!("{COOKIE_NAME}={}", session.cookie))
        })
        .await;
    assert_eq!(refresh.status(), StatusCode::OK);
    assert_eq!(refresh.headers()[X_REQUEST_ID], "lb-refresh-9c2e");
    let refreshed = Session::from_response(refresh).await;
    server.terminate();
    assert!(server.exited_within(Duration::from_secs(15)).await.success());

    let output = server.output();
    let lines: Vec<Value> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect();
    let request_id = |line: &Value| -> Option<String> {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span["request_id"].as_str().map(str::to_string))
    };
    let event = |message: &str, outcome: &str, id: &str| {
        lines.iter().any(|line| {
            line["message"] == message && line["outcome"] == outcome && request_id(line).as_deref() == Some(id)
        })
    };
    assert!(
        event("login", "ok", "lb-login-7f3a"),
        "no login line with its request id:\n{output}"
    );
    assert!(
        event("refresh", "rotated", "lb-refresh-9c2e"),
        "no refresh line with its request id:\n{output}"
    );
    let login_lines = lines
        .iter()
        .filter(|line| request_id(line).as_deref() == Some("lb-login-7f3a"))
        .count();
    assert!(login_lines >= 2, "the request's own log lines name it too:\n{output}");
    let signature = session.access.rsplit('.').next().unwrap();
    for secret in [PASSWORD, &session.cookie, &refreshed.cookie, signature] {
        assert!(!output.contains(secret), "a secret reached the logs: {secret}");
    }
    drop(server);
    drop_database(&database_url, None).await;
}

/// argon2 made slow enough (about a second a hash, one at a time) that a
/// login is surely still hashing when the signal comes.
const SLOW_HASHING: [(&str, &str); 3] = [
    ("GATEHOUSE_ARGON2_MEMORY_KIB", "32768"),
    ("GATEHOUSE_ARGON2_ITERATIONS", "12"),
    ("GATEHOUSE_HASH_CONCURRENCY", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_login_in_flight_closes_sockets_with_1001_and_exits_0() {
    let (database_url, _) = create_database(Backend::Sqlite).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let mut env = SLOW_HASHING.to_vec();
    env.push(("GATEHOUSE_METRICS_ADDR", metrics_addr.as_str()));
    let mut server = ServerProcess::start(&database_url, &env).await;
    let first = server.register("drained-bob").await;
    let mut socket = connect(&server, Some(&first.access)).await;
    assert_eq!(next_json(&mut socket).await["type"], "ready");

    let hashes_started = |text: &str| sample(text, "gatehouse_password_hash_wait_seconds_count", &[]);
    let before = hashes_started(&scrape(&server, &metrics_url).await);
    let login = tokio::spawn({
        let api = Api::new(server.base.clone());
        async move { api.login("drained-bob", PASSWORD).await }
    });
    // Its hash has begun: the login is in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hashes_started(&scrape(&server, &metrics_url).await) <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the login never reached the hashing thread"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.terminate();

    assert_eq!(
        closed_with(&mut socket, Duration::from_secs(5)).await,
        (1001, "going_away".to_string())
    );
    let login = login.await.unwrap();
    assert_eq!(login.status(), StatusCode::OK, "the login in flight was answered");
    let session = Session::from_response(login).await;
    let status = server.exited_within(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}: {}", server.log_tail());
    drop(server);

    // Its session survives: the next instance on the database refreshes it.
    let next = ServerProcess::start(&database_url, &[]).await;
    let refreshed = next.refresh(&session.cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = Session::from_response(refreshed).await;
    assert_eq!(refreshed.sid(), session.sid());
    drop(next);
    drop_database(&database_url, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_while_draining_then_the_process_stops_accepting_and_exits_0() {
    let (database_url, _) = create_database(Backend::Sqlite).await;
    let mut server = ServerProcess::start(&database_url, &[("GATEHOUSE_SHUTDOWN_DELAY", "2")]).await;
    assert_eq!(
        server.http.get(server.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    server.terminate();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let draining = loop {
        let response = server.http.get(server.url("/readyz")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still ready after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        draining.json::<Value>().await.unwrap(),
        json!({"status": "not_ready", "failed": "draining"})
    );
    // Still alive, and still serving, while load balancers take note.
    assert_eq!(
        server.http.get(server.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let status = server.exited_within(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}: {}", server.log_tail());
    assert!(
        server.http.get(server.url("/healthz")).send().await.is_err(),
        "still accepting"
    );
    drop(server);
    drop_database(&database_url, None).await;
}
