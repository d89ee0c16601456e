//! The join: CloudTrail events indexed once, then per image the pushes, the KMS `Sign` behind
//! each signature, the role assumption behind the signer, and a verdict.
//!
//! ## Evidence rules
//!
//! 1. **Image push**: ECR `PutImage` events whose pushed digest is the image digest, in the
//!    image's repository, registry id (account) and region.
//! 2. **Signature introductions**: the `PutImage` events of the tag `sha256-<hex>.sig` in the
//!    signature repository (same account and region), in time order. When the event carries the
//!    pushed manifest (`imageManifest`), each push introduces the layers no earlier push of that
//!    tag had (a push can add several, e.g. two signers racing); without the manifest, each push
//!    counts as introducing one signature.
//! 3. **Sign ↔ introduction pairing** (once, over the whole trail): introductions are taken in
//!    time order; each takes the *earliest* not-yet-taken KMS `Sign` event that (a) used one of
//!    the `--key` keys (any key when none is given), (b) was made by the same caller as the push
//!    (same access key id, or else the same principal ARN: same role session), and (c) happened
//!    no later than the push and at most `window` (default 15 min) before it. A `Sign` explains at
//!    most one signature; a `Sign` left over is an orphan (see `usage.rs`).
//! 4. **Which introduction is which signature**: by the base64 signature (the manifest's
//!    `dev.cosignproject.cosign/signature` annotation), else by layer digest, else by layer
//!    index (`verification.signatures[i]` is layer i), else (no manifests in the trail) the
//!    i-th push. A record straight from `kms-sign` / `attach-sig` is matched by its own
//!    `signature`, by `attached.manifest_digest` (the digest the `.sig` push returned), and its
//!    `kms.request_id` names the `Sign` event exactly (overriding the pairing).
//! 5. **The key**: the `Sign` must have used a key the record or the operator names (`--key`,
//!    `kms.key_arn`, an `awskms://` `key`); otherwise the signature has no evidence.
//! 6. **Role assumption**: the `AssumeRoleWithWebIdentity` / `AssumeRole` event whose returned
//!    `credentials.accessKeyId` is the signer's access key id; else the latest one before the
//!    `Sign` that returned the signer's assumed-role ARN.
//! 7. **Verdicts** per signature: `unexplained` without a `Sign`; `untrusted` when signed at or
//!    after `--compromised-at`, or when no `--allowed-principal` pattern matches the signer (its
//!    ARN, the role ARN, or the OIDC subject); otherwise `trusted`. The image is `trusted` when it
//!    has at least one accepted signature and all are trusted; `untrusted` when any is untrusted;
//!    else `unexplained`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::event::{self, Event, Principal};
use super::keys::KeySpec;

/// Default time allowed between a `Sign` and the signature push it explains.
pub const DEFAULT_WINDOW_SECS: i64 = 15 * 60;

/// One signature layer as it first appeared in a `.sig` tag push.
#[derive(Debug, Clone)]
pub struct Intro {
    /// Index of the `PutImage` event in [`Index::events`].
    pub push: usize,
    /// Position of the layer in the pushed manifest, when the event carried the manifest.
    pub layer: Option<usize>,
    pub layer_digest: Option<String>,
    /// Base64 signature from the layer's annotation.
    pub signature: Option<String>,
    /// The `Sign` event paired with it.
    pub sign: Option<usize>,
    /// `Sign` events that met the rules when it was paired (more than one: pairing by order).
    pub candidates: usize,
}

/// Every event, indexed for the per-image join; built once per process.
#[derive(Debug, Default)]
pub struct Index {
    /// Events ordered by time.
    pub events: Vec<Event>,
    pub intros: Vec<Intro>,
    pub window: Duration,
    /// Pushes by pushed manifest digest.
    by_digest: HashMap<String, Vec<usize>>,
    /// Introductions by (repository, signature tag).
    by_sig_tag: HashMap<(String, String), Vec<usize>>,
    by_request_id: HashMap<String, usize>,
    /// Sign event → introduction it explains.
    sign_intro: HashMap<usize, usize>,
    roles_by_key: HashMap<String, Vec<usize>>,
    roles_by_arn: HashMap<String, Vec<usize>>,
}

/// Whether two calls were made by the same caller.
pub fn same_caller(a: &Principal, b: &Principal) -> bool {
    if let (Some(x), Some(y)) = (&a.access_key_id, &b.access_key_id) {
        if x == y {
            return true;
        }
    }
    matches!((&a.arn, &b.arn), (Some(x), Some(y)) if x == y)
}

