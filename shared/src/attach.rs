//! `attach-sig`'s work: push a record's signature in cosign's `.sig` layout, appending to the
//! signature manifest already there, without ever losing another writer's signature.
//!
//! One attach:
//! 1. check the record: `digest`, strict base64 `payload` and `signature`, a digest-based
//!    payload whose `docker-manifest-digest` is the record's `digest`; the image must exist;
//! 2. upload the payload blob (skipped when the registry has it);
//! 3. read the `sha256-<hex>.sig` manifest (none yet is fine), append the layer (an identical
//!    layer already there means nothing to do), upload the config blob, `PUT` the manifest;
//! 4. read the tag back after a settle delay: if another writer replaced the manifest with one
//!    that lacks our layer (both read the same old manifest), go back to 3 with backoff.
//!
//! The registry API has no compare-and-swap, so 4 is what makes concurrent attachers safe: the
//! settle delay (at least twice this writer's own read-to-write time) outlasts another
//! writer's read-to-write window, so a manifest built from a stale read is seen and repaired.
//! Attaches to one tag from one process are also serialized.
//!
//! A record with `payload_type` (from `payload-for --format bundle`, signed by kms-sign over the
//! DSSE PAE) becomes a cosign v3 bundle instead ([`crate::bundle`]): the bundle blob and the
//! empty config are uploaded, the referrer manifest is pushed by digest (`subject` = the image,
//! so no read-modify-write on it), and then either the registry's referrers API lists it (done)
//! or, on a registry without that API, it is added to the tag-schema fallback index
//! `sha256-<hex>`. That index is the one shared, mutable thing, so it gets the same treatment as
//! a `.sig` manifest: read, add the entry, `PUT`, read back after the settle delay, and merge
//! again if another writer's index replaced ours; attaches to one tag from one process are
//! serialized. A bundle lives beside its image: `--signature-repo` does not apply to it.
//!
//! ECR repositories with immutable tags cannot take an appended `.sig`: that is detected with
//! `DescribeRepositories` (or from the registry's refusal) and reported with the fix.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::bundle;
use crate::cosign::{signature_tag, Descriptor, SignatureManifest, KMS_REQUEST_ID_ANNOTATION};
use crate::error::Error;
use crate::payload::{Payload, MAX_PAYLOAD_BYTES};
use crate::record::{get_str, Record};
use crate::reference::{check_digest, ImageRef};
use crate::registry::{Registry, OCI_MANIFEST};

/// Longest base64 signature accepted (an RSA-4096 signature is 684 characters).
pub const MAX_SIGNATURE_B64: usize = 16 << 10;
/// Write rounds before giving up on a contended tag.
const MAX_ROUNDS: u32 = 12;

/// How signatures are attached.
#[derive(Debug, Clone)]
pub struct Attacher {
    pub registry: Registry,
    /// `--signature-repo`: store `.sig` manifests in this repository instead of the image's
    pub signature_repo: Option<ImageRef>,
    /// `--copy-to`: copy the verified signatures of `check-sig --keep-signatures` records here
    pub copy_to: Option<CopyTo>,
    /// `--dry-run`: read, build, report; push nothing
    pub dry_run: bool,
    /// Shortest wait before reading the tag back
    pub min_settle: Duration,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Where `--copy-to` copies verified signatures: the same repository path at another registry,
/// or one repository.
#[derive(Debug, Clone)]
pub enum CopyTo {
    Registry(String),
    Repository(ImageRef),
}

impl CopyTo {
    /// `HOST` (a registry alone) or `HOST/REPO`.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match crate::resolve::registry_host(s) {
            Some(host) => Ok(Self::Registry(host.to_string())),
            None => Ok(Self::Repository(ImageRef::parse_repository(s)?)),
        }
    }
}

/// What a bundle record asks for, checked.
struct BundleRequest {
    image: ImageRef,
    digest: String,
    statement: Vec<u8>,
    signature: Vec<u8>,
    hint: Option<String>,
}

