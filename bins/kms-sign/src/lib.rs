//! `kms-sign`: signs each record's cosign payload with an AWS KMS key or a local key file.
//!
//! Reads records with `payload` (base64 of a cosign simple-signing payload, from `payload-for`).
//! The payload must be a cosign image signature payload whose `docker-manifest-digest` is
//! `sha256:<64 hex>` (a tag is never signed), at most 64 KiB, and equal to the record's `digest`
//! when the record has one. Adds:
//!
//! | field | value |
//! |---|---|
//! | `signature` | base64 (standard, padded) of the signature: ASN.1 DER for ECDSA, as cosign stores it |
//! | `key` | the `--key` reference as given |
//! | `key_id` | hex sha256 of the public key's DER SubjectPublicKeyInfo |
//! | `algorithm` | KMS name: `ECDSA_SHA_256`, `ECDSA_SHA_384`, `RSASSA_PKCS1_V1_5_SHA_256`, `RSASSA_PSS_SHA_256`, … |
//! | `kms` | KMS keys only: `key_arn`, `request_id` (CloudTrail `requestID`), `time` (RFC 3339 UTC) |
//!
//! A record with `payload_type` (from `payload-for --format bundle`) carries an in-toto
//! statement instead: it must be `application/vnd.in-toto+json`, a statement whose subjects
//! include the record's `digest`, and what is signed is its DSSE pre-authentication encoding
//! (`DSSEv1 <len> <type> <len> <statement>`), as cosign v3 signs a bundle.
//!
//! Every signature is verified with the key's public key before the record leaves; one that
//! does not verify becomes an error (`self_check_failed`), never a signed-looking record.
//!
//! Keys: `awskms://…` (see `sigtrail::kms`: key id, key ARN, alias, alias ARN, endpoint form;
//! one `GetPublicKey` per run, then one `Sign` with `MessageType=DIGEST` per record), or a file:
//! PEM PKCS#8 / SEC1 EC (P-256, P-384), PKCS#8 / PKCS#1 RSA, or cosign's encrypted key
//! (`ENCRYPTED COSIGN PRIVATE KEY` / `ENCRYPTED SIGSTORE PRIVATE KEY`) whose passphrase comes
//! from `COSIGN_PASSWORD` (or `--passphrase-env NAME`) or `--passphrase-file`, never argv.
//!
//! Error kinds on records: `bad_payload`, `payload_too_large`, `bad_key` (a KMS key that cannot
//! sign: missing, disabled, wrong usage or spec), `kms` (other KMS failures, with the AWS error
//! code), `self_check_failed`.
//!
//! Exit status: 0 every record signed; 1 some record failed; 2 bad flags or an unreadable key
//! file or passphrase (before any record). `--public-key` prints the PEM public key and exits 0,
//! or 2 when the key cannot be read.
//!
//! `SIGTRAIL_KMS_STATS=1` prints the KMS calls made (`GetPublicKey=N Sign=N`) on stderr at exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};
use sigtrail::bundle;
use sigtrail::crypto::{Algorithm, PassphraseSource, PrivateKey, PublicKey};
use sigtrail::harness::{Common, Done, Tool};
use sigtrail::kms::{self, KmsKey};
use sigtrail::payload::{is_sha256_digest, Payload, MAX_PAYLOAD_BYTES};
use sigtrail::record::{get_str, Record};
use sigtrail::Error;

/// The command name.
pub const NAME: &str = "kms-sign";

#[derive(Debug, Parser)]
#[command(
    name = "kms-sign",
    version = env!("SIGTRAIL_VERSION"),
    about = "Sign each record's cosign payload with an AWS KMS key or a local key file",
    after_help = "\
KEY is awskms:///KEY-ID, awskms:///arn:aws:kms:REGION:ACCOUNT:key/KEY-ID, awskms:///alias/NAME,
awskms:///arn:aws:kms:REGION:ACCOUNT:alias/NAME, awskms://HOST:PORT/... (another KMS endpoint;
plain HTTP for loopback), or a private key file (PEM PKCS#8, SEC1 or PKCS#1, or a cosign
encrypted key whose passphrase is in $COSIGN_PASSWORD, --passphrase-env or --passphrase-file).

The signature is checked with the key's public key before a record is written; KMS is called
once per key for the public key and once per record to sign (SIGTRAIL_KMS_STATS=1 prints the
counts on stderr).

