//! A job over many accounts and Regions: one stream per (account, Region), each its own job
//! (`<job>.<account>.<region>`: checkpoint, lock, parts, manifest) read with its own
//! credentials at its own quota, run a bounded number at once. The job's stream set is frozen
//! when it is created; one stream's failure never stops the others, and re-running the same
//! command resumes only the streams that are not complete.

pub mod distributed;
pub mod observe;
pub mod record;
mod summary;

pub(crate) use summary::partial;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use futures::StreamExt;

use super::checkpoint::{Checkpoint, CheckpointStore, JobState};
use super::lock::JobLock;
use super::observer::Observers;
use super::settle;
use super::ssm::SsmCounter;
use super::{time_box, Cancel, Job, RunEnd, RunSummary};
use crate::aws;
use crate::error::{one_line, Error, Result};
use crate::plan::ExportPlan;
use crate::request::PAGE_SIZE;
use crate::sink::{self, ObjectStore};
use crate::streams::{resolve, Regions, Selection, Stream};
use observe::Board;
use record::{FanOutIdentity, LastRun, StreamRecord, StreamReport, StreamState};

/// Checkpoints read at once (a run's start, a Map's finish step, `status`).
pub(crate) const CHECKPOINT_READS: usize = 64;

/// How one stream's run ended.
#[derive(Debug)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: Stream,
    /// Findings in its durable parts before this run.
    pub prior_count: u64,
    /// Its run, or why it failed.
    pub result: Result<RunSummary>,
}

/// What a run of a multi-stream job did.
#[derive(Debug)]
pub struct FanOutSummary {
    /// The job.
    pub job_id: String,
    /// One outcome per stream, in stream order.
    pub streams: Vec<StreamOutcome>,
    /// From start to the last stream's end.
    pub elapsed: Duration,
}

/// What every run of a multi-stream job starts from: the caller, the job's identity and id,
/// and its store (nothing written yet).
pub(crate) struct Prepared {
    started: Instant,
    base: SdkConfig,
    caller: String,
    home: String,
    identity: FanOutIdentity,
    job_id: String,
    store: Arc<dyn ObjectStore>,
}

impl Prepared {
    /// The caller and the job's identity, id and store for `plan`.
    pub(crate) async fn new(plan: &ExportPlan) -> Result<Prepared> {
        let started = Instant::now();
        let aws::Caller {
            config: base,
            account_id: caller,
            region: home,
        } = aws::caller(&plan.aws).await?;
        let identity = FanOutIdentity {
            selection: Selection {
                accounts: plan.streams.accounts.clone(),
                regions: match &plan.streams.regions {
                    Regions::Caller => Regions::Listed(vec![home.clone()]),
                    other => other.clone(),
                },
                caller_account_id: caller.clone(),
            },
            api: plan.api,
            filters_as_given: plan.filters.clone(),
            scopes: plan.scopes.clone(),
            page_size: PAGE_SIZE,
            destination: plan.destination.url(),
        };
        let store = sink::open_checked(&plan.destination, Some(&base)).await?;
        let job_id = plan
            .name_or_default(
                store.as_ref(),
                plan.job_id.as_deref(),
                |url| identity.at(url).default_job_id(),
                sink::layout::streams_key,
            )
            .await?;
        Ok(Prepared {
            started,
            base,
            caller,
            home,
            identity,
            job_id,
            store,
        })
    }

    /// The job's runner.
    fn fan_out<'a>(&'a self, plan: &'a ExportPlan, cancel: &'a Cancel) -> FanOut<'a> {
        FanOut {
            plan,
            base: &self.base,
            caller: &self.caller,
            store: self.store.clone(),
            job_id: &self.job_id,
            cancel,
        }
    }
}

/// Runs every stream of the plan's job that is not complete, `max_streams` at once.
pub async fn run(plan: &ExportPlan, quiet: bool, cancel: &Cancel) -> Result<FanOutSummary> {
    // Nothing is written until the stream set is known: a failed resolution leaves no trace.
    let prepared = Prepared::new(plan).await?;
    let run = prepared.fan_out(plan, cancel);
    let record = run
        .stream_record(prepared.identity.clone(), &prepared.home)
        .await?;
    if !plan.destination.is_s3() {
        prepared.store.check().await?;
    }
    let job_id = prepared.job_id.clone();
    let lock = JobLock::acquire(prepared.store.clone(), &job_id).await?;
    let result = run.run_locked(record, quiet).await;
    lock.release().await;
    Ok(FanOutSummary {
        job_id,
        streams: result?,
        elapsed: prepared.started.elapsed(),
    })
}

