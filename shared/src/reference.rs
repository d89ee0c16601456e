//! Image references: the Docker reference grammar as cosign (go-containerregistry) reads it.
//!
//! `busybox` is `index.docker.io/library/busybox:latest`; `docker.io` means `index.docker.io`;
//! the first path component is a registry host when it contains `.` or `:` or is `localhost`
//! (go-containerregistry itself does not special-case `localhost`; Docker does, and a reference
//! like `localhost/app` that silently went to Docker Hub would be a trap). A reference has a
//! tag, a digest, or both (`HOST/REPO:TAG@sha256:HEX`: the digest decides, the tag is kept for
//! the record).
//!
//! Stricter than go-containerregistry where it is cheap: repository path components follow
//! Docker's grammar (lowercase alphanumerics joined by `.`, `_`, `__` or dashes), so `..`
//! segments, empty segments, upper case, whitespace and control characters are rejected with a
//! message saying what is wrong; digests must be `sha256:` plus 64 lowercase hex digits.

use std::fmt;

use crate::error::Error;

/// Docker Hub's registry host, as go-containerregistry names it.
pub const DOCKER_HUB: &str = "index.docker.io";
/// Longest reference accepted at all (Docker's own limit on a name is 255).
pub const MAX_REFERENCE_LEN: usize = 1024;
/// Longest repository path (Docker's `NameTotalLengthMax`).
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest tag (Docker's grammar: one word character, then up to 127 more).
pub const MAX_TAG_LEN: usize = 128;

/// The error kind of a reference that does not parse.
pub const BAD_REFERENCE: &str = "bad_reference";

/// A parsed image reference. `registry` and `repository` are canonical (`index.docker.io`,
/// `library/` added for Docker Hub official images).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host with optional port: `index.docker.io`, `127.0.0.1:5000`, `[::1]:5000`
    pub registry: String,
    /// Repository path inside the registry: `library/busybox`, `team/app`
    pub repository: String,
    /// The tag; `latest` when the reference had neither tag nor digest
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference named a digest
    pub digest: Option<String>,
}

fn bad(input: &str, why: impl fmt::Display) -> Error {
    let shown: String = input
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    Error::new(
        BAD_REFERENCE,
        format!("invalid image reference {shown:?}: {why}"),
    )
}

impl ImageRef {
    /// Parses a reference like `busybox`, `ghcr.io/org/app:v1`, `127.0.0.1:5000/app@sha256:...`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.is_empty() {
            return Err(bad(input, "it is empty"));
        }
        if input.len() > MAX_REFERENCE_LEN {
            return Err(bad(
                input,
                format!("longer than {MAX_REFERENCE_LEN} characters"),
            ));
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                input,
                format!("it contains whitespace or a control character ({c:?})"),
            ));
        }
        if input.contains("://") {
            return Err(bad(
                input,
                "a reference has no scheme: drop the `https://` part",
            ));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(input, d)?)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; before it, it is a registry port.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&name_tag[..i], Some(parse_tag(input, &name_tag[i + 1..])?))
            }
            None => (name_tag, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (parse_host(input, host)?, rest)
            }
            _ => (DOCKER_HUB.to_string(), name),
        };
        if repository.is_empty() {
            return Err(bad(input, "the repository name is empty"));
        }
        // Checked as stored: `library/` counts towards the length, so what is printed parses.
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        check_repository(input, &repository)?;
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Parses `input` as a repository (`HOST/REPO`, no tag, no digest), as `--all` reads it.
    pub fn parse_repository(input: &str) -> Result<Self, Error> {
        let parsed = Self::parse(input)?;
        if parsed.digest.is_some() || parsed.tag.as_deref() != Some("latest") || {
            let tail = input.rsplit('/').next().unwrap_or(input);
            tail.contains(':')
        } {
            return Err(bad(
                input,
                "a repository has no tag or digest (give HOST/REPOSITORY)",
            ));
        }
        Ok(ImageRef {
            tag: None,
            ..parsed
        })
    }

    /// `HOST/REPOSITORY`, the name without tag or digest (cosign's `docker-reference`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to put after `/manifests/`: the digest when there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository at `digest` (no tag): `HOST/REPO@sha256:...`.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The same repository at `tag`.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageRef {
    /// `HOST/REPO[:TAG][@DIGEST]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