impl Index {
    /// Indexes `events` (sorted by time) and pairs signature pushes with `Sign` events of `keys`
    /// (all keys when empty).
    pub fn build(mut events: Vec<Event>, keys: &[KeySpec], window: Duration) -> Index {
        events.sort_by_key(|e| e.time);
        let mut ix = Index {
            window,
            ..Index::default()
        };
        // Signature tag groups: (registry id, region, repository, tag) → pushes in time order.
        let mut groups: HashMap<(String, String, String, String), Vec<usize>> = HashMap::new();
        let mut signs = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if let Some(p) = e.as_put_image() {
                if let Some(d) = &p.digest {
                    ix.by_digest.entry(d.clone()).or_default().push(i);
                }
                if let (Some(tag), Some(repo), Some(_)) = (&p.tag, &p.repository, e.time) {
                    if event::is_sig_tag(tag) {
                        let key = (
                            p.registry_id.clone().unwrap_or_default(),
                            e.region.clone().unwrap_or_default(),
                            repo.clone(),
                            tag.clone(),
                        );
                        groups.entry(key).or_default().push(i);
                    }
                }
            } else if e.as_sign().is_some() {
                if let Some(r) = &e.request_id {
                    ix.by_request_id.insert(r.clone(), i);
                }
                if e.time.is_some() && (keys.is_empty() || keys.iter().any(|k| k.matches(e))) {
                    signs.push(i);
                }
            } else if let Some(a) = e.as_assume_role() {
                if let Some(k) = &a.access_key_id {
                    ix.roles_by_key.entry(k.clone()).or_default().push(i);
                }
                if let Some(arn) = &a.assumed_role_arn {
                    ix.roles_by_arn.entry(arn.clone()).or_default().push(i);
                }
            }
        }
        // Introductions: the layers each push added.
        let mut group_list: Vec<_> = groups.into_iter().collect();
        group_list.sort_by_key(|(_, pushes)| pushes[0]);
        for ((_, _, repo, tag), pushes) in group_list {
            let mut seen: HashSet<String> = HashSet::new();
            for push in pushes {
                let p = events[push].as_put_image().expect("a PutImage");
                let start = ix.intros.len();
                match &p.signature_layers {
                    Some(layers) => {
                        for (pos, layer) in layers.iter().enumerate() {
                            if seen.insert(layer.digest.clone()) {
                                ix.intros.push(Intro {
                                    push,
                                    layer: Some(pos),
                                    layer_digest: Some(layer.digest.clone()),
                                    signature: layer.signature.clone(),
                                    sign: None,
                                    candidates: 0,
                                });
                            }
                        }
                    }
                    None => ix.intros.push(Intro {
                        push,
                        layer: None,
                        layer_digest: None,
                        signature: None,
                        sign: None,
                        candidates: 0,
                    }),
                }
                ix.by_sig_tag
                    .entry((repo.clone(), tag.clone()))
                    .or_default()
                    .extend(start..ix.intros.len());
            }
        }
        // Pairing, in push time order (ties: layer order).
        let mut order: Vec<usize> = (0..ix.intros.len()).collect();
        order.sort_by_key(|&n| (ix.intros[n].push, ix.intros[n].layer));
        let mut taken: HashSet<usize> = HashSet::new();
        for n in order {
            let push = &events[ix.intros[n].push];
            let Some(t_push) = push.time else { continue };
            let lo = signs.partition_point(|&s| events[s].time < Some(t_push - window));
            let hi = signs.partition_point(|&s| events[s].time <= Some(t_push));
            let candidates: Vec<usize> = signs[lo..hi]
                .iter()
                .copied()
                .filter(|s| {
                    !taken.contains(s) && same_caller(&events[*s].principal, &push.principal)
                })
                .collect();
            if let Some(&first) = candidates.first() {
                taken.insert(first);
                ix.sign_intro.insert(first, n);
                ix.intros[n].sign = Some(first);
            }
            ix.intros[n].candidates = candidates.len();
        }
        ix.events = events;
        ix
    }

    /// The introduction a `Sign` event explains, if any.
    pub fn intro_of_sign(&self, sign: usize) -> Option<usize> {
        self.sign_intro.get(&sign).copied()
    }

    /// The `Sign` event with this request id.
    pub fn sign_by_request_id(&self, id: &str) -> Option<usize> {
        self.by_request_id.get(id).copied()
    }

    /// The role assumption that gave the caller of event `i` its credentials.
    pub fn role_of(&self, i: usize) -> Option<usize> {
        let e = &self.events[i];
        let p = &e.principal;
        let before = |r: &usize| match (self.events[*r].time, e.time) {
            (Some(tr), Some(te)) => tr <= te,
            _ => true,
        };
        if let Some(k) = &p.access_key_id {
            if let Some(r) = self
                .roles_by_key
                .get(k)
                .and_then(|v| v.iter().rev().find(|r| before(r)))
            {
                return Some(*r);
            }
        }
        let arn = p.arn.as_ref()?;
        self.roles_by_arn
            .get(arn)
            .and_then(|v| v.iter().rev().find(|r| before(r)))
            .copied()
    }
}

