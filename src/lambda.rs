//! The Lambda runner: when `AWS_LAMBDA_RUNTIME_API` is set the binary serves invocations, each
//! one time-boxed slice of a job through the unchanged job and pipeline. A slice stops at a part
//! boundary before the invocation's deadline minus a margin, checkpoints and returns; the state
//! machine invokes it again until `complete`. All job state stays in the checkpoint.

use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

use crate::error::{one_line, Error};
use crate::job::fanout::{self, FanOutSummary};
use crate::job::observer::{Observers, TerminalProgress};
use crate::job::{self, Cancel, RunEnd, RunSummary};
use crate::plan::ExportPlan;

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
    /// The job (the event's `job_id`, or the default one derived from the request).
    pub job_id: String,
    /// True once every finding of the job is exported; the state machine stops looping.
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
}

impl From<&RunSummary> for SliceResult {
    fn from(summary: &RunSummary) -> Self {
        let checkpoint = &summary.checkpoint;
        SliceResult {
            job_id: checkpoint.job_id.clone(),
            complete: matches!(summary.end, RunEnd::Complete | RunEnd::AlreadyComplete),
            exported_count: checkpoint.exported_count,
            parts: checkpoint.parts.len() as u64,
            slice_rows: summary.rows_this_run,
            slice_parts: summary.parts_this_run,
            slice_seconds: summary.elapsed.as_secs_f64(),
            stopped: match &summary.end {
                RunEnd::Stopped(reason) => Some(reason.clone()),
                _ => None,
            },
        }
    }
}

impl From<&FanOutSummary> for SliceResult {
    fn from(summary: &FanOutSummary) -> Self {
        let (rows, parts, _) = summary.this_run();
        let total_parts = summary
            .streams
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|s| s.checkpoint.parts.len() as u64)
            .sum();
        SliceResult {
            job_id: summary.job_id.clone(),
            complete: summary.complete(),
            exported_count: summary.exported_count(),
            parts: total_parts,
            slice_rows: rows,
            slice_parts: parts,
            slice_seconds: summary.elapsed.as_secs_f64(),
            stopped: (!summary.complete()).then(|| "the slice's time box".to_string()),
        }
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
    let plan: ExportPlan = serde_json::from_value(event)
        .map_err(|e| SliceError(Error::Usage(format!("invalid event: {e}"))))?;
    if budget.is_zero() {
        return Err(SliceError(Error::Usage(
            "the invocation has no time left to export: give the function a timeout of at least 10 seconds".into(),
        )));
    }
    let cancel = Cancel::new();
    let _time_box = cancel.cancel_after(budget, "the slice's time box before the Lambda deadline");
    if !plan.streams.is_single() {
        let summary = fanout::run(&plan, true, &cancel)
            .await
            .and_then(FanOutSummary::into_result)
            .map_err(SliceError)?;
        tracing::info!("{}", summary.line());
        return Ok(SliceResult::from(&summary));
    }
    let mut observers = Observers::new();
    observers.push(TerminalProgress::new(true));
    let summary = job::run(&plan, observers, &cancel)
        .await
        .map_err(SliceError)?;
    tracing::info!("{}", summary.line());
    Ok(SliceResult::from(&summary))
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
}
