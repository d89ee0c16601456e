//! Whether the log files `trail-for` took evidence from are the ones CloudTrail delivered:
//! CloudTrail's signed digest chain checked for every file read, so someone who can write to the
//! trail bucket (and holds the signing key) cannot add a backdated `Sign`, edit an event or delete
//! the file holding the real one without it showing.
//!
//! The rules (facts and sources in `../shared/reference/cloudtrail-integrity.md`):
//! 1. **A digest is authentic** when its own signature (S3 metadata `x-amz-meta-signature`, or
//!    `DIGEST.sig` beside a local copy) verifies under the CloudTrail key its fingerprint names,
//!    or when the next digest of its chain is authentic, names it as previous, and that
//!    `previousDigestSignature` verifies it and `previousDigestHashValue` is its hash (stricter
//!    than `aws cloudtrail validate-logs`, which ignores the hash). A signature present that does
//!    not verify, an unknown key, or a digest found somewhere other than where it says it was
//!    delivered makes it `invalid`, whatever else holds.
//! 2. **Chains** are per folder (`AWSLogs/[ORG/]ACCT/CloudTrail-Digest/REGION/`) and trail,
//!    ordered by end time. A digest whose previous is missing although an older digest of the
//!    chain was read means a deleted digest: the span between is `invalid`. A digest that starts
//!    a chain (no previous) after an older one is CloudTrail's own word that validation or
//!    logging was off: the span between is a gap, `unvalidated`.
//! 3. **A log file** is `validated` when an authentic digest lists it at the location it was
//!    read from with the hash of its decompressed bytes. Listed with another hash: `invalid`
//!    (edited). Not listed there, but its bytes are listed elsewhere: `invalid` (moved or
//!    copied). Not listed at all: `invalid` when an authentic digest's window covers its
//!    delivery time (forged, or added later); `pending` when delivered after the newest digest
//!    less than [`PENDING_HOURS`] ago, `invalid` when longer (the digests since were deleted,
//!    or validation was stopped: either way nothing vouches for it, and someone must look);
//!    `unvalidated` (with the reason) when no digest can speak for it: no digests in its
//!    folder, a gap CloudTrail itself declared, a copy whose newest digest has no signature.
//! 4. **A log file an authentic digest lists but that is not there** (in the folders and days
//!    read) was deleted: `invalid`.
//! 5. `LookupEvents` is read from CloudTrail itself: `service`.
//!
//! Locations: S3 files are compared by bucket and key; a local copy by its path from
//! `AWSLogs/` on (a copy has no bucket, and may sit under any folder).

pub mod digest;
pub mod evidence;
pub mod public_keys;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use digest::{layout_tail, DigestName, PublicKey};

/// How long after its delivery a log file no digest lists yet is `pending` (digests cover an
/// hour and arrive some minutes after it ends).
pub const PENDING_HOURS: i64 = 2;

/// How much the trail's integrity is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `trusted` needs every piece of evidence `validated` (or `service`).
    #[default]
    Strict,
    /// `trusted` may rest on `unvalidated` evidence (trails without log file validation), and
    /// says so; `invalid` evidence still fails.
    Advisory,
    /// Digests are not read; verdicts say integrity was not checked (for measuring its cost).
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Advisory => "advisory",
            Mode::Off => "off",
        }
    }
}

/// One piece of evidence's integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Service,
    Validated,
    Unvalidated,
    Pending,
    Invalid,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Service => "service",
            State::Validated => "validated",
            State::Unvalidated => "unvalidated",
            State::Pending => "pending",
            State::Invalid => "invalid",
        }
    }
}

/// S3 Object Lock as the GET of a file showed it, and what the bucket says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lock {
    /// `x-amz-object-lock-mode` (shown only to callers with `s3:GetObjectRetention`)
    pub mode: Option<String>,
    pub retain_until: Option<DateTime<Utc>>,
    pub bucket: BucketLock,
}

/// The bucket's Object Lock configuration (`GetObjectLockConfiguration`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum BucketLock {
    Enabled,
    #[default]
    Off,
    /// It could not be read (the reason: no permission, ...).
    Unknown(String),
}

