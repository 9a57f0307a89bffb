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
    /// Try the whole export offline: a local emulator feeds a real export into a local lake.
    Demo(DemoFlags),
    /// Serve a local Security Hub GetFindings emulator (quota, faults) until Ctrl-C.
    Emulator(EmulatorFlags),
    /// Print the emulator's generated findings as NDJSON (sample data, test and bench input).
    Generate(GenerateFlags),
    /// Print the Athena DDL (table with partition projection, and a `latest` view) for a destination.
    AthenaDdl(AthenaDdlFlags),
    /// Prove a job's export is complete: manifest, objects, footer row counts and SSM count agree.
    Verify(VerifyFlags),
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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
    pub aws: AwsFlags,
}

#[derive(Debug, Args)]
pub struct GenerateFlags {
    /// How many findings.
    #[arg(long, default_value_t = 1000)]
    pub findings: u64,
    /// Seed (the same seed gives the same findings).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Args)]
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
    /// AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> work as in every AWS SDK.
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

impl From<AwsFlags> for AwsSettings {
    fn from(flags: AwsFlags) -> Self {
        AwsSettings {
            region: flags.region,
            profile: flags.profile,
            endpoint_url: flags.endpoint_url,
            demo_credentials: false,
        }
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
        Command::Demo(flags) => {
            let args = crate::demo::DemoArgs {
                findings: flags.findings,
                rate: flags.rate,
                burst: flags.burst,
                destination: flags.destination,
                seed: flags.seed,
                quiet: flags.quiet,
            };
            println!("{}", crate::demo::demo(args).await?);
            Ok(())
        }
        Command::Emulator(flags) => serve_emulator(flags).await,
        Command::AthenaDdl(flags) => athena_ddl(flags),
        Command::Verify(flags) => {
            let args = crate::verify::VerifyArgs {
                destination: flags.destination,
                job_id: flags.job_id,
                aws: flags.aws.into(),
                progress_parameter: flags.progress_parameter,
                deep: flags.deep,
            };
            println!("{}", crate::verify::verify(&args).await?);
            Ok(())
        }
        Command::Generate(flags) => {
            use std::io::Write;
            let generator = crate::emulator::generate::Generator {
                seed: flags.seed,
                ..Default::default()
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for index in 0..flags.findings {
                writeln!(out, "{}", generator.finding(index))
                    .map_err(|e| crate::Error::Internal(format!("cannot write: {e}")))?;
            }
            out.flush()
                .map_err(|e| crate::Error::Internal(format!("cannot write: {e}")))
        }
        Command::Status(flags) => {
            let text = crate::status::status(
                &flags.destination,
                &flags.aws.into(),
                flags.job_id.as_deref(),
            )
            .await?;
            println!("{text}");
            Ok(())
        }
    }
}

fn athena_ddl(flags: AthenaDdlFlags) -> Result<()> {
    let destination = crate::sink::Destination::parse(&flags.destination)?;
    if !destination.is_s3() {
        return Err(crate::Error::Usage(
            "athena-ddl needs an s3://bucket/prefix destination (Athena reads S3)".into(),
        ));
    }
    for name in [&flags.database, &flags.table] {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(crate::Error::Usage(format!(
                "invalid Glue name {name:?}: use lower-case letters, digits and _"
            )));
        }
    }
    let spec = crate::athena::TableSpec {
        database: flags.database,
        table: flags.table,
        destination: destination.url(),
    };
    let text = crate::athena::ddl(&spec);
    match flags.output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| crate::Error::Usage(format!("cannot write {}: {e}", path.display()))),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

async fn serve_emulator(flags: EmulatorFlags) -> Result<()> {
    use crate::emulator::{query::Dataset, Emulator, EmulatorConfig, Faults};
    let probabilities = [
        flags.throttle_probability,
        flags.error_probability,
        flags.drop_probability,
    ];
    if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return Err(crate::Error::Usage(
            "fault probabilities must be between 0 and 1".into(),
        ));
    }
    let mut config = EmulatorConfig {
        rate: flags.rate,
        burst: flags.burst,
        ..EmulatorConfig::generated(flags.findings, flags.seed)
    };
    if let Some(path) = &flags.load {
        config.dataset = Dataset::load(path).map_err(crate::Error::Usage)?;
    }
    config.faults = Faults {
        throttle_probability: flags.throttle_probability,
        error_probability: flags.error_probability,
        latency_ms: flags.latency_ms,
        drop_probability: flags.drop_probability,
        invalid_token_after_pages: flags.invalid_token_after_pages,
    };
    let count = config.dataset.len();
    let emulator = Emulator::start(config, flags.listen).await.map_err(|e| {
        crate::Error::Usage(format!(
            "cannot listen on {}: {e}; pick another --listen address",
            flags.listen
        ))
    })?;
    println!(
        "listening on {} with {count} findings (stats: GET {}/stats, faults: PUT {}/faults)",
        emulator.url(),
        emulator.url(),
        emulator.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    let stats = emulator.stats();
    emulator.stop().await;
    println!("{}", serde_json::to_string(&stats).unwrap_or_default());
    Ok(())
}

/// The final line of a run.
pub fn summary_line(summary: &RunSummary) -> String {
    let cp = &summary.checkpoint;
    let secs = summary.elapsed.as_secs_f64();
    let rate = summary.rows_this_run as f64 / secs.max(0.001);
    let this_run = format!(
        "{} findings in {} parts ({} bytes) in {secs:.2}s, {rate:.0} findings/s",
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
