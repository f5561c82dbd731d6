//! The settings' loading rules: sources, overrides and refusals.

use std::net::IpAddr;

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
            "GATEHOUSE_METRICS_ADDR" => "[::1]:9100",
            "GATEHOUSE_SHUTDOWN_DELAY" => "15",
            "GATEHOUSE_SHUTDOWN_GRACE" => "30",
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
    assert_eq!((s.metrics_addr.as_str(), s.shutdown_delay, s.shutdown_grace), ("[::1]:9100", 15, 30));
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
        ("GATEHOUSE_METRICS_ADDR", "localhost:9100"),
        ("GATEHOUSE_METRICS_ADDR", "127.0.0.1"),
        ("GATEHOUSE_SHUTDOWN_DELAY", "301"),
        ("GATEHOUSE_SHUTDOWN_GRACE", "0"),
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
fn far_too_many_argon2_lanes_are_refused_by_name() {
    for lanes in ["16777216", "536870912", "4294967295"] {
        let env = |n: &str| (n == "GATEHOUSE_ARGON2_PARALLELISM").then(|| lanes.to_string());
        let err = Settings::from_sources("Leptos.toml", None, env).unwrap_err().to_string();
        assert!(err.contains("GATEHOUSE_ARGON2_PARALLELISM"), "{lanes}: {err}");
    }
}

#[test]
fn a_refused_database_url_hides_its_password() {
    let env = |n: &str| (n == "DATABASE_URL").then(|| "mysql://ada:s3cret@db/x".to_string());
    let err = Settings::from_sources("Leptos.toml", None, env).unwrap_err().to_string();
    assert!(err.contains("DATABASE_URL") && err.contains("ada:***@db/x"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
