//! Reading and verifying cosign v3 signatures: Sigstore bundles attached to the image as OCI
//! 1.1 referrers (the format itself, as cosign 3.1.1 writes it, is in [`crate::bundle`]).
//!
//! The referrers are listed by the registry's referrers API (`GET /v2/NAME/referrers/DIGEST`)
//! where it has one, and by the tag-schema fallback index `sha256-<hex>` where it does not (or
//! where the API lists none: a registry upgraded after signing keeps the old index). Every
//! listed referrer's manifest is read (at most [`MAX_BUNDLES`], at once) and judged by what it
//! says itself ([`crate::bundle::classify`]): cosign 3.1.1's fallback entries claim
//! `application/vnd.oci.empty.v1+json`, so an entry's `artifactType` decides nothing.
//! Referrers that are not bundles (SBOMs...) or are attestations are skipped, not failures.
//!
//! A bundle signs no `docker-reference`, so `--identity repository|exact` cannot be satisfied by
//! one (reported as the `identity` check); with the default `any` it verifies like cosign v3.

use serde_json::Value;

use super::{
    decode_base64_strict, Check, Claims, IdentityMode, ManifestRef, Policy, SignatureLayer,
    SignatureResult, Subject, TrustedKey,
};
use crate::bundle::{classify, referrer_digests, Referrer};
pub use crate::bundle::{
    is_bundle_media_type, pae, BUNDLE_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, IN_TOTO_PAYLOAD_TYPE,
    MAX_BUNDLE_BYTES, PREDICATE_ANNOTATION, STATEMENT_TYPES,
};
use crate::error::Result;
use crate::payload::{is_sha256_digest, Payload};
use crate::reference::ImageRef;
use crate::registry::Registry;

/// Most referrers read per image.
pub const MAX_BUNDLES: usize = 32;

/// Finds the image's cosign v3 signature bundles and verifies each.
pub async fn fetch_and_verify(
    registry: &Registry,
    image: &ImageRef,
    subject: &Subject,
    keys: &[TrustedKey],
    policy: &Policy,
) -> Result<Vec<(ManifestRef, Vec<SignatureResult>)>> {
    let mut digests = match registry.get_referrers(image, &subject.digest).await? {
        Some(index) => referrer_digests(&index, MAX_BUNDLES),
        None => Vec::new(),
    };
    if digests.is_empty() {
        let tag = subject.digest.replace(':', "-");
        match registry.get_manifest(&image.with_tag(&tag)).await {
            Ok(m) => digests = bundle_referrers(&m.json()?),
            Err(e) if e.kind == "not_found" => {}
            Err(e) => return Err(e),
        }
    }
    let image_name = display_name(image, subject);
    let found = futures::future::join_all(
        digests
            .iter()
            .map(|d| one_referrer(registry, image, d, subject, keys, policy, &image_name)),
    )
    .await;
    let mut out = Vec::new();
    for (digest, result) in digests.into_iter().zip(found) {
        if let Some(r) = result? {
            let manifest_ref = ManifestRef {
                repository: image.name(),
                tag: None,
                digest,
            };
            out.push((manifest_ref, vec![r]));
        }
    }
    Ok(out)
}

/// Reads one referrer; `None` when it is gone or not a signature bundle.
async fn one_referrer(
    registry: &Registry,
    image: &ImageRef,
    digest: &str,
    subject: &Subject,
    keys: &[TrustedKey],
    policy: &Policy,
    image_name: &str,
) -> Result<Option<SignatureResult>> {
    let manifest = match registry.get_manifest(&image.with_digest(digest)).await {
        Ok(m) => m,
        Err(e) if e.kind == "not_found" => return Ok(None),
        Err(e) => return Err(e),
    };
    let json = match manifest.json() {
        Ok(j) => j,
        // a referrer that is not JSON is nobody's signature
        Err(_) => return Ok(None),
    };
    if classify(&json) != Referrer::Signature {
        return Ok(None);
    }
    let layer = match referrer_layer(&json, &subject.digest) {
        Ok(mut layer) => {
            if let Some(d) = layer.digest.clone() {
                match registry.get_blob(image, &d, MAX_BUNDLE_BYTES).await {
                    Ok(bytes) => layer.payload = Some(bytes),
                    Err(e) if e.kind == "digest_mismatch" => {
                        layer.unreadable = Some((Check::BlobDigest, e.message))
                    }
                    Err(e) if e.kind == "too_large" || e.kind == "not_found" => {
                        layer.unreadable = Some((Check::Payload, e.message))
                    }
                    Err(e) => return Err(e),
                }
            }
            layer
        }
        Err((check, reason)) => SignatureLayer {
            unreadable: Some((check, reason)),
            ..SignatureLayer::default()
        },
    };
    let mut r = verify_bundle(&layer, subject, keys, policy, image_name);
    r.bundle_manifest = Some(digest.to_string());
    Ok(Some(r))
}

