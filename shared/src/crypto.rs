//! Keys and signatures: public keys (P-256, P-384, RSA) that verify cosign signatures, and
//! private keys (PEM, and cosign's encrypted format) that make them.
//!
//! Formats follow what cosign and the verifiers that read its signatures agree on:
//!
//! - Public keys are read from PEM (`PUBLIC KEY` SubjectPublicKeyInfo, also `RSA PUBLIC KEY`
//!   PKCS#1 and the non-standard `EC PUBLIC KEY` label holding an SPKI) or from DER SPKI, which
//!   is what KMS `GetPublicKey` returns. [`PublicKey::key_id`] is the hex sha256 of the
//!   canonical SPKI DER (what `openssl pkey -pubin -outform DER | sha256sum` prints).
//! - ECDSA signatures are ASN.1 DER only, parsed strictly (no trailing bytes), like Go's
//!   `ecdsa.VerifyASN1` that cosign and containers/image use; a fixed-size `r||s` signature is
//!   refused. High-S values are accepted (KMS and Go do not normalise S).
//! - P-256 verifies with SHA-256; P-384 with SHA-384 (KMS `ECDSA_SHA_384`) and SHA-256 (what
//!   older cosign produced for every curve); RSA with PKCS#1 v1.5 or PSS over SHA-256/384/512,
//!   PSS with a salt as long as the digest (KMS) or the longest possible salt (Go's auto).
//! - Private keys: PKCS#8 `PRIVATE KEY` (EC P-256/P-384, RSA), SEC1 `EC PRIVATE KEY`, PKCS#1
//!   `RSA PRIVATE KEY`, and cosign's `ENCRYPTED COSIGN PRIVATE KEY` / `ENCRYPTED SIGSTORE
//!   PRIVATE KEY`: JSON `{"kdf":{"name":"scrypt","params":{"N","r","p"},"salt"},"cipher":
//!   {"name":"nacl/secretbox","nonce"},"ciphertext"}` (go-tuf's `encrypted` package), whose
//!   plaintext is a PKCS#8 DER key.
//!
//! Secrets (decoded key bytes, passphrases, derived keys) live in `Zeroizing` buffers; the key
//! types zeroize themselves on drop. `Debug` of a private key shows only its public key.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Error kind for keys that cannot be read or used.
pub const BAD_KEY: &str = "bad_key";
/// Error kind for a signature that does not verify.
pub const BAD_SIGNATURE: &str = "bad_signature";

/// Smallest RSA modulus accepted, in bits (cosign and sigstore refuse smaller keys too).
pub const MIN_RSA_BITS: usize = 2048;

// ---------------------------------------------------------------------------------------------
// Algorithms

/// A hash function used before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// The digest of `message`.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(message).to_vec(),
            HashAlg::Sha384 => Sha384::digest(message).to_vec(),
            HashAlg::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// A signature algorithm, named as KMS names it (`ECDSA_SHA_256`, `RSASSA_PSS_SHA_256`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
}

