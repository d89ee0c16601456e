//! The examples users copy (`examples/Makefile`), run as written with `make` against registries
//! of the test's own and the emulator's KMS: sign and verify, nightly re-verification of a whole
//! registry, key rotation, mirroring to a registry with its own login, and the key's monitor over
//! a CloudTrail directory. Each test checks the records and the report the target leaves, not
//! only its exit status. Not run here: `deploy` (kubectl) and `audit` (the trail-for tests cover
//! its pipeline; an image in moto's ECR and a registry at once is their setup, not this file's).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;
use sigtrail_tests::own_registry::OwnRegistry;
use sigtrail_tests::trail::{sha256, write_gz, Aws, Trail, ACCOUNT};
use sigtrail_tests::{env, kms_create_key, push_image, run, run_ok, tool, tools_dir, unique};

fn makefile() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/Makefile")
}

/// `make -f examples/Makefile TARGET VARS...` in `dir`, with the tools on PATH.
fn make(dir: &Path, target: &str, vars: &[(&str, &str)]) -> Output {
    make_with(dir, target, vars, |_| {})
}

/// [`make`], with more set on the command (its environment).
fn make_with(
    dir: &Path,
    target: &str,
    vars: &[(&str, &str)],
    more: impl FnOnce(&mut Command),
) -> Output {
    let mut cmd = Command::new("make");
    cmd.arg("--no-print-directory")
        .arg("-f")
        .arg(makefile())
        .arg("-C")
        .arg(dir)
        .arg(target);
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    let path = format!(
        "{}:{}",
        tools_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path);
    more(&mut cmd);
    run(&mut cmd, b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Signs `reference` with `key` through the pipeline, as `make sign` does.
fn sign(reference: &str, key: &str) {
    let resolved = run_ok(tool("digest-of").arg("-q").arg(reference), b"");
    let payload = run_ok(tool("payload-for").arg("-q"), resolved.as_bytes());
    let signed = run_ok(
        tool("kms-sign").args(["-q", "--key", key]),
        payload.as_bytes(),
    );
    let attached = run_ok(tool("attach-sig").arg("-q"), signed.as_bytes());
    assert!(attached.contains("\"added\":true"), "{attached}");
}

/// A fresh KMS key's `awskms://` name.
fn key(spec: &str) -> String {
    let alias = format!("alias/{}", unique("example"));
    kms_create_key(spec, &alias);
    format!("awskms:///{alias}")
}

/// `verified` of each record, by `repository:tag`.
fn verdicts(recs: &[Value]) -> Vec<(String, bool)> {
    let mut v: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                format!(
                    "{}:{}",
                    r["repository"].as_str().unwrap_or("?"),
                    r["tag"].as_str().unwrap_or("-")
                ),
                r["verification"]["verified"] == Value::Bool(true),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn reverify_checks_every_repository_of_the_registry_and_reports_the_failures() {
    let reg = OwnRegistry::start();
    let (k, other) = (key("ECC_NIST_P256"), key("ECC_NIST_P256"));
    let a = format!("{}/team-a/api:v1", reg.addr);
    let b1 = format!("{}/team-b/web:v1", reg.addr);
    let b2 = format!("{}/team-b/web:v2", reg.addr);
    let c = format!("{}/tools:v1", reg.addr);
    for (r, content) in [(&a, "a"), (&b1, "b1"), (&b2, "b2"), (&c, "c")] {
        push_image(r, content);
    }
    sign(&a, &k);
    sign(&b1, &k);
    sign(&c, &other); // signed, but not with the key the job trusts; b2 is not signed at all

    let dir = tempfile::tempdir().unwrap();
    let out = make(
        dir.path(),
        "reverify",
        &[("REGISTRY", &reg.addr), ("KEY", &k)],
    );
    assert!(!out.status.success(), "two images fail: make must fail");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("reverify: 4 images, 2 failed (reverify-failures.tsv)"),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let all = records(&dir.path().join("reverify.jsonl"));
    assert_eq!(
        verdicts(&all),
        [
            ("team-a/api:v1".to_string(), true),
            ("team-b/web:v1".to_string(), true),
            ("team-b/web:v2".to_string(), false),
            ("tools:v1".to_string(), false),
        ]
    );
    let report = std::fs::read_to_string(dir.path().join("reverify-failures.tsv")).unwrap();
    let lines: Vec<Vec<&str>> = report.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert_eq!(
        lines[0][..2],
        ["team-b/web:v2", "no_signatures"],
        "{report}"
    );
    assert_eq!(
        lines[1][..2],
        ["tools:v1", "no_matching_signatures"],
        "{report}"
    );
    assert!(
        lines.iter().all(|l| l.len() == 3 && !l[2].is_empty()),
        "{report}"
    );
}

#[test]
fn rotate_re_signs_what_the_old_key_signed_and_audits_with_the_new_key() {
    let reg = OwnRegistry::start();
    let (old, new) = (key("ECC_NIST_P256"), key("RSA_2048"));
    let repo = format!("{}/app", reg.addr);
    let v1 = format!("{repo}:v1");
    let v2 = format!("{repo}:v2");
    let v3 = format!("{repo}:v3");
    push_image(&v1, "v1");
    push_image(&v2, "v2");
    push_image(&v3, "v3");
    sign(&v1, &old);
    sign(&v2, &old);
    sign(&v2, &new); // already rotated: must not be signed again
                     // v3 was never signed: rotation must not make it look signed

    let dir = tempfile::tempdir().unwrap();
    let out = make(
        dir.path(),
        "rotate",
        &[("REPO", &repo), ("OLD_KEY", &old), ("NEW_KEY", &new)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success(),
        "v3 does not verify: make must fail\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "rotate: 1 re-signed with {new}, 2 of 3 verify with it"
        )),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("NOT ROTATED app:v3"), "{stdout}");

    let signed = records(&dir.path().join("rotate-signed.jsonl"));
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(signed[0]["tag"], "v1");
    assert_eq!(signed[0]["attached"]["added"], true);
    let payload = base64::engine::general_purpose::STANDARD
        .decode(signed[0]["payload"].as_str().unwrap())
        .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["optional"]["rotated_from"], old.as_str());

    // The new key alone verifies v1 and v2 now; the old signatures are still there.
    let after = records(&dir.path().join("rotate-after.jsonl"));
    assert_eq!(
        verdicts(&after),
        [
            ("app:v1".to_string(), true),
            ("app:v2".to_string(), true),
            ("app:v3".to_string(), false),
        ]
    );
    let both = run(
        tool("check-sig").args(["-q", "--key", &old, "--key", &new, "--threshold", "2"]),
        format!("{v1}\n{v2}\n").as_bytes(),
    );
    assert!(both.status.success(), "{}", text(&both.stdout));
}

#[test]
fn mirror_copies_only_verified_images_with_their_signatures_and_they_verify_there() {
    let src = OwnRegistry::start();
    let (user, pass) = ("mirror", "mirror-secret-1");
    let dst = OwnRegistry::with_login(user, pass);
    let (k, other) = (key("ECC_NIST_P256"), key("ECC_NIST_P256"));
    let repo = format!("{}/svc", src.addr);
    let good = format!("{repo}:v1");
    let unsigned = format!("{repo}:v2");
    let foreign = format!("{repo}:v3");
    push_image(&good, "good");
    push_image(&unsigned, "unsigned");
    push_image(&foreign, "foreign");
    sign(&good, &k);
    sign(&foreign, &other);

    // The mirror's login, for skopeo and for the tools (docker's config.json).
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let config = docker.join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, dst.addr),
    )
    .unwrap();
    let e = env();
    let copy = format!(
        "{} --policy {} copy --src-tls-verify=false --dest-tls-verify=false --dest-authfile {}",
        e.skopeo.display(),
        e.skopeo_policy_accept.display(),
        config.display()
    );
    let out = make_with(
        dir.path(),
        "mirror",
        &[
            ("REPO", &repo),
            ("KEY", &k),
            ("MIRROR", &dst.addr),
            ("SKOPEO_COPY", &copy),
        ],
        |cmd| {
            cmd.env("DOCKER_CONFIG", &docker);
        },
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "mirror: 1 images and their signatures copied to {}, 1 verify there",
            dst.addr
        )),
        "{stdout}"
    );

    // On the other side: only the verified image, same digest, same signature bytes.
    let source = records(&dir.path().join("mirror-source.jsonl"));
    let good_src = source.iter().find(|r| r["tag"] == "v1").unwrap();
    let mut listing = Command::new(tools_dir().join("digest-of"));
    listing
        .args(["-q", "--all", &format!("{}/svc", dst.addr)])
        .env("DOCKER_CONFIG", &docker);
    let listed: Vec<Value> = run_ok(&mut listing, b"")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        listed.len(),
        1,
        "only the verified image is copied: {listed:?}"
    );
    assert_eq!(listed[0]["tag"], "v1");
    assert_eq!(listed[0]["digest"], good_src["digest"]);

    let verified = records(&dir.path().join("mirror-verified.jsonl"));
    assert_eq!(verified.len(), 1);
    let there = &verified[0]["verification"];
    assert_eq!(there["verified"], true, "{there}");
    let here = &good_src["verification"];
    assert_eq!(
        there["signature_manifest"]["digest"], here["signature_manifest"]["digest"],
        "the mirror's signature manifest is byte for byte the source's"
    );
    assert_eq!(
        there["signatures"][0]["layer_annotations"],
        here["signatures"][0]["layer_annotations"]
    );
    assert!(
        !stdout.contains(pass) && !stderr.contains(pass),
        "the mirror's password is never printed"
    );

    // Copying again adds nothing.
    let again = run(
        tool("attach-sig")
            .args(["-q", "--copy-to", &dst.addr])
            .env("DOCKER_CONFIG", &docker),
        serde_json::to_string(good_src).unwrap().as_bytes(),
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["attached"]["added"], false);
    assert_eq!(again["attached"]["copied"], 1);

    // A record whose verification failed, or that lacks the kept signatures, is refused.
    let unverified = source.iter().find(|r| r["tag"] == "v2").unwrap();
    let mut stripped = good_src.clone();
    stripped["verification"]["signatures"][0]
        .as_object_mut()
        .unwrap()
        .remove("payload");
    for (record, want) in [
        (unverified, "no verified `verification`"),
        (
            &stripped,
            "has no `payload`: run check-sig with --keep-signatures",
        ),
    ] {
        let out = run(
            tool("attach-sig")
                .args(["-q", "--copy-to", &dst.addr])
                .env("DOCKER_CONFIG", &docker),
            serde_json::to_string(record).unwrap().as_bytes(),
        );
        assert_eq!(out.status.code(), Some(1));
        let rec: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rec["error"]["kind"], "bad_record");
        let msg = rec["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want), "{msg}");
    }
}

