//! Every signature vector in `shared/tests/data/vectors/` through `check-sig --offline`.
//!
//! The directory is enumerated, so a vector added later is checked too (and one whose
//! `EXPECTED.txt` names a reason this test cannot map fails loudly instead of being skipped).
//! Valid vectors must verify, with the claims and key their `META.json` names; each invalid one
//! must be rejected by the check its `EXPECTED.txt` gives. `expected_claims.json` supplies the
//! reference (checked with `--identity exact`) and digest the verifier is asked to accept; a
//! `manifest.json` supplies the digest as the image manifest's sha256.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigtrail_tests::{run, tool};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tests/data/vectors")
}

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

fn read_json(dir: &Path, name: &str) -> Option<Value> {
    read(dir, name).map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
    })
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A digest for vectors whose payload names none (not JSON): any well-formed one will do.
const FALLBACK_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The checks `EXPECTED.txt`'s reason allows, from its wording; the first rule that matches wins.
fn expected_checks(reason: &str) -> &'static [&'static str] {
    let r = reason.to_lowercase();
    if r.contains("base64") {
        &["signature_encoding"]
    } else if r.contains("media type") {
        // A record carries no layer media type, so offline only the signature can fail; the
        // registry test pushes this vector as a `text/plain` layer for the media type check.
        &["media_type", "signature"]
    } else if r.contains("docker-manifest-digest") {
        &["manifest_digest"]
    } else if r.contains("docker-reference") {
        &["identity"]
    } else if r.contains("payload") {
        &["payload"]
    } else if r.contains("identity") {
        &["identity"]
    } else if r.contains("signature does not verify")
        || r.contains("cryptographic verification")
        || r.contains("publickeyverificationerror")
    {
        &["signature"]
    } else {
        panic!("no rule maps the EXPECTED.txt reason {reason:?} to a check: add one")
    }
}

/// The algorithm `META.json`'s `crypto_detail` names, as `check-sig` reports it.
fn expected_algorithm(detail: &str) -> &'static str {
    let d = detail.to_lowercase();
    match (
        d.contains("rsa"),
        d.contains("pkcs1v15"),
        d.ends_with("sha256"),
    ) {
        (false, _, true) => "ECDSA_SHA_256",
        (true, true, true) => "RSASSA_PKCS1_V1_5_SHA_256",
        _ => panic!("no algorithm for crypto_detail {detail:?}"),
    }
}

/// The key id of a PEM `PUBLIC KEY`: sha256 hex of its DER.
fn key_id(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("key.pem body is base64");
    hex::encode(Sha256::digest(der))
}

struct Case {
    name: String,
    dir: PathBuf,
    valid: bool,
}

