//! `cargo xtask install`: the machine-level tools the tests need, installed once per machine.
//!
//! Everything that is not an apt package lives in the cache directory (`$SIGTRAIL_CACHE`, default
//! `~/.cache/sigtrail`) so a fresh clone reuses it. Each part checks a version or a marker first
//! and does nothing when it is already in place, so a second run takes about a second.
//!
//! Cache layout:
//! - `bin/skopeo`: wrapper running Debian trixie's skopeo 1.18 through trixie's own glibc
//!   loader (bookworm's skopeo 1.9.3 has sigstore patched out); `skopeo-1.18/` is the extracted
//!   root, `apt-trixie/` the private apt config used to fetch it (system apt is untouched)
//! - `bin/cosign`: wrapper running Debian sid's cosign 3.1.1 through sid's own glibc loader, the
//!   interop anchor; `cosign-3.1/` the extracted root (with `sigtrail-version`), `apt-sid/` its
//!   private apt config
//! - `venv/`: Python venv with `scripts/requirements.txt` (moto, boto3, cryptography, pynacl,
//!   awscli, duckdb)
//! - `bin/srs-verify`, `bin/srs-sign`: the sigstore-rs harness, built from
//!   `scripts/interop/sigstore-rs-harness` with its own target dir `srs-target/`

use crate::{output_of, run_cmd, step};
use anyhow::{bail, Context, Result};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Debian bookworm packages: the registry, htpasswd, HTTP tools, Python's venv, and the shared
/// libraries trixie's skopeo loads from the system (gpgme, sqlite).
const APT_PACKAGES: &[&str] = &[
    "docker-registry",
    "apache2-utils",
    "curl",
    "jq",
    "ca-certificates",
    "python3",
    "python3-venv",
    "libgpgme11",
    "libsqlite3-0",
    // trail-for's timeline test renders the page in headless Chromium
    "chromium",
    // the dist test renders each man page of the bundle with `man -l`
    "man-db",
    "groff-base",
];

const SKOPEO_VERSION: &str = "1.18.";
/// The cosign the interop tests are written against (Debian sid's package).
const COSIGN_VERSION: &str = "3.1.1";
const HARNESS: &str = "scripts/interop/sigstore-rs-harness";

/// Paths of the installed tools.
pub struct Tools {
    pub skopeo: PathBuf,
    pub cosign: PathBuf,
    pub python: PathBuf,
    pub srs_verify: PathBuf,
    pub srs_sign: PathBuf,
}

impl Tools {
    fn in_cache(cache: &Path) -> Tools {
        Tools {
            skopeo: cache.join("bin/skopeo"),
            cosign: cache.join("bin/cosign"),
            python: cache.join("venv/bin/python"),
            srs_verify: cache.join("bin/srs-verify"),
            srs_sign: cache.join("bin/srs-sign"),
        }
    }

    /// The tools of an earlier `install`, or an error saying to run it.
    pub fn find() -> Result<Tools> {
        let tools = Tools::in_cache(&cache_dir()?);
        for p in [
            &tools.skopeo,
            &tools.cosign,
            &tools.python,
            &tools.srs_verify,
            &tools.srs_sign,
        ] {
            if !p.exists() {
                bail!(
                    "{} is missing: run `cargo xtask install` first",
                    p.display()
                );
            }
        }
        Ok(tools)
    }
}

pub fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("SIGTRAIL_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME").context("neither SIGTRAIL_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache/sigtrail"))
}

