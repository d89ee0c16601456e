//! `trail-for` end to end: real STS, KMS and ECR calls against the AWS emulator, their CloudTrail
//! records in log files (a directory, the emulator's S3) and behind `LookupEvents`, then the
//! verdicts, orphans, scoping and malformed files (speed is `cargo xtask bench`'s: bench-trail).
//!
//! moto records no CloudTrail events and has no `LookupEvents`: the tests write the records of
//! the calls they really made (request ids and times as the emulator returned them; see
//! `sigtrail_tests::trail`), and `LookupEvents` is the environment's stand-in that answers from
//! the records a test gives it (`scripts/moto_server.py`). The signing tools (`kms-sign`,
//! `attach-sig`) are not used yet: the tests call KMS `Sign` and ECR `PutImage` themselves, the
//! way those tools do.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use sigtrail_tests::trail::{
    image_manifest, noise, payload, sha256, sig_tag, signature_manifest,
    signature_manifest_with_ids, write_gz, write_log_files, Aws, Call, Session, Trail, ACCOUNT,
    ECR_HOST, REGION,
};
use sigtrail_tests::{digests, kms_create_key, run, tool, unique, LookupEvents};

#[path = "trail_for/integrity.rs"]
mod integrity;

#[path = "trail_for/cosign.rs"]
mod cosign;

#[path = "trail_for/athena.rs"]
mod athena;

const SUBJECT: &str = "repo:acme/app:ref:refs/heads/main";

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs trail-for with `args` on one input record; returns its output records and status.
/// Runs trail-for on one record. Local trails are checked with the test's CloudTrail key from
/// a file (`--cloudtrail-public-keys`); S3 ones through the emulator's ListPublicKeys stand-in.
fn trail_for(args: &[&str], input: &Value) -> (Vec<Value>, Output) {
    let out = run(
        with_keys(&mut tool("trail-for"), args),
        format!("{input}\n").as_bytes(),
    );
    (records(&out), out)
}

fn with_keys<'a>(
    cmd: &'a mut std::process::Command,
    args: &[&str],
) -> &'a mut std::process::Command {
    cmd.args(args);
    let s3 = args.iter().any(|a| a.starts_with("s3://"));
    if !s3 && !args.contains(&"--cloudtrail-public-keys") {
        cmd.arg("--cloudtrail-public-keys")
            .arg(digests::keys_file());
    }
    cmd
}

