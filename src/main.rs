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
use gatehouse::server::{app, AppState};
use gatehouse::store::Store;

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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; the current one stays published until its tokens expire.
    Rotate,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();
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
    let router = app(AppState::new(leptos, auth));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!("listening on http://{addr}");
    gatehouse::server::listen::serve(
        listener,
        router,
        gatehouse::server::listen::HEADER_READ_TIMEOUT,
        shutdown_signal(),
    )
    .await;
    upkeep.abort();
    relay.abort();
    outbox.abort();
    store.close().await;
    Ok(())
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
