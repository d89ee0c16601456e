//! Unit tests of the per-layer checks and the verdict, with keys made on the spot.

use std::collections::BTreeMap;

use base64::Engine;
use p256::ecdsa::{signature::Signer, DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;

use super::*;

const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
const OTHER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

struct Signer256 {
    sk: SigningKey,
    trusted: TrustedKey,
}

fn signer() -> Signer256 {
    let sk = SigningKey::random(&mut rand_core::OsRng);
    let pem = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let trusted = TrustedKey::new(PublicKey::from_pem(pem.as_bytes()).unwrap(), "test.pub");
    Signer256 { sk, trusted }
}

impl Signer256 {
    fn layer(&self, payload: &[u8]) -> SignatureLayer {
        let sig: DerSignature = self.sk.sign(payload);
        SignatureLayer {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
            digest: Some(sha256_digest(payload)),
            size: Some(payload.len() as u64),
            payload: Some(payload.to_vec()),
            signature: Some(base64::engine::general_purpose::STANDARD.encode(sig.as_bytes())),
            annotations: BTreeMap::new(),
            unreadable: None,
        }
    }
}

fn payload(reference: &str, digest: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
    let a = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Payload::new(reference, digest, &a).to_bytes()
}

fn subject(reference: &str) -> Subject {
    Subject {
        digest: DIGEST.into(),
        reference: Some(RefName::parse_lenient(reference)),
    }
}

/// Runs one layer; returns the failed check (None when verified).
fn check(
    layer: &SignatureLayer,
    keys: &[TrustedKey],
    policy: &Policy,
    image: &str,
) -> Option<Check> {
    let r = verify_layer(layer, &subject(image), keys, policy);
    assert_eq!(r.verified, r.failed_check.is_none(), "{r:?}");
    r.failed_check
}

#[test]
fn a_good_signature_verifies_and_reports_claims() {
    let s = signer();
    let layer = s.layer(&payload("reg.io/app", DIGEST, &[("git_sha", "abc")]));
    let policy = Policy::default();
    let v = verify_layers(
        &[layer],
        &subject("reg.io/app:v1"),
        std::slice::from_ref(&s.trusted),
        &policy,
    );
    assert!(v.verified);
    assert_eq!(v.keys_verified, vec![s.trusted.id.clone()]);
    let json = v.to_json();
    let sig = &json["signatures"][0];
    assert_eq!(sig["verified"], true);
    assert_eq!(sig["key_id"], s.trusted.id.as_str());
    assert_eq!(sig["claims"]["docker_reference"], "reg.io/app");
    assert!(sig.get("layer_annotations").is_none());
    assert_eq!(sig["claims"]["manifest_digest"], DIGEST);
    assert_eq!(sig["claims"]["type"], crate::payload::SIMPLE_SIGNING_TYPE);
    assert_eq!(sig["annotations"]["git_sha"], "abc");
    assert_eq!(sig["identity_matches"], true);
    assert!(json.get("failure").is_none());
}

#[test]
fn each_check_fails_for_its_own_reason() {
    let s = signer();
    let other = signer();
    let keys = [s.trusted.clone()];
    let any = Policy::default();
    let good = payload("reg.io/app", DIGEST, &[]);

    let mut l = s.layer(&good);
    l.media_type = "text/plain".into();
    assert_eq!(check(&l, &keys, &any, "reg.io/app"), Some(Check::MediaType));

    let mut l = s.layer(&good);
    l.payload = Some(payload("reg.io/app-2", OTHER, &[]));
    assert_eq!(
        check(&l, &keys, &any, "reg.io/app"),
        Some(Check::BlobDigest)
    );
    l.digest = None;
    assert_eq!(
        check(&l, &keys, &any, "reg.io/app"),
        Some(Check::BlobDigest),
        "size"
    );
    l.size = None;
    assert_eq!(
        check(&l, &keys, &any, "reg.io/app"),
        Some(Check::Signature),
        "tampered"
    );

    let mut l = s.layer(&good);
    l.size = Some(MAX_PAYLOAD_BYTES as u64 + 1);
    assert_eq!(check(&l, &keys, &any, "reg.io/app"), Some(Check::TooLarge));

    for bad in [
        "", "&", "AAA", "AA==A===", "AAAA=", " AAAA", "AA\nAA", "AB==",
    ] {
        let mut l = s.layer(&good);
        l.signature = Some(bad.into());
        let want = if bad.is_empty() {
            Check::Signature
        } else {
            Check::SignatureEncoding
        };
        assert_eq!(check(&l, &keys, &any, "reg.io/app"), Some(want), "{bad:?}");
    }
    let mut l = s.layer(&good);
    l.signature = None;
    assert_eq!(
        check(&l, &keys, &any, "reg.io/app"),
        Some(Check::SignatureEncoding)
    );

    assert_eq!(
        check(&other.layer(&good), &keys, &any, "reg.io/app"),
        Some(Check::Signature)
    );
    // the other key is trusted too (rotation): it verifies, and reports which key
    let both = [s.trusted.clone(), other.trusted.clone()];
    let r = verify_layer(&other.layer(&good), &subject("reg.io/app"), &both, &any);
    assert_eq!(r.key_id.as_deref(), Some(other.trusted.id.as_str()));

    assert_eq!(
        check(&s.layer(b"not json"), &keys, &any, "reg.io/app"),
        Some(Check::Payload)
    );
    assert_eq!(
        check(&s.layer(b"{}"), &keys, &any, "reg.io/app"),
        Some(Check::Payload)
    );
    let wrong_type = String::from_utf8(good.clone())
        .unwrap()
        .replace("cosign container image signature", "x");
    assert_eq!(
        check(&s.layer(wrong_type.as_bytes()), &keys, &any, "reg.io/app"),
        Some(Check::Payload)
    );

    let replayed = s.layer(&payload("reg.io/app", OTHER, &[]));
    let r = verify_layer(&replayed, &subject("reg.io/app"), &keys, &any);
    assert_eq!(r.failed_check, Some(Check::ManifestDigest));
    assert_eq!(
        r.key_id.as_deref(),
        Some(s.trusted.id.as_str()),
        "the key is still named"
    );
    assert!(r.claims.is_some(), "the claims are still reported");
    let invalid = s.layer(&payload("reg.io/app", "invalid digest", &[]));
    let mut sub = subject("reg.io/app");
    sub.digest = "invalid digest".into();
    assert_eq!(
        verify_layer(&invalid, &sub, &keys, &any).failed_check,
        Some(Check::ManifestDigest)
    );
}

#[test]
fn identity_is_reported_by_default_and_checked_when_asked() {
    let s = signer();
    let keys = [s.trusted.clone()];
    let l = s.layer(&payload("reg.io/other", DIGEST, &[]));
    let r = verify_layer(&l, &subject("reg.io/app:v1"), &keys, &Policy::default());
    assert!(r.verified);
    assert_eq!(r.identity_matches, Some(false));
    let repo = Policy {
        identity: IdentityMode::Repository,
        ..Policy::default()
    };
    assert_eq!(
        check(&l, &keys, &repo, "reg.io/app:v1"),
        Some(Check::Identity)
    );
    let ok = s.layer(&payload("reg.io/app", DIGEST, &[]));
    assert_eq!(check(&ok, &keys, &repo, "reg.io/app:v1"), None);
    let exact = Policy {
        identity: IdentityMode::Exact,
        ..Policy::default()
    };
    assert_eq!(
        check(&ok, &keys, &exact, "reg.io/app:v1"),
        None,
        "cosign signs no tag"
    );
    let tagged = s.layer(&payload("reg.io/app:v1", DIGEST, &[]));
    assert_eq!(check(&tagged, &keys, &exact, "reg.io/app:v1"), None);
    assert_eq!(
        check(&tagged, &keys, &exact, "reg.io/app:v2"),
        Some(Check::Identity)
    );
    assert_eq!(check(&tagged, &keys, &repo, "reg.io/app:v2"), None);
    let no_ref = Subject {
        digest: DIGEST.into(),
        reference: None,
    };
    assert_eq!(
        verify_layer(&ok, &no_ref, &keys, &exact).failed_check,
        Some(Check::Identity)
    );
    assert_eq!(
        verify_layer(&ok, &no_ref, &keys, &Policy::default()).identity_matches,
        None
    );
}

#[test]
fn annotations_must_match_as_strings() {
    let s = signer();
    let keys = [s.trusted.clone()];
    let mut policy = Policy::default();
    policy.annotations.insert("env".into(), "prod".into());
    let with = s.layer(&payload(
        "reg.io/app",
        DIGEST,
        &[("env", "prod"), ("x", "y")],
    ));
    assert_eq!(check(&with, &keys, &policy, "reg.io/app"), None);
    let wrong = s.layer(&payload("reg.io/app", DIGEST, &[("env", "dev")]));
    assert_eq!(
        check(&wrong, &keys, &policy, "reg.io/app"),
        Some(Check::Annotations)
    );
    let none = s.layer(&payload("reg.io/app", DIGEST, &[]));
    assert_eq!(
        check(&none, &keys, &policy, "reg.io/app"),
        Some(Check::Annotations)
    );
    let number = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"reg.io/app"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"env":1}}}}"#
    );
    policy.annotations.insert("env".into(), "1".into());
    assert_eq!(
        check(&s.layer(number.as_bytes()), &keys, &policy, "reg.io/app"),
        Some(Check::Annotations)
    );
}

