//! `bench-trail RECORDS TRAIL_FOR`: the `trail-for` part of `cargo xtask bench`.
//!
//! Makes one real signing run against the AWS emulator (STS `AssumeRoleWithWebIdentity`, ECR
//! `PutImage` of an image, KMS `Sign`, `PutImage` of its `.sig` tag) and writes its CloudTrail
//! records (see [`sigtrail_tests::trail`]) together with RECORDS unrelated ones, as gzip log
//! files of 1,000 records in the CloudTrail layout. Then times the `trail-for` binary given
//! (the release build) over that directory for the image, checks that it found the signing
//! events (verdict `trusted`, the `Sign` request id), and prints one line with records/s.
//!
//! Needs the environment of `cargo xtask env up` (xtask bench sets it).

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use sigtrail_tests::trail::{
    image_manifest, noise, payload, sha256, sig_tag, signature_manifest, write_gz, Aws, Trail,
    ACCOUNT, ECR_HOST, REGION,
};
use sigtrail_tests::{kms_create_key, unique};

const SUBJECT: &str = "repo:acme/app:ref:refs/heads/main";
const PER_FILE: usize = 1000;

fn main() -> ExitCode {
    match bench() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-trail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [records, trail_for] = args.as_slice() else {
        bail!("usage: bench-trail RECORDS TRAIL_FOR_BINARY");
    };
    let records: usize = records.parse().context("RECORDS is a number")?;
    ensure!(
        records >= PER_FILE,
        "RECORDS is at least {PER_FILE} (one log file)"
    );

    // One signing run, as a CI job makes it, with its own CloudTrail records.
    let mut aws = Aws::start();
    let key = kms_create_key("ECC_NIST_P256", &unique("alias/bench-trail"));
    let repo = unique("bench-trail-app");
    let mut trail = Trail::default();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("ci"));
    let (session, _) = trail.assume(&mut aws, &role, SUBJECT);
    let push = trail.put_image(
        &mut aws,
        &session,
        &repo,
        "v1",
        &image_manifest(&unique("content")),
    );
    let digest = push.answer["digest"]
        .as_str()
        .context("PutImage digest")?
        .to_string();
    let p = payload(&format!("{ECR_HOST}/{repo}"), &digest, &[]);
    let sign = trail.sign(&mut aws, &session, &key, &sha256(&p));
    let sig = sign.answer["signature"]
        .as_str()
        .context("Sign signature")?
        .to_string();
    trail.put_image(
        &mut aws,
        &session,
        &repo,
        &sig_tag(&digest),
        &signature_manifest(&[(p, sig)]),
    );

    // The trail: the run's records, and RECORDS unrelated ones in files of PER_FILE.
    let dir = tempfile::tempdir()?;
    let files = trail.write(dir.path()).len() + records.div_ceil(PER_FILE);
    let day = dir
        .path()
        .join(format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/2025/11/10"));
    for f in 0..records.div_ceil(PER_FILE) {
        let n = PER_FILE.min(records - f * PER_FILE);
        write_gz(
            &day.join(format!(
                "{ACCOUNT}_CloudTrail_{REGION}_20251110T{f:04}Z_noise.json.gz"
            )),
            &json!({ "Records": noise(n, f) }),
        );
    }
    let total = records + trail.records.len();

    let image = json!({"image": format!("{ECR_HOST}/{repo}:v1"), "registry": ECR_HOST,
                       "repository": repo, "digest": digest});
    let src = dir.path().to_str().context("temp dir path")?;
    let start = Instant::now();
    let mut child = Command::new(trail_for)
        .args([
            "-q",
            "--cloudtrail",
            src,
            "--key",
            &key,
            "--no-describe-images",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {trail_for}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{image}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let secs = start.elapsed().as_secs_f64();

    let text = String::from_utf8_lossy(&out.stdout);
    let rec: Value = serde_json::from_str(text.trim()).context("trail-for's output record")?;
    let t = &rec["trail"];
    ensure!(
        out.status.success() && t["verdict"] == "trusted",
        "trail-for did not find the run: {rec}"
    );
    ensure!(
        t["signatures"][0]["evidence"]["sign_request_id"] == sign.request_id.as_str()
            && t["signatures"][0]["signed_at"] == sign.time.as_str(),
        "trail-for matched the wrong Sign event: {rec}"
    );
    let searched = t["searched"]["records"].as_u64().unwrap_or(0);
    ensure!(
        searched as usize >= total,
        "trail-for searched {searched} of {total} records: {}",
        t["searched"]
    );
    Ok(format!(
        "trail-for over {searched} CloudTrail records ({files} gzip files)  {:.0} records/s \
         ({secs:.2} s; found the image push, the Sign and the signature push: trusted)",
        searched as f64 / secs
    ))
}
