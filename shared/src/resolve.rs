//! `digest-of`'s work: an image reference (or a repository, or a whole registry, with `--all`)
//! becomes the fields of one or more records: `ref`, `registry`, `repository`, `tag`, `digest`, `media_type`, and
//! `platform` + `index_digest` for the manifests of an index (`--platforms`), and `ecr` for
//! ECR registries.
//!
//! Digests are never taken on trust from a tag: the manifest is fetched and hashed (a digest
//! reference is fetched too, which proves it exists and that its bytes match). The exception
//! is `--all` on ECR, where the digests come from ECR's own `DescribeImages` listing.

use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use crate::ecr::{EcrImage, EcrTarget};
use crate::error::Error;
use crate::record::Record;
use crate::reference::ImageRef;
use crate::registry::{Manifest, Registry};

/// The fields `digest-of` owns, in the order they are written.
pub const FIELDS: [&str; 9] = [
    "ref",
    "registry",
    "repository",
    "tag",
    "digest",
    "media_type",
    "platform",
    "index_digest",
    "ecr",
];

/// Manifests fetched at once while expanding one repository (`--all`) or index.
const INNER_CONCURRENCY: usize = 8;

/// How references are resolved.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub registry: Registry,
    /// Add one record per platform manifest of an image index
    pub platforms: bool,
    /// Look up ECR metadata (`DescribeImages`, `DescribeRepositories`) for ECR registries
    pub ecr_metadata: bool,
}

/// Whether a tag is one of cosign's attachments (`sha256-<hex>.sig`, `.att`, `.sbom`), which
/// `--all` leaves out: they are signatures of images, not images to sign or verify.
pub fn is_cosign_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let Some((hex, ext)) = rest.split_once('.') else {
        return false;
    };
    hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && matches!(ext, "sig" | "att" | "sbom")
}

/// The fields of one record.
fn fields(
    image: &ImageRef,
    tag: Option<&str>,
    digest: &str,
    media_type: &str,
) -> Vec<(&'static str, Value)> {
    let mut f = vec![
        ("ref", Value::from(image.with_digest(digest).to_string())),
        ("registry", Value::from(image.registry.clone())),
        ("repository", Value::from(image.repository.clone())),
    ];
    if let Some(t) = tag {
        f.push(("tag", Value::from(t)));
    }
    f.push(("digest", Value::from(digest)));
    f.push(("media_type", Value::from(media_type)));
    f
}

