//! The `latch` binary: see `latch --help`.

fn main() -> std::process::ExitCode {
    latch_server::cli::main()
}
