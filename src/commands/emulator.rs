//! `emulator` and `generate`: serve the local Security Hub emulator until Ctrl-C, or print its
//! generated findings as NDJSON.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::emulator::generate::Generator;
use crate::emulator::{query::Dataset, Emulator, EmulatorConfig, Faults, Services};
use crate::error::{Error, Result};

/// How to serve the emulator (the `emulator` flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:4599")]
    pub listen: SocketAddr,
    /// Generated findings to serve.
    #[arg(long, default_value_t = 10_000)]
    pub findings: u64,
    /// Seed of the generated findings and of the fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Serve findings from a file instead: NDJSON or `aws securityhub get-findings` output.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// Quota: requests per second.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    /// Quota: burst.
    #[arg(long, default_value_t = 6)]
    pub burst: u32,
    /// Member accounts of the administrator 123456789012: with any (or --hub-regions), every
    /// account gets its own findings and quota per Region, and AssumeRole into them works.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<String>,
    /// Regions where Security Hub is enabled (default: every Region).
    #[arg(long, value_delimiter = ',')]
    pub hub_regions: Vec<String>,
    /// This percentage of the findings were updated in the last day (the day's changes a daily
    /// feed run reads); the others months ago.
    #[arg(long, default_value_t = 0.0)]
    pub recent_percent: f64,
    /// Every account aggregates the findings of all --hub-regions into this home Region.
    #[arg(long, requires = "hub_regions")]
    pub aggregation_home: Option<String>,
    /// Services enabled in every hub: cspm (GetFindings, ASFF), v2 (GetFindingsV2, OCSF),
    /// both, or none.
    #[arg(long, value_delimiter = ',', default_value = "cspm,v2")]
    pub services: Vec<String>,
    /// Every tenth finding shares the Id of the one before it under another product (another
    /// ProductArn), as two products may.
    #[arg(long)]
    pub shared_ids: bool,
    /// The administrator 123456789012 sees only its own findings (by default it also sees its
    /// members' findings in each Region, as Security Hub's administrator does).
    #[arg(long)]
    pub administrator_sees_own_only: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub faults: Faults,
}

/// `--services` as the emulator's settings.
fn parse_services(names: &[String]) -> Result<Services> {
    let mut services = Services {
        cspm: false,
        v2: false,
    };
    for name in names {
        match name.as_str() {
            "cspm" => services.cspm = true,
            "v2" => services.v2 = true,
            "none" => {}
            other => {
                return Err(Error::Usage(format!(
                    "unknown service {other:?} in --services: use cspm, v2 or none"
                )))
            }
        }
    }
    Ok(services)
}

/// Serves until Ctrl-C, then prints what the emulator saw.
pub async fn serve(args: ServeArgs) -> Result<()> {
    let faults = &args.faults;
    let probabilities = [
        faults.throttle_probability,
        faults.error_probability,
        faults.drop_probability,
    ];
    if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::Usage(
            "fault probabilities must be between 0 and 1".into(),
        ));
    }
    let mut config = EmulatorConfig {
        rate: args.rate,
        burst: args.burst,
        faults: args.faults.clone(),
        members: args.members.clone(),
        regions: args.hub_regions.clone(),
        aggregation_home: args.aggregation_home.clone(),
        services: parse_services(&args.services)?,
        administrator_view: !args.administrator_sees_own_only,
        ..EmulatorConfig::generated(args.findings, args.seed)
    };
    if !(0.0..=100.0).contains(&args.recent_percent) {
        return Err(Error::Usage(
            "--recent-percent must be between 0 and 100".into(),
        ));
    }
    if let Dataset::Generated { generator, .. } = &mut config.dataset {
        generator.shared_ids = args.shared_ids;
        if args.recent_percent > 0.0 {
            let per_mille = (args.recent_percent * 10.0).round() as u32;
            generator.recent = Some((per_mille, chrono::Utc::now()));
        }
    }
    if let Some(path) = &args.load {
        config.dataset = Dataset::load(path).map_err(Error::Usage)?;
    }
    let count = config.dataset.len();
    let emulator = Emulator::start(config, args.listen).await.map_err(|e| {
        Error::Usage(format!(
            "cannot listen on {}: {e}; pick another --listen address",
            args.listen
        ))
    })?;
    let url = emulator.url();
    crate::cli::print_line(&format!("listening on {url} with {count} findings (stats: GET {url}/stats, faults: PUT {url}/faults)"));
    let _ = tokio::signal::ctrl_c().await;
    let stats = emulator.stats();
    emulator.stop().await;
    crate::cli::print_line(&serde_json::to_string(&stats).unwrap_or_default());
    Ok(())
}

/// Prints the generated findings the flags ask for, one JSON document a line.
pub fn generate(flags: &crate::cli::GenerateFlags) -> Result<()> {
    let generator = Generator {
        seed: flags.seed,
        shared_ids: flags.shared_ids,
        ..Default::default()
    };
    let (count, api) = (flags.findings, flags.api);
    // A reader that closed the pipe (`| head`) has all it wants: a normal end.
    let failed = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(Error::Internal(format!(
            "cannot write to standard output: {e}"
        ))),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for index in 0..count {
        let text = match api {
            crate::request::Api::GetFindings => generator.finding(index),
            crate::request::Api::GetFindingsV2 => {
                crate::emulator::ocsf::from_asff(&generator.finding_value(index)).to_string()
            }
        };
        if let Err(err) = writeln!(out, "{text}") {
            return failed(err);
        }
    }
    out.flush().or_else(failed)
}
