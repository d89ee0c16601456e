//! A small OCI distribution client on `reqwest`: manifests, blobs, tags, uploads; with the auth,
//! retry and redirect rules the tools need.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sigtrail::Error> {
//! use sigtrail::reference::ImageRef;
//! use sigtrail::registry::{Registry, RegistryOptions};
//! let registry = Registry::new(RegistryOptions::from_env(&[], &[])?)?;
//! let image = ImageRef::parse("127.0.0.1:5000/app:v1")?;
//! let manifest = registry.get_manifest(&image).await?; // bytes checked against the digest
//! println!("{} {}", manifest.digest, manifest.media_type);
//! # Ok(()) }
//! ```
//!
//! Why not `oci-client`: we need ECR token auth, docker credential helpers, `Retry-After`
//! backoff, strict digest checks on every manifest and blob, size caps while reading, and
//! redirects that never carry credentials to another host, all under our control; that is
//! a thin layer on `reqwest`, and one dependency fewer.
//!
//! Rules:
//! - **One client per process**, cloned freely (`Arc` inside): one connection pool, and per
//!   registry host its credential, auth scheme and bearer tokens (cached per scope).
//! - **Digests**: a manifest fetched by digest must hash to it; a `Docker-Content-Digest`
//!   header must match the bytes; blobs must hash to the digest asked for. Otherwise
//!   `digest_mismatch`. Manifests are capped at [`MAX_MANIFEST_BYTES`]; blob reads take a cap.
//! - **Auth**: anonymous first; on `401` the `WWW-Authenticate` challenge decides: `Bearer`
//!   (token from the realm, with the credential when there is one) or `Basic`. Credentials come
//!   from docker `config.json` ([`auth`]) or, for ECR registries, from `GetAuthorizationToken`
//!   (sent as Basic from the first request).
//! - **Plain HTTP** only for loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`) and hosts in
//!   [`RegistryOptions::insecure`] (`--insecure-registry HOST`, `SIGTRAIL_INSECURE_REGISTRIES`);
//!   everything else is HTTPS with verified certificates.
//! - **Retries**: `429` (honouring `Retry-After` in seconds, capped), `5xx`, `408` and connection
//!   failures are retried with exponential backoff and jitter, up to
//!   [`RegistryOptions::max_attempts`] (the defaults ride out a registry restart of ~15 s).
//! - **Redirects** are followed by hand (ECR blob downloads go to S3): `Authorization` is sent
//!   only to the registry's own scheme, host and port, and HTTPS never downgrades to HTTP.
//! - **ECR aliases** (`--ecr-alias HOST=ACCOUNT.dkr.ecr.REGION.amazonaws.com`,
//!   `SIGTRAIL_ECR_ALIASES`, comma-separated): registry `HOST` is treated as that ECR registry
//!   (auth token and ECR API calls use the account and region) while HTTP still goes to `HOST`.
//!   The local environment uses this so the AWS emulator's ECR answers for a loopback registry.
//!
//! Error kinds: `not_found`, `unauthorized`, `registry` (anything else the registry or the
//! network did), `digest_mismatch`, `too_large`, `bad_reference`, `config`, `ecr`.

pub mod auth;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::ecr::{Ecr, EcrAlias, EcrTarget};
use crate::error::Error;
use crate::reference::{check_digest, ImageRef};
use auth::{Challenge, Credential, DockerConfig};

/// Docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The `Accept` header of manifest requests.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest read (registries themselves cap manifests at 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Most tags listed for one repository, or repositories for one registry (all pages together).
pub const MAX_TAGS: usize = 1_000_000;
/// Redirect hops followed for one request.
const MAX_REDIRECTS: usize = 8;

/// Whether a manifest media type is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// How the client behaves. Built at the edge (flags + environment), then shared.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Hosts (`host` or `host:port`) allowed plain HTTP besides loopback
    pub insecure: Vec<String>,
    /// Registry hosts treated as ECR registries
    pub ecr_aliases: Vec<EcrAlias>,
    /// Directory holding `config.json`; `None`: `$DOCKER_CONFIG`, then `~/.docker`
    pub docker_config: Option<PathBuf>,
    /// Attempts per request, counting the first (retries on 429, 5xx, connection errors)
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt, with jitter
    pub backoff_base: Duration,
    /// Longest single wait (backoff or `Retry-After`)
    pub backoff_cap: Duration,
    /// Connect timeout
    pub connect_timeout: Duration,
    /// Whole-request timeout
    pub request_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            ecr_aliases: Vec::new(),
            docker_config: None,
            max_attempts: 7,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(8),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
        }
    }
}

