//! Runtime settings: `Leptos.toml` (section `[gatehouse]`) with safe defaults, each
//! overridable by an environment variable. A bad value stops the start with a
//! message naming the setting.
//!
//! Every setting is declared once, in the table below: its file key, type,
//! default, environment variable, rules and meaning (`setting.rs` says what the
//! table turns into). `docs/configuration.md` shows the same table to operators;
//! a test keeps the two in step.

#[cfg(test)]
mod documented;
mod rate_limit;
mod setting;
#[cfg(test)]
mod tests;

use std::path::Path;

use ipnet::IpNet;
use leptos::config::LeptosOptions;
use serde::Deserialize;

pub use rate_limit::RateLimit;
use setting::{declare_settings, require, Refused};

/// Where the settings file is looked for unless `GATEHOUSE_CONFIG` names another.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Hashing threads at most: each keeps `argon2_memory_kib` of memory.
const MAX_HASH_CONCURRENCY: usize = 256;

const MINUTE: i64 = 60;
const DAY: i64 = 86_400;
/// Far beyond any sensible session, and far from overflowing `now + ttl`.
const TEN_YEARS: i64 = 10 * 365 * DAY;
/// Seconds a revocation is remembered past the lifetime of the access tokens
/// it refuses: instances' clocks may disagree a little about when those end.
const REVOCATION_CLOCK_MARGIN: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("setting {setting} has a bad value {value:?}: {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        reason: String,
    },
    #[error("Leptos settings: {0}")]
    Leptos(String),
}

