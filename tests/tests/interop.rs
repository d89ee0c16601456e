//! Interoperability end to end: the real pipeline `digest-of | payload-for | kms-sign --key K |
//! attach-sig` signs an image on the local registry with each key kind (moto KMS ECC_NIST_P256,
//! RSA_2048 and ECC_NIST_P384, and a cosign-format encrypted key file). Three verifiers, two of
//! them written elsewhere (skopeo 1.18 with a `sigstoreSigned` policy, the sigstore-rs 0.15
//! harness) and `check-sig`, accept it, and each rejects a tampered payload, a signature checked
//! against another key, and the signature manifest replayed onto another image. One image and
//! one replay target per key kind serve every case.
//!
//! skopeo (containers/image) verifies every sigstore signature with SHA-256 whatever the key, so
//! it rejects ECDSA P-384 signatures made by KMS (`ECDSA_SHA_384`); the P-384 test asserts that
//! rejection and its message, as the README's "Interoperability" section documents.
//!
//! Each test prints its rows of the verifier matrix on stderr (`--nocapture` shows them).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};
use sigtrail_tests::check_sig::{check_sig, oci, verdict, Keys};
use sigtrail_tests::faults::pipeline;
use sigtrail_tests::interop::{put_raw_manifest, raw_manifest, skopeo_verify, srs_verify, Verdict};
use sigtrail_tests::kms::{verify_independently, Check};
use sigtrail_tests::{env, kms_create_key, push_image, run_ok, tool, unique};

/// What skopeo says for a signature whose bytes do not verify with the policy's key.
const SKOPEO_BAD_SIGNATURE: &str = "cryptographic signature verification failed";

/// sigstore-rs found the one signature layer (for this image) and the key did not verify it.
const SRS_ONE_LAYER: &str = ", 1 layer(s)";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    KmsP256,
    KmsRsa2048,
    KmsP384,
    CosignKeyFile,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::KmsP256 => "kms-p256",
            Kind::KmsRsa2048 => "kms-rsa2048",
            Kind::KmsP384 => "kms-p384",
            Kind::CosignKeyFile => "cosign-key",
        }
    }

    /// The algorithm kms-sign must report for this kind.
    fn algorithm(self) -> &'static str {
        match self {
            Kind::KmsP256 | Kind::CosignKeyFile => "ECDSA_SHA_256",
            Kind::KmsRsa2048 => "RSASSA_PKCS1_V1_5_SHA_256",
            Kind::KmsP384 => "ECDSA_SHA_384",
        }
    }

    fn kms_spec(self) -> Option<&'static str> {
        match self {
            Kind::KmsP256 => Some("ECC_NIST_P256"),
            Kind::KmsRsa2048 => Some("RSA_2048"),
            Kind::KmsP384 => Some("ECC_NIST_P384"),
            Kind::CosignKeyFile => None,
        }
    }
}

/// A signing key: how kms-sign and check-sig name it, its passphrase (key files), and its
/// public key PEM as `kms-sign --public-key` printed it.
struct Key {
    reference: String,
    passphrase: Option<String>,
    public_pem: PathBuf,
}

impl Key {
    /// A kms-sign command for this key, with the passphrase (if any) in `COSIGN_PASSWORD`.
    fn kms_sign(&self) -> Command {
        let mut cmd = tool("kms-sign");
        cmd.args(["--key", &self.reference]);
        isolate(&mut cmd);
        if let Some(pass) = &self.passphrase {
            cmd.env("COSIGN_PASSWORD", pass);
        }
        cmd
    }
}

/// Keeps settings of the caller's shell that change where signatures go out of the test.
fn isolate(cmd: &mut Command) {
    cmd.env_remove("COSIGN_REPOSITORY")
        .env_remove("SIGTRAIL_ECR_ALIASES");
}

