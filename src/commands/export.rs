//! `export`: validate the request into a plan, run the job (one stream, or one per account and
//! Region) with a terminal progress view, and return its summary line.

use crate::error::Result;
use crate::job::fanout::{self, FanOutSummary};
use crate::job::observer::{Observers, TerminalProgress};
use crate::job::{self, Cancel};
use crate::plan::{ExportPlan, ExportRequest};

/// Runs an export to its end (complete, time-boxed, interrupted) and returns the summary line.
pub async fn export(request: &ExportRequest, quiet: bool) -> Result<String> {
    let plan = ExportPlan::new(request)?;
    let cancel = Cancel::new();
    let ctrl_c = super::cancel_on_signals(&cancel);
    let line = if plan.streams.is_single() {
        let mut observers = Observers::new();
        observers.push(TerminalProgress::new(quiet));
        job::run(&plan, observers, &cancel).await.map(|s| s.line())
    } else {
        fanout::run(&plan, quiet, &cancel)
            .await
            .and_then(FanOutSummary::into_result)
            .map(|s| s.line())
    };
    ctrl_c.abort();
    line
}
