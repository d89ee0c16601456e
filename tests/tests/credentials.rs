//! No credential ever leaves a tool: every byte the tools write during authenticated runs
//! (stdout, stderr, records, the files they write) is searched for the registry password, the
//! base64 `user:pass` of the docker config, the ECR token from `GetAuthorizationToken` and the
//! password inside it, the AWS secret key and session token, and the passphrase of an encrypted
//! key, on the happy path and on error paths (wrong password).

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use sigtrail_tests::check_sig::{verdict, Keys};
use sigtrail_tests::hostile::{assert_no_panic, output_records};
use sigtrail_tests::own_registry::OwnRegistry;
use sigtrail_tests::{
    env, http_status, push_image_with, python, run, run_ok, script, tool, unique, Push,
};

/// The ECR registry the ECR test's own registry stands for (moto's account and region).
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

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

    /// Runs `digest-of` on `image` and checks it resolved to `digest`.
    fn digest_of(&mut self, mut cmd: Command, image: &str, digest: &str) -> Output {
        let out = self.run("digest-of", &mut cmd, format!("{image}\n").as_bytes());
        let records = output_records("digest-of", &out.stdout);
        assert_eq!(records[0]["digest"].as_str(), Some(digest), "{records:?}");
        out
    }

    /// Runs `trail-for` (LookupEvents, one record in) writing a timeline, and keeps the
    /// timeline file too.
    fn trail_for(&mut self, mut cmd: Command, input: &[u8]) {
        let timeline = tempfile::tempdir().unwrap();
        let html = timeline.path().join("trail.html");
        cmd.args(["--cloudtrail", "lookup", "--timeline"])
            .arg(&html);
        let out = self.run("trail-for", &mut cmd, input);
        assert_eq!(output_records("trail-for", &out.stdout).len(), 1);
        self.file(&html);
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
    let out = leaks.digest_of(leaks.tool("digest-of", config), &image, &digest);
    let out = leaks.run(
        "payload-for",
        &mut leaks.tool("payload-for", config),
        &out.stdout,
    );
    leaks.trail_for(leaks.tool("trail-for", config), &out.stdout);

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

/// The whole pipeline against a registry that only ECR's token opens: a registry of the test's
/// own whose one login is the `AWS:<password>` that moto's `GetAuthorizationToken` hands out
/// (fetched here independently with boto3), aliased to an ECR host so the tools get the token
/// themselves. There is no docker config, so every step that reaches the registry proves the
/// token was fetched and used. The image is signed with an encrypted cosign key, so the
/// passphrase is in play too.
#[test]
fn an_ecr_token_run_writes_no_credential() {
    let token = run_ok(
        &mut python(
            "import boto3,os\n\
             d = boto3.client('ecr', region_name=os.environ['AWS_REGION'])\
             .get_authorization_token()['authorizationData'][0]\n\
             print(d['authorizationToken'])",
            &[],
        ),
        b"",
    )
    .trim()
    .to_string();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .expect("the ECR token is base64");
    let decoded = String::from_utf8(decoded).expect("the ECR token is text");
    let (user, password) = decoded
        .split_once(':')
        .expect("the ECR token is user:password");
    assert_eq!(user, "AWS");

    let registry = OwnRegistry::with_login(user, password);
    assert_eq!(
        http_status(&registry.addr, "/v2/", None),
        401,
        "the registry must refuse anonymous requests, or the test proves nothing"
    );
    let repo = unique("creds/ecr");
    let image = format!("{}/{repo}:v1", registry.addr);
    let digest = push_image_with(
        &image,
        Push {
            creds: Some((user, password)),
            ..Push::default()
        },
    );
    // ECR's own API learns about the image too, as digest-of and trail-for ask it.
    let raw = tempfile::NamedTempFile::new().unwrap();
    let manifest = run_ok(
        Command::new(&env().skopeo)
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("{user}:{password}"))
            .arg(format!("docker://{image}")),
        b"",
    );
    std::fs::write(raw.path(), manifest).unwrap();
    run_ok(
        script("ecr-mirror.py").args([&repo, "v1", &raw.path().display().to_string(), &digest]),
        b"",
    );

    let keys = Keys::new();
    let public_key = keys.cosign("k");
    let passphrase = std::fs::read_to_string(keys.path("pass")).unwrap();
    let passphrase = passphrase.trim_end_matches('\n');

    let mut leaks = Leaks::new();
    leaks.secret("ECR token", &token);
    leaks.secret("ECR password", password);
    leaks.secret("ECR user:password", &decoded);
    leaks.secret("key passphrase", passphrase);
    let no_docker_config = tempfile::tempdir().unwrap();
    let alias = format!("{}={ECR_HOST}", registry.addr);
    let tool = |leaks: &Leaks, name: &str| {
        let mut cmd = leaks.tool(name, no_docker_config.path());
        cmd.env("SIGTRAIL_ECR_ALIASES", &alias)
            .env_remove("COSIGN_REPOSITORY");
        cmd
    };

    let out = leaks.digest_of(tool(&leaks, "digest-of"), &image, &digest);
    let records = output_records("digest-of", &out.stdout);
    assert_eq!(
        records[0]["ecr"]["registry_id"], "123456789012",
        "{records:?}"
    );
    let out = leaks.run("payload-for", &mut tool(&leaks, "payload-for"), &out.stdout);
    let mut sign = tool(&leaks, "kms-sign");
    sign.args(["--key", &keys.path("k.key").display().to_string()])
        .env("COSIGN_PASSWORD", passphrase);
    let out = leaks.run("kms-sign", &mut sign, &out.stdout);
    let out = leaks.run("attach-sig", &mut tool(&leaks, "attach-sig"), &out.stdout);
    let records = output_records("attach-sig", &out.stdout);
    assert_eq!(records[0]["attached"]["added"], true, "{records:?}");
    let mut check = tool(&leaks, "check-sig");
    check.args(["--key", &public_key.display().to_string()]);
    let out = leaks.run("check-sig", &mut check, &out.stdout);
    let records = output_records("check-sig", &out.stdout);
    assert_eq!(out.status.code(), Some(0), "{records:?}");
    assert_eq!(
        verdict(&serde_json::Value::Object(records[0].clone())),
        (None, vec!["ok".to_string()])
    );

    leaks.trail_for(tool(&leaks, "trail-for"), &out.stdout);

    // The error path: a registry that does not take this token. The refusal names where the
    // credential came from, never the credential.
    let other = OwnRegistry::with_login("AWS", "not-this-token");
    let mut digest_of = leaks.tool("digest-of", no_docker_config.path());
    digest_of.env("SIGTRAIL_ECR_ALIASES", format!("{}={ECR_HOST}", other.addr));
    let out = leaks.run(
        "digest-of (token refused)",
        &mut digest_of,
        format!("{}/{repo}:v1\n", other.addr).as_bytes(),
    );
    let records = output_records("digest-of", &out.stdout);
    assert_eq!(records[0]["error"]["kind"], "unauthorized", "{records:?}");
    assert!(
        records[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("GetAuthorizationToken")),
        "{records:?}"
    );
    leaks.assert_clean();
}
