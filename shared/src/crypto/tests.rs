//! Unit tests of the crypto module: the real cosign vectors (`shared/tests/data/vectors`, see its
//! INDEX.md), keys generated in the test, and cosign/skopeo encrypted key fixtures
//! (`shared/tests/data/README.md` says how they were made).

use super::*;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn no_passphrase() -> Result<Zeroizing<Vec<u8>>> {
    panic!("the passphrase must not be asked for an unencrypted key")
}

/// One vector: key, payload bytes, signature bytes (strict base64).
fn vector(dir: &Path) -> (PublicKey, Vec<u8>, Option<Vec<u8>>) {
    let key = PublicKey::from_pem(&std::fs::read(dir.join("key.pem")).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let payload = std::fs::read(dir.join("payload.json")).unwrap();
    let b64 = std::fs::read_to_string(dir.join("signature.b64")).unwrap();
    (
        key,
        payload,
        STANDARD.decode(b64.trim_end_matches('\n')).ok(),
    )
}

fn vectors(kind: &str) -> Vec<PathBuf> {
    let dir = data("vectors").join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no vectors in {}", dir.display());
    dirs
}

#[test]
fn every_valid_vector_verifies_with_the_expected_algorithm() {
    for dir in vectors("valid") {
        let (key, payload, sig) = vector(&dir);
        let sig = sig.expect("valid vectors have good base64");
        let alg = key
            .verify(&payload, &sig, None)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let expected = match &key {
            PublicKey::Rsa(_) => Algorithm::RsaPkcs1Sha256,
            // every vector was made by cosign-style SHA-256 signing, P-384 included
            _ => Algorithm::EcdsaSha256,
        };
        assert_eq!(alg, expected, "{name}");
        assert_eq!(
            key.verify(&payload, &sig, Some(expected)).unwrap(),
            expected
        );
        // A changed payload never verifies.
        let mut tampered = payload.clone();
        tampered.push(b' ');
        let err = key.verify(&tampered, &sig, None).unwrap_err();
        assert_eq!(err.kind, BAD_SIGNATURE, "{name}");
    }
}

#[test]
fn p384_vector_signed_with_sha256_does_not_verify_as_sha384() {
    let (key, payload, sig) = vector(&data("vectors/valid/ratify-04-p384-sha256"));
    let sig = sig.unwrap();
    assert!(matches!(key, PublicKey::P384(_)));
    let err = key
        .verify(&payload, &sig, Some(Algorithm::EcdsaSha384))
        .unwrap_err();
    assert_eq!(err.kind, BAD_SIGNATURE);
}

#[test]
fn invalid_vectors_with_bad_crypto_fail() {
    // The invalid vectors whose signature (as bytes) does not verify with the given key; the
    // others carry a good signature and must be rejected by payload checks, not here.
    let mut checked = 0;
    for dir in vectors("invalid") {
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("META.json")).unwrap()).unwrap();
        let (key, payload, sig) = vector(&dir);
        let Some(sig) = sig else { continue }; // base64 cases: verify.rs's concern
        let crypto_valid = meta["crypto_valid"].as_bool().expect("crypto_valid");
        let result = key.verify(&payload, &sig, None);
        assert_eq!(
            result.is_ok(),
            crypto_valid,
            "{}: {result:?}",
            dir.display()
        );
        if !crypto_valid {
            assert_eq!(result.unwrap_err().kind, BAD_SIGNATURE);
            checked += 1;
        }
    }
    assert!(
        checked >= 7,
        "only {checked} crypto-invalid vectors checked"
    );
}

#[test]
fn valid_signature_with_another_vectors_key_fails() {
    let (_, payload, sig) = vector(&data("vectors/valid/ci-01-cosign-valid-p256"));
    let (other, _, _) = vector(&data("vectors/valid/ci-03-key-rekor-valid-cosign2"));
    let err = other.verify(&payload, &sig.unwrap(), None).unwrap_err();
    assert_eq!(err.kind, BAD_SIGNATURE);
    assert!(err.message.contains("does not verify"), "{err}");
}

