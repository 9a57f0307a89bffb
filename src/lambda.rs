//! The Lambda runner: when `AWS_LAMBDA_RUNTIME_API` is set the binary serves invocations, each
//! one time-boxed slice of a job through the unchanged job and pipeline. A slice stops at a part
//! boundary before the invocation's deadline minus a margin, checkpoints and returns; the state
//! machine invokes it again until `complete`. All job state stays in the checkpoint. An event
//! with `feed` runs a feed family instead: the execution's slices finish the family's
//! unfinished run, then export one new window.

use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{one_line, Error};
use crate::feed::{self, FeedOptions, FeedSummary};
use crate::job::{self, Cancel, Outcome};
use crate::plan::{ExportPlan, ExportRequest};
use crate::request::filters::iso;

/// Smallest safety margin before the deadline.
const MIN_MARGIN: Duration = Duration::from_secs(2);
/// Largest safety margin before the deadline.
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// Share of the time given that is kept as margin (between the bounds above).
const MARGIN_SHARE: f64 = 0.10;

/// True when the Lambda service (or a Runtime API emulator) started this process.
pub fn invoked_by_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until the sandbox is shut down.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(slice)).await
}

/// What a slice returns: where the job stands after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceResult {
    /// The job (the event's `job_id`, the execution's name, or the default one derived from the
    /// request); for a feed, the run's job (`feed <family>` when it ran none).
    pub job_id: String,
    /// True once every finding of the job is exported (for a feed: its window, or another run
    /// holds the family); the state machine stops looping.
    pub complete: bool,
    /// Findings in durable parts, over the whole job.
    pub exported_count: u64,
    /// Parts of the whole job.
    pub parts: u64,
    /// Findings this slice wrote.
    pub slice_rows: u64,
    /// Parts this slice wrote.
    pub slice_parts: u64,
    /// Seconds this slice ran.
    pub slice_seconds: f64,
    /// Why the slice stopped before the job was complete (`null` when complete).
    pub stopped: Option<String>,
    /// The feed family (`null` for an export).
    pub feed_family: Option<String>,
    /// The family's watermark after the slice (`null` for an export, or before its first run).
    pub watermark: Option<String>,
    /// Why a feed invocation left the family to another run that holds it (`null` otherwise).
    pub busy: Option<String>,
}

impl From<&Outcome> for SliceResult {
    fn from(outcome: &Outcome) -> Self {
        SliceResult {
            job_id: outcome.job_id.clone(),
            complete: outcome.complete,
            exported_count: outcome.rows,
            parts: outcome.parts,
            slice_rows: outcome.rows_this_run,
            slice_parts: outcome.parts_this_run,
            slice_seconds: outcome.elapsed.as_secs_f64(),
            stopped: outcome.stopped.clone(),
            feed_family: None,
            watermark: None,
            busy: None,
        }
    }
}

impl From<&FeedSummary> for SliceResult {
    /// The job last run (its totals), with what every job of the slice wrote.
    fn from(summary: &FeedSummary) -> Self {
        let mut result = match summary.outcomes.last() {
            Some(last) => SliceResult::from(last),
            None => SliceResult {
                job_id: format!("feed {}", summary.family),
                complete: true,
                exported_count: 0,
                parts: 0,
                slice_rows: 0,
                slice_parts: 0,
                slice_seconds: 0.0,
                stopped: None,
                feed_family: None,
                watermark: None,
                busy: None,
            },
        };
        let all = &summary.outcomes;
        result.slice_rows = all.iter().map(|o| o.rows_this_run).sum();
        result.slice_parts = all.iter().map(|o| o.parts_this_run).sum();
        result.slice_seconds = all.iter().map(|o| o.elapsed.as_secs_f64()).sum();
        result.complete = summary.complete;
        if summary.complete {
            result.stopped = None;
        } else if result.stopped.is_none() {
            result.stopped = Some(TIME_BOX.to_string());
        }
        result.feed_family = Some(summary.family.clone());
        result.watermark = summary.watermark.map(iso);
        result.busy = summary.busy.clone();
        result
    }
}

/// Why a slice stops at its time box.
const TIME_BOX: &str = "the slice's time box before the Lambda deadline";

/// A slice's event: an export request with the CLI's flag names in snake_case, and for a feed
/// its options under `feed`.
#[derive(Debug, Deserialize)]
struct SliceEvent {
    #[serde(flatten)]
    request: ExportRequest,
    /// Run the request as a feed family (one scheduled run per execution) instead of one job.
    #[serde(default)]
    feed: Option<FeedEvent>,
    /// The Step Functions execution's name: an export's job id unless `job_id` is given, a
    /// feed's invocation.
    #[serde(default)]
    execution: Option<String>,
}

/// The `feed` flags in an event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedEvent {
    /// `--family`.
    #[serde(default)]
    family: Option<String>,
    /// `--snapshot-every`, e.g. `7d`.
    #[serde(default)]
    snapshot_every: Option<String>,
    /// `--overlap`, e.g. `1h`.
    #[serde(default)]
    overlap: Option<String>,
}

impl FeedEvent {
    /// The feed's options for the execution `invocation`.
    fn options(self, invocation: Option<String>) -> Result<FeedOptions, Error> {
        let duration = |name: &str, given: Option<String>, default: &str| {
            let text = given.unwrap_or_else(|| default.to_string());
            humantime::parse_duration(&text).map_err(|e| {
                Error::Usage(format!(
                    "invalid feed.{name} {text:?} ({e}); give a duration such as {default}"
                ))
            })
        };
        Ok(FeedOptions {
            snapshot_every: duration(
                "snapshot_every",
                self.snapshot_every,
                feed::DEFAULT_SNAPSHOT_EVERY,
            )?,
            overlap: duration("overlap", self.overlap, feed::DEFAULT_OVERLAP)?,
            family: self.family,
            invocation,
        })
    }
}

