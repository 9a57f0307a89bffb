//! Progress: the exported count in SSM Parameter Store (absolute values from the checkpoint, at
//! most one write a second), and a live view on the terminal or plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ssm::types::ParameterType;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use crate::aws::Failure;
use crate::error::{Error, Result};
use crate::source::SourceStats;

/// Minimum spacing of PutParameter calls (the API's default throughput is low).
pub const SSM_INTERVAL: Duration = Duration::from_secs(1);
/// Attempts at the final value (backoff 1 s, 2 s, 4 s); a miss is repaired by the next run.
const FINAL_ATTEMPTS: u32 = 4;

/// Checks an SSM parameter name before any call.
pub fn validate_parameter_name(name: &str) -> Result<()> {
    let ok = name.len() <= 1011
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c))
        && !name
            .to_ascii_lowercase()
            .trim_start_matches('/')
            .starts_with("aws")
        && !name
            .to_ascii_lowercase()
            .trim_start_matches('/')
            .starts_with("ssm");
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid --progress-parameter {name:?}: use letters, digits and / _ . - (not starting with aws or ssm)"
        )))
    }
}

/// Publishes the exported count to one SSM parameter from a background task.
pub struct SsmCounter {
    sender: watch::Sender<u64>,
    /// Cuts the spacing wait short when the run ends, so the final value lands at once.
    finishing: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<bool>,
}

impl SsmCounter {
    /// Starts the publisher; the first value is written at once.
    pub fn start(config: &SdkConfig, name: String, initial: u64) -> SsmCounter {
        let client = aws_sdk_ssm::Client::new(config);
        let (sender, receiver) = watch::channel(initial);
        let finishing = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(publish(client, name, receiver, finishing.clone()));
        SsmCounter {
            sender,
            finishing,
            task,
        }
    }

    /// Records the latest absolute count (never read-modify-write).
    pub fn set(&self, count: u64) {
        self.sender.send_replace(count);
    }

    /// Writes the final value (or the last one set); returns whether SSM holds it.
    pub async fn finish(self, count: Option<u64>) -> bool {
        if let Some(count) = count {
            self.sender.send_replace(count);
        }
        drop(self.sender);
        self.finishing.notify_one();
        self.task.await.unwrap_or(false)
    }
}

async fn put(client: &aws_sdk_ssm::Client, name: &str, value: u64) -> Result<(), Failure> {
    client
        .put_parameter()
        .name(name)
        .value(value.to_string())
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| Failure::of(&e))
}

/// Writes each new value at most once per interval; after the sender closes, writes the final
/// value with a few retries. Returns whether the last value landed.
async fn publish(
    client: aws_sdk_ssm::Client,
    name: String,
    mut receiver: watch::Receiver<u64>,
    finishing: Arc<tokio::sync::Notify>,
) -> bool {
    let mut written: Option<u64> = None;
    loop {
        let value = *receiver.borrow_and_update();
        if written != Some(value) {
            match put(&client, &name, value).await {
                Ok(()) => written = Some(value),
                Err(failure) => tracing::warn!(
                    "SSM {name}: PutParameter failed, will retry ({})",
                    failure.summary()
                ),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(SSM_INTERVAL) => {}
            _ = finishing.notified() => break,
        }
        // Wait for a new value; after a failed write, retry at the next interval instead.
        let closed = if written == Some(*receiver.borrow()) {
            receiver.changed().await.is_err()
        } else {
            receiver.has_changed().is_err()
        };
        if closed {
            break;
        }
    }
    let last = *receiver.borrow();
    let mut delay = SSM_INTERVAL;
    for _ in 0..FINAL_ATTEMPTS {
        if written == Some(last) {
            return true;
        }
        match put(&client, &name, last).await {
            Ok(()) => written = Some(last),
            Err(failure) => {
                tracing::warn!(
                    "SSM {name}: final PutParameter failed ({})",
                    failure.summary()
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    written == Some(last)
}

/// The live view of a run: a progress bar on a terminal, a log line every 10 s otherwise.
pub struct Display {
    bar: Option<ProgressBar>,
    stats: Arc<SourceStats>,
    started: Instant,
    last_line: Instant,
    base_rows: u64,
}

impl Display {
    pub fn new(stats: Arc<SourceStats>, base_rows: u64, quiet: bool) -> Display {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Display {
            bar,
            stats,
            started: Instant::now(),
            last_line: Instant::now(),
            base_rows,
        }
    }

    /// Shows the state after `rows` findings are durable.
    pub fn update(&mut self, rows: u64, parts: u64) {
        let this_run = rows - self.base_rows;
        let rate = this_run as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "{rows} findings ({rate:.0}/s), {parts} parts, {} pages, {} throttled, {} faults retried",
            self.stats.pages.load(Ordering::Relaxed),
            self.stats.throttled.load(Ordering::Relaxed),
            self.stats.faults.load(Ordering::Relaxed),
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

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