#[test]
fn generated_keys_sign_and_verify_every_algorithm_they_support() {
    let msg = br#"{"critical":{"identity":{"docker-reference":"r/x"}}}"#;
    let keys = [
        PrivateKey::generate(KeyKind::P256).unwrap(),
        PrivateKey::generate(KeyKind::P384).unwrap(),
        PrivateKey::generate(KeyKind::Rsa(2048)).unwrap(),
    ];
    let mut signed = 0;
    for key in &keys {
        let public = key.public_key();
        for alg in Algorithm::ALL {
            if !public.supports(alg) {
                let err = key.sign(msg, alg).unwrap_err();
                assert_eq!(err.kind, BAD_KEY);
                continue;
            }
            let sig = key.sign(msg, alg).unwrap();
            assert_eq!(
                public.verify(msg, &sig, Some(alg)).unwrap(),
                alg,
                "{public:?} {alg}"
            );
            assert_eq!(
                public.verify(msg, &sig, None).unwrap(),
                alg,
                "{public:?} {alg}"
            );
            assert!(public.verify(b"other", &sig, Some(alg)).is_err());
            // Another key of the same kind does not verify it.
            let other = match &public {
                PublicKey::P256(_) => PrivateKey::generate(KeyKind::P256).unwrap().public_key(),
                PublicKey::P384(_) => PrivateKey::generate(KeyKind::P384).unwrap().public_key(),
                PublicKey::Rsa(_) => keys[0].public_key(), // a P-256 key: a parse error
            };
            assert!(other.verify(msg, &sig, None).is_err());
            signed += 1;
        }
        assert_eq!(key.default_algorithm(), public.default_algorithm());
    }
    assert_eq!(signed, 1 + 2 + 6);
}

#[test]
fn ecdsa_signatures_are_der_and_raw_r_s_is_refused() {
    let key = PrivateKey::generate(KeyKind::P256).unwrap();
    let sig = key.sign(b"m", Algorithm::EcdsaSha256).unwrap();
    assert_eq!(sig[0], 0x30, "DER SEQUENCE");
    let parsed = p256::ecdsa::Signature::from_der(&sig).unwrap();
    let raw = parsed.to_bytes();
    let err = key.public_key().verify(b"m", &raw, None).unwrap_err();
    assert_eq!(err.kind, BAD_SIGNATURE);
    assert!(err.message.contains("DER"), "{err}");
    // Trailing bytes after the DER SEQUENCE are refused.
    let mut trailing = sig.clone();
    trailing.push(0);
    assert!(key.public_key().verify(b"m", &trailing, None).is_err());
    assert!(key.public_key().verify(b"m", b"", None).is_err());
}

#[test]
fn rsa_pss_with_the_longest_salt_verifies_like_go_auto() {
    let key = PrivateKey::generate(KeyKind::Rsa(2048)).unwrap();
    let PrivateKey::Rsa(rsa_key) = &key else {
        unreachable!()
    };
    let digest = HashAlg::Sha256.digest(b"payload");
    let max_salt = 256 - 32 - 2;
    let sig = rsa_key
        .sign_with_rng(
            &mut rand_core::OsRng,
            rsa::Pss::new_with_salt::<Sha256>(max_salt),
            &digest,
        )
        .unwrap();
    assert_eq!(
        key.public_key().verify(b"payload", &sig, None).unwrap(),
        Algorithm::RsaPssSha256
    );
}

#[test]
fn public_keys_round_trip_through_pem_der_and_key_id() {
    for kind in [KeyKind::P256, KeyKind::P384, KeyKind::Rsa(2048)] {
        let public = PrivateKey::generate(kind).unwrap().public_key();
        let pem = public.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let der = public.to_spki_der();
        assert_eq!(PublicKey::from_pem(pem.as_bytes()).unwrap(), public);
        assert_eq!(PublicKey::from_der(&der).unwrap(), public);
        assert_eq!(PublicKey::from_bytes(&der).unwrap(), public);
        assert_eq!(PublicKey::from_bytes(pem.as_bytes()).unwrap(), public);
        // Text before the block is ignored, like Go's pem.Decode.
        let with_text = format!("a comment\n{pem}");
        assert_eq!(PublicKey::from_bytes(with_text.as_bytes()).unwrap(), public);
        assert_eq!(public.key_id(), hex::encode(Sha256::digest(&der)));
        assert_eq!(public.key_id().len(), 64);
        assert!(format!("{public:?}").contains(&public.key_id()));
    }
}