Examples:
  digest-of $ECR/app:v1 | payload-for | kms-sign --key awskms:///alias/cosign | attach-sig
  kms-sign --public-key --key awskms:///alias/cosign > cosign.pub
  COSIGN_PASSWORD=... kms-sign --key cosign.key < payloads.jsonl
  kms-sign --key awskms:///alias/rsa --algorithm RSASSA_PSS_SHA_256 --jobs 16 < payloads.jsonl"
)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Signing key: an awskms:// reference or a private key file
    #[arg(long, value_name = "KEY")]
    pub key: String,
    /// Print the key's public key (PEM) and exit, reading no input
    #[arg(long)]
    pub public_key: bool,
    /// Signing algorithm (KMS name) instead of the key's default, e.g. RSASSA_PSS_SHA_256
    #[arg(long, value_name = "ALG", value_parser = parse_algorithm)]
    pub algorithm: Option<Algorithm>,
    /// Environment variable holding the passphrase of an encrypted key file [default: COSIGN_PASSWORD]
    #[arg(long, value_name = "NAME")]
    pub passphrase_env: Option<String>,
    /// File holding the passphrase of an encrypted key file (one trailing newline is ignored)
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>().map_err(|e| e.message)
}

/// What signs: a KMS key (looked up on first use) or a local private key.
enum Signer {
    Kms(Box<KmsKey>),
    Local {
        key: Arc<PrivateKey>,
        public: PublicKey,
        algorithm: Algorithm,
    },
}

/// The tool: one signer for the whole run.
pub struct KmsSign {
    key_ref: String,
    signer: Signer,
}

/// Builds the tool. A local key file is read (and decrypted) here, so a wrong passphrase stops
/// the run before any record; a KMS key is looked up when the first record needs it.
pub async fn build(args: Args) -> anyhow::Result<KmsSign> {
    let signer = signer(&args).await?;
    Ok(KmsSign {
        key_ref: args.key,
        signer,
    })
}

async fn signer(args: &Args) -> anyhow::Result<Signer> {
    if kms::is_kms_reference(&args.key) {
        if args.passphrase_env.is_some() || args.passphrase_file.is_some() {
            anyhow::bail!("--passphrase-env and --passphrase-file are for key files, not KMS keys");
        }
        return Ok(Signer::Kms(Box::new(
            KmsKey::new(&args.key, args.algorithm).await?,
        )));
    }
    let pem = std::fs::read(&args.key)
        .with_context(|| format!("cannot read key file {} (or use awskms://...)", args.key))?;
    let source = match (&args.passphrase_file, &args.passphrase_env) {
        (Some(file), _) => PassphraseSource::File(file.clone()),
        (None, Some(name)) => PassphraseSource::Env(name.clone()),
        (None, None) => PassphraseSource::Env(PassphraseSource::COSIGN_ENV.into()),
    };
    let key = PrivateKey::from_pem(&pem, || source.read())
        .with_context(|| format!("key file {}", args.key))?;
    let public = key.public_key();
    let algorithm = args.algorithm.unwrap_or_else(|| key.default_algorithm());
    if !public.supports(algorithm) {
        anyhow::bail!(
            "a {} key cannot sign with {algorithm}",
            public.description()
        );
    }
    Ok(Signer::Local {
        key: Arc::new(key),
        public,
        algorithm,
    })
}

/// `--public-key`: prints the key's PEM public key on stdout; 0, or 2 when the key is unusable.
pub fn print_public_key(args: &Args) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("{NAME}: {msg}");
        ExitCode::from(sigtrail::harness::exit::USAGE)
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let pem = runtime.block_on(async {
        match signer(args).await? {
            Signer::Kms(key) => Ok::<_, anyhow::Error>(key.public_key().await?.to_pem()),
            Signer::Local { public, .. } => Ok(public.to_pem()),
        }
    });
    match pem {
        Ok(pem) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed stdout is the reader's choice, not a failure.
            let _ = out.write_all(pem.as_bytes()).and_then(|_| out.flush());
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("{e:#}")),
    }
}

/// Prints the KMS call counts on stderr when `SIGTRAIL_KMS_STATS=1`.
pub fn report_kms_calls() {
    if let Some(line) = kms::stats_line(NAME) {
        eprintln!("{line}");
    }
}

impl Tool for KmsSign {
    const NAME: &'static str = NAME;
    const DEFAULT_JOBS: u16 = 8;

