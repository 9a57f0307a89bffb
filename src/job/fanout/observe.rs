//! Watching a multi-stream run: one progress line per active stream plus a total on a terminal
//! (indicatif's MultiProgress), a total log line every 10 s otherwise (findings read, moving
//! with every page; done/total, percent and ETA where streams were counted), and the job's one SSM
//! count, the sum over streams, written at most once a second whatever the stream count.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::job::checkpoint::Checkpoint;
use crate::job::observer::{
    burst_rows, plural, progress, spawn_ticker, steady_rate, Committed, Observer,
};
use crate::job::ssm::SsmCounter;
use crate::source::{SourceCounts, SourceStats};
use crate::streams::Stream;

/// What every stream's observer shares: the per-stream counts, the total line and the SSM count.
pub struct Board {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    state: Mutex<Totals>,
    ssm: Mutex<Option<SsmCounter>>,
    started: Instant,
    /// Every started stream's live counters (pages and findings read, throttled, retried).
    live: Mutex<Vec<Arc<SourceStats>>>,
    /// Refreshes the total from the live counters: every second on a terminal, every
    /// [`crate::job::observer::LOG_EVERY`] in the plain log.
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Totals {
    counts: Vec<u64>,
    /// Each stream's expected total, once its run started and if it was counted.
    expected: Vec<Option<u64>>,
    base: u64,
    streams_done: usize,
}

impl Board {
    /// A board for `counts.len()` streams whose checkpoints hold `counts` findings; bars on a
    /// terminal unless `quiet`; the sum published to `ssm` if given.
    pub fn new(counts: Vec<u64>, quiet: bool, ssm: Option<SsmCounter>) -> Arc<Board> {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        let total = multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let base = counts.iter().sum();
        Arc::new(Board {
            multi,
            total,
            state: Mutex::new(Totals {
                expected: vec![None; counts.len()],
                counts,
                base,
                streams_done: 0,
            }),
            ssm: Mutex::new(ssm),
            started: Instant::now(),
            live: Mutex::new(Vec::new()),
            ticker: Mutex::new(None),
        })
    }

    /// The observer of stream number `index`.
    pub fn observer(self: &Arc<Board>, index: usize, stream: &Stream) -> StreamView {
        StreamView {
            board: self.clone(),
            index,
            label: stream.label(),
            bar: None,
            started: Instant::now(),
            base: 0,
            expected: None,
        }
    }

    /// Records stream `index`'s count (if known) and refreshes the total and the SSM value.
    fn set(&self, index: usize, count: Option<u64>, stream_done: bool) {
        let mut totals = self.state.lock().expect("totals");
        if let Some(count) = count {
            totals.counts[index] = count;
        }
        totals.streams_done += usize::from(stream_done);
        let sum: u64 = totals.counts.iter().sum();
        if let Some(ssm) = self.ssm.lock().expect("ssm").as_ref() {
            ssm.set(sum);
        }
        // Streams start all through the run, each with its burst: over a job of many streams
        // the bursts are part of the pace, so the job's rate is its plain average.
        let this_run = sum.saturating_sub(totals.base);
        let rate = this_run as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let line = self.line(&totals, sum, rate);
        if let Some(bar) = &self.total {
            bar.set_message(line);
        }
    }

    /// The total line: what was read (moves with every page), what is durable, how many
    /// streams ended, and the calls throttled or retried.
    fn line(&self, totals: &Totals, sum: u64, rate: f64) -> String {
        let read = self
            .live
            .lock()
            .expect("live")
            .iter()
            .map(|stats| stats.snapshot())
            .fold(SourceCounts::default(), |acc, one| SourceCounts {
                requests: acc.requests + one.requests,
                throttled: acc.throttled + one.throttled,
                faults: acc.faults + one.faults,
                pages: acc.pages + one.pages,
                findings: acc.findings + one.findings,
            });
        let read_rate = read.findings as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "total: read {} ({read_rate:.0}/s); written {} ({rate:.0}/s this run); {} of {} streams ended; {} throttled, {} retried",
            plural(read.findings, "finding", "findings"),
            totals.progress(sum, rate),
            totals.streams_done,
            totals.counts.len(),
            read.throttled,
            read.faults,
        )
    }

