//! The record: one JSON object per image, the unit every tool reads and writes.
//!
//! ## Wire format
//!
//! Each line of a tool's stdout is one JSON object. Fields keep their input order; a tool only
//! adds or replaces the fields it owns, and passes every other field through untouched. Field
//! names are snake_case; a field means the same thing in every tool:
//!
//! | field | set by | meaning |
//! |---|---|---|
//! | `image` | the user | the image reference as given (a plain input line becomes `{"image": LINE}`) |
//! | `input` | harness | the raw input line, only on a record made from a line that was not valid JSON |
//! | `ref` | digest-of | canonical reference `HOST/REPO@sha256:...` |
//! | `registry`, `repository` | digest-of | registry host (with port) and repository path |
//! | `tag` | digest-of | the tag resolved, if the reference had one |
//! | `digest` | digest-of | `sha256:<hex>` of the manifest bytes (checked locally) |
//! | `media_type` | digest-of | the manifest's media type |
//! | `platform` | digest-of | `os/arch[/variant]` of a manifest listed in an image index |
//! | `index_digest` | digest-of | the image index a platform record came from |
//! | `ecr` | digest-of | ECR metadata: `registry_id`, `pushed_at`, `tags`, `scan_status`, `tag_mutability` |
//! | `payload` | payload-for | base64 of the exact cosign simple-signing payload bytes, or with `--format bundle` of the in-toto statement |
//! | `payload_type` | payload-for | only with `--format bundle`: the DSSE payload type (`application/vnd.in-toto+json`); kms-sign then signs the DSSE PAE and attach-sig pushes a cosign v3 bundle |
//! | `signature` | kms-sign | base64 signature over the payload bytes (DER for ECDSA), or over their DSSE PAE when `payload_type` is set |
//! | `key`, `key_id`, `algorithm` | kms-sign | key reference used, sha256 of its public key DER, signing algorithm |
//! | `kms` | kms-sign | `key_arn`, `request_id`, `time` of the KMS `Sign` call |
//! | `attached` | attach-sig | `repository`, `tag`, `manifest_digest`, `layers` of the signature manifest; for a bundle `format: bundle`, `manifest_digest` of the referrer, `referrers` (`api` or the fallback `tag`) |
//! | `verification` | check-sig | `verified`, per-signature results, `failure` kind |
//! | `trail` | trail-for | `events`, per-signature `signed_at`, `verdict` with reasons |
//! | `error` | any tool | `{"tool", "kind", "message"}`: this record failed; later tools pass it on untouched |

use serde_json::{Map, Value};

/// One record of the stream.
pub type Record = Map<String, Value>;

/// The string value of `field`, if it is a string.
pub fn get_str<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

/// Whether an earlier tool marked this record as failed.
pub fn has_error(record: &Record) -> bool {
    record.get("error").is_some_and(|e| !e.is_null())
}

/// Reads one input line as a record: a JSON object, or an image reference.
///
/// `Err` carries a record (with `input` and no `error` yet) and a message for lines that start
/// with `{` but are not a JSON object.
pub fn parse_line(line: &str) -> Result<Option<Record>, (Record, String)> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.starts_with('{') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => unreachable!("a JSON text starting with '{{' is an object"),
            Err(e) => {
                let mut rec = Record::new();
                rec.insert("input".into(), Value::String(trimmed.to_string()));
                Err((rec, format!("input line is not valid JSON: {e}")))
            }
        };
    }
    let mut rec = Record::new();
    rec.insert("image".into(), Value::String(trimmed.to_string()));
    Ok(Some(rec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_records() {
        assert_eq!(parse_line("  ").unwrap(), None);
        let r = parse_line("busybox:1.36\n").unwrap().unwrap();
        assert_eq!(get_str(&r, "image"), Some("busybox:1.36"));
        let r = parse_line(r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#,
            "field order is kept"
        );
        let (r, msg) = parse_line(r#"{"a":"#).unwrap_err();
        assert_eq!(get_str(&r, "input"), Some(r#"{"a":"#));
        assert!(msg.contains("not valid JSON"), "{msg}");
    }
}
