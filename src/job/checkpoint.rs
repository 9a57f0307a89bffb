//! Job checkpoint: what has durably landed and where to continue, committed only after each part
//! is written, with conditional writes so a second writer fails instead of corrupting it.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::meeting::FindingKey;
use crate::encode::RowOrigin;
use crate::error::{Error, Result};
use crate::request::{filters, FrozenRequest, IdOrder};
use crate::sink::layout;
use crate::sink::{put_if_or_own, CondPut, ObjectStore, Precondition};

/// Version of the checkpoint format this build writes and reads (2: shards; 3: chains sorted on
/// `Id` and meeting pairs; 4: a pair's tails hold `(Id, ProductArn)` and its order is checked on
/// every page, and a stream may fall back to one chain. An older build must refuse such a
/// checkpoint rather than resume it as one chain from its first page, or send a chain's token
/// without its sort).
pub const FORMAT_VERSION: u32 = 4;

/// Whether a job still has findings to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Findings remain to be fetched.
    Running,
    /// Every finding of the frozen request is in a durable part.
    Complete,
}

/// One durable part of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, from 1.
    pub number: u64,
    /// Object key below the destination.
    pub key: String,
    /// Findings in the part.
    pub rows: u64,
    /// Size of the object.
    pub bytes: u64,
    /// SHA-256 of the object's bytes, hex.
    pub sha256: String,
}

/// One chain of a split stream: the `Id` conditions that select its part of the request (a
/// prefix shard), the `Id` order it reads that part in (one half of a meeting pair), or both,
/// and its own NextToken chain. Frozen in the checkpoint with the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardCursor {
    /// String conditions on `Id` added to the request's filters (`PREFIX p`, or
    /// `PREFIX_NOT_EQUALS` every other shard's prefix for the rest); empty: the whole request.
    pub id_filter: Vec<serde_json::Value>,
    /// The `Id` order this chain asks for (`SortCriteria`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<IdOrder>,
    /// The chain reading the same findings from the other end, which this one meets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<usize>,
    /// A paired chain's last durable findings, in its order (at most `meeting::TAIL`): where
    /// its partner meets it after a resume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<FindingKey>,
    /// Token for the shard's first page not yet in a durable part (`None`: from its start, or
    /// nothing left when `done`).
    pub next_token: Option<String>,
    /// Every page of the shard is in a durable part.
    pub done: bool,
}

/// How a job's request is read (see [`super::shards`] and [`super::meeting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainLayout {
    /// One NextToken chain.
    One,
    /// A meeting pair over the whole request.
    Pair,
    /// This many prefix shards, each read by a meeting pair.
    PairedShards(usize),
    /// This many prefix shards, each one chain.
    Shards(usize),
}

/// Where one chain of pages ends in a part: chain `chain` continues at `next_token`, or is
/// finished (`None`). An unsharded job has the one chain 0.
pub type ChainEnd = (usize, Option<String>);

/// The state of a job after its last durable part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT_VERSION`] of the build that wrote it.
    pub format_version: u32,
    /// The job.
    pub job_id: String,
    /// Whether findings remain.
    pub state: JobState,
    /// The request every page is fetched with.
    pub request: FrozenRequest,
    /// Partition date of every part of this job (the job's start date, UTC).
    pub export_date: String,
    /// Token for the first page not yet in a durable part; `None` before the first page. Unused
    /// when the job is sharded: each shard has its own.
    pub next_token: Option<String>,
    /// The `Id` order of the one chain of an unsplit job, if it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<IdOrder>,
    /// The chains of a split job (empty: one chain, `next_token`): prefix shards or a meeting
    /// pair. Decided before the first page is kept, when calls are slower than the rate allows
    /// one chain to use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardCursor>,
    /// Why the stream is read without relying on any order (one chain in the service's own
    /// order, or prefix shards): an earlier reading relied on an order a page then broke, and
    /// was dropped (`None`: it was not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_fallback: Option<String>,
    /// Number of the next part to write.
    pub next_part: u64,
    /// Findings in durable parts.
    pub exported_count: u64,
    /// Findings Security Hub counted for the frozen request when the job started (`None`:
    /// not counted), for progress, ETA and the reading plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_count: Option<u64>,
    /// The pace of the run that wrote it (its burst is read at once, then the rate applies):
    /// what an ETA computed from the checkpoint alone (`status`) needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<crate::source::Pace>,
    /// Bytes of durable parts.
    pub bytes_written: u64,
    /// Pages fetched into durable parts.
    pub pages_fetched: u64,
    /// Every durable part, in order.
    pub parts: Vec<PartRecord>,
    /// Bumped by every run when it takes the job, before it deletes or writes anything: a run
    /// that held the job before (frozen, partitioned) can no longer commit over it.
    #[serde(default)]
    pub owner_generation: u64,
    /// The SSM parameter the last run published the count to (`none`: none), so `verify`
    /// checks it without being told again. Absent in checkpoints written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_parameter: Option<String>,
    /// When the job was created.
    pub created_at: DateTime<Utc>,
    /// When this checkpoint was committed.
    pub updated_at: DateTime<Utc>,
}