impl RegistryOptions {
    /// Defaults plus flags plus the environment: `SIGTRAIL_INSECURE_REGISTRIES` and
    /// `SIGTRAIL_ECR_ALIASES` (comma-separated), added to `insecure` and `aliases` (flag values).
    pub fn from_env(insecure: &[String], aliases: &[String]) -> Result<Self, Error> {
        let list = |var: &str| -> Vec<String> {
            std::env::var(var)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut opts = Self {
            insecure: insecure.to_vec(),
            ..Self::default()
        };
        opts.insecure.extend(list("SIGTRAIL_INSECURE_REGISTRIES"));
        for a in aliases.iter().cloned().chain(list("SIGTRAIL_ECR_ALIASES")) {
            let alias = a.parse::<EcrAlias>().map_err(|m| Error::new("config", m))?;
            opts.ecr_aliases.push(alias);
        }
        Ok(opts)
    }
}

/// A manifest as the registry served it: exact bytes, their digest, their media type.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of `bytes` (computed here, and checked against what the registry said)
    pub digest: String,
    /// From `Content-Type`, or the manifest's `mediaType` when the header is generic
    pub media_type: String,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("digest", &self.digest)
            .field("media_type", &self.media_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// One manifest listed in an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// `os/arch[/variant]`, when the entry has a platform
    pub platform: Option<String>,
}

impl Manifest {
    /// The manifest as JSON.
    pub fn json(&self) -> Result<Value, Error> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            Error::new(
                "registry",
                format!("manifest {} is not valid JSON: {e}", self.digest),
            )
        })
    }

    /// Checks that the bytes are what the media type says before anyone reports or signs
    /// their digest (a registry can serve anything under a manifest media type): UTF-8, one
    /// JSON object (serde_json's depth limit of 128 refuses hostile nesting without recursing
    /// deeper), `schemaVersion` 2, a `mediaType` field (when present) equal to the media type
    /// from `Content-Type`, and the shape of that type: an image manifest has a `config`
    /// descriptor and a `layers` array of descriptors; an index has a `manifests` array of
    /// descriptors of image manifests or indexes. Otherwise a `bad_manifest` error naming what
    /// is wrong.
    pub fn check(&self) -> Result<(), Error> {
        let what = format!("manifest {}", self.digest);
        let bad = |why: String| Error::new("bad_manifest", format!("{what} {why}; refusing it"));
        if !matches!(
            self.media_type.as_str(),
            OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_MANIFEST_LIST
        ) {
            return Err(bad(format!(
                "has media type {:?}, not an image manifest or index",
                self.media_type
            )));
        }
        if let Err(e) = std::str::from_utf8(&self.bytes) {
            return Err(bad(format!(
                "is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            )));
        }
        let json: Value = serde_json::from_slice(&self.bytes)
            .map_err(|e| bad(format!("is not valid JSON ({e})")))?;
        let Some(obj) = json.as_object() else {
            return Err(bad(format!(
                "is a JSON {}, not an object",
                json_kind(&json)
            )));
        };
        match obj.get("schemaVersion") {
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) => return Err(bad(format!("has schemaVersion {v}, not 2"))),
            None => return Err(bad("has no schemaVersion (must be 2)".to_string())),
        }
        match obj.get("mediaType") {
            None => {}
            Some(Value::String(m)) if *m == self.media_type => {}
            Some(m) => {
                return Err(bad(format!(
                    "says mediaType {m} but was served as {:?}",
                    self.media_type
                )))
            }
        }
        let descriptor = |v: &Value, at: &str| -> Result<(), Error> {
            let Some(d) = v.as_object() else {
                return Err(bad(format!(
                    "has {at} that is a JSON {}, not a descriptor",
                    json_kind(v)
                )));
            };
            if !d.get("mediaType").is_some_and(Value::is_string) {
                return Err(bad(format!("has {at} without a string mediaType")));
            }
            let digest = d.get("digest").and_then(Value::as_str).unwrap_or_default();
            if !digest
                .split_once(':')
                .is_some_and(|(a, h)| !a.is_empty() && !h.is_empty())
            {
                return Err(bad(format!("has {at} without a digest")));
            }
            if !d.get("size").is_some_and(|s| s.is_u64()) {
                return Err(bad(format!("has {at} without a size")));
            }
            Ok(())
        };
        if self.is_index() {
            let Some(list) = obj.get("manifests").and_then(Value::as_array) else {
                return Err(bad("is an index without a manifests array".to_string()));
            };
            for (i, m) in list.iter().enumerate() {
                let at = format!("manifests[{i}]");
                descriptor(m, &at)?;
                let media_type = m["mediaType"].as_str().unwrap_or_default();
                if !matches!(
                    media_type,
                    OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_MANIFEST_LIST
                ) {
                    return Err(bad(format!(
                        "lists {at} of media type {media_type:?}, not an image manifest or index"
                    )));
                }
            }
            self.index_entries()
                .map_err(|e| Error::new("bad_manifest", e.message))?;
        } else {
            let Some(config) = obj.get("config") else {
                return Err(bad("is an image manifest without a config".to_string()));
            };
            descriptor(config, "a config")?;
            let Some(layers) = obj.get("layers").and_then(Value::as_array) else {
                return Err(bad(
                    "is an image manifest without a layers array".to_string()
                ));
            };
            for (i, l) in layers.iter().enumerate() {
                descriptor(l, &format!("layers[{i}]"))?;
            }
        }
        Ok(())
    }

    /// Whether this is an image index (OCI index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }

    /// The manifests an index lists (empty for an image manifest).
    pub fn index_entries(&self) -> Result<Vec<IndexEntry>, Error> {
        let json = self.json()?;
        let Some(list) = json.get("manifests").and_then(Value::as_array) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for m in list {
            let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let digest = s(m, "digest").unwrap_or_default();
            check_digest(&digest).map_err(|_| {
                Error::new(
                    "registry",
                    format!(
                        "index {} lists a manifest without a valid sha256 digest",
                        self.digest
                    ),
                )
            })?;
            let platform = m.get("platform").and_then(|p| {
                let os = s(p, "os")?;
                let arch = s(p, "architecture")?;
                Some(match s(p, "variant").filter(|v| !v.is_empty()) {
                    Some(v) => format!("{os}/{arch}/{v}"),
                    None => format!("{os}/{arch}"),
                })
            });
            out.push(IndexEntry {
                digest,
                media_type: s(m, "mediaType").unwrap_or_default(),
                size: m.get("size").and_then(Value::as_u64).unwrap_or(0),
                platform,
            });
        }
        Ok(out)
    }
}

/// "array", "string", ... for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What a `HEAD` on a manifest or blob says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The OCI registry client (cheap to clone; one per process).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    opts: RegistryOptions,
    docker_config: tokio::sync::OnceCell<DockerConfig>,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    ecr: Arc<Ecr>,
}

/// Auth state of one registry host.
struct HostState {
    host: String,
    /// `http://host` or `https://host`
    base: Url,
    ecr: Option<EcrTarget>,
    /// The credential, once looked up (ECR credentials are looked up again when they expire)
    credential: tokio::sync::Mutex<Option<(Credential, Option<Instant>)>>,
    /// What the registry asked for in its last challenge
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by scope, with their expiry
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

/// Access a request needs; decides the bearer token scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Pull,
    Push,
    /// The registry's repository listing (`/v2/_catalog`)
    Catalog,
}

