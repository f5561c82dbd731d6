//! The `gatehouse` binary's commands, run as a user would.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::process::gatehouse_command;
use crate::support::{Backend, TestServer, PASSWORD};

fn gatehouse(database_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = gatehouse_command(database_url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("gatehouse output")
}

fn temp_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("gatehouse-cli-{}", uuid::Uuid::new_v4().simple()));
    format!("sqlite://{}/gatehouse.db", dir.display())
}

#[test]
fn user_create_and_keys_rotate() {
    let url = temp_sqlite();
    let migrate = gatehouse(&url, &["migrate"], "");
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let created = gatehouse(&url, &["user", "create", "--username", "boss", "--role", "admin"], &format!("{PASSWORD}\n"));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(String::from_utf8_lossy(&created.stdout).contains("role admin"));

    let again = gatehouse(&url, &["user", "create", "--username", "boss"], &format!("{PASSWORD}\n"));
    assert!(!again.status.success(), "a taken name is refused");
    let weak = gatehouse(&url, &["user", "create", "--username", "minion"], "password\n");
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("too weak"));

    let rotated = gatehouse(&url, &["keys", "rotate"], "");
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let server = TestServer::start_with(Backend::Sqlite, |s| s.database_url = url.clone()).await;
        let login = server.login("boss", PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK);
        let session = crate::support::Session::from_response(login).await;
        assert_eq!(crate::support::claims(&session.access)["role"], "admin");
        let jwks: serde_json::Value = server.http.get(server.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "the first key and the rotated one");
        server.finish().await;
    });
}

#[test]
fn a_bad_setting_stops_the_start_and_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("migrate")
        .env("DATABASE_URL", temp_sqlite())
        .env("GATEHOUSE_ACCESS_TTL", "fifteen minutes")
        .output()
        .expect("run gatehouse");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("GATEHOUSE_ACCESS_TTL"));
}
