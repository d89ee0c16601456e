//! What the join can use, decided before the trail is read, so that `trail-for` keeps only the
//! events that can take part in it and its memory is bounded by the evidence, not by the trail.
//!
//! From the records in hand (read whole before the trail is loaded) and `--key`:
//! - **`Sign`** events (and failed attempts) of the keys: `--key`, else the keys every record
//!   names (`kms.key_arn`, an `awskms://` `key`), else every key;
//! - **`PutImage`** events of the images' digests (the image pushes) and of their signature
//!   tags `sha256-<hex>.sig` (the signature pushes); with `--key-usage`, every signature push;
//! - **role assumptions** of the callers the first pass found (the principals of the kept
//!   `Sign` events and signature pushes): a second, explicit pass over the same log files that
//!   keeps nothing else. `LookupEvents` is asked for the event names only once, and its role
//!   assumptions are all kept (it covers 90 days and answers 2 calls a second; it is never the
//!   big source).
//!
//! The bound: kept events are the evidence above, plus, while a file is parsed, that one file's
//! events of the kept kinds (at most one file per core in flight).

use std::collections::HashSet;

use serde_json::Value;

use super::event::{self, Detail, Event};
use super::keys::KeySpec;
use crate::record::{get_str, Record};

/// Which events of each kind are kept.
#[derive(Debug, Clone, Default)]
pub struct Interest {
    /// `Sign` events and attempts: `None` none, `Some(empty)` every key, else those keys.
    pub keys: Option<Vec<KeySpec>>,
    pub pushes: Pushes,
    pub roles: Roles,
}

/// Which `PutImage` events are kept.
#[derive(Debug, Clone, Default)]
pub enum Pushes {
    #[default]
    All,
    None,
    /// Pushes of these image digests and of these signature tags (every signature tag with
    /// `all_signature_tags`).
    Of {
        digests: HashSet<String>,
        signature_tags: HashSet<String>,
        all_signature_tags: bool,
    },
}

/// Which role assumptions are kept.
#[derive(Debug, Clone, Default)]
pub enum Roles {
    #[default]
    All,
    None,
    /// Those that gave these access keys or these assumed-role ARNs.
    Of {
        access_keys: HashSet<String>,
        arns: HashSet<String>,
    },
}

impl Interest {
    /// Everything of the kept kinds (no narrowing; also the switch the equivalence test uses).
    pub fn everything() -> Interest {
        Interest {
            keys: Some(Vec::new()),
            pushes: Pushes::All,
            roles: Roles::All,
        }
    }

    /// The first pass for `records` (empty for `--key-usage`) and the `--key` keys.
    pub fn for_records(records: &[Record], keys: &[KeySpec], key_usage: bool) -> Interest {
        let mut digests = HashSet::new();
        let mut signature_tags = HashSet::new();
        let mut record_keys = Vec::new();
        let mut every_record_names_a_key = true;
        for rec in records {
            if let Some(d) = get_str(rec, "digest") {
                if let Some(tag) = event::sig_tag(d) {
                    digests.insert(d.to_string());
                    signature_tags.insert(tag);
                }
            }
            let named = named_keys(rec);
            every_record_names_a_key &= !named.is_empty();
            record_keys.extend(named);
        }
        let keys = if !keys.is_empty() {
            keys.to_vec()
        } else if every_record_names_a_key && !records.is_empty() {
            record_keys
        } else {
            Vec::new()
        };
        Interest {
            keys: Some(keys),
            pushes: Pushes::Of {
                digests,
                signature_tags,
                all_signature_tags: key_usage,
            },
            roles: Roles::None,
        }
    }

    /// The second pass: only the role assumptions of the callers of `events`.
    pub fn roles_of(events: &[Event]) -> Interest {
        let mut access_keys = HashSet::new();
        let mut arns = HashSet::new();
        for e in events {
            let is_caller = match &e.detail {
                Detail::Sign(_) | Detail::FailedSign(_) => true,
                Detail::PutImage(p) => p.tag.as_deref().is_some_and(event::is_sig_tag),
                Detail::AssumeRole(_) => false,
            };
            if is_caller {
                access_keys.extend(e.principal.access_key_id.clone());
                arns.extend(e.principal.arn.clone());
            }
        }
        Interest {
            keys: None,
            pushes: Pushes::None,
            roles: Roles::Of { access_keys, arns },
        }
    }

    /// Whether the roles of a second pass are wanted at all.
    pub fn has_roles(&self) -> bool {
        match &self.roles {
            Roles::All => true,
            Roles::None => false,
            Roles::Of { access_keys, arns } => !access_keys.is_empty() || !arns.is_empty(),
        }
    }

    /// Whether `e` can take part in the join.
    pub fn keeps(&self, e: &Event) -> bool {
        match &e.detail {
            Detail::Sign(_) | Detail::FailedSign(_) => match &self.keys {
                None => false,
                Some(keys) => keys.is_empty() || keys.iter().any(|k| k.matches(e)),
            },
            Detail::PutImage(p) => match &self.pushes {
                Pushes::All => true,
                Pushes::None => false,
                Pushes::Of {
                    digests,
                    signature_tags,
                    all_signature_tags,
                } => match p.tag.as_deref() {
                    Some(t) if event::is_sig_tag(t) => {
                        *all_signature_tags || signature_tags.contains(t)
                    }
                    _ => p.digest.as_ref().is_some_and(|d| digests.contains(d)),
                },
            },
            Detail::AssumeRole(a) => match &self.roles {
                Roles::All => true,
                Roles::None => false,
                Roles::Of { access_keys, arns } => {
                    a.access_key_id
                        .as_ref()
                        .is_some_and(|k| access_keys.contains(k))
                        || a.assumed_role_arn
                            .as_ref()
                            .is_some_and(|r| arns.contains(r))
                }
            },
        }
    }
}

/// The keys a record names for its signatures (as the join reads them).
fn named_keys(rec: &Record) -> Vec<KeySpec> {
    let mut out = Vec::new();
    if let Some(arn) = rec
        .get("kms")
        .and_then(|k| k.get("key_arn"))
        .and_then(Value::as_str)
    {
        out.extend(KeySpec::parse(arn).ok());
    }
    if let Some(k) = get_str(rec, "key").filter(|k| k.starts_with("awskms://")) {
        out.extend(KeySpec::parse(k).ok());
    }
    let signatures = rec
        .get("verification")
        .and_then(|v| v.get("signatures"))
        .and_then(Value::as_array);
    for s in signatures.into_iter().flatten() {
        if let Some(k) = s
            .get("key")
            .and_then(Value::as_str)
            .filter(|k| k.starts_with("awskms://"))
        {
            out.extend(KeySpec::parse(k).ok());
        }
    }
    out
}