/// One request to send (cloned per attempt).
struct Req {
    method: Method,
    url: Url,
    headers: HeaderMap,
    /// Shared so a retry can send it again
    body: Option<Arc<Vec<u8>>>,
}

fn rerr(message: impl Into<String>) -> Error {
    Error::new("registry", message)
}

/// Whether plain HTTP is allowed without being asked: loopback hosts.
pub fn is_loopback(host: &str) -> bool {
    let name = host_without_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.split(':').next().unwrap_or(host)
}

impl Registry {
    /// A client with `opts`. The docker config is read on first use.
    pub fn new(opts: RegistryOptions) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .pool_max_idle_per_host(64)
            .user_agent(concat!("sigtrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new("config", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                opts,
                docker_config: tokio::sync::OnceCell::new(),
                hosts: Mutex::new(HashMap::new()),
                ecr: Arc::new(Ecr::new()),
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.opts
    }

    /// The shared ECR API helper (SDK clients, cached tokens and repository settings).
    pub fn ecr(&self) -> &Arc<Ecr> {
        &self.inner.ecr
    }

    /// The ECR account and region behind `registry` (an ECR host, or an alias), if any.
    pub fn ecr_target(&self, registry: &str) -> Option<EcrTarget> {
        self.inner
            .opts
            .ecr_aliases
            .iter()
            .find(|a| a.host == registry)
            .map(|a| a.target.clone())
            .or_else(|| EcrTarget::from_host(registry))
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn is_plain_http(&self, registry: &str) -> bool {
        is_loopback(registry)
            || self
                .inner
                .opts
                .insecure
                .iter()
                .any(|h| h == registry || h == host_without_port(registry))
    }

    fn host(&self, registry: &str) -> Result<Arc<HostState>, Error> {
        let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(registry) {
            return Ok(h.clone());
        }
        let scheme = if self.is_plain_http(registry) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{registry}/")).map_err(|e| {
            Error::new(
                "bad_reference",
                format!("registry host {registry:?} does not make a URL: {e}"),
            )
        })?;
        let state = Arc::new(HostState {
            host: registry.to_string(),
            base,
            ecr: self.ecr_target(registry),
            credential: tokio::sync::Mutex::new(None),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        });
        hosts.insert(registry.to_string(), state.clone());
        Ok(state)
    }

    fn url(host: &HostState, path: &str) -> Result<Url, Error> {
        host.base
            .join(path)
            .map_err(|e| rerr(format!("cannot build URL for {path}: {e}")))
    }

    // ---- manifests ----

    /// A `GET` or `HEAD` of `image`'s manifest (by digest when it has one, else by tag),
    /// accepting every manifest type the tools read.
    fn manifest_request(
        &self,
        method: Method,
        image: &ImageRef,
    ) -> Result<(Arc<HostState>, Req), Error> {
        let host = self.host(&image.registry)?;
        let url = Self::url(
            &host,
            &format!("v2/{}/manifests/{}", image.repository, image.reference()),
        )?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let req = Req {
            method,
            url,
            headers,
            body: None,
        };
        Ok((host, req))
    }

