//! `make bench`: what auth costs, measured on loopback against baselines taken
//! in the same run (these machines are noisy: the ratios are the figures to
//! read). Starts the real app in this process, drives it with `wrk`, and writes
//! BENCHMARKS.md. Nothing here asserts a timing.
//!
//! Figures named after `--` (`cargo bench --profile benchmark --features ssr
//! --bench load -- refresh`) are the only ones measured, and are printed
//! without writing BENCHMARKS.md: for trying a change. Names: see [`FIGURES`].
//!
//! Run with `--ws-clients <url> <token file>` it is instead the WebSocket client
//! process of the socket figures, so the server's memory is measured alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod report;
mod sockets;
mod wrk;

/// The server's allocator (see `src/main.rs`), so the figures are the shipped binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use gatehouse::auth::clock::SystemClock;
use gatehouse::auth::password::{Password, PasswordHasher};
use gatehouse::auth::{Auth, ClientInfo};
use gatehouse::config::{RateLimit, Settings};
use gatehouse::protocol::{Credentials, Me, Registration};
use gatehouse::server::{app, AppState};
use gatehouse::store::Store;
use report::{Figure, Report};
use wrk::{merge, Load, Measured, Turns, ROUNDS, TURN};

const PASSWORD: &str = "benchmark passphrase of decent length 42";
const POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--ws-clients") {
        let url = args.get(at + 1).expect("url");
        let tokens = args.get(at + 2).expect("token file");
        return sockets::client_process(url, tokens);
    }
    let chosen: Vec<String> = args.iter().skip(1).filter(|a| !a.starts_with("--")).cloned().collect();
    for name in &chosen {
        assert!(FIGURES.contains(&name.as_str()), "no figure {name:?}: choose from {FIGURES:?}");
    }
    // The runtime `gatehouse serve` builds: one worker per core, at least two.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(RUNTIME_THREADS)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Selection(chosen)));
}

/// The name of the async runtime's threads, its workers and blocking pool:
/// how the login figure tells their CPU time from the rest.
const RUNTIME_THREADS: &str = "bench-runtime";

/// What can be chosen to run alone.
const FIGURES: [&str; 6] = ["me", "page", "login", "refresh", "sockets", "bundle"];

/// The figures chosen on the command line; none chosen is all of them.
struct Selection(Vec<String>);

impl Selection {
    fn wants(&self, figure: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|chosen| chosen == figure)
    }
}

fn bench_settings(database_url: String) -> Settings {
    let unlimited = RateLimit {
        count: 1_000_000_000,
        per_seconds: 1,
    };
    Settings {
        database_url,
        cookie_secure: false,
        login_failures_per_username: unlimited,
        login_failures_per_username_and_ip: unlimited,
        login_failures_per_ip: unlimited,
        registrations_per_ip: unlimited,
        refreshes_per_session: unlimited,
        ..Settings::default()
    }
}

/// The app as `gatehouse serve` runs it, plus one bare handler without auth as
/// the baseline of `/api/me`.
struct Server {
    base: String,
    auth: Arc<Auth>,
    _task: tokio::task::JoinHandle<()>,
}

