//! `check-sig`: verifies cosign signatures of image records (see the library for the details).

fn main() -> std::process::ExitCode {
    check_sig::main()
}