fn today() -> String {
    // The calls were just made; one day back covers a run across midnight.
    let out = std::process::Command::new("date")
        .args(["-u", "-d", "yesterday", "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Sleeps until the wall clock is in a new second, then one more: CloudTrail times have
/// second precision, and some tests need calls on either side of a time.
fn next_second() -> String {
    std::thread::sleep(Duration::from_millis(1100));
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    t
}

/// A CI run that pushes an image and signs it twice (the second signature after `compromise`).
struct Run {
    trail: Trail,
    key: String,
    repo: String,
    digest: String,
    session: Session,
    image_push: Call,
    signs: Vec<Call>,
    sig_pushes: Vec<Call>,
    signatures: Vec<String>,
    payloads: Vec<Vec<u8>>,
    compromise: String,
}

impl Run {
    fn image(&self) -> Value {
        json!({"image": format!("{ECR_HOST}/{}:v1", self.repo), "registry": ECR_HOST,
               "repository": self.repo, "digest": self.digest})
    }
}

/// Signs one more layer onto the image's `.sig` tag: KMS Sign of sha256(payload), then the
/// PutImage of the manifest with every layer so far (cosign appends), each layer carrying its
/// Sign request id as attach-sig writes it.
fn sign_and_push(aws: &mut Aws, run: &mut Run, session: &Session, annotation: &str) {
    let reference = format!("{ECR_HOST}/{}", run.repo);
    let p = payload(
        &reference,
        &run.digest,
        &[
            ("github.sha", annotation),
            ("github.repository", "acme/app"),
            ("github.run_id", "4242"),
        ],
    );
    let sign = run.trail.sign(aws, session, &run.key, &sha256(&p));
    let sig = sign.answer["signature"].as_str().unwrap().to_string();
    run.payloads.push(p);
    run.signatures.push(sig);
    run.signs.push(sign);
    let layers: Vec<(Vec<u8>, String, Option<String>)> = run
        .payloads
        .iter()
        .zip(&run.signatures)
        .zip(&run.signs)
        .map(|((p, s), c)| (p.clone(), s.clone(), Some(c.request_id.clone())))
        .collect();
    let push = run.trail.put_image(
        aws,
        session,
        &run.repo,
        &sig_tag(&run.digest),
        &signature_manifest_with_ids(&layers),
    );
    run.sig_pushes.push(push);
}

fn signing_run(aws: &mut Aws, key_alias: &str) -> Run {
    let key = kms_create_key("ECC_NIST_P256", key_alias);
    let repo = unique("trail-app");
    let mut trail = Trail::default();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("ci"));
    let (session, _) = trail.assume(aws, &role, SUBJECT);
    let manifest = image_manifest(&unique("content"));
    let image_push = trail.put_image(aws, &session, &repo, "v1", &manifest);
    let digest = image_push.answer["digest"].as_str().unwrap().to_string();
    let mut run = Run {
        trail,
        key,
        repo,
        digest,
        session: session.clone(),
        image_push,
        signs: vec![],
        sig_pushes: vec![],
        signatures: vec![],
        payloads: vec![],
        compromise: String::new(),
    };
    sign_and_push(
        aws,
        &mut run,
        &session,
        "1111111111111111111111111111111111111111",
    );
    run.compromise = next_second();
    sign_and_push(
        aws,
        &mut run,
        &session,
        "2222222222222222222222222222222222222222",
    );
    assert!(run.signs[0].time < run.compromise && run.compromise < run.signs[1].time);
    run
}

fn check_trusted(r: &Value, run: &Run, what: &str) {
    let t = &r["trail"];
    assert_eq!(t["verdict"], "trusted", "{what}: {r:#}");
    // Files are trusted only as validated by the digest chain; LookupEvents is CloudTrail's own.
    let want = if what == "lookup" {
        "service"
    } else {
        "validated"
    };
    assert_eq!(
        t["integrity"]["state"], want,
        "{what}: {:#}",
        t["integrity"]
    );
    if want == "validated" {
        let evidence = t["integrity"]["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty(), "{what}");
        assert!(evidence.iter().all(|e| e["state"] == "validated"), "{what}");
    }
    let sigs = t["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{what}");
    for (i, s) in sigs.iter().enumerate() {
        assert_eq!(
            s["signed_at"],
            run.signs[i].time.as_str(),
            "{what}: signature {i}"
        );
        assert_eq!(
            s["evidence"]["sign_request_id"],
            run.signs[i].request_id.as_str(),
            "{what}"
        );
        assert_eq!(
            s["evidence"]["sign_event_id"],
            run.signs[i].event_id.as_str(),
            "{what}"
        );
        assert_eq!(
            s["evidence"]["signature_push_event_id"],
            run.sig_pushes[i].event_id.as_str(),
            "{what}"
        );
        assert_eq!(s["evidence"]["key_arn"], run.key.as_str(), "{what}");
        assert_eq!(
            s["principal"],
            run.session.assumed_role_arn.as_str(),
            "{what}"
        );
        assert_eq!(s["subject"], SUBJECT, "{what}");
        assert_eq!(s["verdict"], "trusted", "{what}");
    }
    let ids: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert!(
        ids.contains(&run.image_push.event_id.as_str()),
        "{what}: {ids:?}"
    );
}

#[test]
fn signing_run_is_trusted_from_files_s3_and_lookup_events() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-a"));
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    let bucket = unique("trail-logs");
    let s3_root = tempfile::tempdir().unwrap();
    run.trail.upload(&mut aws, s3_root.path(), &bucket);
    let since = today();
    let key = format!("awskms:///{}", run.key);

    let local = dir.path().to_str().unwrap().to_string();
    let s3 = format!("s3://{bucket}/AWSLogs/");
    for source in [local.as_str(), s3.as_str(), &format!("s3://{bucket}")] {
        let (out, o) = trail_for(
            &["--cloudtrail", source, "--since", &since, "--key", &key],
            &run.image(),
        );
        assert!(o.status.success(), "{source}: {}", stderr(&o));
        check_trusted(&out[0], &run, source);
        // ECR's own push time, from DescribeImages in the emulator.
        assert_eq!(
            out[0]["trail"]["image_pushed_at_source"], "ecr DescribeImages",
            "{source}"
        );
    }

    // LookupEvents: the environment's stand-in answers from the same records.
    let _lookup = LookupEvents::set(&run.trail.records);
    let (out, o) = trail_for(
        &[
            "--cloudtrail",
            "lookup",
            "--since",
            &since,
            "--key",
            &key,
            "--no-describe-images",
        ],
        &run.image(),
    );
    assert!(o.status.success(), "lookup: {}", stderr(&o));
    check_trusted(&out[0], &run, "lookup");
    assert_eq!(
        out[0]["trail"]["image_pushed_at"],
        run.image_push.time.as_str()
    );

    // Only CI of main may sign: allowed by subject, by role, and refused for another repository.
    for (allowed, verdict) in [
        ("repo:acme/app:ref:refs/heads/*", "trusted"),
        (run.session.role_arn.as_str(), "trusted"),
        ("repo:acme/other:*", "untrusted"),
    ] {
        let (out, o) = trail_for(
            &[
                "--cloudtrail",
                &local,
                "--key",
                &key,
                "--allowed-principal",
                allowed,
            ],
            &run.image(),
        );
        assert_eq!(
            out[0]["trail"]["verdict"],
            verdict,
            "{allowed}: {}",
            stderr(&o)
        );
        assert_eq!(o.status.success(), verdict == "trusted");
    }
}

#[test]
fn compromise_splits_before_and_after_and_the_timeline_renders() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-b"));
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    let html = dir.path().join("timeline.html");
    let (out, o) = trail_for(
        &[
            "--cloudtrail",
            dir.path().to_str().unwrap(),
            "--key",
            &run.key,
            "--compromised-at",
            &run.compromise,
            "--timeline",
            html.to_str().unwrap(),
        ],
        &run.image(),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "an untrusted image fails: {}",
        stderr(&o)
    );
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "untrusted", "{t:#}");
    assert_eq!(t["signatures"][0]["compromise"], "before");
    assert_eq!(t["signatures"][0]["verdict"], "trusted");
    assert_eq!(t["signatures"][1]["compromise"], "after");
    assert_eq!(t["signatures"][1]["verdict"], "untrusted");
    assert_eq!(t["signatures"][1]["signed_at"], run.signs[1].time.as_str());
    let reasons = t["reasons"].to_string();
    assert!(reasons.contains("after the compromise"), "{reasons}");
    assert!(stderr(&o).contains("untrusted"), "{}", stderr(&o));

    // The picture: self-contained, and Chromium renders it.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("compromise") && !page.contains("<script"));
    let png = dir.path().join("timeline.png");
    let shot = std::process::Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,560")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium (Debian's `chromium`; `cargo xtask install` installs it)");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    if let Ok(keep) = std::env::var("SIGTRAIL_KEEP_TIMELINE") {
        std::fs::copy(&png, Path::new(&keep).join("timeline.png")).unwrap();
        std::fs::copy(&html, Path::new(&keep).join("timeline.html")).unwrap();
    }
}

