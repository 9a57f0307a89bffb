//! The Lambda runner: when `AWS_LAMBDA_RUNTIME_API` is set the binary serves invocations, each
//! one time-boxed slice of a job through the unchanged job and pipeline. A slice stops at a part
//! boundary before the invocation's deadline minus a margin, checkpoints and returns; the state
//! machine invokes it again until `complete`. All job state stays in the checkpoint. An event
//! with `feed` runs a feed family instead: the execution's slices finish the family's
//! unfinished run, then export one new window.

use std::time::{Duration, SystemTime};

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

use crate::error::{one_line, Error};
use crate::feed;
use crate::job::fanout::distributed;
use crate::job::{self, Cancel};
use crate::plan::ExportPlan;
use event::{SliceEvent, Stage};
pub use result::{Answer, PlanResult, SliceResult};

pub mod event;
pub mod result;

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

/// Why a slice stops at its time box.
pub(crate) const TIME_BOX: &str = "the slice's time box before the Lambda deadline";

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

/// The export job of `plan` reconciled with Security Hub (see `reconcile::job`).
async fn reconcile_job(plan: &ExportPlan) -> Result<crate::reconcile::job::Summary, Error> {
    let job_id = plan.job_id.clone().ok_or_else(|| {
        Error::Usage("the reconcile stage needs the job's \"job_id\" (or \"execution\")".into())
    })?;
    let config = crate::aws::load(&plan.aws).await?;
    let store = crate::sink::open_store(&plan.destination, Some(&config)).await?;
    let summary = crate::reconcile::job::reconcile(
        &store,
        &plan.aws,
        &job_id,
        plan.streams.role.as_ref(),
        false,
        &Cancel::new(),
    )
    .await?;
    summary
        .lines
        .iter()
        .for_each(|line| tracing::info!("{line}"));
    tracing::info!("{}", summary.line());
    if !summary.reconciled {
        // The state machine's Catch turns this into the execution's error and cause.
        return Err(Error::Verify {
            job_id,
            problems: summary.problems,
        });
    }
    Ok(summary)
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
async fn slice(event: LambdaEvent<Value>) -> Result<Answer, SliceError> {
    let remaining = event
        .context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let result = run_slice(event.payload, slice_budget(remaining)).await;
    match &result {
        Ok(Answer::Slice(done)) => tracing::info!(
            job_id = %done.job_id,
            complete = done.complete,
            exported_count = done.exported_count,
            slice_rows = done.slice_rows,
            "slice ended"
        ),
        Ok(Answer::Plan(planned)) => tracing::info!(
            job_id = ?planned.job_id,
            fan_out = planned.fan_out,
            streams = planned.streams,
            "plan ended"
        ),
        Ok(Answer::Reconcile(summary)) => tracing::info!(
            job_id = %summary.job_id,
            reconciled = summary.reconciled,
            missing = summary.missing,
            "reconcile ended"
        ),
        Err(SliceError(err)) => {
            tracing::error!(error_type = err.kind(), "slice failed: {}", one_line(err))
        }
    }
    result
}

async fn run_slice(event: Value, budget: Duration) -> Result<Answer, SliceError> {
    let bad_event = |e: String| SliceError(Error::Usage(format!("invalid event: {e}")));
    let SliceEvent {
        mut request,
        feed,
        execution,
        stage,
        stream,
        reconcile: _,
        slices_per_execution: _,
        continued_after_count: _,
        continuation: _,
    } = serde_json::from_value(event).map_err(|e| bad_event(e.to_string()))?;
    if feed.is_some() && stream.is_some() {
        return Err(bad_event(
            "a feed runs its streams in one slice loop; remove \"stream\"".into(),
        ));
    }
    if stage.is_some() && stream.is_some() {
        return Err(bad_event("give \"stage\" or \"stream\", not both".into()));
    }
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
    match stage {
        Some(Stage::Plan) if plan.streams.is_single() => {
            return Ok(Answer::Plan(PlanResult::single(&plan)))
        }
        Some(Stage::Plan) => {
            let planned = match &feed {
                None => PlanResult::fan_out(
                    &request,
                    distributed::plan(&plan).await.map_err(SliceError)?,
                ),
                // A feed over several streams: its run's job through the Map, or (nothing
                // left for it) the slice loop that records the run.
                Some(options) => match feed::map::plan(&request, options)
                    .await
                    .map_err(SliceError)?
                {
                    feed::map::MapStep::Slices => PlanResult::single(&plan),
                    feed::map::MapStep::Job { request, planned } => {
                        PlanResult::fan_out(&request, planned)
                    }
                },
            };
            return Ok(Answer::Plan(planned));
        }
        Some(Stage::Finish) => {
            let outcome = distributed::finish(&plan).await.map_err(SliceError)?;
            tracing::info!("{}", outcome.line);
            return Ok(Answer::Slice(SliceResult::from(&outcome)));
        }
        Some(Stage::Reconcile) if feed.is_some() => {
            return Err(bad_event(
                "\"reconcile\" reconciles an export job; reconcile a feed's runs with verify --source --job-id <run's job>".into(),
            ))
        }
        Some(Stage::Reconcile) => {
            let summary = reconcile_job(&plan).await.map_err(SliceError)?;
            return Ok(Answer::Reconcile(summary));
        }
        None => {}
    }
    if budget.is_zero() {
        return Err(SliceError(Error::Usage(
            "the invocation has no time left to export: give the function a timeout of at least 10 seconds".into(),
        )));
    }
    let cancel = Cancel::new();
    let _time_box = cancel.cancel_after(budget, TIME_BOX);
    let result = match (&feed, &stream) {
        (Some(options), _) => {
            let summary = feed::run(&request, options, true, &cancel)
                .await
                .map_err(SliceError)?;
            for line in &summary.lines {
                tracing::info!("{line}");
            }
            SliceResult::from(&summary)
        }
        (None, Some(stream)) => {
            let outcome = distributed::run_stream(&plan, stream, &cancel)
                .await
                .map_err(SliceError)?;
            tracing::info!("{}", outcome.line);
            SliceResult::from(&outcome)
        }
        (None, None) => {
            let outcome = job::run_plan(&plan, true, &cancel)
                .await
                .map_err(SliceError)?;
            tracing::info!("{}", outcome.line);
            SliceResult::from(&outcome)
        }
    };
    Ok(Answer::Slice(result))
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

    #[tokio::test]
    async fn map_steps_are_checked_before_any_call() {
        let refused = |event: Value| async move {
            Diagnostic::from(run_slice(event, Duration::from_secs(10)).await.unwrap_err())
        };
        let stream = serde_json::json!({"account_id": "111111111111", "region": "eu-west-1"});
        let both = refused(
            serde_json::json!({"destination": "s3://lake/p", "stage": "plan", "stream": stream}),
        )
        .await;
        assert!(both.error_message.contains("not both"), "{both:?}");
        let feed = refused(
            serde_json::json!({"destination": "s3://lake/p", "feed": {}, "stream": stream}),
        )
        .await;
        assert!(feed.error_message.contains("one slice loop"), "{feed:?}");
        let stage = refused(serde_json::json!({"destination": "s3://lake/p", "stage": "go"})).await;
        assert_eq!(stage.error_type, "SechubExport.BadRequest");
        assert!(stage.error_message.contains("plan"), "{stage:?}");
        // A one-stream request plans without a call: no fan-out.
        let single = run_slice(
            serde_json::json!({"destination": "s3://lake/p", "stage": "plan", "max_streams": 4}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let Answer::Plan(planned) = single else {
            panic!("a plan answer: {single:?}")
        };
        assert!(!planned.fan_out && planned.job_id.is_none(), "{planned:?}");
        assert_eq!(planned.max_concurrency, 4);
    }
}
