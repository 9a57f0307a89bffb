//! Command-line interface: flags (clap derive), logging, and the summary lines users read.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::aws::AwsSettings;
use crate::encode::Compression;
use crate::error::Result;
use crate::export::{self, ExportArgs};
use crate::pipeline::{RunEnd, RunSummary};

/// Bulk-export AWS Security Hub findings into an Athena-ready Parquet lake.
#[derive(Debug, Parser)]
#[command(name = "sechub-export", version, about)]
pub struct Cli {
    /// More log detail (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Export findings to s3://bucket/prefix or a local folder; re-run the same command to resume.
    Export(ExportFlags),
    /// Show a job's checkpoint, or list the jobs at a destination.
    Status(StatusFlags),
}

/// Where AWS is.
#[derive(Debug, Clone, Args)]
pub struct AwsFlags {
    /// AWS Region (default: the standard chain, e.g. AWS_REGION or the profile).
    #[arg(long)]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config.
    #[arg(long)]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (an emulator); S3 then uses path-style addressing.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

impl From<AwsFlags> for AwsSettings {
    fn from(flags: AwsFlags) -> Self {
        AwsSettings { region: flags.region, profile: flags.profile, endpoint_url: flags.endpoint_url }
    }
}

#[derive(Debug, Args)]
pub struct ExportFlags {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    #[command(flatten)]
    pub aws: AwsFlags,
    /// Filters as JSON or file://path, in the `aws securityhub get-findings --filters` format.
    #[arg(long)]
    pub filters: Option<String>,
    /// Name of the job (default: account, Region and a hash of the request and destination).
    #[arg(long)]
    pub job_id: Option<String>,
    /// GetFindings requests per second (the service quota is 3).
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Requests allowed at once before the rate applies (the service allows 6).
    #[arg(long, default_value_t = 6)]
    pub burst: u32,
    /// SSM parameter holding the exported count; `none` disables it.
    /// Default: /sechub-export/<job-id>/exported-count for S3 destinations, none for local ones.
    #[arg(long)]
    pub progress_parameter: Option<String>,
    /// Findings per Parquet part (whole pages of 100; a checkpoint follows each part).
    #[arg(long, default_value_t = 50_000)]
    pub part_rows: u64,
    /// Parquet codec: zstd or snappy.
    #[arg(long, default_value = "zstd")]
    pub compression: Compression,
    /// Stop at the next part boundary after this long (e.g. 10m, 1h30m) and exit 0, resumable.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_duration: Option<Duration>,
    /// Export the job's frozen query again from the first page, replacing its parts (after the
    /// service rejected the saved NextToken).
    #[arg(long)]
    pub restart: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct StatusFlags {
    /// s3://bucket/prefix, file:///path or a folder path.
    #[arg(long)]
    pub destination: String,
    /// The job to show; without it, every job at the destination is listed.
    #[arg(long)]
    pub job_id: Option<String>,
    #[command(flatten)]
    pub aws: AwsFlags,
}

/// Logs to stderr; `RUST_LOG` overrides the level.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "sechub_export=info,warn",
        1 => "sechub_export=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

/// Resolves on the first Ctrl-C (a second one kills the process the usual way).
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("stopping at the next part boundary (Ctrl-C again to abort)...");
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    } else {
        std::future::pending::<()>().await;
    }
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Export(flags) => {
            let args = ExportArgs {
                destination: flags.destination,
                aws: flags.aws.into(),
                filters: flags.filters,
                job_id: flags.job_id,
                rate: flags.rate,
                burst: flags.burst,
                progress_parameter: flags.progress_parameter,
                part_rows: flags.part_rows,
                compression: flags.compression,
                max_duration: flags.max_duration,
                restart: flags.restart,
                quiet: flags.quiet,
            };
            let summary = export::export(args, ctrl_c()).await?;
            println!("{}", summary_line(&summary));
            Ok(())
        }
        Command::Status(flags) => {
            let text = crate::status::status(&flags.destination, &flags.aws.into(), flags.job_id.as_deref()).await?;
            println!("{text}");
            Ok(())
        }
    }
}

/// The final line of a run.
pub fn summary_line(summary: &RunSummary) -> String {
    let cp = &summary.checkpoint;
    let secs = summary.elapsed.as_secs_f64();
    let rate = summary.rows_this_run as f64 / secs.max(0.001);
    let this_run = format!(
        "{} findings in {} parts ({} bytes) in {secs:.1}s, {rate:.0} findings/s",
        summary.rows_this_run, summary.parts_this_run, summary.bytes_this_run
    );
    match &summary.end {
        RunEnd::Complete => format!("complete: job {}: {this_run}; job total {} findings in {} parts", cp.job_id, cp.exported_count, cp.parts.len()),
        RunEnd::AlreadyComplete => format!("already complete: job {} holds {} findings in {} parts; nothing to do", cp.job_id, cp.exported_count, cp.parts.len()),
        RunEnd::Stopped(reason) => format!(
            "resumable: job {} stopped ({reason}) at a part boundary: {this_run}; job total {} findings; re-run the same command to continue",
            cp.job_id, cp.exported_count
        ),
    }
}
