//! Shared bits of the sigstore-rs harness binaries: argument parsing and the registry client.
//!
//! The harness is an independent implementation of cosign key-based signing and verification
//! (sigstore-rs 0.15, no Rekor, no Fulcio) that the sigtrail tests compare the tools against.

use sigstore::cosign::{Client, ClientBuilder};
use sigstore::registry::{Auth, ClientConfig, ClientProtocol};

/// Command-line options common to both binaries: `--http`, `--user U --pass P`.
pub struct Common {
    /// Positional arguments, in order, with the options removed.
    pub positional: Vec<String>,
    pub http: bool,
    pub auth: Auth,
    /// `--each FILE` (srs-verify only): verify every image listed in FILE, one per line.
    pub each: Option<String>,
}

impl Common {
    pub fn parse(usage: &str) -> Common {
        let mut positional = Vec::new();
        let (mut http, mut user, mut pass, mut each) = (false, None, None, None);
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .unwrap_or_else(|| die(&format!("{name} needs a value\n{usage}")))
            };
            match arg.as_str() {
                "--http" => http = true,
                "--user" => user = Some(value("--user")),
                "--pass" => pass = Some(value("--pass")),
                "--each" => each = Some(value("--each")),
                "-h" | "--help" => {
                    println!("{usage}");
                    std::process::exit(0)
                }
                s if s.starts_with("--") => die(&format!("unknown option {s}\n{usage}")),
                _ => positional.push(arg),
            }
        }
        let auth = match (user, pass) {
            (Some(u), Some(p)) => Auth::Basic(u, p),
            (None, None) => Auth::Anonymous,
            _ => die("--user and --pass go together"),
        };
        Common {
            positional,
            http,
            auth,
            each,
        }
    }

    pub fn client(&self) -> anyhow::Result<Client> {
        let cfg = ClientConfig {
            protocol: if self.http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..Default::default()
        };
        Ok(ClientBuilder::default()
            .with_oci_client_config(cfg)
            .build()?)
    }
}

/// Usage errors exit with 2, like the sigtrail tools.
pub fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}
