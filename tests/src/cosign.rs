//! Real cosign 3.1.1 (Debian sid's, `SIGTRAIL_COSIGN`) in the tests: signing in both formats
//! without a transparency log, verifying with `--insecure-ignore-tlog`, generating key pairs,
//! and the raw registry requests the tamper cases need (blobs, manifests by tag or digest).
//!
//! Every cosign run gets its own `HOME` (a temp dir: no TUF cache, no docker config from the
//! machine) and the environment's AWS variables, so `awskms:///alias/K` reaches moto through
//! `AWS_ENDPOINT_URL`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{env, run, run_ok};

/// The passphrase of the key pairs [`CosignKeys::generate`] makes.
pub const PASSPHRASE: &str = "sigtrail-cosign-v3";

/// The flags cosign needs for the environment's plain-HTTP loopback registry.
pub const INSECURE: [&str; 2] = ["--allow-insecure-registry", "--allow-http-registry"];

/// Which format `cosign sign` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.sig` tag: `--use-signing-config=false --new-bundle-format=false --tlog-upload=false`
    Legacy,
    /// Sigstore bundle referrer: `--use-signing-config=false --tlog-upload=false`
    Bundle,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Legacy => "legacy",
            Format::Bundle => "bundle",
        }
    }
}

/// A scratch `HOME` and key directory for one test's cosign runs.
pub struct CosignKeys {
    pub dir: tempfile::TempDir,
}

impl Default for CosignKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl CosignKeys {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A cosign command with this directory as `HOME` and current directory, and the key
    /// passphrase in `COSIGN_PASSWORD`.
    pub fn cosign(&self) -> Command {
        let mut cmd = Command::new(&env().cosign);
        cmd.env("HOME", self.dir.path())
            .env("COSIGN_PASSWORD", PASSPHRASE)
            .env_remove("COSIGN_REPOSITORY")
            .env_remove("DOCKER_CONFIG")
            .current_dir(self.dir.path());
        cmd
    }

    /// `cosign generate-key-pair --output-key-prefix NAME`: `NAME.key` (encrypted, cosign's own
    /// format) and `NAME.pub`; returns their paths.
    pub fn generate(&self, name: &str) -> (PathBuf, PathBuf) {
        run_ok(
            self.cosign()
                .args(["generate-key-pair", "--output-key-prefix"])
                .arg(name),
            b"",
        );
        (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.pub")),
        )
    }

    /// `cosign sign` of `image` (`HOST/REPO@DIGEST`) with `key` (a key file or `awskms:///...`)
    /// in `format`, with `-a` annotations; panics unless it succeeds.
    pub fn sign(&self, format: Format, key: &str, image: &str, annotations: &[&str]) {
        let mut cmd = self.cosign();
        cmd.args(["sign", "--key", key, "--use-signing-config=false"]);
        if format == Format::Legacy {
            cmd.arg("--new-bundle-format=false");
        }
        cmd.arg("--tlog-upload=false").args(INSECURE);
        for a in annotations {
            cmd.args(["-a", a]);
        }
        run_ok(cmd.arg(image), b"");
    }

    /// `cosign verify --key KEY --insecure-ignore-tlog [EXTRA] IMAGE`, whatever its outcome.
    pub fn verify(&self, key: &str, image: &str, extra: &[&str]) -> Output {
        run(
            self.cosign()
                .args(["verify", "--key", key, "--insecure-ignore-tlog"])
                .args(INSECURE)
                .args(extra)
                .arg(image),
            b"",
        )
    }
}

/// `http://REGISTRY/v2/REPO/PATH` on the environment's anonymous registry.
fn url(repo: &str, path: &str) -> String {
    format!("http://{}/v2/{repo}/{path}", env().registry)
}

/// The exact bytes of manifest `reference` (tag or digest) of `repo`, accepting OCI manifests
/// and indexes.
pub fn get_manifest(repo: &str, reference: &str) -> Vec<u8> {
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            &url(repo, &format!("manifests/{reference}")),
        ]),
        b"",
    )
    .into_bytes()
}

/// [`get_manifest`] as JSON.
pub fn get_manifest_json(repo: &str, reference: &str) -> Value {
    serde_json::from_slice(&get_manifest(repo, reference)).expect("manifest JSON")
}

/// PUTs `bytes` as manifest `reference` (tag or digest) of `repo` with `media_type`.
pub fn put_manifest(repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            "@-",
            &url(repo, &format!("manifests/{reference}")),
        ]),
        bytes,
    );
}

/// The bytes of blob `digest` of `repo`.
pub fn get_blob(repo: &str, digest: &str) -> Vec<u8> {
    let out = run(
        Command::new("curl").args(["-s", "-f", "-L", &url(repo, &format!("blobs/{digest}"))]),
        b"",
    );
    assert!(out.status.success(), "GET blob {digest} of {repo} failed");
    out.stdout
}

/// Uploads `bytes` as a blob of `repo` (monolithic POST + PUT); returns its digest.
pub fn put_blob(repo: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let headers = run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &url(repo, "blobs/uploads/"),
        ]),
        b"",
    );
    let location = headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("upload Location");
    let location = if location.starts_with("http") {
        location
    } else {
        format!("http://{}{location}", env().registry)
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            "@-",
            &format!("{location}{sep}digest={digest}"),
        ]),
        bytes,
    );
    digest
}

/// The digest of `bytes` (`sha256:<hex>`).
pub fn digest_of_bytes(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The public key of `key` as cosign exports it (`cosign public-key --key KEY`), written to
/// `to`.
pub fn public_key(keys: &CosignKeys, key: &str, to: &Path) {
    let pem = run_ok(keys.cosign().args(["public-key", "--key", key]), b"");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    std::fs::write(to, pem).expect("write public key");
}
