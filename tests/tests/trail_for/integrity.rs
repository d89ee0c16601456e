//! The trail's integrity end to end: a signing run's log files sealed with CloudTrail's digest
//! chain (`sigtrail_tests::digests`, written as CloudTrail writes it), then every way someone
//! who can write to the trail bucket could tamper with it, each with the integrity state and
//! verdict it must give. The attack itself (a backdated `Sign` in a forged file, the real one
//! deleted) is shown to work with `--integrity off`, so the test can fail.

use super::*;

/// A signing run whose records are one log file each, after three filler files delivered in
/// three earlier hours, all sealed: four hourly digests or more, the newest listing the run.
struct Sealed {
    run: Run,
    dir: tempfile::TempDir,
    /// Log file (relative path) of each record, by event id
    file_of: std::collections::HashMap<String, String>,
    digests: Vec<digests::Written>,
    fillers: Vec<String>,
}

fn minutes_ago(m: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(m))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn sealed(aws: &mut Aws, alias: &str) -> Sealed {
    let run = signing_run(aws, &unique(alias));
    let dir = tempfile::tempdir().unwrap();
    let mut fillers = Vec::new();
    for (n, m) in [390, 270, 150].into_iter().enumerate() {
        let mut r = noise(1, 90 + n)[0].clone();
        r["eventTime"] = minutes_ago(m).into();
        fillers.extend(write_log_files(dir.path(), &[r], &format!("filler{n}-")));
    }
    let mut file_of = std::collections::HashMap::new();
    for (i, r) in run.trail.records.iter().enumerate() {
        let rel = write_log_files(dir.path(), std::slice::from_ref(r), &format!("rec{i}-"));
        file_of.insert(r["eventID"].as_str().unwrap().to_string(), rel[0].clone());
    }
    let digests = digests::seal(dir.path(), digests::BUCKET);
    assert!(digests.len() >= 4, "{}", digests.len());
    Sealed {
        run,
        dir,
        file_of,
        digests,
        fillers,
    }
}

impl Sealed {
    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }
    fn file_of(&self, call: &Call) -> String {
        self.file_of[&call.event_id].clone()
    }
    /// A copy of the sealed trail to tamper with.
    fn copy(&self) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for rel in digests::files(self.dir.path()) {
            for name in [rel.clone(), format!("{rel}.sig")] {
                let from = self.path(&name);
                if from.exists() {
                    let dest = to.path().join(&name);
                    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                    std::fs::copy(from, dest).unwrap();
                }
            }
        }
        to
    }
    fn verdict(&self, dir: &Path, extra: &[&str]) -> (Value, Output) {
        let d = dir.to_str().unwrap();
        let mut args = vec![
            "--cloudtrail",
            d,
            "--key",
            &self.run.key,
            "--no-describe-images",
        ];
        args.extend_from_slice(extra);
        let (out, o) = trail_for(&args, &self.run.image());
        assert_eq!(out.len(), 1, "{}", stderr(&o));
        (out[0]["trail"].clone(), o)
    }
}

/// The log files under `from` (not its digests) in a new root, sealed again as delivered to
/// `bucket` (digests name their bucket, so each bucket needs its own chain).
fn resealed(from: &Path, bucket: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for rel in digests::files(from) {
        if !rel.contains("/CloudTrail-Digest/") {
            let dest = root.path().join(&rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(from.join(&rel), dest).unwrap();
        }
    }
    digests::seal(root.path(), bucket);
    root
}

/// The records of a log file, edited, written back (gzip) in place.
fn edit_log(path: &Path, edit: impl FnOnce(&mut Vec<Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let mut plain = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
        .unwrap();
    let mut doc: Value = serde_json::from_str(&plain).unwrap();
    let mut records = doc["Records"].as_array().unwrap().clone();
    edit(&mut records);
    doc["Records"] = records.into();
    write_gz(path, &doc);
}

fn state_of<'a>(t: &'a Value, rel: &str) -> &'a Value {
    let name = rel.rsplit('/').next().unwrap();
    t["integrity"]["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"].as_str().unwrap().ends_with(name))
        .map(|e| &e["state"])
        .unwrap_or(&Value::Null)
}

