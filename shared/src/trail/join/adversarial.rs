//! The attacker's suite: what someone holding the key (and maybe a CI session) would try to get a
//! `trusted` verdict, and the benign accidents that look like it, each with its expected verdict;
//! plus a property test over random interleavings of one session's `Sign`s and pushes.
//!
//! The attacker model (DESIGN.md): after the compromise time T they can call `Sign` with the key
//! through a stolen CI session or a principal of their own, push to the registry and copy
//! signature manifests between images. They cannot edit CloudTrail.

use super::*;
use crate::trail::event::{Detail, FailedSign, KmsSign, PutImage, SigLayer};
use crate::trail::source::Range;
use crate::trail::usage::key_usage;
use serde_json::Value;

const ACCT: &str = "111122223333";
const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_KEY: &str =
    "arn:aws:kms:us-east-1:111122223333:key/99999999-12ab-34cd-56ef-1234567890ab";
/// The release job's role session, and a second one of the same role.
const RELEASE: &str = "ASIARELEASE";
const RELEASE2: &str = "ASIARELEASE2";
/// The attacker's own principal.
const MALLORY: &str = "AKIAMALLORY";

fn t(sec: i64) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::seconds(sec),
    )
}

fn who(key: &str) -> Principal {
    let arn = match key {
        MALLORY => "arn:aws:iam::111122223333:user/mallory".to_string(),
        k => format!("arn:aws:sts::111122223333:assumed-role/release/{k}"),
    };
    Principal {
        arn: Some(arn),
        access_key_id: Some(key.into()),
        ..Principal::default()
    }
}

fn event(id: &str, sec: i64, caller: &str, detail: Detail) -> Event {
    let (source, name) = match &detail {
        Detail::Sign(_) | Detail::FailedSign(_) => ("kms.amazonaws.com", "Sign"),
        Detail::PutImage(_) => ("ecr.amazonaws.com", "PutImage"),
        Detail::AssumeRole(_) => ("sts.amazonaws.com", "AssumeRole"),
    };
    Event {
        id: Some(id.into()),
        time: t(sec),
        source: source.into(),
        name: name.into(),
        region: Some("us-east-1".into()),
        account: Some(ACCT.into()),
        request_id: Some(format!("req-{id}")),
        principal: who(caller),
        detail,
        file: None,
    }
}

fn kms(key: &str) -> KmsSign {
    KmsSign {
        key_id: Some(key.into()),
        key_arn: Some(key.into()),
        message_type: Some("DIGEST".into()),
        signing_algorithm: Some("ECDSA_SHA_256".into()),
    }
}

fn sign(id: &str, sec: i64, caller: &str) -> Event {
    event(id, sec, caller, Detail::Sign(kms(KEY)))
}

fn failed(id: &str, sec: i64, caller: &str, code: &str) -> Event {
    event(
        id,
        sec,
        caller,
        Detail::FailedSign(FailedSign {
            sign: kms(KEY),
            error_code: code.into(),
            error_message: None,
        }),
    )
}

fn digest_of(image: char) -> String {
    format!("sha256:{}", image.to_string().repeat(64))
}

/// A `.sig` push for `image` whose logged manifest has `layers`: (signature, claimed request id).
fn push(id: &str, sec: i64, caller: &str, image: char, layers: &[(&str, Option<&str>)]) -> Event {
    event(
        id,
        sec,
        caller,
        Detail::PutImage(PutImage {
            bundle_subject: None,
            repository: Some("app".into()),
            registry_id: Some(ACCT.into()),
            tag: event::sig_tag(&digest_of(image)),
            digest: Some(format!("sha256:{}", hex(id))),
            signature_layers: Some(
                layers
                    .iter()
                    .map(|(sig, rid)| SigLayer {
                        digest: format!("sha256:{}", hex(sig)),
                        signature: Some(sig.to_string()),
                        request_id: rid.map(str::to_string),
                    })
                    .collect(),
            ),
        }),
    )
}

fn hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

fn policy(compromised_at: i64) -> Policy {
    Policy {
        compromised_at: t(compromised_at),
        keys: vec![KeySpec::parse(KEY).unwrap()],
        ..Policy::default()
    }
}

/// An image as audited from the registry: check-sig accepted its layer 0 (no request id seen).
fn from_registry(image: char) -> Image {
    Image {
        digest: digest_of(image),
        repository: "app".into(),
        account: Some(ACCT.into()),
        region: Some("us-east-1".into()),
        signature_repository: "app".into(),
        verified: Some(vec![Claimed {
            index: Some(0),
            ..Claimed::default()
        }]),
        ..Image::default()
    }
}

