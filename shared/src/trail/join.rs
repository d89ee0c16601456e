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
//!    counts as introducing one signature. A cosign v3 bundle is pushed by digest, with no tag:
//!    its introduction is the `PutImage` whose logged manifest holds a Sigstore bundle and names
//!    the image as its `subject`, in the image's repository. A bundle `check-sig` verified
//!    (`bundle_manifest`) is looked for among those pushes only, a `.sig` signature among the
//!    tag's pushes only.
//! 3. **Candidates**: the KMS `Sign` events that could have made a signature are those that
//!    (a) used one of the `--key` keys (any key when none is given), (b) were made by the same
//!    caller as the push (same access key id, or else the same principal ARN: same role
//!    session), and (c) happened no later than the push and at most `window` (default 15 min)
//!    before it. `Sign` events of the key by *other* callers in that window could have made it
//!    too (a signature can be made by one caller and pushed by another), so they count for the
//!    verdict, though they alone never explain a push. CloudTrail's `Sign` event names no
//!    digest and no signature: tying a push to a `Sign` is an inference.
//! 4. **Which introduction is which signature**: by the base64 signature (the manifest's
//!    `dev.cosignproject.cosign/signature` annotation), else by layer digest, else by layer
//!    index (`verification.signatures[i]` is layer i), else (no manifests in the trail) the
//!    i-th push. A record straight from `kms-sign` / `attach-sig` is matched by its own
//!    `signature` and by `attached.manifest_digest` (the digest the `.sig` push returned).
//! 5. **Exact evidence is a claim, checked**: the `Sign` request id a signature carries (the
//!    layer annotation `dev.sigtrail/kms-request-id` that `attach-sig` writes, as logged in the
//!    push's manifest or reported by `check-sig`, or the record's own `kms.request_id`) names
//!    one `Sign`. The claim holds only if that event exists, is a `Sign` by a key named for the
//!    image, by the push's caller, within the window before the push, and no other signature
//!    claims it. A claim that holds gives the exact `signed_at`; one that does not leaves the
//!    signature at best `unexplained`, with the reason. A claim never *widens* trust: the
//!    verdict below still looks at every candidate, since someone holding the key can write any
//!    request id into an annotation.
//! 6. **The key**: the `Sign` must have used a key the record or the operator names (`--key`,
//!    `kms.key_arn`, an `awskms://` `key`); otherwise the signature has no evidence.
//! 7. **Role assumption**: the `AssumeRoleWithWebIdentity` / `AssumeRole` event whose returned
//!    `credentials.accessKeyId` is the signer's access key id; else the latest one before the
//!    `Sign` that returned the signer's assumed-role ARN.
//! 8. **Verdicts** per signature, the worst case over every explanation the evidence allows:
//!    `unexplained` without a candidate (or with a claim that does not hold); `untrusted` when
//!    *any* candidate (of the caller or another) lies at or after `--compromised-at`, or was
//!    made by a principal no `--allowed-principal` pattern matches (its ARN, the role ARN, or
//!    the OIDC subject); otherwise `trusted`. So no order of pairing can move a `Sign` across
//!    the compromise boundary: with several candidates the signing time is an interval
//!    (`signed_after` .. `signed_before`, the earliest and latest candidate) and the verdict
//!    holds for all of it. Why this is safe: a signature's real `Sign` precedes its push; if
//!    every candidate is before T, the push is less than one window after T, so any `Sign` at
//!    or after T and before the push lies inside the window and is a candidate. The image is
//!    `trusted` when it has at least one accepted signature and all are trusted; `untrusted`
//!    when any is untrusted; else `unexplained`.
//! 9. **The one-to-one pairing** behind `--key-usage` (`usage.rs`): a `Sign` explains at most
//!    one signature; claims that hold take their `Sign` first, then pushes in time order take
//!    the earliest unused candidate. A `Sign` left over is an orphan. Verdicts never rest on
//!    this choice.
//! 10. **Failed calls** (`errorCode`) signed nothing: they are never candidates, and
//!     `--key-usage` lists them as attempts, apart from orphans.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};

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
    /// The `Sign` request id the layer claims (`dev.sigtrail/kms-request-id`), as pushed.
    pub claimed_request_id: Option<String>,
    /// The `Sign` this introduction uses up in the one-to-one pairing behind `--key-usage`
    /// (checked claims first, then the earliest unused candidate). The verdict never rests on
    /// this choice: it looks at every candidate.
    pub sign: Option<usize>,
    /// Every `Sign` (of the `--key` keys) by the push's caller within the window before the
    /// push, in time order: the events that could explain it.
    pub candidates: Vec<usize>,
    /// Every `Sign` by any other caller within the same window: a signature can be made by one
    /// caller and pushed by another, so these could have made it too.
    pub others: Vec<usize>,
    /// Whether some one-to-one pairing of the whole trail leaves this introduction without a
    /// `Sign`: its caller pushed more signatures around this time than it made `Sign` calls,
    /// so one of them was signed by someone else (or its `Sign` is missing), maybe this one.
    pub short: bool,
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
    /// Request id → introductions whose pushed layer claims it.
    claims: HashMap<String, Vec<usize>>,
    /// Sign event → introduction it explains.
    sign_intro: HashMap<usize, usize>,
    roles_by_key: HashMap<String, Vec<usize>>,
    roles_by_arn: HashMap<String, Vec<usize>>,
}

