//! `athena:DATABASE.TABLE`: the CloudTrail search pushed down to Amazon Athena, for trails too
//! big to stream (an organization's history). The table is the one AWS documents for CloudTrail
//! (`docs/athena.md`: the organization variant, partitioned by account, region and date, or
//! the partition-projection variant of one account, partitioned by `timestamp`).
//!
//! - [`sql`] writes only the queries the records in hand need; their rows ([`rows`]) become
//!   CloudTrail records for the same parser, [`Interest`] and join as a log file's.
//! - The role assumptions of the callers the first queries found are a second query, like the
//!   file sources' second pass.
//! - Each query's progress, bytes scanned and cost (at $5 per TB, 10^12 bytes, rounded up to
//!   the MB, 10 MB at least) go to stderr; `--athena-max-scan` stops a query that scans more
//!   and fails the source.
//! - **Integrity.** Every row carries the S3 object it came from (`$path`). With `--integrity`
//!   on, each such object is fetched and hashed and checked against CloudTrail's digests like
//!   any log file read from S3, and each row must be an event of that object; the other log
//!   files the digests list in those folders must still be in the bucket (listed, not hashed).
//!   The `--key` keys' own folders (their account and region, in each trail root the rows
//!   showed) are checked too, rows or not: deleting the one log file that holds someone's
//!   `Sign` is seen. What this cannot see: a log file rewritten to drop events that no row came
//!   from (reading every file to hash it is what Athena is there to avoid), other folders no
//!   row came from, and anything when no row at all names the bucket.
//!
//! Any failure (throttling past the SDK's retries, a failed or cancelled query, a missing
//! table, the scan cap) fails the source as a whole: a gap, so no image is `trusted`.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{Loaded, Range, S3_CONCURRENCY};
use crate::trail::event::{self, Parsed};
use crate::trail::integrity::digest;
use crate::trail::interest::{Interest, Roles};

pub mod rows;
pub mod sql;

pub use sql::Layout;

/// Athena's price per byte scanned: $5 per TB (see the module doc).
const DOLLARS_PER_TB: f64 = 5.0;
/// Rows asked for a page (Athena's most).
const PAGE_ROWS: i32 = 1000;
/// Attempts per Athena or Lake call, counting the first (throttling is common under the
/// account's active-query quota).
pub(super) const ATTEMPTS: u32 = 6;

/// An Athena table and how to query it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Athena {
    pub database: String,
    pub table: String,
    /// `--athena-workgroup` (Athena's default: `primary`).
    pub workgroup: Option<String>,
    /// `--athena-output s3://...`, when the workgroup has no result location.
    pub output: Option<String>,
    /// `--athena-max-scan`: stop a query that scans more bytes than this.
    pub max_scan: Option<u64>,
    pub layout: Layout,
    /// `-q`: no progress or cost lines on stderr.
    pub quiet: bool,
}

impl Athena {
    /// `DATABASE.TABLE` (what follows `athena:`).
    pub fn parse(s: &str) -> Result<Athena, String> {
        let (database, table) = s
            .split_once('.')
            .filter(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'))
            .ok_or_else(|| format!("athena:{s}: name the table as athena:DATABASE.TABLE"))?;
        Ok(Athena {
            database: database.to_string(),
            table: table.to_string(),
            workgroup: None,
            output: None,
            max_scan: None,
            layout: Layout::default(),
            quiet: false,
        })
    }

    fn table_sql(&self) -> String {
        sql::table_name(&self.database, &self.table)
    }
}

/// What a query cost.
fn cost(bytes: u64) -> f64 {
    const MB: u64 = 1_000_000;
    let billed = bytes.div_ceil(MB).max(10) * MB;
    billed as f64 / 1e12 * DOLLARS_PER_TB
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=999_999 => format!("{:.1} kB", b / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", b / 1e6),
        1_000_000_000..=999_999_999_999 => format!("{:.2} GB", b / 1e9),
        _ => format!("{:.2} TB", b / 1e12),
    }
}

/// The SDK's standard retries (throttling, 5xx, transient network errors), with
/// [`ATTEMPTS`] attempts: for Athena and for Lake.
pub(super) fn retry() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(ATTEMPTS)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(10))
}