    /// `GET` the manifest of `image` (by digest when it has one, else by tag), checked: the
    /// bytes hash to the requested digest and to `Docker-Content-Digest` when present.
    pub async fn get_manifest(&self, image: &ImageRef) -> Result<Manifest, Error> {
        let (host, req) = self.manifest_request(Method::GET, image)?;
        let (headers, _, bytes) = self
            .fetch(
                &host,
                &image.repository,
                Access::Pull,
                req,
                MAX_MANIFEST_BYTES,
                &format!("manifest {image}"),
            )
            .await?;
        let header_digest = header_str(&headers, "docker-content-digest");
        let content_type = header_str(&headers, "content-type");
        let digest = sha256_digest(&bytes);
        if let Some(want) = &image.digest {
            if *want != digest {
                return Err(Error::new(
                    "digest_mismatch",
                    format!("registry served manifest bytes for {image} that hash to {digest}; refusing them"),
                ));
            }
        }
        if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
            if h != digest {
                return Err(Error::new(
                    "digest_mismatch",
                    format!("registry says {image} is {h} but its manifest bytes hash to {digest}; refusing them"),
                ));
            }
        }
        let media_type = media_type_of(content_type.as_deref(), &bytes);
        Ok(Manifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// `HEAD` the manifest of `image`; `None` when the registry does not have it.
    ///
    /// The digest is the registry's word (`Docker-Content-Digest`; a digest reference must
    /// match it); use [`Registry::get_manifest`] to check bytes.
    pub async fn head_manifest(&self, image: &ImageRef) -> Result<Option<Descriptor>, Error> {
        let (host, req) = self.manifest_request(Method::HEAD, image)?;
        let resp = self
            .send(&host, &image.repository, Access::Pull, req)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check_status(resp, &format!("manifest {image}")).await?;
        let digest = match (
            header_str(resp.headers(), "docker-content-digest"),
            &image.digest,
        ) {
            (Some(h), Some(want)) if h != *want => {
                return Err(Error::new(
                    "digest_mismatch",
                    format!("registry says {image} is {h}"),
                ))
            }
            (Some(h), _) => h,
            (None, Some(want)) => want.clone(),
            (None, None) => {
                // No digest header: fetch and hash instead.
                let m = self.get_manifest(image).await?;
                return Ok(Some(Descriptor {
                    digest: m.digest,
                    media_type: m.media_type,
                    size: m.bytes.len() as u64,
                }));
            }
        };
        Ok(Some(Descriptor {
            digest,
            media_type: header_str(resp.headers(), "content-type").unwrap_or_default(),
            size: resp.content_length().unwrap_or(0),
        }))
    }

    /// `PUT` a manifest at `image`'s tag (or digest); returns the digest of `bytes`, after
    /// checking the registry's `Docker-Content-Digest` agrees.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<String, Error> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::new(
                "too_large",
                format!("manifest of {} bytes is over the 4 MiB cap", bytes.len()),
            ));
        }
        let host = self.host(&image.registry)?;
        let digest = sha256_digest(bytes);
        let url = Self::url(
            &host,
            &format!("v2/{}/manifests/{}", image.repository, image.reference()),
        )?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| rerr(format!("media type {media_type:?} is not a header value")))?,
        );
        let req = Req {
            method: Method::PUT,
            url,
            headers,
            body: Some(Arc::new(bytes.to_vec())),
        };
        let resp = self
            .send(&host, &image.repository, Access::Push, req)
            .await?;
        let resp = check_status(resp, &format!("manifest upload to {image}")).await?;
        if let Some(h) =
            header_str(resp.headers(), "docker-content-digest").filter(|h| h.starts_with("sha256:"))
        {
            if h != digest {
                return Err(Error::new(
                    "digest_mismatch",
                    format!("registry stored the manifest for {image} as {h}, expected {digest}"),
                ));
            }
        }
        Ok(digest)
    }

    /// The OCI 1.1 referrers API's index of the manifests whose `subject` is `digest` in
    /// `repo`'s repository (`GET /v2/NAME/referrers/DIGEST`); `None` when the registry has no
    /// such API (it answers 404, as docker-registry 2.8 does, or something that is not an
    /// index): then the tag-schema fallback `sha256-<hex>` is where referrers are listed.
    pub async fn get_referrers(
        &self,
        repo: &ImageRef,
        digest: &str,
    ) -> Result<Option<Value>, Error> {
        check_digest(digest)?;
        let host = self.host(&repo.registry)?;
        let url = Self::url(&host, &format!("v2/{}/referrers/{digest}", repo.repository))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        let req = Req {
            method: Method::GET,
            url,
            headers,
            body: None,
        };
        let what = format!("referrers of {}@{digest}", repo.name());
        match self
            .fetch(
                &host,
                &repo.repository,
                Access::Pull,
                req,
                MAX_MANIFEST_BYTES,
                &what,
            )
            .await
        {
            Ok((_, _, body)) => Ok(serde_json::from_slice::<Value>(&body)
                .ok()
                .filter(|v| v.get("manifests").is_some_and(Value::is_array))),
            Err(e) if e.kind == "not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- blobs ----

    /// `GET` blob `digest` of `repo`'s repository, at most `max` bytes, checked against the
    /// digest. Redirects (to S3 for ECR) are followed without credentials.
    pub async fn get_blob(
        &self,
        repo: &ImageRef,
        digest: &str,
        max: usize,
    ) -> Result<Vec<u8>, Error> {
        check_digest(digest)?;
        let host = self.host(&repo.registry)?;
        let url = Self::url(&host, &format!("v2/{}/blobs/{digest}", repo.repository))?;
        let req = Req {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: None,
        };
        let what = format!("blob {digest} of {}", repo.name());
        let (_, _, bytes) = self
            .fetch(&host, &repo.repository, Access::Pull, req, max, &what)
            .await?;
        let got = sha256_digest(&bytes);
        if got != digest {
            return Err(Error::new(
                "digest_mismatch",
                format!("{what} hashes to {got}; refusing it"),
            ));
        }
        Ok(bytes)
    }

    /// Whether the repository has blob `digest` (`HEAD`).
    pub async fn blob_exists(&self, repo: &ImageRef, digest: &str) -> Result<bool, Error> {
        check_digest(digest)?;
        let host = self.host(&repo.registry)?;
        let url = Self::url(&host, &format!("v2/{}/blobs/{digest}", repo.repository))?;
        let req = Req {
            method: Method::HEAD,
            url,
            headers: HeaderMap::new(),
            body: None,
        };
        let resp = self
            .send(&host, &repo.repository, Access::Push, req)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => check_status(resp, &format!("blob {digest}"))
                .await
                .map(|_| false),
        }
    }

    /// Uploads `bytes` as a blob of `repo`'s repository unless it is already there (POST, then
    /// PUT with the digest); returns its digest.
    pub async fn put_blob(&self, repo: &ImageRef, bytes: &[u8]) -> Result<String, Error> {
        let digest = sha256_digest(bytes);
        if self.blob_exists(repo, &digest).await? {
            return Ok(digest);
        }
        let body = Arc::new(bytes.to_vec());
        // An upload session can be lost when a retried request reached a restarted registry:
        // start over once with a new session.
        let mut last = None;
        for _ in 0..2 {
            match self.upload_once(repo, &digest, body.clone()).await {
                Ok(()) => return Ok(digest),
                Err(e) if e.kind == "registry" => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| rerr("blob upload failed")))
    }

    async fn upload_once(
        &self,
        repo: &ImageRef,
        digest: &str,
        body: Arc<Vec<u8>>,
    ) -> Result<(), Error> {
        let host = self.host(&repo.registry)?;
        let url = Self::url(&host, &format!("v2/{}/blobs/uploads/", repo.repository))?;
        let req = Req {
            method: Method::POST,
            url,
            headers: HeaderMap::new(),
            body: Some(Arc::new(Vec::new())),
        };
        let what = format!("blob upload to {}", repo.name());
        let resp = self
            .send(&host, &repo.repository, Access::Push, req)
            .await?;
        let resp = check_status(resp, &what).await?;
        let location = header_str(resp.headers(), "location")
            .ok_or_else(|| rerr(format!("{what}: the registry gave no upload Location")))?;
        let mut url = resp
            .url()
            .join(&location)
            .map_err(|e| rerr(format!("{what}: bad upload Location: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let req = Req {
            method: Method::PUT,
            url,
            headers,
            body: Some(body),
        };
        let resp = self
            .send(&host, &repo.repository, Access::Push, req)
            .await?;
        let resp = check_status(resp, &what).await?;
        if let Some(h) =
            header_str(resp.headers(), "docker-content-digest").filter(|h| h.starts_with("sha256:"))
        {
            if h != digest {
                return Err(Error::new(
                    "digest_mismatch",
                    format!("{what}: registry stored {h}, expected {digest}"),
                ));
            }
        }
        Ok(())
    }

    // ---- tags ----

    /// Every tag of `repo`'s repository, following `Link` pagination, in the registry's order.
    pub async fn list_tags(&self, repo: &ImageRef) -> Result<Vec<String>, Error> {
        let host = self.host(&repo.registry)?;
        let url = Self::url(&host, &format!("v2/{}/tags/list", repo.repository))?;
        let what = format!("tag list of {}", repo.name());
        self.list_paged(&host, &repo.repository, Access::Pull, url, "tags", &what)
            .await
    }

    /// Every repository of the registry at `registry` (`/v2/_catalog`, following `Link`
    /// pagination), in the registry's order.
    pub async fn list_repositories(&self, registry: &str) -> Result<Vec<String>, Error> {
        let host = self.host(registry)?;
        let url = Self::url(&host, "v2/_catalog")?;
        let what = format!("repository list (catalog) of {registry}");
        self.list_paged(&host, "", Access::Catalog, url, "repositories", &what)
            .await
    }

    /// The strings under `field` of every page of a paginated listing.
    async fn list_paged(
        &self,
        host: &HostState,
        repository: &str,
        access: Access,
        mut url: Url,
        field: &str,
        what: &str,
    ) -> Result<Vec<String>, Error> {
        url.query_pairs_mut().append_pair("n", "1000");
        let mut items = Vec::new();
        let mut seen_pages = std::collections::HashSet::new();
        loop {
            if !seen_pages.insert(url.to_string()) {
                return Err(rerr(format!("{what}: pagination loops")));
            }
            let req = Req {
                method: Method::GET,
                url: url.clone(),
                headers: HeaderMap::new(),
                body: None,
            };
            let (headers, final_url, body) = self
                .fetch(host, repository, access, req, 16 << 20, what)
                .await?;
            let next = header_str(&headers, "link")
                .and_then(|l| next_link(&l))
                .map(|n| final_url.join(&n))
                .transpose()
                .map_err(|e| rerr(format!("{what}: bad Link header: {e}")))?;
            let json: Value = serde_json::from_slice(&body)
                .map_err(|e| rerr(format!("{what} is not valid JSON: {e}")))?;
            if let Some(list) = json.get(field).and_then(Value::as_array) {
                items.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
            if items.len() > MAX_TAGS {
                return Err(Error::new(
                    "too_large",
                    format!("{what}: more than {MAX_TAGS} entries"),
                ));
            }
            match next {
                Some(n) => url = n,
                None => return Ok(items),
            }
        }
    }

    // ---- transport ----

    /// A pull `GET`: [`Registry::send`], a success status, then the body (at most `max` bytes).
    /// A body cut short (the connection closed or reset mid-body) is retried like a `5xx`,
    /// with backoff, up to [`RegistryOptions::max_attempts`] reads; after that it is an error,
    /// never a short body. Returns the headers, the final URL and the body.
    async fn fetch(
        &self,
        host: &HostState,
        repository: &str,
        access: Access,
        req: Req,
        max: usize,
        what: &str,
    ) -> Result<(HeaderMap, Url, Vec<u8>), Error> {
        let opts = &self.inner.opts;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let again = Req {
                method: req.method.clone(),
                url: req.url.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
            };
            let resp = self.send(host, repository, access, again).await?;
            let resp = check_status(resp, what).await?;
            let headers = resp.headers().clone();
            let url = resp.url().clone();
            match read_body(resp, max, what).await {
                Ok(bytes) => return Ok((headers, url, bytes)),
                Err(BodyError::Broken(_)) if attempt < opts.max_attempts => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(BodyError::Broken(e)) => {
                    return Err(rerr(format!(
                        "{} (the body was cut short {attempt} times; the registry or a proxy \
                         in front of it is closing connections: try again later)",
                        e.message
                    )))
                }
                Err(BodyError::TooLarge(e)) => return Err(e),
            }
        }
    }

    /// Sends `req` with auth, retries and manual redirects; returns the final response (any
    /// status except the retried ones and a 401 the credentials could not cure).
    async fn send(
        &self,
        host: &HostState,
        repository: &str,
        access: Access,
        req: Req,
    ) -> Result<reqwest::Response, Error> {
        let scope = match access {
            Access::Pull => format!("repository:{repository}:pull"),
            Access::Push => format!("repository:{repository}:pull,push"),
            Access::Catalog => "registry:catalog:*".to_string(),
        };
        let opts = &self.inner.opts;
        let mut attempt: u32 = 0;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let auth = self.auth_header(host, &scope).await?;
            let result = self.send_following(host, &req, auth.as_ref()).await;
            let wait = match result {
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && !reauthed {
                        reauthed = true;
                        let challenge = header_str(resp.headers(), "www-authenticate")
                            .and_then(|h| auth::parse_challenge(&h));
                        self.on_challenge(host, &scope, challenge, auth.is_some())
                            .await?;
                        attempt -= 1; // an auth round trip is not a failed attempt
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED && auth.is_some() {
                        return Err(self.refused(host, &scope).await);
                    }
                    let retry = status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT
                        || matches!(status.as_u16(), 500 | 502 | 503 | 504);
                    if !retry || attempt >= opts.max_attempts {
                        return Ok(resp);
                    }
                    let after = header_str(resp.headers(), "retry-after")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match after {
                        Some(d) => d.min(opts.backoff_cap),
                        None => self.backoff(attempt),
                    }
                }
                Err(e) => {
                    if attempt >= opts.max_attempts || !e.1 {
                        return Err(e.0);
                    }
                    self.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Exponential backoff with full jitter: a random wait in [d/2, d], d = base * 2^(n-1).
    fn backoff(&self, attempt: u32) -> Duration {
        use rand_core::RngCore;
        let opts = &self.inner.opts;
        let d = opts
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(opts.backoff_cap);
        let half = d / 2;
        let jitter = rand_core::OsRng.next_u64() % (half.as_millis() as u64 + 1);
        half + Duration::from_millis(jitter)
    }

    /// One attempt, following redirects by hand. `Err((error, retryable))`.
    async fn send_following(
        &self,
        host: &HostState,
        req: &Req,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, (Error, bool)> {
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut builder = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .headers(req.headers.clone());
            // Credentials go to the registry's own origin only, never along a redirect elsewhere.
            if let Some(a) = auth.filter(|_| same_origin(&url, &host.base)) {
                builder = builder.header(AUTHORIZATION, a.clone());
            }
            if let Some(b) = &body {
                builder = builder.body(b.as_ref().clone());
            }
            let resp = builder.send().await.map_err(|e| {
                let retry = e.is_connect() || e.is_timeout() || e.is_request();
                (
                    rerr(format!(
                        "cannot reach {} ({}): {}",
                        host.host,
                        url.origin().ascii_serialization(),
                        error_chain(&e)
                    )),
                    retry,
                )
            })?;
            if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
                let status = resp.status();
                if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
                    && !same_origin(&url, &host.base)
                {
                    // Not the registry's own challenge: never answered with its credentials,
                    // and not a sign that they are wrong.
                    return Err((
                        Error::new(
                            "unauthorized",
                            format!(
                                "{} redirected the request to {}, which refused it ({status}); \
                                 credentials are never sent along a redirect to another host, so \
                                 the redirect target must accept the request without them: a \
                                 registry or storage misconfiguration, not wrong credentials",
                                host.host,
                                url.origin().ascii_serialization()
                            ),
                        ),
                        false,
                    ));
                }
                return Ok(resp);
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
                return Ok(resp);
            };
            let next = url.join(loc).map_err(|e| {
                (
                    rerr(format!("bad redirect Location from {}: {e}", host.host)),
                    false,
                )
            })?;
            if url.scheme() == "https"
                && next.scheme() != "https"
                && !next.host_str().is_some_and(|h| {
                    self.is_plain_http(&match next.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                })
            {
                return Err((
                    rerr(format!(
                        "{} redirected from HTTPS to plain HTTP ({}); refusing",
                        host.host,
                        next.origin().ascii_serialization()
                    )),
                    false,
                ));
            }
            let status = resp.status();
            if status == StatusCode::SEE_OTHER
                || ((status == StatusCode::MOVED_PERMANENTLY || status == StatusCode::FOUND)
                    && method == Method::POST)
            {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
        Err((
            rerr(format!(
                "{}: more than {MAX_REDIRECTS} redirects",
                host.host
            )),
            false,
        ))
    }

    /// The `Authorization` value to send for `scope`, from what the host asked for before.
    async fn auth_header(
        &self,
        host: &HostState,
        scope: &str,
    ) -> Result<Option<HeaderValue>, Error> {
        let challenge = host
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let value = match challenge {
            Some(Challenge::Bearer { .. }) => {
                let cached = host
                    .tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(scope)
                    .filter(|(_, exp)| *exp > Instant::now())
                    .map(|(t, _)| t.clone());
                match cached {
                    Some(t) => Some(format!("Bearer {t}")),
                    None => match challenge {
                        Some(Challenge::Bearer { realm, service, .. }) => {
                            let t = self
                                .fetch_token(host, &realm, service.as_deref(), scope)
                                .await?;
                            Some(format!("Bearer {t}"))
                        }
                        _ => None,
                    },
                }
            }
            Some(Challenge::Basic) => self.credential(host).await?.basic_header(),
            // ECR always wants Basic with the token from GetAuthorizationToken.
            None if host.ecr.is_some() => self.credential(host).await?.basic_header(),
            None => None,
        };
        value
            .map(|v| {
                let mut hv = HeaderValue::from_str(&v)
                    .map_err(|_| rerr("credential is not a valid header value"))?;
                hv.set_sensitive(true);
                Ok(hv)
            })
            .transpose()
    }

    /// Learns from a 401: remembers the challenge (and fetches a token for a bearer one).
    async fn on_challenge(
        &self,
        host: &HostState,
        scope: &str,
        challenge: Option<Challenge>,
        sent_auth: bool,
    ) -> Result<(), Error> {
        let unauthorized = |why: &str| {
            Error::new(
                "unauthorized",
                format!("{} refused access to {scope}: {why}", host.host),
            )
        };
        let previous = host
            .challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                host.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(scope);
                *host.challenge.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Challenge::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                        scope: None,
                    });
                // The registry may ask for more than we did (e.g. pull as well as push).
                let want = match asked {
                    Some(a) if a != scope => format!("{scope} {a}"),
                    _ => scope.to_string(),
                };
                // Cached under `scope` by fetch_token.
                self.fetch_token(host, &realm, service.as_deref(), &want)
                    .await?;
                Ok(())
            }
            Some(Challenge::Basic) => {
                let cred = self.credential(host).await?;
                if cred.basic_header().is_none() {
                    return Err(unauthorized(&self.no_credential_hint(host).await));
                }
                if sent_auth && host.ecr.is_some() {
                    // Perhaps an expired ECR token: look it up again, once.
                    *host.credential.lock().await = None;
                } else if sent_auth && previous == Some(Challenge::Basic) {
                    return Err(unauthorized("the credentials were not accepted"));
                }
                *host.challenge.lock().unwrap_or_else(|p| p.into_inner()) = Some(Challenge::Basic);
                Ok(())
            }
            None => Err(unauthorized("no usable WWW-Authenticate challenge")),
        }
    }

    /// The error for credentials the registry did not accept, naming where they came from.
    async fn refused(&self, host: &HostState, scope: &str) -> Error {
        let source = match &host.ecr {
            Some(t) => format!(
                "from ecr GetAuthorizationToken for account {} in {}",
                t.registry_id, t.region
            ),
            None => match self.docker_config().await.ok().and_then(|c| c.path.clone()) {
                Some(p) => format!("from {}", p.display()),
                None => "anonymous".to_string(),
            },
        };
        Error::new(
            "unauthorized",
            format!(
                "{} did not accept the credentials ({source}) for {scope}",
                host.host
            ),
        )
    }

    async fn no_credential_hint(&self, host: &HostState) -> String {
        let path = self
            .docker_config()
            .await
            .ok()
            .and_then(|c| c.path.clone())
            .map_or("no docker config.json found".to_string(), |p| {
                format!("checked {}", p.display())
            });
        format!(
            "credentials needed: `docker login {}` or an `auths` entry in config.json ({path})",
            host.host
        )
    }

    async fn docker_config(&self) -> Result<&DockerConfig, Error> {
        self.inner
            .docker_config
            .get_or_try_init(|| async {
                DockerConfig::load(self.inner.opts.docker_config.as_deref())
            })
            .await
    }

    /// The host's credential (docker config, or ECR), looked up once (ECR: until it expires).
    async fn credential(&self, host: &HostState) -> Result<Credential, Error> {
        let mut slot = host.credential.lock().await;
        if let Some((c, exp)) = &*slot {
            if exp.is_none_or(|e| e > Instant::now()) {
                return Ok(c.clone());
            }
        }
        let (cred, exp) = match &host.ecr {
            Some(target) => {
                let c = self.inner.ecr.credential(target).await?;
                let exp = c
                    .expires_at
                    .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                    .map(|left| Instant::now() + left.saturating_sub(Duration::from_secs(300)));
                (
                    Credential::Basic {
                        username: c.username,
                        password: c.password,
                    },
                    exp,
                )
            }
            None => (
                self.docker_config().await?.credential(&host.host).await?,
                None,
            ),
        };
        *slot = Some((cred.clone(), exp));
        Ok(cred)
    }

    /// A bearer token for `scope` (space-separated scopes allowed) from the realm.
    async fn fetch_token(
        &self,
        host: &HostState,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, Error> {
        let url = Url::parse(realm).map_err(|e| {
            Error::new(
                "unauthorized",
                format!("{} named a bad token realm {realm:?}: {e}", host.host),
            )
        })?;
        let realm_host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        if url.scheme() != "https" && !self.is_plain_http(&realm_host) {
            return Err(Error::new(
                "unauthorized",
                format!(
                    "{} named a plain-HTTP token realm on {realm_host}; refusing to send credentials there",
                    host.host
                ),
            ));
        }
        let cred = self.credential(host).await?;
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let what = format!("token from {realm_host} for {}", host.host);
        let opts = &self.inner.opts;
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let builder = match &cred {
                Credential::IdentityToken(refresh) => {
                    let mut form: Vec<(&str, &str)> = vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh),
                        ("client_id", "sigtrail"),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s));
                    }
                    let joined = scopes.join(" ");
                    form.push(("scope", &joined));
                    self.inner.http.post(url.clone()).form(&form)
                }
                _ => {
                    let mut url = url.clone();
                    {
                        let mut q = url.query_pairs_mut();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        for s in &scopes {
                            q.append_pair("scope", s);
                        }
                    }
                    let mut b = self.inner.http.get(url.clone());
                    if let Some(h) = cred.basic_header() {
                        let mut hv = HeaderValue::from_str(&h)
                            .map_err(|_| rerr("credential is not a valid header value"))?;
                        hv.set_sensitive(true);
                        b = b.header(AUTHORIZATION, hv);
                    }
                    b
                }
            };
            match builder.send().await {
                Ok(r)
                    if (r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < opts.max_attempts =>
                {
                    tokio::time::sleep(self.backoff(attempt)).await
                }
                Ok(r) => break r,
                Err(e) if attempt < opts.max_attempts && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(self.backoff(attempt)).await
                }
                Err(e) => return Err(rerr(format!("{what}: {}", error_chain(&e)))),
            }
        };
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            let why = if cred == Credential::Anonymous {
                self.no_credential_hint(host).await
            } else {
                "the credentials were not accepted".to_string()
            };
            return Err(Error::new(
                "unauthorized",
                format!("{what} was refused: {why}"),
            ));
        }
        let resp = check_status(resp, &what).await?;
        let body = read_capped(resp, 1 << 20, &what).await?;
        let json: Value = serde_json::from_slice(&body)
            .map_err(|_| rerr(format!("{what}: the answer is not JSON")))?;
        let token = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| rerr(format!("{what}: the answer has no token")))?;
        let expires_in = json
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(60)
            .max(10);
        host.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                scope.split(' ').next().unwrap_or(scope).to_string(),
                (
                    token.to_string(),
                    Instant::now() + Duration::from_secs(expires_in - 5),
                ),
            );
        Ok(token.to_string())
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The media type of a manifest: `Content-Type` unless generic, else its `mediaType` field,
/// else guessed from its shape. (Public for the fuzz targets.)
pub fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| {
            !c.is_empty()
                && c != "application/json"
                && c != "text/plain"
                && c != "application/octet-stream"
        });
    if let Some(h) = header {
        return h;
    }
    let json: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if let Some(m) = json.get("mediaType").and_then(Value::as_str) {
        return m.to_string();
    }
    if json.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

