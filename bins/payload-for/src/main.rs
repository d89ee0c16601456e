//! `payload-for`: the process entry; the tool lives in `lib.rs`.
fn main() -> std::process::ExitCode {
    sigtrail::harness::main(|a: &payload_for::Args| &a.common, payload_for::build)
}
