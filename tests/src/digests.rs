//! CloudTrail's digest chain for test trails, written as CloudTrail writes it: moto delivers
//! no log files or digests, so the tests seal the log files they write themselves.
//!
//! Written independently of sigtrail's reader (only the documented format is shared), and the
//! signed string is pinned to aws-cli's own vector below, so a mistake on either side shows:
//! - one RSA-2048 key per test process stands for CloudTrail's regional key; its public half is
//!   written as `aws cloudtrail list-public-keys --output json` prints it (`Value` base64 of
//!   the PKCS#1 DER, `Fingerprint` the hex MD5 of it), for `--cloudtrail-public-keys` and for
//!   the emulator's `ListPublicKeys` stand-in (`SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS`);
//! - every log folder (`AWSLogs/[ORG/]ACCT/CloudTrail/REGION/`) gets one chain of digests, one
//!   per hour in which a file was delivered (the delivery time is the file name's), each
//!   listing that hour's files with the SHA-256 of their decompressed bytes, chained by the
//!   previous digest's location, hash and signature, and signed (SHA256withRSA over `end \n
//!   bucket/key \n sha256 \n previous signature`), the signature in `DIGEST.json.gz.sig` beside
//!   it (a local copy) and in the `signature` metadata when uploaded to S3.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::trail::Aws;

/// The bucket named in digests of trails that are only written to disk.
pub const BUCKET: &str = "sigtrail-test-trail";
/// The trail name in digest file names.
pub const TRAIL: &str = "sigtrail-test";

/// A key standing for CloudTrail's signing key.
pub struct CloudTrailKey {
    private: rsa::RsaPrivateKey,
    /// PKCS#1 DER of the public key, as `ListPublicKeys` returns it
    pub der: Vec<u8>,
    pub fingerprint: String,
}

impl CloudTrailKey {
    pub fn generate() -> CloudTrailKey {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let mut rng = rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA-2048 key");
        let der = private
            .to_public_key()
            .to_pkcs1_der()
            .expect("PKCS#1 DER")
            .as_bytes()
            .to_vec();
        let fingerprint = hex::encode(<md5::Md5 as md5::Digest>::digest(&der));
        CloudTrailKey {
            private,
            der,
            fingerprint,
        }
    }

    /// SHA256withRSA (PKCS#1 v1.5) of `message`, hex.
    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self
            .private
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
            .expect("sign");
        hex::encode(sig)
    }

    /// The `aws cloudtrail list-public-keys --output json` form of this key.
    pub fn list_json(&self) -> Value {
        json!({"PublicKeyList": [{
            "Value": base64::engine::general_purpose::STANDARD.encode(&self.der),
            "Fingerprint": self.fingerprint,
            "ValidityStartTime": 946684800.0,   // 2000-01-01: the fixtures' dates vary widely
            "ValidityEndTime": 4102444800.0,    // 2100-01-01
        }]})
    }

    /// Writes [`CloudTrailKey::list_json`] to `path`.
    pub fn write_keys(&self, path: &Path) {
        std::fs::write(path, self.list_json().to_string()).expect("write keys file");
    }
}

/// The test process's CloudTrail key; also makes the emulator's `ListPublicKeys` answer with it.
pub fn key() -> &'static CloudTrailKey {
    static KEY: OnceLock<CloudTrailKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = CloudTrailKey::generate();
        // The emulator's ListPublicKeys stand-in answers from this file.
        let path = &crate::env().cloudtrail_public_keys_file;
        let tmp = path.with_extension("tmp");
        key.write_keys(&tmp);
        std::fs::rename(&tmp, path).expect("rename keys file");
        key
    })
}

/// A file holding [`key`] as `--cloudtrail-public-keys` reads it (written once per process).
pub fn keys_file() -> &'static Path {
    static FILE: OnceLock<std::path::PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("sigtrail-cloudtrail-keys")
            .tempdir()
            .expect("temp dir")
            .keep();
        let path = dir.join("public-keys.json");
        key().write_keys(&path);
        path
    })
}

