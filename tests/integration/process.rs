//! The `gatehouse` binary run as a child process, as an operator runs it: so a
//! test can kill it with SIGKILL, restart it, and read its memory from `/proc`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::support::{test_settings, Api};

/// `gatehouse` with the repository's `Leptos.toml`, a test database and the
/// suite's cheap argon2 cost; more settings go in as environment variables.
pub fn gatehouse_command(database_url: &str) -> Command {
    let settings = test_settings();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .env("DATABASE_URL", database_url)
        .env("GATEHOUSE_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml"))
        .env("GATEHOUSE_ARGON2_MEMORY_KIB", settings.argon2_memory_kib.to_string())
        .env("GATEHOUSE_ARGON2_ITERATIONS", settings.argon2_iterations.to_string())
        .env("RUST_LOG", "warn");
    command
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    probe.local_addr().expect("addr").port()
}

pub struct ServerProcess {
    pub api: Api,
    child: std::process::Child,
    /// Standard error, then standard output (the server's log lines).
    log: PathBuf,
    out: PathBuf,
}

impl ServerProcess {
    /// Starts `gatehouse serve` on a free loopback port and waits until it answers.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let unique = uuid::Uuid::new_v4().simple();
        let log = std::env::temp_dir().join(format!("gatehouse-process-{unique}.log"));
        let out = std::env::temp_dir().join(format!("gatehouse-process-{unique}.out"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let out_file = std::fs::File::create(&out).expect("output file");
        let mut command = gatehouse_command(database_url);
        command
            .arg("serve")
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(log_file);
        let child = command.spawn().expect("start gatehouse");
        let server = Self {
            api: Api::new(format!("http://127.0.0.1:{port}")),
            child,
            log,
            out,
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.api.http.get(self.api.url("/healthz")).send().await {
                if response.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "gatehouse did not start: {}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, in KiB, as the kernel counts it.
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The end of what the server wrote to standard error, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log.get(start..).unwrap_or_default().to_string()
    }

    /// What the server wrote to standard output: its log lines.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGTERM, as an orchestrator stops an instance.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM could not be sent");
    }

    /// Waits for the process to end by itself: its exit status.
    pub async fn exited_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for gatehouse") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gatehouse still running after {within:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut. Dropping
    /// the server then reaps it, before this returns.
    pub fn kill(mut self) {
        self.child.kill().expect("kill gatehouse");
    }
}

impl std::ops::Deref for ServerProcess {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// Also when a test fails: no server outlives it, and its log goes with it.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.out);
    }
}
