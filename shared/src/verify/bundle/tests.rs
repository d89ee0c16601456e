//! Bundles built here per cosign v3's format, then verified and tampered with; and the bundle
//! real cosign 3.1.1 wrote (`shared/tests/data/cosign-v3/`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::{signature::Signer, DerSignature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::json;

use super::*;
use crate::crypto::PublicKey;

const DIGEST: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
const OTHER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn key() -> (SigningKey, TrustedKey) {
    let sk = SigningKey::random(&mut rand_core::OsRng);
    let pem = sk
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let trusted = TrustedKey::new(PublicKey::from_pem(pem.as_bytes()).unwrap(), "k.pub");
    (sk, trusted)
}

fn statement(digest: &str, predicate: &str, annotations: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": digest.trim_start_matches("sha256:")}, "annotations": annotations}],
        "predicateType": predicate,
        "predicate": {}
    }))
    .unwrap()
}

fn bundle(sk: &SigningKey, payload: &[u8]) -> Value {
    let sig: DerSignature = sk.sign(&pae(IN_TOTO_PAYLOAD_TYPE, payload));
    json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": STANDARD.encode(payload),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": STANDARD.encode(sig.as_bytes()), "keyid": ""}]
        }
    })
}

fn layer_of(bundle: &Value) -> SignatureLayer {
    let bytes = serde_json::to_vec(bundle).unwrap();
    SignatureLayer {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        digest: Some(super::super::sha256_digest(&bytes)),
        size: Some(bytes.len() as u64),
        payload: Some(bytes),
        ..SignatureLayer::default()
    }
}

fn subject() -> Subject {
    Subject {
        digest: DIGEST.into(),
        reference: None,
    }
}