impl Algorithm {
    /// Every algorithm, in the order KMS lists them.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RsaPssSha256,
        Algorithm::RsaPssSha384,
        Algorithm::RsaPssSha512,
        Algorithm::RsaPkcs1Sha256,
        Algorithm::RsaPkcs1Sha384,
        Algorithm::RsaPkcs1Sha512,
        Algorithm::EcdsaSha256,
        Algorithm::EcdsaSha384,
        Algorithm::EcdsaSha512,
    ];

    /// The KMS `SigningAlgorithmSpec` name, used in records (`algorithm`).
    pub fn kms_name(self) -> &'static str {
        match self {
            Algorithm::EcdsaSha256 => "ECDSA_SHA_256",
            Algorithm::EcdsaSha384 => "ECDSA_SHA_384",
            Algorithm::EcdsaSha512 => "ECDSA_SHA_512",
            Algorithm::RsaPkcs1Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
            Algorithm::RsaPkcs1Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
            Algorithm::RsaPkcs1Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
            Algorithm::RsaPssSha256 => "RSASSA_PSS_SHA_256",
            Algorithm::RsaPssSha384 => "RSASSA_PSS_SHA_384",
            Algorithm::RsaPssSha512 => "RSASSA_PSS_SHA_512",
        }
    }

    /// The algorithm with this KMS name (exact, upper case).
    pub fn from_kms_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.kms_name() == name)
    }

    /// The hash signed.
    pub fn hash(self) -> HashAlg {
        match self {
            Algorithm::EcdsaSha256 | Algorithm::RsaPkcs1Sha256 | Algorithm::RsaPssSha256 => {
                HashAlg::Sha256
            }
            Algorithm::EcdsaSha384 | Algorithm::RsaPkcs1Sha384 | Algorithm::RsaPssSha384 => {
                HashAlg::Sha384
            }
            Algorithm::EcdsaSha512 | Algorithm::RsaPkcs1Sha512 | Algorithm::RsaPssSha512 => {
                HashAlg::Sha512
            }
        }
    }

    /// Whether this is an ECDSA algorithm (else RSA).
    pub fn is_ecdsa(self) -> bool {
        matches!(
            self,
            Algorithm::EcdsaSha256 | Algorithm::EcdsaSha384 | Algorithm::EcdsaSha512
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kms_name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// A KMS name, in any case (`ecdsa_sha_256` is `ECDSA_SHA_256`).
    fn from_str(s: &str) -> Result<Algorithm> {
        Algorithm::from_kms_name(&s.to_ascii_uppercase()).ok_or_else(|| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.kms_name()).collect();
            Error::new(
                "bad_algorithm",
                format!(
                    "unknown signing algorithm {s:?}; use one of {}",
                    names.join(", ")
                ),
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Public keys

/// A public key that verifies signatures.
#[derive(Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

mod oid {
    use spki::ObjectIdentifier as Oid;
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    pub const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    pub const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
    pub const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");

    /// A readable name for OIDs people meet in keys we do not support.
    pub fn name(oid: &Oid) -> Option<&'static str> {
        Some(match oid.to_string().as_str() {
            "1.3.132.0.35" => "P-521",
            "1.3.132.0.10" => "secp256k1",
            "1.3.101.112" => "Ed25519",
            "1.3.101.113" => "Ed448",
            "1.3.101.110" => "X25519",
            "1.2.840.113549.1.1.10" => "RSASSA-PSS-restricted RSA",
            "1.2.840.10040.4.1" => "DSA",
            "1.2.840.10045.3.1.1" => "P-192",
            "1.3.132.0.33" => "P-224",
            _ => return None,
        })
    }
}

fn bad_key(message: impl Into<String>) -> Error {
    Error::new(BAD_KEY, message)
}

fn unsupported(what: &str, oid: &spki::ObjectIdentifier) -> Error {
    let name = oid::name(oid)
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    bad_key(format!(
        "unsupported {what} {oid}{name}: use an ECDSA P-256 or P-384 key or an RSA key of \
         2048 bits or more"
    ))
}

impl PublicKey {
    /// Reads a key from PEM or, when `bytes` has no PEM block, from DER SPKI.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey> {
        if find_subslice(bytes, b"-----BEGIN ").is_some() {
            PublicKey::from_pem(bytes)
        } else {
            PublicKey::from_der(bytes)
        }
    }

    /// Reads the first PEM block of `pem`: `PUBLIC KEY`, `EC PUBLIC KEY` (SPKI) or
    /// `RSA PUBLIC KEY` (PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey> {
        let block = Pem::parse(pem)?;
        match block.label.as_str() {
            "PUBLIC KEY" | "EC PUBLIC KEY" => PublicKey::from_der(&block.der),
            "RSA PUBLIC KEY" => {
                let key = rsa::RsaPublicKey::from_pkcs1_der(&block.der)
                    .map_err(|e| bad_key(format!("cannot read the RSA PUBLIC KEY: {e}")))?;
                PublicKey::from_rsa(key)
            }
            "CERTIFICATE" => Err(bad_key(
                "this is an X.509 certificate, not a public key; extract its key with \
                 `openssl x509 -pubkey -noout -in FILE`",
            )),
            label if label.contains("PRIVATE KEY") => Err(bad_key(format!(
                "this is a private key ({label}), not a public key; print the public key with \
                 `kms-sign --public-key --key FILE`"
            ))),
            label => Err(bad_key(format!(
                "PEM block {label:?} is not a public key; expected \"PUBLIC KEY\""
            ))),
        }
    }

    /// Reads a DER SubjectPublicKeyInfo (what KMS `GetPublicKey` returns); a DER PKCS#1 RSA
    /// public key is accepted too.
    pub fn from_der(der: &[u8]) -> Result<PublicKey> {
        let info = match spki::SubjectPublicKeyInfoRef::try_from(der) {
            Ok(info) => info,
            Err(e) => {
                return match rsa::RsaPublicKey::from_pkcs1_der(der) {
                    Ok(key) => PublicKey::from_rsa(key),
                    Err(_) => Err(bad_key(format!(
                        "cannot read the public key (expected PEM or DER SubjectPublicKeyInfo): {e}"
                    ))),
                }
            }
        };
        let alg = info.algorithm.oid;
        if alg == oid::EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| bad_key("EC public key without a named curve"))?;
            if curve == oid::P256 {
                let key = p256::PublicKey::from_public_key_der(der)
                    .map_err(|e| bad_key(format!("cannot read the P-256 public key: {e}")))?;
                Ok(PublicKey::P256(key.into()))
            } else if curve == oid::P384 {
                let key = p384::PublicKey::from_public_key_der(der)
                    .map_err(|e| bad_key(format!("cannot read the P-384 public key: {e}")))?;
                Ok(PublicKey::P384(key.into()))
            } else {
                Err(unsupported("elliptic curve", &curve))
            }
        } else if alg == oid::RSA {
            let key = rsa::RsaPublicKey::from_public_key_der(der)
                .map_err(|e| bad_key(format!("cannot read the RSA public key: {e}")))?;
            PublicKey::from_rsa(key)
        } else {
            Err(unsupported("key algorithm", &alg))
        }
    }

    fn from_rsa(key: rsa::RsaPublicKey) -> Result<PublicKey> {
        let bits = key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(bad_key(format!(
                "RSA key of {bits} bits is too small; use {MIN_RSA_BITS} bits or more"
            )));
        }
        Ok(PublicKey::Rsa(key))
    }

    /// The canonical DER SubjectPublicKeyInfo (uncompressed EC point).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::P256(k) => p256::PublicKey::from(k).to_public_key_der(),
            PublicKey::P384(k) => p384::PublicKey::from(k).to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        // Encoding a key we hold in memory cannot fail (only allocation could).
        doc.expect("public key encodes as SPKI").into_vec()
    }

    /// PEM `PUBLIC KEY` (SPKI), LF line endings, like `cosign public-key` prints.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Hex sha256 of [`to_spki_der`](Self::to_spki_der): the record's `key_id`.
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(self.to_spki_der()))
    }

    /// What kind of key this is, for people: `ECDSA P-256`, `RSA-2048`.
    pub fn description(&self) -> String {
        match self {
            PublicKey::P256(_) => "ECDSA P-256".into(),
            PublicKey::P384(_) => "ECDSA P-384".into(),
            PublicKey::Rsa(k) => format!("RSA-{}", k.n().bits()),
        }
    }

    /// The algorithm this key signs with unless told otherwise (what KMS and cosign use).
    pub fn default_algorithm(&self) -> Algorithm {
        match self {
            PublicKey::P256(_) => Algorithm::EcdsaSha256,
            PublicKey::P384(_) => Algorithm::EcdsaSha384,
            PublicKey::Rsa(_) => Algorithm::RsaPkcs1Sha256,
        }
    }

    /// The algorithms [`verify`](Self::verify) tries when given no scheme, most likely first.
    ///
    /// P-384 accepts SHA-256 as well because older cosign hashed with SHA-256 for every curve.
    pub fn accepted_algorithms(&self) -> &'static [Algorithm] {
        match self {
            PublicKey::P256(_) => &[Algorithm::EcdsaSha256],
            PublicKey::P384(_) => &[Algorithm::EcdsaSha384, Algorithm::EcdsaSha256],
            PublicKey::Rsa(_) => &[
                Algorithm::RsaPkcs1Sha256,
                Algorithm::RsaPssSha256,
                Algorithm::RsaPkcs1Sha384,
                Algorithm::RsaPkcs1Sha512,
                Algorithm::RsaPssSha384,
                Algorithm::RsaPssSha512,
            ],
        }
    }

    /// Whether this key can be used with `algorithm` at all.
    pub fn supports(&self, algorithm: Algorithm) -> bool {
        match self {
            PublicKey::P256(_) => algorithm == Algorithm::EcdsaSha256,
            PublicKey::P384(_) => {
                matches!(algorithm, Algorithm::EcdsaSha384 | Algorithm::EcdsaSha256)
            }
            PublicKey::Rsa(_) => !algorithm.is_ecdsa(),
        }
    }

    /// Verifies `signature` over `message`; returns the algorithm that verified.
    ///
    /// With `scheme`, only that algorithm is tried (error `bad_key` if this key cannot use it);
    /// without, each of [`accepted_algorithms`](Self::accepted_algorithms). A signature that
    /// does not verify is an error of kind `bad_signature`.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &[u8],
        scheme: Option<Algorithm>,
    ) -> Result<Algorithm> {
        let candidates: &[Algorithm] = match &scheme {
            Some(alg) if !self.supports(*alg) => {
                return Err(bad_key(format!(
                    "a {} key cannot verify {alg} signatures",
                    self.description()
                )))
            }
            Some(alg) => std::slice::from_ref(alg),
            None => self.accepted_algorithms(),
        };
        if signature.is_empty() {
            return Err(Error::new(BAD_SIGNATURE, "the signature is empty"));
        }
        let mut digests: Vec<(HashAlg, Vec<u8>)> = Vec::new();
        for &alg in candidates {
            let hash = alg.hash();
            let digest = match digests.iter().find(|(h, _)| *h == hash) {
                Some((_, d)) => d,
                None => {
                    digests.push((hash, hash.digest(message)));
                    &digests[digests.len() - 1].1
                }
            };
            if self.verify_digest(digest, signature, alg)? {
                return Ok(alg);
            }
        }
        let tried: Vec<&str> = candidates.iter().map(|a| a.kms_name()).collect();
        Err(Error::new(
            BAD_SIGNATURE,
            format!(
                "the signature does not verify with the {} key {} ({})",
                self.description(),
                short_id(&self.key_id()),
                tried.join(", ")
            ),
        ))
    }

    /// Whether `signature` verifies over a precomputed `digest` with `alg`. `Err` only for a
    /// signature that cannot be parsed at all for this key type.
    fn verify_digest(&self, digest: &[u8], signature: &[u8], alg: Algorithm) -> Result<bool> {
        let not_der = || {
            Error::new(
                BAD_SIGNATURE,
                "the ECDSA signature is not ASN.1 DER (cosign signatures are DER; a raw r||s \
                 signature is not accepted)",
            )
        };
        Ok(match self {
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| not_der())?;
                k.verify_prehash(digest, &sig).is_ok()
            }
            PublicKey::P384(k) => {
                let sig = p384::ecdsa::Signature::from_der(signature).map_err(|_| not_der())?;
                k.verify_prehash(digest, &sig).is_ok()
            }
            PublicKey::Rsa(k) => {
                let pkcs1 = |scheme: rsa::Pkcs1v15Sign| k.verify(scheme, digest, signature).is_ok();
                let pss = |scheme_for: fn(usize) -> rsa::Pss| {
                    // The digest length (KMS, most signers) or the longest salt (Go's "auto").
                    let max_salt = k.size().saturating_sub(digest.len() + 2);
                    k.verify(scheme_for(digest.len()), digest, signature)
                        .is_ok()
                        || (max_salt != digest.len()
                            && k.verify(scheme_for(max_salt), digest, signature).is_ok())
                };
                match alg {
                    Algorithm::RsaPkcs1Sha256 => pkcs1(rsa::Pkcs1v15Sign::new::<Sha256>()),
                    Algorithm::RsaPkcs1Sha384 => pkcs1(rsa::Pkcs1v15Sign::new::<Sha384>()),
                    Algorithm::RsaPkcs1Sha512 => pkcs1(rsa::Pkcs1v15Sign::new::<Sha512>()),
                    Algorithm::RsaPssSha256 => pss(rsa::Pss::new_with_salt::<Sha256>),
                    Algorithm::RsaPssSha384 => pss(rsa::Pss::new_with_salt::<Sha384>),
                    Algorithm::RsaPssSha512 => pss(rsa::Pss::new_with_salt::<Sha512>),
                    _ => false,
                }
            }
        })
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.to_spki_der() == other.to_spki_der()
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({} {})", self.description(), self.key_id())
    }
}