/// Checks a registry host and a repository given apart (record fields, not a reference string)
/// by the rules a reference follows: no whitespace or control characters, a valid host and
/// port, a lowercase repository of valid path components (no `.` or `..` segment).
pub fn check_name(registry: &str, repository: &str) -> Result<(), Error> {
    let input = format!("{registry}/{repository}");
    if input.len() > MAX_REFERENCE_LEN {
        return Err(bad(
            &input,
            format!("longer than {MAX_REFERENCE_LEN} characters"),
        ));
    }
    if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            &input,
            format!("it contains whitespace or a control character ({c:?})"),
        ));
    }
    if registry.is_empty() || registry.contains('/') || registry.contains('@') {
        return Err(bad(
            &input,
            format!("registry {registry:?} is not a host[:port]"),
        ));
    }
    parse_host(&input, registry)?;
    check_repository(&input, repository)
}

/// Checks a digest string: `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), Error> {
    parse_digest(digest, digest).map(|_| ())
}

fn parse_digest(input: &str, d: &str) -> Result<String, Error> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(bad(input, "a digest is `sha256:` and 64 hex digits"));
    };
    if alg != "sha256" {
        return Err(bad(
            input,
            format!("digest algorithm {alg:?} is not supported (only sha256)"),
        ));
    }
    if hex.len() != 64 {
        return Err(bad(
            input,
            format!(
                "a sha256 digest has 64 hex digits, this one has {}",
                hex.len()
            ),
        ));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(input, "a digest is lowercase hex (0-9, a-f)"));
    }
    Ok(d.to_string())
}

fn parse_tag(input: &str, tag: &str) -> Result<String, Error> {
    if tag.is_empty() {
        return Err(bad(input, "the tag after ':' is empty"));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(bad(
            input,
            format!("a tag has at most {MAX_TAG_LEN} characters"),
        ));
    }
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    if !word(bytes[0]) {
        return Err(bad(input, "a tag starts with a letter, digit or '_'"));
    }
    if !bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-') {
        return Err(bad(
            input,
            "a tag has only letters, digits, '_', '.' and '-'",
        ));
    }
    Ok(tag.to_string())
}

/// `host[:port]`, `[ipv6][:port]`; `docker.io` becomes `index.docker.io`.
fn parse_host(input: &str, host: &str) -> Result<String, Error> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(bad(input, "an IPv6 registry address needs a closing ']'"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(input, format!("{addr:?} is not an IPv6 address")));
        }
        match after {
            "" => (None, None),
            p if p.starts_with(':') => (None, Some(&p[1..])),
            _ => return Err(bad(input, "unexpected text after the IPv6 address")),
        }
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !ok {
            return Err(bad(
                input,
                format!("registry port {port:?} is not a port number"),
            ));
        }
    }
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(bad(
                input,
                format!("registry host {name:?} is not a valid host name"),
            ));
        }
        if name == "docker.io" && port.is_none() {
            return Ok(DOCKER_HUB.to_string());
        }
    }
    Ok(host.to_string())
}

