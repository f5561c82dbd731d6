//! Runtime settings: `Leptos.toml` (section `[gatehouse]`) with safe defaults, each
//! overridable by an environment variable. A bad value stops the start with a
//! message naming the setting.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use ipnet::IpNet;

use leptos::config::LeptosOptions;
use serde::Deserialize;

/// Where the settings file is looked for unless `GATEHOUSE_CONFIG` names another.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Hashing threads at most: each keeps `argon2_memory_kib` of memory.
const MAX_HASH_CONCURRENCY: usize = 256;

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

/// All runtime settings. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://…` (default, file created on first start) or `postgres://…`.
    pub database_url: String,
    /// `GATEHOUSE_ACCESS_TTL`: lifetime of an access token.
    pub access_ttl: i64,
    /// `GATEHOUSE_REFRESH_IDLE_TTL`: a session unused this long ends.
    pub refresh_idle_ttl: i64,
    /// `GATEHOUSE_SESSION_MAX_AGE`: a session ends this long after login, used or not.
    pub session_max_age: i64,
    /// `GATEHOUSE_REFRESH_GRACE`: a rotated refresh token presented again within
    /// this window is a race, answered idempotently; later it is theft.
    pub refresh_grace: i64,
    /// `GATEHOUSE_COOKIE_SECURE`: `false` allows plain-HTTP local use (no
    /// `Secure`, no `__Host-` prefix).
    pub cookie_secure: bool,
    /// `GATEHOUSE_ISSUER`: the `iss` of every access token.
    pub issuer: String,
    /// `GATEHOUSE_AUDIENCE`: the `aud` of every access token.
    pub audience: String,
    /// `GATEHOUSE_ALLOWED_ORIGINS`: other origins (scheme://host[:port]) allowed to
    /// call cookie-authenticated endpoints and open WebSockets. The server's own
    /// origin is always allowed.
    pub allowed_origins: Vec<String>,
    /// `GATEHOUSE_TRUSTED_PROXIES`: addresses or CIDR ranges whose
    /// `X-Forwarded-For` is believed. Empty: the socket address is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// `GATEHOUSE_ARGON2_MEMORY_KIB`, `GATEHOUSE_ARGON2_ITERATIONS`,
    /// `GATEHOUSE_ARGON2_PARALLELISM`: argon2id cost (OWASP's defaults).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// `GATEHOUSE_HASH_CONCURRENCY`: password hashes computed at once (0: one per core).
    pub hash_concurrency: usize,
    /// `GATEHOUSE_LOGIN_FAILURES_PER_USERNAME`: failed logins allowed per username.
    pub login_failures_per_username: RateLimit,
    /// `GATEHOUSE_LOGIN_FAILURES_PER_IP`: failed logins allowed per client address.
    pub login_failures_per_ip: RateLimit,
    /// `GATEHOUSE_REGISTRATIONS_PER_IP`: accounts created per client address.
    pub registrations_per_ip: RateLimit,
    /// `GATEHOUSE_REFRESHES_PER_SESSION`: refresh requests per session.
    pub refreshes_per_session: RateLimit,
    /// `GATEHOUSE_ENDED_SESSION_RETENTION`: a session that ended (logged out,
    /// revoked, expired) is deleted with its refresh tokens this long after.
    pub ended_session_retention: i64,
    /// `GATEHOUSE_AUDIT_RETENTION`: audit events are deleted this long after
    /// they happened; 0 keeps them for ever.
    pub audit_retention: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/gatehouse.db".to_string(),
            access_ttl: 900,
            refresh_idle_ttl: 7 * 24 * 3600,
            session_max_age: 30 * 24 * 3600,
            refresh_grace: 10,
            cookie_secure: true,
            issuer: "gatehouse".to_string(),
            audience: "gatehouse".to_string(),
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: 0,
            login_failures_per_username: RateLimit { count: 5, per_seconds: 60 },
            login_failures_per_ip: RateLimit { count: 20, per_seconds: 60 },
            registrations_per_ip: RateLimit { count: 10, per_seconds: 3600 },
            refreshes_per_session: RateLimit { count: 60, per_seconds: 60 },
            ended_session_retention: 30 * 24 * 3600,
            audit_retention: 365 * 24 * 3600,
        }
    }
}

