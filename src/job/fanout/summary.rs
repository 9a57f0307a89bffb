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
        let failed: Vec<(String, String)> = failed
            .iter()
            .map(|(stream, err)| (stream.label(), one_line(*err)))
            .collect();
        Err(partial(
            &self.job_id,
            self.streams.len() - unfinished,
            self.streams.len(),
            self.exported_count(),
            &failed,
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
            "{} in {} ({bytes} bytes){sharded} in {secs:.2}s, {rate:.0} findings/s",
            crate::job::observer::plural(rows, "finding", "findings"),
            crate::job::observer::plural(parts, "part", "parts"),
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

/// Most characters of the failed streams' part of a partial job's message: one readable line,
/// well inside the 32,768 characters Step Functions keeps of a failure's cause.
const MAX_REASONS_CHARS: usize = 4_000;

/// Most streams named in one reason's entry (an organization's missing role can fail
/// thousands; `status` lists each).
const MAX_LABELS_PER_REASON: usize = 20;

/// A job that ended with `failed` (each failed stream's label and reason) after `done` of
/// `total` streams completed with `findings` in all; see [`grouped_reasons`].
pub(crate) fn partial(
    job_id: &str,
    done: usize,
    total: usize,
    findings: u64,
    failed: &[(String, String)],
) -> Error {
    Error::Partial {
        job_id: job_id.to_string(),
        message: format!(
            "{done} of {total} streams complete ({findings} findings), {} failed: {}; fix them and re-run the same command: it resumes only the unfinished streams",
            failed.len(),
            grouped_reasons(job_id, failed, "failed")
        ),
    }
}

/// `streams` (each stream's label and reason) as one readable line: streams with the same
/// reason (an account's Regions, when its role is missing) share one entry naming at most
/// [`MAX_LABELS_PER_REASON`] of them; past [`MAX_REASONS_CHARS`] the rest are counted as
/// `what` streams, and `status` lists them all.
pub(crate) fn grouped_reasons(job_id: &str, streams: &[(String, String)], what: &str) -> String {
    // Groups in the order their reasons first appear, found through an index by reason.
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    let mut group_of: std::collections::HashMap<&str, usize> = Default::default();
    for (label, reason) in streams {
        let index = *group_of.entry(reason.as_str()).or_insert_with(|| {
            groups.push((Vec::new(), reason.as_str()));
            groups.len() - 1
        });
        groups[index].0.push(label);
    }
    let mut reasons = String::new();
    let mut named = 0;
    for (labels, reason) in &groups {
        let shown = labels.len().min(MAX_LABELS_PER_REASON);
        let more = match labels.len() - shown {
            0 => String::new(),
            rest => format!(" and {rest} more"),
        };
        let entry = format!("{}{more}: {reason}", labels[..shown].join(", "));
        if !reasons.is_empty() && reasons.len() + entry.len() > MAX_REASONS_CHARS {
            break;
        }
        if !reasons.is_empty() {
            reasons.push_str("; ");
        }
        reasons.push_str(&entry);
        named += labels.len();
    }
    if named < streams.len() {
        reasons.push_str(&format!(
            "; and {} more {what} streams (`status --job-id {job_id}` lists each with its reason)",
            streams.len() - named
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: Error) -> String {
        match error {
            Error::Partial { message, .. } => message,
            other => panic!("not partial: {other:?}"),
        }
    }

    #[test]
    fn streams_failing_alike_share_one_entry() {
        let denied = "cannot assume arn:aws:iam::222222222222:role/R (403 AccessDenied)";
        let failed = [
            ("222222222222/eu-west-1".to_string(), denied.to_string()),
            (
                "333333333333/eu-west-1".to_string(),
                "Security Hub is off".into(),
            ),
            ("222222222222/us-east-1".to_string(), denied.to_string()),
        ];
        let message = message(partial("org", 3, 6, 900, &failed));
        assert_eq!(
            message,
            format!("3 of 6 streams complete (900 findings), 3 failed: 222222222222/eu-west-1, 222222222222/us-east-1: {denied}; 333333333333/eu-west-1: Security Hub is off; fix them and re-run the same command: it resumes only the unfinished streams")
        );
    }

    #[test]
    fn thousands_of_failed_streams_make_one_bounded_line_that_counts_the_rest() {
        let failed: Vec<(String, String)> = (0..2_000)
            .map(|n| {
                let account = format!("{:012}", 100_000_000_000u64 + n);
                let reason = format!("cannot assume arn:aws:iam::{account}:role/SecurityHubExportRole (403 AccessDenied: not authorized to perform sts:AssumeRole)");
                (format!("{account}/us-east-1"), reason)
            })
            .collect();
        let message = message(partial("org", 0, 2_000, 0, &failed));
        assert!(message.len() < MAX_REASONS_CHARS + 400, "{}", message.len());
        assert!(!message.contains('\n'));
        assert!(message.starts_with("0 of 2000 streams complete (0 findings), 2000 failed: 100000000000/us-east-1: cannot assume"), "{message}");
        let named = message.matches("/us-east-1: ").count();
        assert!(named > 10, "{message}");
        assert!(
            message.contains(&format!(
                "; and {} more failed streams (`status --job-id org` lists each with its reason); fix them",
                2_000 - named
            )),
            "{message}"
        );
    }

    #[test]
    fn one_reason_shared_by_thousands_names_a_few_and_counts_the_rest() {
        let missing = "cannot assume arn:aws:iam::*:role/R (403 AccessDenied)";
        let failed: Vec<(String, String)> = (0..170_000)
            .map(|n| (format!("{:012}/eu-west-1", n), missing.to_string()))
            .collect();
        let message = message(partial("org", 0, 170_000, 0, &failed));
        assert!(message.len() < MAX_REASONS_CHARS, "{}", message.len());
        assert!(
            message.contains("000000000019/eu-west-1 and 169980 more: cannot assume"),
            "{message}"
        );
        assert!(!message.contains("000000000020/"), "{message}");
    }
}
