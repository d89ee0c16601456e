//! Helpers of the `check-sig` end-to-end tests: signers nobody here wrote (skopeo 1.18, the
//! sigstore-rs harness), hand-made registry content (`check_sig/oci.py`: tampered, replayed and
//! attachment layers, cosign v3 bundles), and running `check-sig` on records.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::{env, python, run, run_ok, script, tool};

/// The Python helper for hand-made registry content (see its header).
pub const OCI_PY: &str = include_str!("check_sig/oci.py");

/// Runs `oci.py ARGS` with the venv's python; returns its stdout, trimmed.
pub fn oci(args: &[&str]) -> String {
    run_ok(&mut python(OCI_PY, args), b"").trim().to_string()
}

/// Key files made for one test.
pub struct Keys {
    pub dir: tempfile::TempDir,
}

impl Keys {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An encrypted cosign key pair `NAME.key`/`NAME.pub` (gen-cosign-key.py) and its
    /// passphrase file `pass`; returns the public key path.
    pub fn cosign(&self, name: &str) -> PathBuf {
        let prefix = self.path(name);
        run_ok(
            script("gen-cosign-key.py")
                .arg(&prefix)
                .arg(self.path("pass")),
            b"",
        );
        prefix.with_extension("pub")
    }

    /// A plain PKCS#8 P-256 key `NAME.pem` and `NAME.pub` (for hand-made signatures).
    pub fn plain(&self, name: &str) -> PathBuf {
        let prefix = self.path(name);
        oci(&["keygen", &prefix.display().to_string()]);
        prefix.with_extension("pub")
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// skopeo 1.18 signs `reference` (`HOST/REPO:TAG`, already pushed) with the cosign key
/// `key` by copying it onto itself with `--sign-by-sigstore-private-key` (appends a layer).
pub fn skopeo_sign(reference: &str, key: &Path, passfile: &Path) {
    let e = env();
    run_ok(
        Command::new(&e.skopeo)
            .arg("--registries.d")
            .arg(sigstore_attachments_everywhere())
            .arg("--policy")
            .arg(&e.skopeo_policy_accept)
            .args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg("--sign-by-sigstore-private-key")
            .arg(key)
            .arg("--sign-passphrase-file")
            .arg(passfile)
            .arg(format!("docker://{reference}"))
            .arg(format!("docker://{reference}")),
        b"",
    );
}

/// A `registries.d` telling skopeo to use sigstore attachments on every registry (the
/// environment's names only its own two; some tests run a registry of their own).
fn sigstore_attachments_everywhere() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sigtrail-check-sig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("registries.d dir");
        std::fs::write(
            dir.join("default.yaml"),
            "default-docker:\n  use-sigstore-attachments: true\n",
        )
        .expect("registries.d file");
        dir
    })
}

/// The sigstore-rs harness signs `reference` with the cosign key `key` (it REPLACES the
/// signature manifest).
pub fn srs_sign(reference: &str, key: &Path, passfile: &Path) {
    run_ok(
        Command::new(&env().srs_sign)
            .arg(reference)
            .arg(key)
            .arg(passfile)
            .arg("--http"),
        b"",
    );
}

/// Runs `check-sig ARGS` on `records` (one JSON per line); returns the output records and the
/// process output.
pub fn check_sig(args: &[&str], records: &[Value]) -> (Vec<Value>, Output) {
    let input: String = records.iter().map(|r| format!("{r}\n")).collect();
    let out = run(tool("check-sig").args(args), input.as_bytes());
    let recs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "check-sig wrote a line that is not JSON ({e}): {l}\nstderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect();
    (recs, out)
}

/// `failure` and the failed checks of every signature, for compact assertions.
pub fn verdict(rec: &Value) -> (Option<String>, Vec<String>) {
    let v = &rec["verification"];
    let failure = v["failure"].as_str().map(str::to_string);
    let checks = v["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["failed_check"].as_str().unwrap_or("ok").to_string())
        .collect();
    (failure, checks)
}