impl Checkpoint {
    /// A new job's checkpoint: nothing fetched yet.
    pub fn new(job_id: String, request: FrozenRequest, now: DateTime<Utc>) -> Self {
        Checkpoint {
            format_version: FORMAT_VERSION,
            job_id,
            state: JobState::Running,
            export_date: now.format("%Y-%m-%d").to_string(),
            request,
            next_token: None,
            sort: None,
            shards: Vec::new(),
            order_fallback: None,
            next_part: 1,
            exported_count: 0,
            expected_count: None,
            pace: None,
            bytes_written: 0,
            pages_fetched: 0,
            parts: Vec::new(),
            owner_generation: 0,
            progress_parameter: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The job columns of this job's rows: its id and the account and Region it reads.
    pub fn row_origin(&self) -> RowOrigin {
        RowOrigin {
            job_id: self.job_id.clone(),
            account_id: self.request.identity.account_id.clone(),
            region: self.request.identity.region.clone(),
        }
    }

    /// Why re-running this job would export nothing new: it is complete, and its relative
    /// `DateRange` was resolved on an earlier UTC day than `now` (a plain re-run never
    /// re-resolves it, so a scheduled "last N days" export must not quietly stop there).
    pub fn window_done(&self, job_id: &str, now: DateTime<Utc>) -> Option<String> {
        let frozen_at = self.request.frozen_at;
        let identity = &self.request.identity;
        let relative = identity.api.has_relative_range(&identity.filters_as_given);
        (self.state == JobState::Complete && relative && frozen_at.date_naive() < now.date_naive())
            .then(|| {
                format!(
                    "complete since {}: its relative DateRange was resolved once, on {}, and that window is exported, so re-running the same command exports nothing new; to export the findings of a newer window give a new job id (for example --job-id {job_id}-{})",
                    filters::iso(self.updated_at),
                    filters::iso(frozen_at),
                    now.format("%Y%m%d")
                )
            })
    }

    /// True before anything was fetched or decided: no page, no token, no shards.
    pub fn is_new(&self) -> bool {
        self.state == JobState::Running
            && self.next_token.is_none()
            && self.sort.is_none()
            && self.shards.is_empty()
            && self.pages_fetched == 0
    }

    /// The chains still to fetch, each with the token it continues from.
    pub fn open_chains(&self) -> Vec<ChainEnd> {
        if self.shards.is_empty() {
            return match self.state {
                JobState::Complete => Vec::new(),
                JobState::Running => vec![(0, self.next_token.clone())],
            };
        }
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, shard)| !shard.done)
            .map(|(index, shard)| (index, shard.next_token.clone()))
            .collect()
    }

    /// The filters of chain `index`: the request's, plus the shard's `Id` conditions.
    pub fn chain_filters(&self, index: usize) -> serde_json::Value {
        let mut filters = self.request.filters.clone();
        let shard = self.shards.get(index).filter(|s| !s.id_filter.is_empty());
        if let (Some(shard), Some(fields)) = (shard, filters.as_object_mut()) {
            fields.insert(
                "Id".into(),
                serde_json::Value::Array(shard.id_filter.clone()),
            );
        }
        filters
    }

    /// How the job's chains read its request.
    pub fn chain_layout(&self) -> ChainLayout {
        let paired = self.shards.iter().all(|s| s.partner.is_some());
        let prefixed = self.shards.iter().any(|s| !s.id_filter.is_empty());
        match (self.shards.len(), paired, prefixed) {
            (0, _, _) => ChainLayout::One,
            (_, true, false) => ChainLayout::Pair,
            (n, true, true) => ChainLayout::PairedShards(n / 2),
            (n, false, _) => ChainLayout::Shards(n),
        }
    }

    /// The `Id` order chain `index` asks for.
    pub fn chain_sort(&self, index: usize) -> Option<IdOrder> {
        match self.shards.get(index) {
            Some(shard) => shard.sort,
            None => self.sort,
        }
    }

    /// Appends each paired chain's Ids in a durable part to its tail (keeping the last `TAIL`).
    pub fn extend_tails(&mut self, tails: &[(usize, Vec<FindingKey>)]) {
        for (chain, ids) in tails {
            if let Some(shard) = self.shards.get_mut(*chain) {
                shard.tail.extend(ids.iter().cloned());
                let excess = shard.tail.len().saturating_sub(super::meeting::TAIL);
                shard.tail.drain(..excess);
            }
        }
    }

    /// Records a durable part of `pages` pages and where each chain in it ends.
    pub fn advance(&mut self, part: PartRecord, pages: u64, ends: &[ChainEnd], now: DateTime<Utc>) {
        self.exported_count += part.rows;
        self.bytes_written += part.bytes;
        self.next_part = part.number + 1;
        self.parts.push(part);
        self.finish_pages(pages, ends, now);
    }

