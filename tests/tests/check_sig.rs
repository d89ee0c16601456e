//! `check-sig` against the real local registry: images signed by skopeo 1.18 and by the
//! sigstore-rs harness verify; tampered payloads, altered signatures, replayed signatures,
//! unknown keys, unsigned and missing images fail with the right failure kind; cosign v3
//! bundles (built here per cosign's format: no v3 signer runs in this environment); cosign's
//! output and exit codes; a registry that dies in the middle of a batch.

use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};
use sigtrail_tests::check_sig::{check_sig, oci, skopeo_sign, srs_sign, verdict, Keys};
use sigtrail_tests::own_registry::OwnRegistry;
use sigtrail_tests::{env, push_image, run, tool, unique};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// An image pushed to a fresh repository: `(repo, reference with tag, digest)`.
fn image(prefix: &str, content: &str) -> (String, String, String) {
    let repo = unique(prefix);
    let reference = format!("{}/{repo}:v1", env().registry);
    let digest = push_image(&reference, content);
    (repo, reference, digest)
}

/// A digest-of shaped record.
fn record(repo: &str, digest: &str) -> Value {
    json!({"ref": format!("{}/{repo}@{digest}", env().registry), "registry": env().registry,
           "repository": repo, "tag": "v1", "digest": digest})
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

fn key_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn skopeo_and_sigstore_rs_signatures_verify() {
    let keys = Keys::new();
    let skopeo_pub = keys.cosign("skopeo");
    let srs_pub = keys.cosign("srs");
    let pass = keys.path("pass");
    let (repo_a, ref_a, digest_a) = image("cs-skopeo", "signed by skopeo");
    skopeo_sign(&ref_a, &keys.path("skopeo.key"), &pass);
    let (repo_b, ref_b, digest_b) = image("cs-srs", "signed by sigstore-rs");
    srs_sign(&ref_b, &keys.path("srs.key"), &pass);

    let records = [
        record(&repo_a, &digest_a),
        record(&repo_b, &digest_b),
        json!({ "image": ref_a }),
    ];
    let (out, proc) = check_sig(
        &["--key", &key_arg(&skopeo_pub), "--key", &key_arg(&srs_pub)],
        &records,
    );
    assert_eq!(proc.status.code(), Some(0), "{out:?}");
    for rec in &out {
        let v = &rec["verification"];
        assert_eq!(v["verified"], true, "{rec}");
        assert_eq!(v["source"], "registry");
        let sig = &v["signatures"][0];
        assert_eq!(sig["algorithm"], "ECDSA_SHA_256");
        assert_eq!(sig["identity_matches"], true, "{rec}");
    }
    // skopeo and sigstore-rs both sign the reference they were given, tag included
    let skopeo_sig = &out[0]["verification"]["signatures"][0];
    assert_eq!(skopeo_sig["claims"]["docker_reference"], ref_a);
    assert_eq!(skopeo_sig["claims"]["manifest_digest"], digest_a);
    assert!(skopeo_sig["annotations"]["creator"]
        .as_str()
        .unwrap_or("")
        .contains("containers/image"));
    let srs_sig = &out[1]["verification"]["signatures"][0];
    assert_eq!(srs_sig["claims"]["docker_reference"], ref_b);
    assert_ne!(srs_sig["key_id"], skopeo_sig["key_id"], "two keys trusted");
    assert_eq!(
        out[2]["verification"]["signature_manifest"]["digest"],
        out[0]["verification"]["signature_manifest"]["digest"],
        "a tag reference is resolved to the same image"
    );
    // skopeo signed `:v1`: --identity exact holds for v1 and not for another tag
    let (out, _) = check_sig(
        &["--key", &key_arg(&skopeo_pub), "--identity", "exact"],
        &[
            record(&repo_a, &digest_a),
            json!({"registry": env().registry, "repository": repo_a, "tag": "v2", "digest": digest_a}),
        ],
    );
    assert_eq!(out[0]["verification"]["verified"], true);
    assert_eq!(
        verdict(&out[1]),
        (
            Some("no_matching_signatures".into()),
            vec!["identity".into()]
        )
    );
}

#[test]
fn forged_and_missing_signatures_fail_with_their_kind() {
    let keys = Keys::new();
    let good_pub = keys.cosign("good");
    let other_pub = keys.cosign("other");
    let pass = keys.path("pass");
    let reg = env().registry.clone();
    let (repo, reference, digest) = image("cs-forge", "the signed one");
    skopeo_sign(&reference, &keys.path("good.key"), &pass);
    let sig: Value =
        serde_json::from_str(&oci(&["get-sig", &reg, &repo, &sig_tag(&digest)])).unwrap();
    let layer = &sig["layers"][0];

    // tampered payload: same signature, payload edited (a new blob with its own digest)
    let (t_repo, _, t_digest) = image("cs-tampered", "tampered");
    let payload = String::from_utf8(unb64(layer["payload_b64"].as_str().unwrap())).unwrap();
    let tampered = payload
        .replace(&digest, &t_digest)
        .replace(&format!("/{repo}"), &format!("/{t_repo}"));
    let mut t_layer = layer.clone();
    t_layer["payload_b64"] = b64(tampered.as_bytes()).into();
    oci(&[
        "push-sig",
        &reg,
        &t_repo,
        &sig_tag(&t_digest),
        &json!([t_layer]).to_string(),
    ]);

    // altered signature: one byte of the DER signature changed
    let (a_repo, _, a_digest) = image("cs-altered", "altered");
    let mut bytes = unb64(
        layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap(),
    );
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let mut a_layer = layer.clone();
    a_layer["annotations"]["dev.cosignproject.cosign/signature"] = b64(&bytes).into();
    oci(&[
        "push-sig",
        &reg,
        &a_repo,
        &sig_tag(&a_digest),
        &json!([a_layer]).to_string(),
    ]);

    // replayed: the valid signature manifest of one image copied to another
    let (r_repo, _, r_digest) = image("cs-replay", "replayed onto");
    oci(&[
        "push-sig",
        &reg,
        &r_repo,
        &sig_tag(&r_digest),
        &json!([layer]).to_string(),
    ]);

    // only an attachment (ci-n15's text/plain layer), no signature
    let (n_repo, _, n_digest) = image("cs-attach", "attachment only");
    let n15 =
        sigtrail_tests::shared_dir().join("vectors/invalid/ci-n15-other-attachment-not-signature");
    let n_layer = json!({"media_type": std::fs::read_to_string(n15.join("mimeType.txt")).unwrap().trim(),
        "payload_b64": b64(&std::fs::read(n15.join("payload.json")).unwrap()),
        "annotations": {"dev.cosignproject.cosign/signature": std::fs::read_to_string(n15.join("signature.b64")).unwrap()}});
    oci(&[
        "push-sig",
        &reg,
        &n_repo,
        &sig_tag(&n_digest),
        &json!([n_layer]).to_string(),
    ]);

    // unsigned, and missing
    let (u_repo, _, u_digest) = image("cs-unsigned", "never signed");
    let missing = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    let records = [
        record(&repo, &digest),
        record(&t_repo, &t_digest),
        record(&a_repo, &a_digest),
        record(&r_repo, &r_digest),
        record(&n_repo, &n_digest),
        record(&u_repo, &u_digest),
        record(&u_repo, missing),
    ];
    let (out, proc) = check_sig(&["--key", &key_arg(&good_pub)], &records);
    let got: Vec<_> = out.iter().map(verdict).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let nms = Some("no_matching_signatures".to_string());
    assert_eq!(
        got,
        vec![
            (None, s(&["ok"])),
            (nms.clone(), s(&["signature"])),
            (nms.clone(), s(&["signature"])),
            (nms.clone(), s(&["manifest_digest"])),
            (Some("no_signatures".into()), s(&["media_type"])),
            (Some("no_signatures".into()), s(&[])),
            (Some("image_not_found".into()), s(&[])),
        ]
    );
    assert_eq!(proc.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&proc.stderr);
    assert!(
        stderr.contains("7 records: 1 ok, 6 failed (image_not_found: 1, no_matching_signatures: 3, no_signatures: 2)"),
        "{stderr}"
    );
    // the replayed signature is still attributed to its key and names what it signed
    let replay = &out[3]["verification"]["signatures"][0];
    assert_eq!(replay["claims"]["manifest_digest"], digest);
    assert!(replay["key_id"].is_string());

    // the right image with an unknown key
    let (out, _) = check_sig(&["--key", &key_arg(&other_pub)], &[record(&repo, &digest)]);
    assert_eq!(verdict(&out[0]), (nms, s(&["signature"])));
}

#[test]
fn threshold_and_signature_repo() {
    let keys = Keys::new();
    let a = keys.cosign("a");
    let b = keys.cosign("b");
    let c = keys.cosign("c");
    let pass = keys.path("pass");
    let reg = env().registry.clone();
    let (repo, reference, digest) = image("cs-two", "two signers");
    srs_sign(&reference, &keys.path("a.key"), &pass); // sigstore-rs replaces, so first
    skopeo_sign(&reference, &keys.path("b.key"), &pass); // skopeo appends
    let rec = record(&repo, &digest);
    let args = |keys: &[&Path], n: &str| {
        let mut v: Vec<String> = keys
            .iter()
            .flat_map(|k| ["--key".to_string(), key_arg(k)])
            .collect();
        v.extend(["--threshold".to_string(), n.to_string()]);
        v
    };
    let call = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        check_sig(&a, std::slice::from_ref(&rec)).0.remove(0)
    };
    let both = call(args(&[&a, &b], "2"));
    assert_eq!(both["verification"]["verified"], true, "{both}");
    assert_eq!(
        both["verification"]["keys_verified"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let one = call(args(&[&a, &c], "2"));
    assert_eq!(one["verification"]["failure"], "threshold_not_met", "{one}");
    let out = run(
        tool("check-sig").args(["--key", &key_arg(&a), "--threshold", "2"]),
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "threshold above the number of keys is a usage error"
    );

    // signatures kept in another repository (COSIGN_REPOSITORY)
    let sigs_repo = unique("cs-sigstore");
    let (o_repo, _, o_digest) = image("cs-other-repo", "signature elsewhere");
    let sig: Value =
        serde_json::from_str(&oci(&["get-sig", &reg, &repo, &sig_tag(&digest)])).unwrap();
    let payload =
        String::from_utf8(unb64(sig["layers"][1]["payload_b64"].as_str().unwrap())).unwrap();
    assert!(payload.contains(&digest));
    // b's layer for `digest`, kept in the other repository only
    oci(&[
        "push-sig",
        &reg,
        &sigs_repo,
        &sig_tag(&digest),
        &json!([sig["layers"][1]]).to_string(),
    ]);
    let (out, _) = check_sig(
        &[
            "--key",
            &key_arg(&b),
            "--signature-repo",
            &format!("{reg}/{sigs_repo}"),
        ],
        &[rec.clone(), record(&o_repo, &o_digest)],
    );
    assert_eq!(out[0]["verification"]["verified"], true, "{}", out[0]);
    assert_eq!(
        out[0]["verification"]["signature_manifest"]["repository"],
        format!("{reg}/{sigs_repo}")
    );
    assert_eq!(verdict(&out[1]).0.as_deref(), Some("no_signatures"));
}

#[test]
fn cosign_output_and_exit_codes() {
    let keys = Keys::new();
    let good = keys.cosign("good");
    let other = keys.cosign("other");
    let pass = keys.path("pass");
    let (repo, reference, digest) = image("cs-cosign-out", "cosign output");
    skopeo_sign(&reference, &keys.path("good.key"), &pass);
    let (_, unsigned, _) = image("cs-cosign-unsigned", "unsigned");
    let at = format!("{}/{repo}@{digest}", env().registry);
    let cosign = |key: &Path, image: &str, extra: &[&str]| {
        run(
            tool("check-sig")
                .args(["--output", "cosign", "--key", &key_arg(key)])
                .args(extra)
                .arg(image),
            b"",
        )
    };
    let ok = cosign(&good, &at, &[]);
    assert_eq!(ok.status.code(), Some(0));
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert!(
        stdout.starts_with("\n[{\"critical\":{\"identity\":{\"docker-reference\":"),
        "{stdout:?}"
    );
    let printed: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        printed[0]["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    let stderr = String::from_utf8(ok.stderr).unwrap();
    assert!(
        stderr.contains(&format!("Verification for {at} --")),
        "{stderr}"
    );
    assert!(stderr.contains("  - The signatures were verified against the specified public key"));

    assert_eq!(cosign(&good, &unsigned, &[]).status.code(), Some(10));
    // cosign 3.1.1: a digest nobody pushed has no signatures (10); a missing tag is 11
    let missing = format!("{}/{repo}@sha256:{}", env().registry, "3".repeat(64));
    assert_eq!(cosign(&good, &missing, &[]).status.code(), Some(10));
    let missing_tag = format!("{}/{repo}:no-such-tag", env().registry);
    assert_eq!(cosign(&good, &missing_tag, &[]).status.code(), Some(11));
    let wrong_key = cosign(&other, &at, &[]);
    assert_eq!(wrong_key.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&wrong_key.stderr).contains("Error: no matching signatures"));
    assert!(wrong_key.stdout.is_empty());
    assert_eq!(
        cosign(&good, &at, &["-a", "absent=x"]).status.code(),
        Some(12)
    );
}

#[test]
fn cosign_v3_bundles_as_referrers() {
    let keys = Keys::new();
    let k = keys.plain("bundle");
    let other = keys.plain("other");
    let reg = env().registry.clone();
    let (repo, _, digest) = image("cs-bundle", "cosign v3 style");
    let pem = keys.path("bundle.pem").display().to_string();
    let manifest = oci(&[
        "push-bundle",
        &reg,
        &repo,
        &digest,
        &pem,
        r#"{"env":"prod"}"#,
    ]);
    // a second bundle that signs another digest (replayed statement) next to it
    let (r_repo, _, r_digest) = image("cs-bundle-replay", "replay target");
    oci(&["push-bundle", &reg, &r_repo, &r_digest, &pem, "{}", &digest]);

    let (out, proc) = check_sig(
        &["--key", &key_arg(&k), "-a", "env=prod"],
        &[record(&repo, &digest), record(&r_repo, &r_digest)],
    );
    let v = &out[0]["verification"];
    assert_eq!(v["verified"], true, "{}", out[0]);
    assert_eq!(v["bundles"][0]["digest"], manifest);
    let sig = &v["signatures"][0];
    assert_eq!(sig["bundle_manifest"], manifest);
    assert_eq!(sig["claims"]["type"], "https://sigstore.dev/cosign/sign/v1");
    assert_eq!(sig["annotations"]["env"], "prod");
    assert_eq!(
        verdict(&out[1]),
        (
            Some("no_matching_signatures".into()),
            vec!["manifest_digest".into()]
        )
    );
    assert_eq!(proc.status.code(), Some(1));

    let (out, _) = check_sig(&["--key", &key_arg(&other)], &[record(&repo, &digest)]);
    assert_eq!(
        verdict(&out[0]),
        (
            Some("no_matching_signatures".into()),
            vec!["signature".into()]
        )
    );
    let (out, _) = check_sig(
        &["--key", &key_arg(&k), "--bundles", "never"],
        &[record(&repo, &digest)],
    );
    assert_eq!(verdict(&out[0]).0.as_deref(), Some("no_signatures"));
}

/// A registry of the test's own (so stopping it disturbs no other test) dies in the middle of
/// a batch: every record comes out, the unchecked ones with an error; rerun, they verify.
#[test]
fn a_registry_that_dies_mid_batch_leaves_every_record_accounted_for() {
    let keys = Keys::new();
    let pubkey = keys.cosign("k");
    let pass = keys.path("pass");
    let private = OwnRegistry::start();
    let n = 12;
    let mut records = Vec::new();
    for i in 0..n {
        let repo = unique("cs-dies");
        let reference = format!("{}/{repo}:v1", private.addr);
        let digest = push_image(&reference, &format!("image {i}"));
        skopeo_sign(&reference, &keys.path("k.key"), &pass);
        records.push(json!({"ref": format!("{}/{repo}@{digest}", private.addr),
            "registry": private.addr, "repository": repo, "digest": digest}));
    }
    // One record at a time; the registry stops half-way through the input.
    let mut child = tool("check-sig")
        .args([
            "--key",
            &key_arg(&pubkey),
            "--jobs",
            "1",
            "-q",
            "--registry-attempts",
            "2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::{BufRead, Write};
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.expect("read stdout"));
        }
    });
    // the first half goes through (the registry stops once its last record is out, not after
    // a guessed time), then the rest
    let half: String = records[..n / 2].iter().map(|r| format!("{r}\n")).collect();
    stdin.write_all(half.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut lines: Vec<String> = (0..n / 2)
        .map(|_| {
            rx.recv_timeout(std::time::Duration::from_secs(120))
                .expect("a record of the first half")
        })
        .collect();
    let mut private = private;
    private.kill();
    let rest: String = records[n / 2..].iter().map(|r| format!("{r}\n")).collect();
    stdin.write_all(rest.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    reader.join().expect("stdout reader");
    lines.extend(rx.try_iter());
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n, "every record comes out");
    let verified = lines
        .iter()
        .filter(|r| r["verification"]["verified"] == true)
        .count();
    let errors: Vec<&Value> = lines.iter().filter(|r| r["error"].is_object()).collect();
    assert_eq!(
        verified,
        n / 2,
        "the first half verified before the registry stopped"
    );
    assert_eq!(errors.len(), n / 2, "the rest carry an error: {lines:?}");
    assert_eq!(out.status.code(), Some(1));
    for e in &errors {
        assert_eq!(e["error"]["tool"], "check-sig");
        assert!(
            e.get("verification").is_none(),
            "no verdict without an answer"
        );
    }
    // the registry comes back; the failed records, stripped of their error, verify
    private.restart();
    let retry: Vec<Value> = errors
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            r.as_object_mut().unwrap().remove("error");
            r
        })
        .collect();
    let (again, proc) = check_sig(&["--key", &key_arg(&pubkey)], &retry);
    assert_eq!(proc.status.code(), Some(0), "{again:?}");
    assert_eq!(again.len(), n / 2);
}

