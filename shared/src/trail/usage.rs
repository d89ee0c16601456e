//! `--key-usage`: every KMS `Sign` of a key, with the signature push it explains, or `orphan`;
//! and every failed `Sign` attempt, with its error.
//!
//! KMS logs every use of a key, so each `Sign` should explain a signature attached somewhere
//! (the pairing rules are in `join.rs`). One that explains none is key use nobody can account
//! for: what a transparency log would have shown. A failed call (`errorCode`: throttled,
//! denied, key disabled) signed nothing, so it is no orphan and explains no signature, but it
//! is listed as an `attempt`: a burst of `AccessDenied` from an unknown principal is exactly
//! what a security team wants to see.

use serde_json::{json, Map, Value};

use super::event;
use super::join::{event_json, Index};
use super::keys::KeySpec;
use super::source::Range;
use crate::record::Record;

/// One record per `Sign` event and failed `Sign` attempt of `keys` within `range`, in time
/// order.
pub fn key_usage(ix: &Index, keys: &[KeySpec], range: &Range) -> Vec<Record> {
    let mut out = Vec::new();
    for (i, e) in ix.events.iter().enumerate() {
        if !range.contains(e.time) || !keys.iter().any(|k| k.matches(e)) {
            continue;
        }
        if let Some(f) = e.as_failed_sign() {
            out.push(attempt(ix, i, f));
            continue;
        }
        let Some(sign) = e.as_sign() else { continue };
        let intro = ix.intro_of_sign(i);
        let role = ix.role_of(i);
        let mut rec = Record::new();
        let mut kms = Map::new();
        kms.insert("key_arn".into(), sign.key_arn.clone().into());
        kms.insert("key_id".into(), sign.key_id.clone().into());
        kms.insert("request_id".into(), e.request_id.clone().into());
        kms.insert(
            "time".into(),
            e.time
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .into(),
        );
        kms.insert("event_id".into(), e.id.clone().into());
        kms.insert("algorithm".into(), sign.signing_algorithm.clone().into());
        kms.insert(
            "principal".into(),
            e.principal.display().map(str::to_string).into(),
        );
        kms.retain(|_, v| !v.is_null());
        let mut events = vec![(e.time, event_json(e, "kms_sign"))];
        let mut trail = Map::new();
        match intro {
            Some(n) => {
                let p = &ix.events[ix.intros[n].push];
                let put = p.as_put_image().expect("a PutImage");
                let image = put.tag.as_deref().and_then(event::sig_tag_digest);
                if let Some(d) = &image {
                    rec.insert("digest".into(), d.clone().into());
                }
                rec.insert("orphan".into(), false.into());
                let mut push = json!({
                    "event_id": p.id, "time": event_json(p, "")["time"], "repository": put.repository,
                    "registry_id": put.registry_id, "region": p.region, "tag": put.tag,
                    "manifest_digest": put.digest, "image_digest": image,
                });
                if let Some(l) = ix.intros[n].layer {
                    push["layer"] = l.into();
                }
                if ix.intros[n].candidates.len() > 1 {
                    push["candidates"] = ix.intros[n].candidates.len().into();
                }
                trail.insert("signature_push".into(), push);
                events.push((p.time, event_json(p, "signature_push")));
            }
            None => {
                rec.insert("orphan".into(), true.into());
                trail.insert(
                    "reasons".into(),
                    json!([format!(
                        "no push of a signature tag by {} within {} after this Sign explains it",
                        e.principal.display().unwrap_or("the same caller"),
                        humantime(ix.window)
                    )]),
                );
            }
        }
        if let Some(r) = role {
            let a = ix.events[r].as_assume_role();
            trail.insert("subject".into(), a.and_then(|a| a.subject.clone()).into());
            events.push((
                ix.events[r].time,
                event_json(&ix.events[r], "role_assumption"),
            ));
        }
        events.sort_by_key(|(t, _)| *t);
        trail.insert(
            "events".into(),
            Value::Array(events.into_iter().map(|(_, v)| v).collect()),
        );
        trail.retain(|_, v| !v.is_null());
        rec.insert("kms".into(), Value::Object(kms));
        rec.insert("trail".into(), Value::Object(trail));
        out.push(rec);
    }
    out
}

