//! The audit trail behind `trail-for`: CloudTrail events joined per image into signing times,
//! compromise verdicts and orphan detection.
//!
//! - [`event`]: CloudTrail records → typed events (stream-parsed, unknown events skipped)
//! - [`source`]: S3 log files, local files, `LookupEvents`
//! - [`interest`]: which events can take part in the join (memory bounded by the evidence)
//! - [`keys`]: which KMS key a `Sign` used
//! - [`join`]: the index, the per-image join and the verdicts (the evidence rules are there)
//! - [`usage`]: `--key-usage`, orphan `Sign` events
//! - [`git`]: commits named in annotations
//! - [`timeline`]: the picture
//!
//! [`TrailFor`] is the tool: it reads every input record first (they decide which events can
//! matter: [`interest`]), then loads the trail once, in two explicit passes over the log files
//! (the `Sign` and `PutImage` events of those images and keys; then the role assumptions of the
//! callers found), and joins each record.

pub mod event;
pub mod git;
pub mod integrity;
pub mod interest;
pub mod join;
pub mod keys;
pub mod monitor;
pub mod source;
pub mod timeline;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::harness::{Done, Tool};
use crate::record::{get_str, Record};
use join::{Claimed, Image, Index, Policy, Verdict};
use keys::KeySpec;
use source::{Range, Source};

/// Event names read from `LookupEvents`.
pub const LOOKUP_NAMES: &[&str] = &["Sign", "PutImage", "AssumeRoleWithWebIdentity"];

/// Longest role session: events this long before `--since` are read for role assumptions.
const ROLE_LOOKBACK_HOURS: i64 = 12;

/// Annotation keys read for the commit, first found wins.
pub const COMMIT_KEYS: &[&str] = &[
    "github.sha",
    "github_sha",
    "git_sha",
    "git.sha",
    "git_commit",
    "commit",
];

/// Annotation keys read for the CI run: (key in `trail.ci`, annotation keys).
pub const CI_KEYS: &[(&str, &[&str])] = &[
    ("run_id", &["github.run_id", "github_run_id", "run_id"]),
    ("run_attempt", &["github.run_attempt", "run_attempt"]),
    ("workflow_ref", &["github.workflow_ref", "workflow_ref"]),
    ("repository", &["github.repository", "github_repository"]),
    ("ref", &["github.ref", "github_ref"]),
    ("actor", &["github.actor", "github_actor"]),
    ("server_url", &["github.server_url"]),
];

/// Everything `trail-for` was told.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub sources: Vec<Source>,
    pub range: Range,
    /// Longest time between a `Sign` and the push of its signature.
    pub window: Option<Duration>,
    pub keys: Vec<KeySpec>,
    pub compromised_at: Option<DateTime<Utc>>,
    pub allowed: Vec<String>,
    pub key_usage: bool,
    pub git_dir: Option<PathBuf>,
    pub timeline: Option<PathBuf>,
    pub signature_repo: Option<String>,
    /// Registry account and region for records whose registry is not an ECR host.
    pub account: Option<String>,
    pub region: Option<String>,
    /// Ask ECR `DescribeImages` for the push time of images in ECR registries.
    pub describe_images: bool,
    /// Registry hosts standing for ECR registries (`--ecr-alias`, then `SIGTRAIL_ECR_ALIASES`).
    pub ecr_aliases: Vec<crate::ecr::EcrAlias>,
    /// Keep every event of the kinds the join reads, not only those the records can use (the
    /// equivalence test's switch; the answers must be the same).
    pub keep_all_events: bool,
    /// How much the digest chain is required (`--integrity`).
    pub integrity: integrity::Mode,
    /// CloudTrail's public keys offline (`--cloudtrail-public-keys`), else `ListPublicKeys`.
    pub public_keys: Option<PathBuf>,
    /// Where to write every log file's integrity check, one JSON line each
    /// (`--integrity-report`).
    pub integrity_report: Option<PathBuf>,
    /// The monitor's state file (`--key-usage --state FILE`): report only what is new.
    pub state: Option<PathBuf>,
}

struct State {
    index: Index,
    policy: Policy,
    warnings: Vec<String>,
    /// Parts of the trail that could not be read (see [`source::Loaded::warnings`]).
    gaps: Vec<String>,
    searched: Value,
    /// The digest check of every log file read (`None` with `--integrity off`).
    integrity: Option<integrity::evidence::Checked>,
}

/// The `trail-for` tool.
pub struct TrailFor {
    config: Config,
    state: tokio::sync::OnceCell<Result<Arc<State>, Error>>,
    commits: tokio::sync::Mutex<HashMap<String, git::Commit>>,
    ecr: crate::ecr::Ecr,
    /// Each image's picture with the input position of its record, in input order.
    pictures: Mutex<Vec<(u64, timeline::Picture)>>,
    /// What the input records can use, set by `prepare` before the trail is loaded.
    interest: Mutex<Option<interest::Interest>>,
    /// The monitor's state as read at the start (`--state`).
    monitor: Option<monitor::MonitorState>,
}

