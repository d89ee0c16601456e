//! Local copies of the trail: a directory in the bucket layout (or any `*.json[.gz]` under it),
//! or one file.

use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::{day_of, digest_day_of, is_log_file, Loaded, Range};
use crate::trail::event::{self, Parsed};
use crate::trail::integrity::{digest, DigestRead, LogRead};
use crate::trail::interest::Interest;

/// Parses one local log file as a stream (never read whole into memory).
async fn parse_file_blocking(path: PathBuf, hash: bool) -> Result<Parsed, String> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot read: {e}"))?;
        event::parse_log_file(file, hash)
    })
    .await
    .map_err(|e| format!("parser stopped: {e}"))?
}

/// Folders followed below the walk's root at the most (a symlink loop ends here, named).
const MAX_WALK_DEPTH: usize = 32;

/// True for an account folder of the bucket layout: `AWSLogs/ACCT` or `AWSLogs/o-ORG/ACCT`.
fn is_account_dir(dir: &Path) -> bool {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let acct = name(Some(dir));
    let parent = dir.parent();
    let above = name(parent);
    acct.len() == 12
        && acct.bytes().all(|b| b.is_ascii_digit())
        && (above == "AWSLogs"
            || (above.starts_with("o-") && name(parent.and_then(Path::parent)) == "AWSLogs"))
}

/// What a walk found: log files, digest folders, and what could not be read.
#[derive(Default)]
struct Walked {
    files: Vec<PathBuf>,
    /// `.../AWSLogs/ACCT/CloudTrail-Digest/REGION/` of every account folder walked: read even
    /// where no log file of the range is, so a folder whose every log file was deleted is still
    /// seen (its digests list them).
    digest_folders: Vec<String>,
    errors: Vec<String>,
}

/// The region folders of a `CloudTrail-Digest/` folder, each ending in `/`.
fn digest_regions(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut regions: Vec<String> = entries
        .flatten()
        .filter(|r| std::fs::metadata(r.path()).is_ok_and(|m| m.is_dir()))
        .map(|r| format!("{}/", r.path().to_string_lossy()))
        .collect();
    regions.sort();
    regions
}

fn walk(dir: &Path, range: &Range, depth: usize, w: &mut Walked) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            w.errors
                .push(format!("{}: cannot read directory: {e}", dir.display()));
            return;
        }
    };
    // In an account folder only `CloudTrail/` holds logs of API calls; its siblings
    // (`CloudTrail-Digest/`, `CloudTrail-Insight/`, AWS Config's `Config/`, ...) are not read,
    // as in S3.
    let account = is_account_dir(dir);
    let mut entries: Vec<_> = entries
        .filter_map(|e| match e {
            Ok(e) => Some(e),
            Err(e) => {
                w.errors
                    .push(format!("{}: cannot read directory: {e}", dir.display()));
                None
            }
        })
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // Symlinks are followed: a linked folder or file counts like the real one.
        let kind = match std::fs::metadata(&path) {
            Ok(meta) => meta.file_type(),
            Err(e) => {
                w.errors
                    .push(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        let name = entry.file_name();
        if account && name == "CloudTrail-Digest" && kind.is_dir() {
            w.digest_folders.extend(digest_regions(&path));
            continue;
        }
        if account && name != "CloudTrail" {
            continue;
        }
        if kind.is_dir() {
            // Skip whole day folders outside the range without descending into them.
            let s = path.to_string_lossy();
            if let Some(day) = day_of(&format!("{s}/x")) {
                if !range.day_wanted(day) {
                    continue;
                }
            }
            if depth >= MAX_WALK_DEPTH {
                w.errors.push(format!(
                    "{}: more than {MAX_WALK_DEPTH} folders deep (a symlink loop?); not read",
                    path.display()
                ));
                continue;
            }
            walk(&path, range, depth + 1, w);
        } else if is_log_file(&name.to_string_lossy()) {
            w.files.push(path);
        }
    }
}

pub(super) async fn load_local(
    path: PathBuf,
    range: Range,
    interest: &Interest,
) -> Result<Loaded, String> {
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    let walked = if meta.is_dir() {
        let root = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = Walked::default();
            walk(&root, &range, 0, &mut w);
            // An account's CloudTrail/ folder covers every region of the account, as the
            // account folder does.
            let name = root.file_name().map(|n| n.to_string_lossy().into_owned());
            if let (Some("CloudTrail"), Some(account)) = (name.as_deref(), root.parent()) {
                if is_account_dir(account) {
                    w.digest_folders
                        .extend(digest_regions(&account.join("CloudTrail-Digest")));
                }
            }
            w
        })
        .await
        .map_err(|e| format!("directory walk stopped: {e}"))?
    } else {
        Walked {
            files: vec![path],
            ..Walked::default()
        }
    };
    let files = walked.files;
    let mut loaded = Loaded {
        warnings: walked.errors,
        ..Loaded::default()
    };
    // Two files per core in flight: while this task merges one file's events, every core
    // still has a file to parse.
    let jobs = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|f| interest.reads(&f.to_string_lossy()))
        .collect();
    let mut results = futures::stream::iter(files)
        .map(|file| async move {
            let result = parse_file_blocking(file.clone(), interest.hash_files).await;
            (file, result)
        })
        .buffer_unordered(jobs);
    // The second pass (only some files) reads no digests: the first read them all.
    let mut folders: std::collections::BTreeSet<String> = if interest.only_files.is_none() {
        walked.digest_folders.into_iter().collect()
    } else {
        Default::default()
    };
    while let Some((file, result)) = results.next().await {
        let key = file.to_string_lossy().into_owned();
        folders.extend(digest::digest_prefix_for_log(&key));
        let read = LogRead {
            origin: key.clone(),
            key,
            ..LogRead::default()
        };
        loaded.add(&read.origin.clone(), Some(read), result, &range, interest);
    }
    // The digests beside them: every digest folder the log files' folders name.
    let digests = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for folder in folders {
            let mut paths = Vec::new();
            digest_walk(Path::new(&folder), &range, 0, &mut paths);
            paths.sort();
            out.extend(paths.into_iter().map(read_digest));
        }
        out
    })
    .await
    .map_err(|e| format!("digest walk stopped: {e}"))?;
    loaded.digests = digests;
    Ok(loaded)
}

/// The `*.json.gz` files under a digest folder, day folders outside the range skipped.
fn digest_walk(dir: &Path, range: &Range, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // no digest folder: no digests (the check says what that means)
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            let s = path.to_string_lossy();
            if digest_day_of(&format!("{s}/x")).is_some_and(|d| !range.digest_day_wanted(d)) {
                continue;
            }
            if depth < MAX_WALK_DEPTH {
                digest_walk(&path, range, depth + 1, out);
            }
        } else if path.to_string_lossy().ends_with(".json.gz") {
            out.push(path);
        }
    }
}

/// One local digest file, with its signature from `FILE.sig` beside it when there is one (S3
/// keeps it in the object's metadata, which a copy loses).
fn read_digest(path: PathBuf) -> DigestRead {
    let key = path.to_string_lossy().into_owned();
    let parsed = std::fs::read(&path)
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|bytes| digest::parse(&bytes));
    let signature = std::fs::read_to_string(format!("{key}.sig"))
        .ok()
        .map(|s| s.trim().to_string());
    DigestRead {
        origin: key.clone(),
        bucket: None,
        key,
        parsed,
        signature,
    }
}
