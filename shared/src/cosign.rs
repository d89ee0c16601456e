//! cosign's signature manifest (the `sha256-<hex>.sig` tag): build it byte for byte as cosign
//! (go-containerregistry) writes it, append a signature to an existing one, and read one.
//!
//! The layout (DESIGN.md "Formats"): an OCI image manifest whose config is
//! `application/vnd.oci.image.config.v1+json` and whose layers are one per signature, media
//! type `application/vnd.dev.cosign.simplesigning.v1+json`, blob = the payload bytes, annotation
//! `dev.cosignproject.cosign/signature` = base64 signature. Bytes follow go-containerregistry's
//! structs: manifest `schemaVersion, mediaType, config, layers[, annotations][, subject]`,
//! descriptor `mediaType, size, digest[, data][, urls][, annotations][, platform][, artifactType]`,
//! map keys sorted, Go's string escaping, no whitespace. The config blob is
//! `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},...],"os":"","rootfs":{"type":"layers","diff_ids":[...]},"config":{}}`
//! with one history entry and one diff_id (the layer digest: signature layers are uncompressed)
//! per layer. `shared/tests/data/cosign/` holds what cosign 2.5.0 pushed, and the tests rebuild
//! it byte for byte.
//!
//! Appending keeps existing layers as go-containerregistry re-serializes them (cosign reads,
//! appends, writes back the same way): known descriptor fields in their order, annotations
//! sorted; unknown descriptor fields are dropped, as Go drops them. The config is rebuilt from
//! the layers (cosign would instead extend the old config; the two agree for every manifest
//! cosign or this module wrote). A layer identical to one already present (same payload digest
//! and same signature annotation) is not added again.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::gojson;
use crate::reference::check_digest;
use crate::registry::{sha256_digest, OCI_MANIFEST};

/// Media type of a signature layer (its blob is the simple-signing payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation with an RFC 3161 timestamp over the signature.
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// Layer annotation `attach-sig` adds: the request id of the KMS `Sign` that made the signature
/// (`kms.request_id`), so an audit from the registry can name the exact CloudTrail event. cosign,
/// skopeo and sigstore-rs ignore layer annotations they do not know.
pub const KMS_REQUEST_ID_ANNOTATION: &str = "dev.sigtrail/kms-request-id";
/// Media type of the signature manifest's config blob.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Most layers read from (or written to) one signature manifest.
pub const MAX_LAYERS: usize = 1000;

/// The tag cosign stores an image's signatures under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> Result<String, Error> {
    check_digest(digest)?;
    Ok(format!("sha256-{}.sig", &digest["sha256:".len()..]))
}