#[test]
fn key_id_is_the_sha256_of_the_spki_der_of_a_vector_key() {
    // Independent of our encoder: hash the DER exactly as it is in the PEM file.
    let pem =
        std::fs::read_to_string(data("vectors/valid/ci-01-cosign-valid-p256/key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    let key = PublicKey::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(key.key_id(), hex::encode(Sha256::digest(&der)));
    assert_eq!(key.to_spki_der(), der);
}

#[test]
fn rsa_public_key_in_pkcs1_pem_is_read() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    let key = PrivateKey::generate(KeyKind::Rsa(2048))
        .unwrap()
        .public_key();
    let PublicKey::Rsa(rsa_key) = &key else {
        unreachable!()
    };
    let pem = rsa_key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap();
    assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    assert_eq!(PublicKey::from_pem(pem.as_bytes()).unwrap(), key);
}

const ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAIqKRdcwj3tm2fJ4cMTxy44p/a3kLGCaU1A0Ys1MoSh4=
-----END PUBLIC KEY-----
";
const P521_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB3zexXL4VZiHJE/I2dZFlxDdVrZ9g
ioFbiKjjrmO0mgPiCKOtVeg0XTAMwOD5g9U50DViXlilkbOy+CKcBw2a1J8B/1fc
5TCrOl2qNiJtDmgPrCdnjeEUi84ZJqCvefoGU9lOGL5kRuLGCN1u+859oU47AxWX
S87d3uAlENcHfHS8UgA=
-----END PUBLIC KEY-----
";
const RSA1024_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQfYtk1ZVVnaky8koEmst2gj3s
9qr8QgrWiEPEAkDIsDMKbSRr3luunlytbwr+GWAC9KsbW8JK/ECUwZQKgR5JNylg
QetKdI0gPHz3aW6AeikAE/Ei6iW0aXRJB/e+oxZO0d37o+K+u0xVKGZj4L10CWI9
J2gxcIxk1LyBiauQuQIDAQAB
-----END PUBLIC KEY-----
";

#[test]
fn unsupported_keys_give_clear_bad_key_errors() {
    let check = |input: &[u8], needle: &str| {
        let err = PublicKey::from_bytes(input).unwrap_err();
        assert_eq!(err.kind, BAD_KEY, "{err}");
        assert!(err.message.contains(needle), "{needle:?} not in {err}");
    };
    check(ED25519_PEM.as_bytes(), "Ed25519");
    check(P521_PEM.as_bytes(), "P-521");
    check(RSA1024_PEM.as_bytes(), "1024 bits is too small");
    check(b"not a key", "cannot read the public key");
    check(
        b"-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
        "bad base64",
    );
    check(
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n",
        "no -----END PUBLIC KEY-----",
    );
    check(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "openssl x509",
    );
    let private = read("cosign-p256.key");
    check(&private, "private key");
    // A key type that cannot use the asked algorithm.
    let p256 = PrivateKey::generate(KeyKind::P256).unwrap().public_key();
    let err = p256
        .verify(b"m", b"sig", Some(Algorithm::RsaPssSha256))
        .unwrap_err();
    assert_eq!(err.kind, BAD_KEY);
    assert!(
        err.message.contains("cannot verify RSASSA_PSS_SHA_256"),
        "{err}"
    );
}

#[test]
fn algorithm_names_are_kms_names() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_kms_name(alg.kms_name()), Some(alg));
        assert_eq!(alg.to_string().parse::<Algorithm>().unwrap(), alg);
    }
    assert_eq!(
        "rsassa_pss_sha_256".parse::<Algorithm>().unwrap(),
        Algorithm::RsaPssSha256
    );
    let err = "SHA256".parse::<Algorithm>().unwrap_err();
    assert!(err.message.contains("ECDSA_SHA_256"), "{err}");
}

// --- private keys --------------------------------------------------------------------------

fn pass_file(name: &str) -> impl FnOnce() -> Result<Zeroizing<Vec<u8>>> {
    let source = PassphraseSource::File(data(name));
    move || source.read()
}

#[test]
fn cosign_key_from_the_reference_python_generator_decrypts() {
    // shared/tests/data/README.md says how these were made.
    let key =
        PrivateKey::from_pem(&read("cosign-p256.key"), pass_file("cosign-p256.pass")).unwrap();
    let expected = PublicKey::from_pem(&read("cosign-p256.pub")).unwrap();
    assert_eq!(key.public_key(), expected);
    let sig = key.sign(b"hello", Algorithm::EcdsaSha256).unwrap();
    expected.verify(b"hello", &sig, None).unwrap();
}

#[test]
fn skopeo_generated_key_with_n_65536_decrypts() {
    let pem = read("skopeo-p256.private");
    let key = PrivateKey::from_pem(&pem, pass_file("skopeo-p256.pass")).unwrap();
    assert_eq!(
        key.public_key(),
        PublicKey::from_pem(&read("skopeo-p256.pub")).unwrap()
    );
}

#[test]
fn wrong_passphrase_is_a_clear_error_without_the_passphrase() {
    let err = PrivateKey::from_pem(&read("cosign-p256.key"), || {
        Ok(Zeroizing::new(b"not-the-passphrase".to_vec()))
    })
    .unwrap_err();
    assert_eq!(err.kind, BAD_KEY);
    assert!(err.message.contains("wrong passphrase"), "{err}");
    assert!(!err.message.contains("not-the-passphrase"));
    // The passphrase with its newline (the file's raw bytes) is wrong too: one newline is cut.
    let err = PrivateKey::from_pem(&read("cosign-p256.key"), || {
        Ok(Zeroizing::new(read("cosign-p256.pass")))
    })
    .unwrap_err();
    assert!(err.message.contains("wrong passphrase"), "{err}");
}

