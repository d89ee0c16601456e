//! CloudTrail records → typed [`Event`]s: only the calls the audit trail needs (KMS `Sign`, ECR
//! `PutImage`, STS `AssumeRoleWithWebIdentity` / `AssumeRole`), everything else skipped cheaply.
//!
//! Inputs: a log file (`{"Records":[...]}`, plain or gzip), a bare list of records, or one record
//! (what `LookupEvents` returns in `CloudTrailEvent`, and what the AWS documentation prints).
//!
//! Speed: the file is parsed in one pass with serde; each record is read into a small struct of
//! the handful of fields used (every other field is skipped by serde without building a tree)
//! and converted, or dropped, as soon as it is read, so a file never holds more than one raw
//! record in memory. A 100,000-record trail parses in well under a second per core.
//!
//! Leniency: fields may be missing (the documentation's partial samples have no `eventTime` or
//! `eventID`), `null`, or of an unexpected type in records we skip. In a record we keep, a field
//! of the wrong type drops that record with a warning naming it: we never guess.

use std::fmt;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Largest decompressed log file read (CloudTrail files are a few MB; this guards against bombs).
pub const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest single record of a log file, in bytes of JSON (CloudTrail records are at most a few
/// hundred KB; a `PutImage` carrying a 4 MiB manifest is the largest legitimate one).
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Largest ratio of decompressed to compressed bytes once past [`BOMB_CHECK_BYTES`]: CloudTrail
/// JSON compresses 10 to 30 times; a gzip bomb thousands of times, and is stopped early.
pub const MAX_GZIP_RATIO: u64 = 200;
/// Decompressed bytes read before [`MAX_GZIP_RATIO`] applies.
pub const BOMB_CHECK_BYTES: u64 = 64 << 20;

/// One CloudTrail event the audit trail uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `eventID` (missing only in partial samples)
    pub id: Option<String>,
    /// `eventTime`
    pub time: Option<DateTime<Utc>>,
    /// `eventSource`, e.g. `kms.amazonaws.com`
    pub source: String,
    /// `eventName`, e.g. `Sign`
    pub name: String,
    /// `awsRegion`
    pub region: Option<String>,
    /// `recipientAccountId`: the account whose trail holds the event
    pub account: Option<String>,
    /// `requestID`: what the SDK returned to the caller as the request id
    pub request_id: Option<String>,
    /// `userIdentity`: who made the call
    pub principal: Principal,
    /// What the call did.
    pub detail: Detail,
    /// The log file it was read from (an index into `source::Loaded::logs`); `None` when read
    /// from CloudTrail itself (`LookupEvents`).
    pub file: Option<u32>,
}

/// `userIdentity` of an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Principal {
    /// `type`: `IAMUser`, `AssumedRole`, `WebIdentityUser`, `AWSService`, `Root`, ...
    pub kind: Option<String>,
    /// `arn`: for a role session `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION`
    pub arn: Option<String>,
    pub account_id: Option<String>,
    pub principal_id: Option<String>,
    /// `accessKeyId`: the credentials used (`ASIA...` for temporary ones)
    pub access_key_id: Option<String>,
    /// `userName` (for a web identity user: the token's subject)
    pub user_name: Option<String>,
    /// `sessionContext.sessionIssuer.arn`: the role behind an assumed-role session
    pub session_issuer_arn: Option<String>,
    /// The role session name (last part of an assumed-role ARN)
    pub session_name: Option<String>,
    /// `sessionContext.webIdFederationData.federatedProvider`
    pub web_id_provider: Option<String>,
    /// `identityProvider` (web identity users)
    pub identity_provider: Option<String>,
    /// `invokedBy`: an AWS service acting for someone
    pub invoked_by: Option<String>,
}

impl Principal {
    /// The most specific name for a person to read.
    pub fn display(&self) -> Option<&str> {
        self.arn
            .as_deref()
            .or(self.user_name.as_deref())
            .or(self.invoked_by.as_deref())
            .or(self.principal_id.as_deref())
    }
}

/// What an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Sign(KmsSign),
    /// A `Sign` call that failed (`errorCode`: throttled, denied, key disabled): it signed
    /// nothing and explains no signature, but it is an attempt to use the key.
    FailedSign(FailedSign),
    PutImage(PutImage),
    AssumeRole(AssumeRole),
}

