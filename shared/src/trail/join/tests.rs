//! Unit tests of the join: pairing, verdicts, evidence JSON.

use super::*;
use crate::trail::event::{AssumeRole, Detail, KmsSign, PutImage, SigLayer};
use serde_json::Value;

const ACCT: &str = "111122223333";
const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const ROLE: &str = "arn:aws:iam::111122223333:role/ci";
const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/ci/GitHubActions";
const SUB: &str = "repo:org/app:ref:refs/heads/main";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn at(min: i64) -> Option<DateTime<Utc>> {
    Some(
        DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(min),
    )
}

fn principal(key: &str) -> Principal {
    Principal {
        kind: Some("AssumedRole".into()),
        arn: Some(SESSION.into()),
        access_key_id: Some(key.into()),
        session_issuer_arn: Some(ROLE.into()),
        session_name: Some("GitHubActions".into()),
        ..Principal::default()
    }
}

fn ev(id: &str, min: i64, who: &str, detail: Detail) -> Event {
    let (source, name) = match &detail {
        Detail::Sign(_) | Detail::FailedSign(_) => ("kms.amazonaws.com", "Sign"),
        Detail::PutImage(_) => ("ecr.amazonaws.com", "PutImage"),
        Detail::AssumeRole(_) => ("sts.amazonaws.com", "AssumeRoleWithWebIdentity"),
    };
    Event {
        id: Some(id.into()),
        time: at(min),
        source: source.into(),
        name: name.into(),
        region: Some("us-east-1".into()),
        account: Some(ACCT.into()),
        request_id: Some(format!("req-{id}")),
        principal: principal(who),
        detail,
        file: None,
    }
}

fn sign(id: &str, min: i64, who: &str) -> Event {
    ev(
        id,
        min,
        who,
        Detail::Sign(KmsSign {
            key_id: Some("alias/cosign".into()),
            key_arn: Some(KEY.into()),
            message_type: Some("DIGEST".into()),
            signing_algorithm: Some("ECDSA_SHA_256".into()),
        }),
    )
}

fn put(
    id: &str,
    min: i64,
    who: &str,
    repo: &str,
    tag: &str,
    d: &str,
    layers: Option<Vec<&str>>,
) -> Event {
    ev(
        id,
        min,
        who,
        Detail::PutImage(PutImage {
            bundle_subject: None,
            repository: Some(repo.into()),
            registry_id: Some(ACCT.into()),
            tag: Some(tag.into()),
            digest: Some(d.into()),
            signature_layers: layers.map(|l| {
                l.into_iter()
                    .map(|s| SigLayer {
                        digest: format!("sha256:{s}"),
                        signature: Some(s.into()),
                        request_id: None,
                    })
                    .collect()
            }),
        }),
    )
}

fn role(id: &str, min: i64, key: &str) -> Event {
    let mut e = ev(
        id,
        min,
        "",
        Detail::AssumeRole(AssumeRole {
            web_identity: true,
            role_arn: Some(ROLE.into()),
            session_name: Some("GitHubActions".into()),
            subject: Some(SUB.into()),
            access_key_id: Some(key.into()),
            assumed_role_arn: Some(SESSION.into()),
            ..AssumeRole::default()
        }),
    );
    e.principal = Principal {
        kind: Some("WebIdentityUser".into()),
        user_name: Some(SUB.into()),
        ..Principal::default()
    };
    e
}

fn image(d: &str) -> Image {
    Image {
        digest: d.into(),
        repository: "app".into(),
        account: Some(ACCT.into()),
        region: Some("us-east-1".into()),
        signature_repository: "app".into(),
        ..Image::default()
    }
}

fn sigtag(d: &str) -> String {
    event::sig_tag(d).unwrap()
}

/// image A pushed at 0, signed at 1 and pushed at 2 (sig "s1"); signed again at 30, pushed 31 ("s2").
fn trail() -> Vec<Event> {
    let a = digest('a');
    vec![
        role("r1", -5, "ASIA1"),
        put("p0", 0, "ASIA1", "app", "v1", &a, None),
        sign("k1", 1, "ASIA1"),
        put(
            "p1",
            2,
            "ASIA1",
            "app",
            &sigtag(&a),
            &digest('1'),
            Some(vec!["s1"]),
        ),
        role("r2", 25, "ASIA2"),
        sign("k2", 30, "ASIA2"),
        put(
            "p2",
            31,
            "ASIA2",
            "app",
            &sigtag(&a),
            &digest('2'),
            Some(vec!["s1", "s2"]),
        ),
    ]
}

fn policy() -> Policy {
    Policy {
        keys: vec![KeySpec::parse(KEY).unwrap()],
        ..Policy::default()
    }
}