/// A log file a source read.
#[derive(Debug, Clone, Default)]
pub struct LogRead {
    /// For people: `s3://BUCKET/KEY` or the local path.
    pub origin: String,
    /// The bucket, for S3 files.
    pub bucket: Option<String>,
    /// The S3 key, or the local path.
    pub key: String,
    /// Hex SHA-256 of the decompressed bytes.
    pub sha256: String,
    /// The S3 object version read, when the bucket is versioned.
    pub version_id: Option<String>,
    pub lock: Option<Lock>,
}

/// A digest file a source read.
#[derive(Debug, Clone)]
pub struct DigestRead {
    pub origin: String,
    pub bucket: Option<String>,
    pub key: String,
    pub parsed: Result<digest::Parsed, String>,
    /// Its own signature (hex): S3 metadata, or the `.sig` file beside a local copy.
    pub signature: Option<String>,
}

/// What one file's check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub state: State,
    pub reason: String,
    /// The digest that speaks for it.
    pub digest: Option<String>,
}

/// A time span of a digest folder no authentic digest covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    pub folder: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `unvalidated` (validation or logging was off) or `invalid` (a digest is missing).
    pub state: State,
    pub reason: String,
}

/// The whole check.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per [`LogRead`], same order.
    pub files: Vec<Check>,
    /// Everything found `invalid`, in words (files, digests, deleted files, missing digests).
    pub tampering: Vec<String>,
    pub gaps: Vec<Gap>,
    pub digests_read: usize,
    pub digests_authentic: usize,
    /// Until when every digest folder read is covered by authentic digests: the earliest of
    /// the folders' newest authentic digest ends (`None`: no authentic digest).
    pub covered_until: Option<DateTime<Utc>>,
}

/// Where a file sits, as compared with what digests list: `bucket/key` for S3, the layout tail
/// for a local copy.
fn location(bucket: Option<&str>, key: &str) -> String {
    match bucket {
        Some(b) => format!("{b}/{key}"),
        None => layout_tail(key).unwrap_or(key).to_string(),
    }
}

/// The digest folder a log file's folder belongs to: `.../AWSLogs/[ORG/]ACCT/CloudTrail/REGION/`
/// → `.../AWSLogs/[ORG/]ACCT/CloudTrail-Digest/REGION/` (as a layout tail).
fn digest_folder_of_log(key: &str) -> Option<String> {
    let tail = layout_tail(key)?;
    let parts: Vec<&str> = tail.split('/').collect();
    let at = parts.iter().position(|p| *p == "CloudTrail")?;
    let region = parts.get(at + 1)?;
    Some(format!(
        "{}/CloudTrail-Digest/{region}/",
        parts[..at].join("/")
    ))
}

/// The folder of a digest key (as a layout tail).
fn digest_folder(key: &str) -> Option<String> {
    let tail = layout_tail(key)?;
    let parts: Vec<&str> = tail.split('/').collect();
    let at = parts.iter().position(|p| *p == "CloudTrail-Digest")?;
    let region = parts.get(at + 1)?;
    Some(format!("{}/{region}/", parts[..=at].join("/")))
}

/// Per digest folder: the (start, end, digest) windows of its authentic digests.
type Windows<'a> = HashMap<&'a str, Vec<(DateTime<Utc>, DateTime<Utc>, usize)>>;

struct Digest<'a> {
    read: &'a DigestRead,
    parsed: &'a digest::Parsed,
    name: DigestName,
    folder: String,
    authentic: bool,
    problem: Option<String>,
    /// Why it could not be checked, when that is no fault of the digest (keys unavailable).
    note: Option<String>,
}

