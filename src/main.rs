//! The `gatehouse` binary: serve the app (default), apply migrations, create
//! users and reset links, rotate signing keys.

use std::io::Read as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gatehouse::auth::clock::SystemClock;
use gatehouse::auth::key_encryption::KeyEncryptionKey;
use gatehouse::auth::keys::KeyRing;
use gatehouse::auth::password::Password;
use gatehouse::auth::{Auth, WithSources, ROLE_ADMIN, ROLE_USER};
use gatehouse::config::{leptos_options, Settings};
use gatehouse::server::health::Stage;
use gatehouse::server::listen::HEADER_READ_TIMEOUT;
use gatehouse::server::{app, AppState};
use gatehouse::store::Store;

/// mimalloc rather than glibc's malloc: under `make soak` the server's resident
/// memory with glibc still climbed after ten minutes (freed memory held in an
/// arena per allocating thread, sqlx's SQLite threads among them); with
/// mimalloc it is level from the first minute (BENCHMARKS.md, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gatehouse", version, about = "JWT login for Leptos apps")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app at LEPTOS_SITE_ADDR (default 127.0.0.1:3000). The default.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = ROLE_USER, value_parser = [ROLE_USER, ROLE_ADMIN])]
        role: String,
    },
    /// Change a user's role; their sessions end on every instance within a
    /// second, and they log in again with the new role.
    SetRole {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = [ROLE_USER, ROLE_ADMIN])]
        role: String,
    },
    /// Print a one-time password-reset link for a user, for operators without
    /// mail. It voids the user's earlier links and lives password_reset_ttl.
    ResetLink {
        #[arg(long)]
        username: String,
    },
    /// Remove a user's authenticator app and recovery codes, for someone who
    /// lost both: they sign in with the password alone and set one up again.
    RemoveSecondFactor {
        #[arg(long)]
        username: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; the current one stays published until its tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    if let Err(message) = start_logging() {
        eprintln!("gatehouse: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // leptos#4647: streaming can stall with a single worker; never run fewer than two.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard output, as text for people or, with
/// `GATEHOUSE_LOG_FORMAT=json`, one JSON object per line for a log pipeline:
/// each line lists its spans with their fields, the request's id among them.
fn start_logging() -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let format = std::env::var("GATEHOUSE_LOG_FORMAT").unwrap_or_default();
    match format.as_str() {
        "" | "text" => tracing_subscriber::fmt().with_env_filter(filter).init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_env_filter(filter)
            .init(),
        other => return Err(format!("GATEHOUSE_LOG_FORMAT must be text or json, not {other:?}")),
    }
    Ok(())
}

async fn run(command: Command) -> Result<(), String> {
    let settings = Settings::load().map_err(|e| e.to_string())?;
    let store = Store::open(&settings.database_url)
        .await
        .map_err(|e| WithSources(&e).to_string())?;
    match command {
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let encryption = KeyEncryptionKey::configured(&settings).map_err(|e| WithSources(&e).to_string())?;
            let kid = KeyRing::rotate(
                &store,
                encryption.as_ref(),
                gatehouse::auth::clock::Clock::now(&SystemClock),
            )
            .await
            .map_err(|e| WithSources(&e).to_string())?;
            println!("new signing key {kid}; running servers pick it up within a minute");
            Ok(())
        }
        Command::User {
            command: UserCommand::Create { username, role },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut password)
                .map_err(|e| format!("reading the password from standard input: {e}"))?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            let auth = Auth::new(settings, store, Arc::new(SystemClock))
                .await
                .map_err(|e| WithSources(&e).to_string())?;
            let user = auth
                .create_user(&username, Password::new(password), &role)
                .await
                .map_err(|e| match e {
                    gatehouse::auth::AuthError::WeakPassword(reasons) => {
                        format!("the password is too weak: {}", reasons.join(" "))
                    }
                    other => WithSources(&other).to_string(),
                })?;
            println!("created {} ({}) with role {}", user.username, user.id, user.role);
            Ok(())
        }
        Command::User {
            command: UserCommand::SetRole { username, role },
        } => {
            let auth = Auth::new(settings, store, Arc::new(SystemClock))
                .await
                .map_err(|e| WithSources(&e).to_string())?;
            let user = auth.set_role(&username, &role).await.map_err(|e| match e {
                gatehouse::auth::AuthError::NotFound => format!("no user named {username}"),
                other => WithSources(&other).to_string(),
            })?;
            println!(
                "{} ({}) now has role {}; their sessions have ended",
                user.username, user.id, user.role
            );
            Ok(())
        }
        Command::User {
            command: UserCommand::ResetLink { username },
        } => {
            let auth = Auth::new(settings, store, Arc::new(SystemClock))
                .await
                .map_err(|e| WithSources(&e).to_string())?;
            let link = auth.reset_link(&username).await.map_err(|e| match e {
                gatehouse::auth::AuthError::NotFound => format!("no user named {username}"),
                other => WithSources(&other).to_string(),
            })?;
            println!("{link}");
            Ok(())
        }
        Command::User {
            command: UserCommand::RemoveSecondFactor { username },
        } => {
            let auth = Auth::new(settings, store, Arc::new(SystemClock))
                .await
                .map_err(|e| WithSources(&e).to_string())?;
            auth.remove_second_factor_of(&username).await.map_err(|e| match e {
                gatehouse::auth::AuthError::NotFound => format!("no user named {username}"),
                gatehouse::auth::AuthError::TotpNotEnabled => format!("{username} has no second factor"),
                other => WithSources(&other).to_string(),
            })?;
            println!("{username} signs in with the password alone now; their recovery codes are void");
            Ok(())
        }
        Command::Serve => serve(settings, store).await,
    }
}

