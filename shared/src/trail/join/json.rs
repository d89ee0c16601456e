//! The join's results as JSON: the events, signatures and timeline entries a record shows.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{fmt_time, Index, Joined, SigResult};
use crate::trail::event::{self, Event};

/// An event as the record shows it; `what` says what it is for this image.
pub fn event_json(e: &Event, what: &str) -> Value {
    let mut m = Map::new();
    m.insert("what".into(), what.into());
    m.insert("time".into(), e.time.map(|t| fmt_time(Some(t))).into());
    m.insert("source".into(), e.source.clone().into());
    m.insert("name".into(), e.name.clone().into());
    m.insert("event_id".into(), e.id.clone().into());
    m.insert("request_id".into(), e.request_id.clone().into());
    m.insert("account".into(), e.account.clone().into());
    m.insert("region".into(), e.region.clone().into());
    m.insert(
        "principal".into(),
        e.principal.display().map(str::to_string).into(),
    );
    if let Some(k) = &e.principal.access_key_id {
        m.insert("access_key_id".into(), k.clone().into());
    }
    match &e.detail {
        event::Detail::Sign(s) => {
            m.insert("key_arn".into(), s.key_arn.clone().into());
            m.insert("key_id".into(), s.key_id.clone().into());
            m.insert(
                "signing_algorithm".into(),
                s.signing_algorithm.clone().into(),
            );
            m.insert("message_type".into(), s.message_type.clone().into());
        }
        event::Detail::FailedSign(f) => {
            m.insert("key_arn".into(), f.sign.key_arn.clone().into());
            m.insert("key_id".into(), f.sign.key_id.clone().into());
            m.insert("error_code".into(), f.error_code.clone().into());
            m.insert("error_message".into(), f.error_message.clone().into());
        }
        event::Detail::PutImage(p) => {
            m.insert("repository".into(), p.repository.clone().into());
            m.insert("registry_id".into(), p.registry_id.clone().into());
            m.insert("tag".into(), p.tag.clone().into());
            m.insert("digest".into(), p.digest.clone().into());
            if let Some(l) = &p.signature_layers {
                m.insert("layers".into(), l.len().into());
            }
        }
        event::Detail::AssumeRole(a) => {
            m.insert("role_arn".into(), a.role_arn.clone().into());
            m.insert("session_name".into(), a.session_name.clone().into());
            m.insert("subject".into(), a.subject.clone().into());
            m.insert("assumed_role_arn".into(), a.assumed_role_arn.clone().into());
        }
    }
    m.retain(|_, v| !v.is_null());
    Value::Object(m)
}

