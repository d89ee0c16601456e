//! Servers started on port 0: which loopback port a child process listens on, read from the
//! kernel (`/proc/PID/fd` and `/proc/net/tcp`), so no port is ever chosen by binding 0 and
//! releasing it (another server started meanwhile could take it).
//!
//! std only: `xtask` includes this file too (`#[path]`), so the tests and `cargo xtask env up`
//! start their servers the same way.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

/// The ports of the IPv4 TCP sockets in LISTEN state that process `pid` holds (its own file
/// descriptors, so never another process's server).
pub fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: HashSet<String> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            if *state != "0A" || !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until `child` itself listens on a TCP port (`want`, or any when `None`) and returns
/// it. Fails when the child exits first (e.g. the port was taken: bind error) or after
/// `timeout`. Polls every 20 ms: it waits for the kernel's word, never for a fixed time.
pub fn wait_listening(
    child: &mut Child,
    want: Option<u16>,
    timeout: Duration,
) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited before listening ({status})"));
        }
        let ports = listening_ports(child.id());
        let found = match want {
            Some(p) => ports.contains(&p).then_some(p),
            None => ports.first().copied(),
        };
        if let Some(port) = found {
            return Ok(port);
        }
        if Instant::now() > deadline {
            return Err(format!("not listening after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `child` listens (see [`wait_listening`]) and answers `GET path` over HTTP on that
/// port, whatever the status: a real answer, not only an accepted connection. Returns the port
/// and the status.
pub fn wait_serving(
    child: &mut Child,
    want: Option<u16>,
    path: &str,
    timeout: Duration,
) -> Result<(u16, u16), String> {
    let deadline = Instant::now() + timeout;
    let port = wait_listening(child, want, timeout)?;
    loop {
        if let Some(status) = http_status(port, path) {
            // Still ours: the child holds the listening socket that answered.
            if child.try_wait().map_err(|e| e.to_string())?.is_none()
                && listening_ports(child.id()).contains(&port)
            {
                return Ok((port, status));
            }
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("exited before answering on port {port} ({status})"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "port {port}: no HTTP answer to GET {path} after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status code of `GET path` on 127.0.0.1:port (HTTP/1.0), or None when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
