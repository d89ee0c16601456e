//! Fuzz target: manifest parsing, on arbitrary bytes as a registry might answer them.
//!
//! cosign signature manifests (`SignatureManifest::parse`, what attach-sig appends to and
//! check-sig reads), the generic OCI/Docker manifest and index reading of the registry client
//! (media type detection, `index_entries`), and bundle referrer manifests and indexes. A
//! signature manifest that parses must write back (what attach-sig pushes) to bytes that parse
//! to the same manifest, and appending its own layers again adds nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sigtrail::cosign::{layer_summary, SignatureManifest};
use sigtrail::registry::{media_type_of, sha256_digest, Manifest};

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
];

fuzz_target!(|data: &[u8]| {
    // The registry client's view: any manifest or index.
    for content_type in CONTENT_TYPES {
        let manifest = Manifest {
            bytes: data.to_vec(),
            digest: sha256_digest(data),
            media_type: media_type_of(content_type, data),
        };
        let _ = manifest.is_index();
        if let Ok(entries) = manifest.index_entries() {
            for e in entries {
                assert!(sigtrail::payload::is_sha256_digest(&e.digest), "{e:?}");
            }
        }
    }
    if let Ok(json) = serde_json::from_slice::<Value>(data) {
        let _ = sigtrail::verify::bundle::bundle_referrers(&json);
        let subject = json
            .get("subject")
            .and_then(|s| s.get("digest"))
            .and_then(Value::as_str)
            .unwrap_or("sha256:0000000000000000000000000000000000000000000000000000000000000000");
        let _ = sigtrail::verify::bundle::referrer_layer(&json, subject);
    }

    // cosign's signature manifest.
    let parsed = match SignatureManifest::parse(data) {
        Ok(m) => m,
        Err(e) => {
            assert!(
                matches!(e.kind, "bad_signature_manifest" | "too_large"),
                "{e:?}"
            );
            assert!(!e.message.is_empty());
            return;
        }
    };
    for l in parsed.signatures() {
        let _ = l.signature();
        let _ = layer_summary(l);
    }
    let (config, bytes) = parsed.to_bytes();
    serde_json::from_slice::<Value>(&config).expect("the config written is JSON");
    let again = SignatureManifest::parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "{parsed:?} writes {:?}, which does not parse: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        parsed,
        again,
        "written as {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(again.to_bytes().1, bytes, "writing is not stable");
    let mut appended = again;
    for l in parsed.layers.iter().cloned() {
        assert!(
            !appended.push(l).expect("no new layer"),
            "a layer already present was added"
        );
    }
    assert_eq!(appended, parsed);
});