/// A failed KMS `Sign` call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailedSign {
    /// The key and parameters as logged (CloudTrail logs them for failed calls too).
    pub sign: KmsSign,
    /// `errorCode`, e.g. `ThrottlingException`, `AccessDenied`, `DisabledException`
    pub error_code: String,
    /// `errorMessage`, when logged
    pub error_message: Option<String>,
}

/// KMS `Sign` (never carries the digest or the signature).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KmsSign {
    /// `requestParameters.keyId` as the caller gave it: key id, key ARN, alias or alias ARN
    pub key_id: Option<String>,
    /// The key ARN from `resources` (type `AWS::KMS::Key`)
    pub key_arn: Option<String>,
    pub message_type: Option<String>,
    pub signing_algorithm: Option<String>,
}

/// ECR `PutImage`: a manifest pushed under a tag (a `.sig` tag push is one too), or by digest
/// alone (a cosign v3 bundle referrer).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutImage {
    pub repository: Option<String>,
    /// `registryId` (request, else response, else the recipient account)
    pub registry_id: Option<String>,
    pub tag: Option<String>,
    /// `responseElements.image.imageId.imageDigest`: digest of the pushed manifest
    pub digest: Option<String>,
    /// For a `sha256-<hex>.sig` tag, or a bundle referrer: the layers of the pushed signature
    /// manifest, when the event carries `imageManifest` and it parses
    pub signature_layers: Option<Vec<SigLayer>>,
    /// For a Sigstore bundle pushed as an OCI 1.1 referrer (cosign v3's default format, pushed
    /// by digest without a tag): the digest of the image it signs, from the logged manifest's
    /// `subject`, when its `artifactType` (or its config's media type) is a Sigstore bundle
    pub bundle_subject: Option<String>,
}

impl PutImage {
    /// A signature push: a `sha256-<hex>.sig` tag, or a bundle referrer.
    pub fn is_signature_push(&self) -> bool {
        self.bundle_subject.is_some() || self.tag.as_deref().is_some_and(is_sig_tag)
    }
}

/// One layer of a cosign signature manifest, as pushed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigLayer {
    /// `sha256:` of the payload blob
    pub digest: String,
    /// The `dev.cosignproject.cosign/signature` annotation (base64)
    pub signature: Option<String>,
    /// The `dev.sigtrail/kms-request-id` annotation `attach-sig` writes: the request id of the
    /// `Sign` the signer says made this signature (a claim the join checks, never proof)
    pub request_id: Option<String>,
}

/// STS `AssumeRoleWithWebIdentity` (CI with OIDC) or `AssumeRole`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssumeRole {
    pub web_identity: bool,
    /// `requestParameters.roleArn`
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    /// The web identity token's `sub` (`responseElements.subjectFromWebIdentityToken`, else
    /// `userIdentity.userName`), e.g. `repo:ORG/REPO:ref:refs/heads/main`
    pub subject: Option<String>,
    /// `responseElements.credentials.accessKeyId`: the key later calls are signed with
    pub access_key_id: Option<String>,
    /// `responseElements.assumedRoleUser.arn`: the principal ARN later calls show
    pub assumed_role_arn: Option<String>,
    pub provider: Option<String>,
    pub audience: Option<String>,
}

impl Event {
    pub fn as_sign(&self) -> Option<&KmsSign> {
        match &self.detail {
            Detail::Sign(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_failed_sign(&self) -> Option<&FailedSign> {
        match &self.detail {
            Detail::FailedSign(f) => Some(f),
            _ => None,
        }
    }
    pub fn as_put_image(&self) -> Option<&PutImage> {
        match &self.detail {
            Detail::PutImage(p) => Some(p),
            _ => None,
        }
    }
    pub fn as_assume_role(&self) -> Option<&AssumeRole> {
        match &self.detail {
            Detail::AssumeRole(a) => Some(a),
            _ => None,
        }
    }
}

/// What one file (or one `CloudTrailEvent` string) held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The events kept, in file order.
    pub events: Vec<Event>,
    /// Records read (kept or not).
    pub records: usize,
    /// Records of a kept kind that could not be used, each with the reason.
    pub warnings: Vec<Skipped>,
    /// Hex SHA-256 of the file's decompressed bytes, as CloudTrail's digests list it (set by
    /// [`parse_log_file`]).
    pub sha256: Option<String>,
}

/// A record that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Its `eventTime`, when that much could be read: a record outside the time searched
    /// could not have mattered.
    pub time: Option<DateTime<Utc>>,
    /// Which record and why, for people.
    pub message: String,
}

/// Parses a log file's bytes: gzip (by its magic bytes) or plain JSON.
pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::with_capacity(bytes.len() * 8);
        flate2::read::MultiGzDecoder::new(bytes)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut plain)
            .map_err(|e| format!("not a valid gzip file: {e}"))?;
        if plain.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "more than {MAX_FILE_BYTES} bytes once decompressed; not read"
            ));
        }
        parse_json(&plain)
    } else {
        parse_json(bytes)
    }
}

