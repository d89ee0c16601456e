//! Helpers shared by the end-to-end tests: the environment contract, running processes, sample
//! images, the AWS emulator.
//!
//! The tests run against real servers that `cargo xtask test` starts (or `cargo xtask env up`;
//! then `. .sigtrail/env/env.sh` before `cargo test`). They find them through these variables:
//!
//! | variable | what |
//! |---|---|
//! | `SIGTRAIL_REGISTRY` | `127.0.0.1:PORT` of an anonymous registry (plain HTTP, deletes on) |
//! | `SIGTRAIL_AUTH_REGISTRY` | `127.0.0.1:PORT` of a registry with htpasswd basic auth |
//! | `SIGTRAIL_AUTH_USER`, `SIGTRAIL_AUTH_PASS` | its credentials |
//! | `SIGTRAIL_AUTH_DOCKER_CONFIG` | a directory with a docker `config.json` holding them |
//! | `AWS_ENDPOINT_URL` | moto (`scripts/moto_server.py`: KMS DIGEST fix, LookupEvents stand-in) |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` | `testing`, `testing`, `us-east-1` |
//! | `AWS_DEFAULT_REGION` | `us-east-1` too: boto3 reads this one, not `AWS_REGION` |
//! | `SIGTRAIL_SKOPEO` | skopeo 1.18 (sigstore enabled) |
//! | `SIGTRAIL_SKOPEO_REGISTRIES_D` | `--registries.d` turning on sigstore attachments for both registries |
//! | `SIGTRAIL_SKOPEO_POLICY_ACCEPT` | a `--policy` accepting anything (for pushing) |
//! | `SIGTRAIL_COSIGN` | cosign 3.1.1 (Debian sid's, through sid's glibc loader) |
//! | `SIGTRAIL_SRS_VERIFY`, `SIGTRAIL_SRS_SIGN` | the sigstore-rs 0.15 harness |
//! | `SIGTRAIL_PYTHON` | the venv's python (boto3, cryptography, pynacl) |
//! | `SIGTRAIL_SCRIPTS` | the repository's `scripts/` |
//! | `SIGTRAIL_ENV_DIR` | the environment's state directory |
//! | `SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE` | records LookupEvents answers from, see [`LookupEvents`] |
//! | `SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS` | keys ListPublicKeys answers with, see [`digests::key`] |
//!
//! The servers are shared by every test, so tests use their own names: [`unique`].

pub mod digests;
pub mod fake_http;
pub mod kms;
pub mod trail;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// The value of an environment-contract variable; panics saying how to run the tests.
pub fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: run the end-to-end tests with `cargo xtask test` \
             (or `cargo xtask env up && . .sigtrail/env/env.sh` before `cargo test`)"
        ),
    }
}

/// The environment contract, read once.
pub struct Env {
    pub registry: String,
    pub auth_registry: String,
    pub auth_user: String,
    pub auth_pass: String,
    pub auth_docker_config: PathBuf,
    pub aws_endpoint: String,
    pub skopeo: PathBuf,
    pub skopeo_registries_d: PathBuf,
    pub skopeo_policy_accept: PathBuf,
    pub cosign: PathBuf,
    pub srs_verify: PathBuf,
    pub srs_sign: PathBuf,
    pub python: PathBuf,
    pub scripts: PathBuf,
    pub env_dir: PathBuf,
    pub lookup_events_file: PathBuf,
    /// What the emulator's `ListPublicKeys` stand-in answers (see [`digests::key`]).
    pub cloudtrail_public_keys_file: PathBuf,
    /// The Athena tables the emulator's stand-in executor knows (see [`AthenaTable`]).
    pub athena_tables_file: PathBuf,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        registry: var("SIGTRAIL_REGISTRY"),
        auth_registry: var("SIGTRAIL_AUTH_REGISTRY"),
        auth_user: var("SIGTRAIL_AUTH_USER"),
        auth_pass: var("SIGTRAIL_AUTH_PASS"),
        auth_docker_config: var("SIGTRAIL_AUTH_DOCKER_CONFIG").into(),
        aws_endpoint: var("AWS_ENDPOINT_URL"),
        skopeo: var("SIGTRAIL_SKOPEO").into(),
        skopeo_registries_d: var("SIGTRAIL_SKOPEO_REGISTRIES_D").into(),
        skopeo_policy_accept: var("SIGTRAIL_SKOPEO_POLICY_ACCEPT").into(),
        cosign: var("SIGTRAIL_COSIGN").into(),
        srs_verify: var("SIGTRAIL_SRS_VERIFY").into(),
        srs_sign: var("SIGTRAIL_SRS_SIGN").into(),
        python: var("SIGTRAIL_PYTHON").into(),
        scripts: var("SIGTRAIL_SCRIPTS").into(),
        env_dir: var("SIGTRAIL_ENV_DIR").into(),
        lookup_events_file: var("SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE").into(),
        cloudtrail_public_keys_file: var("SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS").into(),
        athena_tables_file: var("SIGTRAIL_MOTO_ATHENA_TABLES").into(),
    })
}