declare_settings! {
    /// `sqlite://…` (the file is created on first start) or `postgres://…`.
    database_url: String = "sqlite://data/gatehouse.db".into(), env "DATABASE_URL",
        valid |url, _| require(
            ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| url.starts_with(scheme)),
            without_password(url),
            "must start with sqlite:, postgres:// or postgresql://",
        );

    /// Lifetime of an access token.
    access_ttl: i64 = 15 * MINUTE, env "GATEHOUSE_ACCESS_TTL",
        valid |ttl, _| require((10..=DAY).contains(ttl), ttl, "must be 10 to 86400 seconds");

    /// A session unused this long ends.
    refresh_idle_ttl: i64 = 7 * DAY, env "GATEHOUSE_REFRESH_IDLE_TTL",
        valid |ttl, all| {
            require(*ttl <= TEN_YEARS, ttl, "must be at most ten years")?;
            require(*ttl >= all.access_ttl, ttl, "must be at least the access token lifetime")
        };

    /// A session ends this long after login, used or not.
    session_max_age: i64 = 30 * DAY, env "GATEHOUSE_SESSION_MAX_AGE",
        valid |age, all| {
            require(*age <= TEN_YEARS, age, "must be at most ten years")?;
            require(*age >= all.access_ttl, age, "must be at least the access token lifetime")
        };

    /// A rotated refresh token presented again within this window is a race,
    /// answered idempotently; later it is theft.
    refresh_grace: i64 = 10, env "GATEHOUSE_REFRESH_GRACE",
        valid |grace, _| require((0..=300).contains(grace), grace, "must be 0 to 300 seconds");

    /// `false` allows plain-HTTP local use (no `Secure`, no `__Host-` prefix).
    cookie_secure: bool = true, env "GATEHOUSE_COOKIE_SECURE";

    /// The `iss` of every access token.
    issuer: String = "gatehouse".into(), env "GATEHOUSE_ISSUER",
        valid |issuer, _| require(!issuer.trim().is_empty(), issuer, "must not be empty");

    /// The `aud` of every access token.
    audience: String = "gatehouse".into(), env "GATEHOUSE_AUDIENCE",
        valid |audience, _| require(!audience.trim().is_empty(), audience, "must not be empty");

    /// Where people reach this server, `scheme://host[:port]` (empty: wherever
    /// a request says it came to). Set it in production: the cross-site check
    /// then compares `Origin` with it, scheme included.
    public_url: String = String::new(), env "GATEHOUSE_PUBLIC_URL",
        valid |url, _| require(url.is_empty() || is_origin(url), url, "must be scheme://host[:port], without a path");

    /// Other origins (scheme://host[:port]) allowed to call cookie-authenticated
    /// endpoints and open WebSockets. The server's own origin is always allowed.
    allowed_origins: Vec<String> = Vec::new(), env "GATEHOUSE_ALLOWED_ORIGINS",
        valid |origins, _| origins.iter().try_for_each(|origin| {
            require(is_origin(origin), origin, "each origin is scheme://host[:port], without a path")
        });

    /// A file holding the key that encrypts signing keys at rest (32 bytes,
    /// base64); `GATEHOUSE_KEY_ENCRYPTION_KEY` holds the key itself instead.
    key_encryption_key_file: String = String::new(), env "GATEHOUSE_KEY_ENCRYPTION_KEY_FILE";

    /// Where mail goes out: `smtp://host:port` (STARTTLS when offered),
    /// `smtps://user:pass@host` (TLS), or empty to write each mail to a file
    /// under `mail_dir` instead (development).
    smtp_url: String = String::new(), env "GATEHOUSE_SMTP_URL",
        valid |url, _| require(
            url.is_empty() || url.starts_with("smtp://") || url.starts_with("smtps://"),
            without_password(url),
            "must be empty, smtp://… or smtps://…",
        );

    /// The `From` of every mail: an address, or `Name <address>`.
    mail_from: String = "Gatehouse <gatehouse@localhost>".into(), env "GATEHOUSE_MAIL_FROM",
        valid |from, _| require(from.parse::<lettre::message::Mailbox>().is_ok(), from, "must be an address or Name <address>");

    /// Where mails are written when no SMTP server is configured.
    mail_dir: String = "data/mail".into(), env "GATEHOUSE_MAIL_DIR";

    /// How long a password-reset link works.
    password_reset_ttl: i64 = 30 * MINUTE, env "GATEHOUSE_PASSWORD_RESET_TTL",
        valid |ttl, _| require((60..=DAY).contains(ttl), ttl, "must be 60 to 86400 seconds");

    /// How long an address-verification link works.
    email_verification_ttl: i64 = DAY, env "GATEHOUSE_EMAIL_VERIFICATION_TTL",
        valid |ttl, _| require((60..=30 * DAY).contains(ttl), ttl, "must be 60 seconds to 30 days");

    /// Sensitive changes (password, address, passkeys, second factor,
    /// recovery codes, logging out everywhere) need a sign-in or re-auth
    /// this recent.
    reauth_window: i64 = 5 * MINUTE, env "GATEHOUSE_REAUTH_WINDOW",
        valid |window, _| require((30..=DAY).contains(window), window, "must be 30 to 86400 seconds");

    /// Who must have a second factor: `none`, `admins` or `everyone`. Such a
    /// user signed in without one is sent to set one up before anything else.
    require_second_factor: String = "none".into(), env "GATEHOUSE_REQUIRE_SECOND_FACTOR",
        valid |who, _| require(
            ["none", "admins", "everyone"].contains(&who.as_str()),
            who,
            "must be none, admins or everyone",
        );

    /// The name authenticator apps show beside the account's codes.
    totp_issuer: String = "Gatehouse".into(), env "GATEHOUSE_TOTP_ISSUER",
        valid |issuer, _| require(
            !issuer.trim().is_empty() && !issuer.contains(':'),
            issuer,
            "must not be empty or contain ':'",
        );

    /// Addresses or CIDR ranges whose `X-Forwarded-For` is believed. Empty: the
    /// socket address is the client.
    trusted_proxies: Vec<IpNet> = Vec::new(), env "GATEHOUSE_TRUSTED_PROXIES";

    /// argon2id memory cost (OWASP's default).
    argon2_memory_kib: u32 = 19_456, env "GATEHOUSE_ARGON2_MEMORY_KIB",
        valid |_, all| argon2_cost(Argon2Cost::Memory, all);

    /// argon2id time cost (OWASP's default).
    argon2_iterations: u32 = 2, env "GATEHOUSE_ARGON2_ITERATIONS",
        valid |_, all| argon2_cost(Argon2Cost::Iterations, all);

    /// argon2id lanes (OWASP's default).
    argon2_parallelism: u32 = 1, env "GATEHOUSE_ARGON2_PARALLELISM",
        valid |_, all| argon2_cost(Argon2Cost::Parallelism, all);

    /// Password hashes computed at once (0: one per core).
    hash_concurrency: usize = 0, env "GATEHOUSE_HASH_CONCURRENCY",
        valid |threads, _| require(
            *threads <= MAX_HASH_CONCURRENCY,
            threads,
            format!("must be 0 (one per core) to {MAX_HASH_CONCURRENCY}: each is a thread with its own argon2 memory"),
        );

    /// Failed logins allowed per username, from every address together; past
    /// them each address waits a growing delay before each attempt.
    login_failures_per_username: RateLimit = RateLimit { count: 5, per_seconds: 60 },
        env "GATEHOUSE_LOGIN_FAILURES_PER_USERNAME";

    /// Failed logins allowed per username from one client address; past them
    /// that address is refused for that username.
    login_failures_per_username_and_ip: RateLimit = RateLimit { count: 5, per_seconds: 60 },
        env "GATEHOUSE_LOGIN_FAILURES_PER_USERNAME_AND_IP";

    /// The longest delay a username past its allowance makes each address wait.
    login_delay_max: i64 = 60, env "GATEHOUSE_LOGIN_DELAY_MAX",
        valid |max, _| require((1..=3600).contains(max), max, "must be 1 to 3600 seconds");

    /// Failed logins allowed per client address.
    login_failures_per_ip: RateLimit = RateLimit { count: 20, per_seconds: 60 },
        env "GATEHOUSE_LOGIN_FAILURES_PER_IP";

    /// Accounts created per client address.
    registrations_per_ip: RateLimit = RateLimit { count: 10, per_seconds: 3600 },
        env "GATEHOUSE_REGISTRATIONS_PER_IP";

    /// Password-reset requests per e-mail address, known or not.
    password_resets_per_email: RateLimit = RateLimit { count: 3, per_seconds: 3600 },
        env "GATEHOUSE_PASSWORD_RESETS_PER_EMAIL";

    /// Password-reset requests per client address.
    password_resets_per_ip: RateLimit = RateLimit { count: 20, per_seconds: 3600 },
        env "GATEHOUSE_PASSWORD_RESETS_PER_IP";

    /// Verification mails per account.
    verification_mails_per_user: RateLimit = RateLimit { count: 5, per_seconds: 3600 },
        env "GATEHOUSE_VERIFICATION_MAILS_PER_USER";

    /// Passkey sign-ins begun per client address.
    passkey_ceremonies_per_ip: RateLimit = RateLimit { count: 60, per_seconds: 60 },
        env "GATEHOUSE_PASSKEY_CEREMONIES_PER_IP";

    /// Refresh requests per session.
    refreshes_per_session: RateLimit = RateLimit { count: 60, per_seconds: 60 },
        env "GATEHOUSE_REFRESHES_PER_SESSION";

    /// Live sessions a user may have at once: a login or registration beyond
    /// it ends the least recently used.
    max_sessions_per_user: i64 = 100, env "GATEHOUSE_MAX_SESSIONS_PER_USER",
        valid |max, _| require((1..=10_000).contains(max), max, "must be 1 to 10000");

    /// A session that ended (logged out, revoked, expired) is deleted with its
    /// refresh tokens this long after.
    ended_session_retention: i64 = 30 * DAY, env "GATEHOUSE_ENDED_SESSION_RETENTION",
        // A revoked session's row is what refuses its access tokens after a
        // restart (those revoked within `revocation_memory` are loaded), so
        // it is kept well past their lifetime.
        valid |kept, all| require(
            (DAY..=TEN_YEARS).contains(kept) && *kept > all.revocation_memory(),
            kept,
            "must be one day to ten years, and longer than the access token lifetime and a minute",
        );

    /// Audit events are deleted this long after they happened; 0 keeps them for ever.
    audit_retention: i64 = 365 * DAY, env "GATEHOUSE_AUDIT_RETENTION",
        valid |kept, _| require((0..=100 * 365 * DAY).contains(kept), kept, "must be 0 (for ever) to a hundred years");

    /// Where Prometheus metrics are served, `ip:port`, apart from the app's
    /// own address; empty: not served (and not collected).
    metrics_addr: String = String::new(), env "GATEHOUSE_METRICS_ADDR",
        valid |addr, _| require(
            addr.is_empty() || addr.parse::<std::net::SocketAddr>().is_ok(),
            addr,
            "must be empty or an IP address and port, e.g. 127.0.0.1:9100",
        );

    /// After SIGTERM or Ctrl-C, how long this instance keeps accepting while
    /// `/readyz` says it is draining, so a load balancer stops sending it
    /// requests before it stops accepting them.
    shutdown_delay: i64 = 0, env "GATEHOUSE_SHUTDOWN_DELAY",
        valid |delay, _| require((0..=300).contains(delay), delay, "must be 0 to 300 seconds");

    /// Once it stops accepting, how long requests in flight get to finish.
    shutdown_grace: i64 = 10, env "GATEHOUSE_SHUTDOWN_GRACE",
        valid |grace, _| require((1..=3600).contains(grace), grace, "must be 1 to 3600 seconds");
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    gatehouse: FileSettings,
}

