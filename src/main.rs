//! Entry point: parse flags, run the command, map errors to documented exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sechub_export::cli::Cli::parse();
    sechub_export::cli::init_logging(cli.verbose);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(sechub_export::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", sechub_export::error::one_line(&err));
            std::process::ExitCode::from(err.exit_code() as u8)
        }
    }
}