fn short_id(key_id: &str) -> &str {
    key_id.get(..12).unwrap_or(key_id)
}

// ---------------------------------------------------------------------------------------------
// Private keys

/// A private key that signs locally. Zeroized on drop; `Debug` shows only the public key.
pub enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

/// Where a passphrase for an encrypted private key comes from (never the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// An environment variable (cosign uses `COSIGN_PASSWORD`); set but empty is an empty
    /// passphrase.
    Env(String),
    /// A file; one trailing newline (`\n` or `\r\n`) is not part of the passphrase.
    File(PathBuf),
}

impl PassphraseSource {
    /// cosign's variable.
    pub const COSIGN_ENV: &'static str = "COSIGN_PASSWORD";

    /// Reads the passphrase.
    pub fn read(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            PassphraseSource::Env(name) => match std::env::var_os(name) {
                Some(v) => Ok(Zeroizing::new(v.into_encoded_bytes())),
                None => Err(bad_key(format!(
                    "the private key is encrypted and {name} is not set: put the passphrase in \
                     {name} or in a file given with --passphrase-file"
                ))),
            },
            PassphraseSource::File(path) => {
                let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
                    bad_key(format!(
                        "cannot read passphrase file {}: {e}",
                        path.display()
                    ))
                })?);
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                Ok(bytes)
            }
        }
    }
}

