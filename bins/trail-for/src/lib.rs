//! `trail-for`: rebuilds the audit trail Rekor would have given, from CloudTrail, ECR and git.
//!
//! **Reads** image records with `digest`, `repository`, `registry` (best after `check-sig`, whose
//! `verification.signatures[]` say which signatures were accepted; or straight after
//! `kms-sign` / `attach-sig`, whose `kms.request_id` and `attached.manifest_digest` name the
//! exact events). **Adds** `trail`: `verdict` (`trusted` / `untrusted` / `unexplained`),
//! `reasons`, `signatures[]` (`signed_at`, `compromise`: `before` / `after` / `unknown`,
//! `principal`, `subject`, `evidence` with the CloudTrail event ids and request ids, `verdict`),
//! `image_pushed_at`, `commit`, `ci`, the time-ordered `events`, what was `searched`, and
//! `warnings` (log files that could not be read). While any part of the trail could not be read
//! (a gap: a file, a directory, a source, a record), no image is `trusted`: at best
//! `unexplained`, with the gap as its first reason.
//!
//! Signing times are what the evidence proves: `signed_at` for one candidate `Sign` (or a
//! request id claim that checks out), else `signed_after` / `signed_before`; the verdict is
//! the worst case over every candidate (see the rules in `sigtrail::trail::join`).
//!
//! With `--key-usage` it reads no input: it emits one record per KMS `Sign` event of the keys
//! (`kms`: key, request id, time, event id, principal) with the signature push it explains
//! (`digest`, `trail.signature_push`) or `"orphan": true`, and one per failed `Sign` attempt
//! (`attempt`: `error_code`, `error_message`; never an orphan); when part of the trail could not be
//! read, a last record with `trail.gaps` and the error `trail_gap` says the list may be incomplete.
//!
//! The evidence rules are documented in `sigtrail::trail::join`.
//!
//! Exit status: 0 every image trusted (no orphan); 1 a record untrusted, unexplained, an orphan
//! or an error; 2 usage or configuration error (including no readable CloudTrail source).

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Parser;
use sigtrail::ecr::EcrAlias;
use sigtrail::harness::Common;
use sigtrail::trail::integrity::Mode as IntegrityMode;
use sigtrail::trail::keys::KeySpec;
use sigtrail::trail::source::athena::Layout as AthenaLayout;
use sigtrail::trail::source::{Range, Source};
use sigtrail::trail::{Config, TrailFor};

const EXAMPLES: &str = "\
EXAMPLES:
  # which signatures were made before the key leaked at 01:00?
  digest-of --all 123456789012.dkr.ecr.us-east-1.amazonaws.com/app \\
    | check-sig --key awskms:///alias/cosign \\
    | trail-for --cloudtrail s3://audit/AWSLogs/123456789012/CloudTrail/ --since 2025-10-01 \\
        --key awskms:///alias/cosign --compromised-at 2025-11-11T01:00:00Z

  # only CI of main may sign; draw the trail
  ... | trail-for --cloudtrail lookup --allowed-principal 'repo:org/app:ref:refs/heads/main' \\
        --git-dir . --timeline trail.html

  # a year of an organization trail, searched by Athena (docs/athena.md has the table's DDL)
  ... | trail-for --cloudtrail athena:cloudtrail.org_trail --since 2025-01-01 \\
        --athena-output s3://athena-results/sigtrail/ --athena-max-scan 1TB --key alias/cosign

  # every use of the key since Monday: orphans are Sign calls no attached signature explains
  trail-for --key-usage --key awskms:///alias/cosign --since 2025-11-10 \\
    --cloudtrail ./cloudtrail-logs --cloudtrail lookup

