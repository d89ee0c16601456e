//! `bench-trail [--dir DIR] [--rounds N] [--keep] TRAIL_FOR SIZE...`: the `trail-for` part of
//! `cargo xtask bench`, a scaling table over trails of SIZE records each.
//!
//! Makes one real signing run against the AWS emulator (STS `AssumeRoleWithWebIdentity`, ECR
//! `PutImage` of an image, KMS `Sign`, `PutImage` of its `.sig` tag) and writes its CloudTrail
//! records (see [`sigtrail_tests::trail`]). Then, for each SIZE in turn, writes that many
//! unrelated records beside them under DIR (streamed: one gzip log file of 1,000 records at a time
//! per core, in the `AWSLogs/ACCT/CloudTrail/REGION/YYYY/MM/DD/` layout, 288 files a day as
//! CloudTrail writes them), times the `trail-for` binary given (the release build) over that
//! directory, and deletes it (`--keep` leaves it, to time or profile trail-for by hand):
//! - `trail-for` for the one image, and `trail-for --key-usage --key`, each the median of N runs
//!   (one run when a trail over 1,000,000 records takes more than a minute a run): wall time,
//!   records/s and peak RSS (`/usr/bin/time -v`, when present), with what `SIGTRAIL_TRAIL_STATS`
//!   says trail-for kept;
//! - at 1,000,000 records (else at the largest SIZE), both again on one core (`taskset -c 0`),
//!   and the ratio.
//!
//! Every run is checked: the image is `trusted` with the real `Sign`'s request id, and
//! `--key-usage` lists that one `Sign` as explaining the image's signature push. Prints the
//! table with the goals of `../shared/DESIGN.md` next to the figures, each said met or missed;
//! exits 1 when a run gave a wrong answer (a missed goal is reported, not a failure).
//!
//! Progress goes to stderr. Needs the environment of `cargo xtask env up` (xtask bench sets it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use sigtrail_tests::trail::{
    image_manifest, noise_with, payload, sha256, sig_tag, signature_manifest, write_gz, Aws, Trail,
    ACCOUNT, ECR_HOST, REGION,
};
use sigtrail_tests::{digests, kms_create_key, unique};

const SUBJECT: &str = "repo:acme/app:ref:refs/heads/main";
/// Records a log file, as the measurements and CloudTrail's busy accounts have them.
const PER_FILE: usize = 1000;
/// Log files a day: CloudTrail delivers about every five minutes.
const FILES_PER_DAY: usize = 288;
/// The first day of the unrelated traffic (`--key-usage --since` is this day).
const FIRST_DAY: (i64, u32, u32) = (2025, 11, 10);
/// The size the one-core and two-core runs compare at, when it is run.
const CORE_SIZE: usize = 1_000_000;
/// A trail over 1,000,000 records whose first run takes longer than this runs once.
const LONG_RUN_SECS: f64 = 60.0;
const TIME: &str = "/usr/bin/time";

// The goals (`../shared/DESIGN.md`, "Speed and size"; issue #15).
const GOAL_RSS_MIB: f64 = 256.0;
const GOAL_RSS_AT: usize = 10_000_000;
const GOAL_RATE_KEPT: f64 = 0.8;
const GOAL_CORES: f64 = 1.6;
/// The integrity check at most this many times the run without it (at [`INTEGRITY_SIZE`]).
const GOAL_INTEGRITY: f64 = 1.25;
const INTEGRITY_SIZE: usize = 100_000;

fn main() -> ExitCode {
    match bench() {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-trail: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone)]
struct Opts {
    dir: PathBuf,
    rounds: usize,
    /// Leave the trails on disk (to time or profile trail-for over them by hand)
    keep: bool,
    trail_for: String,
    sizes: Vec<usize>,
}