/// The reference cosign v3 prints as the identity of a bundle (`ref.Name()`).
fn display_name(image: &ImageRef, subject: &Subject) -> String {
    match &image.tag {
        Some(tag) if image.digest.is_none() => format!("{}:{tag}", image.name()),
        _ => format!("{}@{}", image.name(), subject.digest),
    }
}

/// The referrers a referrers index (API answer or tag-schema index) lists, to be read and
/// judged by their own manifests ([`referrer_digests`]; the entries' claims only order them).
pub fn bundle_referrers(index: &Value) -> Vec<String> {
    referrer_digests(index, MAX_BUNDLES)
}

/// The bundle layer of a referrer manifest, after checking it refers to `image_digest`.
pub fn referrer_layer(
    manifest: &Value,
    image_digest: &str,
) -> std::result::Result<SignatureLayer, (Check, String)> {
    let subject = manifest
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str);
    if subject != Some(image_digest) {
        return Err((
            Check::ManifestDigest,
            format!(
                "referrer's subject is {:?}, not the image {image_digest}",
                subject.unwrap_or("")
            ),
        ));
    }
    let layer = manifest
        .get("layers")
        .and_then(Value::as_array)
        .and_then(|l| match l.as_slice() {
            [one] => Some(one),
            _ => None,
        })
        .ok_or((
            Check::Payload,
            "a bundle referrer has exactly one layer; this one does not".to_string(),
        ))?;
    let media_type = layer
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !is_bundle_media_type(&media_type) {
        return Err((
            Check::MediaType,
            format!("referrer layer media type {media_type:?} is not {BUNDLE_MEDIA_TYPE}"),
        ));
    }
    let digest = layer
        .get("digest")
        .and_then(Value::as_str)
        .filter(|d| is_sha256_digest(d))
        .ok_or((
            Check::BlobDigest,
            "bundle layer digest is not sha256".to_string(),
        ))?;
    let size = layer.get("size").and_then(Value::as_u64);
    if size.is_some_and(|n| n > MAX_BUNDLE_BYTES as u64) {
        return Err((
            Check::TooLarge,
            format!("bundle larger than {MAX_BUNDLE_BYTES} bytes"),
        ));
    }
    Ok(SignatureLayer {
        media_type,
        digest: Some(digest.to_string()),
        size,
        ..SignatureLayer::default()
    })
}