VERDICTS: the worst case over every explanation the trail allows.
CloudTrail's Sign event names no digest, so a signature push is tied to a Sign by caller, key
and time: its candidates are the key's Sign events by the pusher within --window before the
push; Signs by other callers in that window count too (a signature can be signed by one caller
and pushed by another). A signature is trusted only if every candidate is before
--compromised-at and by an --allowed-principal; one candidate at or after it makes it
untrusted; no candidate leaves it unexplained. With one candidate signed_at is its time; with
several, signed_after..signed_before spans them and the reasons name them. attach-sig writes the
Sign request id into the signature (layer annotation dev.sigtrail/kms-request-id): trail-for
checks that claim (the Sign exists, used the key, by the pusher, within the window, claimed by no
other signature) and then reports the exact signed_at; a claim that fails leaves the signature
unexplained. A claim never overrides the other candidates. Failed Sign calls (errorCode) are no
candidates; --key-usage lists them as attempts, apart from orphans.

SOURCES (--cloudtrail, repeatable):
  s3://BUCKET/PREFIX   the trail's log files (AWSLogs/ACCT/CloudTrail/REGION/YYYY/MM/DD/*.json.gz);
                       only the days between --since and --until are listed
  DIR or FILE          the same files on disk, or any *.json / *.json.gz under DIR
  lookup[:REGION]      the LookupEvents API (last 90 days)
  athena:DB.TABLE      an Athena table over the trail bucket (docs/athena.md has the DDL):
                       only the queries the records need, partitions pruned by date (and by
                       the keys' account and region); bytes scanned and cost on stderr;
                       --athena-workgroup, --athena-output, --athena-max-scan, --athena-layout.
                       With --integrity, every S3 object a row came from is fetched and checked
                       against the digests, and the others the digests list must still exist
  lake:EVENT_DATA_STORE the same queries on a CloudTrail Lake event data store (id or ARN;
                       Lake is closed to new customers); its events count as service evidence
A log file, directory or source that cannot be read is a gap: it is named on stderr and in
trail.warnings, and while there is one no image is trusted (at best unexplained) and
--key-usage ends with a trail_gap error record.

INTEGRITY (--integrity, default strict): every log file evidence comes from is checked against
CloudTrail's signed digest chain (AWSLogs/ACCT/CloudTrail-Digest/REGION/, read beside the log
files; keys from ListPublicKeys in the digest's region, or --cloudtrail-public-keys FILE offline,
as `aws cloudtrail list-public-keys --output json` prints them). Each file is validated, pending
(delivered after the newest digest, under 2 hours ago), unvalidated (no digest can speak for it,
with why), invalid (edited, forged, moved, a digest missing or badly signed) or service
(LookupEvents). trusted needs all evidence validated or service, and no invalid file or digest
anywhere in what was read: tampering makes every image untrusted, names the files, and
--key-usage ends with a trail_tampered error record. pending evidence gives the verdict
pending: run again after the hour. A local copy keeps each digest's S3 signature (metadata
x-amz-meta-signature) in DIGEST.json.gz.sig beside it; only the newest digest needs one.
--integrity advisory lets trusted rest on unvalidated evidence (trails that had no log file
validation), and every such record says so (trail.integrity.advisory_trust); --integrity off
skips the check (its cost is measured by the benchmark).

ANNOTATIONS read from the payload: commit github.sha, github_sha, git_sha, git.sha, git_commit,
commit; CI run github.run_id, github.run_attempt, github.workflow_ref, github.repository,
github.ref, github.actor (payload-for --github writes these).";

