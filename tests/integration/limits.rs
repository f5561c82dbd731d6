//! Rate limits as an attacker meets them: a lockout of a username cannot be
//! aimed at its owner, and with PostgreSQL every limit holds for the whole
//! deployment, however many instances share the database.

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::*;
use gatehouse::config::RateLimit;

both_backends!(a_lockout_cannot_be_aimed_at_the_owner);

const WRONG: &str = "not the password at all";

/// The test's requests come through a proxy on 127.0.0.1, so each names its
/// client address in `X-Forwarded-For`.
fn behind_a_proxy(s: &mut gatehouse::config::Settings) {
    s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

async fn login_from(server: &Api, address: &str, username: &str, password: &str) -> Response {
    server
        .request(Method::POST, "/auth/login", |r| {
            r.header("x-forwarded-for", address)
                .json(&json!({"username": username, "password": password}))
        })
        .await
}

async fn register_from(server: &Api, address: &str, username: &str) -> Response {
    server
        .request(Method::POST, "/auth/register", |r| {
            r.header("x-forwarded-for", address)
                .json(&json!({"username": username, "password": PASSWORD}))
        })
        .await
}

fn retry_after(response: &Response) -> i64 {
    response.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap()
}

/// Six bad passwords for `alice` from one address, then two every 12 s from
/// ever new ones, for ten minutes: the attacker's address stays blocked, yet
/// alice, from her own address, gets in after waiting out one delay of at
/// most a minute, correct password in hand.
async fn a_lockout_cannot_be_aimed_at_the_owner(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        behind_a_proxy(s);
        s.login_failures_per_username = RateLimit {
            count: 5,
            per_seconds: 60,
        };
        s.login_failures_per_username_and_ip = RateLimit {
            count: 5,
            per_seconds: 60,
        };
        s.login_delay_max = 60;
    })
    .await;
    server.register("alice").await;
    let attacker = "203.0.113.9";
    for _ in 0..5 {
        assert_eq!(
            login_from(&server, attacker, "alice", WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let sixth = login_from(&server, attacker, "alice", WRONG).await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    // Longer than the name's first delay, shorter than a unit of the address's own block.
    server.clock.advance(5);
    let blocked = login_from(&server, attacker, "alice", PASSWORD).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's own address is blocked"
    );

    // Two more every 12 s, as many as the name regains and one more, from
    // ever new addresses.
    for round in 0..50 {
        server.clock.advance(12);
        for attempt in 0..2 {
            let address = format!("198.51.100.{}", 2 * round + attempt);
            let status = login_from(&server, &address, "alice", WRONG).await.status();
            assert!(
                [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(&status),
                "{status}"
            );
        }
    }

    let owner = "192.0.2.44";
    let first = login_from(&server, owner, "alice", PASSWORD).await;
    assert_eq!(
        first.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the name is under attack: the owner waits too"
    );
    let wait = retry_after(&first);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // The attacker goes on while the owner waits, twice a second.
    for second in 0..wait {
        server.clock.advance(1);
        for attempt in 0..2 {
            let address = format!("198.51.101.{}", 2 * second + attempt);
            login_from(&server, &address, "alice", WRONG).await;
        }
    }
    let again = login_from(&server, owner, "alice", PASSWORD).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the owner gets in once the delay is waited out"
    );
    server.finish().await;
}

/// How many login attempts for `username`, sent in turn to each of
/// `servers` from the address `address(attempt)`, it takes to be refused
/// with 429; at most `most`.
async fn attempts_until_refused(
    servers: &[&TestServer],
    username: &str,
    address: impl Fn(usize) -> String,
    most: usize,
) -> usize {
    for attempt in 1..=most {
        let server = servers[attempt % servers.len()];
        let status = login_from(server, &address(attempt), username, WRONG).await.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return attempt;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    most + 1
}

/// Two instances over one PostgreSQL database, requests alternated between
/// them: every limit refuses at the same count as on one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_across_instances_through_postgres() {
    let a = TestServer::start_with(Backend::Postgres, |s| {
        behind_a_proxy(s);
        s.login_failures_per_username = RateLimit {
            count: 3,
            per_seconds: 60,
        };
        s.login_failures_per_username_and_ip = RateLimit {
            count: 2,
            per_seconds: 60,
        };
        s.login_failures_per_ip = RateLimit {
            count: 4,
            per_seconds: 60,
        };
        s.registrations_per_ip = RateLimit {
            count: 2,
            per_seconds: 3600,
        };
        s.refreshes_per_session = RateLimit {
            count: 2,
            per_seconds: 3600,
        };
    })
    .await;
    let b = a.sibling(|_| {}).await;

    for servers in [vec![&a], vec![&a, &b]] {
        let instances = servers.len();
        // Per username, from a new address each time.
        let by_name =
            attempts_until_refused(&servers, &format!("name{instances}"), |n| format!("192.0.2.{n}"), 10).await;
        assert_eq!(by_name, 4, "per username, {instances} instance(s)");
        // Per (username, address).
        let pair = attempts_until_refused(
            &servers,
            &format!("pair{instances}"),
            |_| format!("198.51.100.{instances}"),
            10,
        )
        .await;
        assert_eq!(pair, 3, "per username and address, {instances} instance(s)");
        // Per address, a new name each time.
        let address = format!("203.0.113.{instances}");
        let mut by_address = None;
        for attempt in 1..=10 {
            let server = servers[attempt % instances];
            let status = login_from(server, &address, &format!("ip{instances}-{attempt}"), WRONG)
                .await
                .status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                by_address = Some(attempt);
                break;
            }
        }
        assert_eq!(by_address, Some(5), "per address, {instances} instance(s)");
    }

    // Registrations per address.
    assert_eq!(
        register_from(&a, "203.0.113.9", "carol").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register_from(&b, "203.0.113.9", "dave").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register_from(&a, "203.0.113.9", "erin").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    // Refreshes per session.
    let mut session = a.login_ok("carol").await;
    for server in [&b, &a] {
        session = Session::from_response(server.refresh(&session.cookie).await).await;
    }
    let limited = b.refresh(&session.cookie).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key(RETRY_AFTER));

    b.stop();
    a.finish().await;
}

/// The shared limits live in the database: one that cannot be read or
/// written refuses the request (the store's error, as any other), never
/// lets it through unlimited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_the_database_cannot_check_refuses() {
    let server = TestServer::start(Backend::Postgres).await;
    let session = server.register("alice").await;
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    sqlx::query("DROP TABLE IF EXISTS rate_limits")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let login = server.login("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(login).await, "internal");
    let refresh = server.refresh(&session.cookie).await;
    assert_eq!(refresh.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let register = server
        .post_json("/auth/register", json!({"username": "bob", "password": PASSWORD}))
        .await;
    assert_eq!(register.status(), StatusCode::INTERNAL_SERVER_ERROR);
    server.finish().await;
}

/// Rows of the shared limits go once they say nothing more than an absent
/// row would: the upkeep deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upkeep_deletes_spent_limit_rows() {
    let server = TestServer::start(Backend::Postgres).await;
    let session = server.register("alice").await;
    server.refresh(&session.cookie).await;
    assert_eq!(server.login("alice", WRONG).await.status(), StatusCode::UNAUTHORIZED);
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM rate_limits")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert!(count().await >= 3, "registration, refresh and failed login rows");
    server.auth.maintain().await.unwrap();
    assert!(count().await >= 3, "kept while they still count");
    server.clock.advance(3600);
    server.auth.maintain().await.unwrap();
    assert_eq!(count().await, 0);
    pool.close().await;
    server.finish().await;
}
