//! Faults between the tools and the real servers (`sigtrail_tests::faults::Proxy`): throttling,
//! server errors, resets, stalls, truncated bodies and a registry restart in the middle of a
//! batch. Every record must come out exactly once: done, or carrying an error.

use std::collections::BTreeSet;
use std::time::Duration;

use sha2::Digest as _;
use sigtrail_tests::faults::{
    http_get, pipeline, push_many, signing_pipeline, Fault, Proxy, Request,
};
use sigtrail_tests::hostile::{assert_no_panic, kind_of, output_records};
use sigtrail_tests::own_registry::OwnRegistry;
use sigtrail_tests::{env, run, tool, unique};

/// One request in ten fails, cycling through every kind of fault a client should retry.
fn ten_percent(req: &Request) -> Fault {
    if req.n % 10 != 7 {
        return Fault::Pass;
    }
    match (req.n / 10) % 5 {
        0 => Fault::too_many(1),
        1 => Fault::status(500),
        2 => Fault::status(503),
        3 => Fault::Reset,
        _ => Fault::Stall(Duration::from_secs(2)),
    }
}

/// Checks a batch's output: one record per input, in order, each either carrying the digest it
/// should or an error; returns how many carry an error.
fn account(case: &str, out: &std::process::Output, want: &[(String, String)]) -> usize {
    assert_no_panic(case, out);
    let records = output_records(case, &out.stdout);
    assert_eq!(records.len(), want.len(), "{case}: records in vs out");
    let mut errors = 0;
    let mut digests = BTreeSet::new();
    for (rec, (tag, digest)) in records.iter().zip(want) {
        let image = rec["image"].as_str().unwrap_or_default();
        assert!(
            image.ends_with(&format!(":{tag}")),
            "{case}: order: {image} for {tag}"
        );
        if kind_of(rec) == "ok" {
            assert_eq!(
                rec["digest"].as_str(),
                Some(digest.as_str()),
                "{case}: {tag}"
            );
            assert!(digests.insert(digest.clone()), "{case}: {digest} twice");
        } else {
            errors += 1;
        }
    }
    errors
}

