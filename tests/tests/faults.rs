//! Faults between the tools and the real servers (`sigtrail_tests::faults::Proxy`): throttling,
//! server errors, resets, stalls, truncated bodies and a registry restart in the middle of a
//! batch. Every record must come out exactly once: done, or carrying an error.

use std::collections::BTreeSet;
use std::time::Duration;

use sigtrail_tests::faults::{push_many, Fault, OwnRegistry, Proxy, Request};
use sigtrail_tests::hostile::{assert_no_panic, kind_of, output_records};
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

#[test]
fn digest_of_batch_survives_ten_percent_faults() {
    let repo = unique("faults/digest-of");
    let images = push_many(&env().registry, &repo, 120);
    let proxy = Proxy::start(&env().registry);
    proxy.set(ten_percent);
    let input: String = images
        .iter()
        .map(|(tag, _)| format!("{}/{repo}:{tag}\n", proxy.addr()))
        .collect();
    let out = run(&mut tool("digest-of"), input.as_bytes());
    let errors = account("digest-of through faults", &out, &images);
    assert!(
        proxy.injected() >= 12,
        "only {} faults injected",
        proxy.injected()
    );
    assert_eq!(
        errors,
        0,
        "retries should absorb one failure in ten: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A body cut short (the connection closed mid-body) is retried like a `5xx`: one GET in ten
/// truncated, every image still resolves to its own digest.
#[test]
fn digest_of_batch_with_truncated_bodies_loses_nothing() {
    let repo = unique("faults/truncate");
    let images = push_many(&env().registry, &repo, 100);
    let proxy = Proxy::start(&env().registry);
    proxy.set(|req| {
        if req.n % 10 == 3 && req.method == "GET" {
            Fault::Truncate
        } else {
            Fault::Pass
        }
    });
    let input: String = images
        .iter()
        .map(|(tag, _)| format!("{}/{repo}:{tag}\n", proxy.addr()))
        .collect();
    let out = run(&mut tool("digest-of"), input.as_bytes());
    let errors = account("digest-of through truncation", &out, &images);
    assert!(
        proxy.injected() >= 10,
        "only {} truncations",
        proxy.injected()
    );
    assert_eq!(
        errors,
        0,
        "a truncated body must be retried: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// The registry is killed (SIGKILL) a second into the batch and started again three seconds
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
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !batch.is_finished(),
        "the batch ended before the registry was killed"
    );
    registry.kill();
    std::thread::sleep(Duration::from_secs(3));
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

/// trail-for's CloudTrail LookupEvents calls through a burst of KMS-style throttling and server
/// errors from the AWS endpoint: absorbed by the SDK's backoff, every record gets its trail.
#[test]
fn trail_for_lookup_absorbs_throttling_bursts() {
    let proxy = Proxy::start(
        env()
            .aws_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    );
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
    let out = run(
        tool("trail-for")
            .args(["--cloudtrail", "lookup"])
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr())),
        input.as_bytes(),
    );
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
    let proxy = Proxy::start(
        env()
            .aws_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    );
    let throttled = std::sync::atomic::AtomicUsize::new(0);
    proxy.set(move |req| {
        let lookup = req
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".LookupEvents"));
        if lookup && throttled.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 5 {
            Fault::kms_throttling()
        } else {
            Fault::Pass
        }
    });
    let input = "{\"image\":\"r.example/app:v1\",\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"}\n";
    let out = run(
        tool("trail-for")
            .args(["--cloudtrail", "lookup"])
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr())),
        input.as_bytes(),
    );
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
    let proxy = Proxy::start(
        env()
            .aws_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/'),
    );
    proxy.set(|req| {
        if req
            .header("x-amz-target")
            .is_some_and(|t| t.ends_with(".LookupEvents"))
        {
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
    let input = "{\"image\":\"r.example/app:v1\",\"registry\":\"r.example\",\"repository\":\"app\",\"digest\":\"sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00\"}\n";
    let out = run(
        tool("trail-for")
            .args(["--cloudtrail", "lookup"])
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr())),
        input.as_bytes(),
    );
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