fn client(config: &aws_config::SdkConfig) -> aws_sdk_athena::Client {
    let conf = aws_sdk_athena::config::Builder::from(config)
        .retry_config(retry())
        .build();
    aws_sdk_athena::Client::from_conf(conf)
}

fn sdk_error<E, R>(what: &str, e: &aws_sdk_athena::error::SdkError<E, R>) -> String
where
    E: aws_sdk_athena::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_athena::error::ProvideErrorMetadata;
    let code = e.code().unwrap_or_default();
    let detail = crate::aws::error_detail(e);
    let hint = if code.contains("Throttl") || code == "TooManyRequestsException" {
        format!(
            "; throttled after {ATTEMPTS} attempts: the account's active Athena queries are at \
             their quota; run again later or ask for a higher quota"
        )
    } else if code == "InvalidRequestException" && detail.contains("output location") {
        "; give --athena-output s3://BUCKET/PREFIX/ or set the workgroup's result location"
            .to_string()
    } else {
        String::new()
    };
    format!("{what}: {detail}{hint}")
}

/// Runs one query to the end: its rows, or why not.
async fn run(
    client: &aws_sdk_athena::Client,
    athena: &Athena,
    query: &sql::Query,
) -> Result<Vec<rows::Row>, String> {
    use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
    let name = query.name;
    let mut start = client
        .start_query_execution()
        .query_string(&query.sql)
        .query_execution_context(
            QueryExecutionContext::builder()
                .database(&athena.database)
                .build(),
        );
    if let Some(wg) = &athena.workgroup {
        start = start.work_group(wg);
    }
    if let Some(out) = &athena.output {
        start =
            start.result_configuration(ResultConfiguration::builder().output_location(out).build());
    }
    let started = start
        .send()
        .await
        .map_err(|e| sdk_error(&format!("query {name}: cannot start"), &e))?;
    let id = started
        .query_execution_id()
        .ok_or_else(|| format!("query {name}: Athena gave no query execution id"))?
        .to_string();
    let began = Instant::now();
    let mut delay = Duration::from_millis(200);
    let mut last_line = Instant::now();
    let scanned = loop {
        let got = client
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("query {name} ({id})"), &e))?;
        let exec = got
            .query_execution()
            .ok_or_else(|| format!("query {name} ({id}): Athena described no execution"))?;
        let scanned = exec
            .statistics()
            .and_then(|s| s.data_scanned_in_bytes())
            .unwrap_or(0)
            .max(0) as u64;
        let status = exec.status();
        let state = status.and_then(|s| s.state()).cloned();
        if let Some(cap) = athena.max_scan.filter(|cap| scanned > *cap) {
            if matches!(
                state,
                Some(QueryExecutionState::Queued | QueryExecutionState::Running)
            ) {
                let _ = client
                    .stop_query_execution()
                    .query_execution_id(&id)
                    .send()
                    .await;
            }
            return Err(format!(
                "query {name} ({id}) scanned {} ({scanned} bytes), more than --athena-max-scan \
                 {cap}: stopped and its rows not used; narrow --since/--until, or raise the cap",
                human(scanned)
            ));
        }
        match state {
            Some(QueryExecutionState::Succeeded) => break scanned,
            Some(QueryExecutionState::Failed | QueryExecutionState::Cancelled) => {
                let reason = status
                    .and_then(|s| s.state_change_reason())
                    .unwrap_or("no reason given");
                let hint =
                    if reason.contains("TABLE_NOT_FOUND") || reason.contains("does not exist") {
                        format!(
                            "; create the table {}.{} with the DDL in docs/athena.md, or name \
                         another with --cloudtrail athena:DATABASE.TABLE",
                            athena.database, athena.table
                        )
                    } else {
                        String::new()
                    };
                return Err(format!(
                    "query {name} ({id}) {}: {reason}{hint}",
                    state.map_or("failed", |s| if s == QueryExecutionState::Failed {
                        "failed"
                    } else {
                        "was cancelled"
                    })
                ));
            }
            _ => {
                if !athena.quiet && last_line.elapsed() >= Duration::from_secs(5) {
                    eprintln!(
                        "trail-for: athena: {name}: {} after {:.0} s, {} scanned",
                        state.as_ref().map_or("QUEUED", |s| s.as_str()),
                        began.elapsed().as_secs_f64(),
                        human(scanned)
                    );
                    last_line = Instant::now();
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    };
    let rows = results(client, name, &id).await?;
    if athena.quiet {
        return Ok(rows);
    }
    eprintln!(
        "trail-for: athena: {name}: {} rows in {:.1} s, scanned {} ({scanned} bytes), \
         cost ${:.4} at ${DOLLARS_PER_TB}/TB",
        rows.len(),
        began.elapsed().as_secs_f64(),
        human(scanned),
        cost(scanned)
    );
    Ok(rows)
}

/// Every page of a finished query's results, by column name; the header row Athena puts first
/// is dropped.
async fn results(
    client: &aws_sdk_athena::Client,
    name: &str,
    id: &str,
) -> Result<Vec<rows::Row>, String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut columns: Vec<String> = Vec::new();
    let mut first_page = true;
    loop {
        let page = client
            .get_query_results()
            .query_execution_id(id)
            .max_results(PAGE_ROWS)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("query {name} ({id}): results"), &e))?;
        let Some(set) = page.result_set() else {
            break;
        };
        if columns.is_empty() {
            columns = set
                .result_set_metadata()
                .map(|m| {
                    m.column_info()
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect()
                })
                .unwrap_or_default();
        }
        for (i, row) in set.rows().iter().enumerate() {
            let values: Vec<Option<String>> = row
                .data()
                .iter()
                .map(|d| d.var_char_value().map(str::to_string))
                .collect();
            let header = values
                .iter()
                .zip(&columns)
                .all(|(v, c)| v.as_deref() == Some(c.as_str()));
            if first_page && i == 0 && header {
                continue;
            }
            if values.len() != columns.len() {
                return Err(format!(
                    "query {name} ({id}): a row of {} values for {} columns",
                    values.len(),
                    columns.len()
                ));
            }
            out.push(columns.iter().cloned().zip(values).collect());
        }
        first_page = false;
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The queries the records need, run by `run`: the first pass, then the role assumptions of
/// the callers it found. Returns every row, and the interest the rows are read with (the first
/// pass's, keeping those role assumptions); a key that cannot be searched is a gap in
/// `warnings`. Athena's and Lake's.
pub(super) async fn search<F, Fut>(
    source: &str,
    table: &str,
    dialect: sql::Dialect,
    range: Range,
    interest: &Interest,
    warnings: &mut Vec<String>,
    run: F,
) -> Result<(Vec<rows::Row>, Interest), String>
where
    F: Fn(sql::Query) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<rows::Row>, String>>,
{
    let (queries, unsearchable) = sql::first_pass(table, dialect, &range, interest);
    for key in unsearchable {
        warnings.push(format!(
            "{source}: key {key}: no key ARN (it could not be resolved), so its Sign events \
             cannot be searched by the ARN in resources; give the key's ARN"
        ));
    }
    let runs = futures::future::join_all(queries.into_iter().map(&run)).await;
    let mut rows = Vec::new();
    for r in runs {
        rows.extend(r?);
    }
    // The second query: the role assumptions of the callers the first found.
    let roles = match interest.roles {
        Roles::None => Interest::roles_of(&events_of(&rows, range, interest)),
        _ => interest.clone(),
    };
    if let Some(q) = sql::roles(table, dialect, &range, &roles) {
        rows.extend(run(q).await?);
    }
    let interest = Interest {
        roles: roles.roles,
        ..interest.clone()
    };
    Ok((rows, interest))
}

