//! The continuous feed: a family of scheduled runs that keeps the lake current. Each run is a
//! job of its own (`feed-<family>-<start>`) over one `UpdatedAt` window frozen when it starts:
//! from the family's watermark minus an overlap to the run's start, or everything up to the
//! run's start for a snapshot (the first run, and every `--snapshot-every`), which catches
//! changes that kept `UpdatedAt`. A run resumes the family's unfinished run before it starts a
//! new window, and only a complete run moves the watermark, so a failure never leaves a gap.

pub mod state;

use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use serde_json::{json, Value};

use crate::aws;
use crate::error::{Error, Result};
use crate::job::{self, Cancel, Outcome};
use crate::plan::{ExportPlan, ExportRequest, FiltersArg};
use crate::request::filters::{freeze, iso, MAX_ATTRIBUTES, OPEN_START};
use crate::request::validate_job_id;
use crate::sink::{self, ObjectStore};
use state::{FamilyIdentity, FeedRun, FeedState, RunKind, Stored};

/// Longest family name (a run's job id adds 22 characters, and a stream's its account and
/// Region within the 96 a job over several streams allows).
pub const MAX_FAMILY: usize = 64;

/// How a feed picks its windows.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// A run is a full snapshot when the last complete one ended this long ago (or never).
    pub snapshot_every: Duration,
    /// An incremental window starts this long before the watermark (findings that reach the
    /// service after their `UpdatedAt` are still read; the overlap is read twice, and the
    /// `latest` view keeps one row per finding).
    pub overlap: Duration,
    /// The family's name (default: account, Region and a hash of the request).
    pub family: Option<String>,
}

/// Checks what can be checked offline: the request as an export, and what a feed sets itself.
pub fn validate(request: &ExportRequest, options: &FeedOptions) -> Result<ExportPlan> {
    if request.job_id.is_some() {
        return Err(Error::Usage("feed names each run's job itself (feed-<family>-<start>); name the family with --family instead of --job-id".into()));
    }
    if request.restart {
        return Err(Error::Usage(
            "--restart is an export flag; a feed run resumes or starts its window by itself".into(),
        ));
    }
    let plan = ExportPlan::new(request)?;
    if plan
        .filters
        .as_object()
        .is_some_and(|f| f.len() >= MAX_ATTRIBUTES)
    {
        return Err(Error::Usage(format!("feed adds an UpdatedAt filter to every run, and Security Hub accepts at most {MAX_ATTRIBUTES} attributes: use at most {} in --filters", MAX_ATTRIBUTES - 1)));
    }
    if plan.filters.get("UpdatedAt").is_some() {
        return Err(Error::Usage("feed sets UpdatedAt itself (each run reads the window since the last); remove UpdatedAt from --filters".into()));
    }
    if let Some(family) = &options.family {
        let valid =
            validate_job_id(family).is_ok() && family.len() <= MAX_FAMILY && !family.contains('.');
        if !valid {
            return Err(Error::Usage(format!(
                "invalid --family {family:?}: use 1-{MAX_FAMILY} characters from A-Z a-z 0-9 - _"
            )));
        }
    }
    if options.snapshot_every.is_zero() {
        return Err(Error::Usage(
            "--snapshot-every must be positive (e.g. 7d)".into(),
        ));
    }
    Ok(plan)
}

/// Runs the family once: finishes its unfinished run, then exports a new window. Returns the
/// lines to print.
pub async fn run(
    request: &ExportRequest,
    options: &FeedOptions,
    quiet: bool,
    cancel: &Cancel,
) -> Result<Vec<String>> {
    let plan = validate(request, options)?;
    let aws::Caller {
        config,
        account_id,
        region,
    } = aws::caller(&plan.aws).await?;
    let identity = FamilyIdentity {
        api: plan.api,
        account_id,
        region,
        streams: request.streams.clone(),
        filters_as_given: plan.filters.clone(),
        destination: plan.destination.url(),
    };
    let family = options
        .family
        .clone()
        .unwrap_or_else(|| identity.default_family());
    let store = sink::open_store(&plan.destination, Some(&config)).await?;
    let feed = Feed {
        request,
        options,
        store: store.as_ref(),
        family: &family,
        identity: &identity,
        quiet,
        cancel,
    };
    let mut stored = Stored::load(store.as_ref(), &family, &identity).await?;
    let mut lines = Vec::new();
    if let Some(run) = stored.state.current.clone() {
        let outcome = feed.export(&run).await?;
        lines.push(format!(
            "feed {family}: resumed {} run {}: {}",
            run.kind, run.job_id, outcome.line
        ));
        if !outcome.complete {
            return Ok(lines);
        }
        feed.record(&mut stored, run, outcome.rows).await?;
    }
    if cancel.reason().is_some() {
        return Ok(lines);
    }
    let run = feed.begin(&mut stored).await?;
    let outcome = feed.export(&run).await?;
    let window = describe_window(&run);
    lines.push(format!(
        "feed {family}: {} run {} ({window}): {}",
        run.kind, run.job_id, outcome.line
    ));
    if outcome.complete {
        feed.record(&mut stored, run, outcome.rows).await?;
        let watermark = stored.state.watermark.map(iso).unwrap_or_default();
        lines.push(format!("feed {family}: watermark {watermark}"));
    }
    Ok(lines)
}

