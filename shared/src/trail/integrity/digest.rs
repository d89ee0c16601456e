//! CloudTrail's digest files, bytes only (no network): the JSON a digest holds, the string
//! CloudTrail signs, the public keys `ListPublicKeys` publishes, and the file names of digests
//! and log files.
//!
//! As AWS documents it and `aws cloudtrail validate-logs` checks it (aws-cli
//! `awscli/customizations/cloudtrail/validation.py`; facts with sources in
//! `../shared/reference/cloudtrail-integrity.md`):
//! - a digest is gzip JSON; every hash is SHA-256 over **uncompressed** bytes, lowercase hex;
//! - its signature (hex, S3 metadata `x-amz-meta-signature`, `SHA256withRSA`) is RSASSA-PKCS1
//!   v1.5 with SHA-256 over `digestEndTime \n bucket/key \n sha256(digest) \n
//!   previousDigestSignature` (the literal `null` for the first digest of a chain);
//! - a public key's fingerprint is the hex MD5 of its DER bytes; the DER is PKCS#1 (as
//!   documented) or SubjectPublicKeyInfo (as one published key is).

use std::io::Read;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Largest digest file read, decompressed (a digest lists one hour of log files: a few MB).
pub const MAX_DIGEST_BYTES: u64 = 64 << 20;

/// One log file a digest lists.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub s3_bucket: String,
    pub s3_object: String,
    pub hash_value: String,
    #[serde(default)]
    pub hash_algorithm: Option<String>,
    #[serde(default)]
    pub newest_event_time: Option<String>,
    #[serde(default)]
    pub oldest_event_time: Option<String>,
}

/// A digest file's JSON (the fields `validate-logs` requires, and the chain's links).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    #[serde(default)]
    pub aws_account_id: Option<String>,
    pub digest_start_time: String,
    pub digest_end_time: String,
    pub digest_s3_bucket: String,
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    #[serde(default)]
    pub digest_signature_algorithm: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(default)]
    pub previous_digest_s3_object: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_value: Option<String>,
    #[serde(default)]
    pub previous_digest_hash_algorithm: Option<String>,
    /// Required, but may be `null` (the first digest of a chain).
    pub previous_digest_signature: Option<String>,
    pub log_files: Vec<Listed>,
}

impl DigestFile {
    pub fn start(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.digest_start_time)
    }
    pub fn end(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.digest_end_time)
    }
    /// Whether this digest starts a chain (validation started or restarted): no previous.
    pub fn starts_chain(&self) -> bool {
        self.previous_digest_s3_object.is_none() && self.previous_digest_signature.is_none()
    }
}

/// A digest file read from its (gzip) bytes: its JSON and the hex SHA-256 of the decompressed
/// bytes, which the signed string and the next digest's `previousDigestHashValue` use.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub digest: DigestFile,
    pub sha256: String,
}

/// Reads a digest file: exactly one gzip member (appended bytes are tampering), JSON with the
/// required fields.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err("not gzip (a digest file is .json.gz)".into());
    }
    // bufread: what is left of the slice after the first member is exactly what follows it.
    let mut decoder = flate2::bufread::GzDecoder::new(bytes);
    let mut plain = Vec::new();
    (&mut decoder)
        .take(MAX_DIGEST_BYTES + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("not a valid gzip file: {e}"))?;
    if plain.len() as u64 > MAX_DIGEST_BYTES {
        return Err(format!(
            "more than {MAX_DIGEST_BYTES} bytes once decompressed"
        ));
    }
    let rest = decoder.into_inner();
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after the gzip member (appended data)",
            rest.len()
        ));
    }
    let digest: DigestFile =
        serde_json::from_slice(&plain).map_err(|e| format!("not a CloudTrail digest: {e}"))?;
    Ok(Parsed {
        digest,
        sha256: hex::encode(Sha256::digest(&plain)),
    })
}

/// The string CloudTrail signs for a digest (validation.py `_create_string_to_sign`).
pub fn signed_string(
    end_time: &str,
    bucket: &str,
    object: &str,
    sha256_hex: &str,
    previous_signature: Option<&str>,
) -> String {
    format!(
        "{end_time}\n{bucket}/{object}\n{sha256_hex}\n{}",
        previous_signature.unwrap_or("null")
    )
}

/// A CloudTrail public key, as `ListPublicKeys` returns it.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// The hex MD5 of `der`, as CloudTrail names it.
    pub fingerprint: String,
    pub der: Vec<u8>,
    pub key: rsa::RsaPublicKey,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

