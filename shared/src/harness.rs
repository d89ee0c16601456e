//! The one harness every tool runs in: it owns stdin, stdout, stderr and the exit code.
//!
//! A tool is a [`Tool`]: it works on one selected record at a time. The harness reads input
//! (positional references, or stdin lines: JSON records or plain references), chooses records
//! with `--where`, runs up to `--jobs` records at once, writes records in input order as soon as
//! they and all records before them are done, reports failures on stderr, and decides the exit
//! status at the end ([`exit`]). Records that already carry `error` pass through untouched.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;

use crate::error::Error;
use crate::filter::WhereFilter;
use crate::record::{self, Record};

tokio::task_local! {
    static RECORD_NUMBER: u64;
}

/// The position in the input, from 0, of the record [`Tool::process`] is working on (for a tool
/// that keeps something per record in input order while `--jobs` finish records out of order);
/// `None` outside a run or in a task the tool spawned itself.
pub fn record_number() -> Option<u64> {
    RECORD_NUMBER.try_with(|n| *n).ok()
}

/// Exit statuses, the same for every tool.
pub mod exit {
    /// Every record succeeded.
    pub const OK: u8 = 0;
    /// At least one record failed (an error, or a failed verification).
    pub const FAILED: u8 = 1;
    /// Usage or configuration error before any record was processed.
    pub const USAGE: u8 = 2;
}

/// Longest input line accepted (a record is small; anything bigger is hostile or a mistake).
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Flags every tool shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Image references to work on; without any, records or references are read from stdin
    #[arg(value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Records worked on at once (output stays in input order) [default: the tool's own]
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub jobs: Option<u16>,
    /// Act only on records this jq filter selects (truthy first output); others pass through
    #[arg(long = "where", value_name = "JQ")]
    pub where_filter: Option<String>,
    /// No progress bar and no summary on stderr (failures are still reported)
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// What a tool did with one record.
#[derive(Debug, Default)]
pub struct Done {
    /// `Some(kind)` when the record failed without an error (a verification that did not pass)
    pub failure: Option<String>,
    /// Records to emit right after this one (for example one per platform of an index)
    pub extra: Vec<Record>,
}

impl Done {
    /// The record succeeded.
    pub fn ok() -> Self {
        Self::default()
    }

    /// The record was processed but did not pass; `kind` goes into the summary.
    pub fn failed(kind: impl Into<String>) -> Self {
        Self {
            failure: Some(kind.into()),
            extra: Vec::new(),
        }
    }
}

/// One tool: the work on a single record.
pub trait Tool: Send + Sync + 'static {
    /// The command name, used in `error.tool` and on stderr.
    const NAME: &'static str;
    /// `--jobs` when the user gives none.
    const DEFAULT_JOBS: u16 = 8;

    /// Works on one selected record, adding the fields the tool owns.
    ///
    /// On `Err`, the harness attaches `error` to the record as it was before the call.
    fn process(&self, record: &mut Record) -> impl Future<Output = Result<Done, Error>> + Send;

    /// Records the tool makes itself instead of reading input (`trail-for --key-usage` reads
    /// the audit trail, not images). `Some` replaces stdin and positional arguments; each
    /// record then goes through `--where` and [`Tool::process`] like a record read from input.
    /// An `Err` is a configuration error (exit 2). The default reads input as usual.
    fn generate(&self) -> impl Future<Output = Result<Option<Vec<Record>>, Error>> + Send {
        async { Ok(None) }
    }

    /// Whether the tool must see every input record before it processes the first one
    /// (`trail-for`, which loads the audit trail once, keeping only what those records can
    /// use). Input is then read to its end first, and given to [`Tool::prepare`].
    const READS_ALL_INPUT: bool = false;

    /// With [`Tool::READS_ALL_INPUT`]: every record selected for [`Tool::process`], once,
    /// before any is processed.
    fn prepare(&self, _records: &[Record]) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How one run behaves (from [`Common`]).