/// "N per period", written `5/minute`, `10/hour`, `30/second` or `7/90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per_seconds: u64,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "expected COUNT/PERIOD such as 5/minute, 10/hour or 7/90s";
        let (count, period) = text.trim().split_once('/').ok_or(usage)?;
        let count: u32 = count.trim().parse().map_err(|_| usage)?;
        let per_seconds = match period.trim() {
            "second" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86_400,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or(usage)?,
        };
        if count == 0 || per_seconds == 0 {
            return Err("count and period must be positive".to_string());
        }
        Ok(Self { count, per_seconds })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A comma-separated list, as environment variables carry them.
#[derive(Debug, Clone, PartialEq, Default)]
struct List<T>(Vec<T>);

impl<T: FromStr> FromStr for List<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| item.parse().map_err(|e: T::Err| format!("{item:?}: {e}")))
            .collect::<Result<_, _>>()
            .map(List)
    }
}

/// An address or a CIDR range: `10.0.0.1` means `10.0.0.1/32`.
fn parse_proxy(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR range"))
}

#[derive(Debug, Clone, PartialEq)]
struct Proxy(IpNet);

impl FromStr for Proxy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_proxy(text).map(Proxy)
    }
}

/// The file's shape: every key optional, unknown keys refused so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    access_ttl: Option<i64>,
    refresh_idle_ttl: Option<i64>,
    session_max_age: Option<i64>,
    refresh_grace: Option<i64>,
    cookie_secure: Option<bool>,
    issuer: Option<String>,
    audience: Option<String>,
    allowed_origins: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
    argon2_memory_kib: Option<u32>,
    argon2_iterations: Option<u32>,
    argon2_parallelism: Option<u32>,
    hash_concurrency: Option<usize>,
    login_failures_per_username: Option<RateLimit>,
    login_failures_per_ip: Option<RateLimit>,
    registrations_per_ip: Option<RateLimit>,
    refreshes_per_session: Option<RateLimit>,
    ended_session_retention: Option<i64>,
    audit_retention: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    gatehouse: FileSettings,
}