/// Creates a key of `kind` (in moto, or a cosign key file in `keys`) named `name`, and writes
/// its public key from `kms-sign --public-key` to `keys/NAME.kms-sign.pub`.
fn make_key(kind: Kind, name: &str, keys: &Keys) -> Key {
    let (reference, passphrase) = match kind.kms_spec() {
        Some(spec) => {
            let alias = format!(
                "alias/{}",
                unique(&format!("interop-{}-{name}", kind.name()))
            );
            let arn = kms_create_key(spec, &alias);
            assert!(arn.starts_with("arn:aws:kms:"), "{arn}");
            (format!("awskms:///{alias}"), None)
        }
        None => {
            keys.cosign(name);
            let pass = std::fs::read_to_string(keys.path("pass")).expect("passphrase file");
            let pass = pass.strip_suffix('\n').unwrap_or(&pass).to_string();
            (
                keys.path(&format!("{name}.key")).display().to_string(),
                Some(pass),
            )
        }
    };
    let key = Key {
        reference,
        passphrase,
        public_pem: keys.path(&format!("{name}.kms-sign.pub")),
    };
    let mut cmd = key.kms_sign();
    cmd.arg("--public-key");
    let pem = run_ok(&mut cmd, b"");
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "kms-sign --public-key printed {pem:?}"
    );
    if kind == Kind::CosignKeyFile {
        let written = std::fs::read_to_string(keys.path(&format!("{name}.pub"))).unwrap();
        assert_eq!(
            pem.trim(),
            written.trim(),
            "kms-sign --public-key prints the key gen-cosign-key.py wrote"
        );
    }
    std::fs::write(&key.public_pem, pem).expect("write public key");
    key
}

/// The key as check-sig takes it: the KMS reference itself, or the public key file.
fn check_sig_key(kind: Kind, key: &Key) -> String {
    match kind {
        Kind::CosignKeyFile => key.public_pem.display().to_string(),
        _ => key.reference.clone(),
    }
}