    async fn process(&self, rec: &mut Record) -> Result<Done, Error> {
        let payload = payload_bytes(rec)?;
        let (signature, algorithm, public, kms_fields) = match &self.signer {
            Signer::Kms(key) => {
                let signed = key.sign(&payload).await?;
                let public = key.public_key().await?.clone();
                let fields = json!({
                    "key_arn": signed.key_arn,
                    "request_id": signed.request_id,
                    "time": signed.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                });
                (signed.signature, signed.algorithm, public, Some(fields))
            }
            Signer::Local {
                key,
                public,
                algorithm,
            } => {
                let (key, message, alg) = (key.clone(), payload.clone(), *algorithm);
                let signature = tokio::task::spawn_blocking(move || key.sign(&message, alg))
                    .await
                    .map_err(|e| Error::new("internal", format!("signing task failed: {e}")))??;
                (signature, *algorithm, public.clone(), None)
            }
        };
        public
            .verify(&payload, &signature, Some(algorithm))
            .map_err(|e| {
                Error::new(
                    "self_check_failed",
                    format!(
                        "the {algorithm} signature from {} does not verify with the key's public \
                         key ({}); not emitted. A KMS emulator that hashes DIGEST messages again \
                         does this",
                        self.key_ref, e.message
                    ),
                )
            })?;
        rec.insert(
            "signature".into(),
            Value::String(STANDARD.encode(&signature)),
        );
        rec.insert("key".into(), Value::String(self.key_ref.clone()));
        rec.insert("key_id".into(), Value::String(public.key_id()));
        rec.insert(
            "algorithm".into(),
            Value::String(algorithm.kms_name().into()),
        );
        match kms_fields {
            Some(fields) => {
                rec.insert("kms".into(), fields);
            }
            None => {
                // A record signed before by KMS and now by a file must not keep the old call.
                rec.remove("kms");
            }
        }
        Ok(Done::ok())
    }
}

/// The bytes to sign (the payload, or the DSSE PAE of a statement), after every refusal check.
fn payload_bytes(rec: &Record) -> Result<Vec<u8>, Error> {
    let bad = |msg: String| Error::new("bad_payload", msg);
    let encoded =
        match rec.get("payload") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(bad("payload is not a string (base64 expected)".into())),
            None if rec.contains_key("digest") => {
                return Err(bad(
                    "record has no payload; make one with payload-for before kms-sign".into(),
                ))
            }
            None => return Err(bad(
                "record has no payload and no digest: resolve the image with digest-of and make \
                 the payload with payload-for (a tag is never signed)"
                    .into(),
            )),
        };
    // 4 base64 characters per 3 bytes: refuse before decoding anything huge.
    if encoded.len() > MAX_PAYLOAD_BYTES.div_ceil(3) * 4 {
        return Err(Error::new(
            "payload_too_large",
            format!("payload is over {MAX_PAYLOAD_BYTES} bytes; cosign payloads are a few hundred"),
        ));
    }
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| bad(format!("payload is not standard padded base64: {e}")))?;
    match rec.get("payload_type") {
        None => {}
        Some(Value::String(t)) if t == bundle::IN_TOTO_PAYLOAD_TYPE => {
            let claims = bundle::parse_statement(&bytes)?;
            if let Some(digest) = get_str(rec, "digest") {
                if !claims.digests.iter().any(|d| d == digest) {
                    return Err(bad(format!(
                        "the statement signs {:?} but the record's digest is {digest}; remake \
                         the payload with payload-for --format bundle",
                        claims.digests
                    )));
                }
            }
            return Ok(bundle::pae(t, &bytes));
        }
        Some(other) => {
            return Err(bad(format!(
                "payload_type {other} is not {}: the only DSSE payload kms-sign signs",
                bundle::IN_TOTO_PAYLOAD_TYPE
            )))
        }
    }
    let payload = Payload::parse(&bytes)?;
    if !is_sha256_digest(&payload.manifest_digest) {
        return Err(bad(format!(
            "payload's docker-manifest-digest {:?} is not sha256:<64 hex>: only digests are \
             signed, never tags",
            payload.manifest_digest
        )));
    }
    if let Some(digest) = get_str(rec, "digest") {
        if digest != payload.manifest_digest {
            return Err(bad(format!(
                "payload signs {} but the record's digest is {digest}; remake the payload with \
                 payload-for",
                payload.manifest_digest
            )));
        }
    }
    Ok(bytes)
}