#[test]
fn passphrase_from_an_unset_env_var_names_the_variable() {
    let source = PassphraseSource::Env("SIGTRAIL_TEST_SURELY_UNSET_VAR".into());
    let err = PrivateKey::from_pem(&read("cosign-p256.key"), || source.read()).unwrap_err();
    assert_eq!(err.kind, BAD_KEY);
    assert!(
        err.message.contains("SIGTRAIL_TEST_SURELY_UNSET_VAR"),
        "{err}"
    );
}

#[test]
fn cosign_format_round_trips_for_every_key_kind() {
    for kind in [KeyKind::P256, KeyKind::P384, KeyKind::Rsa(2048)] {
        let key = PrivateKey::generate(kind).unwrap();
        let pem = key.to_cosign_pem(b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let back =
            PrivateKey::from_pem(pem.as_bytes(), || Ok(Zeroizing::new(b"pw".to_vec()))).unwrap();
        assert_eq!(back.public_key(), key.public_key());
    }
}

#[test]
fn cosign_key_with_hostile_scrypt_parameters_is_refused() {
    let doc = |n: u64, r: u32, p: u32| {
        let json = format!(
            r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"AAAA"}},"cipher":{{"name":"nacl/secretbox","nonce":"AAAA"}},"ciphertext":"AAAA"}}"#
        );
        pem_encode("ENCRYPTED COSIGN PRIVATE KEY", json.as_bytes())
    };
    let pw = || Ok(Zeroizing::new(b"pw".to_vec()));
    for (n, r, p, needle) in [
        (1u64 << 30, 8, 1, "MiB"),
        (1000, 8, 1, "bad scrypt parameters"),
        (1024, 8, 0, "bad scrypt parameters"),
        (1024, 8, 1, "nonce is 3 bytes"),
    ] {
        let err = PrivateKey::from_pem(doc(n, r, p).as_bytes(), pw).unwrap_err();
        assert_eq!(err.kind, BAD_KEY);
        assert!(err.message.contains(needle), "{needle:?} not in {err}");
    }
    let bad_json = pem_encode("ENCRYPTED SIGSTORE PRIVATE KEY", b"{");
    let err = PrivateKey::from_pem(bad_json.as_bytes(), pw).unwrap_err();
    assert!(err.message.contains("not valid JSON"), "{err}");
}

#[test]
fn plain_private_keys_in_pkcs8_sec1_and_pkcs1_pem() {
    use pkcs8::EncodePrivateKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let lf = pkcs8::LineEnding::LF;

    let p256 = p256::SecretKey::random(&mut rand_core::OsRng);
    let p384 = p384::SecretKey::random(&mut rand_core::OsRng);
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let cases: Vec<(Zeroizing<String>, PublicKey)> = vec![
        (
            p256.to_pkcs8_pem(lf).unwrap(),
            PublicKey::P256(p256.public_key().into()),
        ),
        (
            p256.to_sec1_pem(lf).unwrap(),
            PublicKey::P256(p256.public_key().into()),
        ),
        (
            p384.to_pkcs8_pem(lf).unwrap(),
            PublicKey::P384(p384.public_key().into()),
        ),
        (
            p384.to_sec1_pem(lf).unwrap(),
            PublicKey::P384(p384.public_key().into()),
        ),
        (
            rsa_key.to_pkcs8_pem(lf).unwrap(),
            PublicKey::Rsa(rsa_key.to_public_key()),
        ),
        (
            rsa_key.to_pkcs1_pem(lf).unwrap(),
            PublicKey::Rsa(rsa_key.to_public_key()),
        ),
    ];
    for (pem, public) in cases {
        let key = PrivateKey::from_pem(pem.as_bytes(), no_passphrase)
            .unwrap_or_else(|e| panic!("{}: {e}", pem.lines().next().unwrap()));
        assert_eq!(key.public_key(), public);
        // Debug shows the public key only.
        let debug = format!("{key:?}");
        assert!(debug.contains(&public.key_id()), "{debug}");
        assert!(!debug.contains("secret") && debug.len() < 200, "{debug}");
    }
    let err = PrivateKey::from_pem(read("cosign-p256.pub").as_slice(), no_passphrase).unwrap_err();
    assert!(err.message.contains("not a private key"), "{err}");
}

#[test]
fn passphrase_file_loses_one_trailing_newline_only() {
    let dir = tempfile::tempdir().unwrap();
    for (content, expected) in [
        (&b"pw\n"[..], &b"pw"[..]),
        (b"pw\r\n", b"pw"),
        (b"pw\n\n", b"pw\n"),
        (b"pw", b"pw"),
        (b"", b""),
    ] {
        let path = dir.path().join("pass");
        std::fs::write(&path, content).unwrap();
        assert_eq!(&PassphraseSource::File(path).read().unwrap()[..], expected);
    }
}
