//! The cosign simple-signing payload: the exact bytes that get signed, and a strict reader.
//!
//! Bytes are what Go's `json.Marshal` writes for cosign's `payload.SimpleContainerImage`:
//! `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
//! "type":"cosign container image signature"},"optional":O}` with no whitespace, no trailing
//! newline, map keys sorted, `"optional":null` without annotations, and Go's string escaping
//! (`<`, `>`, `&`, U+2028, U+2029 as `\u....`). Every verifier (cosign, containers/image,
//! sigstore-rs) hashes these bytes, so they must match byte for byte.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::gojson;

/// The `critical.type` every cosign image signature carries.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// Largest payload accepted anywhere (cosign's payloads are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// A parsed (or to-be-written) simple-signing payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// `critical.identity.docker-reference`: registry host + repository (signers may add a tag)
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`: `sha256:<hex>` of the signed manifest
    pub manifest_digest: String,
    /// `critical.type`
    pub kind: String,
    /// `optional`: annotations (`None` is written as `null`)
    pub optional: Option<Map<String, Value>>,
}

impl Payload {
    /// A payload for `reference` (host + repository) and `digest`, with string annotations.
    pub fn new(reference: &str, digest: &str, annotations: &BTreeMap<String, String>) -> Self {
        let optional = (!annotations.is_empty()).then(|| {
            annotations
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect()
        });
        Self {
            docker_reference: reference.to_string(),
            manifest_digest: digest.to_string(),
            kind: SIMPLE_SIGNING_TYPE.to_string(),
            optional,
        }
    }

    /// The exact bytes cosign would sign for this payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(320);
        out.push_str("{\"critical\":{\"identity\":{\"docker-reference\":");
        gojson::write_string(&mut out, &self.docker_reference);
        out.push_str("},\"image\":{\"docker-manifest-digest\":");
        gojson::write_string(&mut out, &self.manifest_digest);
        out.push_str("},\"type\":");
        gojson::write_string(&mut out, &self.kind);
        out.push_str("},\"optional\":");
        match &self.optional {
            None => out.push_str("null"),
            Some(map) => gojson::write_value(&mut out, &Value::Object(map.clone())),
        }
        out.push('}');
        out.into_bytes()
    }

    /// Reads a payload strictly: valid UTF-8 JSON, no duplicate keys at any depth, the three
    /// critical fields present as strings, and the cosign type string.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let bad = |msg: String| Error::new("bad_payload", msg);
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::new(
                "payload_too_large",
                format!(
                    "payload is {} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("payload is not UTF-8".into()))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let value = de
            .deserialize_any(StrictVisitor { depth: 0 })
            .and_then(|v| de.end().map(|_| v))
            .map_err(|e| bad(format!("payload is not valid JSON: {e}")))?;
        let root = value
            .as_object()
            .ok_or_else(|| bad("payload is not a JSON object".into()))?;
        let critical = root
            .get("critical")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("payload has no \"critical\" object".into()))?;
        let field = |outer: &str, inner: &str| -> Result<String> {
            critical
                .get(outer)
                .and_then(Value::as_object)
                .and_then(|o| o.get(inner))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| bad(format!("payload has no string critical.{outer}.{inner}")))
        };
        let docker_reference = field("identity", "docker-reference")?;
        let manifest_digest = field("image", "docker-manifest-digest")?;
        let kind = critical
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("payload has no string critical.type".into()))?
            .to_string();
        if kind != SIMPLE_SIGNING_TYPE {
            return Err(bad(format!(
                "payload type is {kind:?}, not {SIMPLE_SIGNING_TYPE:?}: not a cosign image signature"
            )));
        }
        let optional = match root.get("optional") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => {
                return Err(bad(
                    "payload \"optional\" is neither an object nor null".into()
                ))
            }
        };
        Ok(Self {
            docker_reference,
            manifest_digest,
            kind,
            optional,
        })
    }

    /// String annotations from `optional` (non-string values are left out).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        self.optional
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    }
}

/// Whether `digest` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Deepest nesting a payload may have (a real one has three levels).
const MAX_DEPTH: usize = 64;

/// Builds a `Value` like serde_json does, but refuses duplicate object keys and deep nesting:
/// verifiers disagree on which duplicate wins, so a payload with one is never trusted.
struct StrictVisitor {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for StrictVisitor {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("bad number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictVisitor { depth })? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(de::Error::custom("nested too deeply"));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictVisitor { depth })?;
            if out.insert(key.clone(), value).is_some() {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    /// Found by `cargo xtask fuzz payload`: numbers in `optional` read back differently once
    /// written (serde_json's fast float parser is off by one ulp on some inputs; the
    /// `float_roundtrip` feature makes it exact, as Go's is).
    #[test]
    fn numbers_in_optional_survive_a_write_and_read() {
        for n in [
            "1657296609333333333333333",
            "99657296609333333333",
            "1.7572966093333333",
            "7.777777777777777e83",
        ] {
            let text = format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"r.example/app"}},"image":{{"docker-manifest-digest":"{D}"}},"type":"cosign container image signature"}},"optional":{{"n":{n}}}}}"#
            );
            let p = Payload::parse(text.as_bytes()).unwrap();
            assert_eq!(Payload::parse(&p.to_bytes()).unwrap(), p, "{n}");
        }
    }

    fn bytes(reference: &str, annotations: &[(&str, &str)]) -> String {
        let a = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        String::from_utf8(Payload::new(reference, D, &a).to_bytes()).unwrap()
    }

    #[test]
    fn writes_cosign_bytes() {
        assert_eq!(
            bytes("reg.example/app", &[]),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"reg.example/app\"}},\"image\":{{\"docker-manifest-digest\":\"{D}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
        let with = bytes(
            "r/a",
            &[("z", "1"), ("a", "x,y=z"), ("html", "<a&b>\u{2028}\n\u{1}")],
        );
        assert!(
            with.ends_with(
                r#""optional":{"a":"x,y=z","html":"\u003ca\u0026b\u003e\u2028\n\u0001","z":"1"}}"#
            ),
            "{with}"
        );
    }

    #[test]
    fn parse_round_trips_and_is_strict() {
        let b = bytes("r/a", &[("k", "v")]);
        let p = Payload::parse(b.as_bytes()).unwrap();
        assert_eq!(p.docker_reference, "r/a");
        assert_eq!(p.manifest_digest, D);
        assert_eq!(p.annotations().get("k").map(String::as_str), Some("v"));
        assert_eq!(String::from_utf8(p.to_bytes()).unwrap(), b);

        let check_err = |input: &str, want: &str| {
            let err = Payload::parse(input.as_bytes()).unwrap_err();
            assert!(err.message.contains(want), "{input}: {err}");
        };
        check_err("not json", "not valid JSON");
        check_err("{}", "no \"critical\"");
        check_err(
            r#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"d"},"type":"other"}}"#,
            "not a cosign image signature",
        );
        check_err(
            r#"{"critical":{"identity":{"docker-reference":"a","docker-reference":"b"},"image":{"docker-manifest-digest":"d"},"type":"cosign container image signature"}}"#,
            "duplicate key",
        );
        check_err(
            &format!("{}{}", "[".repeat(100), "]".repeat(100)),
            "nested too deeply",
        );
        check_err(&format!("{b} trailing"), "not valid JSON");
        assert_eq!(
            Payload::parse(b"\xff").unwrap_err().message,
            "payload is not UTF-8"
        );
    }

    #[test]
    fn digest_shape() {
        assert!(is_sha256_digest(D));
        assert!(!is_sha256_digest("sha256:ABC"));
        assert!(!is_sha256_digest(&D.to_uppercase()));
        assert!(!is_sha256_digest(&format!("{D}0")));
        assert!(!is_sha256_digest(&D.replace("sha256", "sha512")));
    }
}
