//! AWS KMS signing keys: `awskms://` references, one `GetPublicKey` per key per process, and
//! `Sign` with `MessageType=DIGEST` over a locally computed hash.
//!
//! References are parsed like sigstore/sigstore `pkg/signature/kms/aws` (what cosign uses):
//!
//! | form | example |
//! |---|---|
//! | key id | `awskms:///1234abcd-12ab-34cd-56ef-1234567890ab` (also `mrk-…` multi-region ids) |
//! | key ARN | `awskms:///arn:aws:kms:us-east-2:111122223333:key/1234abcd-…` |
//! | alias | `awskms:///alias/cosign` |
//! | alias ARN | `awskms:///arn:aws:kms:us-east-2:111122223333:alias/cosign` |
//! | endpoint | `awskms://localhost:4566/<any of the above>` |
//!
//! Differences from sigstore, all deliberate: the region comes from the ARN when there is one
//! (else from the SDK chain, [`crate::aws::sdk_config`]); an endpoint on a loopback host
//! (`localhost`, `127.*`, `[::1]`) is reached over plain HTTP, any other over HTTPS (sigstore:
//! always HTTPS); the `aws-cn` partition is accepted; an empty alias name is refused.
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KMS` are honoured by the SDK itself; an endpoint in the
//! reference wins over them.
//!
//! The algorithm follows the key spec: `ECC_NIST_P256` → `ECDSA_SHA_256`, `ECC_NIST_P384` →
//! `ECDSA_SHA_384`, `RSA_*` → `RSASSA_PKCS1_V1_5_SHA_256`, unless another algorithm the key lists
//! is asked for. `GetPublicKey` returns the key spec, usage and algorithms, so `DescribeKey` is
//! never needed (moto returns the spec only as `CustomerMasterKeySpec`, which is read as well;
//! without either, the parsed public key decides). `Sign` goes to the key id `GetPublicKey`
//! returned, so an alias moved meanwhile cannot make a signature the cached public key rejects.
//!
//! Retries: the SDK's standard retry mode (exponential backoff with jitter on throttling such as
//! `ThrottlingException`, 5xx and transient network errors), [`MAX_ATTEMPTS`] attempts.
//!
//! Calls are counted per kind for the whole process ([`calls`]): the tests check "one
//! `GetPublicKey` per key per run, one `Sign` per record". A tool prints them on stderr at exit
//! when `SIGTRAIL_KMS_STATS=1` ([`STATS_ENV`], [`stats_line`]). The counts are operations the
//! code asked for; SDK retries of one operation count once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use tokio::sync::OnceCell;

use crate::crypto::{Algorithm, PublicKey, BAD_KEY};
use crate::error::{Error, Result};

/// The scheme of KMS key references.
pub const SCHEME: &str = "awskms://";

/// Attempts per KMS operation (first try included).
pub const MAX_ATTEMPTS: u32 = 8;

/// Set to `1` to have a tool print its KMS call counts on stderr at exit.
pub const STATS_ENV: &str = "SIGTRAIL_KMS_STATS";

/// Error kind for KMS failures (the AWS error code is in the message).
pub const KMS: &str = "kms";

/// Whether `reference` names a KMS key (else it is a key file).
pub fn is_kms_reference(reference: &str) -> bool {
    reference.starts_with(SCHEME)
}

// ---------------------------------------------------------------------------------------------
// References

/// Which form a reference has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    KeyId,
    KeyArn,
    Alias,
    AliasArn,
}

/// A parsed `awskms://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReference {
    /// The reference as given.
    pub reference: String,
    /// The `KeyId` sent to KMS: key id, key ARN, `alias/NAME` or alias ARN.
    pub key_id: String,
    pub form: KeyForm,
    /// The region named by an ARN.
    pub region: Option<String>,
    /// The endpoint URL from `awskms://HOST[:PORT]/…` (http for loopback hosts, else https).
    pub endpoint: Option<String>,
}