impl PublicKey {
    /// Reads a key's DER (PKCS#1, else SubjectPublicKeyInfo); `fingerprint`, when given, must
    /// be the MD5 of those bytes.
    pub fn from_der(
        der: Vec<u8>,
        fingerprint: Option<&str>,
        valid_from: Option<DateTime<Utc>>,
        valid_until: Option<DateTime<Utc>>,
    ) -> Result<PublicKey, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        let key = rsa::RsaPublicKey::from_pkcs1_der(&der)
            .or_else(|_| rsa::RsaPublicKey::from_public_key_der(&der))
            .map_err(|e| format!("not an RSA public key (PKCS#1 or SPKI DER): {e}"))?;
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&der));
        if let Some(f) = fingerprint {
            if !f.eq_ignore_ascii_case(&md5) {
                return Err(format!(
                    "fingerprint {f} is not the MD5 of the key's bytes ({md5})"
                ));
            }
        }
        Ok(PublicKey {
            fingerprint: md5,
            der,
            key,
            valid_from,
            valid_until,
        })
    }

    /// Whether `signature_hex` is this key's SHA256withRSA signature of `message`.
    pub fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex.trim()) else {
            return false;
        };
        self.key
            .verify(
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(message),
                &signature,
            )
            .is_ok()
    }

    /// Whether the key was published for a digest ending at `t` (an hour of slack each side,
    /// as aws-cli asks for keys up to two hours after a digest's end).
    pub fn valid_at(&self, t: DateTime<Utc>) -> bool {
        let slack = chrono::Duration::hours(2);
        self.valid_from.is_none_or(|f| t >= f - slack)
            && self.valid_until.is_none_or(|u| t <= u + slack)
    }
}

/// Reads the JSON `aws cloudtrail list-public-keys` prints (`{"PublicKeyList": [{"Value":
/// base64, "Fingerprint", "ValidityStartTime", "ValidityEndTime"}]}`; times as ISO 8601 or
/// epoch seconds), or a list of such entries.
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    use base64::Engine;
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list =
        doc.get("PublicKeyList").unwrap_or(&doc).as_array().ok_or(
            "expected {\"PublicKeyList\": [...]} as `aws cloudtrail list-public-keys` prints",
        )?;
    let time = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => parse_time(s),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .and_then(|s| DateTime::from_timestamp(s as i64, 0)),
        _ => None,
    };
    list.iter()
        .enumerate()
        .map(|(i, k)| {
            let value = k
                .get("Value")
                .and_then(serde_json::Value::as_str)
                .ok_or(format!("key {i}: no Value"))?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|e| format!("key {i}: Value is not base64: {e}"))?;
            let fingerprint = k.get("Fingerprint").and_then(serde_json::Value::as_str);
            PublicKey::from_der(
                der,
                fingerprint,
                time(k.get("ValidityStartTime")),
                time(k.get("ValidityEndTime")),
            )
            .map_err(|e| format!("key {i}: {e}"))
        })
        .collect()
}

/// A time as CloudTrail writes it (`2015-08-17T15:01:31Z`), or any RFC 3339 time.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What a digest's file name says: `ACCT_CloudTrail-Digest_REGION_TRAIL_HOME_YYYYMMDDTHHMMSSZ
/// [_backfill].json.gz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestName {
    pub account: String,
    pub region: String,
    pub trail: String,
    pub home_region: String,
    pub end: DateTime<Utc>,
    pub backfill: bool,
}

/// Reads a digest key's file name (trail names may hold underscores; regions do not).
pub fn digest_name(key: &str) -> Option<DigestName> {
    let name = key.rsplit('/').next()?.strip_suffix(".json.gz")?;
    let (name, backfill) = match name.strip_suffix("_backfill") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (account, rest) = name.split_once("_CloudTrail-Digest_")?;
    let (region, rest) = rest.split_once('_')?;
    let (rest, stamp) = rest.rsplit_once('_')?;
    let (trail, home_region) = rest.rsplit_once('_')?;
    let end = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()?
        .and_utc();
    (!account.is_empty() && !trail.is_empty()).then(|| DigestName {
        account: account.into(),
        region: region.into(),
        trail: trail.into(),
        home_region: home_region.into(),
        end,
        backfill,
    })
}

