//! cosign v3's signature format, the bytes only (no network): a Sigstore bundle v0.3 holding a
//! DSSE envelope of an in-toto statement, attached to the image as an OCI 1.1 referrer.
//!
//! What cosign 3.1.1 writes, read back from a real run against docker-registry 2.8
//! (`cosign sign --key K --use-signing-config=false --tlog-upload=false`; golden files in
//! `shared/tests/data/cosign-v3/`):
//!
//! - the **referrer manifest**, pushed by digest (no tag): an OCI image manifest with top-level
//!   `artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`, config the empty
//!   descriptor (`application/vnd.oci.empty.v1+json`, blob `{}`) that *itself* carries the same
//!   `artifactType`, one layer of the bundle media type (no layer annotations), annotations
//!   `dev.sigstore.bundle.content: dsse-envelope`, `dev.sigstore.bundle.predicateType:
//!   https://sigstore.dev/cosign/sign/v1`, `org.opencontainers.image.created`, and `subject` =
//!   the image's descriptor;
//! - on a registry without the referrers API, the **tag-schema fallback**: an OCI index at tag
//!   `sha256-<hex>` (no `.sig`) listing the referrers. Debian's cosign 3.1.1 gives the entry
//!   `artifactType` `application/vnd.oci.empty.v1+json` (the config's media type) and no
//!   annotations, so **an index entry's claims are not evidence**: readers judge each referrer
//!   by its own manifest ([`classify`]);
//! - the **bundle**: `{"mediaType": BUNDLE, "verificationMaterial": {"publicKey": {"hint":
//!   b64(sha256(SPKI DER))}}, "dsseEnvelope": {"payload": b64, "payloadType":
//!   "application/vnd.in-toto+json", "signatures": [{"sig": b64 DER}]}}` (no `tlogEntries`, no
//!   `keyid`), written by protojson with `", "` separators, so its bytes are never compared;
//! - the **statement**: `{"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest":
//!   {"sha256": HEX}, "annotations": {-a k=v}}], "predicateType":
//!   "https://sigstore.dev/cosign/sign/v1", "predicate": {}}`;
//! - the signature is over DSSE's pre-authentication encoding ([`pae`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::error::Error;

