//! No credential ever leaves a tool: every byte the tools write during authenticated runs
//! (stdout, stderr, records, the files they write) is searched for the registry password, the
//! base64 `user:pass` of the docker config, the AWS secret key and session token, and the
//! passphrase of an encrypted key, on the happy path and on error paths (wrong password).

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use sigtrail_tests::hostile::{assert_no_panic, output_records};
use sigtrail_tests::{env, push_image_with, run, tool, unique, Push};

/// AWS credentials no emulator checks, distinctive enough to find anywhere they leak.
const AWS_SECRET: &str = "hArDeN+sEcReT/kEy/0123456789abcdefghijKLMNOP";
const AWS_TOKEN: &str = "hArDeN-SeSsIoN-tOkEn-9f8e7d6c5b4a";

/// The secrets of one run, and every byte the tools wrote.
struct Leaks {
    secrets: Vec<(String, String)>,
    written: Vec<(String, Vec<u8>)>,
}

impl Leaks {
    fn new() -> Leaks {
        let e = env();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", e.auth_user, e.auth_pass));
        Leaks {
            secrets: vec![
                ("registry password".into(), e.auth_pass.clone()),
                ("base64 user:pass".into(), basic),
                ("AWS secret key".into(), AWS_SECRET.into()),
                ("AWS session token".into(), AWS_TOKEN.into()),
            ],
            written: Vec::new(),
        }
    }

    fn secret(&mut self, what: &str, value: &str) {
        self.secrets.push((what.into(), value.into()));
    }

    /// A tool with the run's credentials in its environment.
    fn tool(&self, name: &str, docker_config: &Path) -> Command {
        let mut cmd = tool(name);
        cmd.env("DOCKER_CONFIG", docker_config)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_TOKEN);
        cmd
    }

    /// Runs `cmd` on `input`, keeps what it wrote, returns its output.
    fn run(&mut self, what: &str, cmd: &mut Command, input: &[u8]) -> Output {
        let out = run(cmd, input);
        assert_no_panic(what, &out);
        self.written
            .push((format!("{what} stdout"), out.stdout.clone()));
        self.written
            .push((format!("{what} stderr"), out.stderr.clone()));
        out
    }

    fn file(&mut self, path: &Path) {
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
        self.written.push((path.display().to_string(), bytes));
    }

    /// Fails naming the secret and where it appeared. Also looks for the base64 and the
    /// JSON-escaped forms of each secret.
    fn assert_clean(&self) {
        assert!(!self.written.is_empty());
        for (what, secret) in &self.secrets {
            let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
            let json = serde_json::Value::from(secret.as_str()).to_string();
            let forms = [secret.clone(), b64, json[1..json.len() - 1].to_string()];
            for (place, bytes) in &self.written {
                for form in &forms {
                    assert!(
                        !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                        "the {what} appears in {place}"
                    );
                }
            }
        }
    }
}

/// A docker config.json for `registry` with `user:pass`, in a temp dir.
fn docker_config(registry: &str, user: &str, pass: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn an_authenticated_pipeline_writes_no_credential() {
    let e = env();
    let mut leaks = Leaks::new();
    let repo = unique("creds/app");
    let image = format!("{}/{repo}:v1", e.auth_registry);
    let digest = push_image_with(
        &image,
        Push {
            creds: Some((&e.auth_user, &e.auth_pass)),
            ..Push::default()
        },
    );
    let config = &e.auth_docker_config;
    let out = leaks.run(
        "digest-of",
        &mut leaks.tool("digest-of", config),
        format!("{image}\n").as_bytes(),
    );
    let records = output_records("digest-of", &out.stdout);
    assert_eq!(
        records[0]["digest"].as_str(),
        Some(digest.as_str()),
        "{records:?}"
    );
    let out = leaks.run(
        "payload-for",
        &mut leaks.tool("payload-for", config),
        &out.stdout,
    );
    let timeline = tempfile::tempdir().unwrap();
    let html = timeline.path().join("trail.html");
    let mut trail = leaks.tool("trail-for", config);
    trail
        .args(["--cloudtrail", "lookup", "--timeline"])
        .arg(&html);
    let out = leaks.run("trail-for", &mut trail, &out.stdout);
    assert_eq!(output_records("trail-for", &out.stdout).len(), 1);
    leaks.file(&html);
    leaks.assert_clean();
}

#[test]
fn a_wrong_password_is_not_echoed() {
    let e = env();
    let mut leaks = Leaks::new();
    let wrong = format!("wrong-{}-Pa55w0rd!", std::process::id());
    leaks.secret("wrong password", &wrong);
    let config = docker_config(&e.auth_registry, &e.auth_user, &wrong);
    let image = format!("{}/{}:v1", e.auth_registry, unique("creds/wrong"));
    let out = leaks.run(
        "digest-of (wrong password)",
        &mut leaks.tool("digest-of", config.path()),
        format!("{image}\n{image}\n").as_bytes(),
    );
    let records = output_records("digest-of", &out.stdout);
    assert_eq!(records.len(), 2);
    for rec in &records {
        assert_eq!(rec["error"]["kind"], "unauthorized", "{rec:?}");
    }
    leaks.assert_clean();
}
