//! Where CloudTrail events come from: log files in S3, the same files in a local directory, and
//! the `LookupEvents` API. All sources are read once, concurrently, into one list of events.
//!
//! - `s3://BUCKET[/PREFIX]`: the trail's bucket. PREFIX may stop anywhere above or inside
//!   `AWSLogs/[ORG/]ACCT/CloudTrail/REGION/YYYY/MM/DD/`; only the day folders inside the time
//!   range are listed (one day of slack after `until`, as files are delivered late). A prefix
//!   without an `AWSLogs/` layout below it is read whole (every `*.json[.gz]`).
//! - a local path: a directory (same layout, or any `*.json` / `*.json.gz` under it; day folders
//!   outside the range skipped, and in an account folder only `CloudTrail/` read, as in S3;
//!   symlinks followed) or one file.
//! - `lookup` / `lookup:REGION`: `LookupEvents`, one paginated query per event name, within the
//!   range (the API keeps 90 days; without `--since` the query starts 90 days ago).
//!
//! A file that cannot be read or parsed is a warning naming it; the other files are still read.
//! Every such warning is a gap in the trail ([`Loaded::warnings`]): events may be missing, so
//! `trail-for` calls no image `trusted` while there is one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};

use super::event::{self, Event, Parsed};
use super::interest::{Interest, Roles};

/// Files fetched from S3 at once.
const S3_CONCURRENCY: usize = 16;

/// One place events are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    S3 { bucket: String, prefix: String },
    Local(PathBuf),
    Lookup { region: Option<String> },
}

impl std::str::FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{s}: no bucket; use s3://BUCKET/PREFIX"));
            }
            let mut prefix = prefix.trim_start_matches('/').to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') && !prefix.ends_with(".gz") {
                prefix.push('/');
            }
            return Ok(Source::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if s == "lookup" {
            return Ok(Source::Lookup { region: None });
        }
        if let Some(region) = s.strip_prefix("lookup:") {
            return Ok(Source::Lookup {
                region: Some(region.to_string()),
            });
        }
        if s.contains("://") {
            return Err(format!(
                "{s}: unknown source; use s3://BUCKET/PREFIX, a local directory, or lookup"
            ));
        }
        Ok(Source::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Source::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Source::Local(p) => write!(f, "{}", p.display()),
            Source::Lookup { region: None } => f.write_str("lookup"),
            Source::Lookup { region: Some(r) } => write!(f, "lookup:{r}"),
        }
    }
}

/// The time range searched (inclusive); `None` is open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Range {
    pub fn contains(&self, t: Option<DateTime<Utc>>) -> bool {
        match t {
            None => self.since.is_none() && self.until.is_none(),
            Some(t) => self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u),
        }
    }

    /// Whether a day folder may hold events of the range (files of a day can hold events of the
    /// day before, and events of the last day arrive in the next day's folder).
    fn day_wanted(&self, day: NaiveDate) -> bool {
        let after_start = self
            .since
            .is_none_or(|s| day >= s.date_naive() - Days::new(1));
        let before_end = self
            .until
            .is_none_or(|u| day <= u.date_naive() + Days::new(1));
        after_start && before_end
    }

    /// The day folders of the range, when it is bounded below (and not absurdly long).
    fn days(&self) -> Option<Vec<NaiveDate>> {
        let since = self.since?.date_naive() - Days::new(1);
        let until = self.until.unwrap_or_else(Utc::now).date_naive() + Days::new(1);
        let n = (until - since).num_days();
        if !(0..=3700).contains(&n) {
            return None;
        }
        Some(since.iter_days().take(n as usize + 1).collect())
    }
}

/// Everything the sources held.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Kept events in the range, each once (by `eventID`), ordered by time.
    pub events: Vec<Event>,
    /// Gaps: sources, directories and files that could not be read or parsed, and records that
    /// could not be used. Each may have held events.
    pub warnings: Vec<String>,
    /// Files (or `LookupEvents` pages) read.
    pub files: usize,
    /// Records seen in them.
    pub records: usize,
    /// Events of the kinds the join reads seen in the range, kept or not (see [`Interest`]).
    pub events_seen: usize,
    /// Sources that failed as a whole (bucket not found, API refused).
    pub failed_sources: usize,
}

