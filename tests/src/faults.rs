//! A fault-injecting HTTP/1.1 proxy on `127.0.0.1:0`, in front of the real registry or the AWS
//! emulator, answering each request as the test's schedule says: pass it on, or answer 429 with
//! `Retry-After`, 500/503, a KMS `ThrottlingException`, reset the connection, stall, truncate
//! the body, redirect elsewhere, or serve another path's answer.
//!
//! This is a hand-written fake on purpose: no real registry or AWS endpoint can be told to fail
//! on a schedule, to lie about a digest, or to redirect to another host, and those are exactly
//! what the tools must survive. Everything it passes on is answered by the real server.
//!
//! It speaks just enough HTTP/1.1: one request per client connection (it answers with
//! `Connection: close`), request bodies by `Content-Length`, responses passed through as the
//! upstream wrote them (read to its end, since the proxy asks upstream for `Connection: close`
//! too). Every request is logged ([`Seen`]) with whether it carried `Authorization`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and pass the answer back.
    Pass,
    /// Answer `status` with these headers and body, without asking upstream.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Arc<[u8]>,
    },
    /// Close the connection with the request unread, so the client sees a TCP reset.
    Reset,
    /// Wait, then forward.
    Stall(Duration),
    /// Forward, but pass back only the head and the first half of the body, then close.
    Truncate,
    /// Forward the request to this path (and query) instead of the one asked for.
    Rewrite(String),
    /// Answer `307 Temporary Redirect` to this URL.
    Redirect(String),
}

impl Fault {
    /// `429 Too Many Requests` with `Retry-After: secs`.
    pub fn too_many(secs: u32) -> Fault {
        Fault::Answer {
            status: 429,
            headers: vec![("Retry-After".into(), secs.to_string())],
            body: Arc::from(
                &br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#[..],
            ),
        }
    }

    /// A bare `status` (500, 502, 503...).
    pub fn status(status: u16) -> Fault {
        Fault::Answer {
            status,
            headers: Vec::new(),
            body: Arc::from(&b"injected failure"[..]),
        }
    }

    /// What KMS answers when a caller exceeds its request quota.
    pub fn kms_throttling() -> Fault {
        Fault::Answer {
            status: 400,
            headers: vec![
                ("x-amzn-ErrorType".into(), "ThrottlingException".into()),
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
            ],
            body: Arc::from(&br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#[..]),
        }
    }
}

/// The request as the schedule sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Position among all requests this proxy got, from 0.
    pub n: usize,
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The AWS operation of a JSON-protocol call (`TrentService.Sign` → `Sign`).
    pub fn operation(&self) -> Option<&str> {
        self.header("x-amz-target")?.rsplit('.').next()
    }
}

/// One request the proxy saw and what it did.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: bool,
    /// The AWS operation (`Sign`, `GetPublicKey`, `LookupEvents`, ...) from `X-Amz-Target`.
    pub operation: Option<String>,
    /// What the proxy did: `pass`, `answer STATUS` (e.g. `answer 429`, `answer 400` for a KMS
    /// throttle), `reset`, `stall`, `truncate`, `rewrite`, `redirect`.
    pub fault: String,
}

impl Fault {
    fn label(&self) -> String {
        match self {
            Fault::Pass => "pass".into(),
            Fault::Answer { status, .. } => format!("answer {status}"),
            Fault::Reset => "reset".into(),
            Fault::Stall(_) => "stall".into(),
            Fault::Truncate => "truncate".into(),
            Fault::Rewrite(_) => "rewrite".into(),
            Fault::Redirect(_) => "redirect".into(),
        }
    }
}

type Schedule = dyn Fn(&Request) -> Fault + Send + Sync;