fn cases() -> Vec<Case> {
    let root = vectors_dir();
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let valid = match name.as_str() {
            "valid" => true,
            "invalid" => false,
            "INDEX.md" => continue,
            other => panic!("unexpected {other} in {}: is it a vector?", root.display()),
        };
        for v in std::fs::read_dir(entry.path()).expect("vector group") {
            let v = v.expect("dir entry");
            cases.push(Case {
                name: format!("{name}/{}", v.file_name().to_string_lossy()),
                dir: v.path(),
                valid,
            });
        }
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// Runs one vector; returns a description of what went wrong, if anything.
fn check(case: &Case) -> Result<(), String> {
    let dir = &case.dir;
    let meta = read_json(dir, "META.json").ok_or("no META.json")?;
    let payload = read(dir, "payload.json").ok_or("no payload.json")?;
    let signature = String::from_utf8(read(dir, "signature.b64").ok_or("no signature.b64")?)
        .map_err(|_| "signature.b64 is not UTF-8")?;
    let key = dir.join("key.pem");
    let claims = read_json(dir, "expected_claims.json");
    let manifest_digest = read(dir, "manifest.json").map(|m| sha256(&m));
    let claimed = |f: &str| {
        claims
            .as_ref()
            .and_then(|c| c[f].as_str())
            .map(str::to_string)
    };
    if let (Some(c), Some(m)) = (claimed("docker-manifest-digest"), &manifest_digest) {
        assert_eq!(
            &c, m,
            "{}: expected_claims and manifest.json disagree",
            case.name
        );
    }
    let digest = claimed("docker-manifest-digest")
        .or(manifest_digest)
        .or_else(|| {
            meta["claims"]["docker-manifest-digest"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| FALLBACK_DIGEST.to_string());
    let mut record = json!({
        "digest": digest,
        "payload": base64::engine::general_purpose::STANDARD.encode(&payload),
        "signature": signature,
    });
    let mut cmd = tool("check-sig");
    cmd.args(["--offline", "--quiet", "--key"]).arg(&key);
    if let Some(reference) = claimed("docker-reference") {
        record["image"] = reference.into();
        cmd.args(["--identity", "exact"]);
    }
    let out = run(&mut cmd, format!("{record}\n").as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rec: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!(
            "output is not one record ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let v = &rec["verification"];
    let sig = &v["signatures"][0];
    let verified = v["verified"]
        .as_bool()
        .ok_or(format!("no verification: {rec}"))?;
    if case.valid {
        let problems = [
            (verified, "not verified"),
            (out.status.code() == Some(0), "exit status is not 0"),
            (
                sig["key_id"] == key_id(&std::fs::read(&key).expect("key.pem")),
                "key_id",
            ),
            (
                sig["algorithm"]
                    == expected_algorithm(meta["crypto_detail"].as_str().unwrap_or("")),
                "algorithm",
            ),
            (
                sig["claims"]["docker_reference"] == meta["claims"]["docker-reference"],
                "claims.docker_reference",
            ),
            (
                sig["claims"]["manifest_digest"] == meta["claims"]["docker-manifest-digest"],
                "claims.manifest_digest",
            ),
            (
                sig["annotations"] == meta["claims"]["optional"],
                "annotations",
            ),
        ];
        if let Some((_, what)) = problems.iter().find(|(ok, _)| !ok) {
            return Err(format!("{what}: {rec}"));
        }
    } else {
        let expected = String::from_utf8(read(dir, "EXPECTED.txt").ok_or("no EXPECTED.txt")?)
            .map_err(|_| "EXPECTED.txt is not UTF-8")?;
        let reason = expected
            .lines()
            .find_map(|l| l.strip_prefix("Reason:"))
            .ok_or("EXPECTED.txt has no Reason: line")?
            .trim();
        let allowed = expected_checks(reason);
        let failed = sig["failed_check"].as_str().unwrap_or("none");
        if verified || out.status.code() != Some(1) {
            return Err(format!("accepted (exit {:?}): {rec}", out.status.code()));
        }
        if v["failure"] != "no_matching_signatures" {
            return Err(format!("failure is not no_matching_signatures: {rec}"));
        }
        if !allowed.contains(&failed) {
            return Err(format!(
                "rejected by {failed}, but EXPECTED.txt says {reason:?} ({allowed:?}): {rec}"
            ));
        }
    }
    Ok(())
}

#[test]
fn every_vector_gives_its_expected_answer() {
    let cases = cases();
    let (valid, invalid) = cases.iter().fold(
        (0, 0),
        |(v, i), c| if c.valid { (v + 1, i) } else { (v, i + 1) },
    );
    assert!(
        valid >= 9 && invalid >= 18,
        "{valid} valid, {invalid} invalid vectors: some are missing"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} vectors wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "{valid} valid vectors verified, {invalid} invalid vectors rejected for their reason"
    );
}

#[test]
fn unmappable_reasons_are_refused() {
    let r = std::panic::catch_unwind(|| expected_checks("something nobody wrote a rule for"));
    assert!(r.is_err());
    assert_eq!(expected_checks("Base64DecodeError"), ["signature_encoding"]);
}

/// The vectors through one process: batch mode keeps order and counts failures by kind.
#[test]
fn vectors_in_one_batch_keep_order() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.dir.join("key.pem").exists())
        .collect();
    // Every vector signed by the first valid vector's key, in one stream.
    let first = cases.iter().find(|c| c.valid).expect("a valid vector");
    let key = std::fs::read(first.dir.join("key.pem")).expect("key");
    let same_key: Vec<&Case> = cases
        .iter()
        .filter(|c| std::fs::read(c.dir.join("key.pem")).ok().as_ref() == Some(&key))
        .collect();
    let mut input = String::new();
    for c in &same_key {
        let payload = read(&c.dir, "payload.json").expect("payload");
        let signature =
            String::from_utf8(read(&c.dir, "signature.b64").expect("sig")).expect("utf8");
        let digest = read_json(&c.dir, "META.json").expect("meta")["claims"]
            ["docker-manifest-digest"]
            .as_str()
            .unwrap_or(FALLBACK_DIGEST)
            .to_string();
        let rec = json!({"name": c.name, "digest": digest,
            "payload": base64::engine::general_purpose::STANDARD.encode(&payload), "signature": signature});
        input.push_str(&format!("{rec}\n"));
    }
    let out = run(
        Command::new(tool("check-sig").get_program())
            .args(["--offline", "--jobs", "4", "--key"])
            .arg(first.dir.join("key.pem")),
        input.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let names: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("record")["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    let want: Vec<String> = same_key.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, want, "records come out in input order");
    let ok = stdout
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l).expect("record")["verification"]["verified"] == true
        })
        .count();
    assert!(
        ok > 0 && ok < same_key.len(),
        "a mix of good and bad vectors: {ok}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{} records: {ok} ok, {} failed (no_matching_signatures: {})",
            same_key.len(),
            same_key.len() - ok,
            same_key.len() - ok
        )),
        "summary: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1));
}
