//! Entry point: parse flags, run the command, map errors to documented exit codes.

use clap::Parser;
use sechub_export::cli::Cli;
use sechub_export::error::one_line;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("error: {first}; see `sechub-export --help`");
            return std::process::ExitCode::from(sechub_export::ExitCode::Usage as u8);
        }
    };
    sechub_export::cli::init_logging(cli.verbose);
    let _crash_points = fail::FailScenario::setup();
    // SDK futures are large in debug builds; give worker threads the main thread's stack size.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .expect("tokio runtime");
    match runtime.block_on(sechub_export::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            std::process::ExitCode::from(err.exit_code() as u8)
        }
    }
}
