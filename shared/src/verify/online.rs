//! Reading an image's signatures from its registry: the image manifest (does it exist), the
//! signature manifest `sha256-<hex>.sig` (or the one in `--signature-repo`) and its payload
//! blobs; cosign v3 bundles attached as OCI 1.1 referrers ([`super::bundle`]).
//!
//! Requests per image: the image manifest `HEAD` and the signature manifest `GET` at once, then
//! the payload blobs of its simple-signing layers at once (identical blobs fetched once); with
//! one signature that is three requests, the minimum. One [`Registry`] client serves every
//! record, so connections and tokens are shared across the batch.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    bundle, decide, verify_layer, Check, Failure, ManifestRef, Policy, SignatureLayer, Source,
    Subject, TrustedKey, Verification, MAX_LAYERS, MAX_PAYLOAD_BYTES, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::cosign::KMS_REQUEST_ID_ANNOTATION;
use crate::error::{Error, Result};
use crate::payload::is_sha256_digest;
use crate::record::{get_str, Record};
use crate::reference::ImageRef;
use crate::registry::Registry;

/// Layer annotation with an RFC 3161 timestamp over the signature (reported as is).
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// Where to look for signatures online.
#[derive(Debug, Clone)]
pub struct Online {
    pub registry: Registry,
    /// `--signature-repo`: the repository holding `.sig` manifests instead of the image's own
    pub signature_repo: Option<ImageRef>,
    pub bundles: BundleLookup,
}

/// When to look for cosign v3 bundles (OCI 1.1 referrers) besides the `.sig` manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BundleLookup {
    /// Only when the `.sig` manifest alone does not verify the image (saves a request per
    /// verified image)
    #[default]
    Auto,
    /// Always, and report every bundle
    Always,
    /// Never (legacy `.sig` only, like cosign v2)
    Never,
}

