//! A `docker-registry` of the test's own (the Debian package `cargo xtask env up` runs too), on a
//! loopback port it binds itself (port 0, read back from the kernel: [`crate::listen`]) with its
//! own storage, for tests that kill and restart it mid-batch or need a login the shared servers
//! do not have.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::listen::wait_serving;

/// The registry process and its directory (config, storage, htpasswd); killed on drop.
pub struct OwnRegistry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRegistry {
    /// An anonymous registry, started and answering.
    pub fn start() -> OwnRegistry {
        OwnRegistry::launch(None)
    }

    /// A registry with htpasswd basic auth accepting exactly `user`/`password`.
    pub fn with_login(user: &str, password: &str) -> OwnRegistry {
        OwnRegistry::launch(Some((user, password)))
    }

    fn launch(login: Option<(&str, &str)>) -> OwnRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{{PORT}}\n  secret: own-registry\n",
            dir.path().join("storage").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", "-C", "4", user, password])
                .output()
                .expect("htpasswd (apt package apache2-utils, installed by `cargo xtask install`)");
            assert!(out.status.success(), "htpasswd failed: {}", out.status);
            std::fs::write(&htpasswd, out.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: own-registry\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let mut reg = OwnRegistry {
            addr: String::new(),
            dir,
            child: None,
        };
        // Port 0 the first time: the registry binds a port the kernel knows is free. Restarts
        // use the same port (clients hold the address), written into the config once known.
        let port = reg.start_on(&config, 0, Duration::from_secs(60));
        reg.addr = format!("127.0.0.1:{port}");
        std::fs::write(
            reg.dir.path().join("config.yml"),
            config.replace("{PORT}", &port.to_string()),
        )
        .expect("write config");
        reg
    }

    /// Starts `docker-registry serve` with `config` on `port` (0: any) and waits until this very
    /// process listens and answers `/v2/`. If it cannot bind (the port was taken while the
    /// registry was down), it is started again until `timeout`. Returns the port.
    fn start_on(&mut self, config: &str, port: u16, timeout: Duration) -> u16 {
        let path = self.dir.path().join("config.yml");
        std::fs::write(&path, config.replace("{PORT}", &port.to_string())).expect("write config");
        let deadline = Instant::now() + timeout;
        loop {
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry (installed by `cargo xtask install`)");
            let left = deadline.saturating_duration_since(Instant::now());
            let want = (port != 0).then_some(port);
            match wait_serving(&mut child, want, "/v2/", left) {
                Ok((port, _)) => {
                    self.child = Some(child);
                    return port;
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(
                        Instant::now() < deadline,
                        "docker-registry did not start on port {port}: {e}"
                    );
                    // The port is held by someone else for now: poll until it is free.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Where it keeps its data (`docker/registry/v2/...` below).
    pub fn storage(&self) -> std::path::PathBuf {
        self.dir.path().join("storage")
    }

    /// Kills the registry (SIGKILL: no graceful shutdown, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, on the same port and storage, and waits until this process answers.
    pub fn restart(&mut self) {
        self.kill();
        let path = self.dir.path().join("config.yml");
        let config = std::fs::read_to_string(&path).expect("read config");
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        self.start_on(&config, port, Duration::from_secs(60));
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}
