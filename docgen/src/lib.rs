//! The release bundle and the install tree of the six tools: binaries, man pages generated from
//! their clap definitions (`clap_mangen`; one page per tool and `sigtrail(7)` for the wire
//! contract and the record fields), bash, zsh and fish completions (`clap_complete`), README,
//! LICENSE and `SHA256SUMS`.
//!
//! One layout serves both (`cargo xtask dist` tars it, `cargo xtask install-tools` copies its
//! `bin/` and `share/` under a prefix):
//!
//! ```text
//! sigtrail-VERSION-TARGET/
//!   bin/{digest-of,payload-for,kms-sign,attach-sig,check-sig,trail-for}
//!   share/man/man1/TOOL.1  share/man/man7/sigtrail.7
//!   share/bash-completion/completions/TOOL
//!   share/zsh/site-functions/_TOOL
//!   share/fish/vendor_completions.d/TOOL.fish
//!   README.md  LICENSE  SHA256SUMS
//! ```
//!
//! The binaries lose their debug info on the way in (symbols stay).

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The six tools, in pipeline order.
pub const TOOLS: [&str; 6] = [
    "digest-of",
    "payload-for",
    "kms-sign",
    "attach-sig",
    "check-sig",
    "trail-for",
];

/// The version of the tools (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const README: &str = include_str!("../../README.md");
const RECORD_RS: &str = include_str!("../../shared/src/record.rs");

/// The clap definition of `tool`, as its `--help` shows it.
pub fn command(tool: &str) -> clap::Command {
    match tool {
        "digest-of" => digest_of::Args::command(),
        "payload-for" => payload_for::Args::command(),
        "kms-sign" => kms_sign::Args::command(),
        "attach-sig" => attach_sig::Args::command(),
        "check-sig" => check_sig::Args::command(),
        "trail-for" => trail_for::Args::command(),
        _ => panic!("not a sigtrail tool: {tool}"),
    }
}

/// Writes the bundle tree for the tools built in `bins` into `dir` (created; must not exist).
pub fn stage(bins: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        bail!("{} exists already", dir.display());
    }
    let bin = dir.join("bin");
    let man1 = dir.join("share/man/man1");
    let man7 = dir.join("share/man/man7");
    let bash = dir.join("share/bash-completion/completions");
    let zsh = dir.join("share/zsh/site-functions");
    let fish = dir.join("share/fish/vendor_completions.d");
    for d in [&bin, &man1, &man7, &bash, &zsh, &fish] {
        fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    for tool in TOOLS {
        copy_stripped(&bins.join(tool), &bin.join(tool))?;
        let mut page = Vec::new();
        clap_mangen::Man::new(command(tool))
            .manual("sigtrail manual")
            .render(&mut page)?;
        page.extend_from_slice(see_also(tool).as_bytes());
        fs::write(man1.join(format!("{tool}.1")), page)?;
        for (shell, path) in [
            (Shell::Bash, bash.join(tool)),
            (Shell::Zsh, zsh.join(format!("_{tool}"))),
            (Shell::Fish, fish.join(format!("{tool}.fish"))),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(tool), tool, &mut out);
            fs::write(path, out)?;
        }
    }
    fs::write(man7.join("sigtrail.7"), sigtrail_7()?)?;
    fs::write(dir.join("README.md"), README)?;
    fs::write(dir.join("LICENSE"), include_str!("../../LICENSE"))?;
    let sums = sha256sums(dir)?;
    fs::write(dir.join("SHA256SUMS"), sums)?;
    Ok(())
}

/// `sigtrail-VERSION-TARGET.tar.gz` in `out` (with `SHA256SUMS` beside it naming the tarball),
/// from the tools built in `bins`. Returns the tarball's path.
pub fn bundle(bins: &Path, out: &Path, target: &str) -> Result<PathBuf> {
    let name = format!("sigtrail-{VERSION}-{target}");
    fs::create_dir_all(out)?;
    let dir = out.join(&name);
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    stage(bins, &dir)?;
    let tarball = out.join(format!("{name}.tar.gz"));
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(out)
        .arg(&name)
        .status()
        .context("cannot run tar")?;
    if !status.success() {
        bail!("tar failed with {status}");
    }
    let sum = hex::encode(Sha256::digest(fs::read(&tarball)?));
    fs::write(out.join("SHA256SUMS"), format!("{sum}  {name}.tar.gz\n"))?;
    fs::remove_dir_all(&dir)?;
    Ok(tarball)
}