struct Shared {
    upstream: Mutex<String>,
    schedule: Mutex<Arc<Schedule>>,
    seen: Mutex<Vec<Seen>>,
    count: AtomicUsize,
    upstream_down: AtomicUsize,
    stop: AtomicBool,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy in front of `upstream` (`HOST:PORT`), passing everything until [`Proxy::set`].
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream.to_string()),
            schedule: Mutex::new(Arc::new(|_: &Request| Fault::Pass)),
            seen: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            upstream_down: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                });
            }
        });
        Proxy { addr, shared }
    }

    /// A proxy in front of the environment's AWS emulator (`AWS_ENDPOINT_URL`).
    pub fn in_front_of_aws() -> Proxy {
        Proxy::start(
            crate::env()
                .aws_endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/'),
        )
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, to use as a registry host or in `http://` for an AWS endpoint.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Decide each following request with `schedule`.
    pub fn set(&self, schedule: impl Fn(&Request) -> Fault + Send + Sync + 'static) {
        *lock(&self.shared.schedule) = Arc::new(schedule);
    }

    /// Send what is passed on to another upstream from now on (a restarted server's port).
    pub fn set_upstream(&self, upstream: &str) {
        *lock(&self.shared.upstream) = upstream.to_string();
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many requests found the upstream server down (connection refused).
    pub fn upstream_down(&self) -> usize {
        self.shared.upstream_down.load(Ordering::SeqCst)
    }

    /// Requests so far by AWS operation (`GetPublicKey`, `Sign`, ...), faulted ones included:
    /// the calls a tool made, counted without trusting its own counters.
    pub fn operations(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for s in self.seen() {
            if let Some(op) = s.operation {
                *counts.entry(op).or_default() += 1;
            }
        }
        counts
    }

    /// Requests of one AWS operation so far.
    pub fn operation_count(&self, operation: &str) -> u64 {
        self.operations().get(operation).copied().unwrap_or(0)
    }

    /// Answers the next `n` requests of `operation` with a KMS `ThrottlingException`, passes
    /// everything else. Replaces any schedule set with [`Proxy::set`].
    pub fn throttle_next(&self, operation: &str, n: usize) {
        let operation = operation.to_string();
        let left = AtomicUsize::new(n);
        self.set(move |req| {
            let hit = req.operation() == Some(operation.as_str())
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok();
            if hit {
                Fault::kms_throttling()
            } else {
                Fault::Pass
            }
        });
    }

    /// How many requests got something other than [`Fault::Pass`].
    pub fn injected(&self) -> usize {
        self.seen().iter().filter(|s| s.fault != "pass").count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    if shared.stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    // Wait for the request to arrive, so a reset can leave it unread.
    let mut probe = [0u8; 1];
    if client.peek(&mut probe)? == 0 {
        return Ok(());
    }
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let n = shared.count.fetch_add(1, Ordering::SeqCst);
    let request = Request {
        n,
        method,
        target,
        headers,
    };
    let schedule = lock(&shared.schedule).clone();
    let fault = schedule(&request);
    lock(&shared.seen).push(Seen {
        method: request.method.clone(),
        target: request.target.clone(),
        authorization: request.header("authorization").is_some(),
        operation: request.operation().map(str::to_string),
        fault: fault.label(),
    });
    if fault == Fault::Reset {
        // Unread data in the receive buffer makes the kernel answer the close with RST.
        drop(reader);
        return Ok(());
    }
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let target = match &fault {
        Fault::Answer {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} Injected\r\n");
            for (k, v) in headers {
                out += &format!("{k}: {v}\r\n");
            }
            // A test that sets Transfer-Encoding gives the body already chunked.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
            {
                out += &format!("Content-Length: {}\r\n", body.len());
            }
            out += "Connection: close\r\n\r\n";
            client.write_all(out.as_bytes())?;
            client.write_all(body)?;
            return client.shutdown(Shutdown::Write);
        }
        Fault::Redirect(location) => {
            let out = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            client.write_all(out.as_bytes())?;
            return Ok(());
        }
        Fault::Stall(d) => {
            std::thread::sleep(*d);
            request.target.clone()
        }
        Fault::Rewrite(path) => path.clone(),
        _ => request.target.clone(),
    };
    let upstream = lock(&shared.upstream).clone();
    let mut up = match TcpStream::connect(&upstream) {
        Ok(up) => up,
        Err(_) => {
            // The real server is down (a restart): the client sees what it would see, a
            // refused connection, as closely as a proxy can show it.
            shared.upstream_down.fetch_add(1, Ordering::SeqCst);
            drop(reader);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
    };
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = format!("{} {target} HTTP/1.1\r\n", request.method);
    for (k, v) in &request.headers {
        if k != "connection" && k != "host" {
            out += &format!("{k}: {v}\r\n");
        }
    }
    out += &format!("host: {upstream}\r\nconnection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    if fault == Fault::Truncate {
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        let keep = split + (response.len() - split) / 2;
        client.write_all(&response[..keep])?;
        return client.shutdown(Shutdown::Both);
    }
    client.write_all(&response)?;
    client.shutdown(Shutdown::Write)
}

/// Pushes `n` distinct small images to `registry/repo` (tags `t0`..), sharing one config and one
/// layer blob so the batch is quick; returns `(tag, digest)` in order. Each manifest differs by an
/// annotation, so each has its own digest.
pub fn push_many(registry: &str, repo: &str, n: usize) -> Vec<(String, String)> {
    const CODE: &str = r#"
import hashlib, json, sys, urllib.request
reg, repo, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://{reg}/v2/{repo}"
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request(url, data=data, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", base + "/blobs/uploads/").headers["Location"]
    if loc.startswith("/"): loc = f"http://{reg}" + loc
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data, "application/octet-stream")
    return {"mediaType": "", "digest": d, "size": len(data)}
cfg = blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
layer = blob(b"layer")
layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
for i in range(n):
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg, "layers": [layer], "annotations": {"n": str(i), "repo": repo}},
        separators=(",", ":")).encode()
    mt = "application/vnd.oci.image.manifest.v1+json"
    req("PUT", f"{base}/manifests/t{i}", m, mt)
    print(f"t{i} sha256:{hashlib.sha256(m).hexdigest()}")
"#;
    let out = crate::run_ok(
        &mut crate::python(CODE, &[registry, repo, &n.to_string()]),
        b"",
    );
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, d)| (t.to_string(), d.to_string()))
        .collect()
}

