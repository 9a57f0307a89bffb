//! `verify --source`: the job reconciled with Security Hub (see `reconcile::job`), each
//! stream's explanation printed, its problems added to the verification's; Ctrl-C or SIGTERM
//! stops it after the temporary insight, if any, is deleted.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::job::Cancel;
use crate::reconcile::job;
use crate::sink::ObjectStore;
use crate::streams::Role;

use super::VerifyArgs;

/// Reconciles the job, printing each stream's explanation; returns the summary line.
pub(super) async fn reconcile(
    args: &VerifyArgs,
    store: &Arc<dyn ObjectStore>,
    problems: &mut Vec<String>,
) -> Result<String> {
    let role = args.role_name.as_ref().map(|name| Role {
        name: name.clone(),
        external_id: args.external_id.clone(),
    });
    let cancel = Cancel::new();
    let signals = super::super::cancel_on_signals_saying(
        &cancel,
        "deleting the temporary insight, if any, then stopping",
    );
    let reconciled = job::reconcile(
        store,
        &args.aws,
        &args.job_id,
        role.as_ref(),
        args.list_missing,
        &cancel,
    )
    .await;
    signals.abort();
    let summary = match reconciled {
        Err(_) if cancel.is_cancelled() => {
            return Err(Error::Interrupted(
                "verify --source was interrupted; nothing was changed".into(),
            ))
        }
        other => other?,
    };
    summary
        .lines
        .iter()
        .for_each(|line| crate::cli::print_line(line));
    problems.extend(summary.problems.iter().cloned());
    if summary.problems_total > summary.problems.len() {
        problems.push(format!(
            "and {} more (see the lines above)",
            summary.problems_total - summary.problems.len()
        ));
    }
    Ok(summary.line())
}