fn opts() -> Result<Opts> {
    const USAGE: &str = "usage: bench-trail [--dir DIR] [--rounds N] [--keep] TRAIL_FOR SIZE...";
    let mut dir = std::env::temp_dir().join("sigtrail-bench-trail");
    let mut rounds = 3;
    let mut keep = false;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().context(USAGE)?.into(),
            "--rounds" => rounds = args.next().context(USAGE)?.parse().context(USAGE)?,
            "--keep" => keep = true,
            _ => rest.push(a),
        }
    }
    let Some((trail_for, sizes)) = rest.split_first() else {
        bail!(USAGE);
    };
    let sizes = sizes
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('_', "").parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .context("SIZE is a number of records")?;
    ensure!(!sizes.is_empty(), USAGE);
    ensure!(
        sizes.iter().all(|&s| s >= PER_FILE),
        "every SIZE is at least {PER_FILE} (one log file)"
    );
    ensure!(rounds >= 1, "--rounds is at least 1");
    Ok(Opts {
        dir,
        rounds,
        keep,
        trail_for: trail_for.clone(),
        sizes,
    })
}

/// The one signing run whose events every trail holds.
struct Run {
    trail: Trail,
    key: String,
    digest: String,
    image: Value,
    sign_request_id: String,
    sign_time: String,
    /// The CI session's access key and assumed-role ARN (the callers of the Athena `roles`
    /// query)
    session: (String, String),
}

fn signing_run() -> Result<Run> {
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
    let image = json!({"image": format!("{ECR_HOST}/{repo}:v1"), "registry": ECR_HOST,
                       "repository": repo, "digest": digest});
    Ok(Run {
        trail,
        key,
        digest,
        image,
        sign_request_id: sign.request_id,
        sign_time: sign.time,
        session: (
            session.access_key_id.clone(),
            session.assumed_role_arn.clone(),
        ),
    })
}

/// Which `trail-for` is timed.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `trail-for --key K` given the one image record
    Image,
    /// `trail-for --key-usage --key K --since FIRST_DAY`
    KeyUsage,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Image, Mode::KeyUsage];
    fn label(self) -> &'static str {
        match self {
            Mode::Image => "one image (--key)",
            Mode::KeyUsage => "--key-usage --key",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Mode::Image => "image",
            Mode::KeyUsage => "key-usage",
        }
    }
}

/// One timed run of `trail-for`.
#[derive(Clone)]
struct Timed {
    secs: f64,
    rss_kib: Option<u64>,
    /// User and system CPU seconds
    cpu: Option<f64>,
    /// `SIGTRAIL_TRAIL_STATS`'s line: records, events_seen, events_kept, passes
    stats: [u64; 4],
}