/// Signs `images` (`(tag, digest)` in `registry/repo`, e.g. from [`push_many`]) the way cosign
/// does, written independently of the tools under test (Python `cryptography`, ECDSA P-256 over
/// the simple-signing payload, pushed as `sha256-<hex>.sig`), so a check-sig test needs no
/// other tool of ours. `layers` copies of the signature layer go in each signature manifest
/// (1 for a normal signature; many to build a hostile one). Writes the public key PEM to
/// `public_key` and returns the sha256 digests of the signature manifests.
pub fn sign_many(
    registry: &str,
    repo: &str,
    images: &[(String, String)],
    public_key: &std::path::Path,
    layers: usize,
) -> Vec<String> {
    const CODE: &str = r#"
import base64, hashlib, json, sys, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
reg, repo, pub, layers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://{reg}/v2/{repo}"
key = ec.generate_private_key(ec.SECP256R1())
open(pub, "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
def req(method, url, data=None, ctype=None):
    r = urllib.request.Request(url, data=data, method=method)
    if ctype: r.add_header("Content-Type", ctype)
    return urllib.request.urlopen(r)
def blob(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = req("POST", base + "/blobs/uploads/").headers["Location"]
    if loc.startswith("/"): loc = f"http://{reg}" + loc
    req("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + d, data, "application/octet-stream")
    return d
for line in sys.stdin.read().split():
    digest = line
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"{reg}/{repo}"},
        "image": {"docker-manifest-digest": digest}, "type": "cosign container image signature"},
        "optional": None}, separators=(",", ":"), sort_keys=True).encode()
    sig = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    pd = blob(payload)
    cfg = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}] * layers, "os": "",
        "rootfs": {"type": "layers", "diff_ids": [pd] * layers}, "config": {}},
        separators=(",", ":")).encode()
    cd = blob(cfg)
    layer = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(payload),
        "digest": pd, "annotations": {"dev.cosignproject.cosign/signature": sig}}
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(cfg), "digest": cd},
        "layers": [layer] * layers}, separators=(",", ":")).encode()
    req("PUT", f"{base}/manifests/sha256-{digest[7:]}.sig", m, "application/vnd.oci.image.manifest.v1+json")
    print("sha256:" + hashlib.sha256(m).hexdigest())