impl Loaded {
    fn add(
        &mut self,
        origin: &str,
        result: Result<Parsed, String>,
        range: &Range,
        interest: &Interest,
    ) {
        self.files += 1;
        match result {
            Ok(parsed) => {
                self.records += parsed.records;
                for e in parsed.events {
                    if range.contains(e.time) {
                        self.events_seen += 1;
                        if interest.keeps(&e) {
                            self.events.push(e);
                        }
                    }
                }
                // A record that could not be used is a gap only if it may be in the range.
                self.warnings.extend(
                    parsed
                        .warnings
                        .into_iter()
                        .filter(|w| w.time.is_none() || range.contains(w.time))
                        .map(|w| format!("{origin}: {}", w.message)),
                );
            }
            Err(e) => self.warnings.push(format!("{origin}: {e}")),
        }
    }

    /// Adds what a second pass over the same files found (role assumptions): its events, and
    /// any gap the first pass did not already name.
    pub fn merge_second_pass(&mut self, second: Loaded) {
        self.events.extend(second.events);
        for w in second.warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        let mut seen = HashSet::new();
        self.events
            .retain(|e| e.id.as_ref().is_none_or(|id| seen.insert(id.clone())));
        // Files finish in any order: time, then event id, makes the order the same every run.
        self.events
            .sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    }
}

/// Reads every source, keeping the events `interest` keeps; `names` are the event names
/// `LookupEvents` is asked for.
pub async fn load(sources: &[Source], range: Range, names: &[&str], interest: &Interest) -> Loaded {
    let mut loaded = Loaded::default();
    let results =
        futures::future::join_all(sources.iter().map(|s| load_one(s, range, names, interest)))
            .await;
    for (source, result) in sources.iter().zip(results) {
        match result {
            Ok(part) => {
                loaded.files += part.files;
                loaded.records += part.records;
                loaded.events_seen += part.events_seen;
                loaded.events.extend(part.events);
                loaded.warnings.extend(part.warnings);
            }
            Err(e) => {
                loaded.failed_sources += 1;
                loaded.warnings.push(format!("{source}: {e}"));
            }
        }
    }
    loaded.finish();
    loaded
}

async fn load_one(
    source: &Source,
    range: Range,
    names: &[&str],
    interest: &Interest,
) -> Result<Loaded, String> {
    match source {
        Source::Local(path) => load_local(path.clone(), range, interest).await,
        Source::S3 { bucket, prefix } => load_s3(bucket, prefix, range, interest).await,
        Source::Lookup { region } => {
            // LookupEvents is read once: its role assumptions are all kept in the first pass.
            let interest = Interest {
                roles: Roles::All,
                ..interest.clone()
            };
            load_lookup(region.as_deref(), range, names, &interest).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Local files
// ---------------------------------------------------------------------------------------------

/// Parses one log file's (compressed) bytes, off the async threads: parsing is CPU work.
async fn parse_blocking(bytes: Vec<u8>) -> Result<Parsed, String> {
    tokio::task::spawn_blocking(move || event::parse_log_file(std::io::Cursor::new(bytes)))
        .await
        .map_err(|e| format!("parser stopped: {e}"))?
}

/// Parses one local log file as a stream (never read whole into memory).
async fn parse_file_blocking(path: PathBuf) -> Result<Parsed, String> {
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot read: {e}"))?;
        event::parse_log_file(file)
    })
    .await
    .map_err(|e| format!("parser stopped: {e}"))?
}

/// Largest compressed log file fetched from S3 (held in memory while it is parsed).
const MAX_S3_OBJECT_BYTES: i64 = 256 << 20;

fn is_log_file(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".json.gz")
}

/// The day of a log file from its `.../CloudTrail/REGION/YYYY/MM/DD/...` path, if it has one.
fn day_of(path: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    let at = parts.iter().position(|p| *p == "CloudTrail")?;
    let y = parts.get(at + 2)?.parse().ok()?;
    let m = parts.get(at + 3)?.parse().ok()?;
    let d = parts.get(at + 4)?.parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
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

fn walk(dir: &Path, range: &Range, depth: usize, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("{}: cannot read directory: {e}", dir.display()));
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
                errors.push(format!("{}: cannot read directory: {e}", dir.display()));
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
                errors.push(format!("{}: cannot read: {e}", path.display()));
                continue;
            }
        };
        let name = entry.file_name();
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
                errors.push(format!(
                    "{}: more than {MAX_WALK_DEPTH} folders deep (a symlink loop?); not read",
                    path.display()
                ));
                continue;
            }
            walk(&path, range, depth + 1, out, errors);
        } else if is_log_file(&name.to_string_lossy()) {
            out.push(path);
        }
    }
}