/// Writes `fields` into `record`: replaces the tool's old fields (keeping their place) and
/// drops those this resolution does not set.
pub fn apply(record: &mut Record, fields: &[(&'static str, Value)]) {
    for name in FIELDS {
        if !fields.iter().any(|(n, _)| *n == name) {
            record.shift_remove(name);
        }
    }
    for (name, value) in fields {
        record.insert((*name).to_string(), value.clone());
    }
}

impl Resolver {
    /// Resolves `input` (a reference; a repository when `all`) to the field sets of its
    /// records, in output order. Never empty on success.
    pub async fn resolve(
        &self,
        input: &str,
        all: bool,
    ) -> Result<Vec<Vec<(&'static str, Value)>>, Error> {
        if all {
            if let Some(host) = registry_host(input) {
                // Boxed: nesting every repository's listing future inline is too deep a type.
                return Box::pin(self.resolve_registry(host)).await;
            }
            let repo = ImageRef::parse_repository(input)?;
            return self.resolve_all(&repo).await;
        }
        let image = ImageRef::parse(input)?;
        let manifest = self.registry.get_manifest(&image).await?;
        manifest.check()?;
        let tag = image.tag.as_deref();
        let mut first = fields(&image, tag, &manifest.digest, &manifest.media_type);
        if let Some(target) = self.ecr_target(&image) {
            let meta = self
                .registry
                .ecr()
                .describe_image(&target, &image.repository, &manifest.digest)
                .await
                .map_err(|e| match e.kind {
                    // The registry has it, so ECR's API should: a wrong alias or account.
                    "not_found" => Error::new(
                        "ecr",
                        format!(
                            "{}; the registry serves this manifest, so check the ECR alias or                              account (--no-ecr-metadata skips ECR metadata)",
                            e.message
                        ),
                    ),
                    _ => e,
                })?;
            first.push(("ecr", self.ecr_json(&target, &image, &meta).await?));
        }
        let mut out = vec![first];
        out.extend(self.platform_records(&image, tag, &manifest).await?);
        Ok(out)
    }

    fn ecr_target(&self, image: &ImageRef) -> Option<EcrTarget> {
        self.ecr_metadata
            .then(|| self.registry.ecr_target(&image.registry))
            .flatten()
    }

    async fn ecr_json(
        &self,
        target: &EcrTarget,
        image: &ImageRef,
        meta: &EcrImage,
    ) -> Result<Value, Error> {
        let mutability = self
            .registry
            .ecr()
            .tag_mutability(target, &image.repository)
            .await?;
        Ok(meta.to_json(Some(&mutability)))
    }

    /// With `--platforms`, one field set per platform manifest of an index (each fetched and
    /// checked); otherwise none.
    async fn platform_records(
        &self,
        image: &ImageRef,
        tag: Option<&str>,
        manifest: &Manifest,
    ) -> Result<Vec<Vec<(&'static str, Value)>>, Error> {
        if !self.platforms || !manifest.is_index() {
            return Ok(Vec::new());
        }
        // Build attestations list themselves as platform "unknown/unknown": not images.
        let entries: Vec<_> = manifest
            .index_entries()?
            .into_iter()
            .filter(|e| e.platform.as_deref() != Some("unknown/unknown"))
            .collect();
        futures::stream::iter(entries)
            .map(|entry| async move {
                let child = self
                    .registry
                    .get_manifest(&image.with_digest(&entry.digest))
                    .await?;
                child.check()?;
                let mut f = fields(image, tag, &child.digest, &child.media_type);
                if let Some(p) = entry.platform {
                    f.push(("platform", Value::from(p)));
                }
                f.push(("index_digest", Value::from(manifest.digest.clone())));
                Ok::<_, Error>(f)
            })
            .buffered(INNER_CONCURRENCY)
            .try_collect()
            .await
    }

    /// `--all HOST`: every tagged image of every repository of the registry, by repository
    /// (ECR's `DescribeRepositories`, else the registry's `/v2/_catalog`). Repositories with no
    /// tagged image (a signature repository, say) are left out.
    async fn resolve_registry(&self, host: &str) -> Result<Vec<Vec<(&'static str, Value)>>, Error> {
        let mut names = match self.registry.ecr_target(host) {
            Some(target) => self.registry.ecr().list_repositories(&target).await?,
            None => self.registry.list_repositories(host).await?,
        };
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in &names {
            let repo = ImageRef::parse_repository(&format!("{host}/{name}"))?;
            match self.resolve_all(&repo).await {
                Ok(records) => out.extend(records),
                // Listed but empty, or deleted since the listing.
                Err(e) if e.kind == "not_found" => {}
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Err(Error::new(
                "not_found",
                format!(
                    "registry {host} lists {} repositories and none has a tagged image",
                    names.len()
                ),
            ));
        }
        Ok(out)
    }

    /// `--all`: one field set per tag (cosign attachment tags left out), sorted by tag.
    async fn resolve_all(&self, repo: &ImageRef) -> Result<Vec<Vec<(&'static str, Value)>>, Error> {
        let mut out = Vec::new();
        if let Some(target) = self.registry.ecr_target(&repo.registry) {
            // ECR lists digests, tags and metadata in one paginated call.
            let images = self
                .registry
                .ecr()
                .list_images(&target, &repo.repository)
                .await?;
            let mutability = if self.ecr_metadata {
                Some(
                    self.registry
                        .ecr()
                        .tag_mutability(&target, &repo.repository)
                        .await?,
                )
            } else {
                None
            };
            let mut tagged: Vec<(&str, &EcrImage)> = images
                .iter()
                .flat_map(|img| img.tags.iter().map(move |t| (t.as_str(), img)))
                .filter(|(t, _)| !is_cosign_tag(t))
                .collect();
            tagged.sort_by(|a, b| a.0.cmp(b.0));
            for (tag, img) in tagged {
                let image = repo.with_tag(tag);
                let media_type = match &img.media_type {
                    Some(m) => m.clone(),
                    None => {
                        let m = self.registry.get_manifest(&image).await?;
                        m.check()?;
                        m.media_type
                    }
                };
                let mut f = fields(&image, Some(tag), &img.digest, &media_type);
                if let Some(m) = &mutability {
                    f.push(("ecr", img.to_json(Some(m))));
                }
                let needs_index = self.platforms && crate::registry::is_index(&media_type);
                out.push(f);
                if needs_index {
                    let manifest = self
                        .registry
                        .get_manifest(&image.with_digest(&img.digest))
                        .await?;
                    manifest.check()?;
                    out.extend(self.platform_records(&image, Some(tag), &manifest).await?);
                }
            }
        } else {
            let mut tags = self.registry.list_tags(repo).await?;
            tags.retain(|t| !is_cosign_tag(t));
            tags.sort();
            tags.dedup();
            let resolved: Vec<Option<Vec<_>>> = futures::stream::iter(tags)
                .map(|tag| async move {
                    let image = repo.with_tag(&tag);
                    match self.registry.get_manifest(&image).await {
                        Ok(m) => {
                            m.check()?;
                            let mut v = vec![fields(&image, Some(&tag), &m.digest, &m.media_type)];
                            v.extend(self.platform_records(&image, Some(&tag), &m).await?);
                            Ok(Some(v))
                        }
                        // Deleted between the listing and now: not an image any more.
                        Err(e) if e.kind == "not_found" => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffered(INNER_CONCURRENCY)
                .try_collect()
                .await?;
            out.extend(resolved.into_iter().flatten().flatten());
        }
        if out.is_empty() {
            return Err(Error::new(
                "not_found",
                format!("repository {} has no tagged images", repo.name()),
            ));
        }
        Ok(out)
    }
}

/// `input` when it names a registry host alone (`HOST[:PORT]`, a trailing `/` allowed): a
/// name with a dot, a numeric port, or `localhost`, and no repository path. `busybox:1.36` is
/// an image, not a host.
pub fn registry_host(input: &str) -> Option<&str> {
    let host = input.strip_suffix('/').unwrap_or(input);
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let plausible = !name.is_empty()
        && port_ok
        && (name.contains('.') || port.is_some() || name == "localhost")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b));
    plausible.then_some(host)
}

/// The reference a record asks about: `image`, else `ref`.
pub fn record_reference(record: &Record) -> Result<String, Error> {
    for field in ["image", "ref"] {
        match record.get(field) {
            Some(Value::String(s)) => return Ok(s.clone()),
            Some(other) if !other.is_null() => {
                return Err(Error::new(
                    "bad_reference",
                    format!("field `{field}` is not a string"),
                ))
            }
            _ => {}
        }
    }
    Err(Error::new(
        "bad_reference",
        "the record has no `image` (or `ref`) field with an image reference",
    ))
}

/// `{"image": ...}` shaped helper for tests and tools.
pub fn image_record(image: &str) -> Record {
    let mut r = Record::new();
    r.insert("image".into(), json!(image));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_tags() {
        let h = "5e185a19bc244b76ceadfe4be0867dbb36f79580a3d171b167cefcee692d11e9";
        assert!(is_cosign_tag(&format!("sha256-{h}.sig")));
        assert!(is_cosign_tag(&format!("sha256-{h}.att")));
        assert!(!is_cosign_tag(&format!("sha256-{h}")));
        assert!(!is_cosign_tag(&format!("sha256-{h}.sig2")));
        assert!(!is_cosign_tag("sha256-abc.sig"));
        assert!(!is_cosign_tag("v1.0"));
    }

    #[test]
    fn apply_replaces_owned_fields_in_place() {
        let mut r: Record = serde_json::from_str(
            r#"{"image":"x","tag":"old","platform":"linux/amd64","digest":"d0","keep":1}"#,
        )
        .unwrap();
        apply(&mut r, &[("ref", json!("h/r@d1")), ("digest", json!("d1"))]);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"image":"x","digest":"d1","keep":1,"ref":"h/r@d1"}"#
        );
    }

    #[test]
    fn registry_hosts_alone() {
        assert_eq!(registry_host("127.0.0.1:5000"), Some("127.0.0.1:5000"));
        assert_eq!(registry_host("127.0.0.1:5000/"), Some("127.0.0.1:5000"));
        assert_eq!(
            registry_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some("123456789012.dkr.ecr.us-east-1.amazonaws.com")
        );
        assert_eq!(registry_host("localhost"), Some("localhost"));
        assert_eq!(registry_host("127.0.0.1:5000/app"), None);
        assert_eq!(registry_host("busybox"), None);
        assert_eq!(registry_host("busybox:1.36"), None);
        assert_eq!(registry_host("app:v1"), None);
        assert_eq!(registry_host(""), None);
    }

    #[test]
    fn record_references() {
        assert_eq!(record_reference(&image_record("a")).unwrap(), "a");
        let r: Record = serde_json::from_str(r#"{"ref":"b"}"#).unwrap();
        assert_eq!(record_reference(&r).unwrap(), "b");
        let r: Record = serde_json::from_str(r#"{"image":3}"#).unwrap();
        assert!(record_reference(&r).is_err());
        assert!(record_reference(&Record::new()).is_err());
    }
}