/// The string CloudTrail signs (validation.py `_create_string_to_sign`).
pub fn string_to_sign(
    end: &str,
    bucket: &str,
    key: &str,
    sha256_hex: &str,
    prev: Option<&str>,
) -> String {
    format!(
        "{end}\n{bucket}/{key}\n{sha256_hex}\n{}",
        prev.unwrap_or("null")
    )
}

/// One digest written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its path below the root (its S3 key)
    pub rel: String,
    pub signature: String,
    /// Its JSON, as written
    pub json: Value,
}

/// A log file found under the root.
struct Log {
    rel: String,
    delivered: chrono::DateTime<chrono::Utc>,
    sha256: String,
}

/// Seals every log file under `root` (the bucket's top) with digest chains, as if delivered to
/// `bucket`; returns the digests written, oldest first per folder.
pub fn seal(root: &Path, bucket: &str) -> Vec<Written> {
    seal_with(root, bucket, key(), TRAIL)
}

/// [`seal`] with another key or trail name (the tamper tests: a chain from another trail, a
/// digest signed by a key CloudTrail does not publish).
pub fn seal_with(root: &Path, bucket: &str, key: &CloudTrailKey, trail: &str) -> Vec<Written> {
    let mut folders: BTreeMap<String, Vec<Log>> = BTreeMap::new();
    for rel in files(root) {
        let parts: Vec<&str> = rel.split('/').collect();
        let Some(at) = parts.iter().rposition(|p| *p == "CloudTrail") else {
            continue;
        };
        let Some(delivered) = delivery_time(&rel) else {
            continue;
        };
        let folder = parts[..at + 2].join("/");
        folders.entry(folder).or_default().push(Log {
            sha256: sha256_of_gz(&root.join(&rel)),
            rel,
            delivered,
        });
    }
    let mut out = Vec::new();
    for (folder, mut logs) in folders {
        logs.sort_by(|a, b| (a.delivered, &a.rel).cmp(&(b.delivered, &b.rel)));
        let (head, region) = folder.rsplit_once("/CloudTrail/").expect("log folder");
        let account = head.rsplit('/').next().expect("account folder");
        let mut hours: BTreeMap<chrono::DateTime<chrono::Utc>, Vec<&Log>> = BTreeMap::new();
        for l in &logs {
            let hour = l
                .delivered
                .date_naive()
                .and_hms_opt(chrono::Timelike::hour(&l.delivered), 0, 0)
                .expect("hour")
                .and_utc();
            hours.entry(hour).or_default().push(l);
        }
        let mut previous: Option<Written> = None;
        let mut previous_sha: Option<String> = None;
        let mut start: Option<chrono::DateTime<chrono::Utc>> = None;
        for (hour, files) in hours {
            let end = hour + chrono::Duration::hours(1);
            let end_s = end.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            let rel = format!(
                "{head}/CloudTrail-Digest/{region}/{}/{account}_CloudTrail-Digest_{region}_{trail}_{region}_{}.json.gz",
                end.format("%Y/%m/%d"),
                end.format("%Y%m%dT%H%M%SZ")
            );
            let doc = json!({
                "awsAccountId": account,
                "digestStartTime": start.unwrap_or(hour).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "digestEndTime": end_s,
                "digestS3Bucket": bucket,
                "digestS3Object": rel,
                "digestPublicKeyFingerprint": key.fingerprint,
                "digestSignatureAlgorithm": "SHA256withRSA",
                "newestEventTime": null,
                "oldestEventTime": null,
                "previousDigestS3Bucket": previous.as_ref().map(|_| bucket),
                "previousDigestS3Object": previous.as_ref().map(|p| p.rel.clone()),
                "previousDigestHashValue": previous_sha,
                "previousDigestHashAlgorithm": previous.as_ref().map(|_| "SHA-256"),
                "previousDigestSignature": previous.as_ref().map(|p| p.signature.clone()),
                "logFiles": files.iter().map(|l| json!({
                    "s3Bucket": bucket,
                    "s3Object": l.rel,
                    "hashValue": l.sha256,
                    "hashAlgorithm": "SHA-256",
                })).collect::<Vec<_>>(),
            });
            let plain = doc.to_string().into_bytes();
            let sha = hex::encode(Sha256::digest(&plain));
            let prev_sig = previous.as_ref().map(|p| p.signature.clone());
            let signature = key
                .sign(string_to_sign(&end_s, bucket, &rel, &sha, prev_sig.as_deref()).as_bytes());
            write_gz_bytes(&root.join(&rel), &plain);
            std::fs::write(root.join(format!("{rel}.sig")), &signature).expect("write .sig");
            let written = Written {
                rel,
                signature,
                json: doc,
            };
            out.push(written.clone());
            previous = Some(written);
            previous_sha = Some(sha);
            start = Some(end);
        }
    }
    out
}