impl KeyReference {
    /// Parses `awskms://[ENDPOINT]/KEY`.
    pub fn parse(reference: &str) -> Result<KeyReference> {
        let bad = |why: &str| {
            Error::new(
                BAD_KEY,
                format!(
                    "bad KMS key reference {reference:?}: {why}; use awskms:///KEY-ID, \
                     awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY-ID, awskms:///alias/NAME, the \
                     alias ARN, or awskms://HOST:PORT/… for another endpoint"
                ),
            )
        };
        let rest = reference
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with awskms://"))?;
        let (host, key) = rest
            .split_once('/')
            .ok_or_else(|| bad("no '/' before the key"))?;
        let (form, region) = if is_key_id(key) {
            (KeyForm::KeyId, None)
        } else if let Some(name) = key.strip_prefix("alias/") {
            if name.is_empty() {
                return Err(bad("the alias name is empty"));
            }
            (KeyForm::Alias, None)
        } else if let Some((region, resource)) = parse_arn(key) {
            if let Some(id) = resource.strip_prefix("key/") {
                if !is_key_id(id) {
                    return Err(bad("the ARN's key id is not a KMS key id"));
                }
                (KeyForm::KeyArn, Some(region))
            } else if let Some(name) = resource.strip_prefix("alias/") {
                if name.is_empty() {
                    return Err(bad("the alias name is empty"));
                }
                (KeyForm::AliasArn, Some(region))
            } else {
                return Err(bad("the ARN names neither key/ nor alias/"));
            }
        } else if key.starts_with("arn:") {
            return Err(bad("not a KMS ARN (arn:aws:kms:REGION:ACCOUNT:...)"));
        } else if key.is_empty() {
            return Err(bad("no key after the '/'"));
        } else {
            return Err(bad("the key is neither a key id, an ARN nor alias/NAME"));
        };
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let endpoint = (!host.is_empty()).then(|| {
            let scheme = if is_loopback_host(host) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{host}")
        });
        Ok(KeyReference {
            reference: reference.to_string(),
            key_id: key.to_string(),
            form,
            region: region.map(str::to_string),
            endpoint,
        })
    }
}