/// `UpdatedAt a .. b` of a run, in words.
pub fn describe_window(run: &FeedRun) -> String {
    let start = run.window_start.map_or("the beginning".to_string(), iso);
    format!("UpdatedAt {start} to {}", iso(run.window_end))
}

/// One invocation of a family.
struct Feed<'a> {
    request: &'a ExportRequest,
    options: &'a FeedOptions,
    store: &'a dyn ObjectStore,
    family: &'a str,
    identity: &'a FamilyIdentity,
    quiet: bool,
    cancel: &'a Cancel,
}

impl Feed<'_> {
    /// Starts a new run: its window frozen now and recorded as the family's current run (a
    /// conditional write: of two runs that start at once, one gets [`Error::JobBusy`]).
    async fn begin(&self, stored: &mut Stored) -> Result<FeedRun> {
        let mut now = Utc::now();
        let last = stored.state.runs.last().map(|r| r.window_end);
        if last.is_some_and(|end| job_name(self.family, end) == job_name(self.family, now)) {
            // A run's job is named by its start second: the next one waits for the next second.
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            now = Utc::now();
        }
        let run = next_run(&stored.state, self.family, self.options, now);
        let mut state = stored.state.clone();
        state.current = Some(run.clone());
        if stored.save(self.store, state).await? {
            return Ok(run);
        }
        let other = Stored::load(self.store, self.family, self.identity).await?;
        let started = other
            .state
            .current
            .map(|r| format!(" ({} started at {})", r.job_id, iso(r.window_end)))
            .unwrap_or_default();
        Err(Error::JobBusy {
            job_id: format!("feed {}", self.family),
            message: format!("another run of this feed started a window at the same time{started}; it exports it, and the next scheduled run resumes it if it fails"),
        })
    }

    /// Exports a run's window as a job of its own.
    async fn export(&self, run: &FeedRun) -> Result<Outcome> {
        let mut request = self.request.clone();
        request.job_id = Some(run.job_id.clone());
        request.filters = Some(FiltersArg::Json(window_filters(
            &self.identity.filters_as_given,
            run,
        )));
        let plan = ExportPlan::new(&request)?;
        job::run_plan(&plan, self.quiet, self.cancel).await
    }

    /// Records a complete run: the watermark moves to its window's end. Retried over a state
    /// another run wrote since it was read (the record is idempotent).
    async fn record(&self, stored: &mut Stored, run: FeedRun, rows: u64) -> Result<()> {
        for _ in 0..5 {
            let mut state = stored.state.clone();
            state.complete(run.clone(), rows, Utc::now());
            if stored.save(self.store, state).await? {
                return Ok(());
            }
            *stored = Stored::load(self.store, self.family, self.identity).await?;
        }
        Err(Error::JobBusy {
            job_id: format!("feed {}", self.family),
            message: format!("its state kept changing under this run; {} is complete and the next run records it", run.job_id),
        })
    }
}

/// The job name of a run of `family` starting at `start`.
fn job_name(family: &str, start: DateTime<Utc>) -> String {
    format!("feed-{family}-{}", start.format("%Y%m%dT%H%M%SZ"))
}

/// The run that starts at `now`: a snapshot when none is complete or the last one is
/// `snapshot_every` old, else the window from the watermark minus the overlap.
pub fn next_run(
    state: &FeedState,
    family: &str,
    options: &FeedOptions,
    now: DateTime<Utc>,
) -> FeedRun {
    // Whole seconds: the run's job is named by its start second, and its window ends there.
    let now = now.with_nanosecond(0).unwrap_or(now);
    let every = chrono::Duration::from_std(options.snapshot_every).unwrap_or(chrono::Duration::MAX);
    let overlap = chrono::Duration::from_std(options.overlap).unwrap_or(chrono::Duration::zero());
    let snapshot_due = state.last_snapshot.is_none_or(|last| now - last >= every);
    let (kind, window_start) = match state.watermark {
        Some(watermark) if !snapshot_due => (RunKind::Incremental, Some(watermark - overlap)),
        _ => (RunKind::Snapshot, None),
    };
    FeedRun {
        job_id: job_name(family, now),
        kind,
        window_start,
        window_end: now,
        rows: None,
        completed_at: None,
    }
}

/// The user's filters with a run's `UpdatedAt` window (both ends inclusive), and any relative
/// `DateRange` of theirs resolved at the run's start: a run's request is absolute, so resuming
/// it on a later day reads the same window.
pub fn window_filters(filters: &Value, run: &FeedRun) -> Value {
    let mut filters = freeze(filters, run.window_end);
    let start = run.window_start.map_or(OPEN_START.to_string(), iso);
    if let Some(fields) = filters.as_object_mut() {
        fields.insert(
            "UpdatedAt".into(),
            json!([{"Start": start, "End": iso(run.window_end)}]),
        );
    }
    filters
}
