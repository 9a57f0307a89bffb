//! A job: resolve its identity and checkpoint, take its lock, run its pipeline, write its
//! manifest. Whatever watches the run (terminal, SSM, a Lambda's log) is an observer passed in,
//! and a cloneable [`Cancel`] stops it at the next part boundary.

pub mod cancel;
mod chains;
pub mod checkpoint;
pub mod fanout;
pub mod lock;
pub mod manifest;
pub mod meeting;
pub mod observer;
pub mod pipeline;
pub mod settle;
pub mod shards;
pub mod ssm;
pub mod total;

use std::sync::Arc;

use aws_config::SdkConfig;
use chrono::Utc;

use crate::aws;
use crate::error::{Error, Result};
use crate::plan::ExportPlan;
use crate::request::{JobIdentity, PAGE_SIZE};
use crate::sink::parts::JobParts;
use crate::sink::{self, ObjectStore};
pub use cancel::Cancel;
use checkpoint::{ChainLayout, Checkpoint, CheckpointStore, JobState};
use lock::JobLock;
use observer::plural;
use observer::Observers;
pub use pipeline::{RunEnd, RunSummary};
use ssm::SsmCounter;

/// Runs one export plan until complete, cancelled, time-boxed or failed.
pub async fn run(plan: &ExportPlan, observers: Observers, cancel: &Cancel) -> Result<RunSummary> {
    let aws::Caller {
        config,
        account_id,
        region,
    } = aws::caller(&plan.aws).await?;
    let identity = JobIdentity {
        api: plan.api,
        region,
        account_id,
        filters_as_given: plan.filters.clone(),
        page_size: PAGE_SIZE,
        destination: plan.destination.url(),
        scopes: plan.scopes.clone(),
    };
    let store = sink::open_store(&plan.destination, Some(&config)).await?;
    let job_id = plan
        .name_or_default(
            store.as_ref(),
            plan.job_id.as_deref(),
            |url| identity.at(url).default_job_id(),
            sink::layout::checkpoint_key,
        )
        .await?;
    if fanout::record::StreamRecord::load(store.as_ref(), &job_id)
        .await?
        .is_some()
    {
        return Err(Error::JobConflict {
            job_id,
            message: "it is a job over several accounts or Regions: re-run it with its --accounts/--regions flags, or pick a new --job-id".into(),
        });
    }
    let _time_box = time_box(plan, cancel);
    let job = Job {
        plan,
        config: &config,
        store,
        job_id: &job_id,
        progress: plan.progress_parameter(&job_id),
    };
    job.run(identity, observers, cancel).await
}

/// How a plan's run ended, over one stream or many.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The job.
    pub job_id: String,
    /// Every finding of the job is in durable parts.
    pub complete: bool,
    /// Findings in the job's durable parts (every stream's).
    pub rows: u64,
    /// The job's parts (every stream's).
    pub parts: u64,
    /// Findings this run wrote.
    pub rows_this_run: u64,
    /// Parts this run wrote.
    pub parts_this_run: u64,
    /// How long this run took.
    pub elapsed: std::time::Duration,
    /// Why the run stopped before the job was complete (`None` when complete).
    pub stopped: Option<String>,
    /// The line the run ends with.
    pub line: String,
    /// Some stream of a complete job saw findings of its request updated while it read its
    /// window (see [`settle`]).
    pub unsettled: bool,
    /// Findings Security Hub counted for the job when it started (every stream's, when each
    /// was counted).
    pub expected: Option<u64>,
}

impl Outcome {
    /// Seconds left at this run's rate (0 once complete; `None` without a total or a rate).
    pub fn eta_seconds(&self) -> Option<u64> {
        if self.complete {
            return Some(0);
        }
        let rate = self.rows_this_run as f64 / self.elapsed.as_secs_f64().max(0.001);
        observer::eta_seconds(self.rows, self.expected, rate)
    }
}