pub struct RunOptions {
    pub jobs: usize,
    pub filter: Option<WhereFilter>,
    pub quiet: bool,
    pub progress: bool,
}

/// Counts for the summary and the exit status.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub records: u64,
    pub ok: u64,
    pub skipped: u64,
    pub failed: std::collections::BTreeMap<String, u64>,
}

impl Summary {
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    fn line(&self, tool: &str) -> String {
        let mut s = format!("{tool}: {} records: {} ok", self.records, self.ok);
        if self.skipped > 0 {
            s += &format!(", {} not selected", self.skipped);
        }
        if !self.failed.is_empty() {
            let kinds: Vec<String> = self
                .failed
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            s += &format!(", {} failed ({})", self.failed_total(), kinds.join(", "));
        }
        s
    }
}

/// The process entry point of every tool: parse flags, build the tool, run, exit.
///
/// `build` turns the parsed arguments into the tool; its error is a configuration error (exit 2).
pub fn main<A, T, F, Fut>(common: fn(&A) -> &Common, build: F) -> ExitCode
where
    A: clap::Parser,
    T: Tool,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let args = A::parse();
    let common = common(&args).clone();
    let fail = |msg: String| {
        eprintln!("{}: {msg}", T::NAME);
        ExitCode::from(exit::USAGE)
    };
    let filter = match common
        .where_filter
        .as_deref()
        .map(WhereFilter::compile)
        .transpose()
    {
        Ok(f) => f,
        Err(msg) => return fail(msg),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let tool = match runtime.block_on(build(args)) {
        Ok(tool) => Arc::new(tool),
        Err(e) => return fail(format!("{e:#}")),
    };
    let generated = match runtime.block_on(tool.generate()) {
        Ok(generated) => generated,
        Err(e) => return fail(e.message),
    };
    let stdin = std::io::stdin();
    let input: Box<dyn BufRead> = if let Some(records) = generated {
        let mut lines = Vec::new();
        for rec in &records {
            // A Map of JSON values always serializes.
            serde_json::to_writer(&mut lines, rec).expect("record serializes");
            lines.push(b'\n');
        }
        Box::new(std::io::Cursor::new(lines))
    } else if !common.images.is_empty() {
        Box::new(std::io::Cursor::new(common.images.join("\n").into_bytes()))
    } else if stdin.is_terminal() {
        return fail(
            "no input: give image references as arguments, or pipe references or records on stdin \
             (see --help)"
                .into(),
        );
    } else {
        Box::new(stdin.lock())
    };
    let stderr_tty = std::io::stderr().is_terminal();
    let options = RunOptions {
        jobs: usize::from(common.jobs.unwrap_or(T::DEFAULT_JOBS)),
        filter,
        quiet: common.quiet,
        progress: stderr_tty && !common.quiet && std::env::var_os("CI").is_none(),
    };
    let summary = run(&runtime, tool, options, input, std::io::stdout());
    let code = if summary.failed_total() > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    // Outstanding requests are abandoned, not awaited: every record has been written by now.
    runtime.shutdown_background();
    ExitCode::from(code)
}

/// What the reader sends to the worker: a record, and whether the tool should act on it.
enum Item {
    Work(Record),
    /// Passed through as is; `Some(kind)` when it counts as failed.
    Pass(Record, Option<String>),
    /// Not selected by `--where`.
    Skip(Record),
}

/// What the worker got back for one item.
struct Outcome {
    records: Vec<Record>,
    failure: Option<(String, String)>,
    skipped: bool,
}

