//! `kms-sign`: the process entry; the tool lives in `lib.rs`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = kms_sign::Args::parse();
    let code = if args.public_key {
        kms_sign::print_public_key(&args)
    } else {
        sigtrail::harness::main(|a: &kms_sign::Args| &a.common, kms_sign::build)
    };
    kms_sign::report_kms_calls();
    code
}
