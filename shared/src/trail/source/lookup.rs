//! `LookupEvents`: one paginated query per event name, throttling ridden out by retries.

use chrono::Utc;

use super::{Loaded, Range};
use crate::trail::event;
use crate::trail::interest::Interest;

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

pub(super) async fn load_lookup(
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
                loaded.add(&origin, None, result, &range, interest);
            }
        }
    }
    Ok(loaded)
}