// ---------------------------------------------------------------------------------------------
// Per image
// ---------------------------------------------------------------------------------------------

/// What the operator decided for every image.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub compromised_at: Option<DateTime<Utc>>,
    /// `--allowed-principal` patterns (`*` matches any run of characters).
    pub allowed: Vec<String>,
    /// `--key`: keys every signature must have used (resolved).
    pub keys: Vec<KeySpec>,
}

/// A signature the record says was accepted (from `check-sig`), or the record's own.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// Layer index in the signature manifest.
    pub index: Option<usize>,
    pub signature: Option<String>,
    pub layer_digest: Option<String>,
    /// Keys named for this signature.
    pub keys: Vec<KeySpec>,
}

/// The record, reduced to what the join reads.
#[derive(Debug, Clone, Default)]
pub struct Image {
    pub digest: String,
    pub repository: String,
    /// ECR registry id (account) and region; `None` matches any.
    pub account: Option<String>,
    pub region: Option<String>,
    pub signature_repository: String,
    /// `Some`: the signatures `check-sig` accepted (may be empty). `None`: no verification.
    pub verified: Option<Vec<Claimed>>,
    /// The record's own signature (after `kms-sign`).
    pub own_signature: Option<String>,
    pub own_request_id: Option<String>,
    pub own_manifest_digest: Option<String>,
    /// Keys the record names (`kms.key_arn`, `key`).
    pub keys: Vec<KeySpec>,
}

/// Judgement of one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Trusted,
    Unexplained,
    Untrusted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Trusted => "trusted",
            Verdict::Unexplained => "unexplained",
            Verdict::Untrusted => "untrusted",
        }
    }
}