/// Why a body could not be read.
enum BodyError {
    /// Over the cap (not worth another try).
    TooLarge(Error),
    /// The connection failed mid-body, or the body ended before its `Content-Length`.
    Broken(Error),
}

/// Reads a body of at most `max` bytes (`too_large` beyond).
async fn read_capped(resp: reqwest::Response, max: usize, what: &str) -> Result<Vec<u8>, Error> {
    read_body(resp, max, what).await.map_err(|e| match e {
        BodyError::TooLarge(e) | BodyError::Broken(e) => e,
    })
}

async fn read_body(
    mut resp: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, BodyError> {
    let too_large = || {
        BodyError::TooLarge(Error::new(
            "too_large",
            format!("{what} is larger than {max} bytes; not read"),
        ))
    };
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(announced.unwrap_or(0).min(max as u64) as usize);
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        BodyError::Broken(rerr(format!(
            "{what}: reading the response failed: {}",
            error_chain(&e)
        )))
    })? {
        if buf.len() + chunk.len() > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    // hyper reports a short Content-Length body as an error; check anyway, so a short body can
    // never pass as a whole one.
    if announced.is_some_and(|n| n != buf.len() as u64) {
        return Err(BodyError::Broken(rerr(format!(
            "{what}: the body ended after {} of {} bytes",
            buf.len(),
            announced.unwrap_or(0)
        ))));
    }
    Ok(buf)
}

