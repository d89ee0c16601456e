//! Helpers for the `trail-for` tests: real AWS calls against the emulator, and the CloudTrail
//! records those calls would have produced.
//!
//! moto records no CloudTrail events. So every call a test makes through [`Aws`] (STS
//! `AssumeRoleWithWebIdentity`, KMS `Sign`, ECR `PutImage`) is written by [`Trail`] as a
//! CloudTrail record in the exact shape of `../shared/cloudtrail/` (the AWS documentation's
//! examples and a captured GitHub Actions event), with the request id and time the emulator
//! returned (time: the response's `Date` header), the caller's real temporary access key and
//! assumed-role ARN, and the key ARN KMS answered with. The records are then stored the way
//! CloudTrail stores them: gzip log files in the `AWSLogs/ACCT/CloudTrail/REGION/Y/M/D/` layout
//! in a directory and in the emulator's S3, and as the answers of the `LookupEvents` stand-in.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::python;

/// moto's account and the tests' region.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
/// The ECR registry host of moto's account.
pub const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const OIDC: &str = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";

const DRIVER: &str = r#"
import base64, datetime, email.utils, json, sys
import boto3
from botocore.exceptions import ClientError

def when(meta):
    d = meta.get("HTTPHeaders", {}).get("date")
    t = email.utils.parsedate_to_datetime(d) if d else datetime.datetime.now(datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def client(service, creds):
    if not creds:
        return boto3.client(service)
    return boto3.client(service, aws_access_key_id=creds["access_key_id"],
                        aws_secret_access_key=creds["secret_access_key"],
                        aws_session_token=creds["session_token"])

def ignore(e, code):
    if e.response["Error"]["Code"] != code:
        raise e

for line in sys.stdin:
    req = json.loads(line)
    op, creds = req["op"], req.get("creds")
    try:
        if op == "assume":
            r = client("sts", None).assume_role_with_web_identity(
                RoleArn=req["role_arn"], RoleSessionName=req["session"], WebIdentityToken=req["token"])
            c = r["Credentials"]
            out = {"access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"],
                   "session_token": c["SessionToken"], "expiration": str(c["Expiration"]),
                   "assumed_role_arn": r["AssumedRoleUser"]["Arn"],
                   "assumed_role_id": r["AssumedRoleUser"]["AssumedRoleId"]}
        elif op == "sign":
            r = client("kms", creds).sign(KeyId=req["key"], Message=bytes.fromhex(req["digest_hex"]),
                                          MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
            out = {"signature": base64.b64encode(r["Signature"]).decode(), "key_arn": r["KeyId"]}
        elif op == "put_image":
            ecr = client("ecr", creds)
            try:
                ecr.create_repository(repositoryName=req["repo"])
            except ClientError as e:
                ignore(e, "RepositoryAlreadyExistsException")
            r = ecr.put_image(repositoryName=req["repo"], imageManifest=req["manifest"],
                              imageTag=req["tag"], imageDigest=req["digest"],
                              imageManifestMediaType="application/vnd.oci.image.manifest.v1+json")
            out = {"digest": r["image"]["imageId"]["imageDigest"], "registry_id": r["image"]["registryId"]}
        elif op == "s3_put":
            s3 = client("s3", None)
            lock = req.get("lock")  # {"mode": "COMPLIANCE", "until": ISO time}: an Object Lock bucket
            try:
                s3.create_bucket(Bucket=req["bucket"], **({"ObjectLockEnabledForBucket": True} if lock else {}))
            except ClientError as e:
                ignore(e, "BucketAlreadyOwnedByYou")
            extra = {}
            if lock:
                extra = {"ObjectLockMode": lock["mode"],
                         "ObjectLockRetainUntilDate": datetime.datetime.fromisoformat(lock["until"].replace("Z", "+00:00"))}
            with open(req["path"], "rb") as f:
                r = s3.put_object(Bucket=req["bucket"], Key=req["key"], Body=f.read(),
                                  Metadata=req.get("metadata") or {}, **extra)
            out = {"version_id": r.get("VersionId")}
        elif op == "s3_delete":
            r = client("s3", None).delete_object(Bucket=req["bucket"], Key=req["key"])
            out = {}
        elif op == "create_trail":
            ct = client("cloudtrail", None)
            try:
                ct.delete_trail(Name=req["name"])
            except ClientError as e:
                ignore(e, "TrailNotFoundException")
            r = ct.create_trail(Name=req["name"], S3BucketName=req["bucket"],
                                EnableLogFileValidation=True)
            out = {"arn": r["TrailARN"]}
        else:
            raise ValueError("unknown op " + op)
        out["request_id"] = r["ResponseMetadata"]["RequestId"]
        out["time"] = when(r["ResponseMetadata"])
        print(json.dumps({"ok": out}), flush=True)
    except Exception as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
"#;

/// A Python (boto3) process making AWS calls against the emulator, one JSON request a line.
pub struct Aws {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Aws {
    pub fn start() -> Aws {
        let mut child = python(DRIVER, &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the boto3 driver");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Aws {
            child,
            stdin,
            stdout,
        }
    }

    /// One call; panics with the emulator's error.
    pub fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").expect("write to the boto3 driver");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the boto3 driver");
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("boto3 driver answered {line:?}: {e}"));
        match answer.get("ok") {
            Some(ok) => ok.clone(),
            None => panic!("{} failed: {}", req["op"], answer["error"]),
        }
    }
}