fn verdict_of(events: &[Event], p: &Policy, image: char) -> (Verdict, Value, Vec<String>) {
    let ix = Index::build(events.to_vec(), &p.keys, Duration::minutes(15));
    let j = join(&ix, p, &from_registry(image));
    let sig = j
        .signatures
        .first()
        .map(|s| signature_json(&ix, s, p.compromised_at))
        .unwrap_or(Value::Null);
    (j.verdict, sig, j.reasons)
}

/// The case: the release session makes one extra `Sign` 20 s before signing three
/// images; after the compromise (T = 100 s) the same session signs and pushes a fourth.
fn release_with_extra_sign(with_request_ids: bool) -> Vec<Event> {
    let rid = |s: &'static str| with_request_ids.then_some(s);
    vec![
        sign("x", 0, RELEASE),
        sign("s1", 20, RELEASE),
        push("p1", 21, RELEASE, 'a', &[("sig-a", rid("req-s1"))]),
        sign("s2", 22, RELEASE),
        push("p2", 23, RELEASE, 'b', &[("sig-b", rid("req-s2"))]),
        sign("s3", 24, RELEASE),
        push("p3", 25, RELEASE, 'c', &[("sig-c", rid("req-s3"))]),
        sign("s4", 120, RELEASE),
        push("p4", 121, RELEASE, 'd', &[("sig-d", rid("req-s4"))]),
    ]
}

#[test]
fn an_extra_sign_in_the_session_never_makes_a_post_compromise_image_trusted() {
    let events = release_with_extra_sign(false);
    let p = policy(100);
    for image in ['a', 'b', 'c'] {
        let (v, sig, reasons) = verdict_of(&events, &p, image);
        assert_eq!(v, Verdict::Trusted, "{image}: {reasons:?}");
        assert_eq!(sig["compromise"], "before", "{image}");
        assert_eq!(
            sig["signed_after"], "2025-11-10T12:00:00Z",
            "{image}: {sig}"
        );
    }
    let (v, sig, reasons) = verdict_of(&events, &p, 'd');
    assert_eq!(v, Verdict::Untrusted, "{reasons:?}");
    assert_eq!(sig["signed_at"], Value::Null, "{sig}");
    assert_eq!(sig["signed_after"], "2025-11-10T12:00:00Z");
    assert_eq!(sig["signed_before"], "2025-11-10T12:02:00Z");
    assert_eq!(sig["compromise"], "unknown");
    assert_eq!(sig["evidence"]["candidates"], 5);
    let all = reasons.join("\n");
    assert!(
        all.contains("5 KMS Sign events could have made it"),
        "{all}"
    );
    assert!(
        all.contains("could have been made by KMS Sign s4 at 2025-11-10T12:02:00Z, at or after the compromise"),
        "{all}"
    );
}

#[test]
fn request_ids_carried_in_the_signature_give_exact_times_and_the_same_verdicts() {
    let events = release_with_extra_sign(true);
    let p = policy(100);
    let times = [
        ('a', "12:00:20"),
        ('b', "12:00:22"),
        ('c', "12:00:24"),
        ('d', "12:02:00"),
    ];
    for (image, time) in times {
        let (v, sig, reasons) = verdict_of(&events, &p, image);
        let want = if image == 'd' {
            Verdict::Untrusted
        } else {
            Verdict::Trusted
        };
        assert_eq!(v, want, "{image}: {reasons:?}");
        assert_eq!(sig["signed_at"], format!("2025-11-10T{time}Z"), "{image}");
        assert_eq!(sig["evidence"]["sign_found_by"], "request_id", "{image}");
        assert_eq!(sig["evidence"]["claim_holds"], true, "{image}");
        assert!(sig.get("signed_after").is_none(), "{image}: {sig}");
    }
    // The orphan is exactly the extra Sign: the claims pair exactly.
    let ix = Index::build(events, &p.keys, Duration::minutes(15));
    let usage = key_usage(&ix, &p.keys, &Range::default());
    let orphans: Vec<&Value> = usage
        .iter()
        .filter(|r| r.get("orphan") == Some(&Value::Bool(true)))
        .map(|r| &r["kms"]["event_id"])
        .collect();
    assert_eq!(orphans, [&Value::from("x")]);
}

