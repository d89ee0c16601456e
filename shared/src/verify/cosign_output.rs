//! `check-sig --output cosign`: what `cosign verify --key K --insecure-ignore-tlog IMAGE` prints,
//! for scripts migrating from it.
//!
//! cosign (`cmd/cosign/cli/verify/common.go`) prints a header on stderr
//! (`PrintVerificationHeader`) and, on stdout, a newline and then the JSON array of the verified
//! payloads re-encoded by Go (`PrintVerification`, default output): each is
//! `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},"type":T},"optional":O}`.
//! Its exit status on failure is 10 (no signatures), 11 (image not found) or 12 (no matching
//! signatures); see [`super::Failure::cosign_exit_code`].
//!
//! cosign 3.1.1 (default `--new-bundle-format`) looks for bundle referrers first: when it finds
//! any, only they count (a `.sig` beside them is not read), a failure is `no matching
//! attestations: ...` with exit status 1, the header has one more line (`Existence of the claims
//! in the transparency log was verified offline`, printed even with `--insecure-ignore-tlog`),
//! and the printed claim is `{"critical":{"identity":{"docker-reference":<the reference as
//! given>},"image":...,"type":"https://sigstore.dev/cosign/sign/v1"},"optional":<annotations,
//! {} when none>}`. Without bundles it verifies the `.sig` as cosign v2 did. Observed by running
//! it (see `tests/tests/cosign_v3.rs`).

use serde_json::{Map, Number, Value};

use super::{Policy, Verification};
use crate::payload::Payload;

/// cosign's warning for `--insecure-ignore-tlog`, printed first on stderr.
pub const IGNORE_TLOG_WARNING: &str = "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.";

/// The stderr header cosign prints after a successful verification of `image` (`bundles`: it
/// verified bundles).
pub fn header(image: &str, policy: &Policy, bundles: bool) -> String {
    let mut s = format!(
        "\nVerification for {image} --\nThe following checks were performed on each of these signatures:\n"
    );
    if !policy.annotations.is_empty() {
        s.push_str("  - The specified annotations were verified.\n");
    }
    s.push_str("  - The cosign claims were validated\n");
    if bundles {
        s.push_str("  - Existence of the claims in the transparency log was verified offline\n");
    }
    s.push_str("  - The signatures were verified against the specified public key\n");
    s
}

/// The stdout of a successful `cosign verify`: `\n[payload,...]\n` (`bundles`: of the verified
/// bundles only, else of the verified `.sig` layers).
pub fn stdout(verification: &Verification, bundles: bool) -> String {
    let items: Vec<String> = verification
        .signatures
        .iter()
        .filter(|s| s.verified && s.bundle_manifest.is_some() == bundles)
        .filter_map(|s| s.payload.as_ref())
        .map(|p| {
            let go = Payload {
                optional: p.optional.as_ref().map(go_numbers),
                ..p.clone()
            };
            String::from_utf8_lossy(&go.to_bytes()).into_owned()
        })
        .collect();
    format!("\n[{}]\n", items.join(","))
}

/// cosign decodes `optional` into `map[string]interface{}`, so numbers come back as float64 and
/// are re-encoded the way Go prints a float64: integral values below 1e21 without a fraction.
fn go_numbers(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), go_number(v))).collect()
}

fn go_number(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e21 {
                if f.abs() <= i64::MAX as f64 {
                    Value::Number(Number::from(f as i64))
                } else {
                    Value::Number(Number::from(f as u64))
                }
            } else {
                Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(go_number).collect()),
        Value::Object(map) => Value::Object(go_numbers(map)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_go_prints_float64() {
        let m = json!({"t": 1657296609, "f": 1.5, "i": 2.0, "big": 9007199254740993u64, "s": "x"});
        let out = Value::Object(go_numbers(m.as_object().unwrap()));
        assert_eq!(
            out,
            json!({"t": 1657296609, "f": 1.5, "i": 2, "big": 9007199254740992u64, "s": "x"})
        );
    }

    #[test]
    fn header_names_the_checks() {
        let mut policy = Policy::default();
        let h = header("reg/app@sha256:00", &policy, false);
        assert!(h.starts_with("\nVerification for reg/app@sha256:00 --\n"));
        assert!(!h.contains("annotations"));
        assert!(!h.contains("transparency log"));
        policy.annotations.insert("a".into(), "b".into());
        assert!(header("x", &policy, false)
            .contains("  - The specified annotations were verified.\n  - The cosign claims"));
        assert!(header("x", &policy, true).contains(
            "  - The cosign claims were validated\n  - Existence of the claims in the \
             transparency log was verified offline\n  - The signatures"
        ));
    }
}
