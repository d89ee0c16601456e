//! `trail-for` explains signatures that real cosign 3.1.1 made with a KMS key, in both formats:
//! the legacy `.sig` tag, and the Sigstore bundle it pushes by digest as an OCI 1.1 referrer
//! (no tag: the `PutImage` event's logged manifest names the signed image as its `subject`).
//!
//! cosign signs for real: `awskms:///alias/...` against the emulator's KMS (its `Sign` calls
//! are counted by the emulator) and pushes to the environment's registry. That registry is
//! docker-registry, not ECR, and moto records no CloudTrail, so the test writes the records
//! CloudTrail would have for these calls: one KMS `Sign` per cosign run, at the second cosign
//! started (the real call lies inside the run, which is measured around it), by the
//! environment's IAM user (the credentials cosign used), and one ECR `PutImage` per manifest
//! cosign pushed, with the exact bytes read back from the registry, at the second the run ended.
//! ECR has the referrers API, so the bundle is one by-digest push; the fallback index cosign
//! also wrote here (the registry lacks the API) is logged too, and must change nothing.

use super::*;
use sigtrail_tests::cosign::{get_manifest, get_manifest_json, CosignKeys, Format};
use sigtrail_tests::{env, kms_calls, push_image};

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The environment's IAM user, as CloudTrail names it.
fn user() -> Value {
    json!({"type": "IAMUser", "principalId": "AIDATESTING", "accountId": ACCOUNT,
           "arn": format!("arn:aws:iam::{ACCOUNT}:user/testing"), "userName": "testing",
           "accessKeyId": std::env::var("AWS_ACCESS_KEY_ID").unwrap()})
}