/// Runs the queries the records need and turns their rows into events, with the integrity
/// check's inputs when `interest.hash_files`.
pub(super) async fn load_athena(
    athena: &Athena,
    range: Range,
    interest: &Interest,
) -> Result<Loaded, String> {
    let config = crate::aws::sdk_config(None).await;
    let client = &client(&config);
    let mut loaded = Loaded::default();
    let (rows, interest) = search(
        &format!("athena:{}.{}", athena.database, athena.table),
        &athena.table_sql(),
        sql::Dialect::Athena(athena.layout),
        range,
        interest,
        &mut loaded.warnings,
        |q| async move { run(client, athena, &q).await },
    )
    .await?;
    let interest = &interest;
    let by_path = rows::records_by_path(&rows);
    drop(rows);
    let s3 = if interest.hash_files {
        Some(super::s3::s3_client().await)
    } else {
        None
    };
    // Each object the rows came from: fetched and hashed (integrity on), then its rows added,
    // one at a time (a fetched file's events are dropped once its rows are matched).
    let mut fetched = futures::stream::iter(by_path)
        .map(|(path, records)| {
            let s3 = s3.clone();
            async move {
                let file = match &s3 {
                    Some(s3) => Some(fetch(s3, &path).await),
                    None => None,
                };
                (path, records, file)
            }
        })
        .buffered(S3_CONCURRENCY);
    let mut folders: BTreeSet<(String, String)> = BTreeSet::new();
    let mut buckets: BTreeSet<String> = BTreeSet::new();
    while let Some((path, records, file)) = fetched.next().await {
        let parsed = event::parse_json(
            serde_json::json!({ "Records": records })
                .to_string()
                .as_bytes(),
        );
        let origin = if path.is_empty() {
            "athena (no $path)".to_string()
        } else {
            path.clone()
        };
        let Some(file) = file else {
            loaded.add(&origin, None, parsed, &range, interest);
            continue;
        };
        match file {
            Err(e) => loaded.warnings.push(format!("{origin}: {e}")),
            Ok((read, in_file)) => {
                // The evidence is the authentic file's own events, those the rows named: a
                // row only says which. A table defined to read other fields than CloudTrail's
                // cannot change what an event says, and a row its file does not hold is a gap.
                let parsed = parsed.map(|rows| {
                    let named: HashSet<String> =
                        rows.events.iter().filter_map(|e| e.id.clone()).collect();
                    let held: HashSet<&str> = in_file
                        .events
                        .iter()
                        .filter_map(|e| e.id.as_deref())
                        .collect();
                    let mut stray: Vec<&String> = named
                        .iter()
                        .filter(|id| !held.contains(id.as_str()))
                        .collect();
                    stray.sort();
                    if !stray.is_empty() {
                        let stray: Vec<&str> = stray.iter().map(|s| s.as_str()).collect();
                        loaded.warnings.push(format!(
                            "{origin}: Athena returned events this log file does not hold ({}): \
                             the table does not read what the bucket holds",
                            stray.join(", ")
                        ));
                    }
                    Parsed {
                        records: rows.records,
                        events: in_file
                            .events
                            .iter()
                            .filter(|e| e.id.as_ref().is_some_and(|id| named.contains(id)))
                            .cloned()
                            .collect(),
                        warnings: rows.warnings,
                        sha256: in_file.sha256.clone(),
                    }
                });
                if let Some(b) = &read.bucket {
                    buckets.insert(b.clone());
                    if let Some(f) = digest::digest_prefix_for_log(&read.key) {
                        folders.insert((b.clone(), f));
                    }
                    if let Some(f) = super::log_folder(&read.key) {
                        loaded.listed_folders.insert((b.clone(), f));
                    }
                }
                loaded.add(&origin.clone(), Some(read), parsed, &range, interest);
            }
        }
    }
    if s3.is_some() {
        // The keys' own folders, in every trail root the rows showed: a folder that no row came
        // from (its one log file, with someone's Sign, deleted) is checked all the same.
        for (bucket, folder) in key_folders(&loaded, interest) {
            folders.extend(digest::digest_prefix_for_log(&folder).map(|f| (bucket.clone(), f)));
            loaded.listed_folders.insert((bucket, folder));
        }
    }
    if let Some(s3) = &s3 {
        integrity_inputs(s3, &mut loaded, folders, buckets, &range).await;
    }
    Ok(loaded)
}

