//! Helpers of the interoperability tests (their signing pipeline runs through
//! [`crate::faults::pipeline`]): the two independent verifiers (skopeo 1.18 through a
//! `policy.json` with a `sigstoreSigned` requirement, the sigstore-rs 0.15 harness) answering
//! accept or reject, and raw signature manifests.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::{env, run, run_ok};

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
