//! Hostile and malformed input, one line per case: every tool must answer each with a clear
//! error record, never a panic, never a lost record, within bounded memory and time
//! (`sigtrail_tests::hostile::check`).

use sigtrail_tests::hostile::check;

const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

/// A digest-of record for `digest` (what payload-for reads).
fn resolved(digest: &str) -> String {
    format!(
        "{{\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":{}}}\n",
        serde_json::Value::from(digest)
    )
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"digest\":{}{}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Input the harness refuses before any tool logic runs: the same for every tool.
/// (An oversized line is followed by an upstream-failed record so no tool logic is needed.)
#[test]
fn every_tool_survives_hostile_lines() {
    let empty = tempfile::tempdir().unwrap();
    let trail_dir = empty.path().to_str().unwrap();
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tests/data/vectors/valid/ci-01-cosign-valid-p256/key.pem"
    );
    let tools: [(&str, &[&str]); 3] = [
        ("payload-for", &[]),
        ("trail-for", &["--cloudtrail", trail_dir]),
        ("check-sig", &["--offline", "--key", key]),
    ];
    for (tool, args) in tools {
        let check = |input: &[u8], expect: &str| check(tool, args, input, expect);
        let failed = "{\"digest\":\"x\",\"error\":{\"tool\":\"t\",\"kind\":\"upstream\",\"message\":\"m\"}}\n";
        let big = format!("{{\"image\":\"{}\"}}\n", "a".repeat(20 << 20));
        check(big.as_bytes(), "bad_record");
        // The line after an oversized one is still read as its own record.
        check(format!("{big}{failed}").as_bytes(), "bad_record,upstream");
        // 20 MB without any newline at all.
        check("b{".repeat(10 << 20).as_bytes(), "bad_record");
        check(nested(100_000).as_bytes(), "bad_record");
        check(b"{\"digest\":\"a\0b\"}\n", "bad_record");
        check(b"{\"a\":1\n{\"b\":\n{\n", "bad_record");
        check(b"{\"a\":1}{\"b\":2}\n", "bad_record");
        // Upstream errors pass through untouched, whatever else the record holds.
        check(failed.repeat(3).as_bytes(), "upstream");
    }
}

#[test]
fn payload_for_refuses_what_is_not_a_sha256_digest() {
    let c = |digest: &str| check("payload-for", &[], resolved(digest), "no_digest");
    c(&DIGEST.to_uppercase());
    c(&DIGEST.replace("sha256:", "SHA256:"));
    c(&DIGEST.replace("sha256:", "sha512:"));
    c(&DIGEST.replace("sha256:", "md5:"));
    c(&DIGEST[..DIGEST.len() - 1]);
    c(&format!("{DIGEST}0"));
    c(&format!("{DIGEST}\n"));
    c(&format!(" {DIGEST}"));
    c(&DIGEST.replace("634a", "634g"));
    c(&format!("sha512:{}", "a".repeat(128)));
    c("sha256:");
    c("");
    c("sha256:../../../etc/passwd");
    c(&DIGEST.replace('a', "\u{0430}")); // Cyrillic a
    c(&format!("{}\u{0}", &DIGEST[..DIGEST.len() - 1]));
    // Not a string at all.
    for v in ["1", "null", "true", "[]", "{}", &format!("[\"{DIGEST}\"]")] {
        check(
            "payload-for",
            &[],
            format!("{{\"registry\":\"r\",\"repository\":\"a\",\"digest\":{v}}}\n"),
            "no_digest",
        );
    }
}

#[test]
fn payload_for_reads_invalid_utf8_and_non_objects_as_failed_records() {
    // Invalid UTF-8 inside a record's digest and as a bare line.
    let mut line = resolved(DIGEST).into_bytes();
    let at = line.len() - 10;
    line[at] = 0xff;
    check("payload-for", &[], &line, "no_digest");
    check("payload-for", &[], b"\xff\xfe\xfd\n\xc3\x28\n", "no_digest");
    // JSON that is not an object is read as a reference, which has no digest.
    check(
        "payload-for",
        &[],
        "[1,2]\n\"str\"\n42\nnull\ntrue\n[[[[[[\n",
        "no_digest",
    );
    // A record without registry/repository cannot name what it signs.
    check(
        "payload-for",
        &[],
        format!("{{\"digest\":\"{DIGEST}\"}}\n"),
        "no_reference",
    );
}

#[test]
fn ten_thousand_mixed_hostile_lines_all_come_out_in_order() {
    let kinds = ["ok", "no_digest", "bad_record", "no_digest", "upstream"];
    let lines = [
        resolved(DIGEST),
        resolved("sha256:abc"),
        "{\"x\":\n".to_string(),
        "\u{1}\u{7f}../..\n".to_string(),
        "{\"error\":{\"tool\":\"t\",\"kind\":\"upstream\",\"message\":\"m\"}}\n".to_string(),
    ];
    let mut input = String::new();
    let mut expect = Vec::new();
    for i in 0..10_000 {
        input.push_str(&lines[i % lines.len()]);
        expect.push(kinds[i % kinds.len()]);
    }
    let records = check("payload-for", &[], &input, &expect.join(","));
    assert!(records.iter().step_by(5).all(|r| r.contains_key("payload")));
}

