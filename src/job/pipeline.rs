//! The export pipeline of one stream: fetch -> convert -> encode -> upload + checkpoint, each
//! stage its own task joined by bounded channels, so the fetchers keep the rate limiter busy
//! while parts are written. A stream is one NextToken chain, or several (its shards) fetched at
//! once into the same parts; each part records where every chain in it ends. A failure never
//! advances the checkpoint past unwritten data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use chrono::Utc;
use tokio::sync::mpsc;

use super::cancel::Cancel;
use super::checkpoint::{ChainEnd, Checkpoint, CheckpointStore, JobState, PartRecord};
use super::lock::JobLock;
use super::meeting::{self, FindingKey, Pairing};
use super::observer::{Committed, Observers};
use super::shards;
use crate::crash::crash_point;
use crate::encode::{self, Compression, Format, PartWriter, RowOrigin};
use crate::error::{Error, Result};
use crate::request::narrow::string_conditions_match;
use crate::sink::parts::JobParts;
use crate::source::{PacedSource, Page, SourceCounts};

/// Pages buffered between the fetcher and the encoder.
const PAGE_QUEUE: usize = 32;

/// Why a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Every finding of the job is exported.
    Complete,
    /// The job was already complete before this run; nothing was fetched.
    AlreadyComplete,
    /// Stopped at a part boundary (time box, Ctrl-C, deadline); the same command resumes.
    Stopped(String),
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Why it ended.
    pub end: RunEnd,
    /// The last committed checkpoint.
    pub checkpoint: Checkpoint,
    /// Findings written by this run.
    pub rows_this_run: u64,
    /// Parts written by this run.
    pub parts_this_run: u64,
    /// Bytes written by this run.
    pub bytes_this_run: u64,
    /// What the source sent and saw.
    pub source: SourceCounts,
    /// From the pipeline's start to its last checkpoint.
    pub elapsed: Duration,
    /// Of a complete job: whether no finding of its request was updated while it read its
    /// window (`None`: not known, e.g. a window without an end). See [`crate::job::settle`].
    pub settled: Option<bool>,
}

impl RunSummary {
    /// A run that did nothing: its job was already complete, or it stopped before starting.
    pub fn idle(end: RunEnd, checkpoint: Checkpoint) -> RunSummary {
        RunSummary {
            end,
            checkpoint,
            rows_this_run: 0,
            parts_this_run: 0,
            bytes_this_run: 0,
            source: SourceCounts::default(),
            elapsed: Duration::ZERO,
            settled: None,
        }
    }
}

/// How pages become parts.
#[derive(Debug, Clone, Copy)]
pub struct PartOptions {
    /// Findings per part (whole pages).
    pub part_rows: u64,
    /// Parquet codec.
    pub compression: Compression,
}

/// Where a stream's parts and checkpoint are written, under the job's lock.
pub struct Target<'a> {
    /// The job's parts.
    pub parts: JobParts,
    /// The job's checkpoint.
    pub checkpoints: CheckpointStore,
    /// Held for the whole run; checked before every write.
    pub lock: &'a JobLock,
}

/// One NextToken chain of a stream: where it starts, and pages of it already fetched.
pub struct Chain {
    /// The chain's index (0 for an unsharded stream, else its shard).
    pub index: usize,
    /// Its paced source (every chain of a stream shares the stream's limiter).
    pub source: PacedSource,
    /// The token it continues from (`None`: its first page).
    pub start: Option<String>,
    /// Its first pages, fetched before the pipeline started (the latency probe's).
    pub prefetched: Vec<Page>,
    /// A shard's `Id` conditions, checked on every finding it returns (empty: not a shard).
    pub id_filter: Vec<serde_json::Value>,
    /// Its side of a meeting pair, if it is one.
    pub pairing: Option<Pairing>,
}

/// A page as fetched for chain `chain`, with the Ids it delivers to a meeting pair's tail.
struct Fetched {
    chain: usize,
    page: Page,
    tail: Vec<FindingKey>,
}

/// A part ready to upload, with the pages it covers and where each chain in it ends.
struct EncodedPart {
    bytes: Vec<u8>,
    rows: u64,
    pages: u64,
    ends: Vec<ChainEnd>,
    /// Each paired chain's Ids in the part, in its order.
    tails: Vec<(usize, Vec<FindingKey>)>,
}