#[test]
fn sign_then_verify_as_a_service_repository_would() {
    let reg = OwnRegistry::start();
    let k = key("ECC_NIST_P256");
    let image = format!("{}/app:v1.2.3", reg.addr);
    let digest = push_image(&image, "release");
    let dir = tempfile::tempdir().unwrap();
    // `make sign` records the checkout's commit: run it in one.
    for args in [
        &["init", "-q"][..],
        &[
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "release",
        ],
    ] {
        run_ok(Command::new("git").args(args).current_dir(dir.path()), b"");
    }
    let sha = run_ok(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(dir.path()),
        b"",
    );
    let out = make(dir.path(), "sign", &[("IMAGE", &image), ("KEY", &k)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "signed {}/app@{digest}  (1 signature(s) on sha256-",
            reg.addr
        )),
        "{}",
        text(&out.stdout)
    );
    let out = make(dir.path(), "verify", &[("IMAGE", &image), ("KEY", &k)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{}/app@{digest}: verified=true", reg.addr)),
        "{}",
        text(&out.stdout)
    );
    let verified = records(&dir.path().join("verified.jsonl"));
    let annotations = &verified[0]["verification"]["signatures"][0]["annotations"];
    assert_eq!(annotations["git_sha"], sha.trim());

    // Another image, never signed: `make verify` fails and says so.
    let other = format!("{}/app:v9", reg.addr);
    push_image(&other, "unsigned");
    let out = make(dir.path(), "verify", &[("IMAGE", &other), ("KEY", &k)]);
    assert!(!out.status.success());
    let verified = records(&dir.path().join("verified.jsonl"));
    assert_eq!(verified[0]["verification"]["failure"], "no_signatures");
}