#[test]
fn a_kms_sign_record_is_matched_by_its_own_request_id() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-c"));
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    // The record as kms-sign and attach-sig leave it for the second signature.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut rec = run.image();
    rec["payload"] = b64.encode(&run.payloads[1]).into();
    rec["signature"] = run.signatures[1].clone().into();
    rec["key"] = format!("awskms:///{}", run.key).into();
    rec["kms"] = json!({"key_arn": run.key, "request_id": run.signs[1].request_id, "time": run.signs[1].time});
    rec["attached"] = json!({"repository": run.repo, "tag": sig_tag(&run.digest),
                             "manifest_digest": run.sig_pushes[1].answer["digest"], "layers": 2});
    let (out, o) = trail_for(&["--cloudtrail", dir.path().to_str().unwrap()], &rec);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = &out[0]["trail"];
    let sigs = t["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "only the record's own signature: {t:#}");
    assert_eq!(sigs[0]["evidence"]["sign_found_by"], "request_id");
    assert_eq!(
        sigs[0]["evidence"]["sign_request_id"],
        run.signs[1].request_id.as_str()
    );
    assert_eq!(sigs[0]["signed_at"], run.signs[1].time.as_str());
    assert_eq!(
        sigs[0]["evidence"]["signature_push_event_id"],
        run.sig_pushes[1].event_id.as_str()
    );
    // The annotations name the commit and the CI run.
    assert_eq!(
        t["commit"]["sha"],
        "2222222222222222222222222222222222222222"
    );
    assert_eq!(
        t["ci"]["url"],
        "https://github.com/acme/app/actions/runs/4242"
    );
}