impl Drop for Aws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CI job's role session (from `AssumeRoleWithWebIdentity`).
#[derive(Clone, Debug)]
pub struct Session {
    pub creds: Value,
    pub access_key_id: String,
    pub assumed_role_arn: String,
    pub assumed_role_id: String,
    pub role_arn: String,
    pub session_name: String,
    pub subject: String,
}

/// What one call returned.
#[derive(Clone, Debug)]
pub struct Call {
    pub request_id: String,
    pub time: String,
    pub event_id: String,
    pub answer: Value,
}

/// The CloudTrail records of the calls made so far.
#[derive(Default)]
pub struct Trail {
    pub records: Vec<Value>,
}

/// A fresh event id (a UUID-shaped hex string; CloudTrail's are random UUIDs).
pub fn event_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    );
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A GitHub Actions OIDC token (unsigned: the emulator does not check it; only `sub` matters).
fn token(subject: &str) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "typ": "JWT"})),
        b64(
            json!({"iss": "https://token.actions.githubusercontent.com", "aud": "sts.amazonaws.com", "sub": subject})
        )
    )
}

impl Trail {
    fn identity(s: &Session) -> Value {
        let role_name = s.role_arn.rsplit('/').next().unwrap_or("");
        let role_id = s.assumed_role_id.split(':').next().unwrap_or("");
        json!({
            "type": "AssumedRole",
            "principalId": s.assumed_role_id,
            "arn": s.assumed_role_arn,
            "accountId": ACCOUNT,
            "accessKeyId": s.access_key_id,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": role_id, "arn": s.role_arn,
                                  "accountId": ACCOUNT, "userName": role_name},
                "webIdFederationData": {"federatedProvider": OIDC, "attributes": {}},
                "attributes": {"creationDate": "2025-01-01T00:00:00Z", "mfaAuthenticated": "false"}
            }
        })
    }

    /// `AssumeRoleWithWebIdentity` as GitHub Actions' configure-aws-credentials makes it.
    pub fn assume(&mut self, aws: &mut Aws, role_arn: &str, subject: &str) -> (Session, Call) {
        let a = aws.call(json!({"op": "assume", "role_arn": role_arn, "session": "GitHubActions", "token": token(subject)}));
        let s = |k: &str| a[k].as_str().expect(k).to_string();
        let session = Session {
            creds: a.clone(),
            access_key_id: s("access_key_id"),
            assumed_role_arn: s("assumed_role_arn"),
            assumed_role_id: s("assumed_role_id"),
            role_arn: role_arn.to_string(),
            session_name: "GitHubActions".into(),
            subject: subject.to_string(),
        };
        let call = Call {
            request_id: s("request_id"),
            time: s("time"),
            event_id: event_id(),
            answer: a.clone(),
        };
        self.records.push(json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "WebIdentityUser",
                "principalId": format!("{OIDC}:sts.amazonaws.com:{subject}"),
                "userName": subject,
                "identityProvider": OIDC
            },
            "eventTime": call.time,
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRoleWithWebIdentity",
            "awsRegion": REGION,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "aws-sdk-nodejs/2.1112.0 linux/v20.19.0 configure-aws-credentials-for-github-actions promise",
            "requestParameters": {"roleArn": role_arn, "roleSessionName": "GitHubActions", "durationSeconds": 3600},
            "responseElements": {
                "credentials": {"accessKeyId": session.access_key_id, "sessionToken": "", "expiration": s("expiration")},
                "subjectFromWebIdentityToken": subject,
                "assumedRoleUser": {"assumedRoleId": session.assumed_role_id, "arn": session.assumed_role_arn},
                "provider": OIDC,
                "audience": "sts.amazonaws.com"
            },
            "requestID": call.request_id,
            "eventID": call.event_id,
            "readOnly": true,
            "resources": [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": role_arn}],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        }));
        (session, call)
    }

    /// KMS `Sign` of a SHA-256 digest (`MessageType=DIGEST`), as cosign and kms-sign call it.
    pub fn sign(&mut self, aws: &mut Aws, s: &Session, key: &str, digest: &[u8]) -> Call {
        let a = aws.call(
            json!({"op": "sign", "creds": s.creds, "key": key, "digest_hex": hex::encode(digest)}),
        );
        let call = Call {
            request_id: a["request_id"].as_str().unwrap().into(),
            time: a["time"].as_str().unwrap().into(),
            event_id: event_id(),
            answer: a.clone(),
        };
        self.records.push(json!({
            "eventVersion": "1.08",
            "userIdentity": Self::identity(s),
            "eventTime": call.time,
            "eventSource": "kms.amazonaws.com",
            "eventName": "Sign",
            "awsRegion": REGION,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "aws-sdk-rust/1.3 os/linux lang/rust",
            "requestParameters": {"keyId": key, "messageType": "DIGEST", "signingAlgorithm": "ECDSA_SHA_256"},
            "responseElements": null,
            "requestID": call.request_id,
            "eventID": call.event_id,
            "readOnly": true,
            "resources": [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": a["key_arn"]}],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        }));
        call
    }

    /// ECR `PutImage` of `manifest` under `tag` (the digest ECR returns: sha256 of the bytes).
    pub fn put_image(
        &mut self,
        aws: &mut Aws,
        s: &Session,
        repo: &str,
        tag: &str,
        manifest: &str,
    ) -> Call {
        let digest = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(manifest.as_bytes()))
        );
        let a = aws.call(json!({"op": "put_image", "creds": s.creds, "repo": repo, "tag": tag, "manifest": manifest, "digest": digest}));
        assert_eq!(a["digest"], digest.as_str());
        let call = Call {
            request_id: a["request_id"].as_str().unwrap().into(),
            time: a["time"].as_str().unwrap().into(),
            event_id: event_id(),
            answer: a.clone(),
        };
        self.records.push(json!({
            "eventVersion": "1.08",
            "userIdentity": Self::identity(s),
            "eventTime": call.time,
            "eventSource": "ecr.amazonaws.com",
            "eventName": "PutImage",
            "awsRegion": REGION,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "sigtrail",
            "requestParameters": {"repositoryName": repo, "imageTag": tag, "registryId": ACCOUNT, "imageManifest": manifest},
            "responseElements": {"image": {
                "repositoryName": repo, "imageManifest": manifest, "registryId": ACCOUNT,
                "imageId": {"imageDigest": digest, "imageTag": tag}
            }},
            "requestID": call.request_id,
            "eventID": call.event_id,
            "resources": [{"ARN": format!("arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repo}"), "accountId": ACCOUNT}],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management"
        }));
        call
    }

    /// Writes the records as CloudTrail log files under `root`
    /// (`AWSLogs/ACCT/CloudTrail/REGION/YYYY/MM/DD/ACCT_CloudTrail_REGION_<time>_<n>.json.gz`),
    /// one file per record's day and region, sealed with CloudTrail's digest chain as if
    /// delivered to [`crate::digests::BUCKET`]; returns the log files' relative paths.
    pub fn write(&self, root: &Path) -> Vec<String> {
        let written = write_log_files(root, &self.records, "t");
        crate::digests::seal(root, crate::digests::BUCKET);
        written
    }

    /// Writes the log files and their digests under `root` as delivered to `bucket`, and
    /// uploads them into the emulator's S3 bucket (digest signatures as object metadata).
    pub fn upload(&self, aws: &mut Aws, root: &Path, bucket: &str) {
        write_log_files(root, &self.records, "t");
        crate::digests::seal(root, bucket);
        crate::digests::upload(aws, root, bucket);
    }
}

/// Writes `records` as gzip CloudTrail log files grouped by (account, region, day).
pub fn write_log_files(root: &Path, records: &[Value], tag: &str) -> Vec<String> {
    let mut groups: std::collections::BTreeMap<(String, String, String), Vec<&Value>> =
        std::collections::BTreeMap::new();
    for r in records {
        let t = r["eventTime"].as_str().unwrap_or("2025-01-01T00:00:00Z");
        let key = (
            r["recipientAccountId"]
                .as_str()
                .unwrap_or(ACCOUNT)
                .to_string(),
            r["awsRegion"].as_str().unwrap_or(REGION).to_string(),
            t[..10].to_string(),
        );
        groups.entry(key).or_default().push(r);
    }
    let mut written = Vec::new();
    for ((acct, region, day), recs) in groups {
        let (y, m, d) = (&day[..4], &day[5..7], &day[8..10]);
        // Delivered (the name's time) the minute after its newest event, within its day.
        let newest = recs
            .iter()
            .filter_map(|r| r["eventTime"].as_str())
            .max()
            .unwrap_or("T00:00");
        let (hh, mm): (u32, u32) = (
            newest.get(11..13).and_then(|h| h.parse().ok()).unwrap_or(0),
            newest.get(14..16).and_then(|m| m.parse().ok()).unwrap_or(0),
        );
        let minute = (hh * 60 + mm + 1).min(23 * 60 + 59);
        let rel = format!(
            "AWSLogs/{acct}/CloudTrail/{region}/{y}/{m}/{d}/{acct}_CloudTrail_{region}_{y}{m}{d}T{:02}{:02}Z_{tag}{}.json.gz",
            minute / 60,
            minute % 60,
            written.len()
        );
        write_gz(&root.join(&rel), &json!({ "Records": recs }));
        written.push(rel);
    }
    written
}

/// One gzip JSON file.
pub fn write_gz(path: &Path, doc: &Value) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create log dir");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).expect("gzip");
    std::fs::write(path, gz.finish().expect("gzip")).expect("write log file");
}

/// A small OCI image manifest (its blobs need not exist: ECR's PutImage in the emulator does not
/// check them).
pub fn image_manifest(content: &str) -> String {
    let d = |s: &str| format!("sha256:{}", hex::encode(Sha256::digest(s.as_bytes())));
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d("{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(content), "size": content.len()}]
    })
    .to_string()
}