/// Media type (and artifact type) of a Sigstore bundle v0.3, as cosign writes it.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The other spelling of the v0.3 media type the bundle spec allows (sigstore-go reads both).
pub const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type cosign writes.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// in-toto statement types accepted.
pub const STATEMENT_TYPES: [&str; 2] = [STATEMENT_V1, "https://in-toto.io/Statement/v0.1"];
/// The predicate type of a cosign v3 image signature.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Referrer manifest annotation naming the bundle's predicate type.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
/// Referrer manifest annotation naming the bundle's content (`dsse-envelope`).
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
/// Referrer manifest annotation with the creation time (RFC 3339, UTC, seconds).
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The empty config of an OCI artifact: media type, and the digest of its blob `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// OCI image manifest and index media types.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Largest bundle read (a key-signed bundle is about 1 KiB; with a certificate chain a few).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether `media_type` names a Sigstore bundle v0.3 (either spelling).
pub fn is_bundle_media_type(media_type: &str) -> bool {
    media_type == BUNDLE_MEDIA_TYPE || media_type == BUNDLE_MEDIA_TYPE_ALT
}

/// What a referrer manifest is, judged from the manifest itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Referrer {
    /// A Sigstore bundle whose predicate (when the manifest names one) is an image signature
    Signature,
    /// A Sigstore bundle of another predicate type (`cosign attest`): not a signature
    Attestation(String),
    /// Anything else (an SBOM, a legacy-format referrer, an index...)
    Other,
}

/// Classifies a referrer manifest by what it says about itself: its `artifactType`, its config
/// descriptor's `artifactType` or media type, or its layers' media type, whichever names a
/// bundle; then the predicate type annotation, when present, tells signatures from
/// attestations. The index entry that led here is not consulted.
pub fn classify(manifest: &Value) -> Referrer {
    let s = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .is_some_and(is_bundle_media_type)
    };
    let config = manifest.get("config");
    let layer_is_bundle = manifest
        .get("layers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|l| s(Some(l), "mediaType")));
    let is_bundle = s(Some(manifest), "artifactType")
        || s(config, "artifactType")
        || s(config, "mediaType")
        || layer_is_bundle;
    if !is_bundle {
        return Referrer::Other;
    }
    match manifest
        .get("annotations")
        .and_then(|a| a.get(PREDICATE_ANNOTATION))
        .and_then(Value::as_str)
    {
        Some(p) if p != COSIGN_SIGN_PREDICATE => Referrer::Attestation(p.to_string()),
        _ => Referrer::Signature,
    }
}

/// The digests an index of referrers (the referrers API's answer, or the tag-schema fallback
/// index) lists, each once, at most `max`. Entries are only ordered by their claims (those
/// claiming a bundle first, then those claiming nothing or the empty type, then the rest),
/// never dropped for them: [`classify`] decides on the manifest.
pub fn referrer_digests(index: &Value, max: usize) -> Vec<String> {
    let Some(list) = index.get("manifests").and_then(Value::as_array) else {
        return Vec::new();
    };
    let rank = |m: &Value| match m.get("artifactType").and_then(Value::as_str) {
        Some(t) if is_bundle_media_type(t) => 0,
        None | Some("") | Some(EMPTY_MEDIA_TYPE) => 1,
        Some(_) => 2,
    };
    let mut entries: Vec<(usize, &str)> = list
        .iter()
        .filter_map(|m| {
            let d = m.get("digest").and_then(Value::as_str)?;
            crate::payload::is_sha256_digest(d).then_some((rank(m), d))
        })
        .collect();
    entries.sort_by_key(|(rank, _)| *rank);
    let mut out: Vec<String> = Vec::new();
    for (_, d) in entries {
        if out.len() == max {
            break;
        }
        if !out.iter().any(|o| o == d) {
            out.push(d.to_string());
        }
    }
    out
}

// ---- writing (what `payload-for --format bundle`, `kms-sign` and `attach-sig` produce) ----

/// The in-toto statement cosign 3.1.1 signs for `digest` (`sha256:<hex>`), `-a` annotations in
/// `subject[0].annotations` (left out when there are none, as protojson leaves out an empty
/// struct). Compact JSON; readers never compare statement bytes.
pub fn statement(digest: &str, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let mut subject = json!({"digest": {"sha256": hex}});
    if !annotations.is_empty() {
        subject["annotations"] = annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>()
            .into();
    }
    serde_json::to_vec(&json!({
        "_type": STATEMENT_V1,
        "subject": [subject],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }))
    .expect("a statement serializes")
}

/// What a statement claims, read strictly enough to sign or attach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementClaims {
    /// `sha256:<hex>` of every subject with a sha256 digest
    pub digests: Vec<String>,
    pub predicate_type: String,
}

/// Reads an in-toto statement: its type, its subjects' sha256 digests, its predicate type.
pub fn parse_statement(bytes: &[u8]) -> Result<StatementClaims, Error> {
    let bad = |m: String| Error::new("bad_payload", m);
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("the statement is not JSON: {e}")))?;
    let t = v.get("_type").and_then(Value::as_str).unwrap_or("");
    if !STATEMENT_TYPES.contains(&t) {
        return Err(bad(format!("statement type {t:?} is not in-toto")));
    }
    let digests: Vec<String> = v
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("digest")?.get("sha256")?.as_str())
        .map(|h| format!("sha256:{h}"))
        .collect();
    if digests.is_empty() {
        return Err(bad("the statement has no sha256 subject".into()));
    }
    Ok(StatementClaims {
        digests,
        predicate_type: v
            .get("predicateType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

/// `publicKey.hint` as cosign writes it: base64 of the sha256 of the public key's DER SPKI,
/// from sigtrail's `key_id` (that sha256 in hex).
pub fn hint_of_key_id(key_id: &str) -> Option<String> {
    let raw = hex::decode(key_id).ok().filter(|r| r.len() == 32)?;
    Some(STANDARD.encode(raw))
}

/// The bundle cosign 3.1.1 writes for a key signature without a transparency log: DSSE
/// envelope of `statement` with one signature, `publicKey.hint`, no `tlogEntries`, no `keyid`.
pub fn bundle(statement: &[u8], signature: &[u8], hint: Option<&str>) -> Vec<u8> {
    let mut material = Map::new();
    if let Some(h) = hint {
        material.insert("publicKey".into(), json!({ "hint": h }));
    }
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": STANDARD.encode(statement),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": STANDARD.encode(signature)}],
        },
    }))
    .expect("a bundle serializes")
}

/// A descriptor: media type, size, digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

/// The referrer manifest for `bundle` about `subject`, as cosign 3.1.1 writes it (field order
/// schemaVersion, mediaType, config, layers, annotations, subject, artifactType; `created` is
/// RFC 3339 UTC to the second).
pub fn referrer_manifest(bundle: &[u8], subject: &Descriptor, created: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "size": 2, "digest": EMPTY_DIGEST,
                   "artifactType": BUNDLE_MEDIA_TYPE},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "size": bundle.len(),
                    "digest": crate::registry::sha256_digest(bundle)}],
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_ANNOTATION: COSIGN_SIGN_PREDICATE,
            CREATED_ANNOTATION: created,
        },
        "subject": {"mediaType": subject.media_type, "size": subject.size,
                    "digest": subject.digest},
        "artifactType": BUNDLE_MEDIA_TYPE,
    }))
    .expect("a manifest serializes")
}

/// The tag-schema fallback index with `manifest` (a referrer, exact bytes) listed: `existing`
/// (the index at `sha256-<hex>`, when there is one) with the entry appended, or a new index.
/// The entry says what the manifest says (`artifactType`, `annotations`), as the OCI spec asks.
/// `None` when it is listed already (nothing to write).
pub fn index_with(existing: Option<&Value>, manifest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let digest = crate::registry::sha256_digest(manifest);
    let m: Value = serde_json::from_slice(manifest)
        .map_err(|e| Error::new("internal", format!("referrer manifest: {e}")))?;
    let mut index = match existing {
        Some(v) if v.get("manifests").is_some_and(Value::is_array) => v.clone(),
        Some(_) => {
            return Err(Error::new(
                "registry",
                "the referrers tag holds something that is not an index; not overwriting it",
            ))
        }
        None => json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let list = index["manifests"].as_array_mut().expect("checked above");
    if list
        .iter()
        .any(|e| e.get("digest").and_then(Value::as_str) == Some(&digest))
    {
        return Ok(None);
    }
    let mut entry = json!({"mediaType": OCI_MANIFEST, "size": manifest.len(), "digest": digest});
    if let Some(t) = m.get("artifactType") {
        entry["artifactType"] = t.clone();
    }
    if let Some(a) = m.get("annotations") {
        entry["annotations"] = a.clone();
    }
    list.push(entry);
    Ok(Some(
        serde_json::to_vec(&index).expect("an index serializes"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn golden(name: &str) -> Value {
        let path = format!("{}/tests/data/cosign-v3/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn pae_is_dsse_v1() {
        assert_eq!(
            pae("application/example", b"hello world"),
            b"DSSEv1 19 application/example 11 hello world"
        );
    }

    #[test]
    fn what_cosign_3_1_1_wrote_is_a_signature_whatever_its_index_entry_says() {
        let index = golden("fallback-index.json");
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["artifactType"], EMPTY_MEDIA_TYPE,
            "Debian's cosign 3.1.1 names the config's type in the entry"
        );
        let manifest = golden("referrer.manifest.json");
        assert_eq!(
            entry["digest"].as_str(),
            Some(&*crate::registry::sha256_digest(
                &std::fs::read(format!(
                    "{}/tests/data/cosign-v3/referrer.manifest.json",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap()
            ))
        );
        assert_eq!(classify(&manifest), Referrer::Signature);
        assert_eq!(
            referrer_digests(&index, 32),
            vec![entry["digest"].as_str().unwrap()]
        );
    }

    #[test]
    fn a_manifest_is_judged_by_any_of_its_own_bundle_claims() {
        let only = |k: &str| -> Value {
            let mut m = json!({"schemaVersion": 2, "config": {"mediaType": EMPTY_MEDIA_TYPE}, "layers": [{"mediaType": "text/plain"}]});
            match k {
                "artifactType" => m["artifactType"] = BUNDLE_MEDIA_TYPE.into(),
                "config.artifactType" => m["config"]["artifactType"] = BUNDLE_MEDIA_TYPE.into(),
                "config.mediaType" => m["config"]["mediaType"] = BUNDLE_MEDIA_TYPE_ALT.into(),
                "layer" => m["layers"][0]["mediaType"] = BUNDLE_MEDIA_TYPE.into(),
                _ => {}
            }
            m
        };
        for k in [
            "artifactType",
            "config.artifactType",
            "config.mediaType",
            "layer",
        ] {
            assert_eq!(classify(&only(k)), Referrer::Signature, "{k}");
        }
        assert_eq!(classify(&only("none")), Referrer::Other);
        let mut att = only("artifactType");
        att["annotations"] = json!({PREDICATE_ANNOTATION: "https://slsa.dev/provenance/v1"});
        assert_eq!(
            classify(&att),
            Referrer::Attestation("https://slsa.dev/provenance/v1".into())
        );
        assert_eq!(classify(&json!("not an object")), Referrer::Other);
    }

    #[test]
    fn referrer_digests_are_ordered_by_claim_never_filtered() {
        const A: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";
        const B: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        const C: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let index = json!({"manifests": [
            {"digest": A, "artifactType": "application/spdx+json"},
            {"digest": B, "artifactType": EMPTY_MEDIA_TYPE},
            {"digest": C, "artifactType": BUNDLE_MEDIA_TYPE},
            {"digest": C},
            {"digest": "sha256:bad", "artifactType": BUNDLE_MEDIA_TYPE},
        ]});
        assert_eq!(referrer_digests(&index, 32), vec![C, B, A]);
        assert_eq!(referrer_digests(&index, 2), vec![C, B]);
        assert!(referrer_digests(&json!({}), 32).is_empty());
    }

    #[test]
    fn what_is_written_reads_back_as_cosign_wrote_it() {
        let digest = "sha256:4eba667765db0c65aee9485a38d0c33945832c79cb3300144b8831a6c7dc2eea";
        let mut a = BTreeMap::new();
        a.insert("team".to_string(), "blue".to_string());
        let st = statement(digest, &a);
        let golden_bundle = golden("bundle.json");
        let cosign_statement = STANDARD
            .decode(golden_bundle["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let ours: Value = serde_json::from_slice(&st).unwrap();
        let mut theirs: Value = serde_json::from_slice(&cosign_statement).unwrap();
        theirs["subject"][0]["annotations"] = json!({"team": "blue"});
        assert_eq!(ours, theirs, "the same statement as cosign's, -a team=blue");
        assert_eq!(
            parse_statement(&st).unwrap(),
            StatementClaims {
                digests: vec![digest.into()],
                predicate_type: COSIGN_SIGN_PREDICATE.into()
            }
        );
        let bare: Value = serde_json::from_slice(&statement(digest, &BTreeMap::new())).unwrap();
        assert!(bare["subject"][0].get("annotations").is_none());
        assert!(parse_statement(b"{}").is_err());

        let hint = golden_bundle["verificationMaterial"]["publicKey"]["hint"].clone();
        let b: Value = serde_json::from_slice(&bundle(&st, b"sig", hint.as_str())).unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&b), keys(&golden_bundle));
        assert_eq!(
            keys(&b["dsseEnvelope"]),
            keys(&golden_bundle["dsseEnvelope"])
        );
        assert_eq!(
            b["verificationMaterial"],
            golden_bundle["verificationMaterial"]
        );

        let golden_manifest = golden("referrer.manifest.json");
        let subject = Descriptor {
            media_type: OCI_MANIFEST.into(),
            size: 401,
            digest: digest.into(),
        };
        let created = golden_manifest["annotations"][CREATED_ANNOTATION]
            .as_str()
            .unwrap()
            .to_string();
        let bundle_bytes = std::fs::read(format!(
            "{}/tests/data/cosign-v3/bundle.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let manifest = referrer_manifest(&bundle_bytes, &subject, &created);
        let golden_bytes = std::fs::read(format!(
            "{}/tests/data/cosign-v3/referrer.manifest.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(
            String::from_utf8(manifest.clone()).unwrap(),
            String::from_utf8(golden_bytes).unwrap(),
            "byte for byte the referrer manifest cosign 3.1.1 pushed"
        );

        let first = index_with(None, &manifest).unwrap().unwrap();
        let first: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["manifests"][0]["artifactType"], BUNDLE_MEDIA_TYPE);
        assert_eq!(index_with(Some(&first), &manifest).unwrap(), None);
        let other = referrer_manifest(b"{}", &subject, &created);
        let two: Value =
            serde_json::from_slice(&index_with(Some(&first), &other).unwrap().unwrap()).unwrap();
        assert_eq!(two["manifests"].as_array().unwrap().len(), 2);
        assert!(index_with(Some(&json!({"layers": []})), &other).is_err());
        assert_eq!(
            hint_of_key_id(&"ab".repeat(32)).unwrap().len(),
            44,
            "base64 of 32 bytes"
        );
        assert_eq!(hint_of_key_id("zz"), None);
        let pem = std::fs::read(format!(
            "{}/tests/data/cosign-v3/cosign.pub",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let key_id = crate::crypto::PublicKey::from_pem(&pem).unwrap().key_id();
        assert_eq!(
            hint_of_key_id(&key_id).as_deref(),
            hint.as_str(),
            "the hint cosign 3.1.1 wrote for its key"
        );
    }
}
