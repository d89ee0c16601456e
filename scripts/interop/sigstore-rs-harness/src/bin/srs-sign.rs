//! Sign an image with sigstore-rs and a cosign-format encrypted key: the independent signer.
//!
//! usage: srs-sign IMAGE KEY PASSFILE [--http] [--user U --pass P]
//!
//! Pushes `sha256-<hex>.sig` in the image's repository. sigstore-rs REPLACES an existing
//! signature manifest (cosign and skopeo append), which the tests must keep in mind.

use sigstore::cosign::constraint::{Constraint, PrivateKeySigner};
use sigstore::cosign::{CosignCapabilities, SignatureLayer};
use sigstore::crypto::SigningScheme;
use sigstore::registry::OciReference;
use srs_harness::{die, Common};
use std::str::FromStr;
use zeroize::Zeroizing;

const USAGE: &str = "usage: srs-sign IMAGE KEY PASSFILE [--http] [--user U --pass P]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let opts = Common::parse(USAGE);
    let [image, key, passfile] = opts.positional.as_slice() else {
        die(USAGE)
    };
    let image = OciReference::from_str(image)?;
    let key = Zeroizing::new(std::fs::read(key)?);
    let mut pass = Zeroizing::new(std::fs::read(passfile)?);
    while pass.last() == Some(&b'\n') {
        pass.pop();
    }
    let mut client = opts.client()?;

    let (sig_ref, digest) = client.triangulate(&image, &opts.auth).await?;
    let mut layer = SignatureLayer::new_unsigned(&image, &digest)?;
    let signer = PrivateKeySigner::new_with_raw(key, pass, &SigningScheme::ECDSA_P256_SHA256_ASN1)?;
    signer.add_constraint(&mut layer)?;
    client
        .push_signature(None, &opts.auth, &sig_ref, vec![layer])
        .await?;
    println!("signed {digest}, pushed {sig_ref}");
    Ok(())
}
