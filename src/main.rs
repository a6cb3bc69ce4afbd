use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hearth::cli::Cli::parse_from(hearth::cli::common::rewrite_ngl(std::env::args_os()));
    match hearth::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