fn tampering(t: &Value) -> String {
    t["integrity"]["tampering"].to_string()
}

#[test]
fn every_way_of_tampering_with_the_trail_bucket_is_caught() {
    let mut aws = Aws::start();
    let s = sealed(&mut aws, "alias/trail-int");
    let run = &s.run;
    let compromised = ["--compromised-at", run.compromise.as_str()];

    // Untampered: every piece of evidence validated, trusted; after the leak, untrusted.
    let (t, o) = s.verdict(s.dir.path(), &[]);
    assert_eq!(t["verdict"], "trusted", "{t:#}");
    assert!(o.status.success());
    assert_eq!(t["integrity"]["state"], "validated", "{:#}", t["integrity"]);
    assert_eq!(t["integrity"].get("tampering"), None);
    assert_eq!(state_of(&t, &s.file_of(&run.signs[0])), "validated");
    let (t, _) = s.verdict(s.dir.path(), &compromised);
    assert_eq!(t["verdict"], "untrusted");

    // A log file edited: one event's time moved by a second.
    let dir = s.copy();
    let rel = s.file_of(&run.signs[0]);
    edit_log(&dir.path().join(&rel), |recs| {
        let t = chrono::DateTime::parse_from_rfc3339(&run.signs[0].time).unwrap()
            - chrono::Duration::seconds(1);
        recs[0]["eventTime"] = t.format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    });
    let (t, o) = s.verdict(dir.path(), &[]);
    assert_eq!(state_of(&t, &rel), "invalid", "{:#}", t["integrity"]);
    assert!(tampering(&t).contains("edited"), "{}", tampering(&t));
    assert_eq!(t["verdict"], "untrusted", "{t:#}");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("TAMPERING"), "{}", stderr(&o));

    // A log file deleted: the one with the signature made after the leak.
    let dir = s.copy();
    let rel = s.file_of(&run.signs[1]);
    std::fs::remove_file(dir.path().join(&rel)).unwrap();
    let (t, _) = s.verdict(dir.path(), &compromised);
    let name = rel.rsplit('/').next().unwrap();
    assert!(
        tampering(&t).contains(name) && tampering(&t).contains("not found"),
        "{}",
        tampering(&t)
    );
    assert_ne!(t["verdict"], "trusted", "{t:#}");

    // The attack: the real post-leak Sign deleted, and a forged log file with the same Sign
    // backdated to before the leak. Without the digest chain it works ...
    let dir = s.copy();
    let real = s.file_of(&run.signs[1]);
    let record = run
        .trail
        .records
        .iter()
        .find(|r| r["eventID"] == run.signs[1].event_id.as_str())
        .unwrap()
        .clone();
    std::fs::remove_file(dir.path().join(&real)).unwrap();
    let mut forged = record.clone();
    forged["eventTime"] = run.signs[0].time.clone().into();
    forged["eventID"] = sigtrail_tests::trail::event_id().into();
    let forged_rel = write_log_files(dir.path(), &[forged], "forged")[0].clone();
    let (t, o) = s.verdict(
        dir.path(),
        &["--integrity", "off", compromised[0], compromised[1]],
    );
    assert_eq!(
        t["verdict"], "trusted",
        "without validation the forgery makes the post-leak image trusted: {t:#}"
    );
    assert!(o.status.success());
    // ... and with it (the default) the forged file and the deleted one are named.
    let (t, o) = s.verdict(dir.path(), &compromised);
    assert_eq!(t["verdict"], "untrusted", "{t:#}");
    assert_eq!(state_of(&t, &forged_rel), "invalid", "{:#}", t["integrity"]);
    let forged_name = forged_rel.rsplit('/').next().unwrap();
    let real_name = real.rsplit('/').next().unwrap();
    assert!(tampering(&t).contains(forged_name), "{}", tampering(&t));
    assert!(tampering(&t).contains(real_name), "{}", tampering(&t));
    assert!(
        t["reasons"][0].as_str().unwrap().contains("tampered"),
        "{}",
        t["reasons"]
    );
    assert_eq!(o.status.code(), Some(1));
    // Even --integrity advisory does not accept invalid evidence.
    let (t, _) = s.verdict(
        dir.path(),
        &["--integrity", "advisory", compromised[0], compromised[1]],
    );
    assert_eq!(t["verdict"], "untrusted", "{t:#}");

    // A digest deleted: the chain names it, so the span it covered is reported, as a time span.
    let dir = s.copy();
    let middle = &s.digests[1];
    std::fs::remove_file(dir.path().join(&middle.rel)).unwrap();
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains(&middle.rel) && tampering(&t).contains("not there"),
        "{}",
        tampering(&t)
    );
    let gaps = t["integrity"]["gaps"].as_array().unwrap();
    assert!(
        gaps.iter()
            .any(|g| g["state"] == "invalid" && g["from"].is_string() && g["to"].is_string()),
        "{gaps:#?}"
    );
    assert_eq!(t["verdict"], "untrusted", "{t:#}");

    // A digest edited (its own signature kept): it no longer verifies.
    let dir = s.copy();
    let newest = s.digests.last().unwrap();
    digests::rewrite(dir.path(), newest, digests::key(), |d| {
        d["newestEventTime"] = "2000-01-01T00:00:00Z".into()
    });
    std::fs::write(
        dir.path().join(format!("{}.sig", newest.rel)),
        &newest.signature,
    )
    .unwrap();
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains("does not verify"),
        "{}",
        tampering(&t)
    );
    assert_eq!(state_of(&t, &s.file_of(&run.signs[0])), "invalid");
    assert_eq!(t["verdict"], "untrusted");

    // A digest re-signed with another key, listing a forged file: the fingerprint names
    // CloudTrail's key, which did not sign it.
    let dir = s.copy();
    let attacker = digests::CloudTrailKey::generate();
    let extra = write_log_files(dir.path(), std::slice::from_ref(&record), "extra")[0].clone();
    let extra_hash = digests::sha256_of_gz(&dir.path().join(&extra));
    digests::rewrite(dir.path(), newest, &attacker, |d| {
        d["logFiles"].as_array_mut().unwrap().push(json!({
            "s3Bucket": digests::BUCKET, "s3Object": extra, "hashValue": extra_hash,
            "hashAlgorithm": "SHA-256"}));
    });
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains("does not verify"),
        "{}",
        tampering(&t)
    );
    assert_eq!(t["verdict"], "untrusted");
    // ... or naming the attacker's own key: not one of CloudTrail's.
    let dir = s.copy();
    digests::rewrite(dir.path(), newest, &attacker, |d| {
        d["digestPublicKeyFingerprint"] = attacker.fingerprint.clone().into();
    });
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains("not among CloudTrail's public keys"),
        "{}",
        tampering(&t)
    );
    assert_eq!(t["verdict"], "untrusted");

    // A chain spliced from another trail's digests (same key, same bucket): the digest sits
    // where another trail's should, and the next one does not vouch for it.
    let dir = s.copy();
    let other = tempfile::tempdir().unwrap();
    for f in &s.fillers {
        let dest = other.path().join(f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(s.path(f), dest).unwrap();
    }
    let theirs = digests::seal_with(other.path(), digests::BUCKET, digests::key(), "other-trail");
    std::fs::copy(
        other.path().join(&theirs[1].rel),
        dir.path().join(&s.digests[1].rel),
    )
    .unwrap();
    std::fs::copy(
        other.path().join(format!("{}.sig", theirs[1].rel)),
        dir.path().join(format!("{}.sig", s.digests[1].rel)),
    )
    .unwrap();
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains("moved or copied"),
        "{}",
        tampering(&t)
    );
    assert_eq!(t["verdict"], "untrusted");

    // A log file copied into another folder of the trail: listed, but not there.
    let dir = s.copy();
    let rel = s.file_of(&run.signs[0]);
    let moved = rel.replace(
        "/CloudTrail/us-east-1/",
        "/CloudTrail/us-east-1/2020/01/01/x/",
    );
    std::fs::create_dir_all(dir.path().join(&moved).parent().unwrap()).unwrap();
    std::fs::copy(dir.path().join(&rel), dir.path().join(&moved)).unwrap();
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains("moved or copied"),
        "{}",
        tampering(&t)
    );
    assert_eq!(t["verdict"], "untrusted");

    // Files newer than the newest digest (its digest not written yet): pending, wait and re-run.
    let dir = s.copy();
    std::fs::remove_file(dir.path().join(&newest.rel)).unwrap();
    let (t, o) = s.verdict(dir.path(), &[]);
    assert_eq!(t["verdict"], "pending", "{t:#}");
    assert_eq!(t["integrity"]["state"], "pending");
    assert!(
        t["reasons"][0].as_str().unwrap().contains("run again"),
        "{}",
        t["reasons"]
    );
    assert_eq!(o.status.code(), Some(1));

    // The newest digests deleted: what was delivered more than two hours after what is left
    // cannot be pending any more; nothing vouches for it.
    let dir = s.copy();
    for d in &s.digests[2..] {
        std::fs::remove_file(dir.path().join(&d.rel)).unwrap();
    }
    let (t, _) = s.verdict(dir.path(), &[]);
    assert!(
        tampering(&t).contains(&s.fillers[2]) && tampering(&t).contains("missing"),
        "{}",
        tampering(&t)
    );
    assert_eq!(t["verdict"], "untrusted", "{t:#}");

    // A copy without the digests' signatures: nothing vouches for the newest, so nothing is
    // validated; strict leaves it unexplained, advisory trusts it and says so.
    let dir = s.copy();
    for d in &s.digests {
        std::fs::remove_file(dir.path().join(format!("{}.sig", d.rel))).unwrap();
    }
    let (t, _) = s.verdict(dir.path(), &[]);
    assert_eq!(t["verdict"], "unexplained", "{t:#}");
    assert_eq!(t["integrity"]["state"], "unvalidated");
    let (t, o) = s.verdict(dir.path(), &["--integrity", "advisory"]);
    assert_eq!(t["verdict"], "trusted", "{t:#}");
    assert_eq!(t["integrity"]["advisory_trust"], true);
    assert!(
        t["reasons"][0].as_str().unwrap().contains("UNVALIDATED"),
        "{}",
        t["reasons"]
    );
    assert!(stderr(&o).contains("ADVISORY"), "{}", stderr(&o));
}