#[test]
fn unexplained_signature_and_orphan_sign() {
    let mut aws = Aws::start();
    let alias = unique("alias/trail-d");
    let mut run = signing_run(&mut aws, &alias);
    // Another image: its signature is pushed by the CI session, but the Sign behind it was
    // made by a different session (the pusher's own Signs are used up by its other pushes):
    // unexplained. That other session's
    // Sign explains no signature push: an orphan.
    let (intruder, _) = run.trail.assume(
        &mut aws,
        &format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("other")),
        "repo:evil/fork:ref:refs/heads/x",
    );
    let other_push = run.trail.put_image(
        &mut aws,
        &run.session.clone(),
        &run.repo,
        "v2",
        &image_manifest(&unique("content")),
    );
    let other_digest = other_push.answer["digest"].as_str().unwrap().to_string();
    let p = payload(&format!("{ECR_HOST}/{}", run.repo), &other_digest, &[]);
    let orphan = run.trail.sign(&mut aws, &intruder, &alias, &sha256(&p));
    let sig = orphan.answer["signature"].as_str().unwrap().to_string();
    let session = run.session.clone();
    run.trail.put_image(
        &mut aws,
        &session,
        &run.repo,
        &sig_tag(&other_digest),
        &signature_manifest(&[(p, sig)]),
    );

    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    let src = dir.path().to_str().unwrap();
    let image = json!({"registry": ECR_HOST, "repository": run.repo, "digest": other_digest});
    let (out, o) = trail_for(&["--cloudtrail", src, "--key", &alias], &image);
    assert_eq!(o.status.code(), Some(1));
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "unexplained", "{t:#}");
    assert_eq!(t["signatures"][0]["signed_at"], Value::Null);
    // The CI session's two Sign calls are both candidates, but its three signature pushes
    // cannot all be explained by two: one was signed by someone else, maybe this one.
    assert!(
        t["reasons"][0]
            .as_str()
            .unwrap()
            .contains("pushed more signatures around"),
        "{t:#}"
    );

    // Key usage: the two CI signatures are accounted for; the intruder's Sign is an orphan.
    let since = today();
    let out = sigtrail_tests::run(
        tool("trail-for").args([
            "--key-usage",
            "--key",
            &format!("awskms:///{alias}"),
            "--since",
            &since,
            "--cloudtrail",
            src,
        ]),
        b"",
    );
    let recs = records(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an orphan fails: {}",
        stderr(&out)
    );
    assert_eq!(recs.len(), 3, "{recs:#?}");
    let by_request: Vec<(&str, bool)> = recs
        .iter()
        .map(|r| {
            (
                r["kms"]["request_id"].as_str().unwrap(),
                r["orphan"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(by_request.contains(&(run.signs[0].request_id.as_str(), false)));
    assert!(by_request.contains(&(run.signs[1].request_id.as_str(), false)));
    assert!(by_request.contains(&(orphan.request_id.as_str(), true)));
    let matched = recs
        .iter()
        .find(|r| r["kms"]["request_id"] == run.signs[0].request_id.as_str())
        .unwrap();
    assert_eq!(matched["digest"], run.digest.as_str());
    assert_eq!(
        matched["trail"]["signature_push"]["event_id"],
        run.sig_pushes[0].event_id.as_str()
    );
    let lone = recs.iter().find(|r| r["orphan"] == true).unwrap();
    assert_eq!(lone["kms"]["principal"], intruder.assumed_role_arn.as_str());
    assert_eq!(lone["trail"]["subject"], "repo:evil/fork:ref:refs/heads/x");
    assert!(stderr(&out).contains("orphan"), "{}", stderr(&out));
}

/// The run's records as another account, region, key or repository would log the same calls.
fn decoys(records: &[Value], kind: &str, key: &str, repo: &str) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let text = r.to_string();
            let changed = match kind {
                "account" => text.replace(ACCOUNT, "999999999999"),
                "region" => text.replace(REGION, "eu-west-1"),
                "key" => text.replace(key, &key.replace(&key[key.len() - 12..], "000000000000")),
                "repository" => text.replace(repo, &format!("{repo}-other")),
                _ => unreachable!(),
            };
            serde_json::from_str(&changed).unwrap()
        })
        .collect()
}