/// One page's rows as an Arrow batch, its chain, the token that follows the page, and the Ids
/// it adds to a paired chain's tail.
struct Converted {
    batch: RecordBatch,
    chain: usize,
    next_token: Option<String>,
    tail: Vec<FindingKey>,
}

/// Runs one stream's `chains` from its checkpoint until complete, cancelled, or failed. Pages
/// fetched before a failure are still written and checkpointed before the error is returned.
pub async fn run(
    chains: Vec<Chain>,
    format: &'static dyn Format,
    target: &mut Target<'_>,
    mut checkpoint: Checkpoint,
    options: PartOptions,
    cancel: &Cancel,
    observers: &mut Observers,
) -> Result<RunSummary> {
    let started = Instant::now();
    let base = checkpoint.clone();
    let Some(stats) = chains.first().map(|chain| chain.source.stats()) else {
        return Ok(RunSummary::idle(RunEnd::AlreadyComplete, checkpoint));
    };
    if checkpoint.state == JobState::Complete {
        return Ok(RunSummary::idle(RunEnd::AlreadyComplete, checkpoint));
    }
    observers.reading(&stats);
    // Fetching only reads, so it starts at once and overlaps the claim below.
    let mut stages = Stages::start(chains, format, &checkpoint, options, cancel);
    // Fence first: once this commit lands (it creates a new job's checkpoint), a previous
    // holder's next commit fails its precondition, so the stray parts deleted below can never
    // end up in a checkpoint.
    checkpoint.owner_generation += 1;
    let mut failure = claim(target, &checkpoint).await.err();
    while failure.is_none() {
        let Some(part) = stages.parts.recv().await else {
            break;
        };
        if let Err(err) = commit_part(target, &mut checkpoint, part).await {
            failure = Some(err);
            break;
        }
        observers.committed(&Committed {
            checkpoint: &checkpoint,
            source: stats.snapshot(),
        });
    }
    let (fetch_result, encode_result) = stages.join(failure.is_some()).await?;
    if let Some(err) = failure {
        return Err(err);
    }
    encode_result?;
    fetch_result?;

    let end = match (checkpoint.state, cancel.reason()) {
        (JobState::Complete, _) => RunEnd::Complete,
        (JobState::Running, Some(reason)) => RunEnd::Stopped(reason),
        (JobState::Running, None) => {
            return Err(Error::Internal(
                "the fetcher ended before the last page".into(),
            ))
        }
    };
    Ok(summary(end, checkpoint, &base, stats.snapshot(), started))
}

/// The fetch, convert and encode stages of a run, feeding encoded parts to the committer.
struct Stages {
    parts: mpsc::Receiver<EncodedPart>,
    fetcher: tokio::task::JoinHandle<Result<()>>,
    converter: tokio::task::JoinHandle<()>,
    encoder: tokio::task::JoinHandle<Result<()>>,
}

impl Stages {
    /// Starts fetching every chain, converting and encoding parts from the checkpoint's next
    /// part number on.
    fn start(
        chains: Vec<Chain>,
        format: &'static dyn Format,
        checkpoint: &Checkpoint,
        options: PartOptions,
        cancel: &Cancel,
    ) -> Stages {
        let (page_tx, page_rx) = mpsc::channel::<Fetched>(PAGE_QUEUE);
        let (batch_tx, batch_rx) = mpsc::channel::<Converted>(PAGE_QUEUE);
        let (part_tx, parts) = mpsc::channel::<EncodedPart>(1);
        let fetcher = tokio::spawn(fetch_chains(chains, page_tx, cancel.clone()));
        let origin = checkpoint.row_origin();
        let converter =
            tokio::task::spawn_blocking(move || convert_pages(format, page_rx, batch_tx, &origin));
        let first_part = checkpoint.next_part;
        let encoder = tokio::task::spawn_blocking(move || {
            encode_parts(format, batch_rx, part_tx, first_part, options)
        });
        Stages {
            parts,
            fetcher,
            converter,
            encoder,
        }
    }