/// A descriptor (config or layer) as go-containerregistry models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub size: u64,
    pub digest: String,
    /// Embedded data (base64, as it appears in JSON)
    pub data: Option<String>,
    pub urls: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    /// Kept as read (rare on layers)
    pub platform: Option<Value>,
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A simple-signing layer for `payload` with `signature` (base64) and extra annotations
    /// (e.g. [`RFC3161_ANNOTATION`]).
    pub fn signature_layer(
        payload: &[u8],
        signature_b64: &str,
        extra: &BTreeMap<String, String>,
    ) -> Self {
        let mut annotations = extra.clone();
        annotations.insert(SIGNATURE_ANNOTATION.to_string(), signature_b64.to_string());
        Self {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_string(),
            size: payload.len() as u64,
            digest: sha256_digest(payload),
            data: None,
            urls: Vec::new(),
            annotations,
            platform: None,
            artifact_type: None,
        }
    }

    /// The base64 signature annotation, if any.
    pub fn signature(&self) -> Option<&str> {
        self.annotations
            .get(SIGNATURE_ANNOTATION)
            .map(String::as_str)
    }

    /// Whether this is a simple-signing (cosign signature) layer.
    pub fn is_signature(&self) -> bool {
        self.media_type == SIMPLE_SIGNING_MEDIA_TYPE
    }

    fn parse(v: &Value, what: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::new("bad_signature_manifest", format!("{what} {why}"));
        let o = v.as_object().ok_or_else(|| bad("is not an object"))?;
        let s = |k: &str| -> Result<Option<String>, Error> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(&format!("has a `{k}` that is not a string"))),
            }
        };
        let media_type = s("mediaType")?.unwrap_or_default();
        let size = match o.get("size") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad("has a bad `size`"))?,
            None => 0,
            Some(_) => return Err(bad("has a `size` that is not a number")),
        };
        let digest = s("digest")?.ok_or_else(|| bad("has no `digest`"))?;
        check_digest(&digest).map_err(|_| bad("has a `digest` that is not sha256:<64 hex>"))?;
        let urls = match o.get("urls") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|u| u.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("has a `urls` entry that is not a string"))?,
            Some(_) => return Err(bad("has `urls` that is not a list")),
        };
        let annotations = match o.get("annotations") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("has an annotation that is not a string"))?,
            Some(_) => return Err(bad("has `annotations` that is not an object")),
        };
        Ok(Self {
            media_type,
            size,
            digest,
            data: s("data")?,
            urls,
            annotations,
            platform: o.get("platform").filter(|p| !p.is_null()).cloned(),
            artifact_type: s("artifactType")?,
        })
    }

    fn write(&self, out: &mut String) {
        out.push_str("{\"mediaType\":");
        gojson::write_string(out, &self.media_type);
        out.push_str(&format!(",\"size\":{},\"digest\":", self.size));
        gojson::write_string(out, &self.digest);
        if let Some(d) = self.data.as_deref().filter(|d| !d.is_empty()) {
            out.push_str(",\"data\":");
            gojson::write_string(out, d);
        }
        if !self.urls.is_empty() {
            out.push_str(",\"urls\":[");
            for (i, u) in self.urls.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                gojson::write_string(out, u);
            }
            out.push(']');
        }
        if !self.annotations.is_empty() {
            out.push_str(",\"annotations\":");
            write_map(out, &self.annotations);
        }
        if let Some(p) = &self.platform {
            out.push_str(",\"platform\":");
            gojson::write_value(out, p);
        }
        if let Some(a) = self.artifact_type.as_deref().filter(|a| !a.is_empty()) {
            out.push_str(",\"artifactType\":");
            gojson::write_string(out, a);
        }
        out.push('}');
    }
}

/// A signature manifest: its layers (one per signature) and manifest-level fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureManifest {
    pub layers: Vec<Descriptor>,
    /// Manifest-level annotations (cosign writes none; kept when present)
    pub annotations: BTreeMap<String, String>,
    /// OCI 1.1 `subject` (kept when present)
    pub subject: Option<Descriptor>,
}