impl Settings {
    /// How long after a session's revocation its access tokens may still be
    /// live somewhere: their lifetime, and a margin for clocks.
    pub fn revocation_memory(&self) -> i64 {
        self.access_ttl + REVOCATION_CLOCK_MARGIN
    }

    /// Reads the file named by `GATEHOUSE_CONFIG`, else `Leptos.toml` if it exists,
    /// then applies environment overrides.
    pub fn load() -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let path = env("GATEHOUSE_CONFIG");
        let text = match &path {
            Some(path) => Some(read(path)?),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => Some(read(DEFAULT_CONFIG_FILE)?),
            None => None,
        };
        let name = path.as_deref().unwrap_or(DEFAULT_CONFIG_FILE);
        Self::from_sources(name, text.as_deref(), env)
    }

    /// Builds settings from a file's text (if any) and an environment lookup.
    pub fn from_sources(
        file_name: &str,
        file_text: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file: ConfigFile = match file_text {
            Some(text) => toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: file_name.to_string(),
                // The full message names the offending key and line.
                message: e.to_string(),
            })?,
            None => ConfigFile::default(),
        };
        let settings = Self::merge(file.gatehouse, env)?;
        settings.validate()?;
        Ok(settings)
    }
}

fn read(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_string(),
        source,
    })
}

