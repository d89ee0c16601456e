//! `--cloudtrail athena:DATABASE.TABLE` against the file source, record for record.
//!
//! No Athena or Trino can run here. The Athena API (StartQueryExecution, polling, paging,
//! failures, throttling) is moto's. moto runs no SQL, so the environment's stand-in executor
//! (`scripts/moto_server.py`, 5.) runs each query trail-for sends with DuckDB, over a view with
//! the CloudTrail table's schema built from the same log files in the emulator's S3, and hands
//! moto the rows through its documented results queue. The log files are the ones the other
//! trail tests write (real STS, KMS and ECR calls against the emulator; see
//! `sigtrail_tests::trail`), sealed with the digest chain, so the integrity check runs too.

use super::*;
use sigtrail_tests::trail::event_id;
use sigtrail_tests::AthenaTable;

/// A new Athena table `cloudtrail.WHAT_...` of the org layout over the bucket's `AWSLogs/`, for
/// the stand-in executor (dropped with the guard).
fn table_over(bucket: &str, what: &str) -> (String, AthenaTable) {
    let table = format!("cloudtrail.{}", unique(what).replace('-', "_"));
    let guard = AthenaTable::add(&table, &format!("s3://{bucket}/AWSLogs/"), "org", 0);
    (table, guard)
}

/// Output records without `trail.searched`, which says what was read (sources, files,
/// records) and so differs between the two sources by design.
fn comparable(mut recs: Vec<Value>) -> Vec<Value> {
    for r in &mut recs {
        if let Some(t) = r.get_mut("trail").and_then(Value::as_object_mut) {
            t.remove("searched");
        }
    }
    recs
}

/// Runs trail-for over `s3://BUCKET/AWSLogs/` and over the Athena table with the same
/// arguments and input; asserts the records are the same; returns them, the Athena run's
/// output, and its stderr.
fn both(bucket: &str, table: &str, args: &[&str], input: &str) -> (Vec<Value>, Output) {
    let s3 = format!("s3://{bucket}/AWSLogs/");
    let athena = format!("athena:{table}");
    let go = |source: &str| {
        let mut cmd = tool("trail-for");
        cmd.args(["--cloudtrail", source, "--no-describe-images"])
            .args(args);
        run(&mut cmd, input.as_bytes())
    };
    let from_files = go(&s3);
    let from_athena = go(&athena);
    let (f, a) = (
        comparable(records(&from_files)),
        comparable(records(&from_athena)),
    );
    assert!(
        !f.is_empty(),
        "no records from the files: {}",
        stderr(&from_files)
    );
    assert_eq!(
        a,
        f,
        "{args:?}: Athena's records differ from the files'\nathena stderr: {}\nfiles stderr: {}",
        stderr(&from_athena),
        stderr(&from_files)
    );
    assert_eq!(
        from_athena.status.code(),
        from_files.status.code(),
        "{args:?}"
    );
    (a, from_athena)
}

/// Signature pushes of other images by another CI session, three hours before `template`
/// (far outside any window of the run's Signs): rows enough for two result pages (Athena
/// gives at most 1,000 a page), none of which may change an answer.
fn other_signature_pushes(template: &Value, n: usize) -> Vec<Value> {
    let at = chrono::DateTime::parse_from_rfc3339(template["eventTime"].as_str().unwrap()).unwrap()
        - chrono::Duration::hours(3);
    let time = at
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    (0..n)
        .map(|i| {
            let digest = format!("sha256:{:064x}", 0xa11ce000u64 + i as u64);
            let mut r = template.clone();
            r["eventTime"] = time.clone().into();
            r["eventID"] = event_id().into();
            r["requestID"] = format!("req-other-{i}").into();
            r["userIdentity"]["accessKeyId"] = "ASIAOTHERPUSHER00000".into();
            r["userIdentity"]["arn"] =
                format!("arn:aws:sts::{ACCOUNT}:assumed-role/other-ci/run-{i}").into();
            r["requestParameters"]["repositoryName"] = "other/app".into();
            r["requestParameters"]["imageTag"] = sig_tag(&digest).into();
            r["responseElements"]["image"]["repositoryName"] = "other/app".into();
            r["responseElements"]["image"]["imageId"]["imageTag"] = sig_tag(&digest).into();
            r["responseElements"]["image"]["imageId"]["imageDigest"] =
                format!("sha256:{:064x}", 0xb0b000u64 + i as u64).into();
            r
        })
        .collect()
}

