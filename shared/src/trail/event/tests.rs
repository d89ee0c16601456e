//! Unit tests of the CloudTrail record parser: real-format samples, malformed files, signature
//! and bundle pushes.

use super::*;

fn sample(name: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cloudtrail");
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(name: &str) -> Event {
    let parsed = parse_bytes(&sample(name)).unwrap();
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    assert_eq!(parsed.records, 1);
    assert_eq!(parsed.events.len(), 1, "{name}");
    parsed.events.into_iter().next().unwrap()
}

fn t(s: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn every_sample_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cloudtrail");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let parsed = parse_bytes(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(parsed.events.len(), 1, "{}", path.display());
            n += 1;
        }
    }
    assert_eq!(n, 5, "the five samples of shared/cloudtrail");
}

#[test]
fn ecr_put_image_awsdocs() {
    let e = one("ecr-putimage-awsdocs.json");
    assert_eq!(e.id, s("2bfd4ee2-2178-4a82-a27d-b12939923f0f"));
    assert_eq!(e.time, t("2019-04-15T16:45:00Z"));
    assert_eq!(
        (e.source.as_str(), e.name.as_str()),
        ("ecr.amazonaws.com", "PutImage")
    );
    assert_eq!(e.region, s("us-east-2"));
    assert_eq!(e.account, s("123456789012"));
    assert_eq!(e.request_id, s("cf044b7d-5f9d-11e9-9b2a-95983139cc57"));
    assert_eq!(e.principal.kind, s("IAMUser"));
    assert_eq!(
        e.principal.arn,
        s("arn:aws:sts::123456789012:user/Mary_Major")
    );
    assert_eq!(e.principal.access_key_id, s("AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(e.principal.user_name, s("Mary_Major"));
    assert_eq!(e.principal.session_name, None);
    let p = e.as_put_image().unwrap();
    assert_eq!(p.repository, s("testrepo"));
    assert_eq!(p.registry_id, s("123456789012"));
    assert_eq!(p.tag, s("latest"));
    assert_eq!(
        p.digest,
        s("sha256:98c8b060c21d9adbb6b8c41b916e95e6307102786973ab93a41e8b86d1fc6d3e")
    );
    assert_eq!(p.signature_layers, None, "not a signature tag");
}

#[test]
fn kms_sign_awsdocs() {
    let e = one("kms-sign-awsdocs-rsa-raw.json");
    assert_eq!(e.id, s("107b3cac-b125-4556-9702-12a2b9afcff7"));
    assert_eq!(e.time, t("2022-03-07T22:36:44Z"));
    assert_eq!(e.region, s("us-west-2"));
    assert_eq!(e.account, s("111122223333"));
    assert_eq!(e.request_id, s("8d0b35e0-46cf-48b9-be99-bf2ebc9ab9fb"));
    assert_eq!(e.principal.arn, s("arn:aws:iam::111122223333:user/Alice"));
    assert_eq!(e.principal.access_key_id, s("EXAMPLE_KEY_ID"));
    let k = e.as_sign().unwrap();
    assert_eq!(k.key_id, s("0987dcba-09fe-87dc-65ba-ab0987654321"));
    assert_eq!(
        k.key_arn,
        s("arn:aws:kms:us-west-2:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321")
    );
    assert_eq!(k.message_type, s("RAW"));
    assert_eq!(k.signing_algorithm, s("RSASSA_PKCS1_V1_5_SHA_256"));
}

#[test]
fn kms_sign_partial_by_a_service() {
    let e = one("kms-sign-aws-blog-agentcore-partial.json");
    assert_eq!(
        (&e.id, e.time, &e.region, &e.request_id),
        (&None, None, &None, &None)
    );
    assert_eq!(e.principal.invoked_by, s("bedrock-agentcore.amazonaws.com"));
    assert_eq!(
        e.principal.display(),
        Some("bedrock-agentcore.amazonaws.com")
    );
    let k = e.as_sign().unwrap();
    assert_eq!(
        k.key_arn,
        s("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    );
    assert_eq!(k.key_id, k.key_arn);
    assert_eq!(k.message_type, s("DIGEST"));
}

#[test]
fn sts_web_identity_github_actions() {
    let e = one("sts-assumerolewithwebidentity-github-actions-cloud-snitch.json");
    assert_eq!(e.id, s("ef0464cd-918e-4528-9ea3-1a081d39b393"));
    assert_eq!(e.time, t("2025-04-16T02:46:56Z"));
    assert_eq!(e.account, s("774305579662"));
    assert_eq!(e.request_id, s("6936cb5f-948b-4139-8939-06118942c0cc"));
    assert_eq!(e.principal.kind, s("WebIdentityUser"));
    assert_eq!(
        e.principal.identity_provider,
        s("arn:aws:iam::774305579662:oidc-provider/token.actions.githubusercontent.com")
    );
    let a = e.as_assume_role().unwrap();
    assert!(a.web_identity);
    assert_eq!(
        a.role_arn,
        s("arn:aws:iam::774305579662:role/cloud-snitch-github-actio-GithubActionsRoleF5CC769F-MoeCHSu77MYt")
    );
    assert_eq!(a.session_name, s("GitHubActions"));
    assert_eq!(
        a.subject,
        s("repo:ccbrown/cloud-snitch:ref:refs/heads/main")
    );
    assert_eq!(a.access_key_id, s("ASIA3ISBVQKHJOCMRQJH"));
    assert_eq!(
        a.assumed_role_arn,
        s("arn:aws:sts::774305579662:assumed-role/cloud-snitch-github-actio-GithubActionsRoleF5CC769F-MoeCHSu77MYt/GitHubActions")
    );
    assert_eq!(a.audience, s("sts.amazonaws.com"));
}

#[test]
fn sts_web_identity_partial() {
    let e = one("sts-assumerolewithwebidentity-github-datadog-partial.json");
    let a = e.as_assume_role().unwrap();
    assert_eq!(
        a.subject,
        s("repo:SOURCE-ORG/SOURCE-REPO:ref:refs/heads/BRANCH")
    );
    assert_eq!(
        a.role_arn,
        s("arn:aws:iam::012345678901:role/github-actions-role")
    );
    assert_eq!(a.session_name, s("MySessionName"));
    assert_eq!((a.access_key_id.as_deref(), e.time), (None, None));
}

#[test]
fn log_file_gzip_with_unrelated_records() {
    let sign: serde_json::Value =
        serde_json::from_slice(&sample("kms-sign-awsdocs-rsa-raw.json")).unwrap();
    let mut records = vec![];
    for i in 0..3000 {
        records.push(serde_json::json!({
            "eventVersion": "1.08", "eventTime": "2022-03-07T22:00:00Z",
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventID": format!("x{i}"),
            "requestParameters": {"keyId": 7, "bucketName": "b", "nested": {"a": [1, {"b": null}]}},
            "responseElements": "not an object", "resources": {"odd": true},
        }));
    }
    records.insert(1234, sign);
    let doc = serde_json::json!({ "Records": records });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, doc.to_string().as_bytes()).unwrap();
    let parsed = parse_bytes(&gz.finish().unwrap()).unwrap();
    assert_eq!(parsed.records, 3001);
    assert!(parsed.warnings.is_empty(), "{:?}", &parsed.warnings[..1]);
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(
        parsed.events[0].request_id,
        s("8d0b35e0-46cf-48b9-be99-bf2ebc9ab9fb")
    );
}

#[test]
fn wrong_types_in_kept_records_are_reported_not_guessed() {
    let doc = r#"{"Records":[
        {"eventSource":"kms.amazonaws.com","eventName":"Sign","eventID":"a","eventTime":"2024-01-01T00:00:00Z","requestParameters":{"keyId":5}},
        {"eventSource":"kms.amazonaws.com","eventName":"Sign","eventID":"b","eventTime":"yesterday"},
        {"eventSource":"kms.amazonaws.com","eventName":"Sign","eventID":"c","errorCode":"AccessDenied","errorMessage":"no"},
        {"eventSource":"ecr.amazonaws.com","eventName":"PutImage","eventID":"e","errorCode":"AccessDenied"},
        42,
        {"eventSource":"kms.amazonaws.com","eventName":"Sign","eventID":"d","eventTime":"2024-01-01T00:00:00Z"}
    ]}"#;
    let parsed = parse_bytes(doc.as_bytes()).unwrap();
    assert_eq!(parsed.records, 6);
    // A failed Sign is kept apart as an attempt; a failed PutImage is dropped.
    assert_eq!(parsed.events.len(), 2);
    let failed = parsed.events[0].as_failed_sign().unwrap();
    assert_eq!(parsed.events[0].id, s("c"));
    assert_eq!(parsed.events[0].as_sign(), None, "an attempt is no Sign");
    assert_eq!(failed.error_code, "AccessDenied");
    assert_eq!(failed.error_message, s("no"));
    assert_eq!(parsed.events[1].id, s("d"));
    assert_eq!(parsed.warnings.len(), 3, "{:?}", parsed.warnings);
    let w = |i: usize| &parsed.warnings[i].message;
    assert!(w(0).contains("requestParameters.keyId"), "{}", w(0));
    assert!(w(1).contains("eventTime"), "{}", w(1));
    assert!(w(2).contains("record 4"), "{}", w(2));
    // The time of a skipped record is kept when it could be read, for the range check.
    assert!(
        parsed.warnings[0].time.is_some(),
        "{:?}",
        parsed.warnings[0]
    );
    assert_eq!(parsed.warnings[1].time, None);
    assert_eq!(parsed.warnings[2].time, None);
}

#[test]
fn malformed_files_are_errors() {
    for bad in [
        &b"{\"Records\":[{\"eventName\":"[..],
        b"hello",
        b"\x1f\x8bnot gzip",
        b"{} trailing",
    ] {
        assert!(
            parse_bytes(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(parse_bytes(b"{\"Records\":[]}").unwrap().events.is_empty());
}

#[test]
fn signature_manifest_layers() {
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"digest": "sha256:00", "size": 1, "mediaType": "application/vnd.oci.image.config.v1+json"},
        "layers": [
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": "sha256:aa", "size": 3,
             "annotations": {"dev.cosignproject.cosign/signature": "MEUC", "dev.sigtrail/kms-request-id": "r-1"}},
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": "sha256:bb", "size": 3}
        ]
    });
    let tag = format!("sha256-{}.sig", "ab".repeat(32));
    let rec = serde_json::json!({
        "eventSource": "ecr.amazonaws.com", "eventName": "PutImage", "recipientAccountId": "1",
        "requestParameters": {"repositoryName": "r", "imageTag": tag, "imageManifest": m.to_string()},
        "responseElements": {"image": {"imageId": {"imageDigest": "sha256:cc"}}}
    });
    let e = parse_bytes(rec.to_string().as_bytes())
        .unwrap()
        .events
        .remove(0);
    let p = e.as_put_image().unwrap();
    assert_eq!(
        p.registry_id,
        s("1"),
        "registry id defaults to the recipient account"
    );
    let layers = p.signature_layers.as_ref().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].signature, s("MEUC"));
    assert_eq!(layers[0].request_id, s("r-1"));
    assert_eq!(
        layers[1],
        SigLayer {
            digest: "sha256:bb".into(),
            signature: None,
            request_id: None,
        }
    );
    assert_eq!(
        sig_tag_digest(&tag),
        Some(format!("sha256:{}", "ab".repeat(32)))
    );
    assert_eq!(sig_tag(&format!("sha256:{}", "ab".repeat(32))), Some(tag));
}

