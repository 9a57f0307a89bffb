//! Entry point: parse flags, run the command, map errors to documented exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sechub_export::cli::Cli::parse();
    sechub_export::cli::init_logging(cli.verbose);
    // SDK futures are large in debug builds; give worker threads the main thread's stack size.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .expect("tokio runtime");
    match runtime.block_on(sechub_export::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", sechub_export::error::one_line(&err));
            std::process::ExitCode::from(err.exit_code() as u8)
        }
    }
}
