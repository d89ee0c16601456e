//! Smoke tests of the local environment itself: each server and peer the end-to-end tests rely
//! on does what they assume, so a failure there points at the environment, not at a tool.

use serde_json::{json, Value};
use sigtrail_tests::{
    env, http_status, kms_create_key, push_image, push_image_with, python, run, run_ok, script,
    unique, LookupEvents, Push,
};
use std::process::Command;

#[test]
fn registry_answers_anonymously() {
    assert_eq!(http_status(&env().registry, "/v2/", None), 200);
}

#[test]
fn auth_registry_requires_its_credentials() {
    let e = env();
    assert_eq!(http_status(&e.auth_registry, "/v2/", None), 401);
    assert_eq!(
        http_status(&e.auth_registry, "/v2/", Some((&e.auth_user, "wrong"))),
        401
    );
    assert_eq!(
        http_status(&e.auth_registry, "/v2/", Some((&e.auth_user, &e.auth_pass))),
        200
    );
}

#[test]
fn docker_config_holds_the_auth_registry_credentials() {
    use base64::Engine;
    let e = env();
    let text = std::fs::read_to_string(e.auth_docker_config.join("config.json")).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    let auth = config["auths"][&e.auth_registry]["auth"]
        .as_str()
        .expect("auths entry");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        format!("{}:{}", e.auth_user, e.auth_pass)
    );
}

fn skopeo_inspect_digest(reference: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new(&env().skopeo);
    cmd.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(creds) = creds {
        cmd.args(["--creds", creds]);
    }
    run_ok(cmd.arg(format!("docker://{reference}")), b"")
        .trim()
        .to_string()
}

#[test]
fn push_image_prints_the_digest_skopeo_inspect_reports() {
    let e = env();
    let repo = format!("{}/{}", e.registry, unique("smoke-push"));
    let a = push_image(&format!("{repo}:a"), "content a");
    assert_eq!(a, skopeo_inspect_digest(&format!("{repo}:a"), None));
    // Deterministic: the same content gives the same digest, other content another one.
    assert_eq!(push_image(&format!("{repo}:a-again"), "content a"), a);
    let b = push_image(&format!("{repo}:b"), "content b");
    assert_ne!(b, a);
    assert_eq!(b, skopeo_inspect_digest(&format!("{repo}:b"), None));
}

