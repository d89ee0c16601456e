//! `trail-for`: the audit trail of signed images (see the library's doc for flags and records).
use std::process::ExitCode;

fn main() -> ExitCode {
    sigtrail::harness::main(|a: &trail_for::Args| &a.common, trail_for::build)
}
