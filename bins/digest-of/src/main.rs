//! `digest-of`: the process entry; the work is in `lib.rs` and `sigtrail::resolve`.
fn main() -> std::process::ExitCode {
    sigtrail::harness::main(|a: &digest_of::Args| &a.common, digest_of::build)
}
