//! What the join can use, decided before the trail is read, so that `trail-for` keeps only the
//! events that can take part in it and its memory is bounded by the evidence, not by the trail.
//!
//! From the records in hand (read whole before the trail is loaded) and `--key`:
//! - **`Sign`** events (and failed attempts) of the `--key` keys, else of every key;
//! - **`PutImage`** events of the images' digests (the image pushes), and every signature push
//!   (a `sha256-<hex>.sig` tag, or a cosign v3 bundle referrer pushed by digest, of any image):
//!   the pairing is one-to-one over the whole trail, so another image's signature push can use
//!   up the `Sign` that would explain this one;
//! - **role assumptions** of the callers the first pass found (the principals of the kept
//!   `Sign` events and signature pushes): a second, explicit pass that keeps nothing else, over
//!   only the log files the first pass saw such a role assumption in. The first pass notes, for
//!   each file, a 64-bit hash of the access key id and of the assumed-role ARN every role
//!   assumption in it returned (16 bytes per role assumption in the trail); a file none of
//!   whose hashes is a caller's is not read again. `LookupEvents` is asked for the event names only once, and its role
//!   assumptions are all kept (it covers 90 days and answers 2 calls a second; it is never the
//!   big source).
//!
//! The bound: kept events are the evidence above, plus, while a file is parsed, that one file's
//! events of the kept kinds (at most two local files per core, or 16 S3 objects, in flight),
//! plus the second pass's summary (16 bytes per role assumption in the trail).

use std::collections::HashSet;

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
    /// Hash each log file's decompressed bytes for the integrity check (off only with
    /// `--integrity off`, so the benchmark measures what the check costs).
    pub hash_files: bool,
    /// Read only these log files (by origin: path or `s3://BUCKET/KEY`): the second pass reads
    /// just the files the first found to hold a role assumption of a caller. `None`: all.
    pub only_files: Option<std::sync::Arc<HashSet<String>>>,
}

/// Which `PutImage` events are kept.
#[derive(Debug, Clone, Default)]
pub enum Pushes {
    #[default]
    All,
    None,
    /// Every signature push, and the image pushes of these digests.
    Of {
        digests: HashSet<String>,
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

/// A 64-bit hash of an access key id or assumed-role ARN, for the first pass's per-file summary
/// of role assumptions (a collision only makes the second pass read one file more).
pub fn role_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Interest {
    /// Everything of the kept kinds (no narrowing; also the switch the equivalence test uses).
    pub fn everything() -> Interest {
        Interest {
            keys: Some(Vec::new()),
            pushes: Pushes::All,
            roles: Roles::All,
            hash_files: true,
            only_files: None,
        }
    }

    /// The first pass for `records` (none for `--key-usage`) and the `--key` keys.
    pub fn for_records(records: &[Record], keys: &[KeySpec]) -> Interest {
        let digests = records
            .iter()
            .filter_map(|rec| get_str(rec, "digest"))
            .filter(|d| event::sig_tag(d).is_some())
            .map(str::to_string)
            .collect();
        Interest {
            keys: Some(keys.to_vec()),
            pushes: Pushes::Of { digests },
            roles: Roles::None,
            hash_files: true,
            only_files: None,
        }
    }

    /// The second pass: only the role assumptions of the callers of `events`.
    pub fn roles_of(events: &[Event]) -> Interest {
        let mut access_keys = HashSet::new();
        let mut arns = HashSet::new();
        for e in events {
            let is_caller = match &e.detail {
                Detail::Sign(_) | Detail::FailedSign(_) => true,
                Detail::PutImage(p) => p.is_signature_push(),
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
            hash_files: true,
            only_files: None,
        }
    }

    /// Whether the file at `origin` is read at all.
    pub fn reads(&self, origin: &str) -> bool {
        self.only_files.as_ref().is_none_or(|f| f.contains(origin))
    }

    /// Whether a role assumption that returned one of `hashes` ([`role_hash`] of its access key
    /// id and assumed-role ARN) could be one this interest keeps.
    pub fn may_keep_role(&self, hashes: &[u64]) -> bool {
        match &self.roles {
            Roles::All => !hashes.is_empty(),
            Roles::None => false,
            Roles::Of { access_keys, arns } => access_keys
                .iter()
                .chain(arns)
                .any(|k| hashes.binary_search(&role_hash(k)).is_ok()),
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
                Pushes::Of { digests } => {
                    p.is_signature_push() || p.digest.as_ref().is_some_and(|d| digests.contains(d))
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The second pass reads a file only when its summary holds a caller's access key or ARN.
    #[test]
    fn a_file_is_read_again_only_for_a_callers_role_assumption() {
        let roles = Interest {
            roles: Roles::Of {
                access_keys: HashSet::from(["ASIACALLER".to_string()]),
                arns: HashSet::from(["arn:aws:sts::1:assumed-role/ci/run-7".to_string()]),
            },
            ..Interest::default()
        };
        let summary = |items: &[&str]| {
            let mut v: Vec<u64> = items.iter().map(|s| role_hash(s)).collect();
            v.sort_unstable();
            v
        };
        assert!(roles.may_keep_role(&summary(&["ASIAOTHER", "ASIACALLER"])));
        assert!(roles.may_keep_role(&summary(&["arn:aws:sts::1:assumed-role/ci/run-7"])));
        assert!(!roles.may_keep_role(&summary(&[
            "ASIAOTHER",
            "arn:aws:sts::1:assumed-role/ci/run-8"
        ])));
        assert!(!roles.may_keep_role(&[]));
        let none = Interest {
            roles: Roles::None,
            ..Interest::default()
        };
        assert!(!none.may_keep_role(&summary(&["ASIACALLER"])));
        let only = Interest {
            only_files: Some(std::sync::Arc::new(HashSet::from(
                ["a.json.gz".to_string()],
            ))),
            ..Interest::default()
        };
        assert!(only.reads("a.json.gz") && !only.reads("b.json.gz"));
        assert!(Interest::default().reads("b.json.gz"));
    }
}