impl Outcome {
    /// How one stream's run ended.
    pub fn of_stream(summary: &RunSummary) -> Outcome {
        Outcome {
            job_id: summary.checkpoint.job_id.clone(),
            complete: matches!(summary.end, RunEnd::Complete | RunEnd::AlreadyComplete),
            rows: summary.checkpoint.exported_count,
            parts: summary.checkpoint.parts.len() as u64,
            rows_this_run: summary.rows_this_run,
            parts_this_run: summary.parts_this_run,
            elapsed: summary.elapsed,
            stopped: match &summary.end {
                RunEnd::Stopped(reason) => Some(reason.clone()),
                _ => None,
            },
            line: summary.line(),
            unsettled: summary.settled == Some(false),
            expected: summary.checkpoint.expected_count,
        }
    }
}

/// Runs a plan: one job, or one job per account and Region (a stream failing makes it
/// [`Error::Partial`]); `quiet` hides the terminal's progress bars.
pub async fn run_plan(plan: &ExportPlan, quiet: bool, cancel: &Cancel) -> Result<Outcome> {
    if plan.streams.is_single() {
        let mut observers = Observers::new();
        observers.push(observer::TerminalProgress::new(quiet));
        let summary = run(plan, observers, cancel).await?;
        return Ok(Outcome::of_stream(&summary));
    }
    let summary = fanout::run(plan, quiet, cancel).await?.into_result()?;
    let (rows_this_run, parts_this_run, _) = summary.this_run();
    let complete = summary.complete();
    Ok(Outcome {
        job_id: summary.job_id.clone(),
        complete,
        rows: summary.exported_count(),
        parts: summary
            .streams
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|s| s.checkpoint.parts.len() as u64)
            .sum(),
        rows_this_run,
        parts_this_run,
        elapsed: summary.elapsed,
        stopped: (!complete).then(|| cancel.reason().unwrap_or_else(|| "stopped".into())),
        line: summary.line(),
        unsettled: summary
            .streams
            .iter()
            .any(|s| matches!(&s.result, Ok(run) if run.settled == Some(false))),
        expected: summary
            .streams
            .iter()
            .map(|s| {
                s.result
                    .as_ref()
                    .ok()
                    .and_then(|run| run.checkpoint.expected_count)
            })
            .sum(),
    })
}

/// Cancels `cancel` when the plan's `--max-duration` is over (while the guard lives).
fn time_box(plan: &ExportPlan, cancel: &Cancel) -> Option<cancel::TimerGuard> {
    plan.max_duration
        .map(|limit| cancel.cancel_after(limit, "--max-duration reached"))
}

/// One job (or one stream of a multi-stream job): where it reads and writes.
struct Job<'a> {
    plan: &'a ExportPlan,
    config: &'a SdkConfig,
    store: Arc<dyn ObjectStore>,
    job_id: &'a str,
    /// The SSM parameter this job publishes its own count to (`None` for a stream, whose
    /// job publishes the sum).
    progress: Option<String>,
}

