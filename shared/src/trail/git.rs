//! Commits named in payload annotations, looked up in a local git repository (`--git-dir`).

use std::path::Path;

use serde_json::{json, Value};

/// What git knows about one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub exists: bool,
    /// Committer date, RFC 3339.
    pub time: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    /// Why it could not be looked up, when it could not.
    pub error: Option<String>,
}

impl Commit {
    pub fn to_json(&self) -> Value {
        let mut v = json!({"sha": self.sha, "exists": self.exists});
        for (k, val) in [
            ("time", &self.time),
            ("author", &self.author),
            ("subject", &self.subject),
            ("error", &self.error),
        ] {
            if let Some(val) = val {
                v[k] = val.clone().into();
            }
        }
        v
    }
}

/// Whether `sha` looks like a (possibly abbreviated) commit id; anything else never reaches git.
pub fn is_sha(sha: &str) -> bool {
    (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Looks `sha` up in the repository at `dir` with `git show -s`.
pub async fn lookup(dir: &Path, sha: &str) -> Commit {
    let mut commit = Commit {
        sha: sha.to_string(),
        exists: false,
        time: None,
        author: None,
        subject: None,
        error: None,
    };
    if !is_sha(sha) {
        commit.error = Some("not a hexadecimal commit id".into());
        return commit;
    }
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "show",
            "-s",
            "--no-show-signature",
            "--format=%H%x00%cI%x00%an <%ae>%x00%s",
        ])
        .arg(format!("{sha}^{{commit}}"))
        .arg("--")
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match out {
        Err(e) => commit.error = Some(format!("cannot run git: {e}")),
        Ok(out) if !out.status.success() => {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("not a git repository") {
                commit.error = Some(format!("{} is not a git repository", dir.display()));
            }
            // Otherwise: the commit is not in this repository.
        }
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.trim_end_matches('\n').splitn(4, '\0');
            if let Some(full) = parts.next() {
                commit.sha = full.to_string();
            }
            commit.exists = true;
            commit.time = parts.next().map(str::to_string);
            commit.author = parts.next().map(str::to_string);
            commit.subject = parts.next().map(str::to_string);
        }
    }
    commit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_in_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
                .args(args)
                .env("GIT_COMMITTER_DATE", "2025-11-10T11:50:00Z")
                .env("GIT_AUTHOR_DATE", "2025-11-10T11:50:00Z")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "release 1.0"]);
        let head = git(&["rev-parse", "HEAD"]).trim().to_string();
        let c = lookup(dir.path(), &head[..12]).await;
        assert!(c.exists, "{c:?}");
        assert_eq!(c.sha, head);
        assert_eq!(c.time.as_deref(), Some("2025-11-10T11:50:00Z"));
        assert_eq!(c.author.as_deref(), Some("Ada <ada@example.com>"));
        assert_eq!(c.subject.as_deref(), Some("release 1.0"));
        let missing = lookup(dir.path(), &"0".repeat(40)).await;
        assert!(!missing.exists && missing.error.is_none(), "{missing:?}");
        let hostile = lookup(dir.path(), "--output=/tmp/x").await;
        assert!(!hostile.exists && hostile.error.is_some());
        let nowhere = lookup(&dir.path().join("nope"), &head).await;
        assert!(!nowhere.exists);
    }
}