#[test]
fn push_image_builds_a_two_platform_index() {
    let e = env();
    let reference = format!("{}/{}:v1", e.registry, unique("smoke-index"));
    let digest = push_image_with(
        &reference,
        Push {
            index: true,
            ..Push::default()
        },
    );
    assert_eq!(digest, skopeo_inspect_digest(&reference, None));
    let raw = run_ok(
        Command::new(&e.skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
        b"",
    );
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
}

#[test]
fn push_image_to_the_auth_registry_needs_credentials() {
    let e = env();
    let reference = format!("{}/{}:v1", e.auth_registry, unique("smoke-auth"));
    let without = run(script("push-image.sh").arg(&reference), b"");
    assert!(!without.status.success(), "pushed without credentials");
    let creds = Some((e.auth_user.as_str(), e.auth_pass.as_str()));
    let digest = push_image_with(
        &reference,
        Push {
            creds,
            ..Push::default()
        },
    );
    let creds = format!("{}:{}", e.auth_user, e.auth_pass);
    assert_eq!(digest, skopeo_inspect_digest(&reference, Some(&creds)));
}

#[test]
fn ecr_mirror_makes_the_image_known_to_moto_ecr() {
    let e = env();
    let repo = unique("smoke-ecr");
    let reference = format!("{}/{repo}:v1", e.registry);
    let digest = push_image(&reference, "ecr mirror");
    let manifest = run_ok(
        Command::new(&e.skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
        b"",
    );
    run_ok(
        script("ecr-mirror.py").args([&repo, "v1", "-", &digest]),
        manifest.as_bytes(),
    );
    let described = run_ok(
        &mut python(
            "import boto3, json, sys\n\
             ecr = boto3.client('ecr')\n\
             d = ecr.describe_images(repositoryName=sys.argv[1])['imageDetails']\n\
             print(json.dumps([[i['imageDigest'], i['imageTags']] for i in d]))",
            &[&repo],
        ),
        b"",
    );
    let described: Value = serde_json::from_str(&described).unwrap();
    assert_eq!(described, json!([[digest, ["v1"]]]));
}

/// Signs sha256(message) through KMS with MessageType=DIGEST and checks the signature locally
/// over the message. Unpatched moto 5.2.5 hashes the digest again, which fails here.
const KMS_DIGEST_CHECK: &str = r#"
import boto3, hashlib, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
kms = boto3.client("kms")
message = b'{"critical":{}}'
sig = kms.sign(KeyId=sys.argv[1], Message=hashlib.sha256(message).digest(),
               MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
public = serialization.load_der_public_key(kms.get_public_key(KeyId=sys.argv[1])["PublicKey"])
def verifies(data):
    try:
        public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False
try:
    kms.sign(KeyId=sys.argv[1], Message=b"short", MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256")
    short = "accepted"
except kms.exceptions.ClientError as e:
    short = e.response["Error"]["Code"]
print(json.dumps({"over_message": verifies(message), "over_other": verifies(b"other"),
                  "short_digest": short}))
"#;

#[test]
fn moto_kms_signs_a_digest_as_given() {
    let alias = format!("alias/{}", unique("smoke-kms"));
    let arn = kms_create_key("ECC_NIST_P256", &alias);
    assert!(arn.starts_with("arn:aws:kms:us-east-1:"), "{arn}");
    let out = run_ok(&mut python(KMS_DIGEST_CHECK, &[&alias]), b"");
    let got: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        got,
        json!({"over_message": true, "over_other": false, "short_digest": "ValidationException"})
    );
}

const LOOKUP: &str = r#"
import boto3, json, sys
ct = boto3.client("cloudtrail")
kwargs = json.loads(sys.argv[1])
r = ct.lookup_events(**kwargs)
for e in r["Events"]:
    e["EventTime"] = e["EventTime"].isoformat()
print(json.dumps(r))
"#;

fn lookup(args: Value) -> Value {
    let out = run_ok(&mut python(LOOKUP, &[&args.to_string()]), b"");
    serde_json::from_str(&out).unwrap()
}

fn record(id: &str, name: &str, time: &str) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "AssumedRole", "accessKeyId": "ASIAEXAMPLE",
                         "arn": "arn:aws:sts::123456789012:assumed-role/ci/build-42"},
        "eventTime": time, "eventSource": "kms.amazonaws.com", "eventName": name,
        "readOnly": true, "eventID": id,
        "requestParameters": {"keyId": "alias/sigtrail", "messageType": "DIGEST"},
        "resources": [{"accountId": "123456789012", "type": "AWS::KMS::Key",
                       "ARN": "arn:aws:kms:us-east-1:123456789012:key/k1"}],
    })
}

#[test]
fn lookup_events_stand_in_answers_from_the_file() {
    let sign1 = record("e1", "Sign", "2025-11-11T00:30:00Z");
    let sign2 = record("e2", "Sign", "2025-11-11T01:30:00Z");
    let other = record("e3", "GetPublicKey", "2025-11-11T00:45:00Z");
    let _events = LookupEvents::set(&[sign1.clone(), other, sign2]);

    let r = lookup(
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "Sign"}]}),
    );
    let events = r["Events"].as_array().unwrap();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["EventId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e2", "e1"], "newest first, GetPublicKey filtered out");
    let e1 = &events[1];
    assert_eq!(e1["EventName"], "Sign");
    assert_eq!(e1["EventSource"], "kms.amazonaws.com");
    assert_eq!(e1["ReadOnly"], "true");
    assert_eq!(e1["AccessKeyId"], "ASIAEXAMPLE");
    assert_eq!(e1["Username"], "build-42");
    assert_eq!(e1["EventTime"], "2025-11-11T00:30:00+00:00");
    assert_eq!(
        e1["Resources"],
        json!([{"ResourceType": "AWS::KMS::Key",
                "ResourceName": "arn:aws:kms:us-east-1:123456789012:key/k1"}])
    );
    let inner: Value = serde_json::from_str(e1["CloudTrailEvent"].as_str().unwrap()).unwrap();
    assert_eq!(inner, sign1);

    // time window and pagination
    let r = lookup(json!({"StartTime": "2025-11-11T00:40:00Z", "EndTime": "2025-11-11T01:00:00Z"}));
    assert_eq!(r["Events"][0]["EventId"], "e3");
    assert_eq!(r["Events"].as_array().unwrap().len(), 1);
    let page1 = lookup(json!({"MaxResults": 2}));
    assert_eq!(page1["Events"].as_array().unwrap().len(), 2);
    let token = page1["NextToken"]
        .as_str()
        .expect("a NextToken after a full page");
    let page2 = lookup(json!({"MaxResults": 2, "NextToken": token}));
    assert_eq!(page2["Events"][0]["EventId"], "e1");
    assert!(page2.get("NextToken").is_none());
}