pub fn install(root: &Path) -> Result<Tools> {
    let start = Instant::now();
    let cache = cache_dir()?;
    step(&format!("install: cache {}", cache.display()));
    fs::create_dir_all(cache.join("bin"))?;
    apt_packages()?;
    skopeo(&cache)?;
    cosign(&cache)?;
    venv(root, &cache)?;
    harness(root, &cache)?;
    step(&format!(
        "install: done in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    Ok(Tools::in_cache(&cache))
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let status = output_of(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]));
            status.as_deref() != Some("install ok installed")
        })
        .collect();
    if missing.is_empty() {
        step("install: apt packages present");
        return Ok(());
    }
    step(&format!(
        "install: apt packages missing: {}",
        missing.join(" ")
    ));
    run_cmd(as_root("apt-get").args(["update", "-qq"]))?;
    run_cmd(
        as_root("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// `sudo PROGRAM` unless we are root already.
fn as_root(program: &str) -> Command {
    let uid = output_of(Command::new("id").arg("-u")).unwrap_or_default();
    if uid.trim() == "0" {
        Command::new(program)
    } else {
        let mut cmd = Command::new("sudo");
        cmd.args(["-n", program]);
        cmd
    }
}

fn skopeo(cache: &Path) -> Result<()> {
    let wrapper = cache.join("bin/skopeo");
    if let Some(v) = output_of(Command::new(&wrapper).arg("--version")) {
        if v.contains(&format!("version {SKOPEO_VERSION}")) {
            step(&format!("install: {} present", v.trim()));
            return Ok(());
        }
    }
    step("install: skopeo 1.18 from Debian trixie (private apt config, system apt untouched)");
    let root = cache.join("skopeo-1.18");
    private_debs(
        &cache.join("apt-trixie"),
        "trixie",
        &["skopeo/trixie", "libc6/trixie"],
        &root,
    )?;
    let script = loader_wrapper(
        "# skopeo 1.18 from Debian trixie (sigstore enabled; bookworm's 1.9.3 has it patched out),\n\
         # run through trixie's glibc loader so nothing on the system changes.\n",
        &root,
        "usr/bin/skopeo",
    );
    write_executable(&wrapper, &script)?;
    let v = output_of(Command::new(&wrapper).arg("--version"))
        .with_context(|| format!("{} --version fails after install", wrapper.display()))?;
    step(&format!("install: {}", v.trim()));
    Ok(())
}

/// cosign 3.1.1 from Debian sid, the anchor of the interop tests: `bin/cosign` runs it through
/// sid's own glibc loader. Debian builds it without a version stamp (`cosign version` says
/// `devel`), so the package version is kept in `cosign-3.1/sigtrail-version`.
fn cosign(cache: &Path) -> Result<()> {
    let wrapper = cache.join("bin/cosign");
    let root = cache.join("cosign-3.1");
    let marker = root.join("sigtrail-version");
    let installed = fs::read_to_string(&marker).ok();
    let runs = output_of(Command::new(&wrapper).arg("version")).is_some();
    if let (true, Some(v)) = (runs, installed.as_deref()) {
        if v.starts_with(&format!("cosign {COSIGN_VERSION}")) {
            step(&format!("install: {} present", v.trim()));
            return Ok(());
        }
    }
    step("install: cosign 3.1.1 from Debian sid (private apt config, system apt untouched)");
    private_debs(
        &cache.join("apt-sid"),
        "sid",
        &["cosign/sid", "libc6/sid"],
        &root,
    )?;
    let deb_version = deb_version(&cache.join("apt-sid/debs"), "cosign_")?;
    if !deb_version.starts_with(COSIGN_VERSION) {
        step(&format!(
            "install: WARNING: Debian sid now ships cosign {deb_version}, not {COSIGN_VERSION}: \
             the interop tests were written against {COSIGN_VERSION}"
        ));
    }
    let script = loader_wrapper(
        "# cosign from Debian sid (the interop anchor), run through sid's glibc loader so nothing\n\
         # on the system changes.\n",
        &root,
        "usr/bin/cosign",
    );
    write_executable(&wrapper, &script)?;
    output_of(Command::new(&wrapper).arg("version"))
        .with_context(|| format!("{} version fails after install", wrapper.display()))?;
    let text = format!("cosign {deb_version}\n");
    fs::write(&marker, &text)?;
    step(&format!("install: {}", text.trim()));
    Ok(())
}

/// The `Version` of the one `.deb` in `debs` whose name starts with `prefix`.
fn deb_version(debs: &Path, prefix: &str) -> Result<String> {
    for deb in fs::read_dir(debs)? {
        let path = deb?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix))
        {
            let v = output_of(
                Command::new("dpkg-deb")
                    .args(["-f"])
                    .arg(&path)
                    .arg("Version"),
            )
            .with_context(|| format!("dpkg-deb -f {} Version fails", path.display()))?;
            return Ok(v.trim().to_string());
        }
    }
    bail!("no {prefix}*.deb in {}", debs.display())
}

