//! The trail bucket in S3: only the day folders of the range are listed; objects are fetched
//! concurrently.

use chrono::Datelike;
use futures::{StreamExt, TryStreamExt};

use super::{day_of, digest_day_of, is_log_file, parse_blocking, Loaded, Range, S3_CONCURRENCY};
use crate::trail::integrity::{digest, BucketLock, DigestRead, Lock, LogRead};
use crate::trail::interest::Interest;

/// Largest compressed log file fetched from S3 (held in memory while it is parsed).
const MAX_S3_OBJECT_BYTES: i64 = 256 << 20;

pub(super) async fn s3_client() -> aws_sdk_s3::Client {
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
pub(super) async fn list(
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
pub(super) fn after_awslogs(prefix: &str) -> Option<Vec<&str>> {
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

/// The digest folders (`.../AWSLogs/[o-ORG/]ACCT/CloudTrail-Digest/REGION/`) of every account
/// under `prefix`, when `prefix` is at or above an account's `CloudTrail/` folder: read even
/// where no log file of the range is, so a folder whose every log file was deleted is still
/// seen.
async fn digest_folders(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, String> {
    let Some(segs) = after_awslogs(prefix) else {
        if prefix.ends_with(".gz") || prefix.ends_with(".json") {
            return Ok(Vec::new());
        }
        let (dirs, _) = list(client, bucket, prefix, true).await?;
        let awslogs = format!("{prefix}AWSLogs/");
        if dirs.contains(&awslogs) {
            return Box::pin(digest_folders(client, bucket, &awslogs)).await;
        }
        return Ok(Vec::new());
    };
    let org = segs.first().is_some_and(|s| s.starts_with("o-"));
    match segs.len() - usize::from(org) {
        0 => {
            // AWSLogs/ (or AWSLogs/o-ORG/): accounts, or organizations
            let (dirs, _) = list(client, bucket, prefix, true).await?;
            let subs = futures::stream::iter(dirs)
                .map(|d| async move { Box::pin(digest_folders(client, bucket, &d)).await })
                .buffer_unordered(S3_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await?;
            Ok(subs.into_iter().flatten().collect())
        }
        1 => {
            let (dirs, _) =
                list(client, bucket, &format!("{prefix}CloudTrail-Digest/"), true).await?;
            Ok(dirs)
        }
        // ACCT/CloudTrail/: every region of the account, as at ACCT/
        2 if segs.last() == Some(&"CloudTrail") => {
            let account = prefix.trim_end_matches('/').trim_end_matches("CloudTrail");
            let (dirs, _) = list(
                client,
                bucket,
                &format!("{account}CloudTrail-Digest/"),
                true,
            )
            .await?;
            Ok(dirs)
        }
        _ => Ok(Vec::new()),
    }
}

pub(super) async fn load_s3(
    bucket: &str,
    prefix: &str,
    range: Range,
    interest: &Interest,
) -> Result<Loaded, String> {
    let client = s3_client().await;
    let mut keys = s3_keys(&client, bucket, prefix, &range).await?;
    keys.retain(|k| interest.reads(&format!("s3://{bucket}/{k}")));
    let bucket_lock = bucket_lock(&client, bucket).await;
    let mut loaded = Loaded::default();
    let mut results = futures::stream::iter(keys)
        .map(|key| {
            let client = client.clone();
            async move { fetch_log(&client, bucket, &key, interest.hash_files).await }
        })
        .buffer_unordered(S3_CONCURRENCY);
    // Every account's digest folders (the second pass, over some files only, reads none: the
    // first read them all).
    let mut folders = std::collections::BTreeSet::new();
    if interest.only_files.is_none() {
        match digest_folders(&client, bucket, prefix).await {
            Ok(found) => folders.extend(found),
            Err(e) => loaded.warnings.push(e),
        }
    }
    while let Some((mut read, result)) = results.next().await {
        folders.extend(digest::digest_prefix_for_log(&read.key));
        if let Some(lock) = &mut read.lock {
            lock.bucket = bucket_lock.clone();
        }
        loaded.add(&read.origin.clone(), Some(read), result, &range, interest);
    }
    // The digests of every folder the log files came from.
    for folder in folders {
        match digests(&client, bucket, &folder, &range).await {
            Ok(found) => loaded.digests.extend(found),
            Err(e) => loaded.warnings.push(e),
        }
    }
    Ok(loaded)
}

/// Fetches and parses one log file: where it was read (version, retention) and what it held.
pub(super) async fn fetch_log(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    hash: bool,
) -> (LogRead, Result<crate::trail::event::Parsed, String>) {
    let body = client.get_object().bucket(bucket).key(key).send().await;
    let mut read = LogRead {
        origin: format!("s3://{bucket}/{key}"),
        bucket: Some(bucket.to_string()),
        key: key.to_string(),
        ..LogRead::default()
    };
    let result = match body {
        Err(e) => Err(format!(
            "cannot read: {}",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )),
        Ok(out) if out.content_length.is_some_and(|n| n > MAX_S3_OBJECT_BYTES) => Err(format!(
            "{} bytes, more than the {MAX_S3_OBJECT_BYTES} read of one log file",
            out.content_length.unwrap_or_default()
        )),
        Ok(out) => {
            read.version_id = out.version_id().map(str::to_string);
            read.lock = Some(Lock {
                mode: out.object_lock_mode().map(|m| m.as_str().to_string()),
                retain_until: out
                    .object_lock_retain_until_date()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0)),
                bucket: BucketLock::Off,
            });
            match out.body.collect().await {
                Ok(data) => parse_blocking(data.into_bytes().to_vec(), hash).await,
                Err(e) => Err(format!("cannot read: {e}")),
            }
        }
    };
    (read, result)
}

/// The bucket's Object Lock configuration, once per source.
pub(super) async fn bucket_lock(client: &aws_sdk_s3::Client, bucket: &str) -> BucketLock {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match client
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => {
            let enabled = out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| e.as_str() == "Enabled");
            if enabled {
                BucketLock::Enabled
            } else {
                BucketLock::Off
            }
        }
        Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => BucketLock::Off,
        Err(e) => BucketLock::Unknown(match e.code() {
            Some(code) => format!("{code}: s3:GetBucketObjectLockConfiguration is needed"),
            None => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// The digest files of one digest folder in the days of the range, each with its signature
/// from the object's metadata.
pub(super) async fn digests(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    folder: &str,
    range: &Range,
) -> Result<Vec<DigestRead>, String> {
    let prefixes: Vec<String> = match range.digest_days() {
        Some(days) => days
            .into_iter()
            .map(|d| format!("{folder}{:04}/{:02}/{:02}/", d.year(), d.month(), d.day()))
            .collect(),
        None => vec![folder.to_string()],
    };
    let lists = futures::stream::iter(prefixes)
        .map(|p| async move { list(client, bucket, &p, false).await })
        .buffer_unordered(S3_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let keys: Vec<String> = lists
        .into_iter()
        .flat_map(|(_, keys)| keys)
        .filter(|k| k.ends_with(".json.gz"))
        .filter(|k| digest_day_of(k).is_none_or(|d| range.digest_day_wanted(d)))
        .collect();
    let mut out: Vec<DigestRead> = futures::stream::iter(keys)
        .map(|key| async move {
            let got = client.get_object().bucket(bucket).key(&key).send().await;
            let (parsed, signature) = match got {
                Err(e) => (
                    Err(format!(
                        "cannot read: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    )),
                    None,
                ),
                Ok(out) => {
                    let signature = out.metadata().and_then(|m| m.get("signature")).cloned();
                    let parsed = match out.body.collect().await {
                        Ok(data) => digest::parse(&data.into_bytes()),
                        Err(e) => Err(format!("cannot read: {e}")),
                    };
                    (parsed, signature)
                }
            };
            DigestRead {
                origin: format!("s3://{bucket}/{key}"),
                bucket: Some(bucket.to_string()),
                key,
                parsed,
                signature,
            }
        })
        .buffer_unordered(S3_CONCURRENCY)
        .collect()
        .await;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}