/// Runs `tool` over every record of `input`, writing records to `output`; returns the counts.
///
/// Input is read on the calling thread (the `--where` filter lives there); records are processed
/// on the runtime. A write error on `output` (a closed pipe) ends the run quietly.
pub fn run<T: Tool>(
    runtime: &tokio::runtime::Runtime,
    tool: Arc<T>,
    options: RunOptions,
    mut input: impl BufRead,
    output: impl Write + Send + 'static,
) -> Summary {
    let jobs = options.jobs.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(jobs);
    let progress = if options.progress {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {pos} records {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(T::NAME);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let worker = runtime.spawn(write_outcomes(
        tool.clone(),
        rx,
        jobs,
        output,
        progress.clone(),
    ));
    // With READS_ALL_INPUT, items wait here until the input has ended.
    let mut held: Vec<Item> = Vec::new();

    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match std::io::Read::take(&mut input, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let mut rec = Record::new();
                rec.insert("input".into(), Value::Null);
                let err = Error::new("input", format!("cannot read input: {e}"));
                let _ = tx.blocking_send(fail_item(rec, &err, T::NAME));
                break;
            }
        };
        let item = if n > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
            // Skip the rest of the oversized line so the next record is read correctly.
            let mut sink = Vec::new();
            while let Ok(m) = std::io::Read::take(&mut input, 1 << 20).read_until(b'\n', &mut sink)
            {
                if m == 0 || sink.ends_with(b"\n") {
                    break;
                }
                sink.clear();
            }
            let mut rec = Record::new();
            rec.insert("input".into(), Value::String(format!("<{n}+ bytes>")));
            let err = Error::new(
                "bad_record",
                format!("input line longer than {MAX_LINE_BYTES} bytes; not read"),
            );
            fail_item(rec, &err, T::NAME)
        } else {
            let line = String::from_utf8_lossy(&buf);
            match record::parse_line(&line) {
                Ok(None) => continue,
                Ok(Some(rec)) => select(rec, options.filter.as_ref(), T::NAME),
                Err((rec, msg)) => fail_item(rec, &Error::new("bad_record", msg), T::NAME),
            }
        };
        if T::READS_ALL_INPUT {
            held.push(item);
            continue;
        }
        if tx.blocking_send(item).is_err() {
            break; // the worker stopped: output is closed
        }
    }
    if T::READS_ALL_INPUT {
        let selected: Vec<Record> = held
            .iter()
            .filter_map(|i| match i {
                Item::Work(rec) => Some(rec.clone()),
                _ => None,
            })
            .collect();
        runtime.block_on(tool.prepare(&selected));
        drop(selected);
        for item in held {
            if tx.blocking_send(item).is_err() {
                break;
            }
        }
    }
    drop(tx);
    let summary = runtime.block_on(worker).unwrap_or_default();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if !options.quiet {
        eprintln!("{}", summary.line(T::NAME));
    }
    summary
}

fn fail_item(mut rec: Record, err: &Error, tool: &str) -> Item {
    rec.insert("error".into(), err.to_json(tool));
    Item::Pass(rec, Some(err.kind.to_string()))
}

fn select(rec: Record, filter: Option<&WhereFilter>, tool: &str) -> Item {
    if record::has_error(&rec) {
        let kind = rec["error"]
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_string();
        return Item::Pass(rec, Some(kind));
    }
    match filter.map(|f| f.selects(&rec)) {
        None | Some(Ok(true)) => Item::Work(rec),
        Some(Ok(false)) => Item::Skip(rec),
        Some(Err(msg)) => fail_item(rec, &Error::new("where_filter", msg), tool),
    }
}

