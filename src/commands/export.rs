//! `export`: validate the request into a plan, run the job (one stream, or one per account and
//! Region) with a terminal progress view, and return its summary line.

use crate::error::{Error, Result};
use crate::job::{self, Cancel};
use crate::plan::{ExportPlan, ExportRequest};

/// Runs an export to its end (complete, time-boxed, interrupted) and returns the summary line.
/// A complete job whose findings changed while it read them is [`Error::Unsettled`] (exit 10):
/// its lake is not proven exact, so it does not exit 0.
/// A run that stopped before the job was complete is [`Error::Stopped`] (exit 12) unless
/// `zero_when_stopped`.
pub async fn export(
    request: &ExportRequest,
    quiet: bool,
    zero_when_stopped: bool,
) -> Result<String> {
    let plan = ExportPlan::new(request)?;
    let cancel = Cancel::new();
    let ctrl_c = super::cancel_on_signals(&cancel);
    let outcome = job::run_plan(&plan, quiet, &cancel).await;
    ctrl_c.abort();
    let outcome = outcome?;
    if outcome.complete && outcome.unsettled {
        crate::cli::print_line(&outcome.line);
        return Err(Error::Unsettled {
            job_id: outcome.job_id,
            message: "every page was read, but findings of its request were updated while it read them, and the service's cursor may have skipped an unchanged one: the lake is not proven exact; export the same window again under a new --job-id (a feed repairs its windows itself)".into(),
        });
    }
    if !outcome.complete && !zero_when_stopped {
        crate::cli::print_line(&outcome.line);
        return Err(super::stopped(outcome.job_id, outcome.stopped.as_deref()));
    }
    Ok(outcome.line)
}