async fn start(settings: Settings) -> Server {
    let store = Store::open(&settings.database_url).await.expect("store");
    let auth = Arc::new(Auth::new(settings, store, Arc::new(SystemClock)).await.expect("auth"));
    let leptos = leptos::config::LeptosOptions::builder()
        .output_name("gatehouse")
        .site_root("target/site")
        .build();
    let router = app(AppState::new(leptos, auth.clone())).merge(Router::new().route("/bench/bare", get(bare)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Server {
        base: format!("http://{addr}"),
        auth,
        _task: task,
    }
}

/// What `/api/me` answers, without looking at any token.
async fn bare() -> Json<Me> {
    Json(Me {
        id: "00000000-0000-0000-0000-000000000000".into(),
        username: "bench".into(),
        role: "user".into(),
        session_id: "00000000-0000-0000-0000-000000000000".into(),
        email: None,
        email_verified: false,
    })
}

/// A registration of `credentials`, without an address.
fn registration(credentials: &Credentials) -> Registration {
    Registration {
        username: credentials.username.clone(),
        password: credentials.password.clone(),
        email: None,
    }
}

/// A user and a live session: its access token and refresh cookie value.
async fn session(auth: &Auth, username: &str) -> (String, String) {
    let client = ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("bench".into()),
    };
    let credentials = Credentials {
        username: username.into(),
        password: PASSWORD.into(),
    };
    let tokens = match auth.register(registration(&credentials), &client).await {
        Ok(tokens) => tokens,
        Err(_) => auth.login(credentials, &client).await.expect("login").signed_in().expect("no second factor"),
    };
    (tokens.access.token, tokens.refresh.expose().to_string())
}

async fn run(chosen: Selection) {
    which_wrk();
    let mut report = Report::new();
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-{}", std::process::id()));
    let sqlite = start(bench_settings(format!("sqlite://{}/bench.db", dir.display()))).await;
    let (access, refresh) = session(&sqlite.auth, "bench").await;

    if chosen.wants("me") {
        // GET /api/me against the bare handler.
        let bearer = Load::get(&[&format!("Authorization: Bearer {access}")]);
        let me = in_turns(&sqlite.base, ("/api/me", &bearer), ("/bench/bare", &bearer));
        report.compared(Figure::new("GET /api/me (valid token)", me, "bare axum handler, same binary", 0.7), "req/s");
    }
    if chosen.wants("page") {
        page_figures(&mut report, &sqlite, &refresh, &dir).await;
    }
    if chosen.wants("login") {
        login_figure(&mut report, &sqlite).await;
    }
    if chosen.wants("refresh") {
        // Refresh (rotation) against the database's own write rate, on both databases.
        refresh_figure(&mut report, &sqlite, "SQLite").await;
        match postgres_database().await {
            Some((url, name)) => {
                let postgres = start(bench_settings(url.clone())).await;
                refresh_figure(&mut report, &postgres, "PostgreSQL").await;
                postgres.auth.store().close().await;
                drop_postgres_database(&name).await;
            }
            None => report.note("PostgreSQL was not reachable: its refresh figure is missing."),
        }
    }
    if chosen.wants("sockets") {
        sockets::figures(&mut report).await;
    }
    if chosen.wants("bundle") {
        report.bundle(std::path::Path::new("target/site/pkg"), "gatehouse");
    }
    let _ = std::fs::remove_dir_all(dir);
    if !chosen.0.is_empty() {
        println!("{}", report.render());
        return;
    }
    report.token_microbenchmarks(std::path::Path::new("target/criterion/access_token"));
    let path = std::path::Path::new("BENCHMARKS.md");
    report.keep_soak_section(&std::fs::read_to_string(path).unwrap_or_default());
    std::fs::write(path, report.render()).expect("write BENCHMARKS.md");
    println!("wrote {}", path.display());
}

/// The protected page against a public one, then the same page with the
/// guard's lookups off.
async fn page_figures(report: &mut Report, sqlite: &Server, refresh: &str, dir: &std::path::Path) {
    let page = protected_page_turns(sqlite, refresh);
    report.compared(Figure::new("GET / (server-rendered protected page)", page, PUBLIC_PAGE, 0.6), "req/s");

    // The same page where every load reads the session from the database: a
    // grace window of 0 leaves the guard's lookups uncached (see
    // `auth::page_lookups`). What a session's first page load costs.
    let uncached = start(Settings {
        refresh_grace: 0,
        ..bench_settings(format!("sqlite://{}/uncached.db", dir.display()))
    })
    .await;
    let (_, uncached_refresh) = session(&uncached.auth, "bench").await;
    let page = protected_page_turns(&uncached, &uncached_refresh);
    let what = "GET /, every load reading its session (lookups not kept)";
    report.compared(Figure::aside(what, page, PUBLIC_PAGE), "req/s");
    uncached.auth.store().close().await;
}

/// Login against the argon2 bound, the bound measured between login turns.
async fn login_figure(report: &mut Report, sqlite: &Server) {
    let login_body = serde_json::json!({"username": "bench", "password": PASSWORD}).to_string();
    let login = Load::post_json(&login_body);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut turns = Turns::default();
    let mut hash_time = Duration::ZERO;
    let mut login_cpu = CpuTicks::default();
    let mut threads = ThreadTimes::default();
    let mut wall = Duration::ZERO;
    for _ in 0..ROUNDS {
        let hash = argon2_alone(TURN).await;
        hash_time += hash / ROUNDS as u32;
        turns.baseline.push(Measured {
            requests_per_second: cores as f64 / hash.as_secs_f64(),
            ..Measured::default()
        });
        let (before, threads_before, started) = (CpuTicks::now(), ThreadClock::now(), Instant::now());
        turns.figure.push(wrk::run(&sqlite.base, "/auth/login", &login, TURN));
        wall += started.elapsed();
        login_cpu = login_cpu.add(CpuTicks::now().since(before));
        threads = threads.add(ThreadClock::now().since(&threads_before));
    }
    let bound = format!("argon2 bound: {cores} cores / {:.2} ms per hash", hash_time.as_secs_f64() * 1000.0);
    let logins = merge(&turns.figure).requests;
    report.compared(Figure::new("POST /auth/login", turns, &bound, 0.9), "/s");
    report.note(&format!(
        "During the login turns the machine's CPUs were idle {:.1}% of the time (`/proc/stat`).",
        login_cpu.idle_share() * 100.0
    ));
    // Where the two cores went: what the bound counts on (hashes) and what
    // else each login costs.
    let busy = wall.as_secs_f64() * cores as f64 * (1.0 - login_cpu.idle_share());
    let per_login = |seconds: f64| seconds * 1000.0 / logins.max(1) as f64;
    let elsewhere = (busy - threads.total()).max(0.0);
    report.note(&format!(
        "CPU time per login during the login turns (`/proc/self/task/*/schedstat`): {:.2} ms on the hashing threads, \
         against {:.2} ms for one hash alone; {:.2} ms on the async runtime's threads (HTTP, handlers), {:.2} ms on \
         SQLite's threads, {:.2} ms on the process's other threads, and {:.2} ms outside this process (wrk, the kernel).",
        per_login(threads.hashing),
        hash_time.as_secs_f64() * 1000.0,
        per_login(threads.runtime),
        per_login(threads.sqlite),
        per_login(threads.other),
        per_login(elsewhere),
    ));
    // What the bound leaves out: hashes running on every core at once share
    // the memory bandwidth argon2 is limited by.
    let together = hash_rate(cores, TURN).await;
    report.note(&format!(
        "Login's bound times argon2 alone, one hash after another on one thread. With {cores} hashes at once (the product's hasher, no HTTP), the rate was {together:.1} /s: {:.2} of the bound.",
        together * hash_time.as_secs_f64() / cores as f64
    ));
}

/// Each of this process's threads: its name and nanoseconds on a CPU so far,
/// from `/proc/self/task/*/{comm,schedstat}`.
struct ThreadClock(std::collections::HashMap<String, (String, u64)>);

impl ThreadClock {
    fn now() -> Self {
        let mut threads = std::collections::HashMap::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
            let path = task.path();
            let (Ok(name), Ok(stat)) =
                (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("schedstat")))
            else {
                continue;
            };
            let ran: u64 = stat.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
            threads.insert(task.file_name().to_string_lossy().into_owned(), (name.trim().to_string(), ran));
        }
        Self(threads)
    }

    /// CPU time spent since `earlier`, by kind of thread; a thread started
    /// since counts whole.
    fn since(&self, earlier: &Self) -> ThreadTimes {
        let mut spent = ThreadTimes::default();
        for (id, (name, ran)) in &self.0 {
            let before = earlier.0.get(id).map_or(0, |(_, ran)| *ran);
            let seconds = ran.saturating_sub(before) as f64 / 1e9;
            match name.as_str() {
                n if n.starts_with("argon2") => spent.hashing += seconds,
                n if n.starts_with(RUNTIME_THREADS) => spent.runtime += seconds,
                n if n.starts_with("sqlx-sqlite") => spent.sqlite += seconds,
                _ => spent.other += seconds,
            }
        }
        spent
    }
}

