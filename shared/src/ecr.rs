//! Amazon ECR: registry hosts, `GetAuthorizationToken`, image metadata (`DescribeImages`) and
//! repository settings (`DescribeRepositories`).
//!
//! An ECR registry is recognised by its host, `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`,
//! or by an alias (see [`EcrAlias`]): `SIGTRAIL_ECR_ALIASES="127.0.0.1:5000=123456789012.dkr.ecr.us-east-1.amazonaws.com"`
//! makes the tools send registry HTTP to `127.0.0.1:5000` while ECR API calls (auth token,
//! `DescribeImages`, `DescribeRepositories`, `ListImages`) name account `123456789012` in
//! `us-east-1`. The local environment uses it so the AWS emulator's ECR answers for the local
//! registry.
//!
//! One [`Ecr`] per process: one SDK client per region, the auth token cached until shortly
//! before it expires, tag mutability cached per repository.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{ImageDetail, ImageIdentifier};
use aws_smithy_types::date_time::Format;
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::error::Error;

/// The ECR account and region a registry host stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcrTarget {
    /// 12-digit AWS account id (ECR's `registryId`)
    pub registry_id: String,
    /// AWS region, e.g. `us-east-1`
    pub region: String,
}

impl EcrTarget {
    /// Recognises `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]` (any port is ignored).
    pub fn from_host(host: &str) -> Option<EcrTarget> {
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        let host = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
        let mut parts = host.split('.');
        let (account, dkr, ecr, region) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some()
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
            || dkr != "dkr"
            || !(ecr == "ecr" || ecr == "ecr-fips")
            || region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return None;
        }
        Some(EcrTarget {
            registry_id: account.to_string(),
            region: region.to_string(),
        })
    }
}

/// `HOST=ECR_HOST`: treat registry `HOST` (normally a loopback registry) as ECR registry
/// `ECR_HOST` for ECR API calls, while HTTP still goes to `HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrAlias {
    pub host: String,
    pub target: EcrTarget,
}

impl std::str::FromStr for EcrAlias {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, ecr_host) = s.split_once('=').ok_or_else(|| {
            format!("ECR alias {s:?} is not HOST=ACCOUNT.dkr.ecr.REGION.amazonaws.com")
        })?;
        let host = host.trim();
        if host.is_empty() || host.contains('/') {
            return Err(format!("ECR alias {s:?}: {host:?} is not a registry host"));
        }
        let target = EcrTarget::from_host(ecr_host.trim()).ok_or_else(|| {
            format!("ECR alias {s:?}: {ecr_host:?} is not an ECR host (ACCOUNT.dkr.ecr.REGION.amazonaws.com)")
        })?;
        Ok(EcrAlias {
            host: host.to_string(),
            target,
        })
    }
}

/// A registry credential from `GetAuthorizationToken`. `Debug` does not show the password.
#[derive(Clone)]
pub struct EcrCredential {
    pub username: String,
    pub password: String,
    /// When AWS says the token expires
    pub expires_at: Option<SystemTime>,
}

impl fmt::Debug for EcrCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// ECR metadata of one image, as `digest-of` puts it in the record's `ecr` field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EcrImage {
    pub registry_id: String,
    pub digest: String,
    /// RFC 3339, UTC
    pub pushed_at: Option<String>,
    pub tags: Vec<String>,
    /// `COMPLETE`, `IN_PROGRESS`, `FAILED`, ... when a scan ran
    pub scan_status: Option<String>,
    pub media_type: Option<String>,
}

/// Tag mutability of a repository (`DescribeRepositories`).
#[derive(Debug, Clone, PartialEq)]
pub struct TagMutability {
    /// `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`
    pub setting: String,
    /// Wildcard filters of the exclusions (e.g. `sha256-*.sig`)
    pub exclusions: Vec<String>,
}

impl TagMutability {
    /// Whether `tag` can be overwritten in this repository.
    pub fn tag_is_mutable(&self, tag: &str) -> bool {
        let excluded = self
            .exclusions
            .iter()
            .any(|f| crate::wildcard::matches(f, tag));
        match self.setting.as_str() {
            "IMMUTABLE" => false,
            "IMMUTABLE_WITH_EXCLUSION" => excluded,
            "MUTABLE_WITH_EXCLUSION" => !excluded,
            _ => true,
        }
    }
}