impl Settings {
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
        let defaults = Self::default();
        let file = file.gatehouse;
        let trusted_proxies = match file.trusted_proxies {
            Some(items) => Some(
                items
                    .iter()
                    .map(|item| parse_proxy(item))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| ConfigError::Invalid {
                        setting: "trusted_proxies",
                        value: items.join(","),
                        reason,
                    })?,
            ),
            None => None,
        };
        let settings = Self {
            database_url: pick("DATABASE_URL", file.database_url, &env, defaults.database_url)?,
            access_ttl: pick("GATEHOUSE_ACCESS_TTL", file.access_ttl, &env, defaults.access_ttl)?,
            refresh_idle_ttl: pick(
                "GATEHOUSE_REFRESH_IDLE_TTL",
                file.refresh_idle_ttl,
                &env,
                defaults.refresh_idle_ttl,
            )?,
            session_max_age: pick(
                "GATEHOUSE_SESSION_MAX_AGE",
                file.session_max_age,
                &env,
                defaults.session_max_age,
            )?,
            refresh_grace: pick("GATEHOUSE_REFRESH_GRACE", file.refresh_grace, &env, defaults.refresh_grace)?,
            cookie_secure: pick("GATEHOUSE_COOKIE_SECURE", file.cookie_secure, &env, defaults.cookie_secure)?,
            issuer: pick("GATEHOUSE_ISSUER", file.issuer, &env, defaults.issuer)?,
            audience: pick("GATEHOUSE_AUDIENCE", file.audience, &env, defaults.audience)?,
            allowed_origins: pick(
                "GATEHOUSE_ALLOWED_ORIGINS",
                file.allowed_origins.map(List),
                &env,
                List(defaults.allowed_origins),
            )?
            .0,
            trusted_proxies: pick(
                "GATEHOUSE_TRUSTED_PROXIES",
                trusted_proxies.map(|nets| List(nets.into_iter().map(Proxy).collect())),
                &env,
                List(Vec::new()),
            )?
            .0
            .into_iter()
            .map(|Proxy(net)| net)
            .collect(),
            argon2_memory_kib: pick(
                "GATEHOUSE_ARGON2_MEMORY_KIB",
                file.argon2_memory_kib,
                &env,
                defaults.argon2_memory_kib,
            )?,
            argon2_iterations: pick(
                "GATEHOUSE_ARGON2_ITERATIONS",
                file.argon2_iterations,
                &env,
                defaults.argon2_iterations,
            )?,
            argon2_parallelism: pick(
                "GATEHOUSE_ARGON2_PARALLELISM",
                file.argon2_parallelism,
                &env,
                defaults.argon2_parallelism,
            )?,
            hash_concurrency: pick(
                "GATEHOUSE_HASH_CONCURRENCY",
                file.hash_concurrency,
                &env,
                defaults.hash_concurrency,
            )?,
            login_failures_per_username: pick(
                "GATEHOUSE_LOGIN_FAILURES_PER_USERNAME",
                file.login_failures_per_username,
                &env,
                defaults.login_failures_per_username,
            )?,
            login_failures_per_ip: pick(
                "GATEHOUSE_LOGIN_FAILURES_PER_IP",
                file.login_failures_per_ip,
                &env,
                defaults.login_failures_per_ip,
            )?,
            registrations_per_ip: pick(
                "GATEHOUSE_REGISTRATIONS_PER_IP",
                file.registrations_per_ip,
                &env,
                defaults.registrations_per_ip,
            )?,
            refreshes_per_session: pick(
                "GATEHOUSE_REFRESHES_PER_SESSION",
                file.refreshes_per_session,
                &env,
                defaults.refreshes_per_session,
            )?,
            ended_session_retention: pick(
                "GATEHOUSE_ENDED_SESSION_RETENTION",
                file.ended_session_retention,
                &env,
                defaults.ended_session_retention,
            )?,
            audit_retention: pick("GATEHOUSE_AUDIT_RETENTION", file.audit_retention, &env, defaults.audit_retention)?,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.database_url;
        let known = ["sqlite:", "postgres://", "postgresql://"];
        if !known.iter().any(|prefix| url.starts_with(prefix)) {
            return Err(ConfigError::Invalid {
                setting: "DATABASE_URL",
                value: without_password(url),
                reason: "must start with sqlite:, postgres:// or postgresql://".to_string(),
            });
        }
        let invalid = |setting: &'static str, value: String, reason: &str| ConfigError::Invalid {
            setting,
            value,
            reason: reason.to_string(),
        };
        if !(10..=86_400).contains(&self.access_ttl) {
            return Err(invalid("GATEHOUSE_ACCESS_TTL", self.access_ttl.to_string(), "must be 10 to 86400 seconds"));
        }
        // Ten years: far beyond any sensible session, and far from overflowing `now + ttl`.
        const LONGEST_SESSION: i64 = 10 * 365 * 86_400;
        if self.refresh_idle_ttl > LONGEST_SESSION {
            return Err(invalid("GATEHOUSE_REFRESH_IDLE_TTL", self.refresh_idle_ttl.to_string(), "must be at most ten years"));
        }
        if self.session_max_age > LONGEST_SESSION {
            return Err(invalid("GATEHOUSE_SESSION_MAX_AGE", self.session_max_age.to_string(), "must be at most ten years"));
        }
        if self.refresh_idle_ttl < self.access_ttl {
            return Err(invalid(
                "GATEHOUSE_REFRESH_IDLE_TTL",
                self.refresh_idle_ttl.to_string(),
                "must be at least the access token lifetime",
            ));
        }
        if self.session_max_age < self.access_ttl {
            return Err(invalid(
                "GATEHOUSE_SESSION_MAX_AGE",
                self.session_max_age.to_string(),
                "must be at least the access token lifetime",
            ));
        }
        // A revoked session's row is what refuses its access tokens after a
        // restart (those revoked in the last `access_ttl` + 60 s are loaded),
        // so it is kept well past their lifetime.
        if !(86_400..=LONGEST_SESSION).contains(&self.ended_session_retention)
            || self.ended_session_retention <= self.access_ttl + 60
        {
            return Err(invalid(
                "GATEHOUSE_ENDED_SESSION_RETENTION",
                self.ended_session_retention.to_string(),
                "must be one day to ten years, and longer than the access token lifetime and a minute",
            ));
        }
        if !(0..=100 * 365 * 86_400).contains(&self.audit_retention) {
            return Err(invalid(
                "GATEHOUSE_AUDIT_RETENTION",
                self.audit_retention.to_string(),
                "must be 0 (for ever) to a hundred years",
            ));
        }
        if !(0..=300).contains(&self.refresh_grace) {
            return Err(invalid("GATEHOUSE_REFRESH_GRACE", self.refresh_grace.to_string(), "must be 0 to 300 seconds"));
        }
        if self.issuer.trim().is_empty() {
            return Err(invalid("GATEHOUSE_ISSUER", self.issuer.clone(), "must not be empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(invalid("GATEHOUSE_AUDIENCE", self.audience.clone(), "must not be empty"));
        }
        for origin in &self.allowed_origins {
            let well_formed = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.trim_end_matches('/').contains(['?', '#'])
                && origin.split("://").nth(1).is_some_and(|host| !host.is_empty() && !host.contains('/'));
            if !well_formed {
                return Err(invalid(
                    "GATEHOUSE_ALLOWED_ORIGINS",
                    origin.clone(),
                    "each origin is scheme://host[:port], without a path",
                ));
            }
        }
        if self.hash_concurrency > MAX_HASH_CONCURRENCY {
            return Err(invalid(
                "GATEHOUSE_HASH_CONCURRENCY",
                self.hash_concurrency.to_string(),
                &format!("must be 0 (one per core) to {MAX_HASH_CONCURRENCY}: each is a thread with its own argon2 memory"),
            ));
        }
        if let Err(refused) =
            argon2::Params::new(self.argon2_memory_kib, self.argon2_iterations, self.argon2_parallelism, None)
        {
            let setting = match refused {
                argon2::Error::TimeTooSmall => "GATEHOUSE_ARGON2_ITERATIONS",
                argon2::Error::ThreadsTooFew | argon2::Error::ThreadsTooMany => "GATEHOUSE_ARGON2_PARALLELISM",
                _ => "GATEHOUSE_ARGON2_MEMORY_KIB",
            };
            return Err(invalid(
                setting,
                format!("m={} t={} p={}", self.argon2_memory_kib, self.argon2_iterations, self.argon2_parallelism),
                &format!("not valid argon2 parameters: {refused} (memory must be at least 8 KiB per lane)"),
            ));
        }
        Ok(())
    }
}