fn digest_of(image: &str) -> Value {
    let mut cmd = tool("digest-of");
    isolate(&mut cmd);
    serde_json::from_str(run_ok(cmd.arg(image), b"").trim()).expect("a digest-of record")
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// One row of the printed matrix.
fn row(kind: Kind, verifier: &str, case: &str, v: &Verdict) {
    let first = v.message.lines().next().unwrap_or("");
    eprintln!(
        "| {} | {verifier} | {case} | {} | {} |",
        kind.name(),
        if v.accepted { "accepted" } else { "rejected" },
        first.chars().take(160).collect::<String>()
    );
}

/// check-sig's answer for `image` with `key`, as a [`Verdict`] carrying the failed checks.
fn check_sig_verdict(image: &str, key: &str) -> (Verdict, Value) {
    let (out, proc) = check_sig(&["--key", key], &[digest_of(image)]);
    let rec = out.into_iter().next().expect("one record");
    let accepted = rec["verification"]["verified"] == true;
    assert_eq!(
        proc.status.code(),
        Some(if accepted { 0 } else { 1 }),
        "check-sig's exit status follows its verdict: {rec}"
    );
    let (failure, checks) = verdict(&rec);
    let message = match failure {
        None => format!("verified ({})", checks.join(",")),
        Some(f) => format!("{f} (failed checks: {})", checks.join(",")),
    };
    (Verdict { accepted, message }, rec)
}

fn interop(kind: Kind) {
    let reg = &env().registry;
    let keys = Keys::new();
    let signer = make_key(kind, "signer", &keys);
    let other = make_key(kind, "other", &keys);
    let repo = unique(&format!("interop-{}", kind.name()));
    let image = format!("{reg}/{repo}:v1");
    let digest = push_image(&image, &format!("interop {} signed image", kind.name()));
    let replay_image = format!("{reg}/{repo}:v2");
    let replay_digest = push_image(
        &replay_image,
        &format!("interop {} replay target", kind.name()),
    );

    // Sign: the four tools as one shell pipeline would run them.
    let mut digest_of = tool("digest-of");
    digest_of.arg(&image);
    let mut payload_for = tool("payload-for");
    payload_for.args(["-a", &format!("interop={}", kind.name())]);
    let mut attach_sig = tool("attach-sig");
    for cmd in [&mut digest_of, &mut payload_for, &mut attach_sig] {
        isolate(cmd);
    }
    let (out, codes) = pipeline(
        vec![digest_of, payload_for, signer.kms_sign(), attach_sig],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(codes, [Some(0); 4], "a stage failed: {stderr}");
    let out = String::from_utf8(out.stdout).expect("records are UTF-8");
    let rec: Value = serde_json::from_str(out.trim()).expect("one attach-sig record");
    assert_eq!(rec["digest"], digest.as_str(), "{rec}");
    assert_eq!(rec["algorithm"], kind.algorithm(), "{rec}");
    assert_eq!(rec["key"], signer.reference.as_str(), "{rec}");
    assert_eq!(rec["attached"]["added"], true, "{rec}");
    assert_eq!(rec["attached"]["tag"], sig_tag(&digest), "{rec}");
    if let Some(pass) = &signer.passphrase {
        assert!(!stderr.contains(pass.as_str()), "passphrase on stderr");
        assert!(!out.contains(pass.as_str()), "passphrase in a record");
    }
    let signer_check = check_sig_key(kind, &signer);
    let other_check = check_sig_key(kind, &other);

    // Accepted: the signed image, by every verifier (skopeo not for P-384: see below).
    let v = skopeo_verify(&image, &signer.public_pem);
    row(kind, "skopeo 1.18", "signed image", &v);
    if kind == Kind::KmsP384 {
        // containers/image loads every sigstore public key with a hard-coded SHA-256
        // (`sigstoreHarcodedHashAlgorithm`), so it checks the ECDSA_SHA_384 signature against
        // SHA-256(payload): a valid P-384 KMS signature is rejected as a bad signature.
        assert!(
            !v.accepted && v.message.contains(SKOPEO_BAD_SIGNATURE),
            "skopeo's P-384 behaviour changed: {v:?}"
        );
        // Why, checked with OpenSSL (Python cryptography): the signature holds over SHA-384 of
        // the payload, and not over SHA-256, which is all skopeo tries.
        let pem = std::fs::read_to_string(&signer.public_pem).unwrap();
        let check = |algorithm| Check {
            public_key_pem: &pem,
            payload_b64: rec["payload"].as_str().unwrap(),
            signature_b64: rec["signature"].as_str().unwrap(),
            algorithm,
        };
        assert_eq!(
            verify_independently(&[check("ECDSA_SHA_384"), check("ECDSA_SHA_256")]),
            [true, false]
        );
    } else {
        assert!(v.accepted, "skopeo rejected the signed image: {v:?}");
    }
    let v = srs_verify(&image, &signer.public_pem);
    row(kind, "sigstore-rs 0.15", "signed image", &v);
    assert!(v.accepted, "sigstore-rs rejected the signed image: {v:?}");
    let (v, checked) = check_sig_verdict(&image, &signer_check);
    row(kind, "check-sig", "signed image", &v);
    assert!(v.accepted, "check-sig rejected the signed image: {checked}");
    assert_eq!(
        checked["verification"]["signatures"][0]["algorithm"],
        kind.algorithm(),
        "{checked}"
    );

    // Rejected: the same image checked against another key of the same kind.
    bad_signature_everywhere(kind, "another key", &image, &other.public_pem, &other_check);

    // Rejected: the signature manifest, byte for byte, under the other image's .sig tag.
    let case = "signature copied onto another image";
    let manifest = raw_manifest(&repo, &sig_tag(&digest));
    put_raw_manifest(&repo, &sig_tag(&replay_digest), &manifest);
    assert_eq!(raw_manifest(&repo, &sig_tag(&replay_digest)), manifest);
    let v = skopeo_verify(&replay_image, &signer.public_pem);
    row(kind, "skopeo 1.18", case, &v);
    if kind == Kind::KmsP384 {
        // skopeo fails P-384 on the signature itself before it compares digests.
        assert!(
            !v.accepted && v.message.contains(SKOPEO_BAD_SIGNATURE),
            "{v:?}"
        );
    } else {
        assert!(
            !v.accepted
                && v.message
                    .contains(&format!("Signature for digest {digest}"))
                && v.message.contains("does not match"),
            "{v:?}"
        );
    }
    let v = srs_verify(&replay_image, &signer.public_pem);
    row(kind, "sigstore-rs 0.15", case, &v);
    // sigstore-rs drops a layer whose payload names another digest before any key is tried.
    assert!(!v.accepted && v.message.contains(", 0 layer(s)"), "{v:?}");
    let (v, checked) = check_sig_verdict(&replay_image, &signer_check);
    row(kind, "check-sig", case, &v);
    assert_eq!(
        verdict(&checked),
        (
            Some("no_matching_signatures".into()),
            vec!["manifest_digest".into()]
        ),
        "{checked}"
    );

    // Rejected: the payload edited (its digest claim untouched, an annotation changed), the
    // signature kept. Last, because it rewrites the signed image's own signature manifest.
    let case = "tampered payload";
    let sig: Value =
        serde_json::from_str(&oci(&["get-sig", reg, &repo, &sig_tag(&digest)])).unwrap();
    let mut layer = sig["layers"][0].clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload: Value =
        serde_json::from_slice(&b64.decode(layer["payload_b64"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(payload["optional"]["interop"], kind.name(), "{payload}");
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    payload["optional"]["interop"] = "tampered".into();
    layer["payload_b64"] = b64.encode(payload.to_string()).into();
    oci(&[
        "push-sig",
        reg,
        &repo,
        &sig_tag(&digest),
        &json!([layer]).to_string(),
    ]);
    bad_signature_everywhere(kind, case, &image, &signer.public_pem, &signer_check);
}

/// All three verifiers reject `image` checked with `public_pem` (check-sig: `check_key`) because
/// the one signature layer does not verify: skopeo's bad-signature error, sigstore-rs finding
/// the layer and no key for it, check-sig failing the `signature` check.
fn bad_signature_everywhere(
    kind: Kind,
    case: &str,
    image: &str,
    public_pem: &Path,
    check_key: &str,
) {
    let v = skopeo_verify(image, public_pem);
    row(kind, "skopeo 1.18", case, &v);
    assert!(
        !v.accepted && v.message.contains(SKOPEO_BAD_SIGNATURE),
        "{case}: {v:?}"
    );
    let v = srs_verify(image, public_pem);
    row(kind, "sigstore-rs 0.15", case, &v);
    assert!(
        !v.accepted && v.message.contains(SRS_ONE_LAYER),
        "{case}: {v:?}"
    );
    let (v, checked) = check_sig_verdict(image, check_key);
    row(kind, "check-sig", case, &v);
    assert_eq!(
        verdict(&checked),
        (
            Some("no_matching_signatures".into()),
            vec!["signature".into()]
        ),
        "{case}: {checked}"
    );
}

#[test]
fn kms_p256_signatures_interoperate() {
    interop(Kind::KmsP256);
}

#[test]
fn kms_rsa_2048_signatures_interoperate() {
    interop(Kind::KmsRsa2048);
}

/// sigstore-rs and check-sig accept P-384 (`ECDSA_SHA_384`); skopeo rejects it (see the header).
#[test]
fn kms_p384_signatures_interoperate_except_with_skopeo() {
    interop(Kind::KmsP384);
}

#[test]
fn cosign_key_file_signatures_interoperate() {
    interop(Kind::CosignKeyFile);
}
