//! `cloudtrail-seal RECORDS.jsonl DIR KEYS.json`: for the demo (moto writes no CloudTrail), the
//! CloudTrail records of RECORDS.jsonl as log files in AWS's layout under DIR, one file per
//! record, sealed with the hourly digest chain CloudTrail would write, signed by a fresh RSA-2048
//! key standing for CloudTrail's; that key goes to KEYS.json as `aws cloudtrail
//! list-public-keys --output json` prints it (for `trail-for --cloudtrail-public-keys`). Prints
//! each log file's path and event id, tab-separated.

use std::process::ExitCode;

use sigtrail_tests::digests::{seal_with, CloudTrailKey, BUCKET, TRAIL};
use sigtrail_tests::trail::write_log_files;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [records, dir, keys] = args.as_slice() else {
        eprintln!("usage: cloudtrail-seal RECORDS.jsonl DIR KEYS.json");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(records) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cloudtrail-seal: {records}: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::path::Path::new(dir);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let record: serde_json::Value = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cloudtrail-seal: {records} line {}: {e}", i + 1);
                return ExitCode::from(2);
            }
        };
        for rel in write_log_files(dir, std::slice::from_ref(&record), &format!("r{i:04}-")) {
            println!("{rel}\t{}", record["eventID"].as_str().unwrap_or_default());
        }
    }
    let key = CloudTrailKey::generate();
    seal_with(dir, BUCKET, &key, TRAIL);
    key.write_keys(std::path::Path::new(keys));
    ExitCode::SUCCESS
}