impl EcrImage {
    /// The record's `ecr` field, with the repository's tag mutability when known.
    pub fn to_json(&self, tag_mutability: Option<&TagMutability>) -> Value {
        json!({
            "registry_id": self.registry_id,
            "pushed_at": self.pushed_at,
            "tags": self.tags,
            "scan_status": self.scan_status,
            "tag_mutability": tag_mutability.map(|t| t.setting.clone()),
        })
    }

    fn from_detail(target: &EcrTarget, d: &ImageDetail) -> EcrImage {
        let mut tags = d.image_tags().to_vec();
        tags.sort();
        EcrImage {
            registry_id: d.registry_id().unwrap_or(&target.registry_id).to_string(),
            digest: d.image_digest().unwrap_or_default().to_string(),
            pushed_at: d
                .image_pushed_at()
                .and_then(|t| t.fmt(Format::DateTime).ok()),
            tags,
            scan_status: d
                .image_scan_status()
                .and_then(|s| s.status())
                .map(|s| s.as_str().to_string()),
            media_type: d
                .image_manifest_media_type()
                .or(d.artifact_media_type())
                .map(str::to_string),
        }
    }
}

type Cached<T> = Mutex<HashMap<String, T>>;

/// The ECR API, one per process.
#[derive(Default)]
pub struct Ecr {
    clients: Cached<aws_sdk_ecr::Client>,
    tokens: Cached<EcrCredential>,
    mutability: Cached<TagMutability>,
}

impl fmt::Debug for Ecr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ecr { .. }")
    }
}

fn sdk_error<E, R>(what: &str, target: &EcrTarget, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let code = e.code().unwrap_or_default().to_string();
    let detail = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string());
    let kind = match code.as_str() {
        "ImageNotFoundException" | "RepositoryNotFoundException" => "not_found",
        "AccessDeniedException" | "UnrecognizedClientException" | "ExpiredTokenException" => {
            "unauthorized"
        }
        _ => "ecr",
    };
    let code = if code.is_empty() {
        String::new()
    } else {
        format!("{code}: ")
    };
    Error::new(
        kind,
        format!(
            "ecr {what} for account {} in {} failed: {code}{detail}",
            target.registry_id, target.region
        ),
    )
}

impl Ecr {
    pub fn new() -> Self {
        Self::default()
    }

    /// The SDK client for `region` (created once).
    pub async fn client(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let config = crate::aws::sdk_config(Some(region)).await;
        let client = aws_sdk_ecr::Client::new(&config);
        clients.insert(region.to_string(), client.clone());
        client
    }