/// An organization trail's layout (`AWSLogs/o-ID/ACCT/...`) validates end to end; from the
/// emulator's S3, with keys from the ListPublicKeys stand-in and the attack caught there too.
#[test]
fn organization_layout_and_s3_validate_and_the_attack_is_caught_in_s3() {
    let mut aws = Aws::start();
    let s = sealed(&mut aws, "alias/trail-org");
    let run = &s.run;
    // The same files under an organization id, sealed again as an organization trail is.
    let org = tempfile::tempdir().unwrap();
    for rel in digests::files(s.dir.path()) {
        if rel.contains("/CloudTrail-Digest/") {
            continue;
        }
        let dest = org
            .path()
            .join(rel.replacen("AWSLogs/", "AWSLogs/o-a1b2c3d4e5/", 1));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(s.path(&rel), dest).unwrap();
    }
    let sealed_org = digests::seal(org.path(), digests::BUCKET);
    assert!(
        sealed_org[0].rel.starts_with("AWSLogs/o-a1b2c3d4e5/"),
        "{}",
        sealed_org[0].rel
    );
    let (t, o) = s.verdict(org.path(), &[]);
    assert_eq!(t["verdict"], "trusted", "{t:#}");
    assert_eq!(t["integrity"]["state"], "validated");
    assert!(o.status.success());

    // In S3 (signatures as object metadata, keys from ListPublicKeys).
    let bucket = unique("trail-int").to_lowercase();
    let root = resealed(s.dir.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let src = format!("s3://{bucket}/AWSLogs/");
    let args = [
        "--cloudtrail",
        src.as_str(),
        "--key",
        &run.key,
        "--no-describe-images",
    ];
    let (out, o) = trail_for(&args, &run.image());
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "trusted", "{t:#} {}", stderr(&o));
    let evidence = t["integrity"]["evidence"].as_array().unwrap();
    assert!(
        evidence.iter().all(|e| e["state"] == "validated"),
        "{evidence:#?}"
    );
    // No Object Lock on this bucket: the evidence can be deleted, and it says so.
    assert_eq!(evidence[0]["worm"]["locked"], false, "{:#}", evidence[0]);
    assert!(
        evidence[0]["worm"]["meaning"]
            .as_str()
            .unwrap()
            .contains("no Object Lock"),
        "{:#}",
        evidence[0]
    );

    // The whole trail (log files and digests) copied to another prefix of the bucket: every
    // digest says it was delivered elsewhere.
    let copy_root = tempfile::tempdir().unwrap();
    for rel in digests::files(root.path()) {
        for name in [rel.clone(), format!("{rel}.sig")] {
            if root.path().join(&name).exists() {
                let dest = copy_root.path().join("copy").join(&name);
                std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                std::fs::copy(root.path().join(&name), dest).unwrap();
            }
        }
    }
    digests::upload(&mut aws, copy_root.path(), &bucket);
    let copy_src = format!("s3://{bucket}/copy/");
    let (out, _) = trail_for(
        &[
            "--cloudtrail",
            &copy_src,
            "--key",
            &run.key,
            "--no-describe-images",
        ],
        &run.image(),
    );
    let t = &out[0]["trail"];
    assert!(tampering(t).contains("moved or copied"), "{}", tampering(t));
    assert_eq!(t["verdict"], "untrusted", "{t:#}");

    // The same trail in an Object Lock bucket, every object under COMPLIANCE retention: the
    // exact versions hashed are named, and they cannot be deleted.
    let locked = unique("trail-worm").to_lowercase();
    let until = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let worm_root = resealed(root.path(), &locked);
    digests::upload_locked(
        &mut aws,
        worm_root.path(),
        &locked,
        Some(json!({"mode": "COMPLIANCE", "until": until})),
    );
    let worm_src = format!("s3://{locked}/AWSLogs/");
    let (out, o) = trail_for(
        &[
            "--cloudtrail",
            &worm_src,
            "--key",
            &run.key,
            "--no-describe-images",
        ],
        &run.image(),
    );
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "trusted", "{t:#} {}", stderr(&o));
    for e in t["integrity"]["evidence"].as_array().unwrap() {
        assert_eq!(e["worm"]["locked"], true, "{e:#}");
        assert_eq!(e["worm"]["mode"], "COMPLIANCE", "{e:#}");
        assert!(
            e["version_id"].is_string(),
            "the version hashed is named: {e:#}"
        );
    }

    // The attack in S3: a forged log file with a backdated Sign.
    let mut forged = run
        .trail
        .records
        .iter()
        .find(|r| r["eventID"] == run.signs[1].event_id.as_str())
        .unwrap()
        .clone();
    forged["eventTime"] = run.signs[0].time.clone().into();
    forged["eventID"] = sigtrail_tests::trail::event_id().into();
    let staging = tempfile::tempdir().unwrap();
    let rel = write_log_files(staging.path(), &[forged], "forged")[0].clone();
    aws.call(
        json!({"op": "s3_put", "bucket": bucket, "key": rel, "path": staging.path().join(&rel)}),
    );
    let (out, _) = trail_for(
        &[&args[..], &["--compromised-at", &run.compromise]].concat(),
        &run.image(),
    );
    let t = &out[0]["trail"];
    assert_eq!(t["verdict"], "untrusted", "{t:#}");
    assert!(
        tampering(t).contains(rel.rsplit('/').next().unwrap()),
        "{}",
        tampering(t)
    );
}

