//! The export pipeline: fetch -> encode -> upload -> checkpoint, each stage its own task joined by
//! bounded channels, so the fetcher keeps the rate limiter busy while parts are written.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use crate::checkpoint::lock::JobLock;
use crate::checkpoint::{Checkpoint, CheckpointStore, JobState, PartRecord};
use crate::encode::{self, Compression, PartWriter};
use crate::error::{Error, Result};
use crate::layout;
use crate::page::Page;
use crate::source::FindingsSource;

/// Pages buffered between the fetcher and the encoder.
const PAGE_QUEUE: usize = 32;

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every finding of the job is exported.
    Complete,
    /// The job was already complete before this run; nothing was fetched.
    AlreadyComplete,
    /// Stopped at a part boundary (`--max-duration` or Ctrl-C); the same command resumes.
    Stopped(String),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub end: RunEnd,
    pub checkpoint: Checkpoint,
    pub rows_this_run: u64,
    pub parts_this_run: u64,
    pub bytes_this_run: u64,
    pub elapsed: Duration,
}

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub part_rows: u64,
    pub compression: Compression,
    pub max_duration: Option<Duration>,
}

/// A part ready to upload, with the pages it covers.
struct EncodedPart {
    bytes: Vec<u8>,
    rows: u64,
    pages: u64,
    next_token: Option<String>,
}

/// Runs one job from its checkpoint until complete, stopped, or failed. Parts and the
/// checkpoint are written in order; a failure never advances the checkpoint past unwritten data.
pub async fn run(
    source: FindingsSource,
    stores: (Arc<dyn crate::sink::ObjectStore>, CheckpointStore),
    lock: &JobLock,
    mut checkpoint: Checkpoint,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut on_commit: impl FnMut(&Checkpoint),
) -> Result<RunSummary> {
    let (store, mut checkpoints) = stores;
    let started = Instant::now();
    let base_rows = checkpoint.exported_count;
    let base_parts = checkpoint.parts.len() as u64;
    let base_bytes = checkpoint.bytes_written;
    if checkpoint.state == JobState::Complete {
        return Ok(summary(
            RunEnd::AlreadyComplete,
            checkpoint,
            (base_rows, base_parts, base_bytes),
            started,
        ));
    }
    remove_stray_parts(store.as_ref(), &checkpoint).await?;

    let (stop_tx, stop_rx) = watch::channel(None::<String>);
    let stopper = tokio::spawn(stop_when(shutdown, options.max_duration, stop_tx));
    let (page_tx, page_rx) = mpsc::channel::<Page>(PAGE_QUEUE);
    let (part_tx, mut part_rx) = mpsc::channel::<EncodedPart>(1);
    let fetcher = tokio::spawn(fetch_pages(
        source,
        checkpoint.next_token.clone(),
        page_tx,
        stop_rx.clone(),
    ));
    let job_id = checkpoint.job_id.clone();
    let encoder =
        tokio::task::spawn_blocking(move || encode_parts(page_rx, part_tx, &job_id, &options));

    let mut failure = None;
    while let Some(part) = part_rx.recv().await {
        if let Err(err) = commit_part(
            store.as_ref(),
            &mut checkpoints,
            lock,
            &mut checkpoint,
            part,
        )
        .await
        {
            failure = Some(err);
            break;
        }
        on_commit(&checkpoint);
    }
    drop(part_rx);
    stopper.abort();
    let fetch_result = fetcher.await.expect("fetcher task");
    let encode_result = encoder.await.expect("encoder task");
    if let Some(err) = failure {
        return Err(err);
    }
    encode_result?;
    fetch_result?;

    let end = match (checkpoint.state, stop_rx.borrow().clone()) {
        (JobState::Complete, _) => RunEnd::Complete,
        (JobState::Running, Some(reason)) => RunEnd::Stopped(reason),
        (JobState::Running, None) => {
            return Err(Error::Internal(
                "the fetcher ended before the last page".into(),
            ))
        }
    };
    Ok(summary(
        end,
        checkpoint,
        (base_rows, base_parts, base_bytes),
        started,
    ))
}

fn summary(
    end: RunEnd,
    checkpoint: Checkpoint,
    base: (u64, u64, u64),
    started: Instant,
) -> RunSummary {
    RunSummary {
        rows_this_run: checkpoint.exported_count - base.0,
        parts_this_run: checkpoint.parts.len() as u64 - base.1,
        bytes_this_run: checkpoint.bytes_written - base.2,
        end,
        checkpoint,
        elapsed: started.elapsed(),
    }
}

