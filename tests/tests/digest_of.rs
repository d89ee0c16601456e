//! `digest-of` end to end: against the real local registries (compared with skopeo), moto's ECR
//! through an ECR alias, a registry that restarts mid-batch, and a scripted HTTP server for
//! what a real registry never does (wrong bytes, 429/503, redirects to another host).

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sigtrail_tests::fake_http::{FakeHttp, Response};
use sigtrail_tests::own_registry::OwnRegistry;
use sigtrail_tests::{env, push_image, push_image_with, run, run_ok, script, tool, unique, Push};

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn records(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// digest-of with `args`, stdin empty; returns (records, exit code, stderr).
fn digest_of(args: &[&str]) -> (Vec<Value>, i32, String) {
    let mut cmd = tool("digest-of");
    cmd.args(args).env_remove("SIGTRAIL_ECR_ALIASES");
    let out = run(&mut cmd, b"");
    (
        records(&out.stdout),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn skopeo(args: &[&str]) -> Command {
    let mut cmd = Command::new(&env().skopeo);
    cmd.args(args);
    cmd
}

/// What skopeo says the digest of `reference` is.
fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut cmd = skopeo(&["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    cmd.arg(format!("docker://{reference}"));
    run_ok(&mut cmd, b"").trim().to_string()
}

/// The exact manifest bytes skopeo reads for `reference`.
fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = run(
        skopeo(&["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
}

#[test]
fn tags_and_digests_match_skopeo() {
    let reg = &env().registry;
    let repo = unique("dof-app");
    let image = format!("{reg}/{repo}:v1.0");
    let pushed = push_image(&image, "digest-of tags and digests");
    let by_digest = format!("{reg}/{repo}@{pushed}");
    let (recs, code, err) = digest_of(&[&image, &by_digest]);
    assert_eq!(code, 0, "{err}");
    let want = skopeo_digest(&image, None);
    assert_eq!(want, pushed);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(s(r, "digest"), want);
        assert_eq!(s(r, "ref"), format!("{reg}/{repo}@{want}"));
        assert_eq!(s(r, "registry"), reg);
        assert_eq!(s(r, "repository"), repo);
        assert_eq!(
            s(r, "media_type"),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert!(r.get("ecr").is_none());
    }
    assert_eq!(s(&recs[0], "image"), image);
    assert_eq!(s(&recs[0], "tag"), "v1.0");
    assert!(
        recs[1].get("tag").is_none(),
        "a digest reference has no tag"
    );
    // Field order: the input's fields first, then the tool's, in its order.
    let keys: Vec<&str> = recs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "image",
            "ref",
            "registry",
            "repository",
            "tag",
            "digest",
            "media_type"
        ]
    );
}

#[test]
fn records_and_lines_on_stdin_keep_their_fields() {
    let reg = &env().registry;
    let repo = unique("dof-stdin");
    let image = format!("{reg}/{repo}:t");
    let pushed = push_image(&image, "stdin records");
    let input = format!("{{\"z\":1,\"image\":\"{image}\",\"note\":\"kept\"}}\n{image}\n");
    let out = run(&mut tool("digest-of"), input.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["z"], 1);
    assert_eq!(recs[0]["note"], "kept");
    assert_eq!(s(&recs[0], "digest"), pushed);
    assert_eq!(s(&recs[1], "digest"), pushed);
}

#[test]
fn an_index_and_its_platforms_match_skopeo() {
    let reg = &env().registry;
    let repo = unique("dof-index");
    let image = format!("{reg}/{repo}:multi");
    let pushed = push_image_with(
        &image,
        Push {
            content: Some("an index"),
            index: true,
            ..Push::default()
        },
    );
    let raw = skopeo_raw(&image);
    assert_eq!(sha256(&raw), pushed);
    let index: Value = serde_json::from_slice(&raw).unwrap();

    let (recs, code, err) = digest_of(&[&image]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(recs.len(), 1, "no platform records without --platforms");
    assert_eq!(s(&recs[0], "digest"), skopeo_digest(&image, None));
    assert_eq!(
        s(&recs[0], "media_type"),
        "application/vnd.oci.image.index.v1+json"
    );

    let (recs, code, err) = digest_of(&["--platforms", &image]);
    assert_eq!(code, 0, "{err}");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(recs.len(), 1 + manifests.len());
    assert_eq!(s(&recs[0], "digest"), pushed);
    assert!(recs[0].get("platform").is_none());
    for (r, m) in recs[1..].iter().zip(manifests) {
        let d = s(m, "digest");
        let platform = format!(
            "{}/{}",
            s(&m["platform"], "os"),
            s(&m["platform"], "architecture")
        );
        assert_eq!(s(r, "digest"), d);
        assert_eq!(sha256(&skopeo_raw(&format!("{reg}/{repo}@{d}"))), d);
        assert_eq!(s(r, "platform"), platform);
        assert_eq!(s(r, "index_digest"), pushed);
        assert_eq!(s(r, "ref"), format!("{reg}/{repo}@{d}"));
        assert_eq!(s(r, "image"), image);
    }
}

#[test]
fn all_lists_every_tag_like_skopeo() {
    let reg = &env().registry;
    let repo = unique("dof-all");
    let a = push_image(&format!("{reg}/{repo}:a"), "all a");
    push_image(&format!("{reg}/{repo}:b"), "all a"); // same image, second tag
    push_image(&format!("{reg}/{repo}:c"), "all c");
    // A cosign signature tag is not an image to resolve.
    push_image(
        &format!("{reg}/{repo}:sha256-{}.sig", &a[7..]),
        "a signature",
    );
    let (recs, code, err) = digest_of(&["--all", &format!("{reg}/{repo}")]);
    assert_eq!(code, 0, "{err}");
    let listed = run_ok(
        skopeo(&["list-tags", "--tls-verify=false"]).arg(format!("docker://{reg}/{repo}")),
        b"",
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let mut tags: Vec<&str> = listed["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .filter(|t| !t.ends_with(".sig"))
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b", "c"]);
    let got: Vec<&str> = recs.iter().map(|r| s(r, "tag")).collect();
    assert_eq!(got, tags);
    for r in &recs {
        let t = s(r, "tag");
        assert_eq!(
            s(r, "digest"),
            skopeo_digest(&format!("{reg}/{repo}:{t}"), None)
        );
        assert_eq!(s(r, "image"), format!("{reg}/{repo}"));
    }
    // --all with two repositories, one missing: the missing one fails, the other goes on.
    let missing = format!("{reg}/{}", unique("dof-none"));
    let (recs, code, _) = digest_of(&["--all", &format!("{reg}/{repo}"), "--all", &missing]);
    assert_eq!(code, 1);
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[3]["error"]["kind"], "not_found", "{}", recs[3]);
    // A tag is not a repository.
    let (recs, code, _) = digest_of(&["--all", &format!("{reg}/{repo}:a")]);
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "bad_reference");
}

#[test]
fn basic_auth_registry_with_docker_config() {
    let e = env();
    let repo = unique("dof-auth");
    let image = format!("{}/{repo}:v1", e.auth_registry);
    let pushed = push_image_with(
        &image,
        Push {
            content: Some("behind basic auth"),
            creds: Some((&e.auth_user, &e.auth_pass)),
            ..Push::default()
        },
    );
    let creds = format!("{}:{}", e.auth_user, e.auth_pass);
    assert_eq!(skopeo_digest(&image, Some(&creds)), pushed);
    let out = run(
        tool("digest-of")
            .arg(&image)
            .env("DOCKER_CONFIG", &e.auth_docker_config),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(s(&recs[0], "digest"), pushed);
    // The password never shows up anywhere.
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(&e.auth_pass));

    // Without credentials: unauthorized, with a hint.
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        tool("digest-of")
            .arg(&image)
            .env("DOCKER_CONFIG", empty.path()),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["error"]["kind"], "unauthorized");
    assert!(s(&recs[0]["error"], "message").contains("docker login"));

    // Wrong password: unauthorized, naming the config file, not showing the password.
    let bad = tempfile::tempdir().unwrap();
    use base64::Engine;
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong-password", e.auth_user));
    std::fs::write(
        bad.path().join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            e.auth_registry
        ),
    )
    .unwrap();
    let out = run(
        tool("digest-of")
            .arg(&image)
            .env("DOCKER_CONFIG", bad.path()),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stdout);
    assert_eq!(recs[0]["error"]["kind"], "unauthorized");
    assert!(s(&recs[0]["error"], "message").contains("config.json"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("wrong-password"));
}

#[test]
fn ecr_alias_gets_metadata_from_moto() {
    let reg = &env().registry;
    let repo = unique("dof-ecr");
    let image = format!("{reg}/{repo}:v1.0");
    let pushed = push_image(&image, "an ECR image");
    let raw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(raw.path(), skopeo_raw(&image)).unwrap();
    let mirrored = run_ok(
        script("ecr-mirror.py").args([&repo, "v1.0", &raw.path().display().to_string(), &pushed]),
        b"",
    );
    assert!(mirrored.contains(&pushed), "{mirrored}");
    let alias = format!("{reg}={ECR_HOST}");

    let (recs, code, err) = digest_of(&["--ecr-alias", &alias, &image]);
    assert_eq!(code, 0, "{err}");
    let r = &recs[0];
    assert_eq!(s(r, "digest"), pushed);
    assert_eq!(s(r, "registry"), reg, "HTTP went to the loopback registry");
    let ecr = &r["ecr"];
    assert_eq!(s(ecr, "registry_id"), "123456789012");
    let pushed_at = s(ecr, "pushed_at");
    assert!(
        pushed_at.len() >= 20 && pushed_at.ends_with('Z') && &pushed_at[10..11] == "T",
        "{pushed_at}"
    );
    assert_eq!(ecr["tags"], serde_json::json!(["v1.0"]));
    assert_eq!(s(ecr, "tag_mutability"), "MUTABLE");
    assert!(ecr.get("scan_status").is_some());

    // The same through the environment variable, and --all through ECR's DescribeImages.
    let mut cmd = tool("digest-of");
    cmd.args(["--all", &format!("{reg}/{repo}")])
        .env("SIGTRAIL_ECR_ALIASES", &alias);
    let out = run(&mut cmd, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = records(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(s(&recs[0], "digest"), skopeo_digest(&image, None));
    assert_eq!(s(&recs[0], "tag"), "v1.0");
    assert!(recs[0]["ecr"]["pushed_at"].is_string());

    // --no-ecr-metadata: no ECR API calls, no `ecr` field.
    let (recs, code, err) = digest_of(&["--ecr-alias", &alias, "--no-ecr-metadata", &image]);
    assert_eq!(code, 0, "{err}");
    assert!(recs[0].get("ecr").is_none());

    // A registry image ECR does not know (not mirrored): an error naming ECR, not a silent gap.
    let other = format!("{reg}/{}:v1", unique("dof-ecr-unknown"));
    push_image(&other, "not mirrored");
    let (recs, code, _) = digest_of(&["--ecr-alias", &alias, &other]);
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "ecr", "{}", recs[0]);
}

#[test]
fn missing_images_and_bad_references_give_error_records() {
    let reg = &env().registry;
    let repo = unique("dof-err");
    let good = format!("{reg}/{repo}:ok");
    let pushed = push_image(&good, "good one");
    let missing_tag = format!("{reg}/{repo}:nope");
    let missing_repo = format!("{reg}/{}:v1", unique("dof-none"));
    let missing_digest = format!("{reg}/{repo}@sha256:{}", "0".repeat(64));
    let input = format!(
        "{missing_tag}\nNot/A Reference\n{{\"image\":\"{good}\"}}\n{{\"image\":\"x@sha256:abc\"}}\n{{\"nothing\":1}}\n{{broken\n{missing_repo}\n{missing_digest}\n"
    );
    let out = run(&mut tool("digest-of"), input.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stdout);
    let kinds: Vec<&str> = recs
        .iter()
        .map(|r| r["error"]["kind"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(
        kinds,
        [
            "not_found",
            "bad_reference",
            "ok",
            "bad_reference",
            "bad_reference",
            "bad_record",
            "not_found",
            "not_found"
        ]
    );
    assert_eq!(s(&recs[2], "digest"), pushed);
    assert!(s(&recs[3]["error"], "message").contains("64 hex digits"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("8 records: 1 ok, 7 failed"), "{stderr}");
}

#[test]
fn a_registry_that_is_down_gives_an_error_record() {
    // Port 1 (tcpmux): nothing listens there, and no test server can take it, since the kernel
    // only hands out ports from the ephemeral range for port 0. (A port bound then released
    // could be taken by a server another test starts meanwhile.)
    assert!(
        std::net::TcpStream::connect("127.0.0.1:1").is_err(),
        "something listens on 127.0.0.1:1"
    );
    let started = Instant::now();
    let (recs, code, _) = digest_of(&["127.0.0.1:1/app:v1"]);
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "registry");
    assert!(s(&recs[0]["error"], "message").contains("cannot reach"));
    // Retried with backoff before giving up, but bounded.
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(40),
        "{took:?}"
    );
}

/// A real registry of our own, stopped and started again while a batch runs: every record of
/// the batch still resolves.
#[test]
fn a_batch_survives_a_registry_restart() {
    let mut registry = OwnRegistry::start();
    let host = registry.addr.clone();
    let digest = push_image(&format!("{host}/restart:v1"), "restart");

    let mut child = tool("digest-of")
        .args(["--jobs", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.expect("read stdout"));
        }
    });
    for _ in 0..20 {
        writeln!(stdin, "{host}/restart:v1").unwrap();
    }
    stdin.flush().unwrap();
    // Killed once the batch is under way: its first record is out.
    let first = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a first record");
    registry.kill();
    // Records arriving while the registry is down (for 1.5 s: the outage, not a wait for
    // anything; digest-of retries with backoff for longer than that).
    for _ in 0..20 {
        writeln!(stdin, "{host}/restart:v1").unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    registry.restart();
    for _ in 0..20 {
        writeln!(stdin, "{host}/restart:v1").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    reader.join().expect("stdout reader");
    drop(registry);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout: String = std::iter::once(first)
        .chain(rx.try_iter())
        .map(|l| l + "\n")
        .collect();
    let recs = records(stdout.as_bytes());
    assert_eq!(recs.len(), 60);
    assert!(recs.iter().all(|r| s(r, "digest") == digest));
}

// ---- what a real registry never does: a scripted server ----

fn manifest_bytes(n: u32) -> Vec<u8> {
    format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:{}\",\"size\":{n}}},\"layers\":[]}}",
        "a".repeat(64)
    )
    .into_bytes()
}

fn manifest_response(bytes: &[u8]) -> Response {
    Response::new(200)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes.to_vec())
}

#[test]
fn bytes_that_do_not_match_the_digest_are_refused() {
    let served = manifest_bytes(1);
    let claimed = sha256(&manifest_bytes(2));
    let claimed2 = claimed.clone();
    let server = FakeHttp::start(move |req, _| {
        let m = manifest_response(&manifest_bytes(1));
        if req.path.ends_with("/manifests/lying-header") {
            m.header("Docker-Content-Digest", &claimed2)
        } else {
            m
        }
    });
    let a = &server.addr;
    let (recs, code, _) = digest_of(&[
        &format!("{a}/app@{claimed}"),
        &format!("{a}/app:lying-header"),
        &format!("{a}/app:honest"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "digest_mismatch", "{}", recs[0]);
    assert_eq!(recs[1]["error"]["kind"], "digest_mismatch", "{}", recs[1]);
    assert_eq!(s(&recs[2], "digest"), sha256(&served));
}

#[test]
fn oversized_manifests_are_refused() {
    let server = FakeHttp::start(|_, _| manifest_response(&vec![b' '; (4 << 20) + 1]));
    let (recs, code, _) = digest_of(&[&format!("{}/app:big", server.addr)]);
    assert_eq!(code, 1);
    assert_eq!(recs[0]["error"]["kind"], "too_large");
}

#[test]
fn throttling_and_server_errors_are_retried() {
    let bytes = manifest_bytes(3);
    let b2 = bytes.clone();
    let b3 = bytes.clone();
    let throttled = FakeHttp::start(move |_, n| match n {
        0 => Response::new(429).header("Retry-After", "2"),
        _ => manifest_response(&b2),
    });
    let flaky = FakeHttp::start(move |_, n| match n {
        0..=2 => Response::new(503),
        _ => manifest_response(&b3),
    });
    let started = Instant::now();
    let (recs, code, err) = digest_of(&[&format!("{}/app:v1", throttled.addr)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    assert_eq!(s(&recs[0], "digest"), sha256(&bytes));
    assert_eq!(throttled.requests().len(), 2);
    let (recs, code, err) = digest_of(&[&format!("{}/app:v1", flaky.addr)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s(&recs[0], "digest"), sha256(&bytes));
    assert_eq!(flaky.requests().len(), 4);
}

#[test]
fn credentials_never_follow_a_redirect_to_another_host() {
    use base64::Engine;
    let bytes = manifest_bytes(4);
    let b2 = bytes.clone();
    let other = FakeHttp::start(move |_, _| manifest_response(&b2));
    let target = format!("http://{}/blobs/manifest", other.addr);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:sekrit")
    );
    let exp2 = expected.clone();
    let registry = FakeHttp::start(move |req, _| {
        if req.header("authorization") != Some(exp2.as_str()) {
            return Response::new(401).header("WWW-Authenticate", "Basic realm=\"fake\"");
        }
        Response::new(307).header("Location", &target)
    });
    let config = tempfile::tempdir().unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"username\":\"user\",\"password\":\"sekrit\"}}}}}}",
            registry.addr
        ),
    )
    .unwrap();
    let out = run(
        tool("digest-of")
            .arg(format!("{}/app:v1", registry.addr))
            .env("DOCKER_CONFIG", config.path()),
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s(&records(&out.stdout)[0], "digest"), sha256(&bytes));
    let seen = registry.requests();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some(expected.as_str())
    );
    let followed = other.requests();
    assert_eq!(followed.len(), 1);
    assert_eq!(
        followed[0].header("authorization"),
        None,
        "credentials leaked on redirect"
    );
}