    /// Records `pages` pages (in a part, or empty ones) and where each chain in them ends; the
    /// job is complete when every chain is finished.
    pub fn finish_pages(&mut self, pages: u64, ends: &[ChainEnd], now: DateTime<Utc>) {
        self.pages_fetched += pages;
        for (chain, token) in ends {
            match self.shards.get_mut(*chain) {
                Some(shard) => {
                    shard.done = token.is_none();
                    shard.next_token = token.clone();
                }
                None => self.next_token = token.clone(),
            }
        }
        let finished = if self.shards.is_empty() {
            ends.iter().any(|(_, token)| token.is_none())
        } else {
            self.shards.iter().all(|shard| shard.done)
        };
        if finished {
            self.state = JobState::Complete;
        }
        self.updated_at = now;
    }
}

/// Reads and commits one job's checkpoint, fenced by the object's ETag.
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    job_id: String,
    etag: Option<String>,
}

impl CheckpointStore {
    /// The checkpoint of `job_id` in `store` (nothing read yet).
    pub fn new(store: Arc<dyn ObjectStore>, job_id: &str) -> Self {
        CheckpointStore {
            store,
            job_id: job_id.to_string(),
            etag: None,
        }
    }

    fn key(&self) -> String {
        layout::checkpoint_key(&self.job_id)
    }

    /// Where the checkpoint lives, for messages.
    pub fn location(&self) -> String {
        self.store.location(&self.key())
    }

    /// Loads the checkpoint, remembering its ETag for the next commit.
    pub async fn load(&mut self) -> Result<Option<Checkpoint>> {
        let Some((body, etag)) = self.store.get(&self.key()).await? else {
            return Ok(None);
        };
        let checkpoint = parse(&body, &self.job_id, &self.store.location(&self.key()))?;
        self.etag = Some(etag);
        Ok(Some(checkpoint))
    }

    /// Writes the checkpoint: create-only the first time, then only over the version we wrote.
    pub async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let body =
            Bytes::from(serde_json::to_vec_pretty(checkpoint).expect("checkpoint serialises"));
        let precondition = match &self.etag {
            None => Precondition::Absent,
            Some(etag) => Precondition::Matches(etag.clone()),
        };
        // A retried write whose first attempt landed (its answer lost) fails its own
        // precondition: if the stored checkpoint is exactly ours, the commit succeeded.
        match put_if_or_own(self.store.as_ref(), &self.key(), body, precondition).await? {
            CondPut::Written(etag) => {
                self.etag = Some(etag);
                Ok(())
            }
            CondPut::PreconditionFailed => Err(Error::JobConflict {
                job_id: self.job_id.clone(),
                message: format!(
                    "the checkpoint at {} was changed by another run; only one run of a job may write at a time: stop the other run, then re-run this command",
                    self.store.location(&self.key())
                ),
            }),
        }
    }
}

/// Parses checkpoint bytes, refusing corrupt, foreign and newer-format state.
pub fn parse(body: &[u8], job_id: &str, location: &str) -> Result<Checkpoint> {
    let corrupt = |message: String| Error::CorruptState {
        job_id: job_id.to_string(),
        location: location.to_string(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        corrupt(format!(
            "not valid JSON ({e}); restore it from a backup or export under a new --job-id"
        ))
    })?;
    let version = value
        .get("format_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version > FORMAT_VERSION as u64 {
        return Err(corrupt(format!(
            "written by a newer sechub-export (format {version}, this build reads {FORMAT_VERSION}); upgrade sechub-export"
        )));
    }
    let paired = value["shards"]
        .as_array()
        .is_some_and(|shards| shards.iter().any(|s| s.get("partner").is_some()));
    if version < 4 && paired {
        return Err(corrupt(
            "written by an older sechub-export whose two-ended reading did not check the service's order on every page; re-run with --restart to export the job again".into(),
        ));
    }
    let checkpoint: Checkpoint = serde_json::from_value(value).map_err(|e| {
        corrupt(format!(
            "unexpected content ({e}); restore it or export under a new --job-id"
        ))
    })?;
    if checkpoint.job_id != job_id {
        return Err(corrupt(format!(
            "it belongs to job {:?}; the state folder was copied or renamed: restore it or use a new --job-id",
            checkpoint.job_id
        )));
    }
    let counted: u64 = checkpoint.parts.iter().map(|p| p.rows).sum();
    if counted != checkpoint.exported_count
        || checkpoint.next_part != checkpoint.parts.len() as u64 + 1
    {
        return Err(corrupt(format!(
            "inconsistent counts (parts hold {counted} rows, count says {}; next part {} after {} parts); it was edited by hand: restore it or use a new --job-id",
            checkpoint.exported_count,
            checkpoint.next_part,
            checkpoint.parts.len()
        )));
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests;
