//! Build script of the six tools (each bin's `Cargo.toml` names this file as `build`): sets
//! `SIGTRAIL_VERSION` to the package version and the git commit it was built from, for
//! `--version` (`check-sig 0.1.0 (commit 1e8b8f1a2b3c)`).
//!
//! The commit comes from `$SIGTRAIL_COMMIT` when set (a build from a source tarball), else from
//! `git rev-parse HEAD` in the package directory; outside a git checkout (or without git) it is
//! `unknown`, and the build still succeeds.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(std::env::var_os("CARGO_MANIFEST_DIR")?)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SIGTRAIL_COMMIT");
    let commit = match std::env::var("SIGTRAIL_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_string(),
        _ => {
            // Rebuild when HEAD moves: HEAD itself, the branch it names, packed refs.
            if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
                    .unwrap_or_else(|| git_dir.clone());
                let mut watch = vec![
                    PathBuf::from(&git_dir).join("HEAD"),
                    PathBuf::from(&common).join("packed-refs"),
                ];
                if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    watch.push(PathBuf::from(&common).join(&branch));
                }
                // Only files that exist: cargo reruns a script whose watched file is missing on
                // every build.
                for path in watch.iter().filter(|p| p.exists()) {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string())
        }
    };
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=SIGTRAIL_VERSION={version} (commit {commit})");
}
