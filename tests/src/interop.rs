//! Helpers of the interoperability tests: the signing pipeline as real processes joined by real
//! pipes, and the two independent verifiers (skopeo 1.18 through a `policy.json` with a
//! `sigstoreSigned` requirement, the sigstore-rs 0.15 harness) answering accept or reject.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::{env, run, run_ok};

/// What one process of a [`pipeline`] did.
pub struct Stage {
    pub name: String,
    pub code: Option<i32>,
    pub stderr: String,
}

/// Runs `stages` as a shell would run `a | b | c` (each stage's stdout is the next one's stdin,
/// through an OS pipe), with empty stdin for the first; returns the last stage's stdout and
/// every stage's exit code and stderr.
pub fn pipeline(stages: Vec<Command>) -> (String, Vec<Stage>) {
    let mut children = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    let count = stages.len();
    for (i, mut cmd) in stages.into_iter().enumerate() {
        let name = format!("{:?}", cmd.get_program());
        cmd.stdin(match previous.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if i + 1 < count {
            previous = child.stdout.take();
        }
        children.push((name, child));
    }
    // Each child's stderr is read after it exits; the tools write little there, far below a
    // pipe's buffer, so no stage can block on it.
    let mut stdout = String::new();
    let mut stages_out = Vec::new();
    for (name, child) in children {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {name}: {e}"));
        if !out.stdout.is_empty() {
            stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
        }
        stages_out.push(Stage {
            name,
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    (stdout, stages_out)
}

/// An independent verifier's answer for one image and key.
#[derive(Debug)]
pub struct Verdict {
    pub accepted: bool,
    /// What the verifier said: skopeo's stderr; sigstore-rs's verdict line, then its stderr.
    pub message: String,
}

/// skopeo 1.18 copies `image` (`HOST/REPO:TAG` or `HOST/REPO@DIGEST` on the environment's
/// anonymous registry) to a scratch OCI layout under a policy that requires a sigstore
/// signature by `public_key` for that registry (`signedIdentity: matchRepository`), as podman
/// and CRI-O would enforce it on pull.
pub fn skopeo_verify(image: &str, public_key: &Path) -> Verdict {
    let e = env();
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.json");
    let rules = json!([{"type": "sigstoreSigned", "keyPath": public_key,
                        "signedIdentity": {"type": "matchRepository"}}]);
    let doc = json!({"default": [{"type": "reject"}],
                     "transports": {"docker": {e.registry.as_str(): rules},
                                    "oci": {"": [{"type": "insecureAcceptAnything"}]}}});
    std::fs::write(&policy, doc.to_string()).expect("write policy.json");
    let out = run(
        Command::new(&e.skopeo)
            .arg("--registries.d")
            .arg(&e.skopeo_registries_d)
            .arg("--policy")
            .arg(&policy)
            .args([
                "copy",
                "-q",
                "--remove-signatures",
                "--src-tls-verify=false",
            ])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:copy", dir.path().join("out").display())),
        b"",
    );
    Verdict {
        accepted: out.status.success(),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// The sigstore-rs harness (`srs-verify IMAGE PUBKEY --http`) verifies `image`'s signatures
/// with `public_key`. Exit 0 is acceptance, 1 rejection; anything else fails the test.
pub fn srs_verify(image: &str, public_key: &Path) -> Verdict {
    let out = run(
        Command::new(&env().srs_verify)
            .arg(image)
            .arg(public_key)
            .arg("--http"),
        b"",
    );
    // stdout has the verdict line (`OK IMAGE` or `FAIL IMAGE: reason`), stderr the layers seen.
    let message = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string();
    match out.status.code() {
        Some(0) => Verdict {
            accepted: true,
            message,
        },
        Some(1) => Verdict {
            accepted: false,
            message,
        },
        other => panic!("srs-verify {image} ended with {other:?}: {message}"),
    }
}

/// The exact bytes of the OCI manifest `REPO:REFERENCE` on the anonymous registry.
pub fn raw_manifest(repo: &str, reference: &str) -> Vec<u8> {
    let url = format!("http://{}/v2/{repo}/manifests/{reference}", env().registry);
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &url,
        ]),
        b"",
    )
    .into_bytes()
}

/// PUTs `manifest` (an OCI image manifest, exact bytes) as `REPO:TAG` on the anonymous
/// registry.
pub fn put_raw_manifest(repo: &str, tag: &str, manifest: &[u8]) {
    let url = format!("http://{}/v2/{repo}/manifests/{tag}", env().registry);
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
            "@-",
            &url,
        ]),
        manifest,
    );
}