/// Checks every file read against every digest read.
///
/// `keys`: CloudTrail's public keys by fingerprint; `keys_unavailable`: regions whose keys
/// could not be fetched, with why (their digests are then unchecked, not invalid). `wanted`:
/// whether a listed log file would have been read (inside the sources and days searched), for
/// rule 4.
pub fn check(
    logs: &[LogRead],
    digests: &[DigestRead],
    keys: &HashMap<String, PublicKey>,
    keys_unavailable: &HashMap<String, String>,
    now: DateTime<Utc>,
    wanted: &dyn Fn(&str, &str) -> bool,
) -> Report {
    let mut report = Report {
        digests_read: digests.len(),
        ..Report::default()
    };
    // Rule 1, the parts that need no chain: parse, name, place, key, own signature.
    let mut ds: Vec<Digest> = Vec::new();
    for read in digests {
        let parsed = match &read.parsed {
            Ok(p) => p,
            Err(e) => {
                report
                    .tampering
                    .push(format!("digest {}: cannot be read: {e}", read.origin));
                continue;
            }
        };
        let (Some(name), Some(folder)) = (digest::digest_name(&read.key), digest_folder(&read.key))
        else {
            report.tampering.push(format!(
                "digest {}: not named as CloudTrail names digest files",
                read.origin
            ));
            continue;
        };
        let d = &parsed.digest;
        let mut problem = None;
        let claimed = location(
            read.bucket.as_ref().map(|_| d.digest_s3_bucket.as_str()),
            &d.digest_s3_object,
        );
        if claimed != location(read.bucket.as_deref(), &read.key) {
            problem = Some(format!(
                "it says it was delivered to s3://{}/{}: moved or copied",
                d.digest_s3_bucket, d.digest_s3_object
            ));
        }
        let key = keys.get(&d.digest_public_key_fingerprint.to_ascii_lowercase());
        let mut authentic = false;
        let mut note = None;
        match (key, &read.signature) {
            _ if problem.is_some() => {}
            (None, _) if keys_unavailable.contains_key(&name.region) => {
                note = Some(format!(
                    "CloudTrail's public keys for {} could not be read ({}), so digest {} is \
                     unchecked",
                    name.region, keys_unavailable[&name.region], read.origin
                ));
            }
            (None, _) => {
                problem = Some(format!(
                "signed with key {}, which is not among CloudTrail's public keys (ListPublicKeys \
                     or --cloudtrail-public-keys)",
                d.digest_public_key_fingerprint
            ))
            }
            (Some(k), Some(sig)) => {
                if k.verifies(own_signed_string(d, &parsed.sha256).as_bytes(), sig) {
                    authentic = true;
                    if d.end().is_some_and(|t| !k.valid_at(t)) {
                        authentic = false;
                        problem = Some(format!(
                            "signed with key {} outside that key's validity",
                            k.fingerprint
                        ));
                    }
                } else {
                    problem = Some(format!(
                        "its signature does not verify under CloudTrail key {}",
                        k.fingerprint
                    ));
                }
            }
            (Some(_), None) => {}
        }
        ds.push(Digest {
            read,
            parsed,
            name,
            folder,
            authentic,
            problem,
            note,
        });
    }
    // Rule 2: chains, newest first; a newer authentic digest vouches for the one it names.
    let mut chains: BTreeMap<(String, String, String), Vec<usize>> = BTreeMap::new();
    for (i, d) in ds.iter().enumerate() {
        if !d.name.backfill {
            chains
                .entry((
                    d.folder.clone(),
                    d.name.trail.clone(),
                    d.name.home_region.clone(),
                ))
                .or_default()
                .push(i);
        }
    }
    for ((folder, _, _), members) in &chains {
        let mut members = members.clone();
        members.sort_by_key(|&i| (ds[i].name.end, ds[i].read.key.clone()));
        for w in (1..members.len()).rev() {
            let (older, newer) = (members[w - 1], members[w]);
            let nd = &ds[newer].parsed.digest;
            let od = &ds[older].parsed.digest;
            let names_older = nd.previous_digest_s3_object.as_deref()
                == Some(od.digest_s3_object.as_str())
                && nd.previous_digest_s3_bucket.as_deref() == Some(od.digest_s3_bucket.as_str());
            if nd.starts_chain() {
                report.gaps.push(Gap {
                    folder: folder.clone(),
                    from: od.end(),
                    to: nd.start(),
                    state: State::Unvalidated,
                    reason: format!(
                        "digest {} starts a new chain: log file validation or logging was off \
                         from {} to {}",
                        ds[newer].read.origin, od.digest_end_time, nd.digest_start_time
                    ),
                });
                continue;
            }
            if !names_older {
                let missing = nd.previous_digest_s3_object.clone().unwrap_or_default();
                let reason = format!(
                    "digest {} names {missing} as its previous, which is not there (deleted?); \
                     nothing vouches for log files delivered from {} to {}",
                    ds[newer].read.origin, od.digest_end_time, nd.digest_start_time
                );
                report.tampering.push(reason.clone());
                report.gaps.push(Gap {
                    folder: folder.clone(),
                    from: od.end(),
                    to: nd.start(),
                    state: State::Invalid,
                    reason,
                });
                continue;
            }
            if !ds[newer].authentic || ds[older].problem.is_some() {
                continue;
            }
            let vouched = nd.previous_digest_signature.as_deref().is_some_and(|sig| {
                keys.get(&od.digest_public_key_fingerprint.to_ascii_lowercase())
                    .is_some_and(|k| {
                        k.verifies(
                            own_signed_string(od, &ds[older].parsed.sha256).as_bytes(),
                            sig,
                        )
                    })
                    && ds[older]
                        .read
                        .signature
                        .as_deref()
                        .is_none_or(|own| own.trim().eq_ignore_ascii_case(sig.trim()))
            }) && nd
                .previous_digest_hash_value
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case(&ds[older].parsed.sha256));
            if vouched {
                ds[older].authentic = true;
            } else {
                ds[older].authentic = false;
                ds[older].problem = Some(format!(
                    "the next digest {} does not vouch for it (previous signature or hash differ): \
                     replaced or spliced from another chain",
                    ds[newer].read.origin
                ));
            }
        }
    }
    for d in &ds {
        if let Some(p) = &d.problem {
            report
                .tampering
                .push(format!("digest {}: {p}", d.read.origin));
        }
    }
    report.digests_authentic = ds.iter().filter(|d| d.authentic).count();

    // Rule 3: what each authentic digest lists, by location and by hash.
    let mut by_location: HashMap<String, (usize, &digest::Listed)> = HashMap::new();
    let mut by_hash: HashMap<String, (usize, &digest::Listed)> = HashMap::new();
    for (i, d) in ds.iter().enumerate() {
        for l in &d.parsed.digest.log_files {
            let hash = l.hash_value.to_ascii_lowercase();
            by_location.insert(format!("{}/{}", l.s3_bucket, l.s3_object), (i, l));
            if let Some(tail) = layout_tail(&l.s3_object) {
                by_location.entry(tail.to_string()).or_insert((i, l));
            }
            by_hash.entry(hash).or_insert((i, l));
        }
    }
    // Per folder: authentic windows, and the newest end.
    let mut windows: Windows<'_> = HashMap::new();
    for (i, d) in ds.iter().enumerate() {
        if let (true, Some(s), Some(e)) =
            (d.authentic, d.parsed.digest.start(), d.parsed.digest.end())
        {
            windows
                .entry(d.folder.as_str())
                .or_default()
                .push((s, e, i));
        }
    }
    report.covered_until = windows
        .values()
        .filter_map(|w| w.iter().map(|(_, e, _)| *e).max())
        .min();
    let folders_with_digests: HashSet<&str> = ds.iter().map(|d| d.folder.as_str()).collect();
    let mut seen_locations = HashSet::new();
    for log in logs {
        let loc = location(log.bucket.as_deref(), &log.key);
        seen_locations.insert(loc.clone());
        report.files.push(check_one(
            log,
            &loc,
            &ds,
            &by_location,
            &by_hash,
            &windows,
            &folders_with_digests,
            &report.gaps,
            now,
        ));
    }
    let invalid_files: Vec<String> = logs
        .iter()
        .zip(&report.files)
        .filter(|(_, c)| c.state == State::Invalid)
        .map(|(l, c)| format!("log file {}: {}", l.origin, c.reason))
        .collect();
    report.tampering.extend(invalid_files);
    // Rule 4: listed, in the sources and days read, and not there.
    let mut missing = Vec::new();
    for d in ds.iter().filter(|d| d.authentic) {
        for l in &d.parsed.digest.log_files {
            if !wanted(&l.s3_bucket, &l.s3_object) {
                continue;
            }
            let full = format!("{}/{}", l.s3_bucket, l.s3_object);
            let tail = layout_tail(&l.s3_object)
                .unwrap_or(&l.s3_object)
                .to_string();
            if !seen_locations.contains(&full) && !seen_locations.contains(&tail) {
                missing.push(format!(
                    "log file s3://{full} is listed in digest {} but was not found (deleted?)",
                    d.read.origin
                ));
            }
        }
    }
    missing.sort();
    missing.dedup();
    report.tampering.extend(missing);
    report
}