async fn load_local(path: PathBuf, range: Range, interest: &Interest) -> Result<Loaded, String> {
    let meta = tokio::fs::metadata(&path)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    let (files, errors) = if meta.is_dir() {
        let root = path.clone();
        tokio::task::spawn_blocking(move || {
            let (mut files, mut errors) = (Vec::new(), Vec::new());
            walk(&root, &range, 0, &mut files, &mut errors);
            (files, errors)
        })
        .await
        .map_err(|e| format!("directory walk stopped: {e}"))?
    } else {
        (vec![path], Vec::new())
    };
    let mut loaded = Loaded {
        warnings: errors,
        ..Loaded::default()
    };
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut results = futures::stream::iter(files)
        .map(|file| async move {
            let result = parse_file_blocking(file.clone()).await;
            (file, result)
        })
        .buffer_unordered(jobs);
    while let Some((file, result)) = results.next().await {
        loaded.add(&file.display().to_string(), result, &range, interest);
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------------------------

async fn s3_client() -> aws_sdk_s3::Client {
    let config = crate::aws::sdk_config(None).await;
    // An emulator on an endpoint URL answers path-style requests only.
    let emulated =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(emulated)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// One ListObjectsV2 listing (all pages): (sub-prefixes, object keys).
async fn list(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    delimiter: bool,
) -> Result<(Vec<String>, Vec<String>), String> {
    let mut req = client.list_objects_v2().bucket(bucket).prefix(prefix);
    if delimiter {
        req = req.delimiter("/");
    }
    let mut pages = req.into_paginator().send();
    let (mut dirs, mut keys) = (Vec::new(), Vec::new());
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "listing s3://{bucket}/{prefix}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
        dirs.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok((dirs, keys))
}

/// The segments after `AWSLogs/` in `prefix`, or `None` when it has no `AWSLogs/`.
fn after_awslogs(prefix: &str) -> Option<Vec<&str>> {
    let at = if prefix.starts_with("AWSLogs/") {
        0
    } else {
        prefix.find("/AWSLogs/")? + 1
    };
    Some(
        prefix[at + "AWSLogs/".len()..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// The keys of the log files under `prefix` that may hold events of `range`.
async fn s3_keys(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    range: &Range,
) -> Result<Vec<String>, String> {
    let wanted = |key: &String| is_log_file(key) && day_of(key).is_none_or(|d| range.day_wanted(d));
    let Some(segs) = after_awslogs(prefix) else {
        if prefix.ends_with(".gz") || prefix.ends_with(".json") {
            return Ok(vec![prefix.to_string()]);
        }
        let (dirs, _) = list(client, bucket, prefix, true).await?;
        let awslogs = format!("{prefix}AWSLogs/");
        if dirs.contains(&awslogs) {
            return Box::pin(s3_keys(client, bucket, &awslogs, range)).await;
        }
        let (_, keys) = list(client, bucket, prefix, false).await?;
        return Ok(keys.into_iter().filter(wanted).collect());
    };
    // [o-ORG/] ACCT / CloudTrail / REGION / YYYY / MM / DD
    let org = segs.first().is_some_and(|s| s.starts_with("o-"));
    let depth = segs.len() - usize::from(org);
    match depth {
        0 | 2 => {
            // AWSLogs/ (or AWSLogs/o-ORG/): accounts; ACCT/CloudTrail/: regions
            let (dirs, _) = list(client, bucket, prefix, true).await?;
            let subs = futures::stream::iter(dirs)
                .map(|d| async move { Box::pin(s3_keys(client, bucket, &d, range)).await })
                .buffer_unordered(S3_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await?;
            Ok(subs.into_iter().flatten().collect())
        }
        1 => {
            // ACCT/: only CloudTrail/ (not CloudTrail-Digest/ or CloudTrail-Insight/)
            Box::pin(s3_keys(
                client,
                bucket,
                &format!("{prefix}CloudTrail/"),
                range,
            ))
            .await
        }
        3 => {
            // REGION/: the days of the range, or every day folder when the range is open
            let day_prefixes: Vec<String> = match range.days() {
                Some(days) => days
                    .into_iter()
                    .map(|d| format!("{prefix}{:04}/{:02}/{:02}/", d.year(), d.month(), d.day()))
                    .collect(),
                None => vec![prefix.to_string()],
            };
            let lists = futures::stream::iter(day_prefixes)
                .map(|p| async move { list(client, bucket, &p, false).await })
                .buffer_unordered(S3_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await?;
            Ok(lists
                .into_iter()
                .flat_map(|(_, keys)| keys)
                .filter(wanted)
                .collect())
        }
        _ => {
            // inside a year, month or day: everything under it
            let (_, keys) = list(client, bucket, prefix, false).await?;
            Ok(keys.into_iter().filter(wanted).collect())
        }
    }
}

async fn load_s3(
    bucket: &str,
    prefix: &str,
    range: Range,
    interest: &Interest,
) -> Result<Loaded, String> {
    let client = s3_client().await;
    let keys = s3_keys(&client, bucket, prefix, &range).await?;
    let mut loaded = Loaded::default();
    let mut results = futures::stream::iter(keys)
        .map(|key| {
            let client = client.clone();
            async move {
                let body = client.get_object().bucket(bucket).key(&key).send().await;
                let result = match body {
                    Err(e) => Err(format!(
                        "cannot read: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    )),
                    Ok(out) if out.content_length.is_some_and(|n| n > MAX_S3_OBJECT_BYTES) => {
                        Err(format!(
                            "{} bytes, more than the {MAX_S3_OBJECT_BYTES} read of one log file",
                            out.content_length.unwrap_or_default()
                        ))
                    }
                    Ok(out) => match out.body.collect().await {
                        Ok(data) => parse_blocking(data.into_bytes().to_vec()).await,
                        Err(e) => Err(format!("cannot read: {e}")),
                    },
                };
                (key, result)
            }
        })
        .buffer_unordered(S3_CONCURRENCY);
    while let Some((key, result)) = results.next().await {
        loaded.add(&format!("s3://{bucket}/{key}"), result, &range, interest);
    }
    Ok(loaded)
}

// ---------------------------------------------------------------------------------------------
// LookupEvents
// ---------------------------------------------------------------------------------------------

/// How far back `LookupEvents` goes.
pub const LOOKUP_DAYS: u64 = 90;

/// Attempts per `LookupEvents` call, counting the first. The API allows two calls a second per
/// account and region, so bursts of `ThrottlingException` are normal; with the backoff below
/// ten attempts ride out about a minute of throttling.
pub const LOOKUP_ATTEMPTS: u32 = 10;

/// The CloudTrail client for `LookupEvents`: the SDK's standard retries (throttling, 5xx,
/// transient network errors) with more attempts and a longer backoff than its defaults.
fn lookup_client(config: &aws_config::SdkConfig) -> aws_sdk_cloudtrail::Client {
    use aws_config::retry::RetryConfig;
    use std::time::Duration;
    let conf = aws_sdk_cloudtrail::config::Builder::from(config)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(LOOKUP_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(500))
                .with_max_backoff(Duration::from_secs(20)),
        )
        .build();
    aws_sdk_cloudtrail::Client::from_conf(conf)
}

/// One line saying which `LookupEvents` call failed, why (the service's error code and
/// message, or what went wrong on the way), and what to do; never the SDK's debug dump.
fn lookup_error<E, R>(
    name: &str,
    region: &str,
    endpoint: &str,
    e: &aws_sdk_cloudtrail::error::SdkError<E, R>,
) -> String
where
    E: aws_sdk_cloudtrail::error::ProvideErrorMetadata,
{
    use aws_sdk_cloudtrail::error::{ProvideErrorMetadata, SdkError};
    let code = e.code().unwrap_or_default();
    let what = match e {
        SdkError::ServiceError(_) => match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            (None, Some(m)) => m.to_string(),
            (None, None) => "the service refused the request".to_string(),
        },
        SdkError::TimeoutError(_) => format!("no answer from {endpoint} in time"),
        SdkError::DispatchFailure(_) => format!("cannot reach {endpoint}"),
        SdkError::ResponseError(_) => format!("the answer from {endpoint} could not be read"),
        SdkError::ConstructionFailure(_) => "the request could not be built".to_string(),
        _ => "failed".to_string(),
    };
    let hint = if code.contains("Throttl") || code == "TooManyRequestsException" {
        "CloudTrail allows 2 LookupEvents calls a second per account and region: run fewer \
         lookups at once and retry, or read the trail's log files (--cloudtrail s3://BUCKET/PREFIX)"
    } else if code.contains("AccessDenied")
        || code.contains("Unrecognized")
        || code.contains("InvalidClientTokenId")
        || code.contains("ExpiredToken")
        || code.contains("SignatureDoesNotMatch")
    {
        "check the AWS credentials, and that they allow cloudtrail:LookupEvents"
    } else if matches!(e, SdkError::ConstructionFailure(_)) {
        "check the AWS credentials and region (AWS_PROFILE, AWS_REGION)"
    } else if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
        "check the network and AWS_ENDPOINT_URL, then retry"
    } else {
        "retry later, or read the trail's log files (--cloudtrail s3://BUCKET/PREFIX)"
    };
    let line = format!(
        "LookupEvents {name} in {region} failed (up to {LOOKUP_ATTEMPTS} attempts): {what}; {hint}"
    );
    // One line, whatever the service said.
    let mut out: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect();
    if line.chars().count() > 400 {
        out.push_str("...");
    }
    out
}

async fn load_lookup(
    region: Option<&str>,
    range: Range,
    names: &[&str],
    interest: &Interest,
) -> Result<Loaded, String> {
    use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
    let config = crate::aws::sdk_config(region).await;
    let Some(region) = config.region().map(|r| r.to_string()) else {
        return Err(
            "LookupEvents: no AWS region; set AWS_REGION or use --cloudtrail lookup:REGION".into(),
        );
    };
    let endpoint = config.endpoint_url().map_or_else(
        || format!("cloudtrail.{region}.amazonaws.com"),
        str::to_string,
    );
    let client = lookup_client(&config);
    let until = range.until.unwrap_or_else(Utc::now);
    let since = range
        .since
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(LOOKUP_DAYS as i64));
    let mut loaded = Loaded::default();
    for name in names {
        let attribute = LookupAttribute::builder()
            .attribute_key(LookupAttributeKey::EventName)
            .attribute_value(*name)
            .build()
            .map_err(|e| format!("lookup attribute: {e}"))?;
        let mut pages = client
            .lookup_events()
            .lookup_attributes(attribute)
            .start_time(aws_smithy_types::DateTime::from_secs(since.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(until.timestamp() + 1))
            .max_results(50)
            .into_paginator()
            .send();
        let mut page_no = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| lookup_error(name, &region, &endpoint, &e))?;
            page_no += 1;
            for ev in page.events() {
                let origin = format!(
                    "LookupEvents {name} page {page_no} event {}",
                    ev.event_id().unwrap_or("?")
                );
                let result = match ev.cloud_trail_event() {
                    Some(json) => event::parse_json(json.as_bytes()),
                    None => Err("no CloudTrailEvent".to_string()),
                };
                loaded.add(&origin, result, &range, interest);
            }
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn sources_parse() {
        let check = |s: &str, want: Source| assert_eq!(s.parse::<Source>().unwrap(), want, "{s}");
        check(
            "s3://b/AWSLogs/1/CloudTrail",
            Source::S3 {
                bucket: "b".into(),
                prefix: "AWSLogs/1/CloudTrail/".into(),
            },
        );
        check(
            "s3://b",
            Source::S3 {
                bucket: "b".into(),
                prefix: "".into(),
            },
        );
        check("lookup", Source::Lookup { region: None });
        check(
            "lookup:eu-west-1",
            Source::Lookup {
                region: Some("eu-west-1".into()),
            },
        );
        check("./trail", Source::Local("./trail".into()));
        assert!("s3:///x".parse::<Source>().is_err());
        assert!("https://x".parse::<Source>().is_err());
    }

    #[test]
    fn layout_and_days() {
        assert_eq!(
            day_of("AWSLogs/1/CloudTrail/us-east-1/2025/11/02/f.json.gz"),
            NaiveDate::from_ymd_opt(2025, 11, 2)
        );
        assert_eq!(day_of("x/y.json"), None);
        assert_eq!(
            after_awslogs("p/AWSLogs/o-1/2/CloudTrail/"),
            Some(vec!["o-1", "2", "CloudTrail"])
        );
        assert_eq!(after_awslogs("AWSLogs/"), Some(vec![]));
        assert_eq!(after_awslogs("logs/"), None);
        let r = Range {
            since: Some(t("2025-11-02T10:00:00Z")),
            until: Some(t("2025-11-03T10:00:00Z")),
        };
        let days = r.days().unwrap();
        assert_eq!(days.first(), NaiveDate::from_ymd_opt(2025, 11, 1).as_ref());
        assert_eq!(days.last(), NaiveDate::from_ymd_opt(2025, 11, 4).as_ref());
        assert!(!r.day_wanted(NaiveDate::from_ymd_opt(2025, 10, 31).unwrap()));
        assert!(r.contains(Some(t("2025-11-02T10:00:00Z"))));
        assert!(!r.contains(Some(t("2025-11-03T10:00:01Z"))));
        assert!(!r.contains(None));
        assert!(Range::default().contains(None));
    }

    #[test]
    fn a_skipped_record_outside_the_range_is_no_gap() {
        let range = Range {
            since: Some(t("2022-03-06T00:00:00Z")),
            until: Some(t("2022-03-08T00:00:00Z")),
        };
        let skipped = |time: Option<&str>, message: &str| event::Skipped {
            time: time.map(t),
            message: message.into(),
        };
        let parsed = Parsed {
            warnings: vec![
                skipped(Some("2022-03-01T00:00:00Z"), "before"),
                skipped(Some("2022-03-07T00:00:00Z"), "inside"),
                skipped(None, "no time"),
                skipped(Some("2022-03-09T00:00:00Z"), "after"),
            ],
            ..Parsed::default()
        };
        let mut loaded = Loaded::default();
        loaded.add("f.json", Ok(parsed), &range, &Interest::everything());
        assert_eq!(loaded.warnings, ["f.json: inside", "f.json: no time"]);
    }

    #[tokio::test]
    async fn local_directory_reads_the_range_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let sample = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/cloudtrail/kms-sign-awsdocs-rsa-raw.json"),
        )
        .unwrap();
        let mut rec: serde_json::Value = serde_json::from_slice(&sample).unwrap();
        let day = |d: &str| {
            dir.path().join(format!(
                "AWSLogs/111122223333/CloudTrail/us-west-2/2022/03/{d}"
            ))
        };
        for (d, id) in [("07", "in"), ("01", "old")] {
            std::fs::create_dir_all(day(d)).unwrap();
            rec["eventID"] = id.into();
            rec["eventTime"] = format!("2022-03-{d}T22:36:44Z").into();
            let doc = serde_json::json!({ "Records": [rec.clone(), rec.clone()] });
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, doc.to_string().as_bytes()).unwrap();
            std::fs::write(day(d).join("a.json.gz"), gz.finish().unwrap()).unwrap();
        }
        std::fs::write(day("07").join("broken.json.gz"), b"\x1f\x8b\x08garbage").unwrap();
        std::fs::write(day("07").join("notes.txt"), b"not a log").unwrap();
        // Siblings of CloudTrail/ in the account folder are other services' files, not read.
        for (folder, file, text) in [
            (
                "CloudTrail-Digest",
                "111122223333_CloudTrail-Digest_us-west-2_t_us-west-2_20220307T230000Z.json.gz",
                "{\"awsAccountId\":\"111122223333\",\"logFiles\":[]}",
            ),
            (
                "Config",
                "111122223333_Config_us-west-2_ConfigHistory_20220307T230000Z.json.gz",
                "{\"configurationItems\":[]}",
            ),
        ] {
            let d = dir.path().join(format!(
                "AWSLogs/111122223333/{folder}/us-west-2/2022/03/07"
            ));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(file), text).unwrap();
        }
        // A folder reached through a symlink is read like the real one.
        let linked = tempfile::tempdir().unwrap();
        rec["eventID"] = "linked".into();
        rec["eventTime"] = "2022-03-07T23:00:00Z".into();
        std::fs::write(
            linked.path().join("b.json"),
            serde_json::json!({ "Records": [rec.clone()] }).to_string(),
        )
        .unwrap();
        std::os::unix::fs::symlink(linked.path(), day("07").join("more")).unwrap();
        let range = Range {
            since: Some(t("2022-03-06T00:00:00Z")),
            until: Some(t("2022-03-08T00:00:00Z")),
        };
        let source: Source = dir.path().to_str().unwrap().parse().unwrap();
        let loaded = load(&[source], range, &[], &Interest::everything()).await;
        assert_eq!(
            loaded.files, 3,
            "the old day folder, CloudTrail-Digest/ and Config/ are skipped, the text file ignored"
        );
        let ids: Vec<_> = loaded.events.iter().map(|e| e.id.as_deref()).collect();
        assert_eq!(
            ids,
            [Some("in"), Some("linked")],
            "duplicates by eventID are dropped"
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0].contains("broken.json.gz"),
            "{}",
            loaded.warnings[0]
        );
        let missing = load(
            &[Source::Local(dir.path().join("nope"))],
            range,
            &[],
            &Interest::everything(),
        )
        .await;
        assert_eq!(missing.failed_sources, 1);
    }
}
