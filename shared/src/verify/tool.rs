//! The `check-sig` tool: reads a record, finds its signatures (in the record with `--offline`,
//! in the registry otherwise), verifies them and writes `verification`.

use serde_json::Value;

use super::{
    decode_base64_strict, verify_layers, Failure, Policy, PublicKey, RefName, SignatureLayer,
    Source, Subject, TrustedKey, Verification, SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::error::{Error, Result};
use crate::harness::{Done, Tool};
use crate::record::{get_str, Record};

/// The tool: trusted keys (loaded once), the policy, and where signatures come from.
pub struct CheckSig {
    pub keys: Vec<TrustedKey>,
    pub policy: Policy,
    /// Where signatures are read from; `None` with `--offline`
    pub online: Option<super::online::Online>,
    /// `--keep-signatures`: each verified `.sig` entry also carries its `payload` and
    /// `signature` (base64), for `attach-sig --copy-to`
    pub keep_signatures: bool,
}

impl Tool for CheckSig {
    const NAME: &'static str = "check-sig";
    const DEFAULT_JOBS: u16 = 32;

    async fn process(&self, record: &mut Record) -> Result<Done> {
        let verification = self.verify_record(record).await?;
        let failure = verification.failure;
        let mut json = verification.to_json();
        if self.keep_signatures {
            if let Some(entries) = json.get_mut("signatures").and_then(Value::as_array_mut) {
                for (entry, result) in entries.iter_mut().zip(&verification.signatures) {
                    if let Some((payload, signature)) = &result.kept {
                        entry["payload"] = payload.clone().into();
                        entry["signature"] = signature.clone().into();
                    }
                }
            }
        }
        record.insert("verification".into(), json);
        Ok(match failure {
            None => Done::ok(),
            Some(f) => Done::failed(f.as_str()),
        })
    }
}

impl CheckSig {
    /// Verifies one record; `Err` when it could not be checked (bad record, registry down).
    pub async fn verify_record(&self, record: &Record) -> Result<Verification> {
        match &self.online {
            Some(online) => online.verify(record, &self.keys, &self.policy).await,
            None => self.verify_offline(record, &subject(record)?),
        }
    }

    /// `--offline`: the record's own `payload` and `signature` against its `digest` (with
    /// `payload_type`, an in-toto statement signed over its DSSE PAE).
    fn verify_offline(&self, record: &Record, subject: &Subject) -> Result<Verification> {
        let payload = field(record, "payload")?;
        let signature = field(record, "signature")?;
        let (payload, signature) =
            match (payload, signature) {
                (Some(p), Some(s)) => (p, s),
                (None, None) | (Some(_), None) => return Ok(Verification::failed(
                    Failure::NoSignatures,
                    "the record has no signature (sign it with kms-sign first, or drop --offline \
                     to read signatures from the registry)",
                )),
                (None, Some(_)) => return Err(Error::new(
                    "bad_record",
                    "the record has a signature but no payload: give both, as kms-sign writes them",
                )),
            };
        if let Some(payload_type) = field(record, "payload_type")? {
            // A statement signed over its DSSE PAE (payload-for --format bundle | kms-sign):
            // checked as the bundle attach-sig would push.
            let bundle = serde_json::json!({
                "mediaType": super::bundle::BUNDLE_MEDIA_TYPE,
                "dsseEnvelope": {"payload": payload, "payloadType": payload_type,
                                 "signatures": [{"sig": signature}]},
            });
            let layer = SignatureLayer {
                media_type: super::bundle::BUNDLE_MEDIA_TYPE.into(),
                payload: Some(serde_json::to_vec(&bundle).expect("JSON serializes")),
                ..SignatureLayer::default()
            };
            let name = ["ref", "image"]
                .iter()
                .find_map(|f| crate::record::get_str(record, f))
                .unwrap_or(&subject.digest)
                .to_string();
            let r = super::bundle::verify_bundle(&layer, subject, &self.keys, &self.policy, &name);
            let mut v = super::decide(vec![r], &self.policy);
            v.source = Source::Record;
            return Ok(v);
        }
        let payload = decode_base64_strict(payload).map_err(|e| {
            Error::new(
                "bad_record",
                format!("the record's payload is not standard base64: {e}"),
            )
        })?;
        let layer = SignatureLayer {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
            payload: Some(payload),
            signature: Some(signature.to_string()),
            ..SignatureLayer::default()
        };
        let mut v = verify_layers(&[layer], subject, &self.keys, &self.policy);
        v.source = Source::Record;
        Ok(v)
    }
}

/// A string field of the record, `None` when absent or null, an error when of another type.
fn field<'a>(record: &'a Record, name: &str) -> Result<Option<&'a str>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::new(
            "bad_record",
            format!("the record's {name:?} is not a string"),
        )),
    }
}

/// The image a record names: its digest (`digest`, or the digest in `image`) and its reference
/// (`registry` + `repository` + `tag` from digest-of, or `image`).
pub fn subject(record: &Record) -> Result<Subject> {
    let image = get_str(record, "image").map(RefName::parse_lenient);
    let digest = match get_str(record, "digest") {
        Some(d) => d.to_string(),
        None => image
            .as_ref()
            .and_then(|i| i.digest.clone())
            .ok_or_else(|| {
                Error::new(
                    "bad_record",
                    "no digest: pipe the image through digest-of first, or give IMAGE@sha256:...",
                )
            })?,
    };
    let reference = match (get_str(record, "registry"), get_str(record, "repository")) {
        (Some(registry), Some(repository)) => Some(RefName::from_parts(
            registry,
            repository,
            get_str(record, "tag"),
        )),
        _ => image,
    };
    Ok(Subject { digest, reference })
}

/// Loads the trusted keys named by `--key` (PEM files; `awskms://` URIs through KMS
/// `GetPublicKey`, once each); the same key given twice counts once.
pub async fn load_keys(specs: &[String]) -> anyhow::Result<Vec<TrustedKey>> {
    use anyhow::Context;
    let mut keys: Vec<TrustedKey> = Vec::new();
    for spec in specs {
        let key = if crate::kms::is_kms_reference(spec) {
            // One GetPublicKey per key per run; verification itself never calls KMS.
            let kms = crate::kms::KmsKey::new(spec, None)
                .await
                .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
            let public = kms
                .public_key()
                .await
                .map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
            TrustedKey::new(public.clone(), spec.clone())
        } else {
            let pem =
                std::fs::read(spec).with_context(|| format!("cannot read the key file {spec}"))?;
            let key = PublicKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("{spec}: {e}"))?;
            TrustedKey::new(key, spec.clone())
        };
        if !keys.iter().any(|k| k.id == key.id) {
            keys.push(key);
        }
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "no trusted key: give --key PEM_FILE or --key awskms:///KEY"
    );
    Ok(keys)
}
