//! A slice's event: an export request with the CLI's flag names in snake_case, and what the
//! state machine adds (the execution's name, a feed's options, a Map's stage or stream).

use serde::Deserialize;

use crate::error::Error;
use crate::feed::{self, FeedOptions};
use crate::job::fanout::distributed::StreamKey;
use crate::plan::ExportRequest;

/// A slice's event: an export request with the CLI's flag names in snake_case, and for a feed
/// its options under `feed`.
#[derive(Debug, Deserialize)]
pub struct SliceEvent {
    /// The request.
    #[serde(flatten)]
    pub request: ExportRequest,
    /// Run the request as a feed family (one scheduled run per execution) instead of one job.
    #[serde(default)]
    pub feed: Option<FeedEvent>,
    /// The Step Functions execution's name: an export's job id unless `job_id` is given, a
    /// feed's invocation.
    #[serde(default)]
    pub execution: Option<String>,
    /// A step of a multi-stream job run by a Distributed Map (`plan` or `finish`).
    #[serde(default)]
    pub stage: Option<Stage>,
    /// The one stream of a planned multi-stream job this slice runs (a Map item).
    #[serde(default)]
    pub stream: Option<StreamKey>,
    /// Reconcile the job with Security Hub once it is complete (read by the state machine,
    /// which then runs the `reconcile` stage).
    #[serde(default)]
    pub reconcile: bool,
    /// Slices one execution runs before the state machine continues the job in a new one
    /// (read by the state machine only; numbers, as Step Functions may pass them as `2.0`).
    #[serde(default)]
    pub slices_per_execution: Option<f64>,
    /// The job's count when the execution that started this one continued it (read by the
    /// state machine only: a continued execution that moves nothing fails the job).
    #[serde(default)]
    pub continued_after_count: Option<f64>,
    /// How many executions of the job came before this one (read by the state machine only).
    #[serde(default)]
    pub continuation: Option<f64>,
}

/// The steps of a multi-stream job around its Distributed Map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Freeze the stream set and write the Map's items (or say the job is one stream).
    Plan,
    /// Report the job once every stream's child workflow ended.
    Finish,
    /// Reconcile the complete job with Security Hub's own counts (`verify --source`).
    Reconcile,
}

/// The `feed` flags in an event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedEvent {
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
    pub fn options(self, invocation: Option<String>) -> Result<FeedOptions, Error> {
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
