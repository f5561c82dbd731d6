//! What the server counts and times, for Prometheus: every metric's name and
//! labels in one place (docs/operations.md lists them). The core, the store
//! and the mail worker record through the `metrics` facade, which does
//! nothing until [`install`] sets up the recorder (`GATEHOUSE_METRICS_ADDR`);
//! `server::metrics` serves what it holds.
//!
//! No label carries a user name, address or token: label values are fixed
//! words chosen here, route templates and store method names.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const LOGINS: &str = "gatehouse_logins_total";
pub const REFRESHES: &str = "gatehouse_refreshes_total";
pub const RATE_LIMITED: &str = "gatehouse_rate_limited_total";
pub const LIVE_SESSIONS: &str = "gatehouse_live_sessions";
pub const OPEN_SOCKETS: &str = "gatehouse_open_sockets";
pub const HASH_QUEUE_DEPTH: &str = "gatehouse_password_hash_queue_depth";
pub const HASH_WAIT: &str = "gatehouse_password_hash_wait_seconds";
pub const DATABASE_TIME: &str = "gatehouse_database_seconds";
pub const REQUEST_TIME: &str = "gatehouse_http_request_duration_seconds";
pub const MAILS_QUEUED: &str = "gatehouse_mails_queued_total";
pub const MAILS_SENT: &str = "gatehouse_mails_sent_total";
pub const MAILS_FAILED: &str = "gatehouse_mails_failed_total";

/// Upper bounds of the time histograms' buckets, in seconds: from a quick
/// database read to a login queued behind many password hashes.
const TIME_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What a refresh-token presentation came to (label `verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// Rotated: the session goes on with a new token.
    Rotated,
    /// Presented again within the grace window: the same successor.
    Replayed,
    /// An already-rotated token: the session was revoked.
    Reuse,
    /// Malformed, unknown, ended or rate-limited: nothing changed.
    Refused,
}

impl RefreshVerdict {
    fn label(self) -> &'static str {
        match self {
            Self::Rotated => "rotated",
            Self::Replayed => "replayed",
            Self::Reuse => "reuse",
            Self::Refused => "refused",
        }
    }
}

/// The recorder, installed once per process (a test process starts many
/// servers), and the handle that renders what it holds.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), TIME_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_counter!(LOGINS, "Sign-ins, by method and outcome.");
    describe_counter!(REFRESHES, "Refresh-token presentations, by verdict.");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit.");
    describe_gauge!(LIVE_SESSIONS, "Live sessions in the database (every instance's).");
    describe_gauge!(OPEN_SOCKETS, "Live sockets open on this instance.");
    describe_gauge!(HASH_QUEUE_DEPTH, "Password hashes waiting for a hashing thread.");
    describe_histogram!(
        HASH_WAIT,
        Unit::Seconds,
        "Time a password hash waited for a hashing thread."
    );
    describe_histogram!(DATABASE_TIME, Unit::Seconds, "Time of store calls, by store method.");
    describe_histogram!(
        REQUEST_TIME,
        Unit::Seconds,
        "HTTP request time, by route template, method and status."
    );
    describe_counter!(MAILS_QUEUED, "Mails queued for sending.");
    describe_counter!(MAILS_SENT, "Mails handed to the SMTP server or written to a file.");
    describe_counter!(
        MAILS_FAILED,
        "Mail deliveries that failed, by whether the mail will be retried."
    );
}

/// How a sign-in proved who it was (label `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// A password, and for an account with an app its second step.
    Password,
    /// A passkey's assertion.
    Passkey,
}

impl LoginMethod {
    fn label(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Passkey => "passkey",
        }
    }
}

/// A sign-in ended with `outcome` (`ok`, `second_factor`: the password was
/// right and a code is asked for, `invalid_credentials`, `rate_limited`,
/// `error`), or a password login's second step did (`code_ok`,
/// `invalid_code`).
pub fn login(method: LoginMethod, outcome: &'static str) {
    counter!(LOGINS, "method" => method.label(), "outcome" => outcome).increment(1);
}

pub fn refresh(verdict: RefreshVerdict) {
    counter!(REFRESHES, "verdict" => verdict.label()).increment(1);
}

/// A request refused by the rate limit named `limit` (its setting's name).
pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

pub fn live_sessions(count: u64) {
    gauge!(LIVE_SESSIONS).set(count as f64);
}

pub fn socket_opened() {
    gauge!(OPEN_SOCKETS).increment(1.0);
}

pub fn socket_closed() {
    gauge!(OPEN_SOCKETS).decrement(1.0);
}

/// A password hash in the queue for a hashing thread, counted in
/// [`HASH_QUEUE_DEPTH`] until it starts or is dropped unstarted.
#[must_use = "the hash leaves the queue when this is dropped"]
pub struct QueuedHash {
    queued_at: Instant,
}

impl QueuedHash {
    pub fn queued() -> Self {
        gauge!(HASH_QUEUE_DEPTH).increment(1.0);
        Self {
            queued_at: Instant::now(),
        }
    }

    /// The hash got its thread: how long it waited goes into [`HASH_WAIT`].
    pub fn started(self) {
        histogram!(HASH_WAIT).record(self.queued_at.elapsed().as_secs_f64());
    }
}

impl Drop for QueuedHash {
    fn drop(&mut self) {
        gauge!(HASH_QUEUE_DEPTH).decrement(1.0);
    }
}

pub fn mails_queued(count: usize) {
    counter!(MAILS_QUEUED).increment(u64::try_from(count).unwrap_or(u64::MAX));
}

pub fn mail_sent() {
    counter!(MAILS_SENT).increment(1);
}

/// A delivery failed; `retry`: the mail will be tried again (else it was given up).
pub fn mail_failed(retry: bool) {
    counter!(MAILS_FAILED, "retry" => if retry { "true" } else { "false" }).increment(1);
}

/// An HTTP request to `route` (a route template, never a path) answered
/// with `status` after `elapsed`.
pub fn request(route: String, method: &'static str, status: u16, elapsed: Duration) {
    histogram!(REQUEST_TIME, "route" => route, "method" => method, "status" => status.to_string())
        .record(elapsed.as_secs_f64());
}

/// Times a store call from its creation to its drop, so a call that fails or
/// is abandoned counts too: `let _timer = DatabaseTimer::start("claim");`.
#[must_use = "the time is recorded when the timer is dropped"]
pub struct DatabaseTimer {
    kind: &'static str,
    started: Instant,
}

impl DatabaseTimer {
    /// `kind` is the store method's name.
    pub fn start(kind: &'static str) -> Self {
        Self {
            kind,
            started: Instant::now(),
        }
    }
}

impl Drop for DatabaseTimer {
    fn drop(&mut self) {
        histogram!(DATABASE_TIME, "kind" => self.kind).record(self.started.elapsed().as_secs_f64());
    }
}