/// The evidence and verdict for one signature.
#[derive(Debug, Clone)]
pub struct SigResult {
    pub index: Option<usize>,
    pub intro: Option<usize>,
    /// How the push was tied to the signature.
    pub matched_by: &'static str,
    pub sign: Option<usize>,
    /// How the `Sign` was found: `request_id` or `pairing`.
    pub sign_by: &'static str,
    pub role: Option<usize>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// The whole result for one image.
#[derive(Debug, Clone)]
pub struct Joined {
    pub image_pushes: Vec<usize>,
    pub signature_pushes: Vec<usize>,
    pub signatures: Vec<SigResult>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

/// The role ARN behind an assumed-role session ARN.
pub fn role_arn_of(assumed: &str) -> Option<String> {
    let (account, role, _) = event::assumed_role_parts(assumed)?;
    let partition = assumed.split(':').nth(1).unwrap_or("aws");
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// The names a signer goes by: principal ARN, role ARN, assumed-role ARN, OIDC subject.
pub fn identities(ix: &Index, sign: usize, role: Option<usize>) -> Vec<String> {
    let p = &ix.events[sign].principal;
    let mut out: Vec<String> = [&p.arn, &p.session_issuer_arn, &p.user_name]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    if let Some(r) = p.arn.as_deref().and_then(role_arn_of) {
        out.push(r);
    }
    if let Some(a) = role.and_then(|r| ix.events[r].as_assume_role()) {
        out.extend(
            [&a.role_arn, &a.subject, &a.assumed_role_arn]
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    out.dedup();
    out
}

/// Whether a pattern allows one of the identities; an assumed-role ARN without session allows
/// every session of the role.
pub fn allowed(patterns: &[String], ids: &[String]) -> bool {
    patterns.iter().any(|p| {
        ids.iter().any(|id| {
            crate::wildcard::matches(p, id)
                || (p.contains(":assumed-role/") && id.starts_with(&format!("{p}/")))
        })
    })
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "an unknown time".into())
}

fn fmt_window(w: Duration) -> String {
    if w.num_seconds() % 60 == 0 {
        format!("{}m", w.num_minutes())
    } else {
        format!("{}s", w.num_seconds())
    }
}

/// Joins one image against the index.
pub fn join(ix: &Index, policy: &Policy, img: &Image) -> Joined {
    let in_scope = |e: &Event| {
        let Some(p) = e.as_put_image() else {
            return false;
        };
        img.account
            .as_deref()
            .is_none_or(|a| p.registry_id.as_deref() == Some(a))
            && img
                .region
                .as_deref()
                .is_none_or(|r| e.region.as_deref() == Some(r))
    };
    let image_pushes: Vec<usize> = ix
        .by_digest
        .get(&img.digest)
        .into_iter()
        .flatten()
        .copied()
        .filter(|&i| {
            let e = &ix.events[i];
            let p = e.as_put_image().expect("a PutImage");
            in_scope(e)
                && p.repository.as_deref() == Some(img.repository.as_str())
                && !p.tag.as_deref().is_some_and(event::is_sig_tag)
        })
        .collect();
    let tag = event::sig_tag(&img.digest).unwrap_or_default();
    let intros: Vec<usize> = ix
        .by_sig_tag
        .get(&(img.signature_repository.clone(), tag.clone()))
        .into_iter()
        .flatten()
        .copied()
        .filter(|&n| in_scope(&ix.events[ix.intros[n].push]))
        .collect();
    let mut signature_pushes: Vec<usize> = intros.iter().map(|&n| ix.intros[n].push).collect();
    signature_pushes.dedup();

    // The signatures to account for.
    let claimed: Vec<Claimed> = match &img.verified {
        Some(list) => list.clone(),
        None if img.own_signature.is_some() => vec![Claimed {
            signature: img.own_signature.clone(),
            ..Claimed::default()
        }],
        None => intros
            .iter()
            .enumerate()
            .map(|(i, &n)| Claimed {
                index: ix.intros[n].layer.or(Some(i)),
                signature: ix.intros[n].signature.clone(),
                layer_digest: ix.intros[n].layer_digest.clone(),
                keys: Vec::new(),
            })
            .collect(),
    };
    let have_layers = intros.iter().all(|&n| ix.intros[n].layer.is_some());
    let window = fmt_window(ix.window);

    let mut signatures = Vec::new();
    for (pos, c) in claimed.iter().enumerate() {
        let mut reasons = Vec::new();
        let label = format!("signature {}", c.index.unwrap_or(pos));
        // Which push introduced it.
        let mut matched_by = "none";
        let mut intro = None;
        if let Some(s) = &c.signature {
            intro = intros
                .iter()
                .copied()
                .find(|&n| ix.intros[n].signature.as_ref() == Some(s));
            matched_by = "signature";
        }
        if intro.is_none() {
            if let Some(d) = &c.layer_digest {
                intro = intros
                    .iter()
                    .copied()
                    .find(|&n| ix.intros[n].layer_digest.as_ref() == Some(d));
                matched_by = "layer_digest";
            }
        }
        if intro.is_none() && img.verified.is_none() {
            if let Some(md) = &img.own_manifest_digest {
                intro = intros.iter().rev().copied().find(|&n| {
                    ix.events[ix.intros[n].push]
                        .as_put_image()
                        .and_then(|p| p.digest.as_ref())
                        == Some(md)
                });
                matched_by = "manifest_digest";
            }
        }
        if intro.is_none() {
            if let Some(i) = c.index {
                if have_layers {
                    intro = intros
                        .iter()
                        .copied()
                        .find(|&n| ix.intros[n].layer == Some(i));
                    matched_by = "layer_index";
                } else if intros.len() == claimed.len() {
                    intro = intros.get(i).copied();
                    matched_by = "push_order";
                }
            }
        }
        if intro.is_none() {
            matched_by = "none";
        }
        // The Sign behind it.
        let mut sign = None;
        let mut sign_by = "none";
        let is_own = (c.signature.is_some() && c.signature == img.own_signature)
            || intro
                .and_then(|n| ix.intros[n].signature.as_ref())
                .is_some_and(|s| img.own_signature.as_ref() == Some(s));
        if is_own {
            if let Some(rid) = &img.own_request_id {
                match ix.sign_by_request_id(rid) {
                    Some(s) => {
                        sign = Some(s);
                        sign_by = "request_id";
                        if intro.is_none() {
                            intro = ix.intro_of_sign(s).filter(|n| intros.contains(n));
                            if intro.is_some() {
                                matched_by = "request_id";
                            }
                        }
                    }
                    None => reasons.push(format!(
                        "{label}: no KMS Sign event with the request id {rid} the record carries"
                    )),
                }
            }
        }
        if sign.is_none() {
            if let Some(s) = intro.and_then(|n| ix.intros[n].sign) {
                sign = Some(s);
                sign_by = "pairing";
            }
        }
        // The key.
        let keys: Vec<&KeySpec> = policy.keys.iter().chain(&img.keys).chain(&c.keys).collect();
        if let Some(s) = sign {
            if !keys.is_empty() && !keys.iter().any(|k| k.matches(&ix.events[s])) {
                let used = ix.events[s]
                    .as_sign()
                    .and_then(|k| k.key_arn.clone().or(k.key_id.clone()))
                    .unwrap_or_else(|| "an unknown key".into());
                reasons.push(format!(
                    "{label}: the KMS Sign event {} used {used}, not a key named for this image",
                    ix.events[s].id.as_deref().unwrap_or("?")
                ));
                sign = None;
                sign_by = "none";
            }
        }
        let role = sign.and_then(|s| ix.role_of(s));
        // The verdict.
        let verdict = match sign {
            None => {
                match intro {
                    None if intros.is_empty() => reasons.push(format!(
                        "{label}: no push of {tag} in {} found in the trail, and no KMS Sign to explain it",
                        img.signature_repository
                    )),
                    None => reasons.push(format!(
                        "{label}: cannot tell which of the {} pushes of {tag} attached it",
                        signature_pushes.len()
                    )),
                    Some(n) => {
                        let push = &ix.events[ix.intros[n].push];
                        reasons.push(format!(
                            "{label}: no KMS Sign event of the key by the caller that pushed it ({} at {}) within {window} before the push",
                            push.principal.display().unwrap_or("unknown"),
                            fmt_time(push.time)
                        ));
                    }
                }
                Verdict::Unexplained
            }
            Some(s) => {
                let e = &ix.events[s];
                let mut v = Verdict::Trusted;
                if let (Some(t), Some(c)) = (e.time, policy.compromised_at) {
                    if t >= c {
                        v = Verdict::Untrusted;
                        reasons.push(format!(
                            "{label}: signed at {} (KMS Sign {}), after the compromise at {}",
                            fmt_time(Some(t)),
                            e.id.as_deref().unwrap_or("?"),
                            fmt_time(Some(c))
                        ));
                    }
                } else if policy.compromised_at.is_some() {
                    v = Verdict::Unexplained;
                    reasons.push(format!("{label}: the KMS Sign event has no time"));
                }
                if !policy.allowed.is_empty() {
                    let ids = identities(ix, s, role);
                    if !allowed(&policy.allowed, &ids) {
                        v = Verdict::Untrusted;
                        reasons.push(format!(
                            "{label}: signed by {}, which no --allowed-principal matches",
                            ids.join(" / ")
                        ));
                    }
                }
                v
            }
        };
        signatures.push(SigResult {
            index: c.index,
            intro,
            matched_by,
            sign,
            sign_by,
            role,
            verdict,
            reasons,
        });
    }

    let mut reasons: Vec<String> = signatures.iter().flat_map(|s| s.reasons.clone()).collect();
    let verdict = if signatures.is_empty() {
        reasons.push(match &img.verified {
            Some(_) => "no accepted signature: nothing vouches for this image".into(),
            None => format!(
                "no signature to account for: no push of {tag} in {} in the trail",
                img.signature_repository
            ),
        });
        Verdict::Unexplained
    } else {
        let worst = signatures
            .iter()
            .map(|s| s.verdict)
            .max()
            .unwrap_or(Verdict::Unexplained);
        if worst == Verdict::Trusted {
            let mut what = format!(
                "every signature ({}) has its KMS Sign event",
                signatures.len()
            );
            if let Some(c) = policy.compromised_at {
                what += &format!(" before the compromise at {}", fmt_time(Some(c)));
            }
            if !policy.allowed.is_empty() {
                what += " by an allowed principal";
            }
            reasons.push(what);
        }
        worst
    };
    Joined {
        image_pushes,
        signature_pushes,
        signatures,
        verdict,
        reasons,
    }
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

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
pub fn signature_json(ix: &Index, s: &SigResult, compromised_at: Option<DateTime<Utc>>) -> Value {
    let sign = s.sign.map(|i| &ix.events[i]);
    let push = s.intro.map(|n| &ix.events[ix.intros[n].push]);
    let role = s
        .role
        .and_then(|r| ix.events[r].as_assume_role().map(|a| (r, a)));
    let signed_at = sign.and_then(|e| e.time);
    let compromise = match (compromised_at, signed_at) {
        (None, _) => Value::Null,
        (Some(_), None) => "unknown".into(),
        (Some(c), Some(t)) if t < c => "before".into(),
        (Some(_), Some(_)) => "after".into(),
    };
    let mut evidence = Map::new();
    if let Some(e) = sign {
        evidence.insert("sign_event_id".into(), e.id.clone().into());
        evidence.insert("sign_request_id".into(), e.request_id.clone().into());
        evidence.insert("sign_found_by".into(), s.sign_by.into());
        if let Some(k) = e.as_sign() {
            evidence.insert(
                "key_arn".into(),
                k.key_arn.clone().or(k.key_id.clone()).into(),
            );
        }
        if s.sign_by == "pairing" {
            if let Some(n) = s.intro {
                evidence.insert("candidates".into(), ix.intros[n].candidates.into());
            }
        }
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
    m.insert("compromise".into(), compromise);
    m.insert(
        "principal".into(),
        sign.and_then(|e| e.principal.display())
            .map(str::to_string)
            .into(),
    );
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
        if let Some(i) = s.sign {
            add(i, "kms_sign");
        }
        if let Some(i) = s.role {
            add(i, "role_assumption");
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::event::{AssumeRole, Detail, KmsSign, PutImage, SigLayer};

    const ACCT: &str = "111122223333";
    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const ROLE: &str = "arn:aws:iam::111122223333:role/ci";
    const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/ci/GitHubActions";
    const SUB: &str = "repo:org/app:ref:refs/heads/main";

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn at(min: i64) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339("2025-11-10T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                + Duration::minutes(min),
        )
    }

    fn principal(key: &str) -> Principal {
        Principal {
            kind: Some("AssumedRole".into()),
            arn: Some(SESSION.into()),
            access_key_id: Some(key.into()),
            session_issuer_arn: Some(ROLE.into()),
            session_name: Some("GitHubActions".into()),
            ..Principal::default()
        }
    }

    fn ev(id: &str, min: i64, who: &str, detail: Detail) -> Event {
        let (source, name) = match &detail {
            Detail::Sign(_) => ("kms.amazonaws.com", "Sign"),
            Detail::PutImage(_) => ("ecr.amazonaws.com", "PutImage"),
            Detail::AssumeRole(_) => ("sts.amazonaws.com", "AssumeRoleWithWebIdentity"),
        };
        Event {
            id: Some(id.into()),
            time: at(min),
            source: source.into(),
            name: name.into(),
            region: Some("us-east-1".into()),
            account: Some(ACCT.into()),
            request_id: Some(format!("req-{id}")),
            principal: principal(who),
            detail,
        }
    }

    fn sign(id: &str, min: i64, who: &str) -> Event {
        ev(
            id,
            min,
            who,
            Detail::Sign(KmsSign {
                key_id: Some("alias/cosign".into()),
                key_arn: Some(KEY.into()),
                message_type: Some("DIGEST".into()),
                signing_algorithm: Some("ECDSA_SHA_256".into()),
            }),
        )
    }

    fn put(
        id: &str,
        min: i64,
        who: &str,
        repo: &str,
        tag: &str,
        d: &str,
        layers: Option<Vec<&str>>,
    ) -> Event {
        ev(
            id,
            min,
            who,
            Detail::PutImage(PutImage {
                repository: Some(repo.into()),
                registry_id: Some(ACCT.into()),
                tag: Some(tag.into()),
                digest: Some(d.into()),
                signature_layers: layers.map(|l| {
                    l.into_iter()
                        .map(|s| SigLayer {
                            digest: format!("sha256:{s}"),
                            signature: Some(s.into()),
                        })
                        .collect()
                }),
            }),
        )
    }

    fn role(id: &str, min: i64, key: &str) -> Event {
        let mut e = ev(
            id,
            min,
            "",
            Detail::AssumeRole(AssumeRole {
                web_identity: true,
                role_arn: Some(ROLE.into()),
                session_name: Some("GitHubActions".into()),
                subject: Some(SUB.into()),
                access_key_id: Some(key.into()),
                assumed_role_arn: Some(SESSION.into()),
                ..AssumeRole::default()
            }),
        );
        e.principal = Principal {
            kind: Some("WebIdentityUser".into()),
            user_name: Some(SUB.into()),
            ..Principal::default()
        };
        e
    }

    fn image(d: &str) -> Image {
        Image {
            digest: d.into(),
            repository: "app".into(),
            account: Some(ACCT.into()),
            region: Some("us-east-1".into()),
            signature_repository: "app".into(),
            ..Image::default()
        }
    }

    fn sigtag(d: &str) -> String {
        event::sig_tag(d).unwrap()
    }

    /// image A pushed at 0, signed at 1 and pushed at 2 (sig "s1"); signed again at 30, pushed 31 ("s2").
    fn trail() -> Vec<Event> {
        let a = digest('a');
        vec![
            role("r1", -5, "ASIA1"),
            put("p0", 0, "ASIA1", "app", "v1", &a, None),
            sign("k1", 1, "ASIA1"),
            put(
                "p1",
                2,
                "ASIA1",
                "app",
                &sigtag(&a),
                &digest('1'),
                Some(vec!["s1"]),
            ),
            role("r2", 25, "ASIA2"),
            sign("k2", 30, "ASIA2"),
            put(
                "p2",
                31,
                "ASIA2",
                "app",
                &sigtag(&a),
                &digest('2'),
                Some(vec!["s1", "s2"]),
            ),
        ]
    }

    fn policy() -> Policy {
        Policy {
            keys: vec![KeySpec::parse(KEY).unwrap()],
            ..Policy::default()
        }
    }

    fn ids(ix: &Index, j: &Joined) -> Vec<(Option<String>, Option<String>, Verdict)> {
        j.signatures
            .iter()
            .map(|s| {
                (
                    s.sign.and_then(|i| ix.events[i].id.clone()),
                    s.intro
                        .and_then(|n| ix.events[ix.intros[n].push].id.clone()),
                    s.verdict,
                )
            })
            .collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    #[test]
    fn signing_run_is_trusted_with_signed_at() {
        let ix = Index::build(trail(), &[], Duration::minutes(15));
        let j = join(&ix, &policy(), &image(&digest('a')));
        assert_eq!(j.verdict, Verdict::Trusted, "{:?}", j.reasons);
        assert_eq!(
            ids(&ix, &j),
            vec![
                (s("k1"), s("p1"), Verdict::Trusted),
                (s("k2"), s("p2"), Verdict::Trusted)
            ]
        );
        let sig = signature_json(&ix, &j.signatures[0], None);
        assert_eq!(sig["signed_at"], "2025-11-10T12:01:00Z");
        assert_eq!(sig["subject"], SUB);
        assert_eq!(sig["evidence"]["role_event_id"], "r1");
        assert_eq!(j.image_pushes.len(), 1);
        let ev: Vec<String> = events_json(&ix, &j)
            .into_iter()
            .map(|(_, v)| v["event_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ev, ["r1", "p0", "k1", "p1", "r2", "k2", "p2"]);
    }

    #[test]
    fn compromise_and_principals() {
        let ix = Index::build(trail(), &[], Duration::minutes(15));
        let mut p = policy();
        p.compromised_at = at(10);
        let j = join(&ix, &p, &image(&digest('a')));
        assert_eq!(j.verdict, Verdict::Untrusted);
        assert_eq!(
            signature_json(&ix, &j.signatures[0], p.compromised_at)["compromise"],
            "before"
        );
        assert_eq!(
            signature_json(&ix, &j.signatures[1], p.compromised_at)["compromise"],
            "after"
        );
        assert!(
            j.reasons.iter().any(|r| r.contains("after the compromise")),
            "{:?}",
            j.reasons
        );

        let mut p = policy();
        p.allowed = vec!["repo:org/app:ref:refs/heads/*".into()];
        assert_eq!(
            join(&ix, &p, &image(&digest('a'))).verdict,
            Verdict::Trusted
        );
        p.allowed = vec!["arn:aws:sts::111122223333:assumed-role/ci".into()];
        assert_eq!(
            join(&ix, &p, &image(&digest('a'))).verdict,
            Verdict::Trusted
        );
        p.allowed = vec![ROLE.into()];
        assert_eq!(
            join(&ix, &p, &image(&digest('a'))).verdict,
            Verdict::Trusted
        );
        p.allowed = vec!["repo:org/other:*".into()];
        let j = join(&ix, &p, &image(&digest('a')));
        assert_eq!(j.verdict, Verdict::Untrusted);
        assert!(
            j.reasons[0].contains("no --allowed-principal"),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn signature_without_sign_is_unexplained() {
        let mut t = trail();
        t.retain(|e| e.id.as_deref() != Some("k2"));
        let ix = Index::build(t, &[], Duration::minutes(15));
        let j = join(&ix, &policy(), &image(&digest('a')));
        assert_eq!(j.verdict, Verdict::Unexplained);
        assert_eq!(ids(&ix, &j)[1], (None, s("p2"), Verdict::Unexplained));
        assert!(
            j.reasons[0].contains("no KMS Sign event"),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn other_caller_key_window_scope_never_match() {
        let a = digest('a');
        let base = |sign_ev: Event| {
            vec![
                put("p0", 0, "ASIA1", "app", "v1", &a, None),
                sign_ev,
                put(
                    "p1",
                    2,
                    "ASIA1",
                    "app",
                    &sigtag(&a),
                    &digest('1'),
                    Some(vec!["s1"]),
                ),
            ]
        };
        let mut other_key = sign("k1", 1, "ASIA1");
        if let Detail::Sign(k) = &mut other_key.detail {
            k.key_arn = Some(KEY.replace("1234abcd", "99999999"));
        }
        let mut other_caller = sign("k1", 1, "ASIA9");
        other_caller.principal.arn = s("arn:aws:sts::111122223333:assumed-role/ci/Other");
        let too_early = sign("k1", -20, "ASIA1");
        let after_push = sign("k1", 3, "ASIA1");
        for (name, e) in [
            ("key", other_key),
            ("caller", other_caller),
            ("early", too_early),
            ("late", after_push),
        ] {
            let ix = Index::build(base(e), &[], Duration::minutes(15));
            let j = join(&ix, &policy(), &image(&a));
            assert_eq!(j.verdict, Verdict::Unexplained, "{name}: {:?}", j.reasons);
        }
        // Pushes in another account, region or repository are not this image's.
        let ix = Index::build(base(sign("k1", 1, "ASIA1")), &[], Duration::minutes(15));
        for f in [
            |i: &mut Image| i.account = s("999999999999"),
            |i: &mut Image| i.region = s("eu-west-1"),
            |i: &mut Image| {
                i.repository = "other".into();
                i.signature_repository = "other".into();
            },
        ] {
            let mut img = image(&a);
            f(&mut img);
            let j = join(&ix, &policy(), &img);
            assert!(j.image_pushes.is_empty() && j.signature_pushes.is_empty());
            assert_eq!(j.verdict, Verdict::Unexplained);
        }
        assert_eq!(join(&ix, &policy(), &image(&a)).verdict, Verdict::Trusted);
    }

    #[test]
    fn verification_and_own_signature() {
        let ix = Index::build(trail(), &[], Duration::minutes(15));
        // check-sig accepted only layer 1.
        let mut img = image(&digest('a'));
        img.verified = Some(vec![Claimed {
            index: Some(1),
            ..Claimed::default()
        }]);
        let j = join(&ix, &policy(), &img);
        assert_eq!(ids(&ix, &j), vec![(s("k2"), s("p2"), Verdict::Trusted)]);
        assert_eq!(j.signatures[0].matched_by, "layer_index");
        // Nothing accepted.
        img.verified = Some(vec![]);
        assert_eq!(join(&ix, &policy(), &img).verdict, Verdict::Unexplained);
        // A record straight from kms-sign: its request id names the Sign exactly.
        let mut img = image(&digest('a'));
        img.own_signature = s("s2");
        img.own_request_id = s("req-k2");
        let j = join(&ix, &policy(), &img);
        assert_eq!(ids(&ix, &j), vec![(s("k2"), s("p2"), Verdict::Trusted)]);
        assert_eq!(j.signatures[0].sign_by, "request_id");
        // A request id that is not in the trail.
        img.own_request_id = s("req-nope");
        img.own_signature = s("s9");
        let j = join(&ix, &policy(), &img);
        assert_eq!(j.verdict, Verdict::Unexplained);
        // A key named by the record that is not the one used.
        let mut img = image(&digest('a'));
        img.keys = vec![KeySpec::parse(&KEY.replace("1234abcd", "99999999")).unwrap()];
        let j = join(&ix, &Policy::default(), &img);
        assert_eq!(j.verdict, Verdict::Unexplained);
        assert!(j.reasons[0].contains("not a key named"), "{:?}", j.reasons);
    }

    #[test]
    fn batch_pairing_is_fifo_and_one_sign_per_signature() {
        // One caller signs three images, then pushes the three signatures; one extra Sign.
        let mut t = vec![];
        for n in 0..3 {
            t.push(sign(&format!("k{n}"), n as i64, "ASIA1"));
        }
        t.push(sign("k-extra", 3, "ASIA1"));
        for (n, c) in ['a', 'b', 'c'].into_iter().enumerate() {
            let d = digest(c);
            t.push(put(
                &format!("p{n}"),
                5 + n as i64,
                "ASIA1",
                "app",
                &sigtag(&d),
                &digest('9'),
                None,
            ));
        }
        let ix = Index::build(t, &[], Duration::minutes(15));
        for (n, c) in ['a', 'b', 'c'].into_iter().enumerate() {
            let j = join(&ix, &policy(), &image(&digest(c)));
            assert_eq!(
                ids(&ix, &j),
                vec![(
                    Some(format!("k{n}")),
                    Some(format!("p{n}")),
                    Verdict::Trusted
                )]
            );
            assert_eq!(j.signatures[0].matched_by, "push_order");
        }
        let extra = ix
            .events
            .iter()
            .position(|e| e.id.as_deref() == Some("k-extra"))
            .unwrap();
        assert_eq!(ix.intro_of_sign(extra), None);
    }

    #[test]
    fn role_of_a_session() {
        assert_eq!(role_arn_of(SESSION).as_deref(), Some(ROLE));
    }
}