fn own_signed_string(d: &digest::DigestFile, sha256: &str) -> String {
    digest::signed_string(
        &d.digest_end_time,
        &d.digest_s3_bucket,
        &d.digest_s3_object,
        sha256,
        d.previous_digest_signature.as_deref(),
    )
}

#[allow(clippy::too_many_arguments)]
fn check_one(
    log: &LogRead,
    loc: &str,
    ds: &[Digest],
    by_location: &HashMap<String, (usize, &digest::Listed)>,
    by_hash: &HashMap<String, (usize, &digest::Listed)>,
    windows: &Windows<'_>,
    folders_with_digests: &HashSet<&str>,
    gaps: &[Gap],
    now: DateTime<Utc>,
) -> Check {
    let check = |state, reason: String, digest: Option<usize>| Check {
        state,
        reason,
        digest: digest.map(|i| ds[i].read.origin.clone()),
    };
    if let Some(&(i, listed)) = by_location.get(loc) {
        let d = &ds[i];
        if !listed.hash_value.eq_ignore_ascii_case(&log.sha256) {
            return check(
                State::Invalid,
                format!(
                    "its content differs from what digest {} lists (sha256 {} listed, {} read): \
                     edited",
                    d.read.origin, listed.hash_value, log.sha256
                ),
                Some(i),
            );
        }
        if d.authentic {
            return check(
                State::Validated,
                format!("listed in digest {} with this hash", d.read.origin),
                Some(i),
            );
        }
        return match &d.problem {
            Some(p) => check(
                State::Invalid,
                format!("listed in digest {}, which is invalid: {p}", d.read.origin),
                Some(i),
            ),
            None => check(
                State::Unvalidated,
                d.note.clone().unwrap_or_else(|| {
                    format!(
                        "listed in digest {}, but nothing signed vouches for that digest (a local \
                         copy needs the newest digest's signature beside it as DIGEST.json.gz.sig)",
                        d.read.origin
                    )
                }),
                Some(i),
            ),
        };
    }
    if let Some(&(i, listed)) = by_hash.get(&log.sha256) {
        return check(
            State::Invalid,
            format!(
                "its bytes are those of s3://{}/{} (listed in digest {}), but it sits elsewhere: \
                 moved or copied",
                listed.s3_bucket, listed.s3_object, ds[i].read.origin
            ),
            Some(i),
        );
    }
    let Some(folder) = digest_folder_of_log(&log.key) else {
        return check(
            State::Unvalidated,
            "not in CloudTrail's AWSLogs/ layout, so no digest can speak for it".into(),
            None,
        );
    };
    if !folders_with_digests.contains(folder.as_str()) {
        return check(
            State::Unvalidated,
            format!(
                "no digest files in {folder}: log file validation is off for this trail, or the \
                 digests were not copied"
            ),
            None,
        );
    }
    let Some(delivered) = digest::log_delivery_time(&log.key) else {
        return check(
            State::Invalid,
            "no digest lists it, and it is not named as CloudTrail names log files".into(),
            None,
        );
    };
    if let Some(g) = gaps.iter().find(|g| {
        g.folder == folder
            && g.from.is_none_or(|f| delivered >= f)
            && g.to.is_none_or(|t| delivered <= t)
    }) {
        return check(g.state, g.reason.clone(), None);
    }
    let wins = windows
        .get(folder.as_str())
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if let Some(&(_, _, i)) = wins
        .iter()
        .find(|(s, e, _)| delivered >= *s && delivered <= *e)
    {
        return check(
            State::Invalid,
            format!(
                "no digest lists it, though digest {} covers its delivery time {}: forged, or \
                 added after delivery",
                ds[i].read.origin,
                delivered.format("%Y-%m-%dT%H:%MZ")
            ),
            Some(i),
        );
    }
    let newest = wins.iter().map(|(_, e, _)| *e).max();
    match newest {
        Some(e) if delivered > e && now - delivered < Duration::hours(PENDING_HOURS) => check(
            State::Pending,
            format!(
                "delivered at {} after the newest digest (ending {}): its digest is not written \
                 yet; run again after {}",
                delivered.format("%Y-%m-%dT%H:%MZ"),
                e.format("%Y-%m-%dT%H:%M:%SZ"),
                (delivered + Duration::hours(PENDING_HOURS)).format("%Y-%m-%dT%H:%MZ")
            ),
            None,
        ),
        // CloudTrail delivers a digest every hour while validation is on: log files long after
        // the last one mean digests were deleted, or validation or delivery was stopped.
        Some(e) if delivered > e => check(
            State::Invalid,
            format!(
                "delivered at {}, more than {PENDING_HOURS} hours after the newest digest found \
                 (ending {}): the digests after it are missing (deleted, or log file validation \
                 or digest delivery stopped: see GetTrailStatus LatestDigestDeliveryError)",
                delivered.format("%Y-%m-%dT%H:%MZ"),
                e.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            None,
        ),
        _ => check(
            State::Unvalidated,
            format!(
                "no digest read covers its delivery time {} (before validation started, or \
                 outside the digests read)",
                delivered.format("%Y-%m-%dT%H:%MZ")
            ),
            None,
        ),
    }
}

/// The JSON of one file's check, for a record's evidence.
pub fn check_json(log: &LogRead, c: &Check, now: DateTime<Utc>) -> Value {
    let mut v = json!({"file": log.origin, "state": c.state.as_str(), "reason": c.reason});
    if let Some(d) = &c.digest {
        v["digest"] = d.clone().into();
    }
    v["sha256"] = log.sha256.clone().into();
    if let Some(id) = &log.version_id {
        v["version_id"] = id.clone().into();
    }
    if log.bucket.is_some() {
        v["worm"] = worm_json(log.lock.as_ref(), now);
    }
    v
}

/// Whether an S3 file cannot be deleted: only COMPLIANCE retention not yet expired says so.
pub fn worm_json(lock: Option<&Lock>, now: DateTime<Utc>) -> Value {
    match lock {
        Some(Lock {
            mode: Some(mode),
            retain_until,
            ..
        }) => {
            let locked = mode == "COMPLIANCE" && retain_until.is_some_and(|u| u > now);
            let what = if locked {
                "COMPLIANCE retention: this version cannot be deleted or overwritten until then"
            } else if mode == "COMPLIANCE" {
                "COMPLIANCE retention has expired: this version can be deleted"
            } else {
                "GOVERNANCE retention: anyone with s3:BypassGovernanceRetention can delete it"
            };
            json!({"locked": locked, "mode": mode,
                   "retain_until": retain_until.map(|u| u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                   "meaning": what})
        }
        Some(Lock {
            bucket: BucketLock::Enabled,
            ..
        }) => json!({"locked": false, "mode": null,
                     "meaning": "the bucket uses Object Lock, but S3 showed no retention for this version: \
                                 these credentials lack s3:GetObjectRetention, so whether it is locked is unknown"}),
        Some(Lock {
            bucket: BucketLock::Unknown(why),
            ..
        }) => json!({"locked": false, "mode": null,
                     "meaning": format!("S3 showed no retention for this version, and the bucket's Object Lock \
                                         configuration could not be read ({why}): whether it is locked is unknown")}),
        _ => json!({"locked": false, "mode": null,
                    "meaning": "the bucket has no Object Lock: whoever can write to it can delete or replace this file"}),
    }
}