/// The run's `Sign` as a key in eu-west-1 would log it, two hours before the run (no signature
/// push is near it, so it is an orphan): the only record of its folder, for the quiet-folder
/// attack. Returns it and its key's ARN.
fn quiet_rogue_sign(run: &Run) -> (Value, String) {
    let sign = run
        .trail
        .records
        .iter()
        .find(|r| r["eventName"] == "Sign")
        .unwrap();
    let mut rogue: Value =
        serde_json::from_str(&sign.to_string().replace(REGION, "eu-west-1")).unwrap();
    rogue["eventID"] = sigtrail_tests::trail::event_id().into();
    rogue["requestID"] = "rogue-request".into();
    rogue["eventTime"] = (chrono::Utc::now() - chrono::Duration::hours(2))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
        .into();
    let key = rogue["resources"][0]["ARN"].as_str().unwrap().to_string();
    assert!(key.contains(":eu-west-1:"), "{key}");
    (rogue, key)
}

#[test]
fn another_account_region_key_or_repository_never_matches() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-e"));
    for kind in ["account", "region", "key", "repository"] {
        let dir = tempfile::tempdir().unwrap();
        write_log_files(
            dir.path(),
            &decoys(&run.trail.records, kind, &run.key, &run.repo),
            kind,
        );
        let (out, o) = trail_for(
            &[
                "--cloudtrail",
                dir.path().to_str().unwrap(),
                "--key",
                &run.key,
                "--no-describe-images",
            ],
            &run.image(),
        );
        assert_eq!(o.status.code(), Some(1), "{kind}");
        let t = &out[0]["trail"];
        assert_eq!(t["verdict"], "unexplained", "{kind}: {t:#}");
        let whats: Vec<&str> = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["what"].as_str())
            .collect();
        assert!(!whats.contains(&"kms_sign"), "{kind}: {whats:?}");
        if kind != "key" {
            assert!(whats.is_empty(), "{kind}: {whats:?}");
        }
        // The decoy trail still holds the (moved) events: they were read, not missed.
        assert_eq!(t["searched"]["events"], run.trail.records.len(), "{kind}");
    }
    // And the genuine records do match.
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    let (out, _) = trail_for(
        &[
            "--cloudtrail",
            dir.path().to_str().unwrap(),
            "--key",
            &run.key,
            "--no-describe-images",
        ],
        &run.image(),
    );
    assert_eq!(out[0]["trail"]["verdict"], "trusted");
}

