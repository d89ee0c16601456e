//! `check-sig`: verifies the cosign signatures of each image record with trusted keys.
//!
//! Reads records with `digest` (from `digest-of`: `registry`, `repository`, `tag` name the image;
//! or an `image` reference with `@sha256:...`). Online (the default) it reads the image's
//! signature manifest `sha256-<hex>.sig` (or the one in `--signature-repo`) and cosign v3
//! bundles attached as OCI 1.1 referrers; with `--offline` it verifies the record's own
//! `payload` and `signature` (what `payload-for | kms-sign` wrote) and touches no network.
//!
//! Writes `verification`: `verified`, `failure` (`no_signatures`, `image_not_found`,
//! `no_matching_signatures`, `threshold_not_met`), `reason`, `keys_verified`, `source`,
//! `signature_manifest`, `bundles` and `signatures` (one per layer: `verified`, `key_id`,
//! `algorithm`, `failed_check` + `reason`, `claims`, `annotations`, `identity_matches`).
//! A record that cannot be checked (bad record, registry unreachable) gets `error` instead.
//!
//! Exit status: 0 every image verified; 1 at least one did not (or an error); 2 usage. With
//! `--output cosign`: cosign's own codes, 10 no signatures, 11 image not found, 12 no matching
//! signatures.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use sigtrail::harness::{self, Common};
use sigtrail::reference::ImageRef;
use sigtrail::registry::{Registry, RegistryOptions};
use sigtrail::verify::online::{BundleLookup, Online};
use sigtrail::verify::{cosign_output, tool, CheckSig, IdentityMode, Policy};

const AFTER_HELP: &str = "\
EXAMPLES:
  # verify a release (what `cosign verify --key awskms:///alias/cosign --insecure-ignore-tlog` does)
  digest-of REG/app:v1.0 | check-sig --key awskms:///alias/cosign

  # re-verify a whole repository with two trusted keys (rotation), only the failures
  digest-of --all REG/app | check-sig --key old.pub --key awskms:///alias/cosign-2025 \\
    | jq -c 'select(.verification.verified | not)'

  # check a signature straight after signing, before attaching it (no network)
  digest-of REG/app:v1.0 | payload-for | kms-sign --key awskms:///alias/cosign \\
    | check-sig --offline --key cosign.pub

  # require the signed identity and an annotation; drop-in for a cosign verify call in a script
  check-sig --key cosign.pub --identity exact -a git_sha=$SHA --output cosign REG/app@sha256:...

  # retry the records the registry could not answer
  jq -c 'select(.error.tool == \"check-sig\") | del(.error)' out.jsonl | check-sig --key cosign.pub

IDENTITY (--identity):
  any         (default, like cosign) the signed docker-reference is reported as identity_matches,
              not required
  repository  the signed docker-reference names the image's registry and repository
  exact       as repository, and a tag in the signed reference must be the image's tag (cosign
              signs references without a tag; skopeo signs the tag it pushed)

EXIT STATUS:
  0 all verified, 1 at least one record failed, 2 usage error;
  with --output cosign: 0, 10 no signatures, 11 image not found, 12 no matching signatures, 1 other";

/// Verifies cosign signatures of image records with trusted keys, cosign-compatible and stricter.
#[derive(Debug, Parser)]
#[command(name = "check-sig", version = env!("SIGTRAIL_VERSION"), after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Trusted public key: a PEM file (EC P-256, P-384, RSA) or awskms:///KEY_ID|ARN|alias/NAME
    /// (one GetPublicKey per key per run); repeat for several keys (rotation)
    #[arg(long = "key", short = 'k', value_name = "KEY", required = true)]
    pub keys: Vec<String>,
    /// Verify the record's own payload and signature against its digest; no network
    #[arg(long)]
    pub offline: bool,
    /// Read signature manifests from this repository (HOST/REPO) instead of the image's own,
    /// like COSIGN_REPOSITORY
    #[arg(long, value_name = "HOST/REPO", conflicts_with = "offline")]
    pub signature_repo: Option<String>,
    /// How the signed docker-reference must match the image (see IDENTITY below)
    #[arg(long, value_enum, default_value_t = IdentityMode::Any)]
    pub identity: IdentityMode,
    /// Require this annotation (a string in the payload's `optional`); repeatable
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    pub annotations: Vec<(String, String)>,
    /// Number of distinct trusted keys that must have signed
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threshold: u16,
    /// `records` (JSON lines) or `cosign`: for one image, what `cosign verify` prints (JSON
    /// array of the verified payloads on stdout, its header on stderr, its exit codes)
    #[arg(long, value_enum, default_value_t = Output::Records)]
    pub output: Output,
    /// Also look for cosign v3 bundles (OCI 1.1 referrers): `auto` only when the .sig
    /// manifest does not verify the image, `always`, or `never`
    #[arg(long, value_enum, default_value_t = BundleLookup::Auto, conflicts_with = "offline")]
    pub bundles: BundleLookup,
    /// Keep each verified `.sig` signature's `payload` and `signature` (base64) in its
    /// `verification.signatures` entry, for `attach-sig --copy-to` (mirroring)
    #[arg(long)]
    pub keep_signatures: bool,
    /// Allow plain HTTP to this registry host (repeatable; loopback is always allowed);
    /// also SIGTRAIL_INSECURE_REGISTRIES=HOST,HOST
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Treat registry HOST as the ECR registry ACCOUNT.dkr.ecr.REGION.amazonaws.com for its
    /// credentials (repeatable); also SIGTRAIL_ECR_ALIASES=HOST=ECRHOST,...
    #[arg(long = "ecr-alias", value_name = "HOST=ECRHOST")]
    pub ecr_alias: Vec<String>,
    /// Attempts per registry request, the first included: 429, 5xx and connection failures are
    /// retried with backoff (the default rides out a registry restart of about 15 s)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub registry_attempts: Option<u32>,
}