impl SignatureManifest {
    /// An empty manifest (no signatures yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a signature manifest (any image manifest: layers of other media types are kept
    /// for appending, and left out of [`SignatureManifest::signatures`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let bad = |why: String| {
            Error::new(
                "bad_signature_manifest",
                format!("signature manifest {why}"),
            )
        };
        let json: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("is not valid JSON: {e}")))?;
        let o = json
            .as_object()
            .ok_or_else(|| bad("is not a JSON object".into()))?;
        if o.contains_key("manifests") {
            return Err(bad("is an image index, not an image manifest".into()));
        }
        let layers = match o.get("layers") {
            Some(Value::Array(l)) => l,
            None | Some(Value::Null) => &Vec::new(),
            Some(_) => return Err(bad("has `layers` that is not a list".into())),
        };
        if layers.len() > MAX_LAYERS {
            return Err(Error::new(
                "too_large",
                format!(
                    "signature manifest has {} layers, more than the {MAX_LAYERS} read",
                    layers.len()
                ),
            ));
        }
        let layers = layers
            .iter()
            .enumerate()
            .map(|(i, l)| Descriptor::parse(l, &format!("signature manifest layer {i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let annotations = match o.get("annotations") {
            Some(Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let subject = match o.get("subject") {
            None | Some(Value::Null) => None,
            Some(s) => Some(Descriptor::parse(s, "signature manifest subject")?),
        };
        Ok(Self {
            layers,
            annotations,
            subject,
        })
    }

    /// The simple-signing layers (the signatures), in manifest order.
    pub fn signatures(&self) -> impl Iterator<Item = &Descriptor> {
        self.layers.iter().filter(|l| l.is_signature())
    }

    /// Whether an identical layer (same payload digest and signature) is already present.
    pub fn contains(&self, layer: &Descriptor) -> bool {
        self.layers
            .iter()
            .any(|l| l.digest == layer.digest && l.signature() == layer.signature())
    }

    /// Appends `layer` unless an identical one is present; returns whether it was added.
    pub fn push(&mut self, layer: Descriptor) -> Result<bool, Error> {
        if self.contains(&layer) {
            return Ok(false);
        }
        if self.layers.len() >= MAX_LAYERS {
            return Err(Error::new(
                "too_large",
                format!("the signature manifest already has {MAX_LAYERS} layers"),
            ));
        }
        self.layers.push(layer);
        Ok(true)
    }

    /// The config blob: one history entry and one diff_id per layer.
    pub fn config_bytes(&self) -> Vec<u8> {
        const ZERO: &str = "0001-01-01T00:00:00Z";
        let mut out = format!("{{\"architecture\":\"\",\"created\":\"{ZERO}\"");
        if !self.layers.is_empty() {
            out.push_str(",\"history\":[");
            for i in 0..self.layers.len() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("{{\"created\":\"{ZERO}\"}}"));
            }
            out.push(']');
        }
        out.push_str(",\"os\":\"\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[");
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::write_string(&mut out, &l.digest);
        }
        out.push_str("]},\"config\":{}}");
        out.into_bytes()
    }

    /// The manifest bytes, for a config blob `config` (from [`SignatureManifest::config_bytes`]).
    pub fn manifest_bytes(&self, config: &[u8]) -> Vec<u8> {
        let config = Descriptor {
            media_type: OCI_CONFIG_MEDIA_TYPE.to_string(),
            size: config.len() as u64,
            digest: sha256_digest(config),
            data: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        };
        let mut out = String::with_capacity(256 + 400 * self.layers.len());
        out.push_str("{\"schemaVersion\":2,\"mediaType\":");
        gojson::write_string(&mut out, OCI_MANIFEST);
        out.push_str(",\"config\":");
        config.write(&mut out);
        out.push_str(",\"layers\":[");
        for (i, l) in self.layers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            l.write(&mut out);
        }
        out.push(']');
        if !self.annotations.is_empty() {
            out.push_str(",\"annotations\":");
            write_map(&mut out, &self.annotations);
        }
        if let Some(s) = &self.subject {
            out.push_str(",\"subject\":");
            s.write(&mut out);
        }
        out.push('}');
        out.into_bytes()
    }

    /// The config blob and the manifest, ready to push: `(config, manifest)`.
    pub fn to_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let config = self.config_bytes();
        let manifest = self.manifest_bytes(&config);
        (config, manifest)
    }
}

fn write_map(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gojson::write_string(out, k);
        out.push(':');
        gojson::write_string(out, v);
    }
    out.push('}');
}

