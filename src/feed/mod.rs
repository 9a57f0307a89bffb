//! The continuous feed: a family of scheduled runs that keeps the lake current. Each run is a
//! job of its own (`feed-<family>-<start>`) over one `UpdatedAt` window frozen when it starts:
//! from the family's watermark minus an overlap to the run's start, or everything up to the
//! run's start for a snapshot (the first run, and every `--snapshot-every`), which catches
//! changes that kept `UpdatedAt`. A run resumes the family's unfinished run before it starts a
//! new window, and only a complete run moves the watermark, so a failure never leaves a gap.

pub mod map;
pub mod runs;
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
    /// The scheduled invocation this run is part of (a Step Functions execution's name, given
    /// to each of its slices; `None` from the command line). Its runs carry it, so its later
    /// slices finish its own run and start no other.
    pub invocation: Option<String>,
}

/// `--snapshot-every` unless given.
pub const DEFAULT_SNAPSHOT_EVERY: &str = "7d";
/// `--overlap` unless given: a day. A provider sets `UpdatedAt` and may deliver the finding
/// hours later (GuardDuty publishes updated findings every 6 hours by default); a finding that
/// reaches Security Hub more than the overlap after its `UpdatedAt` is read only by the next
/// snapshot.
pub const DEFAULT_OVERLAP: &str = "1d";

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
    if plan.api != crate::request::Api::GetFindings {
        return Err(Error::Usage("feed reads GetFindings (ASFF) in this build: export the new Security Hub's OCSF findings with `export --api v2` (a daily job over a relative finding_info.modified_time_dt range)".into()));
    }
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

/// What one invocation of a family did.
#[derive(Debug, Clone)]
pub struct FeedSummary {
    /// The family.
    pub family: String,
    /// What to print, one line per run exported or resumed.
    pub lines: Vec<String>,
    /// Nothing is left for this invocation: its window is exported (and any unfinished run
    /// before it), or another run holds the family (`busy`).
    pub complete: bool,
    /// Each job this invocation ran, in order.
    pub outcomes: Vec<Outcome>,
    /// Why the invocation left the family to another run that holds it.
    pub busy: Option<String>,
    /// The family's watermark after the invocation.
    pub watermark: Option<DateTime<Utc>>,
}

/// What an invocation does next with its family's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Finish the family's unfinished run; `mine` when this invocation started it.
    Resume {
        /// The run.
        run: FeedRun,
        /// This invocation started it (it starts no other).
        mine: bool,
    },
    /// This invocation's run is complete already (a retried last slice): nothing to do.
    Done(String),
    /// Start a new window.
    Begin,
}

/// The next step of `invocation` (`None`: a command-line run, which always starts a window
/// after finishing an unfinished one).
pub fn next_step(state: &FeedState, invocation: Option<&str>) -> Step {
    let started_by_me =
        |run: &FeedRun| invocation.is_some() && run.started_by.as_deref() == invocation;
    if let Some(run) = &state.current {
        return Step::Resume {
            run: run.clone(),
            mine: started_by_me(run),
        };
    }
    match state.runs.iter().rev().find(|r| started_by_me(r)) {
        Some(run) => Step::Done(run.job_id.clone()),
        None => Step::Begin,
    }
}

