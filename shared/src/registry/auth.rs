//! Registry credentials and auth challenges: docker `config.json` (`auths`, `credHelpers`,
//! `credsStore`), credential helpers, `WWW-Authenticate` parsing.
//!
//! Lookup order for a registry host, as docker and go-containerregistry do it:
//! `credHelpers[host]`, else `credsStore` (falling back to `auths` when the store has nothing),
//! else `auths[host]` (`auth` = base64 `user:password`, or `username`/`password`, or
//! `identitytoken`). Docker Hub is stored under `https://index.docker.io/v1/`. Nothing here is
//! ever logged: [`Credential`]'s `Debug` redacts secrets.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::error::Error;
use crate::reference::DOCKER_HUB;

/// A credential for one registry. `Debug` shows the user name only.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// No credential: anonymous access (bearer tokens may still be fetched anonymously)
    Anonymous,
    /// User and password (or an ECR token) for Basic auth and for the token endpoint
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in config.json), exchanged at the token realm
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// The `Authorization: Basic ...` value, for Basic credentials.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// Where credentials come from: a parsed docker `config.json` (or none).
#[derive(Clone, Default)]
pub struct DockerConfig {
    /// The file it was read from, for messages
    pub path: Option<PathBuf>,
    json: Option<Value>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Longest config.json read (a real one is a few KiB).
const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

impl DockerConfig {
    /// `dir/config.json`, or `$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`. A
    /// missing file is no error (anonymous access); an unreadable or malformed one is.
    pub fn load(dir: Option<&Path>) -> Result<Self, Error> {
        let dir = match dir {
            Some(d) => Some(d.to_path_buf()),
            None => std::env::var_os("DOCKER_CONFIG")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))),
        };
        let Some(dir) = dir else {
            return Ok(Self::default());
        };
        let path = dir.join("config.json");
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(Error::new(
                    "config",
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
            Ok(m) if m.len() > MAX_CONFIG_BYTES => {
                return Err(Error::new(
                    "config",
                    format!("{} is larger than 4 MiB", path.display()),
                ))
            }
            Ok(_) => std::fs::read(&path).map_err(|e| {
                Error::new("config", format!("cannot read {}: {e}", path.display()))
            })?,
        };
        Self::parse(&bytes, Some(path))
    }

    /// Parses config.json bytes (`path` is only for messages).
    pub fn parse(bytes: &[u8], path: Option<PathBuf>) -> Result<Self, Error> {
        let shown = path
            .as_ref()
            .map_or("docker config".to_string(), |p| p.display().to_string());
        let json: Value = serde_json::from_slice(bytes).map_err(|e| {
            // serde_json's message names a position, never the content.
            Error::new("config", format!("{shown} is not valid JSON: {e}"))
        })?;
        if !json.is_object() {
            return Err(Error::new(
                "config",
                format!("{shown} is not a JSON object"),
            ));
        }
        Ok(Self {
            path,
            json: Some(json),
        })
    }

    /// The credential for registry `host` (`index.docker.io` for Docker Hub).
    pub async fn credential(&self, host: &str) -> Result<Credential, Error> {
        let Some(json) = &self.json else {
            return Ok(Credential::Anonymous);
        };
        let helper_key = if host == DOCKER_HUB {
            "https://index.docker.io/v1/"
        } else {
            host
        };
        let helpers = json.get("credHelpers").and_then(Value::as_object);
        if let Some(name) = helpers.and_then(|h| {
            h.get(host)
                .or_else(|| h.get(helper_key))
                .and_then(Value::as_str)
        }) {
            return run_helper(name, helper_key).await;
        }
        if let Some(store) = json
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let cred = run_helper(store, helper_key).await?;
            if cred != Credential::Anonymous {
                return Ok(cred);
            }
        }
        let Some(auths) = json.get("auths").and_then(Value::as_object) else {
            return Ok(Credential::Anonymous);
        };
        let entry = auths
            .iter()
            .find(|(k, _)| auth_key_host(k) == host)
            .map(|(_, v)| v);
        match entry {
            Some(entry) => self.credential_of_entry(host, entry),
            None => Ok(Credential::Anonymous),
        }
    }

    fn credential_of_entry(&self, host: &str, entry: &Value) -> Result<Credential, Error> {
        let s = |k: &str| {
            entry
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let shown = self
            .path
            .as_ref()
            .map_or("docker config".to_string(), |p| p.display().to_string());
        if let Some(token) = s("identitytoken") {
            return Ok(Credential::IdentityToken(token.to_string()));
        }
        if let Some(auth) = s("auth") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::new(
                        "config",
                        format!("{shown}: the `auth` of {host} is not base64 of user:password"),
                    )
                })?;
            let (username, password) = decoded.split_once(':').ok_or_else(|| {
                Error::new(
                    "config",
                    format!("{shown}: the `auth` of {host} has no ':' between user and password"),
                )
            })?;
            return Ok(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
        match (s("username"), s("password")) {
            (Some(u), Some(p)) => Ok(Credential::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Ok(Credential::Anonymous),
        }
    }
}

/// The host an `auths` key names: `https://index.docker.io/v1/` → `index.docker.io`,
/// `http://host:5000/v2` → `host:5000`.
fn auth_key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_string(),
        _ => k.to_string(),
    }
}

