//! Verification of cosign signatures: the checks `check-sig` runs on every signature layer, and
//! the result it writes into the record as `verification`.
//!
//! The rules are cosign's (`cosign verify --key K --insecure-ignore-tlog`) and a little stricter
//! where it is cheap, in this order for each layer of a signature manifest:
//!
//! 1. `media_type`: the layer is `application/vnd.dev.cosign.simplesigning.v1+json`; other layers
//!    are attachments, not signatures (reported, never counted);
//! 2. `too_large` / `blob_digest`: the blob is within [`MAX_PAYLOAD_BYTES`] and hashes to its
//!    descriptor's digest (and size);
//! 3. `signature_encoding`: the `dev.cosignproject.cosign/signature` annotation is strict standard
//!    base64 (canonical padding, no whitespace, no other characters, as Go's decoder or stricter);
//! 4. `signature`: some trusted key verifies the signature over the exact blob bytes;
//! 5. `payload`: the blob is a simple-signing payload (strict JSON, no duplicate keys, the three
//!    critical fields, the cosign type string);
//! 6. `manifest_digest`: its `docker-manifest-digest` is the image's digest;
//! 7. `identity`: its `docker-reference` matches the image under [`IdentityMode`] (reported
//!    always, required only with `repository` or `exact`);
//! 8. `annotations`: each `-a k=v` is a string `k` with value `v` in `optional`.
//!
//! The image passes when at least [`Policy::threshold`] distinct trusted keys have a layer that
//! passes every check. When it does not, `failure` says why, mirroring cosign's exit codes
//! ([`Failure::cosign_exit_code`]).

pub mod bundle;
pub mod cosign_output;
pub mod online;
pub mod reference;
pub mod tool;

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use crate::crypto::PublicKey;
use crate::payload::{is_sha256_digest, Payload};

pub use crate::payload::MAX_PAYLOAD_BYTES;
pub use reference::RefName;
pub use tool::CheckSig;

/// Media type of a cosign simple-signing layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Largest signature manifest read (cosign's manifests are a few hundred bytes per signature).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Most layers read from one signature manifest.
pub const MAX_LAYERS: usize = 1000;
/// Longest signature annotation accepted (an RSA-8192 signature is 1368 base64 characters).
pub const MAX_SIGNATURE_CHARS: usize = 16 * 1024;

/// How the signed `docker-reference` must relate to the image being verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMode {
    /// Report whether it matches, never require it (what cosign does)
    #[default]
    Any,
    /// Same registry and repository (a tag in the signed reference is ignored)
    Repository,
    /// Same registry and repository, and when the signed reference carries a tag, the image's
    /// reference carries the same tag (cosign signs references without a tag, so for cosign
    /// signatures this is the same as `repository`)
    Exact,
}

/// What an image must satisfy, beyond a valid signature by a trusted key.
#[derive(Debug, Clone)]
pub struct Policy {
    pub identity: IdentityMode,
    /// `-a k=v`: string annotations every accepted signature must carry in `optional`
    pub annotations: BTreeMap<String, String>,
    /// Distinct trusted keys that must have signed (at least 1)
    pub threshold: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            identity: IdentityMode::Any,
            annotations: BTreeMap::new(),
            threshold: 1,
        }
    }
}

/// A public key the operator trusts, loaded once per run.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// `key_id`: sha256 hex of the key's SubjectPublicKeyInfo DER
    pub id: String,
    /// Where it came from (file path or `awskms://` URI), for messages
    pub source: String,
    pub key: PublicKey,
}

impl TrustedKey {
    pub fn new(key: PublicKey, source: impl Into<String>) -> Self {
        Self {
            id: key.key_id(),
            source: source.into(),
            key,
        }
    }
}

/// The image whose signatures are checked.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `sha256:<hex>` of the image manifest
    pub digest: String,
    /// The image's reference (registry/repository and maybe tag) for identity checks
    pub reference: Option<RefName>,
}

/// One signature candidate: a layer of a signature manifest (or a record's own payload and
/// signature in offline mode).
#[derive(Debug, Clone, Default)]
pub struct SignatureLayer {
    pub media_type: String,
    /// The descriptor's digest (`None` when the payload did not come from a registry)
    pub digest: Option<String>,
    /// The descriptor's size
    pub size: Option<u64>,
    /// The blob bytes; `None` when not fetched (layers that are not signatures)
    pub payload: Option<Vec<u8>>,
    /// The signature annotation as found
    pub signature: Option<String>,
    /// The layer's other annotations worth reporting (the RFC 3161 timestamp)
    pub annotations: BTreeMap<String, String>,
    /// Why the blob could not be read (too large, wrong digest, missing), found before any
    /// signature check
    pub unreadable: Option<(Check, String)>,
}