/// Decompressed log files up to this size are read whole and parsed from memory (serde_json's
/// slice reader: about a third less CPU over a whole trail than its `io::Read` one; CloudTrail's
/// files are a few MB); larger ones are streamed. Not above [`MAX_RECORD_BYTES`]: no record of a
/// file read whole can pass that cap.
const WHOLE_FILE_BYTES: u64 = MAX_RECORD_BYTES;

/// Reads one CloudTrail log file, `{"Records":[...]}`, plain or gzip (by its magic bytes): a file
/// of up to [`WHOLE_FILE_BYTES`] once decompressed is parsed in memory, a larger one as a stream
/// with one record at a time in memory, whatever the file's size. Anything else at the top level
/// (an array, a lone record, a number) is an error, as is a file over [`MAX_FILE_BYTES`] once
/// decompressed or a record over [`MAX_RECORD_BYTES`]; the error says which (the caller names
/// the file). With `hash`, [`Parsed::sha256`] is the SHA-256 of all the decompressed bytes.
pub fn parse_log_file(reader: impl Read, hash: bool) -> Result<Parsed, String> {
    use serde::de::DeserializeSeed;
    use std::io::BufRead;
    let mut input = std::io::BufReader::with_capacity(64 << 10, reader);
    let gzip = input
        .fill_buf()
        .map_err(|e| format!("cannot read: {e}"))?
        .starts_with(&[0x1f, 0x8b]);
    let limits = std::rc::Rc::new(Limits {
        hashing: hash,
        ..Limits::default()
    });
    let mut plain: Box<dyn Read> = if gzip {
        let compressed = CountedCompressed {
            inner: input,
            limits: limits.clone(),
        };
        Box::new(flate2::read::MultiGzDecoder::new(compressed))
    } else {
        Box::new(input)
    };
    // The first WHOLE_FILE_BYTES + 1 bytes: below every cap (file, gzip ratio, record).
    let mut head = Vec::new();
    if let Err(e) = (&mut plain)
        .take(WHOLE_FILE_BYTES + 1)
        .read_to_end(&mut head)
    {
        return Err(if gzip {
            format!("not a valid gzip file: {e}")
        } else {
            format!("cannot read: {e}")
        });
    }
    let result = if head.len() as u64 <= WHOLE_FILE_BYTES {
        let mut de = serde_json::Deserializer::from_slice(&head);
        LogFile(limits.clone())
            .deserialize(&mut de)
            .and_then(|parsed| de.end().map(|()| parsed))
            .map(|mut parsed| {
                if limits.hashing {
                    parsed.sha256 =
                        Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&head)));
                }
                parsed
            })
    } else {
        // Streamed, the caps (and the hash) counted from the first byte.
        let counted = std::io::BufReader::with_capacity(
            64 << 10,
            Counted {
                inner: std::io::Cursor::new(head).chain(plain),
                limits: limits.clone(),
            },
        );
        let mut de = serde_json::Deserializer::from_reader(counted);
        LogFile(limits.clone())
            .deserialize(&mut de)
            .and_then(|parsed| de.end().map(|()| parsed))
            .map(|mut parsed| {
                if limits.hashing {
                    let hash = limits.hash.take();
                    parsed.sha256 = Some(hex::encode(sha2::Digest::finalize(hash)));
                }
                parsed
            })
    };
    result.map_err(|e| match limits.over.get() {
        Some(Over::File) => {
            format!("more than {MAX_FILE_BYTES} bytes once decompressed; not read")
        }
        Some(Over::Ratio) => format!(
            "decompresses to more than {MAX_GZIP_RATIO} times its size (a gzip bomb?); not read"
        ),
        Some(Over::Record(i)) => format!(
            "record {i} is larger than {MAX_RECORD_BYTES} bytes of JSON; the file is not read"
        ),
        None if gzip && e.is_io() => format!("not a valid gzip file: {e}"),
        None if e.is_io() => format!("cannot read: {e}"),
        None => json_err(e),
    })
}

