//! The `export` command: validate everything offline, then resolve the job, take its lock and
//! run the pipeline, keeping the SSM count and the terminal view up to date.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;

use crate::aws::{self, AwsSettings};
use crate::checkpoint::lock::JobLock;
use crate::checkpoint::{manifest, Checkpoint, CheckpointStore, JobState};
use crate::encode::Compression;
use crate::error::{Error, Result};
use crate::pipeline::{self, RunOptions, RunSummary};
use crate::progress::{self, Display, SsmCounter};
use crate::request::{self, filters, JobIdentity, PAGE_SIZE};
use crate::retry::RetryPolicy;
use crate::sink::local::LocalStore;
use crate::sink::s3::S3Store;
use crate::sink::{Destination, ObjectStore};
use crate::source::{self, FindingsSource};

/// Largest `--part-rows` accepted (a part is built in memory before upload).
pub const MAX_PART_ROWS: u64 = 1_000_000;

/// Everything `export` needs, as given on the command line.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub destination: String,
    pub aws: AwsSettings,
    pub filters: Option<String>,
    pub job_id: Option<String>,
    pub rate: f64,
    pub burst: u32,
    /// `None`: the default (S3: `/sechub-export/<job>/exported-count`; local: none);
    /// `Some("none")`: no SSM.
    pub progress_parameter: Option<String>,
    pub part_rows: u64,
    pub compression: Compression,
    pub max_duration: Option<Duration>,
    pub restart: bool,
    pub quiet: bool,
}

/// The validated, offline part of a plan.
struct Plan {
    destination: Destination,
    filters: serde_json::Value,
}

fn validate(args: &ExportArgs) -> Result<Plan> {
    let destination = Destination::parse(&args.destination)?;
    let filters = filters::load(args.filters.as_deref())?;
    if let Some(job_id) = &args.job_id {
        request::validate_job_id(job_id)?;
    }
    if !(1..=MAX_PART_ROWS).contains(&args.part_rows) {
        return Err(Error::Usage(format!(
            "invalid --part-rows {}: use 1..={MAX_PART_ROWS}",
            args.part_rows
        )));
    }
    if let Some(name) = args.progress_parameter.as_deref().filter(|n| *n != "none") {
        progress::validate_parameter_name(name)?;
    }
    source::rate_limiter(args.rate, args.burst)?;
    if args.max_duration == Some(Duration::ZERO) {
        return Err(Error::Usage(
            "invalid --max-duration 0: give a positive duration such as 10m".into(),
        ));
    }
    Ok(Plan {
        destination,
        filters,
    })
}

/// Opens the object store of a destination.
pub fn open_store(destination: &Destination, config: Option<&SdkConfig>) -> Arc<dyn ObjectStore> {
    match destination {
        Destination::Local { root } => Arc::new(LocalStore::new(root.clone())),
        Destination::S3 { bucket, prefix } => {
            let config = config.expect("S3 destinations load the AWS config");
            Arc::new(S3Store::new(
                aws::s3_client(config),
                bucket.clone(),
                prefix.clone(),
            ))
        }
    }
}

