use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = hearth::cli::Cli::parse();
    match hearth::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