/// 100 gzip log files of 1,000 unrelated records each, in the day folder CloudTrail uses
/// (delivered a minute apart from 2025-11-10T00:00Z), sealed with the digest chain together
/// with whatever `root` already holds; returns the day folder.
fn noise_trail(root: &Path) -> std::path::PathBuf {
    let day = root.join(format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2025/11/10"));
    for f in 0..100 {
        write_gz(
            &day.join(format!(
                "{ACCOUNT}_CloudTrail_{REGION}_20251110T{:02}{:02}Z_noise{f:03}.json.gz",
                f / 60,
                f % 60
            )),
            &json!({"Records": noise(1000, f)}),
        );
    }
    digests::seal(root, digests::BUCKET);
    day
}

#[test]
fn a_100k_record_trail_finds_the_signing_events_and_a_gap_leaves_nothing_trusted() {
    // How fast is measured by `cargo xtask bench` (bench-trail), not here.
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-f"));
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    let day = noise_trail(dir.path());
    let src = dir.path().to_str().unwrap();
    let args = [
        "--cloudtrail",
        src,
        "--key",
        &run.key,
        "--no-describe-images",
    ];
    let (out, o) = trail_for(&args, &run.image());
    check_trusted(&out[0], &run, "100k");
    assert!(o.status.success(), "{}", stderr(&o));
    let t = &out[0]["trail"];
    assert!(
        t["searched"]["records"].as_u64().unwrap() >= 100_000,
        "{}",
        t["searched"]
    );
    assert!(t.get("warnings").is_none(), "{}", t["warnings"]);

    // One log file cut short: it may have held a Sign or a push, so the same evidence no
    // longer makes the image trusted. The file is named; everything else was still read.
    let bad = day.join(format!(
        "{ACCOUNT}_CloudTrail_{REGION}_20251110T2359Z_truncated.json.gz"
    ));
    std::fs::write(&bad, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03broken").unwrap();
    let (out, o) = trail_for(&args, &run.image());
    let t = &out[0]["trail"];
    let name = bad.file_name().unwrap().to_str().unwrap();
    assert_eq!(t["verdict"], "unexplained", "{t:#}");
    // The evidence is all there; only the verdicts (the image's and each signature's) change.
    let mut as_if_whole = out[0].clone();
    as_if_whole["trail"]["verdict"] = "trusted".into();
    for s in as_if_whole["trail"]["signatures"].as_array_mut().unwrap() {
        assert_eq!(s["verdict"], "unexplained", "each signature too: {s:#}");
        s["verdict"] = "trusted".into();
    }
    check_trusted(&as_if_whole, &run, "100k with a bad file");
    let first_reason = t["reasons"][0].as_str().unwrap_or_default();
    assert!(
        first_reason.contains("gap") && first_reason.contains(name),
        "the reason names the gap: {first_reason}"
    );
    assert!(
        t["warnings"].to_string().contains(name),
        "the malformed file is named: {}",
        t["warnings"]
    );
    assert!(stderr(&o).contains(name), "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // --key-usage over the same trail: both Signs listed, and a last record saying the list may
    // be incomplete (a Sign in the unreadable file would be missing); the run fails.
    let usage = |args: &[&str]| {
        // From before the noise's day folder, so the bad file is in the range.
        let out = sigtrail_tests::run(
            tool("trail-for")
                .args(["--key-usage", "--since", "2025-11-01"])
                .args(args),
            b"",
        );
        (records(&out), out)
    };
    let (recs, o) = usage(&args);
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert!(recs[..2].iter().all(|r| r["orphan"] == false), "{recs:#?}");
    assert_eq!(recs[2]["error"]["kind"], "trail_gap", "{recs:#?}");
    assert!(recs[2]["error"]["message"].as_str().unwrap().contains(name));
    assert_eq!(recs[2]["trail"]["gaps"].as_array().map(Vec::len), Some(1));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    std::fs::remove_file(&bad).unwrap();
    let (recs, o) = usage(&args);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A release session that pushes four images, makes one extra `Sign` it never pushes (a
/// discarded run), signs and pushes three, and after `compromise` signs and pushes the fourth;
/// with `carry_request_ids`, each signature names its `Sign`'s request id.
struct ExtraSign {
    trail: Trail,
    key: String,
    repo: String,
    digests: Vec<String>,
    extra: Call,
    signs: Vec<Call>,
    compromise: String,
}

fn extra_sign(aws: &mut Aws, carry_request_ids: bool) -> ExtraSign {
    let alias = unique("alias/trail-extra");
    let key = kms_create_key("ECC_NIST_P256", &alias);
    let repo = unique("trail-extra");
    let mut trail = Trail::default();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("release"));
    let (session, _) = trail.assume(aws, &role, SUBJECT);
    let digests: Vec<String> = (0..4)
        .map(|n| {
            let m = image_manifest(&unique("content"));
            let push = trail.put_image(aws, &session, &repo, &format!("v{n}"), &m);
            push.answer["digest"].as_str().unwrap().to_string()
        })
        .collect();
    let reference = format!("{ECR_HOST}/{repo}");
    let extra = trail.sign(
        aws,
        &session,
        &key,
        &sha256(&payload(&reference, &digests[0], &[("run", "discarded")])),
    );
    let mut signs = Vec::new();
    let mut sign_and_push = |trail: &mut Trail, aws: &mut Aws, n: usize| {
        let p = payload(&reference, &digests[n], &[]);
        let sign = trail.sign(aws, &session, &key, &sha256(&p));
        let sig = sign.answer["signature"].as_str().unwrap().to_string();
        let id = carry_request_ids.then(|| sign.request_id.clone());
        trail.put_image(
            aws,
            &session,
            &repo,
            &sig_tag(&digests[n]),
            &signature_manifest_with_ids(&[(p, sig, id)]),
        );
        signs.push(sign);
    };
    next_second();
    for n in 0..3 {
        sign_and_push(&mut trail, aws, n);
    }
    let compromise = next_second();
    sign_and_push(&mut trail, aws, 3);
    assert!(signs[2].time < compromise && compromise < signs[3].time);
    ExtraSign {
        trail,
        key,
        repo,
        digests,
        extra,
        signs,
        compromise,
    }
}

/// The release session signs three images after one extra `Sign` whose signature was never
/// pushed; after the compromise the same session signs a fourth. Audited from the registry
/// (check-sig's records: no `kms.request_id`), the fourth image must not come out `trusted`
/// (the old earliest-first pairing gave it the third image's `Sign`), the first three stay
/// trusted; with request ids carried in the signatures every `signed_at` is exact.
#[test]
fn an_extra_sign_in_the_release_session_cannot_make_a_post_compromise_image_trusted() {
    for carry_request_ids in [false, true] {
        let mut aws = Aws::start();
        let ExtraSign {
            trail,
            key,
            repo,
            digests,
            extra,
            signs,
            compromise,
        } = extra_sign(&mut aws, carry_request_ids);

        let dir = tempfile::tempdir().unwrap();
        trail.write(dir.path());
        let input: Vec<String> = digests
            .iter()
            .map(|d| {
                json!({"registry": ECR_HOST, "repository": repo, "digest": d,
                       "verification": {"verified": true, "signatures": [{"verified": true}]}})
                .to_string()
            })
            .collect();
        let out = run(
            tool("trail-for").args([
                "--cloudtrail",
                dir.path().to_str().unwrap(),
                "--key",
                &key,
                "--compromised-at",
                &compromise,
            ]),
            format!("{}\n", input.join("\n")).as_bytes(),
        );
        let recs = records(&out);
        let what = format!("request ids carried: {carry_request_ids}");
        assert_eq!(recs.len(), 4, "{what}: {}", stderr(&out));
        for (n, r) in recs.iter().enumerate() {
            let t = &r["trail"];
            let want = if n < 3 { "trusted" } else { "untrusted" };
            assert_eq!(t["verdict"], want, "{what}: image {n}: {t:#}");
            let s = &t["signatures"][0];
            if carry_request_ids {
                assert_eq!(s["signed_at"], signs[n].time.as_str(), "{what}: {n}");
                assert_eq!(s["evidence"]["sign_found_by"], "request_id", "{what}");
                assert_eq!(
                    s["evidence"]["sign_request_id"],
                    signs[n].request_id.as_str()
                );
            } else {
                // Every Sign of the session within the window could be this one's.
                assert_eq!(s["signed_at"], Value::Null, "{what}: {n}: {s:#}");
                assert_eq!(s["signed_after"], extra.time.as_str(), "{what}: {n}");
                // The extra Sign and those before the push (a Sign in the push's second
                // counts too: CloudTrail times have one-second precision).
                let candidates = s["evidence"]["candidates"].as_u64().unwrap() as usize;
                assert!((n + 2..=5).contains(&candidates), "{what}: {n}: {s:#}");
            }
        }
        let reasons = recs[3]["trail"]["reasons"].to_string();
        assert!(
            reasons.contains("after the compromise"),
            "{what}: {reasons}"
        );
        if !carry_request_ids {
            assert!(
                reasons.contains("5 KMS Sign events could have made it")
                    && reasons.contains(&extra.event_id),
                "{what}: the reasons name the candidates: {reasons}"
            );
        }
        assert_eq!(out.status.code(), Some(1), "{what}");
    }
}

/// trail-for keeps only the events the records in hand can use (`sigtrail::trail::interest`):
/// over the 100,000-record trail, with and without `--key`, for an image record and for
/// `--key-usage`, and with the trail also in the emulator's S3, the records are the same as
/// with every event kept (`--keep-all-events`, the hidden switch), field for field.
#[test]
fn keeping_only_what_the_records_can_use_changes_no_answer() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-g"));
    let dir = tempfile::tempdir().unwrap();
    run.trail.write(dir.path());
    noise_trail(dir.path());
    let bucket = unique("trail-eq").to_lowercase();
    run.trail.upload(&mut aws, dir.path(), &bucket);
    let src = dir.path().to_str().unwrap().to_string();
    let s3 = format!("s3://{bucket}/AWSLogs/{ACCOUNT}/CloudTrail/");
    let other = json!({"registry": ECR_HOST, "repository": "svc-44",
                       "digest": format!("sha256:{:064x}", 5_000_006)});
    let input = format!("{}\n{}\n", run.image(), other);
    let both_ways = |args: &[&str], stdin: &str| {
        let plain = run_tool(args, stdin);
        let mut all_args = args.to_vec();
        all_args.push("--keep-all-events");
        let kept = run_tool(&all_args, stdin);
        assert_eq!(plain.0, kept.0, "{args:?}: the same records either way");
        assert_eq!(plain.1, kept.1, "{args:?}: the same exit status");
        plain
    };
    for source in [src.as_str(), s3.as_str()] {
        let with_key = both_ways(
            &[
                "--cloudtrail",
                source,
                "--key",
                &run.key,
                "--no-describe-images",
            ],
            &input,
        );
        check_trusted(&with_key.0[0], &run, "filtered");
        // A digest nobody signed: no evidence, either way.
        assert_eq!(with_key.0[1]["trail"]["verdict"], "unexplained");
        both_ways(
            &[
                "--cloudtrail",
                source,
                "--no-describe-images",
                "--compromised-at",
                &run.compromise,
            ],
            &input,
        );
        let usage = both_ways(
            &[
                "--key-usage",
                "--key",
                &run.key,
                "--since",
                "2025-11-01",
                "--cloudtrail",
                source,
            ],
            "",
        );
        assert_eq!(usage.0.len(), 2, "{:#?}", usage.0);
    }
}

fn run_tool(args: &[&str], stdin: &str) -> (Vec<Value>, Option<i32>) {
    let out = run(with_keys(&mut tool("trail-for"), args), stdin.as_bytes());
    (records(&out), out.status.code())
}