    /// A registry credential for `target` from `GetAuthorizationToken`, reused until five
    /// minutes before it expires.
    pub async fn credential(&self, target: &EcrTarget) -> Result<EcrCredential, Error> {
        let key = format!("{}/{}", target.registry_id, target.region);
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get(&key) {
            let fresh = c.expires_at.is_none_or(|t| {
                t.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > Duration::from_secs(300))
            });
            if fresh {
                return Ok(c.clone());
            }
        }
        let client = self.client(&target.region).await;
        let out = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| sdk_error("GetAuthorizationToken", target, e))?;
        let data = out.authorization_data().first().ok_or_else(|| {
            Error::new(
                "ecr",
                "ecr GetAuthorizationToken returned no authorization data",
            )
        })?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Error::new(
                    "ecr",
                    "ecr GetAuthorizationToken returned a token that is not base64 text",
                )
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            Error::new(
                "ecr",
                "ecr GetAuthorizationToken returned a token without ':'",
            )
        })?;
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok());
        let cred = EcrCredential {
            username: username.to_string(),
            password: password.to_string(),
            expires_at,
        };
        tokens.insert(key, cred.clone());
        Ok(cred)
    }

    /// `DescribeImages` for one digest.
    pub async fn describe_image(
        &self,
        target: &EcrTarget,
        repository: &str,
        digest: &str,
    ) -> Result<EcrImage, Error> {
        let client = self.client(&target.region).await;
        let out = client
            .describe_images()
            .registry_id(&target.registry_id)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", target, e))?;
        out.image_details()
            .iter()
            .find(|d| d.image_digest() == Some(digest))
            .map(|d| EcrImage::from_detail(target, d))
            .ok_or_else(|| {
                Error::new(
                    "not_found",
                    format!("ecr DescribeImages does not list {digest} in {repository}"),
                )
            })
    }

    /// Every image of a repository (`DescribeImages`, all pages), in the order ECR lists them.
    pub async fn list_images(
        &self,
        target: &EcrTarget,
        repository: &str,
    ) -> Result<Vec<EcrImage>, Error> {
        let client = self.client(&target.region).await;
        let mut pages = client
            .describe_images()
            .registry_id(&target.registry_id)
            .repository_name(repository)
            .into_paginator()
            .send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeImages", target, e))?;
            images.extend(
                page.image_details()
                    .iter()
                    .map(|d| EcrImage::from_detail(target, d)),
            );
        }
        Ok(images)
    }

    /// Every repository name of the registry (`DescribeRepositories`, all pages), sorted.
    pub async fn list_repositories(&self, target: &EcrTarget) -> Result<Vec<String>, Error> {
        let client = self.client(&target.region).await;
        let mut pages = client
            .describe_repositories()
            .registry_id(&target.registry_id)
            .into_paginator()
            .send();
        let mut names = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("DescribeRepositories", target, e))?;
            names.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name())
                    .map(str::to_string),
            );
        }
        names.sort();
        Ok(names)
    }

    /// The repository's tag mutability (`DescribeRepositories`), looked up once per repository.
    pub async fn tag_mutability(
        &self,
        target: &EcrTarget,
        repository: &str,
    ) -> Result<TagMutability, Error> {
        let key = format!("{}/{}/{repository}", target.registry_id, target.region);
        if let Some(m) = self.mutability.lock().await.get(&key) {
            return Ok(m.clone());
        }
        let client = self.client(&target.region).await;
        let out = client
            .describe_repositories()
            .registry_id(&target.registry_id)
            .repository_names(repository)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeRepositories", target, e))?;
        let repo = out.repositories().first().ok_or_else(|| {
            Error::new(
                "not_found",
                format!("ecr DescribeRepositories does not list {repository}"),
            )
        })?;
        let m = TagMutability {
            setting: repo
                .image_tag_mutability()
                .map_or("MUTABLE", |m| m.as_str())
                .to_string(),
            exclusions: repo
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect(),
        };
        self.mutability.lock().await.insert(key, m.clone());
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_hosts() {
        let t = EcrTarget::from_host("123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (t.registry_id.as_str(), t.region.as_str()),
            ("123456789012", "us-east-1")
        );
        let t = EcrTarget::from_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com:443")
            .unwrap();
        assert_eq!(t.region, "us-gov-west-1");
        assert!(EcrTarget::from_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        for no in [
            "ghcr.io",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "x.123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "public.ecr.aws",
        ] {
            assert!(EcrTarget::from_host(no).is_none(), "{no}");
        }
    }

    #[test]
    fn aliases() {
        let a: EcrAlias = "127.0.0.1:5000=123456789012.dkr.ecr.eu-west-1.amazonaws.com"
            .parse()
            .unwrap();
        assert_eq!(a.host, "127.0.0.1:5000");
        assert_eq!(a.target.region, "eu-west-1");
        assert!("127.0.0.1:5000".parse::<EcrAlias>().is_err());
        assert!("127.0.0.1:5000=ghcr.io".parse::<EcrAlias>().is_err());
    }

    #[test]
    fn mutability_and_exclusions() {
        let m = |setting: &str, ex: &[&str]| TagMutability {
            setting: setting.into(),
            exclusions: ex.iter().map(|s| s.to_string()).collect(),
        };
        let sig = "sha256-5e185a19bc244b76ceadfe4be0867dbb36f79580a3d171b167cefcee692d11e9.sig";
        assert!(m("MUTABLE", &[]).tag_is_mutable(sig));
        assert!(!m("IMMUTABLE", &[]).tag_is_mutable(sig));
        assert!(m("IMMUTABLE_WITH_EXCLUSION", &["sha256-*.sig"]).tag_is_mutable(sig));
        assert!(!m("IMMUTABLE_WITH_EXCLUSION", &["v*"]).tag_is_mutable(sig));
        assert!(!m("MUTABLE_WITH_EXCLUSION", &["*.sig"]).tag_is_mutable(sig));
    }
}