/// `n` images pushed to the registry, resolved by `digest-of` through a proxy answering on
/// `schedule`: every record keeps its own digest, none dropped or carrying an error, and at least
/// `min_faults` faults were really injected.
fn digest_of_survives(
    case: &str,
    n: usize,
    min_faults: usize,
    schedule: impl Fn(&Request) -> Fault + Send + Sync + 'static,
) {
    let repo = unique("faults/digest-of");
    let images = push_many(&env().registry, &repo, n);
    let proxy = Proxy::start(&env().registry);
    proxy.set(schedule);
    let input: String = images
        .iter()
        .map(|(tag, _)| format!("{}/{repo}:{tag}\n", proxy.addr()))
        .collect();
    let out = run(&mut tool("digest-of"), input.as_bytes());
    let errors = account(case, &out, &images);
    assert!(
        proxy.injected() >= min_faults,
        "{case}: only {} faults injected",
        proxy.injected()
    );
    assert_eq!(
        errors,
        0,
        "{case}: retries should absorb the faults: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn digest_of_batch_survives_ten_percent_faults() {
    digest_of_survives("digest-of through faults", 120, 12, ten_percent);
}

/// A body cut short (the connection closed mid-body) is retried like a `5xx`: one GET in ten
/// truncated, every image still resolves to its own digest.
#[test]
fn digest_of_batch_with_truncated_bodies_loses_nothing() {
    digest_of_survives("digest-of through truncation", 100, 10, |req| {
        if req.n % 10 == 3 && req.method == "GET" {
            Fault::Truncate
        } else {
            Fault::Pass
        }
    });
}

/// A registry that truncates every body: after the retries each record carries a `registry`
/// error saying the body was cut short, never a digest (of the half it got or of anything).
#[test]
fn digest_of_with_every_body_truncated_reports_errors_not_digests() {
    let repo = unique("faults/truncate-all");
    let images = push_many(&env().registry, &repo, 3);
    let proxy = Proxy::start(&env().registry);
    proxy.set(|req| {
        if req.method == "GET" {
            Fault::Truncate
        } else {
            Fault::Pass
        }
    });
    let input: String = images
        .iter()
        .map(|(tag, _)| format!("{}/{repo}:{tag}\n", proxy.addr()))
        .chain(
            images
                .iter()
                .map(|(_, d)| format!("{}/{repo}@{d}\n", proxy.addr())),
        )
        .collect();
    let out = run(&mut tool("digest-of"), input.as_bytes());
    let case = "digest-of with every body truncated";
    assert_no_panic(case, &out);
    let records = output_records(case, &out.stdout);
    assert_eq!(records.len(), 6, "{case}");
    for rec in &records {
        assert_eq!(kind_of(rec), "registry", "{case}: {rec:?}");
        let message = rec["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("cut short"), "{case}: {message}");
        if rec["image"].as_str().is_some_and(|i| i.contains(":t")) {
            assert!(
                rec.get("digest").is_none(),
                "{case}: a digest from a truncated body: {rec:?}"
            );
        }
    }
    // Retried: more GETs than records (the first read of each plus its retries).
    let gets = proxy.seen().iter().filter(|s| s.method == "GET").count();
    assert!(gets > 6 * 3, "{case}: only {gets} GETs: not retried");
    assert_eq!(out.status.code(), Some(1), "{case}");
}

/// The registry is killed (SIGKILL) once the batch is under way and started again three seconds
/// later with the same storage; the batch finishes with every image resolved.
#[test]
fn digest_of_batch_survives_a_registry_restart() {
    let mut registry = OwnRegistry::start();
    let repo = unique("faults/restart");
    let images = push_many(&registry.addr, &repo, 100);
    // Slow every request a little so the batch is still running when the registry dies.
    let proxy = Proxy::start(&registry.addr);
    proxy.set(|_| Fault::Stall(Duration::from_millis(60)));
    let input: String = images
        .iter()
        .map(|(tag, _)| format!("{}/{repo}:{tag}\n", proxy.addr()))
        .collect();
    let mut cmd = tool("digest-of");
    cmd.args(["--jobs", "2"]);
    let batch = std::thread::spawn(move || run(&mut cmd, input.as_bytes()));
    // Killed once the batch is under way (ten requests through; the 100 images take at least
    // 3 s at 60 ms each, two at a time), not after a guessed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while proxy.seen().len() < 10 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !batch.is_finished(),
        "the batch ended before the registry was killed"
    );
    registry.kill();
    // Down for three seconds, and until the tool has met it down.
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(3)
        || (proxy.upstream_down() < 1 && down.elapsed() < Duration::from_secs(15))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    registry.restart();
    let out = batch.join().expect("batch thread");
    let errors = account("digest-of across a restart", &out, &images);
    assert!(
        proxy.upstream_down() > 0,
        "no request met the registry down"
    );
    assert_eq!(
        errors,
        0,
        "{} requests met the registry down; stderr: {}",
        proxy.upstream_down(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One digest-of-style record (its image need not exist: trail-for only reads CloudTrail).
const ONE_IMAGE: &str = "{\"image\":\"r.example/app:v1\",\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"}\n";

/// `trail-for --cloudtrail lookup` on `input` with AWS calls through `proxy`.
fn trail_for_lookup(proxy: &Proxy, input: &str) -> std::process::Output {
    run(
        tool("trail-for")
            .args(["--cloudtrail", "lookup"])
            .env("AWS_ENDPOINT_URL", proxy.url()),
        input.as_bytes(),
    )
}

/// trail-for's CloudTrail LookupEvents calls through a burst of KMS-style throttling and server
/// errors from the AWS endpoint: absorbed by the SDK's backoff, every record gets its trail.
#[test]
fn trail_for_lookup_absorbs_throttling_bursts() {
    let proxy = Proxy::in_front_of_aws();
    // Bursts of two (the SDK's default is three attempts): throttled then 503 at the start,
    // then every fifth request throttled.
    proxy.set(|req| match req.n {
        0 => Fault::kms_throttling(),
        1 => Fault::status(503),
        n if n % 5 == 0 => Fault::kms_throttling(),
        _ => Fault::Pass,
    });
    let images = push_many(&env().registry, &unique("faults/trail"), 100);
    let input: String = images
        .iter()
        .map(|(tag, d)| {
            format!(
                "{{\"image\":\"r.example/app:{tag}\",\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"{d}\"}}\n"
            )
        })
        .collect();
    let out = trail_for_lookup(&proxy, &input);
    let errors = account("trail-for through throttling", &out, &images);
    assert_eq!(errors, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(proxy.injected() >= 2, "{:?}", proxy.seen());
    assert!(
        proxy.seen().iter().any(|s| s.fault == "pass"),
        "the lookup never got through"
    );
    for rec in output_records("trail-for", &out.stdout) {
        assert!(rec["trail"]["verdict"].is_string(), "{rec:?}");
    }
}

/// A longer burst of throttling than the SDK's default three attempts ride out: the first five
/// LookupEvents calls are throttled; the trail is still read.
#[test]
fn trail_for_lookup_rides_out_a_long_throttling_burst() {
    let proxy = Proxy::in_front_of_aws();
    proxy.throttle_next("LookupEvents", 5);
    let out = trail_for_lookup(&proxy, ONE_IMAGE);
    let case = "trail-for LookupEvents through 5 throttled calls";
    assert_no_panic(case, &out);
    let records = output_records(case, &out.stdout);
    assert_eq!(records.len(), 1, "{case}");
    assert_eq!(
        kind_of(&records[0]),
        "ok",
        "{case}: {:?} {}",
        records[0],
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy.injected() >= 5,
        "{case}: {} injected",
        proxy.injected()
    );
}

/// When LookupEvents fails for good, the error is one short line saying what failed and what
/// to do, not the SDK's multi-line debug dump.
#[test]
fn trail_for_lookup_failure_is_one_clear_line() {
    let proxy = Proxy::in_front_of_aws();
    proxy.set(|req| {
        if req.operation() == Some("LookupEvents") {
            Fault::Answer {
                status: 400,
                headers: vec![
                    ("x-amzn-ErrorType".into(), "AccessDeniedException".into()),
                    ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ],
                body: std::sync::Arc::from(
                    &br#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::111122223333:user/ci is not authorized to perform: cloudtrail:LookupEvents"}"#[..],
                ),
            }
        } else {
            Fault::Pass
        }
    });
    let out = trail_for_lookup(&proxy, ONE_IMAGE);
    let case = "trail-for LookupEvents refused";
    assert_no_panic(case, &out);
    let records = output_records(case, &out.stdout);
    assert_eq!(records.len(), 1, "{case}");
    assert_eq!(
        kind_of(&records[0]),
        "cloudtrail",
        "{case}: {:?}",
        records[0]
    );
    let message = records[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.len() < 600 && !message.contains('\n'),
        "{case}: a {}-byte message: {message}",
        message.len()
    );
    for want in [
        "LookupEvents",
        "AccessDeniedException",
        "cloudtrail:LookupEvents",
        "check the AWS credentials",
    ] {
        assert!(message.contains(want), "{case}: no {want:?} in {message}");
    }
}

/// Registry faults for the signing and checking batches: one request in ten fails as in
/// [`ten_percent`], and one GET in twenty-five more has its body cut short.
fn registry_faults(req: &Request) -> Fault {
    if req.n % 25 == 12 && req.method == "GET" {
        return Fault::Truncate;
    }
    ten_percent(req)
}

/// The tags of the records that carry an error.
fn failed_tags(out: &std::process::Output) -> Vec<String> {
    output_records("failed", &out.stdout)
        .iter()
        .filter(|r| kind_of(r) != "ok")
        .filter_map(tag_of)
        .collect()
}

/// The tag of a record's `image` (`HOST/REPO:TAG`).
fn tag_of(rec: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    rec["image"]
        .as_str()?
        .rsplit(':')
        .next()
        .map(str::to_string)
}

/// `registry/repo:tag` lines for `tags`, digest-of's input.
fn image_lines(registry: &str, repo: &str, tags: &[String]) -> String {
    tags.iter()
        .map(|tag| format!("{registry}/{repo}:{tag}\n"))
        .collect()
}

/// The signing pipeline once more over the images whose records failed (faults off now).
/// Returns the records that failed again (every record must come out, in order).
fn sign_again(
    case: &str,
    key: &str,
    aws: &str,
    registry: &str,
    repo: &str,
    images: &[(String, String)],
    failed: &[String],
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    if failed.is_empty() {
        return Vec::new();
    }
    let want: Vec<(String, String)> = images
        .iter()
        .filter(|(t, _)| failed.contains(t))
        .cloned()
        .collect();
    let input = image_lines(registry, repo, failed);
    let (out, _) = pipeline(signing_pipeline(key, aws), input.as_bytes());
    account(case, &out, &want);
    output_records(case, &out.stdout)
        .into_iter()
        .filter(|r| kind_of(r) != "ok")
        .collect()
}

/// `check` (a check-sig command) over records naming each image and its digest: every image
/// verifies, with exactly one signature; an image in `resigned` (its record failed, and a re-run
/// signed it again) with one or two, as the failed attempt's write may have been stored before
/// its answer was lost, and the re-run makes a new signature.
fn verified_once(
    case: &str,
    mut check: std::process::Command,
    registry: &str,
    repo: &str,
    images: &[(String, String)],
    resigned: &[String],
) {
    let records: String = images
        .iter()
        .map(|(tag, digest)| {
            format!(
                "{}\n",
                serde_json::json!({"image": format!("{registry}/{repo}:{tag}"), "digest": digest})
            )
        })
        .collect();
    let out = run(&mut check, records.as_bytes());
    assert_eq!(
        account(case, &out, images),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (rec, (tag, _)) in output_records(case, &out.stdout).iter().zip(images) {
        let sigs = rec["verification"]["signatures"]
            .as_array()
            .map_or(0, Vec::len);
        if resigned.contains(tag) {
            assert!((1..=2).contains(&sigs), "{case}: {tag} re-signed: {rec:?}");
        } else {
            assert_eq!(sigs, 1, "{case}: one signature each: {rec:?}");
        }
    }
}

/// 60 images through `digest-of | payload-for | kms-sign | attach-sig` with the registry and
/// KMS both behind fault proxies (about 10% of requests fail: 429 with Retry-After, 500, 503,
/// resets, stalls, truncated bodies): every record comes out once, in order, signed or with an
/// error; the failed ones, run again once the faults stop, are signed; then every image verifies
/// with check-sig with exactly one signature. Then a check-sig batch through the same faults:
/// every record verified or with an error, and the failed ones verify on a clean re-run.
#[test]
fn signing_pipeline_and_check_sig_batches_survive_ten_percent_faults() {
    let repo = unique("faults/sign");
    let images = push_many(&env().registry, &repo, 60);
    let alias = unique("faults-sign");
    sigtrail_tests::kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    let registry = Proxy::start(&env().registry);
    let kms = Proxy::in_front_of_aws();
    let kms_url = kms.url();
    let all: Vec<String> = images.iter().map(|(t, _)| t.clone()).collect();
    // check-sig reads records naming the image and its digest (as digest-of writes them).
    let records = |tags: &[String]| -> String {
        images
            .iter()
            .filter(|(t, _)| tags.contains(t))
            .map(|(tag, digest)| {
                format!(
                    "{}\n",
                    serde_json::json!({
                        "image": format!("{}/{repo}:{tag}", registry.addr()),
                        "digest": digest,
                    })
                )
            })
            .collect()
    };

    // Sign through faults.
    registry.set(registry_faults);
    kms.set(sigtrail_tests::faults::kms_ten_percent);
    let (out, codes) = pipeline(
        signing_pipeline(&key, &kms_url),
        image_lines(&registry.addr(), &repo, &all).as_bytes(),
    );
    assert!(
        codes.iter().all(|c| matches!(c, Some(0 | 1))),
        "stage exit codes {codes:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = account("signing pipeline through faults", &out, &images);
    let failed = failed_tags(&out);
    assert_eq!(failed.len(), errors);
    let (reg_faults, kms_faults) = (registry.injected(), kms.injected());
    assert!(
        reg_faults >= 20 && kms_faults >= 5,
        "faults injected: registry {reg_faults}, kms {kms_faults}"
    );
    eprintln!(
        "signing: {} records, {errors} errors; {reg_faults} registry faults in {} requests, \
         {kms_faults} KMS faults in {} requests",
        images.len(),
        registry.seen().len(),
        kms.seen().len()
    );

    // The failed ones again, faults off.
    registry.set(|_| Fault::Pass);
    kms.set(|_| Fault::Pass);
    let reg = registry.addr();
    let again = sign_again(
        "signing re-run",
        &key,
        &kms_url,
        &reg,
        &repo,
        &images,
        &failed,
    );
    assert!(again.is_empty(), "signed again, still failing: {again:?}");

    // Every image verifies, with one signature.
    let check = || {
        let mut cmd = tool("check-sig");
        cmd.args(["--key", &key]).env("AWS_ENDPOINT_URL", &kms_url);
        cmd
    };
    verified_once(
        "check-sig after signing",
        check(),
        &reg,
        &repo,
        &images,
        &failed,
    );

    // check-sig through faults.
    let before = (registry.injected(), kms.injected());
    registry.set(registry_faults);
    kms.set(sigtrail_tests::faults::kms_ten_percent);
    let out = run(&mut check(), records(&all).as_bytes());
    let errors = account("check-sig through faults", &out, &images);
    let failed = failed_tags(&out);
    assert_eq!(failed.len(), errors);
    assert!(
        registry.injected() - before.0 >= 10,
        "only {} registry faults in the check-sig batch",
        registry.injected() - before.0
    );
    eprintln!(
        "check-sig: {} records, {errors} not verified; {} registry faults",
        images.len(),
        registry.injected() - before.0
    );
    registry.set(|_| Fault::Pass);
    kms.set(|_| Fault::Pass);
    if !failed.is_empty() {
        let want: Vec<(String, String)> = images
            .iter()
            .filter(|(t, _)| failed.contains(t))
            .cloned()
            .collect();
        let out = run(&mut check(), records(&failed).as_bytes());
        assert_eq!(account("check-sig re-run", &out, &want), 0);
    }
}

/// The signing pipeline with the registry killed (SIGKILL) in the middle of the batch and started
/// again three seconds later on the same storage: every record comes out once, signed or with an
/// error; the failed ones signed by a re-run; then every image verifies (see [`verified_once`]).
#[test]
fn signing_pipeline_survives_a_registry_restart() {
    let mut own = OwnRegistry::start();
    let repo = unique("faults/sign-restart");
    let images = push_many(&own.addr, &repo, 40);
    let alias = unique("faults-sign-restart");
    sigtrail_tests::kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    // Slow every request a little so the batch is still running when the registry dies.
    let proxy = Proxy::start(&own.addr);
    proxy.set(|_| Fault::Stall(Duration::from_millis(40)));
    let registry = proxy.addr();
    let all: Vec<String> = images.iter().map(|(t, _)| t.clone()).collect();
    let aws = env().aws_endpoint.clone();
    let input = image_lines(&registry, &repo, &all);
    let stages = signing_pipeline(&key, &aws);
    let batch = std::thread::spawn(move || pipeline(stages, input.as_bytes()));
    // Killed once attach-sig is writing (its third blob upload), mid-batch.
    let writing = || proxy.seen().iter().filter(|r| r.method == "POST").count() >= 3;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !writing() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(writing(), "attach-sig never started writing");
    assert!(
        !batch.is_finished(),
        "the batch ended before the registry was killed"
    );
    own.kill();
    // Down for three seconds, and until the tools have met it down a few times (on a loaded
    // machine attach-sig may be waiting out its settle delay for a while).
    let down = std::time::Instant::now();
    while down.elapsed() < Duration::from_secs(3)
        || (proxy.upstream_down() < 5 && down.elapsed() < Duration::from_secs(15))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    own.restart();
    let (out, codes) = batch.join().expect("pipeline thread");
    assert!(
        codes.iter().all(|c| matches!(c, Some(0 | 1))),
        "stage exit codes {codes:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy.upstream_down() > 0,
        "no request met the registry down"
    );
    let errors = account("signing across a restart", &out, &images);
    let failed = failed_tags(&out);
    assert_eq!(failed.len(), errors);
    eprintln!(
        "signing across a restart: {} records, {errors} errors, {} requests met the registry down",
        images.len(),
        proxy.upstream_down()
    );
    // A write cut by the SIGKILL can leave docker-registry's filesystem storage with a `.sig`
    // tag it cannot read back (it answers 500 for it from then on). attach-sig must then
    // refuse that image with the registry's answer, never overwrite the tag; anything else
    // must sign.
    let again = sign_again(
        "signing re-run after the restart",
        &key,
        &aws,
        &registry,
        &repo,
        &images,
        &failed,
    );
    let mut broken = Vec::new();
    for rec in &again {
        let message = rec["error"]["message"].as_str().unwrap_or_default();
        let digest = rec["digest"].as_str().unwrap_or_default();
        let sig_tag = digest.replace(':', "-") + ".sig";
        let (status, _) = http_get(&own.addr, &format!("/v2/{repo}/manifests/{sig_tag}"));
        assert!(
            status == 500 && message.contains(&sig_tag) && message.contains("500"),
            "a re-signed image failed other than on a .sig tag the registry cannot read \
             (registry says {status}): {rec:?}"
        );
        eprintln!(
            "the registry lost {sig_tag} to the kill (answers 500); attach-sig said: {message}"
        );
        broken.extend(tag_of(rec));
    }
    let images: Vec<(String, String)> = images
        .into_iter()
        .filter(|(t, _)| !broken.contains(t))
        .collect();
    let mut check = tool("check-sig");
    check.args(["--key", &key]);
    verified_once(
        "check-sig after the restart",
        check,
        &registry,
        &repo,
        &images,
        &failed,
    );
}

/// Eight attach-sig processes at once, each on its own ten images of one repository, five
/// rounds (a new signature per image each round): after each round every image's signature
/// manifest is valid and holds exactly the signatures of the rounds so far.
#[test]
fn concurrent_attach_sig_on_different_images_of_one_repository_loses_nothing() {
    use base64::Engine;
    let reg = &env().registry;
    let repo = unique("faults/att-many");
    let images = push_many(reg, &repo, 80);
    let refs: String = images
        .iter()
        .map(|(tag, _)| format!("{reg}/{repo}:{tag}\n"))
        .collect();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // Per image: the payload digests and signatures attached so far.
    let mut expected: Vec<Vec<(String, String)>> = vec![Vec::new(); images.len()];
    for round in 0..5 {
        let mut payload_for = tool("payload-for");
        payload_for.args(["-a", &format!("round={round}")]);
        let (out, _) = pipeline(vec![tool("digest-of"), payload_for], refs.as_bytes());
        let mut records = output_records("payloads", &out.stdout);
        assert_eq!(records.len(), images.len());
        for (i, rec) in records.iter_mut().enumerate() {
            let signature = b64(format!("signature {round} of image {i}").as_bytes());
            let payload = base64::engine::general_purpose::STANDARD
                .decode(rec["payload"].as_str().expect("payload"))
                .expect("base64 payload");
            let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&payload)));
            expected[i].push((digest, signature.clone()));
            rec.insert("signature".into(), signature.into());
        }
        let children: Vec<_> = records
            .chunks(10)
            .map(|chunk| {
                let input: String = chunk
                    .iter()
                    .map(|r| format!("{}\n", serde_json::Value::Object(r.clone())))
                    .collect();
                let mut cmd = tool("attach-sig");
                cmd.env_remove("COSIGN_REPOSITORY");
                std::thread::spawn(move || run(&mut cmd, input.as_bytes()))
            })
            .collect();
        for child in children {
            let out = child.join().expect("attach-sig thread");
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(output_records("attach-sig", &out.stdout).len(), 10);
        }
        for (i, (_, digest)) in images.iter().enumerate() {
            let tag = format!("sha256-{}.sig", &digest[7..]);
            let (status, body) = http_get(reg, &format!("/v2/{repo}/manifests/{tag}"));
            assert_eq!(
                status, 200,
                "round {round}: image {i} has no signature manifest"
            );
            let m: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("round {round}: image {i}: corrupt manifest: {e}"));
            assert_eq!(m["schemaVersion"], 2, "round {round}: image {i}: {m}");
            let mut got: Vec<(String, String)> = m["layers"]
                .as_array()
                .unwrap_or_else(|| panic!("round {round}: image {i}: no layers: {m}"))
                .iter()
                .map(|l| {
                    (
                        l["digest"].as_str().unwrap_or_default().to_string(),
                        l["annotations"]["dev.cosignproject.cosign/signature"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect();
            got.sort();
            let mut want = expected[i].clone();
            want.sort();
            assert_eq!(got, want, "round {round}: image {i}: signatures");
            let config = m["config"]["digest"].as_str().unwrap_or_default();
            let (status, _) = http_get(reg, &format!("/v2/{repo}/blobs/{config}"));
            assert_eq!(
                status, 200,
                "round {round}: image {i}: config blob {config}"
            );
        }
    }
}

/// Four kms-sign processes at once (8 jobs each) through a KMS endpoint that throttles one call
/// in four: all 100 records are signed, and every signature verifies.
#[test]
fn concurrent_kms_sign_through_throttling_signs_everything() {
    let alias = unique("faults-kms-many");
    sigtrail_tests::kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///alias/{alias}");
    let kms = Proxy::in_front_of_aws();
    kms.set(|req| {
        if req.n % 4 == 1 {
            Fault::kms_throttling()
        } else {
            Fault::Pass
        }
    });
    let kms_url = kms.url();
    let digest = |i: usize| format!("sha256:{:064x}", i + 1);
    let children: Vec<_> = (0..4)
        .map(|p| {
            let input: String = (0..25)
                .map(|i| {
                    format!(
                        "{{\"registry\":\"r.example\",\"repository\":\"app{p}\",\"digest\":\"{}\"}}\n",
                        digest(p * 25 + i)
                    )
                })
                .collect();
            let key = key.clone();
            let kms_url = kms_url.clone();
            std::thread::spawn(move || {
                let mut sign = tool("kms-sign");
                sign.args(["--key", &key, "--jobs", "8"])
                    .env("AWS_ENDPOINT_URL", &kms_url);
                pipeline(vec![tool("payload-for"), sign], input.as_bytes()).0
            })
        })
        .collect();
    let mut signed = Vec::new();
    for (p, child) in children.into_iter().enumerate() {
        let out = child.join().expect("kms-sign thread");
        assert!(
            out.status.success(),
            "process {p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records = output_records("kms-sign", &out.stdout);
        assert_eq!(records.len(), 25, "process {p}");
        for (i, rec) in records.iter().enumerate() {
            assert_eq!(rec["digest"].as_str(), Some(digest(p * 25 + i).as_str()));
        }
        signed.extend(out.stdout);
    }
    assert!(
        kms.injected() >= 25,
        "only {} throttled calls",
        kms.injected()
    );
    let out = run(
        tool("check-sig").args(["--offline", "--key", &key]),
        &signed,
    );
    let records = output_records("check-sig", &out.stdout);
    assert_eq!(records.len(), 100);
    assert!(
        records.iter().all(|r| kind_of(r) == "ok"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