/// `trail.signatures[]` entry.
///
/// `signed_at` is the time of the `Sign` the evidence proves (a request id that checked out, or
/// the only candidate); with several candidates it is `null` and `signed_after` /
/// `signed_before` give the earliest and latest candidate. `compromise` is `before` / `after`
/// only when every candidate is on that side, else `unknown`.
pub fn signature_json(ix: &Index, s: &SigResult, compromised_at: Option<DateTime<Utc>>) -> Value {
    let sign = s.sign.map(|i| &ix.events[i]);
    let push = s.intro.map(|n| &ix.events[ix.intros[n].push]);
    let role = s
        .role
        .and_then(|r| ix.events[r].as_assume_role().map(|a| (r, a)));
    let signed_at = sign.and_then(|e| e.time);
    let times: Vec<Option<DateTime<Utc>>> = match sign {
        Some(e) => vec![e.time],
        None => s.candidates.iter().map(|&c| ix.events[c].time).collect(),
    };
    let compromise = match compromised_at {
        None => Value::Null,
        Some(_) if times.is_empty() || times.iter().any(Option::is_none) => "unknown".into(),
        Some(c) if times.iter().all(|t| t.is_some_and(|t| t < c)) => "before".into(),
        Some(c) if times.iter().all(|t| t.is_some_and(|t| t >= c)) => "after".into(),
        Some(_) => "unknown".into(),
    };
    let mut evidence = Map::new();
    if let Some(e) = sign {
        evidence.insert("sign_event_id".into(), e.id.clone().into());
        evidence.insert("sign_request_id".into(), e.request_id.clone().into());
        if let Some(k) = e.as_sign() {
            evidence.insert(
                "key_arn".into(),
                k.key_arn.clone().or(k.key_id.clone()).into(),
            );
        }
    }
    if s.sign_by != "none" {
        evidence.insert("sign_found_by".into(), s.sign_by.into());
    }
    if !s.candidates.is_empty() {
        evidence.insert("candidates".into(), s.candidates.len().into());
    }
    if s.sign.is_none() && !s.candidates.is_empty() {
        let list: Vec<Value> = s
            .candidates
            .iter()
            .map(|&c| {
                let e = &ix.events[c];
                json!({"event_id": e.id, "request_id": e.request_id,
                       "time": e.time.map(|t| fmt_time(Some(t))),
                       "principal": e.principal.display()})
            })
            .collect();
        evidence.insert("candidate_signs".into(), Value::Array(list));
    }
    if let Some(r) = &s.claimed_request_id {
        evidence.insert("claimed_request_id".into(), r.clone().into());
        evidence.insert("claim_holds".into(), s.claim_problem.is_none().into());
    }
    if let Some(e) = push {
        evidence.insert("signature_push_event_id".into(), e.id.clone().into());
        evidence.insert(
            "signature_pushed_at".into(),
            e.time.map(|t| fmt_time(Some(t))).into(),
        );
        evidence.insert("push_matched_by".into(), s.matched_by.into());
    }
    if let Some((r, a)) = role {
        evidence.insert("role_event_id".into(), ix.events[r].id.clone().into());
        evidence.insert("role_arn".into(), a.role_arn.clone().into());
    }
    evidence.retain(|_, v| !v.is_null());
    let mut m = Map::new();
    m.insert("index".into(), s.index.into());
    m.insert(
        "signed_at".into(),
        signed_at.map(|t| fmt_time(Some(t))).into(),
    );
    if sign.is_none() && !times.is_empty() {
        let known: Vec<DateTime<Utc>> = times.iter().flatten().copied().collect();
        m.insert(
            "signed_after".into(),
            known.iter().min().map(|t| fmt_time(Some(*t))).into(),
        );
        m.insert(
            "signed_before".into(),
            known.iter().max().map(|t| fmt_time(Some(*t))).into(),
        );
    }
    m.insert("compromise".into(), compromise);
    let principal = sign
        .or_else(|| s.candidates.last().map(|&c| &ix.events[c]))
        .and_then(|e| e.principal.display());
    m.insert("principal".into(), principal.map(str::to_string).into());
    m.insert(
        "subject".into(),
        role.and_then(|(_, a)| a.subject.clone()).into(),
    );
    m.insert("evidence".into(), Value::Object(evidence));
    m.insert("verdict".into(), s.verdict.as_str().into());
    m.insert("reasons".into(), json!(s.reasons));
    m.retain(|k, v| !v.is_null() || k == "signed_at");
    Value::Object(m)
}

/// The time-ordered events of a joined image.
pub fn events_json(ix: &Index, j: &Joined) -> Vec<(Option<DateTime<Utc>>, Value)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut add = |i: usize, what: &str| {
        if seen.insert(i) {
            out.push((ix.events[i].time, event_json(&ix.events[i], what)));
        }
    };
    for &i in &j.image_pushes {
        add(i, "image_push");
    }
    for &i in &j.signature_pushes {
        add(i, "signature_push");
    }
    for s in &j.signatures {
        match s.sign {
            Some(i) => add(i, "kms_sign"),
            None => {
                for &i in &s.candidates {
                    add(i, "kms_sign_candidate");
                }
            }
        }
        if let Some(i) = s.role {
            add(i, "role_assumption");
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}
