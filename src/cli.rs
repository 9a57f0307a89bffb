//! Command-line interface: flags (clap derive), logging, and dispatch to the commands.

use clap::{Args, Parser, Subcommand};

use crate::aws::AwsSettings;
use crate::commands;
use crate::error::Result;
use crate::plan::ExportRequest;

/// Bulk-export AWS Security Hub findings into an Athena-ready Parquet lake.
#[derive(Debug, Parser)]
#[command(name = "sechub-export", version, about)]
#[allow(missing_docs)]
pub struct Cli {
    /// More log detail (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(missing_docs)]
pub enum Command {
    /// Export findings to s3://bucket/prefix or a local folder; re-run the same command to resume.
    Export(ExportFlags),
    /// Show a job's checkpoint, or list the jobs at a destination.
    Status(StatusFlags),
    /// Try the whole export offline: a local emulator feeds a real export into a local lake.
    #[cfg(feature = "emulator")]
    Demo(DemoFlags),
    /// Serve a local Security Hub GetFindings emulator (quota, faults) until Ctrl-C.
    #[cfg(feature = "emulator")]
    Emulator(EmulatorFlags),
    /// Print the emulator's generated findings as NDJSON (sample data, test and bench input).
    #[cfg(feature = "emulator")]
    Generate(GenerateFlags),
    /// Print the Athena DDL (table with partition projection, and a `latest` view) for a destination.
    AthenaDdl(AthenaDdlFlags),
    /// Prove a job's export is complete: manifest, objects, footer row counts and SSM count agree.
    Verify(VerifyFlags),
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct AthenaDdlFlags {
    /// The export destination, s3://bucket/prefix.
    #[arg(long)]
    pub destination: String,
    /// Glue database.
    #[arg(long, default_value = "securityhub")]
    pub database: String,
    /// Table name (the view is <table>_latest).
    #[arg(long, default_value = "findings")]
    pub table: String,
    /// Write the DDL to this file instead of standard output.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct VerifyFlags {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    /// The job to verify.
    #[arg(long)]
    pub job_id: String,
    /// SSM parameter to compare with the rows; `none` skips it (default: as `export`).
    #[arg(long)]
    pub progress_parameter: Option<String>,
    /// Also download every part and check its SHA-256.
    #[arg(long)]
    pub deep: bool,
    #[command(flatten)]
    pub aws: AwsSettings,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct GenerateFlags {
    /// How many findings.
    #[arg(long, default_value_t = 1000)]
    pub findings: u64,
    /// Seed (the same seed gives the same findings).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct DemoFlags {
    /// Findings the emulator holds.
    #[arg(long, default_value_t = 20_000)]
    pub findings: u64,
    /// Quota of the emulator and rate of the export (use 3 to watch the real pace).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Burst of the emulator's quota and of the export (the service allows 6).
    #[arg(long, default_value_t = 100)]
    pub burst: u32,
    /// Folder of the demo lake.
    #[arg(long, default_value = "sechub-demo-lake")]
    pub destination: std::path::PathBuf,
    /// Seed of the generated findings.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct EmulatorFlags {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:4599")]
    pub listen: std::net::SocketAddr,
    /// Generated findings to serve.
    #[arg(long, default_value_t = 10_000)]
    pub findings: u64,
    /// Seed of the generated findings and of the fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Serve findings from a file instead: NDJSON or `aws securityhub get-findings` output.
    #[arg(long)]
    pub load: Option<std::path::PathBuf>,
    /// Quota: requests per second.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Quota: burst.
    #[arg(long, default_value_t = 6)]
    pub burst: u32,
    /// Share of in-quota requests answered 429 anyway.
    #[arg(long, default_value_t = 0.0)]
    pub throttle_probability: f64,
    /// Share answered 500 InternalException.
    #[arg(long, default_value_t = 0.0)]
    pub error_probability: f64,
    /// Added latency per request, uniform in 0..=N ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of responses whose connection drops halfway.
    #[arg(long, default_value_t = 0.0)]
    pub drop_probability: f64,
    /// After N pages, reject every NextToken issued so far (once).
    #[arg(long)]
    pub invalid_token_after_pages: Option<u64>,
}

/// `export`: the request (shared with events) and the terminal's own flag.
#[derive(Debug, Args)]
pub struct ExportFlags {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub request: ExportRequest,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct StatusFlags {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    /// The job to show; without it, every job at the destination is listed.
    #[arg(long)]
    pub job_id: Option<String>,
    #[command(flatten)]
    pub aws: AwsSettings,
}

/// Parses the command line; `--help` and `--version` print and exit here, other errors come
/// back as their first line.
pub fn parse() -> std::result::Result<Cli, String> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            Err(first.trim_start_matches("error: ").to_string())
        }
    }
}

/// The runtime commands run on (SDK futures are large in debug builds: worker threads get the
/// main thread's stack size).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .expect("tokio runtime")
}

/// Logs to stderr; `RUST_LOG` overrides the level.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "sechub_export=info,warn",
        1 => "sechub_export=debug,info",
        _ => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Runs a parsed command; returns what to print on standard output.
pub async fn run(cli: Cli) -> Result<Option<String>> {
    match cli.command {
        Command::Export(flags) => commands::export::export(&flags.request, flags.quiet)
            .await
            .map(Some),
        Command::Status(flags) => {
            commands::status::status(&flags.destination, &flags.aws, flags.job_id.as_deref())
                .await
                .map(Some)
        }
        Command::Verify(flags) => {
            let args = commands::verify::VerifyArgs {
                destination: flags.destination,
                job_id: flags.job_id,
                aws: flags.aws,
                progress_parameter: flags.progress_parameter,
                deep: flags.deep,
            };
            commands::verify::verify(&args).await.map(Some)
        }
        Command::AthenaDdl(flags) => commands::athena::athena_ddl(
            &flags.destination,
            &flags.database,
            &flags.table,
            flags.output.as_deref(),
        ),
        #[cfg(feature = "emulator")]
        Command::Demo(flags) => {
            let args = commands::demo::DemoArgs {
                findings: flags.findings,
                rate: flags.rate,
                burst: flags.burst,
                destination: flags.destination,
                seed: flags.seed,
                quiet: flags.quiet,
            };
            commands::demo::demo(args).await.map(Some)
        }
        #[cfg(feature = "emulator")]
        Command::Emulator(flags) => commands::emulator::serve(flags.into()).await.map(|_| None),
        #[cfg(feature = "emulator")]
        Command::Generate(flags) => {
            commands::emulator::generate(flags.findings, flags.seed).map(|_| None)
        }
    }
}

#[cfg(feature = "emulator")]
impl From<EmulatorFlags> for commands::emulator::ServeArgs {
    fn from(flags: EmulatorFlags) -> Self {
        commands::emulator::ServeArgs {
            listen: flags.listen,
            findings: flags.findings,
            seed: flags.seed,
            load: flags.load,
            rate: flags.rate,
            burst: flags.burst,
            faults: crate::emulator::Faults {
                throttle_probability: flags.throttle_probability,
                error_probability: flags.error_probability,
                latency_ms: flags.latency_ms,
                drop_probability: flags.drop_probability,
                invalid_token_after_pages: flags.invalid_token_after_pages,
            },
        }
    }
}