/// What [`parse_log_file`] has read so far, to enforce its caps while reading.
#[derive(Default)]
struct Limits {
    /// Decompressed bytes pulled from the file
    read: std::cell::Cell<u64>,
    /// Compressed bytes pulled from the file (gzip only)
    compressed: std::cell::Cell<u64>,
    /// Where the record being read started (in `read`), and its index
    record: std::cell::Cell<Option<(u64, usize)>>,
    /// Which cap stopped the reading
    over: std::cell::Cell<Option<Over>>,
    /// SHA-256 of the decompressed bytes read, when `hashing`
    hash: std::cell::RefCell<sha2::Sha256>,
    hashing: bool,
}

#[derive(Clone, Copy)]
enum Over {
    File,
    Ratio,
    Record(usize),
}

/// Counts the compressed bytes a gzip decoder reads.
struct CountedCompressed<R> {
    inner: R,
    limits: std::rc::Rc<Limits>,
}

impl<R: Read> Read for CountedCompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let c = &self.limits.compressed;
        c.set(c.get() + n as u64);
        Ok(n)
    }
}

/// Counts the bytes read and fails the read once a cap is passed.
struct Counted<R> {
    inner: R,
    limits: std::rc::Rc<Limits>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.limits.hashing {
            sha2::Digest::update(&mut *self.limits.hash.borrow_mut(), &buf[..n]);
        }
        let read = self.limits.read.get() + n as u64;
        self.limits.read.set(read);
        let compressed = self.limits.compressed.get();
        let over = if read > MAX_FILE_BYTES {
            Some(Over::File)
        } else if compressed > 0 && read > BOMB_CHECK_BYTES && read / compressed > MAX_GZIP_RATIO {
            Some(Over::Ratio)
        } else {
            match self.limits.record.get() {
                Some((start, i)) if read - start > MAX_RECORD_BYTES + (64 << 10) => {
                    Some(Over::Record(i))
                }
                _ => None,
            }
        };
        if let Some(over) = over {
            self.limits.over.set(Some(over));
            return Err(std::io::Error::other("size cap reached"));
        }
        Ok(n)
    }
}

/// The top level of a log file: an object whose `Records` is the list of records (other keys
/// are skipped).
struct LogFile(std::rc::Rc<Limits>);

impl<'de> de::DeserializeSeed<'de> for LogFile {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        struct V(std::rc::Rc<Limits>);
        impl<'de> Visitor<'de> for V {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a CloudTrail log file, an object {"Records":[...]}"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Parsed, A::Error> {
                Err(de::Error::custom(
                    r#"the top level is an array; a CloudTrail log file is an object {"Records":[...]}"#,
                ))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
                let mut parsed = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "Records" {
                        map.next_value::<IgnoredAny>()?;
                    } else if parsed.is_some() {
                        return Err(de::Error::custom(r#"two "Records" arrays"#));
                    } else {
                        parsed = Some(map.next_value_seed(RecordList(self.0.clone()))?);
                    }
                }
                parsed.ok_or_else(|| {
                    de::Error::custom(
                        r#"no "Records" array: not a CloudTrail log file ({"Records":[...]})"#,
                    )
                })
            }
        }
        d.deserialize_any(V(self.0))
    }
}

/// The `Records` array of a log file, each record converted (or dropped) as soon as it is read.
struct RecordList(std::rc::Rc<Limits>);

impl<'de> de::DeserializeSeed<'de> for RecordList {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        struct V(std::rc::Rc<Limits>);
        impl<'de> Visitor<'de> for V {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""Records" to be an array of CloudTrail records"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
                let mut parsed = Parsed::default();
                loop {
                    self.0.record.set(Some((self.0.read.get(), parsed.records)));
                    let Some(rec) = seq.next_element::<Obj<RawRecord>>()? else {
                        break;
                    };
                    add_record(rec, &mut parsed);
                }
                self.0.record.set(None);
                Ok(parsed)
            }
        }
        d.deserialize_any(V(self.0))
    }
}

fn add_record(rec: Obj<RawRecord>, parsed: &mut Parsed) {
    let index = parsed.records;
    parsed.records += 1;
    match rec {
        Obj::Value(raw) => convert_into(*raw, index, parsed),
        Obj::Absent | Obj::Bad => parsed.warnings.push(Skipped {
            time: None,
            message: format!("record {index}: not a JSON object; skipped"),
        }),
    }
}

