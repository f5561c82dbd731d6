//! Runtime settings: `Leptos.toml` (section `[gatehouse]`) with safe defaults, each
//! overridable by an environment variable. A bad value stops the start with a
//! message naming the setting.

use std::path::Path;
use std::str::FromStr;

use leptos::config::LeptosOptions;
use serde::Deserialize;

/// Where the settings file is looked for unless `GATEHOUSE_CONFIG` names another.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

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

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://…` (default, file created on first start) or `postgres://…`.
    pub database_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/gatehouse.db".to_string(),
        }
    }
}

/// The file's shape: every key optional, unknown keys refused so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
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
                message: e.message().to_string(),
            })?,
            None => ConfigFile::default(),
        };
        let defaults = Self::default();
        let file = file.gatehouse;
        let settings = Self {
            database_url: pick("DATABASE_URL", file.database_url, &env, defaults.database_url)?,
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
                value: url.clone(),
                reason: "must start with sqlite:, postgres:// or postgresql://".to_string(),
            });
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
    fn unknown_key_in_file_is_refused() {
        let file = "[gatehouse]\ndatabse_url = \"typo\"\n";
        let err = Settings::from_sources("Leptos.toml", Some(file), no_env).unwrap_err();
        assert!(err.to_string().contains("databse_url"), "{err}");
    }
}