/// The scenarios of the file tests, in one bucket: a trusted image, the same after the
/// compromise, an unexplained signature with its orphan Sign, another account's copies of the
/// same calls, and 1,500 other signature pushes. Each gives the same records from Athena as
/// from the files, with the integrity check on and off, and for `--key-usage`.
#[test]
fn athena_gives_the_records_the_files_give() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-athena"));
    // A second run, for the unexplained signature and its orphan Sign (as in
    // unexplained_signature_and_orphan_sign): another image's signature pushed by the CI
    // session, signed by another session.
    let alias = unique("alias/trail-athena-b");
    let mut second = signing_run(&mut aws, &alias);
    let (intruder, _) = second.trail.assume(
        &mut aws,
        &format!("arn:aws:iam::{ACCOUNT}:role/{}", unique("other")),
        "repo:evil/fork:ref:refs/heads/x",
    );
    let session = second.session.clone();
    let other_push = second.trail.put_image(
        &mut aws,
        &session,
        &second.repo,
        "v2",
        &image_manifest(&unique("content")),
    );
    let other_digest = other_push.answer["digest"].as_str().unwrap().to_string();
    let p = payload(&format!("{ECR_HOST}/{}", second.repo), &other_digest, &[]);
    let orphan = second.trail.sign(&mut aws, &intruder, &alias, &sha256(&p));
    let sig = orphan.answer["signature"].as_str().unwrap().to_string();
    second.trail.put_image(
        &mut aws,
        &session,
        &second.repo,
        &sig_tag(&other_digest),
        &signature_manifest(&[(p, sig)]),
    );
    let mut records = run.trail.records.clone();
    records.extend(second.trail.records.iter().cloned());
    records.extend(decoys(&run.trail.records, "account", &run.key, &run.repo));
    let template = run
        .trail
        .records
        .iter()
        .find(|r| r["eventName"] == "PutImage")
        .unwrap();
    records.extend(other_signature_pushes(template, 1500));

    let bucket = unique("trail-athena");
    let root = tempfile::tempdir().unwrap();
    write_log_files(root.path(), &records, "t");
    digests::seal(root.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let (table, _table) = table_over(&bucket, "org_trail");

    let since = today();
    let image = run.image().to_string() + "\n";
    let key = run.key.clone();
    let (out, o) = both(&bucket, &table, &["--key", &key, "--since", &since], &image);
    assert_eq!(out[0]["trail"]["verdict"], "trusted", "{:#}", out[0]);
    assert_eq!(out[0]["trail"]["integrity"]["state"], "validated");
    let err = stderr(&o);
    for query in ["sign", "pushes", "roles"] {
        assert!(
            err.contains(&format!("athena: {query}: ")) && err.contains("cost $"),
            "each query says what it scanned and cost: {err}"
        );
    }
    // More rows than one page holds: the results were paged.
    let pushes: usize = err
        .split("athena: pushes: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(pushes > 1500, "{err}");
    let (out, _) = both(
        &bucket,
        &table,
        &["--key", &key, "--since", &since, "--integrity", "off"],
        &image,
    );
    assert_eq!(out[0]["trail"]["verdict"], "trusted", "{:#}", out[0]);
    let (out, _) = both(
        &bucket,
        &table,
        &[
            "--key",
            &key,
            "--since",
            &since,
            "--compromised-at",
            &run.compromise,
        ],
        &image,
    );
    assert_eq!(out[0]["trail"]["verdict"], "untrusted", "{:#}", out[0]);
    let other = json!({"registry": ECR_HOST, "repository": second.repo, "digest": other_digest})
        .to_string()
        + "\n";
    let (out, _) = both(
        &bucket,
        &table,
        &["--key", &alias, "--since", &since],
        &other,
    );
    assert_eq!(out[0]["trail"]["verdict"], "unexplained", "{:#}", out[0]);
    // Without --key: every key's Sign events, the decoy account's included.
    let (out, _) = both(&bucket, &table, &["--since", &since], &image);
    assert_eq!(out[0]["trail"]["verdict"], "trusted", "{:#}", out[0]);
    let (out, _) = both(
        &bucket,
        &table,
        &[
            "--key-usage",
            "--key",
            &format!("awskms:///{alias}"),
            "--since",
            &since,
        ],
        "",
    );
    let orphans: Vec<&Value> = out.iter().filter(|r| r["orphan"] == true).collect();
    assert_eq!(orphans.len(), 1, "{out:#?}");
    assert_eq!(orphans[0]["kms"]["request_id"], orphan.request_id.as_str());
}

/// Someone who can write to the trail bucket: a forged log file that explains the
/// post-compromise signature with a Sign from before, and a deleted log file. Athena reads
/// the forged file like any other; the digests catch both, as they do for the files.
#[test]
fn athena_rows_from_a_forged_or_missing_file_are_caught_by_the_digests() {
    let mut aws = Aws::start();
    let alias = unique("alias/trail-athena-forge");
    let run = signing_run(&mut aws, &alias);
    let bucket = unique("trail-athena-forge");
    let root = tempfile::tempdir().unwrap();
    // The image's push in a log file of its own, beside the others in the same folder.
    let (push, rest): (Vec<Value>, Vec<Value>) = run
        .trail
        .records
        .iter()
        .cloned()
        .partition(|r| r["eventID"] == run.image_push.event_id.as_str());
    let push_file = write_log_files(root.path(), &push, "push").remove(0);
    write_log_files(root.path(), &rest, "t");
    digests::seal(root.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let (table, _table) = table_over(&bucket, "forged");
    let since = today();
    let image = run.image().to_string() + "\n";
    let key = run.key.clone();
    let args = [
        "--key",
        &key,
        "--since",
        &since,
        "--compromised-at",
        &run.compromise,
    ];
    let (out, _) = both(&bucket, &table, &args, &image);
    assert_eq!(out[0]["trail"]["verdict"], "untrusted");

    // The forgery: the second Sign's record moved before the compromise, in a new file.
    let second = run
        .trail
        .records
        .iter()
        .find(|r| r["requestID"] == run.signs[1].request_id.as_str())
        .unwrap();
    let mut forged = second.clone();
    forged["eventTime"] = run.signs[0].time.as_str().into();
    let forged_root = tempfile::tempdir().unwrap();
    let rel = write_log_files(forged_root.path(), &[forged], "forged");
    let forged_key = rel[0].clone();
    aws.call(json!({"op": "s3_put", "bucket": bucket, "key": forged_key,
                    "path": forged_root.path().join(&forged_key)}));
    let (out, o) = both(&bucket, &table, &args, &image);
    assert_ne!(out[0]["trail"]["verdict"], "trusted", "{:#}", out[0]);
    assert!(
        stderr(&o).contains("TAMPERING"),
        "the forged file is named: {}",
        stderr(&o)
    );
    aws.call(json!({"op": "s3_delete", "bucket": bucket, "key": forged_key}));

    // A deleted log file: the one holding the image's push. Athena reads the rest of the
    // folder; the digest that lists the file says it is gone.
    aws.call(json!({"op": "s3_delete", "bucket": bucket, "key": push_file}));
    let (out, o) = both(&bucket, &table, &["--key", &key, "--since", &since], &image);
    assert_ne!(out[0]["trail"]["verdict"], "trusted", "{:#}", out[0]);
    assert!(
        stderr(&o).contains("was not found (deleted?)"),
        "the deleted file is named: {}",
        stderr(&o)
    );
}

/// Throttling that passes is ridden out; throttling that lasts, a missing table, a query
/// over the scan cap and a failed query (the wrong --athena-layout for the table) each give an
/// error record that says what happened, and nothing is trusted.
#[test]
fn athena_failures_are_clear_errors_and_trust_nothing() {
    let mut aws = Aws::start();
    let alias = unique("alias/trail-athena-fail");
    let run = signing_run(&mut aws, &alias);
    let bucket = unique("trail-athena-fail");
    let root = tempfile::tempdir().unwrap();
    run.trail.upload(&mut aws, root.path(), &bucket);
    let location = format!("s3://{bucket}/AWSLogs/");
    let name = |what: &str| format!("cloudtrail.{}", unique(what).replace('-', "_"));
    let since = today();
    let image = run.image().to_string() + "\n";
    let key = run.key.clone();
    let go = |table: &str, extra: &[&str]| {
        let mut cmd = tool("trail-for");
        cmd.args([
            "--cloudtrail",
            &format!("athena:{table}"),
            "--no-describe-images",
        ])
        .args(["--key", &key, "--since", &since])
        .args(extra);
        let out = run_tool_output(&mut cmd, &image);
        (records(&out), out)
    };

    // Two throttled starts: the SDK's retries ride them out.
    let brief = name("brief");
    let _brief = AthenaTable::add(&brief, &location, "org", 2);
    let (out, o) = go(&brief, &[]);
    assert_eq!(out[0]["trail"]["verdict"], "trusted", "{}", stderr(&o));

    let cases: Vec<(String, Vec<&str>, &str, Option<AthenaTable>)> = vec![
        {
            let t = name("throttled");
            let guard = AthenaTable::add(&t, &location, "org", 1000);
            (t, vec![], "TooManyRequestsException", Some(guard))
        },
        (name("missing"), vec![], "TABLE_NOT_FOUND", None),
        {
            let t = name("capped");
            let guard = AthenaTable::add(&t, &location, "org", 0);
            (
                t,
                vec!["--athena-max-scan", "100"],
                "more than --athena-max-scan",
                Some(guard),
            )
        },
        {
            let t = name("one_account");
            let guard = AthenaTable::add(&t, &location, "account", 0);
            (t, vec![], "failed", Some(guard))
        },
    ];
    for (table, extra, says, _guard) in &cases {
        let (out, o) = go(table, extra);
        assert_eq!(out.len(), 1, "{table}: {}", stderr(&o));
        let r = &out[0];
        assert_ne!(r["trail"]["verdict"], "trusted", "{table}: {r:#}");
        let error = r["error"].to_string();
        assert!(
            error.contains(says) && error.contains(&format!("athena:{table}")),
            "{table}: the error says {says:?} and names the source: {r:#}"
        );
        assert_eq!(o.status.code(), Some(1), "{table}: {}", stderr(&o));
    }
}

fn run_tool_output(cmd: &mut std::process::Command, stdin: &str) -> Output {
    run(cmd, stdin.as_bytes())
}

/// The attacker's case of the file tests: an extra `Sign` in the release session (a discarded
/// run, or someone using the session) must not shift a post-compromise signature onto a
/// pre-compromise `Sign`. Four images, the same records from Athena as from the files.
#[test]
fn athena_an_extra_sign_cannot_make_a_post_compromise_image_trusted() {
    let mut aws = Aws::start();
    let ExtraSign {
        trail,
        key,
        repo,
        digests,
        compromise,
        ..
    } = extra_sign(&mut aws, false);
    let bucket = unique("trail-athena-extra");
    let root = tempfile::tempdir().unwrap();
    trail.upload(&mut aws, root.path(), &bucket);
    let (table, _table) = table_over(&bucket, "extra");
    let input: String = digests
        .iter()
        .map(|d| json!({"registry": ECR_HOST, "repository": repo, "digest": d}).to_string() + "\n")
        .collect();
    let since = today();
    let (out, _) = both(
        &bucket,
        &table,
        &[
            "--key",
            &key,
            "--since",
            &since,
            "--compromised-at",
            &compromise,
        ],
        &input,
    );
    let verdicts: Vec<&str> = out
        .iter()
        .map(|r| r["trail"]["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["trusted", "trusted", "trusted", "untrusted"]);
}

/// `--cloudtrail lake:EVENT_DATA_STORE`: the same queries in CloudTrail Lake's dialect, on the
/// emulator's Lake stand-in (`scripts/moto_server.py`, 6.: moto has no Lake; DuckDB runs the
/// queries over the same log files). Lake is CloudTrail's own store: its evidence is `service`,
/// so the records match the files' with `--integrity off`, and are `service` otherwise.
#[test]
fn lake_gives_the_records_the_files_give_and_clear_errors() {
    let mut aws = Aws::start();
    let alias = unique("alias/trail-lake");
    let run = signing_run(&mut aws, &alias);
    let mut records = run.trail.records.clone();
    records.extend(decoys(&run.trail.records, "account", &run.key, &run.repo));
    let bucket = unique("trail-lake");
    let root = tempfile::tempdir().unwrap();
    write_log_files(root.path(), &records, "t");
    digests::seal(root.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let location = format!("s3://{bucket}/AWSLogs/");
    let store = unique("eds");
    let _store = AthenaTable::lake(&store, &location, 0);
    let lake = format!("lake:arn:aws:cloudtrail:{REGION}:{ACCOUNT}:eventdatastore/{store}");
    let since = today();
    let image = run.image().to_string() + "\n";
    let key = run.key.clone();
    let go = |source: &str, extra: &[&str], input: &str| {
        let mut cmd = tool("trail-for");
        cmd.args(["--cloudtrail", source, "--no-describe-images"])
            .args(extra);
        let out = run_tool_output(&mut cmd, input);
        (comparable(records_of(&out)), out)
    };
    let s3 = location.clone();
    for extra in [
        vec!["--key", &key, "--since", &since],
        vec![
            "--key",
            &key,
            "--since",
            &since,
            "--compromised-at",
            &run.compromise,
        ],
        vec!["--key-usage", "--key", &key, "--since", &since],
    ] {
        let input = if extra[0] == "--key-usage" {
            ""
        } else {
            &image
        };
        let mut off = extra.clone();
        off.extend(["--integrity", "off"]);
        let (f, _) = go(&s3, &off, input);
        let (l, o) = go(&lake, &off, input);
        assert!(!f.is_empty());
        assert_eq!(l, f, "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("lake: sign: "), "{}", stderr(&o));
    }
    let (l, o) = go(&lake, &["--key", &key, "--since", &since], &image);
    assert_eq!(l[0]["trail"]["verdict"], "trusted", "{}", stderr(&o));
    assert_eq!(l[0]["trail"]["integrity"]["state"], "service");

    // An unknown store, throttling that lasts, and the scan cap: error records.
    let throttled = unique("eds-throttled");
    let _throttled = AthenaTable::lake(&throttled, &location, 1000);
    for (source, extra, says) in [
        (
            format!("lake:{}", unique("eds-missing")),
            vec![],
            "EventDataStoreNotFoundException",
        ),
        (
            format!("lake:{throttled}"),
            vec![],
            "MaxConcurrentQueriesException",
        ),
        (
            lake.clone(),
            vec!["--athena-max-scan", "100"],
            "more than --athena-max-scan",
        ),
    ] {
        let mut args = vec!["--key", key.as_str(), "--since", since.as_str()];
        args.extend(extra);
        let (out, o) = go(&source, &args, &image);
        assert_eq!(out.len(), 1, "{source}: {}", stderr(&o));
        assert_ne!(out[0]["trail"]["verdict"], "trusted");
        let error = out[0]["error"].to_string();
        assert!(error.contains(says), "{source}: {error}");
        assert_eq!(o.status.code(), Some(1));
    }
}

fn records_of(out: &Output) -> Vec<Value> {
    records(out)
}

/// The quiet folder over Athena (as `integrity::deleting_every_log_file_of_a_folder_is_still_caught`
/// for the files): the key's region folder holds one log file, with someone's `Sign`. Deleted,
/// Athena returns no row from that folder, but the key's own folder is checked all the same:
/// the digest that lists the file says it is gone.
#[test]
fn athena_a_deleted_quiet_folder_of_the_key_is_caught() {
    let mut aws = Aws::start();
    let run = signing_run(&mut aws, &unique("alias/trail-athena-quiet"));
    let (rogue, key) = quiet_rogue_sign(&run);
    let mut trail = run.trail.records.clone();
    trail.push(rogue);
    let bucket = unique("trail-athena-quiet");
    let root = tempfile::tempdir().unwrap();
    let written = write_log_files(root.path(), &trail, "q");
    digests::seal(root.path(), &bucket);
    digests::upload(&mut aws, root.path(), &bucket);
    let quiet = written
        .iter()
        .find(|rel| rel.contains("/eu-west-1/"))
        .unwrap()
        .clone();
    let (table, _table) = table_over(&bucket, "quiet");
    let since = today();
    let args = [
        "--key-usage",
        "--key",
        key.as_str(),
        "--since",
        since.as_str(),
    ];
    let (out, _) = both(&bucket, &table, &args, "");
    assert_eq!(
        out.iter().filter(|r| r["orphan"] == true).count(),
        1,
        "{out:#?}"
    );
    aws.call(json!({"op": "s3_delete", "bucket": bucket, "key": quiet}));
    let (out, o) = both(&bucket, &table, &args, "");
    let last = out.last().unwrap_or(&Value::Null);
    assert_eq!(last["error"]["kind"], "trail_tampered", "{out:#?}");
    assert!(
        stderr(&o).contains("was not found (deleted?)"),
        "{}",
        stderr(&o)
    );
}