fn ids(ix: &Index, j: &Joined) -> Vec<(Option<String>, Option<String>, Verdict)> {
    j.signatures
        .iter()
        .map(|s| {
            (
                s.sign.and_then(|i| ix.events[i].id.clone()),
                s.intro
                    .and_then(|n| ix.events[ix.intros[n].push].id.clone()),
                s.verdict,
            )
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.into())
}

#[test]
fn signing_run_is_trusted_with_signed_at() {
    let ix = Index::build(trail(), &[], Duration::minutes(15));
    let j = join(&ix, &policy(), &image(&digest('a')));
    assert_eq!(j.verdict, Verdict::Trusted, "{:?}", j.reasons);
    assert_eq!(
        ids(&ix, &j),
        vec![
            (s("k1"), s("p1"), Verdict::Trusted),
            (s("k2"), s("p2"), Verdict::Trusted)
        ]
    );
    let sig = signature_json(&ix, &j.signatures[0], None);
    assert_eq!(sig["signed_at"], "2025-11-10T12:01:00Z");
    assert_eq!(sig["subject"], SUB);
    assert_eq!(sig["evidence"]["role_event_id"], "r1");
    assert_eq!(j.image_pushes.len(), 1);
    let ev: Vec<String> = events_json(&ix, &j)
        .into_iter()
        .map(|(_, v)| v["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ev, ["r1", "p0", "k1", "p1", "r2", "k2", "p2"]);
}

#[test]
fn compromise_and_principals() {
    let ix = Index::build(trail(), &[], Duration::minutes(15));
    let mut p = policy();
    p.compromised_at = at(10);
    let j = join(&ix, &p, &image(&digest('a')));
    assert_eq!(j.verdict, Verdict::Untrusted);
    assert_eq!(
        signature_json(&ix, &j.signatures[0], p.compromised_at)["compromise"],
        "before"
    );
    assert_eq!(
        signature_json(&ix, &j.signatures[1], p.compromised_at)["compromise"],
        "after"
    );
    assert!(
        j.reasons.iter().any(|r| r.contains("after the compromise")),
        "{:?}",
        j.reasons
    );

    let mut p = policy();
    p.allowed = vec!["repo:org/app:ref:refs/heads/*".into()];
    assert_eq!(
        join(&ix, &p, &image(&digest('a'))).verdict,
        Verdict::Trusted
    );
    p.allowed = vec!["arn:aws:sts::111122223333:assumed-role/ci".into()];
    assert_eq!(
        join(&ix, &p, &image(&digest('a'))).verdict,
        Verdict::Trusted
    );
    p.allowed = vec![ROLE.into()];
    assert_eq!(
        join(&ix, &p, &image(&digest('a'))).verdict,
        Verdict::Trusted
    );
    p.allowed = vec!["repo:org/other:*".into()];
    let j = join(&ix, &p, &image(&digest('a')));
    assert_eq!(j.verdict, Verdict::Untrusted);
    assert!(
        j.reasons[0].contains("no --allowed-principal"),
        "{:?}",
        j.reasons
    );
}

#[test]
fn signature_without_sign_is_unexplained() {
    let mut t = trail();
    t.retain(|e| e.id.as_deref() != Some("k2"));
    let ix = Index::build(t, &[], Duration::minutes(15));
    let j = join(&ix, &policy(), &image(&digest('a')));
    assert_eq!(j.verdict, Verdict::Unexplained);
    assert_eq!(ids(&ix, &j)[1], (None, s("p2"), Verdict::Unexplained));
    assert!(
        j.reasons[0].contains("no KMS Sign event"),
        "{:?}",
        j.reasons
    );
}

#[test]
fn other_caller_key_window_scope_never_match() {
    let a = digest('a');
    let base = |sign_ev: Event| {
        vec![
            put("p0", 0, "ASIA1", "app", "v1", &a, None),
            sign_ev,
            put(
                "p1",
                2,
                "ASIA1",
                "app",
                &sigtag(&a),
                &digest('1'),
                Some(vec!["s1"]),
            ),
        ]
    };
    let mut other_key = sign("k1", 1, "ASIA1");
    if let Detail::Sign(k) = &mut other_key.detail {
        k.key_arn = Some(KEY.replace("1234abcd", "99999999"));
    }
    let mut other_caller = sign("k1", 1, "ASIA9");
    other_caller.principal.arn = s("arn:aws:sts::111122223333:assumed-role/ci/Other");
    let too_early = sign("k1", -20, "ASIA1");
    let after_push = sign("k1", 3, "ASIA1");
    for (name, e) in [
        ("key", other_key),
        ("caller", other_caller),
        ("early", too_early),
        ("late", after_push),
    ] {
        let ix = Index::build(base(e), &[], Duration::minutes(15));
        let j = join(&ix, &policy(), &image(&a));
        assert_eq!(j.verdict, Verdict::Unexplained, "{name}: {:?}", j.reasons);
    }
    // Pushes in another account, region or repository are not this image's.
    let ix = Index::build(base(sign("k1", 1, "ASIA1")), &[], Duration::minutes(15));
    for f in [
        |i: &mut Image| i.account = s("999999999999"),
        |i: &mut Image| i.region = s("eu-west-1"),
        |i: &mut Image| {
            i.repository = "other".into();
            i.signature_repository = "other".into();
        },
    ] {
        let mut img = image(&a);
        f(&mut img);
        let j = join(&ix, &policy(), &img);
        assert!(j.image_pushes.is_empty() && j.signature_pushes.is_empty());
        assert_eq!(j.verdict, Verdict::Unexplained);
    }
    assert_eq!(join(&ix, &policy(), &image(&a)).verdict, Verdict::Trusted);
}

#[test]
fn verification_and_own_signature() {
    let ix = Index::build(trail(), &[], Duration::minutes(15));
    // check-sig accepted only layer 1.
    let mut img = image(&digest('a'));
    img.verified = Some(vec![Claimed {
        index: Some(1),
        ..Claimed::default()
    }]);
    let j = join(&ix, &policy(), &img);
    assert_eq!(ids(&ix, &j), vec![(s("k2"), s("p2"), Verdict::Trusted)]);
    assert_eq!(j.signatures[0].matched_by, "layer_index");
    // Nothing accepted.
    img.verified = Some(vec![]);
    assert_eq!(join(&ix, &policy(), &img).verdict, Verdict::Unexplained);
    // A record straight from kms-sign: its request id names the Sign exactly.
    let mut img = image(&digest('a'));
    img.own_signature = s("s2");
    img.own_request_id = s("req-k2");
    let j = join(&ix, &policy(), &img);
    assert_eq!(ids(&ix, &j), vec![(s("k2"), s("p2"), Verdict::Trusted)]);
    assert_eq!(j.signatures[0].sign_by, "request_id");
    // A request id that is not in the trail.
    img.own_request_id = s("req-nope");
    img.own_signature = s("s9");
    let j = join(&ix, &policy(), &img);
    assert_eq!(j.verdict, Verdict::Unexplained);
    // A key named by the record that is not the one used.
    let mut img = image(&digest('a'));
    img.keys = vec![KeySpec::parse(&KEY.replace("1234abcd", "99999999")).unwrap()];
    let j = join(&ix, &Policy::default(), &img);
    assert_eq!(j.verdict, Verdict::Unexplained);
    assert!(j.reasons[0].contains("not a key named"), "{:?}", j.reasons);
}

#[test]
fn batch_pairing_is_ambiguous_trusted_and_one_sign_per_signature() {
    // One caller signs three images, then pushes the three signatures; one extra Sign. No
    // push names its Sign, so each could be any of the four: every one is before any
    // compromise, so each is trusted, with an interval and the candidates named.
    let mut t = vec![];
    for n in 0..3 {
        t.push(sign(&format!("k{n}"), n as i64, "ASIA1"));
    }
    t.push(sign("k-extra", 3, "ASIA1"));
    for (n, c) in ['a', 'b', 'c'].into_iter().enumerate() {
        let d = digest(c);
        t.push(put(
            &format!("p{n}"),
            5 + n as i64,
            "ASIA1",
            "app",
            &sigtag(&d),
            &digest('9'),
            None,
        ));
    }
    let ix = Index::build(t, &[], Duration::minutes(15));
    for (n, c) in ['a', 'b', 'c'].into_iter().enumerate() {
        let j = join(&ix, &policy(), &image(&digest(c)));
        assert_eq!(
            ids(&ix, &j),
            vec![(None, Some(format!("p{n}")), Verdict::Trusted)],
            "{:?}",
            j.reasons
        );
        assert_eq!(j.signatures[0].matched_by, "push_order");
        assert_eq!(j.signatures[0].sign_by, "pairing");
        let sig = signature_json(&ix, &j.signatures[0], None);
        assert_eq!(sig["signed_at"], Value::Null);
        assert_eq!(sig["signed_after"], "2025-11-10T12:00:00Z");
        assert_eq!(sig["signed_before"], "2025-11-10T12:03:00Z");
        assert_eq!(sig["evidence"]["candidates"], 4);
        assert_eq!(sig["evidence"]["candidate_signs"][3]["event_id"], "k-extra");
    }
    // The pairing behind --key-usage stays one-to-one: the extra Sign explains nothing.
    let extra = ix
        .events
        .iter()
        .position(|e| e.id.as_deref() == Some("k-extra"))
        .unwrap();
    assert_eq!(ix.intro_of_sign(extra), None);
}

#[test]
fn role_of_a_session() {
    assert_eq!(role_arn_of(SESSION).as_deref(), Some(ROLE));
}
