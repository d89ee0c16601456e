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
use std::path::PathBuf;

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::event::{self, Event, Parsed};
use super::integrity::{DigestRead, LogRead};
use super::interest::{Interest, Roles};

pub mod athena;
pub mod lake;
mod local;
mod lookup;
mod s3;

pub use lookup::{LOOKUP_ATTEMPTS, LOOKUP_DAYS};

/// Files fetched from S3 at once.
const S3_CONCURRENCY: usize = 16;

/// One place events are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    S3 {
        bucket: String,
        prefix: String,
    },
    Local(PathBuf),
    Lookup {
        region: Option<String>,
    },
    /// `athena:DATABASE.TABLE`, with the `--athena-*` settings.
    Athena(Box<athena::Athena>),
    /// `lake:EVENT_DATA_STORE`.
    Lake(lake::Lake),
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
        if let Some(store) = s.strip_prefix("lake:") {
            return lake::Lake::parse(store).map(Source::Lake);
        }
        if let Some(table) = s.strip_prefix("athena:") {
            return athena::Athena::parse(table).map(|a| Source::Athena(Box::new(a)));
        }
        if s.contains("://") {
            return Err(format!(
                "{s}: unknown source; use s3://BUCKET/PREFIX, a local directory, lookup, \
                 athena:DATABASE.TABLE or lake:EVENT_DATA_STORE"
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
            Source::Athena(a) => write!(f, "athena:{}.{}", a.database, a.table),
            Source::Lake(l) => write!(f, "lake:{}", l.store),
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

    /// Whether a digest day folder (named by the digest's end) may list log files of the range:
    /// one more day after the log files' last.
    fn digest_day_wanted(&self, day: NaiveDate) -> bool {
        self.day_wanted(day)
            || self
                .until
                .is_some_and(|u| day == u.date_naive() + Days::new(2))
    }

    /// The day folders of the range, when it is bounded below (and not absurdly long).
    fn days(&self) -> Option<Vec<NaiveDate>> {
        self.days_with(1)
    }

    /// The digest day folders of the range (see [`Range::digest_day_wanted`]).
    fn digest_days(&self) -> Option<Vec<NaiveDate>> {
        self.days_with(2)
    }

    fn days_with(&self, after: u64) -> Option<Vec<NaiveDate>> {
        let since = self.since?.date_naive() - Days::new(1);
        let until = self.until.unwrap_or_else(Utc::now).date_naive() + Days::new(after);
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
    /// The log files read (events name theirs by index), for the integrity check.
    pub logs: Vec<LogRead>,
    /// The digest files read beside them.
    pub digests: Vec<DigestRead>,
    /// For each log file (by origin) that holds role assumptions in the range: the sorted
    /// [`super::interest::role_hash`]es of the access key ids and assumed-role ARNs they
    /// returned, kept or not, so that the second pass reads only the files it needs.
    pub roles_in: std::collections::HashMap<String, Vec<u64>>,
    /// Log folders (bucket, `.../CloudTrail/REGION/`) whose keys in the range were listed, not
    /// read: Athena's, beside the files its rows came from.
    pub listed_folders: std::collections::BTreeSet<(String, String)>,
    /// What that listing found (`BUCKET/KEY`): there, though not read.
    pub present: HashSet<String>,
}

impl Loaded {
    /// Adds what one log file (`file`: where it was read) or one `LookupEvents` page (`None`)
    /// held.
    fn add(
        &mut self,
        origin: &str,
        file: Option<LogRead>,
        result: Result<Parsed, String>,
        range: &Range,
        interest: &Interest,
    ) {
        self.files += 1;
        match result {
            Ok(parsed) => {
                self.records += parsed.records;
                let index = file.map(|mut f| {
                    f.sha256 = parsed.sha256.clone().unwrap_or_default();
                    self.logs.push(f);
                    (self.logs.len() - 1) as u32
                });
                let mut roles = Vec::new();
                for mut e in parsed.events {
                    if range.contains(e.time) {
                        if let Some(a) = e.as_assume_role() {
                            for s in [&a.access_key_id, &a.assumed_role_arn]
                                .into_iter()
                                .flatten()
                            {
                                roles.push(super::interest::role_hash(s));
                            }
                        }
                        self.events_seen += 1;
                        if interest.keeps(&e) {
                            e.file = index;
                            self.events.push(e);
                        }
                    }
                }
                if index.is_some() && !roles.is_empty() {
                    roles.sort_unstable();
                    roles.dedup();
                    self.roles_in.insert(origin.to_string(), roles);
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
        // The same files, read again: their events name the first pass's entries.
        let mut at: std::collections::HashMap<String, u32> = self
            .logs
            .iter()
            .enumerate()
            .map(|(i, l)| (l.origin.clone(), i as u32))
            .collect();
        let mut changed = Vec::new();
        let remap: Vec<u32> = second
            .logs
            .into_iter()
            .map(|l| {
                let i = *at.entry(l.origin.clone()).or_insert_with(|| {
                    self.logs.push(l.clone());
                    (self.logs.len() - 1) as u32
                });
                let first = &self.logs[i as usize];
                if !l.sha256.is_empty() && !first.sha256.is_empty() && first.sha256 != l.sha256 {
                    changed.push(format!(
                        "{}: changed between the two passes over it (SHA-256 {} then {}): \
                         someone is writing to the trail; run again",
                        l.origin, first.sha256, l.sha256
                    ));
                }
                i
            })
            .collect();
        self.warnings.extend(changed);
        self.events.extend(second.events.into_iter().map(|mut e| {
            e.file = e.file.and_then(|f| remap.get(f as usize).copied());
            e
        }));
        for w in second.warnings {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        self.finish();
    }

    /// Whether a log file a digest lists (bucket, key) would have been read: in a folder
    /// (`.../CloudTrail/REGION/`) some file was read from, on a day of `range`.
    pub fn would_read(&self, range: Range) -> impl Fn(&str, &str) -> bool {
        use super::integrity::digest::layout_tail;
        let mut folders = HashSet::new();
        // The folders log files were read from, and those whose digests were read: a folder
        // whose every log file is gone is known from its digests.
        let read = self.logs.iter().map(|l| (&l.bucket, log_folder(&l.key)));
        let digested = self.digests.iter().map(|d| {
            (
                &d.bucket,
                log_folder(&d.key.replacen("/CloudTrail-Digest/", "/CloudTrail/", 1)),
            )
        });
        for (bucket, folder) in read.chain(digested) {
            if let Some(f) = folder {
                folders.insert(match bucket {
                    Some(b) => format!("{b}/{f}"),
                    None => layout_tail(&f).unwrap_or(&f).to_string(),
                });
            }
        }
        let present = self.present.clone();
        move |bucket: &str, key: &str| {
            let Some(f) = log_folder(key) else {
                return false;
            };
            if present.contains(&format!("{bucket}/{key}")) {
                return false;
            }
            let here = folders.contains(&format!("{bucket}/{f}"))
                || layout_tail(&f).is_some_and(|t| folders.contains(t));
            here && day_of(key).is_none_or(|d| range.day_wanted(d))
        }
    }

    fn finish(&mut self) {
        // Files finish in any order: time, event id, then the file's name make the order (and
        // which copy of an event is kept) the same every run.
        let logs = &self.logs;
        let origin = |e: &Event| e.file.map(|f| logs[f as usize].origin.as_str());
        self.events
            .sort_by(|a, b| (a.time, &a.id, origin(a)).cmp(&(b.time, &b.id, origin(b))));
        let mut seen = HashSet::new();
        self.events
            .retain(|e| e.id.as_ref().is_none_or(|id| seen.insert(id.clone())));
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
                let base = loaded.logs.len() as u32;
                loaded.events.extend(part.events.into_iter().map(|mut e| {
                    e.file = e.file.map(|f| f + base);
                    e
                }));
                loaded.logs.extend(part.logs);
                loaded.digests.extend(part.digests);
                loaded.roles_in.extend(part.roles_in);
                loaded.listed_folders.extend(part.listed_folders);
                loaded.present.extend(part.present);
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
        Source::Local(path) => local::load_local(path.clone(), range, interest).await,
        Source::S3 { bucket, prefix } => s3::load_s3(bucket, prefix, range, interest).await,
        Source::Lookup { region } => {
            // LookupEvents is read once: its role assumptions are all kept in the first pass.
            let interest = Interest {
                roles: Roles::All,
                ..interest.clone()
            };
            lookup::load_lookup(region.as_deref(), range, names, &interest).await
        }
        // Athena runs its own second query for the role assumptions.
        Source::Athena(athena) => athena::load_athena(athena, range, interest).await,
        Source::Lake(lake) => lake::load_lake(lake, range, interest).await,
    }
}

// ---------------------------------------------------------------------------------------------
// What every file source shares
// ---------------------------------------------------------------------------------------------

/// Parses one log file's (compressed) bytes, off the async threads: parsing is CPU work.
async fn parse_blocking(bytes: Vec<u8>, hash: bool) -> Result<Parsed, String> {
    tokio::task::spawn_blocking(move || event::parse_log_file(std::io::Cursor::new(bytes), hash))
        .await
        .map_err(|e| format!("parser stopped: {e}"))?
}

fn is_log_file(name: &str) -> bool {
    name.ends_with(".json") || name.ends_with(".json.gz")
}

/// The day of a log file from its `.../CloudTrail/REGION/YYYY/MM/DD/...` path, if it has one.
fn day_of(path: &str) -> Option<NaiveDate> {
    day_in(path, "CloudTrail")
}

/// A log file's folder: its key or path up to `.../CloudTrail/REGION/`.
fn log_folder(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let at = parts.iter().rposition(|p| *p == "CloudTrail")?;
    parts.get(at + 1)?;
    Some(format!("{}/", parts[..at + 2].join("/")))
}

/// The day of a digest file from its `.../CloudTrail-Digest/REGION/YYYY/MM/DD/...` path.
fn digest_day_of(path: &str) -> Option<NaiveDate> {
    day_in(path, "CloudTrail-Digest")
}

fn day_in(path: &str, folder: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = path.split(['/', '\\']).collect();
    let at = parts.iter().position(|p| *p == folder)?;
    let y = parts.get(at + 2)?.parse().ok()?;
    let m = parts.get(at + 3)?.parse().ok()?;
    let d = parts.get(at + 4)?.parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::s3::after_awslogs;
    use super::*;
    use std::path::Path;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A file that reads differently in the second pass than in the first (someone writing to
    /// the trail between them) is a gap; the same bytes are not.
    #[test]
    fn a_file_changed_between_the_passes_is_a_gap() {
        let log = |sha: &str| LogRead {
            origin: "s3://b/k.json.gz".into(),
            key: "k.json.gz".into(),
            sha256: sha.into(),
            ..LogRead::default()
        };
        let pass = |sha: &str| Loaded {
            logs: vec![log(sha)],
            ..Loaded::default()
        };
        let mut same = pass("aa");
        same.merge_second_pass(pass("aa"));
        assert!(same.warnings.is_empty(), "{:?}", same.warnings);
        assert_eq!(same.logs.len(), 1);
        let mut changed = pass("aa");
        changed.merge_second_pass(pass("bb"));
        assert_eq!(changed.logs.len(), 1);
        assert_eq!(changed.warnings.len(), 1, "{:?}", changed.warnings);
        assert!(
            changed.warnings[0].contains("changed between the two passes"),
            "{:?}",
            changed.warnings
        );
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
        let file = LogRead {
            origin: "f.json".into(),
            ..LogRead::default()
        };
        loaded.add(
            "f.json",
            Some(file),
            Ok(parsed),
            &range,
            &Interest::everything(),
        );
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