    /// Adds a stream's live counters, and starts the ticker that shows them.
    fn reading(self: &Arc<Board>, live: &Arc<SourceStats>) {
        self.live.lock().expect("live").push(live.clone());
        let mut ticker = self.ticker.lock().expect("ticker");
        if ticker.is_some() {
            return;
        }
        let board = Arc::downgrade(self);
        *ticker = Some(spawn_ticker(self.total.clone(), move || {
            let board = board.upgrade()?;
            let totals = board.state.lock().expect("totals");
            let sum: u64 = totals.counts.iter().sum();
            let rate = sum.saturating_sub(totals.base) as f64
                / board.started.elapsed().as_secs_f64().max(0.001);
            Some(board.line(&totals, sum, rate))
        }));
    }

    /// Records stream `index`'s expected total.
    fn expect(&self, index: usize, expected: Option<u64>) {
        self.state.lock().expect("totals").expected[index] = expected;
    }

    /// Counts stream `index` as ended (whatever its outcome).
    pub fn ended(&self, index: usize) {
        self.set(index, None, true);
    }

    /// Clears the bars and writes the final sum to SSM; returns the sum.
    pub async fn finish(&self) -> u64 {
        if let Some(ticker) = self.ticker.lock().expect("ticker").take() {
            ticker.abort();
        }
        if let Some(bar) = &self.total {
            bar.finish_and_clear();
        }
        let sum = self.state.lock().expect("totals").counts.iter().sum();
        let ssm = self.ssm.lock().expect("ssm").take();
        if let Some(ssm) = ssm {
            if !ssm.close(Some(sum)).await {
                tracing::warn!("the SSM progress parameter could not be updated; it is set again on the next run");
            }
        }
        sum
    }
}

impl Totals {
    /// The job's progress: done of the streams' summed totals when every stream was counted;
    /// while some are not yet, the total estimated from the counted streams' average, marked
    /// `~` and with how many were counted.
    fn progress(&self, sum: u64, rate: f64) -> String {
        let counted: Vec<u64> = self.expected.iter().flatten().copied().collect();
        let streams = self.expected.len();
        match counted.len() {
            0 => format!("{sum} findings"),
            n if n == streams => progress(sum, Some(counted.iter().sum()), rate),
            n => {
                let known: u64 = counted.iter().sum();
                let estimate = known + known / n as u64 * (streams - n) as u64;
                let line = progress(sum, Some(estimate.max(sum)), rate);
                format!("~{line}, {n} of {streams} streams counted")
            }
        }
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template")
}

/// One stream's observer: its own line while it runs (freed when it ends).
pub struct StreamView {
    board: Arc<Board>,
    index: usize,
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    base: u64,
    expected: Option<u64>,
}

#[async_trait]
impl Observer for StreamView {
    fn started(&mut self, checkpoint: &Checkpoint) {
        self.base = checkpoint.exported_count;
        self.started = Instant::now();
        self.expected = checkpoint.expected_count;
        self.board.expect(self.index, checkpoint.expected_count);
        self.board
            .set(self.index, Some(checkpoint.exported_count), false);
        if let Some(multi) = &self.board.multi {
            let bar = multi.insert_from_back(1, ProgressBar::new_spinner());
            bar.set_style(style());
            bar.set_message(format!("{}: starting", self.label));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    fn reading(&mut self, live: &Arc<SourceStats>) {
        self.board.reading(live);
    }

    fn committed(&mut self, event: &Committed<'_>) {
        let rows = event.checkpoint.exported_count;
        self.board.set(self.index, Some(rows), false);
        if let Some(bar) = &self.bar {
            let seconds = self.started.elapsed().as_secs_f64();
            let rate = (rows - self.base) as f64 / seconds.max(0.001);
            let checkpoint = event.checkpoint;
            let burst = burst_rows(checkpoint.pace, checkpoint.request.identity.page_size);
            let steady = steady_rate(rows - self.base, burst, seconds);
            bar.set_message(format!(
                "{}: {} ({rate:.0}/s), {} parts, {} throttled, {} faults retried",
                self.label,
                progress(rows, self.expected, steady),
                event.checkpoint.parts.len(),
                event.source.throttled,
                event.source.faults
            ));
        }
    }

    async fn finish(self: Box<Self>, done: Option<&Checkpoint>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.board
            .set(self.index, done.map(|c| c.exported_count), false);
    }
}
