//! What a setting is made of, and the macro that turns the one table of settings
//! in `config/mod.rs` into everything a setting needs: the `Settings` field and
//! its default, the key in the file, the environment override and the rules.

use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::{ConfigError, RateLimit};

/// A value a rule refused: as the error message shows it, and why.
pub(super) struct Refused {
    value: String,
    reason: String,
}

impl Refused {
    /// The error that stops the start, naming the setting by its file key or
    /// environment variable.
    pub(super) fn named(self, setting: &'static str) -> ConfigError {
        ConfigError::Invalid {
            setting,
            value: self.value,
            reason: self.reason,
        }
    }
}

/// A rule of a setting: `Ok` if `holds`, else `value` is refused for `reason`.
pub(super) fn require(holds: bool, value: impl Display, reason: impl Into<String>) -> Result<(), Refused> {
    if holds {
        return Ok(());
    }
    Err(Refused {
        value: value.to_string(),
        reason: reason.into(),
    })
}

/// A type a setting can have: how its value is read from the file and from
/// the text of an environment variable.
pub(super) trait SettingValue: Sized {
    /// The value's shape in TOML. A value of another shape is refused by the
    /// TOML parser, whose message names the key and line.
    type InFile;
    fn from_file(value: Self::InFile) -> Result<Self, Refused>;
    fn from_env(text: &str) -> Result<Self, String>;
}

/// Types whose TOML shape is the type itself and whose environment text is
/// parsed with `FromStr`.
macro_rules! parsed_from_env {
    ($($ty:ty),*) => {$(
        impl SettingValue for $ty {
            type InFile = Self;
            fn from_file(value: Self) -> Result<Self, Refused> {
                Ok(value)
            }
            fn from_env(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e: <Self as FromStr>::Err| e.to_string())
            }
        }
    )*};
}

parsed_from_env!(String, bool, i64, u32, usize, RateLimit);

/// An item of a list setting.
pub(super) trait ListItem: Sized {
    fn parse_item(text: &str) -> Result<Self, String>;
}

impl ListItem for String {
    fn parse_item(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
}

/// An address or a CIDR range: `10.0.0.1` means `10.0.0.1/32`.
impl ListItem for IpNet {
    fn parse_item(text: &str) -> Result<Self, String> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("{text:?} is neither an IP address nor a CIDR range"))
    }
}

/// A list is an array of strings in the file and comma-separated in the
/// environment, which carries only text.
impl<T: ListItem> SettingValue for Vec<T> {
    type InFile = Vec<String>;

    fn from_file(items: Vec<String>) -> Result<Self, Refused> {
        items.iter().map(|item| T::parse_item(item)).collect::<Result<_, _>>().map_err(|reason| Refused {
            value: items.join(","),
            reason,
        })
    }

    fn from_env(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| T::parse_item(item).map_err(|e| format!("{item:?}: {e}")))
            .collect()
    }
}

/// Reads a value from the file; a refusal names the setting by its key there.
pub(super) fn from_file<T: SettingValue>(key: &'static str, value: T::InFile) -> Result<T, ConfigError> {
    T::from_file(value).map_err(|refused| refused.named(key))
}

/// Reads a value from the environment; a refusal names the variable.
pub(super) fn from_env<T: SettingValue>(variable: &'static str, text: &str) -> Result<T, ConfigError> {
    T::from_env(text).map_err(|reason| ConfigError::Invalid {
        setting: variable,
        value: text.to_string(),
        reason,
    })
}

/// Turns the table of settings into the `Settings` struct with its `Default`,
/// the file's shape (`FileSettings`), `Settings::merge` (environment beats
/// file beats default) and `Settings::validate` (each setting's rule, which
/// sees the other settings for the rules that relate them). An entry is
///
/// ```text
/// /// What it means.
/// file_key: Type = default, env "ENVIRONMENT_VARIABLE", valid |value, settings| rule;
/// ```
///
/// where `valid …` is optional and the rule returns `Result<(), Refused>`; a
/// refusal names the environment variable.
macro_rules! declare_settings {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $default:expr, env $env:literal $(, valid $rule:expr)?;
    )*) => {
        /// All runtime settings, each declared once in `config/mod.rs`. Durations are whole seconds.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!(
                    "File key `", stringify!($field), "`, environment `", $env, "`, ",
                    "default `", stringify!($default), "`."
                )]
                pub $field: $ty,
            )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        /// The file's shape: every key optional, unknown keys refused so typos are caught.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $($field: Option<<$ty as $crate::config::setting::SettingValue>::InFile>,)*
        }

        impl Settings {
            /// Environment beats file beats default. The whole file is read
            /// first, so a bad value there is refused even where the
            /// environment overrides it.
            fn merge(file: FileSettings, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
                let mut settings = Self::default();
                $(
                    if let Some(value) = file.$field {
                        settings.$field = $crate::config::setting::from_file::<$ty>(stringify!($field), value)?;
                    }
                )*
                $(
                    if let Some(text) = env($env) {
                        settings.$field = $crate::config::setting::from_env::<$ty>($env, &text)?;
                    }
                )*
                Ok(settings)
            }

            fn validate(&self) -> Result<(), ConfigError> {
                $($(
                    let rule: fn(&$ty, &Settings) -> Result<(), $crate::config::setting::Refused> = $rule;
                    rule(&self.$field, self).map_err(|refused| refused.named($env))?;
                )?)*
                Ok(())
            }

            /// Each setting as `docs/configuration.md` must show it.
            #[cfg(test)]
            fn declared() -> Vec<$crate::config::documented::Declared> {
                let defaults = Self::default();
                vec![$($crate::config::documented::Declared {
                    key: stringify!($field),
                    env: $env,
                    default: $crate::config::documented::Shown::shown(&defaults.$field),
                }),*]
            }
        }
    };
}

pub(super) use declare_settings;