/// `ROOT/ACCT/CloudTrail/REGION/` for each key of `interest` (with its account and region)
/// and each trail root (`AWSLogs/` or `AWSLogs/o-ORG/`, by bucket) of the log files read.
fn key_folders(loaded: &Loaded, interest: &Interest) -> BTreeSet<(String, String)> {
    let mut roots = BTreeSet::new();
    for l in &loaded.logs {
        let (Some(bucket), Some(at)) = (&l.bucket, l.key.find("AWSLogs/")) else {
            continue;
        };
        let rest = &l.key[at + "AWSLogs/".len()..];
        let org = rest
            .split('/')
            .next()
            .filter(|s| s.starts_with("o-"))
            .map(|o| format!("{o}/"))
            .unwrap_or_default();
        roots.insert((bucket.clone(), format!("{}AWSLogs/{org}", &l.key[..at])));
    }
    let keys = interest.keys.iter().flatten();
    let places: BTreeSet<(&String, &String)> = keys
        .filter_map(|k| k.account.as_ref().zip(k.region.as_ref()))
        .collect();
    roots
        .iter()
        .flat_map(|(bucket, root)| {
            places.iter().map(move |(account, region)| {
                (
                    bucket.clone(),
                    format!("{root}{account}/CloudTrail/{region}/"),
                )
            })
        })
        .collect()
}