/// PEM labels of cosign's encrypted private keys.
pub const COSIGN_PEM_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// Largest scrypt memory (128 * N * r bytes) accepted when decrypting a cosign key.
const MAX_SCRYPT_MEMORY: u64 = 256 << 20;

impl PrivateKey {
    /// Reads the first PEM block of `pem`. `passphrase` is called only for an encrypted key.
    pub fn from_pem(
        pem: &[u8],
        passphrase: impl FnOnce() -> Result<Zeroizing<Vec<u8>>>,
    ) -> Result<PrivateKey> {
        let block = Pem::parse(pem)?;
        match block.label.as_str() {
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&block.der),
            "EC PRIVATE KEY" => PrivateKey::from_sec1_der(&block.der),
            "RSA PRIVATE KEY" => {
                let key = rsa::RsaPrivateKey::from_pkcs1_der(&block.der)
                    .map_err(|e| bad_key(format!("cannot read the RSA PRIVATE KEY: {e}")))?;
                PrivateKey::from_rsa(key)
            }
            label if COSIGN_PEM_LABELS.contains(&label) => {
                let pass = passphrase()?;
                let der = decrypt_cosign(&block.der, &pass)?;
                PrivateKey::from_pkcs8_der(&der)
            }
            "ENCRYPTED PRIVATE KEY" => Err(bad_key(
                "PKCS#8 encrypted keys are not supported; decrypt with `openssl pkcs8` or import \
                 the key with `cosign import-key-pair`",
            )),
            label if label.contains("PUBLIC KEY") || label == "CERTIFICATE" => Err(bad_key(
                format!("this is a {label}, not a private key; signing needs the private key"),
            )),
            label => Err(bad_key(format!("PEM block {label:?} is not a private key"))),
        }
    }

    /// Reads a DER PKCS#8 private key (EC P-256, P-384, or RSA).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey> {
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| bad_key(format!("cannot read the PKCS#8 private key: {e}")))?;
        let alg = info.algorithm.oid;
        if alg == oid::EC_PUBLIC_KEY {
            let curve = info
                .algorithm
                .parameters_oid()
                .map_err(|_| bad_key("EC private key without a named curve"))?;
            if curve == oid::P256 {
                let key = p256::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| bad_key(format!("cannot read the P-256 private key: {e}")))?;
                Ok(PrivateKey::P256(key))
            } else if curve == oid::P384 {
                let key = p384::ecdsa::SigningKey::from_pkcs8_der(der)
                    .map_err(|e| bad_key(format!("cannot read the P-384 private key: {e}")))?;
                Ok(PrivateKey::P384(key))
            } else {
                Err(unsupported("elliptic curve", &curve))
            }
        } else if alg == oid::RSA {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
                .map_err(|e| bad_key(format!("cannot read the RSA private key: {e}")))?;
            PrivateKey::from_rsa(key)
        } else {
            Err(unsupported("key algorithm", &alg))
        }
    }

    /// Reads a DER SEC1 `EC PRIVATE KEY` (P-256 or P-384).
    fn from_sec1_der(der: &[u8]) -> Result<PrivateKey> {
        if let Ok(key) = p256::SecretKey::from_sec1_der(der) {
            return Ok(PrivateKey::P256(key.into()));
        }
        if let Ok(key) = p384::SecretKey::from_sec1_der(der) {
            return Ok(PrivateKey::P384(key.into()));
        }
        Err(bad_key(
            "cannot read the EC PRIVATE KEY: not a P-256 or P-384 key in SEC1 form",
        ))
    }

    fn from_rsa(key: rsa::RsaPrivateKey) -> Result<PrivateKey> {
        PublicKey::from_rsa(key.to_public_key())?;
        key.validate()
            .map_err(|e| bad_key(format!("the RSA private key is inconsistent: {e}")))?;
        Ok(PrivateKey::Rsa(Box::new(key)))
    }

    /// A fresh random key: `P256`, `P384`, or RSA with `rsa_bits` (tests and key generation).
    pub fn generate(kind: KeyKind) -> Result<PrivateKey> {
        let mut rng = rand_core::OsRng;
        Ok(match kind {
            KeyKind::P256 => PrivateKey::P256(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::P384 => PrivateKey::P384(p384::ecdsa::SigningKey::random(&mut rng)),
            KeyKind::Rsa(bits) => PrivateKey::from_rsa(
                rsa::RsaPrivateKey::new(&mut rng, bits)
                    .map_err(|e| bad_key(format!("cannot generate an RSA key: {e}")))?,
            )?,
        })
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
        }
    }

    /// The algorithm used unless told otherwise: ECDSA with the curve's hash, RSA PKCS#1 v1.5
    /// with SHA-256.
    pub fn default_algorithm(&self) -> Algorithm {
        self.public_key().default_algorithm()
    }

    /// Signs `message` with `algorithm`: ECDSA as ASN.1 DER, RSA PKCS#1 v1.5 or PSS (salt as
    /// long as the digest, like KMS).
    pub fn sign(&self, message: &[u8], algorithm: Algorithm) -> Result<Vec<u8>> {
        let public = self.public_key();
        if !public.supports(algorithm) {
            return Err(bad_key(format!(
                "a {} key cannot sign with {algorithm}",
                public.description()
            )));
        }
        let digest = algorithm.hash().digest(message);
        let failed = |e: &dyn fmt::Display| Error::new(BAD_KEY, format!("signing failed: {e}"));
        match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|e| failed(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|e| failed(&e))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::Rsa(k) => {
                let mut rng = rand_core::OsRng;
                let result = match algorithm {
                    Algorithm::RsaPkcs1Sha256 => {
                        k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                    }
                    Algorithm::RsaPkcs1Sha384 => {
                        k.sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &digest)
                    }
                    Algorithm::RsaPkcs1Sha512 => {
                        k.sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &digest)
                    }
                    Algorithm::RsaPssSha256 => {
                        k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &digest)
                    }
                    Algorithm::RsaPssSha384 => {
                        k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &digest)
                    }
                    Algorithm::RsaPssSha512 => {
                        k.sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &digest)
                    }
                    _ => unreachable!("checked by supports()"),
                };
                result.map_err(|e| failed(&e))
            }
        }
    }

    /// This key in cosign's encrypted format (PEM `ENCRYPTED SIGSTORE PRIVATE KEY`), with
    /// cosign's scrypt parameters (N=32768, r=8, p=1).
    pub fn to_cosign_pem(&self, passphrase: &[u8]) -> Result<String> {
        use pkcs8::EncodePrivateKey;
        let der = match self {
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| bad_key(format!("cannot encode the private key: {e}")))?;
        let doc = encrypt_cosign(der.as_bytes(), passphrase, 15, 8, 1)?;
        Ok(pem_encode(COSIGN_PEM_LABELS[0], &doc))
    }
}