fn bench() -> Result<String> {
    let o = opts()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let has_time = Path::new(TIME).is_file();
    let has_taskset = Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let core_size = if o.sizes.contains(&CORE_SIZE) {
        CORE_SIZE
    } else {
        *o.sizes.iter().max().context("a size")?
    };

    let load_before = loadavg();
    say("one signing run against the AWS emulator (STS, ECR PutImage, KMS Sign, .sig push)");
    let run = signing_run()?;
    std::fs::create_dir_all(&o.dir)
        .with_context(|| format!("cannot create {}", o.dir.display()))?;

    let mut rows = Vec::new();
    let mut core_rows = Vec::new();
    // The integrity check's cost is measured at 100,000 records (else the smallest size).
    let integrity_size = if o.sizes.contains(&INTEGRITY_SIZE) {
        INTEGRITY_SIZE
    } else {
        *o.sizes.iter().min().context("a size")?
    };
    let mut integrity_row = None;
    for &size in &o.sizes {
        let dir = o.dir.join(format!("trail-{size}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let real_files = run.trail.write(&dir).len();
        let t0 = Instant::now();
        let noise_files = write_noise(&dir, size)?;
        let total = size + run.trail.records.len();
        say(&format!(
            "{} records in {} gzip files ({} MB) written in {:.1} s",
            thousands(total as f64),
            real_files + noise_files,
            du(&dir) >> 20,
            t0.elapsed().as_secs_f64()
        ));
        let result = (|| -> Result<()> {
            for mode in Mode::ALL {
                let runs = timed_runs(&o, &run, &dir, size, mode, None, has_time, &[])?;
                check_records(&runs, total)?;
                rows.push((size, real_files + noise_files, mode, runs));
            }
            if size == core_size && has_taskset {
                for mode in Mode::ALL {
                    let runs = timed_runs(&o, &run, &dir, size, mode, Some("0"), has_time, &[])?;
                    core_rows.push((mode, runs));
                }
            }
            if size == integrity_size {
                // The whole trail sealed with CloudTrail's digest chain: the check against
                // none at all, on the same files, alternating.
                let t0 = Instant::now();
                let sealed = digests::seal(&dir, digests::BUCKET).len();
                say(&format!(
                    "sealed with {sealed} digests in {:.1} s",
                    t0.elapsed().as_secs_f64()
                ));
                let keys = digests::keys_file().display().to_string();
                let strict = ["--cloudtrail-public-keys".to_string(), keys];
                let off = ["--integrity".to_string(), "off".to_string()];
                let (mut on_runs, mut off_runs) = (Vec::new(), Vec::new());
                for _ in 0..o.rounds {
                    let one = Opts {
                        rounds: 1,
                        ..o.clone()
                    };
                    off_runs.extend(timed_runs(
                        &one,
                        &run,
                        &dir,
                        size,
                        Mode::Image,
                        None,
                        has_time,
                        &off,
                    )?);
                    on_runs.extend(timed_runs(
                        &one,
                        &run,
                        &dir,
                        size,
                        Mode::Image,
                        None,
                        has_time,
                        &strict,
                    )?);
                }
                let duck = athena_duckdb(&o, &run, &dir)?;
                integrity_row = Some((size, sealed, off_runs, on_runs, duck));
            }
            Ok(())
        })();
        if o.keep {
            say(&format!("kept {}", dir.display()));
        } else {
            std::fs::remove_dir_all(&dir)?;
        }
        result?;
    }
    let _ = std::fs::remove_dir(&o.dir); // only if empty: never someone else's files

    let mut out = report(&rows, &core_rows, core_size, cores, has_time);
    if let Some((size, sealed, off, on, duck)) = integrity_row {
        let (a, b) = (median_run(&off).secs, median_run(&on).secs);
        out.push_str(&duck.line(size, a));
        let ratio = b / a;
        out.push_str(&format!(
            "  integrity check (one image, {} records sealed with {sealed} digests, median of {}, \
             alternating): --integrity off {a:.2} s, strict (every file hashed and checked) \
             {b:.2} s: {ratio:.2}x  (goal <= {GOAL_INTEGRITY}x: {})\n",
            thousands(size as f64),
            off.len(),
            met(ratio <= GOAL_INTEGRITY)
        ));
    }
    out.push_str(&format!(
        "  load average (1, 5, 15 min) before the trail part: {load_before}; after: {}\n",
        loadavg()
    ));
    Ok(out)
}

/// What DuckDB took for trail-for's Athena queries over the same files.
struct Duck {
    version: String,
    secs: f64,
    rounds: usize,
    queries: Vec<(String, u64, u64)>,
}

impl Duck {
    fn line(&self, size: usize, streaming: f64) -> String {
        let queries: Vec<String> = self
            .queries
            .iter()
            .map(|(name, rows, scanned)| format!("{name} {rows} rows, {} MB", scanned / 1_000_000))
            .collect();
        format!(
            "  athena's queries by DuckDB {} over the same {} records (3 queries, each reading \
             the files again as Athena does; median of {}): {:.2} s against trail-for's \
             streaming reader {streaming:.2} s (--integrity off): {:.2}x the time  [{}]\n",
            self.version,
            thousands(size as f64),
            self.rounds,
            self.secs,
            self.secs / streaming,
            queries.join("; ")
        )
    }
}

/// Runs the queries `--cloudtrail athena:` would send for the one image (written by trail-for's
/// own SQL writer) with DuckDB over the trail's files (`scripts/bench-athena-duckdb.py`).
fn athena_duckdb(o: &Opts, run: &Run, dir: &Path) -> Result<Duck> {
    use sigtrail::trail::interest::{Interest, Roles};
    use sigtrail::trail::keys::KeySpec;
    use sigtrail::trail::source::athena::sql;
    use sigtrail::trail::source::Range;
    let record = run.image.as_object().cloned().context("image record")?;
    let key = KeySpec::parse(&run.key).map_err(anyhow::Error::msg)?;
    let interest = Interest::for_records(&[record], &[key]);
    let table = sql::table_name("cloudtrail", "bench");
    let range = Range::default();
    let (mut queries, _) = sql::first_pass(
        &table,
        sql::Dialect::Athena(sql::Layout::Org),
        &range,
        &interest,
    );
    let roles = Interest {
        roles: Roles::Of {
            access_keys: [run.session.0.clone()].into(),
            arns: [run.session.1.clone()].into(),
        },
        ..Interest::default()
    };
    queries.extend(sql::roles(
        &table,
        sql::Dialect::Athena(sql::Layout::Org),
        &range,
        &roles,
    ));
    let mut files = Vec::new();
    for q in &queries {
        let path = dir.join(format!("{}.sql", q.name));
        std::fs::write(&path, &q.sql)?;
        files.push(path);
    }
    say(&format!(
        "DuckDB: trail-for's {} Athena queries over the same files, {} rounds",
        queries.len(),
        o.rounds
    ));
    let python = std::env::var("SIGTRAIL_PYTHON").context("SIGTRAIL_PYTHON (cargo xtask env)")?;
    let scripts =
        std::env::var("SIGTRAIL_SCRIPTS").context("SIGTRAIL_SCRIPTS (cargo xtask env)")?;
    let out = Command::new(python)
        .arg(Path::new(&scripts).join("bench-athena-duckdb.py"))
        .arg(dir)
        .arg(digests::BUCKET)
        .arg("org")
        .arg(o.rounds.to_string())
        .args(&files)
        .output()
        .context("cannot run bench-athena-duckdb.py")?;
    ensure!(
        out.status.success(),
        "bench-athena-duckdb.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).context("bench-athena-duckdb.py output")?;
    let rounds: Vec<f64> = v["rounds"]
        .as_array()
        .context("rounds")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let queries: Vec<(String, u64, u64)> = v["queries"]
        .as_array()
        .context("queries")?
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap_or("").to_string(),
                q["rows"].as_u64().unwrap_or(0),
                q["scanned_bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    // The answer: the one Sign of the key, and the image's push with its signature push.
    let rows = |name: &str| queries.iter().find(|q| q.0 == name).map_or(0, |q| q.1);
    ensure!(
        rows("sign") == 1 && rows("pushes") >= 2 && rows("roles") == 1,
        "DuckDB gave a wrong answer: {queries:?}"
    );
    Ok(Duck {
        version: v["duckdb"].as_str().unwrap_or("?").to_string(),
        rounds: rounds.len(),
        secs: median(rounds),
        queries,
    })
}

fn check_records(runs: &[Timed], total: usize) -> Result<()> {
    for r in runs {
        ensure!(
            r.stats[0] as usize >= total,
            "trail-for read {} of {total} records",
            r.stats[0]
        );
    }
    Ok(())
}

/// The runs of one mode over one trail: `rounds` of them, or one when it is long.
#[allow(clippy::too_many_arguments)]
fn timed_runs(
    o: &Opts,
    run: &Run,
    dir: &Path,
    size: usize,
    mode: Mode,
    pin: Option<&str>,
    has_time: bool,
    extra: &[String],
) -> Result<Vec<Timed>> {
    let mut out: Vec<Timed> = Vec::new();
    for round in 1..=o.rounds {
        say(&format!(
            "trail-for {} over {} records{}, run {round}/{}",
            mode.label(),
            thousands(size as f64),
            pin.map_or(String::new(), |c| format!(" on core {c} only")),
            o.rounds
        ));
        let t = time_trail_for(o, run, dir, mode, pin, has_time, extra)?;
        let secs = t.secs;
        out.push(t);
        if round == 1 && size > CORE_SIZE && secs > LONG_RUN_SECS {
            say(&format!("{secs:.0} s a run: this row is one run"));
            break;
        }
    }
    Ok(out)
}

fn time_trail_for(
    o: &Opts,
    run: &Run,
    dir: &Path,
    mode: Mode,
    pin: Option<&str>,
    has_time: bool,
    extra: &[String],
) -> Result<Timed> {
    let src = dir.to_str().context("trail dir path")?;
    let rss_file = dir.join("time-v.txt");
    let mut argv: Vec<String> = Vec::new();
    if let Some(core) = pin {
        argv.extend(["taskset".into(), "-c".into(), core.into()]);
    }
    if has_time {
        argv.extend([
            TIME.into(),
            "-v".into(),
            "-o".into(),
            rss_file.display().to_string(),
        ]);
    }
    argv.push(o.trail_for.clone());
    argv.extend(["-q".into(), "--cloudtrail".into(), src.into()]);
    argv.extend(["--key".into(), run.key.clone()]);
    let first_day = format!("{:04}-{:02}-{:02}", FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2);
    argv.extend(extra.iter().cloned());
    match mode {
        Mode::Image => argv.push("--no-describe-images".into()),
        Mode::KeyUsage => argv.extend(["--key-usage".into(), "--since".into(), first_day]),
    }
    let start = Instant::now();
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("SIGTRAIL_TRAIL_STATS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", argv.join(" ")))?;
    {
        let mut stdin = child.stdin.take().context("stdin")?;
        if mode == Mode::Image {
            stdin.write_all(format!("{}\n", run.image).as_bytes())?;
        }
    }
    let out = child.wait_with_output()?;
    let secs = start.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "trail-for {} failed ({}): {stdout}{stderr}",
        mode.label(),
        out.status
    );
    match mode {
        Mode::Image => check_image(run, &stdout)?,
        Mode::KeyUsage => check_key_usage(run, &stdout)?,
    }
    let stats = stderr
        .lines()
        .find_map(|l| l.strip_prefix("trail-for: stats: "))
        .with_context(|| format!("no stats line from trail-for: {stderr}"))?;
    let words: Vec<&str> = stats.split_whitespace().collect();
    let field = |name: &str| -> Result<u64> {
        let at = words
            .iter()
            .position(|w| *w == name)
            .with_context(|| format!("stats line without {name}: {stats}"))?;
        words
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("stats line: {name} is not a number: {stats}"))
    };
    let stats = [
        field("records")?,
        field("events_seen")?,
        field("events_kept")?,
        field("passes")?,
    ];
    let (rss_kib, cpu) = if has_time {
        let text = std::fs::read_to_string(&rss_file)?;
        let line = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .with_context(|| format!("no {name:?} from {TIME} -v: {text}"))
        };
        let kib = line("Maximum resident set size (kbytes): ")? as u64;
        let cpu = line("User time (seconds): ")? + line("System time (seconds): ")?;
        std::fs::remove_file(&rss_file)?;
        (Some(kib), Some(cpu))
    } else {
        (None, None)
    };
    Ok(Timed {
        secs,
        rss_kib,
        cpu,
        stats,
    })
}

