//! The release bundle and the install tree (`cargo xtask dist`, `cargo xtask install-tools`),
//! built from the tools already built for the tests (a release build in a test is too slow):
//! the same `sigtrail_docgen` code the two tasks run after their release build.
//!
//! Needs no servers: `cargo test -p sigtrail-tests --test dist`.

use std::path::Path;
use std::process::Command;

use sigtrail_docgen::TOOLS;
use sigtrail_tests::tools_dir;

/// The commit the tools say they were built from: HEAD of this checkout, or `unknown` outside one.
fn expected_commit() -> String {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".to_string(),
    }
}

/// `TOOL --version` of the binary at `path`, run with `PATH` = only `bin` (so nothing else is
/// found); checks it names the tool, the version and the commit.
fn check_version(bin: &Path, tool: &str) {
    let out = Command::new(tool)
        .arg("--version")
        .env("PATH", bin)
        .output()
        .unwrap_or_else(|e| panic!("{tool} from {}: {e}", bin.display()));
    assert!(out.status.success(), "{tool} --version: {}", out.status);
    let want = format!(
        "{tool} {} (commit {})\n",
        sigtrail_docgen::VERSION,
        expected_commit()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_tool_names_its_version_and_commit() {
    for tool in TOOLS {
        check_version(&tools_dir(), tool);
    }
}

#[test]
fn the_bundle_extracts_to_six_tools_man_pages_and_completions() {
    let work = tempfile::tempdir().unwrap();
    let tarball =
        sigtrail_docgen::bundle(&tools_dir(), &work.path().join("dist"), "test-target").unwrap();
    let name = format!("sigtrail-{}-test-target", sigtrail_docgen::VERSION);
    assert_eq!(
        tarball.file_name().unwrap().to_string_lossy(),
        format!("{name}.tar.gz")
    );
    // The checksum file beside the tarball matches it.
    run_ok(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(work.path().join("dist")),
    );
    let unpacked = work.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpacked),
    );
    let root = unpacked.join(&name);
    // Every file in the bundle is in its SHA256SUMS, and matches.
    let sums = run_ok(
        Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&root),
    );
    assert!(sums.lines().all(|l| l.ends_with(": OK")), "{sums}");
    for f in ["README.md", "LICENSE"] {
        assert!(sums.contains(&format!("{f}: OK")), "{f} missing:\n{sums}");
    }
    assert!(std::fs::read_to_string(root.join("LICENSE"))
        .unwrap()
        .contains("Apache License"));
    let bin = root.join("bin");
    let entries: Vec<_> = std::fs::read_dir(&bin).unwrap().collect();
    assert_eq!(entries.len(), 6, "bin/ holds exactly the six tools");
    for tool in TOOLS {
        check_version(&bin, tool);
        let page = root.join(format!("share/man/man1/{tool}.1"));
        let text = man(&page);
        assert!(
            text.contains(tool) && text.contains("OPTIONS"),
            "{tool}.1:\n{text}"
        );
        assert!(
            text.contains("sigtrail(7)"),
            "{tool}.1 names sigtrail(7):\n{text}"
        );
        let completion = root.join(format!("share/bash-completion/completions/{tool}"));
        let complete = run_ok(Command::new("bash").arg("-c").arg(format!(
            "source '{}' && complete -p {tool}",
            completion.display()
        )));
        assert!(complete.trim_end().ends_with(tool), "{complete}");
        for zsh_or_fish in [
            root.join(format!("share/zsh/site-functions/_{tool}")),
            root.join(format!("share/fish/vendor_completions.d/{tool}.fish")),
        ] {
            let text = std::fs::read_to_string(&zsh_or_fish).unwrap();
            assert!(text.contains(tool), "{}", zsh_or_fish.display());
        }
    }
    let seven = man(&root.join("share/man/man7/sigtrail.7"));
    for want in [
        "WIRE CONTRACT",
        "RECORD FIELDS",
        "stdout carries records only",
        "media_type",
        "verification",
        "--where",
    ] {
        assert!(seven.contains(want), "sigtrail.7 lacks {want:?}:\n{seven}");
    }
}

/// The page as `man -l` renders it (plain text, whitespace collapsed), checking groff had
/// nothing to complain about.
fn man(page: &Path) -> String {
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man (apt package man-db, installed by `cargo xtask install`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "man -l {}: {}\n{stderr}",
        page.display(),
        out.status
    );
    // Plain text: drop overstrike (bold, underline) if the pager kept it; groff's UTF-8
    // hyphen and minus back to ASCII.
    let text = String::from_utf8_lossy(&out.stdout).replace(['\u{2010}', '\u{2212}'], "-");
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    // One space between words: justification and line breaks must not decide a check.
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn install_tools_puts_the_six_tools_man_pages_and_completions_under_a_prefix() {
    let prefix = tempfile::tempdir().unwrap();
    let prefix = prefix.path().join("usr-local");
    sigtrail_docgen::install(&tools_dir(), &prefix).unwrap();
    // Again over the first: an upgrade in place works.
    sigtrail_docgen::install(&tools_dir(), &prefix).unwrap();
    for tool in TOOLS {
        check_version(&prefix.join("bin"), tool);
        // man finds the page through the prefix's share/man
        let out = Command::new("man")
            .arg("-M")
            .arg(prefix.join("share/man"))
            .arg("-w")
            .arg(tool)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "man -w {tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(prefix
            .join(format!("share/bash-completion/completions/{tool}"))
            .is_file());
    }
    assert!(prefix.join("share/man/man7/sigtrail.7").is_file());
    let left: Vec<_> = std::fs::read_dir(&prefix)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["bin", "share"], "nothing else left under the prefix");
}