/// CPU seconds by kind of thread.
#[derive(Debug, Clone, Copy, Default)]
struct ThreadTimes {
    hashing: f64,
    runtime: f64,
    sqlite: f64,
    other: f64,
}

impl ThreadTimes {
    fn add(self, other: Self) -> Self {
        Self {
            hashing: self.hashing + other.hashing,
            runtime: self.runtime + other.runtime,
            sqlite: self.sqlite + other.sqlite,
            other: self.other + other.other,
        }
    }

    fn total(self) -> f64 {
        self.hashing + self.runtime + self.sqlite + self.other
    }
}

/// The whole machine's CPU time in ticks, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTicks {
    idle: u64,
    total: u64,
}

impl CpuTicks {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let line = stat.lines().next().expect("cpu line");
        // user nice system idle iowait irq softirq steal (guest time is in user).
        let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().expect("tick count")).collect();
        Self {
            idle: fields[3] + fields[4],
            total: fields.iter().sum(),
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            idle: self.idle - earlier.idle,
            total: self.total - earlier.total,
        }
    }

    fn add(self, other: Self) -> Self {
        Self {
            idle: self.idle + other.idle,
            total: self.total + other.total,
        }
    }

    fn idle_share(self) -> f64 {
        self.idle as f64 / self.total.max(1) as f64
    }
}