    /// Stops taking parts and waits for every stage; returns the fetch and encode results.
    /// After a failed commit (`stop_fetching`) the fetcher is stopped at once rather than left
    /// to finish, and perhaps retry for minutes, a page that will not be written.
    async fn join(self, stop_fetching: bool) -> Result<(Result<()>, Result<()>)> {
        drop(self.parts);
        if stop_fetching {
            self.fetcher.abort();
        }
        let fetched = match self.fetcher.await {
            Err(stopped) if stopped.is_cancelled() => Ok(()),
            finished => joined(finished, "fetch")?,
        };
        let encoded = joined(self.encoder.await, "encode")?;
        joined(self.converter.await, "convert")?;
        Ok((fetched, encoded))
    }
}

/// A stage's task result; a panicking stage becomes an error instead of taking the process down.
fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>, stage: &str) -> Result<T> {
    result.map_err(|e| Error::Internal(format!("the {stage} stage failed: {e}")))
}

fn summary(
    end: RunEnd,
    checkpoint: Checkpoint,
    base: &Checkpoint,
    source: SourceCounts,
    started: Instant,
) -> RunSummary {
    RunSummary {
        rows_this_run: checkpoint.exported_count - base.exported_count,
        parts_this_run: (checkpoint.parts.len() - base.parts.len()) as u64,
        bytes_this_run: checkpoint.bytes_written - base.bytes_written,
        end,
        checkpoint,
        source,
        elapsed: started.elapsed(),
        settled: None,
    }
}

/// Fetches every chain at once into `pages`; the first chain to fail stops the others.
async fn fetch_chains(
    chains: Vec<Chain>,
    pages: mpsc::Sender<Fetched>,
    cancel: Cancel,
) -> Result<()> {
    let mut fetchers = tokio::task::JoinSet::new();
    for chain in chains {
        fetchers.spawn(fetch_chain(chain, pages.clone(), cancel.clone()));
    }
    drop(pages);
    while let Some(finished) = fetchers.join_next().await {
        let failure = match finished {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err,
            Err(stopped) if stopped.is_cancelled() => continue,
            Err(panicked) => Error::Internal(format!("a fetch task failed: {panicked}")),
        };
        fetchers.abort_all();
        return Err(failure);
    }
    Ok(())
}

/// Sends a chain's prefetched pages, then fetches from where they end until its last page,
/// cancellation, or an error. A paired chain's pages are cut where its partner began, and it
/// ends with an empty last page once its partner met it (a fetch then in flight is dropped: its
/// page would keep nothing).
async fn fetch_chain(mut chain: Chain, pages: mpsc::Sender<Fetched>, cancel: Cancel) -> Result<()> {
    let mut token = chain.start.take();
    let mut number = 0;
    let mut prefetched = std::mem::take(&mut chain.prefetched).into_iter();
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        number += 1;
        let page = match prefetched.next() {
            Some(page) => page,
            None => {
                let partner_met = async {
                    match &chain.pairing {
                        Some(pairing) => pairing.until_met().await,
                        None => std::future::pending().await,
                    }
                };
                // Biased: a pair that has already met sends nothing more.
                let page = tokio::select! {
                    biased;
                    _ = partner_met => Page::empty_last(number),
                    _ = cancel.cancelled() => return Ok(()),
                    page = chain.source.fetch(token.as_deref(), number) => page?,
                };
                check_shard(&chain, &page)?;
                page
            }
        };
        let (page, tail) = match &chain.pairing {
            Some(pairing) => pairing.admit(page).map_err(|broken| Error::OrderUnproven {
                chain: chain.index,
                page: number,
                message: broken.0,
            })?,
            None => (page, Vec::new()),
        };
        token = page.next_token.clone();
        let fetched = Fetched {
            chain: chain.index,
            page,
            tail,
        };
        if pages.send(fetched).await.is_err() || token.is_none() {
            return Ok(());
        }
    }
}

/// Refuses a page of a shard holding a finding outside the shard's `Id` conditions: a service
/// that ignored the filter would otherwise have every shard export everything.
fn check_shard(chain: &Chain, page: &Page) -> Result<()> {
    if chain.id_filter.is_empty() {
        return Ok(());
    }
    for text in page.findings() {
        let id = shards::finding_id(text);
        if !string_conditions_match(id.as_deref(), &chain.id_filter) {
            return Err(Error::Rejected {
                page: page.number,
                message: format!(
                    "shard {} got finding {} outside its Id filter: the service did not apply the filter, so the stream cannot be sharded; nothing was written for this page: re-run with --restart --max-shards 1",
                    chain.index,
                    id.as_deref().unwrap_or("without an Id")
                ),
            });
        }
    }
    Ok(())
}