/// Joins CloudTrail, ECR and git into signing times, compromise verdicts and orphan detection
#[derive(Debug, Parser)]
#[command(name = "trail-for", version = env!("SIGTRAIL_VERSION"), after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Where CloudTrail events are read from (s3://BUCKET/PREFIX, a directory or file, lookup)
    #[arg(long = "cloudtrail", value_name = "SRC", required = true)]
    pub cloudtrail: Vec<String>,
    /// Start of the time searched (RFC 3339 or YYYY-MM-DD, UTC)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// End of the time searched (RFC 3339 or YYYY-MM-DD; a date means its end) [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    pub until: Option<DateTime<Utc>>,
    /// KMS key every signature must have used (awskms:///..., key ARN, key id, alias/NAME); repeatable
    #[arg(long, value_name = "KEY")]
    pub key: Vec<String>,
    /// The key is suspected compromised since TIME: signatures made at or after it are untrusted
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub compromised_at: Option<DateTime<Utc>>,
    /// Who may sign: role ARN, assumed-role ARN (prefix), IAM ARN or OIDC subject; `*` globs; repeatable
    #[arg(long, value_name = "PRINCIPAL")]
    pub allowed_principal: Vec<String>,
    /// Longest time from a KMS Sign to the push of its signature (e.g. 900s, 15m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub window: Duration,
    /// Read no images: one record per KMS Sign (and failed Sign attempt) of --key since --since,
    /// orphans flagged (exit 1)
    #[arg(long, requires = "since")]
    pub key_usage: bool,
    /// A git repository in which to look up the commit the payload names
    #[arg(long, value_name = "DIR")]
    pub git_dir: Option<PathBuf>,
    /// Draw the trails on one time axis into FILE.html (or FILE.svg); self-contained
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<PathBuf>,
    /// Repository holding the signatures when not the image's (like COSIGN_REPOSITORY)
    #[arg(long, value_name = "REPO")]
    pub signature_repo: Option<String>,
    /// Account (registry id) of images whose registry is not an ECR host
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Region of images whose registry is not an ECR host
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Do not ask ECR DescribeImages for push times
    #[arg(long)]
    pub no_describe_images: bool,
    /// Treat registry HOST as ECR registry ECR_HOST (HOST=ACCT.dkr.ecr.REGION.amazonaws.com);
    /// repeatable, added to SIGTRAIL_ECR_ALIASES (comma-separated)
    #[arg(long, value_name = "HOST=ECR_HOST")]
    pub ecr_alias: Vec<String>,
    /// How far the log files' integrity is required: strict (trusted needs digest-validated
    /// evidence), advisory (unvalidated evidence allowed, and said), off (not checked)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = IntegrityMode::Strict)]
    pub integrity: IntegrityMode,
    /// CloudTrail's public keys for digest signatures, as `aws cloudtrail list-public-keys
    /// --output json` prints them (offline); default: ListPublicKeys in each digest's region
    #[arg(long, value_name = "FILE")]
    pub cloudtrail_public_keys: Option<PathBuf>,
    /// Monitor mode, for cron: with --key-usage, report only the Signs, failed attempts and
    /// integrity breaks new since the last run, keeping the checkpoint in FILE (written only
    /// after a run that read the whole trail); --since is where the first run starts
    #[arg(long, value_name = "FILE", requires = "key_usage")]
    pub state: Option<PathBuf>,
    /// Write every log file's integrity check to FILE (one JSON line each: file, state, reason,
    /// digest, sha256, version_id, worm), then the tampering findings and gaps
    #[arg(long, value_name = "FILE")]
    pub integrity_report: Option<PathBuf>,
    /// Athena workgroup for athena: sources [default: Athena's, primary]
    #[arg(long, value_name = "NAME")]
    pub athena_workgroup: Option<String>,
    /// Where Athena writes query results (s3://BUCKET/PREFIX/), when the workgroup sets none
    #[arg(long, value_name = "S3_URI")]
    pub athena_output: Option<String>,
    /// Stop any Athena (or Lake) query that scans more than BYTES (a number, or with kB, MB, GB or TB:
    /// powers of 1000) and fail the source; what was scanned is billed
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub athena_max_scan: Option<u64>,
    /// How the Athena table is partitioned: org (account, region, date: an organization trail)
    /// or account (timestamp: AWS's partition-projection table of one account and region)
    #[arg(long, value_name = "LAYOUT", default_value = "org", value_parser = parse_layout)]
    pub athena_layout: AthenaLayout,
    /// Keep every event read, not only those the input records can use (for the equivalence
    /// test: the answers are the same, memory grows with the trail)
    #[arg(long, hide = true)]
    pub keep_all_events: bool,
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    parse_date(s)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{s:?} is not a time: use RFC 3339 (2025-11-11T01:00:00Z) or YYYY-MM-DD")
        })
}

