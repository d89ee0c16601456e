//! `kms-sign` end to end: real processes against moto (with the KMS DIGEST fix) through the
//! fault proxy (`faults::Proxy`, counting KMS calls by operation); signatures checked with
//! Python `cryptography`, not with sigtrail's code.

use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sigtrail_tests::faults::Proxy;
use sigtrail_tests::kms::{create_key_with, verify_independently, Check, StockMoto};
use sigtrail_tests::{kms_create_key, run, script, tool, unique};

const ACCOUNT_ARN_PREFIX: &str = "arn:aws:kms:us-east-1:";

fn digest_of(text: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The exact cosign payload for `reference` and `digest`, base64.
fn payload_b64(reference: &str, digest: &str) -> String {
    STANDARD.encode(format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    ))
}

/// `n` records as payload-for writes them.
fn records(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            let digest = digest_of(&format!("{tag}-{i}"));
            json!({
                "image": format!("registry.example/app:{i}"),
                "digest": digest,
                "payload": payload_b64("registry.example/app", &digest),
            })
            .to_string()
                + "\n"
        })
        .collect()
}

fn kms_sign(args: &[&str], stdin: &str, endpoint: Option<&str>) -> Output {
    let mut cmd = tool("kms-sign");
    cmd.args(args).env("SIGTRAIL_KMS_STATS", "1");
    if let Some(endpoint) = endpoint {
        cmd.env("AWS_ENDPOINT_URL", endpoint);
    }
    run(&mut cmd, stdin.as_bytes())
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn public_key_pem(key: &str, endpoint: Option<&str>) -> String {
    let out = kms_sign(&["--public-key", "--key", key], "", endpoint);
    assert!(out.status.success(), "--public-key {key}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn spki_sha256(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    hex::encode(Sha256::digest(STANDARD.decode(body).unwrap()))
}

/// Checks every record is signed by `pem` with `algorithm`, independently; and that the
/// verifier can say no (a changed payload fails).
fn assert_signed(recs: &[Value], pem: &str, algorithm: &str, key: &str) {
    let mut checks = Vec::new();
    let tampered: Vec<String> = recs
        .iter()
        .map(|r| {
            let mut bytes = STANDARD.decode(r["payload"].as_str().unwrap()).unwrap();
            bytes.push(b'\n');
            STANDARD.encode(bytes)
        })
        .collect();
    for (r, t) in recs.iter().zip(&tampered) {
        assert!(r.get("error").is_none(), "{r}");
        assert_eq!(r["algorithm"], algorithm, "{r}");
        assert_eq!(r["key"], key);
        assert_eq!(
            r["key_id"],
            spki_sha256(pem),
            "key_id is sha256 of the SPKI DER"
        );
        for payload in [r["payload"].as_str().unwrap(), t.as_str()] {
            checks.push(Check {
                public_key_pem: pem,
                payload_b64: payload,
                signature_b64: r["signature"].as_str().unwrap(),
                algorithm,
            });
        }
    }
    let verdicts = verify_independently(&checks);
    for (i, pair) in verdicts.chunks(2).enumerate() {
        assert_eq!(pair, [true, false], "record {i}: {}", recs[i]);
    }
}

fn key_uuid(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[test]
fn kms_keys_sign_in_every_reference_form_with_one_lookup_per_run() {
    let proxy = Proxy::in_front_of_aws();
    for (spec, algorithm) in [
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
    ] {
        let alias = unique("kms-sign");
        let arn = kms_create_key(spec, &alias);
        assert!(arn.starts_with(ACCOUNT_ARN_PREFIX), "{arn}");
        let account = arn.split(':').nth(4).unwrap();
        let references = [
            format!("awskms:///{}", key_uuid(&arn)),
            format!("awskms:///{arn}"),
            format!("awskms:///alias/{alias}"),
            format!("awskms:///arn:aws:kms:us-east-1:{account}:alias/{alias}"),
        ];
        let pem = public_key_pem(&references[0], None);
        for reference in &references {
            assert_eq!(public_key_pem(reference, None), pem, "{reference}");
            let before = proxy.operations();
            let out = kms_sign(
                &["--key", reference],
                &records(3, reference),
                Some(&proxy.url()),
            );
            assert!(out.status.success(), "{reference}: {}", stderr(&out));
            let recs = lines(&out);
            assert_eq!(recs.len(), 3);
            assert_signed(&recs, &pem, algorithm, reference);
            for r in &recs {
                assert_eq!(r["kms"]["key_arn"], arn.as_str(), "{r}");
                assert!(r["kms"]["request_id"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()));
                let time = r["kms"]["time"].as_str().unwrap();
                assert!(time.ends_with('Z') && time.len() == 24, "{time}");
            }
            // Counted at the server side: one key lookup per run, one Sign per record.
            let after = proxy.operations();
            let delta = |op: &str| {
                after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0)
            };
            assert_eq!(
                (delta("GetPublicKey"), delta("Sign")),
                (1, 3),
                "{reference}"
            );
            assert_eq!(delta("DescribeKey"), 0);
            assert!(
                stderr(&out).contains("kms-sign: kms calls: GetPublicKey=1 Sign=3"),
                "{}",
                stderr(&out)
            );
        }
    }
}

#[test]
fn many_records_overlap_with_one_get_public_key_and_one_sign_each() {
    let alias = unique("kms-sign-many");
    kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    let proxy = Proxy::in_front_of_aws();
    let n = 40;
    let out = kms_sign(
        &["--key", &key, "--jobs", "8"],
        &records(n, "many"),
        Some(&proxy.url()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = lines(&out);
    assert_eq!(recs.len(), n);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(
            r["image"],
            format!("registry.example/app:{i}"),
            "input order kept"
        );
    }
    assert_signed(&recs, &public_key_pem(&key, None), "ECDSA_SHA_256", &key);
    assert_eq!(proxy.operation_count("GetPublicKey"), 1);
    assert_eq!(proxy.operation_count("Sign"), n as u64);
}

#[test]
fn endpoint_form_reaches_that_endpoint_over_http() {
    let alias = unique("kms-sign-endpoint");
    let arn = kms_create_key("ECC_NIST_P256", &alias);
    let proxy = Proxy::in_front_of_aws();
    let key = format!("awskms://{}/alias/{alias}", proxy.addr());
    // No AWS_ENDPOINT_URL: only the reference says where KMS is.
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key]).env_remove("AWS_ENDPOINT_URL");
    let out = run(&mut cmd, records(2, "endpoint").as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let recs = lines(&out);
    assert_eq!(recs[0]["kms"]["key_arn"], arn.as_str());
    assert_eq!(
        (
            proxy.operation_count("GetPublicKey"),
            proxy.operation_count("Sign")
        ),
        (1, 2)
    );
    let mut cmd = tool("kms-sign");
    cmd.args(["--public-key", "--key", &key])
        .env_remove("AWS_ENDPOINT_URL");
    let pem = String::from_utf8(run(&mut cmd, b"").stdout).unwrap();
    assert_signed(&recs, &pem, "ECDSA_SHA_256", &key);
}

#[test]
fn throttled_signs_are_retried_with_backoff() {
    let alias = unique("kms-sign-throttle");
    kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    let proxy = Proxy::in_front_of_aws();
    proxy.throttle_next("Sign", 4);
    let out = kms_sign(
        &["--key", &key, "--jobs", "2"],
        &records(3, "throttle"),
        Some(&proxy.url()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_signed(
        &lines(&out),
        &public_key_pem(&key, None),
        "ECDSA_SHA_256",
        &key,
    );
    // 4 throttled attempts + 3 that got through; the tool asked for 3 Signs.
    assert_eq!(
        proxy.injected(),
        4,
        "four throttles sent: {:?}",
        proxy.seen()
    );
    assert_eq!(proxy.operation_count("Sign"), 7);
    assert!(
        stderr(&out).contains("GetPublicKey=1 Sign=3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rsa_pss_on_request_and_algorithms_a_key_lacks_are_refused() {
    let alias = unique("kms-sign-pss");
    kms_create_key("RSA_2048", &alias);
    let key = format!("awskms:///alias/{alias}");
    let out = kms_sign(
        &["--key", &key, "--algorithm", "RSASSA_PSS_SHA_256"],
        &records(2, "pss"),
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_signed(
        &lines(&out),
        &public_key_pem(&key, None),
        "RSASSA_PSS_SHA_256",
        &key,
    );

    let p256 = unique("kms-sign-p256-384");
    kms_create_key("ECC_NIST_P256", &p256);
    let out = kms_sign(
        &[
            "--key",
            &format!("awskms:///alias/{p256}"),
            "--algorithm",
            "ECDSA_SHA_384",
        ],
        &records(2, "wrong-alg"),
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for r in lines(&out) {
        assert_eq!(r["error"]["kind"], "bad_key", "{r}");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ECDSA_SHA_384"));
        assert!(r.get("signature").is_none());
    }
    let out = kms_sign(
        &["--key", "awskms:///alias/x", "--algorithm", "SHA256"],
        "",
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ECDSA_SHA_256"), "{}", stderr(&out));
}

#[test]
fn payloads_that_are_not_digest_signatures_are_refused() {
    let alias = unique("kms-sign-refuse");
    kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    let good = digest_of("good");
    let other = digest_of("other");
    let tag_payload = payload_b64("registry.example/app", "latest");
    let not_cosign = STANDARD.encode(r#"{"critical":{"type":"something else"}}"#);
    let huge = STANDARD.encode(vec![b' '; 70 * 1024]);
    let input = [
        json!({"image": "registry.example/app:v1"}),
        json!({"image": "registry.example/app:v1", "payload": tag_payload}),
        json!({"digest": good, "payload": payload_b64("registry.example/app", &good)}),
        json!({"digest": other, "payload": payload_b64("registry.example/app", &good)}),
        json!({"payload": not_cosign}),
        json!({"payload": huge}),
        json!({"payload": "not base64!"}),
        json!({"payload": 42}),
        json!({"digest": good}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>();
    let proxy = Proxy::in_front_of_aws();
    let out = kms_sign(&["--key", &key], &input, Some(&proxy.url()));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs = lines(&out);
    let kinds: Vec<&str> = recs
        .iter()
        .map(|r| r["error"]["kind"].as_str().unwrap_or("signed"))
        .collect();
    assert_eq!(
        kinds,
        [
            "bad_payload",
            "bad_payload",
            "signed",
            "bad_payload",
            "bad_payload",
            "payload_too_large",
            "bad_payload",
            "bad_payload",
            "bad_payload",
        ]
    );
    let message = |i: usize| recs[i]["error"]["message"].as_str().unwrap().to_string();
    assert!(message(0).contains("digest-of"), "{}", message(0));
    assert!(message(1).contains("never tags"), "{}", message(1));
    assert!(message(3).contains(&other), "{}", message(3));
    assert!(message(8).contains("payload-for"), "{}", message(8));
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["error"]["tool"].as_str().is_some(), i != 2);
        assert_eq!(r.get("signature").is_some(), i == 2, "{r}");
    }
    // Only the good record reached KMS.
    assert_eq!(proxy.operation_count("Sign"), 1);
    assert!(stderr(&out).contains("1 ok, 8 failed"), "{}", stderr(&out));
}

#[test]
fn keys_that_cannot_sign_give_error_records_after_one_lookup() {
    let proxy = Proxy::in_front_of_aws();
    let encrypt = unique("kms-sign-encrypt");
    create_key_with("RSA_2048", "ENCRYPT_DECRYPT", &encrypt, None);
    let k1 = unique("kms-sign-k1");
    create_key_with("ECC_SECG_P256K1", "SIGN_VERIFY", &k1, None);
    let symmetric = unique("kms-sign-symmetric");
    create_key_with("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", &symmetric, None);
    let missing = unique("kms-sign-missing");
    for (alias, kind, needle) in [
        (&encrypt, "bad_key", "ENCRYPT_DECRYPT"),
        (&k1, "bad_key", "ECC_SECG_P256K1"),
        // Real KMS refuses GetPublicKey on a symmetric key (UnsupportedOperationException, also
        // bad_key); moto answers with the key's usage, which is refused as well.
        (&symmetric, "bad_key", "ENCRYPT_DECRYPT"),
        (&missing, "bad_key", "NotFoundException"),
    ] {
        let key = format!("awskms:///alias/{alias}");
        let before = proxy.operation_count("GetPublicKey");
        let out = kms_sign(&["--key", &key], &records(3, alias), Some(&proxy.url()));
        assert_eq!(out.status.code(), Some(1), "{key}: {}", stderr(&out));
        for r in lines(&out) {
            assert_eq!(r["error"]["kind"], kind, "{key}: {r}");
            let message = r["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle:?} not in {message}");
            assert!(r.get("signature").is_none());
        }
        assert_eq!(
            proxy.operation_count("GetPublicKey") - before,
            1,
            "{key}: one lookup"
        );
        assert_eq!(proxy.operation_count("Sign"), 0);
        // --public-key: no records, so a configuration error.
        let out = kms_sign(&["--public-key", "--key", &key], "", None);
        assert_eq!(out.status.code(), Some(2), "{key}");
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_emulator_whose_signatures_do_not_verify_never_yields_a_signed_record() {
    // Stock moto signs sha256(digest) for MessageType=DIGEST: exactly the broken emulator the
    // self-check is for.
    let moto = StockMoto::start();
    let alias = unique("kms-sign-stock");
    create_key_with("ECC_NIST_P256", "SIGN_VERIFY", &alias, Some(&moto.endpoint));
    let key = format!("awskms:///alias/{alias}");
    let out = kms_sign(&["--key", &key], &records(2, "stock"), Some(&moto.endpoint));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for r in lines(&out) {
        assert_eq!(r["error"]["kind"], "self_check_failed", "{r}");
        assert!(r.get("signature").is_none());
    }
}

#[test]
fn local_cosign_key_signs_and_passphrases_come_only_from_env_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("cosign");
    let passfile = dir.path().join("pass");
    let passphrase = format!("pass-{}", unique("phrase"));
    std::fs::write(&passfile, format!("{passphrase}\n")).unwrap();
    let out = run(
        script("gen-cosign-key.py")
            .arg(&prefix)
            .arg(&passfile)
            .args(["--pem-type", "ENCRYPTED COSIGN PRIVATE KEY"]),
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = format!("{}.key", prefix.display());
    let pem = std::fs::read_to_string(format!("{}.pub", prefix.display())).unwrap();

    let mut outputs = Vec::new();
    // COSIGN_PASSWORD, --passphrase-env, --passphrase-file.
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key])
        .env("COSIGN_PASSWORD", &passphrase);
    outputs.push(run(&mut cmd, records(2, "local").as_bytes()));
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key, "--passphrase-env", "MY_PASS"])
        .env("MY_PASS", &passphrase)
        .env_remove("COSIGN_PASSWORD");
    outputs.push(run(&mut cmd, records(2, "local-env").as_bytes()));
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key, "--passphrase-file"])
        .arg(&passfile);
    outputs.push(run(&mut cmd, records(2, "local-file").as_bytes()));
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
        let recs = lines(out);
        assert_signed(&recs, &pem, "ECDSA_SHA_256", &key);
        assert!(recs.iter().all(|r| r.get("kms").is_none()));
    }
    let mut cmd = tool("kms-sign");
    cmd.args(["--public-key", "--key", &key])
        .env("COSIGN_PASSWORD", &passphrase);
    let out = run(&mut cmd, b"");
    assert_eq!(String::from_utf8_lossy(&out.stdout), pem);

    // Wrong or missing passphrase: a configuration error before any record.
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key])
        .env("COSIGN_PASSWORD", "wrong-one");
    let out = run(&mut cmd, records(1, "wrong").as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    outputs.push(out);
    let mut cmd = tool("kms-sign");
    cmd.args(["--key", &key]).env_remove("COSIGN_PASSWORD");
    let out = run(&mut cmd, records(1, "unset").as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("COSIGN_PASSWORD"), "{}", stderr(&out));
    outputs.push(out);
    // There is no flag that takes the passphrase itself.
    let out = run(
        tool("kms-sign").args(["--key", &key, "--passphrase", &passphrase]),
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    for out in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(&passphrase));
        }
    }
}

#[test]
fn plain_pem_private_keys_sign() {
    let dir = tempfile::tempdir().unwrap();
    let code = r#"
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
kind, path = sys.argv[1], sys.argv[2]
key = {"p384": lambda: ec.generate_private_key(ec.SECP384R1()),
       "rsa": lambda: rsa.generate_private_key(65537, 3072)}[kind]()
fmt = serialization.PrivateFormat.PKCS8 if kind == "p384" else serialization.PrivateFormat.TraditionalOpenSSL
open(path, "wb").write(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
print(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
"#;
    for (kind, algorithm) in [
        ("p384", "ECDSA_SHA_384"),
        ("rsa", "RSASSA_PKCS1_V1_5_SHA_256"),
    ] {
        let path = dir.path().join(format!("{kind}.pem"));
        let path = path.to_str().unwrap();
        let pem = sigtrail_tests::run_ok(&mut sigtrail_tests::python(code, &[kind, path]), b"");
        let out = run(
            tool("kms-sign").args(["--key", path]),
            records(2, kind).as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_signed(&lines(&out), &pem, algorithm, path);
    }
}

#[test]
fn aws_secrets_never_appear_in_output() {
    let secret = format!("Secret{}", unique("aws").replace('-', "x"));
    let alias = unique("kms-sign-secret");
    kms_create_key("ECC_NIST_P256", &alias);
    let missing = unique("kms-sign-secret-missing");
    for key in [
        format!("awskms:///alias/{alias}"),
        format!("awskms:///alias/{missing}"),
    ] {
        let mut cmd: Command = tool("kms-sign");
        cmd.args(["--key", &key])
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_SESSION_TOKEN", format!("{secret}-token"));
        let out = run(&mut cmd, records(2, "secret").as_bytes());
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(&secret), "{text}");
        }
        let recs = lines(&out);
        assert_eq!(recs.len(), 2);
    }
}