/// The cosign simple-signing payload of an image, with string annotations.
pub fn payload(reference: &str, digest: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        Value::Null
    } else {
        Value::Object(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect(),
        )
    };
    json!({
        "critical": {"identity": {"docker-reference": reference},
                     "image": {"docker-manifest-digest": digest},
                     "type": "cosign container image signature"},
        "optional": optional
    })
    .to_string()
    .into_bytes()
}

/// A cosign signature manifest with one layer per (payload, base64 signature).
pub fn signature_manifest(layers: &[(Vec<u8>, String)]) -> String {
    let layers: Vec<(Vec<u8>, String, Option<String>)> = layers
        .iter()
        .map(|(p, s)| (p.clone(), s.clone(), None))
        .collect();
    signature_manifest_with_ids(&layers)
}

/// A signature manifest as `attach-sig` writes it: each layer may carry the KMS `Sign` request
/// id in its `dev.sigtrail/kms-request-id` annotation.
pub fn signature_manifest_with_ids(layers: &[(Vec<u8>, String, Option<String>)]) -> String {
    let d = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    let config = json!({
        "architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": layers.iter().map(|_| json!({"created": "0001-01-01T00:00:00Z"})).collect::<Vec<_>>(),
        "os": "", "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(p, _, _)| d(p)).collect::<Vec<_>>()},
        "config": {}
    })
    .to_string();
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": d(config.as_bytes())},
        "layers": layers.iter().map(|(p, sig, id)| {
            let mut annotations = json!({"dev.cosignproject.cosign/signature": sig});
            if let Some(id) = id {
                annotations["dev.sigtrail/kms-request-id"] = id.clone().into();
            }
            json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "size": p.len(),
                "digest": d(p),
                "annotations": annotations
            })
        }).collect::<Vec<_>>()
    })
    .to_string()
}

