//! Fuzz target: the record reader, the way every tool reads its input.
//!
//! The input is a whole stdin: `harness::run` splits it into lines, reads each as a JSON record
//! or a plain reference (`record::parse_line`), classifies bad lines as `bad_record`, and hands
//! the rest to a tool that does what every tool does first: find the record's reference and
//! parse it. Nothing may be lost: exactly one JSON object out per non-blank line in, in order.
#![no_main]

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sigtrail::harness::{self, Done, RunOptions, Tool};
use sigtrail::reference::ImageRef;
use sigtrail::{Error, Record};

struct ReadReference;

impl Tool for ReadReference {
    const NAME: &'static str = "fuzz";
    async fn process(&self, record: &mut Record) -> Result<Done, Error> {
        let reference = sigtrail::resolve::record_reference(record)?;
        let image = ImageRef::parse(&reference)?;
        record.insert("ref".into(), Value::String(image.to_string()));
        Ok(Done::ok())
    }
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::ErrorKind::Other)?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let sink = Sink::default();
    let options = RunOptions {
        jobs: 4,
        filter: None,
        quiet: true,
        progress: false,
    };
    let summary = harness::run(
        runtime(),
        Arc::new(ReadReference),
        options,
        data,
        sink.clone(),
    );

    // The records as read, one per non-blank line (`Err` for a line that is not a record).
    let read: Vec<Result<Record, ()>> = data
        .split(|b| *b == b'\n')
        .filter_map(
            |l| match sigtrail::record::parse_line(&String::from_utf8_lossy(l)) {
                Ok(None) => None,
                Ok(Some(rec)) => Some(Ok(rec)),
                Err(_) => Some(Err(())),
            },
        )
        .collect();
    let out = sink.0.lock().expect("sink").clone();
    let text = std::str::from_utf8(&out).expect("output is UTF-8");
    let records: Vec<Record> = text
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("output line {l:?} is not a JSON object: {other:?}"),
        })
        .collect();
    assert_eq!(records.len(), read.len(), "records lost or duplicated");
    assert_eq!(summary.records as usize, read.len());
    assert_eq!(summary.ok + summary.failed_total(), summary.records);
    for (input, output) in read.iter().zip(&records) {
        match input {
            // A record an earlier tool failed passes through untouched.
            Ok(rec) if sigtrail::record::has_error(rec) => assert_eq!(rec, output),
            Ok(_) | Err(()) => match output.get("error") {
                Some(err) => {
                    assert_eq!(err.get("tool"), Some(&Value::from(ReadReference::NAME)));
                    let kind = err.get("kind").and_then(Value::as_str).unwrap_or("");
                    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
                    assert!(
                        !kind.is_empty() && !message.is_empty(),
                        "unclear error {err}"
                    );
                }
                None => {
                    let rec = input.as_ref().expect("a line that is not a record failed");
                    assert!(
                        output.contains_key("ref"),
                        "neither failed nor done: {output:?}"
                    );
                    // Fields the tool does not own pass through in order.
                    let mut kept = output.clone();
                    kept.remove("ref");
                    let mut before = rec.clone();
                    before.remove("ref");
                    assert_eq!(before, kept);
                }
            },
        }
    }
});