/// Downloads `packages` (`name/suite`) from Debian `suite` with a private apt config in `apt`
/// (its own sources, lists and cache; system apt is untouched) and extracts them all into
/// `root`, replacing what was there. The extraction goes to a fresh directory first and is moved
/// in place, so a half-done run never looks done.
fn private_debs(apt: &Path, suite: &str, packages: &[&str], root: &Path) -> Result<()> {
    for d in [
        "lists/partial",
        "cache/archives/partial",
        "etc/preferences.d",
        "debs",
    ] {
        fs::create_dir_all(apt.join(d))?;
    }
    fs::write(
        apt.join("etc/sources.list"),
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian {suite} main\n"
        ),
    )?;
    let a = apt.display();
    fs::write(
        apt.join("apt.conf"),
        format!(
            "Dir::Etc::sourcelist \"{a}/etc/sources.list\";\n\
             Dir::Etc::sourceparts \"-\";\n\
             Dir::Etc::preferencesparts \"{a}/etc/preferences.d\";\n\
             Dir::State::Lists \"{a}/lists\";\n\
             Dir::Cache \"{a}/cache\";\n\
             APT::Sandbox::User \"root\";\n"
        ),
    )?;
    let conf = apt.join("apt.conf");
    run_cmd(
        Command::new("apt-get")
            .args(["update", "-qq"])
            .env("APT_CONFIG", &conf),
    )?;
    let debs = apt.join("debs");
    for old in fs::read_dir(&debs)? {
        fs::remove_file(old?.path())?;
    }
    run_cmd(
        Command::new("apt-get")
            .args(["download", "-qq"])
            .args(packages)
            .env("APT_CONFIG", &conf)
            .current_dir(&debs),
    )?;
    let mut tmp = root.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_dir_all(&tmp);
    for deb in fs::read_dir(&debs)? {
        run_cmd(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb?.path())
                .arg(&tmp),
        )?;
    }
    let _ = fs::remove_dir_all(root);
    fs::rename(&tmp, root)?;
    Ok(())
}

/// A `/bin/sh` wrapper running `root/binary` through `root`'s own glibc loader, with `root`'s
/// libraries first and the system's after.
fn loader_wrapper(comment: &str, root: &Path, binary: &str) -> String {
    let r = root.display();
    let lib = "usr/lib/x86_64-linux-gnu";
    format!(
        "#!/bin/sh\n\
         {comment}\
         # Written by `cargo xtask install`.\n\
         R='{r}'\n\
         exec \"$R/{lib}/ld-linux-x86-64.so.2\" --library-path \
         \"$R/{lib}:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu\" \"$R/{binary}\" \"$@\"\n"
    )
}

fn venv(root: &Path, cache: &Path) -> Result<()> {
    let requirements = root.join("scripts/requirements.txt");
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("cannot read {}", requirements.display()))?;
    let venv = cache.join("venv");
    let python = venv.join("bin/python");
    let marker = venv.join("sigtrail-requirements.txt");
    let python_runs = output_of(Command::new(&python).args(["-c", "pass"])).is_some();
    if python_runs && fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        step("install: python venv with scripts/requirements.txt present");
        return Ok(());
    }
    if !python_runs {
        let _ = fs::remove_dir_all(&venv);
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run_cmd(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    fs::write(&marker, wanted)?;
    Ok(())
}

fn harness(root: &Path, cache: &Path) -> Result<()> {
    let src = root.join(HARNESS);
    let hash = tree_hash(&src)?;
    let marker = cache.join("bin/srs-harness.source");
    let bins = ["srs-verify", "srs-sign"];
    let present = bins.iter().all(|b| cache.join("bin").join(b).exists());
    if present && fs::read_to_string(&marker).ok().as_deref() == Some(hash.as_str()) {
        step("install: sigstore-rs harness present");
        return Ok(());
    }
    step("install: building the sigstore-rs harness (release; a few minutes the first time)");
    let target = cache.join("srs-target");
    run_cmd(
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(src.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target),
    )?;
    for b in bins {
        let to = cache.join("bin").join(b);
        let tmp = to.with_extension("tmp");
        fs::copy(target.join("release").join(b), &tmp)?;
        fs::rename(&tmp, &to)?;
    }
    fs::write(&marker, hash)?;
    Ok(())
}

/// A hash of the harness sources (names and contents), to rebuild only when they change.
fn tree_hash(dir: &Path) -> Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut h = DefaultHasher::new();
    for f in files {
        f.strip_prefix(dir)?.hash(&mut h);
        fs::read(&f)?.hash(&mut h);
    }
    Ok(format!("{:016x}\n", h.finish()))
}

pub fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
    fs::rename(&tmp, path)?;
    Ok(())
}