/// The baseline of the protected page: the largest public page.
const PUBLIC_PAGE: &str = "GET /register (server-rendered public page)";

/// `/` for the session whose refresh cookie is `refresh`, in turns with
/// [`PUBLIC_PAGE`].
fn protected_page_turns(server: &Server, refresh: &str) -> Turns {
    let cookie = Load::get(&[&format!("Cookie: gatehouse_refresh={refresh}")]);
    in_turns(&server.base, ("/", &cookie), ("/register", &Load::get(&[])))
}

/// A figure's path and its baseline's, loaded in turns.
fn in_turns(base: &str, figure: (&str, &Load), baseline: (&str, &Load)) -> Turns {
    let mut turns = Turns::default();
    for _ in 0..ROUNDS {
        turns.baseline.push(wrk::run(base, baseline.0, baseline.1, TURN));
        turns.figure.push(wrk::run(base, figure.0, figure.1, TURN));
    }
    turns
}

fn which_wrk() {
    let found = std::process::Command::new("wrk").arg("--version").output().is_ok();
    assert!(found, "wrk is needed: `make bench` installs it (apt-get install wrk)");
}

/// The time of one argon2 hash at the product's default cost, for the bound:
/// argon2 itself, one hash after another on one thread, its working memory
/// kept between hashes as the product's hashing threads keep theirs, and
/// nothing else (no queue, no hand-off between threads), over `run`.
async fn argon2_alone(run: Duration) -> Duration {
    tokio::task::spawn_blocking(move || {
        let defaults = Settings::default();
        let params =
            argon2::Params::new(defaults.argon2_memory_kib, defaults.argon2_iterations, defaults.argon2_parallelism, None)
                .expect("argon2 parameters");
        let mut memory = vec![argon2::Block::default(); params.block_count()];
        let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut output = [0u8; 32];
        let (started, mut hashes) = (Instant::now(), 0u32);
        while started.elapsed() < run {
            argon2
                .hash_password_into_with_memory(PASSWORD.as_bytes(), b"a salt of 16+ bytes", &mut output, &mut memory)
                .expect("hash");
            hashes += 1;
        }
        started.elapsed() / hashes
    })
    .await
    .expect("hashing thread")
}

/// Password hashes per second with the product's hasher and default cost,
/// `at_once` hashing together on as many threads, for `run`.
async fn hash_rate(at_once: usize, run: Duration) -> f64 {
    let defaults = Settings::default();
    let hasher = PasswordHasher::new(
        defaults.argon2_memory_kib,
        defaults.argon2_iterations,
        defaults.argon2_parallelism,
        at_once,
    )
    .await
    .expect("hasher");
    let started = Instant::now();
    let workers: Vec<_> = (0..at_once)
        .map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                let mut hashes = 0u32;
                while started.elapsed() < run {
                    hasher.hash(Password::new(PASSWORD.into())).await.expect("hash");
                    hashes += 1;
                }
                hashes
            })
        })
        .collect();
    let mut hashes = 0;
    for worker in workers {
        hashes += worker.await.expect("hasher task");
    }
    f64::from(hashes) / started.elapsed().as_secs_f64()
}

