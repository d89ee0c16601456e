//! `digest-of`: resolves image references to digests.
//!
//! Reads image references (arguments, plain stdin lines, or records with `image`, else `ref`)
//! and writes each record with `ref` (`HOST/REPO@sha256:...`), `registry`, `repository`,
//! `tag` (when the reference had one; `latest` when it had neither tag nor digest), `digest`
//! (sha256 of the manifest bytes, checked here) and `media_type`.
//!
//! - `--all`: each reference is a repository; one record per tag (cosign's `sha256-*.sig`,
//!   `.att`, `.sbom` tags left out), sorted by tag. ECR repositories are listed with
//!   `DescribeImages`, others with the registry's tag list. A registry host alone means every
//!   repository in it (ECR's `DescribeRepositories`, else `/v2/_catalog`), sorted by name.
//! - `--platforms`: an image index gives its own record, then one per platform manifest with
//!   `platform` (`os/arch[/variant]`) and `index_digest`.
//! - ECR registries (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`, or an `--ecr-alias`): the record
//!   gains `ecr` {`registry_id`, `pushed_at`, `tags`, `scan_status`, `tag_mutability`} unless
//!   `--no-ecr-metadata`.
//!
//! Exit status: 0 all resolved, 1 some record failed (`error.kind`: `bad_reference`,
//! `not_found`, `unauthorized`, `digest_mismatch`, `too_large`, `registry`, `ecr`, `config`),
//! 2 usage error.

use clap::Parser;
use sigtrail::harness::{Common, Done, Tool};
use sigtrail::record::Record;
use sigtrail::registry::{Registry, RegistryOptions};
use sigtrail::resolve::{apply, record_reference, Resolver};
use sigtrail::Error;

const AFTER_HELP: &str = "\
EXAMPLES:
  digest-of busybox:1.36
      {\"image\":\"busybox:1.36\",\"ref\":\"index.docker.io/library/busybox@sha256:…\",…}
  digest-of 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1.0 | payload-for | kms-sign --key awskms:///alias/cosign | attach-sig
  digest-of --all 123456789012.dkr.ecr.us-east-1.amazonaws.com/app | check-sig --key awskms:///alias/cosign
  digest-of --all 123456789012.dkr.ecr.us-east-1.amazonaws.com    # every repository of the registry
  cat images.txt | digest-of --platforms --where '.image | startswith(\"ghcr.io/\")'

REGISTRIES AND CREDENTIALS:
  Credentials come from docker's config.json ($DOCKER_CONFIG/config.json or ~/.docker/config.json:
  `auths`, `credHelpers`, `credsStore`); ECR registries use ecr:GetAuthorizationToken with the AWS
  SDK's default credentials. Plain HTTP is used only for loopback hosts and --insecure-registry
  hosts. Requests are retried with backoff on 429 (Retry-After), 5xx and connection failures.

ECR ALIASES (local testing):
  --ecr-alias 127.0.0.1:5000=123456789012.dkr.ecr.us-east-1.amazonaws.com (or
  SIGTRAIL_ECR_ALIASES, comma-separated) treats the registry at 127.0.0.1:5000 as that ECR
  registry: HTTP goes to 127.0.0.1:5000, ECR API calls (auth token, DescribeImages,
  DescribeRepositories) use account 123456789012 in us-east-1; with AWS_ENDPOINT_URL pointing at
  an emulator (moto), its ECR answers for the local registry.";

/// Resolve image references to digests (JSON records in, JSON records out).
#[derive(Debug, Parser)]
#[command(name = "digest-of", version = env!("SIGTRAIL_VERSION"), after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Each reference is a repository (HOST/REPO): emit one record per tag
    /// (`digest-of --all REPO [--all REPO2]`, or repositories on stdin); a registry HOST alone
    /// means each of its repositories
    #[arg(long, action = clap::ArgAction::Count)]
    pub all: u8,
    /// For an image index, also emit one record per platform manifest
    #[arg(long)]
    pub platforms: bool,
    /// Do not call the ECR API for metadata (the record gets no `ecr` field)
    #[arg(long)]
    pub no_ecr_metadata: bool,
    /// Allow plain HTTP to this registry host (repeatable; loopback is always allowed);
    /// also SIGTRAIL_INSECURE_REGISTRIES=HOST,HOST
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Treat registry HOST as the ECR registry ACCOUNT.dkr.ecr.REGION.amazonaws.com for ECR API
    /// calls (repeatable); also SIGTRAIL_ECR_ALIASES=HOST=ECRHOST,...
    #[arg(long = "ecr-alias", value_name = "HOST=ECRHOST")]
    pub ecr_alias: Vec<String>,
}

/// The tool.
pub struct DigestOf {
    resolver: Resolver,
    all: bool,
}

/// Builds the tool from its arguments (configuration errors exit 2).
pub async fn build(args: Args) -> anyhow::Result<DigestOf> {
    let opts = RegistryOptions::from_env(&args.insecure_registry, &args.ecr_alias)?;
    let registry = Registry::new(opts)?;
    Ok(DigestOf {
        resolver: Resolver {
            registry,
            platforms: args.platforms,
            ecr_metadata: !args.no_ecr_metadata,
        },
        all: args.all > 0,
    })
}

impl Tool for DigestOf {
    const NAME: &'static str = "digest-of";
    const DEFAULT_JOBS: u16 = 16;

    async fn process(&self, record: &mut Record) -> Result<Done, Error> {
        let input = record_reference(record)?;
        let mut sets = self.resolver.resolve(&input, self.all).await?.into_iter();
        let original: Record = record.clone();
        let mut done = Done::ok();
        if let Some(first) = sets.next() {
            apply(record, &first);
        }
        for set in sets {
            let mut extra = original.clone();
            apply(&mut extra, &set);
            done.extra.push(extra);
        }
        Ok(done)
    }
}
