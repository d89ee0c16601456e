//! `cargo xtask env up|down|status`: the local servers the end-to-end tests and the demo use.
//!
//! Three processes on 127.0.0.1 ports each binds itself (port 0; the port is read back from the
//! kernel, `tests/src/listen.rs`, so no port is chosen and released for a server to race for),
//! all state in one directory (configs, storage, logs,
//! pids, `env.sh`, `env.json`):
//! - an anonymous registry (`docker-registry serve`, filesystem storage, deletes enabled)
//! - a registry with htpasswd basic auth, with a generated password
//! - moto through `scripts/moto_server.py` (KMS DIGEST fix, CloudTrail LookupEvents stand-in)
//!
//! The variables of [`Env::contract`] are the interface to the tests; see `tests/src/lib.rs`.

use crate::install::Tools;
use crate::step;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/src/listen.rs"]
mod listen;
use listen::{http_status, wait_serving};

const AUTH_USER: &str = "sigtrail";

/// A running environment.
pub struct Env {
    pub dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl Env {
    /// The environment contract: what `env.sh` exports and `cargo xtask test` sets.
    pub fn contract(&self) -> Vec<(String, String)> {
        self.vars.clone()
    }
}

struct Service {
    name: &'static str,
    /// HTTP status of `GET probe` that means the server is ready.
    probe: &'static str,
    ready_status: u16,
    cmd: Command,
    /// Text in /proc/PID/cmdline identifying our process, so `down` never kills a reused pid.
    marker: String,
}

/// Starts the servers in `dir` (wiping what an earlier run left there) and waits until all
/// three answer. `detach` puts them in their own process group so they outlive the terminal's
/// Ctrl-C; `test` and `demo` keep them in theirs so an interrupted run takes them along.
pub fn up(root: &Path, dir: &Path, tools: &Tools, detach: bool) -> Result<Env> {
    if dir.join("pids").exists() {
        if status(dir)? {
            let json = fs::read_to_string(dir.join("env.json"))?;
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)?;
            // An environment started by an older xtask lacks newer contract variables: restart.
            if map.contains_key("SIGTRAIL_MOTO_ATHENA_TABLES") {
                step(&format!("env: already up in {}", dir.display()));
                let vars = map
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                    .collect();
                return Ok(Env {
                    dir: dir.to_path_buf(),
                    vars,
                });
            }
            step("env: up, but started by an older xtask (no SIGTRAIL_MOTO_ATHENA_TABLES): restarting");
        }
        down(dir)?;
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    for d in [
        "registry",
        "registry-auth",
        "docker",
        "registries.d",
        "logs",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    let dir = fs::canonicalize(dir)?;
    let pass = random_hex(12)?;
    let d = |p: &str| dir.join(p).display().to_string();

    fs::write(
        dir.join("registry.yml"),
        registry_config(0, &d("registry"), None)?,
    )?;
    // Not through run_cmd: that echoes the command line, and this one holds the password.
    let htpasswd = Command::new("htpasswd")
        .args(["-Bbc", "-C", "4"])
        .arg(dir.join("htpasswd"))
        .args([AUTH_USER, &pass])
        .stderr(Stdio::null())
        .status()
        .context("cannot run htpasswd")?;
    if !htpasswd.success() {
        bail!("htpasswd failed with {htpasswd}");
    }
    let auth = registry_config(0, &d("registry-auth"), Some(&d("htpasswd")))?;
    fs::write(dir.join("registry-auth.yml"), auth)?;
    fs::write(
        dir.join("policy-accept.json"),
        "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}\n",
    )?;
    let lookup_events = dir.join("lookup-events.json");
    fs::write(&lookup_events, "{\"Records\":[]}\n")?;
    let kms_calls = dir.join("kms-calls.log");
    fs::write(&kms_calls, "")?;
    let public_keys = dir.join("cloudtrail-public-keys.json");
    fs::write(&public_keys, "{\"PublicKeyList\":[]}\n")?;
    let athena_tables = dir.join("athena-tables.json");
    fs::write(&athena_tables, "{\"tables\":{}}\n")?;

    let scripts = root.join("scripts");
    let mut moto = Command::new(&tools.python);
    moto.arg(scripts.join("moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", "0"])
        .env("SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE", &lookup_events)
        .env("SIGTRAIL_MOTO_KMS_CALLS", &kms_calls)
        .env("SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS", &public_keys)
        .env("SIGTRAIL_MOTO_ATHENA_TABLES", &athena_tables);
    let registry = |cfg: &str| {
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(dir.join(cfg));
        cmd
    };
    let services = [
        Service {
            name: "registry",
            probe: "/v2/",
            ready_status: 200,
            cmd: registry("registry.yml"),
            marker: d("registry.yml"),
        },
        Service {
            name: "registry-auth",
            probe: "/v2/",
            ready_status: 401,
            cmd: registry("registry-auth.yml"),
            marker: d("registry-auth.yml"),
        },
        Service {
            name: "moto",
            probe: "/moto-api/",
            ready_status: 200,
            cmd: moto,
            marker: format!(
                "{} -H 127.0.0.1 -p 0",
                scripts.join("moto_server.py").display()
            ),
        },
    ];

    let mut pids = String::new();
    let mut children = Vec::new();
    for mut s in services {
        let log = fs::File::create(dir.join("logs").join(format!("{}.log", s.name)))?;
        s.cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if detach {
            s.cmd.process_group(0);
        }
        let child = s
            .cmd
            .spawn()
            .with_context(|| format!("cannot start {}", s.name))?;
        pids.push_str(&format!("{} {} {}\n", s.name, child.id(), s.marker));
        // Written after every start, so a failure half-way still lets `down` clean up.
        fs::write(dir.join("pids"), &pids)?;
        children.push((s, child));
    }
    // Each server binds port 0; its port is the one its own process listens on, and it is up
    // once it answers its probe there.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ports = Vec::new();
    for (s, child) in &mut children {
        let left = deadline.saturating_duration_since(Instant::now());
        let port = match wait_serving(child, None, s.probe, left) {
            Ok((port, status)) if status == s.ready_status => port,
            up => {
                let why = match up {
                    Ok((port, status)) => format!("port {port} answers {status}"),
                    Err(e) => e,
                };
                let log = dir.join("logs").join(format!("{}.log", s.name));
                let tail = fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                let _ = down(&dir);
                bail!(
                    "{} did not come up ({why}); end of {}:\n{}",
                    s.name,
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        };
        step(&format!(
            "env: {} on 127.0.0.1:{port} (pid {})",
            s.name,
            child.id()
        ));
        ports.push(port);
    }
    let [p0, p1, pm] = ports[..] else {
        bail!("expected three servers")
    };
    let auth_b64 = base64(format!("{AUTH_USER}:{pass}").as_bytes());
    let docker = serde_json::json!({"auths": {format!("127.0.0.1:{p1}"): {"auth": auth_b64}}});
    fs::write(
        dir.join("docker/config.json"),
        serde_json::to_string_pretty(&docker)? + "\n",
    )?;
    // For skopeo: sigstore attachments on both registries, and a policy that accepts anything
    // (for pushing; verification tests write their own sigstoreSigned policy).
    fs::write(
        dir.join("registries.d/local.yaml"),
        format!(
            "docker:\n  127.0.0.1:{p0}:\n    use-sigstore-attachments: true\n  \
             127.0.0.1:{p1}:\n    use-sigstore-attachments: true\n"
        ),
    )?;

    let vars: Vec<(String, String)> = [
        ("SIGTRAIL_REGISTRY", format!("127.0.0.1:{p0}")),
        ("SIGTRAIL_AUTH_REGISTRY", format!("127.0.0.1:{p1}")),
        ("SIGTRAIL_AUTH_USER", AUTH_USER.to_string()),
        ("SIGTRAIL_AUTH_PASS", pass),
        ("SIGTRAIL_AUTH_DOCKER_CONFIG", d("docker")),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{pm}")),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        // boto3 (the Python scripts) reads this one instead of AWS_REGION
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("SIGTRAIL_SKOPEO", tools.skopeo.display().to_string()),
        ("SIGTRAIL_SKOPEO_REGISTRIES_D", d("registries.d")),
        ("SIGTRAIL_SKOPEO_POLICY_ACCEPT", d("policy-accept.json")),
        ("SIGTRAIL_COSIGN", tools.cosign.display().to_string()),
        (
            "SIGTRAIL_SRS_VERIFY",
            tools.srs_verify.display().to_string(),
        ),
        ("SIGTRAIL_SRS_SIGN", tools.srs_sign.display().to_string()),
        ("SIGTRAIL_PYTHON", tools.python.display().to_string()),
        ("SIGTRAIL_SCRIPTS", scripts.display().to_string()),
        ("SIGTRAIL_ENV_DIR", dir.display().to_string()),
        (
            "SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE",
            lookup_events.display().to_string(),
        ),
        ("SIGTRAIL_MOTO_KMS_CALLS", kms_calls.display().to_string()),
        (
            "SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS",
            public_keys.display().to_string(),
        ),
        (
            "SIGTRAIL_MOTO_ATHENA_TABLES",
            athena_tables.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let mut sh = String::from("# sigtrail local environment, written by `cargo xtask env up`\n");
    for (k, v) in &vars {
        sh.push_str(&format!("export {k}='{}'\n", v.replace('\'', r"'\''")));
    }
    fs::write(dir.join("env.sh"), sh)?;
    let json: serde_json::Map<String, serde_json::Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    fs::write(
        dir.join("env.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    Ok(Env { dir, vars })
}

/// Stops the processes listed in `dir/pids`: SIGTERM, then SIGKILL after 5 s.
pub fn down(dir: &Path) -> Result<()> {
    let Ok(pids) = fs::read_to_string(dir.join("pids")) else {
        step(&format!("env: nothing running in {}", dir.display()));
        return Ok(());
    };
    for line in pids.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(name), Some(pid), Some(marker)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !is_ours(pid, marker) {
            step(&format!("env: {name} (pid {pid}) already gone"));
            continue;
        }
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_ours(pid, marker) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_ours(pid, marker) {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        step(&format!("env: stopped {name} (pid {pid})"));
    }
    fs::remove_file(dir.join("pids"))?;
    let _ = fs::remove_file(dir.join("env.sh"));
    let _ = fs::remove_file(dir.join("env.json"));
    Ok(())
}

/// Prints the state of each server; true when all run and answer.
pub fn status(dir: &Path) -> Result<bool> {
    let Ok(pids) = fs::read_to_string(dir.join("pids")) else {
        println!("not running (no {})", dir.join("pids").display());
        return Ok(false);
    };
    let json = fs::read_to_string(dir.join("env.json")).unwrap_or_default();
    let vars: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let port_of =
        |var: &str| -> Option<u16> { vars.get(var)?.as_str()?.rsplit(':').next()?.parse().ok() };
    let mut all = true;
    for line in pids.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(name), Some(pid), Some(marker)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (var, probe) = match name {
            "registry" => ("SIGTRAIL_REGISTRY", "/v2/"),
            "registry-auth" => ("SIGTRAIL_AUTH_REGISTRY", "/v2/"),
            _ => ("AWS_ENDPOINT_URL", "/moto-api/"),
        };
        let alive = is_ours(pid, marker);
        let port = port_of(var);
        let answer = port.and_then(|p| http_status(p, probe));
        all &= alive && answer.is_some();
        println!(
            "{name:14} pid {pid:>7} {:8} port {} {}",
            if alive { "running" } else { "GONE" },
            port.map_or("?".into(), |p| p.to_string()),
            answer.map_or("not answering".into(), |s| format!("answers {s}")),
        );
    }
    if all {
        println!("env: {}", dir.join("env.sh").display());
    }
    Ok(all)
}

/// True when `pid` is a live (not zombie) process whose command line contains `marker`.
fn is_ours(pid: &str, marker: &str) -> bool {
    let proc = Path::new("/proc").join(pid);
    let Ok(cmdline) = fs::read(proc.join("cmdline")) else {
        return false;
    };
    let stat = fs::read_to_string(proc.join("stat")).unwrap_or_default();
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|s| s.trim_start().starts_with('Z'));
    !zombie
        && String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(marker)
}

fn registry_config(port: u16, storage: &str, htpasswd: Option<&str>) -> Result<String> {
    let secret = random_hex(16)?;
    let auth = htpasswd.map_or(String::new(), |path| {
        format!("auth:\n  htpasswd:\n    realm: sigtrail\n    path: {path}\n")
    });
    Ok(format!(
        "# written by `cargo xtask env up`\n\
         version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
         cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: {secret}\n\
         {auth}"
    ))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(super::base64(input.as_bytes()), want);
        }
    }
}
