//! cosign 3.1.1 in the loop: the real cosign (Debian sid's, `SIGTRAIL_COSIGN`) against the local
//! registry (docker-registry 2.8: no referrers API, so bundles go through the tag-schema
//! fallback index) and moto's KMS, both directions, both formats.
//!
//! - sigtrail signs (`digest-of | payload-for -a | kms-sign | attach-sig`, legacy `.sig`) with a
//!   cosign-generated key file, a KMS P-256 and a KMS RSA-2048 key; `cosign verify
//!   --insecure-ignore-tlog` accepts it with the public key file and with `awskms:///alias/K`.
//! - cosign signs (`--use-signing-config=false [--new-bundle-format=false] --tlog-upload=false`)
//!   with a key file and with `awskms:///alias/K`, in the legacy and the bundle format;
//!   `check-sig` accepts it with the PEM and with `awskms://` (bundles found by the default
//!   `--bundles auto`, without being asked).
//! - Each direction: another key, a payload (or statement) edited after signing, and the
//!   signature copied onto another image are refused by both tools; `-a k=v` on verify accepts
//!   when the signer put it there and refuses a wrong or missing one, in both tools.
//! - One image carrying both formats, signed by both tools, verifies in both.
//!
//! Every test uses its own repositories and keys; nothing waits on a clock.

use std::path::PathBuf;
use std::process::Output;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sigtrail_tests::check_sig::{check_sig, oci, verdict};
use sigtrail_tests::cosign::{
    get_blob, get_manifest, get_manifest_json, put_blob, put_manifest, CosignKeys, Format,
    PASSPHRASE,
};
use sigtrail_tests::faults::pipeline;
use sigtrail_tests::{env, kms_create_key, push_image, run_ok, tool, unique};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// cosign's exit codes: no matching signatures (legacy); bundle failures exit 1 ("no matching
/// attestations").
const NO_MATCHING_SIGNATURES: i32 = 12;
const NO_MATCHING_ATTESTATIONS: i32 = 1;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// `cosign generate-key-pair`
    KeyFile,
    KmsP256,
    KmsRsa2048,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::KeyFile => "key-file",
            Kind::KmsP256 => "kms-p256",
            Kind::KmsRsa2048 => "kms-rsa2048",
        }
    }
}

/// A key both tools can use: `reference` signs (a cosign key file, or `awskms:///alias/K`),
/// `pem` is its public key, `kms` the `awskms://` reference verifiers may use instead.
struct Key {
    reference: String,
    pem: PathBuf,
    kms: Option<String>,
}

impl Key {
    fn make(kind: Kind, name: &str, keys: &CosignKeys) -> Key {
        let spec = match kind {
            Kind::KeyFile => {
                let (key, public) = keys.generate(name);
                return Key {
                    reference: key.display().to_string(),
                    pem: public,
                    kms: None,
                };
            }
            Kind::KmsP256 => "ECC_NIST_P256",
            Kind::KmsRsa2048 => "RSA_2048",
        };
        let alias = format!(
            "alias/{}",
            unique(&format!("cosign-v3-{}-{name}", kind.name()))
        );
        kms_create_key(spec, &alias);
        let reference = format!("awskms:///{alias}");
        let pem = keys.path(&format!("{name}.pub"));
        sigtrail_tests::cosign::public_key(keys, &reference, &pem);
        Key {
            reference: reference.clone(),
            pem,
            kms: Some(reference),
        }
    }

    fn pem(&self) -> String {
        self.pem.display().to_string()
    }

    /// How verifiers may name this key: the PEM file, and the KMS reference when there is one.
    fn verifier_forms(&self) -> Vec<String> {
        let mut forms = vec![self.pem()];
        forms.extend(self.kms.clone());
        forms
    }
}

/// Two images in a fresh repository: the one signed, and another for replayed signatures.
struct Images {
    repo: String,
    signed: String,
    digest: String,
    other: String,
    other_digest: String,
}

