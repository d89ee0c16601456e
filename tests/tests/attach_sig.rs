//! `attach-sig` end to end against the real local registry: cosign's exact bytes (golden files
//! from cosign 2.5.0), identical re-attach, eight concurrent writers, `--signature-repo`,
//! `--dry-run`, refusals, ECR immutable tags through moto, and skopeo 1.18 verifying a
//! signature made in the test with a fresh P-256 key; cosign v3 bundles (`payload_type`): eight
//! concurrent writers to one tag-schema fallback index lose no referrer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigtrail_tests::interop::skopeo_verify;
use sigtrail_tests::{env, push_image, python, run, run_ok, tool, unique};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/data/cosign")
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(golden_dir().join(name)).unwrap()
}

fn records(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The digest-of record of `image` (`HOST/REPO:TAG`).
fn resolve(image: &str) -> Value {
    let out = run_ok(tool("digest-of").arg(image), b"");
    serde_json::from_str(out.trim()).unwrap()
}

/// Runs attach-sig on `recs` with `args`; returns (records, exit code, stderr).
fn attach(recs: &[&Value], args: &[&str]) -> (Vec<Value>, i32, String) {
    let input: String = recs.iter().map(|r| format!("{r}\n")).collect();
    let mut cmd = tool("attach-sig");
    cmd.args(args)
        .env_remove("COSIGN_REPOSITORY")
        .env_remove("SIGTRAIL_ECR_ALIASES");
    let out = run(&mut cmd, input.as_bytes());
    (
        records(&out.stdout),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with(rec: &Value, payload: &[u8], signature: &str) -> Value {
    let mut r = rec.clone();
    r["payload"] = b64(payload).into();
    r["signature"] = signature.into();
    r
}

/// The exact bytes of `GET /v2/REPO/manifests/REF` (None on 404), over plain HTTP.
fn raw_manifest(registry: &str, repo: &str, reference: &str) -> Option<Vec<u8>> {
    let out = run(
        Command::new("curl").args([
            "-s",
            "-f",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{registry}/v2/{repo}/manifests/{reference}"),
        ]),
        b"",
    );
    out.status.success().then_some(out.stdout)
}

fn raw_blob(registry: &str, repo: &str, digest: &str) -> Vec<u8> {
    run_ok(
        Command::new("curl").args([
            "-s",
            "-f",
            &format!("http://{registry}/v2/{repo}/blobs/{digest}"),
        ]),
        b"",
    )
    .into_bytes()
}

fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", &digest[7..])
}

/// A payload for `record` from payload-for, with annotations.
fn payload_for(record: &Value, annotations: &[&str]) -> Vec<u8> {
    let mut cmd = tool("payload-for");
    for a in annotations {
        cmd.args(["-a", a]);
    }
    let out = run_ok(&mut cmd, format!("{record}\n").as_bytes());
    let rec: Value = serde_json::from_str(out.trim()).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(rec["payload"].as_str().unwrap())
        .unwrap()
}

#[test]
fn pushes_cosigns_exact_bytes_and_reattach_changes_nothing() {
    let reg = &env().registry;
    let repo = unique("att-golden");
    // The image cosign signed for the golden files (push-image.sh is deterministic).
    let digest = push_image(&format!("{reg}/{repo}:v1"), "cosign golden image");
    assert_eq!(
        digest,
        String::from_utf8(golden("image-digest.txt"))
            .unwrap()
            .trim()
    );
    let rec = resolve(&format!("{reg}/{repo}:v1"));
    let sig1 = String::from_utf8(golden("one.signature.b64")).unwrap();
    let sig2 = String::from_utf8(golden("two.signature.b64")).unwrap();
    let one = with(&rec, &golden("one.payload.json"), &sig1);
    let two = with(&rec, &golden("two.payload.json"), &sig2);

    let (recs, code, err) = attach(&[&one], &[]);
    assert_eq!(code, 0, "{err}");
    let pushed = raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&golden("one.manifest.json")),
        "the manifest is what cosign pushed"
    );
    let m: Value = serde_json::from_slice(&pushed).unwrap();
    let config = raw_blob(reg, &repo, m["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config,
        golden("one.config.json"),
        "the config blob is cosign's"
    );
    let attached = &recs[0]["attached"];
    assert_eq!(attached["manifest_digest"], sha256(&pushed));
    assert_eq!(attached["tag"], sig_tag(&digest));
    assert_eq!(attached["repository"], format!("{reg}/{repo}"));
    assert_eq!(attached["layers"], 1);
    assert_eq!(attached["added"], true);
    // Fields the tool does not own pass through in order.
    let keys: Vec<&String> = recs[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.last().unwrap().as_str(), "attached");
    assert_eq!(recs[0]["payload"], one["payload"]);

    // The same signature again: nothing changes.
    let (recs, code, err) = attach(&[&one], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(recs[0]["attached"]["added"], false);
    assert_eq!(recs[0]["attached"]["manifest_digest"], sha256(&pushed));
    assert_eq!(raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap(), pushed);

    // A second signature is appended, again byte for byte as cosign appends.
    let (recs, code, err) = attach(&[&two], &[]);
    assert_eq!(code, 0, "{err}");
    let pushed2 = raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap();
    assert_eq!(pushed2, golden("two.manifest.json"));
    let m: Value = serde_json::from_slice(&pushed2).unwrap();
    assert_eq!(
        raw_blob(reg, &repo, m["config"]["digest"].as_str().unwrap()),
        golden("two.config.json")
    );
    assert_eq!(recs[0]["attached"]["layers"], 2);
    // Both again in one run: still the same manifest.
    let (recs, code, err) = attach(&[&one, &two], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(recs.iter().all(|r| r["attached"]["added"] == false));
    assert_eq!(
        raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap(),
        pushed2
    );
}

#[test]
fn dry_run_shows_the_manifest_and_pushes_nothing() {
    let reg = &env().registry;
    let repo = unique("att-dry");
    let digest = push_image(&format!("{reg}/{repo}:v1"), "dry run image");
    let rec = resolve(&format!("{reg}/{repo}:v1"));
    let r = with(&rec, &payload_for(&rec, &[]), "MEUCIQ==");
    let (recs, code, err) = attach(&[&r], &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        raw_manifest(reg, &repo, &sig_tag(&digest)).is_none(),
        "nothing pushed"
    );
    let dry = recs[0]["attached"]["dry_run_manifest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        recs[0]["attached"]["manifest_digest"],
        sha256(dry.as_bytes())
    );
    let (_, code, err) = attach(&[&r], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap(),
        dry.as_bytes(),
        "the real attach pushes what the dry run showed"
    );
}

#[test]
fn signature_repo_holds_the_signatures() {
    let reg = &env().registry;
    let repo = unique("att-img");
    let sigs = unique("att-sigs");
    let digest = push_image(&format!("{reg}/{repo}:v1"), "signature repo image");
    let rec = resolve(&format!("{reg}/{repo}:v1"));
    let r = with(&rec, &payload_for(&rec, &[]), "MEUCIQ==");
    let (recs, code, err) = attach(&[&r], &["--signature-repo", &format!("{reg}/{sigs}")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(recs[0]["attached"]["repository"], format!("{reg}/{sigs}"));
    assert!(raw_manifest(reg, &sigs, &sig_tag(&digest)).is_some());
    assert!(raw_manifest(reg, &repo, &sig_tag(&digest)).is_none());
    // COSIGN_REPOSITORY does the same, as it does for cosign.
    let sigs2 = unique("att-sigs-env");
    let input = format!("{r}\n");
    let out = run(
        tool("attach-sig").env("COSIGN_REPOSITORY", format!("{reg}/{sigs2}")),
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(raw_manifest(reg, &sigs2, &sig_tag(&digest)).is_some());
}

#[test]
fn bad_records_are_refused_and_the_run_goes_on() {
    let reg = &env().registry;
    let repo = unique("att-bad");
    let digest = push_image(&format!("{reg}/{repo}:v1"), "refusals");
    let rec = resolve(&format!("{reg}/{repo}:v1"));
    let payload = payload_for(&rec, &[]);
    let other = {
        let mut o = rec.clone();
        o["digest"] = format!("sha256:{}", "0".repeat(64)).into();
        payload_for(&o, &[])
    };
    let mut missing = with(&rec, &other, "MEUCIQ==");
    missing["digest"] = format!("sha256:{}", "0".repeat(64)).into();
    let inputs = [
        with(&rec, &payload, "MEUCIQ=="),  // ok
        with(&rec, &other, "MEUCIQ=="),    // payload signs another digest
        with(&rec, &payload, "MEUCIQ="),   // bad padding
        with(&rec, &payload, "MEUC IQ=="), // not base64
        with(&rec, b"{\"not\":\"a payload\"}", "MEUCIQ=="),
        json!({"image": format!("{reg}/{repo}:v1"), "payload": b64(&payload), "signature": "MEUCIQ=="}),
        missing, // an image that does not exist
    ];
    let (recs, code, _) = attach(&inputs.iter().collect::<Vec<_>>(), &[]);
    assert_eq!(code, 1);
    let kinds: Vec<&str> = recs
        .iter()
        .map(|r| r["error"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ok",
            "payload_mismatch",
            "bad_base64",
            "bad_base64",
            "bad_payload",
            "bad_record",
            "not_found"
        ]
    );
    let m = raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap();
    let m: Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        1,
        "only the good record attached"
    );
}

/// Eight attach-sig processes on one image at once leave eight signatures, 20 times over.
#[test]
fn eight_concurrent_writers_lose_nothing() {
    let reg = &env().registry;
    let repo = unique("att-race");
    let mut rounds_needed = 0;
    for rep in 0..20 {
        let tag = format!("r{rep}");
        let digest = push_image(&format!("{reg}/{repo}:{tag}"), &format!("race {rep}"));
        let rec = resolve(&format!("{reg}/{repo}:{tag}"));
        let mut expected = Vec::new();
        let children: Vec<(Child, String)> = (0..8)
            .map(|w| {
                let payload = payload_for(&rec, &[&format!("writer={w}")]);
                expected.push(sha256(&payload));
                let r = with(
                    &rec,
                    &payload,
                    &b64(format!("signature of writer {w}").as_bytes()),
                );
                let child = tool("attach-sig")
                    .env_remove("COSIGN_REPOSITORY")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, format!("{r}\n"))
            })
            .collect();
        // Start all writers, then feed them together.
        let mut running = Vec::new();
        for (mut child, input) in children {
            let mut stdin = child.stdin.take().unwrap();
            running.push((
                child,
                std::thread::spawn(move || {
                    use std::io::Write;
                    stdin.write_all(input.as_bytes()).unwrap();
                }),
            ));
        }
        for (child, writer) in running {
            writer.join().unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "rep {rep}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let r = &records(&out.stdout)[0];
            rounds_needed = rounds_needed.max(r["attached"]["rounds"].as_u64().unwrap_or(1));
        }
        let m = raw_manifest(reg, &repo, &sig_tag(&digest)).unwrap();
        let m: Value = serde_json::from_slice(&m).unwrap();
        let mut got: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["mediaType"] == SIMPLE_SIGNING)
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        expected.sort();
        assert_eq!(
            got, expected,
            "rep {rep}: every writer's signature is there, once"
        );
    }
    eprintln!("most write rounds one writer needed: {rounds_needed}");
}

/// Eight attach-sig processes push a bundle each for one image at once, five times over: the
/// fallback index `sha256-<hex>` (the registry has no referrers API) lists all eight referrer
/// manifests, once each, and each names its own bundle.
#[test]
fn eight_concurrent_bundle_writers_lose_no_referrer() {
    let reg = &env().registry;
    let repo = unique("att-bundle-race");
    for rep in 0..5 {
        let tag = format!("r{rep}");
        let digest = push_image(
            &format!("{reg}/{repo}:{tag}"),
            &format!("bundle race {rep}"),
        );
        let rec = resolve(&format!("{reg}/{repo}:{tag}"));
        let inputs: Vec<String> = (0..8)
            .map(|w| {
                let out = run_ok(
                    tool("payload-for").args(["--format", "bundle", "-a", &format!("writer={w}")]),
                    format!("{rec}\n").as_bytes(),
                );
                let mut r: Value = serde_json::from_str(out.trim()).unwrap();
                assert_eq!(r["payload_type"], "application/vnd.in-toto+json");
                r["signature"] = b64(format!("signature of writer {w}").as_bytes()).into();
                format!("{r}\n")
            })
            .collect();
        let children: Vec<Child> = inputs
            .iter()
            .map(|_| {
                tool("attach-sig")
                    .env_remove("COSIGN_REPOSITORY")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut running = Vec::new();
        for (mut child, input) in children.into_iter().zip(inputs) {
            let mut stdin = child.stdin.take().unwrap();
            running.push((
                child,
                std::thread::spawn(move || {
                    use std::io::Write;
                    stdin.write_all(input.as_bytes()).unwrap();
                }),
            ));
        }
        let mut pushed = Vec::new();
        for (child, writer) in running {
            writer.join().unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "rep {rep}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let a = &records(&out.stdout)[0]["attached"];
            assert_eq!(a["format"], "bundle", "{a}");
            assert_eq!(a["referrers"], "tag", "{a}");
            pushed.push(a["manifest_digest"].as_str().unwrap().to_string());
        }
        let index = run_ok(
            Command::new("curl").args([
                "-s",
                "-f",
                "-H",
                "Accept: application/vnd.oci.image.index.v1+json",
                &format!(
                    "http://{reg}/v2/{repo}/manifests/{}",
                    digest.replace(':', "-")
                ),
            ]),
            b"",
        );
        let index: Value = serde_json::from_str(&index).unwrap();
        let mut listed: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["digest"].as_str().unwrap().to_string())
            .collect();
        listed.sort();
        pushed.sort();
        pushed.dedup();
        assert_eq!(pushed.len(), 8, "rep {rep}: eight distinct referrers");
        assert_eq!(
            listed, pushed,
            "rep {rep}: every writer's referrer is listed, once"
        );
        for d in &listed {
            let m: Value = serde_json::from_slice(&raw_manifest(reg, &repo, d).unwrap()).unwrap();
            assert_eq!(m["subject"]["digest"], digest.as_str());
            assert_eq!(
                m["artifactType"],
                "application/vnd.dev.sigstore.bundle.v0.3+json"
            );
        }
    }
}

#[test]
fn immutable_ecr_tags_get_an_error_naming_the_fix() {
    let reg = &env().registry;
    let repo = unique("att-immutable");
    push_image(&format!("{reg}/{repo}:v1"), "immutable repository");
    run_ok(
        &mut python(
            "import boto3,os,sys\n\
             boto3.client('ecr', region_name=os.environ['AWS_REGION']).create_repository(\
             repositoryName=sys.argv[1], imageTagMutability='IMMUTABLE')",
            &[&repo],
        ),
        b"",
    );
    let rec = resolve(&format!("{reg}/{repo}:v1"));
    let payload = payload_for(&rec, &[]);
    let alias = format!("{reg}={ECR_HOST}");
    // The first signature creates the tag: allowed, as in ECR.
    let (_, code, err) = attach(
        &[&with(&rec, &payload, "MEUCIQ==")],
        &["--ecr-alias", &alias],
    );
    assert_eq!(code, 0, "{err}");
    // A second one must rewrite it: refused with the fix.
    let (recs, code, _) = attach(
        &[&with(&rec, &payload, "MEUCIA==")],
        &["--ecr-alias", &alias],
    );
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "immutable_tag", "{}", recs[0]);
    let msg = recs[0]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("IMMUTABLE_WITH_EXCLUSION") && msg.contains("sha256-*.sig"),
        "{msg}"
    );
    // A mutable ECR repository takes it.
    let mutable = unique("att-mutable");
    push_image(&format!("{reg}/{mutable}:v1"), "immutable repository");
    run_ok(
        &mut python(
            "import boto3,os,sys\n\
             boto3.client('ecr', region_name=os.environ['AWS_REGION']).create_repository(repositoryName=sys.argv[1])",
            &[&mutable],
        ),
        b"",
    );
    let rec = resolve(&format!("{reg}/{mutable}:v1"));
    let recs: Vec<Value> = ["MEUCIQ==", "MEUCIA=="]
        .iter()
        .map(|s| with(&rec, &payload, s))
        .collect();
    let (out, code, err) = attach(
        &recs.iter().collect::<Vec<_>>(),
        &["--ecr-alias", &alias, "--jobs", "1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[1]["attached"]["layers"], 2);
}

/// A signature made here with a fresh P-256 key, attached by attach-sig, verified by skopeo 1.18
/// (containers/image); a different key is rejected.
#[test]
fn skopeo_verifies_what_attach_sig_pushes() {
    let e = env();
    let reg = &e.registry;
    let repo = unique("att-skopeo");
    let image = format!("{reg}/{repo}:v1");
    push_image(&image, "verified by skopeo");
    let rec = resolve(&image);
    let payload = payload_for(&rec, &["built-by=attach-sig-test"]);
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    let (_, code, err) = attach(&[&with(&rec, &payload, &b64(sig.to_der().as_bytes()))], &[]);
    assert_eq!(code, 0, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let write_key = |name: &str, k: &p256::ecdsa::SigningKey| {
        let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let good = write_key("good.pub", &key);
    let other = write_key(
        "other.pub",
        &p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
    );
    let good = skopeo_verify(&image, &good);
    assert!(
        good.accepted,
        "skopeo rejected the attached signature: {}",
        good.message
    );
    let other = skopeo_verify(&image, &other);
    assert!(
        !other.accepted && other.message.contains("signature"),
        "skopeo accepted another key: {}",
        other.message
    );
}