fn sign_event(time: &str, alias: &str, key_arn: &str) -> Value {
    json!({
        "eventVersion": "1.08", "userIdentity": user(), "eventTime": time,
        "eventSource": "kms.amazonaws.com", "eventName": "Sign", "awsRegion": REGION,
        "sourceIPAddress": "127.0.0.1", "userAgent": "cosign/v3.1.1",
        "requestParameters": {"keyId": alias, "messageType": "DIGEST", "signingAlgorithm": "ECDSA_SHA_256"},
        "responseElements": null, "requestID": sigtrail_tests::trail::event_id(),
        "eventID": sigtrail_tests::trail::event_id(), "readOnly": true,
        "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key_arn}],
        "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

/// ECR's `PutImage` record of `manifest` (exact bytes) pushed under `tag`, or by digest.
fn push_event(time: &str, repo: &str, tag: Option<&str>, manifest: &[u8]) -> Value {
    let manifest = String::from_utf8(manifest.to_vec()).unwrap();
    let digest = format!("sha256:{}", hex::encode(sha256(manifest.as_bytes())));
    let media_type = serde_json::from_str::<Value>(&manifest).unwrap()["mediaType"].clone();
    let mut req = json!({"repositoryName": repo, "registryId": ACCOUNT, "imageManifest": manifest,
                         "imageManifestMediaType": media_type});
    let mut id = json!({"imageDigest": digest});
    match tag {
        Some(t) => {
            req["imageTag"] = t.into();
            id["imageTag"] = t.into();
        }
        None => req["imageDigest"] = digest.clone().into(),
    }
    json!({
        "eventVersion": "1.08", "userIdentity": user(), "eventTime": time,
        "eventSource": "ecr.amazonaws.com", "eventName": "PutImage", "awsRegion": REGION,
        "sourceIPAddress": "127.0.0.1", "userAgent": "cosign/v3.1.1 (linux; amd64) go-containerregistry",
        "requestParameters": req,
        "responseElements": {"image": {"repositoryName": repo, "registryId": ACCOUNT,
                                       "imageManifest": manifest, "imageId": id}},
        "requestID": sigtrail_tests::trail::event_id(), "eventID": sigtrail_tests::trail::event_id(),
        "resources": [{"ARN": format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"), "accountId": ACCOUNT}],
        "eventType": "AwsApiCall", "managementEvent": true, "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    })
}

#[test]
fn signatures_cosign_made_with_kms_are_explained_in_both_formats() {
    let alias = format!("alias/{}", unique("trail-cosign"));
    let key_arn = kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///{alias}");
    let repo = unique("trail-cosign-app");
    let image = format!("{}/{repo}:v1", env().registry);
    let pushed_at = now();
    let digest = push_image(&image, &unique("content"));
    let by_digest = format!("{}/{repo}@{digest}", env().registry);
    let image_manifest = get_manifest(&repo, &digest);

    let cosign = CosignKeys::new();
    let legacy_started = now();
    cosign.sign(Format::Legacy, &key, &by_digest, &[]);
    let legacy_done = now();
    let compromise = next_second();
    let bundle_started = now();
    cosign.sign(Format::Bundle, &key, &by_digest, &[]);
    let bundle_done = now();
    assert_eq!(
        kms_calls(&alias).get("Sign"),
        Some(&2),
        "cosign called KMS Sign once per run"
    );

    // What cosign pushed, read back: the .sig manifest, the fallback index and the referrer.
    let sig = sig_tag(&digest);
    let sig_manifest = get_manifest(&repo, &sig);
    let fallback = digest.replace(':', "-");
    let index = get_manifest(&repo, &fallback);
    let referrer_digest = get_manifest_json(&repo, &fallback)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let referrer = get_manifest(&repo, &referrer_digest);

    let trail = Trail {
        records: vec![
            push_event(&pushed_at, &repo, Some("v1"), &image_manifest),
            sign_event(&legacy_started, &alias, &key_arn),
            push_event(&legacy_done, &repo, Some(&sig), &sig_manifest),
            sign_event(&bundle_started, &alias, &key_arn),
            push_event(&bundle_done, &repo, None, &referrer),
            push_event(&bundle_done, &repo, Some(&fallback), &index),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    trail.write(dir.path());
    let (sign_legacy, push_legacy, sign_bundle, push_bundle) = (
        trail.records[1]["eventID"].as_str().unwrap(),
        trail.records[2]["eventID"].as_str().unwrap(),
        trail.records[3]["eventID"].as_str().unwrap(),
        trail.records[4]["eventID"].as_str().unwrap(),
    );

    // check-sig reads both formats; trail-for finds each one's push and Sign.
    let resolved = run(tool("digest-of").args(["-q", &by_digest]), b"");
    let checked = run(
        tool("check-sig").args(["-q", "--key", &key, "--bundles", "always"]),
        &resolved.stdout,
    );
    assert!(checked.status.success(), "{}", stderr(&checked));
    let checked: Value = serde_json::from_slice(&checked.stdout).unwrap();
    let sigs = checked["verification"]["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{checked:#}");
    assert!(sigs.iter().all(|s| s["verified"] == true), "{checked:#}");
    assert!(sigs
        .iter()
        .any(|s| s["bundle_manifest"] == referrer_digest.as_str()));

    let local = dir.path().to_str().unwrap().to_string();
    let args = [
        "--cloudtrail",
        local.as_str(),
        "--since",
        &today(),
        "--key",
        &key,
    ];
    let (out, o) = trail_for(&args, &checked);
    assert!(o.status.success(), "{}\n{:#}", stderr(&o), out[0]);
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "trusted", "{t:#}");
    let sigs = t["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{t:#}");
    let by_push = |id: &str| {
        sigs.iter()
            .find(|s| s["evidence"]["signature_push_event_id"] == id)
            .unwrap_or_else(|| panic!("no signature pushed by {id}: {t:#}"))
    };
    let legacy = by_push(push_legacy);
    assert_eq!(
        legacy["evidence"]["push_matched_by"], "layer_digest",
        "{legacy:#}"
    );
    // Only the legacy run's Sign precedes the .sig push: the exact time.
    assert_eq!(legacy["signed_at"], legacy_started.as_str(), "{legacy:#}");
    assert_eq!(legacy["evidence"]["sign_event_id"], sign_legacy);
    let bundle = by_push(push_bundle);
    assert_eq!(
        bundle["evidence"]["push_matched_by"], "bundle_manifest",
        "{bundle:#}"
    );
    // Both runs' Signs precede the bundle's push: an interval, never a guess.
    assert_eq!(bundle["evidence"]["candidates"], 2, "{bundle:#}");
    assert_eq!(bundle["signed_after"], legacy_started.as_str());
    assert_eq!(bundle["signed_before"], bundle_started.as_str());
    let candidates: Vec<&str> = bundle["evidence"]["candidate_signs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["event_id"].as_str())
        .collect();
    assert_eq!(candidates, [sign_legacy, sign_bundle]);

    // The key leaked between the two runs: the .sig signature stays trusted, the bundle may
    // have been made after the leak.
    let mut split = args.to_vec();
    split.extend(["--compromised-at", compromise.as_str()]);
    let (out, _) = trail_for(&split, &checked);
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "untrusted", "{t:#}");
    let verdict_of = |id: &str| {
        t["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["evidence"]["signature_push_event_id"] == id)
            .map(|s| s["verdict"].clone())
    };
    assert_eq!(verdict_of(push_legacy), Some(json!("trusted")), "{t:#}");
    assert_eq!(verdict_of(push_bundle), Some(json!("untrusted")), "{t:#}");

    // Without the referrer's push in the trail, the bundle is unexplained, not borrowed from
    // the .sig push.
    let mut partial = Trail {
        records: trail.records.clone(),
    };
    partial.records.remove(4);
    let dir2 = tempfile::tempdir().unwrap();
    partial.write(dir2.path());
    let local2 = dir2.path().to_str().unwrap().to_string();
    let (out, _) = trail_for(
        &["--cloudtrail", &local2, "--since", &today(), "--key", &key],
        &checked,
    );
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "unexplained", "{t:#}");
    let reasons = t["reasons"].to_string();
    assert!(
        reasons.contains("no push of a bundle referrer of"),
        "{reasons}"
    );

    // --key-usage: each Sign is explained by one signature, no orphan.
    let usage = run(
        with_keys(
            &mut tool("trail-for"),
            &[
                "--key-usage",
                "--cloudtrail",
                &local,
                "--since",
                &today(),
                "--key",
                &key,
            ],
        ),
        b"",
    );
    let usage: Vec<Value> = records(&usage);
    let signs: Vec<&Value> = usage.iter().filter(|r| r.get("kms").is_some()).collect();
    assert_eq!(signs.len(), 2, "{usage:#?}");
    assert!(signs.iter().all(|r| r["orphan"] == false), "{usage:#?}");
}
