//! Image names for identity checks: the signed `docker-reference` against the image's reference.
//!
//! Parsing is lenient on purpose: a signed `docker-reference` that is not a valid reference must
//! still be compared (and fail to match), not make the record an error. Names are normalized the
//! way cosign (go-containerregistry) and containers/image both agree on: Docker Hub is
//! `docker.io` (also for `index.docker.io` and for names without a registry host), and a one-part
//! Docker Hub path gets `library/`.

use std::fmt;

/// A reference split into name (`host/path`), tag and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefName {
    /// Registry host (with port) and repository path, normalized
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl RefName {
    /// Splits `reference` without validating it.
    pub fn parse_lenient(reference: &str) -> Self {
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        Self {
            name: normalize_name(name),
            tag,
            digest,
        }
    }

    /// From the parts `digest-of` writes (`registry`, `repository`, `tag`).
    pub fn from_parts(registry: &str, repository: &str, tag: Option<&str>) -> Self {
        Self {
            name: normalize_name(&format!("{registry}/{repository}")),
            tag: tag.map(str::to_string),
            digest: None,
        }
    }

    /// Same registry and repository.
    pub fn same_repository(&self, image: &RefName) -> bool {
        self.name == image.name
    }

    /// `self` (a signed identity) under exact matching against `image`: same repository, and a
    /// tag in the signed identity must be the image's tag. A signed digest must be the image's
    /// digest when the image reference names one.
    pub fn matches_exact(&self, image: &RefName) -> bool {
        if !self.same_repository(image) {
            return false;
        }
        if let Some(tag) = &self.tag {
            if image.tag.as_ref() != Some(tag) {
                return false;
            }
        }
        match (&self.digest, &image.digest) {
            (Some(signed), Some(img)) => signed == img,
            (Some(_), None) => false,
            _ => true,
        }
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn normalize_name(name: &str) -> String {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    match (is_host, rest) {
        (true, Some(rest)) if first == "index.docker.io" || first == "docker.io" => {
            docker_hub(rest)
        }
        (true, Some(_)) => name.to_string(),
        (_, None) => docker_hub(name),
        (false, Some(_)) => docker_hub(name),
    }
}

fn docker_hub(path: &str) -> String {
    if path.contains('/') {
        format!("docker.io/{path}")
    } else {
        format!("docker.io/library/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RefName {
        RefName::parse_lenient(s)
    }

    #[test]
    fn splits_and_normalizes() {
        let x = r("127.0.0.1:5000/a/b:v1@sha256:00");
        assert_eq!(x.name, "127.0.0.1:5000/a/b");
        assert_eq!(x.tag.as_deref(), Some("v1"));
        assert_eq!(x.digest.as_deref(), Some("sha256:00"));
        assert_eq!(r("127.0.0.1:5000/a").tag, None);
        assert_eq!(r("busybox").name, "docker.io/library/busybox");
        assert_eq!(
            r("index.docker.io/library/busybox:1").name,
            "docker.io/library/busybox"
        );
        assert_eq!(r("docker.io/busybox").name, "docker.io/library/busybox");
        assert_eq!(r("user/app").name, "docker.io/user/app");
        assert_eq!(r("localhost/app").name, "localhost/app");
        assert_eq!(
            r("unexpected docker reference").name,
            "docker.io/library/unexpected docker reference"
        );
        assert_eq!(r("reg.io/a:b:c").tag.as_deref(), Some("c"));
        assert_eq!(r("reg.io/a:v1").to_string(), "reg.io/a:v1");
    }

    #[test]
    fn identity_rules() {
        let signed_tagless = r("reg.io/app");
        let signed_tag = r("reg.io/app:tag");
        let image_tag = r("reg.io/app:tag");
        let image_other = r("reg.io/app:othertag");
        let image_digest = r("reg.io/app@sha256:aa");
        assert!(signed_tagless.matches_exact(&image_tag));
        assert!(signed_tagless.matches_exact(&image_digest));
        assert!(signed_tag.matches_exact(&image_tag));
        assert!(!signed_tag.matches_exact(&image_other));
        assert!(!signed_tag.matches_exact(&image_digest));
        assert!(signed_tag.same_repository(&image_other));
        assert!(!r("reg.io/other").same_repository(&image_tag));
        assert!(!r("other.io/app").matches_exact(&image_tag));
        assert!(!r("reg.io/app@sha256:bb").matches_exact(&image_digest));
        assert!(r("reg.io/app@sha256:aa").matches_exact(&image_digest));
    }
}
