//! Developer tasks for sigtrail, run as `cargo xtask <task>`.
//!
//! - `install`: what the tests need on the machine (apt packages, Debian trixie's skopeo 1.18,
//!   Debian sid's cosign 3.1.1, a pinned Python venv with moto, the sigstore-rs harness), kept in
//!   a cache outside the repo.
//! - `env up|down|status`: the two local registries and the AWS emulator on free loopback ports.
//! - `test`: the one test command: install, env up, `cargo test --workspace`, env down.
//! - `demo`: install, env up, `scripts/demo.sh`, env down.
//! - `bench [--only verify|trail]`: install, env up, release build, `scripts/bench.sh` (signing,
//!   check-sig against its peers at 0 and 20 ms of added round-trip time; trail-for's scaling table over 100,000 to 10,000,000 CloudTrail
//!   records), env down.
//! - `fuzz`: build the cargo-fuzz targets in `fuzz/` and run each for a while (not part of `test`).
//! - `dist`: release build, then `sigtrail-VERSION-TARGET.tar.gz` (tools, man pages, completions,
//!   README, LICENSE, SHA256SUMS; `docgen/`) in `target/dist/`.
//! - `install-tools --prefix DIR`: release build, then the tools, man pages and completions
//!   under DIR (`DIR/bin`, `DIR/share/...`).

mod env;
mod fuzz;
mod install;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "sigtrail developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the tests need; idempotent and fast when everything is present.
    ///
    /// Machine-level things go to $SIGTRAIL_CACHE (default ~/.cache/sigtrail).
    Install,
    /// Start, stop or show the local registries and AWS emulator (state in .sigtrail/env/).
    Env {
        #[command(subcommand)]
        action: EnvAction,
    },
    /// install, env up, `cargo test --workspace [ARGS]` (without ARGS also `cargo fmt --check` and
    /// `cargo clippy -D warnings`), env down; exits with the test status.
    Test {
        /// Passed to `cargo test --workspace`, e.g. `env_smoke -- --nocapture`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// install, env up, push sample images and run the tools on them (scripts/demo.sh), env down.
    Demo,
    /// Sign 2,000 images through the real pipeline, re-verify them with check-sig and, in the
    /// same run, with cosign 3.1.1 (a loop, and one process given all), skopeo 1.18, the
    /// sigstore-rs harness and a plain HTTP load on the registry, each straight to the registry
    /// and through a proxy adding 20 ms of round-trip time per request; then time trail-for over generated CloudTrail trails of 100,000, 1,000,000 and 10,000,000
    /// records (one image, and --key-usage; one core against both at 1,000,000); prints rates,
    /// ratios and the goals.
    ///
    /// The 10,000,000-record trail is about 1 GB on disk and the trail part takes several
    /// minutes; progress goes to stderr. SIGTRAIL_BENCH_IMAGES, SIGTRAIL_BENCH_SAMPLE,
    /// SIGTRAIL_BENCH_ROUNDS, SIGTRAIL_BENCH_RTT_MS and SIGTRAIL_BENCH_TRAIL_SIZES change the
    /// image count (2000), the peers' sample (100), the runs a median is taken over (3), the
    /// added round-trip time (20 ms) and the trail sizes (100000,1000000,10000000); SIGTRAIL_BENCH_TRAIL_DIR is where the trails are written
    /// (target/bench-trail), each deleted once timed.
    Bench {
        /// Run only one part: `verify` (signing, check-sig and its peers) or `trail` (trail-for's
        /// scaling table)
        #[arg(long, value_name = "PART", value_parser = ["all", "verify", "trail"], default_value = "all")]
        only: String,
    },
    /// Build the cargo-fuzz targets in fuzz/ and run each in turn on its own corpus.
    ///
    /// Installs cargo-fuzz if missing; runs with RUSTC_BOOTSTRAP=1 on stable Rust. The corpus
    /// grows in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET), crashes go to
    /// fuzz/artifacts/TARGET. Exits 1 when a target crashed.
    Fuzz {
        /// Seconds each target runs
        #[arg(long, value_name = "N", default_value_t = 600)]
        seconds: u64,
        /// Sanitizer: address, leak, memory, thread or none
        #[arg(long, short = 's', default_value = "address")]
        sanitizer: String,
        /// Go on after a crash (libFuzzer fork mode, one job), collecting every crash input
        #[arg(long)]
        keep_going: bool,
        /// Targets to run (default: all): manifest, payload, record, reference, signature
        targets: Vec<String>,
    },
    /// Build the release bundle sigtrail-VERSION-TARGET.tar.gz (six tools, man pages, bash, zsh
    /// and fish completions, README, LICENSE, SHA256SUMS) and SHA256SUMS beside it.
    Dist {
        #[command(flatten)]
        build: Build,
        /// Where the bundle goes
        #[arg(long, value_name = "DIR", default_value = "target/dist")]
        out: PathBuf,
    },
    /// Build the six tools and install them, their man pages and completions under a prefix
    /// (PREFIX/bin, PREFIX/share/man, PREFIX/share/bash-completion, zsh, fish).
    InstallTools {
        #[command(flatten)]
        build: Build,
        /// e.g. ~/.local (then ~/.local/bin must be on PATH)
        #[arg(long, value_name = "DIR")]
        prefix: PathBuf,
    },
}