/// `scheme://host[:port]` as browsers send it in `Origin`: no path, query or fragment.
fn is_origin(origin: &str) -> bool {
    (origin.starts_with("https://") || origin.starts_with("http://"))
        && !origin.trim_end_matches('/').contains(['?', '#'])
        && origin.split("://").nth(1).is_some_and(|host| !host.is_empty() && !host.contains('/'))
}

/// One of the three argon2id cost settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Argon2Cost {
    Memory,
    Iterations,
    Parallelism,
}

/// argon2 judges its three costs together; each of the three settings reports
/// the refusals that are about it, so exactly one names the bad one.
fn argon2_cost(setting: Argon2Cost, all: &Settings) -> Result<(), Refused> {
    let (memory, iterations, lanes) = (all.argon2_memory_kib, all.argon2_iterations, all.argon2_parallelism);
    // argon2 0.5 multiplies the lanes by 8 unchecked before it checks their
    // maximum: so many lanes would panic there (debug) or be blamed on memory.
    let params = if lanes > argon2::Params::MAX_P_COST {
        Err(argon2::Error::ThreadsTooMany)
    } else {
        argon2::Params::new(memory, iterations, lanes, None)
    };
    let Err(refused) = params else {
        return Ok(());
    };
    let about = match refused {
        argon2::Error::TimeTooSmall => Argon2Cost::Iterations,
        argon2::Error::ThreadsTooFew | argon2::Error::ThreadsTooMany => Argon2Cost::Parallelism,
        _ => Argon2Cost::Memory,
    };
    require(
        about != setting,
        format!("m={memory} t={iterations} p={lanes}"),
        format!("not valid argon2 parameters: {refused} (memory must be at least 8 KiB per lane)"),
    )
}

/// Leptos' own options (site address, output name, asset locations) from the
/// environment cargo-leptos sets, with defaults that let the release binary run
/// on its own from the repository root.
pub fn leptos_options() -> Result<LeptosOptions, ConfigError> {
    let conf = leptos::config::get_configuration(None)
        .map_err(|e| ConfigError::Leptos(e.to_string()))?;
    let mut options = conf.leptos_options;
    if options.output_name.is_empty() {
        options.output_name = env!("CARGO_PKG_NAME").into();
    }
    // Run outside cargo-leptos, a release build still knows it was built with
    // hashed file names: cargo-leptos leaves the hash file beside the binary.
    if std::env::var_os("LEPTOS_HASH_FILES").is_none() {
        options.hash_files = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(options.hash_file.as_ref())))
            .is_some_and(|file| file.exists());
    }
    Ok(options)
}

/// A database URL fit for an error message: the password, if any, replaced.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}