/// The same cases through an `awskms://` key against the AWS emulator: signatures made by
/// `payload-for | kms-sign` (KMS `Sign`, DIGEST) attached as cosign signature manifests; one
/// `GetPublicKey` for the whole batch and no `Sign`/`Verify`, counted by the emulator.
#[test]
fn kms_key_path_online() {
    use sigtrail_tests::{kms_calls, kms_create_key};
    let reg = env().registry.clone();
    let alias = format!("alias/{}", unique("cs-kms"));
    let other_alias = format!("alias/{}", unique("cs-kms-other"));
    kms_create_key("ECC_NIST_P256", &alias);
    kms_create_key("ECC_NIST_P256", &other_alias);
    let key = format!("awskms:///{alias}");

    let images: Vec<(String, String)> = (0..5)
        .map(|i| {
            let (repo, _, digest) = image("cs-kms-img", &format!("kms image {i}"));
            (repo, digest)
        })
        .collect();
    // images 0..3 are signed; 4 stays unsigned
    let input: String = images[..4]
        .iter()
        .map(|(r, d)| format!("{}\n", record(r, d)))
        .collect();
    let payloads = run(&mut tool("payload-for"), input.as_bytes());
    let signed = run(tool("kms-sign").args(["--key", &key]), &payloads.stdout);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let signed: Vec<Value> = String::from_utf8_lossy(&signed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let layer = |payload: &[u8], signature: &str| {
        json!([{"media_type": "application/vnd.dev.cosign.simplesigning.v1+json",
                "payload_b64": b64(payload),
                "annotations": {"dev.cosignproject.cosign/signature": signature}}])
        .to_string()
    };
    let attach = |repo: &str, digest: &str, layers: String| {
        oci(&["push-sig", &reg, repo, &sig_tag(digest), &layers]);
    };
    let payload_of = |rec: &Value| unb64(rec["payload"].as_str().unwrap());
    let sig_of = |rec: &Value| rec["signature"].as_str().unwrap().to_string();
    // 0: as signed
    attach(
        &images[0].0,
        &images[0].1,
        layer(&payload_of(&signed[0]), &sig_of(&signed[0])),
    );
    // 1: tampered payload (an annotation added after signing), signature kept
    let tampered = String::from_utf8(payload_of(&signed[1]))
        .unwrap()
        .replace("\"optional\":null", "\"optional\":{\"evil\":\"yes\"}");
    attach(
        &images[1].0,
        &images[1].1,
        layer(tampered.as_bytes(), &sig_of(&signed[1])),
    );
    // 2: altered signature
    let mut sig = unb64(&sig_of(&signed[2]));
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    attach(
        &images[2].0,
        &images[2].1,
        layer(&payload_of(&signed[2]), &b64(&sig)),
    );
    // 3: image 0's signature replayed onto image 3
    attach(
        &images[3].0,
        &images[3].1,
        layer(&payload_of(&signed[0]), &sig_of(&signed[0])),
    );

    let records: Vec<Value> = images.iter().map(|(r, d)| record(r, d)).collect();
    let before = kms_calls(&alias);
    let (out, proc) = check_sig(&["--key", &key], &records);
    let after = kms_calls(&alias);
    let delta = |action: &str| after.get(action).unwrap_or(&0) - before.get(action).unwrap_or(&0);
    assert_eq!(delta("GetPublicKey"), 1, "{before:?} -> {after:?}");
    assert_eq!(
        delta("Sign") + delta("Verify"),
        0,
        "{before:?} -> {after:?}"
    );
    let got: Vec<_> = out.iter().map(verdict).collect();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let nms = Some("no_matching_signatures".to_string());
    assert_eq!(
        got,
        vec![
            (None, s(&["ok"])),
            (nms.clone(), s(&["signature"])),
            (nms.clone(), s(&["signature"])),
            (nms.clone(), s(&["manifest_digest"])),
            (Some("no_signatures".into()), s(&[])),
        ]
    );
    assert_eq!(proc.status.code(), Some(1));
    assert_eq!(
        out[0]["verification"]["signatures"][0]["key_id"],
        signed[0]["key_id"]
    );

    // an unknown KMS key: the good image does not verify with it
    let (out, _) = check_sig(
        &["--key", &format!("awskms:///{other_alias}")],
        &records[..1],
    );
    assert_eq!(verdict(&out[0]), (nms, s(&["signature"])));
}
