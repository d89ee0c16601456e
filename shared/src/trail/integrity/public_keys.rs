//! CloudTrail's public keys for digest signatures: `ListPublicKeys` in each digest's own region
//! (asked once per region and run), or `--cloudtrail-public-keys FILE` offline (what
//! `aws cloudtrail list-public-keys --output json` prints, fetched beforehand where there is
//! network, as AWS advises for offline validation).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::digest::{parse_public_keys, PublicKey};

/// Keys by fingerprint (lowercase hex), read from `path`.
pub fn from_file(path: &std::path::Path) -> Result<HashMap<String, PublicKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--cloudtrail-public-keys {}: {e}", path.display()))?;
    let keys = parse_public_keys(&text)
        .map_err(|e| format!("--cloudtrail-public-keys {}: {e}", path.display()))?;
    Ok(keys
        .into_iter()
        .map(|k| (k.fingerprint.clone(), k))
        .collect())
}

/// Keys `ListPublicKeys` returns in `region` for digests ending from `since` to `until` (with
/// aws-cli's two hours of slack after, for a key rotated just then).
pub async fn list(
    region: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<PublicKey>, String> {
    let config = crate::aws::sdk_config(Some(region)).await;
    let client = aws_sdk_cloudtrail::Client::new(&config);
    let mut req = client.list_public_keys();
    if let Some(s) = since {
        req = req.start_time(aws_smithy_types::DateTime::from_secs(
            (s - Duration::hours(1)).timestamp(),
        ));
    }
    let end = until.unwrap_or_else(Utc::now) + Duration::hours(2);
    req = req.end_time(aws_smithy_types::DateTime::from_secs(end.timestamp()));
    let out = req.send().await.map_err(|e| {
        format!(
            "CloudTrail ListPublicKeys in {region} failed: {}; check the credentials allow \
             cloudtrail:ListPublicKeys, or give the keys offline with --cloudtrail-public-keys FILE",
            aws_smithy_types::error::display::DisplayErrorContext(&e)
        )
    })?;
    let time = |t: Option<&aws_smithy_types::DateTime>| {
        t.and_then(|t| DateTime::from_timestamp(t.secs(), 0))
    };
    out.public_key_list()
        .iter()
        .map(|k| {
            let der = k.value().map(|b| b.as_ref().to_vec()).unwrap_or_default();
            PublicKey::from_der(
                der,
                k.fingerprint(),
                time(k.validity_start_time()),
                time(k.validity_end_time()),
            )
            .map_err(|e| format!("ListPublicKeys in {region}: {e}"))
        })
        .collect()
}

/// The keys the digests read need: from `file` when given, else `ListPublicKeys` in each
/// digest's region (once per region). Also the regions whose keys could not be fetched, with
/// why: their digests are unchecked rather than invalid.
pub async fn for_digests(
    file: Option<&std::path::Path>,
    digests: &[super::DigestRead],
) -> Result<(HashMap<String, PublicKey>, HashMap<String, String>), String> {
    if let Some(path) = file {
        return Ok((from_file(path)?, HashMap::new()));
    }
    let mut spans: std::collections::BTreeMap<String, (DateTime<Utc>, DateTime<Utc>)> =
        std::collections::BTreeMap::new();
    for d in digests {
        let (Some(name), Ok(parsed)) = (super::digest::digest_name(&d.key), &d.parsed) else {
            continue;
        };
        let end = parsed.digest.end().unwrap_or(name.end);
        let span = spans.entry(name.region).or_insert((end, end));
        span.0 = span.0.min(end);
        span.1 = span.1.max(end);
    }
    let mut keys = HashMap::new();
    let mut unavailable = HashMap::new();
    for (region, (since, until)) in spans {
        match list(&region, Some(since), Some(until)).await {
            Ok(found) => keys.extend(found.into_iter().map(|k| (k.fingerprint.clone(), k))),
            Err(e) => {
                unavailable.insert(region, e);
            }
        }
    }
    Ok((keys, unavailable))
}
