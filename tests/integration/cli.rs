//! The `gatehouse` binary's commands, run as a user would.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::process::gatehouse_command;
use crate::support::{refresh_set_cookie, Backend, TestServer, PASSWORD};

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

crate::both_backends!(
    set_role_takes_effect_on_every_instance_within_a_second,
    reset_link_prints_a_link_that_works_once,
    an_operator_removes_a_lost_second_factor,
);

/// `gatehouse user set-role`, run while two instances serve: within a second
/// neither accepts the demoted admin's token for `/api/admin/*`, and the next
/// login carries the new role.
async fn set_role_takes_effect_on_every_instance_within_a_second(backend: Backend) {
    let a = TestServer::start(backend).await;
    let b = a.sibling(|_| {}).await;
    let admin = a.create_admin("boss").await;
    for server in [&a, &b] {
        assert_eq!(server.get_bearer("/api/admin/users", &admin.access).await.status(), StatusCode::OK);
    }
    let url = a.settings.database_url.clone();
    let demoted = tokio::task::spawn_blocking(move || {
        gatehouse(&url, &["user", "set-role", "--username", "boss", "--role", "user"], "")
    })
    .await
    .unwrap();
    assert!(demoted.status.success(), "{}", String::from_utf8_lossy(&demoted.stderr));
    assert!(String::from_utf8_lossy(&demoted.stdout).contains("now has role user"));
    let started = std::time::Instant::now();
    for server in [&a, &b] {
        loop {
            let status = server.get_bearer("/api/admin/users", &admin.access).await.status();
            if status != StatusCode::OK {
                assert_eq!(status, StatusCode::UNAUTHORIZED);
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "the old role outlived a second");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    assert_eq!(a.refresh(&admin.cookie).await.status(), StatusCode::UNAUTHORIZED, "the session ended");
    let again = crate::support::Session::from_response(a.login("boss", PASSWORD).await).await;
    assert_eq!(crate::support::claims(&again.access)["role"], "user");
    assert_eq!(b.get_bearer("/api/admin/users", &again.access).await.status(), StatusCode::FORBIDDEN);

    let unknown = gatehouse(&a.settings.database_url, &["user", "set-role", "--username", "nobody", "--role", "admin"], "");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user named nobody"));
    b.stop();
    a.finish().await;
}

/// `gatehouse user reset-link`: for operators without mail, a link on the
/// public URL that sets a new password once, and voids the one before it.
async fn reset_link_prints_a_link_that_works_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ada = server.register("ada").await;
    let url = server.settings.database_url.clone();
    let link = |url: String| async move {
        let output = tokio::task::spawn_blocking(move || {
            let mut command = gatehouse_command(&url);
            command.env("GATEHOUSE_PUBLIC_URL", "https://login.example.test").args(["user", "reset-link", "--username", "ADA"]);
            command.output().expect("run gatehouse")
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let token = printed
            .strip_prefix("https://login.example.test/reset-password?token=")
            .unwrap_or_else(|| panic!("a link: {printed}"))
            .to_string();
        token
    };
    let first = link(url.clone()).await;
    let second = link(url).await;
    let confirm = |token: String| {
        let server = &server;
        async move {
            server
                .post_json(
                    "/auth/password-reset/confirm",
                    serde_json::json!({"token": token, "new_password": "saffron-quarry-lantern-58"}),
                )
                .await
                .status()
        }
    };
    assert_eq!(confirm(first).await, StatusCode::BAD_REQUEST, "the newer link voided it");
    assert_eq!(confirm(second.clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(confirm(second).await, StatusCode::BAD_REQUEST, "used");
    assert_eq!(server.refresh(&ada.cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.login("ada", "saffron-quarry-lantern-58").await.status(), StatusCode::OK);

    let unknown = gatehouse(&server.settings.database_url, &["user", "reset-link", "--username", "nobody"], "");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user named nobody"));
    server.finish().await;
}

/// `gatehouse user remove-second-factor`: for someone who lost both the app
/// and the recovery codes, the way back to a password sign-in.
async fn an_operator_removes_a_lost_second_factor(backend: Backend) {
    use gatehouse::auth::clock::Clock as _;
    use gatehouse::auth::totp::TotpSecret;

    let server = TestServer::start(backend).await;
    let ada = server.register("ada").await;
    let setup: serde_json::Value = server.post_bearer("/auth/mfa/totp", &ada.access, None).await.json().await.unwrap();
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let code = secret.code_at(server.clock.now()).unwrap();
    let confirmed = server
        .post_bearer("/auth/mfa/totp/confirm", &ada.access, Some(serde_json::json!({ "code": code })))
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let asked: serde_json::Value = server.login("ada", PASSWORD).await.json().await.unwrap();
    assert_eq!(asked["mfa_required"], true);

    let url = server.settings.database_url.clone();
    let run = |url: String| async move {
        tokio::task::spawn_blocking(move || gatehouse(&url, &["user", "remove-second-factor", "--username", "ADA"], ""))
            .await
            .unwrap()
    };
    let removed = run(url.clone()).await;
    assert!(removed.status.success(), "{}", String::from_utf8_lossy(&removed.stderr));
    let signed_in = server.login("ada", PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    assert!(refresh_set_cookie(signed_in.headers()).is_some(), "one step again");
    let again = run(url).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no second factor"));
    server.finish().await;
}