/// Signals a stop on shutdown or when the time box runs out.
async fn stop_when(
    shutdown: impl Future<Output = ()>,
    max: Option<Duration>,
    stop: watch::Sender<Option<String>>,
) {
    let deadline = async {
        match max {
            Some(max) => tokio::time::sleep(max).await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        _ = shutdown => "interrupted",
        _ = deadline => "--max-duration reached",
    };
    stop.send_replace(Some(reason.to_string()));
}

/// Fetches pages from `token` until the last page, a stop signal, or an error. Pages already
/// sent stay valid after an error: they are flushed and checkpointed before the error is returned.
async fn fetch_pages(
    source: FindingsSource,
    mut token: Option<String>,
    pages: mpsc::Sender<Page>,
    mut stop: watch::Receiver<Option<String>>,
) -> Result<()> {
    let mut number = 0;
    loop {
        if stop.borrow().is_some() {
            return Ok(());
        }
        number += 1;
        let page = tokio::select! {
            page = source.fetch(token.as_deref(), number) => page?,
            _ = stop.changed() => return Ok(()),
        };
        token = page.next_token.clone();
        if pages.send(page).await.is_err() || token.is_none() {
            return Ok(());
        }
    }
}

/// Groups pages into parts of about `part_rows` rows (whole pages), on a blocking thread.
fn encode_parts(
    mut pages: mpsc::Receiver<Page>,
    parts: mpsc::Sender<EncodedPart>,
    job_id: &str,
    options: &RunOptions,
) -> Result<()> {
    let new_writer = || {
        PartWriter::new(options.compression).map_err(|e| Error::Encode {
            part: 0,
            source: Box::new(e),
        })
    };
    let mut writer = new_writer()?;
    let mut page_count = 0;
    let mut last_token = None;
    let mut saw_page = false;
    loop {
        let page = pages.blocking_recv();
        let done = page.is_none();
        if let Some(page) = page {
            saw_page = true;
            page_count += 1;
            last_token = page.next_token.clone();
            let end_of_job = last_token.is_none();
            writer
                .write(&encode::page_batch(&page, job_id))
                .map_err(|e| Error::Encode {
                    part: 0,
                    source: Box::new(e),
                })?;
            if writer.rows() < options.part_rows && !end_of_job {
                continue;
            }
        }
        if saw_page {
            let full = std::mem::replace(&mut writer, new_writer()?);
            let rows = full.rows();
            let bytes = full.finish().map_err(|e| Error::Encode {
                part: 0,
                source: Box::new(e),
            })?;
            let part = EncodedPart {
                bytes,
                rows,
                pages: page_count,
                next_token: last_token.take(),
            };
            if parts.blocking_send(part).is_err() {
                return Ok(());
            }
            page_count = 0;
            saw_page = false;
        }
        if done {
            return Ok(());
        }
    }
}

/// Uploads a part under its deterministic key, then commits the checkpoint that covers it.
async fn commit_part(
    store: &dyn crate::sink::ObjectStore,
    checkpoints: &mut CheckpointStore,
    lock: &JobLock,
    checkpoint: &mut Checkpoint,
    part: EncodedPart,
) -> Result<()> {
    lock.ensure_held(&checkpoint.job_id)?;
    let now = Utc::now();
    if part.rows == 0 {
        checkpoint.pages_fetched += part.pages;
        checkpoint.finish_pages(part.next_token, now);
    } else {
        let number = checkpoint.next_part;
        let key = layout::part_key(&checkpoint.export_date, &checkpoint.job_id, number);
        let sha256 = hex(&Sha256::digest(&part.bytes));
        let bytes = part.bytes.len() as u64;
        crash_point("part-before-upload");
        let body = Bytes::from(part.bytes);
        store
            .put(&key, body, crate::sink::PARQUET_CONTENT_TYPE)
            .await?;
        crash_point("part-after-upload");
        let record = PartRecord {
            number,
            key,
            rows: part.rows,
            bytes,
            sha256,
        };
        checkpoint.advance(record, part.pages, part.next_token, now);
    }
    lock.ensure_held(&checkpoint.job_id)?;
    checkpoints.commit(checkpoint).await?;
    crash_point("checkpoint-after-commit");
    Ok(())
}

/// A place the reliability suite can kill the process (`failpoints` feature, `FAILPOINTS` env).
pub fn crash_point(name: &str) {
    fail::fail_point!(name, |_| std::process::abort());
}

/// Deletes parts of this job numbered at or beyond the checkpoint: left by a run that died
/// between upload and checkpoint. The resumed run writes them again from the checkpoint's token.
pub async fn remove_stray_parts(
    store: &dyn crate::sink::ObjectStore,
    checkpoint: &Checkpoint,
) -> Result<()> {
    let prefix = layout::partition_prefix(&checkpoint.export_date);
    for object in store.list(&prefix).await? {
        if layout::part_number(&object.key, &checkpoint.job_id)
            .is_some_and(|n| n >= checkpoint.next_part)
        {
            tracing::info!(
                "removing {} (written after the last checkpoint; it is fetched again)",
                object.key
            );
            store.delete(&object.key).await?;
        }
    }
    Ok(())
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