/// A job's stream record as found: stored, or resolved and not yet written.
enum Resolved {
    Existing(StreamRecord),
    New(StreamRecord),
}

/// A multi-stream job.
struct FanOut<'a> {
    plan: &'a ExportPlan,
    base: &'a SdkConfig,
    caller: &'a str,
    store: Arc<dyn ObjectStore>,
    job_id: &'a str,
    cancel: &'a Cancel,
}

impl FanOut<'_> {
    async fn run_locked(&self, record: Resolved, quiet: bool) -> Result<Vec<StreamOutcome>> {
        let record = match record {
            Resolved::Existing(record) => record,
            Resolved::New(new) => {
                // Create-only: a run that created it first with another request wins.
                let stored = new.clone().create(self.store.as_ref()).await?;
                self.check_identity(&stored, &new.identity)?;
                stored
            }
        };
        let _time_box = time_box(self.plan, self.cancel);
        let priors = self.load_checkpoints(&record.streams).await;
        let counts: Vec<u64> = priors
            .iter()
            .map(|p| match p {
                Ok(Some(cp)) => cp.exported_count,
                _ => 0,
            })
            .collect();
        // Every stream complete: the job's relative window may be done (see `window_done`).
        let complete: Option<Vec<&Checkpoint>> = priors
            .iter()
            .map(|p| p.as_ref().ok().and_then(Option::as_ref))
            .map(|cp| cp.filter(|cp| cp.state == JobState::Complete))
            .collect();
        let now = chrono::Utc::now();
        if let Some(message) = complete
            .unwrap_or_default()
            .iter()
            .find_map(|cp| cp.window_done(self.job_id, now))
        {
            return Err(Error::WindowDone {
                job_id: self.job_id.to_string(),
                message,
            });
        }
        let parameter = self.plan.progress_parameter(self.job_id);
        let ssm = parameter
            .clone()
            .map(|name| SsmCounter::start(self.base, name, counts.iter().sum()));
        let board = Board::new(counts.clone(), quiet, ssm);
        tracing::info!(
            "job {}: {} streams, {} at once",
            self.job_id,
            record.streams.len(),
            record
                .streams
                .len()
                .min(self.plan.streams.max_streams as usize)
        );
        let runs = record
            .streams
            .iter()
            .zip(priors)
            .enumerate()
            .map(|(index, (stream, prior))| {
                let board = board.clone();
                let identity = &record.identity;
                let prior_count = counts[index];
                async move {
                    let observers = {
                        let mut observers = Observers::new();
                        observers.push(board.observer(index, stream));
                        observers
                    };
                    let result = self.run_stream(identity, stream, prior, observers).await;
                    board.ended(index);
                    if let Err(err) = &result {
                        tracing::warn!("stream {} failed: {}", stream.label(), one_line(err));
                    }
                    StreamOutcome {
                        stream: stream.clone(),
                        prior_count,
                        result,
                    }
                }
            });
        let mut outcomes: Vec<StreamOutcome> = futures::stream::iter(runs)
            .buffer_unordered(self.plan.streams.max_streams as usize)
            .collect()
            .await;
        outcomes.sort_by(|a, b| a.stream.cmp(&b.stream));
        board.finish().await;
        let report = LastRun {
            finished_at: chrono::Utc::now(),
            progress_parameter: Some(parameter.unwrap_or_else(|| "none".into())),
            streams: outcomes.iter().map(report).collect(),
        };
        if let Err(err) = report.save(self.store.as_ref(), self.job_id).await {
            tracing::warn!("could not write the last-run report: {}", one_line(&err));
        }
        Ok(outcomes)
    }

    /// The job's stream record: loaded and checked against this request, or resolved (and
    /// written once the job's lock is held).
    async fn stream_record(&self, identity: FanOutIdentity, home: &str) -> Result<Resolved> {
        if let Some(record) = StreamRecord::load(self.store.as_ref(), self.job_id).await? {
            self.check_identity(&record, &identity)?;
            return Ok(Resolved::Existing(record));
        }
        if CheckpointStore::new(self.store.clone(), self.job_id)
            .load()
            .await?
            .is_some()
        {
            return Err(Error::JobConflict {
                job_id: self.job_id.to_string(),
                message: "it is a one-stream job (created without --accounts/--regions); pick a new --job-id for a job over several accounts or Regions".into(),
            });
        }
        let resolved = resolve::resolve(
            &self.plan.streams,
            self.base,
            self.caller,
            home,
            self.plan.api,
            &self.plan.filters,
        )
        .await?;
        Ok(Resolved::New(StreamRecord::new(
            self.job_id,
            identity,
            resolved,
        )))
    }

    /// Refuses a stored record made for another request.
    fn check_identity(&self, record: &StreamRecord, identity: &FanOutIdentity) -> Result<()> {
        if &record.identity == identity {
            return Ok(());
        }
        Err(Error::JobConflict {
            job_id: self.job_id.to_string(),
            message: format!(
                "it was created for other streams or another request ({}); re-run with the original flags to resume it, or pick a new --job-id",
                describe_difference(&record.identity, identity)
            ),
        })
    }

    /// Every stream's checkpoint, read a few at once.
    async fn load_checkpoints(&self, streams: &[Stream]) -> Vec<Result<Option<Checkpoint>>> {
        let loads = streams.iter().map(|stream| {
            let store = self.store.clone();
            let job_id = stream.job_id(self.job_id);
            async move { CheckpointStore::new(store, &job_id).load().await }
        });
        futures::stream::iter(loads)
            .buffered(CHECKPOINT_READS)
            .collect()
            .await
    }

    /// Runs one stream: a complete one is skipped without credentials, any other gets its
    /// own (a role assumed in another account) and runs as a job of its own.
    async fn run_stream(
        &self,
        identity: &FanOutIdentity,
        stream: &Stream,
        prior: Result<Option<Checkpoint>>,
        observers: Observers,
    ) -> Result<RunSummary> {
        let stream_identity = identity.stream_identity(stream)?;
        let job_id = stream.job_id(self.job_id);
        let prior = prior?;
        if let Some(checkpoint) = &prior {
            if checkpoint.state == JobState::Complete
                && checkpoint.request.identity == stream_identity
            {
                // A run that died between its last commit and the manifest left it to us.
                let settled = settle::complete(self.store.as_ref(), checkpoint, None).await?;
                return Ok(RunSummary {
                    settled,
                    ..RunSummary::idle(RunEnd::AlreadyComplete, checkpoint.clone())
                });
            }
        }
        if let Some(reason) = self.cancel.reason() {
            // Its slot came after the stop: left as it was, for the next run.
            let now = chrono::Utc::now();
            let checkpoint = prior.unwrap_or_else(|| {
                Checkpoint::new(job_id.clone(), stream_identity.freeze(now), now)
            });
            return Ok(RunSummary::idle(RunEnd::Stopped(reason), checkpoint));
        }
        let role = self.plan.streams.role.as_ref();
        let config = aws::stream_config(self.base, self.caller, stream, role).await?;
        let job = Job {
            plan: self.plan,
            config: &config,
            store: self.store.clone(),
            job_id: &job_id,
            progress: None,
        };
        job.run(stream_identity, observers, self.cancel).await
    }
}