/// What a record asks for, checked.
struct Request {
    image: ImageRef,
    digest: String,
    payload: Vec<u8>,
    signature: String,
    /// Layer annotations beside the signature: the `Sign` request id (`kms.request_id`).
    annotations: BTreeMap<String, String>,
}

fn strict_b64(field: &str, s: &str, max: usize) -> Result<Vec<u8>, Error> {
    if s.len() > max {
        return Err(Error::new(
            "too_large",
            format!("`{field}` is longer than {max} characters"),
        ));
    }
    // STANDARD requires canonical padding and no trailing bits.
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| {
            Error::new(
                "bad_base64",
                format!("`{field}` is not strict standard base64 ({e})"),
            )
        })
}

/// A base64 simple-signing payload that signs `digest`, decoded.
fn checked_payload(field: &str, b64: &str, digest: &str) -> Result<Vec<u8>, Error> {
    let payload = strict_b64(field, b64, MAX_PAYLOAD_BYTES * 4 / 3 + 4)?;
    let parsed = Payload::parse(&payload)?;
    if parsed.manifest_digest != digest {
        return Err(Error::new(
            "payload_mismatch",
            format!(
                "the payload signs {} but the record's digest is {digest}; refusing to attach it",
                parsed.manifest_digest
            ),
        ));
    }
    Ok(payload)
}

/// A signature in strict, non-empty base64.
fn checked_signature(field: &str, b64: &str) -> Result<(), Error> {
    if strict_b64(field, b64, MAX_SIGNATURE_B64)?.is_empty() {
        return Err(Error::new("bad_base64", format!("`{field}` is empty")));
    }
    Ok(())
}

/// KMS request ids are UUIDs; anything else is not one to carry.
fn check_request_id(field: &str, id: &str) -> Result<(), Error> {
    let plausible = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plausible {
        return Err(Error::new(
            "bad_record",
            format!("{field} {id:?} is not a KMS request id"),
        ));
    }
    Ok(())
}

/// The image a record names: `registry` + `repository`, else `ref`, else `image`.
fn image_of(record: &Record, digest: &str) -> Result<ImageRef, Error> {
    if let (Some(registry), Some(repository)) =
        (get_str(record, "registry"), get_str(record, "repository"))
    {
        return ImageRef::parse(&format!("{registry}/{repository}@{digest}"));
    }
    let given = get_str(record, "ref")
        .or_else(|| get_str(record, "image"))
        .ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record names no image (`registry` + `repository`, `ref` or `image`); \
                 resolve it with digest-of first",
            )
        })?;
    let image = ImageRef::parse(given)?;
    if let Some(d) = &image.digest {
        if d != digest {
            return Err(Error::new(
                "digest_mismatch",
                format!("the record's reference names {d} but its `digest` is {digest}"),
            ));
        }
    }
    Ok(image.with_digest(digest))
}

impl Attacher {
    pub fn new(registry: Registry, signature_repo: Option<ImageRef>, dry_run: bool) -> Self {
        Self {
            registry,
            signature_repo,
            copy_to: None,
            dry_run,
            min_settle: Duration::from_millis(250),
            locks: Arc::default(),
        }
    }