/// The introduction group of the bundle referrers of image `digest` (they have no tag: cosign
/// v3 pushes them by digest, each naming the image as its `subject`).
fn bundle_group(digest: &str) -> String {
    format!("referrers of {digest}")
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
                if let (Some(repo), Some(_)) = (&p.repository, e.time) {
                    let group = match (&p.tag, &p.bundle_subject) {
                        (Some(tag), _) if event::is_sig_tag(tag) => Some(tag.clone()),
                        (_, Some(subject)) => Some(bundle_group(subject)),
                        _ => None,
                    };
                    if let Some(tag) = group {
                        let key = (
                            p.registry_id.clone().unwrap_or_default(),
                            e.region.clone().unwrap_or_default(),
                            repo.clone(),
                            tag,
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
                let intro = |layer: Option<(usize, &event::SigLayer)>| Intro {
                    push,
                    layer: layer.map(|(pos, _)| pos),
                    layer_digest: layer.map(|(_, l)| l.digest.clone()),
                    signature: layer.and_then(|(_, l)| l.signature.clone()),
                    claimed_request_id: layer.and_then(|(_, l)| l.request_id.clone()),
                    sign: None,
                    candidates: Vec::new(),
                    others: Vec::new(),
                    short: false,
                };
                match &p.signature_layers {
                    Some(layers) => {
                        for (pos, layer) in layers.iter().enumerate() {
                            if seen.insert(layer.digest.clone()) {
                                ix.intros.push(intro(Some((pos, layer))));
                            }
                        }
                    }
                    None => ix.intros.push(intro(None)),
                }
                ix.by_sig_tag
                    .entry((repo.clone(), tag.clone()))
                    .or_default()
                    .extend(start..ix.intros.len());
            }
        }
        // Candidates: every Sign in the window before each push, by its caller or another.
        for intro in &mut ix.intros {
            let push = &events[intro.push];
            let Some(t_push) = push.time else { continue };
            let lo = signs.partition_point(|&s| events[s].time < Some(t_push - window));
            let hi = signs.partition_point(|&s| events[s].time <= Some(t_push));
            for &s in &signs[lo..hi] {
                if same_caller(&events[s].principal, &push.principal) {
                    intro.candidates.push(s);
                } else {
                    intro.others.push(s);
                }
            }
        }
        for (n, intro) in ix.intros.iter().enumerate() {
            if let Some(r) = &intro.claimed_request_id {
                ix.claims.entry(r.clone()).or_default().push(n);
            }
        }
        // The one-to-one pairing for --key-usage, in push time order (ties: layer order):
        // an uncontested claim that checks out takes its Sign, then each introduction takes
        // the earliest unused candidate.
        let mut order: Vec<usize> = (0..ix.intros.len()).collect();
        order.sort_by_key(|&n| (ix.intros[n].push, ix.intros[n].layer));
        let mut taken: HashSet<usize> = HashSet::new();
        for &n in &order {
            let claimed = ix.intros[n]
                .claimed_request_id
                .as_ref()
                .filter(|r| ix.contested(r, &ix.intros[n]).is_none())
                .and_then(|r| ix.by_request_id.get(r).copied())
                .filter(|s| ix.intros[n].candidates.contains(s) && !taken.contains(s));
            if let Some(s) = claimed {
                taken.insert(s);
                ix.sign_intro.insert(s, n);
                ix.intros[n].sign = Some(s);
            }
        }
        for &n in &order {
            if ix.intros[n].sign.is_some() {
                continue;
            }
            let first = ix.intros[n]
                .candidates
                .iter()
                .copied()
                .find(|s| !taken.contains(s));
            if let Some(s) = first {
                taken.insert(s);
                ix.sign_intro.insert(s, n);
                ix.intros[n].sign = Some(s);
            }
        }
        ix.mark_short();
        ix.events = events;
        ix
    }

    /// Marks every introduction that some maximum one-to-one pairing leaves without a `Sign`
    /// (Hall's condition: a group of pushes with fewer candidate `Sign` events than pushes).
    /// A maximum matching is grown from the pairing above with augmenting paths; then every
    /// introduction reachable from an unmatched one by an alternating path can be the one left
    /// out.
    fn mark_short(&mut self) {
        let n = self.intros.len();
        let mut mate: Vec<Option<usize>> = self.intros.iter().map(|i| i.sign).collect();
        let mut owner: HashMap<usize, usize> = HashMap::new();
        for (i, m) in mate.iter().enumerate() {
            if let Some(s) = m {
                owner.insert(*s, i);
            }
        }
        for start in 0..n {
            if mate[start].is_some() || self.intros[start].candidates.is_empty() {
                continue;
            }
            // Breadth-first search for an augmenting path from `start`.
            let mut parent: HashMap<usize, (usize, Option<usize>)> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut seen_signs: HashSet<usize> = HashSet::new();
            let mut free = None;
            while let Some(u) = queue.pop_front() {
                for &s in &self.intros[u].candidates {
                    if !seen_signs.insert(s) {
                        continue;
                    }
                    parent.insert(s, (u, mate[u]));
                    match owner.get(&s) {
                        None => {
                            free = Some(s);
                            break;
                        }
                        Some(&v) => queue.push_back(v),
                    }
                }
                if free.is_some() {
                    break;
                }
            }
            // Flip the path: each intro on it takes the sign that led to it.
            let mut s = free;
            while let Some(sign) = s {
                let (u, previous) = parent[&sign];
                mate[u] = Some(sign);
                owner.insert(sign, u);
                s = previous;
            }
        }
        let mut reached: Vec<bool> = mate.iter().map(Option::is_none).collect();
        let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&i| reached[i]).collect();
        while let Some(u) = queue.pop_front() {
            for s in &self.intros[u].candidates {
                if let Some(&v) = owner.get(s) {
                    if !reached[v] {
                        reached[v] = true;
                        queue.push_back(v);
                    }
                }
            }
        }
        for (intro, short) in self.intros.iter_mut().zip(reached) {
            // Without candidates it is unexplained anyway.
            intro.short = short && !intro.candidates.is_empty();
        }
    }

    /// Another introduction, with a different signature, that claims the same request id.
    fn contested(&self, request_id: &str, intro: &Intro) -> Option<usize> {
        self.claims.get(request_id)?.iter().copied().find(|&m| {
            let other = &self.intros[m];
            match (&other.signature, &intro.signature) {
                (Some(a), Some(b)) => a != b,
                _ => other.layer_digest != intro.layer_digest || other.push != intro.push,
            }
        })
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
    /// The `Sign` request id the signature manifest carries for it (a claim to check).
    pub request_id: Option<String>,
    /// Keys named for this signature.
    pub keys: Vec<KeySpec>,
    /// For a cosign v3 bundle: the digest of its referrer manifest (`check-sig`'s
    /// `bundle_manifest`). Bundles are looked for among the image's referrer pushes only, and
    /// `.sig` signatures only among the `.sig` tag's pushes.
    pub bundle_manifest: Option<String>,
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
    /// Explained, but by log files no digest covers yet: run again within the hour.
    Pending,
    Unexplained,
    Untrusted,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Trusted => "trusted",
            Verdict::Unexplained => "unexplained",
            Verdict::Untrusted => "untrusted",
            Verdict::Pending => "pending",
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
    /// How the `Sign` was found: `request_id` (a claim that checked out), `only_candidate`
    /// (the one `Sign` that could have made it), `pairing` (several could: `sign` is `None`)
    /// or `none`.
    pub sign_by: &'static str,
    /// Every `Sign` that could have made it, in time order (the verdict is the worst of them).
    pub candidates: Vec<usize>,
    /// The `Sign` request id the signature carries, and why the claim does not hold.
    pub claimed_request_id: Option<String>,
    pub claim_problem: Option<String>,
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

/// Why the `Sign` a signature claims (request id `rid`, event `s`) cannot be the one behind
/// its introduction, if it cannot: another key, another caller than the push's, after the
/// push or more than the window before it, or claimed by another signature too.
fn claim_problem_of(
    ix: &Index,
    rid: &str,
    s: usize,
    intro: Option<usize>,
    key_ok: &dyn Fn(usize) -> bool,
    window: &str,
) -> Option<String> {
    let e = &ix.events[s];
    let names = format!(
        "its request id {rid} names KMS Sign {}",
        e.id.as_deref().unwrap_or("?")
    );
    if !key_ok(s) {
        let used = e
            .as_sign()
            .and_then(|k| k.key_arn.clone().or(k.key_id.clone()))
            .unwrap_or_else(|| "an unknown key".into());
        return Some(format!(
            "{names}, made with {used}, not a key named for this image"
        ));
    }
    let Some(n) = intro else {
        return Some(format!(
            "{names}, but no push of the signature was found to check it against"
        ));
    };
    let it = &ix.intros[n];
    let push = &ix.events[it.push];
    if !same_caller(&e.principal, &push.principal) {
        return Some(format!(
            "{names}, made by {}, not by {} who pushed the signature",
            e.principal.display().unwrap_or("an unknown caller"),
            push.principal.display().unwrap_or("an unknown caller")
        ));
    }
    match (e.time, push.time) {
        (Some(ts), Some(tp)) if ts > tp => {
            return Some(format!(
                "{names}, made at {}, after the push at {}",
                fmt_time(Some(ts)),
                fmt_time(Some(tp))
            ))
        }
        (Some(ts), Some(tp)) if ts < tp - ix.window => {
            return Some(format!(
                "{names}, made at {}, more than {window} before the push at {}",
                fmt_time(Some(ts)),
                fmt_time(Some(tp))
            ))
        }
        (Some(_), Some(_)) => {}
        _ => return Some(format!("{names}, but the events have no time to compare")),
    }
    if let Some(m) = ix.contested(rid, it) {
        return Some(format!(
            "{names}, which another signature (pushed in event {}) claims too: one Sign makes \
             one signature",
            ix.events[ix.intros[m].push].id.as_deref().unwrap_or("?")
        ));
    }
    None
}

pub(crate) fn fmt_time(t: Option<DateTime<Utc>>) -> String {
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
                && !p.is_signature_push()
        })
        .collect();
    let tag = event::sig_tag(&img.digest).unwrap_or_default();
    let group = |repo: &str, tag: String| -> Vec<usize> {
        ix.by_sig_tag
            .get(&(repo.to_string(), tag))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&n| in_scope(&ix.events[ix.intros[n].push]))
            .collect()
    };
    let sig_intros = group(&img.signature_repository, tag.clone());
    // Referrers live in the image's own repository.
    let bundle_intros = group(&img.repository, bundle_group(&img.digest));
    let intros: Vec<usize> = sig_intros.iter().chain(&bundle_intros).copied().collect();
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
                request_id: None,
                keys: Vec::new(),
                bundle_manifest: bundle_intros
                    .contains(&n)
                    .then(|| ix.events[ix.intros[n].push].as_put_image())
                    .flatten()
                    .and_then(|p| p.digest.clone()),
            })
            .collect(),
    };
    let have_layers = sig_intros.iter().all(|&n| ix.intros[n].layer.is_some());
    let sig_claims = claimed
        .iter()
        .filter(|c| c.bundle_manifest.is_none())
        .count();
    let window = fmt_window(ix.window);

    let mut signatures = Vec::new();
    for (pos, c) in claimed.iter().enumerate() {
        let mut reasons = Vec::new();
        let label = format!("signature {}", c.index.unwrap_or(pos));
        // Which push introduced it.
        let mut matched_by = "none";
        let mut intro = None;
        // A bundle among the referrer pushes, a `.sig` signature among the tag's pushes.
        let intros = match &c.bundle_manifest {
            Some(_) => &bundle_intros,
            None => &sig_intros,
        };
        if let Some(m) = &c.bundle_manifest {
            intro = intros.iter().copied().find(|&n| {
                ix.events[ix.intros[n].push]
                    .as_put_image()
                    .and_then(|p| p.digest.as_ref())
                    == Some(m)
            });
            matched_by = "bundle_manifest";
        }
        if intro.is_none() {
            if let Some(s) = &c.signature {
                intro = intros
                    .iter()
                    .copied()
                    .find(|&n| ix.intros[n].signature.as_ref() == Some(s));
                matched_by = "signature";
            }
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
        if intro.is_none() && c.bundle_manifest.is_none() {
            if let Some(i) = c.index {
                if have_layers {
                    intro = intros
                        .iter()
                        .copied()
                        .find(|&n| ix.intros[n].layer == Some(i));
                    matched_by = "layer_index";
                } else if intros.len() == sig_claims {
                    intro = intros.get(i).copied();
                    matched_by = "push_order";
                }
            }
        }
        if intro.is_none() {
            matched_by = "none";
        }
        // The Sign behind it: every candidate, and the exact one when the evidence names it.
        let keys: Vec<&KeySpec> = policy.keys.iter().chain(&img.keys).chain(&c.keys).collect();
        let key_ok = |s: usize| keys.is_empty() || keys.iter().any(|k| k.matches(&ix.events[s]));
        let (all_candidates, others): (Vec<usize>, Vec<usize>) = match intro {
            Some(n) => (
                ix.intros[n].candidates.clone(),
                ix.intros[n]
                    .others
                    .iter()
                    .copied()
                    .filter(|&s| key_ok(s))
                    .collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let candidates: Vec<usize> = all_candidates
            .iter()
            .copied()
            .filter(|&s| key_ok(s))
            .collect();
        if candidates.is_empty() {
            if let Some(&s) = all_candidates.first() {
                let used = ix.events[s]
                    .as_sign()
                    .and_then(|k| k.key_arn.clone().or(k.key_id.clone()))
                    .unwrap_or_else(|| "an unknown key".into());
                reasons.push(format!(
                    "{label}: the KMS Sign event {} used {used}, not a key named for this image",
                    ix.events[s].id.as_deref().unwrap_or("?")
                ));
            }
        }
        // The request id the signature carries: a claim, checked against the trail.
        let is_own = (c.signature.is_some() && c.signature == img.own_signature)
            || intro
                .and_then(|n| ix.intros[n].signature.as_ref())
                .is_some_and(|s| img.own_signature.as_ref() == Some(s));
        let pushed_claim = intro.and_then(|n| ix.intros[n].claimed_request_id.clone());
        let claim = is_own
            .then(|| img.own_request_id.clone())
            .flatten()
            .or_else(|| c.request_id.clone())
            .or_else(|| pushed_claim.clone());
        let mut exact = None;
        let mut sign_by = "none";
        let mut claim_problem = None;
        if let Some(rid) = &claim {
            let found = ix.sign_by_request_id(rid);
            if intro.is_none() && is_own {
                // A record straight from kms-sign: its Sign names the push it was paired with.
                intro = found
                    .and_then(|s| ix.intro_of_sign(s))
                    .filter(|n| intros.contains(n));
                if intro.is_some() {
                    matched_by = "request_id";
                }
            }
            let problem = match found {
                None => Some(format!(
                    "no KMS Sign event has the request id {rid} it carries"
                )),
                Some(s) => claim_problem_of(ix, rid, s, intro, &key_ok, &window).or_else(|| {
                    let other = pushed_claim.as_ref().filter(|p| *p != rid)?;
                    Some(format!(
                        "the record says its Sign request id is {rid}, the pushed signature \
                             manifest says {other}"
                    ))
                }),
            };
            match problem {
                None => {
                    exact = found;
                    sign_by = "request_id";
                }
                Some(p) => {
                    reasons.push(format!(
                        "{label}: {p}; a request id is a claim, checked against the trail, and \
                         this one does not hold"
                    ));
                    claim_problem = Some(p);
                }
            }
        }
        // Candidates are recomputed for a record whose push was found by its request id.
        let (candidates, others) = match intro {
            Some(n) if candidates.is_empty() && matched_by == "request_id" => (
                ix.intros[n]
                    .candidates
                    .iter()
                    .copied()
                    .filter(|&s| key_ok(s))
                    .collect(),
                ix.intros[n]
                    .others
                    .iter()
                    .copied()
                    .filter(|&s| key_ok(s))
                    .collect(),
            ),
            _ => (candidates, others),
        };
        if exact.is_none() && claim_problem.is_none() && candidates.len() == 1 && others.is_empty()
        {
            exact = Some(candidates[0]);
            sign_by = "only_candidate";
        }
        if exact.is_none() && claim_problem.is_none() && !candidates.is_empty() {
            sign_by = "pairing";
        }
        // Everything that could have made it: the verdict is the worst over all of them.
        let mut pool: Vec<usize> = candidates.iter().chain(&others).copied().collect();
        pool.sort_by_key(|&s| (ix.events[s].time, s));
        pool.dedup();
        let role = exact
            .or_else(|| candidates.last().copied())
            .and_then(|s| ix.role_of(s));
        // The verdict.
        let verdict = if candidates.is_empty() {
            match intro {
                None if intros.is_empty() && c.bundle_manifest.is_some() => reasons.push(format!(
                    "{label}: no push of a bundle referrer of {} in {} found in the trail, and no \
                     KMS Sign to explain it",
                    img.digest, img.repository
                )),
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
        } else {
            let mut v = if claim_problem.is_some() {
                Verdict::Unexplained
            } else {
                Verdict::Trusted
            };
            if let Some(n) = intro.filter(|&n| ix.intros[n].short) {
                v = Verdict::Unexplained;
                let push = &ix.events[ix.intros[n].push];
                reasons.push(format!(
                    "{label}: {} pushed more signatures around {} than it made KMS Sign calls \
                     within {window} before them, so one of those signatures was made by someone \
                     else or its Sign is missing from the trail, and this may be the one",
                    push.principal.display().unwrap_or("the pusher"),
                    fmt_time(push.time)
                ));
            }
            let name = |s: usize| {
                let e = &ix.events[s];
                let by = if candidates.contains(&s) {
                    String::new()
                } else {
                    format!(
                        " by another caller, {}",
                        e.principal.display().unwrap_or("unknown")
                    )
                };
                format!(
                    "KMS Sign {} at {}{by}",
                    e.id.as_deref().unwrap_or("?"),
                    fmt_time(e.time)
                )
            };
            if exact.is_none() {
                let listed: Vec<String> = pool.iter().map(|&s| name(s)).collect();
                reasons.push(format!(
                    "{label}: {} KMS Sign events could have made it and the trail cannot tell \
                     which (CloudTrail's Sign event names no digest): {}; the verdict holds for \
                     every one of them",
                    pool.len(),
                    listed.join(", ")
                ));
            }
            for &s in &pool {
                let e = &ix.events[s];
                let which = if Some(s) == exact {
                    format!("signed at {} ({})", fmt_time(e.time), name(s))
                } else {
                    format!("it could have been made by {}", name(s))
                };
                match (e.time, policy.compromised_at) {
                    (Some(t), Some(c)) if t >= c => {
                        v = Verdict::Untrusted;
                        reasons.push(format!(
                            "{label}: {which}, at or after the compromise at {}",
                            fmt_time(Some(c))
                        ));
                    }
                    (None, Some(_)) => {
                        v = v.max(Verdict::Unexplained);
                        reasons.push(format!("{label}: {which}, an event with no time"));
                    }
                    _ => {}
                }
                if !policy.allowed.is_empty() {
                    let ids = identities(ix, s, ix.role_of(s));
                    if !allowed(&policy.allowed, &ids) {
                        v = Verdict::Untrusted;
                        reasons.push(format!(
                            "{label}: {which}, signed by {}, which no --allowed-principal matches",
                            ids.join(" / ")
                        ));
                    }
                }
            }
            v
        };
        let sign = exact;
        signatures.push(SigResult {
            index: c.index,
            intro,
            matched_by,
            sign,
            sign_by,
            candidates: pool,
            claimed_request_id: claim,
            claim_problem,
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
            let ambiguous = signatures.iter().filter(|s| s.sign.is_none()).count();
            let mut what = format!(
                "every signature ({}) has its KMS Sign event",
                signatures.len()
            );
            if ambiguous > 0 {
                what += &format!(
                    " ({ambiguous} of them one of several candidates, each of which qualifies)"
                );
            }
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

mod json;
pub use json::{event_json, events_json, signature_json};

#[cfg(test)]
mod adversarial;
#[cfg(test)]
mod tests;
