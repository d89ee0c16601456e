//! Verify cosign key-based signatures with sigstore-rs (no Rekor): the independent verifier.
//!
//! usage: srs-verify IMAGE PUBKEY.pem [--http] [--user U --pass P]
//!        srs-verify --each FILE PUBKEY.pem [--http] [--user U --pass P]
//!
//! Exit 0 when every image has a signature layer that verifies with the key, 1 otherwise.
//! `--each` verifies the images listed in FILE (one reference per line) in one process with one
//! client, printing `OK IMAGE` or `FAIL IMAGE: reason` per line; it is the sequential baseline
//! of the benchmark.

use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::cosign::{Client, CosignCapabilities};
use sigstore::registry::{Auth, OciReference};
use srs_harness::{die, Common};
use std::str::FromStr;

const USAGE: &str = "usage: srs-verify IMAGE PUBKEY.pem [--http] [--user U --pass P]\n       srs-verify --each FILE PUBKEY.pem [--http] [--user U --pass P]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let opts = Common::parse(USAGE);
    let (images, key_path, verbose) = match (&opts.each, opts.positional.as_slice()) {
        (None, [image, key]) => (vec![image.clone()], key, true),
        (Some(file), [key]) => {
            let list = std::fs::read_to_string(file)?;
            let images = list.lines().map(str::trim).filter(|l| !l.is_empty());
            (images.map(String::from).collect(), key, false)
        }
        _ => die(USAGE),
    };
    let key = std::fs::read(key_path)?;
    let mut client = opts.client()?;

    let mut failed = 0usize;
    for image in &images {
        match verify(&mut client, &opts.auth, image, &key, verbose).await {
            Ok(()) => println!("OK {image}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {image}: {e:#}");
            }
        }
    }
    if images.len() > 1 {
        eprintln!("{} verified, {failed} failed", images.len() - failed);
    }
    std::process::exit(if failed == 0 { 0 } else { 1 })
}

async fn verify(
    client: &mut Client,
    auth: &Auth,
    image: &str,
    key: &[u8],
    verbose: bool,
) -> anyhow::Result<()> {
    let reference = OciReference::from_str(image)?;
    let (sig_ref, digest) = client.triangulate(&reference, auth).await?;
    let layers = client.trusted_signature_layers(auth, &reference).await?;
    if verbose {
        eprintln!(
            "image digest {digest}, signature {sig_ref}, {} layer(s)",
            layers.len()
        );
        for l in &layers {
            let c = &l.simple_signing.critical;
            eprintln!(
                "  layer {} docker-reference={} manifest-digest={}",
                l.oci_digest, c.identity.docker_reference, c.image.docker_manifest_digest
            );
        }
    }
    let verifier = PublicKeyVerifier::try_from(key)?;
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    sigstore::cosign::verify_constraints(&layers, constraints.iter()).map_err(|e| {
        anyhow::anyhow!(
            "{} unsatisfied constraint(s)",
            e.unsatisfied_constraints.len()
        )
    })
}
