//! Driving `wrk` (Debian's package) and reading what it prints.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Connections for read-mostly figures.
const READ_CONNECTIONS: usize = 32;
/// Connections for figures that write (login, refresh): one wrk thread each,
/// so each connection's Lua state can follow its own cookie.
pub const WRITE_CONNECTIONS: usize = 4;

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub requests_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub requests: u64,
    /// Answers that were not 2xx or 3xx.
    pub failures: u64,
}

/// How many turns a figure and its baseline take, and how long each lasts.
pub const ROUNDS: usize = 4;
pub const TURN: Duration = Duration::from_secs(3);

/// A figure and its baseline measured in turns (baseline, figure, baseline,
/// figure...), so that a slow spell of this shared machine falls on both
/// alike instead of on whichever ran during it.
#[derive(Debug, Default)]
pub struct Turns {
    pub figure: Vec<Measured>,
    pub baseline: Vec<Measured>,
}

impl Turns {
    /// The figure's rate over the baseline's, each over all its rounds.
    pub fn ratio(&self) -> f64 {
        ratio(merge(&self.figure).requests_per_second, merge(&self.baseline).requests_per_second)
    }

    /// The lowest and the highest ratio of a round to the baseline's round
    /// just before it: how far one short comparison could be off.
    pub fn spread(&self) -> (f64, f64) {
        let ratios = self
            .figure
            .iter()
            .zip(&self.baseline)
            .map(|(f, b)| ratio(f.requests_per_second, b.requests_per_second));
        ratios.fold((f64::INFINITY, 0.0), |(low, high), r| (low.min(r), high.max(r)))
    }
}

fn ratio(figure: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        figure / baseline
    } else {
        0.0
    }
}

/// Rounds of equal length as one measurement: requests and failures add up,
/// the rate is the rounds' mean, p50 and p99 are the medians of the rounds'.
pub fn merge(rounds: &[Measured]) -> Measured {
    let median = |pick: fn(&Measured) -> Duration| {
        let mut values: Vec<Duration> = rounds.iter().map(pick).collect();
        values.sort();
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    Measured {
        requests_per_second: rounds.iter().map(|m| m.requests_per_second).sum::<f64>() / rounds.len().max(1) as f64,
        p50: median(|m| m.p50),
        p99: median(|m| m.p99),
        requests: rounds.iter().map(|m| m.requests).sum(),
        failures: rounds.iter().map(|m| m.failures).sum(),
    }
}

/// How wrk loads one path.
pub struct Load {
    script: String,
    connections: usize,
    threads: usize,
}

impl Load {
    pub fn get(headers: &[&str]) -> Self {
        let lines: String = headers
            .iter()
            .filter_map(|h| h.split_once(": "))
            .map(|(name, value)| format!("wrk.headers[{}] = {}\n", lua_string(name), lua_string(value)))
            .collect();
        Self {
            script: lines,
            connections: READ_CONNECTIONS,
            threads: 2,
        }
    }

    pub fn post_json(body: &str) -> Self {
        Self {
            script: format!(
                "wrk.method = \"POST\"\nwrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
                lua_string(body)
            ),
            connections: WRITE_CONNECTIONS,
            threads: WRITE_CONNECTIONS,
        }
    }

    /// `POST /auth/refresh`, each connection with its own session, always
    /// presenting the cookie the previous answer rotated to.
    pub fn rotating_refresh(cookies: &[String]) -> Self {
        let list: Vec<String> = cookies.iter().map(|c| lua_string(c)).collect();
        let script = format!(
            r#"
local cookies = {{ {list} }}
local next_thread = 1
function setup(thread)
  thread:set("cookie", cookies[next_thread])
  next_thread = next_thread + 1
end
function request()
  return wrk.format("POST", nil, {{ ["Cookie"] = "gatehouse_refresh=" .. cookie }}, "")
end
function response(status, headers, body)
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set then
    local value = set:match("gatehouse_refresh=([^;]*)")
    if value and value ~= "" then cookie = value end
  end
end
"#,
            list = list.join(", ")
        );
        Self {
            script,
            connections: cookies.len(),
            threads: cookies.len(),
        }
    }
}

fn lua_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn run(base: &str, path: &str, load: &Load, duration: Duration) -> Measured {
    let script = script_path();
    std::fs::write(&script, &load.script).expect("write wrk script");
    let output = Command::new("wrk")
        .args(["--latency", "-t", &load.threads.to_string(), "-c", &load.connections.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs())])
        .arg("-s")
        .arg(&script)
        .arg(format!("{base}{path}"))
        .output()
        .expect("run wrk");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let measured = parse(&text);
    println!("{path}: {:.0} req/s, p50 {:?}, p99 {:?}, {} failed", measured.requests_per_second, measured.p50, measured.p99, measured.failures);
    measured
}

fn script_path() -> PathBuf {
    std::env::temp_dir().join(format!("gatehouse-bench-{}.lua", std::process::id()))
}

/// Reads `Requests/sec`, the 50% and 99% latencies, the request count and
/// `Non-2xx or 3xx responses` from wrk's report.
pub fn parse(text: &str) -> Measured {
    let mut measured = Measured::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(rate)) => measured.requests_per_second = rate.parse().unwrap_or(0.0),
            (Some("50%"), Some(latency)) => measured.p50 = duration(latency),
            (Some("99%"), Some(latency)) => measured.p99 = duration(latency),
            (Some(count), Some("requests")) => measured.requests = count.parse().unwrap_or(0),
            _ => {}
        }
        if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            measured.failures = count.trim().parse().unwrap_or(0);
        }
    }
    measured
}

fn duration(text: &str) -> Duration {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    Duration::from_secs_f64(number.parse::<f64>().unwrap_or(0.0) * scale)
}
