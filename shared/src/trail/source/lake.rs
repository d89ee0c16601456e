//! `lake:EVENT_DATA_STORE`: the same queries as `athena:` ([`super::athena::sql`]), in CloudTrail
//! Lake's dialect, run with `StartQuery` on an organization's existing event data store.
//! CloudTrail Lake is closed to new customers since 2026-05-31; this is for those who keep one.
//!
//! Lake is CloudTrail's own store, not files anyone can write: its events are evidence of
//! integrity `service`, as `LookupEvents`' are, and there is no `$path` to check. The rows go
//! through the same [`super::athena::rows`], [`Interest`] and join. A failed, cancelled or
//! timed-out query, throttling past the retries, and `--athena-max-scan` (which caps Lake's
//! bytes scanned too) fail the source.

use std::time::{Duration, Instant};

use super::athena::{rows, sql, ATTEMPTS};
use super::{Loaded, Range};
use crate::trail::event;
use crate::trail::interest::Interest;

/// An event data store and how to query it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lake {
    /// The event data store's id (the last part of its ARN).
    pub store: String,
    /// `--athena-max-scan`: stop a query that scans more bytes than this.
    pub max_scan: Option<u64>,
    /// `-q`: no cost line on stderr.
    pub quiet: bool,
}

impl Lake {
    /// An event data store id or ARN (what follows `lake:`).
    pub fn parse(s: &str) -> Result<Lake, String> {
        let id = s.rsplit_once("eventdatastore/").map_or(s, |(_, id)| id);
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "lake:{s}: name the event data store by its id or ARN \
                 (arn:aws:cloudtrail:REGION:ACCT:eventdatastore/ID)"
            ));
        }
        Ok(Lake {
            store: id.to_string(),
            max_scan: None,
            quiet: false,
        })
    }
}

fn client(config: &aws_config::SdkConfig) -> aws_sdk_cloudtrail::Client {
    let conf = aws_sdk_cloudtrail::config::Builder::from(config)
        .retry_config(super::athena::retry())
        .build();
    aws_sdk_cloudtrail::Client::from_conf(conf)
}

fn sdk_error<E, R>(what: &str, e: &aws_sdk_cloudtrail::error::SdkError<E, R>) -> String
where
    E: aws_sdk_cloudtrail::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_cloudtrail::error::ProvideErrorMetadata;
    let detail = crate::aws::error_detail(e);
    let hint = match e.code().unwrap_or_default() {
        c if c.contains("Throttl") || c == "MaxConcurrentQueriesException" => format!(
            "; throttled after {ATTEMPTS} attempts (Lake runs at most 10 queries at once): \
             run again later"
        ),
        "EventDataStoreNotFoundException" => {
            "; name an event data store of this account and region".to_string()
        }
        _ => String::new(),
    };
    format!("{what}: {detail}{hint}")
}

/// Runs one query to the end: its rows, or why not.
async fn run(
    client: &aws_sdk_cloudtrail::Client,
    lake: &Lake,
    query: &sql::Query,
) -> Result<Vec<rows::Row>, String> {
    use aws_sdk_cloudtrail::types::QueryStatus;
    let name = query.name;
    let started = client
        .start_query()
        .query_statement(&query.sql)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("query {name}: cannot start"), &e))?;
    let id = started
        .query_id()
        .ok_or_else(|| format!("query {name}: CloudTrail gave no query id"))?
        .to_string();
    let began = Instant::now();
    let mut delay = Duration::from_millis(200);
    let scanned = loop {
        let d = client
            .describe_query()
            .query_id(&id)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("query {name} ({id})"), &e))?;
        let scanned = d
            .query_statistics()
            .and_then(|s| s.bytes_scanned())
            .unwrap_or(0)
            .max(0) as u64;
        let status = d.query_status().cloned();
        if let Some(cap) = lake.max_scan.filter(|cap| scanned > *cap) {
            if matches!(status, Some(QueryStatus::Queued | QueryStatus::Running)) {
                let _ = client.cancel_query().query_id(&id).send().await;
            }
            return Err(format!(
                "query {name} ({id}) scanned {scanned} bytes, more than --athena-max-scan \
                 {cap}: stopped and its rows not used; narrow --since/--until, or raise the cap"
            ));
        }
        match status {
            Some(QueryStatus::Finished) => break scanned,
            Some(QueryStatus::Queued | QueryStatus::Running) | None => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Some(s) => {
                return Err(format!(
                    "query {name} ({id}) {}: {}",
                    s.as_str().to_ascii_lowercase(),
                    d.error_message().unwrap_or("no reason given")
                ))
            }
        }
    };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_query_results()
            .query_id(&id)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| sdk_error(&format!("query {name} ({id}): results"), &e))?;
        for row in page.query_result_rows() {
            // Each row: a list of one-entry {column: value} maps; a NULL is left out.
            let mut r: rows::Row = sql::COLUMNS
                .iter()
                .map(|(_, c)| (c.to_string(), None))
                .collect();
            for cell in row {
                for (k, v) in cell {
                    r.insert(k.to_ascii_lowercase(), Some(v.clone()));
                }
            }
            out.push(r);
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if !lake.quiet {
        eprintln!(
            "trail-for: lake: {name}: {} rows in {:.1} s, scanned {scanned} bytes",
            out.len(),
            began.elapsed().as_secs_f64()
        );
    }
    Ok(out)
}

/// Runs the queries the records need; the events are of integrity `service`.
pub(super) async fn load_lake(
    lake: &Lake,
    range: Range,
    interest: &Interest,
) -> Result<Loaded, String> {
    let config = crate::aws::sdk_config(None).await;
    let client = &client(&config);
    let mut loaded = Loaded::default();
    let (rows, interest) = super::athena::search(
        &format!("lake:{}", lake.store),
        &lake.store,
        sql::Dialect::Lake,
        range,
        interest,
        &mut loaded.warnings,
        |q| async move { run(client, lake, &q).await },
    )
    .await?;
    let interest = &interest;
    for (_, records) in rows::records_by_path(&rows) {
        let parsed = event::parse_json(
            serde_json::json!({ "Records": records })
                .to_string()
                .as_bytes(),
        );
        loaded.add(
            &format!("lake:{}", lake.store),
            None,
            parsed,
            &range,
            interest,
        );
    }
    Ok(loaded)
}