#[test]
fn sigstore_rs_and_skopeo_agree_on_a_signature() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let key = |name: &str| dir.path().join(name).display().to_string();
    let pass = key("pass");
    run_ok(
        script("gen-cosign-key.py").args([&key("cosign"), &pass]),
        b"",
    );
    run_ok(
        script("gen-cosign-key.py").args([&key("other"), &pass]),
        b"",
    );
    let repo = unique("smoke-sign");
    let reference = format!("{}/{repo}:v1", e.registry);
    push_image(&reference, "signed by sigstore-rs");

    run_ok(
        Command::new(&e.srs_sign).args([&reference, &key("cosign.key"), &pass, "--http"]),
        b"",
    );
    let verify = |pubkey: &str| {
        run(
            Command::new(&e.srs_verify).args([&reference, pubkey, "--http"]),
            b"",
        )
        .status
        .success()
    };
    assert!(
        verify(&key("cosign.pub")),
        "sigstore-rs rejects its own signature"
    );
    assert!(
        !verify(&key("other.pub")),
        "sigstore-rs accepts another key"
    );

    let skopeo_verifies = |pubkey: &str| {
        let policy = json!({
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {&e.registry: [{"type": "sigstoreSigned", "keyPath": pubkey,
                                          "signedIdentity": {"type": "matchRepository"}}]},
                "oci": {"": [{"type": "insecureAcceptAnything"}]},
            },
        });
        let policy_path = dir.path().join("policy.json");
        std::fs::write(&policy_path, policy.to_string()).unwrap();
        let out = dir.path().join("copy");
        let _ = std::fs::remove_dir_all(&out);
        run(
            Command::new(&e.skopeo)
                .arg("--registries.d")
                .arg(&e.skopeo_registries_d)
                .arg("--policy")
                .arg(&policy_path)
                .args([
                    "copy",
                    "-q",
                    "--remove-signatures",
                    "--src-tls-verify=false",
                ])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:v1", out.display())),
            b"",
        )
        .status
        .success()
    };
    assert!(
        skopeo_verifies(&key("cosign.pub")),
        "skopeo rejects the sigstore-rs signature"
    );
    assert!(
        !skopeo_verifies(&key("other.pub")),
        "skopeo accepts another key"
    );
}

/// The emulator logs each KMS call with the key the request named, for call-count tests.
#[test]
fn emulator_counts_kms_calls_per_key() {
    let alias = format!("alias/{}", sigtrail_tests::unique("count"));
    let arn = sigtrail_tests::kms_create_key("ECC_NIST_P256", &alias);
    let code = "import boto3,os,sys; k=boto3.client('kms', region_name=os.environ['AWS_REGION']); \
                [k.get_public_key(KeyId=sys.argv[1]) for _ in range(2)]; \
                k.sign(KeyId=sys.argv[1], Message=b'x'*32, MessageType='DIGEST', SigningAlgorithm='ECDSA_SHA_256')";
    sigtrail_tests::run_ok(&mut sigtrail_tests::python(code, &[&alias]), b"");
    let counts = sigtrail_tests::kms_calls(&alias);
    assert_eq!(counts.get("GetPublicKey"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("Sign"), Some(&1), "{counts:?}");
    assert!(
        sigtrail_tests::kms_calls(&arn).is_empty(),
        "calls are logged under the name used"
    );
}