impl TrailFor {
    pub fn new(config: Config) -> Result<Self, Error> {
        if config.sources.is_empty() {
            return Err(Error::new(
                "usage",
                "no CloudTrail source: give --cloudtrail s3://BUCKET/PREFIX, a directory, or lookup",
            ));
        }
        if config.key_usage && config.keys.is_empty() {
            return Err(Error::new("usage", "--key-usage needs --key"));
        }
        let mut config = config;
        let monitor = match &config.state {
            None => None,
            Some(_) if !config.key_usage => {
                return Err(Error::new("usage", "--state is the monitor's: use it with --key-usage"))
            }
            Some(_) if config.integrity == integrity::Mode::Off => {
                return Err(Error::new(
                    "usage",
                    "the monitor reports only validated events: --state cannot be used with --integrity off",
                ))
            }
            Some(path) => {
                let m = monitor::MonitorState::read(path).map_err(|e| Error::new("usage", e))?;
                let window = config
                    .window
                    .unwrap_or(Duration::seconds(join::DEFAULT_WINDOW_SECS));
                config.range.since = m.read_from(config.range.since, window);
                Some(m)
            }
        };
        Ok(TrailFor {
            config,
            state: tokio::sync::OnceCell::new(),
            commits: tokio::sync::Mutex::new(HashMap::new()),
            ecr: crate::ecr::Ecr::new(),
            pictures: Mutex::new(Vec::new()),
            interest: Mutex::new(None),
            monitor,
        })
    }

    fn window(&self) -> Duration {
        self.config
            .window
            .unwrap_or(Duration::seconds(join::DEFAULT_WINDOW_SECS))
    }

    async fn state(&self) -> Result<Arc<State>, Error> {
        self.state
            .get_or_init(|| self.load())
            .await
            .as_ref()
            .map(Arc::clone)
            .map_err(Clone::clone)
    }

