//! `feed`: one scheduled run of a feed family (resume its unfinished run, then export the window
//! since its watermark), with the terminal's progress view and signals.

use crate::cli::FeedFlags;
use crate::error::Result;
use crate::feed::{self, FeedOptions};
use crate::job::Cancel;

/// Runs the family once and returns the lines to print; an invocation stopped before its
/// window was exported is [`crate::error::Error::Stopped`] (exit 12) unless
/// `--exit-zero-when-stopped`.
pub async fn feed(flags: &FeedFlags) -> Result<String> {
    let options = FeedOptions {
        snapshot_every: flags.snapshot_every,
        overlap: flags.overlap,
        family: flags.family.clone(),
        invocation: None,
    };
    let cancel = Cancel::new();
    let ctrl_c = super::cancel_on_signals(&cancel);
    let summary = feed::run(&flags.request, &options, flags.quiet, &cancel).await;
    ctrl_c.abort();
    let summary = summary?;
    if !summary.complete && summary.busy.is_none() && !flags.exit_zero_when_stopped {
        crate::cli::print_line(&summary.lines.join("\n"));
        let reason = summary.outcomes.last().and_then(|o| o.stopped.as_deref());
        return Err(super::stopped(format!("feed {}", summary.family), reason));
    }
    Ok(summary.lines.join("\n"))
}