/// A layer as the record's `attached.layers` summary or a verifier's listing shows it.
pub fn layer_summary(l: &Descriptor) -> Value {
    let mut m = Map::new();
    m.insert("digest".into(), l.digest.clone().into());
    m.insert("size".into(), l.size.into());
    m.insert("media_type".into(), l.media_type.clone().into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What cosign 2.5.0 pushed (regenerate.sh in the same folder says how).
    fn golden(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/data/cosign/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn layer(n: &str) -> Descriptor {
        let payload = golden(&format!("{n}.payload.json"));
        let sig = String::from_utf8(golden(&format!("{n}.signature.b64"))).unwrap();
        Descriptor::signature_layer(&payload, &sig, &BTreeMap::new())
    }

    fn check(m: &SignatureManifest, n: &str) {
        let (config, manifest) = m.to_bytes();
        assert_eq!(
            String::from_utf8(config).unwrap(),
            String::from_utf8(golden(&format!("{n}.config.json"))).unwrap(),
            "config blob of {n}"
        );
        assert_eq!(
            String::from_utf8(manifest).unwrap(),
            String::from_utf8(golden(&format!("{n}.manifest.json"))).unwrap(),
            "manifest of {n}"
        );
    }

    #[test]
    fn builds_what_cosign_pushes() {
        let mut m = SignatureManifest::new();
        assert!(m.push(layer("one")).unwrap());
        check(&m, "one");
        assert!(m.push(layer("two")).unwrap());
        check(&m, "two");
    }

    #[test]
    fn appends_to_what_cosign_pushed() {
        let mut m = SignatureManifest::parse(&golden("one.manifest.json")).unwrap();
        check(&m, "one");
        assert!(m.push(layer("two")).unwrap());
        check(&m, "two");
        // Identical again: nothing changes.
        assert!(!m.push(layer("two")).unwrap());
        assert!(!m.push(layer("one")).unwrap());
        check(&m, "two");
        // Same payload, another signature: a new layer.
        let other =
            Descriptor::signature_layer(&golden("one.payload.json"), "MEUCIQ==", &BTreeMap::new());
        assert!(m.push(other).unwrap());
        assert_eq!(m.layers.len(), 3);
    }

    #[test]
    fn round_trips_and_reads_signatures() {
        let bytes = golden("two.manifest.json");
        let m = SignatureManifest::parse(&bytes).unwrap();
        assert_eq!(m.to_bytes().1, bytes);
        let sigs: Vec<_> = m.signatures().collect();
        assert_eq!(sigs.len(), 2);
        assert_eq!(
            sigs[1].signature().unwrap().as_bytes(),
            golden("two.signature.b64")
        );
        assert_eq!(sigs[1].size, golden("two.payload.json").len() as u64);
    }

    #[test]
    fn keeps_foreign_layers_and_fields_in_gcr_order() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        // containers/image order (digest before size), an attestation layer, extra fields.
        let input = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG_MEDIA_TYPE}","digest":"{}","size":1}},"layers":[{{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"{}","size":5,"annotations":{{"z":"1","a":"<&>"}},"unknown":true}},{{"mediaType":"{SIMPLE_SIGNING_MEDIA_TYPE}","digest":"{}","size":7,"urls":["https://x/y"],"annotations":{{"{SIGNATURE_ANNOTATION}":"c2ln"}}}}],"annotations":{{"k":"v"}}}}"#,
            d('c'),
            d('a'),
            d('b')
        );
        let m = SignatureManifest::parse(input.as_bytes()).unwrap();
        assert_eq!(m.signatures().count(), 1);
        assert_eq!(m.signatures().next().unwrap().signature(), Some("c2ln"));
        let out = String::from_utf8(m.to_bytes().1).unwrap();
        assert!(out.contains(&format!(
            r#"{{"mediaType":"application/vnd.dsse.envelope.v1+json","size":5,"digest":"{}","annotations":{{"a":"\u003c\u0026\u003e","z":"1"}}}}"#,
            d('a')
        )), "{out}");
        assert!(
            out.contains(r#""urls":["https://x/y"],"annotations""#),
            "{out}"
        );
        assert!(out.ends_with(r#"],"annotations":{"k":"v"}}"#), "{out}");
        assert!(!out.contains("unknown"));
    }

    #[test]
    fn refuses_bad_manifests() {
        let check_err = |input: &str, want: &str| {
            let e = SignatureManifest::parse(input.as_bytes()).unwrap_err();
            assert!(e.message.contains(want), "{input}: {}", e.message);
        };
        check_err("[", "not valid JSON");
        check_err("[]", "not a JSON object");
        check_err(r#"{"manifests":[]}"#, "image index");
        check_err(r#"{"layers":{}}"#, "not a list");
        check_err(r#"{"layers":[{"mediaType":"x","size":1}]}"#, "no `digest`");
        check_err(r#"{"layers":[{"digest":"sha256:abc"}]}"#, "sha256:<64 hex>");
        check_err(
            &format!(
                r#"{{"layers":[{{"digest":"sha256:{}","size":-1}}]}}"#,
                "a".repeat(64)
            ),
            "bad `size`",
        );
        check_err(
            &format!(
                r#"{{"layers":[{{"digest":"sha256:{}","annotations":{{"a":1}}}}]}}"#,
                "a".repeat(64)
            ),
            "not a string",
        );
        let many = format!(
            r#"{{"layers":[{}]}}"#,
            vec![format!(r#"{{"digest":"sha256:{}"}}"#, "a".repeat(64)); MAX_LAYERS + 1].join(",")
        );
        assert_eq!(
            SignatureManifest::parse(many.as_bytes()).unwrap_err().kind,
            "too_large"
        );
    }

    #[test]
    fn signature_tags() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            signature_tag(&d).unwrap(),
            format!("sha256-{}.sig", "ab".repeat(32))
        );
        assert!(signature_tag("sha256:xyz").is_err());
        assert!(signature_tag("v1").is_err());
    }
}
