//! Athena's result rows back into CloudTrail records: the columns of [`super::sql::COLUMNS`]
//! put where a log file has them (`userIdentity.sessionContext.sessionIssuer.arn`, the raw
//! `requestParameters` and `responseElements` JSON, `resources[].ARN`), so that the rows go
//! through the same parser, the same [`crate::trail::interest::Interest`] and the same join as
//! the events of a log file. Rows of one event (one per matching resource) become one record.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// One row: column name to value (`None`: SQL NULL).
pub type Row = BTreeMap<String, Option<String>>;

/// The records of the rows, grouped by the S3 object Athena read them from (`$path`), in the
/// order of their first row; a row without a `$path` is grouped under "".
pub fn records_by_path(rows: &[Row]) -> Vec<(String, Vec<Value>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // (path, event id) to the record's index in its group, to merge resources
    let mut at: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in rows {
        let path = get(row, "path").unwrap_or_default().to_string();
        let group = groups.entry(path.clone()).or_insert_with(|| {
            order.push(path.clone());
            Vec::new()
        });
        let resource = resource(row);
        let id = get(row, "eventid").map(str::to_string);
        if let Some(i) = id
            .as_ref()
            .and_then(|id| at.get(&(path.clone(), id.clone())))
        {
            if let (Some(r), Some(list)) = (resource, group[*i]["resources"].as_array_mut()) {
                if !list.contains(&r) {
                    list.push(r);
                }
            }
            continue;
        }
        if let Some(id) = id {
            at.insert((path.clone(), id), group.len());
        }
        group.push(record(row, resource));
    }
    order
        .into_iter()
        .map(|p| {
            let g = groups.remove(&p).unwrap_or_default();
            (p, g)
        })
        .collect()
}

fn get<'a>(row: &'a Row, column: &str) -> Option<&'a str> {
    row.get(column)
        .and_then(|v| v.as_deref())
        .filter(|s| !s.is_empty())
}

fn resource(row: &Row) -> Option<Value> {
    let arn = get(row, "resource_arn")?;
    let mut r = json!({ "ARN": arn });
    if let Some(t) = get(row, "resource_type") {
        r["type"] = t.into();
    }
    Some(r)
}

/// The nested objects of `responseElements` the parser reads. CloudTrail Lake keeps
/// `responseElements` as `map<string,string>`, so there each is a JSON string.
const NESTED: &[&str] = &["image", "credentials", "assumedRoleUser"];

/// A JSON column: the object it holds; text that is not JSON stays a string, so the parser
/// reports it as it would a log file's field of the wrong type.
fn json_column(row: &Row, column: &str) -> Option<Value> {
    let text = get(row, column)?;
    let mut v = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()));
    if let Some(obj) = v.as_object_mut() {
        for key in NESTED {
            if let Some(Value::String(inner)) = obj.get(*key) {
                if let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(inner) {
                    obj.insert(key.to_string(), parsed);
                }
            }
        }
    }
    Some(v)
}

fn record(row: &Row, resource: Option<Value>) -> Value {
    let mut rec = Map::new();
    let put = |m: &mut Map<String, Value>, key: &str, column: &str| {
        if let Some(v) = get(row, column) {
            m.insert(key.to_string(), v.into());
        }
    };
    for (key, column) in [
        ("eventID", "eventid"),
        ("eventTime", "eventtime"),
        ("eventSource", "eventsource"),
        ("eventName", "eventname"),
        ("awsRegion", "awsregion"),
        ("recipientAccountId", "recipientaccountid"),
        ("requestID", "requestid"),
        ("errorCode", "errorcode"),
        ("errorMessage", "errormessage"),
    ] {
        put(&mut rec, key, column);
    }
    let mut identity = Map::new();
    for (key, column) in [
        ("type", "identity_type"),
        ("principalId", "identity_principalid"),
        ("arn", "identity_arn"),
        ("accountId", "identity_accountid"),
        ("accessKeyId", "identity_accesskeyid"),
        ("userName", "identity_username"),
        ("invokedBy", "identity_invokedby"),
        ("identityProvider", "identity_identityprovider"),
    ] {
        put(&mut identity, key, column);
    }
    let mut session = Map::new();
    if let Some(arn) = get(row, "identity_issuer_arn") {
        session.insert("sessionIssuer".into(), json!({ "arn": arn }));
    }
    if let Some(p) = get(row, "identity_federatedprovider") {
        session.insert(
            "webIdFederationData".into(),
            json!({ "federatedProvider": p }),
        );
    }
    if !session.is_empty() {
        identity.insert("sessionContext".into(), Value::Object(session));
    }
    if !identity.is_empty() {
        rec.insert("userIdentity".into(), Value::Object(identity));
    }
    for (key, column) in [
        ("requestParameters", "requestparameters"),
        ("responseElements", "responseelements"),
    ] {
        if let Some(v) = json_column(row, column) {
            rec.insert(key.into(), v);
        }
    }
    if let Some(r) = resource {
        rec.insert("resources".into(), Value::Array(vec![r]));
    }
    Value::Object(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn rows_become_records_and_one_events_resources_merge() {
        let sign = |arn: &str| {
            row(&[
                ("eventid", "e1"),
                ("eventtime", "2025-11-10T10:00:00Z"),
                ("eventsource", "kms.amazonaws.com"),
                ("eventname", "Sign"),
                ("identity_arn", "arn:aws:sts::1:assumed-role/ci/run"),
                ("identity_issuer_arn", "arn:aws:iam::1:role/ci"),
                (
                    "requestparameters",
                    r#"{"keyId":"alias/x","messageType":"DIGEST"}"#,
                ),
                ("resource_arn", arn),
                ("resource_type", "AWS::KMS::Key"),
                ("path", "s3://b/k.json.gz"),
            ])
        };
        let mut null_error = sign("arn:aws:kms:us-east-1:1:key/a");
        null_error.insert("errorcode".into(), None);
        let rows = vec![null_error, sign("arn:aws:kms:us-east-1:1:key/b")];
        let groups = records_by_path(&rows);
        assert_eq!(groups.len(), 1);
        let (path, recs) = &groups[0];
        assert_eq!(path, "s3://b/k.json.gz");
        assert_eq!(recs.len(), 1, "{recs:?}");
        let r = &recs[0];
        assert_eq!(r["resources"].as_array().unwrap().len(), 2);
        assert_eq!(r["requestParameters"]["messageType"], "DIGEST");
        assert_eq!(
            r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
            "arn:aws:iam::1:role/ci"
        );
        assert!(r.get("errorCode").is_none());
        let parsed =
            crate::trail::event::parse_json(json!({ "Records": recs }).to_string().as_bytes())
                .unwrap();
        assert_eq!(parsed.events.len(), 1, "{:?}", parsed.warnings);
    }
}