/// When CloudTrail delivered a log file, from its name `ACCT_CloudTrail_REGION_YYYYMMDDTHHmmZ_
/// UNIQUE.json.gz` (to the minute).
pub fn log_delivery_time(key: &str) -> Option<DateTime<Utc>> {
    let name = key.rsplit(['/', '\\']).next()?;
    let (_, rest) = name.split_once("_CloudTrail_")?;
    let (_, rest) = rest.split_once('_')?;
    let stamp = rest.split('_').next()?;
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The part of an S3 key (or local path) from `AWSLogs/` on: where a file sits in the trail's
/// layout, whatever prefix or local folder holds the copy.
pub fn layout_tail(key: &str) -> Option<&str> {
    if key.starts_with("AWSLogs/") {
        return Some(key);
    }
    key.find("/AWSLogs/").map(|at| &key[at + 1..])
}

/// The digest folder (as a key or path prefix, ending in `/`) for a log file's key or path:
/// `.../CloudTrail/REGION/...` → `.../CloudTrail-Digest/REGION/`.
pub fn digest_prefix_for_log(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "CloudTrail")?;
    let region = parts.get(at + 1).filter(|r| !r.is_empty())?;
    let mut out = parts[..at].join("/");
    if at > 0 {
        out.push('/');
    }
    Some(format!("{out}CloudTrail-Digest/{region}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-cli's own vector (tests/unit/customizations/cloudtrail/test_validation.py,
    /// `test_create_string_to_sign`-style case): end `a`, bucket `b`, object `c`, inflated
    /// `abc`, no previous signature.
    #[test]
    fn the_signed_string_matches_aws_cli() {
        let sha = hex::encode(Sha256::digest(b"abc"));
        assert_eq!(
            signed_string("a", "b", "c", &sha, None),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
        assert_eq!(
            signed_string("a", "b", "c", "00", Some("ff")),
            "a\nb/c\n00\nff"
        );
    }

    /// The key for fingerprint `31e8b543...` as AWS's custom-validation page publishes it
    /// (SPKI DER), and one of the PKCS#1 ones: both parse, and MD5 of the DER is the
    /// fingerprint AWS gives.
    #[test]
    fn published_cloudtrail_keys_parse_and_fingerprint() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/cloudtrail-digest/aws-doc-public-keys.json"),
        )
        .unwrap();
        let keys = parse_public_keys(&text).unwrap();
        assert!(keys.len() >= 2, "{}", keys.len());
        let mut wrong = serde_json::from_str::<serde_json::Value>(&text).unwrap();
        wrong["PublicKeyList"][0]["Fingerprint"] = "00000000000000000000000000000000".into();
        let err = parse_public_keys(&wrong.to_string()).unwrap_err();
        assert!(err.contains("is not the MD5"), "{err}");
    }

    /// AWS's documented sample digest (digest-file-structure page) reads, with its fields.
    #[test]
    fn the_documented_sample_digest_parses() {
        let json = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/cloudtrail-digest/aws-doc-sample-digest.json"),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &json).unwrap();
        let bytes = gz.finish().unwrap();
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.sha256, hex::encode(Sha256::digest(&json)));
        let d = &parsed.digest;
        assert_eq!(
            d.digest_public_key_fingerprint,
            "31e8b5433410dfb61a9dc45cc65b22ff"
        );
        assert!(d.end().is_some() && d.start() < d.end());
        assert!(!d.log_files.is_empty());
        assert!(!d.starts_chain());
        let mut appended = bytes.clone();
        appended.extend_from_slice(&bytes);
        assert!(parse(&appended)
            .unwrap_err()
            .contains("after the gzip member"));
    }

    #[test]
    fn names() {
        let n = digest_name(
            "p/AWSLogs/o-abc/111122223333/CloudTrail-Digest/us-east-2/2015/08/17/\
             111122223333_CloudTrail-Digest_us-east-2_my_trail_us-east-1_20150817T150131Z.json.gz",
        )
        .unwrap();
        assert_eq!(
            (
                n.account.as_str(),
                n.region.as_str(),
                n.trail.as_str(),
                n.home_region.as_str()
            ),
            ("111122223333", "us-east-2", "my_trail", "us-east-1")
        );
        assert_eq!(n.end, parse_time("2015-08-17T15:01:31Z").unwrap());
        assert!(!n.backfill);
        let b = digest_name(
            "111122223333_CloudTrail-Digest_us-east-2_t_us-east-2_20150817T150131Z_backfill.json.gz",
        )
        .unwrap();
        assert!(b.backfill);
        assert_eq!(digest_name("x.json.gz"), None);
        assert_eq!(
            log_delivery_time(
                "a/111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
            ),
            parse_time("2015-08-01T02:10:00Z")
        );
        assert_eq!(log_delivery_time("f.json.gz"), None);
        assert_eq!(layout_tail("p/q/AWSLogs/1/x"), Some("AWSLogs/1/x"));
        assert_eq!(layout_tail("AWSLogs/1/x"), Some("AWSLogs/1/x"));
        assert_eq!(layout_tail("logs/x"), None);
        assert_eq!(
            digest_prefix_for_log("p/AWSLogs/1/CloudTrail/us-east-1/2025/01/02/f.json.gz")
                .as_deref(),
            Some("p/AWSLogs/1/CloudTrail-Digest/us-east-1/")
        );
        assert_eq!(digest_prefix_for_log("f.json.gz"), None);
    }
}