/// trail-for's checks against aws-cli's own `aws cloudtrail validate-logs` (aws-cli 1.46.3 in
/// the test venv, run against the emulator: S3 for the files, the ListPublicKeys stand-in for
/// the key): over the same trail in S3, one log file edited and one deleted, both find the same
/// files valid and the same ones invalid. trail-for is stricter in one place: a forged file no
/// digest lists is invisible to validate-logs (it only reads what digests list).
#[test]
fn the_same_files_are_valid_and_invalid_as_for_aws_cloudtrail_validate_logs() {
    let mut aws = Aws::start();
    let s = sealed(&mut aws, "alias/trail-cli");
    let run = &s.run;
    let bucket = unique("trail-cli").to_lowercase();
    let root = resealed(s.dir.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let trail_arn = aws
        .call(json!({"op": "create_trail", "name": digests::TRAIL, "bucket": bucket}))["arn"]
        .as_str()
        .unwrap()
        .to_string();
    // Tamper: edit the first Sign's file, delete the second's, add a forged one.
    let edited = s.file_of(&run.signs[0]);
    edit_log(&root.path().join(&edited), |recs| {
        recs[0]["userAgent"] = "edited".into();
    });
    aws.call(
        json!({"op": "s3_put", "bucket": bucket, "key": edited, "path": root.path().join(&edited)}),
    );
    let deleted = s.file_of(&run.signs[1]);
    aws.call(json!({"op": "s3_delete", "bucket": bucket, "key": deleted}));
    let mut forged = run.trail.records[0].clone();
    forged["eventID"] = sigtrail_tests::trail::event_id().into();
    let forged_rel = write_log_files(root.path(), &[forged], "forged")[0].clone();
    aws.call(json!({"op": "s3_put", "bucket": bucket, "key": forged_rel, "path": root.path().join(&forged_rel)}));

    // aws-cli: valid files on stdout (--verbose), INVALID ones on stderr.
    let aws_cli = sigtrail_tests::env().python.with_file_name("aws");
    let start = minutes_ago(600);
    let end = (chrono::Utc::now() + chrono::Duration::hours(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let out = std::process::Command::new(&aws_cli)
        .args([
            "cloudtrail",
            "validate-logs",
            "--trail-arn",
            &trail_arn,
            "--start-time",
            &start,
        ])
        .args(["--end-time", &end, "--verbose", "--region", REGION])
        .args(["--endpoint-url", &sigtrail_tests::env().aws_endpoint])
        .output()
        .expect("run aws cloudtrail validate-logs");
    let (cli_out, cli_err) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    let files = |text: &str, status: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("Log file\t") && l.contains(status))
            .filter_map(|l| l.split('\t').nth(1))
            .map(|u| u.trim_start_matches(&format!("s3://{bucket}/")).to_string())
            .collect()
    };
    let cli_valid = files(&cli_out, "\tvalid");
    let cli_invalid = files(&cli_err, "\tINVALID");
    assert!(
        cli_out.contains("digest files valid") && !cli_valid.is_empty(),
        "aws-cli found nothing to validate:\n{cli_out}\n{cli_err}"
    );
    assert!(cli_invalid.contains(&edited), "{cli_err}");
    assert!(cli_invalid.contains(&deleted), "{cli_err}");

    // trail-for over the same bucket, every file's state in the report.
    let report = root.path().join("integrity.jsonl");
    let src = format!("s3://{bucket}/AWSLogs/");
    let (_, o) = trail_for(
        &[
            "--cloudtrail",
            &src,
            "--key",
            &run.key,
            "--no-describe-images",
            "--integrity-report",
            report.to_str().unwrap(),
        ],
        &run.image(),
    );
    let lines: Vec<Value> = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours = |state: &str| -> std::collections::BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l["state"] == state)
            .filter_map(|l| l["file"].as_str())
            .map(|u| u.trim_start_matches(&format!("s3://{bucket}/")).to_string())
            .collect()
    };
    let tampering: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["tampering"].as_str())
        .collect();
    assert_eq!(ours("validated"), cli_valid, "the same files valid");
    let mut our_invalid = ours("invalid");
    // A deleted file cannot be read, so trail-for names it among the findings instead.
    if tampering
        .iter()
        .any(|t| t.contains(&deleted) && t.contains("not found"))
    {
        our_invalid.insert(deleted.clone());
    }
    assert!(
        our_invalid.contains(&forged_rel),
        "stricter: the forged file is invalid too"
    );
    our_invalid.remove(&forged_rel);
    assert_eq!(
        our_invalid, cli_invalid,
        "the same files invalid; {tampering:#?}"
    );
}

