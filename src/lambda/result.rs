//! What a slice returns: where its job (or feed run, or stream) stands after it.

use serde::Serialize;

use crate::feed::FeedSummary;
use crate::job::fanout::distributed::Planned;
use crate::job::Outcome;
use crate::plan::{ExportPlan, ExportRequest};
use crate::request::filters::iso;

use super::TIME_BOX;

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
    /// Findings Security Hub counted for the job when it started (`null`: not counted).
    pub expected_count: Option<u64>,
    /// Seconds left at this slice's rate (0 once complete; `null` without a count).
    pub eta_seconds: Option<u64>,
    /// The export is complete but findings of its request changed while it was read, so the
    /// service's cursor may have skipped an unchanged one: not proven exact (the command's
    /// exit 10; the state machine fails the execution with `SechubExport.Unsettled`). Always
    /// false for a feed, which reads such a window again itself.
    pub unsettled: bool,
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
            expected_count: outcome.expected,
            eta_seconds: outcome.eta_seconds(),
            unsettled: outcome.complete && outcome.unsettled,
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
                expected_count: None,
                eta_seconds: Some(0),
                unsettled: false,
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
        // A feed repairs an unsettled window itself (and says so in its lines).
        result.unsettled = false;
        result.feed_family = Some(summary.family.clone());
        result.watermark = summary.watermark.map(iso);
        result.busy = summary.busy.clone();
        result
    }
}

/// What the plan step returns: whether the job fans out over a Map, and its items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanResult {
    /// True when the job runs one child workflow per stream; false: one slice loop.
    pub fan_out: bool,
    /// The job (`null` when it does not fan out: its slices name it).
    pub job_id: Option<String>,
    /// Streams of the job.
    pub streams: u64,
    /// Bucket of the Map's items file.
    pub items_bucket: Option<String>,
    /// Key of the Map's items file.
    pub items_key: Option<String>,
    /// Streams run at once (the request's `max_streams`).
    pub max_concurrency: u32,
    /// The export request each child runs, and the finish step finishes (`null` when the job
    /// does not fan out): the request itself, or for a feed its run's window.
    pub request: Option<serde_json::Value>,
}

/// What an invocation returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// A slice of a job, a feed run or a stream, or a finished multi-stream job.
    Slice(SliceResult),
    /// A plan step.
    Plan(PlanResult),
    /// A reconcile step.
    Reconcile(crate::reconcile::job::Summary),
}

impl PlanResult {
    /// A job of one stream (or a feed): the state machine runs its slice loop.
    pub fn single(plan: &ExportPlan) -> PlanResult {
        PlanResult {
            fan_out: false,
            job_id: None,
            streams: 1,
            items_bucket: None,
            items_key: None,
            max_concurrency: plan.streams.max_streams.max(1),
            request: None,
        }
    }

    /// A planned multi-stream job of `request`: one child workflow per stream, `max_streams`
    /// at once.
    pub fn fan_out(request: &ExportRequest, planned: Planned) -> PlanResult {
        PlanResult {
            fan_out: true,
            job_id: Some(planned.job_id),
            streams: planned.streams as u64,
            items_bucket: Some(planned.items_bucket),
            items_key: Some(planned.items_key),
            max_concurrency: request.streams.max_streams.max(1),
            request: Some(serde_json::to_value(request).expect("a request serialises")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(complete: bool, expected: Option<u64>) -> Outcome {
        Outcome {
            job_id: "j".into(),
            complete,
            rows: 3_000,
            parts: 3,
            rows_this_run: 3_000,
            parts_this_run: 3,
            elapsed: std::time::Duration::from_secs(10),
            stopped: (!complete).then(|| TIME_BOX.to_string()),
            line: String::new(),
            unsettled: false,
            expected,
        }
    }

    #[test]
    fn a_slice_carries_the_expected_total_and_the_time_left_at_its_rate() {
        let running = SliceResult::from(&outcome(false, Some(12_000)));
        assert_eq!(running.expected_count, Some(12_000));
        assert_eq!(
            running.eta_seconds,
            Some(30),
            "9,000 left at 300 findings/s"
        );
        let done = SliceResult::from(&outcome(true, Some(3_000)));
        assert_eq!(done.eta_seconds, Some(0));
        let uncounted = SliceResult::from(&outcome(false, None));
        assert_eq!(
            (uncounted.expected_count, uncounted.eta_seconds),
            (None, None)
        );
    }
}
