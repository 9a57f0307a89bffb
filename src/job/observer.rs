//! Observers of a run: whatever watches it (the terminal, the SSM count, a Lambda's log) is
//! passed in, so the job itself never knows where it runs.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};

use super::checkpoint::Checkpoint;
use crate::source::{Pace, SourceCounts, SourceStats, BURST_RESERVE};

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
    /// The run reads pages now; `live` counts them as they arrive.
    fn reading(&mut self, _live: &std::sync::Arc<SourceStats>) {}
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

    pub(crate) fn reading(&mut self, live: &std::sync::Arc<SourceStats>) {
        self.0.iter_mut().for_each(|o| o.reading(live));
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

/// Findings a run reads at once within its burst (what the limiter lets through before its
/// rate applies), for pages of `page_size`.
pub fn burst_rows(pace: Option<Pace>, page_size: u32) -> u64 {
    pace.map_or(0, |pace| {
        u64::from(pace.burst.saturating_sub(BURST_RESERVE)) * u64::from(page_size)
    })
}

/// The rate a run keeps, in findings/s: what it read after its burst over its time (0 until the
/// burst is spent). The burst is read at once, so counting it would promise too early an end.
pub fn steady_rate(rows: u64, burst_rows: u64, seconds: f64) -> f64 {
    rows.saturating_sub(burst_rows) as f64 / seconds.max(0.001)
}

/// Seconds left to read `total` findings from `done` at `rate` findings/s (`None`: no total,
/// or no rate measured yet).
pub fn eta_seconds(done: u64, total: Option<u64>, rate: f64) -> Option<u64> {
    let left = total?.saturating_sub(done);
    (rate > 0.0 && rate.is_finite()).then(|| (left as f64 / rate).ceil() as u64)
}

/// `done` findings, with the total, percent and ETA when a total is known:
/// `1200/5000 findings (24.0%, ETA 21s)`.
pub fn progress(done: u64, total: Option<u64>, rate: f64) -> String {
    let Some(total) = total else {
        return format!("{done} findings");
    };
    let percent = match total {
        0 => 100.0,
        total => (done as f64 * 100.0 / total as f64).min(100.0),
    };
    match eta_seconds(done, Some(total), rate) {
        Some(eta) => format!(
            "{done}/{total} findings ({percent:.1}%, ETA {})",
            short_duration(Duration::from_secs(eta))
        ),
        None => format!("{done}/{total} findings ({percent:.1}%)"),
    }
}

/// `2d 03h`, `1h 02m`, `4m 10s`, `35s`.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds:02}s"),
        (0, _, _) => format!("{hours}h {minutes:02}m"),
        _ => format!("{days}d {hours:02}h"),
    }
}

/// How often the plain log (no terminal, `--quiet`: cron, containers) gets a progress line.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Shows `line()` every second on `bar`, or without a bar logs it every [`LOG_EVERY`], until
/// aborted or `line` gives `None`.
pub(crate) fn spawn_ticker(
    bar: Option<ProgressBar>,
    line: impl Fn() -> Option<String> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let every = if bar.is_some() {
        Duration::from_secs(1)
    } else {
        LOG_EVERY
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let Some(line) = line() else { return };
            match &bar {
                Some(bar) => bar.set_message(line),
                None => tracing::info!("{line}"),
            }
        }
    })
}

/// What the live view knows beyond the source's counters: the durable side, from commits.
#[derive(Debug, Default, Clone, Copy)]
struct Written {
    rows: u64,
    parts: usize,
    expected: Option<u64>,
    burst_rows: u64,
}

/// The live view of a run: a progress bar on a terminal, a log line every [`LOG_EVERY`]
/// otherwise. Both move with every page read (findings read, rate, throttled and retried
/// calls), not only when a part is written.
pub struct TerminalProgress {
    bar: Option<ProgressBar>,
    started: Instant,
    written: std::sync::Arc<std::sync::Mutex<Written>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
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
            written: Default::default(),
            ticker: None,
        }
    }
}

/// `1 part`, `2 parts`.
pub fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The live line: what was read (moves with every page), what is durable, and the calls the
/// service throttled or that failed and were retried.
fn live_line(source: SourceCounts, written: Written, seconds: f64) -> String {
    let rate = source.findings as f64 / seconds.max(0.001);
    let steady = steady_rate(source.findings, written.burst_rows, seconds);
    format!(
        "read {} in {} ({rate:.0} findings/s); written {} in {}; {} throttled, {} retried",
        plural(source.findings, "finding", "findings"),
        plural(source.pages, "page", "pages"),
        progress(written.rows, written.expected, steady),
        plural(written.parts as u64, "part", "parts"),
        source.throttled,
        source.faults,
    )
}

#[async_trait]
impl Observer for TerminalProgress {
    fn started(&mut self, checkpoint: &Checkpoint) {
        self.started = Instant::now();
        *self.written.lock().expect("progress lock") = Written {
            rows: checkpoint.exported_count,
            parts: checkpoint.parts.len(),
            expected: checkpoint.expected_count,
            burst_rows: burst_rows(checkpoint.pace, checkpoint.request.identity.page_size),
        };
    }

    fn reading(&mut self, live: &std::sync::Arc<SourceStats>) {
        let (live, written, started) = (live.clone(), self.written.clone(), self.started);
        self.ticker = Some(spawn_ticker(self.bar.clone(), move || {
            let written = *written.lock().expect("progress lock");
            Some(live_line(
                live.snapshot(),
                written,
                started.elapsed().as_secs_f64(),
            ))
        }));
    }

    fn committed(&mut self, event: &Committed<'_>) {
        let checkpoint = event.checkpoint;
        let mut written = self.written.lock().expect("progress lock");
        written.rows = checkpoint.exported_count;
        written.parts = checkpoint.parts.len();
        written.expected = checkpoint.expected_count;
        if let Some(bar) = &self.bar {
            bar.set_message(live_line(
                event.source,
                *written,
                self.started.elapsed().as_secs_f64(),
            ));
        }
    }

    async fn finish(self: Box<Self>, _done: Option<&Checkpoint>) {
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_shows_total_percent_and_eta_when_counted() {
        assert_eq!(progress(1200, None, 300.0), "1200 findings");
        assert_eq!(
            progress(1200, Some(5000), 300.0),
            "1200/5000 findings (24.0%, ETA 13s)"
        );
        assert_eq!(
            progress(1200, Some(5000), 0.0),
            "1200/5000 findings (24.0%)"
        );
        assert_eq!(eta_seconds(0, Some(1_080_000), 300.0), Some(3600));
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h 02m");
        assert_eq!(short_duration(Duration::from_secs(250)), "4m 10s");
        assert_eq!(
            short_duration(Duration::from_secs(2 * 86_400 + 3 * 3600)),
            "2d 03h"
        );
    }
}