/// A failed slice, reported to Lambda with the error's kind as `errorType` (what the state
/// machine's Retry and Catch match) and its one-line message.
#[derive(Debug)]
pub struct SliceError(Error);

impl From<SliceError> for Diagnostic {
    fn from(failed: SliceError) -> Diagnostic {
        Diagnostic {
            error_type: failed.0.kind().to_string(),
            error_message: one_line(&failed.0),
        }
    }
}

/// How long a slice may fetch when `remaining` is left before the deadline: the rest is kept
/// to write the part in progress, commit its checkpoint and release the lease. The margin is
/// a tenth of the time given, at least 2 s and at most 60 s (a 20 s invocation fetches 18 s,
/// a 15 min one 14 min).
pub fn slice_budget(remaining: Duration) -> Duration {
    let margin = remaining
        .mul_f64(MARGIN_SHARE)
        .clamp(MIN_MARGIN, MAX_MARGIN);
    remaining.saturating_sub(margin)
}

/// One invocation: the event is an export request with the CLI's flag names in snake_case.
async fn slice(event: LambdaEvent<Value>) -> Result<SliceResult, SliceError> {
    let remaining = event
        .context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let result = run_slice(event.payload, slice_budget(remaining)).await;
    match &result {
        Ok(done) => tracing::info!(
            job_id = %done.job_id,
            complete = done.complete,
            exported_count = done.exported_count,
            slice_rows = done.slice_rows,
            "slice ended"
        ),
        Err(SliceError(err)) => {
            tracing::error!(error_type = err.kind(), "slice failed: {}", one_line(err))
        }
    }
    result
}

async fn run_slice(event: Value, budget: Duration) -> Result<SliceResult, SliceError> {
    let bad_event = |e: String| SliceError(Error::Usage(format!("invalid event: {e}")));
    let SliceEvent {
        mut request,
        feed,
        execution,
    } = serde_json::from_value(event).map_err(|e| bad_event(e.to_string()))?;
    let feed = feed
        .map(|f| f.options(execution.clone()))
        .transpose()
        .map_err(SliceError)?;
    if feed.is_none() && request.job_id.is_none() {
        request.job_id = execution;
    }
    // Every offline check before the time box starts, the feed's included.
    let plan = match &feed {
        Some(options) => feed::validate(&request, options),
        None => ExportPlan::new(&request),
    }
    .map_err(SliceError)?;
    if budget.is_zero() {
        return Err(SliceError(Error::Usage(
            "the invocation has no time left to export: give the function a timeout of at least 10 seconds".into(),
        )));
    }
    let cancel = Cancel::new();
    let _time_box = cancel.cancel_after(budget, TIME_BOX);
    let result = match &feed {
        Some(options) => {
            let summary = feed::run(&request, options, true, &cancel)
                .await
                .map_err(SliceError)?;
            for line in &summary.lines {
                tracing::info!("{line}");
            }
            SliceResult::from(&summary)
        }
        None => {
            let outcome = job::run_plan(&plan, true, &cancel)
                .await
                .map_err(SliceError)?;
            tracing::info!("{}", outcome.line);
            SliceResult::from(&outcome)
        }
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_scales_with_the_time_given_within_its_bounds() {
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(slice_budget(secs(20)), secs(18));
        assert_eq!(slice_budget(secs(5)), secs(3));
        assert_eq!(slice_budget(secs(300)), secs(270));
        assert_eq!(slice_budget(secs(900)), secs(840));
        assert_eq!(slice_budget(secs(1)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_bad_event_fails_the_slice_with_a_typed_error_before_any_call() {
        let err = run_slice(
            serde_json::json!({"region": "us-east-1"}),
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
        let diagnostic = Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "SechubExport.BadRequest");
        assert!(
            diagnostic.error_message.contains("destination"),
            "{diagnostic:?}"
        );
        let filters = serde_json::json!({"destination": "/tmp/x", "filters": {"Nope": []}});
        let diagnostic = Diagnostic::from(
            run_slice(filters, Duration::from_secs(10))
                .await
                .unwrap_err(),
        );
        assert_eq!(diagnostic.error_type, "SechubExport.BadRequest");
        assert!(diagnostic.error_message.contains("Nope"), "{diagnostic:?}");
    }

    #[tokio::test]
    async fn a_feed_event_is_checked_like_the_feed_command_before_any_call() {
        let refused = |event: Value| async move {
            Diagnostic::from(run_slice(event, Duration::from_secs(10)).await.unwrap_err())
        };
        let bad_overlap =
            refused(serde_json::json!({"destination": "/tmp/x", "feed": {"overlap": "soon"}}))
                .await;
        assert_eq!(bad_overlap.error_type, "SechubExport.BadRequest");
        assert!(
            bad_overlap.error_message.contains("feed.overlap"),
            "{bad_overlap:?}"
        );
        let named =
            refused(serde_json::json!({"destination": "/tmp/x", "job_id": "j", "feed": {}})).await;
        assert!(named.error_message.contains("--family"), "{named:?}");
        let unknown =
            refused(serde_json::json!({"destination": "/tmp/x", "feed": {"every": "1d"}})).await;
        assert!(unknown.error_message.contains("every"), "{unknown:?}");
    }
}