fn describe_difference(old: &FanOutIdentity, new: &FanOutIdentity) -> String {
    let checks = [
        (old.selection.accounts != new.selection.accounts, "accounts"),
        (old.selection.regions != new.selection.regions, "Regions"),
        (
            old.selection.caller_account_id != new.selection.caller_account_id,
            "calling account",
        ),
        (old.filters_as_given != new.filters_as_given, "filters"),
        (old.destination != new.destination, "destination"),
        (old.api != new.api || old.page_size != new.page_size, "API"),
    ];
    let fields: Vec<&str> = checks.iter().filter(|c| c.0).map(|c| c.1).collect();
    format!("{} differ", fields.join(", "))
}

/// One stream's line in the last-run report.
fn report(outcome: &StreamOutcome) -> StreamReport {
    let (state, exported_count, parts, error_kind, reason) = match &outcome.result {
        Ok(summary) => {
            let cp = &summary.checkpoint;
            let (state, reason) = match &summary.end {
                RunEnd::Complete | RunEnd::AlreadyComplete => (StreamState::Complete, None),
                RunEnd::Stopped(reason) => (StreamState::Resumable, Some(reason.clone())),
            };
            (
                state,
                cp.exported_count,
                cp.parts.len() as u64,
                None,
                reason,
            )
        }
        Err(err) => (
            StreamState::Failed,
            outcome.prior_count,
            0,
            Some(err.kind().to_string()),
            Some(one_line(err)),
        ),
    };
    StreamReport {
        stream: outcome.stream.clone(),
        state,
        exported_count,
        parts,
        error_kind,
        reason,
    }
}