async fn refresh_figure(report: &mut Report, server: &Server, database: &str) {
    let mut turns = Turns::default();
    for round in 0..ROUNDS {
        let baseline = database_write_rate(&server.auth.settings().database_url, round, TURN).await;
        turns.baseline.push(Measured {
            requests_per_second: baseline,
            ..Measured::default()
        });
        // One session per wrk connection, new each turn: each connection
        // follows its own rotation from a token nobody presented yet.
        let mut cookies = Vec::new();
        for i in 0..wrk::WRITE_CONNECTIONS {
            cookies.push(session(&server.auth, &format!("rotation-{i}")).await.1);
        }
        let load = Load::rotating_refresh(&cookies);
        turns.figure.push(wrk::run(&server.base, "/auth/refresh", &load, TURN));
    }
    let figure = Figure::new(
        &format!("POST /auth/refresh ({database})"),
        turns,
        &format!("{database}: one insert + one update in a transaction"),
        0.5,
    );
    report.compared(figure, "tx/s");
}

/// The database's own rate for one insert plus one update in a transaction
/// (what a rotation writes, without the rest), with as many writers as wrk has
/// connections, on a table of its own in the same database; `round` keeps
/// each turn's rows apart.
async fn database_write_rate(url: &str, round: usize, run: Duration) -> f64 {
    use sqlx::any::AnyPoolOptions;
    let sqlite = url.starts_with("sqlite:");
    // PostgreSQL's writers; on SQLite, only the table is made through it.
    let pool = AnyPoolOptions::new()
        .max_connections(wrk::WRITE_CONNECTIONS as u32)
        .connect(url)
        .await
        .expect("baseline pool");
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_writes (id TEXT PRIMARY KEY, counter BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .expect("baseline table");
    // Written as the store writes: on SQLite every write goes through one
    // connection, which writers queue for in memory, and a transaction is
    // sent as one batch that takes the write lock at once. Without the queue
    // writers would sleep in SQLite's busy handler, and one could starve past
    // its timeout. Each transaction is committed alone, as the baseline is
    // defined; the store commits batches that wait together (group commit),
    // and that saving is part of what the refresh figure shows.
    let sqlite_writer = if sqlite {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.expect("baseline writer");
        sqlx::Executor::execute(&mut conn, "PRAGMA busy_timeout = 5000").await.expect("pragma");
        Some(Arc::new(tokio::sync::Mutex::new(conn)))
    } else {
        None
    };
    let deadline = Instant::now() + run;
    let mut writers = Vec::new();
    for writer in 0..wrk::WRITE_CONNECTIONS {
        let (pool, sqlite_writer) = (pool.clone(), sqlite_writer.clone());
        writers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let id = format!("{round}-{writer}-{done}");
                let (insert, update) = (
                    "INSERT INTO bench_writes (id, counter) VALUES ($1, 0)",
                    "UPDATE bench_writes SET counter = counter + 1 WHERE id = $1",
                );
                match &sqlite_writer {
                    Some(conn) => {
                        let batch = format!("BEGIN IMMEDIATE; {insert}; {update}; COMMIT");
                        let mut conn = conn.lock().await;
                        sqlx::query(&batch).bind(&id).execute(&mut *conn).await.expect("transaction");
                    }
                    None => {
                        let (insert, update) = (sqlx::query(insert).bind(&id), sqlx::query(update).bind(&id));
                        let mut tx = pool.begin().await.expect("begin");
                        insert.execute(&mut *tx).await.expect("insert");
                        update.execute(&mut *tx).await.expect("update");
                        tx.commit().await.expect("commit");
                    }
                }
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for writer in writers {
        total += writer.await.expect("writer");
    }
    total as f64 / run.as_secs_f64()
}

async fn postgres_database() -> Option<(String, String)> {
    use sqlx::Connection as _;
    let admin = std::env::var("GATEHOUSE_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES.into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
    let name = format!("gatehouse_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.ok()?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_string())?;
    Some((format!("{base}/{name}"), name))
}

async fn drop_postgres_database(name: &str) {
    use sqlx::Connection as _;
    let admin = std::env::var("GATEHOUSE_TEST_POSTGRES").unwrap_or_else(|_| POSTGRES.into());
    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
    }
}