/// A KMS key id as sigstore's `uuidRE` accepts it: optional `mrk-` prefix (its letters each
/// optional), then 8-4-4-4-12 hex digits with optional dashes.
fn is_key_id(s: &str) -> bool {
    let mut rest = s;
    for prefix in ["m", "r", "k", "-"] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    for (i, len) in [8usize, 4, 4, 4, 12].into_iter().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix('-').unwrap_or(rest);
        }
        if rest.len() < len || !rest.as_bytes()[..len].iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        rest = &rest[len..];
    }
    rest.is_empty()
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:RESOURCE` → (region, resource).
fn parse_arn(s: &str) -> Option<(&str, &str)> {
    let mut parts = s.splitn(6, ':');
    let (arn, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = arn == "arn"
        && matches!(partition, "aws" | "aws-us-gov" | "aws-cn")
        && service == "kms"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit());
    ok.then_some((region, resource))
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------------------------------------
// Call counts

static GET_PUBLIC_KEY: AtomicU64 = AtomicU64::new(0);
static SIGN: AtomicU64 = AtomicU64::new(0);

/// KMS operations this process has made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub get_public_key: u64,
    pub sign: u64,
}

/// The counts so far.
pub fn calls() -> Calls {
    Calls {
        get_public_key: GET_PUBLIC_KEY.load(Ordering::Relaxed),
        sign: SIGN.load(Ordering::Relaxed),
    }
}

/// `TOOL: kms calls: GetPublicKey=N Sign=N` when `SIGTRAIL_KMS_STATS=1`, for the tool's stderr.
pub fn stats_line(tool: &str) -> Option<String> {
    if std::env::var_os(STATS_ENV).is_none_or(|v| v != "1") {
        return None;
    }
    let c = calls();
    Some(format!(
        "{tool}: kms calls: GetPublicKey={} Sign={}",
        c.get_public_key, c.sign
    ))
}

// ---------------------------------------------------------------------------------------------
// Keys

/// What `GetPublicKey` told about a key.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key id KMS returned (an ARN on real KMS; moto returns the bare id).
    pub key_id: String,
    pub public_key: PublicKey,
    /// The algorithm `sign` uses.
    pub algorithm: Algorithm,
    /// `KeySpec` (or `CustomerMasterKeySpec`), when KMS said.
    pub key_spec: Option<String>,
    /// What KMS lists for the key (empty when it said nothing).
    pub signing_algorithms: Vec<String>,
}

/// One `Sign` result.
#[derive(Debug, Clone)]
pub struct KmsSignature {
    /// As KMS returns it (ASN.1 DER for ECDSA).
    pub signature: Vec<u8>,
    pub algorithm: Algorithm,
    /// The key ARN of the `Sign` response (what CloudTrail records in `resources`).
    pub key_arn: String,
    /// `x-amzn-RequestId`: the CloudTrail event's `requestID`.
    pub request_id: Option<String>,
    /// When the response arrived (this machine's clock, UTC).
    pub time: chrono::DateTime<chrono::Utc>,
}

/// A KMS key used by one process: the client, and the key's public half fetched once.
pub struct KmsKey {
    reference: KeyReference,
    client: aws_sdk_kms::Client,
    algorithm: Option<Algorithm>,
    info: OnceCell<Result<KeyInfo>>,
}

impl std::fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmsKey({})", self.reference.reference)
    }
}

impl KmsKey {
    /// A key for `reference` (`awskms://…`), signing with `algorithm` or the key spec's default.
    /// Makes no call: the key is looked up on first use.
    pub async fn new(reference: &str, algorithm: Option<Algorithm>) -> Result<KmsKey> {
        let reference = KeyReference::parse(reference)?;
        let sdk = crate::aws::sdk_config(reference.region.as_deref()).await;
        let mut config = aws_sdk_kms::config::Builder::from(&sdk)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = &reference.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if sdk.region().is_none() {
            return Err(Error::new(
                KMS,
                format!(
                    "no AWS region for {}: set AWS_REGION or use the key's ARN",
                    reference.reference
                ),
            ));
        }
        Ok(KmsKey {
            reference,
            client: aws_sdk_kms::Client::from_conf(config.build()),
            algorithm,
            info: OnceCell::new(),
        })
    }

    /// The parsed reference.
    pub fn reference(&self) -> &KeyReference {
        &self.reference
    }

    /// The key's public half and algorithm: one `GetPublicKey` for the life of this value,
    /// shared by concurrent callers; a failure is remembered too (no retry storm per record).
    pub async fn info(&self) -> Result<&KeyInfo> {
        self.info
            .get_or_init(|| self.fetch_info())
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The key's public key (one `GetPublicKey` per process, see [`info`](Self::info)).
    pub async fn public_key(&self) -> Result<&PublicKey> {
        Ok(&self.info().await?.public_key)
    }

    async fn fetch_info(&self) -> Result<KeyInfo> {
        GET_PUBLIC_KEY.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .get_public_key()
            .key_id(&self.reference.key_id)
            .send()
            .await
            .map_err(|e| self.error("GetPublicKey", e))?;
        let name = &self.reference.reference;
        let unusable = |why: String| Error::new(BAD_KEY, format!("cannot sign with {name}: {why}"));
        if let Some(usage) = out.key_usage() {
            if usage.as_str() != "SIGN_VERIFY" {
                return Err(unusable(format!(
                    "its key usage is {}; signing needs a SIGN_VERIFY key",
                    usage.as_str()
                )));
            }
        }
        // moto (5.2.5) fills only the deprecated CustomerMasterKeySpec.
        #[allow(deprecated)]
        let key_spec = out.key_spec().map(|s| s.as_str().to_string()).or_else(|| {
            out.customer_master_key_spec()
                .map(|s| s.as_str().to_string())
        });
        let der = out
            .public_key()
            .ok_or_else(|| unusable("KMS returned no public key".into()))?;
        let public_key = PublicKey::from_der(der.as_ref()).map_err(|e| {
            unusable(format!(
                "its public key (key spec {}) is not usable: {}",
                key_spec.as_deref().unwrap_or("unknown"),
                e.message
            ))
        })?;
        let signing_algorithms: Vec<String> = out
            .signing_algorithms()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        let default = match key_spec.as_deref() {
            Some("ECC_NIST_P256") => Algorithm::EcdsaSha256,
            Some("ECC_NIST_P384") => Algorithm::EcdsaSha384,
            Some(spec) if spec.starts_with("RSA_") => Algorithm::RsaPkcs1Sha256,
            Some(spec) => {
                return Err(unusable(format!(
                    "key spec {spec} is not supported; use ECC_NIST_P256, ECC_NIST_P384 or RSA_*"
                )))
            }
            None => public_key.default_algorithm(),
        };
        let algorithm = self.algorithm.unwrap_or(default);
        if !public_key.supports(algorithm)
            || (!signing_algorithms.is_empty()
                && !signing_algorithms.iter().any(|a| a == algorithm.kms_name()))
        {
            return Err(unusable(format!(
                "the key does not sign with {algorithm} (it offers {})",
                if signing_algorithms.is_empty() {
                    public_key
                        .accepted_algorithms()
                        .iter()
                        .map(|a| a.kms_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    signing_algorithms.join(", ")
                }
            )));
        }
        Ok(KeyInfo {
            key_id: out.key_id().unwrap_or(&self.reference.key_id).to_string(),
            public_key,
            algorithm,
            key_spec,
            signing_algorithms,
        })
    }

    /// Signs `message`: hashes it locally and sends the digest (`MessageType=DIGEST`).
    pub async fn sign(&self, message: &[u8]) -> Result<KmsSignature> {
        let info = self.info().await?;
        let digest = info.algorithm.hash().digest(message);
        SIGN.fetch_add(1, Ordering::Relaxed);
        let out = self
            .client
            .sign()
            .key_id(&info.key_id)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::from(info.algorithm.kms_name()))
            .send()
            .await
            .map_err(|e| self.error("Sign", e))?;
        let time = chrono::Utc::now();
        let signature = out
            .signature()
            .map(|b| b.as_ref().to_vec())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::new(KMS, "KMS Sign returned no signature"))?;
        let algorithm = match out.signing_algorithm() {
            Some(a) => Algorithm::from_kms_name(a.as_str()).ok_or_else(|| {
                Error::new(
                    KMS,
                    format!("KMS signed with unknown algorithm {}", a.as_str()),
                )
            })?,
            None => info.algorithm,
        };
        Ok(KmsSignature {
            signature,
            algorithm,
            key_arn: out.key_id().unwrap_or(&info.key_id).to_string(),
            request_id: out.request_id().map(str::to_string),
            time,
        })
    }

    /// A record error for a failed call: `bad_key` when the key itself is the problem, else
    /// `kms`; the AWS error code and message, never credentials (the SDK puts none in errors).
    fn error<E, R>(&self, operation: &str, err: SdkError<E, R>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        let name = &self.reference.reference;
        match err.code() {
            Some(code) => {
                let message = err.message().unwrap_or("");
                let kind = match code {
                    "NotFoundException"
                    | "DisabledException"
                    | "KMSInvalidStateException"
                    | "InvalidKeyUsageException"
                    | "UnsupportedOperationException"
                    | "KeyUnavailableException" => BAD_KEY,
                    _ => KMS,
                };
                let hint = match code {
                    "NotFoundException" => "; check the key id or alias, and the region",
                    "AccessDeniedException" => "; the caller needs kms:GetPublicKey and kms:Sign",
                    "ThrottlingException" => "; still throttled after retries, lower --jobs",
                    _ => "",
                };
                Error::new(
                    kind,
                    format!("KMS {operation} for {name} failed: {code}: {message}{hint}"),
                )
            }
            None => Error::new(
                KMS,
                format!(
                    "KMS {operation} for {name} failed: {}",
                    DisplayErrorContext(&err)
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[track_caller]
    fn check(
        reference: &str,
        form: KeyForm,
        key_id: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) {
        let r = KeyReference::parse(reference).unwrap_or_else(|e| panic!("{reference}: {e}"));
        assert_eq!(
            (
                r.form,
                r.key_id.as_str(),
                r.region.as_deref(),
                r.endpoint.as_deref()
            ),
            (form, key_id, region, endpoint),
            "{reference}"
        );
    }

    #[test]
    fn every_sigstore_reference_form_parses() {
        let arn = format!("arn:aws:kms:us-east-2:111122223333:key/{ID}");
        let alias_arn = "arn:aws:kms:us-east-2:111122223333:alias/ExampleAlias";
        check(&format!("awskms:///{ID}"), KeyForm::KeyId, ID, None, None);
        check(
            &format!("awskms:///{arn}"),
            KeyForm::KeyArn,
            &arn,
            Some("us-east-2"),
            None,
        );
        check(
            "awskms:///alias/ExampleAlias",
            KeyForm::Alias,
            "alias/ExampleAlias",
            None,
            None,
        );
        check(
            &format!("awskms:///{alias_arn}"),
            KeyForm::AliasArn,
            alias_arn,
            Some("us-east-2"),
            None,
        );
        // The examples of sigstore's client.go, with an endpoint.
        check(
            &format!("awskms://localhost:4566/{ID}"),
            KeyForm::KeyId,
            ID,
            None,
            Some("http://localhost:4566"),
        );
        check(
            &format!("awskms://localhost:4566/{arn}"),
            KeyForm::KeyArn,
            &arn,
            Some("us-east-2"),
            Some("http://localhost:4566"),
        );
        check(
            "awskms://127.0.0.1:5000/alias/a",
            KeyForm::Alias,
            "alias/a",
            None,
            Some("http://127.0.0.1:5000"),
        );
        check(
            "awskms://[::1]:5000/alias/a",
            KeyForm::Alias,
            "alias/a",
            None,
            Some("http://[::1]:5000"),
        );
        check(
            "awskms://kms.example.com/alias/a",
            KeyForm::Alias,
            "alias/a",
            None,
            Some("https://kms.example.com"),
        );
        check(
            &format!(
                "awskms://{}/alias/a",
                "vpce-1.kms.us-east-1.vpce.amazonaws.com"
            ),
            KeyForm::Alias,
            "alias/a",
            None,
            Some("https://vpce-1.kms.us-east-1.vpce.amazonaws.com"),
        );
        // Multi-region keys, GovCloud, ids without dashes.
        check(
            "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab",
            KeyForm::KeyId,
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            None,
            None,
        );
        let gov = format!(
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-{}",
            ID.replace('-', "")
        );
        check(
            &format!("awskms:///{gov}"),
            KeyForm::KeyArn,
            &gov,
            Some("us-gov-west-1"),
            None,
        );
        // Alias names may contain slashes.
        check(
            "awskms:///alias/team/cosign",
            KeyForm::Alias,
            "alias/team/cosign",
            None,
            None,
        );
    }

    #[test]
    fn malformed_references_are_refused_with_the_forms_listed() {
        for bad in [
            "awskms://",
            "awskms:///",
            "awskms:///not-a-key",
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890", // one digit short
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890abc",
            "awskms:///alias/",
            "awskms:///arn:aws:kms:us-east-2:1111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:s3:us-east-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "awskms:///arn:aws:kms:us-east-2:111122223333:key/nope",
            "awskms:///arn:aws:kms:us-east-2:111122223333:grant/x",
            "awskms:///alias/with space",
            "gcpkms://projects/x",
            "alias/cosign",
        ] {
            let err = KeyReference::parse(bad).unwrap_err();
            assert_eq!(err.kind, BAD_KEY, "{bad}");
            assert!(err.message.contains("awskms:///alias/NAME"), "{bad}: {err}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:4566",
            "127.0.0.1",
            "127.0.0.2:80",
            "[::1]:4566",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.com",
            "10.0.0.1:443",
            "[2001:db8::1]:4566",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