/// A name no other test (or earlier run against the same servers) uses: `PREFIX-PID-N`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd` with `stdin` written from another thread (so a big input cannot deadlock against
/// a full stdout pipe) and returns its output, whatever its exit status.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    // A tool may exit without reading all its input; a broken pipe here is not the test's concern.
    let writer = std::thread::spawn(move || drop(pipe.write_all(&input)));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    writer.join().expect("stdin writer thread");
    out
}

/// Runs `cmd` like [`run`], panics with its stderr unless it exits 0, returns its stdout.
pub fn run_ok(cmd: &mut Command, stdin: &[u8]) -> String {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// A command for one of the repository's `scripts/`: `.py` through the venv's python, `.sh`
/// through bash.
pub fn script(name: &str) -> Command {
    let path = env().scripts.join(name);
    let mut cmd = if name.ends_with(".py") {
        Command::new(&env().python)
    } else {
        Command::new("bash")
    };
    cmd.arg(path);
    cmd
}

/// The venv's python running `code`, with `args` in `sys.argv[1:]`.
pub fn python(code: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(&env().python);
    cmd.arg("-c").arg(code).args(args);
    cmd
}

/// Where the built tools are: they are uplifted into the target dir (which may differ from the
/// build dir that holds this test binary): `$CARGO_TARGET_DIR/debug` when set, else the
/// workspace's `target/debug`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("debug")
}

/// A command for one of the workspace's tools (`cargo xtask test` builds them all first).
pub fn tool(name: &str) -> Command {
    let path = tools_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: `cargo xtask test` builds it, or run `cargo build --bins`",
        path.display()
    );
    Command::new(path)
}

/// How [`push_image_with`] pushes.
#[derive(Default)]
pub struct Push<'a> {
    /// The text of the image's one file; the digest follows it. Default: the script's default.
    pub content: Option<&'a str>,
    /// Push to the auth registry's credentials.
    pub creds: Option<(&'a str, &'a str)>,
    /// A two-platform OCI image index instead of a single image.
    pub index: bool,
}

/// Pushes a small deterministic image to `reference` (`HOST/REPO:TAG`) with
/// `scripts/push-image.sh`; returns its digest.
pub fn push_image(reference: &str, content: &str) -> String {
    push_image_with(
        reference,
        Push {
            content: Some(content),
            ..Push::default()
        },
    )
}

pub fn push_image_with(reference: &str, push: Push) -> String {
    let mut cmd = script("push-image.sh");
    cmd.arg(reference);
    if let Some(content) = push.content {
        cmd.arg(content);
    }
    if let Some((user, pass)) = push.creds {
        cmd.arg("--creds").arg(format!("{user}:{pass}"));
    }
    if push.index {
        cmd.arg("--index");
    }
    let digest = run_ok(&mut cmd, b"").trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "bad digest {digest:?}"
    );
    digest
}

/// Creates a SIGN_VERIFY key (`ECC_NIST_P256`, `ECC_NIST_P384`, `RSA_2048`) in moto with an
/// alias (`alias/...` or a bare name); returns its ARN.
pub fn kms_create_key(spec: &str, alias: &str) -> String {
    run_ok(script("kms-create-key.py").args([spec, alias]), b"")
        .trim()
        .to_string()
}