/// What goes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Records,
    Cosign,
}

fn parse_annotation(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Builds the tool: loads every key once (KMS `GetPublicKey`), sets up the registry client.
pub async fn build(args: Args) -> anyhow::Result<CheckSig> {
    let keys = tool::load_keys(&args.keys).await?;
    let policy = Policy {
        identity: args.identity,
        annotations: args.annotations.into_iter().collect::<BTreeMap<_, _>>(),
        threshold: usize::from(args.threshold),
    };
    anyhow::ensure!(
        policy.threshold <= keys.len(),
        "--threshold {} needs at least {} distinct --key (got {})",
        policy.threshold,
        policy.threshold,
        keys.len()
    );
    let online = if args.offline {
        None
    } else {
        let mut opts = RegistryOptions::from_env(&args.insecure_registry, &args.ecr_alias)?;
        if let Some(n) = args.registry_attempts {
            opts.max_attempts = n;
        }
        let signature_repo = args
            .signature_repo
            .as_deref()
            .map(ImageRef::parse_repository)
            .transpose()?;
        Some(Online {
            registry: Registry::new(opts)?,
            signature_repo,
            bundles: args.bundles,
        })
    };
    Ok(CheckSig {
        keys,
        policy,
        online,
        keep_signatures: args.keep_signatures,
    })
}

/// The process: records through the shared harness, or `--output cosign` for one image.
pub fn main() -> ExitCode {
    match Args::try_parse() {
        Ok(args) if args.output == Output::Cosign => cosign_main(args),
        _ => harness::main(|a: &Args| &a.common, build),
    }
}

/// `--output cosign`: one image, cosign's stdout, stderr and exit codes.
fn cosign_main(mut args: Args) -> ExitCode {
    let fail = |msg: String, code: u8| {
        eprintln!("Error: {msg}");
        ExitCode::from(code)
    };
    let input = match single_input(&args.common.images) {
        Ok(line) => line,
        Err(msg) => return fail(msg, harness::exit::USAGE),
    };
    let record = match sigtrail::record::parse_line(&input) {
        Ok(Some(rec)) => rec,
        Ok(None) => return fail("no image given".into(), harness::exit::USAGE),
        Err((_, msg)) => return fail(msg, harness::exit::USAGE),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}"), 1),
    };
    let offline = args.offline;
    if args.bundles != BundleLookup::Never {
        // cosign 3.1.1 reads bundles first: to answer as it does, always look.
        args.bundles = BundleLookup::Always;
    }
    let tool = match runtime.block_on(build(args)) {
        Ok(tool) => tool,
        Err(e) => return fail(format!("{e:#}"), harness::exit::USAGE),
    };
    if !offline {
        eprintln!("{}", cosign_output::IGNORE_TLOG_WARNING);
    }
    let verification = match runtime.block_on(tool.verify_record(&record)) {
        Ok(v) => v,
        Err(e) => return fail(e.message, 1),
    };
    let label = ["ref", "image", "digest"]
        .iter()
        .find_map(|f| sigtrail::record::get_str(&record, f))
        .unwrap_or("image")
        .to_string();
    // With bundles, cosign 3.1.1 judges by them alone (see cosign_output's doc).
    let bundles = !verification.bundles.is_empty();
    let bundle_verified = verification
        .signatures
        .iter()
        .any(|s| s.verified && s.bundle_manifest.is_some());
    let ok = if bundles {
        bundle_verified
    } else {
        verification.failure.is_none()
    };
    if ok {
        eprint!("{}", cosign_output::header(&label, &tool.policy, bundles));
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(cosign_output::stdout(&verification, bundles).as_bytes())
            .and_then(|_| out.flush());
        return ExitCode::SUCCESS;
    }
    if bundles {
        let why = verification
            .signatures
            .iter()
            .filter(|s| s.bundle_manifest.is_some())
            .find_map(|s| s.reason.clone())
            .unwrap_or_else(|| "no bundle verified".into());
        return fail(format!("no matching attestations: {why}"), 1);
    }
    let f = verification
        .failure
        .unwrap_or(sigtrail::verify::Failure::NoMatchingSignatures);
    if f == sigtrail::verify::Failure::ImageNotFound && label.contains("@sha256:") {
        // cosign 3.1.1 never checks that a digest exists: it finds no signatures for it.
        return fail("no signatures found".into(), 10);
    }
    fail(
        verification.reason.unwrap_or_else(|| f.as_str().into()),
        f.cosign_exit_code(),
    )
}

/// The one image of `--output cosign`: a positional argument or a single stdin line.
fn single_input(images: &[String]) -> Result<String, String> {
    let many = "--output cosign verifies one image; use the default --output records for many";
    match images {
        [one] => return Ok(one.clone()),
        [] => {}
        _ => return Err(many.into()),
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err("no input: give one image reference or pipe one record (see --help)".into());
    }
    let mut lines = Vec::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("cannot read input: {e}"))?;
        if !line.trim().is_empty() {
            lines.push(line);
        }
        if lines.len() > 1 {
            return Err(many.into());
        }
    }
    lines.pop().ok_or_else(|| "no input".to_string())
}