/// A kind of key to [generate](PrivateKey::generate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    P384,
    Rsa(usize),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(public: {:?})", self.public_key())
    }
}

// ---------------------------------------------------------------------------------------------
// cosign's encrypted private key format (go-tuf `encrypted`)

#[derive(serde::Serialize, serde::Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn secretbox_key(
    passphrase: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>> {
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| bad_key(format!("bad scrypt parameters in the cosign key: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, salt, &params, &mut key[..])
        .map_err(|e| bad_key(format!("scrypt failed: {e}")))?;
    Ok(key)
}

/// Decrypts the JSON body of a cosign encrypted key; returns the PKCS#8 DER plaintext.
fn decrypt_cosign(document: &[u8], passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    use crypto_secretbox::aead::{generic_array::GenericArray, Aead, KeyInit};

    let doc: EncryptedKey = serde_json::from_slice(document)
        .map_err(|e| bad_key(format!("the cosign private key is not valid JSON: {e}")))?;
    if doc.kdf.name != "scrypt" {
        return Err(bad_key(format!(
            "unsupported key derivation {:?} in the cosign key (expected scrypt)",
            doc.kdf.name
        )));
    }
    if doc.cipher.name != "nacl/secretbox" {
        return Err(bad_key(format!(
            "unsupported cipher {:?} in the cosign key (expected nacl/secretbox)",
            doc.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = doc.kdf.params;
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 || p > 16 {
        return Err(bad_key(format!(
            "bad scrypt parameters in the cosign key: N={n} r={r} p={p}"
        )));
    }
    if 128u64.saturating_mul(n).saturating_mul(u64::from(r)) > MAX_SCRYPT_MEMORY {
        return Err(bad_key(format!(
            "scrypt parameters N={n} r={r} need more than {} MiB; refusing",
            MAX_SCRYPT_MEMORY >> 20
        )));
    }
    let b64 = |field: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|e| bad_key(format!("bad base64 in the cosign key's {field}: {e}")))
    };
    let salt = b64("salt", &doc.kdf.salt)?;
    let nonce = b64("nonce", &doc.cipher.nonce)?;
    let ciphertext = b64("ciphertext", &doc.ciphertext)?;
    if nonce.len() != 24 {
        return Err(bad_key(format!(
            "the cosign key's nonce is {} bytes, expected 24",
            nonce.len()
        )));
    }
    let key = secretbox_key(passphrase, &salt, n.trailing_zeros() as u8, r, p)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(GenericArray::from_slice(&key[..]));
    let plain = cipher
        .decrypt(GenericArray::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| {
            bad_key(
                "cannot decrypt the cosign private key: wrong passphrase (or a damaged key file)",
            )
        })?;
    Ok(Zeroizing::new(plain))
}

/// Encrypts `plaintext` as a cosign key's JSON body.
fn encrypt_cosign(
    plaintext: &[u8],
    passphrase: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Vec<u8>> {
    use crypto_secretbox::aead::{generic_array::GenericArray, Aead, KeyInit};
    use rand_core::RngCore;

    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut salt);
    rand_core::OsRng.fill_bytes(&mut nonce);
    let key = secretbox_key(passphrase, &salt, log_n, r, p)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(GenericArray::from_slice(&key[..]));
    let ciphertext = cipher
        .encrypt(GenericArray::from_slice(&nonce), plaintext)
        .map_err(|_| bad_key("secretbox encryption failed"))?;
    let doc = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1u64 << log_n,
                r,
                p,
            },
            salt: STANDARD.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: STANDARD.encode(nonce),
        },
        ciphertext: STANDARD.encode(ciphertext),
    };
    serde_json::to_vec(&doc).map_err(|e| bad_key(format!("cannot encode the key: {e}")))
}

// ---------------------------------------------------------------------------------------------
// PEM

/// One PEM block: its label and decoded body.
struct Pem {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

impl Pem {
    /// The first PEM block in `text` (text before it is ignored, like OpenSSL and Go do).
    fn parse(text: &[u8]) -> Result<Pem> {
        let text =
            std::str::from_utf8(text).map_err(|_| bad_key("the key file is not text PEM"))?;
        let start = text
            .find("-----BEGIN ")
            .ok_or_else(|| bad_key("no PEM block (-----BEGIN ...-----) in the key file"))?;
        let rest = &text[start + "-----BEGIN ".len()..];
        let end_label = rest
            .find("-----")
            .ok_or_else(|| bad_key("malformed PEM header"))?;
        let label = rest[..end_label].to_string();
        let body_and_more = &rest[end_label + 5..];
        let footer = format!("-----END {label}-----");
        let body_end = body_and_more
            .find(&footer)
            .ok_or_else(|| bad_key(format!("PEM block {label:?} has no {footer} line")))?;
        let body = &body_and_more[..body_end];
        if body.lines().any(|l| l.contains(':')) {
            return Err(bad_key(format!(
                "PEM block {label:?} has headers (legacy OpenSSL encryption?); convert the key \
                 with `openssl pkcs8 -topk8 -nocrypt`"
            )));
        }
        let compact: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let der = STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| bad_key(format!("bad base64 in PEM block {label:?}: {e}")))?;
        Ok(Pem {
            label,
            der: Zeroizing::new(der),
        })
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