/// `sha256-<hex>.sig` of an image digest.
pub fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", digest.trim_start_matches("sha256:"))
}

/// SHA-256 of bytes.
pub fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// `n` CloudTrail records of everyday API traffic (and KMS/ECR calls of other keys, accounts and
/// repositories), in the shapes CloudTrail logs them, all on 2025-11-10; `seed` makes each batch's
/// ids distinct. For the 100,000-record trail of the test.
pub fn noise(n: usize, seed: usize) -> Vec<Value> {
    noise_with(n, seed, |i| {
        let k = seed * 1_000_000 + i;
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            "2025-11-10",
            (k / 3600) % 24,
            (k / 60) % 60,
            k % 60
        )
    })
}

/// [`noise`] with the `eventTime` of the `i`th record given by `time(i)` (`bench-trail` spreads
/// its log files over days, as CloudTrail writes them).
pub fn noise_with(n: usize, seed: usize, time: impl Fn(usize) -> String) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let k = seed * 1_000_000 + i;
        let time = time(i);
        let who = json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:{k}"),
            "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/{k}"), "accountId": ACCOUNT,
            "accessKeyId": format!("ASIANOISE{k:011}"),
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": format!("arn:aws:iam::{ACCOUNT}:role/app")}}});
        let (source, name, req, resp) = match i % 8 {
            0 => (
                "s3.amazonaws.com",
                "GetObject",
                json!({"bucketName": "data", "key": format!("obj/{k}"), "Host": "data.s3.amazonaws.com"}),
                Value::Null,
            ),
            1 => (
                "kms.amazonaws.com",
                "Decrypt",
                json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::data"}}),
                Value::Null,
            ),
            2 => (
                "ec2.amazonaws.com",
                "DescribeInstances",
                json!({"instancesSet": {"items": [{"instanceId": format!("i-{k:017x}")}]}, "filterSet": {}}),
                Value::Null,
            ),
            3 => (
                "ecr.amazonaws.com",
                "BatchGetImage",
                json!({"repositoryName": "app", "imageIds": [{"imageTag": "v1"}], "acceptedMediaTypes": ["application/vnd.oci.image.manifest.v1+json"]}),
                Value::Null,
            ),
            4 => (
                "sts.amazonaws.com",
                "AssumeRole",
                json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app"), "roleSessionName": format!("{k}")}),
                json!({"credentials": {"accessKeyId": format!("ASIANOISE{k:011}"), "sessionToken": "x", "expiration": "Nov 10, 2025, 1:00:00 PM"},
                         "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:x", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/{k}")}}),
            ),
            5 => (
                "kms.amazonaws.com",
                "Sign",
                json!({"keyId": "alias/other", "messageType": "DIGEST", "signingAlgorithm": "ECDSA_SHA_256"}),
                Value::Null,
            ),
            6 => (
                "ecr.amazonaws.com",
                "PutImage",
                json!({"repositoryName": format!("svc-{}", k % 97), "imageTag": format!("b{k}"), "registryId": ACCOUNT, "imageManifest": image_manifest(&k.to_string())}),
                json!({"image": {"repositoryName": format!("svc-{}", k % 97), "registryId": ACCOUNT, "imageId": {"imageDigest": format!("sha256:{:064x}", k), "imageTag": format!("b{k}")}}}),
            ),
            _ => (
                "iam.amazonaws.com",
                "ListRoles",
                json!({"maxItems": 100}),
                Value::Null,
            ),
        };
        let mut r = json!({
            "eventVersion": "1.08", "userIdentity": who, "eventTime": time, "eventSource": source,
            "eventName": name, "awsRegion": REGION, "sourceIPAddress": "10.0.0.1", "userAgent": "aws-cli/2",
            "requestParameters": req, "responseElements": resp, "requestID": format!("noise-{k}"),
            "eventID": format!("noise-event-{k}"), "readOnly": true, "eventType": "AwsApiCall",
            "managementEvent": true, "recipientAccountId": ACCOUNT, "eventCategory": "Management"
        });
        if name == "Sign" {
            r["resources"] = json!([{"accountId": ACCOUNT, "type": "AWS::KMS::Key",
                                     "ARN": format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/noise-{}", k % 13)}]);
        }
        out.push(r);
    }
    out
}
