//! Entry point: parse flags, run the command, map errors to documented exit codes.

use sechub_export::{cli, error::one_line, lambda, ExitCode};

fn main() -> std::process::ExitCode {
    if lambda::invoked_by_lambda() {
        cli::init_json_logging();
        return match cli::runtime().block_on(lambda::serve()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("the Lambda runtime stopped: {err}");
                std::process::ExitCode::from(ExitCode::Internal as u8)
            }
        };
    }
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("error: {message}; see `sechub-export --help`");
            return std::process::ExitCode::from(ExitCode::Usage as u8);
        }
    };
    cli::init_logging(cli.verbose);
    let _crash_points = fail::FailScenario::setup();
    match cli::runtime().block_on(cli::run(cli)) {
        Ok(output) => {
            output.iter().for_each(|text| cli::print_line(text));
            std::process::ExitCode::SUCCESS
        }
        Err(err @ sechub_export::Error::Stopped { .. }) => {
            eprintln!("stopped: {}", one_line(&err));
            std::process::ExitCode::from(err.exit_code() as u8)
        }
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::from(err.exit_code() as u8)
        }
    }
}