fn check_image(run: &Run, stdout: &str) -> Result<()> {
    let rec: Value = serde_json::from_str(stdout.trim()).context("trail-for's output record")?;
    let t = &rec["trail"];
    ensure!(
        t["verdict"] == "trusted",
        "trail-for did not find the run: {rec}"
    );
    ensure!(
        t["signatures"][0]["evidence"]["sign_request_id"] == run.sign_request_id.as_str()
            && t["signatures"][0]["signed_at"] == run.sign_time.as_str(),
        "trail-for matched the wrong Sign event: {rec}"
    );
    Ok(())
}

fn check_key_usage(run: &Run, stdout: &str) -> Result<()> {
    let recs = stdout
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()
        .context("trail-for --key-usage's output records")?;
    ensure!(
        recs.len() == 1
            && recs[0]["kms"]["request_id"] == run.sign_request_id.as_str()
            && recs[0]["orphan"] == false
            && recs[0]["digest"] == run.digest.as_str(),
        "trail-for --key-usage did not list the one Sign, explained by the image's signature \
         push: {stdout}"
    );
    Ok(())
}

/// Writes `records` unrelated records under `root` as gzip log files of [`PER_FILE`], one file
/// at a time per core; returns how many files.
fn write_noise(root: &Path, records: usize) -> Result<usize> {
    let files = records.div_ceil(PER_FILE);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let first = days_from_civil(FIRST_DAY.0, FIRST_DAY.1, FIRST_DAY.2);
    say(&format!(
        "writing {} unrelated records ({files} files) under {}",
        thousands(records as f64),
        root.display()
    ));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let f = next.fetch_add(1, Ordering::Relaxed);
                if f >= files {
                    break;
                }
                let n = PER_FILE.min(records - f * PER_FILE);
                let (y, m, d) = civil_from_days(first + (f / FILES_PER_DAY) as i64);
                let slot = (f % FILES_PER_DAY) * 300;
                let at = |s: usize| format!("{:02}{:02}", s / 3600, (s / 60) % 60);
                let recs = noise_with(n, f, |i| {
                    let s = slot + i * 300 / n;
                    format!(
                        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                        s / 3600,
                        (s / 60) % 60,
                        s % 60
                    )
                });
                write_gz(
                    &root.join(format!(
                        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{y:04}/{m:02}/{d:02}/\
                         {ACCOUNT}_CloudTrail_{REGION}_{y:04}{m:02}{d:02}T{}Z_noise{f:05}.json.gz",
                        at(slot)
                    )),
                    &json!({ "Records": recs }),
                );
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                if files >= 1000 && finished.is_multiple_of(files / 10) {
                    say(&format!("  {finished}/{files} files written"));
                }
            });
        }
    });
    Ok(files)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