/// Turns pages into Arrow batches on its own thread, so JSON parsing runs beside Parquet
/// encoding and compression.
fn convert_pages(
    format: &dyn Format,
    mut pages: mpsc::Receiver<Fetched>,
    batches: mpsc::Sender<Converted>,
    origin: &RowOrigin,
) {
    while let Some(Fetched { chain, page, tail }) = pages.blocking_recv() {
        let converted = Converted {
            batch: encode::page_batch(format, &page, origin),
            chain,
            next_token: page.next_token,
            tail,
        };
        if batches.blocking_send(converted).is_err() {
            return;
        }
    }
}

/// Groups page batches into parts of about `part_rows` rows (whole pages), on a blocking thread;
/// the last part is cut when every chain has ended (the channel closes).
fn encode_parts(
    format: &dyn Format,
    mut batches: mpsc::Receiver<Converted>,
    parts: mpsc::Sender<EncodedPart>,
    first_part: u64,
    options: PartOptions,
) -> Result<()> {
    let table = format.table();
    let mut part = first_part;
    let failed = |part: u64| {
        move |e: parquet::errors::ParquetError| Error::Encode {
            part,
            source: Box::new(e),
        }
    };
    let mut writer = PartWriter::new(table, options.compression).map_err(failed(part))?;
    let mut page_count = 0;
    let mut ends: BTreeMap<usize, Option<String>> = BTreeMap::new();
    let mut tails: BTreeMap<usize, Vec<FindingKey>> = BTreeMap::new();
    loop {
        let converted = batches.blocking_recv();
        let done = converted.is_none();
        if let Some(converted) = converted {
            page_count += 1;
            ends.insert(converted.chain, converted.next_token);
            if !converted.tail.is_empty() {
                let tail = tails.entry(converted.chain).or_default();
                tail.extend(converted.tail);
                let excess = tail.len().saturating_sub(meeting::TAIL);
                tail.drain(..excess);
            }
            writer.write(&converted.batch).map_err(failed(part))?;
            if writer.rows() < options.part_rows {
                continue;
            }
        }
        if page_count > 0 {
            let next = PartWriter::new(table, options.compression).map_err(failed(part + 1))?;
            let full = std::mem::replace(&mut writer, next);
            let rows = full.rows();
            let encoded = EncodedPart {
                bytes: full.finish().map_err(failed(part))?,
                rows,
                pages: page_count,
                ends: std::mem::take(&mut ends).into_iter().collect(),
                tails: std::mem::take(&mut tails).into_iter().collect(),
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

/// Claims the job (commits the checkpoint under a new owner generation), then deletes parts
/// written after it by an earlier run.
async fn claim(target: &mut Target<'_>, checkpoint: &Checkpoint) -> Result<()> {
    target.lock.ensure_held(&checkpoint.job_id)?;
    target.checkpoints.commit(checkpoint).await?;
    target.parts.remove_from(checkpoint.next_part).await
}

/// Writes a part under its deterministic key, then commits the checkpoint that covers it.
async fn commit_part(
    target: &mut Target<'_>,
    checkpoint: &mut Checkpoint,
    part: EncodedPart,
) -> Result<()> {
    target.lock.ensure_held(&checkpoint.job_id)?;
    let now = Utc::now();
    checkpoint.extend_tails(&part.tails);
    if part.rows == 0 {
        checkpoint.finish_pages(part.pages, &part.ends, now);
    } else {
        let number = checkpoint.next_part;
        crash_point("part-before-upload");
        let written = target.parts.write(number, part.bytes).await?;
        crash_point("part-after-upload");
        let record = PartRecord {
            number,
            key: written.key,
            rows: part.rows,
            bytes: written.bytes,
            sha256: written.sha256,
        };
        checkpoint.advance(record, part.pages, &part.ends, now);
    }
    target.lock.ensure_held(&checkpoint.job_id)?;
    crash_point("checkpoint-before-commit");
    target.checkpoints.commit(checkpoint).await?;
    crash_point("checkpoint-after-commit");
    Ok(())
}

#[cfg(test)]
mod tests;
