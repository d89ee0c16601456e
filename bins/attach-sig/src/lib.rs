//! `attach-sig`: pushes signatures to the registry in cosign's `.sig` layout.
//!
//! Reads records with `digest`, the image (`registry` + `repository` from digest-of, else `ref`
//! or `image`), `payload` (base64 simple-signing payload from payload-for) and `signature`
//! (base64, from kms-sign). Writes each record with `attached`: `repository` (`HOST/REPO` holding
//! the signature), `tag` (`sha256-<hex>.sig`), `manifest_digest` (of the signature manifest
//! after the attach), `layers` (signatures in it), `added` (false when an identical signature
//! was already there), and with `--dry-run` `dry_run_manifest` / `dry_run_config` (the exact
//! bytes it would push).
//!
//! The signature is appended to the existing signature manifest; an identical layer is never
//! added twice; a signature another writer attached at the same time is never lost (the tag is
//! read back after writing, and merged again when needed). Refused: a payload that is not
//! strict base64 or not a digest-based cosign payload, a payload whose
//! `docker-manifest-digest` is not the record's `digest`, a signature that is not strict base64,
//! an image that does not exist, an ECR repository whose immutable tags cannot take an
//! appended `.sig` (the error names the exclusion filter that fixes it).
//!
//! Exit status: 0 all attached, 1 some record failed (`error.kind`: `bad_record`, `bad_base64`,
//! `bad_payload`, `payload_mismatch`, `digest_mismatch`, `not_found`, `unauthorized`,
//! `immutable_tag`, `conflict`, `registry`, ...), 2 usage error.

use clap::Parser;
use sigtrail::attach::{Attacher, CopyTo};
use sigtrail::harness::{Common, Done, Tool};
use sigtrail::record::Record;
use sigtrail::reference::ImageRef;
use sigtrail::registry::{Registry, RegistryOptions};
use sigtrail::Error;

const AFTER_HELP: &str = "\
EXAMPLES:
  digest-of 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1.0 \\
    | payload-for | kms-sign --key awskms:///alias/cosign | attach-sig
  ... | attach-sig --signature-repo 123456789012.dkr.ecr.us-east-1.amazonaws.com/signatures
  ... | attach-sig --dry-run | jq -r .attached.dry_run_manifest

  # mirror a repository's verified images and signatures to another registry, check there
  digest-of --all SRC/app | check-sig --key cosign.pub --keep-signatures > verified.jsonl
  jq -r 'select(.verification.verified) | \"\\(.ref) \\(.tag)\"' verified.jsonl | while read -r ref tag; do
    skopeo copy --all --preserve-digests \"docker://$ref\" \"docker://DST/app:$tag\"; done
  jq -c 'select(.verification.verified)' verified.jsonl | attach-sig --copy-to DST
  digest-of --all DST/app | check-sig --key cosign.pub

The result verifies with `cosign verify --key KEY --insecure-ignore-tlog IMAGE`, skopeo
(policy.json `sigstoreSigned`) and check-sig.

REGISTRIES: credentials from docker's config.json ($DOCKER_CONFIG or ~/.docker), ECR through
ecr:GetAuthorizationToken; plain HTTP only for loopback and --insecure-registry hosts;
--ecr-alias HOST=ACCOUNT.dkr.ecr.REGION.amazonaws.com (or SIGTRAIL_ECR_ALIASES) treats a
registry as an ECR registry for ECR API calls (see digest-of --help).

ECR WITH IMMUTABLE TAGS: a second signature rewrites the sha256-*.sig tag. Allow it with
  aws ecr put-image-tag-mutability --repository-name REPO \\
    --image-tag-mutability IMMUTABLE_WITH_EXCLUSION \\
    --image-tag-mutability-exclusion-filters filterType=WILDCARD,filter='sha256-*.sig'";

/// Attach signatures to images in cosign's .sig layout (JSON records in, JSON records out).
#[derive(Debug, Parser)]
#[command(name = "attach-sig", version = env!("SIGTRAIL_VERSION"), after_help = AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Store signatures in this repository (HOST/REPO) instead of the image's, like cosign's
    /// COSIGN_REPOSITORY
    #[arg(long, value_name = "REPO", env = "COSIGN_REPOSITORY")]
    pub signature_repo: Option<String>,
    /// Build the signature manifest and report it in `attached.dry_run_manifest`; push nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Mirroring: copy the signatures a `check-sig --keep-signatures` record verified (not the
    /// record's own `payload`/`signature`) to the same digest in HOST/REPO, or at HOST under the
    /// same repository path; copy the image there first (skopeo copy --preserve-digests)
    #[arg(long, value_name = "HOST[/REPO]")]
    pub copy_to: Option<String>,
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
pub struct AttachSig {
    attacher: Attacher,
}

/// Builds the tool from its arguments (configuration errors exit 2).
pub async fn build(args: Args) -> anyhow::Result<AttachSig> {
    let opts = RegistryOptions::from_env(&args.insecure_registry, &args.ecr_alias)?;
    let signature_repo = args
        .signature_repo
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(ImageRef::parse_repository)
        .transpose()?;
    let mut attacher = Attacher::new(Registry::new(opts)?, signature_repo, args.dry_run);
    attacher.copy_to = args.copy_to.as_deref().map(CopyTo::parse).transpose()?;
    Ok(AttachSig { attacher })
}

impl Tool for AttachSig {
    const NAME: &'static str = "attach-sig";
    const DEFAULT_JOBS: u16 = 8;

    async fn process(&self, record: &mut Record) -> Result<Done, Error> {
        let attached = self.attacher.attach(record).await?;
        record.insert("attached".into(), attached);
        Ok(Done::ok())
    }
}