#[test]
fn verdicts_and_failure_kinds() {
    let a = signer();
    let b = signer();
    let keys = [a.trusted.clone(), b.trusted.clone()];
    let good_a = a.layer(&payload("reg.io/app", DIGEST, &[]));
    let good_b = b.layer(&payload("reg.io/app", DIGEST, &[]));
    let replay = a.layer(&payload("reg.io/app", OTHER, &[]));
    let mut attachment = a.layer(b"sbom");
    attachment.media_type = "text/spdx".into();
    let sub = subject("reg.io/app");
    let one = Policy::default();
    let two = Policy {
        threshold: 2,
        ..Policy::default()
    };

    let v = verify_layers(&[], &sub, &keys, &one);
    assert_eq!(v.failure, Some(Failure::NoSignatures));
    let v = verify_layers(std::slice::from_ref(&attachment), &sub, &keys, &one);
    assert_eq!(v.failure, Some(Failure::NoSignatures));
    assert_eq!(v.signatures.len(), 1, "the attachment is reported");
    let v = verify_layers(&[attachment.clone(), replay.clone()], &sub, &keys, &one);
    assert_eq!(v.failure, Some(Failure::NoMatchingSignatures));
    assert!(v.reason.unwrap().contains("manifest_digest"));
    let v = verify_layers(&[replay, good_a.clone(), attachment], &sub, &keys, &one);
    assert!(v.verified, "one good signature among bad ones is enough");
    let v = verify_layers(&[good_a.clone(), good_a.clone()], &sub, &keys, &two);
    assert_eq!(
        v.failure,
        Some(Failure::ThresholdNotMet),
        "the same key twice is one key"
    );
    let v = verify_layers(&[good_a, good_b], &sub, &keys, &two);
    assert!(v.verified);
    assert_eq!(v.keys_verified.len(), 2);

    let codes: Vec<u8> = [
        Failure::NoSignatures,
        Failure::ImageNotFound,
        Failure::NoMatchingSignatures,
        Failure::ThresholdNotMet,
    ]
    .iter()
    .map(|f| f.cosign_exit_code())
    .collect();
    assert_eq!(codes, [10, 11, 12, 12]);
}

#[test]
fn strict_base64() {
    assert_eq!(decode_base64_strict("aGk=").unwrap(), b"hi");
    assert_eq!(decode_base64_strict("").unwrap(), b"");
    for bad in ["aGk", "aGk==", "aGk=\n", "aG k=", "aGk-", "aGl=", "=aGk"] {
        assert!(decode_base64_strict(bad).is_err(), "{bad:?}");
    }
}