    /// Reads every source once.
    async fn load(&self) -> Result<Arc<State>, Error> {
        let window = self.window();
        let mut warnings = Vec::new();
        let keys = keys::resolve(self.config.keys.clone(), &mut warnings).await;
        let range = self.config.range;
        let load_range = Range {
            since: range
                .since
                .map(|s| s - window - Duration::hours(ROLE_LOOKBACK_HOURS)),
            until: range.until.map(|u| u + window),
        };
        let interest = if self.config.keep_all_events {
            interest::Interest::everything()
        } else {
            let prepared = self.interest.lock().map(|mut i| i.take()).unwrap_or(None);
            let mut interest =
                prepared.unwrap_or_else(|| interest::Interest::for_records(&[], &[]));
            if !keys.is_empty() {
                interest.keys = Some(keys.clone());
            }
            interest
        };
        let hash_files = self.config.integrity != integrity::Mode::Off;
        let interest = interest::Interest {
            hash_files,
            ..interest
        };
        let mut loaded =
            source::load(&self.config.sources, load_range, LOOKUP_NAMES, &interest).await;
        // The second pass: the role assumptions of the callers found, from the log files.
        let files: Vec<Source> = self
            .config
            .sources
            .iter()
            .filter(|s| {
                !matches!(
                    s,
                    Source::Lookup { .. } | Source::Athena(_) | Source::Lake(_)
                )
            })
            .cloned()
            .collect();
        let roles = interest::Interest::roles_of(&loaded.events);
        let mut passes = 1;
        let mut reread = 0;
        if matches!(interest.roles, interest::Roles::None) && !files.is_empty() && roles.has_roles()
        {
            // Only the files that hold a role assumption one of the callers could have made.
            let wanted: std::collections::HashSet<String> = std::mem::take(&mut loaded.roles_in)
                .into_iter()
                .filter(|(_, hashes)| roles.may_keep_role(hashes))
                .map(|(origin, _)| origin)
                .collect();
            reread = wanted.len();
            if !wanted.is_empty() {
                passes = 2;
                let roles = interest::Interest {
                    hash_files,
                    only_files: Some(Arc::new(wanted)),
                    ..roles
                };
                let second = source::load(&files, load_range, LOOKUP_NAMES, &roles).await;
                loaded.merge_second_pass(second);
            }
        }
        let integrity = match self.config.integrity {
            integrity::Mode::Off => None,
            mode => {
                let (keys, unavailable) = integrity::public_keys::for_digests(
                    self.config.public_keys.as_deref(),
                    &loaded.digests,
                )
                .await
                .map_err(|e| Error::new("usage", e))?;
                let wanted = loaded.would_read(load_range);
                Some(integrity::evidence::Checked::run(
                    mode,
                    std::mem::take(&mut loaded.logs),
                    &loaded.digests,
                    &keys,
                    &unavailable,
                    &wanted,
                ))
            }
        };
        if let Some(checked) = &integrity {
            for line in checked.stderr_lines() {
                eprintln!("trail-for: {line}");
            }
            if let Some(path) = &self.config.integrity_report {
                checked.write_report(path).map_err(|e| {
                    Error::new(
                        "integrity_report",
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
            }
        }
        let gaps = loaded.warnings.clone();
        warnings.extend(loaded.warnings);
        if loaded.failed_sources == self.config.sources.len() {
            return Err(Error::new(
                "cloudtrail",
                format!("cannot read any CloudTrail source: {}", warnings.join("; ")),
            ));
        }
        const SHOWN: usize = 20;
        for w in warnings.iter().take(SHOWN) {
            eprintln!("trail-for: warning: {w}");
        }
        if warnings.len() > SHOWN {
            eprintln!(
                "trail-for: warning: {} more warnings (in each record's trail.warnings)",
                warnings.len() - SHOWN
            );
        }
        let fmt =
            |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        let searched = json!({
            "sources": self.config.sources.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "since": fmt(range.since),
            "until": fmt(range.until),
            "files": loaded.files,
            "records": loaded.records,
            "events": loaded.events_seen,
            "integrity": integrity.as_ref().map_or_else(
                || json!({"mode": "off"}),
                integrity::evidence::Checked::summary_json
            ),
        });
        if std::env::var_os("SIGTRAIL_TRAIL_STATS").is_some() {
            // For the benchmark: how much of the trail was kept, and in how many passes.
            eprintln!(
                "trail-for: stats: records {} events_seen {} events_kept {} passes {passes} \
                 reread_files {reread}",
                loaded.records,
                loaded.events_seen,
                loaded.events.len()
            );
        }
        let index = Index::build(loaded.events, &keys, window);
        Ok(Arc::new(State {
            index,
            policy: Policy {
                compromised_at: self.config.compromised_at,
                allowed: self.config.allowed.clone(),
                keys,
            },
            warnings,
            gaps,
            searched,
            integrity,
        }))
    }

    async fn commit(&self, sha: &str) -> Option<git::Commit> {
        let dir = self.config.git_dir.as_ref()?;
        if let Some(c) = self.commits.lock().await.get(sha) {
            return Some(c.clone());
        }
        let c = git::lookup(dir, sha).await;
        self.commits.lock().await.insert(sha.to_string(), c.clone());
        Some(c)
    }

    /// The ECR registry a host is, or stands for.
    fn ecr_target(&self, host: &str) -> Option<crate::ecr::EcrTarget> {
        self.config
            .ecr_aliases
            .iter()
            .find(|a| a.host == host)
            .map(|a| a.target.clone())
            .or_else(|| crate::ecr::EcrTarget::from_host(host))
    }

    async fn join_record(&self, rec: &mut Record) -> Result<Done, Error> {
        let state = self.state().await?;
        let ix = &state.index;
        let digest = get_str(rec, "digest")
            .filter(|d| event::sig_tag(d).is_some())
            .ok_or_else(|| {
                Error::new(
                    "no_digest",
                    "record has no sha256 digest: run digest-of first",
                )
            })?
            .to_string();
        let repository = get_str(rec, "repository")
            .ok_or_else(|| {
                Error::new(
                    "no_repository",
                    "record has no repository: run digest-of first",
                )
            })?
            .to_string();
        let registry = get_str(rec, "registry").unwrap_or_default().to_string();
        let ecr = self.ecr_target(&registry);
        let account = ecr
            .as_ref()
            .map(|t| t.registry_id.clone())
            .or_else(|| {
                rec.get("ecr")
                    .and_then(|e| e.get("registry_id"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .or(self.config.account.clone());
        let region = ecr
            .as_ref()
            .map(|t| t.region.clone())
            .or(self.config.region.clone());
        // Where the signatures live: --signature-repo, else where attach-sig put them or
        // check-sig read them (`host/repository`), else the image's repository.
        let named_repo = |v: Option<&Value>| {
            v.and_then(|r| r.get("repository"))
                .and_then(Value::as_str)
                .map(|r| {
                    r.strip_prefix(&format!("{registry}/"))
                        .unwrap_or(r)
                        .to_string()
                })
        };
        let signature_repository = self
            .config
            .signature_repo
            .clone()
            .or_else(|| named_repo(rec.get("attached")))
            .or_else(|| {
                named_repo(
                    rec.get("verification")
                        .and_then(|v| v.get("signature_manifest")),
                )
            })
            .unwrap_or_else(|| repository.clone());
        let mut record_keys = Vec::new();
        let kms = rec.get("kms");
        if let Some(arn) = kms.and_then(|k| k.get("key_arn")).and_then(Value::as_str) {
            record_keys.extend(KeySpec::parse(arn).ok());
        }
        if let Some(k) = get_str(rec, "key").filter(|k| k.starts_with("awskms://")) {
            record_keys.extend(KeySpec::parse(k).ok());
        }
        let verified = rec.get("verification").map(claimed_signatures);
        let img = Image {
            digest: digest.clone(),
            repository: repository.clone(),
            account: account.clone(),
            region: region.clone(),
            signature_repository,
            verified,
            own_signature: get_str(rec, "signature").map(str::to_string),
            own_request_id: kms
                .and_then(|k| k.get("request_id"))
                .and_then(Value::as_str)
                .map(str::to_string),
            own_manifest_digest: rec
                .get("attached")
                .and_then(|a| a.get("manifest_digest"))
                .and_then(Value::as_str)
                .map(str::to_string),
            keys: record_keys,
        };
        let mut joined = join::join(ix, &state.policy, &img);
        // A file that could not be read may hold the Sign or push that changes the answer:
        // with a gap in the trail, the best an image gets is `unexplained`.
        if joined.verdict == Verdict::Trusted && !state.gaps.is_empty() {
            joined.verdict = Verdict::Unexplained;
            for sig in &mut joined.signatures {
                sig.verdict = Verdict::Unexplained;
            }
            let more = match state.gaps.len() {
                1 => String::new(),
                n => format!(" and {} more, in trail.warnings", n - 1),
            };
            joined.reasons.insert(
                0,
                format!(
                    "the trail has a gap, so this cannot be trusted: {}{more}; every signature \
                     is explained by what was read, but a missing event could change that; \
                     make the trail readable and run again",
                    state.gaps[0]
                ),
            );
        }
        // Evidence no digest vouches for cannot make an image trusted (integrity/evidence.rs).
        let integrity_json = match &state.integrity {
            Some(checked) => checked.judge(ix, &mut joined),
            None => {
                if joined.verdict == Verdict::Trusted {
                    joined.reasons.insert(
                        0,
                        "note: the log files' integrity was not checked (--integrity off)".into(),
                    );
                }
                json!({"mode": "off"})
            }
        };
        let mut warnings: Vec<String> = state.warnings.clone();
        let mut reasons = joined.reasons.clone();

        // When the image was pushed: ECR's own record, else the first PutImage event.
        let mut extra_events: Vec<(Option<DateTime<Utc>>, Value)> = Vec::new();
        let mut pushed_at = None;
        let mut pushed_at_source = None;
        if let Some(t) = rec
            .get("ecr")
            .and_then(|e| e.get("pushed_at"))
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            pushed_at = Some(t.with_timezone(&Utc));
            pushed_at_source = Some("ecr.pushed_at");
        } else if let (Some(target), true) = (&ecr, self.config.describe_images) {
            match self.ecr.describe_image(target, &repository, &digest).await {
                Ok(image) => {
                    pushed_at = image
                        .pushed_at
                        .as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&Utc));
                    pushed_at_source = pushed_at.map(|_| "ecr DescribeImages");
                }
                Err(e) => warnings.push(e.message),
            }
        }
        if let Some(t) = pushed_at {
            extra_events.push((
                Some(t),
                json!({"what": "image_pushed_at", "time": fmt(t), "source": "ecr.amazonaws.com",
                       "name": "DescribeImages", "repository": repository, "digest": digest}),
            ));
        } else if let Some(&first) = joined.image_pushes.first() {
            pushed_at = ix.events[first].time;
            pushed_at_source = Some("cloudtrail PutImage");
        }

        // Commit and CI run from the payload annotations.
        let ann = annotations(rec);
        let mut commit_json = Value::Null;
        let mut commit_time = None;
        if let Some((key, sha)) = COMMIT_KEYS
            .iter()
            .find_map(|k| ann.get(*k).map(|v| (*k, v.clone())))
        {
            let mut c = json!({"sha": sha, "annotation": key});
            if let Some(found) = self.commit(&sha).await {
                c = found.to_json();
                c["annotation"] = key.into();
                if !found.exists {
                    reasons.push(format!(
                        "note: commit {sha} (annotation {key}) is not in the git repository"
                    ));
                }
                if let Some(t) = found
                    .time
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                {
                    let t = t.with_timezone(&Utc);
                    commit_time = Some(t);
                    extra_events.push((
                        Some(t),
                        json!({"what": "commit", "time": fmt(t), "source": "git", "name": "commit",
                               "sha": found.sha, "author": found.author, "subject": found.subject}),
                    ));
                }
            }
            commit_json = c;
        }
        let mut ci = Map::new();
        for (field, keys) in CI_KEYS {
            if let Some(v) = keys.iter().find_map(|k| ann.get(*k)) {
                ci.insert((*field).into(), v.clone().into());
            }
        }
        if let (Some(repo), Some(run)) = (
            ci.get("repository").and_then(Value::as_str),
            ci.get("run_id").and_then(Value::as_str),
        ) {
            let server = ci
                .get("server_url")
                .and_then(Value::as_str)
                .unwrap_or("https://github.com");
            let url = format!("{server}/{repo}/actions/runs/{run}");
            ci.insert("url".into(), url.into());
        }
        // The OIDC subject of the signer against the CI run the payload names.
        for s in &joined.signatures {
            let subject = s
                .role
                .and_then(|r| ix.events[r].as_assume_role())
                .and_then(|a| a.subject.as_deref());
            if let (Some(sub), Some(repo)) = (subject, ci.get("repository").and_then(Value::as_str))
            {
                if sub.starts_with("repo:") && !sub.starts_with(&format!("repo:{repo}:")) {
                    reasons.push(format!(
                        "note: signature {} was signed from {sub}, but the payload names the repository {repo}",
                        s.index.unwrap_or(0)
                    ));
                }
            }
        }

        let mut events = join::events_json(ix, &joined);
        events.extend(extra_events);
        events.sort_by_key(|(t, _)| *t);

        let mut trail = Map::new();
        trail.insert("verdict".into(), joined.verdict.as_str().into());
        trail.insert("reasons".into(), json!(reasons));
        trail.insert(
            "signatures".into(),
            Value::Array(
                joined
                    .signatures
                    .iter()
                    .map(|s| join::signature_json(ix, s, state.policy.compromised_at))
                    .collect(),
            ),
        );
        if let Some(t) = pushed_at {
            trail.insert("image_pushed_at".into(), fmt(t).into());
            trail.insert(
                "image_pushed_at_source".into(),
                pushed_at_source.unwrap_or_default().into(),
            );
        }
        if let Some(c) = state.policy.compromised_at {
            trail.insert("compromised_at".into(), fmt(c).into());
        }
        if !commit_json.is_null() {
            trail.insert("commit".into(), commit_json);
        }
        if !ci.is_empty() {
            trail.insert("ci".into(), Value::Object(ci));
        }
        trail.insert(
            "events".into(),
            Value::Array(events.iter().map(|(_, v)| v.clone()).collect()),
        );
        trail.insert("integrity".into(), integrity_json);
        trail.insert("searched".into(), state.searched.clone());
        if !warnings.is_empty() {
            trail.insert("warnings".into(), json!(warnings));
        }

        if let Some(path) = &self.config.timeline {
            let picture = picture(
                ix,
                &joined,
                &img,
                &registry,
                commit_time,
                pushed_at,
                &state.policy,
            );
            // Outside the harness (no number) a picture goes last.
            let number = crate::harness::record_number().unwrap_or(u64::MAX);
            self.draw(path, number, picture).map_err(|e| {
                Error::new("timeline", format!("cannot write {}: {e}", path.display()))
            })?;
        }
        rec.insert("trail".into(), Value::Object(trail));
        Ok(match joined.verdict {
            Verdict::Trusted => Done::ok(),
            v => Done::failed(v.as_str()),
        })
    }

    /// The span the monitor reports this run (see `monitor.rs`); fails, leaving the state as it
    /// was, when the trail could not be read whole or nothing authentic covers it.
    fn monitor_span(&self, state: &State, m: &monitor::MonitorState) -> Result<Range, Error> {
        if let Some(first) = state.gaps.first() {
            return Err(Error::new(
                "trail_gap",
                format!(
                    "{} part(s) of the trail could not be read (first: {first}); the monitor's \
                     state is unchanged: make the trail readable and run again",
                    state.gaps.len()
                ),
            ));
        }
        let lookup_only = self
            .config
            .sources
            .iter()
            .all(|s| matches!(s, Source::Lookup { .. }));
        let covered = match &state.integrity {
            _ if lookup_only => Some(Utc::now() - Duration::minutes(15)),
            Some(c) if c.mode == integrity::Mode::Advisory => {
                Some(c.report.covered_until.unwrap_or_else(Utc::now))
            }
            Some(c) => c.report.covered_until,
            None => None,
        };
        let Some(covered) = covered else {
            return Err(Error::new(
                "no_digests",
                "no authentic CloudTrail digest covers the trail read, and the monitor reports \
                 only validated events: turn on log file validation (or copy the digests and \
                 their signatures), or use --integrity advisory",
            ));
        };
        // Nothing can be covered after now (a digest ending later is a clock's error).
        let covered = covered.min(Utc::now());
        let (since, until) = m.span(self.config.range.since, covered, self.window());
        Ok(Range {
            since: m.reported_until.map(|r| r + Duration::seconds(1)).or(since),
            until: Some(until),
        })
    }

    /// Adds (or replaces) the picture of the record at input position `number` and rewrites
    /// the timeline file.
    fn draw(
        &self,
        path: &std::path::Path,
        number: u64,
        picture: timeline::Picture,
    ) -> std::io::Result<()> {
        let mut pictures = self
            .pictures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        place(&mut pictures, number, picture);
        let all: Vec<timeline::Picture> = pictures.iter().map(|(_, p)| p.clone()).collect();
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, timeline::render(path, &all))?;
        std::fs::rename(&tmp, path)
    }
}

/// Puts `picture` in input order: records finish in any order with `--jobs` > 1. An image seen
/// again (same title) keeps its first place and shows its latest picture.
fn place(pictures: &mut Vec<(u64, timeline::Picture)>, number: u64, picture: timeline::Picture) {
    match pictures.iter_mut().find(|(_, p)| p.title == picture.title) {
        Some(slot) => *slot = (slot.0.min(number), picture),
        None => {
            let at = pictures.partition_point(|(n, _)| *n <= number);
            pictures.insert(at, (number, picture));
        }
    }
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Tool for TrailFor {
    const NAME: &'static str = "trail-for";
    const DEFAULT_JOBS: u16 = 8;
    const READS_ALL_INPUT: bool = true;

    async fn prepare(&self, records: &[Record]) {
        if self.config.key_usage {
            return; // the trail was read for `generate`
        }
        let interest = interest::Interest::for_records(records, &[]);
        if let Ok(mut slot) = self.interest.lock() {
            *slot = Some(interest);
        }
    }

    async fn process(&self, rec: &mut Record) -> Result<Done, Error> {
        if self.config.key_usage {
            // The records came from `generate`; only the verdict remains.
            if let Some(gaps) = rec.get("trail").and_then(|t| t.get("gaps")) {
                let n = gaps.as_array().map_or(0, Vec::len);
                let first = gaps.get(0).and_then(Value::as_str).unwrap_or_default();
                return Err(Error::new(
                    "trail_gap",
                    format!(
                        "{n} part(s) of the trail could not be read (first: {first}); any Sign \
                         event in them would be missing above, so this key usage may be \
                         incomplete; make the trail readable and run again"
                    ),
                ));
            }
            if let Some(t) = rec.get("trail").and_then(|t| t.get("tampering")) {
                if self.monitor.is_some() {
                    return Ok(Done::failed("tampered")); // a finding the monitor reports once
                }
                let n = t.as_array().map_or(0, Vec::len);
                let first = t.get(0).and_then(Value::as_str).unwrap_or_default();
                return Err(Error::new(
                    "trail_tampered",
                    format!(
                        "{n} integrity break(s) in the trail (first: {first}); the key usage above \
                         may be forged or incomplete: find out who wrote to the trail bucket"
                    ),
                ));
            }
            return Ok(if rec.get("orphan") == Some(&Value::Bool(true)) {
                Done::failed("orphan")
            } else if self.monitor.is_some() && rec.get("attempt").is_some() {
                Done::failed("attempt") // the monitor flags every new failed attempt
            } else {
                Done::ok()
            });
        }
        self.join_record(rec).await
    }

    async fn generate(&self) -> Result<Option<Vec<Record>>, Error> {
        if !self.config.key_usage {
            return Ok(None);
        }
        let state = self.state().await?;
        let mut monitor = self.monitor.clone();
        let mut range = self.config.range;
        if let Some(m) = &monitor {
            range = self.monitor_span(&state, m)?;
        }
        let mut records = usage::key_usage(&state.index, &state.policy.keys, &range);
        if !state.warnings.is_empty() {
            for r in &mut records {
                if let Some(Value::Object(t)) = r.get_mut("trail") {
                    t.insert("warnings".into(), json!(state.warnings));
                }
            }
        }
        // Tampering anywhere makes every answer doubtful: one record names it and fails the run.
        if let Some(checked) = &state.integrity {
            // The monitor reports each finding once.
            let findings = match &mut monitor {
                Some(m) => m.new_findings(&checked.report.tampering),
                None => checked.report.tampering.clone(),
            };
            if !findings.is_empty() {
                let mut t = Record::new();
                t.insert(
                    "trail".into(),
                    json!({"tampering": findings, "integrity": checked.summary_json()}),
                );
                records.push(t);
            }
        }
        if let (Some(m), Some(path)) = (&mut monitor, &self.config.state) {
            // Everything was read: the new checkpoint holds.
            m.reported_until = range.until.or(m.reported_until);
            m.updated_at = Some(Utc::now());
            m.write(path).map_err(|e| Error::new("state", e))?;
        }
        // A gap could hide any Sign: one last record says so and fails the run.
        if !state.gaps.is_empty() {
            let mut gap = Record::new();
            gap.insert("trail".into(), json!({"gaps": state.gaps}));
            records.push(gap);
        }
        Ok(Some(records))
    }
}

/// The signatures `check-sig` accepted: `verification.signatures[i]` with `verified: true`.
///
/// Read per entry: `signature` (base64), `layer_digest` / `digest` (the payload blob, or the
/// bundle blob), `bundle_manifest` (a cosign v3 bundle's referrer manifest), `key` (an
/// `awskms://` reference) and `index` (else the position: check-sig lists one entry per layer,
/// in layer order).
fn claimed_signatures(verification: &Value) -> Vec<Claimed> {
    let Some(list) = verification.get("signatures").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter(|(_, s)| s.get("verified") == Some(&Value::Bool(true)))
        .map(|(i, s)| {
            let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
            Claimed {
                index: Some(
                    s.get("index")
                        .and_then(Value::as_u64)
                        .map_or(i, |n| n as usize),
                ),
                signature: text("signature"),
                layer_digest: text("layer_digest")
                    .or_else(|| text("blob_digest"))
                    .or_else(|| text("digest")),
                request_id: s
                    .get("layer_annotations")
                    .and_then(|a| a.get(crate::cosign::KMS_REQUEST_ID_ANNOTATION))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                keys: text("key")
                    .filter(|k| k.starts_with("awskms://"))
                    .and_then(|k| KeySpec::parse(&k).ok())
                    .into_iter()
                    .collect(),
                bundle_manifest: text("bundle_manifest"),
            }
        })
        .collect()
}

/// String annotations of the payload: from the record's own `payload`, then from each accepted
/// signature's claims (`annotations`, `optional`, `claims.optional`, `payload.optional`).
fn annotations(rec: &Record) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut take = |v: Option<&Value>| {
        if let Some(map) = v.and_then(Value::as_object) {
            for (k, v) in map {
                if let Some(s) = v.as_str() {
                    out.entry(k.clone()).or_insert_with(|| s.to_string());
                }
            }
        }
    };
    if let Some(payload) = get_str(rec, "payload") {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(payload) {
            if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
                take(v.get("optional"));
            }
        }
    }
    let sigs = rec
        .get("verification")
        .and_then(|v| v.get("signatures"))
        .and_then(Value::as_array);
    for s in sigs.into_iter().flatten() {
        if s.get("verified") != Some(&Value::Bool(true)) {
            continue;
        }
        take(s.get("annotations"));
        take(s.get("optional"));
        take(s.get("claims").and_then(|c| c.get("optional")));
        take(s.get("payload").and_then(|c| c.get("optional")));
    }
    out
}

/// The timeline picture of one joined image.
fn picture(
    ix: &Index,
    joined: &join::Joined,
    img: &Image,
    registry: &str,
    commit_time: Option<DateTime<Utc>>,
    pushed_at: Option<DateTime<Utc>>,
    policy: &Policy,
) -> timeline::Picture {
    use timeline::Mark;
    let mut marks = Vec::new();
    let mut links = Vec::new();
    if let Some(t) = commit_time {
        marks.push(Mark {
            time: t,
            lane: 0,
            label: "commit".into(),
            detail: format!("commit at {}", fmt(t)),
            state: "info",
        });
    }
    let mut roles = Vec::new();
    for s in &joined.signatures {
        if let Some(r) = s.role {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
    }
    for r in roles {
        let e = &ix.events[r];
        if let (Some(t), Some(a)) = (e.time, e.as_assume_role()) {
            marks.push(Mark {
                time: t,
                lane: 1,
                label: a.session_name.clone().unwrap_or_else(|| "role".into()),
                detail: format!(
                    "{} {} {}\nsubject {}\nrole {}",
                    e.name,
                    fmt(t),
                    e.id.as_deref().unwrap_or(""),
                    a.subject.as_deref().unwrap_or("-"),
                    a.role_arn.as_deref().unwrap_or("-")
                ),
                state: "info",
            });
        }
    }
    for &i in &joined.image_pushes {
        let e = &ix.events[i];
        if let (Some(t), Some(p)) = (e.time, e.as_put_image()) {
            marks.push(Mark {
                time: t,
                lane: 2,
                label: format!("PutImage {}", p.tag.as_deref().unwrap_or("")),
                detail: format!(
                    "PutImage {} by {} ({})",
                    fmt(t),
                    e.principal.display().unwrap_or("?"),
                    e.id.as_deref().unwrap_or("")
                ),
                state: "info",
            });
        }
    }
    if joined.image_pushes.is_empty() {
        if let Some(t) = pushed_at {
            marks.push(Mark {
                time: t,
                lane: 2,
                label: "pushed".into(),
                detail: format!("ECR imagePushedAt {}", fmt(t)),
                state: "info",
            });
        }
    }
    let mut pushes_drawn: HashMap<usize, usize> = HashMap::new();
    for s in &joined.signatures {
        let n = s.index.unwrap_or(0);
        let state = s.verdict.as_str();
        let mut sign_mark = None;
        // The proven Sign, or every candidate when the trail cannot tell which it was.
        let (drawn, label) = match s.sign {
            Some(i) => (vec![i], format!("sig {n}")),
            None => (s.candidates.clone(), format!("sig {n}?")),
        };
        for i in drawn {
            let e = &ix.events[i];
            if let Some(t) = e.time {
                sign_mark = Some(marks.len());
                let one_of = match s.sign {
                    Some(_) => String::new(),
                    None => format!(" (one of {} candidates)", s.candidates.len()),
                };
                marks.push(Mark {
                    time: t,
                    lane: 3,
                    label: label.clone(),
                    detail: format!(
                        "KMS Sign {} by {}{one_of}\nevent {} request {}\n{}",
                        fmt(t),
                        e.principal.display().unwrap_or("?"),
                        e.id.as_deref().unwrap_or("-"),
                        e.request_id.as_deref().unwrap_or("-"),
                        state
                    ),
                    state,
                });
            }
        }
        if let Some(intro) = s.intro {
            let push = ix.intros[intro].push;
            let mark = match pushes_drawn.get(&push) {
                Some(m) => Some(*m),
                None => {
                    let e = &ix.events[push];
                    e.time.map(|t| {
                        marks.push(Mark {
                            time: t,
                            lane: 4,
                            label: format!("sig {n}"),
                            detail: format!(
                                "PutImage {} {} by {} ({})",
                                e.as_put_image()
                                    .and_then(|p| p.tag.as_deref())
                                    .unwrap_or(""),
                                fmt(t),
                                e.principal.display().unwrap_or("?"),
                                e.id.as_deref().unwrap_or("")
                            ),
                            state,
                        });
                        pushes_drawn.insert(push, marks.len() - 1);
                        marks.len() - 1
                    })
                }
            };
            if let (Some(a), Some(b)) = (sign_mark, mark) {
                links.push((a, b));
            }
        }
    }
    let short = img.digest.get(..19).unwrap_or(&img.digest);
    let who = if registry.is_empty() {
        img.repository.clone()
    } else {
        format!("{registry}/{}", img.repository)
    };
    timeline::Picture {
        title: format!("{who}@{short}…"),
        subtitle: format!(
            "{}: {}",
            joined.verdict.as_str(),
            joined.reasons.first().map(String::as_str).unwrap_or("")
        ),
        marks,
        links,
        compromised_at: policy.compromised_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_stay_in_input_order() {
        let picture = |title: &str, subtitle: &str| timeline::Picture {
            title: title.into(),
            subtitle: subtitle.into(),
            marks: Vec::new(),
            links: Vec::new(),
            compromised_at: None,
        };
        let mut pictures = Vec::new();
        // Finished in the order 2, 0, 3, 1; record 4 repeats record 0's image.
        for (n, title) in [(2, "c"), (0, "a"), (3, "d"), (1, "b")] {
            place(&mut pictures, n, picture(title, "first"));
        }
        place(&mut pictures, 4, picture("a", "again"));
        let order: Vec<(u64, &str, &str)> = pictures
            .iter()
            .map(|(n, p)| (*n, p.title.as_str(), p.subtitle.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                (0, "a", "again"),
                (1, "b", "first"),
                (2, "c", "first"),
                (3, "d", "first")
            ]
        );
    }

    #[test]
    fn record_fields() {
        let payload = base64::engine::general_purpose::STANDARD.encode(
            r#"{"critical":{},"optional":{"github.sha":"abc123","github.run_id":"7","n":1}}"#,
        );
        let rec: Record = serde_json::from_value(json!({
            "payload": payload,
            "verification": {"verified": true, "signatures": [
                {"verified": false, "annotations": {"git_sha": "bad"}},
                {"verified": true, "signature": "MEUC", "key": "awskms:///alias/cosign",
                 "annotations": {"github.repository": "org/app", "github.sha": "other"}}
            ]}
        }))
        .unwrap();
        let ann = annotations(&rec);
        assert_eq!(ann.get("github.sha").map(String::as_str), Some("abc123"));
        assert_eq!(
            ann.get("github.repository").map(String::as_str),
            Some("org/app")
        );
        assert!(
            !ann.contains_key("git_sha"),
            "rejected signatures are not read"
        );
        assert!(!ann.contains_key("n"), "only string values");
        let claimed = claimed_signatures(&rec["verification"]);
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].index, Some(1));
        assert_eq!(claimed[0].signature.as_deref(), Some("MEUC"));
        assert_eq!(claimed[0].keys[0].alias.as_deref(), Some("alias/cosign"));
    }
}