    fn request(&self, record: &Record) -> Result<Request, Error> {
        let digest = get_str(record, "digest").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `digest`: signing needs a digest (run digest-of first)",
            )
        })?;
        check_digest(digest)?;
        let payload_b64 = get_str(record, "payload").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `payload` (run payload-for first)",
            )
        })?;
        let signature = get_str(record, "signature").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `signature` (run kms-sign first)",
            )
        })?;
        let payload = checked_payload("payload", payload_b64, digest)?;
        checked_signature("signature", signature)?;
        let mut annotations = BTreeMap::new();
        if let Some(id) = record
            .get("kms")
            .and_then(|k| k.get("request_id"))
            .and_then(Value::as_str)
        {
            check_request_id("`kms.request_id`", id)?;
            annotations.insert(KMS_REQUEST_ID_ANNOTATION.to_string(), id.to_string());
        }
        Ok(Request {
            image: image_of(record, digest)?,
            digest: digest.to_string(),
            payload,
            signature: signature.to_string(),
            annotations,
        })
    }

    /// Attaches the record's signature; returns the `attached` field.
    pub async fn attach(&self, record: &Record) -> Result<Value, Error> {
        if let Some(to) = &self.copy_to {
            return self.attach_verified(record, to).await;
        }
        if record.contains_key("payload_type") {
            return self.attach_bundle(record).await;
        }
        let req = self.request(record)?;
        self.attach_request(&req).await
    }

    /// `--copy-to`: attaches every signature a `check-sig --keep-signatures` record verified
    /// (`verification.signatures[]` with `verified`, `payload` and `signature`), each with its
    /// layer annotations, one after another, to the same digest at `to` (where the image must
    /// already be). Bundles are not copied; `attached` counts them in `bundles_not_copied`.
    async fn attach_verified(&self, record: &Record, to: &CopyTo) -> Result<Value, Error> {
        let digest = get_str(record, "digest").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `digest` (run digest-of first)",
            )
        })?;
        check_digest(digest)?;
        let source = image_of(record, digest)?;
        let image = match to {
            CopyTo::Registry(host) => {
                ImageRef::parse(&format!("{host}/{}@{digest}", source.repository))?
            }
            CopyTo::Repository(repo) => repo.with_digest(digest),
        };
        let entries = record
            .get("verification")
            .filter(|v| v.get("verified") == Some(&Value::Bool(true)))
            .and_then(|v| v.get("signatures"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::new(
                    "bad_record",
                    "the record has no verified `verification` (run check-sig --keep-signatures \
                     first; only verified images are copied)",
                )
            })?;
        let mut requests = Vec::new();
        let mut bundles = 0;
        for (i, entry) in entries.iter().enumerate() {
            if entry.get("verified") != Some(&Value::Bool(true)) {
                continue;
            }
            if entry.get("bundle_manifest").is_some() {
                bundles += 1;
                continue;
            }
            let field = |name: &str| {
                entry.get(name).and_then(Value::as_str).ok_or_else(|| {
                    Error::new(
                        "bad_record",
                        format!(
                            "`verification.signatures[{i}]` has no `{name}`: run check-sig with \
                             --keep-signatures"
                        ),
                    )
                })
            };
            let what = format!("verification.signatures[{i}]");
            let payload = checked_payload(&format!("{what}.payload"), field("payload")?, digest)?;
            let signature = field("signature")?;
            checked_signature(&format!("{what}.signature"), signature)?;
            let mut annotations = BTreeMap::new();
            if let Some(map) = entry.get("layer_annotations").and_then(Value::as_object) {
                for (k, v) in map {
                    let Some(v) = v.as_str() else { continue };
                    if k == KMS_REQUEST_ID_ANNOTATION {
                        check_request_id(&format!("{what}.layer_annotations.{k}"), v)?;
                    }
                    annotations.insert(k.clone(), v.to_string());
                }
            }
            requests.push(Request {
                image: image.clone(),
                digest: digest.to_string(),
                payload,
                signature: signature.to_string(),
                annotations,
            });
        }
        if requests.is_empty() {
            return Err(Error::new(
                "bad_record",
                format!(
                    "the record's verification has no verified .sig signature to copy{}",
                    if bundles > 0 {
                        " (only bundles, which are not copied)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let mut attached = Value::Null;
        let mut added = false;
        for req in &requests {
            attached = self.attach_request(req).await?;
            added |= attached["added"] == Value::Bool(true);
        }
        attached["added"] = added.into();
        attached["copied"] = requests.len().into();
        if bundles > 0 {
            attached["bundles_not_copied"] = bundles.into();
        }
        Ok(attached)
    }

    /// Appends one checked signature to its `.sig` manifest; returns the `attached` field.
    async fn attach_request(&self, req: &Request) -> Result<Value, Error> {
        let sig_repo = match &self.signature_repo {
            Some(r) => r.clone(),
            None => ImageRef {
                tag: None,
                digest: None,
                ..req.image.clone()
            },
        };
        let tag = signature_tag(&req.digest)?;
        let target = sig_repo.with_tag(&tag);
        let layer = Descriptor::signature_layer(&req.payload, &req.signature, &req.annotations);

        // The image must exist: a signature for nothing is a mistake.
        if self.registry.head_manifest(&req.image).await?.is_none() {
            return Err(Error::new(
                "not_found",
                format!("image {} does not exist; nothing to attach to", req.image),
            ));
        }

        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(target.to_string()).or_default().clone()
        };
        let _serialized = lock.lock().await;

        if !self.dry_run {
            self.registry.put_blob(&sig_repo, &req.payload).await?;
        }
        let mut rounds = 0;
        loop {
            rounds += 1;
            let started = Instant::now();
            let (mut manifest, existed) = self.read(&target).await?;
            let added = manifest.push(layer.clone())?;
            let (config, bytes) = manifest.to_bytes();
            let manifest_digest = crate::registry::sha256_digest(&bytes);
            let mut attached = json!({
                "repository": sig_repo.name(),
                "tag": tag,
                "manifest_digest": manifest_digest,
                "layers": manifest.layers.len(),
                "added": added,
            });
            if self.dry_run {
                attached["dry_run_manifest"] =
                    Value::String(String::from_utf8_lossy(&bytes).into_owned());
                attached["dry_run_config"] =
                    Value::String(String::from_utf8_lossy(&config).into_owned());
                return Ok(attached);
            }
            if !added {
                // Identical layer already there: nothing to write.
                return Ok(attached);
            }
            if existed {
                self.check_mutable(&sig_repo, &tag).await?;
            }
            self.registry.put_blob(&sig_repo, &config).await?;
            self.registry
                .put_manifest(&target, OCI_MANIFEST, &bytes)
                .await
                .map_err(|e| immutable_hint(e, &sig_repo, &tag))?;
            // Read back after another writer's read-to-write window has surely passed.
            let settle = (started.elapsed() * 2).max(self.min_settle);
            tokio::time::sleep(settle + jitter(settle / 2)).await;
            let (now, _) = self.read(&target).await?;
            if now.contains(&layer) {
                attached["layers"] = now.layers.len().into();
                attached["manifest_digest"] =
                    crate::registry::sha256_digest(&now.to_bytes().1).into();
                if rounds > 1 {
                    attached["rounds"] = rounds.into();
                }
                return Ok(attached);
            }
            if rounds >= MAX_ROUNDS {
                return Err(Error::new(
                    "conflict",
                    format!(
                        "other writers kept replacing {target} for {MAX_ROUNDS} rounds; \
                         the signature was not kept, try again"
                    ),
                ));
            }
            let backoff = Duration::from_millis(100 * u64::from(rounds.min(10)));
            tokio::time::sleep(backoff + jitter(backoff)).await;
        }
    }

    fn bundle_request(&self, record: &Record) -> Result<BundleRequest, Error> {
        let digest = get_str(record, "digest").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `digest`: signing needs a digest (run digest-of first)",
            )
        })?;
        check_digest(digest)?;
        match get_str(record, "payload_type") {
            Some(bundle::IN_TOTO_PAYLOAD_TYPE) => {}
            other => {
                return Err(Error::new(
                    "bad_payload",
                    format!(
                        "payload_type {other:?} is not {}: the only DSSE payload attached",
                        bundle::IN_TOTO_PAYLOAD_TYPE
                    ),
                ))
            }
        }
        let payload_b64 = get_str(record, "payload").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `payload` (run payload-for --format bundle first)",
            )
        })?;
        let signature = get_str(record, "signature").ok_or_else(|| {
            Error::new(
                "bad_record",
                "the record has no `signature` (run kms-sign first)",
            )
        })?;
        let statement = strict_b64("payload", payload_b64, MAX_PAYLOAD_BYTES * 4 / 3 + 4)?;
        let claims = bundle::parse_statement(&statement)?;
        if !claims.digests.iter().any(|d| d == digest) {
            return Err(Error::new(
                "payload_mismatch",
                format!(
                    "the statement signs {:?} but the record's digest is {digest}; refusing to \
                     attach it",
                    claims.digests
                ),
            ));
        }
        if claims.predicate_type != bundle::COSIGN_SIGN_PREDICATE {
            return Err(Error::new(
                "bad_payload",
                format!(
                    "the statement's predicate type is {:?}, not an image signature ({})",
                    claims.predicate_type,
                    bundle::COSIGN_SIGN_PREDICATE
                ),
            ));
        }
        let sig = strict_b64("signature", signature, MAX_SIGNATURE_B64)?;
        if sig.is_empty() {
            return Err(Error::new("bad_base64", "`signature` is empty"));
        }
        if self.signature_repo.is_some() {
            return Err(Error::new(
                "bad_record",
                "--signature-repo (COSIGN_REPOSITORY) is for .sig manifests: a bundle referrer \
                 lives in its image's repository",
            ));
        }
        Ok(BundleRequest {
            image: image_of(record, digest)?,
            digest: digest.to_string(),
            statement,
            signature: sig,
            hint: get_str(record, "key_id").and_then(bundle::hint_of_key_id),
        })
    }

    /// Attaches a cosign v3 bundle (see the module doc); returns the `attached` field.
    async fn attach_bundle(&self, record: &Record) -> Result<Value, Error> {
        let req = self.bundle_request(record)?;
        let image = match self.registry.get_manifest(&req.image).await {
            Ok(m) => m,
            Err(e) if e.kind == "not_found" => {
                return Err(Error::new(
                    "not_found",
                    format!("image {} does not exist; nothing to attach to", req.image),
                ))
            }
            Err(e) => return Err(e),
        };
        let subject = bundle::Descriptor {
            media_type: image.media_type.clone(),
            size: image.bytes.len() as u64,
            digest: req.digest.clone(),
        };
        let bundle_bytes = bundle::bundle(&req.statement, &req.signature, req.hint.as_deref());
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let manifest = bundle::referrer_manifest(&bundle_bytes, &subject, &created);
        let manifest_digest = crate::registry::sha256_digest(&manifest);
        let repo = ImageRef {
            tag: None,
            digest: None,
            ..req.image.clone()
        };
        let tag = req.digest.replace(':', "-");
        let mut attached = json!({
            "format": "bundle",
            "repository": repo.name(),
            "manifest_digest": manifest_digest,
            "bundle_digest": crate::registry::sha256_digest(&bundle_bytes),
            "added": true,
        });
        if self.dry_run {
            attached["dry_run_manifest"] =
                Value::String(String::from_utf8_lossy(&manifest).into_owned());
            attached["dry_run_bundle"] =
                Value::String(String::from_utf8_lossy(&bundle_bytes).into_owned());
            return Ok(attached);
        }
        self.registry.put_blob(&repo, &bundle_bytes).await?;
        self.registry.put_blob(&repo, b"{}").await?;
        self.registry
            .put_manifest(&repo.with_digest(&manifest_digest), OCI_MANIFEST, &manifest)
            .await?;
        if self
            .registry
            .get_referrers(&repo, &req.digest)
            .await?
            .is_some()
        {
            // The registry keeps the referrers list itself (it read our manifest's subject).
            attached["referrers"] = "api".into();
            return Ok(attached);
        }
        attached["referrers"] = "tag".into();
        attached["tag"] = tag.clone().into();
        let target = repo.with_tag(&tag);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(target.to_string()).or_default().clone()
        };
        let _serialized = lock.lock().await;
        let mut rounds = 0;
        loop {
            rounds += 1;
            let started = Instant::now();
            let existing = self.read_index(&target).await?;
            let Some(bytes) = bundle::index_with(existing.as_ref(), &manifest)? else {
                // listed already (our read-back below, or a repeated attach)
                if rounds > 1 {
                    attached["rounds"] = rounds.into();
                }
                return Ok(attached);
            };
            self.registry
                .put_manifest(&target, bundle::OCI_INDEX, &bytes)
                .await?;
            let settle = (started.elapsed() * 2).max(self.min_settle);
            tokio::time::sleep(settle + jitter(settle / 2)).await;
            let now = self.read_index(&target).await?;
            if bundle::index_with(now.as_ref(), &manifest)?.is_none() {
                if rounds > 1 {
                    attached["rounds"] = rounds.into();
                }
                return Ok(attached);
            }
            if rounds >= MAX_ROUNDS {
                return Err(Error::new(
                    "conflict",
                    format!(
                        "other writers kept replacing {target} for {MAX_ROUNDS} rounds; \
                         the bundle was pushed but is not listed, try again"
                    ),
                ));
            }
            let backoff = Duration::from_millis(100 * u64::from(rounds.min(10)));
            tokio::time::sleep(backoff + jitter(backoff)).await;
        }
    }

    /// The fallback index at `target`, if there is one.
    async fn read_index(&self, target: &ImageRef) -> Result<Option<Value>, Error> {
        match self.registry.get_manifest(target).await {
            Ok(m) => Ok(Some(m.json()?)),
            Err(e) if e.kind == "not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The signature manifest at `target` (empty when the tag does not exist yet).
    async fn read(&self, target: &ImageRef) -> Result<(SignatureManifest, bool), Error> {
        match self.registry.get_manifest(target).await {
            Ok(m) => Ok((SignatureManifest::parse(&m.bytes)?, true)),
            Err(e) if e.kind == "not_found" => Ok((SignatureManifest::new(), false)),
            Err(e) => Err(e),
        }
    }

    /// For ECR: refuses to overwrite a `.sig` tag the repository keeps immutable.
    async fn check_mutable(&self, repo: &ImageRef, tag: &str) -> Result<(), Error> {
        let Some(target) = self.registry.ecr_target(&repo.registry) else {
            return Ok(());
        };
        // Without permission to describe the repository, the registry's own answer decides.
        let Ok(m) = self
            .registry
            .ecr()
            .tag_mutability(&target, &repo.repository)
            .await
        else {
            return Ok(());
        };
        if m.tag_is_mutable(tag) {
            return Ok(());
        }
        Err(immutable_error(repo, tag, &m.setting))
    }
}

fn immutable_error(repo: &ImageRef, tag: &str, setting: &str) -> Error {
    Error::new(
        "immutable_tag",
        format!(
            "repository {} has {setting} tags, so {tag} cannot take another signature; exclude \
             signature tags from immutability: aws ecr put-image-tag-mutability \
             --repository-name {} --image-tag-mutability IMMUTABLE_WITH_EXCLUSION \
             --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter='sha256-*.sig'",
            repo.name(),
            repo.repository
        ),
    )
}

/// A registry's refusal to overwrite an immutable tag, turned into the error that names the fix.
fn immutable_hint(e: Error, repo: &ImageRef, tag: &str) -> Error {
    let m = e.message.to_ascii_lowercase();
    if m.contains("immutable") || m.contains("tag_invalid") && m.contains("already exists") {
        immutable_error(repo, tag, "IMMUTABLE")
    } else {
        e
    }
}

fn jitter(max: Duration) -> Duration {
    use rand_core::RngCore;
    let ms = max.as_millis() as u64;
    Duration::from_millis(rand_core::OsRng.next_u64() % (ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attacher() -> Attacher {
        Attacher::new(
            Registry::new(crate::registry::RegistryOptions::default()).unwrap(),
            None,
            true,
        )
    }

    const D: &str = "sha256:1bb086d1de3d0d9c995a325655c043574b069def1b71485bb2aa5653fe6f8163";

    fn record(fields: Value) -> Record {
        fields.as_object().unwrap().clone()
    }

    fn payload_b64(digest: &str) -> String {
        let p = Payload::new("127.0.0.1:5000/app", digest, &BTreeMap::new());
        base64::engine::general_purpose::STANDARD.encode(p.to_bytes())
    }

    /// `expect`: `ok` or the error kind.
    fn check(fields: Value, expect: &str) {
        let got = match attacher().request(&record(fields.clone())) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.kind.to_string(),
        };
        assert_eq!(got, expect, "{fields}");
    }

    #[test]
    fn records_are_checked() {
        let p = payload_b64(D);
        let other = payload_b64(&format!("sha256:{}", "0".repeat(64)));
        let reg = json!({"registry": "127.0.0.1:5000", "repository": "app"});
        let with = |extra: Value| {
            let mut r = reg.clone();
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        check(
            with(json!({"digest": D, "payload": p, "signature": "MEUC"})),
            "ok",
        );
        check(
            json!({"ref": format!("127.0.0.1:5000/app@{D}"), "digest": D, "payload": p, "signature": "MEUC"}),
            "ok",
        );
        check(
            json!({"ref": format!("127.0.0.1:5000/app@sha256:{}", "1".repeat(64)), "digest": D, "payload": p, "signature": "MEUC"}),
            "digest_mismatch",
        );
        check(
            json!({"digest": D, "payload": p, "signature": "MEUC"}),
            "bad_record",
        );
        check(
            with(json!({"payload": p, "signature": "MEUC"})),
            "bad_record",
        );
        check(
            with(json!({"digest": D, "signature": "MEUC"})),
            "bad_record",
        );
        check(with(json!({"digest": D, "payload": p})), "bad_record");
        check(
            with(json!({"digest": "sha256:abc", "payload": p, "signature": "MEUC"})),
            "bad_reference",
        );
        check(
            with(json!({"digest": D, "payload": other, "signature": "MEUC"})),
            "payload_mismatch",
        );
        check(
            with(json!({"digest": D, "payload": p, "signature": "MEUC="})),
            "bad_base64",
        );
        check(
            with(json!({"digest": D, "payload": p, "signature": "ME UC"})),
            "bad_base64",
        );
        check(
            with(json!({"digest": D, "payload": p, "signature": "MEU"})),
            "bad_base64",
        );
        check(
            with(json!({"digest": D, "payload": p, "signature": ""})),
            "bad_base64",
        );
        check(
            with(json!({"digest": D, "payload": "e30=", "signature": "MEUC"})),
            "bad_payload",
        );
        check(
            with(json!({"digest": D, "payload": format!("{p}="), "signature": "MEUC"})),
            "bad_base64",
        );
        check(
            with(
                json!({"digest": D, "payload": p, "signature": "A".repeat(MAX_SIGNATURE_B64 + 4)}),
            ),
            "too_large",
        );
    }

    #[test]
    fn immutable_errors_name_the_fix() {
        let repo =
            ImageRef::parse_repository("123456789012.dkr.ecr.us-east-1.amazonaws.com/app").unwrap();
        let e = immutable_hint(
            Error::new("registry", "manifest upload: registry answered 400 Bad Request TAG_INVALID (The image tag 'sha256-x.sig' already exists in the 'app' repository and cannot be overwritten because the repository is immutable.)"),
            &repo,
            "sha256-x.sig",
        );
        assert_eq!(e.kind, "immutable_tag");
        assert!(e.message.contains("filter='sha256-*.sig'"), "{}", e.message);
        let e = immutable_hint(Error::new("registry", "500"), &repo, "t");
        assert_eq!(e.kind, "registry");
    }
}
