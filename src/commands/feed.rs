//! `feed`: one scheduled run of a feed family (resume its unfinished run, then export the window
//! since its watermark), with the terminal's progress view and signals.

use crate::cli::FeedFlags;
use crate::error::Result;
use crate::feed::{self, FeedOptions};
use crate::job::Cancel;

/// Runs the family once and returns the lines to print.
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
    summary.map(|summary| summary.lines.join("\n"))
}