/// trail-for reads CloudTrail log files an attacker may have written to: deep nesting, records
/// that are not objects, NUL bytes and broken gzip are warnings, never a panic or a lost record.
#[test]
fn trail_for_survives_hostile_cloudtrail_files() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    write(
        "deep.json",
        format!(
            "{{\"Records\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        )
        .as_bytes(),
    );
    write(
        "records-not-objects.json",
        b"{\"Records\":[1,\"x\",null,[]]}",
    );
    write("not-json.json", b"\0\xff\xfe{{{");
    write("not-an-object.json", b"42");
    write(
        "truncated.json.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3],
    );
    let mut gz = flate2_like_gzip(b"{\"Records\":[{\"eventName\":");
    gz.flush().unwrap();
    write("cut.json.gz", gz.get_ref());
    let input = resolved(DIGEST).repeat(3);
    let out = sigtrail_tests::run(
        sigtrail_tests::hostile::bounded_tool("trail-for")
            .args(["--cloudtrail", dir.path().to_str().unwrap()]),
        input.as_bytes(),
    );
    let case = "trail-for on hostile CloudTrail files";
    sigtrail_tests::hostile::assert_no_panic(case, &out);
    let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
    assert_eq!(records.len(), 3, "{case}");
    for rec in &records {
        let warnings = rec["trail"]["warnings"].to_string();
        for name in [
            "deep.json",
            "not-json.json",
            "not-an-object.json",
            "truncated.json.gz",
        ] {
            assert!(
                warnings.contains(name),
                "{case}: no warning for {name}: {warnings}"
            );
        }
    }
}

/// A gzip member holding `data` uncompressed (stored blocks), written by hand so the test needs
/// no compression crate: the header, one stored block, then a deliberately missing trailer.
fn flate2_like_gzip(data: &[u8]) -> std::io::Cursor<Vec<u8>> {
    let mut v = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let len = data.len() as u16;
    v.push(1); // final stored block
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&(!len).to_le_bytes());
    v.extend_from_slice(data);
    std::io::Cursor::new(v)
}

/// References that must never reach a registry: control characters, path traversal, bad
/// digests in `@`, oversized parts.
#[test]
fn digest_of_refuses_hostile_references() {
    let reg = &sigtrail_tests::env().registry;
    let c = |reference: &str| {
        check(
            "digest-of",
            &[],
            format!("{{\"image\":{}}}\n", serde_json::Value::from(reference)),
            "bad_reference",
        )
    };
    for r in [
        format!("{reg}/app\u{0}:v1"),
        format!("{reg}/app:v1\u{7}"),
        format!("{reg}/ap\rp:v1"),
        format!("{reg}/app\u{1b}[31m:v1"),
        format!("{reg}/../etc/passwd:v1"),
        format!("{reg}/app/../../x:v1"),
        format!("{reg}/./app:v1"),
        format!("{reg}/app:../../v1"),
        format!("{reg}/app@sha256:../../blobs"),
        format!("{reg}/app@{}", DIGEST.to_uppercase()),
        format!("{reg}/app@{}", &DIGEST[..70]),
        format!("{reg}/app@{DIGEST}00"),
        format!("{reg}/app@sha512:{}", "a".repeat(64)),
        format!("{reg}/app@md5:{}", "a".repeat(32)),
        format!("{reg}/app@sha256:"),
        format!("{reg}/APP:v1"),
        format!("{reg}/app:{}", "t".repeat(129)),
        format!("{reg}/{}:v1", "a/".repeat(200)),
        format!("{reg}/app%2F..%2Fx:v1"),
        format!("{reg}/app?x=1:v1"),
        format!("{reg}/app#frag:v1"),
        "http://evil.example/app:v1".to_string(),
        format!("{reg}/app:v1 --insecure"),
        format!("{reg}/ap\u{202e}p:v1"),
        format!("{reg}/app:\u{ff}v1"),
        "a".repeat(5000),
        String::new() + "/",
    ] {
        c(&r);
    }
    // Every crash input `cargo xtask fuzz reference` found (kept in its seed corpus).
    let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/reference");
    let mut crashes = 0;
    for entry in std::fs::read_dir(seeds).expect("fuzz/seeds/reference") {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("crash-")
        {
            c(&std::fs::read_to_string(&path).unwrap());
            crashes += 1;
        }
    }
    assert!(crashes >= 18, "the fuzz crash inputs are in {seeds}");
    // Control characters and invalid UTF-8 as bare lines too.
    check(
        "digest-of",
        &[],
        format!("{reg}/a\u{1}b:v1\n{reg}/\u{7f}:v1\n").as_bytes(),
        "bad_reference",
    );
    let mut bytes = format!("{reg}/app:v").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n");
    check("digest-of", &[], &bytes, "bad_reference");
}