/// The median wall time of runs, and the run it came from.
fn median_run(runs: &[Timed]) -> Timed {
    let m = median(runs.iter().map(|r| r.secs).collect());
    runs.iter()
        .find(|r| r.secs == m)
        .cloned()
        .unwrap_or_else(|| runs[0].clone())
}

fn peak_mib(runs: &[Timed]) -> Option<f64> {
    runs.iter()
        .filter_map(|r| r.rss_kib)
        .max()
        .map(|k| k as f64 / 1024.0)
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

type Row = (usize, usize, Mode, Vec<Timed>);

fn report(
    rows: &[Row],
    core_rows: &[(Mode, Vec<Timed>)],
    core_size: usize,
    cores: usize,
    has_time: bool,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let rate =
        |size: usize, runs: &[Timed]| size as f64 / median(runs.iter().map(|r| r.secs).collect());
    let _ = writeln!(
        s,
        "trail-for over generated CloudTrail trails: gzip log files of {PER_FILE} records, \
         {FILES_PER_DAY} a day, everyday traffic\n  (8 kinds; 1 in 8 a PutImage of another \
         repository, 1 in 8 a Sign of another key) plus one real signing run; release build, \
         {cores} cores"
    );
    let _ = writeln!(
        s,
        "  {:>12} {:>7}  {:<19} {:>9} {:>11} {:>9} {:>5} {:>9}  {:>16} {:>6}  runs",
        "records",
        "files",
        "trail-for",
        "wall",
        "records/s",
        "peak RSS",
        "cores",
        "per CPU-s",
        "kept/seen events",
        "passes"
    );
    for (size, files, mode, runs) in rows {
        let m = median_run(runs);
        let rss = peak_mib(runs).map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
        let how = if runs.len() == 1 {
            "1 run".to_string()
        } else {
            format!("median of {}", runs.len())
        };
        let busy = m
            .cpu
            .map_or("n/a".to_string(), |c| format!("{:.2}", c / m.secs));
        // Records per CPU second: what the load of a shared machine does not change.
        let per_cpu = m
            .cpu
            .map_or("n/a".to_string(), |c| thousands(*size as f64 / c));
        let _ = writeln!(
            s,
            "  {:>12} {:>7}  {:<19} {:>7.2} s {:>11} {:>9} {:>5} {:>9}  {:>16} {:>6}  {how}",
            thousands(*size as f64),
            files,
            mode.label(),
            m.secs,
            thousands(rate(*size, runs)),
            rss,
            busy,
            per_cpu,
            format!(
                "{}/{}",
                thousands(m.stats[2] as f64),
                thousands(m.stats[1] as f64)
            ),
            m.stats[3],
        );
    }
    let _ =
        writeln!(
        s,
        "  (records/s: records of the trail over wall time, each pass reading every file; peak \
         RSS: the largest of the runs; cores: CPU time over wall time of the median run; per \
         CPU-s: its records per CPU second{})",
        if has_time { ", /usr/bin/time -v" } else { "; /usr/bin/time is missing" }
    );
    let mut ratios = Vec::new();
    if !core_rows.is_empty() {
        let _ = writeln!(
            s,
            "  at {} records, one core (taskset -c 0) against both:",
            thousands(core_size as f64)
        );
        for (mode, one) in core_rows {
            let Some((_, _, _, both)) = rows
                .iter()
                .find(|(size, _, m, _)| *size == core_size && m == mode)
            else {
                continue;
            };
            let (a, b) = (
                median(one.iter().map(|r| r.secs).collect()),
                median(both.iter().map(|r| r.secs).collect()),
            );
            let busy = median_run(both)
                .cpu
                .map_or(String::new(), |c| format!(" ({:.2} cores busy)", c / b));
            let _ = writeln!(
                s,
                "    {:<19} 1 core {a:.2} s, {cores} cores {b:.2} s{busy}: {:.2}x (medians of {} \
                 and {})",
                mode.label(),
                a / b,
                one.len(),
                both.len()
            );
            if let Some(c) = median_run(both).cpu {
                if c / b < GOAL_CORES {
                    let _ = writeln!(
                        s,
                        "      (trail-for had only {:.2} of the {cores} cores: other work shares \
                         the machine, see the load average)",
                        c / b
                    );
                }
            }
            ratios.push((*mode, a / b));
        }
    }

    let _ = writeln!(s, "  goals, measured in this run:");
    let largest = rows.iter().map(|r| r.0).max().unwrap_or(0);
    let smallest = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let of = |size: usize, mode: Mode| {
        rows.iter()
            .find(|(sz, _, m, _)| *sz == size && *m == mode)
            .map(|r| &r.3)
    };
    // Peak RSS at 10,000,000 records.
    if largest >= GOAL_RSS_AT && has_time {
        let figs: Vec<(Mode, f64)> = Mode::ALL
            .iter()
            .filter_map(|&m| of(largest, m).and_then(|r| peak_mib(r)).map(|v| (m, v)))
            .collect();
        let ok = figs.iter().all(|(_, v)| *v < GOAL_RSS_MIB);
        let _ = writeln!(
            s,
            "    peak RSS under {GOAL_RSS_MIB:.0} MiB at {}: {}: {}",
            thousands(largest as f64),
            figs.iter()
                .map(|(m, v)| format!("{} {v:.0} MiB", m.short()))
                .collect::<Vec<_>>()
                .join(", "),
            met(ok)
        );
    } else {
        let _ = writeln!(
            s,
            "    peak RSS under {GOAL_RSS_MIB:.0} MiB at {}: not measured (no such row{})",
            thousands(GOAL_RSS_AT as f64),
            if has_time {
                ""
            } else {
                ", or no /usr/bin/time"
            }
        );
    }
    // records/s at the largest size against the smallest.
    if largest > smallest {
        let figs: Vec<(Mode, f64, f64)> = Mode::ALL
            .iter()
            .filter_map(|&m| {
                let big = of(largest, m)?;
                let small = of(smallest, m)?;
                Some((m, rate(largest, big), rate(smallest, small)))
            })
            .collect();
        let ok = figs.iter().all(|(_, b, a)| *b >= GOAL_RATE_KEPT * a);
        let _ = writeln!(
            s,
            "    records/s at {} within {:.0}% of the figure at {}: {}: {}",
            thousands(largest as f64),
            (1.0 - GOAL_RATE_KEPT) * 100.0,
            thousands(smallest as f64),
            figs.iter()
                .map(|(m, b, a)| format!(
                    "{} {} vs {} ({:.2}x)",
                    m.short(),
                    thousands(*b),
                    thousands(*a),
                    b / a
                ))
                .collect::<Vec<_>>()
                .join(", "),
            met(ok)
        );
    } else {
        let _ = writeln!(
            s,
            "    records/s steady as the trail grows: not measured (one size only)"
        );
    }
    if ratios.is_empty() {
        let _ = writeln!(
            s,
            "    both cores at least {GOAL_CORES}x one core: not measured (no taskset)"
        );
    } else {
        let ok = ratios.iter().all(|(_, r)| *r >= GOAL_CORES);
        let _ = writeln!(
            s,
            "    {cores} cores at least {GOAL_CORES}x one core at {}: {}: {}",
            thousands(core_size as f64),
            ratios
                .iter()
                .map(|(m, r)| format!("{} {r:.2}x", m.short()))
                .collect::<Vec<_>>()
                .join(", "),
            met(ok)
        );
    }
    s
}

/// The machine's load averages, for reading the figures of a shared machine.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

fn say(msg: &str) {
    eprintln!("== bench-trail: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = days_from_civil(2025, 11, 10);
        assert_eq!(civil_from_days(d), (2025, 11, 10));
        assert_eq!(civil_from_days(d + 21), (2025, 12, 1));
        assert_eq!(civil_from_days(d + 52), (2026, 1, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }
}