/// Verifies one bundle (its bytes in `layer.payload`) for `subject`.
pub fn verify_bundle(
    layer: &SignatureLayer,
    subject: &Subject,
    keys: &[TrustedKey],
    policy: &Policy,
    image_name: &str,
) -> SignatureResult {
    let result = SignatureResult::new(layer);
    if let Some((check, reason)) = &layer.unreadable {
        return result.fail(*check, reason.clone());
    }
    let Some(bytes) = layer.payload.as_deref() else {
        return result.fail(Check::Payload, "the bundle was not read");
    };
    let bundle: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return result.fail(Check::Payload, format!("bundle is not JSON: {e}")),
    };
    let media_type = bundle
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !is_bundle_media_type(media_type) {
        return result.fail(
            Check::MediaType,
            format!("bundle media type {media_type:?} is not {BUNDLE_MEDIA_TYPE}"),
        );
    }
    let Some(envelope) = bundle.get("dsseEnvelope") else {
        let what = if bundle.get("messageSignature").is_some() {
            "a message signature bundle (cosign sign-blob), not an image signature"
        } else {
            "a bundle without a DSSE envelope"
        };
        return result.fail(Check::Payload, what);
    };
    let s = |k: &str| envelope.get(k).and_then(Value::as_str);
    let payload_type = s("payloadType").unwrap_or("");
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return result.fail(
            Check::Payload,
            format!("DSSE payload type {payload_type:?} is not {IN_TOTO_PAYLOAD_TYPE}"),
        );
    }
    let payload = match s("payload").map(decode_base64_strict) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return result.fail(Check::SignatureEncoding, format!("DSSE payload: {e}")),
        None => return result.fail(Check::Payload, "DSSE envelope has no payload"),
    };
    let sigs: Vec<&str> = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("sig").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if sigs.is_empty() {
        return result.fail(Check::Signature, "DSSE envelope has no signature");
    }
    let message = pae(payload_type, &payload);
    let mut verified = None;
    let mut last_error = String::from("the signature does not verify with any trusted key");
    for sig in &sigs {
        let sig = match decode_base64_strict(sig) {
            Ok(s) if !s.is_empty() => s,
            Ok(_) => {
                last_error = "DSSE signature is empty".into();
                continue;
            }
            Err(e) => return result.fail(Check::SignatureEncoding, format!("DSSE signature: {e}")),
        };
        for k in keys {
            match k.key.verify(&message, &sig, None) {
                Ok(alg) => {
                    verified = Some((k, alg));
                    break;
                }
                Err(e) if keys.len() == 1 => last_error = e.message,
                Err(_) => {}
            }
        }
        if verified.is_some() {
            break;
        }
    }
    let Some((key, algorithm)) = verified else {
        return result.fail(Check::Signature, last_error);
    };
    let mut result = result;
    result.key_id = Some(key.id.clone());
    result.algorithm = Some(algorithm.kms_name());
    let statement: Value = match serde_json::from_slice(&payload) {
        Ok(v) => v,
        Err(e) => {
            return result.fail(
                Check::Payload,
                format!("DSSE payload is not an in-toto statement: {e}"),
            )
        }
    };
    let st = |k: &str| statement.get(k).and_then(Value::as_str).unwrap_or("");
    if !STATEMENT_TYPES.contains(&st("_type")) {
        return result.fail(
            Check::Payload,
            format!("statement type {:?} is not in-toto", st("_type")),
        );
    }
    let predicate_type = st("predicateType").to_string();
    let subjects = statement
        .get("subject")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wanted_hex = subject.digest.strip_prefix("sha256:").unwrap_or("");
    let matching = subjects.iter().find(|s| {
        s.get("digest")
            .and_then(|d| d.get("sha256"))
            .and_then(Value::as_str)
            == Some(wanted_hex)
    });
    let signed_digest = matching
        .or(subjects.first())
        .and_then(|s| s.get("digest"))
        .and_then(|d| d.get("sha256"))
        .and_then(Value::as_str)
        .map(|h| format!("sha256:{h}"))
        .unwrap_or_default();
    let annotations = matching
        .or(subjects.first())
        .and_then(|s| s.get("annotations"))
        .cloned()
        .unwrap_or(Value::Null);
    result.claims = Some(Claims {
        docker_reference: None,
        manifest_digest: signed_digest.clone(),
        kind: predicate_type.clone(),
    });
    result.annotations = Some(annotations.clone());
    if predicate_type != COSIGN_SIGN_PREDICATE {
        return result.fail(
            Check::MediaType,
            format!("predicate type {predicate_type:?}: an attestation, not an image signature"),
        );
    }
    if matching.is_none() {
        return result.fail(
            Check::ManifestDigest,
            format!(
                "the statement's subjects do not include the image digest {} (signed {signed_digest:?})",
                subject.digest
            ),
        );
    }
    if policy.identity != IdentityMode::Any {
        return result.fail(
            Check::Identity,
            "a cosign v3 bundle signs no docker-reference, so --identity repository|exact \
             cannot hold for it",
        );
    }
    let optional = annotations.as_object();
    for (k, v) in &policy.annotations {
        match optional.and_then(|o| o.get(k)) {
            Some(Value::String(got)) if got == v => {}
            Some(got) => {
                return result.fail(
                    Check::Annotations,
                    format!("annotation {k:?} is {got}, not {v:?}"),
                )
            }
            None => {
                return result.fail(
                    Check::Annotations,
                    format!("annotation {k:?} is missing (want {v:?})"),
                )
            }
        }
    }
    result.verified = true;
    // What cosign v3 prints for it (`transformOutput`): the image name as identity.
    // (`"optional":{}` when the statement has no annotations, as cosign 3.1.1 prints it.)
    result.payload = Some(Payload {
        docker_reference: image_name.to_string(),
        manifest_digest: signed_digest,
        kind: predicate_type,
        optional: Some(optional.cloned().unwrap_or_default()),
    });
    result
}

#[cfg(test)]
mod tests;
