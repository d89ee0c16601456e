//! A `docker-registry` of the test's own (the Debian package `cargo xtask env up` runs too), on a
//! free loopback port with its own storage, for tests that kill and restart it mid-batch or need
//! a login the shared servers do not have.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: own-registry\n",
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
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let mut reg = OwnRegistry {
            addr: format!("127.0.0.1:{port}"),
            dir,
            child: None,
        };
        reg.restart();
        reg
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

    /// Starts it (again, on the same port and storage) and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry (installed by `cargo xtask install`)");
        self.child = Some(child);
        for _ in 0..400 {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start on {}", self.addr);
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}