"#;
    let input: String = images.iter().map(|(_, d)| format!("{d}\n")).collect();
    let public_key = public_key.to_str().expect("UTF-8 path");
    let out = crate::run_ok(
        &mut crate::python(CODE, &[registry, repo, public_key, &layers.to_string()]),
        input.as_bytes(),
    );
    out.lines().map(str::to_string).collect()
}

/// Runs `stages` as a shell pipeline (`a | b | c`): `input` into the first, each stdout into the
/// next stdin. Returns the last stage's output, with every stage's stderr in its `stderr`, and
/// the exit codes of all stages.
pub fn pipeline(
    mut stages: Vec<std::process::Command>,
    input: &[u8],
) -> (std::process::Output, Vec<Option<i32>>) {
    use std::process::Stdio;
    let mut children = Vec::new();
    let mut previous: Option<std::process::ChildStdout> = None;
    let last = stages.len() - 1;
    for (i, cmd) in stages.iter_mut().enumerate() {
        cmd.stdin(match previous.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        if i < last {
            previous = child.stdout.take();
        }
        children.push(child);
    }
    let mut stdin = children[0].stdin.take().expect("first stage stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
    // Drain every stderr in the background so no stage blocks on a full pipe.
    let stderrs: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let mut err = c.stderr.take().expect("stderr piped");
            std::thread::spawn(move || {
                let mut s = Vec::new();
                let _ = err.read_to_end(&mut s);
                s
            })
        })
        .collect();
    let mut last_child = children.pop().expect("a stage");
    let mut stdout = Vec::new();
    last_child
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_end(&mut stdout)
        .expect("read the last stage");
    let mut codes = Vec::new();
    for mut c in children {
        codes.push(c.wait().expect("wait for a stage").code());
    }
    let status = last_child.wait().expect("wait for the last stage");
    codes.push(status.code());
    writer.join().expect("stdin writer");
    let mut stderr = Vec::new();
    for s in stderrs {
        stderr.extend(s.join().expect("stderr reader"));
    }
    (
        std::process::Output {
            status,
            stdout,
            stderr,
        },
        codes,
    )
}

/// `digest-of | payload-for | kms-sign --key KEY | attach-sig`, with AWS calls sent to
/// `aws_endpoint` (`http://HOST:PORT`).
pub fn signing_pipeline(key: &str, aws_endpoint: &str) -> Vec<std::process::Command> {
    let mut stages = vec![
        crate::tool("digest-of"),
        crate::tool("payload-for"),
        crate::tool("kms-sign"),
        crate::tool("attach-sig"),
    ];
    stages[2].args(["--key", key]);
    for s in &mut stages {
        s.env("AWS_ENDPOINT_URL", aws_endpoint)
            .env_remove("COSIGN_REPOSITORY")
            .env_remove("SIGTRAIL_ECR_ALIASES");
    }
    stages
}

/// One fault in ten for a KMS endpoint, cycling through throttling, 500, 503, a reset and a
/// stall (KMS calls are POSTs, so the schedule counts every request).
pub fn kms_ten_percent(req: &Request) -> Fault {
    if req.n % 10 != 5 {
        return Fault::Pass;
    }
    match (req.n / 10) % 5 {
        0 => Fault::kms_throttling(),
        1 => Fault::status(500),
        2 => Fault::status(503),
        3 => Fault::Reset,
        _ => Fault::Stall(Duration::from_secs(2)),
    }
}

/// `GET http://HOST/PATH` with an `Accept` header for manifests, over plain HTTP/1.0 (the test
/// needs no HTTP client); returns the status and the body.
pub fn http_get(host: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set timeout");
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("send request");
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("read response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head from {host}{path}"));
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response from {host}: {head:?}"));
    (status, response[split + 4..].to_vec())
}