/// Runs `docker-credential-NAME get` with the server URL on stdin.
async fn run_helper(name: &str, server: &str) -> Result<Credential, Error> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Error::new(
            "config",
            format!("credential helper name {name:?} is not a plain name"),
        ));
    }
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::new(
                "config",
                format!(
                    "cannot run credential helper {program} (named in docker config.json): {e}"
                ),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        // A helper that exits without reading is reported through its status below.
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::new(
                "config",
                format!("credential helper {program} did not answer within 30 s"),
            )
        })?
        .map_err(|e| Error::new("config", format!("credential helper {program}: {e}")))?;
    if !out.status.success() {
        // Helpers print "credentials not found in native keychain" for an unknown server.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("credentials not found") {
            return Ok(Credential::Anonymous);
        }
        return Err(Error::new(
            "config",
            format!(
                "credential helper {program} failed with {} for {server}",
                out.status
            ),
        ));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        Error::new(
            "config",
            format!("credential helper {program} did not print a JSON object"),
        )
    })?;
    let username = json.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = json.get("Secret").and_then(Value::as_str).unwrap_or("");
    Ok(match (username, secret) {
        (_, "") => Credential::Anonymous,
        ("<token>", token) => Credential::IdentityToken(token.to_string()),
        (u, p) => Credential::Basic {
            username: u.to_string(),
            password: p.to_string(),
        },
    })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let get = |k: &str| {
                params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope"),
            })
        }
        _ => None,
    }
}

/// `k="v", k2=v2` (quoted values may contain commas and `\"`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_challenge(header: &str, expect: Option<Challenge>) {
        assert_eq!(parse_challenge(header), expect, "{header}");
    }

    #[test]
    fn challenges() {
        check_challenge(r#"Basic realm="basic-realm""#, Some(Challenge::Basic));
        check_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }),
        );
        check_challenge(
            r#"bearer realm="https://ghcr.io/token", scope="repository:a/b:pull,push",service=ghcr.io"#,
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }),
        );
        check_challenge(r#"Bearer service="x""#, None);
        check_challenge("Negotiate abc", None);
    }

    fn cred(config: &str, host: &str) -> Result<Credential, Error> {
        let c = DockerConfig::parse(config.as_bytes(), None)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.credential(host))
    }

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn docker_config_auths() {
        let cfg = r#"{"auths":{
            "127.0.0.1:5001":{"auth":"dXNlcjpwYTpzcw=="},
            "https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="},
            "http://reg.example.com/v2/":{"username":"u2","password":"p2"},
            "tok.example.com":{"identitytoken":"refresh"},
            "bad.example.com":{"auth":"%%%"}}}"#;
        assert_eq!(cred(cfg, "127.0.0.1:5001").unwrap(), basic("user", "pa:ss"));
        assert_eq!(cred(cfg, DOCKER_HUB).unwrap(), basic("hub", "hubpass"));
        assert_eq!(cred(cfg, "reg.example.com").unwrap(), basic("u2", "p2"));
        assert_eq!(
            cred(cfg, "tok.example.com").unwrap(),
            Credential::IdentityToken("refresh".into())
        );
        assert_eq!(cred(cfg, "other.io").unwrap(), Credential::Anonymous);
        let e = cred(cfg, "bad.example.com").unwrap_err();
        assert!(e.message.contains("not base64"), "{}", e.message);
        assert!(!e.message.contains("%%%"));
        assert!(DockerConfig::parse(b"[1]", None).is_err());
        assert!(DockerConfig::parse(b"{", None).is_err());
    }

    #[test]
    fn helpers() {
        // A real helper program on PATH: a shell script answering like docker-credential-*.
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-sigtrailtest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\ncase \"$server\" in\n  helped.io) echo '{\"ServerURL\":\"helped.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}';;\n  tok.io) echo '{\"Username\":\"<token>\",\"Secret\":\"idt\"}';;\n  *) echo 'credentials not found in native keychain'; exit 1;;\nesac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // Only this test changes PATH, and only by prepending a directory.
        std::env::set_var("PATH", path);
        let cfg = r#"{"credHelpers":{"helped.io":"sigtrailtest","missing.io":"sigtrail-no-such-helper"},
                      "credsStore":"sigtrailtest","auths":{"plain.io":{"auth":"YTpi"}}}"#;
        assert_eq!(cred(cfg, "helped.io").unwrap(), basic("hu", "hs"));
        assert_eq!(
            cred(cfg, "tok.io").unwrap(),
            Credential::IdentityToken("idt".into())
        );
        // the store has nothing for plain.io: auths answers
        assert_eq!(cred(cfg, "plain.io").unwrap(), basic("a", "b"));
        let e = cred(cfg, "missing.io").unwrap_err();
        assert!(e
            .message
            .contains("docker-credential-sigtrail-no-such-helper"));
        let e = cred(r#"{"credsStore":"../x"}"#, "a.io").unwrap_err();
        assert!(e.message.contains("not a plain name"));
    }

    #[test]
    fn debug_redacts() {
        let s = format!("{:?}", basic("me", "secret-pass"));
        assert!(s.contains("me") && !s.contains("secret-pass"), "{s}");
        let s = format!("{:?}", Credential::IdentityToken("secret-tok".into()));
        assert!(!s.contains("secret-tok"));
    }
}
