fn main() -> std::process::ExitCode {
    rekey::cli::main()
}
