//! `attach-sig`: the process entry; the work is in `lib.rs` and `sigtrail::attach`.
fn main() -> std::process::ExitCode {
    sigtrail::harness::main(|a: &attach_sig::Args| &a.common, attach_sig::build)
}