/// Rewrites a digest with `edit` applied to its JSON, re-signed by `key` (keeping its chain
/// links), as an attacker with a key of their own would.
pub fn rewrite(
    root: &Path,
    d: &Written,
    key: &CloudTrailKey,
    edit: impl FnOnce(&mut Value),
) -> Written {
    let mut doc = d.json.clone();
    edit(&mut doc);
    let plain = doc.to_string().into_bytes();
    let sha = hex::encode(Sha256::digest(&plain));
    let signature = key.sign(
        string_to_sign(
            doc["digestEndTime"].as_str().unwrap_or_default(),
            doc["digestS3Bucket"].as_str().unwrap_or_default(),
            doc["digestS3Object"].as_str().unwrap_or_default(),
            &sha,
            doc["previousDigestSignature"].as_str(),
        )
        .as_bytes(),
    );
    write_gz_bytes(&root.join(&d.rel), &plain);
    std::fs::write(root.join(format!("{}.sig", d.rel)), &signature).expect("write .sig");
    Written {
        rel: d.rel.clone(),
        signature,
        json: doc,
    }
}

/// Uploads everything under `root` to `bucket` in the emulator's S3: log files as they are,
/// digests with their signature as the `signature` metadata (not the `.sig` files).
pub fn upload(aws: &mut Aws, root: &Path, bucket: &str) {
    upload_locked(aws, root, bucket, None)
}

/// [`upload`] into an Object Lock bucket, every object under `lock` retention
/// (`{"mode": "COMPLIANCE", "until": TIME}`).
pub fn upload_locked(aws: &mut Aws, root: &Path, bucket: &str, lock: Option<Value>) {
    for rel in files(root) {
        let mut req =
            json!({"op": "s3_put", "bucket": bucket, "key": rel, "path": root.join(&rel)});
        if let Some(lock) = &lock {
            req["lock"] = lock.clone();
        }
        if rel.contains("/CloudTrail-Digest/") {
            if let Ok(sig) = std::fs::read_to_string(root.join(format!("{rel}.sig"))) {
                req["metadata"] =
                    json!({"signature": sig.trim(), "signature-algorithm": "SHA256withRSA"});
            }
        }
        aws.call(req);
    }
}

/// Every `*.json.gz` below `root`, as `/`-separated relative paths, sorted.
pub fn files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.to_string_lossy().ends_with(".json.gz") {
                let rel = p.strip_prefix(root).expect("below root");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The delivery time in a log file's name (`..._CloudTrail_REGION_YYYYMMDDTHHMMZ_...`).
pub fn delivery_time(rel: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let name = rel.rsplit('/').next()?;
    let (_, rest) = name.split_once("_CloudTrail_")?;
    let stamp = rest.split('_').nth(1)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%MZ")
        .ok()
        .map(|t| t.and_utc())
}

/// SHA-256 (hex) of a gzip file's decompressed bytes.
pub fn sha256_of_gz(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read log file");
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut plain)
        .expect("gunzip log file");
    hex::encode(Sha256::digest(&plain))
}

fn write_gz_bytes(path: &Path, plain: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, plain).expect("gzip");
    std::fs::write(path, gz.finish().expect("gzip")).expect("write digest");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-cli's vector (tests/unit/customizations/cloudtrail/test_validation.py): end `a`,
    /// bucket `b`, key `c`, digest bytes `abc`, no previous signature.
    #[test]
    fn the_generator_signs_what_aws_cli_expects() {
        let sha = hex::encode(Sha256::digest(b"abc"));
        assert_eq!(
            string_to_sign("a", "b", "c", &sha, None),
            "a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
        );
    }
}