/// The worker: processes up to `jobs` items at once and writes them in input order.
async fn write_outcomes<T: Tool>(
    tool: Arc<T>,
    rx: tokio::sync::mpsc::Receiver<Item>,
    jobs: usize,
    mut output: impl Write,
    progress: Option<indicatif::ProgressBar>,
) -> Summary {
    let items =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let outcomes = items
        .enumerate()
        .map(|(n, item)| {
            let tool = tool.clone();
            let task = tokio::spawn(
                RECORD_NUMBER.scope(n as u64, async move { outcome(&*tool, item).await }),
            );
            async move {
                task.await.unwrap_or_else(|e| Outcome {
                    records: Vec::new(),
                    failure: Some(("internal".into(), format!("internal error: {e}"))),
                    skipped: false,
                })
            }
        })
        .buffered(jobs);
    let mut outcomes = std::pin::pin!(outcomes);
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(1024);
    while let Some(out) = outcomes.next().await {
        summary.records += 1;
        match &out.failure {
            Some((kind, message)) => {
                *summary.failed.entry(kind.clone()).or_default() += 1;
                let label = out.records.first().map(label).unwrap_or_default();
                let msg = format!("{}: {label}: {message}", T::NAME);
                match &progress {
                    Some(bar) => bar.println(msg),
                    None => eprintln!("{msg}"),
                }
            }
            None if out.skipped => summary.skipped += 1,
            None => summary.ok += 1,
        }
        if let Some(bar) = &progress {
            bar.inc(1);
            if !summary.failed.is_empty() {
                bar.set_message(format!("({} failed)", summary.failed_total()));
            }
        }
        for rec in &out.records {
            line.clear();
            // A Map of JSON values always serializes.
            serde_json::to_writer(&mut line, rec).expect("record serializes");
            line.push(b'\n');
            if output
                .write_all(&line)
                .and_then(|_| output.flush())
                .is_err()
            {
                return summary; // closed stdout: end quietly
            }
        }
    }
    summary
}

async fn outcome<T: Tool>(tool: &T, item: Item) -> Outcome {
    match item {
        Item::Skip(rec) => Outcome {
            records: vec![rec],
            failure: None,
            skipped: true,
        },
        Item::Pass(rec, failure) => {
            let failure = failure.map(|kind| {
                let message = rec["error"]
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let message = format!("{message} ({kind})");
                (kind, message)
            });
            Outcome {
                records: vec![rec],
                failure,
                skipped: false,
            }
        }
        Item::Work(rec) => {
            let mut working = rec.clone();
            match tool.process(&mut working).await {
                Ok(done) => {
                    let failure = done
                        .failure
                        .map(|kind| (kind.clone(), kind.replace('_', " ")));
                    let mut records = vec![working];
                    records.extend(done.extra);
                    Outcome {
                        records,
                        failure,
                        skipped: false,
                    }
                }
                Err(err) => {
                    let mut rec = rec;
                    rec.insert("error".into(), err.to_json(T::NAME));
                    let failure = Some((
                        err.kind.to_string(),
                        format!("{} ({})", err.message, err.kind),
                    ));
                    Outcome {
                        records: vec![rec],
                        failure,
                        skipped: false,
                    }
                }
            }
        }
    }
}

