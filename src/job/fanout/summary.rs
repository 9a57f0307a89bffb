//! How a run of a multi-stream job ended: its totals, its one line, and partial or busy when
//! streams failed.

use super::{FanOutSummary, StreamOutcome};
use crate::error::{one_line, Error, Result};
use crate::job::RunEnd;
use crate::streams::Stream;

impl FanOutSummary {
    /// Streams that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&Stream, &Error)> {
        self.streams
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| (&o.stream, e)))
    }

    /// True when every stream is complete.
    pub fn complete(&self) -> bool {
        self.streams.iter().all(|o| {
            matches!(&o.result, Ok(s) if matches!(s.end, RunEnd::Complete | RunEnd::AlreadyComplete))
        })
    }

    /// Findings in durable parts over every stream.
    pub fn exported_count(&self) -> u64 {
        self.streams
            .iter()
            .map(|o| match &o.result {
                Ok(s) => s.checkpoint.exported_count,
                Err(_) => o.prior_count,
            })
            .sum()
    }

    /// Sums of what this run wrote: findings, parts and bytes.
    pub fn this_run(&self) -> (u64, u64, u64) {
        self.streams
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .fold((0, 0, 0), |(r, p, b), s| {
                (
                    r + s.rows_this_run,
                    p + s.parts_this_run,
                    b + s.bytes_this_run,
                )
            })
    }

    /// The summary when no stream failed; [`Error::Partial`] naming each failed stream
    /// otherwise (or [`Error::JobBusy`] when other runs hold every unfinished stream).
    pub fn into_result(self) -> Result<FanOutSummary> {
        let failed: Vec<(&Stream, &Error)> = self.failures().collect();
        if failed.is_empty() {
            return Ok(self);
        }
        let unfinished = self.streams.iter().filter(|o| !is_done(o)).count();
        let busy = failed
            .iter()
            .filter(|(_, e)| matches!(e, Error::JobBusy { .. }))
            .count();
        if busy == unfinished {
            return Err(Error::JobBusy {
                job_id: self.job_id.clone(),
                message: format!("another run holds its {busy} unfinished streams; wait for it to end (or for its leases to expire), then re-run the same command"),
            });
        }
        let reasons: Vec<String> = failed
            .iter()
            .map(|(stream, err)| format!("{}: {}", stream.label(), one_line(*err)))
            .collect();
        Err(partial(
            &self.job_id,
            self.streams.len() - unfinished,
            self.streams.len(),
            self.exported_count(),
            &reasons,
        ))
    }

    /// The one line a run ends with.
    pub fn line(&self) -> String {
        let (rows, parts, bytes) = self.this_run();
        let secs = self.elapsed.as_secs_f64();
        let rate = rows as f64 / secs.max(0.001);
        let done = self.streams.iter().filter(|o| is_done(o)).count();
        let sharded = self
            .streams
            .iter()
            .filter(|o| matches!(&o.result, Ok(s) if !s.checkpoint.shards.is_empty()))
            .count();
        let sharded = match sharded {
            0 => String::new(),
            n => format!(" ({n} streams sharded)"),
        };
        let this_run = format!(
            "{rows} findings in {parts} parts ({bytes} bytes){sharded} in {secs:.2}s, {rate:.0} findings/s"
        );
        if self.complete() {
            return format!(
                "complete: job {}: {} streams; this run {this_run}; job total {} findings",
                self.job_id,
                self.streams.len(),
                self.exported_count()
            );
        }
        format!(
            "resumable: job {} stopped with {done} of {} streams complete: this run {this_run}; job total {} findings; re-run the same command to continue",
            self.job_id,
            self.streams.len(),
            self.exported_count()
        )
    }
}

fn is_done(outcome: &StreamOutcome) -> bool {
    matches!(&outcome.result, Ok(s) if matches!(s.end, RunEnd::Complete | RunEnd::AlreadyComplete))
}

/// A job that ended with `reasons` (one per failed stream) after `done` of `total` streams
/// completed with `findings` in all.
pub(crate) fn partial(
    job_id: &str,
    done: usize,
    total: usize,
    findings: u64,
    reasons: &[String],
) -> Error {
    Error::Partial {
        job_id: job_id.to_string(),
        message: format!(
            "{done} of {total} streams complete ({findings} findings), {} failed: {}; fix them and re-run the same command: it resumes only the unfinished streams",
            reasons.len(),
            reasons.join("; ")
        ),
    }
}