impl Online {
    /// Verifies the image a record names.
    pub async fn verify(
        &self,
        record: &Record,
        keys: &[TrustedKey],
        policy: &Policy,
    ) -> Result<Verification> {
        let image = image_ref(record)?;
        let (subject, exists) = match super::tool::subject(record) {
            Ok(subject) => (subject, None),
            // A reference with a tag and no digest: resolve it (which also proves it exists).
            Err(_) if image.digest.is_none() => match self.registry.get_manifest(&image).await {
                Ok(m) => {
                    let mut subject = Subject {
                        digest: m.digest,
                        reference: None,
                    };
                    subject.reference = Some(super::RefName::from_parts(
                        &image.registry,
                        &image.repository,
                        image.tag.as_deref(),
                    ));
                    (subject, Some(true))
                }
                Err(e) if e.kind == "not_found" => {
                    return Ok(Verification::failed(
                        Failure::ImageNotFound,
                        format!("image tag not found: {image}"),
                    ))
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        if !is_sha256_digest(&subject.digest) {
            return Err(Error::new(
                "bad_record",
                format!("digest {:?} is not sha256:<64 hex digits>", subject.digest),
            ));
        }
        let image_at = image.with_digest(&subject.digest);
        let sig_repo = self.signature_repo.clone().unwrap_or_else(|| image.clone());
        let sig_tag = format!("{}.sig", subject.digest.replace(':', "-"));
        let sig_ref = sig_repo.with_tag(&sig_tag);

        let head = async {
            match exists {
                Some(e) => Ok(e),
                None => self
                    .registry
                    .head_manifest(&image_at)
                    .await
                    .map(|d| d.is_some()),
            }
        };
        let sig = async {
            match self.registry.get_manifest(&sig_ref).await {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind == "not_found" => Ok(None),
                Err(e) => Err(e),
            }
        };
        let (exists, sig_manifest) = tokio::join!(head, sig);
        if !exists? {
            return Ok(with_source(Verification::failed(
                Failure::ImageNotFound,
                format!("image not found: {image_at}"),
            )));
        }
        let mut signatures = Vec::new();
        let mut manifest_ref = None;
        if let Some(m) = sig_manifest? {
            manifest_ref = Some(ManifestRef {
                repository: sig_repo.name(),
                tag: Some(sig_tag.clone()),
                digest: m.digest.clone(),
            });
            let layers = signature_layers(&m.json()?, &m.digest)?;
            let layers = self.fetch_payloads(&sig_repo, layers).await?;
            signatures.extend(
                layers
                    .iter()
                    .map(|l| verify_layer(l, &subject, keys, policy)),
            );
        }
        let legacy = decide(signatures.clone(), policy);
        let look_for_bundles = match self.bundles {
            BundleLookup::Never => false,
            BundleLookup::Always => true,
            BundleLookup::Auto => !legacy.verified,
        };
        let mut bundles = Vec::new();
        if look_for_bundles {
            let found =
                bundle::fetch_and_verify(&self.registry, &image, &subject, keys, policy).await?;
            for (manifest, results) in found {
                bundles.push(manifest);
                signatures.extend(results);
            }
        }
        let mut v = if bundles.is_empty() {
            legacy
        } else {
            decide(signatures, policy)
        };
        v.signature_manifest = manifest_ref;
        v.bundles = bundles;
        if v.failure == Some(Failure::NoSignatures) && v.signatures.is_empty() {
            v.reason = Some(format!("no signatures found: no {sig_ref} manifest"));
        }
        Ok(with_source(v))
    }

    /// Fetches the payload blob of every simple-signing layer (each distinct digest once).
    async fn fetch_payloads(
        &self,
        repo: &ImageRef,
        mut layers: Vec<SignatureLayer>,
    ) -> Result<Vec<SignatureLayer>> {
        let mut wanted: Vec<String> = Vec::new();
        for l in &layers {
            if let Some(d) = fetchable(l) {
                if !wanted.contains(d) {
                    wanted.push(d.clone());
                }
            }
        }
        let fetched = futures::future::join_all(wanted.iter().map(|d| async move {
            let got = self.registry.get_blob(repo, d, MAX_PAYLOAD_BYTES).await;
            (d.clone(), got)
        }))
        .await;
        let mut blobs: HashMap<String, std::result::Result<Vec<u8>, (Check, String)>> =
            HashMap::new();
        for (digest, got) in fetched {
            let entry = match got {
                Ok(bytes) => Ok(bytes),
                Err(e) if e.kind == "digest_mismatch" => Err((Check::BlobDigest, e.message)),
                Err(e) if e.kind == "too_large" => Err((Check::TooLarge, e.message)),
                Err(e) if e.kind == "not_found" => Err((
                    Check::Payload,
                    format!("payload blob {digest} is missing from the registry"),
                )),
                Err(e) => return Err(e),
            };
            blobs.insert(digest, entry);
        }
        for l in &mut layers {
            if l.media_type != SIMPLE_SIGNING_MEDIA_TYPE || l.unreadable.is_some() {
                continue;
            }
            match l.digest.as_ref().and_then(|d| blobs.get(d)) {
                Some(Ok(bytes)) => l.payload = Some(bytes.clone()),
                Some(Err(problem)) => l.unreadable = Some(problem.clone()),
                None => {}
            }
        }
        Ok(layers)
    }
}

fn with_source(mut v: Verification) -> Verification {
    v.source = Source::Registry;
    v
}

/// The digest to fetch for a layer, if it is a signature layer worth fetching.
fn fetchable(l: &SignatureLayer) -> Option<&String> {
    (l.media_type == SIMPLE_SIGNING_MEDIA_TYPE && l.unreadable.is_none())
        .then_some(l.digest.as_ref())
        .flatten()
}

/// The image a record names, for registry requests: `registry` + `repository` (from digest-of),
/// else `ref`, else `image`.
pub fn image_ref(record: &Record) -> Result<ImageRef> {
    if let (Some(registry), Some(repository)) =
        (get_str(record, "registry"), get_str(record, "repository"))
    {
        let mut image = ImageRef::parse(&format!("{registry}/{repository}"))?;
        image.tag = get_str(record, "tag").map(str::to_string);
        image.digest = None;
        return Ok(image);
    }
    let reference = ["ref", "image"]
        .iter()
        .find_map(|f| get_str(record, f))
        .ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record names no image: give `image` (or pipe digest-of's records)",
            )
        })?;
    ImageRef::parse(reference)
}

/// The layers of a signature manifest, with their checks that need no blob done already.
pub fn signature_layers(manifest: &Value, digest: &str) -> Result<Vec<SignatureLayer>> {
    let bad = |why: &str| {
        Error::new(
            "bad_signature_manifest",
            format!("signature manifest {digest} {why}"),
        )
    };
    let layers = match manifest.get("layers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(layers)) => layers,
        Some(_) => return Err(bad("has a `layers` field that is not a list")),
    };
    if layers.len() > MAX_LAYERS {
        return Err(bad(&format!(
            "has {} layers, more than the {MAX_LAYERS} read",
            layers.len()
        )));
    }
    Ok(layers.iter().map(layer).collect())
}

fn layer(l: &Value) -> SignatureLayer {
    let s = |k: &str| l.get(k).and_then(Value::as_str).map(str::to_string);
    let annotation = |k: &str| {
        l.get("annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut layer = SignatureLayer {
        media_type: s("mediaType").unwrap_or_default(),
        digest: s("digest"),
        size: l.get("size").and_then(Value::as_u64),
        payload: None,
        signature: annotation(SIGNATURE_ANNOTATION),
        annotations: Default::default(),
        unreadable: None,
    };
    for key in [RFC3161_ANNOTATION, KMS_REQUEST_ID_ANNOTATION] {
        if let Some(v) = annotation(key) {
            layer.annotations.insert(key.into(), v);
        }
    }
    if layer.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
        if !layer.digest.as_deref().is_some_and(is_sha256_digest) {
            layer.unreadable = Some((
                Check::BlobDigest,
                format!(
                    "layer digest {:?} is not a sha256 digest",
                    layer.digest.as_deref().unwrap_or("")
                ),
            ));
        } else if layer.size.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64) {
            layer.unreadable = Some((
                Check::TooLarge,
                format!(
                    "payload of {} bytes is over the {MAX_PAYLOAD_BYTES}-byte cap",
                    layer.size.unwrap_or(0)
                ),
            ));
        }
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    #[test]
    fn layers_are_read_with_their_caps() {
        let m = json!({"layers": [
            {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": D, "size": 10,
             "annotations": {SIGNATURE_ANNOTATION: "c2ln", RFC3161_ANNOTATION: "ts", "other": "x"}},
            {"mediaType": "text/plain", "digest": D, "size": 10},
            {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": "md5:00", "size": 10},
            {"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": D, "size": 1 << 30},
        ]});
        let layers = signature_layers(&m, D).unwrap();
        assert_eq!(layers[0].signature.as_deref(), Some("c2ln"));
        assert_eq!(layers[0].annotations.len(), 1, "only the timestamp is kept");
        assert!(fetchable(&layers[0]).is_some());
        assert!(
            fetchable(&layers[1]).is_none(),
            "attachments are not fetched"
        );
        assert_eq!(layers[2].unreadable.as_ref().unwrap().0, Check::BlobDigest);
        assert_eq!(layers[3].unreadable.as_ref().unwrap().0, Check::TooLarge);
        assert!(
            fetchable(&layers[3]).is_none(),
            "oversized blobs are not fetched"
        );

        let many = json!({"layers": vec![json!({}); MAX_LAYERS + 1]});
        assert!(signature_layers(&many, D).is_err());
        assert!(signature_layers(&json!({"layers": {}}), D).is_err());
        assert!(signature_layers(&json!({"manifests": []}), D)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn image_from_record() {
        let rec = |v: Value| v.as_object().unwrap().clone();
        let i = image_ref(&rec(json!({"registry": "127.0.0.1:5000", "repository": "a/b", "tag": "v1", "image": "ignored"}))).unwrap();
        assert_eq!(
            (i.registry.as_str(), i.repository.as_str(), i.tag.as_deref()),
            ("127.0.0.1:5000", "a/b", Some("v1"))
        );
        let i = image_ref(&rec(json!({"image": format!("127.0.0.1:5000/a@{D}")}))).unwrap();
        assert_eq!(i.digest.as_deref(), Some(D));
        assert!(image_ref(&rec(json!({"digest": D}))).is_err());
    }
}