/// A short name for a record on stderr: its image, reference or digest.
fn label(rec: &Record) -> String {
    ["ref", "image", "digest", "input"]
        .iter()
        .find_map(|f| record::get_str(rec, f))
        .map(|s| s.chars().take(200).filter(|c| !c.is_control()).collect())
        .unwrap_or_else(|| "record".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Test tool: adds `n * 2`, fails on `n == 3`, marks `n == 4` as a failed verification,
    /// emits an extra record for `n == 5`, and sleeps longer for earlier records.
    struct Double;

    impl Tool for Double {
        const NAME: &'static str = "double";
        async fn process(&self, rec: &mut Record) -> Result<Done, Error> {
            let n = rec
                .get("n")
                .and_then(Value::as_u64)
                .ok_or_else(|| Error::new("bad_input", "no n"))?;
            tokio::time::sleep(std::time::Duration::from_millis(
                20u64.saturating_sub(n * 3),
            ))
            .await;
            match n {
                3 => return Err(Error::new("boom", "three is not allowed")),
                4 => return Ok(Done::failed("not_verified")),
                _ => {}
            }
            rec.insert("double".into(), (n * 2).into());
            let mut done = Done::ok();
            if n == 5 {
                let mut extra = Record::new();
                extra.insert("extra".into(), true.into());
                done.extra.push(extra);
            }
            Ok(done)
        }
    }

    /// Test tool: adds the record's number, later records finishing first.
    struct Numbered;

    impl Tool for Numbered {
        const NAME: &'static str = "numbered";
        async fn process(&self, rec: &mut Record) -> Result<Done, Error> {
            let first = record_number();
            let n = first.unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(
                40u64.saturating_sub(n * 4),
            ))
            .await;
            if record_number() != first {
                return Err(Error::new("moved", "the number changed across an await"));
            }
            rec.insert("no".into(), first.into());
            Ok(Done::ok())
        }
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn check(input: &str, filter: Option<&str>, expect: &str) -> Summary {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let out = Shared::default();
        let options = RunOptions {
            jobs: 4,
            filter: filter.map(|f| WhereFilter::compile(f).unwrap()),
            quiet: true,
            progress: false,
        };
        let summary = run(
            &rt,
            Arc::new(Double),
            options,
            input.as_bytes(),
            out.clone(),
        );
        let got = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(got, expect);
        summary
    }

    #[test]
    fn records_keep_order_and_fields() {
        let s = check(
            "{\"z\":0,\"n\":1}\n\n{\"n\":2,\"a\":[1]}\n",
            None,
            "{\"z\":0,\"n\":1,\"double\":2}\n{\"n\":2,\"a\":[1],\"double\":4}\n",
        );
        assert_eq!((s.records, s.ok, s.failed_total()), (2, 2, 0));
    }

    #[test]
    fn failures_flow_on_and_are_counted() {
        let expect = concat!(
            "{\"n\":3,\"error\":{\"tool\":\"double\",\"kind\":\"boom\",\"message\":\"three is not allowed\"}}\n",
            "{\"n\":4}\n",
            "{\"n\":5,\"double\":10}\n{\"extra\":true}\n",
            "{\"image\":\"not json but a reference\",\"error\":{\"tool\":\"double\",\"kind\":\"bad_input\",\"message\":\"no n\"}}\n",
            "{\"input\":\"{\\\"n\\\":\",\"error\":{\"tool\":\"double\",\"kind\":\"bad_record\",\"message\":\"input line is not valid JSON: EOF while parsing a value at line 1 column 5\"}}\n",
        );
        let input = "{\"n\":3}\n{\"n\":4}\n{\"n\":5}\nnot json but a reference\n{\"n\":\n";
        let s = check(input, None, expect);
        assert_eq!(s.records, 5);
        assert_eq!(s.ok, 1);
        assert_eq!(s.failed.get("boom"), Some(&1));
        assert_eq!(s.failed.get("not_verified"), Some(&1));
        assert_eq!(s.failed.get("bad_record"), Some(&1));
    }

    #[test]
    fn upstream_errors_pass_untouched_and_where_selects() {
        let s = check(
            "{\"n\":1,\"error\":{\"tool\":\"x\",\"kind\":\"k\",\"message\":\"m\"}}\n{\"n\":2}\n{\"n\":6}\n",
            Some(".n > 4"),
            "{\"n\":1,\"error\":{\"tool\":\"x\",\"kind\":\"k\",\"message\":\"m\"}}\n{\"n\":2}\n{\"n\":6,\"double\":12}\n",
        );
        assert_eq!((s.records, s.ok, s.skipped, s.failed_total()), (3, 1, 1, 1));
    }

    #[test]
    fn process_knows_its_record_number() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let out = Shared::default();
        let options = RunOptions {
            jobs: 8,
            filter: None,
            quiet: true,
            progress: false,
        };
        let input: String = (0..10).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let summary = run(
            &rt,
            Arc::new(Numbered),
            options,
            input.as_bytes(),
            out.clone(),
        );
        assert_eq!(summary.ok, 10);
        let got = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let expect: String = (0..10)
            .map(|i| format!("{{\"i\":{i},\"no\":{i}}}\n"))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(record_number(), None, "outside a run");
    }

    #[test]
    fn many_records_stay_in_order() {
        let input: String = (0..200)
            .map(|i| format!("{{\"i\":{i},\"n\":{}}}\n", i % 3))
            .collect();
        let expect: String = (0..200)
            .map(|i| format!("{{\"i\":{i},\"n\":{},\"double\":{}}}\n", i % 3, (i % 3) * 2))
            .collect();
        check(&input, None, &expect);
    }
}
