//! The `latchkey` binary: all logic lives in the library.

fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