/// The monitor (`--key-usage --state FILE`), run over a trail that grows between runs: each new
/// orphan `Sign` is reported exactly once, a run that cannot read the trail whole fails and
/// leaves the state as it was, and the next run resumes from there.
#[test]
fn the_monitor_reports_each_new_orphan_once_and_resumes_after_a_failed_run() {
    let mut aws = Aws::start();
    let mut run = signing_run(&mut aws, &unique("alias/trail-mon"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("monitor.json");
    let trail = dir.path().join("trail");
    let since = today();
    let key = run.key.clone();
    // A window of 10 s (the test's Sign and push are a second apart): a run reports events up to
    // one window before now (the digests cover up to the next hour), so each run waits for it.
    let run_monitor = || {
        std::thread::sleep(Duration::from_secs(11));
        sigtrail_tests::run(
            with_keys(
                &mut tool("trail-for"),
                &[
                    "--key-usage",
                    "--key",
                    &key,
                    "--since",
                    &since,
                    "--window",
                    "10s",
                    "--cloudtrail",
                    trail.to_str().unwrap(),
                    "--state",
                    state.to_str().unwrap(),
                ],
            ),
            b"",
        )
    };
    let monitor = |expect: Option<i32>| {
        let out = run_monitor();
        assert_eq!(out.status.code(), expect, "{}", stderr(&out));
        records(&out)
    };
    let orphan = |aws: &mut Aws, run: &mut Run| {
        let session = run.session.clone();
        run.trail
            .sign(aws, &session, &run.key, &sha256(b"never pushed"))
            .event_id
    };

    // Run 1: the two signatures' Signs and one orphan.
    let first = orphan(&mut aws, &mut run);
    run.trail.write(&trail);
    let recs = monitor(Some(1));
    let ids = |recs: &[Value]| -> Vec<(String, bool)> {
        recs.iter()
            .map(|r| {
                (
                    r["kms"]["event_id"].as_str().unwrap_or("").to_string(),
                    r["orphan"] == true,
                )
            })
            .collect()
    };
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert_eq!(ids(&recs).iter().filter(|(_, o)| *o).count(), 1);
    assert!(ids(&recs).contains(&(first.clone(), true)));
    let checkpoint = std::fs::read(&state).unwrap();

    // Run 2 fails: a new orphan, and a log file that cannot be read. Nothing is reported as
    // done: the state file is unchanged.
    let second = orphan(&mut aws, &mut run);
    run.trail.write(&trail);
    let day = trail.join(format!("AWSLogs/{ACCOUNT}/CloudTrail/{REGION}"));
    let broken = std::fs::read_dir(&day)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("broken.json.gz");
    std::fs::write(&broken, b"\x1f\x8b\x08\x00\x00\x00broken").unwrap();
    let out = run_monitor();
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("state is unchanged"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        checkpoint,
        "a failed run keeps the checkpoint"
    );

    // Run 3 resumes: only the second orphan, once.
    std::fs::remove_file(&broken).unwrap();
    let recs = monitor(Some(1));
    assert_eq!(ids(&recs), vec![(second, true)], "{recs:#?}");

    // Run 4: a signature signed and pushed, and nothing else new: exit 0, no orphan repeated.
    let session = run.session.clone();
    sign_and_push(
        &mut aws,
        &mut run,
        &session,
        "3333333333333333333333333333333333333333",
    );
    run.trail.write(&trail);
    let recs = monitor(Some(0));
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["orphan"], false);
    assert_eq!(recs[0]["kms"]["event_id"], run.signs[2].event_id.as_str());

    // Run 5: nothing new at all.
    assert!(monitor(Some(0)).is_empty());
}

/// The quiet folder: someone holding the key signs once with it, and the key's region folder
/// holds no other log file in the range (a dedicated signing account, a monitor run over the
/// last hours). Deleting that one file must not make the `Sign` vanish without a trace: the
/// digest that lists it is read even though no log file of that folder is, and the file is
/// reported deleted, from a local copy and from S3 alike.
#[test]
fn deleting_every_log_file_of_a_folder_is_still_caught() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-quiet"));
    let (rogue, key) = quiet_rogue_sign(&run);
    let mut trail = run.trail.records.clone();
    trail.push(rogue);
    let since = today();
    let usage = |source: &str| {
        let out = sigtrail_tests::run(
            with_keys(
                &mut tool("trail-for"),
                &[
                    "--key-usage",
                    "--key",
                    &key,
                    "--since",
                    &since,
                    "--cloudtrail",
                    source,
                ],
            ),
            b"",
        );
        (records(&out), out)
    };

    let dir = tempfile::tempdir().unwrap();
    let written = write_log_files(dir.path(), &trail, "q");
    digests::seal(dir.path(), digests::BUCKET);
    let quiet = written
        .iter()
        .find(|rel| rel.contains("/eu-west-1/"))
        .unwrap()
        .clone();
    let bucket = unique("trail-quiet");
    let s3_root = resealed(dir.path(), &bucket);
    digests::upload(&mut aws, s3_root.path(), &bucket);
    // The whole copy and bucket, and (as the README's monitor reads it) an account's
    // CloudTrail/ folder.
    let sources = [
        dir.path().to_str().unwrap().to_string(),
        dir.path()
            .join(format!("AWSLogs/{ACCOUNT}/CloudTrail"))
            .to_str()
            .unwrap()
            .to_string(),
        format!("s3://{bucket}/AWSLogs/"),
        format!("s3://{bucket}/AWSLogs/{ACCOUNT}/CloudTrail/"),
    ];
    for source in &sources {
        let (out, o) = usage(source);
        let orphans: Vec<&Value> = out.iter().filter(|r| r["orphan"] == true).collect();
        assert_eq!(
            orphans.len(),
            1,
            "{source}: the rogue Sign is an orphan: {}",
            stderr(&o)
        );
    }
    std::fs::remove_file(dir.path().join(&quiet)).unwrap();
    aws.call(json!({"op": "s3_delete", "bucket": bucket, "key": quiet}));
    for source in &sources {
        let (out, o) = usage(source);
        assert_eq!(o.status.code(), Some(1), "{source}: {}", stderr(&o));
        let last = out.last().unwrap_or(&Value::Null);
        assert_eq!(
            last["error"]["kind"], "trail_tampered",
            "{source}: {out:#?}"
        );
        assert!(
            stderr(&o).contains("was not found (deleted?)")
                && stderr(&o).contains(quiet.rsplit('/').next().unwrap()),
            "{source}: the deleted file is named: {}",
            stderr(&o)
        );
    }
}
