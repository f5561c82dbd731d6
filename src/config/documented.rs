//! Keeps `docs/configuration.md` and the shipped `Leptos.toml` in step with the
//! one declaration of the settings: a setting added, renamed or given a new
//! default there fails these tests until the documentation says the same.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::{RateLimit, Settings};

const DOCS: &str = include_str!("../../docs/configuration.md");
const SHIPPED_FILE: &str = include_str!("../../Leptos.toml");
/// The header row that starts the settings table in `docs/configuration.md`.
const TABLE_HEADER: &str = "| setting (`Leptos.toml`) | environment | default | meaning |";

/// One declared setting as the documentation must show it.
#[derive(Debug)]
pub(super) struct Declared {
    pub key: &'static str,
    pub env: &'static str,
    pub default: String,
}

/// A value as the documentation's table writes it.
pub(super) trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_as_displayed {
    ($($ty:ty),*) => {$(
        impl Shown for $ty {
            fn shown(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

shown_as_displayed!(bool, i64, u32, usize, IpNet);

impl Shown for String {
    fn shown(&self) -> String {
        if self.is_empty() {
            return "none".to_string();
        }
        self.clone()
    }
}

impl Shown for RateLimit {
    fn shown(&self) -> String {
        let period = match self.per_seconds {
            1 => "second".to_string(),
            60 => "minute".to_string(),
            3600 => "hour".to_string(),
            86_400 => "day".to_string(),
            seconds => format!("{seconds}s"),
        };
        format!("{}/{period}", self.count)
    }
}

impl<T: Shown> Shown for Vec<T> {
    fn shown(&self) -> String {
        if self.is_empty() {
            return "none".to_string();
        }
        self.iter().map(Shown::shown).collect::<Vec<_>>().join(",")
    }
}

/// A row of the documented settings table.
#[derive(Debug)]
struct Row {
    env: String,
    default: String,
}

/// The settings table of a `docs/configuration.md`, by file key.
fn documented_rows(docs: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut lines = docs.lines().skip_while(|line| line.trim() != TABLE_HEADER);
    if lines.next().is_none() {
        return Err(format!("docs/configuration.md has no settings table starting {TABLE_HEADER:?}"));
    }
    let mut rows = BTreeMap::new();
    for line in lines.skip(1).take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [key, env, default, ..] = cells[..] else {
            return Err(format!("docs/configuration.md: a settings row has fewer than three cells: {line}"));
        };
        let row = Row {
            env: code(env).to_string(),
            default: first_value(default).to_string(),
        };
        if rows.insert(code(key).to_string(), row).is_some() {
            return Err(format!("docs/configuration.md lists setting `{}` twice", code(key)));
        }
    }
    Ok(rows)
}

/// The text of a cell written as one code span: `` `access_ttl` `` is `access_ttl`.
fn code(cell: &str) -> &str {
    cell.trim_matches('`')
}

/// A default cell's value, before any remark: `` `604800` (7 days) `` is `604800`.
fn first_value(cell: &str) -> &str {
    match cell.strip_prefix('`').and_then(|rest| rest.split_once('`')) {
        Some((value, _remark)) => value,
        None => cell.split_whitespace().next().unwrap_or_default(),
    }
}

/// Each way the table differs from the declaration, naming the setting.
fn disagreements(declared: &[Declared], rows: &BTreeMap<String, Row>) -> Vec<String> {
    let mut wrong = Vec::new();
    for setting in declared {
        let Some(row) = rows.get(setting.key) else {
            wrong.push(format!("setting `{}` ({}) is declared but not in the table", setting.key, setting.env));
            continue;
        };
        if row.env != setting.env {
            wrong.push(format!("`{}`: the table says {}, the declaration {}", setting.key, row.env, setting.env));
        }
        if row.default != setting.default {
            wrong.push(format!(
                "`{}`: the table's default is {:?}, the declaration's {:?}",
                setting.key, row.default, setting.default
            ));
        }
    }
    for key in rows.keys().filter(|key| !declared.iter().any(|setting| setting.key == *key)) {
        wrong.push(format!("the table lists `{key}`, which is not a declared setting"));
    }
    wrong
}

#[test]
fn the_documented_table_is_the_declared_one() {
    let wrong = disagreements(&Settings::declared(), &documented_rows(DOCS).unwrap());
    assert!(
        wrong.is_empty(),
        "docs/configuration.md disagrees with the settings declared in src/config/mod.rs:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn a_missing_extra_or_changed_row_is_named() {
    let issuer_row = DOCS.lines().find(|line| line.starts_with("| `issuer` |")).unwrap();
    let docs = DOCS
        .replace(&format!("{issuer_row}\n"), "")
        .replace("| `900` |", "| `901` |")
        .replace("`GATEHOUSE_AUDIENCE`", "`GATEHOUSE_AUDIENCES`")
        .replace("|---|---|---|---|\n", "|---|---|---|---|\n| `issuers` | `GATEHOUSE_ISSUERS` | none | x |\n");
    let wrong = disagreements(&Settings::declared(), &documented_rows(&docs).unwrap()).join("\n");
    for named in ["`issuer` (GATEHOUSE_ISSUER) is declared but not", "`access_ttl`: the table's default is \"901\"",
        "`audience`: the table says GATEHOUSE_AUDIENCES", "lists `issuers`, which is not"]
    {
        assert!(wrong.contains(named), "{named:?} not in:\n{wrong}");
    }
    assert_eq!(wrong.lines().count(), 4, "{wrong}");
}

#[test]
fn the_shipped_file_sets_exactly_the_declared_settings() {
    let file: toml::Table = toml::from_str(SHIPPED_FILE).unwrap();
    let Some(toml::Value::Table(section)) = file.get("gatehouse") else {
        panic!("Leptos.toml has no [gatehouse] section");
    };
    let declared = Settings::declared();
    let mut wrong: Vec<String> = section
        .keys()
        .filter(|key| !declared.iter().any(|setting| setting.key == key.as_str()))
        .map(|key| format!("Leptos.toml sets `{key}`, which is not a declared setting"))
        .collect();
    for setting in declared.iter().filter(|setting| !section.contains_key(setting.key)) {
        wrong.push(format!("Leptos.toml does not show setting `{}` ({})", setting.key, setting.env));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