fn parse_until(s: &str) -> Result<DateTime<Utc>, String> {
    match parse_date(s).and_then(|d| d.and_hms_opt(23, 59, 59)) {
        Some(t) => Ok(t.and_utc()),
        None => parse_time(s),
    }
}

fn parse_layout(s: &str) -> Result<AthenaLayout, String> {
    s.parse()
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size: use bytes, or e.g. 500MB, 2GB, 1TB");
    let t = s.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(at);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 900s, 15m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration: use e.g. 900s, 15m, 1h")),
    };
    Ok(Duration::seconds(secs))
}

/// Turns the flags into the tool.
pub async fn build(args: Args) -> Result<TrailFor> {
    let mut sources = args
        .cloudtrail
        .iter()
        .map(|s| s.parse::<Source>().map_err(|e| anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    for source in &mut sources {
        match source {
            Source::Athena(a) => {
                a.workgroup.clone_from(&args.athena_workgroup);
                a.output.clone_from(&args.athena_output);
                a.max_scan = args.athena_max_scan;
                a.layout = args.athena_layout;
                a.quiet = args.common.quiet;
            }
            Source::Lake(l) => {
                l.max_scan = args.athena_max_scan;
                l.quiet = args.common.quiet;
            }
            _ => {}
        }
    }
    if let Some(out) = &args.athena_output {
        anyhow::ensure!(
            out.starts_with("s3://"),
            "--athena-output {out}: give an S3 location, s3://BUCKET/PREFIX/"
        );
    }
    let keys = args
        .key
        .iter()
        .map(|k| KeySpec::parse(k).map_err(|e| anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    if let (Some(s), Some(u)) = (args.since, args.until) {
        anyhow::ensure!(s <= u, "--since is after --until");
    }
    if let Some(t) = &args.timeline {
        let dir = t.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            anyhow::ensure!(
                dir.is_dir(),
                "--timeline: {} is not a directory",
                dir.display()
            );
        }
    }
    let from_env = std::env::var("SIGTRAIL_ECR_ALIASES").unwrap_or_default();
    let ecr_aliases = args
        .ecr_alias
        .iter()
        .map(String::as_str)
        .chain(from_env.split(',').map(str::trim).filter(|s| !s.is_empty()))
        .map(|a| a.parse::<EcrAlias>().map_err(|e| anyhow!(e)))
        .collect::<Result<Vec<_>>>()?;
    let config = Config {
        sources,
        range: Range {
            since: args.since,
            until: args.until,
        },
        window: Some(args.window),
        keys,
        compromised_at: args.compromised_at,
        allowed: args.allowed_principal,
        key_usage: args.key_usage,
        keep_all_events: args.keep_all_events,
        integrity: args.integrity,
        public_keys: args.cloudtrail_public_keys,
        integrity_report: args.integrity_report,
        state: args.state,
        git_dir: args.git_dir,
        timeline: args.timeline,
        signature_repo: args.signature_repo,
        account: args.account,
        region: args.region,
        describe_images: !args.no_describe_images,
        ecr_aliases,
    };
    TrailFor::new(config).context("trail-for")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(
            parse_time("2025-11-11").unwrap().to_rfc3339(),
            "2025-11-11T00:00:00+00:00"
        );
        assert_eq!(
            parse_until("2025-11-11").unwrap().to_rfc3339(),
            "2025-11-11T23:59:59+00:00"
        );
        assert_eq!(
            parse_time("2025-11-11T03:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2025-11-11T01:00:00+00:00"
        );
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_duration("15m").unwrap(), Duration::minutes(15));
        assert_eq!(parse_duration("900").unwrap(), Duration::seconds(900));
        assert!(parse_duration("1d").is_err());
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("2 gb").unwrap(), 2_000_000_000);
        assert!(parse_bytes("1PB").is_err());
        assert!(parse_bytes("99999999999TB").is_err());
    }

    #[test]
    fn flags() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
