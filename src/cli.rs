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
    /// Keep the lake current: run on a schedule, each run exports what changed since the last
    /// (a full snapshot first and every --snapshot-every).
    Feed(FeedFlags),
    /// Show a job's checkpoint, or list the jobs at a destination.
    Status(StatusFlags),
    /// Try the whole export offline: a local emulator feeds a real export into a local lake.
    #[cfg(feature = "emulator")]
    Demo(commands::demo::DemoArgs),
    /// Serve a local Security Hub GetFindings emulator (quota, faults) until Ctrl-C.
    #[cfg(feature = "emulator")]
    Emulator(commands::emulator::ServeArgs),
    /// Print the emulator's generated findings as NDJSON (sample data, test and bench input).
    #[cfg(feature = "emulator")]
    Generate(GenerateFlags),
    /// Print the Athena DDL (table with partition projection, and a `latest` view) for a destination.
    AthenaDdl(AthenaDdlFlags),
    /// Print the least-privilege IAM policy for the export these flags describe (the same flags
    /// as export), offline.
    Permissions(commands::permissions::PermissionsArgs),
    /// Prove a job's export is complete: manifest, objects, footer row counts and SSM count agree.
    Verify(commands::verify::VerifyArgs),
    /// Deploy the stack (Lambda, Step Functions, lake, Athena) from a built package:
    /// scripts/deploy.sh builds the package and runs this.
    #[cfg(feature = "deploy")]
    Deploy(commands::deploy::DeployArgs),
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct AthenaDdlFlags {
    /// The export destination, s3://bucket/prefix.
    #[arg(long, required_unless_present = "cloudformation")]
    pub destination: Option<String>,
    /// Print the Glue table and view resources of infra/cloudformation/sechub-export.yaml
    /// instead (the same columns and projection).
    #[arg(long, conflicts_with_all = ["destination", "database", "table"])]
    pub cloudformation: bool,
    /// Glue database.
    #[arg(long, default_value = "securityhub")]
    pub database: String,
    /// The API whose table is declared: v1 (ASFF, default table findings) or v2 (OCSF,
    /// default table findings_ocsf).
    #[arg(long, default_value = "v1", conflicts_with = "cloudformation")]
    pub api: crate::request::Api,
    /// Table name (the view is <table>_latest); default: the API's table folder.
    #[arg(long)]
    pub table: Option<String>,
    /// Write the DDL to this file instead of standard output.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
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
    /// v1: ASFF as GetFindings serves them; v2: the same findings as GetFindingsV2's OCSF.
    #[arg(long, default_value = "v1")]
    pub api: crate::request::Api,
    /// Every tenth finding shares the Id of the one before it under another product (as the
    /// emulator's --shared-ids serves them).
    #[arg(long)]
    pub shared_ids: bool,
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
    /// Exit 0 when the run stops before the job is complete (--max-duration, Ctrl-C,
    /// SIGTERM) instead of 12.
    #[arg(long)]
    pub exit_zero_when_stopped: bool,
}

/// `feed`: the export request (without --job-id), the feed's own flags and the terminal's.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct FeedFlags {
    #[command(flatten)]
    pub request: ExportRequest,
    /// Name of the feed family (default: account, Region and a hash of the request and
    /// destination); the same family keeps one watermark.
    #[arg(long)]
    pub family: Option<String>,
    /// Make a run a full snapshot when the last one is this old (catches changes that keep
    /// UpdatedAt: workflow status, notes, suppression).
    #[arg(long, default_value = crate::feed::DEFAULT_SNAPSHOT_EVERY, value_parser = humantime::parse_duration)]
    pub snapshot_every: std::time::Duration,
    /// Start each incremental window this long before the last run's end (findings that reach
    /// Security Hub after their UpdatedAt are still read; the latest view keeps one row each).
    #[arg(long, default_value = crate::feed::DEFAULT_OVERLAP, value_parser = humantime::parse_duration)]
    pub overlap: std::time::Duration,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit 0 when the invocation stops before its window is exported (--max-duration,
    /// Ctrl-C, SIGTERM) instead of 12.
    #[arg(long)]
    pub exit_zero_when_stopped: bool,
}

/// Flags of one subcommand.
#[derive(Debug, Args)]
#[allow(missing_docs)]
pub struct StatusFlags {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    /// The job to show; without it (and --family), every job and feed at the destination is
    /// listed.
    #[arg(long, conflicts_with = "family")]
    pub job_id: Option<String>,
    /// The feed family to show: watermark, runs, the run in progress and the next window.
    #[arg(long)]
    pub family: Option<String>,
    /// Print JSON for machines (state, complete, counts, each stream) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub aws: AwsSettings,
}

/// Parses the command line; `--help` and `--version` print and exit here, other errors come
/// back as their first line.
pub fn parse() -> std::result::Result<Cli, String> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => err.exit(),
        // No subcommand: the help, which lists them (on stderr, exit 2).
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            err.exit()
        }
        Err(err) => {
            // One line: clap's message and the arguments it names, without the usage block.
            let rendered = err.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more"))
                .filter(|line| !line.is_empty())
                .collect();
            match message.join(" ") {
                joined if joined.is_empty() => Err("invalid arguments".into()),
                joined => Err(joined.trim_start_matches("error: ").to_string()),
            }
        }
    }
}

/// Prints `text` and a newline on standard output. A reader that closed the pipe early
/// (`| head`) is a normal end, not an error: the rest is dropped quietly.
pub fn print_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("warning: cannot write to standard output: {err}");
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
    // The SDK's own warnings (each credential or Region provider that found nothing) come
    // before our one-line error that says the same and what to do: shown from -v on.
    let level = match verbose {
        0 => "sechub_export=info,aws_config=error,warn",
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

/// Logs as JSON lines on stdout (Lambda sends them to CloudWatch Logs); `RUST_LOG` overrides
/// the level.
pub fn init_json_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "sechub_export=info,lambda_runtime=warn,warn".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .init();
}

/// Runs a parsed command; returns what to print on standard output.
pub async fn run(cli: Cli) -> Result<Option<String>> {
    match cli.command {
        Command::Export(flags) => {
            commands::export::export(&flags.request, flags.quiet, flags.exit_zero_when_stopped)
                .await
                .map(Some)
        }
        Command::Feed(flags) => commands::feed::feed(&flags).await.map(Some),
        Command::Status(flags) => commands::status::status(&flags).await.map(Some),
        Command::Verify(args) => commands::verify::verify(&args).await.map(Some),
        Command::Permissions(args) => commands::permissions::permissions(&args).map(Some),
        Command::AthenaDdl(flags) if flags.cloudformation => commands::athena::write_or_return(
            crate::athena::cloudformation::resources(),
            flags.output.as_deref(),
        ),
        Command::AthenaDdl(flags) => commands::athena::athena_ddl(
            flags.destination.as_deref().unwrap_or_default(),
            &flags.database,
            (flags.api, flags.table.as_deref()),
            flags.output.as_deref(),
        ),
        #[cfg(feature = "emulator")]
        Command::Demo(args) => commands::demo::demo(args).await.map(Some),
        #[cfg(feature = "emulator")]
        Command::Emulator(args) => commands::emulator::serve(args).await.map(|_| None),
        #[cfg(feature = "emulator")]
        Command::Generate(flags) => commands::emulator::generate(&flags).map(|_| None),
        #[cfg(feature = "deploy")]
        Command::Deploy(args) => commands::deploy::deploy(&args)
            .await
            .map(|lines| Some(lines.join("\n"))),
    }
}