/// The digests of the folders rows came from, each bucket's Object Lock setting, and the keys
/// still in those folders (a log file a digest lists that is not there was deleted).
async fn integrity_inputs(
    s3: &aws_sdk_s3::Client,
    loaded: &mut Loaded,
    folders: BTreeSet<(String, String)>,
    buckets: BTreeSet<String>,
    range: &Range,
) {
    for bucket in buckets {
        let lock = super::s3::bucket_lock(s3, &bucket).await;
        for l in loaded
            .logs
            .iter_mut()
            .filter(|l| l.bucket.as_deref() == Some(&bucket))
        {
            if let Some(x) = &mut l.lock {
                x.bucket = lock.clone();
            }
        }
    }
    for (bucket, folder) in folders {
        match super::s3::digests(s3, &bucket, &folder, range).await {
            Ok(found) => loaded.digests.extend(found),
            Err(e) => loaded.warnings.push(e),
        }
    }
    let listed = std::mem::take(&mut loaded.listed_folders);
    for (bucket, folder) in &listed {
        let prefixes: Vec<String> = match range.days() {
            Some(days) => days
                .into_iter()
                .map(|d| format!("{folder}{}/", d.format("%Y/%m/%d")))
                .collect(),
            None => vec![folder.clone()],
        };
        for p in prefixes {
            match super::s3::list(s3, bucket, &p, false).await {
                Ok((_, keys)) => loaded
                    .present
                    .extend(keys.into_iter().map(|k| format!("{bucket}/{k}"))),
                Err(e) => loaded.warnings.push(e),
            }
        }
    }
    loaded.listed_folders = listed;
}

/// The object at `s3://BUCKET/KEY`, fetched and hashed, with the events it holds.
async fn fetch(
    s3: &aws_sdk_s3::Client,
    path: &str,
) -> Result<(crate::trail::integrity::LogRead, Parsed), String> {
    let (bucket, key) = path
        .strip_prefix("s3://")
        .and_then(|p| p.split_once('/'))
        .ok_or_else(|| "Athena named no S3 object ($path) for these rows".to_string())?;
    let (read, parsed) = super::s3::fetch_log(s3, bucket, key, true).await;
    Ok((read, parsed?))
}

/// The events of `rows` in `range` that `interest` keeps (to find the callers).
fn events_of(rows: &[rows::Row], range: Range, interest: &Interest) -> Vec<event::Event> {
    let mut out = Vec::new();
    for (_, records) in rows::records_by_path(rows) {
        if let Ok(p) = event::parse_json(
            serde_json::json!({ "Records": records })
                .to_string()
                .as_bytes(),
        ) {
            out.extend(
                p.events
                    .into_iter()
                    .filter(|e| range.contains(e.time) && interest.keeps(e)),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_costs_and_sizes() {
        let a = Athena::parse("cloudtrail.org_trail").unwrap();
        assert_eq!(
            (a.database.as_str(), a.table.as_str()),
            ("cloudtrail", "org_trail")
        );
        assert!(Athena::parse("no_table").is_err());
        assert!(Athena::parse("a.b.c").is_err());
        assert!(Athena::parse(".t").is_err());
        // 10 MB at least; rounded up to the MB
        assert_eq!(cost(0), 10e6 / 1e12 * 5.0);
        assert_eq!(cost(1_000_000_000_000), 5.0);
        assert_eq!(cost(12_000_001), 13e6 / 1e12 * 5.0);
        assert_eq!(human(1_500_000), "1.5 MB");
    }
}