async fn serve(settings: Settings, store: Store) -> Result<(), String> {
    if !settings.cookie_secure {
        tracing::warn!(
            "GATEHOUSE_COOKIE_SECURE=false: the refresh cookie is sent over plain HTTP without the \
             __Host- prefix. Use this only for local development, never in production."
        );
    }
    let leptos = leptos_options().map_err(|e| e.to_string())?;
    let addr = leptos.site_addr;
    let metrics = metrics_listener(&settings, addr).await?;
    let auth = Arc::new(
        Auth::new(settings, store.clone(), Arc::new(SystemClock))
            .await
            .map_err(|e| WithSources(&e).to_string())?,
    );
    if !auth.signing_keys_encrypted() {
        tracing::warn!(
            "signing keys are stored unencrypted in the database: set GATEHOUSE_KEY_ENCRYPTION_KEY \
             (32 bytes, base64) or key_encryption_key_file to encrypt them at rest"
        );
    }
    match (auth.settings().smtp_url.is_empty(), auth.settings().public_url.is_empty()) {
        (true, _) => tracing::warn!(
            dir = %auth.settings().mail_dir,
            "GATEHOUSE_SMTP_URL is not set: mails (password resets, address verification) are written \
             to files in this directory instead of sent"
        ),
        (false, true) => tracing::warn!(
            "GATEHOUSE_PUBLIC_URL is not set: links in mails point at {}, the address this server listens on",
            auth.site_url()
        ),
        (false, false) => {}
    }
    let outbox = gatehouse::mail::spawn_outbox(&auth).map_err(|e| WithSources(&e).to_string())?;
    // Revocations and events from other instances and processes.
    let relay = gatehouse::auth::events::spawn_relay(&auth);
    let upkeep = tokio::spawn({
        let auth = auth.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                if let Err(err) = auth.maintain().await {
                    tracing::warn!(error = %WithSources(&err), "periodic upkeep failed");
                }
            }
        }
    });
    let metrics = metrics.map(|(listener, handle)| {
        let upkeep = gatehouse::server::metrics::spawn_upkeep(handle.clone(), auth.clone());
        let serving = tokio::spawn(gatehouse::server::listen::serve(
            listener,
            gatehouse::server::metrics::router(handle),
            HEADER_READ_TIMEOUT,
            std::future::pending(),
            Duration::ZERO,
        ));
        [upkeep, serving]
    });
    let delay = Duration::from_secs(auth.settings().shutdown_delay.unsigned_abs());
    let grace = Duration::from_secs(auth.settings().shutdown_grace.unsigned_abs());
    let state = AppState::new(leptos, auth);
    let router = app(state.clone());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!("listening on http://{addr}");
    let stop = {
        let state = state.clone();
        async move {
            shutdown_signal().await;
            state.lifecycle.advance(Stage::Draining);
            tracing::info!(delay_seconds = delay.as_secs(), "shutting down: /readyz answers 503 from now on");
            tokio::time::sleep(delay).await;
            tracing::info!(grace_seconds = grace.as_secs(), "shutting down: no longer accepting; closing live sockets");
            state.lifecycle.advance(Stage::Stopping);
        }
    };
    gatehouse::server::listen::serve(listener, router, HEADER_READ_TIMEOUT, stop, grace).await;
    // The sockets were told to go away when accepting stopped; their
    // closing handshakes end by themselves, within a few seconds.
    let sockets_closed = async {
        while state.sockets.total() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(SOCKETS_CLOSE_WITHIN, sockets_closed).await;
    upkeep.abort();
    relay.abort();
    outbox.abort();
    metrics.into_iter().flatten().for_each(|task| task.abort());
    // On SQLite, after what the writer holds is committed.
    store.close().await;
    tracing::info!("shut down");
    Ok(())
}

/// Live sockets' closing handshakes take this long at most (one frame sent,
/// the client's answer awaited for two seconds).
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// The metrics recorder and the listener its endpoint is served on, if
/// `metrics_addr` asks for them: never the app's own address.
async fn metrics_listener(
    settings: &Settings,
    site: std::net::SocketAddr,
) -> Result<Option<(tokio::net::TcpListener, metrics_exporter_prometheus::PrometheusHandle)>, String> {
    if settings.metrics_addr.is_empty() {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = settings
        .metrics_addr
        .parse()
        .map_err(|e| format!("GATEHOUSE_METRICS_ADDR {}: {e}", settings.metrics_addr))?;
    if addr == site {
        return Err(format!(
            "GATEHOUSE_METRICS_ADDR must not be the app's own address {site}: metrics are for operators, not the public"
        ));
    }
    let handle = gatehouse::metrics::install().map_err(|e| format!("cannot set up metrics: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    tracing::info!("metrics at http://{addr}/metrics");
    Ok(Some((listener, handle)))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
