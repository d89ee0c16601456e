//! KMS helpers for the end-to-end tests: an independent signature check (Python
//! `cryptography`), extra key kinds, and a stock moto server. KMS calls are counted and
//! throttled by the fault proxy ([`crate::faults::Proxy::operations`],
//! [`crate::faults::Proxy::throttle_next`]).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::listen::wait_serving;
use crate::{env, python, run_ok};

/// One signature for [`verify_independently`].
pub struct Check<'a> {
    pub public_key_pem: &'a str,
    /// base64 of the signed bytes
    pub payload_b64: &'a str,
    /// base64 of the signature
    pub signature_b64: &'a str,
    /// KMS algorithm name
    pub algorithm: &'a str,
}

const VERIFY_PY: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
out = []
for c in json.load(sys.stdin):
    key = serialization.load_pem_public_key(c["pem"].encode())
    payload = base64.b64decode(c["payload"], validate=True)
    sig = base64.b64decode(c["signature"], validate=True)
    alg = c["algorithm"]
    h = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}[alg[-3:]]()
    try:
        if alg.startswith("ECDSA_"):
            key.verify(sig, payload, ec.ECDSA(h))
        elif alg.startswith("RSASSA_PSS_"):
            key.verify(sig, payload, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        elif alg.startswith("RSASSA_PKCS1_V1_5_"):
            key.verify(sig, payload, padding.PKCS1v15(), h)
        else:
            raise ValueError(alg)
        out.append(True)
    except Exception:
        out.append(False)
print(json.dumps(out))
"#;

/// Verifies each signature with Python's `cryptography` (OpenSSL), not with sigtrail's code;
/// returns one verdict per check.
pub fn verify_independently(checks: &[Check]) -> Vec<bool> {
    let input: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| {
            serde_json::json!({
                "pem": c.public_key_pem, "payload": c.payload_b64,
                "signature": c.signature_b64, "algorithm": c.algorithm,
            })
        })
        .collect();
    let out = run_ok(
        &mut python(VERIFY_PY, &[]),
        serde_json::Value::Array(input).to_string().as_bytes(),
    );
    serde_json::from_str(out.trim()).expect("verdicts")
}

/// Creates a KMS key with any `KeySpec` and `KeyUsage` (`SIGN_VERIFY`, `ENCRYPT_DECRYPT`) and
/// an alias, in the environment's moto (or at `endpoint`); returns the key ARN.
pub fn create_key_with(spec: &str, usage: &str, alias: &str, endpoint: Option<&str>) -> String {
    const CODE: &str = r#"
import os, sys, boto3
spec, usage, alias, endpoint = sys.argv[1:5]
kms = boto3.client("kms", region_name=os.environ.get("AWS_REGION"), endpoint_url=endpoint or None)
arn = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["Arn"]
kms.create_alias(AliasName="alias/" + alias, TargetKeyId=arn)
print(arn)
"#;
    run_ok(
        &mut python(CODE, &[spec, usage, alias, endpoint.unwrap_or("")]),
        b"",
    )
    .trim()
    .to_string()
}

/// A stock moto 5.2.5 server (no DIGEST fix: it hashes a DIGEST message again, so its
/// signatures do not verify), on a port it binds itself (port 0, read back from the kernel:
/// [`crate::listen`]); killed on drop.
pub struct StockMoto {
    pub endpoint: String,
    child: Child,
}

impl StockMoto {
    pub fn start() -> StockMoto {
        let mut child = Command::new(&env().python)
            .args([
                "-c",
                "import sys; from moto.server import main; main(sys.argv[1:])",
            ])
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let (port, _) = match wait_serving(&mut child, None, "/moto-api/", Duration::from_secs(60))
        {
            Ok(up) => up,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("stock moto did not start: {e}");
            }
        };
        StockMoto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }
}

impl Drop for StockMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
