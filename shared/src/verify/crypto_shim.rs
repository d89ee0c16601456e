//! Temporary stand-in for `crate::crypto::PublicKey` (being written by the signing work) so the
//! verification can be built and tested now; same API shape, removed when `crypto` lands.

use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256, Sha384};
use spki::EncodePublicKey;

use crate::error::Error;

#[derive(Debug, Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let pem = std::str::from_utf8(pem).map_err(|_| Error::new("bad_key", "not PEM"))?;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::P384(k));
        }
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
            return Ok(Self::Rsa(k));
        }
        Err(Error::new(
            "bad_key",
            "not a PEM public key (EC P-256, P-384 or RSA)",
        ))
    }

    pub fn key_id(&self) -> String {
        let der = match self {
            Self::P256(k) => k.to_public_key_der(),
            Self::P384(k) => k.to_public_key_der(),
            Self::Rsa(k) => k.to_public_key_der(),
        };
        der.map(|d| hex::encode(Sha256::digest(d.as_bytes())))
            .unwrap_or_default()
    }

    pub fn verify(
        &self,
        msg: &[u8],
        sig: &[u8],
        _scheme: Option<Algorithm>,
    ) -> Result<Algorithm, Error> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let bad = || Error::new("bad_signature", "signature does not verify");
        let ok = match self {
            Self::P256(k) => p256::ecdsa::DerSignature::from_bytes(sig)
                .ok()
                .is_some_and(|s| k.verify_prehash(&Sha256::digest(msg), &s).is_ok()),
            Self::P384(k) => p384::ecdsa::DerSignature::from_bytes(sig)
                .ok()
                .is_some_and(|s| {
                    k.verify_prehash(&Sha384::digest(msg), &s).is_ok()
                        || k.verify_prehash(&Sha256::digest(msg), &s).is_ok()
                }),
            Self::Rsa(k) => k
                .verify(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(msg),
                    sig,
                )
                .is_ok(),
        };
        ok.then_some(Algorithm).ok_or_else(bad)
    }
}

/// Stand-in for `crate::crypto::Algorithm`.
#[derive(Debug, Clone, Copy)]
pub struct Algorithm;

impl Algorithm {
    pub fn kms_name(self) -> &'static str {
        "shim"
    }
}
