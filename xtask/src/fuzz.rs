//! `cargo xtask fuzz`: builds the cargo-fuzz targets in `fuzz/` and runs each for a while.
//!
//! Stable Rust has no `-Z` flags, so cargo-fuzz runs with `RUSTC_BOOTSTRAP=1` (stable rustc
//! ships libFuzzer's sanitizer runtimes; AddressSanitizer works that way). Each target runs
//! alone, one after the other, on a scratch corpus `fuzz/corpus/<target>/` (not in git) that
//! libFuzzer grows, reading the small committed seeds `fuzz/seeds/<target>/` too; crash inputs
//! land in `fuzz/artifacts/<target>/`. Not part of `cargo xtask test`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{output_of, run_cmd, show, step};

/// Targets whose code under test reports each bad record on stderr (the harness does): their
/// stderr is closed (`-close_fd_mask=2`, libFuzzer keeps its own output) so a ten-minute run
/// does not write gigabytes. Rerun a crash input with `cargo fuzz run` to see its message.
const NOISY_TARGETS: &[&str] = &["record"];

/// What `cargo xtask fuzz` was asked to do.
pub struct Options {
    pub seconds: u64,
    pub sanitizer: String,
    pub targets: Vec<String>,
    /// Go on after a crash (libFuzzer's fork mode, one job), collecting every crash input
    pub keep_going: bool,
}

/// What one target's run gave.
struct Outcome {
    target: String,
    seconds: u64,
    executions: Option<u64>,
    per_second: Option<u64>,
    corpus: usize,
    crashes: Vec<String>,
    ok: bool,
}

/// Builds and runs the targets; true when none crashed.
pub fn fuzz(root: &Path, opts: &Options) -> Result<bool> {
    let fuzz_dir = root.join("fuzz");
    let target_dir = fuzz_dir.join("target");
    ensure_cargo_fuzz(root)?;
    let all = list_targets(root)?;
    let targets = if opts.targets.is_empty() {
        all.clone()
    } else {
        for t in &opts.targets {
            if !all.contains(t) {
                bail!("no fuzz target {t:?}; the targets are: {}", all.join(", "));
            }
        }
        opts.targets.clone()
    };
    let common = |cmd: &mut Command| {
        cmd.current_dir(root)
            .env("RUSTC_BOOTSTRAP", "1")
            .arg("--fuzz-dir")
            .arg(&fuzz_dir)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--sanitizer", &opts.sanitizer, "--debug-assertions"]);
    };
    // `cargo fuzz build` takes one target, or none for all of them.
    let builds: Vec<Option<&String>> = if targets == all {
        vec![None]
    } else {
        targets.iter().map(Some).collect()
    };
    for target in builds {
        let mut build = crate::cargo(root, &["fuzz", "build"]);
        common(&mut build);
        build.args(target);
        run_cmd(&mut build)?;
    }

    let mut outcomes = Vec::new();
    for target in &targets {
        let seeds = fuzz_dir.join("seeds").join(target);
        if !seeds.is_dir() {
            bail!("no seed corpus {}", seeds.display());
        }
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let mut run = crate::cargo(root, &["fuzz", "run"]);
        common(&mut run);
        run.arg(target).arg(&corpus).arg(&seeds).arg("--").args([
            format!("-max_total_time={}", opts.seconds),
            // A hang on hostile input is a defect too.
            "-timeout=30".to_string(),
            "-print_final_stats=1".to_string(),
        ]);
        if NOISY_TARGETS.contains(&target.as_str()) {
            run.arg("-close_fd_mask=2");
        }
        if opts.keep_going {
            run.args([
                "-fork=1",
                "-ignore_crashes=1",
                "-ignore_timeouts=1",
                "-ignore_ooms=1",
            ]);
        }
        let artifacts = fuzz_dir.join("artifacts").join(target);
        outcomes.push(run_target(target, &mut run, &corpus, &artifacts)?);
    }

    step("fuzz summary:");
    eprintln!(
        "{:<12} {:>8} {:>14} {:>9} {:>8}  crashes",
        "target", "seconds", "executions", "exec/s", "corpus"
    );
    let show_n = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
    for o in &outcomes {
        eprintln!(
            "{:<12} {:>8} {:>14} {:>9} {:>8}  {}",
            o.target,
            o.seconds,
            show_n(o.executions),
            show_n(o.per_second),
            o.corpus,
            if o.ok {
                "none".to_string()
            } else if o.crashes.is_empty() {
                "failed (see above)".to_string()
            } else {
                o.crashes.join(" ")
            }
        );
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    for o in &failed {
        for c in &o.crashes {
            step(&format!(
                "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s {} -a {} {c}",
                opts.sanitizer, o.target
            ));
        }
    }
    Ok(failed.is_empty())
}

/// Installs cargo-fuzz unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    if let Some(v) = output_of(&mut crate::cargo(root, &["fuzz", "--version"])) {
        step(&format!("using {}", v.trim()));
        return Ok(());
    }
    run_cmd(&mut crate::cargo(
        root,
        &["install", "cargo-fuzz", "--locked"],
    ))
}

/// The targets `cargo fuzz list` names.
fn list_targets(root: &Path) -> Result<Vec<String>> {
    let mut cmd = crate::cargo(root, &["fuzz", "list", "--fuzz-dir", "fuzz"]);
    cmd.current_dir(root);
    let out = output_of(&mut cmd).with_context(|| format!("{} failed", show(&cmd)))?;
    let targets: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if targets.is_empty() {
        bail!("{} lists no targets", show(&cmd));
    }
    Ok(targets)
}

/// Runs one target, echoing libFuzzer's output, and picks its figures out of it.
fn run_target(target: &str, cmd: &mut Command, corpus: &Path, artifacts: &Path) -> Result<Outcome> {
    step(&format!("running {}", show(cmd)));
    let before = files(artifacts);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    let mut executions = None;
    let mut per_second = None;
    let (mut progress, mut progress_rate) = (None, None);
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        let mut echo = std::io::stderr();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let _ = echo.write_all(&line);
            let text = String::from_utf8_lossy(&line);
            let stat = |name: &str| {
                text.strip_prefix(name)
                    .and_then(|v| v.trim().trim_start_matches(':').trim().parse::<u64>().ok())
            };
            if let Some(n) = stat("stat::number_of_executed_units") {
                executions = Some(n);
            }
            if let Some(n) = stat("stat::average_exec_per_sec") {
                per_second = Some(n);
            }
            // Progress lines, `#N\tpulse ... exec/s: R` (and `#N: ... exec/s R` in fork mode):
            // the last one stands when there are no final stats (a crash, fork mode).
            if let Some(rest) = text.strip_prefix('#') {
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(n) = n.parse::<u64>() {
                    progress = Some(n);
                }
                if let Some((_, r)) = rest.split_once("exec/s") {
                    let r: String = r
                        .trim_start_matches([':', ' '])
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(r) = r.parse::<u64>() {
                        progress_rate = Some(r);
                    }
                }
            }
            line.clear();
        }
    }
    let status = child.wait().context("waiting for cargo fuzz run")?;
    let crashes: Vec<String> = files(artifacts)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|f| artifacts.join(f).display().to_string())
        .collect();
    Ok(Outcome {
        target: target.to_string(),
        seconds: start.elapsed().as_secs(),
        executions: executions.or(progress),
        per_second: per_second.or(progress_rate),
        corpus: files(corpus).len(),
        ok: status.success() && crashes.is_empty(),
        crashes,
    })
}

/// The names of the files in `dir` (none when it does not exist).
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
