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
use arrow::record_batch::RecordBatch;

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
    let (batch_tx, batch_rx) = mpsc::channel::<Converted>(PAGE_QUEUE);
    let job_id = checkpoint.job_id.clone();
    let converter = tokio::task::spawn_blocking(move || convert_pages(page_rx, batch_tx, &job_id));
    let first_part = checkpoint.next_part;
    let encoder =
        tokio::task::spawn_blocking(move || encode_parts(batch_rx, part_tx, first_part, &options));

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
    converter.await.expect("converter task");
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

/// One page's rows as an Arrow batch, and the token that follows the page.
struct Converted {
    batch: RecordBatch,
    next_token: Option<String>,
}

/// Turns pages into Arrow batches on its own thread, so JSON parsing runs beside Parquet
/// encoding and compression.
fn convert_pages(mut pages: mpsc::Receiver<Page>, batches: mpsc::Sender<Converted>, job_id: &str) {
    while let Some(page) = pages.blocking_recv() {
        let converted = Converted {
            batch: encode::page_batch(&page, job_id),
            next_token: page.next_token,
        };
        if batches.blocking_send(converted).is_err() {
            return;
        }
    }
}

/// Groups page batches into parts of about `part_rows` rows (whole pages), on a blocking thread.
fn encode_parts(
    mut batches: mpsc::Receiver<Converted>,
    parts: mpsc::Sender<EncodedPart>,
    first_part: u64,
    options: &RunOptions,
) -> Result<()> {
    let mut part = first_part;
    let failed = |part: u64| {
        move |e: parquet::errors::ParquetError| Error::Encode {
            part,
            source: Box::new(e),
        }
    };
    let mut writer = PartWriter::new(options.compression).map_err(failed(part))?;
    let mut page_count = 0;
    let mut last_token = None;
    loop {
        let converted = batches.blocking_recv();
        let done = converted.is_none();
        if let Some(converted) = converted {
            page_count += 1;
            last_token = converted.next_token;
            writer.write(&converted.batch).map_err(failed(part))?;
            if writer.rows() < options.part_rows && last_token.is_some() {
                continue;
            }
        }
        if page_count > 0 {
            let next = PartWriter::new(options.compression).map_err(failed(part + 1))?;
            let full = std::mem::replace(&mut writer, next);
            let rows = full.rows();
            let bytes = full.finish().map_err(failed(part))?;
            let encoded = EncodedPart {
                bytes,
                rows,
                pages: page_count,
                next_token: last_token.take(),
            };
            if parts.blocking_send(encoded).is_err() {
                return Ok(());
            }
            part += u64::from(rows > 0);
            page_count = 0;
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
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
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