impl Job<'_> {
    /// Takes the job's lock, runs it, releases the lock.
    async fn run(
        &self,
        identity: JobIdentity,
        observers: Observers,
        cancel: &Cancel,
    ) -> Result<RunSummary> {
        let lock = JobLock::acquire(self.store.clone(), self.job_id).await?;
        let result = self.run_locked(identity, &lock, observers, cancel).await;
        lock.release().await;
        result
    }

    async fn run_locked(
        &self,
        identity: JobIdentity,
        lock: &JobLock,
        mut observers: Observers,
        cancel: &Cancel,
    ) -> Result<RunSummary> {
        let mut checkpoints = CheckpointStore::new(self.store.clone(), self.job_id);
        let mut checkpoint = self.resolve_checkpoint(&mut checkpoints, identity).await?;
        let parameter = self.progress.clone();
        // Recorded with the run's first commit (the pipeline's claim of the job).
        checkpoint.progress_parameter = Some(parameter.clone().unwrap_or_else(|| "none".into()));
        checkpoint.pace = Some(self.plan.pace);
        if let Some(name) = parameter {
            let initial = checkpoint.exported_count;
            observers.push(SsmCounter::start(self.config, name, initial));
        }
        // The latency probe is the run's first GetFindings call: its time is the run's.
        let probing = std::time::Instant::now();
        let limiter = self.plan.pace.limiter();
        let format = self.plan.api.format();
        let mut target = pipeline::Target {
            parts: JobParts::new(
                self.store.clone(),
                format.table().dir,
                &checkpoint.export_date,
                self.job_id,
            ),
            checkpoints,
            lock,
        };
        let options = pipeline::PartOptions {
            part_rows: self.plan.part_rows,
            compression: self.plan.compression,
        };
        let mut result = loop {
            let chains = match self.chains(&mut checkpoint, &limiter).await {
                Ok(chains) => chains,
                Err(err) => {
                    observers.finish(None).await;
                    return Err(err);
                }
            };
            observers.started(&checkpoint);
            let probed = probing.elapsed();
            let run = pipeline::run(
                chains,
                format,
                &mut target,
                checkpoint.clone(),
                options,
                cancel,
                &mut observers,
            )
            .await;
            match run {
                Err(Error::OrderUnproven {
                    chain,
                    page,
                    message,
                }) if checkpoint.order_fallback.is_none() => {
                    let reason = format!("page {page} of chain {chain} broke the Id order the reading relied on ({message})");
                    checkpoint = self.fall_back(&mut target, reason).await?;
                }
                mut other => {
                    if let Ok(summary) = &mut other {
                        summary.elapsed += probed;
                    }
                    break other;
                }
            }
        };
        if let Ok(summary) = &mut result {
            let client = Some((self.config, &limiter));
            match settle::complete(self.store.as_ref(), &summary.checkpoint, client).await {
                Ok(settled) => summary.settled = settled,
                Err(err) => result = Err(err),
            }
        }
        observers
            .finish(result.as_ref().ok().map(|s| &s.checkpoint))
            .await;
        result
    }

    /// After a page broke the order a two-ended reading relied on: the stream's parts are
    /// dropped and it is read again as a new stream that relies on no order (one chain in the
    /// service's own order, or prefix shards when calls are slow). The checkpoint returned is
    /// committed by the next run's claim, which deletes the dropped parts; a crash before then
    /// resumes the old reading, which breaks again.
    async fn fall_back(
        &self,
        target: &mut pipeline::Target<'_>,
        reason: String,
    ) -> Result<Checkpoint> {
        let current = target.checkpoints.load().await?.ok_or_else(|| {
            Error::Internal(format!(
                "job {}: the checkpoint vanished during the run",
                self.job_id
            ))
        })?;
        tracing::warn!(
            "{reason}: the service's order is not proven, so the stream's {} parts ({} findings) are dropped and it is read again without relying on any order",
            current.parts.len(),
            current.exported_count
        );
        Ok(Checkpoint {
            created_at: current.created_at,
            export_date: current.export_date.clone(),
            owner_generation: current.owner_generation,
            progress_parameter: current.progress_parameter.clone(),
            expected_count: current.expected_count,
            order_fallback: Some(reason),
            ..Checkpoint::new(self.job_id.to_string(), current.request.clone(), Utc::now())
        })
    }

    /// Loads the job's checkpoint and checks it matches this request, or starts a new one.
    async fn resolve_checkpoint(
        &self,
        checkpoints: &mut CheckpointStore,
        identity: JobIdentity,
    ) -> Result<Checkpoint> {
        let now = Utc::now();
        let job_id = self.job_id.to_string();
        let Some(checkpoint) = checkpoints.load().await? else {
            // Not written here: the pipeline's claim of the job creates it (If-None-Match).
            return Ok(Checkpoint::new(job_id, identity.freeze(now), now));
        };
        if checkpoint.request.identity != identity {
            return Err(Error::JobConflict {
                job_id,
                message: format!(
                    "it was created with a different request ({}); re-run with the original flags to resume it, or pick a new --job-id",
                    describe_difference(&checkpoint.request.identity, &identity)
                ),
            });
        }
        if let Some(message) = checkpoint.window_done(self.job_id, now) {
            return Err(Error::WindowDone { job_id, message });
        }
        if self.plan.restart && checkpoint.state == JobState::Complete {
            return Err(Error::Usage(format!(
                "--restart: job {job_id} is complete ({}), so there is nothing to read again (--restart re-reads an unfinished job from its first page); drop --restart, or export the window again under a new --job-id",
                plural(checkpoint.exported_count, "finding", "findings")
            )));
        }
        if !self.plan.restart {
            return Ok(checkpoint);
        }
        let restarted = Checkpoint {
            created_at: checkpoint.created_at,
            export_date: checkpoint.export_date.clone(),
            ..Checkpoint::new(job_id, checkpoint.request.clone(), now)
        };
        tracing::warn!(
            "--restart: exporting job {} again from the first page; its {} parts are replaced",
            self.job_id,
            checkpoint.parts.len()
        );
        checkpoints.commit(&restarted).await?;
        Ok(restarted)
    }
}

