//! `check-sig` with an `awskms://` key against the AWS emulator: one `GetPublicKey`, no `Sign`
//! or `Verify`, and the signatures kms-sign made with that key verify.

use serde_json::Value;
use sigtrail_tests::{kms_calls, kms_create_key, run, tool, unique};

#[test]
fn kms_key_verifies_with_one_lookup_and_no_sign_or_verify() {
    let alias = format!("alias/{}", unique("verify"));
    kms_create_key("ECC_NIST_P256", &alias);
    let key = format!("awskms:///{alias}");
    let digest = "sha256:64d203b18f73bcc63e32b4f9c381463ccc1dae4cc598da7ff5f67923015f54d4";
    let input: String = (0..3)
        .map(|i| format!("{{\"registry\":\"r.example\",\"repository\":\"app{i}\",\"digest\":\"{digest}\"}}\n"))
        .collect();
    let payloads = run(&mut tool("payload-for"), input.as_bytes());
    let signed = run(tool("kms-sign").args(["--key", &key]), &payloads.stdout);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let before = kms_calls(&alias);

    let out = run(
        tool("check-sig").args(["--offline", "--key", &key]),
        &signed.stdout,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert!(
        recs.iter().all(|r| r["verification"]["verified"] == true),
        "{recs:?}"
    );

    let after = kms_calls(&alias);
    let delta = |action: &str| after.get(action).unwrap_or(&0) - before.get(action).unwrap_or(&0);
    assert_eq!(delta("GetPublicKey"), 1, "{before:?} -> {after:?}");
    assert_eq!(
        delta("Sign") + delta("Verify"),
        0,
        "{before:?} -> {after:?}"
    );

    // A record signed by another key does not verify with this one.
    let other = format!("alias/{}", unique("other"));
    kms_create_key("ECC_NIST_P256", &other);
    let resigned = run(
        tool("kms-sign").args(["--key", &format!("awskms:///{other}")]),
        &payloads.stdout,
    );
    let out = run(
        tool("check-sig").args(["--offline", "--key", &key]),
        &resigned.stdout,
    );
    assert_eq!(out.status.code(), Some(1));
}