/// Passes a success response; turns anything else into an error of the right kind, with the
/// registry's error codes in the message.
async fn check_status(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, Error> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_capped(resp, 64 << 10, what).await.unwrap_or_default();
    let mut codes = Vec::new();
    let mut detail = Vec::new();
    if let Ok(json) = serde_json::from_slice::<Value>(&body) {
        for e in json
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = e.get("code").and_then(Value::as_str) {
                codes.push(c.to_string());
            }
            if let Some(m) = e.get("message").and_then(Value::as_str) {
                detail.push(m.chars().take(300).collect::<String>());
            }
        }
    }
    let not_found = status == StatusCode::NOT_FOUND
        || codes.iter().any(|c| {
            matches!(
                c.as_str(),
                "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN"
            )
        });
    let kind = if not_found {
        "not_found"
    } else if status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || codes.iter().any(|c| c == "UNAUTHORIZED" || c == "DENIED")
    {
        "unauthorized"
    } else {
        "registry"
    };
    let mut msg = format!("{what}: registry answered {status}");
    if !codes.is_empty() {
        msg += &format!(" {}", codes.join(", "));
    }
    if !detail.is_empty() {
        msg += &format!(" ({})", detail.join("; "));
    }
    Err(Error::new(kind, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:80",
            "[::1]:5000",
            "[::1]",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.1:5000",
            "ghcr.io",
            "localhost.example.com",
            "[::2]:1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
        let r = Registry::new(RegistryOptions {
            insecure: vec!["reg.lan".into(), "other.lan:5000".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(r.is_plain_http("reg.lan:1234"));
        assert!(r.is_plain_http("other.lan:5000"));
        assert!(!r.is_plain_http("other.lan:5001"));
        assert!(!r.is_plain_http("ghcr.io"));
        assert_eq!(r.host("ghcr.io").unwrap().base.as_str(), "https://ghcr.io/");
        assert_eq!(
            r.host("127.0.0.1:5000").unwrap().base.as_str(),
            "http://127.0.0.1:5000/"
        );
    }

    #[test]
    fn links() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://x/a>; rel="prev", <https://x/b>; rel=next"#).as_deref(),
            Some("https://x/b")
        );
        assert_eq!(next_link(r#"<https://x/a>; rel="prev""#), None);
    }

    #[test]
    fn manifest_checks() {
        let m = |ct: &str, body: &[u8]| Manifest {
            bytes: body.to_vec(),
            digest: sha256_digest(body),
            media_type: media_type_of(Some(ct), body),
        };
        let d = format!("sha256:{}", "a".repeat(64));
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":2}},"layers":[]}}"#
        );
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":2}}]}}"#
        );
        m(OCI_MANIFEST, image.as_bytes()).check().unwrap();
        m(OCI_INDEX, index.as_bytes()).check().unwrap();
        // a Docker manifest served as generic JSON: its mediaType decides
        let docker = image.replace(OCI_MANIFEST, DOCKER_MANIFEST);
        m("application/json", docker.as_bytes()).check().unwrap();
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        let not_index = index.replace(OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar");
        for (ct, body, want) in [
            (OCI_MANIFEST, deep.as_bytes(), "not valid JSON (recursion limit"),
            (OCI_MANIFEST, &b"{\"schemaVersion\":2,\"x\":\"\xff\"}"[..], "not UTF-8 (invalid byte at offset 24)"),
            (OCI_MANIFEST, b"[1,2]", "is a JSON array, not an object"),
            (OCI_MANIFEST, b"\"manifest\"", "is a JSON string, not an object"),
            (OCI_MANIFEST, image.replace(":2,", ":1,").as_bytes(), "schemaVersion 1, not 2"),
            (OCI_MANIFEST, b"{\"layers\":[]}", "has no schemaVersion"),
            (OCI_INDEX, image.as_bytes(), "says mediaType \"application/vnd.oci.image.manifest.v1+json\" but was served as \"application/vnd.oci.image.index.v1+json\""),
            (OCI_INDEX, not_index.as_bytes(), "lists manifests[0] of media type \"application/vnd.oci.image.layer.v1.tar\""),
            (OCI_INDEX, br#"{"schemaVersion":2,"manifests":["sha256:x"]}"#, "manifests[0] that is a JSON string, not a descriptor"),
            (OCI_INDEX, br#"{"schemaVersion":2}"#, "without a manifests array"),
            (OCI_MANIFEST, br#"{"schemaVersion":2,"layers":[]}"#, "an image manifest without a config"),
            ("text/html", image.as_bytes(), "media type \"text/html\", not an image manifest"),
        ] {
            let e = m(ct, body).check().expect_err(want);
            assert_eq!(e.kind, "bad_manifest");
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type_of(Some(OCI_MANIFEST), b"{}"), OCI_MANIFEST);
        assert_eq!(
            media_type_of(
                Some("application/json; charset=utf-8"),
                br#"{"mediaType":"x/y"}"#
            ),
            "x/y"
        );
        assert_eq!(media_type_of(None, br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(media_type_of(None, br#"{"layers":[]}"#), OCI_MANIFEST);
    }

    #[test]
    fn index_entries() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let bytes = format!(
            r#"{{"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d1}","size":401,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"digest":"{d2}","size":1}}]}}"#
        );
        let m = Manifest {
            digest: sha256_digest(bytes.as_bytes()),
            bytes: bytes.into_bytes(),
            media_type: OCI_INDEX.into(),
        };
        let e = m.index_entries().unwrap();
        assert_eq!(e[0].platform.as_deref(), Some("linux/arm64/v8"));
        assert_eq!(e[0].size, 401);
        assert_eq!(e[1].platform, None);
        assert_eq!(e[1].digest, d2);
        let bad = Manifest {
            bytes: br#"{"manifests":[{"digest":"sha256:zz"}]}"#.to_vec(),
            ..m
        };
        assert!(bad.index_entries().is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = Registry::new(RegistryOptions::default()).unwrap();
        for attempt in 1..20 {
            let d = r.backoff(attempt);
            let full = Duration::from_millis(250)
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(8));
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
    }
}