fn check_repository(input: &str, repo: &str) -> Result<(), Error> {
    if repo.is_empty() {
        return Err(bad(input, "the repository name is empty"));
    }
    if repo.len() > MAX_REPOSITORY_LEN {
        return Err(bad(
            input,
            format!(
                "a repository name has at most {MAX_REPOSITORY_LEN} characters; {repo:.20}... has \
                 {}{}",
                repo.len(),
                if repo.starts_with("library/") {
                    " (Docker Hub's library/ counts)"
                } else {
                    ""
                }
            ),
        ));
    }
    if repo.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad(input, "a repository name must be lowercase"));
    }
    for component in repo.split('/') {
        if component.is_empty() {
            return Err(bad(input, "the repository has an empty path segment"));
        }
        if component == "." || component == ".." {
            return Err(bad(input, "the repository has a '.' or '..' path segment"));
        }
        check_component(input, component)?;
    }
    Ok(())
}

/// Docker's path component: `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`.
fn check_component(input: &str, c: &str) -> Result<(), Error> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if !b
        .iter()
        .all(|&x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
    {
        return Err(bad(
            input,
            "a repository has only lowercase letters, digits, '/', '.', '_' and '-'",
        ));
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(bad(
            input,
            format!("repository segment {c:?} must start and end with a letter or digit"),
        ));
    }
    // Separators between alphanumeric runs: '.', '_', '__', or any number of '-'.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err(bad(
                input,
                format!("repository segment {c:?} has the separator {sep:?} (use '.', '_', '__' or '-')"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expect` is `registry|repository|tag|digest` (empty for none) or `ERR: <text in message>`.
    fn check(input: &str, expect: &str) {
        let got = match ImageRef::parse(input) {
            Ok(r) => format!(
                "{}|{}|{}|{}",
                r.registry,
                r.repository,
                r.tag.as_deref().unwrap_or(""),
                r.digest.as_deref().unwrap_or("")
            ),
            Err(e) => {
                assert_eq!(e.kind, BAD_REFERENCE);
                let want = expect
                    .strip_prefix("ERR: ")
                    .unwrap_or("<no error expected>");
                assert!(
                    e.message.contains(want),
                    "{input:?}: error {:?} does not contain {want:?}",
                    e.message
                );
                return;
            }
        };
        assert_eq!(got, expect, "{input:?}");
    }

    const D: &str = "sha256:5e185a19bc244b76ceadfe4be0867dbb36f79580a3d171b167cefcee692d11e9";

    #[test]
    fn parses_like_cosign() {
        check("busybox", "index.docker.io|library/busybox|latest|");
        check("busybox:1.36", "index.docker.io|library/busybox|1.36|");
        check(
            "docker.io/busybox",
            "index.docker.io|library/busybox|latest|",
        );
        check(
            "docker.io/library/busybox",
            "index.docker.io|library/busybox|latest|",
        );
        check("index.docker.io/org/app:v1", "index.docker.io|org/app|v1|");
        check("org/app", "index.docker.io|org/app|latest|");
        check("ghcr.io/org/team/app:v1.0", "ghcr.io|org/team/app|v1.0|");
        check("127.0.0.1:5000/app", "127.0.0.1:5000|app|latest|");
        check("127.0.0.1:5000/app:v1", "127.0.0.1:5000|app|v1|");
        check("localhost/app", "localhost|app|latest|");
        check("localhost:5000/a/b:t", "localhost:5000|a/b|t|");
        check("[::1]:5000/app:x", "[::1]:5000|app|x|");
        check("[::1]/app", "[::1]|app|latest|");
        check("docker.io:5000/app", "docker.io:5000|app|latest|");
        check(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/sample-app-1:v1.0",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com|sample-app-1|v1.0|",
        );
        check(
            &format!("busybox@{D}"),
            &format!("index.docker.io|library/busybox||{D}"),
        );
        check(
            &format!("127.0.0.1:5000/app:v1@{D}"),
            &format!("127.0.0.1:5000|app|v1|{D}"),
        );
        check("a.b/x__y.z-w---v_u:_T.a-g", "a.b|x__y.z-w---v_u|_T.a-g|");
        check(
            "REGISTRY.Example.com/app",
            "REGISTRY.Example.com|app|latest|",
        );
    }

    #[test]
    fn rejects_bad_references() {
        check("", "ERR: empty");
        check("Busybox", "ERR: lowercase");
        check("ghcr.io/Org/app", "ERR: lowercase");
        check("ghcr.io/org//app", "ERR: empty path segment");
        check("ghcr.io/org/../app", "ERR: '..' path segment");
        check("ghcr.io/./app", "ERR: '..' path segment");
        check("ghcr.io/app/", "ERR: empty path segment");
        check("busy box", "ERR: whitespace");
        check(" busybox", "ERR: whitespace");
        check("busybox\n", "ERR: whitespace");
        check("busy\u{7}box", "ERR: control character");
        check("https://ghcr.io/app", "ERR: scheme");
        check("busybox:", "ERR: tag after ':' is empty");
        check("busybox:-x", "ERR: a tag starts with");
        check("busybox:a/b", "ERR: not a port number");
        check(&format!("busybox:{}", "a".repeat(129)), "ERR: at most 128");
        check(&format!("ghcr.io/{}", "a".repeat(256)), "ERR: at most 255");
        // Docker Hub short names: `library/` counts (found by `cargo xtask fuzz reference`: a
        // 250-character name parsed, but its printed form did not).
        check(&"a".repeat(248), "ERR: library/ counts");
        check(":v1", "ERR: the repository name is empty");
        check(
            &"a".repeat(247),
            &format!("index.docker.io|library/{}|latest|", "a".repeat(247)),
        );
        check(&"a".repeat(2000), "ERR: longer than 1024");
        check("busybox@sha256:abc", "ERR: 64 hex digits, this one has 3");
        check(
            &format!("busybox@{}", D.to_uppercase()),
            "ERR: not supported",
        );
        check(
            &format!("busybox@sha256:{}", "A".repeat(64)),
            "ERR: lowercase hex",
        );
        check(
            &format!("busybox@sha512:{}", "a".repeat(128)),
            "ERR: \"sha512\" is not supported",
        );
        check("busybox@latest", "ERR: a digest is `sha256:`");
        check("ghcr.io:99999/app", "ERR: not a port number");
        check("ghcr.io:/app", "ERR: not a port number");
        check("bad_host.io/app", "ERR: not a valid host name");
        check("-x.io/app", "ERR: not a valid host name");
        check("[zz]:5000/app", "ERR: not an IPv6 address");
        check("ghcr.io/-app", "ERR: must start and end");
        check("ghcr.io/a..b", "ERR: separator \"..\"");
        check("ghcr.io/a_-b", "ERR: separator \"_-\"");
        check("ghcr.io/a___b", "ERR: separator \"___\"");
        check("ghcr.io/a%b", "ERR: only lowercase letters");
    }

    #[test]
    fn displays_and_rewrites() {
        let r = ImageRef::parse("busybox:1.36").unwrap();
        assert_eq!(r.to_string(), "index.docker.io/library/busybox:1.36");
        assert_eq!(r.name(), "index.docker.io/library/busybox");
        assert_eq!(r.reference(), "1.36");
        let d = r.with_digest(D);
        assert_eq!(
            d.to_string(),
            format!("index.docker.io/library/busybox@{D}")
        );
        assert_eq!(d.reference(), D);
        assert_eq!(ImageRef::parse(&d.to_string()).unwrap(), d);
        assert!(check_digest(D).is_ok());
        assert!(check_digest("sha256:xyz").is_err());
    }

    #[test]
    fn repositories_for_all() {
        let r = ImageRef::parse_repository("127.0.0.1:5000/team/app").unwrap();
        assert_eq!((r.tag, r.digest), (None, None));
        assert_eq!(r.repository, "team/app");
        for bad in ["127.0.0.1:5000/app:v1", "app:latest", &format!("app@{D}")] {
            let e = ImageRef::parse_repository(bad).unwrap_err();
            assert!(
                e.message.contains("no tag or digest"),
                "{bad}: {}",
                e.message
            );
        }
    }
}