#[test]
fn monitor_is_quiet_on_an_intact_trail_and_flags_a_forged_log_file() {
    let mut aws = Aws::start();
    let arn = kms_create_key("ECC_NIST_P256", &format!("alias/{}", unique("monitor")));
    let mut trail = Trail::default();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("ci"));
    let (session, _) = trail.assume(&mut aws, &role, "repo:acme/app:ref:refs/heads/main");
    trail.sign(&mut aws, &session, &arn, &sha256(b"payload"));
    let logs = tempfile::tempdir().unwrap();
    let files = trail.write(logs.path());
    // From yesterday: a run across midnight (UTC) still reads every file the test wrote.
    let since = run_ok(
        Command::new("date").args(["-u", "-d", "yesterday", "+%Y-%m-%d"]),
        b"",
    );
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("KEY", format!("awskms:///{arn}")),
        ("TRAIL", logs.path().display().to_string()),
        ("MONITOR_SINCE", since.trim().to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Intact and sealed: nothing to flag (the Sign is younger than one window: it waits for
    // the next run, when its signature push may have arrived), the checkpoint is written.
    let out = make(dir.path(), "monitor", &vars);
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // (make echoes the recipe, whose jq names TAMPERED: count report lines, tab-separated)
    assert!(!text(&out.stdout).contains("\tTAMPERED\t"));
    assert!(dir.path().join("monitor-state.json").exists());

    // A log file rewritten after delivery: its digest no longer matches.
    let path = &logs.path().join(&files[0]);
    let mut doc: Value = serde_json::from_reader(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ))
    .unwrap();
    doc["Records"].as_array_mut().unwrap().pop();
    write_gz(path, &doc);
    let out = make(dir.path(), "monitor", &vars);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    let flagged: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("\tTAMPERED\t"))
        .collect();
    assert_eq!(flagged.len(), 1, "{stdout}\n{}", text(&out.stderr));
}