#[test]
fn forged_request_ids_are_caught() {
    let p = policy(100);
    let base = |claim: Option<&'static str>| {
        vec![
            sign("x", 80, RELEASE),
            sign("s1", 85, RELEASE),
            push("p1", 86, RELEASE, 'a', &[("sig-a", Some("req-s1"))]),
            sign("evil", 110, RELEASE),
            event("other-key", 111, RELEASE, Detail::Sign(kms(OTHER_KEY))),
            push("p9", 112, RELEASE, '9', &[("sig-z", claim)]),
        ]
    };
    // Another image's request id: both signatures claim s1, so both are tainted.
    let events = base(Some("req-s1"));
    let (v, sig, reasons) = verdict_of(&events, &p, '9');
    assert_eq!(v, Verdict::Untrusted, "{reasons:?}");
    assert_eq!(sig["evidence"]["claim_holds"], false);
    assert!(
        reasons.iter().any(|r| r.contains("claims too")),
        "{reasons:?}"
    );
    let (v, _, reasons) = verdict_of(&events, &p, 'a');
    assert_eq!(
        v,
        Verdict::Unexplained,
        "the legitimate one is tainted too: {reasons:?}"
    );
    // A request id no Sign has.
    let (v, _, reasons) = verdict_of(&base(Some("req-nothing")), &p, '9');
    assert_eq!(v, Verdict::Untrusted, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("no KMS Sign event has the request id")));
    // A Sign by another key.
    let (v, _, reasons) = verdict_of(&base(Some("req-other-key")), &p, '9');
    assert_eq!(v, Verdict::Untrusted, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not a key named")),
        "{reasons:?}"
    );
    // An uncontested pre-compromise Sign of the same session (the orphan x): the claim holds,
    // but "evil" could equally be its Sign, so it is not trusted.
    let (v, sig, reasons) = verdict_of(&base(Some("req-x")), &p, '9');
    assert_eq!(v, Verdict::Untrusted, "{reasons:?}");
    assert_eq!(
        sig["signed_at"], "2025-11-10T12:01:20Z",
        "the claim checked out"
    );
    assert!(
        reasons.iter().any(|r| r.contains("KMS Sign evil")),
        "{reasons:?}"
    );
    // A claimed Sign made after the push, or by another caller, does not hold.
    let events = vec![
        sign("s1", 10, MALLORY),
        sign("s2", 11, RELEASE),
        push("p1", 12, RELEASE, 'a', &[("sig-a", Some("req-s1"))]),
        sign("s3", 13, RELEASE),
    ];
    let (v, _, reasons) = verdict_of(&events, &p, 'a');
    assert_eq!(v, Verdict::Unexplained, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not by")), "{reasons:?}");
    let mut late = events.clone();
    if let Detail::PutImage(put) = &mut late[2].detail {
        put.signature_layers.as_mut().unwrap()[0].request_id = Some("req-s3".into());
    }
    let (v, _, reasons) = verdict_of(&late, &p, 'a');
    assert_eq!(v, Verdict::Unexplained, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("after the push")),
        "{reasons:?}"
    );
}

/// One row of the adversarial table: a trail, the compromise time, and the verdict per image.
struct Case {
    name: &'static str,
    events: Vec<Event>,
    compromised_at: i64,
    expect: &'static [(char, Verdict)],
}

