//! Fuzz target: the signature decoder and verifier, with fixed keys over arbitrary bytes.
//!
//! Input: the first line is a signature annotation (strict standard base64), the rest is the
//! payload blob. It goes through check-sig's per-layer check (`verify_layer`: strict base64,
//! DER ECDSA / RSA PKCS#1 v1.5 / PSS verification with a P-256, a P-384 and an RSA-2048 key from
//! the vectors, payload parsing, claims) and, directly, through `PublicKey::verify` with every
//! algorithm, the raw line taken as signature bytes too. The same bytes also go to the public
//! key reader. A strict base64 string that decodes must be the canonical encoding of its bytes.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use sigtrail::cosign::SIMPLE_SIGNING_MEDIA_TYPE;
use sigtrail::crypto::{Algorithm, PublicKey};
use sigtrail::verify::{
    decode_base64_strict, sha256_digest, verify_layer, Policy, SignatureLayer, Subject, TrustedKey,
};

const KEYS: [&[u8]; 3] = [
    include_bytes!("../../shared/tests/data/vectors/valid/rs-01-busybox-p256/key.pem"),
    include_bytes!("../../shared/tests/data/vectors/valid/ratify-04-p384-sha256/key.pem"),
    include_bytes!(
        "../../shared/tests/data/vectors/valid/rs-02-suse-rsa2048-optional-creator/key.pem"
    ),
];

fn keys() -> &'static [TrustedKey] {
    static KEYS_READ: OnceLock<Vec<TrustedKey>> = OnceLock::new();
    KEYS_READ.get_or_init(|| {
        KEYS.iter()
            .map(|pem| TrustedKey::new(PublicKey::from_bytes(pem).expect("vector key"), "vector"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = PublicKey::from_bytes(data);

    let (line, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(line);
    let decoded = decode_base64_strict(&text);
    if let Ok(bytes) = &decoded {
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(bytes),
            text,
            "strict base64 accepted a non-canonical encoding"
        );
    }

    for key in keys() {
        for sig in [Some(line), decoded.as_deref().ok()].into_iter().flatten() {
            if let Ok(alg) = key.key.verify(payload, sig, None) {
                assert!(key.key.supports(alg));
            }
            for alg in Algorithm::ALL {
                match key.key.verify(payload, sig, Some(alg)) {
                    Ok(got) => assert_eq!(got, alg),
                    Err(e) => assert!(!e.message.is_empty()),
                }
            }
        }
    }

    let digest = sigtrail::payload::Payload::parse(payload)
        .map(|p| p.manifest_digest)
        .unwrap_or_else(|_| sha256_digest(payload));
    let layer = SignatureLayer {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_string(),
        digest: Some(sha256_digest(payload)),
        size: Some(payload.len() as u64),
        payload: Some(payload.to_vec()),
        signature: Some(text.into_owned()),
        ..SignatureLayer::default()
    };
    let subject = Subject {
        digest,
        reference: None,
    };
    let result = verify_layer(&layer, &subject, keys(), &Policy::default());
    if result.verified {
        assert!(decoded.is_ok() && result.key_id.is_some(), "{result:?}");
    } else {
        assert!(
            result.failed_check.is_some() && result.reason.is_some(),
            "{result:?}"
        );
    }
});