/// Which build of the tools `dist` and `install-tools` use.
#[derive(clap::Args)]
struct Build {
    /// Use the dev profile (a quick build, for trying the bundle out) instead of release
    #[arg(long)]
    debug: bool,
}

#[derive(Subcommand)]
enum EnvAction {
    /// Start the servers and write .sigtrail/env/env.sh and env.json.
    Up,
    /// Stop the servers started by `env up`.
    Down,
    /// Show whether the servers are running and answering.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<ExitCode> {
    let root = repo_root();
    match task {
        Task::Install => {
            install::install(&root)?;
        }
        Task::Env { action } => {
            let dir = root.join(".sigtrail/env");
            match action {
                EnvAction::Up => {
                    let tools = install::Tools::find()?;
                    let env = env::up(&root, &dir, &tools, true)?;
                    step(&format!(
                        "environment is up; load it with: . {}",
                        env.dir.join("env.sh").display()
                    ));
                }
                EnvAction::Down => env::down(&dir)?,
                EnvAction::Status => {
                    if !env::status(&dir)? {
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
        Task::Test { args } => {
            let full_suite = args.is_empty();
            let mut cargo_args = vec!["test".to_string(), "--workspace".to_string()];
            cargo_args.extend(args);
            return with_env(&root, "test-env", |vars| {
                // The end-to-end tests run the tools as processes, so build every binary first.
                // `--all-targets` resolves features as `cargo test` does (dev-dependencies
                // included), so the test run reuses this build instead of compiling it again.
                let mut build = cargo(&root, &["build", "--workspace", "--all-targets"]);
                if !status_of(&mut build, vars)? {
                    return Ok(false);
                }
                // The whole suite (the README's command, CI's) also holds the code to its
                // standards: formatted, and no clippy warning.
                if full_suite {
                    for tidy in [
                        &["fmt", "--all", "--", "--check"][..],
                        &[
                            "clippy",
                            "--workspace",
                            "--all-targets",
                            "--",
                            "-D",
                            "warnings",
                        ][..],
                    ] {
                        if !status_of(&mut cargo(&root, tidy), vars)? {
                            eprintln!(
                                "xtask: `cargo {}` failed: run `cargo fmt --all` and fix what \
                                 clippy says",
                                tidy.join(" ")
                            );
                            return Ok(false);
                        }
                    }
                }
                status_of(&mut cargo(&root, &cargo_args), vars)
            });
        }
        Task::Bench { only } => {
            return with_env(&root, "bench-env", |vars| {
                // The trail part needs only trail-for and its generator.
                let args: &[&str] = if only == "trail" {
                    &[
                        "build",
                        "--release",
                        "-p",
                        "trail-for",
                        "-p",
                        "sigtrail-tests",
                    ]
                } else {
                    &["build", "--release", "--workspace", "--bins"]
                };
                let mut build = cargo(&root, args);
                if only == "trail" {
                    build.args(["--bin", "trail-for", "--bin", "bench-trail"]);
                }
                if !status_of(&mut build, vars)? {
                    return Ok(false);
                }
                let mut bench = Command::new("bash");
                bench
                    .arg(root.join("scripts/bench.sh"))
                    .current_dir(&root)
                    .env("SIGTRAIL_BENCH_ONLY", &only);
                status_of(&mut bench, vars)
            });
        }
        Task::Fuzz {
            seconds,
            sanitizer,
            keep_going,
            targets,
        } => {
            let opts = fuzz::Options {
                seconds,
                sanitizer,
                targets,
                keep_going,
            };
            if !fuzz::fuzz(&root, &opts)? {
                step("FAILED: a fuzz target crashed");
                return Ok(ExitCode::FAILURE);
            }
            step("passed");
        }
        Task::Dist { build, out } => {
            let out = if out.is_absolute() {
                out
            } else {
                root.join(out)
            };
            let bins = build_tools(&root, build.debug)?;
            docgen(
                &root,
                build.debug,
                &["bundle", "--bins"],
                &bins,
                "--out",
                &out,
            )?;
        }
        Task::InstallTools { build, prefix } => {
            let prefix = std::path::absolute(&prefix)?;
            let bins = build_tools(&root, build.debug)?;
            docgen(
                &root,
                build.debug,
                &["install", "--bins"],
                &bins,
                "--prefix",
                &prefix,
            )?;
            step(&format!(
                "installed; man pages in {}, completions in {}",
                prefix.join("share/man").display(),
                prefix.join("share").display()
            ));
        }
        Task::Demo => {
            return with_env(&root, "demo-env", |vars| {
                let mut demo = Command::new("bash");
                demo.arg(root.join("scripts/demo.sh")).current_dir(&root);
                status_of(&mut demo, vars)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the six tools (release, or dev with `debug`); returns the directory holding them.
fn build_tools(root: &Path, debug: bool) -> Result<PathBuf> {
    let mut args = vec!["build"];
    if !debug {
        args.push("--release");
    }
    for tool in TOOLS {
        args.extend(["-p", tool]);
    }
    run_cmd(&mut cargo(root, &args))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |t| root.join(t));
    Ok(target.join(if debug { "debug" } else { "release" }))
}

/// Runs `sigtrail-docgen ARGS BINS FLAG DIR` (built in the tools' profile, so it shares their
/// build of the library).
fn docgen(
    root: &Path,
    debug: bool,
    args: &[&str],
    bins: &Path,
    flag: &str,
    dir: &Path,
) -> Result<()> {
    let mut cmd = cargo(root, &["run", "--quiet", "-p", "sigtrail-docgen"]);
    if !debug {
        cmd.arg("--release");
    }
    cmd.arg("--").args(args).arg(bins).arg(flag).arg(dir);
    run_cmd(&mut cmd)
}

/// The six tools, in pipeline order.
const TOOLS: [&str; 6] = [
    "digest-of",
    "payload-for",
    "kms-sign",
    "attach-sig",
    "check-sig",
    "trail-for",
];

/// Runs `f` with a fresh environment in `.sigtrail/<name>/` (so it never disturbs one a
/// developer started with `env up`), and always takes the environment down afterwards.
fn with_env(
    root: &Path,
    name: &str,
    f: impl FnOnce(&[(String, String)]) -> Result<bool>,
) -> Result<ExitCode> {
    let tools = install::install(root)?;
    let dir = root.join(".sigtrail").join(name);
    let env = env::up(root, &dir, &tools, false)?;
    let mut vars = env.contract();
    vars.push(("CI".into(), "true".into()));
    let outcome = f(&vars);
    let down = env::down(&dir);
    let ok = outcome?;
    down?;
    if ok {
        step("passed");
        Ok(ExitCode::SUCCESS)
    } else {
        step("FAILED");
        Ok(ExitCode::FAILURE)
    }
}

/// A cargo command run from the repository root, as a shell would run it (see
/// `as_from_a_shell`), so builds started by xtask and by hand reuse each other.
fn cargo<S: AsRef<std::ffi::OsStr>>(root: &Path, args: &[S]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(root);
    as_from_a_shell(&mut cmd);
    cmd
}

/// Removes the variables `cargo run` set for xtask itself (CARGO_PKG_NAME, CARGO_MANIFEST_DIR,
/// ...) from a cargo command. Build scripts such as ring's declare `rerun-if-env-changed` on
/// them, so a cargo run from xtask and one from a shell would otherwise see different values and
/// each rebuild ring, rustls and the whole aws-sdk stack (40 minutes in release on 2 busy cores).
fn as_from_a_shell(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(&k);
        }
    }
}

/// Runs a command with extra environment variables and no stdin; true when it exits 0.
fn status_of(cmd: &mut Command, vars: &[(String, String)]) -> Result<bool> {
    cmd.envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    step(&format!("running {}", show(cmd)));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    Ok(status.success())
}

/// Runs a command, echoing it; fails when it exits nonzero.
fn run_cmd(cmd: &mut Command) -> Result<()> {
    step(&format!("running {}", show(cmd)));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", show(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", show(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout, or None when it cannot run or fails.
fn output_of(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Progress for people: one line on stderr per step.
fn step(msg: &str) {
    eprintln!("xtask: {msg}");
}

/// The moto launcher, relative to the repository root.
const MOTO_LAUNCHER: &str = "scripts/moto_server.py";

fn repo_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR at run time too; prefer it so one compiled xtask
    // serves whichever worktree invoked it. Run directly (`target/debug/xtask`), it works on
    // the checkout around the current directory, and only outside one on the checkout it was
    // built in.
    // A sigtrail checkout: its xtask and its moto launcher.
    let is_root =
        |d: &Path| d.join("xtask/Cargo.toml").is_file() && d.join(MOTO_LAUNCHER).is_file();
    if let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let manifest = PathBuf::from(manifest);
        if let Some(root) = manifest.parent().filter(|r| is_root(r)) {
            return root.to_path_buf();
        }
    }
    let around = std::env::current_dir()
        .ok()
        .and_then(|dir| dir.ancestors().find(|d| is_root(d)).map(Path::to_path_buf));
    around.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the repository root")
            .to_path_buf()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_args(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Task::Test { args } = cli.task else {
            panic!("not the test task")
        };
        args
    }

    #[test]
    fn test_passes_its_arguments_through_verbatim() {
        assert_eq!(
            test_args(&["xtask", "test", "env_smoke", "--", "--nocapture"]),
            ["env_smoke", "--", "--nocapture"]
        );
        assert_eq!(
            test_args(&["xtask", "test", "--test", "env_smoke"]),
            ["--test", "env_smoke"]
        );
        assert!(test_args(&["xtask", "test"]).is_empty());
    }
}
