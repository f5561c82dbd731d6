//! The WebSocket figures: the server's memory per 1,000 open sockets, and the
//! time from a revocation to the close of that session's sockets while 1,000
//! are open. The clients run in a child process (this binary, `--ws-clients`)
//! so only the server's memory is counted.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use gatehouse::auth::ClientInfo;
use gatehouse::config::Settings;
use gatehouse::protocol::Credentials;
use tokio_tungstenite::tungstenite::Message;

use super::report::Report;
use super::{bench_settings, registration, start, PASSWORD};

const USERS: usize = 100;
const SOCKETS_PER_USER: usize = 10;

pub async fn figures(report: &mut Report) {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-ws-{}", std::process::id()));
    // Sessions are made here by the thousand: argon2 at its cheapest, since
    // logins are not what these figures measure.
    let settings = Settings {
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..bench_settings(format!("sqlite://{}/ws.db", dir.display()))
    };
    let server = start(settings).await;
    let client = ClientInfo::default();
    let mut tokens = Vec::new();
    for user in 0..USERS {
        let credentials = Credentials {
            username: format!("socket-user-{user}"),
            password: PASSWORD.into(),
        };
        for n in 0..SOCKETS_PER_USER {
            let issued = if n == 0 {
                server.auth.register(registration(&credentials), &client).await
            } else {
                server.auth.login(credentials.clone(), &client).await.map(|outcome| outcome.signed_in().expect("no second factor"))
            };
            tokens.push(issued.expect("session").access.token);
        }
    }
    let file = dir.join("tokens.txt");
    std::fs::write(&file, tokens.join("\n")).expect("token file");

    let before = resident_kib();
    let url = format!("{}/ws", server.base.replacen("http://", "ws://", 1));
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .args(["--ws-clients", &url])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("client process");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let opened = lines.next().and_then(Result::ok).unwrap_or_default();
    let open: usize = opened.strip_prefix("open ").and_then(|n| n.parse().ok()).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident_kib();

    // Revoke the sessions of one user (10 sockets) while the rest stay open.
    let claims = server.auth.authenticate(&tokens[0]).await.expect("claims");
    let started = Instant::now();
    server.auth.logout_all(&claims, &client).await.expect("logout all");
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = 0;
        while closed < SOCKETS_PER_USER {
            match lines.next() {
                Some(Ok(line)) if line == "closed" => closed += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        (closed, started.elapsed())
    })
    .await
    .expect("reader");
    let _ = child.kill();
    let _ = child.wait();
    report.sockets(open, after.saturating_sub(before), closed.0, closed.1);
    let _ = std::fs::remove_dir_all(dir);
}

/// This process's resident memory, from /proc.
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child process: opens one socket per token, says `open N` once all are
/// ready, then `closed` for every close frame the server sends.
pub fn client_process(url: &str, token_file: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let tokens: Vec<String> = std::fs::read_to_string(token_file)
        .expect("tokens")
        .lines()
        .map(str::to_string)
        .collect();
    runtime.block_on(async move {
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        for chunk in tokens.chunks(50) {
            for token in chunk {
                let url = format!("{url}?access_token={token}");
                let ready = ready_tx.clone();
                tokio::spawn(async move {
                    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url).await else {
                        return;
                    };
                    let _ = socket.next().await;
                    let _ = ready.send(());
                    while let Some(message) = socket.next().await {
                        if let Ok(Message::Close(_)) = message {
                            println!("closed");
                            let _ = std::io::stdout().flush();
                            return;
                        }
                    }
                });
            }
            // Open in batches: the listener's backlog is not a benchmark subject.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut ready = 0;
        while ready < tokens.len() {
            match tokio::time::timeout(Duration::from_secs(30), ready_rx.recv()).await {
                Ok(Some(())) => ready += 1,
                _ => break,
            }
        }
        println!("open {ready}");
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
    });
}
