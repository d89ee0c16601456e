//! Running a tool on hostile input and checking that it failed well: no panic, every input
//! record out again, the expected error kind, bounded memory and time, a short stderr.

use std::process::{Command, Output};

use serde_json::Value;

use crate::{run, tool};

/// Address space a tool may use on hostile input (`prlimit --as`): a 20 MB line or a 100 MB
/// manifest must not be read whole into memory, so a few hundred MB is plenty.
pub const MAX_ADDRESS_SPACE: u64 = 1 << 30;
/// Wall-clock seconds a tool may take on one case (`timeout`): hostile input must not hang it.
pub const MAX_SECONDS: u32 = 120;
/// Bytes of stderr a tool may write per record (plus the summary): errors are one short line,
/// never an echo of the input.
pub const MAX_STDERR_PER_RECORD: usize = 1024;

/// The tool as a command under `timeout` and `prlimit --as`, so a hang or unbounded memory use
/// fails the case instead of the machine.
pub fn bounded_tool(name: &str) -> Command {
    let inner = tool(name);
    let mut cmd = Command::new("timeout");
    cmd.arg(MAX_SECONDS.to_string())
        .arg("prlimit")
        .arg(format!("--as={MAX_ADDRESS_SPACE}"))
        .arg("--")
        .arg(inner.get_program());
    cmd
}

/// How many records the harness must write for `input`: one per line that is not blank.
pub fn input_records(input: &[u8]) -> usize {
    input
        .split(|b| *b == b'\n')
        .filter(|line| !String::from_utf8_lossy(line).trim().is_empty())
        .count()
}

/// The records a tool wrote; panics (with the case) on a line that is not a JSON object.
pub fn output_records(case: &str, stdout: &[u8]) -> Vec<serde_json::Map<String, Value>> {
    let text =
        std::str::from_utf8(stdout).unwrap_or_else(|e| panic!("{case}: stdout is not UTF-8: {e}"));
    text.lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            _ => panic!(
                "{case}: stdout line is not a JSON object: {:?}",
                l.chars().take(300).collect::<String>()
            ),
        })
        .collect()
}

/// The error kind of a record; for a check-sig record that did not verify,
/// `unverified:CHECK` with the first signature's `failed_check` (or the verification's
/// `failure`); `"ok"` otherwise.
pub fn kind_of(rec: &serde_json::Map<String, Value>) -> String {
    if let Some(kind) = rec
        .get("error")
        .and_then(|e| e.get("kind"))
        .and_then(Value::as_str)
    {
        return kind.to_string();
    }
    let Some(v) = rec.get("verification") else {
        return "ok".into();
    };
    if v.get("verified") == Some(&Value::Bool(true)) {
        return "ok".into();
    }
    let check = v
        .get("signatures")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("failed_check"))
        .or_else(|| v.get("failure"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("unverified:{check}")
}

/// Asserts the process ended by itself with 0, 1 or 2 and did not panic.
pub fn assert_no_panic(case: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{case}: the tool panicked:\n{}",
        stderr.chars().take(4000).collect::<String>()
    );
    let code = out.status.code();
    assert!(
        matches!(code, Some(0..=2)),
        "{case}: exit status {:?} (124 = timed out after {MAX_SECONDS}s, 101 = panic, \
         none = killed, e.g. out of its {MAX_ADDRESS_SPACE}-byte address space)\nstderr:\n{}",
        out.status,
        stderr.chars().take(4000).collect::<String>()
    );
}

/// Runs `name args` on `input` under the bounds and checks the outcome.
///
/// `expect` is a comma-separated list of kinds ([`kind_of`]), one per input record, or a
/// single kind that every record must carry. Checks: no panic, exit 0 when all are `ok` and 1
/// otherwise, exactly one output record per input record, each with its expected kind and a
/// non-empty message, and a bounded stderr. Returns the records for further checks.
pub fn check(
    name: &str,
    args: &[&str],
    input: impl AsRef<[u8]>,
    expect: &str,
) -> Vec<serde_json::Map<String, Value>> {
    let mut cmd = bounded_tool(name);
    cmd.args(args);
    check_command(&format!("{name} {args:?}"), cmd, input, expect)
}

/// [`check`] with a command of the caller's (from [`bounded_tool`], with its environment).
pub fn check_command(
    what: &str,
    mut cmd: Command,
    input: impl AsRef<[u8]>,
    expect: &str,
) -> Vec<serde_json::Map<String, Value>> {
    let input = input.as_ref();
    let case = format!(
        "{what} on {:?}{}",
        String::from_utf8_lossy(&input[..input.len().min(120)]),
        if input.len() > 120 { "..." } else { "" }
    );
    let out = run(&mut cmd, input);
    assert_no_panic(&case, &out);
    let records = output_records(&case, &out.stdout);
    let n = input_records(input);
    assert!(
        out.stderr.len() <= MAX_STDERR_PER_RECORD * (n + 4),
        "{case}: {} bytes of stderr for {n} records",
        out.stderr.len()
    );
    assert_eq!(
        records.len(),
        n,
        "{case}: {n} records in, {} out",
        records.len()
    );
    let kinds: Vec<&str> = expect.split(',').collect();
    let expected: Vec<&str> = if kinds.len() == 1 {
        vec![kinds[0]; n]
    } else {
        assert_eq!(
            kinds.len(),
            n,
            "{case}: the case lists {} kinds",
            kinds.len()
        );
        kinds
    };
    let got: Vec<String> = records.iter().map(kind_of).collect();
    assert_eq!(
        got,
        expected,
        "{case}: error kinds differ; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
            .chars()
            .take(4000)
            .collect::<String>()
    );
    for rec in &records {
        if let Some(err) = rec.get("error") {
            let msg = err.get("message").and_then(Value::as_str).unwrap_or("");
            assert!(!msg.is_empty(), "{case}: error without message: {err}");
            assert!(
                msg.len() < 4096,
                "{case}: a {}-byte error message (an echo of the input?)",
                msg.len()
            );
        }
    }
    let want = if expected.iter().all(|k| *k == "ok") {
        0
    } else {
        1
    };
    assert_eq!(
        out.status.code(),
        Some(want),
        "{case}: exit status; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    records
}

/// Peak resident memory (KiB) of `cmd` run on `input`, from `/usr/bin/time -v`, with its output.
pub fn peak_rss_kib(cmd: &std::process::Command, input: &[u8]) -> (u64, std::process::Output) {
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed.arg("-v").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let out = run(&mut timed, input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kib = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time -v: {stderr}"));
    (kib, out)
}
