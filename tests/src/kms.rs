//! KMS helpers for the end-to-end tests: a counting proxy in front of moto, an independent
//! signature check (Python `cryptography`), extra key kinds, and a stock moto server.
//!
//! The proxy forwards every request to the real emulator unchanged and counts them by KMS
//! operation (`X-Amz-Target`), so tests count the calls a tool makes without trusting the
//! tool's own counters. It can also answer the next N `Sign` requests itself with a
//! `ThrottlingException`, the one thing moto cannot be made to do; that answer is hand-written
//! (status 400, `__type` as KMS sends it), and the retried request then reaches moto.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{env, python, run_ok};

#[derive(Default)]
struct ProxyState {
    counts: BTreeMap<String, u64>,
    throttle_sign: u32,
}

/// A counting (and optionally throttling) HTTP proxy to moto on 127.0.0.1; lives as long as the
/// value (its threads end with the test process).
pub struct KmsProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<Mutex<ProxyState>>,
}

impl KmsProxy {
    /// A proxy to the environment's moto (`AWS_ENDPOINT_URL`).
    pub fn start() -> KmsProxy {
        let upstream = env()
            .aws_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (state, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &upstream, &state));
            }
        });
        KmsProxy {
            endpoint: format!("http://{host}"),
            host,
            state,
        }
    }

    /// Requests seen so far, by operation (`GetPublicKey`, `Sign`, `DescribeKey`, ...).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.state.lock().expect("proxy state").counts.clone()
    }

    /// Requests of one operation seen so far.
    pub fn count(&self, operation: &str) -> u64 {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    /// Answer the next `n` `Sign` requests with `ThrottlingException` instead of forwarding.
    pub fn throttle_next_signs(&self, n: u32) {
        self.state.lock().expect("proxy state").throttle_sign = n;
    }
}

fn serve(conn: TcpStream, upstream: &str, state: &Mutex<ProxyState>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        // Request head.
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let header = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let operation = header("x-amz-target")
            .and_then(|t| t.rsplit('.').next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        let throttle = {
            let mut s = state.lock().expect("proxy state");
            *s.counts.entry(operation.clone()).or_default() += 1;
            if operation == "Sign" && s.throttle_sign > 0 {
                s.throttle_sign -= 1;
                true
            } else {
                false
            }
        };
        let response = if throttle {
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 x-amzn-RequestId: proxy-throttled\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        } else {
            match forward(upstream, &text, &body) {
                Some(r) => r,
                None => return,
            }
        };
        if writer.write_all(&response).is_err() {
            return;
        }
        let closes = String::from_utf8_lossy(&response[..response.len().min(4096)])
            .to_ascii_lowercase()
            .contains("\r\nconnection: close");
        if closes {
            return;
        }
    }
}

/// Sends one request to moto on a fresh connection (`Connection: close`) and returns the whole
/// response with a `Content-Length` framing the client can rely on.
fn forward(upstream: &str, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut request = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    up.write_all(request.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let (head, body) = raw.split_at(split);
    let head = String::from_utf8_lossy(head);
    // Rebuild the head: drop moto's Connection/Content-Length/Transfer-Encoding, frame by length.
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:")
            || lower.starts_with("content-length:")
            || lower.starts_with("transfer-encoding:")
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut response = out.into_bytes();
    response.extend_from_slice(body);
    Some(response)
}

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
/// signatures do not verify); killed on drop.
pub struct StockMoto {
    pub endpoint: String,
    child: Child,
}

impl StockMoto {
    pub fn start() -> StockMoto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&env().python)
            .args([
                "-c",
                "import sys; from moto.server import main; main(sys.argv[1:])",
            ])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stock moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
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