/// The status code of `GET http://HOST/PATH`, with basic auth when given. Plain HTTP/1.0 over
/// a socket: enough for probing the local servers without an HTTP client dependency.
pub fn http_status(host: &str, path: &str, basic: Option<(&str, &str)>) -> u16 {
    use base64::Engine;
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n");
    if let Some((user, pass)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut response = Vec::new();
    s.read_to_end(&mut response).expect("read response");
    let head = String::from_utf8_lossy(&response[..response.len().min(12)]).into_owned();
    head.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response from {host}: {head:?}"))
}

/// The records CloudTrail `LookupEvents` answers from, while this guard lives.
///
/// moto has no LookupEvents; `scripts/moto_server.py` answers it from the file named by
/// `SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE`, re-read on each call. The file is shared by the tests of
/// one binary, so the guard also holds a lock: tests that use it run one at a time. On drop the
/// file is emptied again.
pub struct LookupEvents {
    _lock: MutexGuard<'static, ()>,
}

impl LookupEvents {
    /// Makes LookupEvents answer from `records` (CloudTrail records, as in a log file's
    /// `Records`).
    pub fn set(records: &[serde_json::Value]) -> LookupEvents {
        static LOCK: Mutex<()> = Mutex::new(());
        let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        write_lookup_events(records);
        LookupEvents { _lock: lock }
    }
}

impl Drop for LookupEvents {
    fn drop(&mut self) {
        write_lookup_events(&[]);
    }
}

fn write_lookup_events(records: &[serde_json::Value]) {
    let path = &env().lookup_events_file;
    let doc = serde_json::json!({ "Records": records });
    // Write then rename, so the server never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).expect("write lookup events");
    std::fs::rename(&tmp, path).expect("rename lookup events");
}

/// An Athena table the emulator's stand-in executor runs queries on (`scripts/moto_server.py`,
/// 5.: DuckDB over a view of the CloudTrail table's schema, built from the log files in the
/// emulator's S3 under `location`; moto itself runs no SQL). Each test adds its own table to
/// the shared file under a lock; on drop it is taken out again.
pub struct AthenaTable {
    pub name: String,
    /// `tables` (Athena) or `event_data_stores` (CloudTrail Lake)
    section: &'static str,
}

static ATHENA_LOCK: Mutex<()> = Mutex::new(());

fn edit_athena_tables(
    section: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let _lock = ATHENA_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = &env().athena_tables_file;
    let mut doc: serde_json::Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"tables": {}}));
    if !doc[section].is_object() {
        doc[section] = serde_json::json!({});
    }
    edit(doc[section].as_object_mut().expect("section"));
    // Write then rename, so the server never reads half a file.
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, doc.to_string()).expect("write athena tables");
    std::fs::rename(&tmp, path).expect("rename athena tables");
}

impl AthenaTable {
    /// `DATABASE.TABLE` over `location` (`s3://BUCKET/PREFIX/`), partitioned as `layout`
    /// (`org` or `account`); the next `throttle` queries on it are refused as throttled.
    pub fn add(name: &str, location: &str, layout: &str, throttle: u32) -> AthenaTable {
        edit_athena_tables("tables", |tables| {
            tables.insert(
                name.to_string(),
                serde_json::json!({"location": location, "layout": layout, "throttle": throttle}),
            );
        });
        AthenaTable {
            name: name.to_string(),
            section: "tables",
        }
    }

    /// A CloudTrail Lake event data store `id` over the same files (the stand-in's 6.).
    pub fn lake(id: &str, location: &str, throttle: u32) -> AthenaTable {
        edit_athena_tables("event_data_stores", |stores| {
            stores.insert(
                id.to_string(),
                serde_json::json!({"location": location, "throttle": throttle}),
            );
        });
        AthenaTable {
            name: id.to_string(),
            section: "event_data_stores",
        }
    }
}

impl Drop for AthenaTable {
    fn drop(&mut self) {
        edit_athena_tables(self.section, |tables| {
            tables.remove(&self.name);
        });
    }
}

/// The `../shared` folder beside the repository (vectors, CloudTrail samples), or
/// `$SIGTRAIL_SHARED` when set (for a checkout that does not sit beside it, e.g. a worktree).
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("SIGTRAIL_SHARED").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    assert!(
        dir.join("vectors").is_dir(),
        "{} has no vectors/: the shared folder must sit beside the repository",
        dir.display()
    );
    dir
}

/// KMS calls the emulator has served for requests naming `key_id` (as the request named it:
/// id, ARN, alias or alias ARN), by action (`GetPublicKey`, `DescribeKey`, `Sign`, `Verify`).
/// Counted by the emulator (`SIGTRAIL_MOTO_KMS_CALLS`), not by the tool under test.
pub fn kms_calls(key_id: &str) -> std::collections::BTreeMap<String, usize> {
    let log = std::fs::read_to_string(var("SIGTRAIL_MOTO_KMS_CALLS")).unwrap_or_default();
    let mut counts = std::collections::BTreeMap::new();
    for line in log.lines() {
        if let Some((action, key)) = line.split_once(' ') {
            if key == key_id {
                *counts.entry(action.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

pub mod check_sig;
pub mod cosign;
pub mod faults;
pub mod hostile;
pub mod interop;
pub mod listen;
pub mod own_registry;
