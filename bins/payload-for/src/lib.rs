//! `payload-for`: adds `payload`, the base64 of the exact cosign simple-signing bytes, to each
//! record that has a `digest`.
//!
//! Reads records from `digest-of` (it uses `registry` + `repository` for the signed identity,
//! or parses `image` when those are missing). Writes the same records with `payload`. A record
//! without a valid `sha256:` digest gets an `error` (kind `no_digest`): a payload is never made
//! for a tag. With `--format bundle` the payload is instead the in-toto statement cosign v3
//! signs (annotations in its subject), and `payload_type` says so for kms-sign and attach-sig.
//! A `registry` or `repository` that a reference could not hold (control characters,
//! `..` segments, uppercase, a bad host or port) gets an error of kind `bad_reference`.
//! Exit status: 0 all records got a payload, 1 some failed, 2 bad flags.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use serde_json::Value;
use sigtrail::harness::{Common, Done, Tool};
use sigtrail::payload::{is_sha256_digest, Payload};
use sigtrail::record::{get_str, Record};
use sigtrail::reference::ImageRef;
use sigtrail::Error;

/// The GitHub Actions context `--github` adds, as (annotation key, environment variable).
pub const GITHUB_ANNOTATIONS: &[(&str, &str)] = &[
    ("github.sha", "GITHUB_SHA"),
    ("github.run_id", "GITHUB_RUN_ID"),
    ("github.run_attempt", "GITHUB_RUN_ATTEMPT"),
    ("github.workflow_ref", "GITHUB_WORKFLOW_REF"),
    ("github.repository", "GITHUB_REPOSITORY"),
    ("github.ref", "GITHUB_REF"),
    ("github.actor", "GITHUB_ACTOR"),
];

#[derive(Debug, Parser)]
#[command(
    name = "payload-for",
    version = env!("SIGTRAIL_VERSION"),
    about = "Add the cosign simple-signing payload (base64, exact bytes) to each image record",
    after_help = "\
Annotations go into the payload's \"optional\" object, sorted by key, exactly as cosign writes
them. Unlike cosign's -a, a value may contain commas and '=' (only the first '=' splits).

--github adds the GitHub Actions context from the environment:
  github.sha (GITHUB_SHA), github.run_id (GITHUB_RUN_ID), github.run_attempt (GITHUB_RUN_ATTEMPT),
  github.workflow_ref (GITHUB_WORKFLOW_REF), github.repository (GITHUB_REPOSITORY),
  github.ref (GITHUB_REF), github.actor (GITHUB_ACTOR)

Examples:
  digest-of registry.example/app:v1 | payload-for -a git_sha=$(git rev-parse HEAD)
  digest-of $ECR/app:v1 | payload-for --github | kms-sign --key awskms:///alias/cosign | attach-sig
  payload-for < records.jsonl | jq -r .payload | base64 -d     # the bytes that get signed
  ... | payload-for --format bundle | kms-sign --key K | attach-sig   # a cosign v3 bundle referrer

--format bundle makes the in-toto statement cosign 3 signs (predicate
https://sigstore.dev/cosign/sign/v1, annotations in subject[0].annotations) and sets
payload_type; kms-sign then signs its DSSE PAE and attach-sig pushes a Sigstore bundle as an
OCI 1.1 referrer, which `cosign verify --insecure-ignore-tlog` reads by default."
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Annotation KEY=VALUE for the payload's "optional" object (repeatable)
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Add the GitHub Actions context (commit, run id and attempt, workflow, repository, ref, actor)
    #[arg(long)]
    pub github: bool,
    /// What to sign: cosign's simple-signing payload (legacy `.sig`), or the in-toto statement
    /// of a cosign v3 bundle
    #[arg(long, value_enum, default_value_t = Format::Simple)]
    pub format: Format,
}

/// The signature format a payload is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// cosign simple signing, attached as a `.sig` manifest
    Simple,
    /// an in-toto statement in a DSSE envelope, attached as a Sigstore bundle referrer
    Bundle,
}

/// The tool: fixed annotations, applied to every record.
pub struct PayloadFor {
    annotations: BTreeMap<String, String>,
    format: Format,
}

/// Builds the tool from flags; a malformed `-a` or a missing GitHub variable is a usage error.
pub async fn build(args: Args) -> anyhow::Result<PayloadFor> {
    let mut annotations = BTreeMap::new();
    for a in &args.annotations {
        let Some((k, v)) = a.split_once('=') else {
            bail!("annotation {a:?} is not KEY=VALUE");
        };
        if k.is_empty() {
            bail!("annotation {a:?} has an empty key");
        }
        annotations.insert(k.to_string(), v.to_string());
    }
    if args.github {
        for (key, var) in GITHUB_ANNOTATIONS {
            let value = std::env::var(var)
                .with_context(|| format!("--github needs {var} (is this a GitHub Actions job?)"))?;
            annotations.insert(key.to_string(), value);
        }
    }
    Ok(PayloadFor {
        annotations,
        format: args.format,
    })
}

impl Tool for PayloadFor {
    const NAME: &'static str = "payload-for";
    const DEFAULT_JOBS: u16 = 1;

    async fn process(&self, rec: &mut Record) -> Result<Done, Error> {
        let digest = get_str(rec, "digest").ok_or_else(|| {
            Error::new(
                "no_digest",
                "record has no digest; resolve it first with digest-of",
            )
        })?;
        if !is_sha256_digest(digest) {
            return Err(Error::new(
                "no_digest",
                format!("digest {digest:?} is not sha256:<64 lowercase hex>"),
            ));
        }
        let identity = identity(rec)?;
        let bytes = match self.format {
            Format::Simple => Payload::new(&identity, digest, &self.annotations).to_bytes(),
            Format::Bundle => sigtrail::bundle::statement(digest, &self.annotations),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        rec.insert("payload".into(), Value::String(encoded));
        match self.format {
            Format::Simple => {
                rec.remove("payload_type");
            }
            Format::Bundle => {
                rec.insert(
                    "payload_type".into(),
                    sigtrail::bundle::IN_TOTO_PAYLOAD_TYPE.into(),
                );
            }
        }
        Ok(Done::ok())
    }
}

/// The signed identity: registry host + repository, no tag, no digest.
fn identity(rec: &Record) -> Result<String, Error> {
    if let (Some(registry), Some(repository)) =
        (get_str(rec, "registry"), get_str(rec, "repository"))
    {
        // Given apart, they are checked as a reference would be: they become the signed identity.
        sigtrail::reference::check_name(registry, repository)?;
        return Ok(format!("{registry}/{repository}"));
    }
    match get_str(rec, "image") {
        Some(image) => Ok(ImageRef::parse(image)?.name()),
        None => Err(Error::new(
            "no_reference",
            "record has neither registry + repository nor image; resolve it first with digest-of",
        )),
    }
}
