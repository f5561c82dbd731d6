//! A real server on a loopback port, over SQLite or a fresh PostgreSQL database,
//! with a clock the test moves by hand.

use std::sync::Arc;

use gatehouse::auth::clock::ManualClock;
use gatehouse::auth::password::Password;
use gatehouse::auth::{Auth, ROLE_ADMIN};
use gatehouse::config::{RateLimit, Settings};
use gatehouse::server::{app, AppState};
use gatehouse::store::Store;
use reqwest::header::{HeaderMap, COOKIE, ORIGIN, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery staple 42";
pub const COOKIE_NAME: &str = "__Host-gatehouse_refresh";
/// Short, so the test of a client that never finishes its headers is quick.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// PostgreSQL server used by the suite; CI has one on 127.0.0.1:5432.
fn postgres_admin_url() -> String {
    std::env::var("GATEHOUSE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestServer {
    pub api: Api,
    pub clock: Arc<ManualClock>,
    pub auth: Arc<Auth>,
    /// What the router serves with: its lifecycle moves a drain along.
    pub state: AppState,
    pub settings: Settings,
    backend: Backend,
    postgres_db: Option<String>,
    task: tokio::task::JoinHandle<()>,
    relay: tokio::task::JoinHandle<()>,
    outbox: tokio::task::JoinHandle<()>,
}

/// Settings for tests: short lifetimes are set per test; argon2 is cheaper
/// than in production so the suite stays fast (the cost is a setting).
pub fn test_settings() -> Settings {
    Settings {
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        login_failures_per_username: RateLimit { count: 100, per_seconds: 60 },
        login_failures_per_username_and_ip: RateLimit { count: 100, per_seconds: 60 },
        login_failures_per_ip: RateLimit { count: 1000, per_seconds: 60 },
        registrations_per_ip: RateLimit { count: 1000, per_seconds: 60 },
        refreshes_per_session: RateLimit { count: 1000, per_seconds: 60 },
        // Mails go to files unless a test names an SMTP server.
        mail_dir: std::env::temp_dir()
            .join(format!("gatehouse-mail-{}", uuid::Uuid::new_v4().simple()))
            .display()
            .to_string(),
        ..Settings::default()
    }
}

/// A fresh database: a SQLite file in a new directory, or a new PostgreSQL database.
pub async fn create_database(backend: Backend) -> (String, Option<String>) {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("gatehouse-test-{unique}"));
            (format!("sqlite://{}/gatehouse.db", dir.display()), None)
        }
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let name = format!("gatehouse_test_{unique}");
            let mut conn = sqlx_postgres(&admin).await;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin);
            (format!("{base}/{name}"), Some(name))
        }
    }
}

/// Drops what [`create_database`] made: the PostgreSQL database, or the
/// SQLite file's temporary directory.
pub async fn drop_database(database_url: &str, postgres_db: Option<&str>) {
    if let Some(name) = postgres_db {
        let mut conn = sqlx_postgres(&postgres_admin_url()).await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    } else if let Some(dir) = database_url.strip_prefix("sqlite://").and_then(|path| std::path::Path::new(path).parent()) {
        if dir.starts_with(std::env::temp_dir()) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A connection to the PostgreSQL server's administrative database.
pub async fn postgres_admin() -> sqlx::PgConnection {
    sqlx_postgres(&postgres_admin_url()).await
}

async fn sqlx_postgres(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {url} is needed by the suite (set GATEHOUSE_TEST_POSTGRES): {e}")
    })
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let (database_url, postgres_db) = create_database(backend).await;
        let mut settings = test_settings();
        settings.database_url = database_url.clone();
        tweak(&mut settings);
        let clock = ManualClock::starting_now();
        let mut server = Self::serve(settings, clock, backend).await;
        server.postgres_db = postgres_db;
        server
    }

    /// A second server over the same database (another instance, or a restart).
    pub async fn sibling(&self, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        tweak(&mut settings);
        Self::serve(settings, self.clock.clone(), self.backend).await
    }

    async fn serve(settings: Settings, clock: Arc<ManualClock>, backend: Backend) -> Self {
        let store = Store::open(&settings.database_url).await.expect("open store");
        let auth = Arc::new(Auth::new(settings.clone(), store, clock.clone()).await.expect("auth core"));
        let relay = gatehouse::auth::events::spawn_relay(&auth);
        let outbox = gatehouse::mail::spawn_outbox(&auth).expect("mail settings");
        let leptos = leptos::config::LeptosOptions::builder().output_name("gatehouse").build();
        let state = AppState::new(leptos, auth.clone());
        let router = app(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(gatehouse::server::listen::serve(
            listener,
            router,
            HEADER_READ_TIMEOUT,
            std::future::pending(),
            std::time::Duration::from_secs(10),
        ));
        Self {
            api: Api::new(format!("http://{addr}")),
            clock,
            auth,
            state,
            settings,
            backend,
            postgres_db: None,
            task,
            relay,
            outbox,
        }
    }

    /// Stops a sibling server; the database stays for the others.
    pub fn stop(self) {
        self.task.abort();
        self.relay.abort();
        self.outbox.abort();
    }

    /// Stops the server and drops its PostgreSQL database.
    pub async fn finish(self) {
        self.task.abort();
        self.relay.abort();
        self.outbox.abort();
        self.auth.store().close().await;
        drop_database(&self.settings.database_url, self.postgres_db.as_deref()).await;
    }

    /// The test's own PostgreSQL database, if it runs on PostgreSQL.
    pub fn postgres_database(&self) -> Option<&str> {
        self.postgres_db.as_deref()
    }

    pub async fn create_admin(&self, username: &str) -> Session {
        self.auth
            .create_user(username, Password::new(PASSWORD.to_string()), ROLE_ADMIN)
            .await
            .expect("create admin");
        self.login_ok(username).await
    }
}

impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// An HTTP client of one server, with the calls the suite makes most.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            // A server that never answers fails the test instead of hanging the suite.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn request(&self, method: Method, path: &str, build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> Response {
        build(self.http.request(method, self.url(path))).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, |r| r.json(&body)).await
    }

    pub async fn register(&self, username: &str) -> Session {
        let response = self.post_json("/auth/register", json!({"username": username, "password": PASSWORD})).await;
        assert_eq!(response.status(), StatusCode::CREATED, "register {username}");
        Session::from_response(response).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_json("/auth/login", json!({"username": username, "password": password})).await
    }

    pub async fn login_ok(&self, username: &str) -> Session {
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login {username}");
        Session::from_response(response).await
    }

    pub async fn refresh(&self, cookie: &str) -> Response {
        self.request(Method::POST, "/auth/refresh", |r| r.header(COOKIE, format!("{COOKIE_NAME}={cookie}")))
            .await
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, |r| r.bearer_auth(token)).await
    }

    pub async fn post_bearer(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        self.request(Method::POST, path, |r| {
            let r = r.bearer_auth(token).header(ORIGIN, self.base.clone());
            match body {
                Some(body) => r.json(&body),
                None => r,
            }
        })
        .await
    }
}

/// What a login, registration or refresh handed out.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub cookie: String,
    pub set_cookie: String,
    pub body: Value,
}

impl Session {
    pub async fn from_response(response: Response) -> Self {
        let set_cookie = refresh_set_cookie(response.headers()).expect("a refresh cookie");
        let cookie = cookie_value(&set_cookie);
        let body: Value = response.json().await.expect("json body");
        let access = body["access_token"].as_str().expect("access_token").to_string();
        Self {
            access,
            cookie,
            set_cookie,
            body,
        }
    }

    /// The session id inside the access token.
    pub fn sid(&self) -> String {
        claims(&self.access)["sid"].as_str().expect("sid").to_string()
    }
}

pub fn refresh_set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_string)
}

pub fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

pub fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie.split(';').skip(1).map(|a| a.trim().to_string()).collect()
}

/// A JWT's payload, decoded without verification.
pub fn claims(token: &str) -> Value {
    segment(token, 1)
}

pub fn jwt_header(token: &str) -> Value {
    segment(token, 0)
}

fn segment(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("json error body");
    assert!(body["message"].is_string(), "error has a message: {body}");
    body["error"].as_str().expect("error code").to_string()
}

/// Runs an async test body once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Adds `count` live sessions of `username`, each with one refresh token,
/// straight into the database, in one statement each: made `age` seconds ago,
/// ids `{prefix}{100000000000 + n}`, a UUID's form when `prefix` is a UUID's
/// first 24 characters.
pub async fn insert_sessions(server: &TestServer, username: &str, prefix: &str, count: i64, age: i64) {
    let pool = sqlx::AnyPool::connect(&server.settings.database_url).await.unwrap();
    let user_id: String = sqlx::query_scalar("SELECT id FROM users WHERE username_key = $1")
        .bind(username)
        .fetch_one(&pool)
        .await
        .unwrap();
    let now = server.auth.now();
    // A recursive count, which both databases have, makes the rows.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO sessions (id, user_id, created_at, expires_at, user_agent, ip)
         SELECT $2 || CAST(i + 100000000000 AS TEXT), $3, $4, $5, 'Bulk/1.0', '127.0.0.1' FROM n",
    )
    .bind(count)
    .bind(prefix)
    .bind(&user_id)
    .bind(now - age)
    .bind(now + 86_400)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO refresh_tokens (hash, session_id, issued_at, idle_expires_at)
         SELECT 'token-' || $2 || CAST(i AS TEXT), $2 || CAST(i + 100000000000 AS TEXT), $3, $4 FROM n",
    )
    .bind(count)
    .bind(prefix)
    .bind(now - age)
    .bind(now + 86_400)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}