fn run(bundle: &Value, keys: &[TrustedKey], policy: &Policy) -> SignatureResult {
    verify_bundle(&layer_of(bundle), &subject(), keys, policy, "reg.io/app:v1")
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/cosign-v3/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn the_bundle_cosign_3_1_1_wrote_verifies_with_its_annotations() {
    let pem = golden("cosign.pub");
    let trusted = TrustedKey::new(PublicKey::from_pem(&pem).unwrap(), "cosign.pub");
    let digest = String::from_utf8(golden("image-digest.txt")).unwrap();
    let subject = Subject {
        digest: digest.trim().to_string(),
        reference: None,
    };
    let manifest: Value = serde_json::from_slice(&golden("referrer.manifest.json")).unwrap();
    let mut layer = referrer_layer(&manifest, &subject.digest).unwrap();
    let bytes = golden("bundle.json");
    assert_eq!(
        layer.digest.as_deref(),
        Some(&*super::super::sha256_digest(&bytes))
    );
    layer.payload = Some(bytes.clone());
    let mut policy = Policy::default();
    policy.annotations.insert("team".into(), "blue".into());
    policy.annotations.insert("env".into(), "prod".into());
    let name = format!("127.0.0.1:5790/app@{}", subject.digest);
    let keys = std::slice::from_ref(&trusted);
    let r = verify_bundle(&layer, &subject, keys, &policy, &name);
    assert!(r.verified, "{r:?}");
    assert_eq!(r.claims.as_ref().unwrap().kind, COSIGN_SIGN_PREDICATE);
    assert_eq!(r.annotations, Some(json!({"env": "prod", "team": "blue"})));

    policy.annotations.insert("team".into(), "red".into());
    let r = verify_bundle(&layer, &subject, keys, &policy, &name);
    assert_eq!(r.failed_check, Some(Check::Annotations));
    let other = Subject {
        digest: OTHER.into(),
        reference: None,
    };
    assert_eq!(
        referrer_layer(&manifest, OTHER).unwrap_err().0,
        Check::ManifestDigest
    );
    let r = verify_bundle(&layer, &other, keys, &Policy::default(), &name);
    assert_eq!(r.failed_check, Some(Check::ManifestDigest));
    let (_, stranger) = key();
    let r = verify_bundle(&layer, &subject, &[stranger], &Policy::default(), &name);
    assert_eq!(r.failed_check, Some(Check::Signature));
}

#[test]
fn a_key_signed_bundle_verifies() {
    let (sk, trusted) = key();
    let b = bundle(
        &sk,
        &statement(DIGEST, COSIGN_SIGN_PREDICATE, json!({"env": "prod"})),
    );
    let mut policy = Policy::default();
    policy.annotations.insert("env".into(), "prod".into());
    let r = run(&b, std::slice::from_ref(&trusted), &policy);
    assert!(r.verified, "{r:?}");
    assert_eq!(r.key_id.as_deref(), Some(trusted.id.as_str()));
    assert_eq!(r.algorithm, Some("ECDSA_SHA_256"));
    let claims = r.claims.as_ref().unwrap();
    assert_eq!(claims.manifest_digest, DIGEST);
    assert_eq!(claims.kind, COSIGN_SIGN_PREDICATE);
    assert_eq!(claims.docker_reference, None);
    let p = r.payload.unwrap();
    assert_eq!(
        p.docker_reference, "reg.io/app:v1",
        "cosign v3 prints the image name"
    );
}

#[test]
fn bad_bundles_fail_for_their_reason() {
    let (sk, trusted) = key();
    let (other, _) = key();
    let keys = [trusted];
    let any = Policy::default();
    let good = statement(DIGEST, COSIGN_SIGN_PREDICATE, Value::Null);
    let check = |b: &Value, policy: &Policy| run(b, &keys, policy).failed_check;

    assert_eq!(check(&bundle(&other, &good), &any), Some(Check::Signature));
    let replay = bundle(&sk, &statement(OTHER, COSIGN_SIGN_PREDICATE, Value::Null));
    assert_eq!(check(&replay, &any), Some(Check::ManifestDigest));
    let attestation = bundle(
        &sk,
        &statement(DIGEST, "https://slsa.dev/provenance/v1", Value::Null),
    );
    assert_eq!(check(&attestation, &any), Some(Check::MediaType));

    let mut tampered = bundle(&sk, &good);
    let evil = statement(OTHER, COSIGN_SIGN_PREDICATE, Value::Null);
    tampered["dsseEnvelope"]["payload"] = STANDARD.encode(evil).into();
    assert_eq!(check(&tampered, &any), Some(Check::Signature));

    let mut padded = bundle(&sk, &good);
    let sig = padded["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_string();
    padded["dsseEnvelope"]["signatures"][0]["sig"] = format!("{sig}=").into();
    assert_eq!(check(&padded, &any), Some(Check::SignatureEncoding));

    let mut wrong_type = bundle(&sk, &good);
    wrong_type["dsseEnvelope"]["payloadType"] = "text/plain".into();
    assert_eq!(check(&wrong_type, &any), Some(Check::Payload));

    let mut v2 = bundle(&sk, &good);
    v2["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.2".into();
    assert_eq!(check(&v2, &any), Some(Check::MediaType));

    let message = json!({"mediaType": BUNDLE_MEDIA_TYPE, "messageSignature": {}});
    assert_eq!(check(&message, &any), Some(Check::Payload));

    let exact = Policy {
        identity: IdentityMode::Exact,
        ..Policy::default()
    };
    assert_eq!(check(&bundle(&sk, &good), &exact), Some(Check::Identity));
    let mut wants = Policy::default();
    wants.annotations.insert("env".into(), "prod".into());
    assert_eq!(check(&bundle(&sk, &good), &wants), Some(Check::Annotations));
}

#[test]
fn referrers_and_their_manifests() {
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": OTHER, "artifactType": "application/spdx+json"},
        {"digest": DIGEST, "artifactType": BUNDLE_MEDIA_TYPE, "annotations": {PREDICATE_ANNOTATION: COSIGN_SIGN_PREDICATE}},
        {"digest": "sha256:bad", "artifactType": BUNDLE_MEDIA_TYPE},
    ]});
    assert_eq!(
        bundle_referrers(&index),
        vec![DIGEST.to_string(), OTHER.to_string()],
        "every entry is read, claimed bundles first"
    );

    let manifest = |subject: &str, media_type: &str| {
        json!({"schemaVersion": 2, "subject": {"digest": subject},
               "layers": [{"mediaType": media_type, "digest": OTHER, "size": 100}]})
    };
    let l = referrer_layer(&manifest(DIGEST, BUNDLE_MEDIA_TYPE), DIGEST).unwrap();
    assert_eq!(l.digest.as_deref(), Some(OTHER));
    assert_eq!(
        referrer_layer(&manifest(OTHER, BUNDLE_MEDIA_TYPE), DIGEST)
            .unwrap_err()
            .0,
        Check::ManifestDigest
    );
    assert_eq!(
        referrer_layer(&manifest(DIGEST, "text/plain"), DIGEST)
            .unwrap_err()
            .0,
        Check::MediaType
    );
}
