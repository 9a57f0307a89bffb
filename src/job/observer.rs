//! Observers of a run: whatever watches it (the terminal, the SSM count, a Lambda's log) is
//! passed in, so the job itself never knows where it runs.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::Checkpoint;
use crate::source::SourceCounts;

/// What is durable after a part's checkpoint commit.
#[derive(Debug, Clone, Copy)]
pub struct Committed<'a> {
    /// The checkpoint just committed.
    pub checkpoint: &'a Checkpoint,
    /// The source's counters at that moment.
    pub source: SourceCounts,
}

/// Watches one run of a job.
#[async_trait]
pub trait Observer: Send {
    /// The run starts from this checkpoint.
    fn started(&mut self, _checkpoint: &Checkpoint) {}
    /// A part and the checkpoint covering it are durable.
    fn committed(&mut self, event: &Committed<'_>);
    /// The run ended; `done` is the final checkpoint when it ended without error.
    async fn finish(self: Box<Self>, _done: Option<&Checkpoint>) {}
}

/// The observers of one run, called in order.
#[derive(Default)]
pub struct Observers(Vec<Box<dyn Observer>>);

impl Observers {
    /// No observers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an observer.
    pub fn push(&mut self, observer: impl Observer + 'static) {
        self.0.push(Box::new(observer));
    }

    pub(crate) fn started(&mut self, checkpoint: &Checkpoint) {
        self.0.iter_mut().for_each(|o| o.started(checkpoint));
    }

    pub(crate) fn committed(&mut self, event: &Committed<'_>) {
        self.0.iter_mut().for_each(|o| o.committed(event));
    }

    pub(crate) async fn finish(self, done: Option<&Checkpoint>) {
        for observer in self.0 {
            observer.finish(done).await;
        }
    }
}

/// The live view of a run: a progress bar on a terminal, a log line every 10 s otherwise.
pub struct TerminalProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    base_rows: u64,
}

impl TerminalProgress {
    /// A bar on stderr when it is a terminal and not `quiet`; plain log lines otherwise.
    pub fn new(quiet: bool) -> TerminalProgress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        TerminalProgress {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
            base_rows: 0,
        }
    }
}

#[async_trait]
impl Observer for TerminalProgress {
    fn started(&mut self, checkpoint: &Checkpoint) {
        self.base_rows = checkpoint.exported_count;
        self.started = Instant::now();
    }

    fn committed(&mut self, event: &Committed<'_>) {
        let rows = event.checkpoint.exported_count;
        let this_run = rows - self.base_rows;
        let rate = this_run as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "{rows} findings ({rate:.0}/s), {} parts, {} pages, {} throttled, {} faults retried",
            event.checkpoint.parts.len(),
            event.source.pages,
            event.source.throttled,
            event.source.faults,
        );
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if self.last_line.elapsed() >= Duration::from_secs(10) => {
                self.last_line = Instant::now();
                tracing::info!("{line}");
            }
            None => {}
        }
    }

    async fn finish(self: Box<Self>, _done: Option<&Checkpoint>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