/// A hostile registry, played by the fault proxy in front of the real one (the real registry
/// refuses to store a manifest over 4 MiB and never lies about digests or redirects away, so
/// only a proxy can act these out).
mod hostile_registry {
    use super::*;
    use sigtrail_tests::env;
    use sigtrail_tests::faults::{push_many, Fault, Proxy};
    use std::sync::Arc;

    fn manifest_answer(body: Vec<u8>, chunked: bool) -> Fault {
        let mut headers = vec![(
            "Content-Type".to_string(),
            "application/vnd.oci.image.manifest.v1+json".to_string(),
        )];
        let body = if chunked {
            headers.push(("Transfer-Encoding".into(), "chunked".into()));
            let mut framed = format!("{:x}\r\n", body.len()).into_bytes();
            framed.extend_from_slice(&body);
            framed.extend_from_slice(b"\r\n0\r\n\r\n");
            framed
        } else {
            body
        };
        Fault::Answer {
            status: 200,
            headers,
            body: Arc::from(body),
        }
    }

    /// 100 MB of manifest, announced by Content-Length and streamed chunked: refused as too
    /// large, within the memory bound `check` sets.
    #[test]
    fn a_100_mb_manifest_is_refused_unread() {
        let repo = sigtrail_tests::unique("hostile/huge");
        let images = push_many(&env().registry, &repo, 1);
        let mut body = br#"{"schemaVersion":2,"annotations":{"pad":""#.to_vec();
        body.resize(100 << 20, b'a');
        body.extend_from_slice(br#""}}"#);
        for chunked in [false, true] {
            let proxy = Proxy::start(&env().registry);
            let answer = manifest_answer(body.clone(), chunked);
            proxy.set(move |req| {
                if req.target.contains("/manifests/") {
                    answer.clone()
                } else {
                    Fault::Pass
                }
            });
            let by_tag = format!("{}/{repo}:{}\n", proxy.addr(), images[0].0);
            let by_digest = format!("{}/{repo}@{}\n", proxy.addr(), images[0].1);
            check(
                "digest-of",
                &[],
                format!("{by_tag}{by_digest}"),
                "too_large",
            );
        }
    }

    /// The peak RSS bound for one tool run on a hostile manifest.
    const MAX_RSS_KIB: u64 = 300 << 10;

    /// An attach-sig record for `image` (`HOST/REPO:TAG`): digest-of | payload-for, plus a
    /// signature (attach-sig does not verify it).
    fn attach_record(image: &str) -> String {
        let (out, _) = sigtrail_tests::faults::pipeline(
            vec![
                sigtrail_tests::tool("digest-of"),
                sigtrail_tests::tool("payload-for"),
            ],
            format!("{image}\n").as_bytes(),
        );
        let mut rec = sigtrail_tests::hostile::output_records("payload", &out.stdout)
            .pop()
            .expect("a record");
        rec.insert("signature".into(), "c2lnbmF0dXJl".into());
        format!("{}\n", serde_json::Value::Object(rec))
    }

    /// Runs `cmd` on `input` under /usr/bin/time: one record out, not ok, with `want` in it,
    /// within [`MAX_RSS_KIB`]; returns the peak RSS in KiB.
    fn refused_within_memory(
        case: &str,
        cmd: &std::process::Command,
        input: &str,
        want: &[&str],
    ) -> u64 {
        let (kib, out) = sigtrail_tests::hostile::peak_rss_kib(cmd, input.as_bytes());
        sigtrail_tests::hostile::assert_no_panic(case, &out);
        let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
        assert_eq!(records.len(), 1, "{case}");
        assert_ne!(
            sigtrail_tests::hostile::kind_of(&records[0]),
            "ok",
            "{case}: {:?}",
            records[0]
        );
        let text = serde_json::Value::Object(records[0].clone()).to_string();
        assert!(
            want.iter().any(|w| text.contains(w)),
            "{case}: none of {want:?} in {text}"
        );
        assert!(text.len() < 8192, "{case}: a {}-byte record", text.len());
        eprintln!("{case}: peak RSS {} MiB", kib >> 10);
        assert!(
            kib < MAX_RSS_KIB,
            "{case}: peak RSS {} MiB, over the {} MiB bound",
            kib >> 10,
            MAX_RSS_KIB >> 10
        );
        kib
    }

    /// A signature manifest with 10,000 layers (each a valid signature): check-sig and
    /// attach-sig refuse it with a clear error, within bounded memory.
    #[test]
    fn a_signature_manifest_of_10000_layers_is_refused() {
        let reg = &env().registry;
        let repo = sigtrail_tests::unique("hostile/layers");
        let images = push_many(reg, &repo, 1);
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("key.pub");
        sigtrail_tests::faults::sign_many(reg, &repo, &images, &public, 10_000);
        let image = format!("{reg}/{repo}:{}", images[0].0);
        let mut check = sigtrail_tests::tool("check-sig");
        check.args(["--key", public.to_str().unwrap()]);
        refused_within_memory(
            "check-sig on 10,000 signature layers",
            &check,
            &format!("{image}\n"),
            &["10000 layers"],
        );
        let mut attach = sigtrail_tests::tool("attach-sig");
        attach.env_remove("COSIGN_REPOSITORY");
        refused_within_memory(
            "attach-sig onto 10,000 signature layers",
            &attach,
            &attach_record(&image),
            &["10000 layers"],
        );
    }

    /// A registry answering 100 MB for the signature manifest (by Content-Length, and chunked):
    /// check-sig and attach-sig refuse it as too large, within bounded memory.
    #[test]
    fn a_100_mb_signature_manifest_is_refused() {
        let reg = &env().registry;
        let repo = sigtrail_tests::unique("hostile/huge-sig");
        let images = push_many(reg, &repo, 1);
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("key.pub");
        sigtrail_tests::faults::sign_many(reg, &repo, &images, &public, 1);
        let mut body = br#"{"schemaVersion":2,"layers":[],"annotations":{"pad":""#.to_vec();
        body.resize(100 << 20, b'a');
        body.extend_from_slice(br#""}}"#);
        for chunked in [false, true] {
            let proxy = Proxy::start(reg);
            let answer = manifest_answer(body.clone(), chunked);
            proxy.set(move |req| {
                if req.target.contains("/manifests/sha256-") {
                    answer.clone()
                } else {
                    Fault::Pass
                }
            });
            let image = format!("{}/{repo}:{}", proxy.addr(), images[0].0);
            let mut check = sigtrail_tests::tool("check-sig");
            check.args(["--key", public.to_str().unwrap()]);
            refused_within_memory(
                &format!("check-sig on a 100 MB signature manifest (chunked: {chunked})"),
                &check,
                &format!("{image}\n"),
                &["too_large", "larger than"],
            );
            let record = attach_record(&image);
            let mut attach = sigtrail_tests::tool("attach-sig");
            attach.env_remove("COSIGN_REPOSITORY");
            refused_within_memory(
                &format!("attach-sig onto a 100 MB signature manifest (chunked: {chunked})"),
                &attach,
                &record,
                &["too_large", "larger than"],
            );
        }
    }

    /// Asked for one digest, the registry answers another manifest (a real one, of the same
    /// repository): `digest_mismatch`, never the other image's digest.
    #[test]
    fn a_registry_answering_another_digest_is_caught() {
        let repo = sigtrail_tests::unique("hostile/swap");
        let images = push_many(&env().registry, &repo, 2);
        let proxy = Proxy::start(&env().registry);
        let other = format!("/v2/{repo}/manifests/{}", images[1].1);
        let wanted = images[0].1.clone();
        proxy.set(move |req| {
            if req.target.ends_with(&wanted) {
                Fault::Rewrite(other.clone())
            } else {
                Fault::Pass
            }
        });
        let input = format!("{}/{repo}@{}\n", proxy.addr(), images[0].1);
        check("digest-of", &[], input, "digest_mismatch");
        assert!(proxy.seen().iter().any(|s| s.fault == "rewrite"));
        // A Docker-Content-Digest header that disagrees with the bytes, asked by tag.
        let bytes = sigtrail_tests::run_ok(
            &mut sigtrail_tests::python(
                "import sys,urllib.request as u\n\
                 r=u.Request(sys.argv[1],headers={'Accept':'application/vnd.oci.image.manifest.v1+json'})\n\
                 sys.stdout.write(u.urlopen(r).read().decode())",
                &[&format!("http://{}/v2/{repo}/manifests/t0", env().registry)],
            ),
            b"",
        );
        let liar = Fault::Answer {
            status: 200,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("Docker-Content-Digest".into(), images[1].1.clone()),
            ],
            body: Arc::from(bytes.into_bytes()),
        };
        let proxy = Proxy::start(&env().registry);
        proxy.set(move |_| liar.clone());
        check(
            "digest-of",
            &[],
            format!("{}/{repo}:t0\n", proxy.addr()),
            "digest_mismatch",
        );
    }

    /// The registry (with basic auth, credentials from a docker config.json) redirects the
    /// manifest to another host: the other host must never see the `Authorization` header.
    #[test]
    fn credentials_never_follow_a_redirect_to_another_host() {
        use base64::Engine;
        let e = env();
        let repo = sigtrail_tests::unique("hostile/redirect");
        sigtrail_tests::push_image_with(
            &format!("{}/{repo}:v1", e.auth_registry),
            sigtrail_tests::Push {
                creds: Some((&e.auth_user, &e.auth_pass)),
                ..Default::default()
            },
        );
        let elsewhere = Proxy::start(&e.auth_registry);
        let registry = Proxy::start(&e.auth_registry);
        let target = format!("http://{}", elsewhere.addr());
        // Like a registry that sends authenticated pulls to its storage: anonymous requests get
        // the registry's own 401 challenge, authenticated ones a redirect to another host.
        registry.set(move |req| {
            if req.target.contains("/manifests/") && req.header("authorization").is_some() {
                Fault::Redirect(format!("{target}{}", req.target))
            } else {
                Fault::Pass
            }
        });
        let config = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", e.auth_user, e.auth_pass));
        std::fs::write(
            config.path().join("config.json"),
            serde_json::json!({"auths": {registry.addr(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        let out = sigtrail_tests::run(
            sigtrail_tests::hostile::bounded_tool("digest-of").env("DOCKER_CONFIG", config.path()),
            format!("{}/{repo}:v1\n", registry.addr()).as_bytes(),
        );
        let case = "digest-of redirected to another host";
        sigtrail_tests::hostile::assert_no_panic(case, &out);
        let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
        assert_eq!(records.len(), 1, "{case}");
        assert!(
            registry.seen().iter().any(|s| s.authorization),
            "{case}: the registry itself never got the credentials: {:?}",
            registry.seen()
        );
        let followed = elsewhere.seen();
        assert!(
            !followed.is_empty(),
            "{case}: the redirect was not followed"
        );
        assert!(
            followed.iter().all(|s| !s.authorization),
            "{case}: Authorization was sent to the other host: {followed:?}"
        );
        // The other host refused the request (it got no credentials): the error says so, and
        // does not blame the credentials, which the registry itself accepted.
        assert_eq!(
            sigtrail_tests::hostile::kind_of(&records[0]),
            "unauthorized",
            "{case}"
        );
        let message = records[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("redirected") && message.contains(&elsewhere.addr()),
            "{case}: {message}"
        );
        assert!(
            !message.contains("did not accept the credentials"),
            "{case}: blames the credentials: {message}"
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !text.contains(&e.auth_pass) && !text.contains(&auth),
            "{case}: credential in output"
        );
    }
}

/// Signed records check-sig --offline must not accept although the signature is good over the
/// bytes: duplicate keys (which value would each verifier read?), JSON that is not simple
/// signing, a digest that is not the image's; and signatures that are not strict base64.
mod hostile_signed_records {
    use super::*;
    use base64::Engine;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn simple(digest: &str) -> String {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r.example/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
    }

    /// Signs each payload with a fresh P-256 key (Python `cryptography`, not our code); writes
    /// the public key to `public`; returns base64 signatures.
    fn sign(payloads: &[String], public: &std::path::Path) -> Vec<String> {
        const CODE: &str = r#"
import base64, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
open(sys.argv[1], "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
for line in sys.stdin.read().split():
    print(base64.b64encode(key.sign(base64.b64decode(line), ec.ECDSA(hashes.SHA256()))).decode())
"#;
        let input: String = payloads.iter().map(|p| b64(p.as_bytes()) + "\n").collect();
        sigtrail_tests::run_ok(
            &mut sigtrail_tests::python(CODE, &[public.to_str().unwrap()]),
            input.as_bytes(),
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    fn record(payload_b64: &str, signature: serde_json::Value) -> String {
        format!(
            "{}\n",
            serde_json::json!({"registry": "r.example", "repository": "app", "digest": DIGEST,
                "payload": payload_b64, "signature": signature})
        )
    }

    #[test]
    fn check_sig_offline_refuses_hostile_signed_payloads() {
        let ok = simple(DIGEST);
        let other = format!("sha256:{}", "b".repeat(64));
        let cases: Vec<(String, &str)> = vec![
            (ok.clone(), "ok"),
            // Duplicate keys at every level, with the same or another value.
            (
                ok.replacen(
                    r#""type":"cosign container image signature""#,
                    r#""type":"cosign container image signature","type":"cosign container image signature""#,
                    1,
                ),
                "unverified:payload",
            ),
            (
                ok.replacen(
                    &format!(r#""docker-manifest-digest":"{DIGEST}""#),
                    &format!(r#""docker-manifest-digest":"{other}","docker-manifest-digest":"{DIGEST}""#),
                    1,
                ),
                "unverified:payload",
            ),
            (
                ok.replacen(
                    r#""docker-reference":"r.example/app""#,
                    r#""docker-reference":"r.example/app","docker-reference":"evil.example/app""#,
                    1,
                ),
                "unverified:payload",
            ),
            (
                ok.replacen(r#""optional":null"#, r#""optional":null,"optional":{"a":"b"}"#, 1),
                "unverified:payload",
            ),
            (
                ok.replacen(r#"{"critical":"#, r#"{"critical":{},"critical":"#, 1),
                "unverified:payload",
            ),
            // Valid JSON, not cosign simple signing.
            ("{}".into(), "unverified:payload"),
            ("[]".into(), "unverified:payload"),
            ("null".into(), "unverified:payload"),
            (
                ok.replace("cosign container image signature", "atomic container signature"),
                "unverified:payload",
            ),
            (
                r#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#.into(),
                "unverified:payload",
            ),
            (format!("{ok}x"), "unverified:payload"),
            ("[".repeat(30_000), "unverified:payload"),
            ("[".repeat(100_000), "unverified:too_large"),
            // Not this image's digest; a tag; an upper-case digest.
            (simple(&other), "unverified:manifest_digest"),
            (simple("v1.0"), "unverified:manifest_digest"),
            (simple(&DIGEST.to_uppercase()), "unverified:manifest_digest"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("key.pub");
        let payloads: Vec<String> = cases.iter().map(|(p, _)| p.clone()).collect();
        let signatures = sign(&payloads, &public);
        let key = public.to_str().unwrap();
        let mut input = String::new();
        let mut expect = Vec::new();
        for ((payload, kind), sig) in cases.iter().zip(&signatures) {
            input += &record(&b64(payload.as_bytes()), sig.as_str().into());
            expect.push(*kind);
        }
        check(
            "check-sig",
            &["--offline", "--key", key],
            &input,
            &expect.join(","),
        );

        // A good signature, badly encoded.
        let payload = b64(ok.as_bytes());
        let sig = &signatures[0];
        let bad: Vec<(serde_json::Value, &str)> = vec![
            (format!("{sig}x").into(), "unverified:signature_encoding"),
            (sig[..sig.len() - 1].into(), "unverified:signature_encoding"),
            (format!("{sig}==").into(), "unverified:signature_encoding"),
            (
                format!("-_{}", &sig[2..]).into(),
                "unverified:signature_encoding",
            ),
            (
                format!("{} {}", &sig[..8], &sig[8..]).into(),
                "unverified:signature_encoding",
            ),
            (format!("{sig}\n").into(), "unverified:signature_encoding"),
            ("!!!!".into(), "unverified:signature_encoding"),
            (b64(&[0u8; 72]).into(), "unverified:signature"),
            (b64(&vec![0x30u8; 20_000]).into(), "unverified:too_large"),
        ];
        let mut input = String::new();
        let mut expect = Vec::new();
        for (sig, kind) in bad {
            input += &record(&payload, sig);
            expect.push(kind);
        }
        check(
            "check-sig",
            &["--offline", "--key", key],
            &input,
            &expect.join(","),
        );
    }
}

/// Log files whose top level is not `{"Records":[...]}` (an array of records, a lone record, an
/// object without `Records`, `Records` that is not an array) are each a warning naming the file,
/// their records are not used, and the good file beside them is still read.
#[test]
fn trail_for_reads_only_records_files_and_names_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let sample: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/testdata/cloudtrail/kms-sign-awsdocs-rsa-raw.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let with_id = |id: &str| {
        let mut r = sample.clone();
        r["eventID"] = id.into();
        r
    };
    let write = |name: &str, doc: serde_json::Value| {
        std::fs::write(dir.path().join(name), doc.to_string()).unwrap()
    };
    write(
        "good.json",
        serde_json::json!({ "Records": [with_id("good")] }),
    );
    write("top-array.json", serde_json::json!([with_id("array")]));
    write("lone-record.json", with_id("lone"));
    write(
        "no-records.json",
        serde_json::json!({ "Other": [with_id("other")] }),
    );
    write(
        "records-object.json",
        serde_json::json!({ "Records": { "0": with_id("object") } }),
    );
    let out = sigtrail_tests::run(
        sigtrail_tests::hostile::bounded_tool("trail-for")
            .args(["--cloudtrail", dir.path().to_str().unwrap()]),
        resolved(DIGEST).as_bytes(),
    );
    let case = "trail-for on files that are not {\"Records\":[...]}";
    sigtrail_tests::hostile::assert_no_panic(case, &out);
    let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
    assert_eq!(records.len(), 1, "{case}");
    let trail = &records[0]["trail"];
    let warnings = trail["warnings"].to_string();
    for name in [
        "top-array.json",
        "lone-record.json",
        "no-records.json",
        "records-object.json",
    ] {
        assert!(
            warnings.contains(name),
            "{case}: no warning for {name}: {warnings}"
        );
    }
    assert!(!warnings.contains("good.json"), "{case}: {warnings}");
    assert_eq!(trail["searched"]["files"], 5, "{case}: {trail}");
    assert_eq!(
        trail["searched"]["events"], 1,
        "{case}: only good.json's event is used: {trail}"
    );
}

/// Gzip members of `parts` concatenated (what CloudTrail's readers accept); a part repeated
/// `n` times is compressed once, so a test can write gigabytes of JSON in a few KB.
fn gzip_members(parts: &[(&[u8], usize)]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for (data, n) in parts {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(data).unwrap();
        let member = gz.finish().unwrap();
        for _ in 0..*n {
            out.extend_from_slice(&member);
        }
    }
    out
}

/// A gzip bomb (1.1 GiB of JSON in 1 MB), and a log file holding a single 20 MB record: each is
/// a warning naming the file, read as a stream (peak memory well under what either would take
/// whole), and the good file beside them is still read.
#[test]
fn trail_for_streams_log_files_and_caps_their_size() {
    let dir = tempfile::tempdir().unwrap();
    // Ordinary records of 1 MiB each (padding that compresses 1000 times): 1100 of them is past
    // the 1 GiB cap and, compressed this well, a gzip bomb stopped after 64 MiB; 50 of them
    // (50 MiB of JSON) is fine to read.
    let mut rec = br#"{"eventName":"Describe","eventSource":"ecr.amazonaws.com","pad":""#.to_vec();
    rec.extend(std::iter::repeat_n(b'b', 1 << 20));
    rec.extend_from_slice(br#""},"#);
    let bomb = gzip_members(&[
        (b"{\"Records\":[", 1),
        (&rec, 1100),
        (br#"{"eventName":"Last"}]}"#, 1),
    ]);
    std::fs::write(dir.path().join("bomb.json.gz"), bomb).unwrap();
    let mut big =
        br#"{"Records":[{"eventName":"Sign","eventSource":"kms.amazonaws.com","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 20 << 20));
    big.extend_from_slice(br#""}]}"#);
    std::fs::write(
        dir.path().join("big-record.json.gz"),
        gzip_members(&[(&big, 1)]),
    )
    .unwrap();
    let fine = gzip_members(&[
        (b"{\"Records\":[", 1),
        (&rec, 50),
        (br#"{"eventName":"Last"}]}"#, 1),
    ]);
    std::fs::write(dir.path().join("fine.json.gz"), fine).unwrap();
    let mut cmd = sigtrail_tests::tool("trail-for");
    cmd.args(["--cloudtrail", dir.path().to_str().unwrap()]);
    let (kib, out) = sigtrail_tests::hostile::peak_rss_kib(&cmd, resolved(DIGEST).as_bytes());
    let case = "trail-for on a gzip bomb and a 20 MB record";
    let records = sigtrail_tests::hostile::output_records(case, &out.stdout);
    assert_eq!(records.len(), 1, "{case}");
    let trail = &records[0]["trail"];
    let warnings = trail["warnings"].to_string();
    assert!(
        warnings.contains("bomb.json.gz") && warnings.contains("gzip bomb"),
        "{case}: {warnings}"
    );
    assert!(
        warnings.contains("big-record.json.gz") && warnings.contains("record 0 is larger"),
        "{case}: {warnings}"
    );
    assert!(!warnings.contains("fine.json.gz"), "{case}: {warnings}");
    assert_eq!(trail["searched"]["records"], 51, "{case}: {trail}");
    eprintln!("{case}: peak RSS {} MiB", kib >> 10);
    assert!(
        kib < 300 << 10,
        "{case}: peak RSS {} MiB (the bound is 300 MiB)",
        kib >> 10
    );
}

/// payload-for writes `registry/repository` into what gets signed: given apart in a record,
/// they must be what a reference could hold, or the record gets a `bad_reference` error.
#[test]
fn payload_for_refuses_hostile_registry_and_repository_fields() {
    let rec = |registry: &str, repository: &str| {
        format!(
            "{}\n",
            serde_json::json!({"registry": registry, "repository": repository, "digest": DIGEST})
        )
    };
    for (registry, repository) in [
        ("r.example", "../../etc/passwd"),
        ("r.example", "app/../other"),
        ("r.example", "./app"),
        ("r.example", "App"),
        ("r.example", "app\nx"),
        ("r.example", "app\u{0}"),
        ("r.example", "app\u{1b}[31m"),
        ("r.example", "app/"),
        ("r.example", ""),
        ("r.example", "app name"),
        ("r.example", "app:v1"),
        ("r.example", "app@sha256:00"),
        ("r.example\r\nX-Injected: 1", "app"),
        ("r.example/evil", "app"),
        ("r.example:99999", "app"),
        ("r.example:", "app"),
        ("", "app"),
        ("-r.example", "app"),
        ("r..example", "app"),
        ("r.example@x", "app"),
    ] {
        check(
            "payload-for",
            &[],
            rec(registry, repository),
            "bad_reference",
        );
    }
    // What a real registry name looks like still signs.
    for (registry, repository) in [
        ("r.example", "app"),
        ("127.0.0.1:5000", "org/app-1/x_y.z"),
        ("[::1]:5000", "a"),
        ("localhost", "a__b"),
    ] {
        check("payload-for", &[], rec(registry, repository), "ok");
    }
}

/// A registry (a scripted one: no real registry stores these) serving hostile bodies under
/// manifest media types: digest-of reports no digest for any of them, only an error record
/// naming what is wrong; the two honest manifests around them resolve.
#[test]
fn digest_of_refuses_manifests_that_are_not_manifests() {
    use sigtrail_tests::fake_http::{FakeHttp, Response};
    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let config = format!(
        "{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:{}\",\"size\":2}}",
        "a".repeat(64)
    );
    let good = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI}\",\"config\":{config},\"layers\":[]}}"
    );
    let entry = |media_type: &str| {
        format!(
            "{{\"mediaType\":\"{media_type}\",\"digest\":\"sha256:{}\",\"size\":9}}",
            "b".repeat(64)
        )
    };
    let mut invalid_utf8 = b"{\"schemaVersion\":2,\"mediaType\":\"".to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\"}");
    // tag, Content-Type, body, what the error message must say ("" for an honest manifest)
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("honest", OCI, good.clone().into_bytes(), ""),
        (
            "deep",
            OCI,
            format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes(),
            "recursion limit",
        ),
        (
            "deep-inside",
            OCI,
            format!(
                "{{\"schemaVersion\":2,\"layers\":{}{}}}",
                "[".repeat(200_000),
                "]".repeat(200_000)
            )
            .into_bytes(),
            "recursion limit",
        ),
        ("utf8", OCI, invalid_utf8, "not UTF-8"),
        (
            "array",
            OCI,
            b"[{\"schemaVersion\":2}]".to_vec(),
            "JSON array, not an object",
        ),
        (
            "string",
            OCI,
            b"\"a manifest\"".to_vec(),
            "JSON string, not an object",
        ),
        (
            "schema1",
            OCI,
            good.replace("\"schemaVersion\":2", "\"schemaVersion\":1")
                .into_bytes(),
            "schemaVersion 1, not 2",
        ),
        (
            "schema-text",
            OCI,
            good.replace("\"schemaVersion\":2", "\"schemaVersion\":\"2\"")
                .into_bytes(),
            "schemaVersion \"2\", not 2",
        ),
        (
            "claims-index",
            OCI,
            good.replace(OCI, INDEX).into_bytes(),
            "says mediaType",
        ),
        (
            "index-served-as-manifest",
            OCI,
            format!("{{\"schemaVersion\":2,\"manifests\":[{}]}}", entry(OCI)).into_bytes(),
            "without a config",
        ),
        (
            "index-of-layers",
            INDEX,
            format!(
                "{{\"schemaVersion\":2,\"manifests\":[{}]}}",
                entry("application/vnd.oci.image.layer.v1.tar+gzip")
            )
            .into_bytes(),
            "not an image manifest or index",
        ),
        (
            "index-of-strings",
            INDEX,
            b"{\"schemaVersion\":2,\"manifests\":[\"sha256:00\",7]}".to_vec(),
            "not a descriptor",
        ),
        (
            "index-no-list",
            INDEX,
            b"{\"schemaVersion\":2,\"manifests\":{}}".to_vec(),
            "without a manifests array",
        ),
        (
            "html",
            "text/html",
            good.clone().into_bytes(),
            "not an image manifest or index",
        ),
        (
            "honest-index",
            INDEX,
            format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"{INDEX}\",\"manifests\":[{}]}}",
                entry(OCI)
            )
            .into_bytes(),
            "",
        ),
    ];
    let served: Vec<(String, String, Vec<u8>)> = cases
        .iter()
        .map(|(tag, ct, body, _)| {
            (
                format!("/v2/app/manifests/{tag}"),
                ct.to_string(),
                body.clone(),
            )
        })
        .collect();
    let server =
        FakeHttp::start(
            move |req, _| match served.iter().find(|(path, _, _)| *path == req.path) {
                Some((_, ct, body)) => Response::new(200)
                    .header("Content-Type", ct)
                    .body(body.clone()),
                None => Response::new(404),
            },
        );
    let input: String = cases
        .iter()
        .map(|(tag, ..)| format!("{}/app:{tag}\n", server.addr))
        .collect();
    let expect: Vec<&str> = cases
        .iter()
        .map(|(.., why)| if why.is_empty() { "ok" } else { "bad_manifest" })
        .collect();
    let records = check("digest-of", &[], input, &expect.join(","));
    for ((tag, _, body, why), rec) in cases.iter().zip(&records) {
        if why.is_empty() {
            let digest = format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body))
            );
            assert_eq!(rec["digest"], digest.as_str(), "{tag}");
            continue;
        }
        assert!(
            rec.get("digest").is_none(),
            "{tag}: a digest for a bad manifest: {rec:?}"
        );
        let msg = rec["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{tag}: {msg:?} does not say {why:?}");
    }
}