/// cosign 3.1.1's bundle referrer (its exact bytes, `shared/tests/data/cosign-v3/`), pushed
/// by digest: its subject is the signed image. The fallback index cosign writes on a
/// registry without the referrers API, and a plain image, are not signature pushes.
#[test]
fn a_bundle_referrer_pushed_by_digest_names_its_subject() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cosign-v3");
    let read = |n: &str| std::fs::read_to_string(data.join(n)).unwrap();
    let subject = read("image-digest.txt").trim().to_string();
    let push = |tag: Option<&str>, manifest: &str| {
        let mut req = serde_json::json!({"repositoryName": "r", "imageManifest": manifest});
        if let Some(t) = tag {
            req["imageTag"] = t.into();
        }
        let rec = serde_json::json!({
            "eventSource": "ecr.amazonaws.com", "eventName": "PutImage", "recipientAccountId": "1",
            "requestParameters": req,
            "responseElements": {"image": {"imageId": {"imageDigest": "sha256:cc"}}}
        });
        let e = parse_bytes(rec.to_string().as_bytes())
            .unwrap()
            .events
            .remove(0);
        e.as_put_image().unwrap().clone()
    };
    let referrer = push(None, &read("referrer.manifest.json"));
    assert_eq!(referrer.bundle_subject.as_deref(), Some(subject.as_str()));
    assert!(referrer.is_signature_push());
    let layers = referrer.signature_layers.unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0].digest,
        "sha256:e5bb05e93c6a9aa8f336a45212ae0e6e26b9760941197d53390d20936244bdb7"
    );
    let fallback_tag = subject.replace(':', "-");
    for (tag, manifest) in [
        (Some(fallback_tag.as_str()), read("fallback-index.json")),
        (Some("v1"), read("image.manifest.json")),
    ] {
        let p = push(tag, &manifest);
        assert_eq!(p.bundle_subject, None, "{tag:?}");
        assert!(!p.is_signature_push(), "{tag:?}");
    }
    // A subject is not enough: the manifest must say it holds a bundle.
    let other = read("referrer.manifest.json").replace("vnd.dev.sigstore.bundle", "vnd.example");
    assert_eq!(push(None, &other).bundle_subject, None);
}

#[test]
fn assumed_role_arns() {
    assert_eq!(
        assumed_role_parts("arn:aws:sts::123:assumed-role/ci/GitHubActions"),
        Some(("123", "ci", "GitHubActions"))
    );
    assert_eq!(assumed_role_parts("arn:aws:iam::123:user/Alice"), None);
}