/// Which check a signature failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    MediaType,
    TooLarge,
    BlobDigest,
    SignatureEncoding,
    Signature,
    Payload,
    ManifestDigest,
    Identity,
    Annotations,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::MediaType => "media_type",
            Check::TooLarge => "too_large",
            Check::BlobDigest => "blob_digest",
            Check::SignatureEncoding => "signature_encoding",
            Check::Signature => "signature",
            Check::Payload => "payload",
            Check::ManifestDigest => "manifest_digest",
            Check::Identity => "identity",
            Check::Annotations => "annotations",
        }
    }
}

/// Why an image did not verify; the `failure` field and the summary's kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// No signature at all: no signature manifest, or no simple-signing layer in it (cosign 10)
    NoSignatures,
    /// The image manifest does not exist (cosign 11)
    ImageNotFound,
    /// Signatures exist but none passes every check with a trusted key (cosign 12)
    NoMatchingSignatures,
    /// Some signatures pass, but from fewer distinct trusted keys than `--threshold` (cosign has
    /// no threshold; its closest exit code is 12)
    ThresholdNotMet,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::NoSignatures => "no_signatures",
            Failure::ImageNotFound => "image_not_found",
            Failure::NoMatchingSignatures => "no_matching_signatures",
            Failure::ThresholdNotMet => "threshold_not_met",
        }
    }

    /// The exit status `cosign verify` gives for this failure (`cmd/cosign/errors`).
    pub fn cosign_exit_code(self) -> u8 {
        match self {
            Failure::NoSignatures => 10,
            Failure::ImageNotFound => 11,
            Failure::NoMatchingSignatures | Failure::ThresholdNotMet => 12,
        }
    }
}

/// The decoded critical claims of a payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claims {
    /// `critical.identity.docker-reference` (bundles sign none)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_reference: Option<String>,
    pub manifest_digest: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The result for one layer: an element of `verification.signatures`.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureResult {
    pub verified: bool,
    /// The trusted key whose signature verified (even if a later check failed)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// How it verified (`ECDSA_SHA_256`, `ECDSA_SHA_384`, `RSASSA_PKCS1_V1_5_SHA_256`, ...)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_check: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The layer's digest in the signature manifest
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_digest: Option<String>,
    /// The OCI 1.1 referrer manifest a bundle came from (cosign v3)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_manifest: Option<String>,
    /// Only for layers that are not simple signing
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
    /// The payload's `optional` map (`null` when it has none)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    /// Whether `docker-reference` matches the image under the `--identity` rule (or, with `any`,
    /// under `repository`); absent when the image's reference is unknown
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_matches: Option<bool>,
    /// Layer annotations beside the signature (`dev.sigstore.cosign/rfc3161timestamp`, ...)
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub layer_annotations: BTreeMap<String, String>,
    /// The verified payload bytes, kept for `--output cosign`; never serialized
    #[serde(skip)]
    pub payload: Option<Payload>,
    /// A verified `.sig` layer's payload and signature, base64 as the registry holds them:
    /// what `check-sig --keep-signatures` hands on to `attach-sig --copy-to`
    #[serde(skip)]
    pub kept: Option<(String, String)>,
}

impl SignatureResult {
    pub(crate) fn new(layer: &SignatureLayer) -> Self {
        Self {
            verified: false,
            key_id: None,
            algorithm: None,
            failed_check: None,
            reason: None,
            layer_digest: layer.digest.clone(),
            bundle_manifest: None,
            media_type: None,
            claims: None,
            annotations: None,
            identity_matches: None,
            layer_annotations: layer.annotations.clone(),
            payload: None,
            kept: None,
        }
    }

    pub(crate) fn fail(mut self, check: Check, reason: impl Into<String>) -> Self {
        self.verified = false;
        self.failed_check = Some(check);
        self.reason = Some(reason.into());
        self
    }
}

/// The `verification` field of a record.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// One line a person can read when `verified` is false
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Distinct trusted keys with a fully verified signature
    pub keys_verified: Vec<String>,
    /// Where the signatures were read: the record itself (`--offline`) or the registry
    pub source: Source,
    /// The signature manifest read (`sha256-<hex>.sig`), when there was one
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_manifest: Option<ManifestRef>,
    /// Sigstore bundles read as OCI 1.1 referrers of the image (manifest digests)
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles: Vec<ManifestRef>,
    pub signatures: Vec<SignatureResult>,
}