/// The record of a failed `Sign` call: `attempt` with the error, no `orphan` field.
fn attempt(ix: &Index, i: usize, f: &event::FailedSign) -> Record {
    let e = &ix.events[i];
    let mut kms = Map::new();
    kms.insert("key_arn".into(), f.sign.key_arn.clone().into());
    kms.insert("key_id".into(), f.sign.key_id.clone().into());
    kms.insert("request_id".into(), e.request_id.clone().into());
    kms.insert(
        "time".into(),
        e.time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .into(),
    );
    kms.insert("event_id".into(), e.id.clone().into());
    kms.insert(
        "principal".into(),
        e.principal.display().map(str::to_string).into(),
    );
    kms.retain(|_, v| !v.is_null());
    let mut attempt = Map::new();
    attempt.insert("error_code".into(), f.error_code.clone().into());
    attempt.insert("error_message".into(), f.error_message.clone().into());
    attempt.retain(|_, v| !v.is_null());
    let mut rec = Record::new();
    rec.insert("kms".into(), Value::Object(kms));
    rec.insert("attempt".into(), Value::Object(attempt));
    rec.insert(
        "trail".into(),
        json!({"events": [event_json(e, "kms_sign_attempt")]}),
    );
    rec
}

fn humantime(d: chrono::Duration) -> String {
    if d.num_seconds() % 60 == 0 {
        format!("{}m", d.num_minutes())
    } else {
        format!("{}s", d.num_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::event::{Detail, Event, KmsSign, Principal, PutImage};
    use chrono::{DateTime, Duration, Utc};

    const KEY: &str = "arn:aws:kms:us-east-1:1:key/k1";

    fn at(min: i64) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                + Duration::minutes(min),
        )
    }

    fn ev(id: &str, min: i64, detail: Detail) -> Event {
        Event {
            id: Some(id.into()),
            time: at(min),
            source: String::new(),
            name: String::new(),
            region: Some("us-east-1".into()),
            account: Some("1".into()),
            request_id: Some(format!("req-{id}")),
            principal: Principal {
                access_key_id: Some("AKIA1".into()),
                ..Principal::default()
            },
            detail,
            file: None,
        }
    }

    fn sign(id: &str, min: i64, key: &str) -> Event {
        ev(
            id,
            min,
            Detail::Sign(KmsSign {
                key_arn: Some(key.into()),
                ..KmsSign::default()
            }),
        )
    }

    #[test]
    fn orphans_and_matches() {
        let d = format!("sha256:{}", "a".repeat(64));
        let events = vec![
            sign("s1", 0, KEY),
            ev(
                "p1",
                1,
                Detail::PutImage(PutImage {
                    bundle_subject: None,
                    repository: Some("app".into()),
                    registry_id: Some("1".into()),
                    tag: event::sig_tag(&d),
                    digest: Some("sha256:m".into()),
                    signature_layers: None,
                }),
            ),
            sign("s2", 20, KEY),
            sign("s3", 21, "arn:aws:kms:us-east-1:1:key/other"),
        ];
        let ix = Index::build(events, &[], Duration::minutes(15));
        let keys = [KeySpec::parse(KEY).unwrap()];
        let recs = key_usage(&ix, &keys, &Range::default());
        assert_eq!(recs.len(), 2, "only the key's Sign events");
        assert_eq!(recs[0]["orphan"], false);
        assert_eq!(recs[0]["digest"], d.as_str());
        assert_eq!(recs[0]["kms"]["request_id"], "req-s1");
        assert_eq!(recs[0]["trail"]["signature_push"]["event_id"], "p1");
        assert_eq!(recs[1]["orphan"], true);
        assert_eq!(recs[1]["kms"]["event_id"], "s2");
        let later = Range {
            since: at(10),
            until: None,
        };
        assert_eq!(key_usage(&ix, &keys, &later).len(), 1);
    }
}