/// Runs the family once: finishes its unfinished run, then exports a new window. A scheduled
/// invocation ([`FeedOptions::invocation`]) called again after its window completed does
/// nothing, and leaves the family cleanly (`busy`) when another run holds it.
pub async fn run(
    request: &ExportRequest,
    options: &FeedOptions,
    quiet: bool,
    cancel: &Cancel,
) -> Result<FeedSummary> {
    let Family {
        identity,
        family,
        store,
    } = Family::open(request, options).await?;
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
    let mut summary = FeedSummary {
        family: family.clone(),
        lines: Vec::new(),
        complete: false,
        outcomes: Vec::new(),
        busy: None,
        watermark: stored.state.watermark,
    };
    let scheduled = options.invocation.is_some();
    loop {
        let (run, mine, resumed) = match next_step(&stored.state, options.invocation.as_deref()) {
            Step::Done(job_id) => {
                summary.lines.push(format!(
                    "feed {family}: {job_id}, the run this invocation started, is complete"
                ));
                summary.complete = true;
                return Ok(summary);
            }
            Step::Resume { run, mine } => (run, mine, true),
            Step::Begin => {
                if cancel.reason().is_some() {
                    return Ok(summary);
                }
                match feed.begin(&mut stored).await {
                    Ok(run) => (run, true, false),
                    Err(busy @ Error::JobBusy { .. }) if scheduled => {
                        return Ok(summary.left_to_another(&busy))
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        let done = match feed.export_settled(&run).await {
            Err(busy @ Error::JobBusy { .. }) if scheduled && !mine => {
                return Ok(summary.left_to_another(&busy))
            }
            done => done?,
        };
        summary.outcomes.extend(done.outcomes);
        summary.lines.push(if resumed {
            format!(
                "feed {family}: resumed {} run {}: {}",
                run.kind, run.job_id, done.line
            )
        } else {
            let window = describe_window(&run);
            format!(
                "feed {family}: {} run {} ({window}): {}",
                run.kind, run.job_id, done.line
            )
        });
        let Some(complete) = done.run else {
            return Ok(summary);
        };
        feed.record(&mut stored, complete, &done.repairs).await?;
        summary.watermark = stored.state.watermark;
        if mine {
            let watermark = summary.watermark.map(iso).unwrap_or_default();
            summary
                .lines
                .push(format!("feed {family}: watermark {watermark}"));
            summary.complete = true;
            return Ok(summary);
        }
    }
}

impl FeedSummary {
    /// The invocation ends cleanly: another run holds the family.
    fn left_to_another(mut self, busy: &Error) -> FeedSummary {
        let reason = crate::error::one_line(busy);
        self.lines.push(format!(
            "feed {}: left to another run: {reason}",
            self.family
        ));
        self.busy = Some(reason);
        self.complete = true;
        self
    }
}

/// A family as found: its identity, name and the destination's store.
struct Family {
    identity: FamilyIdentity,
    family: String,
    store: std::sync::Arc<dyn ObjectStore>,
}

impl Family {
    /// Checks the request and opens the family's destination.
    async fn open(request: &ExportRequest, options: &FeedOptions) -> Result<Family> {
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
        let store = sink::open_store(&plan.destination, Some(&config)).await?;
        let family = plan
            .name_or_default(
                store.as_ref(),
                options.family.as_deref(),
                |url| identity.at(url).default_family(),
                sink::layout::feed_state_key,
            )
            .await?;
        Ok(Family {
            identity,
            family,
            store,
        })
    }
}

/// Reads of a window after which it is read again when findings changed under the read.
pub const MAX_REPAIRS: u32 = 2;

/// A run's export with its repairs.
struct Exported {
    /// The run, complete (rows, repairs and settled set), or `None` when it is not.
    run: Option<FeedRun>,
    /// Its complete repairs, with their rows and whether each settled.
    repairs: Vec<FeedRun>,
    /// What to print.
    line: String,
    /// Each job run: the run's, then its repairs'.
    outcomes: Vec<Outcome>,
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

    /// The export request of a run's window: a job of its own.
    fn job_request(&self, run: &FeedRun) -> ExportRequest {
        let mut request = self.request.clone();
        request.job_id = Some(run.job_id.clone());
        request.filters = Some(FiltersArg::Json(window_filters(
            &self.identity.filters_as_given,
            run,
        )));
        request
    }

    /// Exports a run's window as a job of its own.
    async fn export(&self, run: &FeedRun) -> Result<Outcome> {
        let plan = ExportPlan::new(&self.job_request(run))?;
        job::run_plan(&plan, self.quiet, self.cancel).await
    }

    /// Exports a run's window, then reads it again (a repair, a job of its own named after the
    /// run) while findings changed under the last read, at most [`MAX_REPAIRS`] times. Repairs
    /// are named by their number, so a resumed run walks the same ones (complete ones answer
    /// at once from their manifests).
    async fn export_settled(&self, run: &FeedRun) -> Result<Exported> {
        let mut outcome = self.export(run).await?;
        let mut outcomes = vec![outcome.clone()];
        let mut line = outcome.line.clone();
        let mut rows = outcome.rows;
        let mut repairs = Vec::new();
        while outcome.complete && outcome.unsettled && (repairs.len() as u32) < MAX_REPAIRS {
            let mut repair = run.repair(repairs.len() as u32 + 1);
            outcome = self.export(&repair).await?;
            outcomes.push(outcome.clone());
            line = format!(
                "{line}; findings changed while it read its window, read again as {}: {}",
                repair.job_id, outcome.line
            );
            if outcome.complete {
                rows += outcome.rows;
                repair.rows = Some(outcome.rows);
                repair.settled = Some(!outcome.unsettled);
                repairs.push(repair);
            }
        }
        if !outcome.complete {
            return Ok(Exported {
                run: None,
                repairs,
                line,
                outcomes,
            });
        }
        if outcome.unsettled {
            line = format!("{line}; findings were still changing after {MAX_REPAIRS} repairs: the watermark stays, and the next run reads the window again");
        }
        let mut done = run.clone();
        done.rows = Some(rows);
        done.repairs = repairs.len() as u32;
        done.settled = Some(!outcome.unsettled);
        Ok(Exported {
            run: Some(done),
            repairs,
            line,
            outcomes,
        })
    }

    /// Records a complete run: first its rows in the runs table, and its repairs' (the `latest`
    /// view judges snapshots by them), then the watermark moves to its window's end. Retried
    /// over a state another run wrote since it was read (both records are idempotent).
    async fn record(&self, stored: &mut Stored, run: FeedRun, repairs: &[FeedRun]) -> Result<()> {
        let completed_at = Utc::now();
        let table = self.identity.api.format().table().dir;
        for read in repairs.iter().chain([&run]) {
            let rows = read.rows.unwrap_or_default();
            runs::write(
                self.store,
                self.family,
                read,
                table,
                rows,
                read.settled,
                completed_at,
            )
            .await?;
        }
        let rows = run.rows.unwrap_or_default();
        for _ in 0..5 {
            let mut state = stored.state.clone();
            state.complete(run.clone(), rows, completed_at);
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
        repairs: 0,
        settled: None,
        started_by: options.invocation.clone(),
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