/// What a complete job's line adds when Security Hub counted another total at its start.
fn counted_differs(cp: &Checkpoint) -> String {
    match cp.expected_count {
        Some(counted) if counted != cp.exported_count => format!(
            " (Security Hub counted {counted} when the job started: run verify --source to reconcile the lake with it)"
        ),
        _ => String::new(),
    }
}

fn describe_difference(old: &JobIdentity, new: &JobIdentity) -> String {
    let checks = [
        (old.filters_as_given != new.filters_as_given, "filters"),
        (old.region != new.region, "Region"),
        (old.account_id != new.account_id, "account"),
        (old.destination != new.destination, "destination"),
        (old.api != new.api || old.page_size != new.page_size, "API"),
    ];
    let fields: Vec<&str> = checks
        .iter()
        .filter(|(differs, _)| *differs)
        .map(|(_, name)| *name)
        .collect();
    format!("{} differ", fields.join(", "))
}

impl RunSummary {
    /// The one line a run ends with.
    pub fn line(&self) -> String {
        let cp = &self.checkpoint;
        let secs = self.elapsed.as_secs_f64();
        let rate = self.rows_this_run as f64 / secs.max(0.001);
        let sharded = match cp.chain_layout() {
            ChainLayout::One => String::new(),
            ChainLayout::Pair => " from both ends of the Ids".to_string(),
            ChainLayout::PairedShards(n) => format!(" over {n} shards read from both ends"),
            ChainLayout::Shards(n) => format!(" over {n} shards"),
        };
        let sharded = match &cp.order_fallback {
            Some(reason) => format!(
                "{sharded} (fallback: read again without relying on the service's order, after {reason})"
            ),
            None => sharded,
        };
        let this_run = format!(
            "{} in {} ({} bytes){sharded} in {secs:.2}s, {rate:.0} findings/s",
            plural(self.rows_this_run, "finding", "findings"),
            plural(self.parts_this_run, "part", "parts"),
            self.bytes_this_run
        );
        let total = format!(
            "{} in {}",
            plural(cp.exported_count, "finding", "findings"),
            plural(cp.parts.len() as u64, "part", "parts")
        );
        match &self.end {
            RunEnd::Complete => format!("complete: job {}: {this_run}; job total {total}{}", cp.job_id, counted_differs(cp)),
            RunEnd::AlreadyComplete => format!("already complete: job {} holds {total}; nothing to do", cp.job_id),
            RunEnd::Stopped(reason) => format!(
                "resumable: job {} stopped ({reason}) at a part boundary: {this_run}; job total {} findings; re-run the same command to continue",
                cp.job_id, cp.exported_count
            ),
        }
    }
}
