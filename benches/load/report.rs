//! BENCHMARKS.md: every figure with its baseline from the same run, the ratio,
//! and the machine it ran on.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::wrk::{merge, Measured, Turns, ROUNDS, TURN};

/// The last line of BENCHMARKS.md: what each change did to these figures is
/// kept by hand in a file of its own, so a run rewrites this one whole.
/// The heading of the section [`Report::keep_soak_section`] carries over.
pub const SOAK_HEADING: &str = "## Memory under `make soak`";

const LOG_POINTER: &str =
    "What each optimisation changed, with figures from the runs before and after it: [docs/optimisation-log.md](docs/optimisation-log.md).";

pub struct Figure {
    what: String,
    turns: Turns,
    baseline_what: String,
    goal: Option<f64>,
}

impl Figure {
    pub fn new(what: &str, turns: Turns, baseline_what: &str, goal: f64) -> Self {
        Self {
            what: what.into(),
            turns,
            baseline_what: baseline_what.into(),
            goal: Some(goal),
        }
    }

    /// A figure shown beside one with a goal, for what it explains.
    pub fn aside(what: &str, turns: Turns, baseline_what: &str) -> Self {
        Self {
            goal: None,
            ..Self::new(what, turns, baseline_what, 0.0)
        }
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<String>,
    latencies: Vec<String>,
    sections: Vec<String>,
    notes: Vec<String>,
    soak: Option<String>,
}

fn verdict(ratio: f64, goal: f64) -> &'static str {
    if ratio >= goal {
        "met"
    } else {
        "**missed**"
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    fn latency(&mut self, what: &str, m: &Measured) {
        self.latencies.push(format!(
            "| {what} | {} | {} | {} | {} |",
            ms(m.p50),
            ms(m.p99),
            m.requests,
            m.failures
        ));
    }

    /// A figure measured in turns with its baseline; `unit` is the
    /// baseline's (requests or transactions per second).
    pub fn compared(&mut self, f: Figure, unit: &str) {
        let (figure, baseline) = (merge(&f.turns.figure), merge(&f.turns.baseline));
        let r = f.turns.ratio();
        let (low, high) = f.turns.spread();
        self.rows.push(format!(
            "| {} | {:.0} req/s | {} | {:.0} {unit} | {r:.3} | {low:.2}–{high:.2} | {} |",
            f.what,
            figure.requests_per_second,
            f.baseline_what,
            baseline.requests_per_second,
            f.goal.map_or_else(|| "none: shown for comparison".to_string(), |goal| format!("≥ {goal} ({})", verdict(r, goal)))
        ));
        self.latency(&f.what, &figure);
        if baseline.requests > 0 {
            self.latency(&f.baseline_what, &baseline);
        }
    }

    pub fn sockets(&mut self, open: usize, grew_kib: u64, closed: usize, took: Duration) {
        let mut text = String::from("## WebSockets\n\n");
        let per_thousand = if open > 0 { grew_kib as f64 * 1000.0 / open as f64 } else { 0.0 };
        let _ = writeln!(
            text,
            "- Server memory for {open} open, authenticated sockets: {:.1} MiB more resident memory, **{:.1} MiB per 1,000 sockets** ({:.1} KiB each).",
            grew_kib as f64 / 1024.0,
            per_thousand / 1024.0,
            per_thousand / 1000.0
        );
        let _ = writeln!(
            text,
            "- Revoke to close with {open} open: logout everywhere for one user closed its {closed} sockets (code 1008) **{}** after the call began.",
            ms(took)
        );
        self.sections.push(text);
    }

    /// The release bundle's raw and precompressed sizes: what every page loads
    /// (the main module and the JS), each page with the chunks its lazy route
    /// loads, and the other `#[lazy]` chunks, which load when their code first
    /// runs. The goal is checked for the first and for the largest page.
    pub fn bundle(&mut self, pkg: &Path, main_module: &str) {
        let names: Vec<String> = std::fs::read_dir(pkg)
            .map(|dir| dir.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        let find = |prefix: &str, suffix: &str| names.iter().find(|n| n.starts_with(prefix) && n.ends_with(suffix)).cloned();
        // raw, gzip and brotli bytes of the files named.
        let sizes = |files: &[String]| -> Option<[u64; 3]> {
            let len = |name: &str| std::fs::metadata(pkg.join(name)).ok().map(|m| m.len());
            files.iter().try_fold([0; 3], |[raw, gz, br], f| {
                Some([raw + len(f)?, gz + len(&format!("{f}.gz"))?, br + len(&format!("{f}.br"))?])
            })
        };
        let Some(main) = find(&format!("{main_module}."), ".wasm") else {
            self.notes.push(format!("No release WASM module `{main_module}*.wasm` in {}.", pkg.display()));
            return;
        };
        // What every page loads: the main module and the JavaScript (the glue
        // and the chunk loader it imports).
        let mut every_page = vec![main.clone()];
        every_page.extend(names.iter().filter(|n| n.ends_with(".js")).cloned());
        // `--split` names each lazy function's chunks in a manifest: a page's
        // own code (`__<page>_view_<hash>`) and the rest (`rate_password`).
        let manifest: serde_json::Map<String, serde_json::Value> = find("__wasm_split_manifest.", ".json")
            .and_then(|m| std::fs::read_to_string(pkg.join(m)).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let kb = |bytes: u64| bytes as f64 / 1000.0;
        let row = |text: &mut String, what: &str, files: &[String]| match sizes(files) {
            Some([raw, gz, br]) => {
                let _ = writeln!(text, "| {what} | {} | {:.0} KB | {:.0} KB | {:.0} KB |", files.len(), kb(raw), kb(gz), kb(br));
                Some(br)
            }
            None => None,
        };
        let mut text = String::from("## WASM bundle\n\n| what | files | raw | gzip | brotli |\n|---|---|---|---|---|\n");
        let Some(main_br) = row(&mut text, &format!("every page: `{main}` and the JS"), &every_page) else {
            self.notes.push(format!("`{main}` in {} has no precompressed siblings: run `make bench`, which builds them.", pkg.display()));
            return;
        };
        let mut largest_page = 0;
        let mut entries: Vec<_> = manifest.iter().collect();
        entries.sort_by_key(|(name, _)| name.to_string());
        for (name, chunks) in entries {
            let chunks: Vec<String> = chunks
                .as_array()
                .map(|c| c.iter().filter_map(|f| f.as_str()).map(|f| format!("{f}.wasm")).collect())
                .unwrap_or_default();
            let page = name.strip_prefix("__").and_then(|n| n.split_once("_view_")).map(|(page, _)| page);
            match page {
                Some(page) => {
                    let files: Vec<String> = every_page.iter().chain(&chunks).cloned().collect();
                    if let Some(br) = row(&mut text, &format!("the {page} page, all it loads"), &files) {
                        largest_page = largest_page.max(br);
                    }
                }
                None => {
                    let what = format!("`{}` on first use, besides", name.rsplit_once('_').map_or(name.as_str(), |(n, _)| n));
                    row(&mut text, &what, &chunks);
                }
            }
        }
        let verdict = |br: u64| if br < 200_000 { "met" } else { "**missed**" };
        let _ = writeln!(
            text,
            "\nGoal, brotli under 200 KB (200,000 bytes): what every page loads, {main_br} bytes: {}. The largest page with its own chunks, {largest_page} bytes: {}.",
            verdict(main_br),
            verdict(largest_page)
        );
        self.sections.push(text);
    }

    /// The criterion figures `cargo bench --bench tokens` left in `dir`.
    pub fn token_microbenchmarks(&mut self, dir: &Path) {
        let mean = |name: &str| -> Option<f64> {
            let text = std::fs::read_to_string(dir.join(name).join("new/estimates.json")).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json["mean"]["point_estimate"].as_f64()
        };
        let mut text = String::from(
            "## Access tokens (criterion, per operation)\n\n| operation | gatehouse | raw Ed25519 | ratio (raw / gatehouse) |\n|---|---|---|---|\n",
        );
        for (what, ours, raw) in [
            ("sign", "sign", "raw_ed25519_sign"),
            ("verify, first sight", "verify", "raw_ed25519_verify"),
            ("verify, seen before (cached)", "verify_cached", "raw_ed25519_verify"),
        ] {
            match (mean(ours), mean(raw)) {
                (Some(ours), Some(raw)) => {
                    let _ = writeln!(text, "| {what} | {:.1} µs | {:.1} µs | {:.2} |", ours / 1000.0, raw / 1000.0, raw / ours);
                }
                _ => self.notes.push(format!("The criterion figure for {what} is missing (run `cargo bench --bench tokens`).")),
            }
        }
        self.sections.push(text);
    }

    /// Carries over the section of `previous` (the last BENCHMARKS.md)
    /// headed [`SOAK_HEADING`]: `make soak`'s ten-minute memory curves, which
    /// a bench run does not measure, kept by hand until the next soak.
    pub fn keep_soak_section(&mut self, previous: &str) {
        let Some(start) = previous.find(SOAK_HEADING) else {
            return;
        };
        let body = &previous[start + SOAK_HEADING.len()..];
        let end = [body.find("\n## "), body.find(LOG_POINTER)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(body.len());
        self.soak = Some(format!("{SOAK_HEADING}{}", body[..end].trim_end()));
    }

    pub fn note(&mut self, text: &str) {
        self.notes.push(text.into());
    }

    pub fn render(&self) -> String {
        let mut out = String::from("# Benchmarks\n\n");
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l.trim_start_matches("MemTotal:").trim().to_string()))
            .unwrap_or_default();
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Written by `make bench` on {date}: {cores} cores, {memory} of memory. The server runs in the harness's process on the runtime `gatehouse serve` builds (one worker per core, at least two); server and load generator (wrk, on loopback) share the machine; every ratio compares figures measured in this same run, because absolute numbers on these machines vary from run to run. A figure and its baseline take {ROUNDS} turns each ({} s per turn), so a slow spell falls on both; the ratio is over all turns (three decimals, so a figure just short of its goal does not read as on it), and the spread is the lowest and highest ratio of one turn to the baseline's turn before it.\n",
            TURN.as_secs()
        );
        out.push_str("## Throughput against baselines\n\n| figure | measured | baseline | baseline measured | ratio | spread | goal |\n|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            out.push_str(row);
            out.push('\n');
        }
        out.push_str("\n## Latency\n\n| figure | p50 | p99 | requests | non-2xx/3xx |\n|---|---|---|---|---|\n");
        for row in &self.latencies {
            out.push_str(row);
            out.push('\n');
        }
        for section in &self.sections {
            out.push('\n');
            out.push_str(section);
        }
        if let Some(soak) = &self.soak {
            out.push('\n');
            out.push_str(soak);
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        let _ = writeln!(out, "\n{LOG_POINTER}");
        out
    }
}