impl Images {
    fn push(prefix: &str) -> Images {
        let reg = &env().registry;
        let repo = unique(prefix);
        let digest = push_image(&format!("{reg}/{repo}:v1"), &format!("{repo} signed"));
        let other_digest = push_image(&format!("{reg}/{repo}:v2"), &format!("{repo} other"));
        Images {
            signed: format!("{reg}/{repo}@{digest}"),
            other: format!("{reg}/{repo}@{other_digest}"),
            repo,
            digest,
            other_digest,
        }
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cosign verify` accepted: exit 0 and one claim for `digest` printed, with `optional`.
fn cosign_accepts(out: &Output, digest: &str) -> Value {
    assert_eq!(code(out), Some(0), "cosign verify refused: {}", text(out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("cosign prints JSON");
    assert_eq!(
        printed[0]["critical"]["image"]["docker-manifest-digest"], digest,
        "{printed}"
    );
    printed[0].clone()
}

fn cosign_refuses(out: &Output, want: i32, why: &str) {
    assert_eq!(code(out), Some(want), "{why}: {}", text(out));
    assert!(out.stdout.is_empty(), "{why}: {}", text(out));
}

/// check-sig's record for `image` (`HOST/REPO@DIGEST`) with `key` and `extra` flags.
fn check(image: &str, key: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--key", key];
    args.extend_from_slice(extra);
    let (out, proc) = check_sig(&args, &[json!({ "image": image })]);
    let rec = out.into_iter().next().expect("one record");
    let verified = rec["verification"]["verified"] == true;
    assert_eq!(
        proc.status.code(),
        Some(if verified { 0 } else { 1 }),
        "exit status follows the verdict: {rec}"
    );
    rec
}

fn check_accepts(image: &str, key: &str, extra: &[&str]) -> Value {
    let rec = check(image, key, extra);
    assert_eq!(
        rec["verification"]["verified"], true,
        "check-sig refused: {rec}"
    );
    rec
}

fn check_refuses(image: &str, key: &str, extra: &[&str], failed: &str) {
    let rec = check(image, key, extra);
    assert_eq!(
        verdict(&rec),
        (
            Some("no_matching_signatures".into()),
            vec![failed.to_string()]
        ),
        "{rec}"
    );
}

/// sigtrail's pipeline signs `image` (legacy `.sig`) with `key`, `-a team=blue`.
fn sigtrail_sign(image: &str, key: &Key) {
    let mut digest_of = tool("digest-of");
    digest_of.arg(image);
    let mut payload_for = tool("payload-for");
    payload_for.args(["-a", "team=blue"]);
    let mut kms_sign = tool("kms-sign");
    kms_sign
        .args(["--key", &key.reference])
        .env("COSIGN_PASSWORD", PASSPHRASE);
    let attach_sig = tool("attach-sig");
    let mut stages = vec![digest_of, payload_for, kms_sign, attach_sig];
    for s in &mut stages {
        s.env_remove("COSIGN_REPOSITORY")
            .env_remove("SIGTRAIL_ECR_ALIASES");
    }
    let (out, codes) = pipeline(stages, b"");
    assert_eq!(
        codes,
        [Some(0); 4],
        "a stage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: Value = serde_json::from_slice(&out.stdout).expect("one record");
    assert_eq!(rec["attached"]["added"], true, "{rec}");
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Copies the `.sig` manifest of `from` byte for byte to the `.sig` tag of `to`.
fn copy_sig(repo: &str, from: &str, to: &str) {
    let manifest = get_manifest(repo, &sig_tag(from));
    put_manifest(repo, &sig_tag(to), OCI_MANIFEST, &manifest);
}

/// Edits the one payload of `digest`'s `.sig` manifest (`optional.team`), signature kept.
fn tamper_legacy(repo: &str, digest: &str) {
    let reg = &env().registry;
    let sig: Value = serde_json::from_str(&oci(&["get-sig", reg, repo, &sig_tag(digest)])).unwrap();
    let mut layer = sig["layers"][0].clone();
    let mut payload: Value = serde_json::from_slice(
        &STANDARD
            .decode(layer["payload_b64"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["optional"]["team"], "blue", "{payload}");
    payload["optional"]["team"] = "tampered".into();
    layer["payload_b64"] = STANDARD.encode(payload.to_string()).into();
    oci(&[
        "push-sig",
        reg,
        repo,
        &sig_tag(digest),
        &json!([layer]).to_string(),
    ]);
}

/// The referrer manifests the fallback index of `digest` lists, with their JSON.
fn referrers(repo: &str, digest: &str) -> (Value, Vec<(String, Value)>) {
    let index = get_manifest_json(repo, &fallback_tag(digest));
    let list = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .map(|e| {
            let d = e["digest"].as_str().unwrap().to_string();
            let m = get_manifest_json(repo, &d);
            (d, m)
        })
        .collect();
    (index, list)
}

/// Pushes `manifest` by digest and makes it the only entry of `subject`'s fallback index, as
/// gcr writes entries (`artifactType` the config's media type, as Debian's cosign 3.1.1 does).
fn publish_referrer(repo: &str, subject: &str, manifest: &Value) -> String {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = sigtrail_tests::cosign::digest_of_bytes(&bytes);
    put_manifest(repo, &digest, OCI_MANIFEST, &bytes);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "size": bytes.len(), "digest": digest,
        "artifactType": manifest["config"]["mediaType"]}]});
    put_manifest(
        repo,
        &fallback_tag(subject),
        OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    );
    digest
}

/// Edits the statement in `digest`'s one bundle (`subject[0].annotations.team`), the DSSE
/// signature kept, and republishes it as `digest`'s only referrer.
fn tamper_bundle(repo: &str, digest: &str) {
    let (_, list) = referrers(repo, digest);
    let (_, mut manifest) = list.into_iter().next().expect("one referrer");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bundle: Value = serde_json::from_slice(&get_blob(repo, &layer)).unwrap();
    let payload = bundle["dsseEnvelope"]["payload"].as_str().unwrap();
    let mut statement: Value = serde_json::from_slice(&STANDARD.decode(payload).unwrap()).unwrap();
    assert_eq!(statement["subject"][0]["annotations"]["team"], "blue");
    statement["subject"][0]["annotations"]["team"] = "tampered".into();
    bundle["dsseEnvelope"]["payload"] = STANDARD.encode(statement.to_string()).into();
    let bytes = serde_json::to_vec(&bundle).unwrap();
    manifest["layers"][0]["digest"] = put_blob(repo, &bytes).into();
    manifest["layers"][0]["size"] = bytes.len().into();
    publish_referrer(repo, digest, &manifest);
}

/// Lists `from`'s bundle referrer for `to` too: once as it is (its `subject` still `from`), and
/// once with its `subject` rewritten to `to` (the bundle's statement still names `from`).
fn replay_bundle(images: &Images, keys_verify: impl Fn(&str)) {
    let repo = &images.repo;
    let (index, list) = referrers(repo, &images.digest);
    put_manifest(
        repo,
        &fallback_tag(&images.other_digest),
        OCI_INDEX,
        &serde_json::to_vec(&index).unwrap(),
    );
    keys_verify("bundle listed for another image");
    let (_, mut manifest) = list.into_iter().next().unwrap();
    let other = sigtrail_tests::cosign::digest_of_bytes(&get_manifest(repo, &images.other_digest));
    assert_eq!(other, images.other_digest);
    manifest["subject"]["digest"] = other.into();
    manifest["subject"]["size"] = get_manifest(repo, &images.other_digest).len().into();
    publish_referrer(repo, &images.other_digest, &manifest);
    keys_verify("bundle's referrer subject rewritten to another image");
}

// ---- sigtrail signs, cosign 3.1.1 verifies ----

fn sigtrail_to_cosign(kind: Kind) {
    let keys = CosignKeys::new();
    let signer = Key::make(kind, "signer", &keys);
    let stranger = Key::make(kind, "stranger", &keys);
    let im = Images::push(&format!("cosign-v3-from-sigtrail-{}", kind.name()));
    sigtrail_sign(&im.signed, &signer);

    for key in signer.verifier_forms() {
        let claim = cosign_accepts(&keys.verify(&key, &im.signed, &[]), &im.digest);
        assert_eq!(
            claim["critical"]["type"],
            "cosign container image signature"
        );
        assert_eq!(claim["optional"]["team"], "blue", "{claim}");
        cosign_accepts(
            &keys.verify(&key, &im.signed, &["-a", "team=blue"]),
            &im.digest,
        );
        for wrong in ["team=red", "absent=x"] {
            let out = keys.verify(&key, &im.signed, &["-a", wrong]);
            cosign_refuses(&out, NO_MATCHING_SIGNATURES, wrong);
        }
    }
    for key in stranger.verifier_forms() {
        let out = keys.verify(&key, &im.signed, &[]);
        cosign_refuses(&out, NO_MATCHING_SIGNATURES, "another key");
    }

    copy_sig(&im.repo, &im.digest, &im.other_digest);
    let out = keys.verify(&signer.pem(), &im.other, &[]);
    cosign_refuses(
        &out,
        NO_MATCHING_SIGNATURES,
        "signature copied onto another image",
    );
    check_refuses(&im.other, &signer.pem(), &[], "manifest_digest");

    tamper_legacy(&im.repo, &im.digest);
    let out = keys.verify(&signer.pem(), &im.signed, &[]);
    cosign_refuses(&out, NO_MATCHING_SIGNATURES, "payload edited");
    check_refuses(&im.signed, &signer.pem(), &[], "signature");
}

#[test]
fn sigtrail_signs_with_a_cosign_key_file_and_cosign_verifies() {
    sigtrail_to_cosign(Kind::KeyFile);
}

#[test]
fn sigtrail_signs_with_kms_p256_and_cosign_verifies() {
    sigtrail_to_cosign(Kind::KmsP256);
}

#[test]
fn sigtrail_signs_with_kms_rsa_2048_and_cosign_verifies() {
    sigtrail_to_cosign(Kind::KmsRsa2048);
}

// ---- cosign 3.1.1 signs, check-sig verifies ----

fn cosign_to_check_sig(format: Format, kind: Kind) {
    let keys = CosignKeys::new();
    let signer = Key::make(kind, "signer", &keys);
    let stranger = Key::make(kind, "stranger", &keys);
    let im = Images::push(&format!(
        "cosign-v3-from-cosign-{}-{}",
        format.name(),
        kind.name()
    ));
    keys.sign(format, &signer.reference, &im.signed, &["team=blue"]);
    let wrong_code = match format {
        Format::Legacy => NO_MATCHING_SIGNATURES,
        Format::Bundle => NO_MATCHING_ATTESTATIONS,
    };

    if format == Format::Bundle {
        // What cosign 3.1.1 wrote: a fallback index whose entry claims the empty type, and a
        // referrer manifest that says what it is itself.
        let (index, list) = referrers(&im.repo, &im.digest);
        assert_eq!(list.len(), 1, "{index}");
        let (_, m) = &list[0];
        assert_eq!(m["artifactType"], BUNDLE, "{m}");
        assert_eq!(m["config"]["artifactType"], BUNDLE, "{m}");
        assert_eq!(m["layers"][0]["mediaType"], BUNDLE, "{m}");
        assert_eq!(m["subject"]["digest"], im.digest.as_str(), "{m}");
        assert_eq!(
            m["annotations"]["dev.sigstore.bundle.predicateType"],
            SIGN_PREDICATE
        );
        assert_eq!(
            m["annotations"]["dev.sigstore.bundle.content"],
            "dsse-envelope"
        );
        let tags = run_ok(
            std::process::Command::new("curl").args([
                "-s",
                "-f",
                &format!("http://{}/v2/{}/tags/list", env().registry, im.repo),
            ]),
            b"",
        );
        assert!(!tags.contains(".sig"), "a bundle-only image: {tags}");
    }

    let pem = signer.pem();
    cosign_accepts(&keys.verify(&pem, &im.signed, &[]), &im.digest);
    for key in signer.verifier_forms() {
        // the default --bundles auto finds a bundle-only image
        let rec = check_accepts(&im.signed, &key, &[]);
        let v = &rec["verification"];
        let sig = &v["signatures"][0];
        assert_eq!(sig["annotations"]["team"], "blue", "{rec}");
        match format {
            Format::Legacy => {
                assert_eq!(v["signature_manifest"]["tag"], sig_tag(&im.digest), "{rec}");
                assert_eq!(sig["claims"]["type"], "cosign container image signature");
            }
            Format::Bundle => {
                assert_eq!(v["bundles"].as_array().map(Vec::len), Some(1), "{rec}");
                assert_eq!(sig["bundle_manifest"], v["bundles"][0]["digest"], "{rec}");
                assert_eq!(sig["claims"]["type"], SIGN_PREDICATE, "{rec}");
            }
        }
        check_accepts(&im.signed, &key, &["-a", "team=blue"]);
        check_refuses(&im.signed, &key, &["-a", "team=red"], "annotations");
        check_refuses(&im.signed, &key, &["-a", "absent=x"], "annotations");
    }
    for wrong in ["team=red", "absent=x"] {
        let out = keys.verify(&pem, &im.signed, &["-a", wrong]);
        cosign_refuses(&out, wrong_code, wrong);
    }
    for key in stranger.verifier_forms() {
        check_refuses(&im.signed, &key, &[], "signature");
    }
    cosign_refuses(
        &keys.verify(&stranger.pem(), &im.signed, &[]),
        wrong_code,
        "another key",
    );

    match format {
        Format::Legacy => {
            copy_sig(&im.repo, &im.digest, &im.other_digest);
            let out = keys.verify(&pem, &im.other, &[]);
            cosign_refuses(&out, wrong_code, "signature copied onto another image");
            check_refuses(&im.other, &pem, &[], "manifest_digest");
            tamper_legacy(&im.repo, &im.digest);
        }
        Format::Bundle => {
            replay_bundle(&im, |case| {
                let out = keys.verify(&pem, &im.other, &[]);
                cosign_refuses(&out, wrong_code, case);
                check_refuses(&im.other, &pem, &[], "manifest_digest");
            });
            tamper_bundle(&im.repo, &im.digest);
        }
    }
    let out = keys.verify(&pem, &im.signed, &[]);
    cosign_refuses(&out, wrong_code, "payload edited");
    check_refuses(&im.signed, &pem, &[], "signature");
}

#[test]
fn cosign_legacy_with_a_key_file_passes_check_sig() {
    cosign_to_check_sig(Format::Legacy, Kind::KeyFile);
}

#[test]
fn cosign_legacy_with_kms_passes_check_sig() {
    cosign_to_check_sig(Format::Legacy, Kind::KmsP256);
}

#[test]
fn cosign_bundle_with_a_key_file_passes_check_sig() {
    cosign_to_check_sig(Format::Bundle, Kind::KeyFile);
}

#[test]
fn cosign_bundle_with_kms_passes_check_sig() {
    cosign_to_check_sig(Format::Bundle, Kind::KmsP256);
}

/// sigtrail's `.sig` and cosign's bundle on one image: cosign verify (which reads the bundle
/// once there is one) and check-sig (`--bundles always` reads both) accept it.
#[test]
fn an_image_with_both_formats_verifies_in_both() {
    let keys = CosignKeys::new();
    let key = Key::make(Kind::KeyFile, "both", &keys);
    let im = Images::push("cosign-v3-both-formats");
    sigtrail_sign(&im.signed, &key);
    keys.sign(Format::Bundle, &key.reference, &im.signed, &["team=blue"]);
    let claim = cosign_accepts(&keys.verify(&key.pem(), &im.signed, &[]), &im.digest);
    assert_eq!(
        claim["critical"]["type"], SIGN_PREDICATE,
        "cosign reads the bundle"
    );
    let claim = cosign_accepts(
        &keys.verify(&key.pem(), &im.signed, &["--new-bundle-format=false"]),
        &im.digest,
    );
    assert_eq!(
        claim["critical"]["type"],
        "cosign container image signature"
    );
    let rec = check_accepts(
        &im.signed,
        &key.pem(),
        &["--bundles", "always", "-a", "team=blue"],
    );
    let sigs = rec["verification"]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{rec}");
    assert!(sigs.iter().all(|s| s["verified"] == true), "{rec}");
    let kinds: Vec<&str> = sigs
        .iter()
        .map(|s| s["claims"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["cosign container image signature", SIGN_PREDICATE]);
    // the cheap default stops at the .sig that verifies
    let rec = check_accepts(&im.signed, &key.pem(), &[]);
    assert_eq!(
        rec["verification"]["signatures"].as_array().map(Vec::len),
        Some(1)
    );
}

// ---- sigtrail writes a bundle, cosign 3.1.1 verifies ----

/// sigtrail's pipeline with `payload-for --format bundle`: a cosign v3 bundle referrer.
fn sigtrail_sign_bundle(image: &str, key: &Key) -> Value {
    let mut digest_of = tool("digest-of");
    digest_of.arg(image);
    let mut payload_for = tool("payload-for");
    payload_for.args(["--format", "bundle", "-a", "team=blue"]);
    let mut kms_sign = tool("kms-sign");
    kms_sign
        .args(["--key", &key.reference])
        .env("COSIGN_PASSWORD", PASSPHRASE);
    let attach_sig = tool("attach-sig");
    let mut stages = vec![digest_of, payload_for, kms_sign, attach_sig];
    for s in &mut stages {
        s.env_remove("COSIGN_REPOSITORY")
            .env_remove("SIGTRAIL_ECR_ALIASES");
    }
    let (out, codes) = pipeline(stages, b"");
    assert_eq!(
        codes,
        [Some(0); 4],
        "a stage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: Value = serde_json::from_slice(&out.stdout).expect("one record");
    assert_eq!(rec["attached"]["format"], "bundle", "{rec}");
    assert_eq!(rec["attached"]["referrers"], "tag", "{rec}");
    rec
}

fn sigtrail_bundle_to_cosign(kind: Kind) {
    let keys = CosignKeys::new();
    let signer = Key::make(kind, "signer", &keys);
    let stranger = Key::make(kind, "stranger", &keys);
    let im = Images::push(&format!("cosign-v3-sigtrail-bundle-{}", kind.name()));
    let rec = sigtrail_sign_bundle(&im.signed, &signer);

    // The record itself verifies offline (its statement against the DSSE PAE signature); with
    // another payload type it is refused.
    let (out, _) = check_sig(
        &["--offline", "--key", &signer.pem()],
        std::slice::from_ref(&rec),
    );
    assert_eq!(out[0]["verification"]["verified"], true, "{}", out[0]);
    assert_eq!(
        out[0]["verification"]["signatures"][0]["claims"]["type"],
        SIGN_PREDICATE
    );
    let mut retyped = rec.clone();
    retyped["payload_type"] = "application/vnd.in-toto+json; x".into();
    let (out, _) = check_sig(&["--offline", "--key", &signer.pem()], &[retyped]);
    assert_eq!(out[0]["verification"]["verified"], false, "{}", out[0]);

    // What was pushed, beside what cosign writes: the hint, no tlog entries, no .sig tag.
    let (_, list) = referrers(&im.repo, &im.digest);
    assert_eq!(list.len(), 1);
    let (digest, m) = &list[0];
    assert_eq!(digest, rec["attached"]["manifest_digest"].as_str().unwrap());
    let bundle: Value = serde_json::from_slice(&get_blob(
        &im.repo,
        m["layers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let key_id = hex::decode(rec["key_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        bundle["verificationMaterial"]["publicKey"]["hint"],
        STANDARD.encode(key_id)
    );
    assert!(bundle["verificationMaterial"].get("tlogEntries").is_none());

    for key in signer.verifier_forms() {
        let claim = cosign_accepts(&keys.verify(&key, &im.signed, &[]), &im.digest);
        assert_eq!(claim["critical"]["type"], SIGN_PREDICATE, "{claim}");
        assert_eq!(claim["optional"]["team"], "blue", "{claim}");
        cosign_accepts(
            &keys.verify(&key, &im.signed, &["-a", "team=blue"]),
            &im.digest,
        );
        for wrong in ["team=red", "absent=x"] {
            let out = keys.verify(&key, &im.signed, &["-a", wrong]);
            cosign_refuses(&out, NO_MATCHING_ATTESTATIONS, wrong);
        }
        let rec = check_accepts(&im.signed, &key, &["-a", "team=blue"]);
        assert_eq!(
            rec["verification"]["signatures"][0]["claims"]["type"],
            SIGN_PREDICATE
        );
    }
    for key in stranger.verifier_forms() {
        let out = keys.verify(&key, &im.signed, &[]);
        cosign_refuses(&out, NO_MATCHING_ATTESTATIONS, "another key");
        check_refuses(&im.signed, &key, &[], "signature");
    }
    replay_bundle(&im, |case| {
        let out = keys.verify(&signer.pem(), &im.other, &[]);
        cosign_refuses(&out, NO_MATCHING_ATTESTATIONS, case);
        check_refuses(&im.other, &signer.pem(), &[], "manifest_digest");
    });
    tamper_bundle(&im.repo, &im.digest);
    let out = keys.verify(&signer.pem(), &im.signed, &[]);
    cosign_refuses(&out, NO_MATCHING_ATTESTATIONS, "statement edited");
    check_refuses(&im.signed, &signer.pem(), &[], "signature");
}

#[test]
fn sigtrail_bundles_with_a_cosign_key_file_pass_cosign_verify() {
    sigtrail_bundle_to_cosign(Kind::KeyFile);
}

#[test]
fn sigtrail_bundles_with_kms_p256_pass_cosign_verify() {
    sigtrail_bundle_to_cosign(Kind::KmsP256);
}

#[test]
fn sigtrail_bundles_with_kms_rsa_2048_pass_cosign_verify() {
    sigtrail_bundle_to_cosign(Kind::KmsRsa2048);
}

// ---- check-sig --output cosign against cosign verify ----

/// For each case, `check-sig --output cosign` prints on stdout exactly what `cosign verify
/// --insecure-ignore-tlog` 3.1.1 prints, and exits with its status: verified legacy, verified
/// bundle (with and without annotations, by digest and by tag), no signatures, another key
/// (both formats), a wrong annotation, a tag that does not exist, a digest nobody pushed.
#[test]
fn check_sig_output_cosign_is_what_cosign_verify_prints() {
    let keys = CosignKeys::new();
    let key = Key::make(Kind::KeyFile, "signer", &keys);
    let stranger = Key::make(Kind::KeyFile, "stranger", &keys);
    let reg = &env().registry;
    let repo = unique("cosign-v3-output");
    let push = |tag: &str| {
        let d = push_image(&format!("{reg}/{repo}:{tag}"), &format!("{repo} {tag}"));
        format!("{reg}/{repo}@{d}")
    };
    let legacy = push("legacy");
    keys.sign(Format::Legacy, &key.reference, &legacy, &["team=blue"]);
    let bundle = push("bundle");
    keys.sign(Format::Bundle, &key.reference, &bundle, &["team=blue"]);
    let bare = push("bare");
    keys.sign(Format::Bundle, &key.reference, &bare, &[]);
    let unsigned = push("unsigned");
    let missing_tag = format!("{reg}/{repo}:no-such-tag");
    let missing_digest = format!("{reg}/{repo}@sha256:{}", "3".repeat(64));
    let good = key.pem();
    let other = stranger.pem();
    let by_tag = format!("{reg}/{repo}:bundle");
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("verified legacy", &legacy, vec![]),
        ("verified legacy with -a", &legacy, vec!["-a", "team=blue"]),
        ("verified bundle", &bundle, vec![]),
        ("verified bundle by tag", &by_tag, vec![]),
        ("verified bundle without annotations", &bare, vec![]),
        ("no signatures", &unsigned, vec![]),
        ("legacy, wrong annotation", &legacy, vec!["-a", "team=red"]),
        ("bundle, wrong annotation", &bundle, vec!["-a", "team=red"]),
        ("image tag not found", &missing_tag, vec![]),
        ("digest nobody pushed", &missing_digest, vec![]),
    ];
    let mut with_keys: Vec<(&str, &str, Vec<&str>, &str)> = cases
        .into_iter()
        .map(|(c, i, e)| (c, i, e, good.as_str()))
        .collect();
    with_keys.push(("legacy, another key", &legacy, vec![], &other));
    with_keys.push(("bundle, another key", &bundle, vec![], &other));
    for (case, image, extra, key) in with_keys {
        let theirs = keys.verify(key, image, &extra);
        let ours = sigtrail_tests::run(
            tool("check-sig")
                .args(["--output", "cosign", "--key", key])
                .args(&extra)
                .arg(image),
            b"",
        );
        eprintln!(
            "| {case} | cosign exit {:?} | check-sig exit {:?} |",
            code(&theirs),
            code(&ours)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{case}: stdout differs\ncosign: {}\ncheck-sig: {}",
            text(&theirs),
            text(&ours)
        );
        assert_eq!(
            code(&ours),
            code(&theirs),
            "{case}: exit status differs\ncosign: {}\ncheck-sig: {}",
            text(&theirs),
            text(&ours)
        );
    }
}