/// Parses JSON: `{"Records":[...]}`, `[record, ...]`, or one record.
pub fn parse_json(bytes: &[u8]) -> Result<Parsed, String> {
    let first = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(b' ');
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = match first {
        b'[' => {
            let records: Converted = Deserialize::deserialize(&mut de).map_err(json_err)?;
            records.0
        }
        b'{' => {
            let top: Obj<RawRecord> = Deserialize::deserialize(&mut de).map_err(json_err)?;
            let Obj::Value(top) = top else {
                return Err("not a CloudTrail log file or record".into());
            };
            match top.records {
                Some(Converted(parsed)) => parsed,
                None => {
                    let mut parsed = Parsed {
                        records: 1,
                        ..Parsed::default()
                    };
                    convert_into(*top, 0, &mut parsed);
                    parsed
                }
            }
        }
        _ => return Err("not JSON: a CloudTrail log file is a JSON object".into()),
    };
    de.end().map_err(json_err)?;
    Ok(parsed)
}

fn json_err(e: serde_json::Error) -> String {
    format!("not valid CloudTrail JSON: {e}")
}

// ---------------------------------------------------------------------------------------------
// Raw shapes: only the fields used, each tolerant of absence and of wrong types.
// ---------------------------------------------------------------------------------------------

/// A JSON value expected to be a string: absent/`null`, a string, or something else.
#[derive(Debug, Default, Clone, PartialEq)]
enum Str {
    #[default]
    Absent,
    Value(String),
    Bad,
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str::Value(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str::Value(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Str, E> {
                Ok(Str::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Str, E> {
                Ok(Str::Absent)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Str, E> {
                Ok(Str::Bad)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Str, E> {
                Ok(Str::Bad)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Str, E> {
                Ok(Str::Bad)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Str, E> {
                Ok(Str::Bad)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Str, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Str::Bad)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Str, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Str::Bad)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON value expected to be an object of shape `T`: absent/`null`, `T`, or something else.
#[derive(Debug, Default)]
enum Obj<T> {
    #[default]
    Absent,
    Value(Box<T>),
    Bad,
}

impl<T> Obj<T> {
    fn get(&self) -> Option<&T> {
        match self {
            Obj::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|v| Obj::Value(Box::new(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj::Absent)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj::Bad)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj::Bad)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj::Bad)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Obj<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj::Bad)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A JSON value expected to be a list of objects of shape `T`.
#[derive(Debug, Default)]
enum List<T> {
    #[default]
    Absent,
    Value(Vec<Obj<T>>),
    Bad,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Obj<T>>()? {
                    items.push(item);
                }
                Ok(List::Value(items))
            }
            fn visit_unit<E: de::Error>(self) -> Result<List<T>, E> {
                Ok(List::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<List<T>, E> {
                Ok(List::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<List<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(List::Bad)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<List<T>, E> {
                Ok(List::Bad)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<List<T>, E> {
                Ok(List::Bad)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<List<T>, E> {
                Ok(List::Bad)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<List<T>, E> {
                Ok(List::Bad)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<List<T>, E> {
                Ok(List::Bad)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// `Records`: converted one by one while reading, so raw records never pile up.
#[derive(Debug, Default)]
struct Converted(Parsed);

impl<'de> Deserialize<'de> for Converted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Converted;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of CloudTrail records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Converted, A::Error> {
                let mut parsed = Parsed::default();
                while let Some(rec) = seq.next_element::<Obj<RawRecord>>()? {
                    add_record(rec, &mut parsed);
                }
                Ok(Converted(parsed))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct RawRecord {
    #[serde(rename = "Records")]
    records: Option<Converted>,
    #[serde(rename = "eventID")]
    event_id: Str,
    #[serde(rename = "eventTime")]
    event_time: Str,
    #[serde(rename = "eventSource")]
    event_source: Str,
    #[serde(rename = "eventName")]
    event_name: Str,
    #[serde(rename = "awsRegion")]
    region: Str,
    #[serde(rename = "recipientAccountId")]
    account: Str,
    #[serde(rename = "requestID")]
    request_id: Str,
    #[serde(rename = "errorCode")]
    error_code: Str,
    #[serde(rename = "errorMessage")]
    error_message: Str,
    #[serde(rename = "userIdentity")]
    identity: Obj<RawIdentity>,
    #[serde(rename = "requestParameters")]
    request: Obj<RawRequest>,
    #[serde(rename = "responseElements")]
    response: Obj<RawResponse>,
    resources: List<RawResource>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawIdentity {
    #[serde(rename = "type")]
    kind: Str,
    principal_id: Str,
    arn: Str,
    account_id: Str,
    access_key_id: Str,
    user_name: Str,
    invoked_by: Str,
    identity_provider: Str,
    session_context: Obj<RawSessionContext>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSessionContext {
    session_issuer: Obj<RawIssuer>,
    web_id_federation_data: Obj<RawWebId>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct RawIssuer {
    arn: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawWebId {
    federated_provider: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawRequest {
    key_id: Str,
    message_type: Str,
    signing_algorithm: Str,
    repository_name: Str,
    registry_id: Str,
    image_tag: Str,
    image_manifest: Str,
    role_arn: Str,
    role_session_name: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawResponse {
    image: Obj<RawImage>,
    credentials: Obj<RawCredentials>,
    subject_from_web_identity_token: Str,
    assumed_role_user: Obj<RawAssumedRoleUser>,
    provider: Str,
    audience: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawImage {
    repository_name: Str,
    registry_id: Str,
    image_manifest: Str,
    image_id: Obj<RawImageId>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawImageId {
    image_digest: Str,
    image_tag: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawCredentials {
    access_key_id: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawAssumedRoleUser {
    arn: Str,
}

#[derive(Deserialize, Debug, Default)]
#[serde(default)]
struct RawResource {
    #[serde(rename = "type")]
    kind: Str,
    #[serde(rename = "ARN")]
    arn: Str,
}

// ---------------------------------------------------------------------------------------------
// Conversion
// ---------------------------------------------------------------------------------------------

/// The event kinds kept: (source, name).
pub const KEPT: &[(&str, &str)] = &[
    ("kms.amazonaws.com", "Sign"),
    ("ecr.amazonaws.com", "PutImage"),
    ("sts.amazonaws.com", "AssumeRoleWithWebIdentity"),
    ("sts.amazonaws.com", "AssumeRole"),
];

/// Reads typed fields of one kept record, remembering the first field of the wrong type.
struct Fields {
    bad: Option<&'static str>,
}

impl Fields {
    fn s(&mut self, v: &Str, name: &'static str) -> Option<String> {
        match v {
            Str::Value(s) if !s.is_empty() => Some(s.clone()),
            Str::Value(_) | Str::Absent => None,
            Str::Bad => {
                self.bad.get_or_insert(name);
                None
            }
        }
    }
    fn o<'a, T>(&mut self, v: &'a Obj<T>, name: &'static str) -> Option<&'a T> {
        if matches!(v, Obj::Bad) {
            self.bad.get_or_insert(name);
        }
        v.get()
    }
}

fn convert_into(raw: RawRecord, index: usize, parsed: &mut Parsed) {
    let (Str::Value(source), Str::Value(name)) = (&raw.event_source, &raw.event_name) else {
        return;
    };
    if !KEPT.iter().any(|(s, n)| s == source && n == name) {
        return;
    }
    // A call that failed (AccessDenied, ...) signed or pushed nothing: a failed push or role
    // assumption is dropped, a failed `Sign` is kept apart as an attempt to use the key.
    let failed = matches!(&raw.error_code, Str::Value(c) if !c.is_empty());
    if failed && name != "Sign" {
        return;
    }
    match convert(&raw) {
        Ok(mut event) => {
            if failed {
                if let Detail::Sign(sign) = event.detail {
                    let text = |v: &Str| match v {
                        Str::Value(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    };
                    event.detail = Detail::FailedSign(FailedSign {
                        sign,
                        error_code: text(&raw.error_code).unwrap_or_default(),
                        error_message: text(&raw.error_message),
                    });
                }
            }
            parsed.events.push(event)
        }
        Err(msg) => {
            let id = match &raw.event_id {
                Str::Value(id) => format!(" (eventID {id})"),
                _ => String::new(),
            };
            let time = match &raw.event_time {
                Str::Value(t) => DateTime::parse_from_rfc3339(t)
                    .ok()
                    .map(|t| t.with_timezone(&Utc)),
                _ => None,
            };
            parsed.warnings.push(Skipped {
                time,
                message: format!("record {index}{id}: {source} {name}: {msg}; skipped"),
            });
        }
    }
}

fn convert(raw: &RawRecord) -> Result<Event, String> {
    let mut f = Fields { bad: None };
    let source = f.s(&raw.event_source, "eventSource").unwrap_or_default();
    let name = f.s(&raw.event_name, "eventName").unwrap_or_default();
    let time = match f.s(&raw.event_time, "eventTime") {
        None => None,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|e| format!("eventTime {t:?} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
        ),
    };
    let principal = match f.o(&raw.identity, "userIdentity") {
        None => Principal::default(),
        Some(id) => {
            let ctx = f.o(&id.session_context, "userIdentity.sessionContext");
            let issuer = ctx.and_then(|c| f.o(&c.session_issuer, "sessionContext.sessionIssuer"));
            let webid = ctx.and_then(|c| {
                f.o(
                    &c.web_id_federation_data,
                    "sessionContext.webIdFederationData",
                )
            });
            let kind = f.s(&id.kind, "userIdentity.type");
            let arn = f.s(&id.arn, "userIdentity.arn");
            let session_name = arn
                .as_deref()
                .and_then(assumed_role_parts)
                .map(|(_, _, session)| session.to_string());
            Principal {
                kind,
                session_name,
                principal_id: f.s(&id.principal_id, "userIdentity.principalId"),
                account_id: f.s(&id.account_id, "userIdentity.accountId"),
                access_key_id: f.s(&id.access_key_id, "userIdentity.accessKeyId"),
                user_name: f.s(&id.user_name, "userIdentity.userName"),
                invoked_by: f.s(&id.invoked_by, "userIdentity.invokedBy"),
                identity_provider: f.s(&id.identity_provider, "userIdentity.identityProvider"),
                session_issuer_arn: issuer.and_then(|i| f.s(&i.arn, "sessionIssuer.arn")),
                web_id_provider: webid
                    .and_then(|w| f.s(&w.federated_provider, "webIdFederationData")),
                arn,
            }
        }
    };
    let req = f.o(&raw.request, "requestParameters");
    let resp = f.o(&raw.response, "responseElements");
    let detail = match name.as_str() {
        "Sign" => {
            let mut key_arn = None;
            match &raw.resources {
                List::Value(items) => {
                    for item in items {
                        let Some(r) = f.o(item, "resources[]") else {
                            continue;
                        };
                        let kind = f.s(&r.kind, "resources[].type");
                        let arn = f.s(&r.arn, "resources[].ARN");
                        let is_key = kind.as_deref() == Some("AWS::KMS::Key")
                            || (kind.is_none()
                                && arn.as_deref().is_some_and(|a| a.contains(":key/")));
                        if is_key && key_arn.is_none() {
                            key_arn = arn;
                        }
                    }
                }
                List::Bad => {
                    f.bad.get_or_insert("resources");
                }
                List::Absent => {}
            }
            let key_id = req.and_then(|r| f.s(&r.key_id, "requestParameters.keyId"));
            if key_arn.is_none() {
                key_arn = key_id.clone().filter(|k| is_key_arn(k));
            }
            Detail::Sign(KmsSign {
                key_id,
                key_arn,
                message_type: req.and_then(|r| f.s(&r.message_type, "messageType")),
                signing_algorithm: req.and_then(|r| f.s(&r.signing_algorithm, "signingAlgorithm")),
            })
        }
        "PutImage" => {
            let image = resp.and_then(|r| f.o(&r.image, "responseElements.image"));
            let image_id = image.and_then(|i| f.o(&i.image_id, "image.imageId"));
            let tag = req
                .and_then(|r| f.s(&r.image_tag, "requestParameters.imageTag"))
                .or_else(|| image_id.and_then(|i| f.s(&i.image_tag, "imageId.imageTag")));
            let manifest = req
                .and_then(|r| f.s(&r.image_manifest, "requestParameters.imageManifest"))
                .or_else(|| image.and_then(|i| f.s(&i.image_manifest, "image.imageManifest")));
            let bundle_subject = match (&tag, &manifest) {
                (Some(t), _) if is_sig_tag(t) => None,
                (_, Some(m)) => bundle_subject(m),
                _ => None,
            };
            let signature_layers = match (&tag, manifest) {
                (Some(t), Some(m)) if is_sig_tag(t) => signature_layers(&m),
                (_, Some(m)) if bundle_subject.is_some() => signature_layers(&m),
                _ => None,
            };
            Detail::PutImage(PutImage {
                repository: req
                    .and_then(|r| f.s(&r.repository_name, "requestParameters.repositoryName"))
                    .or_else(|| {
                        image.and_then(|i| f.s(&i.repository_name, "image.repositoryName"))
                    }),
                registry_id: req
                    .and_then(|r| f.s(&r.registry_id, "requestParameters.registryId"))
                    .or_else(|| image.and_then(|i| f.s(&i.registry_id, "image.registryId")))
                    .or_else(|| f.s(&raw.account, "recipientAccountId")),
                digest: image_id.and_then(|i| f.s(&i.image_digest, "imageId.imageDigest")),
                tag,
                signature_layers,
                bundle_subject,
            })
        }
        _ => {
            let creds = resp.and_then(|r| f.o(&r.credentials, "responseElements.credentials"));
            let user = resp.and_then(|r| f.o(&r.assumed_role_user, "assumedRoleUser"));
            let web_identity = name == "AssumeRoleWithWebIdentity";
            let subject = resp
                .and_then(|r| {
                    f.s(
                        &r.subject_from_web_identity_token,
                        "subjectFromWebIdentityToken",
                    )
                })
                .or_else(|| web_identity.then(|| principal.user_name.clone()).flatten());
            Detail::AssumeRole(AssumeRole {
                web_identity,
                role_arn: req.and_then(|r| f.s(&r.role_arn, "requestParameters.roleArn")),
                session_name: req
                    .and_then(|r| f.s(&r.role_session_name, "requestParameters.roleSessionName")),
                subject,
                access_key_id: creds.and_then(|c| f.s(&c.access_key_id, "credentials.accessKeyId")),
                assumed_role_arn: user.and_then(|u| f.s(&u.arn, "assumedRoleUser.arn")),
                provider: resp
                    .and_then(|r| f.s(&r.provider, "responseElements.provider"))
                    .or_else(|| principal.identity_provider.clone()),
                audience: resp.and_then(|r| f.s(&r.audience, "responseElements.audience")),
            })
        }
    };
    let event = Event {
        id: f.s(&raw.event_id, "eventID"),
        time,
        source,
        name,
        region: f.s(&raw.region, "awsRegion"),
        account: f.s(&raw.account, "recipientAccountId"),
        request_id: f.s(&raw.request_id, "requestID"),
        principal,
        detail,
        file: None,
    };
    match f.bad {
        Some(field) => Err(format!("{field} has the wrong JSON type")),
        None => Ok(event),
    }
}

/// `arn:aws:sts::ACCT:assumed-role/ROLE/SESSION` → (account, role, session).
pub fn assumed_role_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    if parts.next()? != "sts" {
        return None;
    }
    let _region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next()?.strip_prefix("assumed-role/")?;
    let (role, session) = resource.rsplit_once('/')?;
    Some((account, role, session))
}

/// `arn:aws:kms:REGION:ACCT:key/ID`
pub fn is_key_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.contains(":kms:") && s.contains(":key/")
}

/// A cosign signature tag: `sha256-<64 hex>.sig`.
pub fn is_sig_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|t| t.strip_suffix(".sig"))
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The image digest a signature tag belongs to: `sha256-<hex>.sig` → `sha256:<hex>`.
pub fn sig_tag_digest(tag: &str) -> Option<String> {
    is_sig_tag(tag).then(|| format!("sha256:{}", &tag[7..tag.len() - 4]))
}

/// The signature tag of an image digest.
pub fn sig_tag(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256-{hex}.sig"))
}

/// Layers of a pushed cosign signature manifest (`None` when it is not one we can read).
/// The image a bundle referrer manifest signs: its `subject.digest`, when the manifest says it
/// holds a Sigstore bundle v0.3, the one format check-sig verifies (`artifactType`, else the
/// config's `mediaType`, as cosign 3.1.1 and gcr write them).
fn bundle_subject(manifest: &str) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct M {
        artifact_type: Option<String>,
        config: Option<C>,
        subject: Option<C>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct C {
        media_type: Option<String>,
        digest: Option<String>,
    }
    let m: M = serde_json::from_str(manifest).ok()?;
    let kind = m
        .artifact_type
        .or_else(|| m.config.and_then(|c| c.media_type))?;
    let digest = m.subject?.digest?;
    (crate::bundle::is_bundle_media_type(&kind) && crate::payload::is_sha256_digest(&digest))
        .then_some(digest)
}

fn signature_layers(manifest: &str) -> Option<Vec<SigLayer>> {
    #[derive(Deserialize)]
    struct M {
        layers: Vec<L>,
    }
    #[derive(Deserialize)]
    struct L {
        digest: String,
        #[serde(default)]
        annotations: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let m: M = serde_json::from_str(manifest).ok()?;
    Some(
        m.layers
            .into_iter()
            .map(|l| SigLayer {
                digest: l.digest,
                signature: l
                    .annotations
                    .get("dev.cosignproject.cosign/signature")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                request_id: l
                    .annotations
                    .get(crate::cosign::KMS_REQUEST_ID_ANNOTATION)
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests;