/// Runs `export`. `shutdown` resolving stops the run at the next part boundary.
pub async fn export(
    args: ExportArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunSummary> {
    let plan = validate(&args)?;
    let config = aws::load(&args.aws).await?;
    let account_id = aws::account_id(&config).await?;
    let identity = JobIdentity {
        api: "GetFindings".into(),
        region: config.region().map(|r| r.to_string()).unwrap_or_default(),
        account_id,
        filters_as_given: plan.filters,
        page_size: PAGE_SIZE,
        destination: plan.destination.url(),
    };
    let job_id = args
        .job_id
        .clone()
        .unwrap_or_else(|| identity.default_job_id());
    let store = open_store(&plan.destination, Some(&config));
    store.check().await?;
    let lock = JobLock::acquire(store.clone(), &plan.destination, &job_id).await?;
    let result = run_locked(
        &args,
        &config,
        &plan.destination,
        store,
        &lock,
        identity,
        &job_id,
        shutdown,
    )
    .await;
    lock.release().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    args: &ExportArgs,
    config: &SdkConfig,
    destination: &Destination,
    store: Arc<dyn ObjectStore>,
    lock: &JobLock,
    identity: JobIdentity,
    job_id: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunSummary> {
    let mut checkpoints = CheckpointStore::new(store.clone(), job_id);
    let checkpoint = resolve_checkpoint(&mut checkpoints, identity, job_id, args.restart).await?;
    let parameter = match args.progress_parameter.as_deref() {
        Some("none") => None,
        Some(name) => Some(name.to_string()),
        None if destination.is_s3() => Some(format!("/sechub-export/{job_id}/exported-count")),
        None => None,
    };
    let ssm = parameter.map(|name| SsmCounter::start(config, name, checkpoint.exported_count));
    let limiter = source::rate_limiter(args.rate, args.burst)?;
    let source = FindingsSource::new(config, &checkpoint.request, limiter, RetryPolicy::default());
    let mut display = Display::new(source.stats.clone(), checkpoint.exported_count, args.quiet);
    let options = RunOptions {
        part_rows: args.part_rows,
        compression: args.compression,
        max_duration: args.max_duration,
    };
    let on_commit = |cp: &Checkpoint| {
        display.update(cp.exported_count, cp.parts.len() as u64);
        if let Some(ssm) = &ssm {
            ssm.set(cp.exported_count);
        }
    };
    let manifest_store = store.clone();
    let mut result = pipeline::run(
        source,
        (store, checkpoints),
        lock,
        checkpoint,
        options,
        shutdown,
        on_commit,
    )
    .await;
    if let Ok(summary) = &result {
        if let Err(err) = manifest::ensure(&manifest_store, &summary.checkpoint).await {
            result = Err(err);
        }
    }
    display.finish();
    if let Some(ssm) = ssm {
        // On failure the publisher already holds the last committed count.
        let final_count = result
            .as_ref()
            .ok()
            .map(|summary| summary.checkpoint.exported_count);
        if !ssm.finish(final_count).await {
            tracing::warn!("the SSM progress parameter could not be updated; it is set again from the checkpoint on the next run");
        }
    }
    result
}

/// Loads the job's checkpoint and checks it matches this request, or creates it.
async fn resolve_checkpoint(
    checkpoints: &mut CheckpointStore,
    identity: JobIdentity,
    job_id: &str,
    restart: bool,
) -> Result<Checkpoint> {
    let now = Utc::now();
    let Some(mut checkpoint) = checkpoints.load().await? else {
        let checkpoint = Checkpoint::new(job_id.to_string(), identity.freeze(now), now);
        checkpoints.commit(&checkpoint).await?;
        return Ok(checkpoint);
    };
    if checkpoint.request.identity != identity {
        return Err(Error::JobConflict {
            job_id: job_id.to_string(),
            message: format!(
                "it was created with a different request ({}); re-run with the original flags to resume it, or pick a new --job-id",
                describe_difference(&checkpoint.request.identity, &identity)
            ),
        });
    }
    if restart && checkpoint.state == JobState::Running {
        let restarted = Checkpoint {
            created_at: checkpoint.created_at,
            ..Checkpoint::new(job_id.to_string(), checkpoint.request.clone(), now)
        };
        let restarted = Checkpoint {
            export_date: checkpoint.export_date.clone(),
            ..restarted
        };
        tracing::warn!("--restart: exporting job {job_id} again from the first page; its {} parts are replaced", checkpoint.parts.len());
        checkpoints.commit(&restarted).await?;
        checkpoint = restarted;
    }
    Ok(checkpoint)
}

fn describe_difference(old: &JobIdentity, new: &JobIdentity) -> String {
    let mut fields = Vec::new();
    if old.filters_as_given != new.filters_as_given {
        fields.push("filters");
    }
    if old.region != new.region {
        fields.push("Region");
    }
    if old.account_id != new.account_id {
        fields.push("account");
    }
    if old.destination != new.destination {
        fields.push("destination");
    }
    if old.api != new.api || old.page_size != new.page_size {
        fields.push("API");
    }
    format!("{} differ", fields.join(", "))
}