/// Installs the tools built in `bins` under `prefix`: `bin/`, man pages under `share/man`,
/// completions where bash-completion, zsh and fish look under a prefix.
pub fn install(bins: &Path, prefix: &Path) -> Result<()> {
    let tmp = prefix.join(format!(".sigtrail-install-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(prefix)?;
    stage(bins, &tmp)?;
    let result = copy_tree(&tmp.join("bin"), &prefix.join("bin"))
        .and_then(|()| copy_tree(&tmp.join("share"), &prefix.join("share")));
    fs::remove_dir_all(&tmp)?;
    result
}

/// Copies a built tool without its debug info (`objcopy --strip-debug`; symbols stay, so a
/// backtrace still names functions): a dev build is 500 MB, 26 MB without. A plain copy when
/// objcopy (binutils) is missing.
fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    if !from.is_file() {
        bail!("{} is not built", from.display());
    }
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(from)
        .arg(to)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            // Replace, not overwrite in place: a running tool keeps its old file.
            let _ = fs::remove_file(&target);
            fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot install {}", target.display()))?;
        }
    }
    Ok(())
}

/// `sha256sum`-format lines for every file under `dir`, sorted by path.
fn sha256sums(dir: &Path) -> Result<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root)?.display().to_string();
                out.push((rel, hex::encode(Sha256::digest(fs::read(&path)?))));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    Ok(files
        .into_iter()
        .map(|(path, sum)| format!("{sum}  {path}\n"))
        .collect())
}

/// The host target triple (`rustc -vV`), for the bundle's name.
pub fn host_target() -> Result<String> {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// Text for roff: backslashes escaped, a leading `.` or `'` made literal, Markdown code marks
/// dropped.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('`', "");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn see_also(tool: &str) -> String {
    let others: Vec<String> = TOOLS
        .iter()
        .filter(|t| **t != tool)
        .map(|t| format!(".BR {t} (1),"))
        .collect();
    let this = if tool == "sigtrail" {
        ""
    } else {
        ".BR sigtrail (7),\n"
    };
    format!(
        ".SH \"SEE ALSO\"\n{this}{}\n",
        others.join("\n").trim_end_matches(',')
    )
}

/// `sigtrail(7)`: the wire contract (the README's list, "What every tool shares") and the
/// record fields (the wire-format table of `shared/src/record.rs`), so the page says exactly
/// what those two places say.
pub fn sigtrail_7() -> Result<String> {
    let contract: Vec<String> = {
        let start = README
            .find("### What every tool shares (the wire contract)")
            .context("README has no wire-contract section")?;
        let section = &README[start..];
        let section = section[3..]
            .find("\n#")
            .map_or(section, |end| &section[..end + 3]);
        let mut items: Vec<String> = Vec::new();
        for line in section.lines().skip(1) {
            if let Some(item) = line.strip_prefix("- ") {
                items.push(item.to_string());
            } else if let (Some(last), true) = (items.last_mut(), line.starts_with("  ")) {
                last.push(' ');
                last.push_str(line.trim());
            }
        }
        items
    };
    let fields: Vec<[String; 3]> = RECORD_RS
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter(|l| !l.starts_with("field ") && !l.starts_with("---"))
        .filter_map(|l| {
            let c: Vec<&str> = l.trim_end_matches(" |").splitn(3, " | ").collect();
            (c.len() == 3).then(|| [c[0], c[1], c[2]].map(str::to_string))
        })
        .collect();
    if contract.len() < 5 || fields.len() < 10 {
        bail!("the wire contract or the field table was not found where sigtrail(7) reads them");
    }
    let mut page = format!(
        ".TH SIGTRAIL 7 \"\" \"sigtrail {VERSION}\" \"sigtrail manual\"\n\
         .nh\n\
         .SH NAME\nsigtrail \\- the record stream the six sigtrail tools share\n\
         .SH DESCRIPTION\n\
         sigtrail signs and verifies container images in private registries with AWS KMS keys, \
         cosign-compatible, without the public Rekor log, and rebuilds the audit trail from \
         CloudTrail, ECR and git. Six filters read and write newline-delimited JSON, one record \
         per image:\n\
         .BR digest-of (1),\n.BR payload-for (1),\n.BR kms-sign (1),\n.BR attach-sig (1),\n\
         .BR check-sig (1),\n.BR trail-for (1).\n\
         .SH \"WIRE CONTRACT\"\n"
    );
    for item in &contract {
        page.push_str(&format!(".IP \\(bu 2\n{}\n", roff(item)));
    }
    page.push_str(
        ".SH \"RECORD FIELDS\"\nEach field is set by one tool and means the same in every tool; \
         a tool passes every field it does not own through untouched, in order.\n",
    );
    for [field, by, meaning] in &fields {
        page.push_str(&format!(
            ".TP\n.B {}\n({}) {}\n",
            roff(field),
            roff(by),
            roff(meaning)
        ));
    }
    page.push_str(
        ".SH EXAMPLES\n.nf\n\
         digest-of REGISTRY/app:v1.0 | payload-for | kms-sign --key awskms:///alias/cosign | attach-sig\n\
         digest-of --all REGISTRY/app | check-sig --key awskms:///alias/cosign\n\
         .fi\n",
    );
    page.push_str(&see_also("sigtrail"));
    Ok(page)
}
