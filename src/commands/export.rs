//! `export`: validate the request into a plan, run the job (one stream, or one per account and
//! Region) with a terminal progress view, and return its summary line.

use crate::error::Result;
use crate::job::{self, Cancel};
use crate::plan::{ExportPlan, ExportRequest};

/// Runs an export to its end (complete, time-boxed, interrupted) and returns the summary line.
pub async fn export(request: &ExportRequest, quiet: bool) -> Result<String> {
    let plan = ExportPlan::new(request)?;
    let cancel = Cancel::new();
    let ctrl_c = super::cancel_on_signals(&cancel);
    let outcome = job::run_plan(&plan, quiet, &cancel).await;
    ctrl_c.abort();
    outcome.map(|o| o.line)
}