/// Where `check-sig` read the signatures of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The record's own `payload` and `signature` (`--offline`)
    #[default]
    Record,
    /// The image's registry (signature manifest and referrers)
    Registry,
}

/// A manifest in a registry: where signatures were found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestRef {
    /// `host/repository`
    pub repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub digest: String,
}

impl Verification {
    /// A failure before any signature was looked at (`image_not_found`, `no_signatures`).
    pub fn failed(failure: Failure, reason: impl Into<String>) -> Self {
        Self {
            verified: false,
            failure: Some(failure),
            reason: Some(reason.into()),
            keys_verified: Vec::new(),
            source: Source::Record,
            signature_manifest: None,
            bundles: Vec::new(),
            signatures: Vec::new(),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Decodes standard base64 strictly: only the 64-character alphabet, canonical `=` padding to a
/// multiple of 4, zero trailing bits, no whitespace. Go's `base64.StdEncoding` (cosign,
/// containers/image) rejects everything this rejects except whitespace and trailing bits.
pub fn decode_base64_strict(s: &str) -> Result<Vec<u8>, String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
    {
        return Err(format!("invalid base64 character {c:?}"));
    }
    if !s.len().is_multiple_of(4) {
        return Err(format!(
            "base64 length {} is not a multiple of 4 (truncated or extra padding)",
            s.len()
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("invalid base64: {e}"))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Runs every check on one layer.
pub fn verify_layer(
    layer: &SignatureLayer,
    subject: &Subject,
    keys: &[TrustedKey],
    policy: &Policy,
) -> SignatureResult {
    let result = SignatureResult::new(layer);
    if layer.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        let mut result = result.fail(
            Check::MediaType,
            format!(
                "layer media type {:?} is not {SIMPLE_SIGNING_MEDIA_TYPE}: an attachment, not a signature",
                layer.media_type
            ),
        );
        result.media_type = Some(layer.media_type.clone());
        return result;
    }
    if let Some((check, reason)) = &layer.unreadable {
        return result.fail(*check, reason.clone());
    }
    let Some(blob) = layer.payload.as_deref() else {
        return result.fail(Check::Payload, "the payload blob was not read");
    };
    if blob.len() > MAX_PAYLOAD_BYTES || layer.size.is_some_and(|s| s > MAX_PAYLOAD_BYTES as u64) {
        return result.fail(
            Check::TooLarge,
            format!("payload larger than {MAX_PAYLOAD_BYTES} bytes"),
        );
    }
    if let Some(want) = &layer.digest {
        let got = sha256_digest(blob);
        if &got != want {
            return result.fail(
                Check::BlobDigest,
                format!("payload blob hashes to {got}, its descriptor says {want}"),
            );
        }
    }
    if let Some(size) = layer.size {
        if size != blob.len() as u64 {
            return result.fail(
                Check::BlobDigest,
                format!(
                    "payload blob is {} bytes, its descriptor says {size}",
                    blob.len()
                ),
            );
        }
    }
    let Some(sig_b64) = layer.signature.as_deref() else {
        return result.fail(
            Check::SignatureEncoding,
            format!("layer has no {SIGNATURE_ANNOTATION} annotation"),
        );
    };
    if sig_b64.len() > MAX_SIGNATURE_CHARS {
        return result.fail(
            Check::TooLarge,
            format!("signature longer than {MAX_SIGNATURE_CHARS} characters"),
        );
    }
    let sig = match decode_base64_strict(sig_b64) {
        Ok(sig) => sig,
        Err(e) => return result.fail(Check::SignatureEncoding, format!("signature: {e}")),
    };
    if sig.is_empty() {
        return result.fail(Check::Signature, "signature is empty");
    }
    let mut errors = Vec::new();
    let Some((key, algorithm)) = keys
        .iter()
        .find_map(|k| match k.key.verify(blob, &sig, None) {
            Ok(alg) => Some((k, alg)),
            Err(e) => {
                errors.push(e.message);
                None
            }
        })
    else {
        let reason = match errors.as_slice() {
            [one] => one.clone(),
            _ => format!(
                "the signature does not verify with any of the {} trusted keys",
                keys.len()
            ),
        };
        return result.fail(Check::Signature, reason);
    };
    let mut result = result;
    result.key_id = Some(key.id.clone());
    result.algorithm = Some(algorithm.kms_name());
    let payload = match Payload::parse(blob) {
        Ok(p) => p,
        Err(e) => return result.fail(Check::Payload, e.message),
    };
    result.claims = Some(Claims {
        docker_reference: Some(payload.docker_reference.clone()),
        manifest_digest: payload.manifest_digest.clone(),
        kind: payload.kind.clone(),
    });
    result.annotations = Some(match &payload.optional {
        Some(map) => Value::Object(map.clone()),
        None => Value::Null,
    });
    let identity = subject.reference.as_ref().map(|image| {
        let signed = RefName::parse_lenient(&payload.docker_reference);
        match policy.identity {
            IdentityMode::Exact => signed.matches_exact(image),
            IdentityMode::Any | IdentityMode::Repository => signed.same_repository(image),
        }
    });
    result.identity_matches = identity;
    if !is_sha256_digest(&payload.manifest_digest) || payload.manifest_digest != subject.digest {
        return result.fail(
            Check::ManifestDigest,
            format!(
                "signed docker-manifest-digest {:?} is not the image digest {:?}",
                payload.manifest_digest, subject.digest
            ),
        );
    }
    if policy.identity != IdentityMode::Any {
        match (identity, &subject.reference) {
            (Some(true), _) => {}
            (_, Some(image)) => {
                return result.fail(
                    Check::Identity,
                    format!(
                        "signed docker-reference {:?} does not match {} under --identity {}",
                        payload.docker_reference,
                        image,
                        identity_name(policy.identity)
                    ),
                )
            }
            (_, None) => {
                return result.fail(
                    Check::Identity,
                    "the record names no image reference to check the signed identity against",
                )
            }
        }
    }
    if let Some(reason) = annotation_mismatch(&policy.annotations, payload.optional.as_ref()) {
        return result.fail(Check::Annotations, reason);
    }
    result.verified = true;
    result.payload = Some(payload);
    result.kept = Some((
        base64::engine::general_purpose::STANDARD.encode(blob),
        sig_b64.to_string(),
    ));
    result
}

fn identity_name(mode: IdentityMode) -> &'static str {
    match mode {
        IdentityMode::Any => "any",
        IdentityMode::Repository => "repository",
        IdentityMode::Exact => "exact",
    }
}

/// Why the required annotations are not all in `optional` as equal strings, if they are not.
fn annotation_mismatch(
    want: &BTreeMap<String, String>,
    optional: Option<&Map<String, Value>>,
) -> Option<String> {
    for (k, v) in want {
        match optional.and_then(|o| o.get(k)) {
            Some(Value::String(got)) if got == v => {}
            Some(got) => return Some(format!("annotation {k:?} is {got}, not {v:?}")),
            None => return Some(format!("annotation {k:?} is missing (want {v:?})")),
        }
    }
    None
}

/// Checks every layer and decides the image's verdict.
pub fn verify_layers(
    layers: &[SignatureLayer],
    subject: &Subject,
    keys: &[TrustedKey],
    policy: &Policy,
) -> Verification {
    let signatures: Vec<SignatureResult> = layers
        .iter()
        .map(|l| verify_layer(l, subject, keys, policy))
        .collect();
    decide(signatures, policy)
}

/// The verdict over per-layer results.
pub fn decide(signatures: Vec<SignatureResult>, policy: &Policy) -> Verification {
    let keys_verified: BTreeSet<String> = signatures
        .iter()
        .filter(|s| s.verified)
        .filter_map(|s| s.key_id.clone())
        .collect();
    let candidates = signatures
        .iter()
        .filter(|s| s.failed_check != Some(Check::MediaType))
        .count();
    let threshold = policy.threshold.max(1);
    let (failure, reason) = if keys_verified.len() >= threshold {
        (None, None)
    } else if candidates == 0 {
        let reason = if signatures.is_empty() {
            "no signatures found".to_string()
        } else {
            format!(
                "no signatures found ({} attached layers, none of them a simple-signing signature)",
                signatures.len()
            )
        };
        (Some(Failure::NoSignatures), Some(reason))
    } else if keys_verified.is_empty() {
        let mut reasons: Vec<String> = signatures
            .iter()
            .filter_map(|s| {
                Some(format!(
                    "{}: {}",
                    s.failed_check?.as_str(),
                    s.reason.as_deref()?
                ))
            })
            .collect();
        reasons.dedup();
        reasons.truncate(3);
        (
            Some(Failure::NoMatchingSignatures),
            Some(format!("no matching signatures: {}", reasons.join("; "))),
        )
    } else {
        (
            Some(Failure::ThresholdNotMet),
            Some(format!(
                "{} distinct trusted keys signed; --threshold needs {threshold}",
                keys_verified.len()
            )),
        )
    };
    Verification {
        verified: failure.is_none(),
        failure,
        reason,
        keys_verified: keys_verified.into_iter().collect(),
        source: Source::Record,
        signature_manifest: None,
        bundles: Vec::new(),
        signatures,
    }
}

#[cfg(test)]
mod tests;