fn read(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_string(),
        source,
    })
}

/// Environment beats file beats default.
fn pick<T: FromStr>(
    env_name: &'static str,
    from_file: Option<T>,
    env: &impl Fn(&str) -> Option<String>,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env(env_name) {
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
            setting: env_name,
            value: raw.clone(),
            reason: e.to_string(),
        }),
        None => Ok(from_file.unwrap_or(default)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply_without_a_file() {
        let settings = Settings::from_sources("Leptos.toml", None, no_env).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn environment_overrides_file() {
        let file = "[gatehouse]\ndatabase_url = \"sqlite://from-file.db\"\n";
        let from_file = Settings::from_sources("Leptos.toml", Some(file), no_env).unwrap();
        assert_eq!(from_file.database_url, "sqlite://from-file.db");
        let env = |name: &str| (name == "DATABASE_URL").then(|| "postgres://db/x".to_string());
        let from_env = Settings::from_sources("Leptos.toml", Some(file), env).unwrap();
        assert_eq!(from_env.database_url, "postgres://db/x");
    }

    #[test]
    fn bad_value_names_the_setting() {
        let env = |name: &str| (name == "DATABASE_URL").then(|| "mysql://nope".to_string());
        let err = Settings::from_sources("Leptos.toml", None, env).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn every_setting_has_an_environment_override() {
        let env = |name: &str| {
            let value = match name {
                "GATEHOUSE_ACCESS_TTL" => "60",
                "GATEHOUSE_REFRESH_IDLE_TTL" => "120",
                "GATEHOUSE_SESSION_MAX_AGE" => "240",
                "GATEHOUSE_REFRESH_GRACE" => "3",
                "GATEHOUSE_COOKIE_SECURE" => "false",
                "GATEHOUSE_ISSUER" => "https://id.example",
                "GATEHOUSE_AUDIENCE" => "app",
                "GATEHOUSE_ALLOWED_ORIGINS" => "https://a.example, https://b.example:8443",
                "GATEHOUSE_TRUSTED_PROXIES" => "10.0.0.0/8,127.0.0.1",
                "GATEHOUSE_LOGIN_FAILURES_PER_USERNAME" => "3/minute",
                "GATEHOUSE_REGISTRATIONS_PER_IP" => "2/90s",
                _ => return None,
            };
            Some(value.to_string())
        };
        let s = Settings::from_sources("Leptos.toml", None, env).unwrap();
        assert_eq!((s.access_ttl, s.refresh_idle_ttl, s.session_max_age, s.refresh_grace), (60, 120, 240, 3));
        assert!(!s.cookie_secure);
        assert_eq!(s.issuer, "https://id.example");
        assert_eq!(s.audience, "app");
        assert_eq!(s.allowed_origins, ["https://a.example", "https://b.example:8443"]);
        assert_eq!(s.trusted_proxies.len(), 2);
        assert!(s.trusted_proxies[1].contains(&"127.0.0.1".parse::<IpAddr>().unwrap()));
        assert_eq!(s.login_failures_per_username, RateLimit { count: 3, per_seconds: 60 });
        assert_eq!(s.registrations_per_ip, RateLimit { count: 2, per_seconds: 90 });
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (name, value) in [
            ("GATEHOUSE_ACCESS_TTL", "0"),
            ("GATEHOUSE_ACCESS_TTL", "soon"),
            ("GATEHOUSE_REFRESH_GRACE", "-1"),
            ("GATEHOUSE_COOKIE_SECURE", "maybe"),
            ("GATEHOUSE_ALLOWED_ORIGINS", "example.com"),
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("GATEHOUSE_REFRESHES_PER_SESSION", "0/minute"),
            ("GATEHOUSE_ARGON2_MEMORY_KIB", "1"),
            ("GATEHOUSE_ARGON2_ITERATIONS", "0"),
            ("GATEHOUSE_ARGON2_PARALLELISM", "0"),
            ("GATEHOUSE_HASH_CONCURRENCY", "257"),
            ("GATEHOUSE_SESSION_MAX_AGE", "9223372036854775807"),
            ("GATEHOUSE_REFRESH_IDLE_TTL", "9223372036854775807"),
            ("GATEHOUSE_ENDED_SESSION_RETENTION", "3600"),
            ("GATEHOUSE_AUDIT_RETENTION", "-1"),
        ] {
            let env = |n: &str| (n == name).then(|| value.to_string());
            let err = Settings::from_sources("Leptos.toml", None, env).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_shipped_file_parses() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml")).unwrap();
        let settings = Settings::from_sources("Leptos.toml", Some(&text), no_env).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        let file = "[gatehouse]\ndatabse_url = \"typo\"\n";
        let err = Settings::from_sources("Leptos.toml", Some(file), no_env).unwrap_err();
        assert!(err.to_string().contains("databse_url"), "{err}");
    }

    #[test]
    fn a_bad_value_in_the_file_names_its_key() {
        let file = "[gatehouse]\naccess_ttl = \"soon\"\n";
        let err = Settings::from_sources("Leptos.toml", Some(file), no_env).unwrap_err();
        assert!(err.to_string().contains("access_ttl"), "{err}");
    }

    #[test]
    fn a_refused_database_url_hides_its_password() {
        let env = |n: &str| (n == "DATABASE_URL").then(|| "mysql://ada:s3cret@db/x".to_string());
        let err = Settings::from_sources("Leptos.toml", None, env).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL") && err.contains("ada:***@db/x"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