fn cases() -> Vec<Case> {
    use Verdict::*;
    let throttled = |id: &str, sec: i64| failed(id, sec, RELEASE, "ThrottlingException");
    vec![
        Case {
            name: "an extra Sign in the release session before the batch",
            events: release_with_extra_sign(false),
            compromised_at: 100,
            expect: &[
                ('a', Trusted),
                ('b', Trusted),
                ('c', Trusted),
                ('d', Untrusted),
            ],
        },
        Case {
            name: "an extra Sign in the release session after the batch, before T",
            events: vec![
                sign("s1", 0, RELEASE),
                push("p1", 1, RELEASE, 'a', &[("sig-a", None)]),
                sign("extra", 5, RELEASE),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted)],
        },
        Case {
            name: "an extra Sign in the release session after the batch, after T",
            events: vec![
                sign("s1", 0, RELEASE),
                push("p1", 1, RELEASE, 'a', &[("sig-a", None)]),
                sign("extra", 105, RELEASE),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted)],
        },
        Case {
            name: "two release jobs interleaved in the same second",
            events: vec![
                sign("a1", 10, RELEASE),
                sign("b1", 10, RELEASE2),
                push("pa", 10, RELEASE, 'a', &[("sig-a", None)]),
                push("pb", 10, RELEASE2, 'b', &[("sig-b", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted), ('b', Trusted)],
        },
        Case {
            name: "two release jobs interleaved, one Sign after T",
            events: vec![
                sign("a1", 98, RELEASE),
                sign("b1", 100, RELEASE2),
                push("pa", 101, RELEASE, 'a', &[("sig-a", None)]),
                push("pb", 101, RELEASE2, 'b', &[("sig-b", None)]),
            ],
            compromised_at: 100,
            // a's signature could have been made by b1 and pushed by a's session.
            expect: &[('a', Untrusted), ('b', Untrusted)],
        },
        Case {
            name: "a signature pushed again later, after T, without a Sign",
            events: vec![
                sign("s1", 0, RELEASE),
                push("p1", 1, RELEASE, 'a', &[("sig-a", None)]),
                push("again", 500, MALLORY, 'a', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted)],
        },
        Case {
            name: "a signature copied onto another image after T",
            events: vec![
                sign("s1", 0, RELEASE),
                push("p1", 1, RELEASE, 'a', &[("sig-a", None)]),
                push("copy", 500, MALLORY, 'b', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted), ('b', Unexplained)],
        },
        Case {
            name: "a push without a Sign",
            events: vec![push("p1", 200, RELEASE, 'a', &[("sig-a", None)])],
            compromised_at: 100,
            expect: &[('a', Unexplained)],
        },
        Case {
            name: "a Sign by another principal seconds before a push, after T",
            events: vec![
                sign("orphan", 95, RELEASE),
                sign("mallory", 101, MALLORY),
                push("p1", 103, RELEASE, 'a', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Untrusted)],
        },
        Case {
            name: "a Sign by another principal seconds before a push, before T",
            events: vec![
                sign("s1", 10, RELEASE),
                sign("other", 11, MALLORY),
                push("p1", 12, RELEASE, 'a', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted)],
        },
        Case {
            name: "the release session pushes one signature more than it signed",
            events: vec![
                sign("s1", 10, RELEASE),
                push("p1", 11, RELEASE, 'a', &[("sig-a", None)]),
                sign("mallory", 20, MALLORY),
                push("p2", 21, RELEASE, 'b', &[("sig-b", None)]),
            ],
            compromised_at: 100,
            // s1 can explain only one of the two: either could be the one signed elsewhere.
            expect: &[('a', Unexplained), ('b', Unexplained)],
        },
        Case {
            name: "only another principal signed before the push",
            events: vec![
                sign("other", 11, MALLORY),
                push("p1", 12, RELEASE, 'a', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Unexplained)],
        },
        Case {
            name: "throttled and denied attempts around a release",
            events: vec![
                throttled("t1", 9),
                throttled("t2", 10),
                sign("s1", 11, RELEASE),
                failed("d1", 11, MALLORY, "AccessDenied"),
                push("p1", 12, RELEASE, 'a', &[("sig-a", None)]),
                failed("d2", 1005, MALLORY, "AccessDenied"),
                throttled("t3", 1006),
                push("p2", 1007, RELEASE, 'b', &[("sig-b", None)]),
            ],
            compromised_at: 100,
            // Attempts signed nothing: b's push has no Sign at all.
            expect: &[('a', Trusted), ('b', Unexplained)],
        },
        Case {
            name: "the compromise inside a release job, between Sign and push",
            events: vec![
                sign("s1", 99, RELEASE),
                push("p1", 101, RELEASE, 'a', &[("sig-a", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted)],
        },
        Case {
            name: "the compromise inside a release job, between two Signs",
            events: vec![
                sign("s1", 99, RELEASE),
                sign("s2", 100, RELEASE),
                push("p1", 101, RELEASE, 'a', &[("sig-a", None)]),
                push("p2", 102, RELEASE, 'b', &[("sig-b", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Untrusted), ('b', Untrusted)],
        },
        Case {
            name: "a session that lives across T",
            events: vec![
                sign("s1", 40, RELEASE),
                push("p1", 41, RELEASE, 'a', &[("sig-a", None)]),
                sign("s2", 160, RELEASE),
                push("p2", 161, RELEASE, 'b', &[("sig-b", None)]),
                sign("s3", 2000, RELEASE),
                push("p3", 2001, RELEASE, 'c', &[("sig-c", None)]),
            ],
            compromised_at: 100,
            expect: &[('a', Trusted), ('b', Untrusted), ('c', Untrusted)],
        },
    ]
}

#[test]
fn the_adversarial_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let p = policy(case.compromised_at);
        for &(image, want) in case.expect {
            let (got, _, reasons) = verdict_of(&case.events, &p, image);
            if got != want {
                failures.push(format!(
                    "{}: image {image}: {} instead of {}: {reasons:?}",
                    case.name,
                    got.as_str(),
                    want.as_str()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn failed_attempts_change_no_verdict_and_are_listed_apart_from_orphans() {
    let case = cases()
        .into_iter()
        .find(|c| c.name.starts_with("throttled"))
        .unwrap();
    let without: Vec<Event> = case
        .events
        .iter()
        .filter(|e| e.as_failed_sign().is_none())
        .cloned()
        .collect();
    let p = policy(case.compromised_at);
    for image in ['a', 'b'] {
        assert_eq!(
            verdict_of(&case.events, &p, image),
            verdict_of(&without, &p, image),
            "{image}"
        );
    }
    let ix = Index::build(case.events.clone(), &p.keys, Duration::minutes(15));
    let usage: Vec<Value> = key_usage(&ix, &p.keys, &Range::default())
        .into_iter()
        .map(Value::Object)
        .collect();
    let kinds: Vec<(String, String)> = usage
        .iter()
        .map(|r| {
            let kind = match (&r["orphan"], &r["attempt"]["error_code"]) {
                (Value::Bool(true), _) => "orphan".to_string(),
                (Value::Bool(false), _) => "explains".to_string(),
                (_, Value::String(code)) => code.clone(),
                _ => "?".to_string(),
            };
            (r["kms"]["event_id"].as_str().unwrap().to_string(), kind)
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("t1", "ThrottlingException"),
        ("t2", "ThrottlingException"),
        ("s1", "explains"),
        ("d1", "AccessDenied"),
        ("d2", "AccessDenied"),
        ("t3", "ThrottlingException"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut got = kinds.clone();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    assert_eq!(
        usage.iter().filter(|r| r["orphan"] == true).count(),
        0,
        "attempts are never orphans"
    );
    assert_eq!(
        usage[3]["attempt"]["error_code"], "AccessDenied",
        "time order: {usage:?}"
    );
}

/// A small deterministic generator (xorshift64*), so the property test is the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }
}

/// Every one-to-one partial pairing of pushes to earlier `Sign`s within `window`: for push
/// `n`, the set of `Sign` indices some pairing gives it (brute force, independent of the join).
fn possible_signs(signs: &[(i64, &str)], pushes: &[(i64, &str)], window: i64) -> Vec<Vec<usize>> {
    fn go(
        n: usize,
        signs: &[(i64, &str)],
        pushes: &[(i64, &str)],
        window: i64,
        used: &mut Vec<bool>,
        chosen: &mut Vec<Option<usize>>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if n == pushes.len() {
            for (p, c) in chosen.iter().enumerate() {
                if let Some(s) = c {
                    if !out[p].contains(s) {
                        out[p].push(*s);
                    }
                }
            }
            return;
        }
        chosen.push(None);
        go(n + 1, signs, pushes, window, used, chosen, out);
        chosen.pop();
        for s in 0..signs.len() {
            let (ts, who) = signs[s];
            let (tp, pusher) = pushes[n];
            if !used[s] && who == pusher && ts <= tp && ts >= tp - window {
                used[s] = true;
                chosen.push(Some(s));
                go(n + 1, signs, pushes, window, used, chosen, out);
                chosen.pop();
                used[s] = false;
            }
        }
    }
    let mut out = vec![Vec::new(); pushes.len()];
    go(
        0,
        signs,
        pushes,
        window,
        &mut vec![false; signs.len()],
        &mut Vec::new(),
        &mut out,
    );
    out
}

#[test]
fn random_interleavings_around_the_compromise() {
    let window = 60;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let images: Vec<char> = "abcdef01".chars().collect();
    let mut ambiguous_seen = 0;
    for case in 0..400 {
        // One release session (sometimes a second caller too) signs, pushes, and is sometimes
        // used by the attacker after T: Sign times first, then each push after a Sign of its
        // own (the truth), or a push with no Sign (a copy).
        let t_compromise = 30 + rng.below(60) as i64;
        let n_signs = 1 + rng.below(5) as usize;
        let mut signs: Vec<(i64, &str)> = (0..n_signs)
            .map(|_| {
                let caller = if rng.below(5) == 0 { MALLORY } else { RELEASE };
                (rng.below(120) as i64, caller)
            })
            .collect();
        signs.sort();
        let mut pushes: Vec<(i64, &str, Option<usize>)> = Vec::new();
        for (s, &(ts, caller)) in signs.iter().enumerate() {
            if pushes.len() < images.len() && rng.below(4) != 0 {
                // The signature is pushed by the signer's session (or, copied, by the release
                // session after a Sign of another caller) a little later.
                let pusher = if rng.below(3) == 0 { RELEASE } else { caller };
                pushes.push((ts + rng.below(40) as i64, pusher, Some(s)));
            }
        }
        if pushes.len() < images.len() && rng.below(3) == 0 {
            pushes.push((rng.below(150) as i64, RELEASE, None));
        }
        pushes.sort_by_key(|p| p.0);
        let build = |with_ids: bool| -> Vec<Event> {
            let mut ev: Vec<Event> = signs
                .iter()
                .enumerate()
                .map(|(s, &(ts, who))| sign(&format!("s{s}"), ts, who))
                .collect();
            for (n, &(tp, who, truth)) in pushes.iter().enumerate() {
                let rid = truth.filter(|_| with_ids).map(|s| format!("req-s{s}"));
                let sig = format!("sig-{n}");
                ev.push(push(
                    &format!("p{n}"),
                    tp,
                    who,
                    images[n],
                    &[(sig.as_str(), rid.as_deref())],
                ));
            }
            ev
        };
        let p = Policy {
            compromised_at: t(t_compromise),
            keys: vec![KeySpec::parse(KEY).unwrap()],
            ..Policy::default()
        };
        let simple: Vec<(i64, &str)> = pushes.iter().map(|&(tp, who, _)| (tp, who)).collect();
        let possible = possible_signs(&signs, &simple, window);
        let ix_plain = Index::build(build(false), &p.keys, Duration::seconds(window));
        let ix_ids = Index::build(build(true), &p.keys, Duration::seconds(window));
        for (n, &(tp, _, truth)) in pushes.iter().enumerate() {
            let img = from_registry(images[n]);
            let plain = join(&ix_plain, &p, &img);
            let exact = join(&ix_ids, &p, &img);
            let what =
                format!("case {case}: signs {signs:?} pushes {pushes:?} T {t_compromise} push {n}");
            // Safety: never trusted when the real Sign is at or after T.
            if let Some(s) = truth {
                if signs[s].0 >= t_compromise {
                    assert_ne!(
                        plain.verdict,
                        Verdict::Trusted,
                        "{what}: {:?}",
                        plain.reasons
                    );
                    assert_ne!(
                        exact.verdict,
                        Verdict::Trusted,
                        "{what}: {:?}",
                        exact.reasons
                    );
                }
            }
            // Never trusted when some consistent pairing puts it at or after T.
            if possible[n].iter().any(|&s| signs[s].0 >= t_compromise) {
                assert_ne!(
                    plain.verdict,
                    Verdict::Trusted,
                    "{what}: {:?}",
                    plain.reasons
                );
                assert_ne!(
                    exact.verdict,
                    Verdict::Trusted,
                    "{what}: {:?}",
                    exact.reasons
                );
            }
            // Exact evidence: a true request id pins the time whenever the signer pushed it
            // within the window.
            let sig = signature_json(&ix_ids, &exact.signatures[0], p.compromised_at);
            if let Some(s) = truth {
                let (ts, signer) = signs[s];
                if signer == pushes[n].1 && tp - ts <= window {
                    assert_eq!(
                        sig["signed_at"],
                        fmt_time(t(ts)),
                        "{what}: {:?}",
                        exact.reasons
                    );
                }
            }
            // Where pairing is unambiguous, both paths agree.
            let one = &plain.signatures[0];
            if one.sign_by == "only_candidate" && exact.signatures[0].sign_by == "request_id" {
                assert_eq!(plain.verdict, exact.verdict, "{what}");
                assert_eq!(one.sign, exact.signatures[0].sign, "{what}");
            }
            if one.sign_by == "pairing" {
                ambiguous_seen += 1;
            }
        }
    }
    assert!(
        ambiguous_seen > 50,
        "the generator makes ambiguous cases: {ambiguous_seen}"
    );
}
